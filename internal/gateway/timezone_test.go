package gateway_test

import (
	"archive/zip"
	"bytes"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
)

// TestZipTimeZone: zip.time_zone decides the date in the zip's name and
// the DOS times inside; the extended timestamp keeps the UTC instant.
func TestZipTimeZone(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Zip.TimeZone = "Asia/Tokyo" })
	at := time.Date(2026, 11, 27, 15, 30, 0, 0, time.UTC) // 00:30 on the 28th in Tokyo
	h.gw.Now = func() time.Time { return at }
	if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment)); se != nil {
		t.Fatalf("got %d %s, want 250", se.Code, se.Message)
	}
	msgs := h.hop.Messages()
	if len(msgs) != 1 {
		t.Fatalf("next hop got %d messages, want 1", len(msgs))
	}
	name, data := zipOf(t, msgs[0].Data)
	if name != "attachments_20261128.zip" {
		t.Errorf("zip name %q, want the Tokyo date attachments_20261128.zip", name)
	}
	r, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	f := r.File[0]
	if wantDate, wantTime := uint16(46<<9|11<<5|28), uint16(0<<11|30<<5); f.ModifiedDate != wantDate || f.ModifiedTime != wantTime {
		t.Errorf("DOS date/time %#x %#x, want 2026-11-28 00:30 (%#x %#x)", f.ModifiedDate, f.ModifiedTime, wantDate, wantTime)
	}
	if !f.Modified.Equal(at) {
		t.Errorf("extended timestamp %v, want %v", f.Modified, at)
	}
}

package gateway_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
)

// TestLimitsThatBoundMemory: the limits that keep memory bounded refuse
// with 554 5.6.0 and a reason the sender can act on, and nothing leaves
// (issue 11, finding 1).
func TestLimitsThatBoundMemory(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.SMTP.MaxTotalHeaderBytes = 64 << 10
		c.SMTP.MaxAttachments = 10
	})
	// Header blocks each small, together over the total.
	var headers strings.Builder
	headers.WriteString("From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for headers.Len() < 80<<10 {
		headers.WriteString("--b\r\n" + strings.Repeat("X-A: b\r\n", 100) + "Content-Type: application/pdf\r\n\r\nx\r\n")
	}
	headers.WriteString("--b--\r\n")
	se := send(t, h.addr, "a@example.com", []string{"1@example.com"}, []byte(headers.String()))
	if se == nil || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || !strings.Contains(se.Message, "too many header lines") {
		t.Errorf("headers over the total: got %+v, want 554 5.6.0 with a reason", se)
	}

	files := func(n int) string {
		var m strings.Builder
		m.WriteString("From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
		for i := range n {
			fmt.Fprintf(&m, "--b\r\nContent-Type: application/pdf; name=f%d.pdf\r\n\r\nsecret\r\n", i)
		}
		return m.String() + "--b--\r\n"
	}
	se = send(t, h.addr, "a@example.com", []string{"1@example.com"}, []byte(files(11)))
	if se == nil || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || !strings.Contains(se.Message, "too many attachments") {
		t.Errorf("11 attachments with a limit of 10: got %+v, want 554 5.6.0 with a reason", se)
	}
	if n := len(h.hop.Messages()); n != 0 {
		t.Errorf("next hop got %d messages; none of these may leave", n)
	}
	if se := send(t, h.addr, "a@example.com", []string{"1@example.com"}, []byte(files(10))); se != nil {
		t.Errorf("10 attachments with a limit of 10: got %+v, want 250", se)
	}
}

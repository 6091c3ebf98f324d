package release

import (
	"bytes"
	"io"
	"testing"

	"github.com/emersion/go-message/mail"
)

func decodeBody(t *testing.T, raw []byte) string {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(p.Body)
	return string(b)
}

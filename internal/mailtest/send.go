package mailtest

import (
	"errors"
	"testing"

	"github.com/emersion/go-smtp"
)

// Send submits data to the SMTP server at addr as Postfix's smtp client
// would: the reply that ended the transaction, nil for 250. Anything that
// is not an SMTP reply fails the test.
func Send(t testing.TB, addr, from string, mo *smtp.MailOptions, to []string, ro *smtp.RcptOptions, data []byte) *smtp.SMTPError {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("postfix.test"); err != nil {
		t.Fatal(err)
	}
	check := func(err error) *smtp.SMTPError {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		if err != nil {
			t.Fatalf("not an SMTP reply: %v", err)
		}
		return nil
	}
	if se := check(c.Mail(from, mo)); se != nil {
		return se
	}
	for _, r := range to {
		if se := check(c.Rcpt(r, ro)); se != nil {
			return se
		}
	}
	w, err := c.Data()
	if se := check(err); se != nil {
		return se
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	return check(w.Close())
}

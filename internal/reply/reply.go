// Package reply is the one error type that carries SMTP meaning through
// zipgate. Everything below the SMTP session returns *reply.Error (or a plain
// error, which the session treats as an internal fault); the session turns it
// into a go-smtp reply at one boundary.
package reply

import (
	"errors"
	"fmt"
)

// Enhanced status codes (RFC 3463) used by zipgate, named so the reason for
// each reply is visible where it is made.
var (
	CodeOther         = [3]int{4, 0, 0}
	CodeNextHopDown   = [3]int{4, 4, 1} // no answer from the next hop
	CodeNextHopFailed = [3]int{4, 4, 2} // the next hop deferred, or the connection broke
	CodeSystemError   = [3]int{4, 3, 0} // a fault inside zipgate
	CodeTooManyRcpts  = [3]int{4, 5, 3}
	CodeHoldFull      = [3]int{4, 3, 1} // the disk set aside for held messages is full
	CodeMediaError    = [3]int{5, 6, 0} // the message cannot be converted safely
	CodePolicy        = [3]int{5, 7, 1} // a policy of the recipient's domain refuses it
)

// Error is a failure with the SMTP reply the client should see. Text is what
// the sender may read; Err is the internal cause and only goes to the log.
type Error struct {
	Code     int
	Enhanced [3]int
	Text     string
	Err      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the client should retry (4xx).
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// Temp is a 451: our fault or a passing one; the client keeps the mail.
func Temp(enh [3]int, text string, cause error) *Error {
	return &Error{Code: 451, Enhanced: enh, Text: text, Err: cause}
}

// Perm is a 554 refusal of the message itself, with a reason for the sender.
func Perm(enh [3]int, text string, cause error) *Error {
	return &Error{Code: 554, Enhanced: enh, Text: text, Err: cause}
}

// Internal is the answer for any fault inside zipgate: generic text, details
// only in the log.
func Internal(cause error) *Error {
	return Temp(CodeSystemError, "Temporary local problem, please try again later", cause)
}

// From returns the *Error in err's chain, or an internal fault for any other
// error, so nothing unclassified ever becomes a permanent refusal.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	return Internal(err)
}

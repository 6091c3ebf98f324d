// Package store keeps release jobs: one per message whose attachments
// went into a zip, with the password to send and who to tell. The
// embedded store is SQLite; the interface lets a PostgreSQL store share
// the work of several gateway nodes later without touching the callers.
package store

import (
	"context"
	"errors"
	"time"
)

// State is where a job is in its life.
type State string

const (
	// Pending: the message is being relayed; its password must not go
	// yet. A job still pending after a crash is promoted to Scheduled,
	// since the message may have left.
	Pending   State = "pending"
	Scheduled State = "scheduled"
	// Sending: claimed by a scheduler that is relaying the password mail
	// now; cancel is refused. Left by a crash, it goes back to Scheduled.
	Sending  State = "sending"
	Released State = "released"
	Canceled State = "canceled"
	// Failed: the next hop refused the password mail for good.
	Failed State = "failed"
)

// File is one attachment in the zip.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Job is the release of one zip's password.
type Job struct {
	ID         string
	State      State
	Sender     string   // envelope sender: notices go here
	Rcpts      []string // envelope recipients: the password goes here
	HeaderFrom string   // original From, To, Cc fields, as written
	HeaderTo   string
	HeaderCc   string
	Subject    string // decoded
	MessageID  string
	ZipName    string
	Files      []File
	Password   string // in clear here; encrypted at rest, wiped once final

	// TokenHash is the sha256 of the sender page token. The token itself
	// is made when the sender notice goes out and only the notice has it.
	TokenHash []byte

	CreatedAt  time.Time
	DueAt      time.Time
	FinishedAt time.Time // released, canceled or failed; zero while open

	Attempts    int
	NextAttempt time.Time // earliest next try of the password mail
	LastError   string

	// Notices to the sender still owed: the scheduled notice, and the
	// confirmation once the job is final.
	NoticeSent  bool
	ConfirmSent bool
}

// Errors callers act on.
var (
	ErrNotFound        = errors.New("no such job")
	ErrAlreadyReleased = errors.New("the password was already sent")
	ErrAlreadyCanceled = errors.New("the job was already canceled")
	ErrSending         = errors.New("the password is being sent right now")
	ErrFinished        = errors.New("the job is finished")
)

// Store is what the gateway, the scheduler, the web page and the CLI use.
type Store interface {
	// Create writes a new Pending job durably.
	Create(ctx context.Context, j *Job) error
	// Schedule moves a Pending job to Scheduled once its message left.
	Schedule(ctx context.Context, id string) error
	// Discard deletes a Pending job whose message did not leave.
	Discard(ctx context.Context, id string) error
	// Recover runs at start: jobs left Pending by a crash are scheduled
	// (their message may have left) and jobs left Sending are scheduled
	// again (the password may not have gone).
	Recover(ctx context.Context) (int, error)

	Get(ctx context.Context, id string) (*Job, error)
	ByToken(ctx context.Context, tokenHash []byte) (*Job, error)
	// List returns jobs, newest first; state "" means all.
	List(ctx context.Context, state State, limit int) ([]*Job, error)

	// Cancel stops a Scheduled job: ErrAlreadyReleased after release.
	Cancel(ctx context.Context, id string, now time.Time) error
	// ReleaseNow makes a Scheduled job due at once.
	ReleaseNow(ctx context.Context, id string, now time.Time) error

	// Work returns jobs that need the scheduler at now: due passwords
	// and notices owed, oldest first.
	Work(ctx context.Context, now time.Time, limit int) ([]*Job, error)
	// NextWake is the earliest time a job will need work (zero: none).
	NextWake(ctx context.Context) (time.Time, error)
	// Claim moves a due Scheduled job to Sending; otherwise it says why
	// (ErrAlreadyCanceled, ErrAlreadyReleased, ErrSending, ErrFinished).
	Claim(ctx context.Context, id string, now time.Time) error
	// MarkReleased records that the next hop took the password mail.
	MarkReleased(ctx context.Context, id string, now time.Time) error
	// MarkRetry puts a Sending job back to Scheduled after a failed try.
	MarkRetry(ctx context.Context, id string, next time.Time, reason string) error
	// MarkFailed records a permanent refusal of the password mail.
	MarkFailed(ctx context.Context, id string, now time.Time, reason string) error
	// SetToken replaces the sender page token (made for each notice sent).
	SetToken(ctx context.Context, id string, tokenHash []byte) error
	MarkNoticeSent(ctx context.Context, id string) error
	MarkConfirmSent(ctx context.Context, id string) error

	// Purge deletes finished jobs older than before.
	Purge(ctx context.Context, before time.Time) (int, error)
	Close() error
}

// Package store keeps release jobs: one per message whose attachments
// went into a zip, with the password to send and who to tell. The
// embedded store is SQLite; the interface lets a PostgreSQL store share
// the work of several gateway nodes later without touching the callers.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

// State is where a job is in its life.
type State string

const (
	// Pending: the message is being relayed; its password must not go
	// yet. A job left pending by a crash waits for Postfix's retry of
	// the message, which reuses it (and its password) and schedules it
	// once the next hop took the message.
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
	MessageID  string // the Message-ID field
	ZipName    string
	Files      []File
	Password   string // in clear here; encrypted at rest, wiped once final

	// Message is the id of zipgate's record of the message (Messages),
	// Key the key of that message (Message.Key): a retry of the message
	// finds its job by it and reuses the password.
	Message string
	Key     []byte
	// PasswordTo is who gets the password: the recipients (Rcpts), the
	// sender, or the recipients once the sender releases it (Manual; the
	// job then has no DueAt until Release now).
	PasswordTo policy.PasswordTo
	// Language of the password mail ("ja", "en", "ja+en"); "" = default.
	Language string
	// Rule is the pattern of the policy that decided the zip.
	Rule string

	// TokenHash is the sha256 of the sender page token. The token itself
	// is made when the sender notice goes out and only the notice has it.
	TokenHash []byte

	CreatedAt  time.Time
	DueAt      time.Time // zero: waits for Release now (PasswordTo Manual)
	FinishedAt time.Time // released, canceled or failed; zero while open

	Attempts    int
	NextAttempt time.Time // earliest next try of the password mail
	LastError   string

	// Notices to the sender still owed: the scheduled notice, and the
	// confirmation once the job is final.
	NoticeSent  bool
	ConfirmSent bool
	// NoticeAttempts counts deferred tries of mail to the sender; none is
	// tried again before NoticeNext.
	NoticeAttempts int
	NoticeNext     time.Time

	// Link is the download link of a linked copy (policy action link),
	// written with the job by SaveMessage; Get and the lists leave it
	// nil (GetLink reads it).
	Link *Link
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
	Jobs
	Policies
	Messages
	Holds
	Links
	Admins
	Audit
	// Purge deletes finished jobs, jobs left pending, deliveries and
	// finished held messages older than before; it returns how many jobs
	// went. Message records and events stay for the audit (PurgeAudit).
	Purge(ctx context.Context, before time.Time) (int, error)
	Close() error
}

// Jobs are the release jobs: one per zipped copy of a message.
type Jobs interface {
	// Create writes a new Pending job durably.
	Create(ctx context.Context, j *Job) error
	// Schedule moves a Pending job to Scheduled once its message left.
	Schedule(ctx context.Context, id string) error
	// Discard deletes a Pending job whose message did not leave, and its
	// pending download link.
	Discard(ctx context.Context, id string) error
	// Recover runs at start: jobs left Sending are scheduled again (the
	// password may not have gone). Jobs left Pending stay: Postfix
	// retries their message, and the retry reuses them.
	Recover(ctx context.Context) (int, error)

	Get(ctx context.Context, id string) (*Job, error)
	ByToken(ctx context.Context, tokenHash []byte) (*Job, error)
	// List returns jobs, newest first; state "" means all.
	List(ctx context.Context, state State, limit int) ([]*Job, error)

	// Cancel stops a Scheduled job: ErrAlreadyReleased after release.
	Cancel(ctx context.Context, id string, now time.Time) error
	// ReleaseNow makes a Scheduled job due at once (also one that waits
	// for the sender).
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
	// MarkNoticeRetry records a deferred notice or confirmation: the next
	// try of mail to the sender waits until next.
	MarkNoticeRetry(ctx context.Context, id string, next time.Time) error
}

// Policies are the admin's per-domain rules. Domains are kept
// normalized (policy.NormalizePattern).
type Policies interface {
	ListPolicies(ctx context.Context) ([]policy.Policy, error)
	// GetPolicy returns ErrNoPolicy when the domain has none.
	GetPolicy(ctx context.Context, domain string) (*policy.Policy, error)
	// PutPolicy creates or replaces the rule for p.Domain.
	PutPolicy(ctx context.Context, p *policy.Policy) error
	// PutPolicyIf saves p only if the stored rule is still the one an
	// admin's form showed: none (was zero) or the one last saved at was;
	// otherwise ErrPolicyChanged, and nothing changes. Checked and written
	// in one statement, so of two saves of the same form one wins.
	PutPolicyIf(ctx context.Context, p *policy.Policy, was time.Time) error
	// DeletePolicy returns ErrNoPolicy when there was none.
	DeletePolicy(ctx context.Context, domain string) error
}

// ErrPolicyChanged: the rule was added, changed or deleted meanwhile.
var ErrPolicyChanged = errors.New("the rule was changed meanwhile")

// ErrNoPolicy: no rule for that domain pattern.
var ErrNoPolicy = errors.New("no policy for that domain")

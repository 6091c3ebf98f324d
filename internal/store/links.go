package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// LinkState is where a download link is in its life.
type LinkState string

const (
	// LinkPending: its copy is being relayed; the page does not open yet.
	LinkPending LinkState = "pending"
	// LinkActive: the copy left; the page opens with the password or code.
	LinkActive LinkState = "active"
	// The ends of a link; its files are deleted then.
	LinkRevoked LinkState = "revoked" // taken back by the sender or an admin
	LinkExpired LinkState = "expired" // its time ran out (or release.retention)
	LinkUsedUp  LinkState = "used_up" // its last allowed download was made
	LinkLocked  LinkState = "locked"  // too many wrong passwords or codes
)

// Ended reports whether st is one of the ends of a link.
func (st LinkState) Ended() bool {
	switch st {
	case LinkRevoked, LinkExpired, LinkUsedUp, LinkLocked:
		return true
	}
	return false
}

// Link is the download link of one linked copy (policy action link). Its
// id is the id of the copy's release job, which sends its password (or,
// with a one-time code, only the sender's notice). The files are kept
// outside the store (links.Files), encrypted with FileKey.
type Link struct {
	ID      string
	Message string // the message record's id: its history has the link's events
	Key     []byte // the message's key, as the job's
	State   LinkState
	Auth    string // policy.AuthPassword or policy.AuthOTP

	Sender     string
	Rcpts      []string
	HeaderFrom string
	Subject    string
	MessageID  string
	ZipName    string // of the all-in-one zip the page offers
	Language   string // of the page, the code mail
	Files      []File

	// Secrets: in clear here, sealed at rest, wiped when the link ends.
	// Token is the recipients' page token, kept only while the copy may
	// still be relayed again (Pending), so a retry carries the same link.
	FileKey  []byte
	Password string
	Token    string

	TokenHash    []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
	MaxDownloads int // 0: no limit
	Downloads    int
	Failures     int // wrong passwords and codes

	FirstDownloadAt time.Time
	FirstNoticeSent bool
	EndedAt         time.Time
	EndedBy         string // who revoked it; "zipgate" for the other ends
	EndNoticeSent   bool
	FilesGone       bool

	// The one-time code in force (AuthOTP): its hash, where it went,
	// until when; CodeSentAt paces the requests.
	CodeHash    []byte
	CodeTo      string
	CodeExpires time.Time
	CodeSentAt  time.Time

	NoticeAttempts int
	NoticeNext     time.Time
}

// ErrLinkEnded: the link is over; GetLink says how (State).
var ErrLinkEnded = errors.New("the download link has ended")

// ErrLinkNotActive: the link's copy has not left yet.
var ErrLinkNotActive = errors.New("the download link is not active yet")

// Links keeps the download links.
type Links interface {
	// A link is created with its job (Job.Link) by SaveMessage, becomes
	// active with it in Delivered, and goes with it in Discard.
	GetLink(ctx context.Context, id string) (*Link, error)
	LinkByToken(ctx context.Context, tokenHash []byte) (*Link, error)
	// ListLinks returns links, newest first.
	ListLinks(ctx context.Context, limit int) ([]*Link, error)

	// LinkDownload counts one download of an active link, unexpired at
	// now, under its limit, and records it as event e (all in one
	// transaction); it returns the link as it is then. An ended link
	// gives ErrLinkEnded, a pending one ErrLinkNotActive.
	LinkDownload(ctx context.Context, id string, now time.Time, e Event) (*Link, error)
	// LinkFailure counts a wrong password or code (event e) and locks
	// the link at lockAt failures; it returns the link as it is then.
	LinkFailure(ctx context.Context, id string, lockAt int, e Event) (*Link, error)
	// SetLinkCode records a fresh one-time code (event e).
	SetLinkCode(ctx context.Context, id string, hash []byte, to string, expires time.Time, e Event) error
	// ClearLinkCode ends the code in force, once used.
	ClearLinkCode(ctx context.Context, id string) error
	// EndLink ends an open link (pending or active) in state, wipes its
	// secrets, cancels its job's password mail if it has not gone, and
	// records e; a link over already gives ErrLinkEnded.
	EndLink(ctx context.Context, id string, state LinkState, by string, e Event) error

	// LinkWork returns what the links scheduler has to do at now: links
	// past their expiry, or created before retention; ended ones whose
	// files are still there, ended filesGrace ago or more; notices owed
	// to the sender.
	LinkWork(ctx context.Context, now, retention time.Time, filesGrace time.Duration, limit int) ([]*Link, error)
	// UsedUpLinks are active links whose downloads ran out: a stop came
	// between counting the last download and ending the link.
	UsedUpLinks(ctx context.Context) ([]*Link, error)
	// NextLinkWake is the earliest time a link needs work (zero: none);
	// the files of an ended link need it filesGrace after its end.
	NextLinkWake(ctx context.Context, filesGrace time.Duration) (time.Time, error)
	MarkLinkFilesGone(ctx context.Context, id string) error
	// MarkLinkNotice records the first-download notice ("first") or the
	// notice of its end ("end") as sent (or not to send).
	MarkLinkNotice(ctx context.Context, id, which string) error
	MarkLinkNoticeRetry(ctx context.Context, id string, next time.Time) error
}

const linkColumns = `id, message, msg_key, state, auth, sender, rcpts, header_from, subject, message_id, zip_name,
	language, files, file_key, password, token, token_hash, created_at, expires_at, max_downloads, downloads, failures,
	first_download_at, first_notice_sent, ended_at, ended_by, end_notice_sent, files_gone, code_hash, code_to,
	code_expires, code_sent_at, notice_attempts, notice_next`

// The sealed secrets of a link are bound to it and to what they are.
func linkAD(id, what string) string { return "link/" + id + "/" + what }

func (s *SQLite) insertLink(ctx context.Context, tx *sql.Tx, l *Link) error {
	key, err := s.sec.seal(linkAD(l.ID, "key"), string(l.FileKey))
	if err != nil {
		return err
	}
	pw, err := s.sec.seal(linkAD(l.ID, "password"), l.Password)
	if err != nil {
		return err
	}
	token, err := s.sec.seal(linkAD(l.ID, "token"), l.Token)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO links (id, message, msg_key, state, auth, sender, rcpts, header_from, subject,
		message_id, zip_name, language, files, file_key, password, token, token_hash, created_at, expires_at, max_downloads)
		VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.Message, l.Key, l.Auth, l.Sender, jsonText(l.Rcpts), l.HeaderFrom, l.Subject, l.MessageID, l.ZipName,
		l.Language, jsonText(orEmpty(l.Files)), key, pw, token, l.TokenHash, ms(l.CreatedAt), ms(l.ExpiresAt), l.MaxDownloads)
	if err != nil {
		return fmt.Errorf("link %s: %w", l.ID, err)
	}
	l.State = LinkPending
	return nil
}

// scanLink reads the linkColumns of a row (of either store).
func scanLink(sec *sealer, row scanner) (*Link, error) {
	var l Link
	var rcpts, files string
	var key, pw, token []byte
	var created, expires, first, ended, codeExp, codeSent, noticeNext int64
	err := row.Scan(&l.ID, &l.Message, &l.Key, &l.State, &l.Auth, &l.Sender, &rcpts, &l.HeaderFrom, &l.Subject,
		&l.MessageID, &l.ZipName, &l.Language, &files, &key, &pw, &token, &l.TokenHash, &created, &expires,
		&l.MaxDownloads, &l.Downloads, &l.Failures, &first, &l.FirstNoticeSent, &ended, &l.EndedBy, &l.EndNoticeSent,
		&l.FilesGone, &l.CodeHash, &l.CodeTo, &codeExp, &codeSent, &l.NoticeAttempts, &noticeNext)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rcpts), &l.Rcpts); err != nil {
		return nil, fmt.Errorf("link %s recipients: %w", l.ID, err)
	}
	if err := json.Unmarshal([]byte(files), &l.Files); err != nil {
		return nil, fmt.Errorf("link %s files: %w", l.ID, err)
	}
	k, err := sec.open(linkAD(l.ID, "key"), key)
	if err != nil {
		return nil, fmt.Errorf("link %s key: %w", l.ID, err)
	}
	if k != "" {
		l.FileKey = []byte(k)
	}
	if l.Password, err = sec.open(linkAD(l.ID, "password"), pw); err != nil {
		return nil, fmt.Errorf("link %s: %w", l.ID, err)
	}
	if l.Token, err = sec.open(linkAD(l.ID, "token"), token); err != nil {
		return nil, fmt.Errorf("link %s token: %w", l.ID, err)
	}
	l.CreatedAt, l.ExpiresAt, l.FirstDownloadAt, l.EndedAt = fromMS(created), fromMS(expires), fromMS(first), fromMS(ended)
	l.CodeExpires, l.CodeSentAt, l.NoticeNext = fromMS(codeExp), fromMS(codeSent), fromMS(noticeNext)
	return &l, nil
}

// linkMiss explains why an update that needs an active link changed
// nothing.
func linkMiss(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	var st LinkState
	var expires int64
	err := tx.QueryRowContext(ctx, `SELECT state, expires_at FROM links WHERE id = ?`, id).Scan(&st, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case st == LinkPending:
		return ErrLinkNotActive
	}
	return ErrLinkEnded // ended, used up, or past its expiry (the scheduler marks it)
}

func (s *SQLite) LinkDownload(ctx context.Context, id string, now time.Time, e Event) (*Link, error) {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE links SET downloads = downloads + 1,
		first_download_at = CASE WHEN first_download_at = 0 THEN ? ELSE first_download_at END
		WHERE id = ? AND state = 'active' AND expires_at > ? AND (max_downloads = 0 OR downloads < max_downloads)`,
		ms(now), id, ms(now))
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, linkMiss(ctx, tx, id, now)
	}
	if err := addEvent(ctx, tx, e); err != nil {
		return nil, err
	}
	l, err := s.scanLink(tx.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	return l, tx.Commit()
}

func (s *SQLite) LinkFailure(ctx context.Context, id string, lockAt int, e Event) (*Link, error) {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE links SET failures = failures + 1 WHERE id = ? AND state = 'active'`, id)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, linkMiss(ctx, tx, id, e.At)
	}
	if err := addEvent(ctx, tx, e); err != nil {
		return nil, err
	}
	var failures int
	if err := tx.QueryRowContext(ctx, `SELECT failures FROM links WHERE id = ?`, id).Scan(&failures); err != nil {
		return nil, err
	}
	if failures >= lockAt {
		lock := Event{Message: e.Message, At: e.At, Event: "link_locked", Actor: "zipgate", Via: e.Via,
			Detail: fmt.Sprintf("%d wrong tries", failures)}
		if err := s.endLink(ctx, tx, id, LinkLocked, "zipgate", lock); err != nil {
			return nil, err
		}
	}
	l, err := s.scanLink(tx.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	return l, tx.Commit()
}

func (s *SQLite) SetLinkCode(ctx context.Context, id string, hash []byte, to string, expires time.Time, e Event) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE links SET code_hash = ?, code_to = ?, code_expires = ?, code_sent_at = ?
		WHERE id = ? AND state = 'active'`, hash, to, ms(expires), ms(e.At), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return linkMiss(ctx, tx, id, e.At)
	}
	if err := addEvent(ctx, tx, e); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLite) ClearLinkCode(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE links SET code_hash = NULL, code_expires = 0 WHERE id = ?`, id)
	return err
}

func (s *SQLite) EndLink(ctx context.Context, id string, state LinkState, by string, e Event) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	if err := s.endLink(ctx, tx, id, state, by, e); err != nil {
		return err
	}
	return tx.Commit()
}

// endLink ends an open link in tx: its secrets go (what is left on disk
// cannot be read any more), and so does its password mail, if it has
// not gone yet: it would open nothing. A revoked link's job is canceled
// without the confirmation mail; the page and the sender's own action
// say it.
func (s *SQLite) endLink(ctx context.Context, tx *sql.Tx, id string, state LinkState, by string, e Event) error {
	if !state.Ended() {
		return fmt.Errorf("link %s: %q is not an end", id, state)
	}
	res, err := tx.ExecContext(ctx, `UPDATE links SET state = ?, ended_at = ?, ended_by = ?, file_key = NULL,
		password = NULL, token = NULL, code_hash = NULL, code_expires = 0
		WHERE id = ? AND state IN ('pending', 'active')`, state, ms(e.At), by, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		var st LinkState
		err := tx.QueryRowContext(ctx, `SELECT state FROM links WHERE id = ?`, id).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return ErrLinkEnded
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'canceled', finished_at = ?, password = NULL,
		confirm_sent = 1 WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(e.At), id); err != nil {
		return err
	}
	return addEvent(ctx, tx, e)
}

// linkWork is what LinkWork and NextLinkWake look for, with its time.
const linkNoticeOwed = `notice_next <= ? AND ((first_download_at > 0 AND first_notice_sent = 0)
	OR (state = 'locked' AND end_notice_sent = 0))`

func (s *SQLite) LinkWork(ctx context.Context, now, retention time.Time, filesGrace time.Duration, limit int) ([]*Link, error) {
	t := ms(now)
	return s.queryLinks(ctx, `SELECT `+linkColumns+` FROM links WHERE
		(state IN ('pending', 'active') AND (expires_at <= ? OR created_at < ?))
		OR (state NOT IN ('pending', 'active') AND files_gone = 0 AND ended_at <= ?)
		OR (`+linkNoticeOwed+`)
		ORDER BY created_at, id LIMIT ?`, t, ms(retention), ms(now.Add(-filesGrace)), t, limit)
}

func (s *SQLite) NextLinkWake(ctx context.Context, filesGrace time.Duration) (time.Time, error) {
	var t sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MIN(t) FROM (
		SELECT expires_at AS t FROM links WHERE state IN ('pending', 'active')
		UNION ALL
		SELECT MAX(ended_at + ?, 1) FROM links WHERE state NOT IN ('pending', 'active') AND files_gone = 0
		UNION ALL
		SELECT MAX(notice_next, 1) FROM links WHERE (first_download_at > 0 AND first_notice_sent = 0)
			OR (state = 'locked' AND end_notice_sent = 0))`, filesGrace.Milliseconds()).Scan(&t)
	if err != nil || !t.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(t.Int64), nil
}

func (s *SQLite) MarkLinkFilesGone(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE links SET files_gone = 1 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkLinkNotice(ctx context.Context, id, which string) error {
	col := map[string]string{"first": "first_notice_sent", "end": "end_notice_sent"}[which]
	if col == "" {
		return fmt.Errorf("no link notice %q", which)
	}
	_, err := s.exec(ctx, false, `UPDATE links SET `+col+` = 1, notice_attempts = 0, notice_next = 0 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkLinkNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := s.exec(ctx, false, `UPDATE links SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`,
		ms(next), id)
	return err
}

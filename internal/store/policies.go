package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

const policyColumns = `domain, action, password_to, delay_ms, zip_method, filename_encoding, language, note, updated_at,
	hold_ms, approvers, guard, link_expiry_ms, max_downloads, link_auth`

func scanPolicy(row scanner) (*policy.Policy, error) {
	var p policy.Policy
	var delay, hold, linkExpiry, maxDownloads sql.NullInt64
	var approvers sql.NullString
	var updated int64
	err := row.Scan(&p.Domain, &p.Action, &p.PasswordTo, &delay, &p.ZipMethod, &p.FilenameEncoding, &p.Language,
		&p.Note, &updated, &hold, &approvers, &p.Guard, &linkExpiry, &maxDownloads, &p.LinkAuth)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoPolicy
	}
	if err != nil {
		return nil, err
	}
	if delay.Valid {
		d := time.Duration(delay.Int64) * time.Millisecond
		p.Delay = &d
	}
	if hold.Valid {
		d := time.Duration(hold.Int64) * time.Millisecond
		p.Hold = &d
	}
	if linkExpiry.Valid {
		d := time.Duration(linkExpiry.Int64) * time.Millisecond
		p.LinkExpiry = &d
	}
	if maxDownloads.Valid {
		n := int(maxDownloads.Int64)
		p.MaxDownloads = &n
	}
	if approvers.Valid {
		p.Approvers = []string{}
		if err := json.Unmarshal([]byte(approvers.String), &p.Approvers); err != nil {
			return nil, fmt.Errorf("policy %s approvers: %w", p.Domain, err)
		}
	}
	p.UpdatedAt = fromMS(updated)
	return &p, nil
}

// policySave is the statement that saves p, for both stores: without was
// an upsert; with it an insert of a new rule (was zero) or an update of
// the rule last saved at *was, which change nothing when the stored rule
// is another.
func policySave(p *policy.Policy, was *time.Time) (string, []any, error) {
	if err := p.Validate(); err != nil {
		return "", nil, err
	}
	p.Domain, _ = policy.NormalizePattern(p.Domain)
	args := policyArgs(p)
	insert := `INSERT INTO policies (` + policyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	switch {
	case was == nil:
		return insert + ` ON CONFLICT (domain) DO UPDATE SET action = excluded.action, password_to = excluded.password_to,
			delay_ms = excluded.delay_ms, zip_method = excluded.zip_method,
			filename_encoding = excluded.filename_encoding, language = excluded.language,
			note = excluded.note, updated_at = excluded.updated_at, hold_ms = excluded.hold_ms,
			approvers = excluded.approvers, guard = excluded.guard, link_expiry_ms = excluded.link_expiry_ms,
			max_downloads = excluded.max_downloads, link_auth = excluded.link_auth`, args, nil
	case was.IsZero():
		return insert + ` ON CONFLICT (domain) DO NOTHING`, args, nil
	}
	cols := strings.Split(policyColumns, ",")
	set := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] { // all but domain
		set = append(set, strings.TrimSpace(c)+" = ?")
	}
	return `UPDATE policies SET ` + strings.Join(set, ", ") + ` WHERE domain = ? AND updated_at = ?`,
		append(args[1:], p.Domain, ms(*was)), nil
}

func (s *SQLite) PutPolicy(ctx context.Context, p *policy.Policy) error {
	q, args, err := policySave(p, nil)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, false, q, args...)
	return err
}

func (s *SQLite) PutPolicyIf(ctx context.Context, p *policy.Policy, was time.Time) error {
	q, args, err := policySave(p, &was)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, false, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrPolicyChanged
	}
	return nil
}

// policyArgs are the values of policyColumns for p.
func policyArgs(p *policy.Policy) []any {
	var delay, hold sql.NullInt64
	if p.Delay != nil {
		delay = sql.NullInt64{Int64: p.Delay.Milliseconds(), Valid: true}
	}
	if p.Hold != nil {
		hold = sql.NullInt64{Int64: p.Hold.Milliseconds(), Valid: true}
	}
	var approvers sql.NullString
	if p.Approvers != nil {
		b, _ := json.Marshal(p.Approvers)
		approvers = sql.NullString{String: string(b), Valid: true}
	}
	var linkExpiry, maxDownloads sql.NullInt64
	if p.LinkExpiry != nil {
		linkExpiry = sql.NullInt64{Int64: p.LinkExpiry.Milliseconds(), Valid: true}
	}
	if p.MaxDownloads != nil {
		maxDownloads = sql.NullInt64{Int64: int64(*p.MaxDownloads), Valid: true}
	}
	return []any{p.Domain, string(p.Action), string(p.PasswordTo), delay, p.ZipMethod, p.FilenameEncoding, p.Language,
		p.Note, ms(p.UpdatedAt), hold, approvers, string(p.Guard), linkExpiry, maxDownloads, p.LinkAuth}
}

func (s *SQLite) DeletePolicy(ctx context.Context, domain string) error {
	domain, err := policy.NormalizePattern(domain)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, false, `DELETE FROM policies WHERE domain = ?`, domain)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoPolicy
	}
	return nil
}

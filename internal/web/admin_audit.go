package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/store"
)

// The Audit page: every event (what happened to messages, what admins
// changed) searched by text (sender, recipients, subject, file names,
// detail), sender, recipient, domain, file name and time, and the same
// search as CSV (UTF-8 with a BOM, so Excel reads Japanese right) or,
// from the API, JSON. CSV is written row by row as the store reads them.

// auditQuery reads the search of the page and the API.
func (a *Admin) auditQuery(v url.Values) (store.AuditQuery, error) {
	q := store.AuditQuery{Q: strings.TrimSpace(v.Get("q")), Sender: v.Get("sender"), Rcpt: v.Get("rcpt"),
		Domain: v.Get("domain"), File: v.Get("file")}
	var err error
	if q.Since, err = parseTime(v.Get("since"), a.loc(), false); err != nil {
		return q, err
	}
	if q.Until, err = parseTime(v.Get("until"), a.loc(), true); err != nil {
		return q, err
	}
	return q, nil
}

var csvHeader = []string{"time", "message", "event", "actor", "via", "target", "detail", "sender", "recipients", "subject", "files"}

// writeCSV streams the events q finds.
func (a *Admin) writeCSV(w http.ResponseWriter, r *http.Request, q store.AuditQuery) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="zipgate-audit-`+a.now().In(a.loc()).Format("20060102-150405")+`.csv"`)
	w.Write([]byte("\ufeff"))
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	err := a.o.Store.SearchEvents(r.Context(), q, func(row store.AuditRow) error {
		var files []string
		for _, f := range row.Files {
			files = append(files, f.Name)
		}
		rec := []string{row.At.In(a.loc()).Format(time.RFC3339), row.Message, row.Event.Event, row.Actor, row.Via,
			row.Target, row.Detail, row.Sender, strings.Join(row.Rcpts, " "), row.Subject, strings.Join(files, " / ")}
		for i := range rec {
			rec[i] = cell(rec[i])
		}
		cw.Write(rec)
		return cw.Error()
	})
	cw.Flush()
	if err != nil {
		// The status went already: the truncated file and the log say it.
		a.log.Error("admin: writing the audit CSV", "error", err.Error())
	}
}

// auditJSON is one event in the API's answer.
type auditJSON struct {
	Seq     int64        `json:"seq"`
	At      time.Time    `json:"at"`
	Message string       `json:"message,omitempty"`
	Event   string       `json:"event"`
	Actor   string       `json:"actor"`
	Via     string       `json:"via,omitempty"`
	Target  string       `json:"target,omitempty"`
	Detail  string       `json:"detail,omitempty"`
	Sender  string       `json:"sender,omitempty"`
	Rcpts   []string     `json:"rcpts,omitempty"`
	Subject string       `json:"subject,omitempty"`
	Files   []store.File `json:"files,omitempty"`
}

func toAuditJSON(row store.AuditRow) auditJSON {
	return auditJSON{Seq: row.Seq, At: row.At, Message: row.Message, Event: row.Event.Event, Actor: row.Actor, Via: row.Via,
		Target: row.Target, Detail: row.Detail, Sender: row.Sender, Rcpts: row.Rcpts, Subject: row.Subject, Files: row.Files}
}

// writeAuditJSON streams the events as a JSON array.
func (a *Admin) writeAuditJSON(w http.ResponseWriter, r *http.Request, q store.AuditQuery) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write([]byte("["))
	first := true
	err := a.o.Store.SearchEvents(r.Context(), q, func(row store.AuditRow) error {
		b, err := json.Marshal(toAuditJSON(row))
		if err != nil {
			return err
		}
		if !first {
			w.Write([]byte(","))
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	w.Write([]byte("]\n"))
	if err != nil {
		a.log.Error("admin: writing the audit JSON", "error", err.Error())
	}
}

type auditRowView struct {
	Time, Event, Actor, Via, Target, Detail, Message, Link, Sender, Subject string
	Rcpts, Files                                                            []string
}

type auditView struct {
	pageView
	Filter url.Values
	Error  string
	CSV    string
	Rows   []auditRowView
	More   bool
}

// auditPageRows bounds the page; the CSV has every row.
const auditPageRows = 500

func (a *Admin) auditPage(w http.ResponseWriter, r *http.Request, q *adminReq) {
	aq, err := a.auditQuery(r.URL.Query())
	if err == nil && r.URL.Query().Get("format") == "csv" {
		a.event(r.Context(), store.Event{Event: "audit_export", Actor: q.actor(), Via: "page", Detail: r.URL.RawQuery})
		a.writeCSV(w, r, aq)
		return
	}
	v := &auditView{pageView: a.pageView(r, q, "audit"), Filter: r.URL.Query()}
	csvQuery := r.URL.Query()
	csvQuery.Set("format", "csv")
	v.CSV = "/admin/audit?" + csvQuery.Encode()
	if err == nil {
		aq.Limit = auditPageRows + 1
		err = a.o.Store.SearchEvents(r.Context(), aq, func(row store.AuditRow) error {
			rv := auditRowView{Time: v.Time(row.At), Event: row.Event.Event, Actor: row.Actor, Via: row.Via,
				Target: row.Target, Detail: row.Detail, Message: row.Message, Sender: row.Sender, Subject: row.Subject,
				Rcpts: row.Rcpts}
			if row.Message != "" {
				rv.Link = "/admin/messages/" + url.PathEscape(row.Message)
			}
			for _, f := range row.Files {
				rv.Files = append(rv.Files, f.Name)
			}
			v.Rows = append(v.Rows, rv)
			return nil
		})
	}
	var bad *badInput
	status := http.StatusOK
	switch {
	case errors.As(err, &bad):
		v.Error, status = bad.msg, http.StatusBadRequest
	case err != nil:
		a.fail(w, r, "searching the audit trail", err)
		return
	}
	if len(v.Rows) > auditPageRows {
		v.Rows, v.More = v.Rows[:auditPageRows], true
	}
	a.render(w, status, "audit", v)
}

// cell keeps a spreadsheet from reading a value as a formula: subjects
// and file names come from senders, and "=HYPERLINK(...)" in one must
// stay text when the admin opens the CSV in Excel.
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

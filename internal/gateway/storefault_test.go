package gateway_test

import (
	"context"
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/store"
)

// No 250 without a live password job (issue 11, finding 2): when the
// record of a delivered copy cannot be written (another program holds the
// store's write lock past its busy timeout), Postfix gets 451, not 250;
// the job stays pending, and Postfix's retry schedules it with the same
// password, so the zip that arrived opens with the one password mail.
func TestNo250WithoutALivePasswordJob(t *testing.T) {
	if testing.Short() {
		t.Skip("holds the store's write lock past its 10 s busy timeout")
	}
	h := start(t, nil)
	db, err := sql.Open("sqlite", h.cfg.DBFile())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	locked := false
	h.hop.SetFault(mailtest.Fault{BeforeReply: func() {
		// An admin's sqlite3 shell takes the write lock just as the next
		// hop is about to say 250.
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Error(err)
		}
		locked = true
	}})
	se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment))
	if !locked {
		t.Fatal("the lock was never taken")
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	h.hop.SetFault(mailtest.Fault{})
	if se == nil || se.Code != 451 {
		t.Fatalf("got %+v; want 451 while the delivery could not be recorded", se)
	}
	jobs, _ := h.store.List(ctx, "", 10)
	if len(jobs) != 1 || jobs[0].State != store.Pending {
		t.Fatalf("jobs %+v; want one, pending", jobs)
	}
	h.release(t)
	if n := len(byKind(h.hop.Messages())["password"]); n != 0 {
		t.Fatalf("%d password mails before the retry", n)
	}
	// Postfix's retry: the copy goes again (the record was missing), the
	// job is reused and scheduled.
	if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(withAttachment)); se != nil {
		t.Fatalf("retry: %d %s", se.Code, se.Message)
	}
	h.release(t)
	kinds := byKind(h.hop.Messages())
	if len(kinds["encrypted"]) != 2 || len(kinds["password"]) != 1 {
		t.Fatalf("%d copies and %d password mails; want 2 (the window) and 1", len(kinds["encrypted"]), len(kinds["password"]))
	}
	pw := passwordOf(t, kinds["password"][0].Data)
	for _, m := range kinds["encrypted"] {
		_, data := zipOf(t, m.Data)
		unzip(t, data, pw)
	}
}

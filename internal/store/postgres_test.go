package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
)

// What only a store shared by several nodes does: migrations that two
// nodes start at once, one key for all, leases, taking over a dead node's
// work, notifications, and the bytes every node reads.

// node opens a handle on the database at url as a node of its own with
// a 30 s lease.
func node(t *testing.T, url, name string) *Postgres {
	t.Helper()
	s, err := OpenPostgresKey(context.Background(), PostgresOptions{URL: url, Node: name, Lease: 30 * time.Second}, testKey(1))
	if err != nil {
		t.Fatalf("OpenPostgres(%s): %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresNodesStartingTogetherMigrateOnce(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenPostgresKey(context.Background(), PostgresOptions{URL: url}, testKey(1))
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	s := node(t, url, "a")
	var versions []int
	rows, err := s.pool.Query(context.Background(), `SELECT version FROM schema_version ORDER BY version`)
	must(t, "schema_version", err)
	for rows.Next() {
		var v int
		must(t, "scan", rows.Scan(&v))
		versions = append(versions, v)
	}
	rows.Close()
	want := []int{}
	for v := range pgMigrations {
		want = append(want, v+1)
	}
	if !slices.Equal(versions, want) {
		t.Errorf("schema_version = %v, want %v: each migration once", versions, want)
	}

	// A newer zipgate migrated the database: this one leaves it alone.
	must(t, "bump", rawExec(s, `INSERT INTO schema_version (version) VALUES (?)`, len(pgMigrations)+1))
	_, err = OpenPostgresKey(context.Background(), PostgresOptions{URL: url}, testKey(1))
	if err == nil || !strings.Contains(err.Error(), "newer than this zipgate") {
		t.Errorf("open of a newer schema = %v", err)
	}
}

// Every node needs the key the passwords are sealed with: a node with
// another key, or none on a database in use, is refused before it does
// anything; the first node on an empty database makes the key.
func TestPostgresOneKeyForAllNodes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	dir := t.TempDir()
	first := filepath.Join(dir, "first.key")
	s, key, err := OpenPostgres(ctx, PostgresOptions{URL: url}, first)
	must(t, "first node", err)
	create(t, s, job("j"))
	s.Close()
	if onDisk, _ := os.ReadFile(first); !bytes.Equal(onDisk, key) || len(key) != 32 {
		t.Fatal("the first node did not make its key file")
	}

	missing := filepath.Join(dir, "missing.key")
	_, _, err = OpenPostgres(ctx, PostgresOptions{URL: url}, missing)
	if err == nil || !strings.Contains(err.Error(), "copy the key file") {
		t.Errorf("a node without the key file = %v, want a refusal that says to copy it", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a node without the key made one of its own")
	}

	other := filepath.Join(dir, "other.key")
	otherKey, err := LoadKey(other)
	must(t, "LoadKey", err)
	_, _, err = OpenPostgres(ctx, PostgresOptions{URL: url}, other)
	if err == nil || !strings.Contains(err.Error(), "same key file") {
		t.Errorf("a node with another key = %v, want a refusal", err)
	}
	for _, k := range [][]byte{key, otherKey} {
		if err != nil && (strings.Contains(err.Error(), string(k)) || strings.Contains(err.Error(), fmt.Sprintf("%x", k))) {
			t.Errorf("the refusal shows a key: %q", err)
		}
	}

	s2, _, err := OpenPostgres(ctx, PostgresOptions{URL: url}, first)
	must(t, "second node with the key", err)
	defer s2.Close()
	if got := get(t, s2, "j").Password; got != "pw-j" {
		t.Errorf("the second node reads password %q", got)
	}
}

func TestPostgresPasswordSealedAtRest(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	s := node(t, url, "a")
	const password = "Hunter2-ひみつ-Xq7pLm3Z"
	j := job("secret")
	j.Password = password
	create(t, s, j)
	dump := pgDump(t, s)
	if bytes.Contains(dump, []byte(password)) {
		t.Error("the database holds the password in clear")
	}
	if !bytes.Contains(dump, []byte("taro@example.co.jp")) {
		t.Error("the dump does not hold the sender either: is it the database?")
	}
}

// A wrong password never shows in an error, whether it came in the URL
// or apart.
func TestPostgresErrorsShowNoPassword(t *testing.T) {
	c := pgtest.Shared(t)
	ctx := context.Background()
	for _, o := range []PostgresOptions{
		{URL: c.BareURL("postgres") + "&password=Wr0ng-Secret-Pw"},
		{URL: strings.Replace(c.URL("postgres"), c.Password, "Wr0ng-Secret-Pw", 1)},
		{URL: c.BareURL("postgres"), Password: "Wr0ng-Secret-Pw"},
		{URL: "postgres://zipgate:Wr0ng-Secret-Pw@127.0.0.1:%zz/x"},
	} {
		_, err := OpenPostgresKey(ctx, o, testKey(1))
		if err == nil {
			t.Fatalf("%s: a wrong password was let in", redact(o.URL))
		}
		if strings.Contains(err.Error(), "Wr0ng-Secret-Pw") {
			t.Errorf("error shows the password: %q", err)
		}
	}
}

// Leases: what one node took, no other works until its lease runs out;
// only the claimer completes a claim; a dead node's claim goes to the
// next node that looks once its lease ran out, and not before.
func TestPostgresLeasesAndTakeOver(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	for _, id := range []string{"j1", "j2"} {
		bring(t, a, job(id), Scheduled)
		must(t, "MarkNoticeSent", a.MarkNoticeSent(ctx, id))
	}

	work := func(s *Postgres, at time.Time) []string {
		t.Helper()
		jobs, err := s.Work(ctx, at, 100)
		must(t, "Work", err)
		return ids(jobs)
	}
	if got := work(a, t0); !slices.Equal(got, []string{"j1", "j2"}) {
		t.Fatalf("a's Work = %q", got)
	}
	if got := work(b, t0.Add(29*time.Second)); len(got) != 0 {
		t.Fatalf("b's Work while a holds them = %q, want none", got)
	}
	// b wakes up when a's lease ends, not in a loop before.
	if w, err := b.NextWake(ctx); err != nil || !w.Equal(t0.Add(30*time.Second)) {
		t.Errorf("b's NextWake = %v, %v; want the end of a's lease %v", w, err, t0.Add(30*time.Second))
	}
	if err := b.Claim(ctx, "j1", t0.Add(time.Second)); !errors.Is(err, ErrSending) {
		t.Errorf("b's Claim of a job a holds = %v, want ErrSending", err)
	}

	must(t, "a Claim", a.Claim(ctx, "j1", t0.Add(time.Second)))
	// Only a completes it.
	for name, mark := range map[string]func() error{
		"MarkReleased": func() error { return b.MarkReleased(ctx, "j1", t0) },
		"MarkRetry":    func() error { return b.MarkRetry(ctx, "j1", t0.Add(time.Minute), "451") },
		"MarkFailed":   func() error { return b.MarkFailed(ctx, "j1", t0, "550") },
	} {
		if err := mark(); !errors.Is(err, ErrSending) {
			t.Errorf("b's %s of a's claim = %v, want ErrSending", name, err)
		}
	}
	if got := get(t, a, "j1"); got.State != Sending || got.Attempts != 0 {
		t.Fatalf("after b's refused marks: %s, %d attempts", got.State, got.Attempts)
	}

	// a renews while it sends: still its own 40 s later.
	must(t, "RenewLeases", a.RenewLeases(ctx, t0.Add(20*time.Second)))
	if got := work(b, t0.Add(40*time.Second)); len(got) != 0 {
		t.Fatalf("b's Work while a renews = %q, want none", got)
	}
	// Then a dies: no more renewals. Once the lease ran out, b takes
	// both: j2 as it was, j1 back to scheduled, and sends it.
	after := t0.Add(51 * time.Second)
	if got := work(b, after); !slices.Equal(got, []string{"j1", "j2"}) {
		t.Fatalf("b's Work after a's lease = %q", got)
	}
	if got := get(t, b, "j1"); got.State != Scheduled || got.Password != "pw-j1" {
		t.Fatalf("j1 taken over: %s, password %q", got.State, got.Password)
	}
	must(t, "b Claim", b.Claim(ctx, "j1", after))
	must(t, "b MarkReleased", b.MarkReleased(ctx, "j1", after))
	// a comes back to its old claim: refused, the password went once.
	if err := a.MarkReleased(ctx, "j1", after); !errors.Is(err, ErrAlreadyReleased) {
		t.Errorf("a's late MarkReleased = %v, want ErrAlreadyReleased", err)
	}
	if err := a.Claim(ctx, "j2", after); !errors.Is(err, ErrSending) {
		t.Errorf("a's Claim of what b holds now = %v", err)
	}
}

// A node that starts recovers the claims of a node that stopped once
// their lease ran out, and leaves those of nodes still at work.
func TestPostgresRecoverLeavesLiveClaims(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	live, dead, starting := node(t, url, "live"), node(t, url, "dead"), node(t, url, "starting")
	now := time.Now()
	for _, n := range []struct {
		s  *Postgres
		id string
		at time.Time
	}{{live, "live", now}, {dead, "dead", now.Add(-time.Hour)}} {
		j := job(n.id)
		j.DueAt = n.at.Add(-time.Minute)
		create(t, n.s, j)
		must(t, "Schedule", n.s.Schedule(ctx, n.id))
		must(t, "Claim", n.s.Claim(ctx, n.id, n.at))
	}
	got, err := starting.Recover(ctx)
	must(t, "Recover", err)
	if got != 1 || get(t, starting, "dead").State != Scheduled || get(t, starting, "live").State != Sending {
		t.Errorf("Recover = %d; dead %s, live %s; want 1, scheduled, sending", got,
			get(t, starting, "dead").State, get(t, starting, "live").State)
	}

	// The live node restarts (kill -9, then a start on the same data_dir,
	// so the same name): its claim is its own to take up at once, and so
	// is what it had leased.
	j := job("leased")
	j.DueAt = now.Add(-time.Minute)
	bring(t, live, j, Scheduled)
	if jobs, err := live.Work(ctx, now, 10); err != nil || !slices.Contains(ids(jobs), "leased") {
		t.Fatalf("live's Work = %v, %v", ids(jobs), err)
	}
	restarted := node(t, pgURLOf(t, live), "live")
	if got, err := restarted.Recover(ctx); err != nil || got != 1 || get(t, restarted, "live").State != Scheduled {
		t.Errorf("Recover after a restart = %d, %v; job %s; want 1, scheduled", got, err, get(t, restarted, "live").State)
	}
	if err := restarted.Claim(ctx, "leased", now); err != nil {
		t.Errorf("a job the node leased before its restart: Claim = %v", err)
	}
	if jobs, err := restarted.Work(ctx, now, 10); err != nil || !slices.Contains(ids(jobs), "live") {
		t.Fatalf("the restarted node's Work = %v, %v", ids(jobs), err)
	}
	if err := starting.Claim(ctx, "live", now); !errors.Is(err, ErrSending) {
		t.Errorf("another node's Claim of what the restarted node took up = %v", err)
	}
}

// pgURLOf is the URL s was opened with.
func pgURLOf(t *testing.T, s *Postgres) string {
	t.Helper()
	return s.pool.Config().ConnString()
}

// Held messages are leased and taken over the same way.
func TestPostgresHeldTakeOver(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	m, h := heldMsg("h1")
	h.HoldUntil = t0
	holdIt(t, a, m, h)
	must(t, "notice", a.MarkHeldNoticeSent(ctx, "h1"))
	must(t, "requests", a.MarkHeldRequestsSent(ctx, "h1"))
	list, err := a.HeldWork(ctx, t0, 10)
	must(t, "HeldWork", err)
	if len(list) != 1 {
		t.Fatalf("a's HeldWork = %q", heldIDs(list))
	}
	must(t, "ClaimHeld", a.ClaimHeld(ctx, "h1", t0))
	if err := b.MarkHeldSent(ctx, "h1", t0); !errors.Is(err, ErrSending) {
		t.Errorf("b's MarkHeldSent of a's claim = %v", err)
	}
	if list, _ := b.HeldWork(ctx, t0.Add(10*time.Second), 10); len(list) != 0 {
		t.Errorf("b's HeldWork while a sends = %q", heldIDs(list))
	}
	list, err = b.HeldWork(ctx, t0.Add(31*time.Second), 10)
	must(t, "b HeldWork", err)
	if len(list) != 1 || list[0].State != HeldWaiting {
		t.Fatalf("b's HeldWork after a's lease = %v", list)
	}
	must(t, "b ClaimHeld", b.ClaimHeld(ctx, "h1", t0.Add(31*time.Second)))
	must(t, "b MarkHeldSent", b.MarkHeldSent(ctx, "h1", t0.Add(32*time.Second)))
	if err := a.MarkHeldSent(ctx, "h1", t0.Add(33*time.Second)); !errors.Is(err, ErrAlreadySent) {
		t.Errorf("a's late MarkHeldSent = %v", err)
	}
}

// Four nodes work 120 due jobs at once, each pass as the scheduler
// makes it (Work, Claim, MarkReleased, the confirmation): each password
// goes once.
func TestPostgresNodesReleaseEachOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	nodes := []*Postgres{node(t, url, "a"), node(t, url, "b"), node(t, url, "c"), node(t, url, "d")}
	const n = 120
	for i := range n {
		id := fmt.Sprintf("job-%03d", i)
		bring(t, nodes[0], job(id), Scheduled)
		must(t, "MarkNoticeSent", nodes[0].MarkNoticeSent(ctx, id))
	}
	var mu sync.Mutex
	released := map[string][]string{}
	var wg sync.WaitGroup
	for _, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass < 20; pass++ {
				jobs, err := s.Work(ctx, t0, 7)
				if err != nil {
					t.Errorf("%s Work: %v", s.node, err)
					return
				}
				for _, j := range jobs {
					if j.State != Scheduled {
						continue
					}
					if err := s.Claim(ctx, j.ID, t0); err != nil {
						continue
					}
					must(t, "MarkReleased", s.MarkReleased(ctx, j.ID, t0))
					must(t, "MarkConfirmSent", s.MarkConfirmSent(ctx, j.ID))
					mu.Lock()
					released[j.ID] = append(released[j.ID], s.node)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(released) != n {
		t.Errorf("%d jobs released, want %d", len(released), n)
	}
	by := map[string]int{}
	for id, who := range released {
		if len(who) != 1 {
			t.Errorf("%s released by %v", id, who)
		}
		by[who[0]]++
	}
	t.Logf("released per node: %v", by)
}

// A cancel on one node wakes the others' schedulers.
func TestPostgresNotifiesOtherNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	woken := map[string]chan struct{}{TopicJobs: make(chan struct{}, 10), TopicHeld: make(chan struct{}, 10), TopicLinks: make(chan struct{}, 10)}
	wake := map[string]func(){}
	for topic, ch := range woken {
		wake[topic] = func() { ch <- struct{}{} }
	}
	go a.Listen(ctx, wake, func(err error) { t.Errorf("listening reported %v on a healthy database", err) })
	// The listener wakes everyone once when it is connected.
	for topic, ch := range woken {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("no first wake on %s", topic)
		}
	}
	bring(t, b, job("j"), Scheduled)
	must(t, "Cancel", b.Cancel(ctx, "j", t0))
	select {
	case <-woken[TopicJobs]:
	case <-time.After(30 * time.Second):
		t.Fatal("a cancel on b did not wake a's release scheduler")
	}
	m, h := heldMsg("h")
	holdIt(t, b, m, h)
	must(t, "CancelHeld", b.CancelHeld(ctx, "h", "taro@example.co.jp", "page", t0))
	select {
	case <-woken[TopicHeld]:
	case <-time.After(30 * time.Second):
		t.Fatal("a held message canceled on b did not wake a's hold scheduler")
	}
}

// The bytes of held messages and links: written whole or not at all,
// read back as written across chunks, removed, and a reader that opened
// a file before it was removed reads it to its end.
func TestPostgresBlobs(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	data := make([]byte, 3*blobChunk+12345)
	rand.Read(data)
	must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l1", 0, bytes.NewReader(data)))
	must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l1", 1, strings.NewReader("")))
	read := func(s *Postgres, id string, n int) ([]byte, error) {
		r, err := s.Blobs(BlobLinks).Open(ctx, id, n)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	if got, err := read(b, "l1", 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("another node reads %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	if got, err := read(b, "l1", 1); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %q, %v", got, err)
	}
	if _, err := read(b, "l1", 2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file never written: %v, want fs.ErrNotExist", err)
	}
	// The kinds are apart.
	if has, _ := b.Blobs(BlobHeld).Has(ctx, "l1", 0); has {
		t.Error("a link's file shows as a held message")
	}

	// An aborted write leaves nothing, also not over an earlier file.
	w, err := a.Blobs(BlobLinks).Create(ctx, "l1", 0)
	must(t, "Create", err)
	w.Write([]byte("half"))
	w.Abort()
	if got, err := read(b, "l1", 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after an aborted rewrite: %d bytes, %v", len(got), err)
	}

	list, err := b.Blobs(BlobLinks).List(ctx)
	must(t, "List", err)
	if _, ok := list["l1"]; len(list) != 1 || !ok {
		t.Errorf("List = %v", list)
	}

	// A reader open when its file is removed does not read on (the
	// links scheduler keeps the files of an ended link for a grace).
	r, err := b.Blobs(BlobLinks).Open(ctx, "l1", 0)
	must(t, "Open", err)
	first := make([]byte, 10)
	io.ReadFull(r, first)
	must(t, "Remove", a.Blobs(BlobLinks).Remove(ctx, "l1"))
	rest, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the open reader after Remove: %d bytes, %v; want fs.ErrNotExist", len(first)+len(rest), err)
	}
	if _, err := read(b, "l1", 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	if list, _ := b.Blobs(BlobLinks).List(ctx); len(list) != 0 {
		t.Errorf("List after Remove = %v", list)
	}
}

// The database goes away: calls fail, they neither hang nor pretend;
// when it is back the same store works again.
func TestPostgresDatabaseDownAndBack(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	s := openPG(t, c.URL("postgres"), testKey(1))
	bring(t, s, job("j"), Scheduled)
	c.Stop()
	m := message("m", "k", "a@x.example")
	if err := s.SaveMessage(ctx, m, job("new")); err == nil {
		t.Fatal("SaveMessage with the database down succeeded")
	}
	if err := s.Delivered(ctx, m, m.Rcpts, "j", t0, t0); err == nil {
		t.Fatal("Delivered with the database down succeeded")
	}
	if _, err := s.Prior(ctx, []byte("k"), m.Rcpts); err == nil {
		t.Fatal("Prior with the database down succeeded")
	}
	must(t, "Restart", c.Restart())
	// Connections the stop cut may fail a call each (a 451 in the
	// gateway) before the pool has made new ones.
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = s.SaveMessage(ctx, m, job("new")); err == nil {
			break
		}
	}
	must(t, "SaveMessage once back", err)
	if got := get(t, s, "new"); got.State != Pending {
		t.Errorf("after the database came back: %s", got.State)
	}
}

// The listen connection is cut (a proxy, a failover, pg_terminate_backend):
// a change on another node still wakes this one.
func TestPostgresListenSurvivesACutConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	woken := make(chan struct{}, 100)
	reports := make(chan error, 10)
	go a.Listen(ctx, map[string]func(){TopicJobs: func() { woken <- struct{}{} }}, func(err error) { reports <- err })
	select {
	case <-woken:
	case <-time.After(30 * time.Second):
		t.Fatal("no first wake")
	}
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d listeners: %v", n, err)
	}
	// The reconnect wakes once; then a cancel on b must wake again.
	select {
	case <-woken:
	case <-time.After(30 * time.Second):
		t.Fatal("no wake after the reconnect")
	}
	// The admin's log hears of both: the cut, and hearing again.
	for i, want := range []string{"the cut", "the reconnect"} {
		select {
		case err := <-reports:
			if (i == 0) != (err != nil) {
				t.Errorf("report %d = %v; want %s", i, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not reported", want)
		}
	}
	bring(t, b, job("j"), Scheduled)
	must(t, "Cancel", b.Cancel(ctx, "j", t0))
	select {
	case <-woken:
	case <-time.After(30 * time.Second):
		t.Fatal("a cancel on b after the listen connection was cut did not wake a")
	}
}

// REVIEW14-1 for held messages: hold.Scheduler.RunOnce reads the clock
// once and claims each message of its batch with that time. After a
// first message that took 40 s to deliver (renewed meanwhile), the
// second is claimed with a lease that ended 10 s ago; renewal skips it,
// and node b takes it and sends it too.

// A claim late in a long pass (its now read at the pass's start) keeps
// the lease the renewal kept alive: another node does not take over a
// held message this node is sending.
func TestPostgresLateClaimKeepsItsLease(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	a, b := node(t, url, "a"), node(t, url, "b")
	for _, id := range []string{"h1", "h2"} {
		m, h := heldMsg(id)
		h.HoldUntil = t0
		holdIt(t, a, m, h)
		must(t, "notice", a.MarkHeldNoticeSent(ctx, id))
		must(t, "requests", a.MarkHeldRequestsSent(ctx, id))
	}
	if list, err := a.HeldWork(ctx, t0, 100); err != nil || len(list) != 2 {
		t.Fatalf("a's HeldWork = %v, %v", heldIDs(list), err)
	}
	must(t, "a ClaimHeld h1", a.ClaimHeld(ctx, "h1", t0))
	for s := 10; s <= 40; s += 10 { // StartRenewing, on the wall clock, while h1 goes
		must(t, "renew", a.RenewLeases(ctx, t0.Add(time.Duration(s)*time.Second)))
	}
	must(t, "a MarkHeldSent h1", a.MarkHeldSent(ctx, "h1", t0.Add(40*time.Second)))
	must(t, "a ClaimHeld h2 (the pass's now)", a.ClaimHeld(ctx, "h2", t0))
	must(t, "renew", a.RenewLeases(ctx, t0.Add(41*time.Second)))
	list, err := b.HeldWork(ctx, t0.Add(41*time.Second), 100)
	must(t, "b HeldWork", err)
	if len(list) != 0 {
		t.Errorf("b took over %v, which a is sending right now", heldIDs(list))
	}
	if err := b.ClaimHeld(ctx, "h2", t0.Add(41*time.Second)); err == nil {
		t.Errorf("b claimed h2 too: two nodes would deliver it")
	}
}

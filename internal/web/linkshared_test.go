package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	aeszip "github.com/alexmullins/zip"

	dl "github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
)

// The recipients' pages of a node on the shared store (several nodes):
// the files of a download are read from PostgreSQL a chunk per
// statement, so a download in flight holds no connection of the pool.

type sharedRig struct {
	st  *store.Postgres
	srv *Server
	ts  *httptest.Server
	fs  *dl.Files
}

// startShared serves the pages on a store whose pool has poolMax
// connections, over real TCP with small socket buffers on both sides,
// so a download whose body is not read stays in flight.
func startShared(t *testing.T, poolMax int) *sharedRig {
	t.Helper()
	url := pgtest.Shared(t).NewSchema(t) + fmt.Sprintf("&pool_max_conns=%d", poolMax)
	st, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	csrfKey := make([]byte, 32)
	rand.Read(csrfKey)
	r := &sharedRig{st: st, fs: &dl.Files{Blobs: dl.Shared{B: st.Blobs(store.BlobLinks)}}}
	r.srv = New(st, nil, csrfKey, slog.New(slog.NewTextHandler(tlog{t}, nil)))
	r.srv.Links = &LinkPages{Files: r.fs, Wake: func() {}}
	r.ts = httptest.NewUnstartedServer(r.srv.Handler())
	r.ts.Listener = smallSendBuffers{r.ts.Listener}
	r.ts.Start()
	t.Cleanup(r.ts.Close)
	return r
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// link stores an active link with files (each named f<i>.bin) and
// returns its page token and password.
func (r *sharedRig) link(t *testing.T, id string, files [][]byte) (string, string) {
	t.Helper()
	return r.linkMax(t, id, files, 0)
}

// linkMax is link with at most max downloads (0: no limit).
func (r *sharedRig) linkMax(t *testing.T, id string, files [][]byte, max int) (string, string) {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	key, err := dl.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com"}, HeaderFrom: "taro@example.jp",
		Subject: "資料", ZipName: "files.zip", Password: "pw-" + id, CreatedAt: now, DueAt: now.Add(time.Hour),
		Message: "msg-" + id, Key: []byte("key-" + id)}
	for i, data := range files {
		size, sum, err := r.fs.Put(id, i, key, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		j.Files = append(j.Files, store.File{Name: fmt.Sprintf("f%d.bin", i), Size: size, SHA256: fmt.Sprintf("%x", sum)})
	}
	token, hash, err := release.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	j.Link = &store.Link{ID: id, Message: j.Message, Key: j.Key, Auth: policy.AuthPassword, Sender: j.Sender, Rcpts: j.Rcpts,
		Subject: j.Subject, ZipName: j.ZipName, Files: j.Files, FileKey: key, Password: j.Password, Token: token,
		TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), MaxDownloads: max}
	if err := r.st.SaveMessage(ctx, r.message(j), j); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Delivered(ctx, r.message(j), j.Rcpts, id, j.DueAt, now); err != nil {
		t.Fatal(err)
	}
	return token, j.Password
}

func (r *sharedRig) message(j *store.Job) *store.Message {
	return &store.Message{ID: j.Message, Key: j.Key, CreatedAt: j.CreatedAt, UpdatedAt: j.CreatedAt, Sender: j.Sender, Rcpts: j.Rcpts}
}

// reachable: what the rest of the node does meanwhile still gets through
// (a check, a message recorded as mail intake does, /healthz).
func (r *sharedRig) reachable(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.st.Ping(ctx); err != nil {
		t.Errorf("Ping while downloads stream: %v", err)
	}
	now := time.Now()
	j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"jiro@example.org"}, ZipName: "a.zip",
		Files: []store.File{{Name: "a.pdf", Size: 1, SHA256: "ab"}}, Password: "pw", CreatedAt: now, DueAt: now.Add(time.Hour),
		Message: "msg-" + id, Key: []byte("key-" + id)}
	if err := r.st.SaveMessage(ctx, r.message(j), j); err != nil {
		t.Errorf("SaveMessage while downloads stream: %v", err)
	}
	res, err := http.Get(r.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/healthz while downloads stream: %d", res.StatusCode)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browser opens the link with its password, as a recipient does, and
// returns a client with the page's cookie that reads slowly: its
// receive buffer is small, so the server waits on what it does not read.
func (r *sharedRig) browser(t *testing.T, token, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
		return errors.Join(err, serr)
	}}
	c := &http.Client{Jar: jar, Transport: &http.Transport{DialContext: dialer.DialContext, MaxConnsPerHost: 0},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	res, err := c.Get(r.ts.URL + "/d/" + token)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfField.FindSubmatch(page)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("link page: %d\n%s", res.StatusCode, page)
	}
	res, err = c.PostForm(r.ts.URL+"/d/"+token+"/open", url.Values{"csrf": {string(m[1])}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("open with the password: %d", res.StatusCode)
	}
	return c
}

func (r *sharedRig) downloads(t *testing.T, id string) int {
	t.Helper()
	l, err := r.st.GetLink(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l.Downloads
}

// idle: no connection of the pool is in use (a download blocked on its
// client holds none).
func (r *sharedRig) idle(t *testing.T, what string) {
	t.Helper()
	r.eventually(t, what+": no connection of the pool in use", func() bool { return r.st.PoolStat().AcquiredConns() == 0 })
}

func randomFiles(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size+i)
		rand.Read(out[i])
	}
	return out
}

// A link with forty files downloads as one zip on a pool of two
// connections: while it streams to a slow client it holds none of them,
// and the node goes on reaching its store; the zip opens with the
// link's password.
func TestSharedLinkZipOfFortyFilesOnASmallPool(t *testing.T) {
	r := startShared(t, 2)
	files := randomFiles(40, 64<<10)
	token, pw := r.link(t, "lnk40", files)
	c := r.browser(t, token, pw)

	res, err := c.Get(r.ts.URL + "/d/" + token + "/all")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("zip of 40 files: %d\n%s", res.StatusCode, body)
	}
	// In flight: the body (2.5 MiB) waits on this side's small buffers.
	r.idle(t, "a zip download of 40 files in flight")
	r.reachable(t, "during")
	zipData, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := aeszip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(files) {
		t.Fatalf("%d files in the zip, want %d", len(zr.File), len(files))
	}
	for i, f := range zr.File {
		f.SetPassword(pw)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if f.Name != fmt.Sprintf("f%d.bin", i) || err != nil || !bytes.Equal(got, files[i]) {
			t.Errorf("entry %d: %s, %d bytes, %v", i, f.Name, len(got), err)
		}
	}
	r.idle(t, "after the download")
	if n := r.downloads(t, "lnk40"); n != 1 {
		t.Errorf("%d downloads counted, want 1", n)
	}
}

// More downloads in flight at once than the pool has connections: each
// is served (no download waits for another to end), all are counted,
// the store stays reachable, and at the end no connection is held.
func TestSharedLinkDownloadsBeyondThePool(t *testing.T) {
	r := startShared(t, 2)
	file := randomFiles(1, 1<<20)[0]
	token, pw := r.link(t, "lnkmany", [][]byte{file})
	c := r.browser(t, token, pw)
	const n = 8
	var inFlight []*http.Response
	for i := range n {
		res, err := c.Get(r.ts.URL + "/d/" + token + "/f/0")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("download %d: %d", i, res.StatusCode)
		}
		inFlight = append(inFlight, res)
	}
	r.idle(t, fmt.Sprintf("%d downloads in flight", n))
	r.reachable(t, "many")
	if got := r.downloads(t, "lnkmany"); got != n {
		t.Errorf("%d downloads counted, want %d", got, n)
	}
	for i, res := range inFlight {
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, file) {
			t.Errorf("download %d: %d bytes, %v", i, len(got), err)
		}
	}
	r.idle(t, "after the downloads")
}

// Review 14b, F1: on a pool of one connection a download is served: it
// does not keep the connection its own count (LinkDownload) needs.
func TestPoolOfOneServesADownload(t *testing.T) {
	r := startShared(t, 1)
	file := randomFiles(1, 1<<20)[0]
	token, pw := r.link(t, "lnkone", [][]byte{file})
	c := r.browser(t, token, pw)
	// A bound for a regression only: a browser waits minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.ts.URL+"/d/"+token+"/f/0", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("a download on a pool of 1: %v (connections acquired %d)", err, r.st.PoolStat().AcquiredConns())
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a download on a pool of 1: %d", res.StatusCode)
	}
	r.reachable(t, "one")
	got, err := io.ReadAll(res.Body)
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("a download on a pool of 1: %d bytes, %v", len(got), err)
	}
	if n := r.downloads(t, "lnkone"); n != 1 {
		t.Errorf("%d downloads counted, want 1", n)
	}
}

// A download reads to its end although the link ended while it
// streamed (the last allowed download, begun after it and finished
// first, used the link up) and the links scheduler made a pass
// meanwhile: the files of an ended link stay for links.FilesGrace, and
// the scheduler wakes at the end of it, not before; a pass then deletes
// them.
func TestDownloadInFlightReadsToItsEndWhenTheLinkEnds(t *testing.T) {
	r := startShared(t, 2)
	files := randomFiles(3, 1<<20)
	token, pw := r.linkMax(t, "lnklast", files, 2)
	c := r.browser(t, token, pw)
	hop := mailtest.StartNextHop(t)
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sched := dl.NewScheduler(r.st, r.fs, &relay.Client{Addr: hop.Addr, HeloName: "zipgate.test", Timeout: 10 * time.Second},
		tmpl, slog.New(slog.NewTextHandler(tlog{t}, nil)))

	var inFlight []*http.Response
	for i := range 2 {
		res, err := c.Get(r.ts.URL + "/d/" + token + "/all")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("download %d: %d", i, res.StatusCode)
		}
		inFlight = append(inFlight, res)
	}
	// The last allowed one ends first; that uses the link up.
	if _, err := io.ReadAll(inFlight[1].Body); err != nil {
		t.Fatal(err)
	}
	var l *store.Link
	r.eventually(t, "the link used up", func() bool {
		l, err = r.st.GetLink(context.Background(), "lnklast")
		return err == nil && l.State == store.LinkUsedUp
	})
	next, err := sched.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := l.EndedAt.Add(dl.FilesGrace); !next.Equal(want) {
		t.Errorf("the scheduler's next pass after the end: %v, want the end and the grace, %v", next, want)
	}
	if list, _ := r.fs.Blobs.List(); len(list) != 1 {
		t.Errorf("files kept after a pass right after the end: %v", list)
	}

	// The first download, still in flight, reads to its end.
	zipData, err := io.ReadAll(inFlight[0].Body)
	if err != nil {
		t.Fatalf("a download in flight when the link ended: %v after %d bytes", err, len(zipData))
	}
	zr, err := aeszip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil || len(zr.File) != len(files) {
		t.Fatalf("the zip of a download in flight when the link ended: %v", err)
	}
	for i, f := range zr.File {
		f.SetPassword(pw)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, files[i]) {
			t.Errorf("entry %d of the download in flight: %d bytes, %v", i, len(got), err)
		}
	}

	// A grace after the end, a pass deletes them.
	sched.Now = func() time.Time { return l.EndedAt.Add(dl.FilesGrace) }
	if _, err := sched.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if list, _ := r.fs.Blobs.List(); len(list) != 0 {
		t.Errorf("files left a grace after the end: %v", list)
	}
	if l, _ := r.st.GetLink(context.Background(), "lnklast"); !l.FilesGone {
		t.Errorf("the link's files are not marked gone")
	}
}

// Review 14b, F4: a file that does not open (here its stored header is
// not zipgate's; a wrong key is the same) is the error page, for the
// file and for the zip, and no download is counted: the link's one
// allowed download is not used up by it. An empty file downloads.
func TestDamagedFileIsNotCounted(t *testing.T) {
	r := startShared(t, 10)
	token, pw := r.linkMax(t, "lnkbad", [][]byte{randomFiles(1, 1000)[0], {}}, 1)
	if err := r.st.Blobs(store.BlobLinks).Put(context.Background(), "lnkbad", 0, strings.NewReader("not a file of zipgate")); err != nil {
		t.Fatal(err)
	}
	c := r.browser(t, token, pw)
	for _, path := range []string{"/f/0", "/all"} {
		res, err := c.Get(r.ts.URL + "/d/" + token + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "Something went wrong") {
			t.Errorf("%s of a damaged file: %d with %d bytes (%s); want the error page",
				path, res.StatusCode, len(body), res.Header.Get("Content-Type"))
		}
		if n := r.downloads(t, "lnkbad"); n != 0 {
			t.Fatalf("%s of a damaged file: %d download(s) counted, want none", path, n)
		}
	}
	res, err := c.Get(r.ts.URL + "/d/" + token + "/f/1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || len(body) != 0 || r.downloads(t, "lnkbad") != 1 {
		t.Errorf("an empty file: %d with %d bytes, %d download(s) counted", res.StatusCode, len(body), r.downloads(t, "lnkbad"))
	}
}

func (r *sharedRig) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("still not so after 20 s: %s", what)
		}
	}
}

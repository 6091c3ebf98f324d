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
	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
)

// The recipients' pages of a node on the shared store (several nodes):
// the files of a download are read from PostgreSQL in one snapshot, one
// connection per download in flight, and the node keeps only so many.

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
		TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
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

// idle: every download is over: no snapshot open or waited for, and no
// connection of the pool in use.
func (r *sharedRig) idle(t *testing.T) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		s, conns := r.st.Snapshots(), r.st.PoolStat().AcquiredConns()
		if s.InUse == 0 && s.Waiting == 0 && conns == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("20 s after the downloads: snapshots %+v, %d connections acquired", s, conns)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func randomFiles(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size+i)
		rand.Read(out[i])
	}
	return out
}

// A link with forty files downloads as one zip on a pool of ten
// connections: the download holds one of them while it streams, and
// the node goes on reaching its store meanwhile.
func TestSharedLinkZipOfFortyFilesOnASmallPool(t *testing.T) {
	r := startShared(t, 10)
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
	if s, conns := r.st.Snapshots(), r.st.PoolStat().AcquiredConns(); s.InUse != 1 || conns > 2 {
		t.Errorf("one zip download of 40 files: snapshots %+v, %d connections acquired", s, conns)
	}
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
	r.idle(t)
	if n := r.downloads(t, "lnk40"); n != 1 {
		t.Errorf("%d downloads counted, want 1", n)
	}
}

// More downloads at once than the node has snapshot slots: the ones
// over are answered 503 with Retry-After and a sentence saying to come
// back, and not counted; the store stays reachable; a client that goes
// away while it waits for a slot frees its place; once a download ends
// a retry works; and at the end no connection is held.
func TestSharedLinkDownloadsBeyondTheCap(t *testing.T) {
	r := startShared(t, 10)
	slots := r.st.Snapshots().Limit
	if slots != 5 {
		t.Fatalf("a pool of 10 gives %d download slots, want 5", slots)
	}
	r.st.SetSnapshotWait(200 * time.Millisecond)
	file := randomFiles(1, 1<<20)[0]
	token, pw := r.link(t, "lnkbusy", [][]byte{file})
	c := r.browser(t, token, pw)
	get := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", r.ts.URL+"/d/"+token+"/f/0", nil)
		return c.Do(req)
	}

	var inFlight []*http.Response
	for i := range slots {
		res, err := get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("download %d: %d", i, res.StatusCode)
		}
		inFlight = append(inFlight, res)
	}
	if s := r.st.Snapshots(); s.InUse != slots {
		t.Fatalf("%d downloads in flight: snapshots %+v", slots, s)
	}

	// Two more at once: asked to come back.
	busy := make(chan string, 2)
	for range 2 {
		go func() {
			res, err := get(context.Background())
			if err != nil {
				busy <- err.Error()
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			busy <- fmt.Sprintf("%d %s %s", res.StatusCode, res.Header.Get("Retry-After"), body)
		}()
	}
	for range 2 {
		got := <-busy
		if !strings.HasPrefix(got, "503 60 ") || !strings.Contains(got, "The server is busy") ||
			!strings.Contains(got, "混み合って") || !strings.Contains(got, "try again in a minute") {
			t.Errorf("a download over the cap: %.300s", got)
		}
	}
	if n := r.downloads(t, "lnkbusy"); n != slots {
		t.Errorf("%d downloads counted, want the %d that began", n, slots)
	}
	r.reachable(t, "busy")

	// A client that gives up while it waits.
	r.st.SetSnapshotWait(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		res, err := get(ctx)
		if err == nil {
			res.Body.Close()
		}
		left <- err
	}()
	r.eventually(t, "the sixth download waits for a slot", func() bool { return r.st.Snapshots().Waiting == 1 })
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("the client that left: %v", err)
	}
	r.eventually(t, "the place of the client that left is free", func() bool { return r.st.Snapshots().Waiting == 0 })
	if s := r.st.Snapshots(); s.InUse != slots {
		t.Errorf("after the client left: snapshots %+v", s)
	}

	// The first download ends; a retry gets its slot.
	got, err := io.ReadAll(inFlight[0].Body)
	inFlight[0].Body.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("the first download: %d bytes, %v", len(got), err)
	}
	res, err := get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || err != nil || !bytes.Equal(got, file) {
		t.Fatalf("the retry: %d, %d bytes, %v", res.StatusCode, len(got), err)
	}
	for _, res := range inFlight[1:] {
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, file) {
			t.Errorf("a download in flight: %d bytes, %v", len(got), err)
		}
	}
	r.idle(t)
	if n := r.downloads(t, "lnkbusy"); n != slots+1 {
		t.Errorf("%d downloads counted, want %d", n, slots+1)
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

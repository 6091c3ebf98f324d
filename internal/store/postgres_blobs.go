package store

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Blob kinds: what the bytes are.
const (
	BlobHeld  = "held"  // a held message (hold.Dir)
	BlobLinks = "links" // the encrypted files of a download link (links.Blobs)
)

// blobChunk is the size of a row of blob_chunks: a writer and a reader
// hold one chunk in memory, whatever the size of the file.
const blobChunk = 256 << 10

// Blobs keeps files of one kind in the database, in chunks, so every
// node reads what any node wrote: a held message can leave from any
// node, a download link's files download from any node.
type Blobs struct {
	p    *Postgres
	kind string
}

// Blobs returns the files of kind.
func (p *Postgres) Blobs(kind string) *Blobs { return &Blobs{p: p, kind: kind} }

// BlobWriter is a file being written, in a transaction of its own: it
// exists, whole, once Commit returns, and never in part.
type BlobWriter struct {
	b      *Blobs
	ctx    context.Context
	tx     pgx.Tx
	id     string
	n, seq int
	size   int64
	buf    []byte
	err    error
}

// Create starts file n of id, replacing one written before.
func (b *Blobs) Create(ctx context.Context, id string, n int) (*BlobWriter, error) {
	tx, err := b.p.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	w := &BlobWriter{b: b, ctx: ctx, tx: tx, id: id, n: n, buf: make([]byte, 0, blobChunk)}
	for _, q := range []string{`DELETE FROM blob_chunks WHERE kind = $1 AND id = $2 AND n = $3`,
		`DELETE FROM blob_files WHERE kind = $1 AND id = $2 AND n = $3`} {
		if _, err := tx.Exec(ctx, q, b.kind, id, n); err != nil {
			tx.Rollback(ctx)
			return nil, err
		}
	}
	return w, nil
}

func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		k := min(len(p), blobChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(w.buf) == blobChunk {
			if w.err = w.flush(); w.err != nil {
				return written, w.err
			}
		}
	}
	return written, nil
}

func (w *BlobWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.tx.Exec(w.ctx, `INSERT INTO blob_chunks (kind, id, n, seq, data) VALUES ($1, $2, $3, $4, $5)`,
		w.b.kind, w.id, w.n, w.seq, w.buf); err != nil {
		return err
	}
	w.seq++
	w.size += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Commit writes what is left and makes the file visible, durably.
func (w *BlobWriter) Commit() error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	if err := w.flush(); err != nil {
		w.Abort()
		return err
	}
	if _, err := w.tx.Exec(w.ctx, `INSERT INTO blob_files (kind, id, n, size, chunks, written_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		w.b.kind, w.id, w.n, w.size, w.seq, ms(time.Now())); err != nil {
		w.Abort()
		return err
	}
	return w.tx.Commit(w.ctx)
}

// Abort drops the file.
func (w *BlobWriter) Abort() { w.tx.Rollback(context.WithoutCancel(w.ctx)) }

// Put writes r as file n of id.
func (b *Blobs) Put(ctx context.Context, id string, n int, r io.Reader) error {
	w, err := b.Create(ctx, id, n)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// Open reads file n of id (fs.ErrNotExist when there is none), in a
// snapshot of its own: OpenAll with one file.
func (b *Blobs) Open(ctx context.Context, id string, n int) (io.ReadCloser, error) {
	rs, err := b.OpenAll(ctx, id, []int{n})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// OpenAll opens files ns of id for one reader (a download, the send of
// a held message), all in one read-only REPEATABLE READ transaction: one
// connection and one of this node's snapshot slots, however many files.
// A file removed meanwhile (the last download of a link ends it, and its
// files go) still reads to its end, as an open file on disk does. The
// readers share the transaction: read them one after another (a zip
// writer reads its entries in turn), not at once; each read waits for
// the one before it. Close every one of them: the transaction ends, and
// its connection and slot come back, when the last is closed.
//
// Waiting for a slot ends with ctx, or after the snapshot wait
// (SetSnapshotWait) with ErrBusy; any file missing is fs.ErrNotExist.
func (b *Blobs) OpenAll(ctx context.Context, id string, ns []int) ([]io.ReadCloser, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	sl := b.p.snapshots()
	if err := sl.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := b.p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		sl.release()
		return nil, err
	}
	snap := &snapshot{ctx: ctx, tx: tx, open: len(ns), slots: sl}
	fail := func(err error) ([]io.ReadCloser, error) {
		tx.Rollback(context.WithoutCancel(ctx))
		sl.release()
		return nil, err
	}
	type meta struct {
		size   int64
		chunks int
	}
	found := map[int]meta{}
	rows, err := tx.Query(ctx, `SELECT n, size, chunks FROM blob_files WHERE kind = $1 AND id = $2 AND n = ANY($3::integer[])`,
		b.kind, id, ns)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var n int
		var m meta
		if err := rows.Scan(&n, &m.size, &m.chunks); err != nil {
			rows.Close()
			return fail(err)
		}
		found[n] = m
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	out := make([]io.ReadCloser, len(ns))
	for i, n := range ns {
		m, ok := found[n]
		if !ok {
			return fail(fmt.Errorf("%s %s/%d: %w", b.kind, id, n, fs.ErrNotExist))
		}
		out[i] = &blobReader{b: b, snap: snap, id: id, n: n, size: m.size, chunks: m.chunks}
	}
	return out, nil
}

// snapshot is the transaction the readers of one OpenAll share.
type snapshot struct {
	ctx   context.Context
	slots *snapshotSlots

	mu   sync.Mutex // one query at a time on the one connection
	tx   pgx.Tx
	open int // readers not closed yet
	err  error
}

// done is a reader's Close: the last one ends the transaction.
func (s *snapshot) done() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if s.open == 0 {
		s.err = s.tx.Rollback(context.WithoutCancel(s.ctx))
		s.slots.release()
	}
	return s.err
}

type blobReader struct {
	b          *Blobs
	snap       *snapshot
	id         string
	n          int
	size       int64
	chunks     int
	seq        int
	buf        []byte
	read       int64
	closed     bool
	closeError error
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fs.ErrClosed
	}
	for len(r.buf) == 0 {
		if r.seq == r.chunks {
			r.buf = nil // the chunk's memory goes before the reader does
			if r.read != r.size {
				return 0, fmt.Errorf("%s %s/%d: %d bytes of %d", r.b.kind, r.id, r.n, r.read, r.size)
			}
			return 0, io.EOF
		}
		if err := r.chunk(); err != nil {
			return 0, fmt.Errorf("%s %s/%d chunk %d: %w", r.b.kind, r.id, r.n, r.seq, err)
		}
		r.seq++
	}
	k := copy(p, r.buf)
	r.buf = r.buf[k:]
	r.read += int64(k)
	return k, nil
}

func (r *blobReader) chunk() error {
	s := r.snap
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tx.QueryRow(s.ctx, `SELECT data FROM blob_chunks WHERE kind = $1 AND id = $2 AND n = $3 AND seq = $4`,
		r.b.kind, r.id, r.n, r.seq).Scan(&r.buf)
}

func (r *blobReader) Close() error {
	if !r.closed {
		r.closed, r.buf = true, nil
		r.closeError = r.snap.done()
	}
	return r.closeError
}

// Remove deletes every file of id; none is no error.
func (b *Blobs) Remove(ctx context.Context, id string) error {
	return b.p.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM blob_chunks WHERE kind = $1 AND id = $2`, b.kind, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM blob_files WHERE kind = $1 AND id = $2`, b.kind, id)
		return err
	})
}

// Has reports whether file n of id exists.
func (b *Blobs) Has(ctx context.Context, id string, n int) (bool, error) {
	var found bool
	err := b.p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM blob_files WHERE kind = $1 AND id = $2 AND n = $3)`,
		b.kind, id, n).Scan(&found)
	return found, err
}

// List names the ids that have files, with when each was last written.
func (b *Blobs) List(ctx context.Context) (map[string]time.Time, error) {
	rows, err := b.p.pool.Query(ctx, `SELECT id, MAX(written_at) FROM blob_files WHERE kind = $1 GROUP BY id`, b.kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = fromMS(at)
	}
	return out, rows.Err()
}

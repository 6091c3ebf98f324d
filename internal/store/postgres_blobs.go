package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// Open reads file n of id (fs.ErrNotExist when there is none): OpenAll
// with one file.
func (b *Blobs) Open(ctx context.Context, id string, n int) (io.ReadCloser, error) {
	rs, err := b.OpenAll(ctx, id, []int{n})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// OpenAll opens files ns of id for one reader (a download, the send of
// a held message): one short query finds their sizes and chunk counts
// (any file missing is fs.ErrNotExist), then each reader fetches each
// chunk with a statement of its own, as it needs it. No transaction and
// no connection is held between chunks, so a slow reader holds nothing
// of the database: neither a connection of the pool nor VACUUM's
// horizon. A committed file never changes (Create of the same file is
// for the copy of a store, not for a file being read); a file removed
// while it is read ends its reader with fs.ErrNotExist at the next
// chunk, which is why the links scheduler deletes the files of an
// ended link only an hour after its end. Close every reader.
func (b *Blobs) OpenAll(ctx context.Context, id string, ns []int) ([]io.ReadCloser, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	type meta struct {
		size   int64
		chunks int
	}
	found := map[int]meta{}
	rows, err := b.p.pool.Query(ctx, `SELECT n, size, chunks FROM blob_files WHERE kind = $1 AND id = $2 AND n = ANY($3::integer[])`,
		b.kind, id, ns)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var n int
		var m meta
		if err := rows.Scan(&n, &m.size, &m.chunks); err != nil {
			rows.Close()
			return nil, err
		}
		found[n] = m
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]io.ReadCloser, len(ns))
	for i, n := range ns {
		m, ok := found[n]
		if !ok {
			return nil, fmt.Errorf("%s %s/%d: %w", b.kind, id, n, fs.ErrNotExist)
		}
		out[i] = &blobReader{b: b, ctx: ctx, id: id, n: n, size: m.size, chunks: m.chunks}
	}
	return out, nil
}

type blobReader struct {
	b      *Blobs
	ctx    context.Context
	id     string
	n      int
	size   int64
	chunks int
	seq    int
	buf    []byte
	read   int64
	closed bool
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
		err := r.b.p.pool.QueryRow(r.ctx, `SELECT data FROM blob_chunks WHERE kind = $1 AND id = $2 AND n = $3 AND seq = $4`,
			r.b.kind, r.id, r.n, r.seq).Scan(&r.buf)
		if errors.Is(err, pgx.ErrNoRows) {
			err = fmt.Errorf("removed while read: %w", fs.ErrNotExist)
		}
		if err != nil {
			return 0, fmt.Errorf("%s %s/%d chunk %d: %w", r.b.kind, r.id, r.n, r.seq, err)
		}
		r.seq++
	}
	k := copy(p, r.buf)
	r.buf = r.buf[k:]
	r.read += int64(k)
	return k, nil
}

func (r *blobReader) Close() error {
	r.closed, r.buf = true, nil
	return nil
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

// PoolStat is the connection pool's own count (connections acquired,
// idle, waited for).
func (p *Postgres) PoolStat() *pgxpool.Stat { return p.pool.Stat() }

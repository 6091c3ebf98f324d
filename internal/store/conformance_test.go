package store

import (
	"context"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
)

// The store's tests run on every backend (eachStore), so SQLite and
// PostgreSQL cannot drift apart: what one does for a single node, the
// other does too. What only several nodes can do (leases, taking over a
// dead node's work) is tested on PostgreSQL in postgres_test.go.

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend opens stores of one kind for the tests.
type backend struct {
	name string
	// newStore opens an empty store and says where it is, for reopen.
	newStore func(t testing.TB) (Store, string)
	// reopen opens another handle on the store at place (another
	// process: a CLI beside the server, or a second node).
	reopen func(t testing.TB, place string) Store
	// dump is every byte the store keeps at place, as a thief of its
	// files (or of a database dump) would have it.
	dump func(t *testing.T, s Store, place string) []byte
	// restart moves the store's own clock (what Recover reads) past the
	// leases of a node that stopped.
	restart func(s Store)
}

// conformanceLease outlasts every test's made-up clock: a single node's
// claims never run out here, as on SQLite.
const conformanceLease = 1000 * time.Hour

var backends = []backend{
	{
		name:     "sqlite",
		newStore: func(t testing.TB) (Store, string) { return newStore(t) },
		reopen:   func(t testing.TB, place string) Store { return openAt(t, place, testKey(1)) },
		dump: func(t *testing.T, s Store, place string) []byte {
			var all []byte
			for _, b := range dbFiles(t, place) {
				all = append(all, b...)
			}
			return all
		},
		restart: func(Store) {},
	},
	{
		name: "postgres",
		newStore: func(t testing.TB) (Store, string) {
			url := pgtest.Shared(t).NewSchema(t)
			return openPG(t, url, testKey(1)), url
		},
		reopen: func(t testing.TB, place string) Store { return openPG(t, place, testKey(1)) },
		dump:   func(t *testing.T, s Store, place string) []byte { return pgDump(t, s.(*Postgres)) },
		restart: func(s Store) {
			s.(*Postgres).now = func() time.Time { return t0.Add(2 * conformanceLease) }
		},
	},
}

// eachStore runs test on each backend, as a subtest named after it.
func eachStore(t *testing.T, test func(t *testing.T, be backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

func openPG(t testing.TB, url string, key []byte) *Postgres {
	t.Helper()
	s, err := OpenPostgresKey(context.Background(), PostgresOptions{URL: url, Lease: conformanceLease}, key)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// row is what rawQueryRow gives back.
type row interface{ Scan(...any) error }

// rawQueryRow runs SQL the tests write with ? placeholders on either
// store, bypassing it: to look at what is stored, or to tamper with it.
func rawQueryRow(s Store, q string, args ...any) row {
	switch s := s.(type) {
	case *SQLite:
		return s.db.QueryRowContext(context.Background(), q, args...)
	case *Postgres:
		return s.pool.QueryRow(context.Background(), rebind(q), args...)
	}
	panic("unknown store")
}

func rawExec(s Store, q string, args ...any) error {
	var err error
	switch s := s.(type) {
	case *SQLite:
		_, err = s.w.ExecContext(context.Background(), q, args...)
	case *Postgres:
		_, err = s.pool.Exec(context.Background(), rebind(q), args...)
	}
	return err
}

// pgDump is every text and bytea value of every table of the store.
func pgDump(t *testing.T, s *Postgres) []byte {
	t.Helper()
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND data_type IN ('text', 'bytea')`)
	if err != nil {
		t.Fatal(err)
	}
	var queries []string
	for rows.Next() {
		var table, column, typ string
		if err := rows.Scan(&table, &column, &typ); err != nil {
			t.Fatal(err)
		}
		value := column
		if typ == "text" {
			value = "convert_to(" + column + ", 'UTF8')"
		}
		queries = append(queries, `SELECT `+value+` FROM `+table+` WHERE `+column+` IS NOT NULL`)
	}
	rows.Close()
	var all []byte
	for _, q := range queries {
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		rows.Close()
	}
	if len(all) == 0 {
		t.Fatal("the dump is empty: is this the store's schema?")
	}
	return all
}

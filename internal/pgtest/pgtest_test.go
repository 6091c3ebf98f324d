package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// The cluster takes connections with its password only, and comes back
// after a stop.
func TestClusterStartsStopsAndRestarts(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var who string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != User {
		t.Fatalf("current_user = %q, %v", who, err)
	}
	conn.Close(ctx)
	if conn, err := pgx.Connect(ctx, c.BareURL("postgres")+"&password=wrong"); err == nil {
		conn.Close(ctx)
		t.Fatal("a wrong password was let in")
	}
	c.Stop()
	if conn, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	url := Shared(t).NewSchema(t)
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE x (a int)`); err != nil {
		t.Fatal(err)
	}
}

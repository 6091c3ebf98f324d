package web

import (
	"os"
	"testing"

	"github.com/zipgate/zipgate/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

package web

import (
	"testing"

	"github.com/zipgate/zipgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

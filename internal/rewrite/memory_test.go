package rewrite

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/zipgate/zipgate/internal/mailtest"
)

// shapeLimits are config.Defaults' limits, as the gateway passes them.
var shapeLimits = Limits{
	MaxHeaderBytes: 1 << 20, MaxDepth: 50, MaxParts: 10000,
	MaxTotalHeaderBytes: 4 << 20, MaxAttachments: 1000,
}

// TestMemoryPerShape: for each hostile shape (issue 11, finding 1), the
// bytes the rewrite allocates and the bytes its plan holds stay bounded
// whatever the shape, so that 10 such messages at once fit in 64 MiB
// (scripts/memshapes.sh measures the whole process). The bounds are on
// bytes, measured with runtime.MemStats; nothing here is timed.
func TestMemoryPerShape(t *testing.T) {
	if testing.Short() {
		t.Skip("builds messages of up to 50 MiB")
	}
	const (
		maxAllocated = 16 << 20 // per message, garbage included
		maxHeld      = 4 << 20  // what the plan keeps while the zip is made
	)
	for _, shape := range mailtest.Shapes() {
		t.Run(shape.Name, func(t *testing.T) {
			msg := shape.Build(mailtest.DefaultShapeLimits)
			if len(msg) > 50<<20 {
				t.Fatalf("the shape is %d bytes, over smtp.max_message_bytes", len(msg))
			}
			tmp := t.TempDir()
			var before, held, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			pl, err := Analyze(bytes.NewReader(msg), int64(len(msg)), shapeLimits, tmp)
			runtime.GC()
			runtime.ReadMemStats(&held)
			if err == nil {
				err = pl.Write(io.Discard, Output{ID: "m", ZipName: "a.zip", Zip: strings.NewReader("PK"), Notice: noticeText, TempDir: tmp})
			}
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(pl)
			runtime.KeepAlive(msg)
			switch {
			case shape.Refused && !errors.Is(err, ErrHeadersTooLarge) && !errors.Is(err, ErrTooManyFiles):
				t.Fatalf("want a refusal, got %v", err)
			case !shape.Refused && err != nil:
				t.Fatal(err)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			kept := int64(held.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%.1f MB message: %.1f MiB allocated, %.2f MiB held by the plan", float64(len(msg))/1e6, float64(allocated)/(1<<20), float64(kept)/(1<<20))
			if allocated > maxAllocated {
				t.Errorf("%d bytes allocated, want at most %d", allocated, maxAllocated)
			}
			if kept > maxHeld {
				t.Errorf("the plan holds %d bytes, want at most %d", kept, maxHeld)
			}
		})
	}
}

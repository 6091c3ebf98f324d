package cli

import (
	"fmt"
	"strings"
	"time"
)

// durationFlag is a -delay style flag that overrides a configuration
// value only when given; unlike flag.Duration it needs no sentinel
// default, so -h shows no made-up "(default -1ns)".
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s, 10m or 2h", s)
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	f.d, f.set = d, true
	return nil
}

// shortDuration writes 10m0s as 10m and 2160h0m0s as 2160h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package web

import (
	"mime"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestContentDispositionCarriesAnyName(t *testing.T) {
	for _, name := range []string{"見積書 2026年11月.pdf", `a"b\c.txt`, "report (final); v2.xlsx", "plain.txt", "ü.txt"} {
		cd := contentDisposition(name)
		disp, params, err := mime.ParseMediaType(cd)
		if err != nil || disp != "attachment" || params["filename"] != name {
			t.Errorf("%q: %q parses as %q %v, %v", name, cd, disp, params, err)
		}
		for i := 0; i < len(cd); i++ {
			if cd[i] >= 0x80 || cd[i] < 0x20 {
				t.Errorf("%q: a byte %#x in the header", name, cd[i])
			}
		}
	}
}

func TestClientAddressBehindTrustedProxies(t *testing.T) {
	s := New(nil, nil, make([]byte, 32), nil)
	s.Links = &LinkPages{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	cases := []struct{ remote, xff, want string }{
		{"192.0.2.7:4321", "198.51.100.1", "192.0.2.7"},                          // not a proxy: its header is not believed
		{"10.0.0.2:4321", "198.51.100.1", "198.51.100.1"},                        // the proxy says who
		{"10.0.0.2:4321", "203.0.113.9, 198.51.100.1, 10.0.0.3", "198.51.100.1"}, // the last hop not a proxy; the client could write the first
		{"10.0.0.2:4321", "", "10.0.0.2"},
		{"10.0.0.2:4321", "junk", "10.0.0.2"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/d/x", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.client(r); got != c.want {
			t.Errorf("%s with %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestLimiterForgetsAfterTheWindow(t *testing.T) {
	var l limiter
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		if l.over("k", 5, t0) {
			t.Fatalf("over after %d", i)
		}
		l.add("k", t0.Add(time.Duration(i)*time.Second))
	}
	if !l.over("k", 5, t0.Add(time.Minute)) {
		t.Fatal("not over after 5")
	}
	if l.over("k", 5, t0.Add(tryWindow+5*time.Second)) {
		t.Fatal("still over after the window")
	}
	if l.over("other", 1, t0) {
		t.Fatal("keys share counts")
	}
}

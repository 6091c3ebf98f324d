// Package loopback finds free ports on 127.0.0.1 for tests that start
// programs which bind an address they are given (zipgate serve,
// PostgreSQL).
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePort returns a port on 127.0.0.1 that nothing listens on now, taken
// outside the kernel's range for outgoing connections: a port from
// 127.0.0.1:0 is in that range, and between the check and the program's
// bind an outgoing connection (a test's many to PostgreSQL) can take it
// as its own source port.
func FreePort() (int, error) {
	lo, hi := outsideEphemeral()
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1 in %d-%d", lo, hi)
}

// FreeAddr is FreePort as a host:port.
func FreeAddr() (string, error) {
	port, err := FreePort()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), err
}

// outsideEphemeral is a range of ports the kernel does not pick for
// outgoing connections (ip_local_port_range, 32768-60999 by default).
func outsideEphemeral() (lo, hi int) {
	first, last := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if a, err := strconv.Atoi(f[0]); err == nil {
				first = a
			}
			if z, err := strconv.Atoi(f[1]); err == nil {
				last = z
			}
		}
	}
	if first-10000 >= 2000 {
		return 10000, first
	}
	return last + 1, 65536
}

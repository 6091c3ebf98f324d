package pgtest

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on loopback in front of a cluster that can
// freeze: it stops forwarding both ways but keeps every connection open
// and takes new ones, as a database host, a proxy or a NAT that hangs
// does. The client's kernel still gets its bytes acknowledged (until the
// buffers fill), so neither a refused connection nor TCP tells the
// client anything: only its own patience does. Thaw resumes where it
// stopped; nothing is lost.
type Proxy struct {
	Port    int
	cluster *Cluster

	mu     sync.Mutex
	thawed chan struct{} // closed while forwarding
	conns  []net.Conn
	closed bool
}

// Proxy starts a proxy to c that ends with t.
func (c *Cluster) Proxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Port: ln.Addr().(*net.TCPAddr).Port, cluster: c, thawed: make(chan struct{})}
	close(p.thawed)
	target := "127.0.0.1:" + strconv.Itoa(c.Port)
	t.Cleanup(func() {
		ln.Close()
		p.Thaw()
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			if !p.keep(client, server) {
				return
			}
			go p.pipe(server, client)
			go p.pipe(client, server)
		}
	}()
	return p
}

func (p *Proxy) keep(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// pipe forwards src to dst while thawed; when either side ends, both do
// (once thawed: a frozen host says nothing, not even goodbye).
func (p *Proxy) pipe(dst, src net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		p.wait()
		n, err := src.Read(buf)
		p.wait() // what came as it froze waits too
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) wait() {
	p.mu.Lock()
	ch := p.thawed
	p.mu.Unlock()
	<-ch
}

// Freeze stops forwarding.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default:
	}
}

// Thaw forwards again, starting with what waited.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// Via is url (of the cluster) through the proxy.
func (p *Proxy) Via(url string) string {
	return strings.Replace(url, "127.0.0.1:"+strconv.Itoa(p.cluster.Port), "127.0.0.1:"+strconv.Itoa(p.Port), 1)
}

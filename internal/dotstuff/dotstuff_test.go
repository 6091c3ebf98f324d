package dotstuff

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-smtp"
)

// wire sends msg with go-smtp's client to a raw loopback server and
// returns the bytes that arrived after the 354, up to the end of data.
// With fast it uses Write, else go-smtp's own DotWriter.
func wire(t *testing.T, msg []byte, fast bool, wrap func(io.Reader) io.Reader) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		io.WriteString(c, "220 raw\r\n")
		var data bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				got <- nil
				return
			}
			switch strings.ToUpper(strings.Fields(line + " x")[0]) {
			case "EHLO":
				io.WriteString(c, "250 raw\r\n")
			case "DATA":
				io.WriteString(c, "354 go\r\n")
				for !bytes.HasSuffix(data.Bytes(), []byte("\r\n.\r\n")) && !(data.Len() == 3 && data.String() == ".\r\n") {
					line, err := r.ReadSlice('\n')
					if err != nil && err != bufio.ErrBufferFull {
						got <- nil
						return
					}
					data.Write(line)
				}
				io.WriteString(c, "250 ok\r\n")
				got <- data.Bytes()
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := smtp.NewClient(conn)
	defer cl.Close()
	if err := cl.Hello("test"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Mail("a@example.jp", nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rcpt("b@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := cl.Data()
	if err != nil {
		t.Fatal(err)
	}
	body := wrap(bytes.NewReader(msg))
	if fast {
		err = Write(conn, w, body)
	} else {
		_, err = io.Copy(w, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return <-got
}

// TestSameWire: whatever the message, Write puts the same
// bytes on the wire as go-smtp's DotWriter.
func TestSameWire(t *testing.T) {
	long := strings.Repeat("x", dataBlock+100)
	var big strings.Builder
	for i := 0; big.Len() < 3*dataBlock; i++ {
		big.WriteString("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n")
		if i%97 == 0 {
			big.WriteString(".leading dot\r\n")
		}
	}
	cases := map[string]string{
		"empty":                  "",
		"one line":               "Subject: x\r\n\r\nbody\r\n",
		"no final line break":    "Subject: x\r\n\r\nbody",
		"leading dots":           ".\r\n..\r\n.x\r\nA\r\n.\r\n",
		"starts with a dot":      ".hidden\r\nx\r\n",
		"bare LF":                "a\nb\r\n.c\nd\r\n",
		"bare CR":                "a\rb\r\n.c\r",
		"CR CR LF":               "a\r\r\nb\r\r\r\n.c\r\n",
		"line over a block":      "a\r\n" + long + "\r\n.b\r\n",
		"blocks of base64":       big.String(),
		"bare LF after a block":  big.String() + "tail\n.x\n",
		"ends in a dot line":     big.String() + ".\r\n",
		"ends in CR":             big.String() + "x\r",
		"just a dot, no newline": ".",
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for name, msg := range cases {
		for rname, wrap := range readers {
			if rname == "one byte" && len(msg) > 10000 {
				continue
			}
			want := wire(t, []byte(msg), false, wrap)
			got := wire(t, []byte(msg), true, wrap)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s reads: wire differs: got %d bytes %q..., want %d bytes %q...",
					name, rname, len(got), got[:min(len(got), 40)], len(want), want[:min(len(want), 40)])
			}
		}
	}
}

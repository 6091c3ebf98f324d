// Command benchsink is the next hop for scripts/bench.sh: an SMTP server on
// loopback that accepts every message and throws the data away. It writes
// its address to -addr-file once it listens and, when stopped (SIGTERM or
// SIGINT), prints how many messages and bytes it took. With -save it
// keeps the last message zipgate rewrote (the one starting with its
// X-Zipgate trace field) in that file, so the script can measure the zip.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "write the listening address here")
	save := flag.String("save", "", "keep the last rewritten message in this file")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	be := &backend{save: *save}
	srv := smtp.NewServer(be)
	srv.Domain = "benchsink.test"
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.MaxLineLength = 1 << 20 // Postfix takes long lines too
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = 5 * time.Minute
	srv.ErrorLog = log.New(os.Stderr, "benchsink: ", 0)

	if *addrFile != "" {
		// Written whole, then renamed: a reader never sees half an address.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != smtp.ErrServerClosed {
		log.Print(err)
	}
	be.saving.Wait()
	fmt.Fprintf(os.Stderr, "benchsink: accepted %d messages, %d bytes\n", be.msgs.Load(), be.bytes.Load())
}

type backend struct {
	msgs, bytes atomic.Int64

	save   string
	saveMu sync.Mutex // one file write at a time
	saving sync.WaitGroup
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct{ b *backend }

func (*session) Mail(string, *smtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*session) Reset()                               {}
func (*session) Logout() error                        { return nil }

const savePrefix = "X-Zipgate: encrypted"

func (s *session) Data(r io.Reader) error {
	var n int64
	var err error
	br := bufio.NewReader(r)
	if head, _ := br.Peek(len(savePrefix)); s.b.save != "" && string(head) == savePrefix {
		// Kept in memory and written after the reply, so that saving
		// adds next to nothing to the time the sender measures.
		var msg bytes.Buffer
		n, err = msg.ReadFrom(br)
		if err == nil {
			s.b.saving.Add(1)
			go func() {
				defer s.b.saving.Done()
				s.b.saveMu.Lock()
				defer s.b.saveMu.Unlock()
				if err := os.WriteFile(s.b.save, msg.Bytes(), 0o644); err != nil {
					log.Print(err)
				}
			}()
		}
	} else {
		n, err = io.Copy(io.Discard, br)
	}
	if err != nil {
		return err
	}
	s.b.msgs.Add(1)
	s.b.bytes.Add(n)
	return nil
}

// Command benchsink is the next hop for scripts/bench.sh: an SMTP server on
// loopback that accepts every message and throws the data away. It stands
// in for Postfix's reinjection smtpd, so it reads DATA a line at a time
// with bufio (as fast as Postfix), not a byte at a time as go-smtp does. It
// writes its address to -addr-file once it listens and, when stopped
// (SIGTERM or SIGINT), prints how many messages and bytes it took. With
// -save it keeps the last message zipgate rewrote (the one starting with
// its X-Zipgate trace field) in that file, so the script can measure the
// zip.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "write the listening address here")
	save := flag.String("save", "", "keep the last rewritten message in this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchsink: ")

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
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
	s := &sink{save: *save}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serve(c)
		}()
	}
	s.conns.Wait()
	fmt.Fprintf(os.Stderr, "benchsink: accepted %d messages, %d bytes\n", s.msgs.Load(), s.bytes.Load())
}

type sink struct {
	msgs, bytes atomic.Int64
	conns       sync.WaitGroup

	save   string
	saveMu sync.Mutex // one file write at a time
}

const savePrefix = "X-Zipgate: encrypted"

// serve speaks just enough SMTP for zipgate's relay and benchsend: every
// command is accepted, DATA is read to its end and counted.
func (s *sink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	reply := func(text string) bool {
		w.WriteString(text + "\r\n")
		return w.Flush() == nil
	}
	if !reply("220 benchsink.test ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " .")[0])
		switch verb {
		case "EHLO":
			reply("250-benchsink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 SIZE 0")
		case "DATA":
			if !reply("354 go ahead") {
				return
			}
			n, err := s.data(r)
			if err != nil {
				log.Print(err)
				return
			}
			s.msgs.Add(1)
			s.bytes.Add(n)
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("250 2.0.0 ok")
		}
	}
}

// data reads one message to the ".\r\n" line and returns its size.
func (s *sink) data(r *bufio.Reader) (int64, error) {
	var keep *bytes.Buffer
	if head, _ := r.Peek(len(savePrefix)); s.save != "" && string(head) == savePrefix {
		keep = new(bytes.Buffer)
	}
	var n int64
	start := true // at the start of a line
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return n, err
		}
		if start && len(line) > 0 && line[0] == '.' {
			if string(line) == ".\r\n" {
				break
			}
			line = line[1:] // a doubled dot
		}
		start = err == nil
		n += int64(len(line))
		if keep != nil {
			keep.Write(line)
		}
	}
	if keep != nil {
		// Written after the reply, so that saving adds next to nothing
		// to the time the sender measures.
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.saveMu.Lock()
			defer s.saveMu.Unlock()
			if err := os.WriteFile(s.save, keep.Bytes(), 0o644); err != nil {
				log.Print(err)
			}
		}()
	}
	return n, nil
}

// Command benchsend is the client for scripts/bench.sh: it sends -n
// messages, each with one base64 attachment of -size bytes, to an SMTP
// server and checks that every one is answered 250. It prints
// "MESSAGES BYTES SECONDS" (bytes as sent in DATA) on stdout.
//
// With -write-file it only writes the attachment content to that file,
// so other tools (7z) can be timed on the same bytes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/mailtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:10025", "SMTP server to send to")
	n := flag.Int("n", 20, "messages to send")
	size := flag.Int("size", 10<<20, "attachment size in bytes (before base64)")
	kind := flag.String("kind", "random", "attachment content: random (incompressible) or text (Japanese and English lines)")
	conc := flag.Int("c", 1, "connections sending at the same time")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	writeFile := flag.String("write-file", "", "write the attachment content to this file and exit")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchsend: ")

	var content []byte
	var name, ctype string
	switch *kind {
	case "random":
		content, name, ctype = mailtest.RandomContent(*size), "data.bin", "application/octet-stream"
	case "text":
		content, name, ctype = mailtest.TextContent(*size), "notes.txt", "text/plain; charset=utf-8"
	default:
		log.Fatalf("unknown -kind %q", *kind)
	}
	if *writeFile != "" {
		if err := os.WriteFile(*writeFile, content, 0o644); err != nil {
			log.Fatal(err)
		}
		return
	}
	msg := mailtest.BenchMessage(name, ctype, content)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	jobs := make(chan int)
	errs := make(chan error, *n)
	var wg sync.WaitGroup
	start := time.Now()
	for range max(*conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := send(ctx, *addr, msg, i); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					cancel()
				}
			}
		}()
	}
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		log.Fatal(err)
	}
	if err := ctx.Err(); err != nil {
		log.Fatalf("gave up after %s: %v", *timeout, err)
	}
	fmt.Printf("%d %d %.3f\n", *n, *n*len(msg), elapsed.Seconds())
}

// send delivers one message on its own connection; anything but 250 at
// the end of DATA is an error.
func send(ctx context.Context, addr string, msg []byte, i int) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout = 2 * time.Minute
	c.SubmissionTimeout = 5 * time.Minute
	if err := c.Hello("benchsend.localdomain"); err != nil {
		return err
	}
	if err := c.Mail("sender@example.jp", nil); err != nil {
		return err
	}
	if err := c.Rcpt(fmt.Sprintf("rcpt%d@example.com", i), nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	// CloseWithResponse fails on any reply code but exactly 250.
	if _, err := w.CloseWithResponse(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

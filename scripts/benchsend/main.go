// Command benchsend is the client for scripts/bench.sh: it sends -n
// messages, each with one base64 attachment of -size bytes, to an SMTP
// server and checks that every one is answered 250. It prints
// "MESSAGES BYTES SECONDS" (bytes as sent in DATA) on stdout.
//
// With -direct it measures what a hop costs: in each of -n rounds it
// sends the same message once straight to -direct (the next hop) and
// once to -addr (zipgate in front of that next hop), one at a time, after
// -warmup rounds that are not counted. It prints "ROUNDS BYTES DIRECT
// THROUGH ADDED": the medians in seconds of the direct and the through
// times and of the per-round differences.
//
// With -write-file it only writes the attachment content to that file,
// so other tools (7z) can be timed on the same bytes.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/dotstuff"
	"github.com/zipgate/zipgate/internal/mailtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:10025", "SMTP server to send to")
	direct := flag.String("direct", "", "next hop to compare with: send each message there too and print the added time")
	warmup := flag.Int("warmup", 1, "with -direct: rounds sent first and not counted")
	n := flag.Int("n", 20, "messages to send (with -direct: rounds)")
	size := flag.Int("size", 10<<20, "attachment size in bytes (before base64)")
	kind := flag.String("kind", "random", "attachment content: random (incompressible), csv (a customer list), text (repetitive lines), or none (no attachment)")
	conc := flag.Int("c", 1, "connections sending at the same time")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	writeFile := flag.String("write-file", "", "write the attachment content to this file and exit")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchsend: ")

	var msg []byte
	if *kind == "none" {
		msg = mailtest.PlainMessage()
	} else {
		k, ok := mailtest.KindByName(*kind)
		if !ok {
			log.Fatalf("unknown -kind %q", *kind)
		}
		content := k.Content(*size)
		if *writeFile != "" {
			if err := os.WriteFile(*writeFile, content, 0o644); err != nil {
				log.Fatal(err)
			}
			return
		}
		msg = mailtest.BenchMessage(k.File, k.Type, content)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *direct != "" {
		if err := compare(ctx, *direct, *addr, msg, *warmup, *n); err != nil {
			log.Fatal(err)
		}
		return
	}
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

// compare sends msg alternately straight to the next hop and through
// zipgate, one at a time, so both see the same machine load.
func compare(ctx context.Context, direct, through string, msg []byte, warmup, rounds int) error {
	var ds, ts, diffs []float64
	for i := range warmup + rounds {
		t0 := time.Now()
		if err := send(ctx, direct, msg, i); err != nil {
			return fmt.Errorf("round %d, straight to %s: %w", i, direct, err)
		}
		t1 := time.Now()
		if err := send(ctx, through, msg, i); err != nil {
			return fmt.Errorf("round %d, through %s: %w", i, through, err)
		}
		t2 := time.Now()
		if i < warmup {
			continue
		}
		d, t := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
		ds, ts, diffs = append(ds, d), append(ts, t), append(diffs, t-d)
	}
	fmt.Printf("%d %d %.6f %.6f %.6f\n", rounds, len(msg), median(ds), median(ts), median(diffs))
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
	// In blocks, as Postfix's smtp client writes, not go-smtp's byte at
	// a time: the sender must not be what limits the server.
	if err := dotstuff.Write(conn, w, bytes.NewReader(msg)); err != nil {
		w.Close()
		return err
	}
	// CloseWithResponse fails on any reply code but exactly 250.
	if _, err := w.CloseWithResponse(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

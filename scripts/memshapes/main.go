// Command memshapes is the client for scripts/memshapes.sh: it sends -n
// copies of one hostile message shape (internal/mailtest.Shapes), -c at
// a time, each on its own connection, and checks every reply: 250 for a
// shape within the limits, 554 5.6.0 for one that breaks them. It prints
// "SHAPE BYTES REPLY SECONDS" on stdout.
package main

import (
	"context"
	"errors"
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
	name := flag.String("shape", "", "shape to send (-list shows them)")
	list := flag.Bool("list", false, "print the shape names and what each is, then exit")
	n := flag.Int("n", 10, "messages to send")
	conc := flag.Int("c", 10, "connections sending at the same time")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("memshapes: ")

	if *list {
		for _, s := range mailtest.Shapes() {
			fmt.Printf("%s\t%s\n", s.Name, s.What)
		}
		return
	}
	var shape *mailtest.Shape
	for _, s := range mailtest.Shapes() {
		if s.Name == *name {
			shape = &s
		}
	}
	if shape == nil {
		log.Fatalf("unknown -shape %q (-list shows them)", *name)
	}
	msg := shape.Build(mailtest.DefaultShapeLimits)
	want := 250
	if shape.Refused {
		want = 554
	}

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
				if err := send(ctx, *addr, msg, i, want); err != nil {
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
	fmt.Printf("%s %d %d %.3f\n", shape.Name, len(msg), want, elapsed.Seconds())
	os.Exit(0)
}

// send delivers one message on its own connection and checks that the
// reply to the end of DATA is want.
func send(ctx context.Context, addr string, msg []byte, i, want int) error {
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
	if err := c.Hello("memshapes.localdomain"); err != nil {
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
	_, err = w.CloseWithResponse()
	var se *smtp.SMTPError
	switch {
	case err == nil && want == 250:
		return c.Quit()
	case errors.As(err, &se) && se.Code == want:
		return c.Quit()
	case err == nil:
		return fmt.Errorf("end of DATA: 250, want %d", want)
	}
	return fmt.Errorf("end of DATA: %w (want %d)", err, want)
}

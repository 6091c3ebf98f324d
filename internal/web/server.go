package web

import (
	"log"
	"net/http"
	"time"
)

// Timeouts bound how long one client may hold a connection of the sender
// page server, so slow or idle clients cannot use up its connections.
type Timeouts struct {
	ReadHeader time.Duration // the request line and header
	Read       time.Duration // the whole request, body included
	Write      time.Duration // from the end of the request header to the end of the answer
	Idle       time.Duration // between requests on a kept-alive connection
}

// DefaultTimeouts are what zipgate serve uses: a form is a few hundred
// bytes and its answer a small page, so a client that needs longer is
// stalled or hostile.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      30 * time.Second,
	Idle:       60 * time.Second,
}

// maxHeaderBytes bounds the request line and header fields: a sender page
// request needs well under 1 KiB, a reverse proxy adds a few fields.
const maxHeaderBytes = 32 << 10

// HTTPServer returns the server for the sender page, with the timeouts t,
// the header limit, and bodies limited by Handler.
func (s *Server) HTTPServer(t Timeouts, errorLog *log.Logger) *http.Server {
	return httpServer(s.Handler(), t, errorLog)
}

// httpServer serves h with the timeouts t and the header limit.
func httpServer(h http.Handler, t Timeouts, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
	}
}

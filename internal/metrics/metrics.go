// Package metrics is what zipgate shows Prometheus at /metrics on the
// admin listener: messages by action and result, what went into zips and
// how long zipping took, how long passwords waited, relay errors by
// class, and, read from the store at each scrape, jobs and held messages
// by state. The gateway and the two schedulers call it at one place each;
// a nil *Metrics counts nothing, so tests need none. Its registry is its
// own, never the global one. Nothing here carries a password, an address
// or a file name: labels are a few fixed words.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/store"
)

// Metrics holds zipgate's collectors.
type Metrics struct {
	reg          *prometheus.Registry
	messages     *prometheus.CounterVec
	attachments  prometheus.Counter
	zippedBytes  prometheus.Counter
	zipSeconds   prometheus.Histogram
	releaseDelay prometheus.Histogram
	passwords    *prometheus.CounterVec
	relayErrors  *prometheus.CounterVec
}

// Counter reads the jobs and held messages by state (store.Store does).
type Counter interface {
	Counts(ctx context.Context) (store.Counts, error)
}

// New makes the collectors; st is read at each scrape (nil: no store
// gauges).
func New(version, commit string, st Counter) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zipgate", Name: "messages_total",
			Help: "Messages handled, by what was done (encrypt, pass, reject, hold, none) and the answer to Postfix (accepted, deferred, refused).",
		}, []string{"action", "result"}),
		attachments: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "zipgate", Name: "attachments_zipped_total", Help: "Files put into zips.",
		}),
		zippedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "zipgate", Name: "attachment_bytes_zipped_total", Help: "Bytes of the files put into zips (before compression).",
		}),
		zipSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "zipgate", Name: "zip_duration_seconds",
			Help:    "Time to take a message apart, zip its attachments and write its copies.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		releaseDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "zipgate", Name: "password_release_delay_seconds",
			Help:    "Time from a message to its password mail.",
			Buckets: []float64{1, 10, 60, 300, 600, 900, 1800, 3600, 4 * 3600, 24 * 3600},
		}),
		passwords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zipgate", Name: "passwords_total",
			Help: "Password mails by outcome (released, failed, deferred).",
		}, []string{"outcome"}),
		relayErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zipgate", Name: "relay_errors_total",
			Help: "Failed hand-overs to the next hop, by class (unavailable, deferred, refused, connection, uncertain, internal).",
		}, []string{"class"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "zipgate", Name: "build_info", Help: "The running zipgate's version and commit.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(version, commit, runtime.Version()).Set(1)
	m.reg.MustRegister(m.messages, m.attachments, m.zippedBytes, m.zipSeconds, m.releaseDelay, m.passwords,
		m.relayErrors, build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range relayClasses {
		m.relayErrors.WithLabelValues(c)
	}
	for _, o := range []string{"released", "failed", "deferred"} {
		m.passwords.WithLabelValues(o)
	}
	if st != nil {
		m.reg.MustRegister(&storeCollector{st: st})
	}
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is for tests that read the values.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Message counts one message the gateway handled: what it did, the
// answer Postfix got (err nil: 250), the files zipped and how long the
// zipping took (zero when nothing was zipped).
func (m *Metrics) Message(action string, err error, files int, bytes int64, zipping time.Duration) {
	if m == nil {
		return
	}
	result := "accepted"
	if err != nil {
		result = "refused"
		if reply.From(err).Temporary() {
			result = "deferred"
		}
	}
	if action == "" {
		action = "none"
	}
	m.messages.WithLabelValues(action, result).Inc()
	if files > 0 {
		m.attachments.Add(float64(files))
		m.zippedBytes.Add(float64(bytes))
	}
	if zipping > 0 {
		m.zipSeconds.Observe(zipping.Seconds())
	}
}

// Password counts a password mail: released (after delay), failed for
// good, or deferred.
func (m *Metrics) Password(outcome string, delay time.Duration) {
	if m == nil {
		return
	}
	m.passwords.WithLabelValues(outcome).Inc()
	if outcome == "released" {
		m.releaseDelay.Observe(max(delay, 0).Seconds())
	}
}

// RelayError counts a failed hand-over to the next hop.
func (m *Metrics) RelayError(err error) {
	if m == nil || err == nil {
		return
	}
	m.relayErrors.WithLabelValues(RelayClass(err)).Inc()
}

var relayClasses = []string{"unavailable", "deferred", "refused", "connection", "uncertain", "internal"}

// RelayClass names what went wrong with the next hop: unavailable (no
// connection), deferred (it answered 4xx), refused (5xx), connection
// (broken off), uncertain (no answer after the data: it may have the
// message), internal (zipgate's own fault).
func RelayClass(err error) string {
	re := reply.From(err)
	var se *smtp.SMTPError
	switch {
	case errors.Is(err, relay.ErrUncertain):
		return "uncertain"
	case !re.Temporary():
		return "refused"
	case re.Enhanced == reply.CodeNextHopDown:
		return "unavailable"
	case errors.As(err, &se):
		return "deferred"
	case re.Enhanced == reply.CodeNextHopFailed:
		return "connection"
	}
	return "internal"
}

// storeCollector reads the jobs and held messages by state at each
// scrape, so the numbers are the store's, across restarts and nodes.
type storeCollector struct{ st Counter }

var (
	jobsDesc = prometheus.NewDesc("zipgate_jobs", "Password release jobs by state.", []string{"state"}, nil)
	heldDesc = prometheus.NewDesc("zipgate_held_messages", "Held messages by state.", []string{"state"}, nil)
	upDesc   = prometheus.NewDesc("zipgate_store_up", "1 when the store answered this scrape.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- heldDesc
	ch <- upDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.Counts(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	for _, st := range []store.State{store.Pending, store.Scheduled, store.Sending, store.Released, store.Canceled, store.Failed} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts.Jobs[st]), string(st))
	}
	for _, st := range []store.HeldState{store.HeldWaiting, store.HeldSending, store.HeldSent, store.HeldCanceled,
		store.HeldRejected, store.HeldExpired, store.HeldFailed} {
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(counts.Held[st]), string(st))
	}
}

package gateway_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// Each message leaves its history in the store: received, the decision
// of each group with its rule, each copy the next hop took or deferred,
// and the answer; its file names can be searched; the metrics count it.
func TestMessageHistoryAndMetrics(t *testing.T) {
	h := start(t, localDomains)
	m := metrics.New("test", "abc", h.store)
	h.gw.Metrics = m
	setPolicy(t, h, policy.Policy{Domain: "pass.example", Action: policy.Pass})
	rcpts := []string{"jiro@example.co.jp", "bob@partner.example", "carol@pass.example"}
	if se := send(t, h.addr, "taro@example.co.jp", rcpts, []byte(withAttachment)); se != nil {
		t.Fatalf("got %d %s", se.Code, se.Message)
	}
	ctx := context.Background()
	var rows []store.AuditRow
	if err := h.store.SearchEvents(ctx, store.AuditQuery{Q: "見積書"}, func(r store.AuditRow) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(rows) // oldest first
	var lines []string
	for _, r := range rows {
		lines = append(lines, r.Event.Event+": "+r.Detail)
		if r.Sender != "taro@example.co.jp" || len(r.Files) != 1 || r.Files[0].Name != "見積書.pdf" {
			t.Errorf("row without its message: %+v", r)
		}
	}
	want := []string{
		"received: from taro@example.co.jp to jiro@example.co.jp, bob@partner.example, carol@pass.example",
		"decision: internal recipient: pass → jiro@example.co.jp",
		"decision: rule (config): encrypt → bob@partner.example",
		"decision: rule pass.example: pass → carol@pass.example",
		"delivered: pass copy to jiro@example.co.jp, carol@pass.example",
		"delivered: encrypt copy to bob@partner.example; password job ",
		"answer: 250",
	}
	if len(lines) != len(want) {
		t.Fatalf("history:\n%s", strings.Join(lines, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("event %d: %q, want it to start %q", i, lines[i], want[i])
		}
	}
	if msgs, _ := h.store.FindMessages(ctx, store.MessageQuery{File: "見積書"}); len(msgs) != 1 || msgs[0].Result != "250" {
		t.Errorf("records with the file: %+v", msgs)
	}

	// The next hop deferring the zipped copy: the history and the
	// metrics say so.
	h.hop.SetFault(mailtest.Fault{Rcpt: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"},
		RcptAddr: "bob@partner.example"})
	second := strings.Replace(withAttachment, "<orig-1@", "<orig-2@", 1)
	if se := send(t, h.addr, "taro@example.co.jp", []string{"bob@partner.example"}, []byte(second)); se == nil || se.Code != 451 {
		t.Fatalf("deferred copy answered %v", se)
	}
	msgs, _ := h.store.FindMessages(ctx, store.MessageQuery{State: "deferred"})
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Result, "451 4.4.2") {
		t.Fatalf("deferred records: %+v", msgs)
	}
	evs, _ := h.store.Events(ctx, msgs[0].ID)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Event)
	}
	if !slices.Equal(kinds, []string{"received", "decision", "deferred", "answer"}) {
		t.Errorf("deferred message history %v", kinds)
	}

	text := scrape(t, m)
	for _, line := range []string{
		`zipgate_messages_total{action="encrypt",result="accepted"} 1`,
		`zipgate_messages_total{action="encrypt",result="deferred"} 1`,
		`zipgate_attachments_zipped_total 2`,
		`zipgate_relay_errors_total{class="deferred"} 1`,
		`zipgate_jobs{state="scheduled"} 1`,
		`zipgate_zip_duration_seconds_count 2`,
		`zipgate_build_info{commit="abc",goversion="`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// scrape reads /metrics as Prometheus would.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

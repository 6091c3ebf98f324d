package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func dur(d time.Duration) *time.Duration { return &d }

var defaults = Defaults{Delay: 10 * time.Minute, ZipMethod: "aes256", FilenameEncoding: "utf-8", Language: "ja+en"}

func TestNormalizePattern(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "*", want: "*"},
		{in: "Partner.Example", want: "partner.example"},
		{in: "partner.example.", want: "partner.example"},
		{in: "*.Partner.Example.", want: "*.partner.example"},
		{in: "例え.jp", want: "xn--r8jz45g.jp"},
		{in: "XN--R8JZ45G.JP", want: "xn--r8jz45g.jp"},
		{in: "*.例え.jp", want: "*.xn--r8jz45g.jp"},
		{in: "ｐａｒｔｎｅｒ.example", want: "partner.example"}, // full-width, as typed on a Japanese keyboard
		{in: "", err: "is not a domain"},
		{in: "*.", err: "is not a domain"},
		{in: "*.jp.*", err: "is not a domain"},
		{in: "bob@partner.example", err: "is not a domain"},
		{in: "part ner.example", err: "is not a domain"},
		{in: "*com", err: "is not a domain"},
		{in: "under_score.example", err: "is not a domain"},
	} {
		got, err := NormalizePattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizePattern(%q) = %q, %v; want an error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDomainOfAddress(t *testing.T) {
	for in, want := range map[string]string{
		"bob@Partner.Example":     "partner.example",
		"bob@partner.example.":    "partner.example",
		"bob@例え.jp":               "xn--r8jz45g.jp",
		"bob@xn--r8jz45g.jp":      "xn--r8jz45g.jp",
		`"a@b"@partner.example`:   "partner.example",
		"postmaster":              "",
		"":                        "",
		"bob@[192.0.2.1]":         "[192.0.2.1]",
		"bob@under_score.example": "under_score.example", // IDNA refuses it; it still matches exactly
		"bob@UNDER_SCORE.example": "under_score.example",
		"bob@sub.partner.example": "sub.partner.example",
		"ボブ@ｐａｒｔｎｅｒ.example":      "partner.example",
	} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMostSpecificRuleWins(t *testing.T) {
	rules := NewRules([]Policy{
		{Domain: "*", Action: Encrypt},
		{Domain: "*.example", Action: Reject},
		{Domain: "*.partner.example", Action: Pass},
		{Domain: "partner.example", ZipMethod: "zipcrypto"},
		{Domain: "xn--r8jz45g.jp", Action: Pass},
	})
	for _, tc := range []struct{ rcpt, rule string }{
		{"bob@partner.example", "partner.example"},
		{"bob@PARTNER.EXAMPLE.", "partner.example"},
		{"bob@sub.partner.example", "*.partner.example"},
		{"bob@a.b.partner.example", "*.partner.example"},
		{"bob@other.example", "*.example"},
		{"bob@example", "*"}, // "*.example" is for subdomains only
		{"bob@example.com", "*"},
		{"bob@例え.jp", "xn--r8jz45g.jp"},
		{"bob@xn--r8jz45g.jp", "xn--r8jz45g.jp"},
		{"postmaster", "*"},
	} {
		chain := rules.Chain(Domain(tc.rcpt))
		if len(chain) == 0 || chain[0].Domain != tc.rule {
			t.Errorf("%s: decided by %v, want %s", tc.rcpt, chain, tc.rule)
		}
	}
	if chain := NewRules(nil).Chain("partner.example"); len(chain) != 0 {
		t.Errorf("no rules, chain %v", chain)
	}
}

func TestUnsetFieldsComeFromLessSpecificRulesThenConfig(t *testing.T) {
	rules := NewRules([]Policy{
		{Domain: "*", Delay: dur(30 * time.Minute), Language: "ja"},
		{Domain: "partner.example", ZipMethod: "zipcrypto", FilenameEncoding: "cp932"},
	})
	g := Resolve(rules.Chain("partner.example"), defaults)
	want := Settings{Action: Encrypt, PasswordTo: ToRecipient, Delay: 30 * time.Minute,
		ZipMethod: "zipcrypto", FilenameEncoding: "cp932", Language: "ja", Guard: GuardHold}
	if g.Settings != want || g.Rule != "partner.example" {
		t.Fatalf("got %+v by %s, want %+v by partner.example", g.Settings, g.Rule, want)
	}
	wantFrom := map[string]string{"action": RuleConfig, "password_to": RuleConfig, "delay": "*",
		"zip_method": "partner.example", "filename_encoding": "partner.example", "language": "*",
		"hold": RuleConfig, "approvers": RuleConfig, "guard": RuleConfig,
		"link_expiry": RuleConfig, "max_downloads": RuleConfig, "link_auth": RuleConfig}
	if !reflect.DeepEqual(g.From, wantFrom) {
		t.Errorf("From = %v, want %v", g.From, wantFrom)
	}
	// A zero delay set on purpose is a value, not "unset".
	rules = NewRules([]Policy{{Domain: "*", Delay: dur(0)}})
	if g := Resolve(rules.Chain("x.example"), defaults); g.Settings.Delay != 0 || g.From["delay"] != "*" {
		t.Errorf("delay 0s: got %s from %s", g.Settings.Delay, g.From["delay"])
	}
	// No rule: the configuration decides.
	if g := Resolve(nil, defaults); g.Rule != RuleConfig || g.Settings.Delay != 10*time.Minute || g.Settings.ZipMethod != "aes256" {
		t.Errorf("no rule: %+v", g)
	}
}

func TestDecide(t *testing.T) {
	rules := NewRules([]Policy{
		{Domain: "pass.example", Action: Pass},
		{Domain: "reject.example", Action: Reject},
		{Domain: "explorer.example", ZipMethod: "zipcrypto", FilenameEncoding: "cp932"},
		{Domain: "phone.example", PasswordTo: ToSender},
	})
	local, err := NewDomainSet([]string{"example.co.jp", "*.example.co.jp"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{LocalDomains: local, Defaults: defaults}
	type grp struct {
		rule, reason string
		action       Action
		rcpts        string
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		from   string
		rcpts  []string
		local  bool
		groups []grp
	}{
		{
			name: "split: colleague, pass partner, encrypt partner",
			cfg:  cfg, from: "alice@example.co.jp",
			rcpts: []string{"bob@example.co.jp", "carol@pass.example", "dave@partner.example", "erin@osaka.example.co.jp", "fred@pass.example"},
			local: true,
			groups: []grp{
				{"", ReasonInternal, Pass, "bob@example.co.jp,erin@osaka.example.co.jp"},
				{"pass.example", "", Pass, "carol@pass.example,fred@pass.example"},
				{RuleConfig, "", Encrypt, "dave@partner.example"},
			},
		},
		{
			name: "sender not local: everything passes",
			cfg:  cfg, from: "stranger@internet.example", rcpts: []string{"bob@example.co.jp", "dave@reject.example"},
			groups: []grp{{"", ReasonSenderNotLocal, Pass, "bob@example.co.jp,dave@reject.example"}},
		},
		{
			name: "the null sender is not local",
			cfg:  cfg, from: "", rcpts: []string{"dave@partner.example"},
			groups: []grp{{"", ReasonSenderNotLocal, Pass, "dave@partner.example"}},
		},
		{
			name: "sender in a subdomain, case and trailing dot",
			cfg:  cfg, from: "alice@Tokyo.Example.Co.Jp.", rcpts: []string{"dave@reject.example"}, local: true,
			groups: []grp{{"reject.example", "", Reject, "dave@reject.example"}},
		},
		{
			name: "RCPT TO:<Postmaster> is this host's postmaster: internal",
			cfg:  cfg, from: "alice@example.co.jp", rcpts: []string{"Postmaster", "dave@partner.example"}, local: true,
			groups: []grp{
				{"", ReasonInternal, Pass, "Postmaster"},
				{RuleConfig, "", Encrypt, "dave@partner.example"},
			},
		},
		{
			name: "no local domains: every sender local, no recipient internal but the postmaster",
			cfg:  Config{Defaults: defaults}, from: "anyone@anywhere.example", rcpts: []string{"postmaster"}, local: true,
			groups: []grp{{"", ReasonInternal, Pass, "postmaster"}},
		},
		{
			name: "no local domains: every sender local, no recipient internal",
			cfg:  Config{Defaults: defaults}, from: "anyone@anywhere.example",
			rcpts: []string{"bob@example.co.jp", "dave@explorer.example", "eve@phone.example"}, local: true,
			groups: []grp{
				{RuleConfig, "", Encrypt, "bob@example.co.jp"},
				{"explorer.example", "", Encrypt, "dave@explorer.example"},
				{"phone.example", "", Encrypt, "eve@phone.example"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Sender: tc.from, Rcpts: tc.rcpts}, rules, tc.cfg)
			if d.SenderLocal != tc.local {
				t.Errorf("SenderLocal = %v", d.SenderLocal)
			}
			var got []grp
			for _, g := range d.Groups {
				got = append(got, grp{g.Rule, g.Reason, g.Settings.Action, strings.Join(g.Rcpts, ",")})
			}
			if !reflect.DeepEqual(got, tc.groups) {
				t.Errorf("groups\n got %v\nwant %v", got, tc.groups)
			}
		})
	}
	// The same input, the same decision.
	in := Input{Sender: "alice@example.co.jp", Rcpts: []string{"dave@explorer.example"}}
	a, b := Decide(in, rules, cfg), Decide(in, rules, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Error("Decide is not deterministic")
	}
	if s := a.Groups[0].Settings; s.ZipMethod != "zipcrypto" || s.FilenameEncoding != "cp932" {
		t.Errorf("explorer.example settings %+v", s)
	}
}

func TestValidate(t *testing.T) {
	ok := Policy{Domain: "partner.example", Action: Encrypt, PasswordTo: Manual, Delay: dur(15 * time.Minute),
		ZipMethod: "zipcrypto", FilenameEncoding: "cp932", Language: "ja+en", Note: "Windows Explorer"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Policy{Domain: "bad domain", Action: "zip", PasswordTo: "boss", Delay: dur(-time.Second),
		ZipMethod: "aes128", FilenameEncoding: "sjis", Language: "fr"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"bad domain", `action: "zip"`, `password_to: "boss"`, "delay: -1s", `zip_method: "aes128"`,
		`filename_encoding: "sjis"`, `language: "fr"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// The whole message waits for the longest hold of its groups and for one
// approver of each set; internal recipients and outside senders do not
// count; the guard counts distinct outside addresses shown in To and Cc.
func TestHoldApprovalsAndGuard(t *testing.T) {
	local, _ := NewDomainSet([]string{"example.co.jp"})
	rules := NewRules([]Policy{
		{Domain: "*", Hold: dur(2 * time.Minute)},
		{Domain: "slow.example", Hold: dur(10 * time.Minute)},
		{Domain: "bank.example", Approvers: []string{"Boss@example.co.jp", "lead@example.co.jp", "boss@example.co.jp"}},
		{Domain: "*.bank.example", Approvers: []string{"lead@example.co.jp", "boss@example.co.jp"}},
		{Domain: "press.example", Approvers: []string{}}, // explicitly none
		{Domain: "strict.example", Guard: GuardReject},
		{Domain: "nohold.example", Hold: dur(0)},
	})
	cfg := Config{LocalDomains: local, Defaults: defaults, MaxVisibleExternal: 3}
	d := Decide(Input{Sender: "a@example.co.jp", Rcpts: []string{"b@slow.example", "c@bank.example", "d@x.bank.example", "e@example.co.jp"}}, rules, cfg)
	if d.Hold != 10*time.Minute {
		t.Errorf("hold %s, want the longest, 10m", d.Hold)
	}
	if len(d.Approvals) != 1 || strings.Join(d.Approvals[0], ",") != "boss@example.co.jp,lead@example.co.jp" {
		t.Errorf("approvals %v, want one set (the same addresses in any case and order)", d.Approvals)
	}
	if !d.Waits() {
		t.Error("does not wait")
	}
	if d := Decide(Input{Sender: "a@example.co.jp", Rcpts: []string{"e@example.co.jp"}}, rules, cfg); d.Waits() {
		t.Errorf("mail only to colleagues waits: %+v", d)
	}
	if d := Decide(Input{Sender: "x@outside.example", Rcpts: []string{"b@slow.example"}}, rules, cfg); d.Waits() {
		t.Errorf("mail from outside waits: %+v", d)
	}
	if d := Decide(Input{Sender: "a@example.co.jp", Rcpts: []string{"p@press.example", "n@nohold.example"}}, rules, cfg); len(d.Approvals) != 0 || d.Hold != 2*time.Minute {
		t.Errorf("press.example has no approvers and * holds 2m: %+v", d)
	}

	visible := func(n int, extra ...string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("user%d@customer.example", i))
		}
		return append(out, extra...)
	}
	for _, tc := range []struct {
		name    string
		rcpts   []string
		visible []string
		want    string
		count   int
	}{
		{"at the limit", []string{"b@slow.example"}, visible(3), "", 3},
		{"one over", []string{"b@slow.example"}, visible(4), GuardHold, 4},
		{"colleagues and duplicates do not count", []string{"b@slow.example"},
			visible(3, "e@example.co.jp", "f@EXAMPLE.co.jp", "USER0@customer.example", "user1@customer.example"), "", 3},
		{"a reject policy refuses", []string{"b@slow.example", "s@strict.example"}, visible(4), GuardReject, 4},
	} {
		d := Decide(Input{Sender: "a@example.co.jp", Rcpts: tc.rcpts, Visible: tc.visible}, rules, cfg)
		if d.Guard != tc.want || d.Visible != tc.count {
			t.Errorf("%s: guard %q with %d visible, want %q with %d", tc.name, d.Guard, d.Visible, tc.want, tc.count)
		}
	}
	off := cfg
	off.MaxVisibleExternal = 0
	if d := Decide(Input{Sender: "a@example.co.jp", Rcpts: []string{"b@x.example"}, Visible: visible(100)}, rules, off); d.Guard != "" {
		t.Errorf("guard off, but %q", d.Guard)
	}
	bad := Policy{Domain: "x.example", Approvers: []string{"boss", "a@b@", "ok@example.co.jp"}, Hold: dur(-time.Minute), Guard: "warn"}
	err := bad.Validate()
	for _, want := range []string{`approvers: "boss"`, `approvers: "a@b@"`, "hold: -1m0s", `guard: "warn"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
}

func TestLinkFieldsInheritAndOnlyCountForLinks(t *testing.T) {
	def := defaults
	def.LinkExpiry, def.MaxDownloads, def.LinkAuth = 7*24*time.Hour, 0, AuthPassword
	five := 5
	rules := NewRules([]Policy{
		{Domain: "*", MaxDownloads: &five},
		{Domain: "partner.example", Action: Link, LinkExpiry: dur(48 * time.Hour)},
		{Domain: "otp.example", Action: Link, LinkAuth: AuthOTP, PasswordTo: ToSender},
	})
	g := Resolve(rules.Chain("partner.example"), def)
	want := Settings{Action: Link, PasswordTo: ToRecipient, Delay: 10 * time.Minute, Language: "ja+en",
		Guard: GuardHold, LinkExpiry: 48 * time.Hour, MaxDownloads: 5, LinkAuth: AuthPassword}
	if g.Settings != want {
		t.Fatalf("link: got %+v, want %+v", g.Settings, want)
	}
	if g.From["max_downloads"] != "*" || g.From["link_expiry"] != "partner.example" || g.From["link_auth"] != RuleConfig {
		t.Errorf("From = %v", g.From)
	}
	// otp: no password mail, so neither its recipient nor its delay.
	g = Resolve(rules.Chain("otp.example"), def)
	want = Settings{Action: Link, Language: "ja+en", Guard: GuardHold, LinkExpiry: 7 * 24 * time.Hour,
		MaxDownloads: 5, LinkAuth: AuthOTP}
	if g.Settings != want {
		t.Fatalf("otp: got %+v, want %+v", g.Settings, want)
	}
	// encrypt keeps none of the link fields: one group with any other zip.
	g = Resolve(rules.Chain("other.example"), def)
	if g.Settings.LinkExpiry != 0 || g.Settings.MaxDownloads != 0 || g.Settings.LinkAuth != "" {
		t.Errorf("encrypt carries link fields: %+v", g.Settings)
	}
	d := Decide(Input{Sender: "a@example.jp", Rcpts: []string{"b@partner.example", "c@other.example"}}, rules, Config{Defaults: def})
	if !d.Has(Link) || !d.Has(Encrypt) || !d.TakesFiles() || len(d.Groups) != 2 {
		t.Errorf("decision %+v", d)
	}
}

func TestLinkFieldsValidate(t *testing.T) {
	neg, huge := -1, 1000000
	for _, p := range []Policy{
		{Domain: "a.example", LinkAuth: "sms"},
		{Domain: "a.example", LinkExpiry: dur(30 * time.Second)},
		{Domain: "a.example", LinkExpiry: dur(400 * 24 * time.Hour)},
		{Domain: "a.example", MaxDownloads: &neg},
		{Domain: "a.example", MaxDownloads: &huge},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
	zero := 0
	ok := Policy{Domain: "a.example", Action: Link, LinkAuth: AuthOTP, LinkExpiry: dur(7 * 24 * time.Hour), MaxDownloads: &zero}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid link policy refused: %v", err)
	}
}

func TestParseDurationTakesDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour,
		"90m": 90 * time.Minute, "0s": 0} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "7x", "-1d", "1.5d", "7dd", "", "213504d", "36501d", "9223372036854775807d", "36500d2562047h"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

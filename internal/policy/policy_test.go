package policy

import (
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
		ZipMethod: "zipcrypto", FilenameEncoding: "cp932", Language: "ja"}
	if g.Settings != want || g.Rule != "partner.example" {
		t.Fatalf("got %+v by %s, want %+v by partner.example", g.Settings, g.Rule, want)
	}
	wantFrom := map[string]string{"action": RuleConfig, "password_to": RuleConfig, "delay": "*",
		"zip_method": "partner.example", "filename_encoding": "partner.example", "language": "*"}
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

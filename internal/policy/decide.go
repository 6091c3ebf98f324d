package policy

import (
	"sort"
	"strings"
	"time"
)

// Input is what a decision looks at: the envelope, and the addresses the
// message shows in To and Cc (decoded).
type Input struct {
	Sender  string
	Rcpts   []string
	Visible []string
}

// Config is the part of the configuration decisions use.
type Config struct {
	// LocalDomains: only senders here are processed, and recipients here
	// are internal. Empty: every sender is local, no recipient internal (but the
	// postmaster of this host, RCPT TO:<Postmaster>).
	LocalDomains DomainSet
	Defaults     Defaults
	// MaxVisibleExternal trips the To/Cc guard when To and Cc show more
	// addresses outside the local domains; 0 turns it off.
	MaxVisibleExternal int
}

// Reasons a group gets the message as sent without a rule deciding.
const (
	ReasonSenderNotLocal = "sender not local"
	ReasonInternal       = "internal recipient"
)

// RuleConfig names the configuration where no stored rule matched or a
// field was left unset by every rule.
const RuleConfig = "(config)"

// Group is the recipients that get the same treatment from the same rule.
type Group struct {
	// Rule is the pattern of the rule that decided, RuleConfig when no
	// rule matched; "" when a Reason decided.
	Rule   string
	Reason string
	// Settings are the effective values; only Action matters when it is
	// not Encrypt.
	Settings Settings
	// From says, per field name (delay, zip_method, ...), which rule's
	// pattern gave its value, or RuleConfig.
	From  map[string]string
	Rcpts []string
}

// Decision is what happens to one message, per recipient group, in the
// order the recipients came, and to the message as a whole.
type Decision struct {
	SenderLocal bool
	Groups      []Group
	// Hold is how long the whole message waits before it leaves: the
	// longest hold of its groups.
	Hold time.Duration
	// Approvals are the approver sets of its groups: one address of each
	// must approve before the message leaves.
	Approvals [][]string
	// Visible counts the distinct outside addresses To and Cc show; Guard
	// is GuardHold or GuardReject when that is over the limit, else "".
	Visible int
	Guard   string
}

// Waits reports whether the message must wait before it leaves.
func (d Decision) Waits() bool {
	return d.Hold > 0 || len(d.Approvals) > 0 || d.Guard == GuardHold
}

// TakesFiles reports whether some group's copy has its attachments
// taken out: into a zip (Encrypt) or onto the gateway (Link).
func (d Decision) TakesFiles() bool { return d.Has(Encrypt) || d.Has(Link) }

// Has reports whether some group gets action a.
func (d Decision) Has(a Action) bool {
	for _, g := range d.Groups {
		if g.Settings.Action == a {
			return true
		}
	}
	return false
}

// Decide applies the rules and the configuration to an envelope. It is a
// pure function: same input, same decision.
func Decide(in Input, rules Rules, c Config) Decision {
	if len(c.LocalDomains) > 0 && !c.LocalDomains.Contains(Domain(in.Sender)) {
		return Decision{Groups: []Group{{Reason: ReasonSenderNotLocal, Settings: Settings{Action: Pass},
			Rcpts: append([]string(nil), in.Rcpts...)}}}
	}
	d := Decision{SenderLocal: true}
	type key struct {
		rule, reason string
		s            Settings
	}
	index := map[key]int{}
	for _, r := range in.Rcpts {
		dom := Domain(r)
		var g Group
		// An address without a domain is this host's postmaster, the one
		// RFC 5321 allows (RCPT TO:<Postmaster>): internal, whatever the
		// local domains.
		if dom == "" || len(c.LocalDomains) > 0 && c.LocalDomains.Contains(dom) {
			g = Group{Reason: ReasonInternal, Settings: Settings{Action: Pass}}
		} else {
			g = Resolve(rules.Chain(dom), c.Defaults)
		}
		k := key{g.Rule, g.Reason, g.Settings}
		i, ok := index[k]
		if !ok {
			i = len(d.Groups)
			index[k] = i
			d.Groups = append(d.Groups, g)
		}
		d.Groups[i].Rcpts = append(d.Groups[i].Rcpts, r)
	}
	guard := ""
	sets := map[string]bool{}
	for _, g := range d.Groups {
		if g.Reason != "" { // internal recipients: no rule applies
			continue
		}
		d.Hold = max(d.Hold, g.Settings.Hold)
		if a := g.Settings.Approvers; a != "" && !sets[a] {
			sets[a] = true
			d.Approvals = append(d.Approvals, g.Settings.ApproverList())
		}
		if g.Settings.Guard == GuardReject || guard == "" {
			guard = g.Settings.Guard
		}
	}
	seen := map[string]bool{}
	for _, a := range in.Visible {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		if len(c.LocalDomains) == 0 || !c.LocalDomains.Contains(Domain(a)) {
			d.Visible++
		}
	}
	if c.MaxVisibleExternal > 0 && d.Visible > c.MaxVisibleExternal {
		d.Guard = GuardHold
		if guard == GuardReject {
			d.Guard = GuardReject
		}
	}
	return d
}

// Resolve fills every field from the chain of matching rules (most
// specific first), then from the defaults.
func Resolve(chain []Policy, def Defaults) Group {
	g := Group{Rule: RuleConfig, From: map[string]string{}}
	if len(chain) > 0 {
		g.Rule = chain[0].Domain
	}
	s := &g.Settings
	pick := func(field string, set func(p Policy) bool, fallback func()) {
		for _, p := range chain {
			if set(p) {
				g.From[field] = p.Domain
				return
			}
		}
		g.From[field] = RuleConfig
		fallback()
	}
	pick("action", func(p Policy) bool { s.Action = p.Action; return p.Action != "" },
		func() { s.Action = Encrypt })
	pick("password_to", func(p Policy) bool { s.PasswordTo = p.PasswordTo; return p.PasswordTo != "" },
		func() { s.PasswordTo = ToRecipient })
	pick("delay", func(p Policy) bool {
		if p.Delay != nil {
			s.Delay = *p.Delay
		}
		return p.Delay != nil
	}, func() { s.Delay = def.Delay })
	pick("zip_method", func(p Policy) bool { s.ZipMethod = p.ZipMethod; return p.ZipMethod != "" },
		func() { s.ZipMethod = def.ZipMethod })
	pick("filename_encoding", func(p Policy) bool { s.FilenameEncoding = p.FilenameEncoding; return p.FilenameEncoding != "" },
		func() { s.FilenameEncoding = def.FilenameEncoding })
	pick("language", func(p Policy) bool { s.Language = p.Language; return p.Language != "" },
		func() { s.Language = def.Language })
	pick("hold", func(p Policy) bool {
		if p.Hold != nil {
			s.Hold = *p.Hold
		}
		return p.Hold != nil
	}, func() { s.Hold = def.Hold })
	pick("approvers", func(p Policy) bool {
		if p.Approvers != nil {
			s.Approvers = approverKey(p.Approvers)
		}
		return p.Approvers != nil // an empty list is "none", on purpose
	}, func() { s.Approvers = "" })
	pick("guard", func(p Policy) bool { s.Guard = p.Guard; return p.Guard != "" },
		func() { s.Guard = GuardHold })
	pick("link_expiry", func(p Policy) bool {
		if p.LinkExpiry != nil {
			s.LinkExpiry = *p.LinkExpiry
		}
		return p.LinkExpiry != nil
	}, func() { s.LinkExpiry = def.LinkExpiry })
	pick("max_downloads", func(p Policy) bool {
		if p.MaxDownloads != nil {
			s.MaxDownloads = *p.MaxDownloads
		}
		return p.MaxDownloads != nil
	}, func() { s.MaxDownloads = def.MaxDownloads })
	pick("link_auth", func(p Policy) bool { s.LinkAuth = p.LinkAuth; return p.LinkAuth != "" },
		func() { s.LinkAuth = orAuth(def.LinkAuth) })
	// Fields that mean nothing for the action are cleared: equal settings
	// keep one group per rule and action.
	switch s.Action {
	case Encrypt:
		s.LinkExpiry, s.MaxDownloads, s.LinkAuth = 0, 0, ""
	case Link:
		// No zip leaves; the one the page makes is AES-256 with UTF-8 names.
		s.ZipMethod, s.FilenameEncoding = "", ""
		if s.LinkAuth == AuthOTP {
			// No password mail: nobody to send it to, no delay.
			s.PasswordTo, s.Delay = "", 0
		}
	default:
		*s = Settings{Action: s.Action, Hold: s.Hold, Approvers: s.Approvers, Guard: s.Guard}
	}
	return g
}

func orAuth(a string) string {
	if a == "" {
		return AuthPassword
	}
	return a
}

// approverKey is a set of addresses as Settings keeps it.
func approverKey(list []string) string {
	var out []string
	seen := map[string]bool{}
	for _, a := range list {
		a = strings.ToLower(strings.TrimSpace(a))
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

package mimeparam

import "strings"

// Parse parses a Content-Type or Content-Disposition value leniently. It
// returns the lowercased media type or disposition ("" if absent or not a
// valid token) and the parameters with lowercased keys; the first occurrence
// of a duplicated parameter wins, and an RFC 2231 form (name*= or name*0*=…)
// wins over the plain one.
//
// RFC 2231 values are decoded to UTF-8. Plain values are returned as written
// (unfolded, quoted-pairs \" and \\ resolved) without RFC 2047 or 8-bit
// decoding, so that a boundary still matches the body byte for byte; use
// FileName or DecodeHeader for display text.
func Parse(value string) (string, map[string]string) {
	s := unfold(value)
	typ, rest := mediaType(s)
	return typ, parseParams(rest)
}

// unfold removes line breaks. A break followed by white space is a fold
// (RFC 5322 2.2.3); one followed by anything else still separates tokens.
func unfold(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\r' && c != '\n' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && !strings.ContainsRune(" \t\r\n", rune(s[i+1])) {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// isTokenChar reports whether c may appear in an RFC 2045 token.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// mediaType splits off the leading type ("text/plain", "attachment"). The
// type ends at ";" or white space, so "application/pdf name=x" and a
// boundary folded onto the next line without ";" still yield parameters.
func mediaType(s string) (typ, rest string) {
	s = strings.TrimLeft(s, " \t")
	end := strings.IndexAny(s, "; \t")
	if end < 0 {
		end = len(s)
	}
	word := s[:end]
	if strings.ContainsRune(word, '=') {
		return "", s // no type at all, only parameters
	}
	if i := strings.IndexByte(word, '('); i > 0 {
		word = word[:i] // RFC 822 comment: "text/plain(x)"
	}
	if !validType(word) {
		return "", s[end:]
	}
	return strings.ToLower(word), s[end:]
}

// validType accepts "token" or "token/token".
func validType(w string) bool {
	major, minor, slash := strings.Cut(w, "/")
	if major == "" || (slash && minor == "") {
		return false
	}
	for _, part := range []string{major, minor} {
		for i := 0; i < len(part); i++ {
			if !isTokenChar(part[i]) {
				return false
			}
		}
	}
	return true
}

// rawParam is one attribute=value pair as written.
type rawParam struct{ key, val string }

// splitParams scans "; a=b; c="d"" leniently: separators may be missing,
// stray words without "=" are skipped, unquoted values may contain
// tspecials and even spaces.
func splitParams(s string) []rawParam {
	var out []rawParam
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case isWSP(c) || c == ';':
			i++
			continue
		case c == '"': // stray quoted string: skip it
			_, i = readQuoted(s, i)
			continue
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ';' && s[i] != '"' && !isWSP(s[i]) {
			i++
		}
		key := s[start:i]
		j := skipWSP(s, i)
		if j >= len(s) || s[j] != '=' {
			continue // a word without a value
		}
		i = skipWSP(s, j+1)
		var val string
		if i < len(s) && s[i] == '"' {
			val, i = readQuoted(s, i)
		} else {
			val, i = readUnquoted(s, i)
		}
		if key != "" {
			out = append(out, rawParam{strings.ToLower(key), val})
		}
	}
	return out
}

func skipWSP(s string, i int) int {
	for i < len(s) && isWSP(s[i]) {
		i++
	}
	return i
}

// readQuoted reads the quoted string starting at s[i] == '"'. Only \" and
// \\ are treated as quoted-pairs: senders put unescaped Windows paths such as
// "C:\Users\x" in quoted strings and mail clients show them as written.
// An unterminated string runs to the end.
func readQuoted(s string, i int) (string, int) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1
		case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			i++
			c = s[i]
		}
		b.WriteByte(c)
	}
	return b.String(), i
}

// readUnquoted reads a value up to ";" or the end. White space ends it only
// when a new "attr=" follows, so "My File.pdf" and several unquoted
// encoded-words stay whole while "a.pdf size=1" is split. Tspecials such as
// "(" and "/" are kept: "Invoice_(1).pdf", "attach/01".
func readUnquoted(s string, i int) (string, int) {
	start := i
	for i < len(s) && s[i] != ';' {
		if !isWSP(s[i]) {
			i++
			continue
		}
		j := skipWSP(s, i)
		if startsParam(s[j:]) {
			break
		}
		i = j
	}
	v := strings.TrimRight(s[start:i], " \t")
	// A trailing RFC 822 comment: "charset=us-ascii (Plain text)".
	if k := strings.LastIndex(v, " ("); k > 0 && strings.HasSuffix(v, ")") {
		v = strings.TrimRight(v[:k], " \t")
	}
	return v, i
}

// startsParam reports whether s begins with a token followed by "=".
func startsParam(s string) bool {
	n := 0
	for n < len(s) && isTokenChar(s[n]) {
		n++
	}
	if n == 0 {
		return false
	}
	n = skipWSP(s, n)
	return n < len(s) && s[n] == '='
}

// parseParams turns the raw pairs into the result map, joining RFC 2231
// segments.
func parseParams(s string) map[string]string {
	params := map[string]string{}
	var ext map[string]*extParam // most values have no RFC 2231 forms
	for _, p := range splitParams(s) {
		name, idx, encoded, ok := split2231(p.key)
		if !ok {
			if _, dup := params[p.key]; !dup {
				params[p.key] = p.val
			}
			continue
		}
		if ext == nil {
			ext = map[string]*extParam{}
		}
		e := ext[name]
		if e == nil {
			e = &extParam{segs: map[int]segment{}}
			ext[name] = e
		}
		e.add(idx, segment{p.val, encoded})
	}
	for name, e := range ext {
		// An empty RFC 2231 value does not hide a plain one.
		if v := e.decode(); v != "" || params[name] == "" {
			params[name] = v
		}
	}
	return params
}

// Conflicting reports whether value gives the parameter key more than
// once with different values: as plain parameters, as RFC 2231 forms
// (key*=, key*0=, ...), or one of each. Readers disagree on which one
// counts (the first, the last, or the RFC 2231 one), so a caller that
// must not guess treats the header as ambiguous.
func Conflicting(value, key string) bool {
	_, rest := mediaType(unfold(value))
	key = strings.ToLower(key)
	var seen []string
	add := func(v string) bool {
		for _, s := range seen {
			if s != v {
				return true
			}
		}
		seen = append(seen, v)
		return false
	}
	ext := &extParam{segs: map[int]segment{}}
	hasExt := false
	for _, p := range splitParams(rest) {
		if p.key == key {
			if add(p.val) {
				return true
			}
			continue
		}
		name, idx, encoded, ok := split2231(p.key)
		if !ok || name != key {
			continue
		}
		hasExt = true
		if old, dup := ext.segs[idx]; idx >= 0 && dup && old.val != p.val {
			return true
		}
		if idx < 0 && ext.single != nil && *ext.single != p.val {
			return true
		}
		ext.add(idx, segment{p.val, encoded})
	}
	return hasExt && add(ext.decode())
}

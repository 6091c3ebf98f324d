package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The admin pages speak Japanese and English: one flat catalog per
// language (locales/*.json, in the binary), chosen by the language
// cookie (the switch on every page), else the browser's Accept-Language,
// else Japanese. A key missing from a catalog shows as the key, and a
// test keeps the two catalogs to the same keys.

//go:embed locales/*.json
var localeFS embed.FS

//go:embed admintmpl/*.html
var adminTmplFS embed.FS

var catalogs = func() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, lang := range []string{"ja", "en"} {
		b, err := localeFS.ReadFile("locales/" + lang + ".json")
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("locales/%s.json: %v", lang, err))
		}
		out[lang] = m
	}
	return out
}()

// adminPages are parsed once at start: a broken template stops the
// program's tests, not a request.
var adminPages = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
}).ParseFS(adminTmplFS, "admintmpl/*.html"))

// lang is the admin's language for r.
func (a *Admin) lang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		if _, ok := catalogs[c.Value]; ok {
			return c.Value
		}
	}
	return acceptLanguage(r.Header.Get("Accept-Language"))
}

// acceptLanguage picks ja or en by the browser's preferences (q values),
// Japanese when it names neither.
func acceptLanguage(h string) string {
	type pref struct {
		lang string
		q    float64
		i    int
	}
	var prefs []pref
	for i, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if _, ok := catalogs[base]; ok && q > 0 {
			prefs = append(prefs, pref{base, q, i})
		}
	}
	sort.SliceStable(prefs, func(a, b int) bool { return prefs[a].q > prefs[b].q })
	if len(prefs) > 0 {
		return prefs[0].lang
	}
	return "ja"
}

// pageView is what every admin page has: the language, who is signed
// in, the CSRF value of the forms, and the links of the frame.
type pageView struct {
	Lang   string
	Admin  string
	CSRF   string
	Active string // the page in the navigation
	// Here is the path and query of this page, for the language switch.
	Here  string
	Other string // the other language
	loc   *time.Location
}

// T is the text of key in the page's language.
func (v *pageView) T(key string) string {
	if s, ok := catalogs[v.Lang][key]; ok {
		return s
	}
	return key
}

// Tf is T with fmt verbs filled.
func (v *pageView) Tf(key string, args ...any) string { return fmt.Sprintf(v.T(key), args...) }

// Time shows t in the server's zone, "—" when zero.
func (v *pageView) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.loc).Format("2006-01-02 15:04:05")
}

// LangLink switches to the other language and comes back here.
func (v *pageView) LangLink() string {
	return "/admin/lang?to=" + v.Other + "&back=" + url.QueryEscape(v.Here)
}

func (a *Admin) pageView(r *http.Request, q *adminReq, active string) pageView {
	v := pageView{Lang: a.lang(r), Active: active, Here: r.URL.Path, loc: a.loc()}
	if q != nil {
		v.Lang, v.Admin, v.CSRF = q.lang, q.name, q.sess.CSRF
	}
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		v.Here += "?" + r.URL.RawQuery
	}
	v.Other = "en"
	if v.Lang == "en" {
		v.Other = "ja"
	}
	return v
}

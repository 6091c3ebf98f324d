package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// decoder puts a parsed TOML file into a Config one key at a time, so
// that a bad value (delay = "10 minutes"), a value of the wrong type or an
// unknown key is reported with every other problem instead of stopping
// the decode at the first one. A key that fails keeps its default.
type decoder struct {
	md   toml.MetaData
	file string
	p    *Problems
	rank map[string]int // position of each key in the file, for the order of the report
}

func newDecoder(md toml.MetaData, file string, p *Problems) *decoder {
	d := &decoder{md: md, file: file, p: p, rank: map[string]int{}}
	for i, k := range md.Keys() {
		if _, ok := d.rank[k.String()]; !ok {
			d.rank[k.String()] = i
		}
	}
	return d
}

// table decodes the keys of one TOML table into the struct v. key is
// the table's path as TOML metadata knows it; shown is how the report
// names it (with the index of an array element, "dkim.key[1]").
func (d *decoder) table(tbl map[string]toml.Primitive, v reflect.Value, key []string, shown string) {
	fields := map[string]reflect.Value{}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("toml"); ok {
			if tag, _, _ = strings.Cut(tag, ","); tag == "-" {
				continue
			} else if tag != "" {
				name = tag
			}
		}
		fields[name] = v.Field(i)
	}
	names := make([]string, 0, len(tbl))
	for k := range tbl {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return d.rank[joinKey(key, names[i])] < d.rank[joinKey(key, names[j])]
	})
	for _, k := range names {
		sub := append(append([]string(nil), key...), k)
		name := k
		if shown != "" {
			name = shown + "." + k
		}
		fv, ok := fields[k]
		if !ok {
			d.p.add("%s: unknown key %q", d.file, name)
			continue
		}
		d.value(tbl[k], fv, sub, name)
	}
}

func (d *decoder) value(prim toml.Primitive, fv reflect.Value, key []string, shown string) {
	t := fv.Type()
	switch {
	case t.Kind() == reflect.Struct && !isText(t):
		if found := d.md.Type(key...); found != "Hash" && found != "" {
			d.p.add("%s: %s: want a table ([%s]), found %s", d.file, shown, shown, tomlWord(found))
			return
		}
		var tbl map[string]toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &tbl); err != nil {
			d.p.add("%s: %s: %s", d.file, shown, decodeMessage(err))
			return
		}
		d.table(tbl, fv, key, shown)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !isText(t.Elem()):
		var tbls []map[string]toml.Primitive
		if found := d.md.Type(key...); found != "ArrayHash" && found != "Array" {
			d.p.add("%s: %s: want tables ([[%s]]), found %s", d.file, shown, shown, tomlWord(found))
			return
		}
		if err := d.md.PrimitiveDecode(prim, &tbls); err != nil {
			d.p.add("%s: %s: want tables ([[%s]]): %s", d.file, shown, shown, decodeMessage(err))
			return
		}
		out := reflect.MakeSlice(t, len(tbls), len(tbls))
		for i, tbl := range tbls {
			d.table(tbl, out.Index(i), key, fmt.Sprintf("%s[%d]", shown, i))
		}
		fv.Set(out)
	default:
		// A fresh value, so that a failed decode leaves the default.
		nv := reflect.New(t)
		if err := d.md.PrimitiveDecode(prim, nv.Interface()); err != nil {
			msg := decodeMessage(err)
			if strings.Contains(msg, "incompatible types") || (isText(t) && d.md.Type(key...) != "String") {
				msg = fmt.Sprintf("want %s, found %s", goWord(t), tomlWord(d.md.Type(key...)))
			}
			d.p.add("%s: %s: %s", d.file, shown, msg)
			return
		}
		fv.Set(nv.Elem())
	}
}

func joinKey(key []string, k string) string {
	return toml.Key(append(append([]string(nil), key...), k)).String()
}

var textType = reflect.TypeFor[encoding.TextUnmarshaler]()

func isText(t reflect.Type) bool { return reflect.PointerTo(t).Implements(textType) }

// decodeMessage is the error without the decoder's "toml: line N (last
// key ...)" prefix: the report names the key itself.
func decodeMessage(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Message
	}
	s := err.Error()
	if strings.HasPrefix(s, "toml: line ") {
		if _, rest, ok := strings.Cut(s, "): "); ok {
			return rest
		}
	}
	return strings.TrimPrefix(s, "toml: ")
}

func goWord(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return `a duration such as "30s", "10m" or "2h"`
	case isText(t), t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(goWord(t.Elem()), "a "), "an ") + "s"
	}
	return t.String()
}

func tomlWord(found string) string {
	switch found {
	case "String":
		return "a string"
	case "Integer":
		return "a whole number"
	case "Float":
		return "a number with a fraction"
	case "Bool":
		return "true or false"
	case "Array":
		return "a list"
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "tables"
	case "Datetime":
		return "a date"
	}
	return "a value of type " + found
}

package mimeparam

import (
	"maps"
	"testing"
)

func TestParse(t *testing.T) {
	type m = map[string]string
	tests := []struct {
		in     string
		typ    string
		params m
	}{
		{"text/plain; charset=us-ascii", "text/plain", m{"charset": "us-ascii"}},
		{`Text/HTML; Charset="UTF-8"`, "text/html", m{"charset": "UTF-8"}},
		{"text/plain;charset=utf-8;format=flowed", "text/plain", m{"charset": "utf-8", "format": "flowed"}},
		{"inline", "inline", m{}},
		{"", "", m{}},
		// Missing ";" before a parameter.
		{"application/pdf name=foo.pdf", "application/pdf", m{"name": "foo.pdf"}},
		{`application/pdf name=""`, "application/pdf", m{"name": ""}},
		{"application/pdf name=My File.pdf size=123", "application/pdf", m{"name": "My File.pdf", "size": "123"}},
		// Boundary on the next line without ";": folded raw, LF only, unfolded.
		{"multipart/mixed\r\n\tboundary=\"b1\"", "multipart/mixed", m{"boundary": "b1"}},
		{"multipart/mixed\n boundary=b1", "multipart/mixed", m{"boundary": "b1"}},
		{`multipart/mixed boundary="b1"`, "multipart/mixed", m{"boundary": "b1"}},
		{"multipart/mixed;\r\n boundary=\"=_a b?c\"", "multipart/mixed", m{"boundary": "=_a b?c"}},
		{"multipart/alternative; boundary=----=_Part_1.2", "multipart/alternative", m{"boundary": "----=_Part_1.2"}},
		// Duplicates: first wins, also across case.
		{`application/pdf; name="a.pdf"; name="b.pdf"`, "application/pdf", m{"name": "a.pdf"}},
		{"x/y; NAME=a; name=b", "x/y", m{"name": "a"}},
		{"application/x-gzip; NAME=blah.gz", "application/x-gzip", m{"name": "blah.gz"}},
		// Unquoted tspecials.
		{"application/pdf; name=Invoice_(1).pdf", "application/pdf", m{"name": "Invoice_(1).pdf"}},
		{"attachment; filename=attach/01", "attachment", m{"filename": "attach/01"}},
		// Unquoted encoded-words stay whole (decoded by FileName).
		{"attachment; filename==?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?=", "attachment", m{"filename": "=?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?="}},
		{"attachment; filename==?utf-8?Q?a?= =?utf-8?Q?b?=; size=3", "attachment", m{"filename": "=?utf-8?Q?a?= =?utf-8?Q?b?=", "size": "3"}},
		// Quoted string folded across lines.
		{"attachment; filename=\"Screenshot at\r\n 18.png\"", "attachment", m{"filename": "Screenshot at 18.png"}},
		{"attachment; filename=\r\n\t\"a.pdf\"; size=1", "attachment", m{"filename": "a.pdf", "size": "1"}},
		// Quoted-pairs; lone backslashes are kept.
		{`attachment; filename="C:\\Users\\x.txt"`, "attachment", m{"filename": `C:\Users\x.txt`}},
		{`attachment; filename="C:\Users\x.txt"`, "attachment", m{"filename": `C:\Users\x.txt`}},
		{`attachment; filename="say \"hi\".txt"`, "attachment", m{"filename": `say "hi".txt`}},
		{`attachment; filename="abc.pdf`, "attachment", m{"filename": "abc.pdf"}},
		{`attachment; filename = "a b.pdf"`, "attachment", m{"filename": "a b.pdf"}},
		// RFC 2231.
		{"attachment; filename*=utf-8''%E6%98%8E%E7%B4%B0.csv", "attachment", m{"filename": "明細.csv"}},
		{"attachment; filename*=UTF-8'ja'%E6%98%8E.csv", "attachment", m{"filename": "明.csv"}},
		{"attachment; filename*=\"utf-8''%E6%98%8E.pdf\"", "attachment", m{"filename": "明.pdf"}},
		{"attachment; filename*=iso-8859-1'en'caf%E9.txt", "attachment", m{"filename": "café.txt"}},
		{"attachment; filename*=shift_jis''%8E%91%97%BF.txt", "attachment", m{"filename": "資料.txt"}},
		{"attachment; filename*=euc-jp''%BB%F1%CE%C1.txt", "attachment", m{"filename": "資料.txt"}},
		{"attachment; filename*=iso-2022-jp''%1B$B%3BqNA%1B%28B.txt", "attachment", m{"filename": "資料.txt"}},
		{"attachment; filename*=ks_c_5601-1987''%BB%E7%C1%F8.jpg", "attachment", m{"filename": "사진.jpg"}},
		{"attachment; filename*=windows-1251''%CE%F2%F7%E5%F2.doc", "attachment", m{"filename": "Отчет.doc"}},
		{"attachment; filename*=''caf%C3%A9.txt", "attachment", m{"filename": "café.txt"}},
		{"attachment; filename*=100%25.txt", "attachment", m{"filename": "100%.txt"}},
		{"attachment; filename*=utf-8''bad%zz%4", "attachment", m{"filename": "bad%zz%4"}},
		// Continuations in any order, encoded and plain mixed, a character
		// split between segments (UTF-8 and ISO-2022-JP).
		{"attachment; filename*1*=%E5%88%86.pdf; filename*0*=utf-8''%E8%AB%8B%E6%B1%82_", "attachment", m{"filename": "請求_分.pdf"}},
		{"attachment; filename*0*=utf-8''%E8%AB%8B; filename*1=\" draft\"; filename*2*=.pdf", "attachment", m{"filename": "請 draft.pdf"}},
		{"attachment;\r\n filename*0*=utf-8''%E8%AB;\r\n filename*1*=%8B.pdf", "attachment", m{"filename": "請.pdf"}},
		{"attachment; filename*0*=iso-2022-jp''%1B$B%3Bq; filename*1*=NA%1B%28B.zip", "attachment", m{"filename": "資料.zip"}},
		{"attachment; filename*0*=shift_jis''%8E; filename*1*=%91%97%BF.txt", "attachment", m{"filename": "資料.txt"}},
		{`application/pdf; name*0="long"; name*1="name.pdf"`, "application/pdf", m{"name": "longname.pdf"}},
		{`application/pdf; name*2="c"; name*0="a"`, "application/pdf", m{"name": "ac"}},
		// RFC 2231 wins over the plain form, in either order.
		{"attachment; filename=\"fb.pdf\"; filename*=utf-8''%E6%98%8E.pdf", "attachment", m{"filename": "明.pdf"}},
		{"attachment; filename*=utf-8''%E6%98%8E.pdf; filename=\"fb.pdf\"", "attachment", m{"filename": "明.pdf"}},
		{"attachment; filename=\"fb.pdf\"; filename*=utf-8''", "attachment", m{"filename": "fb.pdf"}},
		// Unknown charset: sniffed.
		{"attachment; filename*=x-klingon''%E3%83%86.txt", "attachment", m{"filename": "テ.txt"}},
		// Garbage.
		{";;;", "", m{}},
		{`"garbage`, "", m{}},
		{"=", "", m{}},
		{"filename=foo.pdf", "", m{"filename": "foo.pdf"}},
		{";\n        filename=\"image001.png\"", "", m{"filename": "image001.png"}},
		{"text/plain(comment); charset=utf-8", "text/plain", m{"charset": "utf-8"}},
		{"text/plain (comment); charset=utf-8", "text/plain", m{"charset": "utf-8"}},
		{"(comment); charset=utf-8", "", m{"charset": "utf-8"}},
		{"multipart/; boundary=x", "", m{"boundary": "x"}},
		{"text/plain; format flowed; charset=utf-8", "text/plain", m{"charset": "utf-8"}},
		{"text/plain; charset=us-ascii (Plain text)", "text/plain", m{"charset": "us-ascii"}},
		{`text/plain; charset="us-ascii" (Plain text)`, "text/plain", m{"charset": "us-ascii"}},
		{`text/plain; "stray"; a=1`, "text/plain", m{"a": "1"}},
		{"text/plain; =x; a=1", "text/plain", m{"a": "1"}},
	}
	for _, tt := range tests {
		typ, params := Parse(tt.in)
		if typ != tt.typ || !maps.Equal(params, tt.params) {
			t.Errorf("Parse(%q) = %q, %q; want %q, %q", tt.in, typ, params, tt.typ, tt.params)
		}
	}
}

func TestFileName(t *testing.T) {
	tests := []struct{ ct, cd, want string }{
		// Sources and their order.
		{`application/pdf; name="a.pdf"`, `attachment; filename="b.pdf"`, "b.pdf"},
		{`application/pdf; name="a.pdf"`, "attachment", "a.pdf"},
		{`application/pdf name=""`, `attachment; filename="b.pdf"`, "b.pdf"},
		{`application/pdf; name="a.pdf"`, `attachment; filename=""`, "a.pdf"},
		{`application/pdf; name="a.pdf"`, `attachment; filename="   "`, "a.pdf"},
		{"application/pdf; filename=c.pdf", "", "c.pdf"},
		{"application/pdf", "attachment; name=d.pdf", "d.pdf"},
		{"text/plain", "inline", ""},
		{"", "", ""},
		{`application/octet-stream; file="ATTACHMENT.EXE"`, "", ""},
		// RFC 2047, quoted and unquoted, B and Q, in many charsets.
		{`text/plain; name="=?UTF-8?B?44Gm44GZ44GoLnR4dA==?="`, "", "てすと.txt"},
		{"", "attachment; filename==?utf-8?B?6LOH5paZLnBkZg==?=", "資料.pdf"},
		{"", `attachment; filename="=?UTF-8?Q?Biodiversit=C3=A9_de.doc?="`, "Biodiversité de.doc"},
		{"", `attachment; filename="=?iso-8859-1?Q?N=B0_1.?=` + "\r\n " + `=?iso-8859-1?Q?pdf?="`, "N° 1.pdf"},
		{"", `attachment; filename="=?utf-8?B?44OG4w==?= =?utf-8?B?grnjg4gudHh0?="`, "テスト.txt"}, // character split across words
		{"", `attachment; filename="=?ISO-2022-JP?B?GyRCO3FOQRsoQg==?=.pdf"`, "資料.pdf"},
		{"", `attachment; filename="=?Shift_JIS?B?jpGXvy50eHQ=?="`, "資料.txt"},
		{"", `attachment; filename="=?EUC-JP?B?u/HOwS50eHQ=?="`, "資料.txt"},
		{"", `attachment; filename="=?ks_c_5601-1987?B?u+fB+C5KUEc=?="`, "사진.JPG"},
		{"", `attachment; filename="=?windows-1251?B?zvL35fIuZG9j?="`, "Отчет.doc"},
		{"", `attachment; filename="=?windows-1252?Q?=80uro.txt?="`, "€uro.txt"},
		{"", `attachment; filename="=?gb2312?B?zbzGrC5wbmc=?="`, "图片.png"},
		{"", `attachment; filename="=?utf-8*en?Q?a=C3=A9.txt?="`, "aé.txt"},
		{"", `attachment; filename="report =?utf-8?Q?=C3=A9t=C3=A9?=.pdf"`, "report été.pdf"},
		// RFC 2047 split over RFC 2231 continuations.
		{"", `attachment; filename*0="=?utf-8?B?5piO"; filename*1="57Sw?=.csv"`, "明細.csv"},
		// A label that does not fit the bytes: the sniffed reading wins.
		{"", `attachment; filename="=?iso-2022-jp?B?6LOH5paZLnBkZg==?="`, "資料.pdf"},
		{"", `attachment; filename="=?us-ascii?B?6LOH5paZLnBkZg==?="`, "資料.pdf"},
		// Raw 8-bit bytes.
		{"", "attachment; filename=\"\xe8\xb3\x87\xe6\x96\x99.pdf\"", "資料.pdf"},
		{"", "attachment; filename=\"\x8e\x91\x97\xbf.txt\"", "資料.txt"},
		{"", "attachment; filename=\"\xbb\xf1\xce\xc1.txt\"", "資料.txt"},
		{"", "attachment; filename=\"\x1b$B;qNA\x1b(B.txt\"", "資料.txt"},
		{"", "attachment; filename=\"caf\xe9.txt\"", "café.txt"},
		{"", "attachment; filename=\"Pr\xe9stamo.pdf\"", "Préstamo.pdf"},
		{"", "attachment; filename=\"\xdcbersicht.pdf\"", "Übersicht.pdf"},
		{"", "attachment; filename=\"\x93quoted\x94.txt\"", "\u201cquoted\u201d.txt"},
		// Unknown charsets: sniffed like raw bytes.
		{"", `attachment; filename="=?X-BOGUS?B?GyRCOCtAUT1xGyhCLnBkZg==?="`, "見積書.pdf"},
		{"", `attachment; filename="=?x-bogus?Q?plain.txt?="`, "plain.txt"},
		{"", `attachment; filename="=?x-bogus?Q?caf=E9.txt?="`, "café.txt"},
		{"", "attachment; filename*=x-klingon''%FF%FE.txt", "ÿþ.txt"},
		// Words that do not parse are kept as written.
		{"", `attachment; filename="=?utf-8?B?!!!?=.pdf"`, "=?utf-8?B?!!!?=.pdf"},
		{"", `attachment; filename="=?utf-8?X?abc?=.pdf"`, "=?utf-8?X?abc?=.pdf"},
		{"", `attachment; filename="a=?b.pdf"`, "a=?b.pdf"},
		// Control characters are kept out.
		{"", "attachment; filename=\"a\x00b\x01c\x7f.txt\"", "abc.txt"},
		{"", `attachment; filename="=?utf-8?Q?a=00b=1B=C2=85.txt?="`, "ab.txt"},
		{"", "attachment; filename=\"a\tb.txt\"", "a b.txt"},
		{"", "attachment; filename=\"invoice\u202efdp.exe\"", "invoicefdp.exe"},
		{"", "attachment; filename=\"\x00\"", ""},
		// Names are returned as written otherwise.
		{"", `attachment; filename="../x/y.pdf"`, "../x/y.pdf"},
		{"", `attachment; filename="  a.pdf  "`, "a.pdf"},
		{"", `attachment; filename="invoice.pdf   .exe"`, "invoice.pdf   .exe"},
	}
	for _, tt := range tests {
		if got := FileName(tt.ct, tt.cd); got != tt.want {
			t.Errorf("FileName(%q, %q) = %q, want %q", tt.ct, tt.cd, got, tt.want)
		}
	}
}

func TestDecodeHeader(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello", "Hello"},
		{"Re: =?utf-8?Q?caf=C3=A9?= ok", "Re: café ok"},
		{"=?utf-8?Q?a?=  \r\n =?utf-8?Q?b?=", "ab"},
		{"=?utf-8?Q?a?= x =?utf-8?Q?b?=", "a x b"},
		{"=?iso-8859-1?Q?caf=E9?= =?utf-8?Q?_=C3=A9?=", "café é"},
		{"=?utf-8?Q?broken", "=?utf-8?Q?broken"},
		{"=?bogus?B?###?=", "=?bogus?B?###?="},
		{"=?x-unknown?Q?hello?=", "hello"},
		{"a\r\n b", "a b"},
		{"=?iso-2022-jp?B?GyRCQGhGfCROJCpOaRsoQg==?=", "先日のお礼"},
		{"Raw caf\xe9", "Raw café"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := DecodeHeader(tt.in); got != tt.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConflicting(t *testing.T) {
	cases := []struct {
		value string
		want  bool
	}{
		{`multipart/mixed; boundary=a`, false},
		{`multipart/mixed; boundary=a; boundary=a`, false},
		{`multipart/mixed; boundary=a; boundary=b`, true},
		{`multipart/mixed; BOUNDARY="a"; boundary=b`, true},
		{`multipart/mixed; boundary=a; boundary*=utf-8''b`, true},
		{`multipart/mixed; boundary=a; boundary*=utf-8''a`, false},
		{`multipart/mixed; boundary*0=a; boundary*0=b`, true},
		{`multipart/mixed; boundary*0=a; boundary*1=b`, false},
		{`multipart/mixed; boundary*=''a; boundary*=''b`, true},
		{`multipart/mixed; charset=a; charset=b; boundary=x`, false},
	}
	for _, tc := range cases {
		if got := Conflicting(tc.value, "boundary"); got != tc.want {
			t.Errorf("Conflicting(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
}

package rewrite

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/japanese"
)

var testLimits = Limits{MaxHeaderBytes: 1 << 20, MaxDepth: 50, MaxParts: 10000}

func TestDecoders(t *testing.T) {
	cases := []struct{ name, enc, in, want string }{
		{"base64", "base64", "aGVsbG8g\r\nd29ybGQ=\r\n", "hello world"},
		{"base64 with junk and no padding", "BASE64", "aGVs*bG8g\r\n d29y!bGQ", "hello world"},
		{"base64 malformed quad dropped", "base64", "aGVsbG8=a===", "hello"},
		{"quoted-printable", "quoted-printable", "caf=C3=A9 =\r\nbar  \r\nx=3D1\r\n", "café bar\r\nx=1\r\n"},
		{"qp bad escape kept", "quoted-printable", "100%=ZZ =4", "100%=ZZ =4"},
		{"uuencode", "x-uuencode", "begin 644 a.txt\n+:&5L;&\\@=V]R;&0`\n`\nend\n", "hello world"},
		{"7bit is identity", "7bit", "abc\r\n", "abc\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := decoder(strings.ToLower(tc.enc), strings.NewReader(tc.in))
			if !ok {
				t.Fatal("decoder unknown")
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, ok := decoder("base9000", strings.NewReader("x")); ok {
		t.Fatal("an unknown encoding must be reported")
	}
}

const noticeText = "添付ファイルは a.zip に入っています。\nThe attachments are in a.zip.\n"

// rewriteOne rewrites msg with a fake zip and returns the output.
func rewriteOne(t testing.TB, msg string) []byte {
	t.Helper()
	pl, err := Analyze(strings.NewReader(msg), int64(len(msg)), testLimits, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if pl.Pass != "" {
		t.Fatalf("passes: %s", pl.Pass)
	}
	var out bytes.Buffer
	if err := pl.Write(&out, Output{ID: "t1", ZipName: "a.zip", Zip: strings.NewReader("PK"), Notice: noticeText, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func mixed(bodyHeader, body string) string {
	return "From: a@example.jp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\n" + bodyHeader + "\r\n" + body + "\r\n" +
		"--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n"
}

// TestNoticeKeepsTheBodyCharset: Japanese bodies keep their charset and
// bytes; the notice is added in a form Japanese clients show.
func TestNoticeKeepsTheBodyCharset(t *testing.T) {
	sjis, _ := japanese.ShiftJIS.NewEncoder().String("お世話になっております。")
	jis, _ := japanese.ISO2022JP.NewEncoder().String("お世話になっております。")
	eucjp, _ := japanese.EUCJP.NewEncoder().String("お世話になっております。")
	cases := []struct {
		name, header, body, wantCharset, wantCTE string
		keepsRawBody                             bool
	}{
		{"iso-2022-jp 7bit", "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n", jis, "iso-2022-jp", "7bit", true},
		{"shift_jis 8bit", "Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n", sjis, "shift_jis", "8bit", true},
		{"euc-jp 8bit", "Content-Type: text/plain; charset=euc-jp\r\nContent-Transfer-Encoding: 8bit\r\n", eucjp, "euc-jp", "8bit", true},
		{"utf-8 8bit", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", "お世話になっております。", "utf-8", "8bit", true},
		{"us-ascii 7bit becomes utf-8 qp", "Content-Type: text/plain; charset=us-ascii\r\n", "Dear Bob,", "utf-8", "quoted-printable", false},
		{"latin-1 qp moves to utf-8", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n", "caf=E9", "utf-8", "quoted-printable", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rewriteOne(t, mixed(tc.header, tc.body))
			if tc.keepsRawBody && !bytes.Contains(out, []byte(tc.body)) {
				t.Error("the original body bytes are gone")
			}
			m, err := message.Read(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			mr := m.MultipartReader()
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			_, params, _ := p.Header.ContentType()
			if cs := strings.ToLower(params["charset"]); cs != tc.wantCharset {
				t.Errorf("charset %q, want %q", cs, tc.wantCharset)
			}
			if cte := strings.ToLower(p.Header.Get("Content-Transfer-Encoding")); cte != tc.wantCTE && !(cte == "" && tc.wantCTE == "7bit") {
				t.Errorf("transfer encoding %q, want %q", cte, tc.wantCTE)
			}
			text, err := io.ReadAll(p.Body) // go-message decodes charset and encoding
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(text), "添付ファイルは a.zip に入っています。") || !strings.Contains(string(text), "The attachments are in a.zip.") {
				t.Errorf("notice not readable:\n%s", text)
			}
		})
	}
}

func TestHTMLNoticeGoesBeforeTheBodyEnd(t *testing.T) {
	out := rewriteOne(t, mixed("Content-Type: text/html; charset=shift_jis\r\n", "<html><body><p>x</p></BODY></html>"))
	s := string(out)
	i, j := strings.Index(s, "&#28155;"), strings.Index(s, "</BODY>") // 添 as a character reference
	if i < 0 || j < 0 || i > j {
		t.Fatalf("notice not inside the body:\n%s", s)
	}
}

func TestSingleAttachmentMessageIsWrapped(t *testing.T) {
	msg := "From: a@example.jp\r\nSubject: scan\r\nContent-Type: image/jpeg; name=scan.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n"
	out := rewriteOne(t, msg)
	m, err := message.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if mt, _, _ := m.Header.ContentType(); mt != "multipart/mixed" || m.Header.Get("Subject") != "scan" {
		t.Fatalf("top level is %s", mt)
	}
	var types []string
	m.Walk(func(_ []int, e *message.Entity, _ error) error {
		mt, _, _ := e.Header.ContentType()
		types = append(types, mt)
		return nil
	})
	if strings.Join(types, ",") != "multipart/mixed,text/plain,application/zip" {
		t.Fatalf("parts %v", types)
	}
	if bytes.Contains(out, []byte("/9j/4AAQ")) {
		t.Fatal("the image is still in the clear")
	}
}

func TestPassReasons(t *testing.T) {
	cases := map[string]string{
		"thunderbird_smime_multipart_signed_sha256.eml":                  PassSigned,
		"pgp_inline_clearsigned_utf8_body_plus_pdf_and_detached_sig.eml": "", // its files are zipped
		"mutt_iso2022jp_password_protected_zip_aes256.eml":               PassEncryptedZips,
		"no_attachment_plain_iso2022jp_subject_and_body.eml":             PassNoAttachments,
		"enmime_alternative_related_inline_png_no_attachment.eml":        PassNoAttachments,
	}
	for file, want := range cases {
		b, err := os.ReadFile(filepath.Join("../../testdata/samples", file))
		if err != nil {
			t.Fatal(err)
		}
		pl, err := Analyze(bytes.NewReader(b), int64(len(b)), testLimits, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if pl.Pass != want {
			t.Errorf("%s: pass %q, want %q", file, pl.Pass, want)
		}
	}
}

// FuzzRewrite: whatever comes in, the parser and writer neither panic nor
// fail, a rewritten message starts with the trace header, and no
// attachment's bytes are left in it in the clear. The seed corpus (every
// sample and crafted message) runs with plain go test.
func FuzzRewrite(f *testing.F) {
	for _, dir := range []string{"../../testdata/samples", "testdata/crafted"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// One directory for every input: spool files are unique and unlinked,
	// and a directory made and removed per input costs more than the rest.
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, msg []byte) {
		wd := time.AfterFunc(10*time.Second, func() { panic("one input took over 10 s: a hang or quadratic path") })
		defer wd.Stop()
		lim := Limits{MaxHeaderBytes: 64 << 10, MaxDepth: 20, MaxParts: 500, MaxTotalHeaderBytes: 256 << 10, MaxAttachments: 100}
		pl, err := Analyze(bytes.NewReader(msg), int64(len(msg)), lim, tmp)
		if err != nil {
			return
		}
		checkOffsets(t, pl.Root, int64(len(msg)))
		if pl.Pass != "" {
			return
		}
		for _, a := range pl.Attachments {
			if _, err := io.Copy(io.Discard, pl.Open(a)); err != nil {
				t.Fatalf("decoding %q: %v", a.Name, err)
			}
		}
		var out bytes.Buffer
		if err := pl.Write(&out, Output{ID: "f", ZipName: "a.zip", Zip: strings.NewReader("PK"), Notice: noticeText, TempDir: tmp}); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out.Bytes(), []byte("X-Zipgate: encrypted; id=f\r\n")) {
			t.Fatal("no trace header")
		}
		// An attachment body found nowhere else in the message (nor in a
		// closing delimiter the writer adds) must not be in the output.
		var closings []byte
		var visit func(p *Part)
		visit = func(p *Part) {
			closings = append(closings, "--"+p.Boundary+"--\n"...)
			for _, c := range p.Children {
				visit(c)
			}
		}
		visit(pl.Root)
		for _, a := range pl.Attachments {
			body := bytes.TrimSpace(msg[a.Part.BodyStart:a.Part.End])
			if len(body) >= 32 && bytes.Count(msg, body) == 1 && !bytes.Contains(closings, body) && bytes.Contains(out.Bytes(), body) {
				t.Fatalf("attachment %q left in the clear", a.Name)
			}
		}
	})
}

// checkOffsets asserts the order of a part's offsets and those of its
// children: the writer copies the bytes between them.
func checkOffsets(t *testing.T, p *Part, size int64) {
	t.Helper()
	// The line break ending a part's last header field may start the
	// delimiter that ends the part (a part without a body): 2 bytes.
	if !(0 <= p.Start && p.Start <= p.HeaderEnd && p.HeaderEnd <= p.BodyStart+2 && p.BodyStart <= p.End && p.End <= size) {
		t.Fatalf("part %s: start %d, header end %d, body %d, end %d (size %d)", p.MediaType, p.Start, p.HeaderEnd, p.BodyStart, p.End, size)
	}
	prev := p.BodyStart
	for _, c := range p.Children {
		// An empty part ends after the line break that also starts the
		// next delimiter ("--a\r\n--b"): neighbours may share 2 bytes.
		if !(prev-2 <= c.Delim && c.Delim <= c.DelimEnd && c.DelimEnd <= c.Start && c.End <= p.End+2) {
			t.Fatalf("child %s: delimiter %d-%d, start %d, end %d; previous end %d, parent end %d", c.MediaType, c.Delim, c.DelimEnd, c.Start, c.End, prev, p.End)
		}
		checkOffsets(t, c, size)
		prev = c.End
	}
	// The closing delimiter's line break may be the next one's.
	if p.CloseDelim >= 0 && !(prev-2 <= p.CloseDelim && p.CloseDelim <= p.CloseEnd && p.CloseDelim <= p.End) {
		t.Fatalf("multipart %s: close %d-%d, last child end %d, end %d", p.MediaType, p.CloseDelim, p.CloseEnd, prev, p.End)
	}
}

func TestInlineImagesTheHTMLShowsStayInline(t *testing.T) {
	msg := "From: a@example.jp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>İ<img src=\"CID:logo%40example.jp\"></p>\r\n" +
		"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@example.jp>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" +
		"--r\r\nContent-Type: image/png; name=other.png\r\nContent-ID: <other@example.jp>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" +
		"--r--\r\n"
	pl, err := Analyze(strings.NewReader(msg), int64(len(msg)), testLimits, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Attachments) != 1 || pl.Attachments[0].Name != "other.png" {
		var names []string
		for _, a := range pl.Attachments {
			names = append(names, a.Name)
		}
		t.Fatalf("attachments %q, want only the unreferenced other.png", names)
	}
}

// TestNothingLeavesInTheClear: layouts found in review that once passed
// with files in them.
func TestNothingLeavesInTheClear(t *testing.T) {
	head := "From: a@example.jp\r\nMIME-Version: 1.0\r\n"
	pdf := "Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
	cases := []struct {
		name, msg string
		want      []string
	}{
		{"named text shown inline", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/plain; name=secrets.txt\r\nContent-Disposition: inline; filename=secrets.txt\r\n\r\npassword list\r\n--b--\r\n",
			[]string{"secrets.txt"}},
		{"two dispositions, the second attachment", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\nContent-Disposition: attachment; filename=t.txt\r\n\r\ndata\r\n--b--\r\n",
			[]string{"t.txt"}},
		{"a .p7m file inside mixed", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" + pdf +
			"--b\r\nContent-Type: application/pkcs7-mime; name=c.pdf.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n--b--\r\n",
			[]string{"x.pdf", "c.pdf.p7m"}},
		{"a quoted PGP block in the body", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
			"-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nadvisory\r\n--b\r\n" + pdf + "--b--\r\n",
			[]string{"x.pdf"}},
		{"a base64-encoded multipart", head + "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\nLS1iDQpDb250ZW50LVR5cGU6IGFwcGxpY2F0aW9uL3BkZg==\r\n",
			[]string{"attachment.bin"}},
		{"a boundary no line matches", head + "Content-Type: multipart/mixed; boundary=\"b \"\r\n\r\n--b\r\n" + pdf + "--b--\r\n",
			[]string{"attachment.bin"}},
		{"a stray delimiter after an inner close", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
			"Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\nhi\r\n--c--\r\n--c\r\n" +
			"--b\r\n" + pdf + "--b--\r\n",
			[]string{"x.pdf"}},
		{"a digest part without a type", head + "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n" +
			"From: b@example.com\r\nSubject: fwd\r\n\r\nsee the file\r\n--d--\r\n",
			[]string{"message.eml"}},
		{"uuencode in the body", head + "Content-Type: text/plain\r\n\r\nsee below\r\nbegin 644 a.txt\r\n+:&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n",
			[]string{"attachment.txt"}},
		{"message/partial", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/partial; id=\"x\"; number=1\r\n\r\nFrom: a\r\n\r\npart\r\n--b--\r\n",
			[]string{"attachment.bin"}},
		{"an .ics file outside an invite", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/calendar\r\nContent-Disposition: attachment; filename=a.ics\r\n\r\nBEGIN:VCALENDAR\r\n--b--\r\n",
			[]string{"a.ics"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := Analyze(strings.NewReader(tc.msg), int64(len(tc.msg)), testLimits, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range pl.Attachments {
				names = append(names, a.Name)
			}
			if pl.Pass != "" || strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pass %q, attachments %q; want %q", pl.Pass, names, tc.want)
			}
		})
	}
}

// A quoted-printable line longer than the read buffer decodes the same
// as a short one, escapes cut at the buffer's edge included.
func TestLongQuotedPrintableLine(t *testing.T) {
	var enc, want strings.Builder
	for i := 0; enc.Len() < 20000; i++ {
		enc.WriteString("ab =E3=81=82 ")
		want.WriteString("ab あ ")
	}
	got, err := io.ReadAll(&qpReader{br: bufio.NewReaderSize(strings.NewReader(enc.String()+"\r\n"), 16)})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.TrimRight(want.String(), " ")+"\r\n" {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(want.String()))
	}
}

func TestLoneCRAtTheEndOfAHeader(t *testing.T) {
	msg := "Subject: x\r\n\r"
	if _, err := Analyze(strings.NewReader(msg), int64(len(msg)), testLimits, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// Without a zip (the files stay behind a download link) the message loses
// its attachments and gains the notice, and nothing else changes.
func TestWithoutAZipTheAttachmentsJustGo(t *testing.T) {
	msg := mixed("Content-Type: text/plain; charset=utf-8\r\n", "こんにちは")
	pl, err := Analyze(strings.NewReader(msg), int64(len(msg)), testLimits, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := pl.Write(&out, Output{ID: "l1", Notice: noticeText, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.HasPrefix(s, "X-Zipgate: link; id=l1\r\n") {
		t.Errorf("trace: %q", s[:40])
	}
	if strings.Contains(s, "JVBERg==") || strings.Contains(s, "application/zip") || strings.Contains(s, "x.pdf") {
		t.Fatalf("attachment or zip left:\n%s", s)
	}
	m, err := message.Read(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	m.Walk(func(_ []int, e *message.Entity, _ error) error {
		mt, _, _ := e.Header.ContentType()
		types = append(types, mt)
		return nil
	})
	if strings.Join(types, ",") != "multipart/mixed,text/plain" {
		t.Fatalf("parts %v:\n%s", types, s)
	}
	// The top header is the original, byte for byte.
	head := msg[:strings.Index(msg, "--b")+5]
	if !strings.Contains(s, head) {
		t.Errorf("the message before the attachment changed:\n%s", s)
	}
}

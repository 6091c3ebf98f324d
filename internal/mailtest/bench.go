package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
)

// The benchmark workloads, shared by BenchmarkRewrite and scripts/bench.sh
// so both measure the same mail.

// Kind is one kind of attachment content.
type Kind struct {
	Name    string           // as in benchsend -kind and bench.sh's BENCH_KINDS
	File    string           // attachment file name
	Type    string           // its Content-Type
	Content func(int) []byte // n bytes of it
}

// Kinds are the attachment contents the benchmarks use: random for the
// already-compressed files most attachments are (photos, PDFs, Office
// files), csv for a realistic compressible file, text for a very
// repetitive one.
var Kinds = []Kind{
	{"random", "data.bin", "application/octet-stream", RandomContent},
	{"csv", "customers.csv", "text/csv; charset=utf-8", CSVContent},
	{"text", "notes.txt", "text/plain; charset=utf-8", TextContent},
}

// KindByName returns the kind called name.
func KindByName(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

const benchHeader = "From: Sender <sender@example.jp>\r\n" +
	"To: Recipient <rcpt@example.com>\r\n" +
	"Subject: =?UTF-8?B?6LOH5paZ44Gu6YCB5LuY?=\r\n" +
	"Date: Thu, 02 Jan 2025 12:04:06 +0900\r\n" +
	"Message-ID: <bench@example.jp>\r\n" +
	"MIME-Version: 1.0\r\n"

const benchBody = "お世話になっております。資料を添付いたします。\r\nPlease find the file attached.\r\n"

// BenchMessage is a multipart/mixed mail with a short text body and one
// base64 attachment in 76-character lines, as mail clients send it.
func BenchMessage(name, ctype string, content []byte) []byte {
	var m bytes.Buffer
	m.Grow(len(content)*78/57 + 1024)
	m.WriteString(benchHeader +
		"Content-Type: multipart/mixed; boundary=\"bench-boundary\"\r\n\r\n" +
		"--bench-boundary\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" +
		benchBody + "\r\n" +
		"--bench-boundary\r\n")
	fmt.Fprintf(&m, "Content-Type: %s; name=\"%s\"\r\n", ctype, name)
	fmt.Fprintf(&m, "Content-Disposition: attachment; filename=\"%s\"\r\n", name)
	m.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding
	line := make([]byte, 76)
	for off := 0; off < len(content); off += 57 {
		chunk := content[off:min(off+57, len(content))]
		n := enc.EncodedLen(len(chunk))
		enc.Encode(line, chunk)
		m.Write(line[:n])
		m.WriteString("\r\n")
	}
	m.WriteString("--bench-boundary--\r\n")
	return m.Bytes()
}

// PlainMessage is the same mail without an attachment: zipgate parses
// it and lets it pass.
func PlainMessage() []byte {
	return []byte(benchHeader +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" + benchBody)
}

// RandomContent is incompressible: the zipper stores it.
func RandomContent(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// TextContent is compressible Japanese and English lines: the zipper
// deflates it.
func TextContent(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d 本日の会議資料を共有します。ご確認をお願いいたします。 Meeting notes for review, line %d.\r\n", i, i)
	}
	return b.Bytes()[:n]
}

var (
	familyNames = []string{"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
		"吉田", "山田", "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水"}
	familyKana = []string{"サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ",
		"ヨシダ", "ヤマダ", "ササキ", "ヤマグチ", "マツモト", "イノウエ", "キムラ", "ハヤシ", "サイトウ", "シミズ"}
	familyRoman = []string{"sato", "suzuki", "takahashi", "tanaka", "ito", "watanabe", "yamamoto", "nakamura", "kobayashi", "kato",
		"yoshida", "yamada", "sasaki", "yamaguchi", "matsumoto", "inoue", "kimura", "hayashi", "saito", "shimizu"}
	givenNames = []string{"太郎", "花子", "一郎", "美咲", "翔太", "陽菜", "大輔", "結衣", "健太", "さくら",
		"拓也", "愛", "直樹", "真由美", "亮", "七海"}
	givenKana = []string{"タロウ", "ハナコ", "イチロウ", "ミサキ", "ショウタ", "ヒナ", "ダイスケ", "ユイ", "ケンタ", "サクラ",
		"タクヤ", "アイ", "ナオキ", "マユミ", "リョウ", "ナナミ"}
	givenRoman = []string{"taro", "hanako", "ichiro", "misaki", "shota", "hina", "daisuke", "yui", "kenta", "sakura",
		"takuya", "ai", "naoki", "mayumi", "ryo", "nanami"}
	places = []string{"東京都新宿区西新宿", "東京都港区芝公園", "大阪府大阪市北区梅田", "愛知県名古屋市中区栄",
		"福岡県福岡市博多区博多駅前", "北海道札幌市中央区北一条西", "神奈川県横浜市西区みなとみらい",
		"京都府京都市下京区烏丸通", "宮城県仙台市青葉区一番町", "広島県広島市中区紙屋町", "埼玉県さいたま市大宮区桜木町",
		"千葉県千葉市中央区富士見", "兵庫県神戸市中央区三宮町", "静岡県静岡市葵区追手町"}
	domains  = []string{"example.co.jp", "example.ne.jp", "example.jp", "example.com", "mail.example.org"}
	products = []string{"年間保守契約", "ライセンス追加", "初期設定費用", "訪問サポート", "クラウド容量 100GB", "研修 (半日)"}
)

// CSVContent is a customer list as a Japanese office exports it from a
// spreadsheet: ids, names in kanji, kana and Latin letters, addresses,
// phone numbers, dates and amounts, from a fixed seed. It compresses to
// about a fifth, like real exports; TextContent compresses far more.
func CSVContent(n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{2}))
	var b bytes.Buffer
	b.Grow(n + 256)
	b.WriteString("顧客番号,氏名,フリガナ,住所,電話番号,メールアドレス,契約日,商品,金額(税込)\r\n")
	for i := 1; b.Len() < n; i++ {
		f, g := r.IntN(len(familyNames)), r.IntN(len(givenNames))
		fmt.Fprintf(&b, "C%07d,%s %s,%s %s,%s%d-%d-%d,0%d-%04d-%04d,%s.%s%d@%s,20%02d/%02d/%02d,%s,%d\r\n",
			i+r.IntN(3), familyNames[f], givenNames[g], familyKana[f], givenKana[g],
			places[r.IntN(len(places))], 1+r.IntN(9), 1+r.IntN(30), 1+r.IntN(20),
			r.IntN(99)+1, r.IntN(10000), r.IntN(10000),
			givenRoman[g], familyRoman[f], r.IntN(1000), domains[r.IntN(len(domains))],
			15+r.IntN(11), 1+r.IntN(12), 1+r.IntN(28),
			products[r.IntN(len(products))], (1+r.IntN(500))*1100)
	}
	return b.Bytes()[:n]
}

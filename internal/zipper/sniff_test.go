package zipper

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/text/encoding/japanese"
)

// randomBytes is deterministic noise: it stands in for encrypted or
// compressed content.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// textBytes is n bytes of mixed English and Japanese business prose.
func textBytes(n int, seed uint64) []byte {
	words := []string{
		"invoice", "the", "payment", "quantity", "unit price", "total", "of", "and",
		"請求書", "見積もり", "お世話になっております。", "合計", "2026年", "11月", "株式会社",
		"ご確認ください。", "金額", "税込", "納品", "よろしくお願いいたします。", "\n",
	}
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func withPrefix(prefix string, rest []byte) []byte {
	return append([]byte(prefix), rest...)
}

func TestShouldStore(t *testing.T) {
	noise := randomBytes(sniffLen, 1)
	text := textBytes(sniffLen, 1)
	sjis, err := japanese.ShiftJIS.NewEncoder().Bytes(bytes.ToValidUTF8(textBytes(sniffLen, 2), nil))
	if err != nil {
		t.Fatal(err)
	}
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, 6)
	_, _ = fw.Write(textBytes(1<<20, 3))
	_ = fw.Close()

	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"empty: nothing to compress", nil, true},
		{"one byte", []byte("x"), false},
		{"small noise: too short to tell", noise[:100], false},
		{"text", text, false},
		{"Shift_JIS text", sjis, false},
		{"base64", []byte(base64.StdEncoding.EncodeToString(noise)), false},
		{"CSV", []byte(strings.Repeat("2026-11-03,請求書,12345,税込\n", 2000)), false},
		{"legacy Office (CFB)", withPrefix("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", make([]byte, 8000)), false},
		{"noise", noise, true},
		{"raw deflate stream", deflated.Bytes()[:sniffLen], true},
		{"JPEG", withPrefix("\xFF\xD8\xFF\xE0\x00\x10JFIF", text), true},
		{"PNG", withPrefix("\x89PNG\r\n\x1A\n", text), true},
		{"GIF", withPrefix("GIF89a", text), true},
		{"zip/docx", withPrefix("PK\x03\x04", text), true},
		{"gzip", withPrefix("\x1F\x8B\x08", text), true},
		{"7z", withPrefix("7z\xBC\xAF\x27\x1C", text), true},
		{"rar", withPrefix("Rar!\x1A\x07\x01\x00", text), true},
		{"lzh", withPrefix("\x00\x00-lh5-", text), true},
		{"mp4", withPrefix("\x00\x00\x00\x18ftypmp42", text), true},
		{"mp3 ID3", withPrefix("ID3\x04", text), true},
		{"ogg", withPrefix("OggS", text), true},
		{"webm", withPrefix("\x1A\x45\xDF\xA3", text), true},
		{"webp", withPrefix("RIFF\x00\x00\x00\x00WEBP", text), true},
		{"PDF with Flate streams", withPrefix("%PDF-1.7\n", noise), true},
		{"PDF without stream compression", withPrefix("%PDF-1.4\n", text), false},
	}
	for _, tt := range tests {
		if got := shouldStore(tt.head); got != tt.want {
			t.Errorf("%s: shouldStore = %v, want %v (entropy %.2f)", tt.name, got, tt.want,
				entropy(tt.head[:min(len(tt.head), entropyLen)]))
		}
	}
}

package mimeparam

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleNames lists, per sample in testdata/, the file names of its MIME
// parts in walk order. Expected values were decoded by hand (python3).
var sampleNames = map[string][]string{
	"mailgem_gmail_rfc2047_utf8_japanese_txt_filename":                   {"てすと.txt"},
	"mutt_euc_jp_body_8bit_rfc2231_euc_jp_filename":                      {"現場写真.jpg"},
	"mutt_shift_jis_body_8bit_rfc2231_shift_jis_filename":                {"売上集計_2024年第1四半期.xlsx"},
	"mutt_utf8_rfc2231_continuation_long_japanese_filename":              {"2024年4月12日_定例会議議事録_ネットワーク更新プロジェクト_第3回_最終版_修正済み.pdf"},
	"name_param_only_no_content_disposition_iso2022jp_and_ascii":         {"現場_0415.jpg", "quotation.pdf"},
	"neomutt_utf8_subject_rfc2231_utf8_filenames":                        {"現場写真.jpg", "見積書_Q-2024-0415.pdf"},
	"rfc2047_shift_jis_filename_with_iso2022jp_name_param":               {"出張申請書（伊藤）.pdf"},
	"phpmimemailparser_rfc2047_latin1_filename_two_folded_encoded_words": {"50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf"},
	"phpmimemailparser_rfc2047_q_utf8_filename_msword_lf":                {"Biodiversité de semaine en semaine.doc"},
	"phpmimemailparser_outlook_korean_ks_c_5601_rfc2047_filename":        {"사진.JPG", "ATT00001.txt"},
	"mailgem_mixed_single_inline_jpeg_rfc2047_latin1_filename":           {"Eelanalüüsi päring.jpg"},
	// The README calls these bytes ISO-8859-1, but C3 AB is valid UTF-8 "ë".
	"mailgem_raw_8bit_latin1_filename_7bit_text_attachment":  {"ciële.txt"},
	"enmime_raw_8bit_utf8_filename_msword":                   {"管理.doc"},
	"enmime_duplicate_filename_param":                        {"Invoice_302232133150612.pdf"},
	"enmime_empty_name_param_with_filename":                  {"Invoice_302232133150612.pdf"},
	"enmime_malformed_content_type_param_syntax":             {"Invoice_302232133150612.pdf"},
	"enmime_unquoted_tspecials_in_filename":                  {"Invoice_(302232133150612).pdf"},
	"mailgem_rfc2047_utf8_filename_unquoted_param_lf":        {"This is a test.pdf"},
	"single_part_toplevel_png_filename_folded_inside_quotes": {"Screenshot 2024-04-28 at 18.24.31.png"},
	// Backslashes are kept whether or not the sender escaped them.
	"filename_path_traversal_and_windows_paths": {
		"../../etc/passwd", `C:\Users\x\a.txt`, `C:\Users\x\b.txt`, `..\..\Windows\win.ini`,
		"../../../tmp/evil.sh", "/etc/cron.d/job", "../../請求書.pdf", "CON.txt", "invoice.pdf   .exe",
	},
	// =?X-BOGUS?B?...?= carries ISO-2022-JP bytes and x-klingon'' UTF-8 bytes:
	// unknown charsets are sniffed.
	"malformed_unknown_charsets_body_and_filenames": {"見積書.pdf", "テスト.txt"},
	// "report\x00.pdf.txt": the NUL is dropped.
	"malformed_nul_bytes_in_header_body_filename_binary_part":                {"report.pdf.txt", "raw.bin"},
	"phpmimemailparser_filename_containing_slash":                            {"attach/01"},
	"mailgem_single_part_toplevel_gzip_attachment":                           {"blah.gz"},
	"utf8_8bit_body_rfc2231_utf8_filenames_emailmessage":                     {"請求書_2024年4月分.pdf", "明細.csv"},
	"mutt_iso2022jp_password_protected_zip_aes256":                           {"資料_20240415.zip"},
	"dovecot_malformed_content_type_missing_semicolon_and_empty_disposition": {"image001.png"},
	"calendar_request_alternative_text_html_calendar_plus_pdf_and_ics":       {"会議資料_第3回.pdf", "invite.ics"},
	"cpython_name_param_only_two_text_parts":                                 {"msg.txt", "msg.txt"},
	"enmime_octet_stream_attachment_without_name":                            nil, // file= is not a name parameter
	"swaks_attachment_without_any_filename":                                  nil,
	"mailgem_7bit_text_script_attachment":                                    {"api.rb"}, // filename= wins over name="hello.rb"
	"mailgem_x_uuencode_cte_msword_attachment":                               {"PGP_Cmts_on_12-14-01_Pkg.doc"},
	"mailgem_binary_cte_jpeg_inside_alternative":                             {"2013-08-13_19-08-28-1.jpg"},
	"mailgem_message_rfc822_forward_containing_pdf":                          {"ForwardedMessage.eml", "broken.pdf"},
	"enmime_inline_disposition_on_multipart_pdf_and_inline_txt":              {"test.pdf", "test.txt"},
	"phpmimemailparser_single_part_name_with_relative_path":                  {"1234/../../1234.txt"},
	"utf8_mixed_alternative_plus_rfc2047_utf8_filenames_with_content_id":     {"会議室の写真.jpg", "御見積書_2024-04-15.pdf"},
	"enmime_malformed_multipart_report_without_boundary":                     nil,
	"thunderbird_smime_opaque_signed_pkcs7_mime":                             {"smime.p7m"},
	"enmime_alternative_related_inline_png_no_attachment":                    {"favicon.png"},
	"malformed_nested_multipart_200_levels_alternating_subtypes":             {"level1.pdf", "level100.zip", "logo.png", "deepest.jpg"},
	"phpmimemailparser_iso2022jp_subject_alternative_qp_iso2022jp":           nil,
	"mailgem_mixed_qp_text_plus_one_pdf_crlf":                                {"broken.pdf"},
	"no_attachment_plain_iso2022jp_subject_and_body":                         nil,
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSampleFileNames(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if len(files) != len(sampleNames) {
		t.Errorf("%d samples in testdata, %d in the table", len(files), len(sampleNames))
	}
	for sample, want := range sampleNames {
		t.Run(sample, func(t *testing.T) {
			var got []string
			for _, p := range walkMessage(readSample(t, sample)) {
				name := FileName(p.rawCT, p.rawCD)
				// Callers may pass go-message's unfolded Header.Get values.
				if n := FileName(p.getCT, p.getCD); n != name {
					t.Errorf("raw header gives %q, unfolded gives %q", name, n)
				}
				if name != "" {
					got = append(got, name)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// Every multipart entity in the samples must yield its boundary.
func TestSampleBoundaries(t *testing.T) {
	for sample := range sampleNames {
		if sample == "enmime_malformed_multipart_report_without_boundary" {
			continue
		}
		for _, p := range walkMessage(readSample(t, sample)) {
			typ, params := Parse(p.rawCT)
			if strings.HasPrefix(typ, "multipart/") && params["boundary"] == "" {
				t.Errorf("%s: no boundary in %q", sample, p.rawCT)
			}
		}
	}
}

func TestSampleSubjects(t *testing.T) {
	for sample, want := range map[string]string{
		"mutt_euc_jp_body_8bit_rfc2231_euc_jp_filename":       "現場写真の送付",
		"mutt_shift_jis_body_8bit_rfc2231_shift_jis_filename": "売上集計の送付",
		"neomutt_utf8_subject_rfc2231_utf8_filenames":         "写真と見積書を送ります",
		"no_attachment_plain_iso2022jp_subject_and_body":      "先日のお礼",
		"mutt_iso2022jp_password_protected_zip_aes256":        "【資料送付】パスワード付きZIP",
		// ISO-2022-JP with Cyrillic and the NEC row 13 "№".
		"phpmimemailparser_iso2022jp_subject_alternative_qp_iso2022jp": "ЖД№41 от 28.09.2016",
		// Unknown charset carrying ISO-2022-JP bytes.
		"malformed_unknown_charsets_body_and_filenames":           "テスト",
		"malformed_nul_bytes_in_header_body_filename_binary_part": "Contains NUL bytes",
		// Raw UTF-8 in the header.
		"mailgem_mixed_qp_text_plus_one_pdf_crlf": "Another PDF with 🎉 Unicode chars in it 🍿",
	} {
		var subject string
		for _, line := range strings.SplitAfter(string(readSample(t, sample)), "\n") {
			if s, ok := strings.CutPrefix(line, "Subject:"); ok {
				subject = s
			} else if subject != "" && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
				subject += line
			} else if subject != "" {
				break
			}
		}
		if got := DecodeHeader(subject); got != want {
			t.Errorf("%s: DecodeHeader(%q) = %q, want %q", sample, subject, got, want)
		}
	}
}

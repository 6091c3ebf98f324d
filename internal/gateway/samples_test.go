package gateway_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message"

	"github.com/zipgate/zipgate/internal/rewrite"
)

// sampleCases: for each real-world shaped mail, the names that must come
// out of the zip, in message order (nil: the mail passes untouched), or
// the refusal.
var sampleCases = []struct {
	file    string
	names   []string
	refused string
}{
	{"attachment_inside_multipart_alternative.eml", []string{"attachment.txt"}, ""},
	{"calendar_request_alternative_text_html_calendar_plus_pdf_and_ics.eml", []string{"会議資料_第3回.pdf", "invite.ics"}, ""},
	{"cpython_name_param_only_two_text_parts.eml", []string{"msg.txt", "msg (2).txt"}, ""},
	{"dovecot_malformed_content_type_missing_semicolon_and_empty_disposition.eml", []string{"image001.png"}, ""},
	{"dovecot_mixed_crlf_and_lf_binary_parts.eml", nil, ""},
	{"enmime_alternative_related_inline_png_no_attachment.eml", nil, ""},
	{"enmime_duplicate_filename_param.eml", []string{"Invoice_302232133150612.pdf"}, ""},
	{"enmime_empty_name_param_with_filename.eml", []string{"Invoice_302232133150612.pdf"}, ""},
	{"enmime_inline_disposition_on_multipart_pdf_and_inline_txt.eml", []string{"test.pdf", "test.txt"}, ""},
	{"enmime_malformed_base64_msword_attachment.eml", []string{"some.doc"}, ""},
	{"enmime_malformed_content_type_param_syntax.eml", []string{"Invoice_302232133150612.pdf"}, ""},
	{"enmime_malformed_multipart_headers_only_no_body.eml", nil, ""},
	{"enmime_malformed_multipart_report_without_boundary.eml", []string{"attachment.bin"}, ""},
	{"enmime_non_mime_html_only_no_attachment.eml", nil, ""},
	{"enmime_octet_stream_attachment_without_name.eml", []string{"attachment.bin"}, ""},
	{"enmime_outlook_related_image001_image002_no_disposition.eml", []string{"image001.png", "image002.png"}, ""},
	{"enmime_raw_8bit_utf8_filename_msword.eml", []string{"管理.doc"}, ""},
	{"enmime_single_part_toplevel_jpeg_name_only.eml", []string{"favicon.jpg"}, ""},
	{"enmime_single_part_toplevel_text_csv_attachment.eml", []string{"test.csv"}, ""},
	{"enmime_unknown_charset_fakescii_text_plus_zip.eml", []string{"foo_9E5D72.zip"}, ""},
	{"enmime_unknown_cte_base9000_zip.eml", []string{"foo_9E5D72.zip"}, ""},
	{"enmime_unknown_multipart_subtype_with_gif.eml", []string{"B05.gif"}, ""},
	{"enmime_unquoted_tspecials_in_filename.eml", []string{"Invoice_(302232133150612).pdf"}, ""},
	{"filename_path_traversal_and_windows_paths.eml", []string{"passwd", "a.txt", "b.txt", "win.ini", "evil.sh", "job", "請求書.pdf", "CON_.txt", "invoice.pdf .exe"}, ""},
	{"mailgem_7bit_text_script_attachment.eml", []string{"api.rb"}, ""},
	{"mailgem_binary_cte_jpeg_inside_alternative.eml", []string{"2013-08-13_19-08-28-1.jpg"}, ""},
	{"mailgem_docomo_shift_jis_8bit_body_no_attachment.eml", nil, ""},
	{"mailgem_duplicate_content_type_headers_top_level.eml", []string{"message.eml"}, ""}, // two Content-Types: zipped whole
	{"mailgem_forwarded_smime_p7s_as_plain_mixed_attachment.eml", []string{"smime.p7s"}, ""},
	{"mailgem_gmail_rfc2047_utf8_japanese_txt_filename.eml", []string{"てすと.txt"}, ""},
	{"mailgem_iso2022jp_7bit_body_utf8_subject_no_attachment.eml", nil, ""},
	{"mailgem_malformed_nested_missing_closing_boundary.eml", nil, ""},
	{"mailgem_message_rfc822_forward_containing_pdf.eml", []string{"ForwardedMessage.eml"}, ""},
	{"mailgem_mixed_qp_text_plus_one_pdf_crlf.eml", []string{"broken.pdf"}, ""},
	{"mailgem_mixed_qp_text_plus_one_pdf_lf.eml", []string{"broken.pdf"}, ""},
	{"mailgem_mixed_single_inline_jpeg_rfc2047_latin1_filename.eml", []string{"Eelanalüüsi päring.jpg"}, ""},
	{"mailgem_pgp_mime_signed_text_only.eml", []string{"signature.asc"}, ""}, // its armor is broken (gpg: CRC error): no signature
	{"mailgem_raw_8bit_latin1_filename_7bit_text_attachment.eml", []string{"ciële.txt"}, ""},
	{"mailgem_rfc2047_utf8_filename_unquoted_param_lf.eml", []string{"This is a test.pdf"}, ""},
	{"mailgem_single_part_toplevel_gzip_attachment.eml", []string{"blah.gz"}, ""},
	{"mailgem_utf8_base64_body_japanese_no_attachment.eml", nil, ""},
	{"mailgem_x_uuencode_cte_msword_attachment.eml", []string{"PGP_Cmts_on_12-14-01_Pkg.doc"}, ""},
	{"malformed_header_line_10000_chars.eml", []string{"invoice.pdf"}, ""},
	{"malformed_missing_closing_boundary_last_part_truncated.eml", []string{"quotation.pdf", "sales.xlsx"}, ""},
	{"malformed_nested_multipart_200_levels_alternating_subtypes.eml", nil, "554 [5 6 0] Message not sent: its MIME parts are nested too deeply to check the attachments safely"},
	{"malformed_nul_bytes_in_header_body_filename_binary_part.eml", []string{"report.pdf.txt", "raw.bin"}, ""},
	{"malformed_unknown_charsets_body_and_filenames.eml", []string{"見積書.pdf", "テスト.txt"}, ""},
	{"message_rfc822_part_with_base64_cte.eml", []string{"message.eml"}, ""},
	{"mixed_alternative_plus_pdf_disposition_inline.eml", []string{"Simple_file.pdf"}, ""},
	{"mutt_7bit_text_attachment_and_qp_pdf.eml", []string{"readme_ascii.txt", "invoice.pdf"}, ""},
	{"mutt_euc_jp_body_8bit_rfc2231_euc_jp_filename.eml", []string{"現場写真.jpg"}, ""},
	{"mutt_iso2022jp_password_protected_zip_aes256.eml", nil, ""},
	{"mutt_mixed_text_plus_pdf_xlsx_jpg_csv_zip_ascii_names.eml", []string{"quotation.pdf", "sales_2024Q1.xlsx", "photo.jpg", "customers_utf8.csv", "documents.zip"}, ""},
	{"mutt_shift_jis_body_8bit_rfc2231_shift_jis_filename.eml", []string{"売上集計_2024年第1四半期.xlsx"}, ""},
	{"mutt_utf8_rfc2231_continuation_long_japanese_filename.eml", []string{"2024年4月12日_定例会議議事録_ネットワーク更新プロジェクト_第3回_最終版_修正済み.pdf"}, ""},
	{"name_param_only_no_content_disposition_iso2022jp_and_ascii.eml", []string{"現場_0415.jpg", "quotation.pdf"}, ""},
	{"neomutt_utf8_subject_rfc2231_utf8_filenames.eml", []string{"現場写真.jpg", "見積書_Q-2024-0415.pdf"}, ""},
	{"no_attachment_plain_iso2022jp_subject_and_body.eml", nil, ""},
	{"outlook_calendar_request_alternative_text_html_calendar.eml", nil, ""},
	{"pgp_inline_clearsigned_utf8_body_plus_pdf_and_detached_sig.eml", []string{"minutes.pdf", "minutes.pdf.sig"}, ""},
	{"phpmimemailparser_filename_containing_slash.eml", []string{"01"}, ""},
	{"phpmimemailparser_iso2022jp_subject_alternative_qp_iso2022jp.eml", nil, ""},
	{"phpmimemailparser_message_rfc822_attachment_without_filename.eml", []string{"message.eml"}, ""},
	{"phpmimemailparser_mixed_html_plus_300_text_attachments.eml", []string{"6294736_18_01042023_1.txt", "6294354_349_01042023_2.txt", "6294593_702_01042023_3.txt", "6295066_782_01042023_4.txt", "2714962_910_01042023_5.txt", "2795005_910_01042023_6.txt", "2795006_910_01042023_7.txt", "2889777_910_01042023_8.txt", "2896355_910_01042023_9.txt", "2939161_910_01042023_10.txt", "2941237_910_01042023_11.txt", "2941260_910_01042023_12.txt", "2947822_910_01042023_13.txt", "2947823_910_01042023_14.txt", "6503868_910_01042023_15.txt", "6297990_1608_01042023_16.txt", "6297993_1608_01042023_17.txt", "6298148_1608_01042023_18.txt", "6298180_1608_01042023_19.txt", "6298225_1608_01042023_20.txt", "6298231_1608_01042023_21.txt", "6298237_1608_01042023_22.txt", "6298257_1608_01042023_23.txt", "6298295_1608_01042023_24.txt", "6298328_1608_01042023_25.txt", "6298341_1608_01042023_26.txt", "6298369_1608_01042023_27.txt", "6298381_1608_01042023_28.txt", "6298384_1608_01042023_29.txt", "6298393_1608_01042023_30.txt", "6298403_1608_01042023_31.txt", "6298554_1608_01042023_32.txt", "6298721_1608_01042023_33.txt", "6298792_1608_01042023_34.txt", "6298919_1608_01042023_35.txt", "6298920_1608_01042023_36.txt", "6298921_1608_01042023_37.txt", "6299401_1608_01042023_38.txt", "6299409_1608_01042023_39.txt", "6391605_1608_01042023_40.txt", "6391630_1608_01042023_41.txt", "6391767_1608_01042023_42.txt", "6392349_1608_01042023_43.txt", "6392350_1608_01042023_44.txt", "6392489_1608_01042023_45.txt", "6392539_1608_01042023_46.txt", "6392569_1608_01042023_47.txt", "6392597_1608_01042023_48.txt", "6392990_1608_01042023_49.txt", "6393110_1608_01042023_50.txt", "6393275_1608_01042023_51.txt", "6395598_1608_01042023_52.txt", "7835552_1608_01042023_53.txt", "7835553_1608_01042023_54.txt", "7835554_1608_01042023_55.txt", "7841786_1608_01042023_56.txt", "7841787_1608_01042023_57.txt", "7841788_1608_01042023_58.txt", "7842391_1608_01042023_59.txt", "7842392_1608_01042023_60.txt", "7842393_1608_01042023_61.txt", "7843473_1608_01042023_62.txt", "7843474_1608_01042023_63.txt", "7843475_1608_01042023_64.txt", "7843606_1608_01042023_65.txt", "7843607_1608_01042023_66.txt", "7843608_1608_01042023_67.txt", "7844156_1608_01042023_68.txt", "7844157_1608_01042023_69.txt", "7844158_1608_01042023_70.txt", "7846646_1608_01042023_71.txt", "7846647_1608_01042023_72.txt", "7846648_1608_01042023_73.txt", "7847175_1608_01042023_74.txt", "7847176_1608_01042023_75.txt", "7847177_1608_01042023_76.txt", "7848079_1608_01042023_77.txt", "7848080_1608_01042023_78.txt", "7848081_1608_01042023_79.txt", "7848817_1608_01042023_80.txt", "7848818_1608_01042023_81.txt", "7848819_1608_01042023_82.txt", "7848960_1608_01042023_83.txt", "7848961_1608_01042023_84.txt", "7848962_1608_01042023_85.txt", "7849600_1608_01042023_86.txt", "7849601_1608_01042023_87.txt", "7849602_1608_01042023_88.txt", "7850058_1608_01042023_89.txt", "7850059_1608_01042023_90.txt", "7850060_1608_01042023_91.txt", "7851022_1608_01042023_92.txt", "7851023_1608_01042023_93.txt", "7851024_1608_01042023_94.txt", "7851419_1608_01042023_95.txt", "7851420_1608_01042023_96.txt", "7851421_1608_01042023_97.txt", "7852368_1608_01042023_98.txt", "7852369_1608_01042023_99.txt", "7852370_1608_01042023_100.txt", "7852493_1608_01042023_101.txt", "7852494_1608_01042023_102.txt", "7852495_1608_01042023_103.txt", "7852512_1608_01042023_104.txt", "7852513_1608_01042023_105.txt", "7852514_1608_01042023_106.txt", "7853453_1608_01042023_107.txt", "7853454_1608_01042023_108.txt", "7853455_1608_01042023_109.txt", "7853823_1608_01042023_110.txt", "7853824_1608_01042023_111.txt", "7853825_1608_01042023_112.txt", "7855590_1608_01042023_113.txt", "7855591_1608_01042023_114.txt", "7855592_1608_01042023_115.txt", "7855803_1608_01042023_116.txt", "7855804_1608_01042023_117.txt", "7855805_1608_01042023_118.txt", "7856836_1608_01042023_119.txt", "7856837_1608_01042023_120.txt", "7856838_1608_01042023_121.txt", "7856839_1608_01042023_122.txt", "7856840_1608_01042023_123.txt", "7856841_1608_01042023_124.txt", "7856869_1608_01042023_125.txt", "7856870_1608_01042023_126.txt", "7856871_1608_01042023_127.txt", "7858003_1608_01042023_128.txt", "7858004_1608_01042023_129.txt", "7858005_1608_01042023_130.txt", "7858653_1608_01042023_131.txt", "7858654_1608_01042023_132.txt", "7858655_1608_01042023_133.txt", "7858716_1608_01042023_134.txt", "7858717_1608_01042023_135.txt", "7858719_1608_01042023_136.txt", "7858745_1608_01042023_137.txt", "7858746_1608_01042023_138.txt", "7858748_1608_01042023_139.txt", "7858857_1608_01042023_140.txt", "7858859_1608_01042023_141.txt", "7858860_1608_01042023_142.txt", "7858906_1608_01042023_143.txt", "7858907_1608_01042023_144.txt", "7858908_1608_01042023_145.txt", "7858916_1608_01042023_146.txt", "7858917_1608_01042023_147.txt", "7858918_1608_01042023_148.txt", "7858958_1608_01042023_149.txt", "7858959_1608_01042023_150.txt", "7858960_1608_01042023_151.txt", "7860676_1608_01042023_152.txt", "7860677_1608_01042023_153.txt", "7860678_1608_01042023_154.txt", "7860949_1608_01042023_155.txt", "7860950_1608_01042023_156.txt", "7860951_1608_01042023_157.txt", "7867442_1608_01042023_158.txt", "7867443_1608_01042023_159.txt", "7867444_1608_01042023_160.txt", "7869123_1608_01042023_161.txt", "7869124_1608_01042023_162.txt", "7869125_1608_01042023_163.txt", "7869242_1608_01042023_164.txt", "7869243_1608_01042023_165.txt", "7869244_1608_01042023_166.txt", "7869672_1608_01042023_167.txt", "7869673_1608_01042023_168.txt", "7869674_1608_01042023_169.txt", "7869675_1608_01042023_170.txt", "7869676_1608_01042023_171.txt", "7869678_1608_01042023_172.txt", "7870055_1608_01042023_173.txt", "7870056_1608_01042023_174.txt", "7870057_1608_01042023_175.txt", "7870209_1608_01042023_176.txt", "7870210_1608_01042023_177.txt", "7870211_1608_01042023_178.txt", "7870212_1608_01042023_179.txt", "7870213_1608_01042023_180.txt", "7870214_1608_01042023_181.txt", "7870294_1608_01042023_182.txt", "7870295_1608_01042023_183.txt", "7870296_1608_01042023_184.txt", "7870369_1608_01042023_185.txt", "7870370_1608_01042023_186.txt", "7870371_1608_01042023_187.txt", "7870517_1608_01042023_188.txt", "7870518_1608_01042023_189.txt", "7870519_1608_01042023_190.txt", "7870702_1608_01042023_191.txt", "7870703_1608_01042023_192.txt", "7870704_1608_01042023_193.txt", "7870705_1608_01042023_194.txt", "7870706_1608_01042023_195.txt", "7870707_1608_01042023_196.txt", "7870708_1608_01042023_197.txt", "7870709_1608_01042023_198.txt", "7870710_1608_01042023_199.txt", "7870711_1608_01042023_200.txt", "7870712_1608_01042023_201.txt", "7870713_1608_01042023_202.txt", "7870714_1608_01042023_203.txt", "7870715_1608_01042023_204.txt", "7870716_1608_01042023_205.txt", "7870717_1608_01042023_206.txt", "7870718_1608_01042023_207.txt", "7870719_1608_01042023_208.txt", "7870720_1608_01042023_209.txt", "7870721_1608_01042023_210.txt", "7870722_1608_01042023_211.txt", "7870723_1608_01042023_212.txt", "7870724_1608_01042023_213.txt", "7870725_1608_01042023_214.txt", "7870726_1608_01042023_215.txt", "7870727_1608_01042023_216.txt", "7870728_1608_01042023_217.txt", "7870729_1608_01042023_218.txt", "7870730_1608_01042023_219.txt", "7870731_1608_01042023_220.txt", "7870732_1608_01042023_221.txt", "7870733_1608_01042023_222.txt", "7870734_1608_01042023_223.txt", "7870735_1608_01042023_224.txt", "7870736_1608_01042023_225.txt", "7870737_1608_01042023_226.txt", "7871042_1608_01042023_227.txt", "7871043_1608_01042023_228.txt", "7871045_1608_01042023_229.txt", "7871147_1608_01042023_230.txt", "7871148_1608_01042023_231.txt", "7871149_1608_01042023_232.txt", "7871399_1608_01042023_233.txt", "7871400_1608_01042023_234.txt", "7871401_1608_01042023_235.txt", "7871472_1608_01042023_236.txt", "7871473_1608_01042023_237.txt", "7871474_1608_01042023_238.txt", "7871531_1608_01042023_239.txt", "7871533_1608_01042023_240.txt", "7871534_1608_01042023_241.txt", "7871644_1608_01042023_242.txt", "7871645_1608_01042023_243.txt", "7871646_1608_01042023_244.txt", "7872274_1608_01042023_245.txt", "7872275_1608_01042023_246.txt", "7872276_1608_01042023_247.txt", "7872448_1608_01042023_248.txt", "7872449_1608_01042023_249.txt", "7872450_1608_01042023_250.txt", "7872518_1608_01042023_251.txt", "7872519_1608_01042023_252.txt", "7872520_1608_01042023_253.txt", "7872571_1608_01042023_254.txt", "7872572_1608_01042023_255.txt", "7872573_1608_01042023_256.txt", "7872756_1608_01042023_257.txt", "7872757_1608_01042023_258.txt", "7872758_1608_01042023_259.txt", "7872984_1608_01042023_260.txt", "7872985_1608_01042023_261.txt", "7872986_1608_01042023_262.txt", "7873138_1608_01042023_263.txt", "7873139_1608_01042023_264.txt", "7873140_1608_01042023_265.txt", "7873173_1608_01042023_266.txt", "7873174_1608_01042023_267.txt", "7873175_1608_01042023_268.txt", "7873520_1608_01042023_269.txt", "7873521_1608_01042023_270.txt", "7873522_1608_01042023_271.txt", "7874298_1608_01042023_272.txt", "7874299_1608_01042023_273.txt", "7874300_1608_01042023_274.txt", "7874495_1608_01042023_275.txt", "7874496_1608_01042023_276.txt", "7874497_1608_01042023_277.txt", "7875288_1608_01042023_278.txt", "7875290_1608_01042023_279.txt", "7875291_1608_01042023_280.txt", "7875572_1608_01042023_281.txt", "7875573_1608_01042023_282.txt", "7875574_1608_01042023_283.txt", "7875640_1608_01042023_284.txt", "7875641_1608_01042023_285.txt", "7875642_1608_01042023_286.txt", "7875684_1608_01042023_287.txt", "7875685_1608_01042023_288.txt", "7875687_1608_01042023_289.txt", "7875697_1608_01042023_290.txt", "7875698_1608_01042023_291.txt", "7875699_1608_01042023_292.txt", "9098131_1608_01042023_293.txt", "9098191_1608_01042023_294.txt", "9098247_1608_01042023_295.txt", "9098248_1608_01042023_296.txt", "9098274_1608_01042023_297.txt", "9098365_1608_01042023_298.txt", "9098366_1608_01042023_299.txt", "9098372_1608_01042023_300.txt", "9098374_1608_01042023_301.txt", "9098437_1608_01042023_302.txt", "9098438_1608_01042023_303.txt", "9098447_1608_01042023_304.txt", "9098448_1608_01042023_305.txt", "9098458_1608_01042023_306.txt", "9098530_1608_01042023_307.txt", "9098531_1608_01042023_308.txt", "9098585_1608_01042023_309.txt", "9098586_1608_01042023_310.txt", "9098612_1608_01042023_311.txt", "9098613_1608_01042023_312.txt", "9098634_1608_01042023_313.txt", "9098635_1608_01042023_314.txt", "9098666_1608_01042023_315.txt", "9098667_1608_01042023_316.txt", "9098669_1608_01042023_317.txt", "9098670_1608_01042023_318.txt", "9098677_1608_01042023_319.txt", "9098678_1608_01042023_320.txt", "9098748_1608_01042023_321.txt", "9098794_1608_01042023_322.txt", "9098922_1608_01042023_323.txt", "9098923_1608_01042023_324.txt", "9099294_1608_01042023_325.txt", "9099295_1608_01042023_326.txt", "9198539_1608_01042023_327.txt", "9198540_1608_01042023_328.txt"}, ""},
	{"phpmimemailparser_mixed_related_alternative_two_inline_gif_plus_txt.eml", []string{"attachment.txt"}, ""},
	{"phpmimemailparser_outlook_alternative_text_html_calendar_request.eml", nil, ""},
	{"phpmimemailparser_outlook_korean_ks_c_5601_rfc2047_filename.eml", []string{"사진.JPG", "ATT00001.txt"}, ""},
	{"phpmimemailparser_plain_plus_10_base64_text_attachments.eml", []string{"789AA8B6-3C8F-4E16-9E55-3CD173C3AE3A.txt", "FC034994-58D9-480F-A28C-3B44C588C44F.txt", "608B96ED-C0D6-4A03-B24E-E082FC507B88.txt", "BDF0169F-8921-4E70-9241-0692C116EEC4.txt", "7ADBF758-DC3B-4413-B0A2-82250147666C.txt", "8343AC09-0026-4ECB-A81C-70E01705D52E.txt", "6A347E5E-9F48-46B9-B7A8-1A5062553F86.txt", "1B2491C4-4FAF-4E47-9B6C-43E47F9594F3.txt", "4BA92D8A-75A6-41A4-9A90-82AC9324077E.txt", "63C34BC2-FBC9-4C47-88C7-78127DE61343.txt"}, ""},
	{"phpmimemailparser_rfc2047_latin1_filename_two_folded_encoded_words.eml", []string{"50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf"}, ""},
	{"phpmimemailparser_rfc2047_q_utf8_filename_msword_lf.eml", []string{"Biodiversité de semaine en semaine.doc"}, ""},
	{"phpmimemailparser_single_part_name_with_relative_path.eml", []string{"1234.txt"}, ""},
	{"related_unreferenced_inline_png.eml", []string{"sample.png"}, ""},
	{"related_with_unreferenced_inline_zip_parts.eml", []string{"dummy1.zip", "dummy2.zip"}, ""},
	{"rfc2047_shift_jis_filename_with_iso2022jp_name_param.eml", []string{"出張申請書（伊藤）.pdf"}, ""},
	{"single_part_toplevel_png_filename_folded_inside_quotes.eml", []string{"Screenshot 2024-04-28 at 18.24.31.png"}, ""},
	{"smime_opaque_signed_pkcs7_mime_signed_data_with_attachment_inside.eml", []string{"smime.p7m"}, ""}, // signed-data is clear text
	{"swaks_attachment_without_any_filename.eml", []string{"attachment.bin"}, ""},
	{"swaks_html_body_part_plus_xlsx.eml", []string{"sales_2024Q1.xlsx"}, ""},
	{"swaks_text_plus_pdf_csv_zip_base64_crlf.eml", []string{"invoice.pdf", "customers_utf8.csv", "documents.zip"}, ""},
	{"thunderbird52_shift_jis_body_declared_7bit.eml", nil, ""},
	{"thunderbird_html_only_base64_windows1252_no_attachment.eml", nil, ""},
	{"thunderbird_iso2022jp_body_quoted_printable.eml", nil, ""},
	{"thunderbird_message_rfc822_attachment_with_8bit_alternative.eml", []string{"attached-message.eml"}, ""},
	{"thunderbird_mixed_alternative_plus_png_attachment.eml", []string{"attach.png"}, ""},
	{"thunderbird_nested_message_rfc822_inside_message_rfc822.eml", []string{"message.eml"}, ""},
	{"thunderbird_pgp_inline_clearsigned_utf8.eml", nil, ""},
	{"thunderbird_smime_enveloped_pkcs7_mime.eml", nil, ""},
	{"thunderbird_smime_multipart_signed_sha256.eml", nil, ""},
	{"thunderbird_smime_opaque_signed_pkcs7_mime.eml", []string{"smime.p7m"}, ""},
	{"utf8_8bit_body_rfc2231_utf8_filenames_emailmessage.eml", []string{"請求書_2024年4月分.pdf", "明細.csv"}, ""},
	{"utf8_mixed_alternative_plus_rfc2047_utf8_filenames_with_content_id.eml", []string{"会議室の写真.jpg", "御見積書_2024-04-15.pdf"}, ""},
}

// notDecodableByGoMessage are samples whose attachments go-message cannot
// decode (broken base64), so bytes are not compared with it.
var notDecodableByGoMessage = map[string]bool{
	"enmime_malformed_base64_msword_attachment.eml": true,
}

var limits = rewrite.Limits{MaxHeaderBytes: 1 << 20, MaxDepth: 50, MaxParts: 10000}

func TestSamples(t *testing.T) {
	h := start(t, nil)
	for _, tc := range sampleCases {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../testdata/samples", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			before := len(h.hop.Messages())
			// Each sample from its own sender: two samples that are the
			// same bytes (CRLF and LF versions) are different messages,
			// not a retry of one.
			se := send(t, h.addr, "sender+"+strings.TrimSuffix(tc.file, ".eml")+"@example.co.jp", []string{"rcpt@example.com"}, raw)
			got := h.hop.Messages()[before:]
			if tc.refused != "" {
				if se == nil || !strings.Contains(tc.refused, se.Message) || se.Code != 554 {
					t.Fatalf("got %+v, want %s", se, tc.refused)
				}
				if len(got) != 0 {
					t.Fatal("a refused message reached the next hop")
				}
				return
			}
			if se != nil {
				t.Fatalf("got %d %v %s, want 250", se.Code, se.EnhancedCode, se.Message)
			}
			if tc.names == nil {
				if len(got) != 1 || !bytes.Equal(got[0].Data, crlf(raw)) {
					t.Fatalf("a message without attachments to encrypt must pass byte for byte; next hop got %d messages", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("next hop got %d messages, want the rewritten message", len(got))
			}
			h.release(t)
			pws := byKind(h.hop.Messages()[before:])["password"]
			if len(pws) != 1 {
				t.Fatalf("%d password mails after the release, want 1", len(pws))
			}
			checkRewritten(t, tc.file, raw, got[0].Data, passwordOf(t, pws[0].Data), tc.names)
		})
	}
}

// checkRewritten asserts what a recipient would see of a rewritten sample.
func checkRewritten(t *testing.T, file string, raw, out []byte, password string, wantNames []string) {
	raw = crlf(raw) // what zipgate received over SMTP
	pl, err := rewrite.Analyze(bytes.NewReader(raw), int64(len(raw)), limits, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	zipName, zipData := zipOf(t, out)
	names, files := unzip(t, zipData, password)
	if strings.Join(names, "\n") != strings.Join(wantNames, "\n") {
		t.Fatalf("zip holds\n%q\nwant\n%q", names, wantNames)
	}
	want := map[string][]byte{}
	for i, a := range pl.Attachments {
		p := a.Part
		partRaw := raw[p.Start:p.End]
		// Nothing of an attachment is left in the clear (unless the same
		// bytes are also in a part that stays, as an invite is).
		if body := bytes.TrimSpace(raw[p.BodyStart:p.End]); len(body) > 64 && bytes.Contains(out, body) && !inKeptPart(pl, raw, body) {
			t.Errorf("attachment %q is still in the message in the clear", names[i])
		}
		if a.Whole {
			// Zipped as written, header included.
			if !bytes.Equal(files[names[i]], partRaw) {
				t.Errorf("%q is not the part as written", names[i])
			}
			want[names[i]] = partRaw
			continue
		}
		if notDecodableByGoMessage[file] {
			if len(files[names[i]]) == 0 {
				t.Errorf("%q is empty", names[i])
			}
			want[names[i]] = files[names[i]]
			continue
		}
		// go-message decodes the original part independently.
		e, err := message.Read(bytes.NewReader(partRaw))
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			t.Fatalf("go-message cannot read part %d: %v", i, err)
		}
		orig, _ := io.ReadAll(e.Body)
		if g := files[names[i]]; len(g) > len(orig) && bytes.HasPrefix(g, orig) && unpaddedBase64(p, raw) {
			// go-message drops a last group of base64 that lost its
			// padding; zipgate decodes it, as mail clients do.
			orig = g
		}
		if !bytes.Equal(files[names[i]], orig) {
			t.Errorf("%q: %d bytes in the zip, original part has %d", names[i], len(files[names[i]]), len(orig))
		}
		want[names[i]] = orig
	}
	// Every part that is neither an attachment nor a text body (inline
	// images, calendar invites) is still there byte for byte.
	var visit func(p *rewrite.Part)
	visit = func(p *rewrite.Part) {
		for _, c := range p.Children {
			visit(c)
		}
		if p.IsMultipart() || p.MediaType == "text/plain" || p.MediaType == "text/html" || isAttachment(pl, p) || p == pl.Root {
			return
		}
		if !bytes.Contains(out, raw[p.Start:p.End]) {
			t.Errorf("%s part (Content-ID %q) was changed", p.MediaType, p.Get("Content-ID"))
		}
	}
	visit(pl.Root)
	// A text part tells the recipient where the files went.
	found := false
	for _, e := range leaves(t, out) {
		if mt, _, _ := e.header.ContentType(); strings.HasPrefix(mt, "text/") && bytes.Contains(e.body, []byte(zipName)) {
			found = true
		}
	}
	if !found {
		t.Error("no text part names the zip")
	}
	checkWithTools(t, zipData, password, want)
}

// unpaddedBase64 reports a base64 body whose last group is short.
func unpaddedBase64(p *rewrite.Part, raw []byte) bool {
	if p.Encoding != "base64" {
		return false
	}
	n := 0
	for _, c := range raw[p.BodyStart:p.End] {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' {
			n++
		}
	}
	return n%4 != 0
}

// inKeptPart reports whether b is inside a part that is not an attachment.
func inKeptPart(pl *rewrite.Plan, raw, b []byte) bool {
	var found bool
	var visit func(p *rewrite.Part)
	visit = func(p *rewrite.Part) {
		for _, c := range p.Children {
			visit(c)
		}
		if !p.IsMultipart() && !isAttachment(pl, p) && bytes.Contains(raw[p.BodyStart:p.End], b) {
			found = true
		}
	}
	visit(pl.Root)
	return found
}

func isAttachment(pl *rewrite.Plan, p *rewrite.Part) bool {
	for _, a := range pl.Attachments {
		if a.Part == p {
			return true
		}
	}
	return false
}

// crlf normalizes line ends the way SMTP transfer does (which also ends
// the last line).
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, "\r\n"...)
	}
	return b
}

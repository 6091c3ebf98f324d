// Package mimeparam parses MIME header parameters the lenient way mail
// clients do and recovers attachment file names from every form real mailers
// send (RFC 2045 parameters, RFC 2231 extended and continued parameters,
// RFC 2047 encoded-words in parameters, and raw 8-bit bytes).
//
// mime.ParseMediaType is not used: it rejects much of what is seen in the wild
// (missing ";", duplicate parameters, unquoted tspecials), drops RFC 2231
// values in charsets other than UTF-8/ASCII and strips the backslashes of
// unescaped Windows paths in quoted strings.
//
// Charset decisions (see decode.go):
//   - Known charsets are decoded with go-message's charset package (plus a few
//     aliases it lacks, such as cp932 and cp949).
//   - Unknown charsets ("x-bogus", "x-klingon") are not an error and are not
//     left encoded: their bytes are sniffed exactly like raw 8-bit header
//     bytes. Sniffing tries, in order: ISO-2022-JP (7-bit bytes with ESC),
//     UTF-8 (kept as is), Shift_JIS (only if it decodes without error and has
//     a lead byte in 0x81-0x9F, i.e. kana, common kanji or symbols, which
//     Latin-1 text rarely has), EUC-JP (only if it decodes without error),
//     and finally Windows-1252, the usual reading of "ISO-8859-1", which
//     maps every byte (its five undefined bytes become U+FFFD). The result is
//     therefore always valid UTF-8 and ASCII is always kept.
//   - A known charset whose decoding yields U+FFFD (a label that does not fit
//     the bytes, e.g. UTF-8 labelled iso-2022-jp or us-ascii) is replaced by
//     the sniffed reading when that has fewer U+FFFD.
package mimeparam

package rewrite

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
)

// A message signed or encrypted as a whole passes untouched, since
// rewriting it would break it. Only the structure of a signature or an
// encryption counts, never the media type alone: a multipart/signed
// with a text and a PDF and no signature is an ordinary message.

// Protocols of multipart/signed (RFC 3156, RFC 8551).
var signatureProtocols = map[string]bool{
	"application/pgp-signature":     true,
	"application/pkcs7-signature":   true,
	"application/x-pkcs7-signature": true,
}

// maxSignature bounds a signature part: a PGP signature is a few hundred
// bytes, an S/MIME one with its certificate chain a few KiB.
const maxSignature = 256 << 10

// signedWhole reports a message that is S/MIME or PGP/MIME signed or
// encrypted as a whole, by its structure:
//   - multipart/signed with exactly two parts, the second of the
//     protocol type and holding a detached signature (OpenPGP signature
//     packets, or CMS SignedData without content);
//   - multipart/encrypted (PGP/MIME) with exactly two parts, a version
//     part of the protocol type and an OpenPGP encrypted message;
//   - application/pkcs7-mime holding CMS EnvelopedData or
//     AuthEnvelopedData. SignedData (opaque signing) wraps clear text,
//     and CompressedData clear bytes: both are zipped whole.
//
// The same types deeper down are files like any other (a .p7m or .pgp
// attachment), so they are zipped.
func (pl *Plan) signedWhole(root *Part) bool {
	if hasAmbiguous(root) {
		return false
	}
	switch root.MediaType {
	case "multipart/signed":
		protocol := strings.ToLower(strings.TrimSpace(root.Params()["protocol"]))
		if !signatureProtocols[protocol] || !twoParts(root) || root.Children[1].MediaType != protocol {
			return false
		}
		sig := root.Children[1]
		if sig.Size() > maxSignature*2 { // base64 of maxSignature, with room
			return false
		}
		if protocol == "application/pgp-signature" {
			return pgpArmored(pl.decoded(sig), "SIGNATURE", pgpSignaturePackets)
		}
		b, err := io.ReadAll(io.LimitReader(pl.decoded(sig), maxSignature+1))
		return err == nil && len(b) <= maxSignature && cmsDetachedSignature(b)
	case "multipart/encrypted":
		protocol := strings.ToLower(strings.TrimSpace(root.Params()["protocol"]))
		if protocol != "application/pgp-encrypted" || !twoParts(root) {
			return false
		}
		version, data := root.Children[0], root.Children[1]
		if version.MediaType != protocol || data.MediaType != "application/octet-stream" {
			return false
		}
		v, err := io.ReadAll(io.LimitReader(pl.decoded(version), 1<<10+1))
		if err != nil || len(v) > 1<<10 || !bytes.Contains(v, []byte("Version: 1")) {
			return false
		}
		return pgpArmored(pl.decoded(data), "MESSAGE", pgpEncryptedPackets)
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		switch strings.ToLower(strings.TrimSpace(root.Params()["smime-type"])) {
		case "", "enveloped-data", "authenveloped-data":
		default:
			return false
		}
		var head [64]byte
		n, _ := io.ReadFull(pl.decoded(root), head[:])
		oid, ok := cmsContentType(head[:n])
		return ok && (bytes.Equal(oid, oidEnvelopedData) || bytes.Equal(oid, oidAuthEnvelopedData))
	}
	return false
}

// twoParts: a closed multipart with exactly two parts, the second a leaf.
func twoParts(p *Part) bool {
	return len(p.Children) == 2 && p.CloseDelim >= 0 && !p.Children[1].IsMultipart()
}

func hasAmbiguous(p *Part) bool {
	if p.ambiguity != unambiguous {
		return true
	}
	for _, c := range p.Children {
		if hasAmbiguous(c) {
			return true
		}
	}
	return false
}

// Size is the length of p's raw body.
func (p *Part) Size() int64 { return p.End - p.BodyStart }

// CMS (RFC 5652) content types, as DER object identifier contents.
var (
	oidSignedData        = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}             // 1.2.840.113549.1.7.2
	oidEnvelopedData     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}             // 1.2.840.113549.1.7.3
	oidAuthEnvelopedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17} // 1.2.840.113549.1.9.16.1.23
)

// berHeader parses the identifier and length octets at the start of b:
// the tag byte, the content length (-1 when indefinite) and the header
// length. Tag numbers above 30 are not used by CMS and fail.
func berHeader(b []byte) (tag byte, n, hdr int, ok bool) {
	if len(b) < 2 || b[0]&0x1f == 0x1f {
		return 0, 0, 0, false
	}
	tag, l := b[0], b[1]
	switch {
	case l < 0x80:
		return tag, int(l), 2, true
	case l == 0x80:
		return tag, -1, 2, tag&0x20 != 0 // indefinite only for constructed
	}
	k := int(l & 0x7f)
	if k > 4 || len(b) < 2+k {
		return 0, 0, 0, false
	}
	for _, c := range b[2 : 2+k] {
		n = n<<8 | int(c)
	}
	return tag, n, 2 + k, n >= 0
}

// berSkip returns the length of the whole element at the start of b.
func berSkip(b []byte, depth int) (int, bool) {
	_, n, hdr, ok := berHeader(b)
	if !ok || depth > 32 {
		return 0, false
	}
	if n >= 0 {
		return hdr + n, hdr+n <= len(b)
	}
	pos := hdr
	for {
		if len(b) >= pos+2 && b[pos] == 0 && b[pos+1] == 0 {
			return pos + 2, true
		}
		k, ok := berSkip(b[pos:], depth+1)
		if !ok {
			return 0, false
		}
		pos += k
	}
}

// cmsContentType returns the content type of a CMS ContentInfo and the
// bytes after it (the explicit [0] content).
func cmsContentType(b []byte) (oid []byte, ok bool) {
	oid, _, ok = cmsContent(b)
	return oid, ok
}

func cmsContent(b []byte) (oid, rest []byte, ok bool) {
	tag, _, hdr, ok := berHeader(b)
	if !ok || tag != 0x30 {
		return nil, nil, false
	}
	b = b[hdr:]
	tag, n, hdr, ok := berHeader(b)
	if !ok || tag != 0x06 || n <= 0 || n > 32 || len(b) < hdr+n {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
}

// cmsDetachedSignature reports a CMS ContentInfo holding SignedData
// without encapsulated content: a detached signature, as in
// multipart/signed. SignedData with content would carry clear bytes.
func cmsDetachedSignature(b []byte) bool {
	oid, rest, ok := cmsContent(b)
	if !ok || !bytes.Equal(oid, oidSignedData) {
		return false
	}
	// [0] EXPLICIT SignedData
	tag, _, hdr, ok := berHeader(rest)
	if !ok || tag != 0xa0 {
		return false
	}
	rest = rest[hdr:]
	tag, _, hdr, ok = berHeader(rest)
	if !ok || tag != 0x30 {
		return false
	}
	rest = rest[hdr:]
	// version INTEGER, digestAlgorithms SET
	for _, want := range []byte{0x02, 0x31} {
		if len(rest) == 0 || rest[0] != want {
			return false
		}
		k, ok := berSkip(rest, 0)
		if !ok {
			return false
		}
		rest = rest[k:]
	}
	// encapContentInfo SEQUENCE { eContentType OID, eContent [0] OPTIONAL }
	tag, n, hdr, ok := berHeader(rest)
	if !ok || tag != 0x30 {
		return false
	}
	inner := rest[hdr:]
	if len(inner) == 0 || inner[0] != 0x06 {
		return false
	}
	k, ok := berSkip(inner, 0)
	if !ok {
		return false
	}
	if n >= 0 {
		return n == k
	}
	return len(inner) >= k+2 && inner[k] == 0 && inner[k+1] == 0
}

// OpenPGP packet tags (RFC 9580).
const (
	pgpPKESK     = 1
	pgpSignature = 2
	pgpSKESK     = 3
	pgpSED       = 9
	pgpMarker    = 10
	pgpSEIPD     = 18
	pgpAEAD      = 20
)

var errPGP = errors.New("not an OpenPGP packet sequence")

// pgpSignaturePackets accepts one or more signature packets and nothing
// else.
func pgpSignaturePackets(r *bufio.Reader) bool {
	n := 0
	for {
		tag, length, partial, err := pgpPacket(r)
		if err == io.EOF {
			return n > 0
		}
		if err != nil || tag != pgpSignature || partial || length < 0 {
			return false
		}
		if _, err := r.Discard(length); err != nil {
			return false
		}
		n++
	}
}

// pgpEncryptedPackets accepts session key packets followed by exactly one
// encrypted data packet that runs to the end: an OpenPGP message whose
// content is encrypted. A literal or compressed packet outside the
// encryption would be clear bytes.
func pgpEncryptedPackets(r *bufio.Reader) bool {
	for {
		tag, length, partial, err := pgpPacket(r)
		if err != nil {
			return false
		}
		switch tag {
		case pgpPKESK, pgpSKESK, pgpMarker:
			if partial || length < 0 {
				return false
			}
			if _, err := r.Discard(length); err != nil {
				return false
			}
			continue
		case pgpSED, pgpSEIPD, pgpAEAD:
		default:
			return false
		}
		// The data packet: its (partial) lengths must reach the end.
		for {
			if length < 0 { // old format, indeterminate: to the end
				_, err := io.Copy(io.Discard, r)
				return err == nil
			}
			if _, err := r.Discard(length); err != nil {
				return false
			}
			if !partial {
				_, err := r.Peek(1)
				return err == io.EOF
			}
			length, partial, err = pgpNewLength(r)
			if err != nil {
				return false
			}
		}
	}
}

// pgpPacket reads a packet header: tag, body length (-1: old format
// indeterminate) and whether the length is partial (more follows).
func pgpPacket(r *bufio.Reader) (tag, length int, partial bool, err error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, false, err // io.EOF: no more packets
	}
	if c&0x80 == 0 {
		return 0, 0, false, errPGP
	}
	if c&0x40 != 0 { // new format
		length, partial, err = pgpNewLength(r)
		return int(c & 0x3f), length, partial, err
	}
	tag = int(c>>2) & 0x0f
	var k int
	switch c & 3 {
	case 0:
		k = 1
	case 1:
		k = 2
	case 2:
		k = 4
	case 3:
		return tag, -1, false, nil
	}
	for range k {
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, false, errPGP
		}
		length = length<<8 | int(b)
	}
	if length < 0 {
		return 0, 0, false, errPGP
	}
	return tag, length, false, nil
}

func pgpNewLength(r *bufio.Reader) (int, bool, error) {
	o1, err := r.ReadByte()
	if err != nil {
		return 0, false, errPGP
	}
	switch {
	case o1 < 192:
		return int(o1), false, nil
	case o1 < 224:
		o2, err := r.ReadByte()
		if err != nil {
			return 0, false, errPGP
		}
		return (int(o1)-192)<<8 + int(o2) + 192, false, nil
	case o1 < 255:
		return 1 << (o1 & 0x1f), true, nil
	}
	var n int
	for range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, false, errPGP
		}
		n = n<<8 | int(b)
	}
	if n < 0 {
		return 0, false, errPGP
	}
	return n, false, nil
}

// pgpArmored reports whether r holds exactly one ASCII-armored OpenPGP
// block of the given kind ("SIGNATURE", "MESSAGE"), with nothing but
// white space around it, whose packets check accepts.
func pgpArmored(r io.Reader, kind string, check func(*bufio.Reader) bool) bool {
	ar := &armorReader{br: bufio.NewReader(r), begin: "-----BEGIN PGP " + kind + "-----", end: "-----END PGP " + kind + "-----"}
	if !check(bufio.NewReader(ar)) || ar.err != nil && ar.err != io.EOF {
		return false
	}
	// The packets ended: the armor must end too, with nothing after it.
	_, err := io.Copy(io.Discard, ar)
	return err == nil && ar.state == armorDone
}

type armorState int

const (
	armorStart armorState = iota
	armorHeaders
	armorData
	armorCRC
	armorDone
)

// armorReader decodes an ASCII-armored block (RFC 9580 6.2) and fails on
// anything that is not part of one: text before or after it, or a line
// that is not base64.
type armorReader struct {
	br         *bufio.Reader
	begin, end string
	state      armorState
	quad       []byte // base64 characters not yet decoded
	out        []byte
	err        error
}

var errArmor = errors.New("not an ASCII-armored OpenPGP block")

func (a *armorReader) Read(p []byte) (int, error) {
	for len(a.out) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		line, err := a.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			a.err = errArmor
			continue
		}
		if err != nil && err != io.EOF {
			a.err = err
			continue
		}
		if len(line) == 0 && err == io.EOF {
			if a.state != armorDone {
				a.err = errArmor
			} else {
				a.err = io.EOF
			}
			continue
		}
		a.line(bytes.TrimSpace(line))
	}
	n := copy(p, a.out)
	a.out = a.out[n:]
	return n, nil
}

func (a *armorReader) line(l []byte) {
	switch a.state {
	case armorStart:
		switch {
		case len(l) == 0:
		case string(l) == a.begin:
			a.state = armorHeaders
		default:
			a.err = errArmor
		}
	case armorHeaders:
		switch {
		case len(l) == 0:
			a.state = armorData
		case bytes.Contains(l, []byte(": ")):
		default:
			a.state = armorData // no blank line after the headers: lenient
			a.line(l)
		}
	case armorData, armorCRC:
		switch {
		case string(l) == a.end:
			if len(a.quad) != 0 {
				a.err = errArmor
			}
			a.state = armorDone
		case a.state == armorCRC || len(l) == 0:
			a.err = errArmor
		case l[0] == '=' && len(l) == 5:
			a.state = armorCRC
		default:
			for _, c := range l {
				if !isBase64(c) {
					a.err = errArmor
					return
				}
				a.quad = append(a.quad, c)
				if len(a.quad) == 4 {
					var dst [3]byte
					n, err := base64.StdEncoding.Decode(dst[:], a.quad)
					if err != nil {
						a.err = errArmor
						return
					}
					a.out = append(a.out, dst[:n]...)
					a.quad = a.quad[:0]
				}
			}
		}
	case armorDone:
		if len(l) != 0 {
			a.err = errArmor
		}
	}
}

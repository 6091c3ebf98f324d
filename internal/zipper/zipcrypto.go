package zipper

import (
	"crypto/rand"
	"hash/crc32"
	"io"
)

// zipCrypto is the traditional PKWARE stream cipher (APPNOTE 6.1). It is
// weak (known-plaintext attacks recover the keys); it exists only because
// Windows Explorer opens nothing else.
type zipCrypto struct {
	k0, k1, k2 uint32
}

func newZipCrypto(password []byte) *zipCrypto {
	z := &zipCrypto{0x12345678, 0x23456789, 0x34567890}
	for _, b := range password {
		z.update(b)
	}
	return z
}

// crc32Byte is one step of the raw CRC-32 (no pre/post inversion), as
// APPNOTE's crc32(key, char) uses it.
func crc32Byte(crc uint32, b byte) uint32 {
	return crc32.IEEETable[byte(crc)^b] ^ crc>>8
}

func (z *zipCrypto) update(b byte) {
	z.k0 = crc32Byte(z.k0, b)
	z.k1 = (z.k1+z.k0&0xff)*134775813 + 1
	z.k2 = crc32Byte(z.k2, byte(z.k1>>24))
}

// encrypt enciphers src into dst (which may be src).
func (z *zipCrypto) encrypt(dst, src []byte) {
	for i, p := range src {
		t := z.k2 | 2
		dst[i] = p ^ byte(t*(t^1)>>8)
		z.update(p)
	}
}

// zipCryptoWriter encrypts everything written to it, after the 12-byte
// encryption header.
type zipCryptoWriter struct {
	w   io.Writer
	z   *zipCrypto
	buf []byte // ciphertext scratch, so the caller's slice is untouched
}

// newZipCryptoWriter writes the encryption header: 11 random bytes and a
// check byte that readers compare to reject a wrong password early. With
// a data descriptor (flag bit 3) the CRC is unknown when the header is
// written, so the check byte is the high byte of the DOS mod time.
func newZipCryptoWriter(w io.Writer, password []byte, check byte, buf []byte) (*zipCryptoWriter, error) {
	var hdr [zipCryptoHeaderLen]byte
	if _, err := rand.Read(hdr[:11]); err != nil {
		return nil, err
	}
	hdr[11] = check
	z := newZipCrypto(password)
	z.encrypt(hdr[:], hdr[:])
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, err
	}
	return &zipCryptoWriter{w: w, z: z, buf: buf}, nil
}

func (e *zipCryptoWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), len(e.buf))]
		e.z.encrypt(e.buf, c)
		m, err := e.w.Write(e.buf[:len(c)])
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(c):]
	}
	return n, nil
}

// Close does nothing: ZipCrypto has no trailer.
func (e *zipCryptoWriter) Close() error { return nil }

// zipCryptoHeaderLen is the size of the encryption header.
const zipCryptoHeaderLen = 12

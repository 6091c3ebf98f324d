package zipper

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"io"
)

// WinZip AES encryption (AE-2), as specified at
// https://www.winzip.com/en/support/aes-encryption/: per entry a random
// salt, PBKDF2-HMAC-SHA1 (1000 rounds) makes the AES key, the HMAC key and
// a 2-byte password check; the data is AES-CTR with a little-endian
// counter starting at 1, followed by the first 10 bytes of an HMAC-SHA1
// of the ciphertext. AE-2 writes no CRC, which would tell something about
// the plaintext.
const (
	aesMethod      = 99 // compression method of every AES entry
	aesExtraID     = 0x9901
	aesVendorAE2   = 2
	aesStrength256 = 3
	aesKeyLen      = 32
	aesSaltLen     = 16
	aesMACLen      = 10
	pbkdf2Rounds   = 1000
	aesOverhead    = aesSaltLen + 2 + aesMACLen // bytes an entry grows by
)

// aesExtra is the 0x9901 extra field naming the real compression method.
func aesExtra(method uint16) []byte {
	b := make([]byte, 11)
	binary.LittleEndian.PutUint16(b, aesExtraID)
	binary.LittleEndian.PutUint16(b[2:], 7)
	binary.LittleEndian.PutUint16(b[4:], aesVendorAE2)
	b[6], b[7] = 'A', 'E'
	b[8] = aesStrength256
	binary.LittleEndian.PutUint16(b[9:], method)
	return b
}

// ctrBatch blocks of key stream are made at a time.
const ctrBatch = 512

// aesWriter encrypts and authenticates everything written to it; the
// salt and password check go out first, the MAC at Close.
type aesWriter struct {
	w     io.Writer
	block cipher.Block
	mac   hash.Hash
	ctr   uint64              // blocks used so far; the next counter is ctr+1
	ks    [ctrBatch * 16]byte // key stream; ks[ksPos:] not used yet
	ksPos int
	ct    []byte // ciphertext scratch, so the caller's slice is untouched
}

func newAESWriter(w io.Writer, password string, ct []byte) (*aesWriter, error) {
	var salt [aesSaltLen]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	keys, err := pbkdf2.Key(sha1.New, password, salt[:], pbkdf2Rounds, 2*aesKeyLen+2)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(keys[:aesKeyLen])
	if err != nil {
		return nil, err
	}
	a := &aesWriter{w: w, block: block, mac: hmac.New(sha1.New, keys[aesKeyLen:2*aesKeyLen]), ct: ct}
	a.ksPos = len(a.ks)
	if _, err := w.Write(append(salt[:], keys[2*aesKeyLen:]...)); err != nil {
		return nil, err
	}
	return a, nil
}

// refill makes the next batch of key stream: AES of the little-endian
// block counter. crypto/cipher's CTR counts big-endian, so it cannot be
// used.
func (a *aesWriter) refill() {
	for i := 0; i < len(a.ks); i += 16 {
		a.ctr++
		b := a.ks[i : i+16]
		binary.LittleEndian.PutUint64(b, a.ctr)
		clear(b[8:])
		a.block.Encrypt(b, b)
	}
	a.ksPos = 0
}

func (a *aesWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := a.ct[:min(len(p), len(a.ct))]
		for done := 0; done < len(c); {
			if a.ksPos == len(a.ks) {
				a.refill()
			}
			k := subtle.XORBytes(c[done:], p[done:len(c)], a.ks[a.ksPos:])
			a.ksPos += k
			done += k
		}
		a.mac.Write(c)
		m, err := a.w.Write(c)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(c):]
	}
	return n, nil
}

// Close writes the authentication code. It does not close the writer
// below.
func (a *aesWriter) Close() error {
	_, err := a.w.Write(a.mac.Sum(nil)[:aesMACLen])
	return err
}

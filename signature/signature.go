// Package signature signs the responses a client receives, so that its SDK can tell a
// response Gatehouse vouched for from a forged or replayed one (002_*.txt: the SDK checks
// an HMAC-SHA256 signature on every response and that the response echoes its nonce).
//
// The signature is the lowercase hex of HMAC-SHA256(secret, canonical string), where the
// canonical string is five lines joined by '\n', without a final newline:
//
//	gatehouse-v1
//	<nonce, as the request sent it; empty when it sent none>
//	<HTTP status, decimal>
//	<timestamp: Unix seconds, decimal, as sent in the timestamp header>
//	<lowercase hex SHA-256 of the exact body bytes the client receives>
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"
)

// Version is the first line of the canonical string.
const Version = "gatehouse-v1"

// Defaults of Settings.
const (
	DefaultNonceHeader     = "x-nonce"
	DefaultEchoHeader      = "x-nonce"
	DefaultSignatureHeader = "x-signature"
	DefaultTimestampHeader = "x-signature-timestamp"
	DefaultWindow          = 5 * time.Minute
)

// Bounds of a nonce and of a secret.
const (
	MinNonce  = 16
	MaxNonce  = 128
	MinSecret = 32
)

// Settings name the headers of signed responses and the replay window of nonces.
type Settings struct {
	NonceHeader     string        // request header carrying the client's nonce
	EchoHeader      string        // response header echoing it
	SignatureHeader string        // response header carrying the signature
	TimestampHeader string        // response header carrying the timestamp signed
	Window          time.Duration // a nonce seen within this long is a replay
}

// Signer signs responses with one secret. It is immutable and safe for concurrent use.
type Signer struct {
	Settings
	secret []byte
	macs   sync.Pool // hash.Hash: HMAC-SHA256 keyed with secret
}

// New returns a Signer with s's empty fields set to their defaults. The secret must be
// at least MinSecret bytes.
func New(secret []byte, s Settings) (*Signer, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("the signing secret must be at least %d bytes", MinSecret)
	}
	s.NonceHeader = or(s.NonceHeader, DefaultNonceHeader)
	s.EchoHeader = or(s.EchoHeader, DefaultEchoHeader)
	s.SignatureHeader = or(s.SignatureHeader, DefaultSignatureHeader)
	s.TimestampHeader = or(s.TimestampHeader, DefaultTimestampHeader)
	if s.Window <= 0 {
		s.Window = DefaultWindow
	}
	sg := &Signer{Settings: s, secret: append([]byte(nil), secret...)}
	sg.macs.New = func() any { return hmac.New(sha256.New, sg.secret) }
	return sg, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ValidNonce reports whether n may be a nonce: MinNonce to MaxNonce characters of
// letters, digits and - . _ ~ + / = (hex, base64, base64url and UUIDs fit). Anything
// else is refused, never echoed.
func ValidNonce(n string) bool {
	if len(n) < MinNonce || len(n) > MaxNonce {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// AppendCanonical appends the canonical string of a response to dst.
func AppendCanonical(dst []byte, nonce string, status int, ts int64, body []byte) []byte {
	sum := sha256.Sum256(body)
	dst = append(dst, Version...)
	dst = append(dst, '\n')
	dst = append(dst, nonce...)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, '\n')
	return hex.AppendEncode(dst, sum[:])
}

// Sign returns the signature of a response: lowercase hex HMAC-SHA256.
func (s *Signer) Sign(nonce string, status int, ts int64, body []byte) string {
	var buf [64 + MaxNonce + 128]byte
	c := AppendCanonical(buf[:0], nonce, status, ts, body)
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(c)
	var sum [sha256.Size]byte
	out := hex.EncodeToString(m.Sum(sum[:0]))
	s.macs.Put(m)
	return out
}

// Header is one response header a signed response carries.
type Header struct {
	Key, Value string
}

// AppendHeaders appends the headers of a signed response to dst: the echoed nonce (when
// the request sent a valid one), the timestamp and the signature. An invalid nonce is
// signed as the empty string and not echoed.
func (s *Signer) AppendHeaders(dst []Header, nonce string, status int, now time.Time, body []byte) []Header {
	if !ValidNonce(nonce) {
		nonce = ""
	}
	ts := now.Unix()
	if nonce != "" {
		dst = append(dst, Header{Key: s.EchoHeader, Value: nonce})
	}
	return append(dst,
		Header{Key: s.TimestampHeader, Value: strconv.FormatInt(ts, 10)},
		Header{Key: s.SignatureHeader, Value: s.Sign(nonce, status, ts, body)})
}

// ErrMismatch is the error of a signature that does not verify.
var ErrMismatch = errors.New("signature mismatch")

// Verify checks a captured response's signature against secret, in constant time. It
// returns the signature it computed, and ErrMismatch when sig differs.
func Verify(secret []byte, nonce string, status int, ts int64, body []byte, sig string) (string, error) {
	m := hmac.New(sha256.New, secret)
	m.Write(AppendCanonical(nil, nonce, status, ts, body))
	want := hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return want, ErrMismatch
	}
	return want, nil
}

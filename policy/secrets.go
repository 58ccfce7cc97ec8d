package policy

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"time"
)

// Secret is an upstream credential Gatehouse injects, so that apps never hold it. Its
// value is read when the config is compiled (from a file or the environment) and kept
// only in memory.
type Secret struct {
	Name    string
	Missing bool      // the file or variable did not exist at load: SECRET_NOT_FOUND
	Expires time.Time // zero: never
	plain   string
	// Encrypted secrets are decrypted at load; a failure is kept as Undecryptable so
	// that requests get SECRET_DECRYPTION_FAILED rather than the config failing to load.
	Undecryptable bool
}

// NewSecret returns a secret holding a plain value.
func NewSecret(name, value string, expires time.Time) *Secret {
	return &Secret{Name: name, plain: value, Expires: expires}
}

// NewEncryptedSecret returns a secret whose value is AES-256-GCM ciphertext (base64 of
// nonce || ciphertext || tag) under key (32 bytes). A value that does not decrypt yields a
// secret that answers SECRET_DECRYPTION_FAILED.
func NewEncryptedSecret(name, ciphertext string, key []byte, expires time.Time) *Secret {
	s := &Secret{Name: name, Expires: expires}
	v, err := decrypt(ciphertext, key)
	if err != nil {
		s.Undecryptable = true
		return s
	}
	s.plain = v
	return s
}

func decrypt(ciphertext string, key []byte) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	if len(raw) < gcm.NonceSize()+gcm.Overhead() {
		return "", errors.New("ciphertext too short")
	}
	out, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	return string(out), err
}

func (s *Secret) value(now time.Time) (string, Code) {
	switch {
	case s == nil || s.Missing:
		return "", SecretNotFound
	case s.Undecryptable:
		return "", SecretDecryptionFailed
	case !s.Expires.IsZero() && !now.Before(s.Expires):
		return "", SecretExpired
	}
	return s.plain, ""
}

// Injection sets an upstream header from a secret: Header: Prefix + value.
type Injection struct {
	Header string // lower-case
	Prefix string // e.g. "Bearer "
	Secret *Secret
}

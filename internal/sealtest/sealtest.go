// Package sealtest seals secret values as encrypted secrets in the configuration hold
// them (base64 of a 12-byte nonce and the AES-256-GCM ciphertext), for tests: the server
// only ever opens them.
package sealtest

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
)

// Seal encrypts plain under key with nonce (12 bytes).
func Seal(plain string, key, nonce []byte) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	if len(nonce) != gcm.NonceSize() {
		return "", errors.New("nonce must be 12 bytes")
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(append([]byte(nil), nonce...), nonce, []byte(plain), nil)), nil
}

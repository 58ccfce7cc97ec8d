package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemFiles writes a self-signed certificate and its key, and a second key that does not
// match it, into dir; it returns their paths.
func pemFiles(t *testing.T, dir string) (cert, key, otherKey string) {
	t.Helper()
	writeKey := func(name string) (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		write(t, p, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})))
		return k, p
	}
	k, key := writeKey("client.key")
	_, otherKey = writeKey("other.key")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse"},
		NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert = filepath.Join(dir, "client.crt")
	write(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return cert, key, otherKey
}

// TestRedisStoreFilesChecked: the files of a Redis store are loaded when the
// configuration is checked, as the server loads them when it opens the store, so that
// `gatehouse validate` does not pass a configuration that serve refuses. Absent files are
// warnings only with MissingFilesOK (validate --offline).
func TestRedisStoreFilesChecked(t *testing.T) {
	dir := t.TempDir()
	cert, key, otherKey := pemFiles(t, dir)
	noCA := filepath.Join(dir, "not-a-ca.pem")
	write(t, noCA, "not a certificate\n")
	password := filepath.Join(dir, "redis.password")
	write(t, password, "hunter2-redis-password\n")
	absent := filepath.Join(dir, "absent", "file")
	const base = "store:\n  type: redis\n  redis:\n    addrs: [127.0.0.1:6379]\n"
	cases := []struct {
		name, redis string
		offline     bool
		want        string // "" when the load succeeds
	}{
		{"good files", "    password_file: " + password + "\n    tls: {enabled: true, ca_file: " + cert + ", cert_file: " + cert + ", key_file: " + key + "}\n", false, ""},
		{"CA file without a certificate", "    tls: {enabled: true, ca_file: " + noCA + "}\n", false, "store.redis.tls.ca_file: no certificate found"},
		{"key of another certificate", "    tls: {enabled: true, cert_file: " + cert + ", key_file: " + otherKey + "}\n", false, "store.redis.tls: tls: private key does not match public key"},
		{"absent password file", "    password_file: " + absent + "\n", false, "store.redis.password_file: "},
		{"absent password file, offline", "    password_file: " + absent + "\n", true, ""},
		{"absent CA, offline", "    tls: {enabled: true, ca_file: " + absent + "}\n", true, ""},
		{"bad CA beside an absent password file, offline", "    password_file: " + absent + "\n    tls: {enabled: true, ca_file: " + noCA + "}\n", true, "store.redis.tls.ca_file: no certificate found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			write(t, cfg, base+tc.redis)
			deps := testDeps()
			deps.MissingFilesOK = tc.offline
			_, err := Load(cfg, deps)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the password is in the error: %v", err)
			}
		})
	}
}

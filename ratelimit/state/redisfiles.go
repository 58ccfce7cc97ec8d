package state

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultRedisTimeout bounds a store call when the file sets no redis.timeout. It is
// not the round trip (about 0.1ms idle) but its tail under saturation: when Gatehouse,
// Redis and the load share two cores at 64 calls in flight, a call waits for the run
// queue, the pipeline's flush and Redis's event loop, and about 2 in 10,000 waited past
// 5ms (117 of about 600,000 RLS calls failed). A call cut short is worse than slow:
// Envoy gets an error (or the fail mode answers), and when Redis had already run the
// command the request is counted without being admitted (936 of 1000 admitted while
// Redis counted 1000). At 100ms no call failed in those runs. It costs nothing when
// Redis is healthy, and a dead Redis is noticed by refused connections and the circuit
// breaker, not by this timeout; a hung one costs at most this per call until the
// breaker opens. Envoy's own deadline still bounds every call: the RLS filter's 20ms
// default, ext_authz's 200ms. Retries stay off: a retried INCRBY or script could count
// twice, and a budget that covers the tail needs none.
const DefaultRedisTimeout = 100 * time.Millisecond

// MaxRedisTimeout bounds redis.timeout: past it a hung Redis would hold calls for
// longer than any proxy waits for an answer.
const MaxRedisTimeout = 10 * time.Second

// Bounds and defaults of redis.shares (SharesConfig).
const (
	MaxShareSlots        = 64
	MinShareFraction     = 0.001
	MaxShareFraction     = 0.25
	DefaultShareFraction = 0.1
	DefaultShareTTL      = 10 * time.Second
	MaxShareTTL          = time.Hour
)

// ReadPassword reads the Redis password file.
func ReadPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("redis.password_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CheckFiles reads the files the store reads when it opens (the password file, the TLS
// CA and key pair) and returns a problem for each one it could not use, so that a
// configuration check refuses what opening the store would. It dials nothing, and its
// messages name files, never their content.
func (c RedisConfig) CheckFiles() []error {
	var errs []error
	if c.PasswordFile != "" {
		if _, err := ReadPassword(c.PasswordFile); err != nil {
			errs = append(errs, err)
		}
	}
	ca, pair := c.TLS, c.TLS
	ca.CertFile, ca.KeyFile, pair.CAFile = "", "", ""
	for _, t := range []TLSConfig{ca, pair} {
		if _, err := t.Load(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Load returns the TLS configuration t describes, its files read (nil: TLS off).
func (t TLSConfig) Load() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: no certificate found")
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Package grpcauth secures the gRPC port: TLS with a certificate and client CA that are
// re-read when their files change, and allow-lists of client identities (URI and DNS
// SANs of verified client certificates) for Check, ShouldRateLimit and refunds.
//
// The adapters (extauthz, rls) know nothing of it: the server installs the TLS
// credentials and the interceptors in front of them.
package grpcauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/internal/capped"
)

// Files names the PEM files of the gRPC port's TLS.
type Files struct {
	Cert, Key string // the server's certificate chain and private key
	// ClientCA, when set, verifies client certificates; without it no client
	// certificate is asked for.
	ClientCA string
	// RequireClientCert refuses a handshake without a valid client certificate.
	RequireClientCert bool
}

// Certs serves the certificate and client CA in Files. Before each handshake it checks
// the files (one stat each) and, when one changed, loads them again: a Kubernetes Secret
// update, which swaps a symlink, or any rename or write over a file. A set that does not
// load (say the certificate was replaced but not yet its key) is reported and the
// previous one stays; it is tried again when a file changes next. Established
// connections are never touched. Certs is safe for concurrent use.
type Certs struct {
	files Files
	log   *slog.Logger

	mu     sync.Mutex // one check at a time
	stamps [3]os.FileInfo
	cfg    atomic.Pointer[tls.Config]
}

// Load reads the files once; they must load.
func Load(f Files, log *slog.Logger) (*Certs, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("a certificate and a key file are required")
	}
	if f.RequireClientCert && f.ClientCA == "" {
		return nil, errors.New("requiring client certificates needs a client CA file")
	}
	c := &Certs{files: f, log: log}
	c.stamps = c.stat()
	cfg, err := c.build()
	if err != nil {
		return nil, err
	}
	c.cfg.Store(cfg)
	return c, nil
}

// TLSConfig returns the server configuration; each handshake gets the files' current
// contents.
func (c *Certs) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: c.forClient}
}

func (c *Certs) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	c.refresh()
	return c.cfg.Load(), nil
}

// refresh loads the files again when one of them changed since the last look.
func (c *Certs) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.stat()
	changed := false
	for i := range now {
		changed = changed || !sameStamp(now[i], c.stamps[i])
	}
	if !changed {
		return
	}
	c.stamps = now
	cfg, err := c.build()
	if err != nil {
		if c.log != nil {
			c.log.Error("gRPC TLS files changed but do not load; the previous certificate stays", "error", err.Error())
		}
		return
	}
	c.cfg.Store(cfg)
	if c.log != nil {
		c.log.Info("gRPC TLS files reloaded", "not_after", cfg.Certificates[0].Leaf.NotAfter)
	}
}

// stat looks at the three files; os.Stat follows symlinks, so a swapped link shows as a
// different file.
func (c *Certs) stat() [3]os.FileInfo {
	var out [3]os.FileInfo
	for i, p := range []string{c.files.Cert, c.files.Key, c.files.ClientCA} {
		if p != "" {
			out[i], _ = os.Stat(p)
		}
	}
	return out
}

func sameStamp(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// build loads the files into a server configuration.
// maxPEMBytes bounds each certificate, key and CA bundle file, as every file a
// configuration names is bounded.
const maxPEMBytes = 1 << 20

func (c *Certs) build() (*tls.Config, error) {
	certPEM, err := capped.ReadFile(c.files.Cert, maxPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	keyPEM, err := capped.ReadFile(c.files.Key, maxPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
		Certificates: []tls.Certificate{cert},
	}
	if c.files.ClientCA == "" {
		return cfg, nil
	}
	pem, err := capped.ReadFile(c.files.ClientCA, maxPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA: no PEM certificate in %s", c.files.ClientCA)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if c.files.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

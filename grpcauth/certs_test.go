package grpcauth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
)

// writeAtomic replaces path by a rename, as a Kubernetes Secret update does.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// echoServer accepts TLS connections with cfg and echoes what it reads.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func dial(addr string, roots *x509.CertPool, client *tls.Certificate) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// The server verifies a client certificate after the client's handshake returns
	// under TLS 1.3: one round trip proves the server accepted it.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := echo(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte("ping")) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var serverLeaf = grpcauthtest.Leaf{CommonName: "gatehouse", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}

// TestCertsRotate: new handshakes get a replaced certificate and client CA; an
// established connection keeps working; a half-written set keeps the old one.
func TestCertsRotate(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := grpcauthtest.NewCA(t, "CA one"), grpcauthtest.NewCA(t, "CA two")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt"), RequireClientCert: true}
	crt, key := ca1.Issue(t, serverLeaf)
	writeAtomic(t, files.Cert, crt)
	writeAtomic(t, files.Key, key)
	writeAtomic(t, files.ClientCA, ca1.PEM)
	var logs bytes.Buffer
	certs, err := Load(files, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, certs.TLSConfig())
	client1 := ca1.Pair(t, grpcauthtest.Leaf{URIs: []string{envoyID}, Client: true})
	client2 := ca2.Pair(t, grpcauthtest.Leaf{URIs: []string{envoyID}, Client: true})

	old, err := dial(addr, ca1.Pool(), &client1)
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	defer old.Close()
	if _, err := dial(addr, ca1.Pool(), nil); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	if _, err := dial(addr, ca1.Pool(), &client2); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}

	// A new certificate without its key: the old pair stays in force.
	crt2, key2 := ca2.Issue(t, serverLeaf)
	writeAtomic(t, files.Cert, crt2)
	if _, err := dial(addr, ca1.Pool(), &client1); err != nil {
		t.Fatalf("after a half-written rotation: %v", err)
	}
	if !bytes.Contains(logs.Bytes(), []byte("do not load")) {
		t.Fatalf("the failed load is not reported:\n%s", logs.String())
	}

	// The key, then the client CA: new connections see CA two on both sides.
	writeAtomic(t, files.Key, key2)
	writeAtomic(t, files.ClientCA, ca2.PEM)
	waitFor(t, "the rotated certificate", func() bool {
		c, err := dial(addr, ca2.Pool(), &client2)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if _, err := dial(addr, ca1.Pool(), &client1); err == nil {
		t.Fatal("the old certificate or client CA is still served")
	}
	if err := echo(old); err != nil {
		t.Fatalf("the established connection broke: %v", err)
	}
	if bytes.Contains(logs.Bytes(), key) || bytes.Contains(logs.Bytes(), key2) {
		t.Fatal("a key in the log")
	}
}

// TestCertsSymlinkSwap: a Kubernetes Secret volume swaps the ..data symlink; the files
// are links through it.
func TestCertsSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := grpcauthtest.NewCA(t, "CA one"), grpcauthtest.NewCA(t, "CA two")
	writeVersion := func(name string, ca *grpcauthtest.CA) {
		d := filepath.Join(dir, name)
		os.Mkdir(d, 0o700)
		crt, key := ca.Issue(t, serverLeaf)
		os.WriteFile(filepath.Join(d, "tls.crt"), crt, 0o600)
		os.WriteFile(filepath.Join(d, "tls.key"), key, 0o600)
		tmp := filepath.Join(dir, "..data_tmp")
		os.Symlink(name, tmp)
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..v1", ca1)
	for _, f := range []string{"tls.crt", "tls.key"} {
		os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f))
	}
	certs, err := Load(Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, certs.TLSConfig())
	old, err := dial(addr, ca1.Pool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	writeVersion("..v2", ca2)
	waitFor(t, "the swapped certificate", func() bool {
		c, err := dial(addr, ca2.Pool(), nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err := echo(old); err != nil {
		t.Fatalf("the established connection broke: %v", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	ca := grpcauthtest.NewCA(t, "CA")
	crt, key := ca.Issue(t, serverLeaf)
	_, otherKey := ca.Issue(t, serverLeaf)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	c, k, k2, notPEM := write("c", crt), write("k", key), write("k2", otherKey), write("x", []byte("not pem"))
	for name, f := range map[string]Files{
		"no key":             {Cert: c},
		"key of another":     {Cert: c, Key: k2},
		"missing file":       {Cert: c, Key: filepath.Join(dir, "nope")},
		"CA not PEM":         {Cert: c, Key: k, ClientCA: notPEM},
		"require without CA": {Cert: c, Key: k, RequireClientCert: true},
	} {
		if _, err := Load(f, nil); err == nil {
			t.Errorf("%s: loaded", name)
		} else if bytes.Contains([]byte(err.Error()), key) {
			t.Errorf("%s: the key in the error", name)
		}
	}
}

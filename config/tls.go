package config

import (
	"fmt"

	"github.com/gatehouse/gatehouse/grpcauth"
)

// TLS secures the gRPC port: a server certificate, and optionally a client CA and
// allow-lists of client identities.
type TLS struct {
	CertFile string `yaml:"cert_file"` // PEM certificate chain
	KeyFile  string `yaml:"key_file"`  // PEM private key
	// ClientCAFile verifies client certificates (mutual TLS); without it none is asked for.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses a connection without a valid client certificate;
	// otherwise a certificate is verified when one is presented.
	RequireClientCert bool     `yaml:"require_client_cert"`
	Allow             TLSAllow `yaml:"allow"`
}

// TLSAllow lists the client identities (URI SANs such as SPIFFE ids, or DNS SANs) that
// may call each method. A list left out allows every client that completes the
// handshake; refunds left out follow ratelimit.
type TLSAllow struct {
	Check     []string `yaml:"check"`     // Authorization/Check
	RateLimit []string `yaml:"ratelimit"` // RateLimitService/ShouldRateLimit
	Refunds   []string `yaml:"refunds"`   // ShouldRateLimit with is_negative_hits
}

// Files are the TLS files for grpcauth.
func (t *TLS) Files() grpcauth.Files {
	return grpcauth.Files{Cert: t.CertFile, Key: t.KeyFile, ClientCA: t.ClientCAFile, RequireClientCert: t.RequireClientCert}
}

// Lists compiles the allow-lists; the configuration was validated.
func (t *TLS) Lists() (grpcauth.Allow, error) {
	var a grpcauth.Allow
	var err error
	for _, l := range []struct {
		ids []string
		to  **grpcauth.List
	}{{t.Allow.Check, &a.Check}, {t.Allow.RateLimit, &a.RateLimit}, {t.Allow.Refunds, &a.Refunds}} {
		if l.ids != nil {
			if *l.to, err = grpcauth.NewList(l.ids); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}

// TLSFromFile returns the server.tls section with its paths resolved, or nil.
func TLSFromFile(f *File, dir string) *TLS {
	if f.Server.TLS == nil {
		return nil
	}
	c := &compiler{dir: dir}
	t := *f.Server.TLS
	t.CertFile, t.KeyFile, t.ClientCAFile = c.path(t.CertFile), c.path(t.KeyFile), c.path(t.ClientCAFile)
	return &t
}

// serverTLS validates server.tls, loading its files as the server will.
func (c *compiler) serverTLS(t *TLS) {
	if t == nil {
		return
	}
	const p = "server.tls"
	if t.CertFile == "" {
		c.add(p+".cert_file", "required")
	}
	if t.KeyFile == "" {
		c.add(p+".key_file", "required")
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		c.add(p+".require_client_cert", "needs client_ca_file")
	}
	a := t.Allow
	if (a.Check != nil || a.RateLimit != nil || a.Refunds != nil) && t.ClientCAFile == "" {
		c.add(p+".allow", "needs client_ca_file: only a verified client certificate names a client")
	}
	for _, l := range []struct {
		name string
		ids  []string
	}{{"check", a.Check}, {"ratelimit", a.RateLimit}, {"refunds", a.Refunds}} {
		if l.ids != nil && len(l.ids) == 0 {
			c.add(p+".allow."+l.name, "empty: leave the list out to allow every client")
		}
		for i, id := range l.ids {
			if _, _, err := grpcauth.ParseIdentity(id); err != nil {
				c.add(fmt.Sprintf("%s.allow.%s[%d]", p, l.name, i), "%v", err)
			}
		}
	}
	if t.CertFile == "" || t.KeyFile == "" || (t.RequireClientCert && t.ClientCAFile == "") {
		return
	}
	present := true
	for _, f := range []struct{ key, name string }{{".cert_file", t.CertFile}, {".key_file", t.KeyFile}, {".client_ca_file", t.ClientCAFile}} {
		_, ok := c.ref(p+f.key, f.name)
		present = present && ok
	}
	if !present {
		return // absent here (validate --offline): already a warning
	}
	files := TLSFromFile(&File{Server: Server{TLS: t}}, c.dir).Files()
	if _, err := grpcauth.Load(files, nil); err != nil {
		c.add(p, "%v", err)
	}
}

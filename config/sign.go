package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
)

// SignSettings sign every response the client receives (response.sign): the echoed
// nonce and HMAC-SHA256(secret, canonical string); see the README's "Signed responses".
type SignSettings struct {
	// SecretFile holds the signing secret (at least 32 bytes; one trailing newline is
	// dropped). It is watched and re-read with the configuration.
	SecretFile string `yaml:"secret_file"`
	// NonceHeader is the request header carrying the client's nonce; default x-nonce.
	NonceHeader string `yaml:"nonce_header"`
	// NonceResponseHeader echoes the nonce in the response; default x-nonce.
	NonceResponseHeader string `yaml:"nonce_response_header"`
	// SignatureHeader carries the signature; default x-signature.
	SignatureHeader string `yaml:"signature_header"`
	// TimestampHeader carries the signed timestamp (Unix seconds); default
	// x-signature-timestamp.
	TimestampHeader string `yaml:"timestamp_header"`
	// ReplayWindow is how long a nonce stays used; default 5m, between 1s and 24h.
	ReplayWindow time.Duration `yaml:"replay_window"`
	// Disabled, on an endpoint, opts it out of its apps' signing.
	Disabled bool `yaml:"disabled"`
}

// signers compiles the sign blocks of endpoints and apps onto the rules, and wires
// the store's records for nonce replay marks.
func (c *compiler) signers(f *File, opt *policy.Options, apps map[string]*policy.App, eps map[string]*policy.Endpoint) {
	found := false
	for i := range f.Endpoints {
		e := &f.Endpoints[i]
		if e.Response == nil || e.Response.Sign == nil || eps[e.Name] == nil {
			continue
		}
		ep := eps[e.Name]
		if e.Response.Sign.Disabled {
			ep.NoSign = true
			continue
		}
		ep.Sign = c.signer(fmt.Sprintf("endpoints[%d].response.sign", i), e.Response.Sign)
		found = found || ep.Sign != nil
	}
	for i := range f.Apps {
		a := &f.Apps[i]
		if a.Response == nil || a.Response.Sign == nil || apps[a.Name] == nil {
			continue
		}
		path := fmt.Sprintf("apps[%d].response.sign", i)
		if a.Response.Sign.Disabled {
			c.add(path+".disabled", "is for endpoints (an app without signing leaves sign out)")
			continue
		}
		apps[a.Name].Sign = c.signer(path, a.Response.Sign)
		found = found || apps[a.Name].Sign != nil
	}
	if !found {
		return
	}
	if recs := c.records("apps"); recs != nil {
		opt.Nonces = recs
	}
}

// signer validates one sign block and builds its signer; nil when it is invalid or
// its secret file is absent here (validate --offline).
func (c *compiler) signer(path string, s *SignSettings) *signature.Signer {
	if s.Disabled {
		c.add(path+".disabled", "cannot be set with the other keys")
	}
	for _, h := range []struct{ key, v string }{
		{"nonce_header", s.NonceHeader}, {"nonce_response_header", s.NonceResponseHeader},
		{"signature_header", s.SignatureHeader}, {"timestamp_header", s.TimestampHeader},
	} {
		if h.v != "" && (!validHeaderName(h.v) || h.v == "host" || h.v == "content-type" || h.v == "content-length") {
			c.add(path+"."+h.key, "%q is not a header Gatehouse may set", h.v)
		}
	}
	if s.ReplayWindow != 0 && (s.ReplayWindow < time.Second || s.ReplayWindow > 24*time.Hour) {
		c.add(path+".replay_window", "must be between 1s and 24h (default 5m)")
	}
	if s.SecretFile == "" {
		c.add(path+".secret_file", "is required")
		return nil
	}
	name, present := c.ref(path+".secret_file", s.SecretFile)
	if !present {
		return nil
	}
	b, err := ReadFile(name, MaxFileBytes)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			c.add(path+".secret_file", "%s is larger than the limit of %d bytes", s.SecretFile, MaxFileBytes)
		} else {
			c.add(path+".secret_file", "cannot read %s", s.SecretFile)
		}
		return nil
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	sg, err := signature.New(b, signature.Settings{NonceHeader: s.NonceHeader, EchoHeader: s.NonceResponseHeader,
		SignatureHeader: s.SignatureHeader, TimestampHeader: s.TimestampHeader, Window: s.ReplayWindow})
	if err != nil {
		c.add(path+".secret_file", "%v", err)
		return nil
	}
	if sg.SignatureHeader == sg.TimestampHeader || sg.SignatureHeader == sg.EchoHeader || sg.TimestampHeader == sg.EchoHeader {
		c.add(path, "the nonce, signature and timestamp response headers must differ")
	}
	return sg
}

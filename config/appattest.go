package config

import (
	"crypto/x509"
	"regexp"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// AppAttestProvider holds the settings of an app_attest provider (Apple App Attest).
type AppAttestProvider struct {
	// AppID is the app's TEAMID.BUNDLEID; its SHA-256 is the RP ID of its keys (required).
	AppID string `yaml:"app_id"`
	// Environment is production (default) or development: whose aaguid enrolment accepts.
	Environment string `yaml:"environment"`
	// KeyIDHeader carries the base64 key id (default x-app-attest-key-id).
	KeyIDHeader string `yaml:"key_id_header"`
	// KeyTTL is how long an enrolled key is kept after its last accepted assertion
	// (default 720h; 1h to 9600h). After it the app must enrol again.
	KeyTTL time.Duration `yaml:"key_ttl"`
	// ChallengeTTL is how long an enrolment challenge stays valid (default 5m; 1s to 1h).
	ChallengeTTL time.Duration `yaml:"challenge_ttl"`
	// RootCAFile replaces Apple's App Attestation Root CA with a PEM file (tests only).
	RootCAFile string `yaml:"root_ca_file"`
}

// Defaults of an app_attest provider.
const (
	DefaultAppAttestKeyTTL       = 720 * time.Hour
	DefaultAppAttestChallengeTTL = 5 * time.Minute
)

var (
	appIDPattern = regexp.MustCompile(`^[A-Z0-9]{10}\.[A-Za-z0-9.-]{1,155}$`)
	// memoryRecords stands in for the store's records when the store has none (validate,
	// tests): one per process, so that a reload keeps enrolled keys.
	memoryRecords = sync.OnceValue(func() *memstore.Store { return memstore.New(state.MemoryConfig{}, nil) })
)

// appAttest compiles the app_attest part of provider p into pc.
func (c *compiler) appAttest(path, app string, p *AttestationProvider, pc *attest.Config) {
	a := p.AppAttest
	if a == nil {
		c.add(path+".app_attest", "is required for type app_attest")
		return
	}
	ap := path + ".app_attest"
	params := appattest.Params{AppID: a.AppID}
	if !appIDPattern.MatchString(a.AppID) {
		c.add(ap+".app_id", "must be TEAMID.BUNDLEID (a 10-character team id)")
	}
	var err error
	if params.Env, err = appattest.ParseEnv(or(a.Environment, "production")); err != nil {
		c.add(ap+".environment", "%v", err)
	}
	if a.RootCAFile != "" {
		params.Roots = c.rootCA(ap+".root_ca_file", a.RootCAFile)
	}
	keyTTL, chalTTL := durationOr(a.KeyTTL, DefaultAppAttestKeyTTL), durationOr(a.ChallengeTTL, DefaultAppAttestChallengeTTL)
	records := c.records()
	chal, err := challenge.New(records, chalTTL, nil)
	if err != nil {
		c.add(ap+".challenge_ttl", "must be between %v and %v", challenge.MinTTL, challenge.MaxTTL)
		return
	}
	keys, err := appattest.NewKeys(records, chal, app, params, keyTTL)
	if err != nil {
		c.add(ap+".key_ttl", "must be between %v and %v", appattest.MinKeyTTL, appattest.MaxKeyTTL)
		return
	}
	pc.AppAttest = &attest.AppAttestSettings{Keys: keys, KeyIDHeader: c.header(ap+".key_id_header", a.KeyIDHeader, attest.DefaultAppAttestKeyIDHeader)}
	pc.BindingHeader = c.header(path+".binding_header", p.BindingHeader, attest.DefaultAppAttestBindingHeader)
	for _, h := range []string{pc.AppAttest.KeyIDHeader, pc.BindingHeader} {
		if h == pc.Header {
			c.add(path+".header", "must differ from the key id and binding headers")
		}
	}
	c.appAttestUnused(path, p)
}

// appAttestUnused refuses token settings an app_attest provider has no use for.
func (c *compiler) appAttestUnused(path string, p *AttestationProvider) {
	for key, set := range map[string]bool{
		"algorithms": len(p.Algorithms) > 0, "jwks": p.JWKS != (AttestationJWKS{}), "max_age": p.MaxAge != 0,
		"claims": p.Claims != (AttestationClaims{}), "allow_emulator": p.AllowEmulator, "allow_compromised": p.AllowCompromised,
		"allow_debugger": p.AllowDebugger, "min_app_version": p.MinAppVersion != "", "signing_certs": len(p.SigningCerts) > 0,
	} {
		if set {
			c.add(path+"."+key, "not used by type app_attest")
		}
	}
}

// records returns the store's records, or the process-memory fallback.
func (c *compiler) records() state.Records {
	if r, ok := c.deps.Runtime.Store.(state.Records); ok {
		return r
	}
	return memoryRecords()
}

// rootCA reads a PEM file of trust anchors.
func (c *compiler) rootCA(path, file string) *x509.CertPool {
	raw, ok := c.read(path, file, "")
	if !ok {
		if !c.skipped[c.path(file)] {
			c.add(path, "cannot read the file")
		}
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(raw)) {
		c.add(path, "holds no PEM certificate")
		return nil
	}
	return pool
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

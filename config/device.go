package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// DeviceSettings are an app's device steps: network lists, attestation and licenses.
// Every section is optional.
type DeviceSettings struct {
	// Attestation lists the attestation providers the app accepts and whether its
	// endpoints require attestation.
	Attestation *AttestationSettings `yaml:"attestation"`
	// Devices holds the device-id lists and the device-header policy.
	Devices *DeviceLists `yaml:"devices"`
	// Network holds the client-IP lists.
	Network *NetworkLists `yaml:"network"`
	// Licenses holds the license keys and their device binding.
	Licenses *LicenseSettings `yaml:"licenses"`
}

// AttestationSettings are an app's attestation providers.
type AttestationSettings struct {
	// Required requires attestation on every endpoint of the app; an endpoint can still
	// require it (attestation: require) or exempt itself (attestation: exempt). When not
	// required, a credential that is present is still verified and a bad one refused.
	Required bool `yaml:"required"`
	// Providers in priority order: the first whose header is present is evaluated; if it
	// fails there is no fall back to a later one (that would be a downgrade attack).
	Providers []AttestationProvider `yaml:"providers"`
	// Leeway tolerates clock skew at exp, nbf, iat and max_age (default 30s, at most 5m).
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenBytes caps a credential's size (default 8192; 512 to 65536); a larger one is
	// INVALID_ATTESTATION.
	MaxTokenBytes int `yaml:"max_token_bytes"`
}

// AttestationProvider is one attestation provider. Keys not listed for its type are
// errors.
type AttestationProvider struct {
	// Type is signed_token, firebase_app_check, approov, app_attest or play_integrity.
	Type string `yaml:"type"`
	// Header carries the credential; default x-attestation-token, x-firebase-appcheck or
	// approov-token.
	Header string `yaml:"header"`

	// Issuer is the exact iss (signed_token: required; approov: optional).
	Issuer string `yaml:"issuer"`
	// Audience must be in aud (signed_token: default the app name; approov: optional).
	Audience string `yaml:"audience"`
	// Algorithms accepted (signed_token: default [ES256, RS256, EdDSA]; approov with jwks:
	// default [RS256]). HS256 only with an approov secret; none never.
	Algorithms []string `yaml:"algorithms"`
	// JWKS is where the verification keys come from: file, url or inline (a JWKS
	// document). firebase_app_check defaults to Firebase's URL, refreshed hourly and never
	// used older than 6h.
	JWKS AttestationJWKS `yaml:"jwks"`
	// MaxAge refuses tokens issued longer ago (ATTESTATION_EXPIRED); it makes iat required.
	MaxAge time.Duration `yaml:"max_age"`
	// Claims names the device-verdict claims (dotted paths allowed).
	Claims AttestationClaims `yaml:"claims"`
	// AllowEmulator, AllowCompromised and AllowDebugger accept devices the verdict claims
	// flag as such.
	AllowEmulator    bool `yaml:"allow_emulator"`
	AllowCompromised bool `yaml:"allow_compromised"`
	AllowDebugger    bool `yaml:"allow_debugger"`
	// MinAppVersion refuses older app versions ("2.3.0"; the app_version claim).
	MinAppVersion string `yaml:"min_app_version"`
	// SigningCerts are the accepted SHA-256 digests (hex) of the app's signing
	// certificate (the signing_cert claim); any other is APP_TAMPERED.
	SigningCerts []string `yaml:"signing_certs"`

	// ProjectNumber is the Firebase project number (firebase_app_check, required): iss
	// must be https://firebaseappcheck.googleapis.com/<number> and aud contain
	// projects/<number>.
	ProjectNumber string `yaml:"project_number"`
	// AppIDs is the allow-list of Firebase app ids, matched against sub (required).
	AppIDs []string `yaml:"app_ids"`
	// ReplayProtection refuses a token whose jti was seen before its exp.
	ReplayProtection bool `yaml:"replay_protection"`

	// SecretFile or SecretEnv hold the base64 HS256 secret (approov; else jwks).
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// BindingHeader binds the token to the request: the pay claim must be
	// base64(SHA-256(value of this header)) (approov); its value is part of the
	// clientDataHash (app_attest, default x-app-attest-binding) and of the request hash
	// (play_integrity).
	BindingHeader string `yaml:"binding_header"`

	// AppAttest holds the app_attest provider's settings.
	AppAttest *AppAttestProvider `yaml:"app_attest"`
	// PlayIntegrity holds the play_integrity provider's package name, keys and policy.
	PlayIntegrity *PlayIntegrity `yaml:"play_integrity"`
}

// AttestationJWKS is a JWKS reference that may also be inline (for embedded configs).
type AttestationJWKS struct {
	JWKS `yaml:",inline"`
	// Inline is a JWKS document ({"keys":[…]}); public keys only.
	Inline string `yaml:"inline"`
}

// AttestationClaims names the claims of a token's device verdict. Defaults for
// signed_token are the key names; approov reads device_id from did; firebase none.
type AttestationClaims struct {
	DeviceID    string `yaml:"device_id"`
	Compromised string `yaml:"compromised"`
	Emulator    string `yaml:"emulator"`
	Debugger    string `yaml:"debugger"`
	Tampered    string `yaml:"tampered"`
	AppVersion  string `yaml:"app_version"`
	SigningCert string `yaml:"signing_cert"`
}

// DeviceLists are an app's device-id lists. List files hold one entry per line (# starts
// a comment) and are re-read on every reload.
type DeviceLists struct {
	// Header is the client's device-id header (default x-device-id). It is never trusted
	// over an attested device id: a disagreeing one is refused.
	Header string `yaml:"header"`
	// TrustDeviceHeader uses an unattested device-id header as the device id (for
	// throttles and license binding) on endpoints that do not require attestation.
	// Default false: a client could otherwise choose the key it is counted under. Not
	// allowed with attestation.required.
	TrustDeviceHeader bool     `yaml:"trust_device_header"`
	Block             []string `yaml:"block"`
	Allow             []string `yaml:"allow"`
	BlockFile         string   `yaml:"block_file"`
	AllowFile         string   `yaml:"allow_file"`
}

// NetworkLists are an app's client-IP lists: addresses and CIDR ranges, IPv4 and IPv6.
// A non-empty allow list refuses every other address. Files as for DeviceLists.
type NetworkLists struct {
	Block     []string `yaml:"block"`
	Allow     []string `yaml:"allow"`
	BlockFile string   `yaml:"block_file"`
	AllowFile string   `yaml:"allow_file"`
}

// LicenseSettings are an app's license keys.
type LicenseSettings struct {
	// Header carries the license key (default x-license-key).
	Header string `yaml:"header"`
	// Required refuses requests without a key (INVALID_KEY); default true. When false,
	// only a presented key is checked.
	Required *bool `yaml:"required"`
	// MaxDevices is how many device ids a key binds, first come (default 1; 0: no
	// binding). Bindings are kept in the store.
	MaxDevices *int `yaml:"max_devices"`
	// Keys are the license keys, by SHA-256 digest.
	Keys []LicenseKey `yaml:"keys"`
}

// LicenseKey is one license key.
type LicenseKey struct {
	SHA256     string    `yaml:"sha256"`      // hex SHA-256 of the key (`gatehouse hash`)
	State      string    `yaml:"state"`       // active (default), revoked or expired
	ExpiresAt  time.Time `yaml:"expires_at"`  // the key expires at this time
	MaxDevices *int      `yaml:"max_devices"` // overrides the default
}

// replay returns the replay damper of a provider at path: in the store's records
// (compiler.records), so that restarts and every replica sharing the store agree.
func (c *compiler) replay(path string) attest.Replay {
	if r := c.records(path); r != nil {
		return attest.RecordsReplay{Records: r}
	}
	return nil // reported by records
}

// bindings returns the license bindings, kept in the counter store (memory with file
// persistence, or Redis), or the scratch store's without one (validate, tests).
func (c *compiler) bindings() device.Bindings {
	st := c.deps.Store
	if st == nil {
		st, _ = scratchStore()
	}
	b, _ := st.(device.Bindings) // nil: the checker keeps memory bindings of its own
	return b
}

// device compiles an app's device steps into app.Device. Every app gets a checker, so
// that an endpoint requiring attestation refuses apps without providers
// (ATTESTATION_REQUIRED) instead of skipping the step.
func (c *compiler) device(path string, a *App, app *policy.App) {
	cfg := device.Config{App: a.Name, Dialect: app.Dialect, Cache: c.deps.Cache}
	if s := a.Attestation; s != nil {
		c.attestation(path+".attestation", a.Name, s, &cfg)
	}
	if d := a.Devices; d != nil {
		p := path + ".devices"
		cfg.DeviceHeader = c.header(p+".header", d.Header, "x-device-id")
		cfg.TrustDeviceHeader = d.TrustDeviceHeader
		if d.TrustDeviceHeader && cfg.Required {
			c.add(p+".trust_device_header", "cannot be combined with attestation.required: an unattested device id is never trusted where attestation is required")
		}
		cfg.BlockDevices = c.idList(p, "block", d.Block, d.BlockFile)
		cfg.AllowDevices = c.idList(p, "allow", d.Allow, d.AllowFile)
	}
	if n := a.Network; n != nil {
		p := path + ".network"
		cfg.BlockIPs = c.ipList(p, "block", n.Block, n.BlockFile)
		cfg.AllowIPs = c.ipList(p, "allow", n.Allow, n.AllowFile)
	}
	if l := a.Licenses; l != nil {
		cfg.Licenses = c.licenses(path+".licenses", l)
	}
	app.Device = device.New(cfg)
}

// header validates an optional header name and returns it lower-cased, or def.
func (c *compiler) header(path, h, def string) string {
	if h == "" {
		return def
	}
	l := strings.ToLower(h)
	if !validHeaderName(l) {
		c.add(path, "%q is not a valid header name", h)
	}
	return l
}

func (c *compiler) attestation(path, app string, s *AttestationSettings, cfg *device.Config) {
	cfg.Required = s.Required
	if s.Required && len(s.Providers) == 0 {
		c.add(path+".providers", "required attestation needs at least one provider")
	}
	leeway := s.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	if s.Leeway < 0 || s.Leeway > 5*time.Minute {
		c.add(path+".leeway", "must be between 0s and 5m")
	}
	if s.MaxTokenBytes != 0 && (s.MaxTokenBytes < 512 || s.MaxTokenBytes > 65536) {
		c.add(path+".max_token_bytes", "must be between 512 and 65536")
	}
	headers := map[string]int{}
	for i := range s.Providers {
		p := fmt.Sprintf("%s.providers[%d]", path, i)
		pc, ok := c.provider(p, app, i, &s.Providers[i])
		if !ok {
			continue
		}
		if j, dup := headers[pc.Header]; dup {
			c.add(p+".header", "%q is already the header of providers[%d]", pc.Header, j)
			continue
		}
		headers[pc.Header] = i
		pc.Leeway, pc.MaxTokenBytes = leeway, s.MaxTokenBytes
		cfg.Providers = append(cfg.Providers, attest.New(pc))
	}
}

// supportedAttestAlgs are the asymmetric algorithms attestation tokens may use.
var supportedAttestAlgs = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// provider compiles one provider; ok is false when it has errors that make it unusable.
func (c *compiler) provider(path, app string, index int, p *AttestationProvider) (attest.Config, bool) {
	kind, err := attest.ParseKind(p.Type)
	if err != nil {
		c.add(path+".type", "%v", err)
		return attest.Config{}, false
	}
	n0 := len(c.errs)
	pc := attest.Config{Kind: kind, App: app, Header: c.header(path+".header", p.Header, kind.DefaultHeader()), MaxAge: p.MaxAge}
	c.notFor(path, kind, p)
	if p.MaxAge < 0 {
		c.add(path+".max_age", "must not be negative")
	}
	secret := ""
	switch kind {
	case attest.SignedToken:
		if p.Issuer == "" {
			c.add(path+".issuer", "is required")
		}
		pc.Issuer, pc.Audiences = p.Issuer, []string{or(p.Audience, app)}
		pc.Algorithms = c.algorithms(path, p.Algorithms, []string{"ES256", "RS256", "EdDSA"})
		pc.Keys = c.attestKeys(path+".jwks", &p.JWKS, nil)
		pc.Claims = attestClaims(p.Claims, attest.ClaimNames{DeviceID: "device_id", Compromised: "compromised",
			Emulator: "emulator", Debugger: "debugger", Tampered: "tampered", AppVersion: "app_version", SigningCert: "signing_cert"})
	case attest.FirebaseAppCheck:
		if !projectNumber.MatchString(p.ProjectNumber) {
			c.add(path+".project_number", "must be the numeric Firebase project number")
		}
		if len(p.AppIDs) == 0 {
			c.add(path+".app_ids", "needs at least one Firebase app id")
		}
		if len(p.Algorithms) > 0 && !slices.Equal(p.Algorithms, []string{"RS256"}) {
			c.add(path+".algorithms", "Firebase App Check tokens are RS256 only")
		}
		pc.Issuer = "https://firebaseappcheck.googleapis.com/" + p.ProjectNumber
		pc.Audiences = []string{"projects/" + p.ProjectNumber}
		pc.Algorithms, pc.Typ, pc.AppIDs = []string{"RS256"}, "JWT", p.AppIDs
		pc.Keys = c.attestKeys(path+".jwks", &p.JWKS, &JWKS{URL: FirebaseJWKSURL, Refresh: time.Hour, MaxAge: 6 * time.Hour})
		pc.Claims = attestClaims(p.Claims, attest.ClaimNames{})
		if p.ReplayProtection {
			pc.Replay = c.replay(path + ".replay_protection")
		}
	case attest.Approov:
		pc.Issuer = p.Issuer
		if p.Audience != "" {
			pc.Audiences = []string{p.Audience}
		}
		pc.BindingHeader = c.header(path+".binding_header", p.BindingHeader, "")
		if pc.BindingHeader != "" && pc.BindingHeader == pc.Header {
			c.add(path+".binding_header", "must not be the token's own header")
		}
		hasSecret := p.SecretFile != "" || p.SecretEnv != ""
		hasKeys := p.JWKS != (AttestationJWKS{})
		switch {
		case p.SecretFile != "" && p.SecretEnv != "":
			c.add(path, "set at most one of secret_file and secret_env")
		case hasSecret == hasKeys:
			c.add(path, "set exactly one of secret_file, secret_env (HS256) and jwks (RS256)")
		case hasSecret:
			pc.Secret, secret = c.approovSecret(path, p)
			pc.Algorithms = []string{"HS256"}
			if len(p.Algorithms) > 0 && !slices.Equal(p.Algorithms, []string{"HS256"}) {
				c.add(path+".algorithms", "a secret verifies HS256 only")
			}
		default:
			pc.Algorithms = c.algorithms(path, p.Algorithms, []string{"RS256"})
			pc.Keys = c.attestKeys(path+".jwks", &p.JWKS, nil)
		}
		pc.Claims = attestClaims(p.Claims, attest.ClaimNames{DeviceID: "did"})
	case attest.AppAttest:
		c.appAttest(path, app, p, &pc)
		if c.sess != nil && pc.AppAttest != nil {
			c.sess.enrol[app] = pc.AppAttest.Keys // enrolments at the exchange
		}
	case attest.Session:
		if c.sess == nil {
			c.add(path+".type", "session needs the sessions section")
		} else {
			pc.Session = c.sess.mgr
		}
	case attest.PlayIntegrity:
		secret = c.playIntegrity(path, p, &pc)
	}
	pc.Verdict = attest.Verdict{AllowCompromised: p.AllowCompromised, AllowEmulator: p.AllowEmulator, AllowDebugger: p.AllowDebugger}
	if p.MinAppVersion != "" {
		if pc.Verdict.MinAppVersion, err = attest.ParseVersion(p.MinAppVersion); err != nil {
			c.add(path+".min_app_version", "%q is not a version like 2.3.0", p.MinAppVersion)
		}
	}
	for j, d := range p.SigningCerts {
		d = attest.NormalizeCert(d)
		if !sha256Hex.MatchString(d) {
			c.add(fmt.Sprintf("%s.signing_certs[%d]", path, j), "must be a SHA-256 digest in hex")
		}
		pc.Verdict.SigningCerts = append(pc.Verdict.SigningCerts, d)
	}
	pc.CacheID = c.cacheID(app, index, p, secret)
	return pc, len(c.errs) == n0
}

var projectNumber = regexp.MustCompile(`^[0-9]{1,20}$`)

// FirebaseJWKSURL is where Firebase publishes the App Check keys.
const FirebaseJWKSURL = "https://firebaseappcheck.googleapis.com/v1/jwks"

// notFor reports keys set that the provider's type does not use.
func (c *compiler) notFor(path string, k attest.Kind, p *AttestationProvider) {
	only := func(key string, set bool, kinds ...attest.Kind) {
		if set && !slices.Contains(kinds, k) {
			names := make([]string, len(kinds))
			for i, x := range kinds {
				names[i] = x.String()
			}
			c.add(path+"."+key, "only for type %s", strings.Join(names, " and "))
		}
	}
	only("issuer", p.Issuer != "", attest.SignedToken, attest.Approov)
	only("audience", p.Audience != "", attest.SignedToken, attest.Approov)
	only("project_number", p.ProjectNumber != "", attest.FirebaseAppCheck)
	only("app_ids", len(p.AppIDs) > 0, attest.FirebaseAppCheck)
	only("replay_protection", p.ReplayProtection, attest.FirebaseAppCheck)
	only("secret_file", p.SecretFile != "", attest.Approov)
	only("secret_env", p.SecretEnv != "", attest.Approov)
	only("binding_header", p.BindingHeader != "", attest.Approov, attest.AppAttest, attest.PlayIntegrity)
	only("app_attest", p.AppAttest != nil, attest.AppAttest)
	only("play_integrity", p.PlayIntegrity != nil, attest.PlayIntegrity)
}

func (c *compiler) algorithms(path string, algs, def []string) []string {
	if len(algs) == 0 {
		return def
	}
	for j, a := range algs {
		if !slices.Contains(supportedAttestAlgs, a) {
			c.add(fmt.Sprintf("%s.algorithms[%d]", path, j), "unsupported algorithm %q (want one of %s)", a, strings.Join(supportedAttestAlgs, ", "))
		}
	}
	return algs
}

func attestClaims(n AttestationClaims, def attest.ClaimNames) attest.ClaimNames {
	return attest.ClaimNames{
		DeviceID:    or(n.DeviceID, def.DeviceID),
		Compromised: or(n.Compromised, def.Compromised),
		Emulator:    or(n.Emulator, def.Emulator),
		Debugger:    or(n.Debugger, def.Debugger),
		Tampered:    or(n.Tampered, def.Tampered),
		AppVersion:  or(n.AppVersion, def.AppVersion),
		SigningCert: or(n.SigningCert, def.SigningCert),
	}
}

// attestKeys returns the key source of a provider: inline, or a shared file or URL
// source. def, when set, is used when nothing is configured.
func (c *compiler) attestKeys(path string, j *AttestationJWKS, def *JWKS) *jwks.Source {
	if j.Inline != "" {
		if j.JWKS != (JWKS{}) {
			c.add(path, "set only one of inline, file and url")
			return nil
		}
		keys, err := jwks.Parse([]byte(j.Inline))
		if err != nil {
			c.add(path+".inline", "%v", err)
			return nil
		}
		list := make([]jwks.Key, 0, len(keys))
		for _, k := range keys {
			list = append(list, k)
		}
		return jwks.NewStatic(list...)
	}
	src := j.JWKS
	if src.File == "" && src.URL == "" {
		if def == nil {
			c.add(path, "set one of inline, file and url")
			return nil
		}
		if src.Refresh == 0 {
			src.Refresh = def.Refresh
		}
		if src.MaxAge == 0 {
			src.MaxAge = def.MaxAge
		}
		src.URL = def.URL
	}
	if def != nil && def.MaxAge > 0 && (src.Refresh > def.MaxAge || src.MaxAge > def.MaxAge) {
		c.add(path, "refresh and max_age must be at most %s (Firebase keys must not be cached longer)", def.MaxAge)
	}
	if def != nil && def.MaxAge > 0 && src.MaxAge == 0 {
		src.MaxAge = def.MaxAge
	}
	return c.keySource(path, &src)
}

// approovSecret reads a base64 HS256 secret; it returns the secret and its digest (for
// the cache id).
func (c *compiler) approovSecret(path string, p *AttestationProvider) ([]byte, string) {
	raw, ok := c.read(path+".secret_file", p.SecretFile, p.SecretEnv)
	key := path + ".secret_file"
	if p.SecretEnv != "" {
		key = path + ".secret_env"
	}
	if !ok && p.SecretFile != "" && c.skipped[c.path(p.SecretFile)] {
		return make([]byte, 32), "" // absent here (validate --offline): already a warning
	}
	if !ok {
		c.add(key, "cannot read the secret")
		return nil, ""
	}
	raw = strings.TrimSpace(raw)
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(raw)
	}
	if err != nil || len(b) < 32 {
		c.add(key, "the secret must be base64 of at least 32 bytes")
		return nil, ""
	}
	sum := policy.HashCredential(string(b))
	return b, hex.EncodeToString(sum[:])
}

// cacheID digests everything a provider's verdicts depend on: its settings, the app, its
// position, the secret and the content of a key file. A reload that changes none of them
// keeps the provider's cached verdicts; any change to them drops them.
func (c *compiler) cacheID(app string, index int, p *AttestationProvider, secretDigest string) string {
	settings, _ := json.Marshal(p)
	keyFile := ""
	if p.JWKS.File != "" {
		if b, err := ReadFile(c.path(p.JWKS.File), MaxFileBytes); err == nil {
			h := policy.HashCredential(string(b))
			keyFile = hex.EncodeToString(h[:])
		}
	}
	h := policy.CacheKey("attest-provider", app, fmt.Sprint(index), string(settings), secretDigest, keyFile)
	return hex.EncodeToString(h[:16])
}

// list merges inline entries with a list file's; errors name the file line.
func (c *compiler) list(path, key string, inline []string, file string, parse func([]string) []error) {
	entries := slices.Clone(inline)
	where := make([]string, len(inline))
	for i := range inline {
		where[i] = fmt.Sprintf("%s.%s[%d]", path, key, i)
	}
	name, present := c.ref(path+"."+key+"_file", file)
	if file != "" && present {
		b, err := ReadFile(name, MaxListFileBytes)
		if err != nil {
			c.add(path+"."+key+"_file", "cannot read %s: %v", file, unwrapPathError(err))
		} else {
			fe, lines, err := device.ReadList(bytes.NewReader(b))
			if err != nil {
				c.add(path+"."+key+"_file", "%s: %v", file, err)
			}
			entries = append(entries, fe...)
			for _, n := range lines {
				where = append(where, fmt.Sprintf("%s.%s_file: %s line %d", path, key, file, n))
			}
		}
	}
	for _, err := range parse(entries) {
		var ee *device.EntryError
		if errors.As(err, &ee) && ee.Index < len(inline) {
			c.add(where[ee.Index], "%v", ee.Err)
			continue
		}
		if errors.As(err, &ee) && ee.Index < len(where) {
			c.add(where[ee.Index], "%s (the line is not shown: a file named by mistake may hold a secret)", ee.Reason)
			continue
		}
		c.add(path+"."+key, "%v", err)
	}
}

func (c *compiler) ipList(path, key string, inline []string, file string) *device.IPSet {
	var set *device.IPSet
	c.list(path, key, inline, file, func(e []string) []error {
		var errs []error
		set, errs = device.ParseIPSet(e)
		return errs
	})
	return set
}

func (c *compiler) idList(path, key string, inline []string, file string) device.IDSet {
	var set device.IDSet
	c.list(path, key, inline, file, func(e []string) []error {
		var errs []error
		set, errs = device.ParseIDSet(e)
		return errs
	})
	return set
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (c *compiler) licenses(path string, l *LicenseSettings) *device.Licenses {
	out := &device.Licenses{Header: c.header(path+".header", l.Header, "x-license-key"), Required: true, Bindings: c.bindings()}
	if l.Required != nil {
		out.Required = *l.Required
	}
	maxDevices := 1
	if l.MaxDevices != nil {
		maxDevices = *l.MaxDevices
		if maxDevices < 0 || maxDevices > 10000 {
			c.add(path+".max_devices", "must be between 0 and 10000")
		}
	}
	if len(l.Keys) == 0 {
		c.add(path+".keys", "needs at least one license key")
	}
	cat := device.StaticCatalog{}
	for i, k := range l.Keys {
		p := fmt.Sprintf("%s.keys[%d]", path, i)
		h := strings.ToLower(strings.TrimSpace(k.SHA256))
		if !sha256Hex.MatchString(h) {
			c.add(p+".sha256", "must be 64 hex digits (a SHA-256 digest; `gatehouse hash` makes one)")
			continue
		}
		var lic device.License
		hex.Decode(lic.Hash[:], []byte(h))
		if _, dup := cat[lic.Hash]; dup {
			c.add(p+".sha256", "is defined twice")
			continue
		}
		var err error
		if lic.State, err = device.ParseState(k.State); err != nil {
			c.add(p+".state", "%v", err)
		}
		lic.ExpiresAt, lic.MaxDevices = k.ExpiresAt, maxDevices
		if k.MaxDevices != nil {
			lic.MaxDevices = *k.MaxDevices
			if lic.MaxDevices < 0 || lic.MaxDevices > 10000 {
				c.add(p+".max_devices", "must be between 0 and 10000")
			}
		}
		cat[lic.Hash] = lic
	}
	out.Catalog = cat
	return out
}

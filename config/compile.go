package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/gatehouse/gatehouse/policy/session"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Snapshot is one compiled, immutable configuration. Everything a request needs is in it;
// a reload builds a new Snapshot completely before it replaces the old one.
type Snapshot struct {
	Version  string // short digest of the file and of every file it reads
	Path     string
	LoadedAt time.Time
	Rules    *policy.Rules
	// Response holds the response phase's routes (ext_proc).
	Response *extproc.Routes
	LogLevel slog.Level
	File     *File
	// Files are the files the configuration names (resolved, glob patterns as written),
	// read by this load: the reloader watches them with the configuration file.
	Files []string
	// Warnings list what was not checked: the referenced files that were absent when
	// Deps.MissingFilesOK was set (gatehouse validate --offline).
	Warnings []string
	// Sessions issues and revokes the sessions Gatehouse serves; nil without a sessions
	// section.
	Sessions *session.Manager
	Parts
	keys []*jwks.Source // the key-set sources its rules use (KeySources.Retain)
}

// Deps are the long-lived parts a compile wires in; they outlive snapshots.
type Deps struct {
	Cache *policy.Cache
	Keys  *KeySources
	// LookupEnv reads secrets from the environment; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Offline skips every network fetch (gatehouse validate): URL key sets are not
	// fetched, only checked for shape.
	Offline bool
	Now     func() time.Time
	// MissingFilesOK turns a referenced file that does not exist into a warning
	// (Snapshot.Warnings) and skips the checks of its content; everything else is
	// checked as strictly as ever. Only for gatehouse validate --offline, where secrets
	// are not mounted: start-up and reload never set it.
	MissingFilesOK bool
	// OnJWKSFetch, when set, is told of every key-set fetch (metrics).
	OnJWKSFetch func(err error)
	Runtime
}

// compiler carries the state of one compile.
type compiler struct {
	deps      Deps
	dir       string
	errs      Errors
	providers map[string]*policy.JWTVerifier
	secrets   map[string]*policy.Secret
	accounts  map[string]policy.AccountState
	files     map[string]bool // every referenced file, resolved
	skipped   map[string]bool // absent and skipped (MissingFilesOK)
	warnings  []string
	keys      []*jwks.Source // the key-set sources this compile uses
	sess      *sessionRuntime
}

func (c *compiler) add(path, format string, args ...any) {
	c.errs = append(c.errs, errorf(path, format, args...))
}

// path resolves a file path relative to the configuration file's directory.
func (c *compiler) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// ref resolves a file the configuration names at key and records it, so that the
// reloader watches it. It reports false when the file is absent and
// Deps.MissingFilesOK is set: the caller then skips every check of its content.
func (c *compiler) ref(key, p string) (string, bool) {
	if p == "" {
		return "", true
	}
	r := c.path(p)
	if c.files != nil {
		c.files[r] = true
	}
	if !c.deps.MissingFilesOK {
		return r, true
	}
	at := r
	for isGlob(at) { // a pattern: absent when the directory above it is
		at = filepath.Dir(at)
	}
	if _, err := os.Stat(at); errors.Is(err, os.ErrNotExist) {
		if !c.skipped[r] {
			c.warnings = append(c.warnings, fmt.Sprintf("%s: %s is not present here; its content was not checked", key, p))
			c.skipped[r] = true
		}
		return r, false
	}
	return r, true
}

// Load reads, decodes, validates and compiles the configuration at path. It is the one
// code path of start-up, reload and `gatehouse validate`.
func Load(path string, deps Deps) (*Snapshot, error) {
	data, err := ReadFile(path, MaxConfigBytes)
	if err != nil {
		return nil, Errors{fmt.Errorf("read configuration: %w", err)}
	}
	return LoadBytes(data, path, deps)
}

// LoadBytes is Load for configuration bytes; path names them in messages and anchors
// relative file paths.
func LoadBytes(data []byte, path string, deps Deps) (*Snapshot, error) {
	f, err := Parse(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return Compile(f, hex.EncodeToString(sum[:6]), filepath.Dir(path), deps, path)
}

// Compile validates f completely and builds a Snapshot. It returns Errors listing every
// problem, never only the first.
func Compile(f *File, version, dir string, deps Deps, path string) (*Snapshot, error) {
	if deps.LookupEnv == nil {
		deps.LookupEnv = os.LookupEnv
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Keys == nil {
		deps.Keys = NewKeySources()
	}
	c := &compiler{deps: deps, dir: dir, files: map[string]bool{}, skipped: map[string]bool{}}
	s, err := c.compile(f, version, path)
	if err != nil {
		return nil, &LoadError{Errors: err, Files: c.fileList()}
	}
	s.Files, s.Warnings, s.keys = c.fileList(), c.warnings, c.keys
	return s, nil
}

// LoadError is the error of a load that failed: every problem, and the files the
// configuration names (so that a fix to any of them can be seen and reloaded).
type LoadError struct {
	Errors
	Files []string
}

// Unwrap returns the problems, so that errors.As finds Errors.
func (e *LoadError) Unwrap() error { return e.Errors }

// filesOf returns the referenced files a failed load reported, if any.
func filesOf(err error) []string {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Files
	}
	return nil
}

func (c *compiler) fileList() []string {
	out := make([]string, 0, len(c.files))
	for f := range c.files {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// compile runs every check and builds the snapshot; problems collect in c.errs.
func (c *compiler) compile(f *File, version, path string) (*Snapshot, Errors) {
	deps := c.deps
	s := &Snapshot{Version: version, Path: path, LoadedAt: deps.Now(), File: f}
	opt := c.server(&f.Server, s)
	opt.Version = version
	opt.Cache = deps.Cache
	c.jwtProviders(f.JWTProviders)
	c.secretList(f.Secrets)
	c.accountList(f.Accounts)
	c.sess = c.sessions(f.Sessions)
	eps := c.endpoints(f.Endpoints)
	apps := c.apps(f.Apps, eps)
	c.extensions(f, s, &opt, apps, eps)
	c.responseRoutes(f, s, &opt, apps, eps)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	epList := make([]*policy.Endpoint, 0, len(eps))
	for _, e := range f.Endpoints {
		epList = append(epList, eps[e.Name])
	}
	appList := make([]*policy.App, 0, len(apps))
	for _, a := range f.Apps {
		appList = append(appList, apps[a.Name])
	}
	if files := c.fileList(); len(files) > 0 {
		// The version names what the snapshot is built from: the main file and every file
		// it read, so that replicas with different block lists or keys show different
		// versions.
		sum := sha256.Sum256([]byte(version + "\x00" + digest(files)))
		s.Version = hex.EncodeToString(sum[:6])
		opt.Version = s.Version
	}
	rules, err := policy.NewRules(opt, appList, epList)
	if err != nil {
		return nil, Errors{err}
	}
	s.Rules = rules
	if c.sess != nil {
		s.Sessions = c.sess.mgr
	}
	return s, nil
}

func (c *compiler) server(sv *Server, s *Snapshot) policy.Options {
	var o policy.Options
	var err error
	if o.DefaultDialect, err = policy.ParseDialect(sv.DefaultDialect); err != nil {
		c.add("server.default_dialect", "%v", err)
	}
	if o.FailMode, err = policy.ParseFailMode(sv.FailMode); err != nil {
		c.add("server.fail_mode", "%v", err)
	}
	if sv.TrustedHops < 0 || sv.TrustedHops > 16 {
		c.add("server.trusted_hops", "must be between 0 and 16")
	}
	o.TrustedHops = sv.TrustedHops
	if o.MethodOverride, err = policy.ParseMethodOverride(sv.MethodOverride); err != nil {
		c.add("server.method_override", "%v", err)
	}
	o.CaseInsensitivePaths = sv.CaseInsensitivePaths
	for _, h := range []struct{ path, v string }{
		{"server.app_token_header", sv.AppTokenHeader},
		{"server.api_key_header", sv.APIKeyHeader},
	} {
		if h.v != "" && !validHeaderName(h.v) {
			c.add(h.path, "%q is not a valid lower-case header name", h.v)
		}
	}
	o.AppTokenHeader, o.APIKeyHeader, o.EndpointKey = sv.AppTokenHeader, sv.APIKeyHeader, sv.EndpointKey
	if sv.CacheMaxBytes < 0 {
		c.add("server.cache_max_bytes", "must not be negative")
	}
	c.serverTLS(sv.TLS)
	switch strings.ToLower(sv.LogLevel) {
	case "", "info":
		s.LogLevel = slog.LevelInfo
	case "debug":
		s.LogLevel = slog.LevelDebug
	case "warn":
		s.LogLevel = slog.LevelWarn
	case "error":
		s.LogLevel = slog.LevelError
	default:
		c.add("server.log_level", "unknown level %q (want debug, info, warn or error)", sv.LogLevel)
	}
	return o
}

var headerName = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~-]+$`)

func validHeaderName(h string) bool { return headerName.MatchString(h) }

var supportedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (c *compiler) jwtProviders(ps []JWTProvider) {
	c.providers = map[string]*policy.JWTVerifier{}
	for i := range ps {
		p := &ps[i]
		path := fmt.Sprintf("jwt_providers[%d]", i)
		if !checkName(c, path, p.Name, c.providers) {
			continue
		}
		algs := p.Algorithms
		if len(algs) == 0 {
			algs = []string{"RS256", "ES256"}
		}
		for j, a := range algs {
			if !slices.Contains(supportedAlgs, a) {
				c.add(fmt.Sprintf("%s.algorithms[%d]", path, j), "unsupported algorithm %q (want one of %s)", a, strings.Join(supportedAlgs, ", "))
			}
		}
		c.providerBinding(path, p)
		if p.Leeway < 0 || p.Leeway > 5*time.Minute {
			c.add(path+".leeway", "must be between 0s and 5m")
		}
		leeway := p.Leeway
		if leeway == 0 {
			leeway = 30 * time.Second
		}
		keys := c.keySource(path+".jwks", &p.JWKS)
		c.providers[p.Name] = &policy.JWTVerifier{
			Name: p.Name, Issuer: p.Issuer, AnyIssuer: p.AllowAnyIssuer, Audiences: p.Audiences, AnyAudience: p.AllowAnyAudience,
			Algorithms: algs, Leeway: leeway, Keys: keys,
			Claims: policy.ClaimNames{
				Roles:         or(p.Claims.Roles, "roles"),
				Scopes:        or(p.Claims.Scopes, "scope"),
				EmailVerified: or(p.Claims.EmailVerified, "email_verified"),
				Org:           or(p.Claims.Org, "org_id"),
				OrgRole:       or(p.Claims.OrgRole, "org_role"),
			},
		}
	}
}

// providerBinding requires a provider to pin the issuer and audiences of its tokens, or
// to say explicitly that any is acceptable: without them a token minted by the same
// identity provider for another service (or by another tenant sharing its keys) passes.
func (c *compiler) providerBinding(path string, p *JWTProvider) {
	switch {
	case p.Issuer == "" && !p.AllowAnyIssuer:
		c.add(path+".issuer", "is required (or set allow_any_issuer: true to accept tokens from any issuer)")
	case p.Issuer != "" && p.AllowAnyIssuer:
		c.add(path+".allow_any_issuer", "cannot be set together with issuer")
	}
	switch {
	case len(p.Audiences) == 0 && !p.AllowAnyAudience:
		c.add(path+".audiences", "is required (or set allow_any_audience: true to accept tokens for any audience)")
	case len(p.Audiences) > 0 && p.AllowAnyAudience:
		c.add(path+".allow_any_audience", "cannot be set together with audiences")
	}
	for j, a := range p.Audiences {
		if strings.TrimSpace(a) == "" {
			c.add(fmt.Sprintf("%s.audiences[%d]", path, j), "must not be empty")
		}
	}
}

// keySource validates a JWKS reference and returns its (shared) source.
func (c *compiler) keySource(path string, j *JWKS) *jwks.Source {
	if (j.File == "") == (j.URL == "") {
		c.add(path, "set exactly one of file and url")
		return nil
	}
	if j.Refresh < 0 || j.MinRefresh < 0 || j.MaxAge < 0 || j.MaxBackoff < 0 {
		c.add(path, "refresh, min_refresh, max_backoff and max_age must not be negative")
	}
	if j.FetchWait < 0 || j.FetchWait > time.Second {
		c.add(path+".fetch_wait", "must be between 0s (default 100ms) and 1s: requests must not outwait Envoy's deadline")
	}
	file, present := c.ref(path+".file", j.File)
	if !present {
		return jwks.NewStatic()
	}
	client := "" // what o.Client trusts: a source is shared only by equal clients
	o := jwks.Options{File: file, URL: j.URL, Refresh: j.Refresh, MinRefresh: j.MinRefresh, MaxBackoff: j.MaxBackoff,
		Wait: j.FetchWait, MaxAge: j.MaxAge, OnFetch: c.deps.OnJWKSFetch}
	if j.URL != "" {
		u, err := url.Parse(j.URL)
		switch {
		case err != nil || u.Host == "":
			c.add(path+".url", "not a valid URL")
			return nil
		case u.Scheme == "http" && !j.AllowHTTP:
			c.add(path+".url", "must be https (set allow_http for local development)")
			return nil
		case u.Scheme != "https" && u.Scheme != "http":
			c.add(path+".url", "must be https")
			return nil
		}
		if ca, present := c.ref(path+".ca_file", j.CAFile); j.CAFile != "" && present {
			pem, err := ReadFile(ca, MaxFileBytes)
			pool := x509.NewCertPool()
			if err != nil || !pool.AppendCertsFromPEM(pem) {
				c.add(path+".ca_file", "cannot read a PEM CA bundle from %s", j.CAFile)
				return nil
			}
			o.Client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
			sum := sha256.Sum256(pem)
			client = hex.EncodeToString(sum[:])
		}
	}
	src, err := c.deps.Keys.Get(o, client, c.deps.Offline)
	if err != nil {
		c.add(path, "%v", err)
		return nil
	}
	c.keys = append(c.keys, src)
	return src
}

func (c *compiler) secretList(ss []Secret) {
	c.secrets = map[string]*policy.Secret{}
	for i := range ss {
		s := &ss[i]
		path := fmt.Sprintf("secrets[%d]", i)
		if !checkName(c, path, s.Name, c.secrets) {
			continue
		}
		if (s.File == "") == (s.Env == "") {
			c.add(path, "set exactly one of file and env")
			continue
		}
		value, found := c.read(path+".file", s.File, s.Env)
		if !s.Encrypted {
			if s.KeyFile != "" || s.KeyEnv != "" {
				c.add(path, "key_file and key_env are only for encrypted secrets")
			}
			sec := policy.NewSecret(s.Name, value, s.ExpiresAt)
			sec.Missing = !found
			c.secrets[s.Name] = sec
			continue
		}
		if (s.KeyFile == "") == (s.KeyEnv == "") {
			c.add(path, "an encrypted secret needs exactly one of key_file and key_env")
			continue
		}
		raw, ok := c.read(path+".key_file", s.KeyFile, s.KeyEnv)
		key := decodeKey(raw)
		if ok && len(key) != 32 {
			c.add(path, "the decryption key must be 32 bytes (raw or base64)")
			continue
		}
		// A key that is absent where the configuration is checked (CI, gatehouse validate)
		// is not a configuration error: requests that need the secret get
		// SECRET_DECRYPTION_FAILED until the key is there and the configuration reloads.
		sec := policy.NewEncryptedSecret(s.Name, strings.TrimSpace(value), key, s.ExpiresAt)
		sec.Missing = !found
		c.secrets[s.Name] = sec
	}
}

// read returns a secret's value from a file or the environment, trimming one trailing
// newline (as editors and Kubernetes Secrets add). A file that cannot be read counts as
// absent; one larger than MaxFileBytes is a problem reported at path.
func (c *compiler) read(path, file, env string) (string, bool) {
	if file != "" {
		name, present := c.ref(path, file)
		if !present {
			return "", false
		}
		b, err := ReadFile(name, MaxFileBytes)
		if errors.Is(err, ErrTooLarge) {
			c.add(path, "%s is larger than the limit of %d bytes", file, MaxFileBytes)
		}
		if err != nil {
			return "", false
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), true
	}
	return c.deps.LookupEnv(env)
}

func decodeKey(s string) []byte {
	if len(s) == 32 {
		return []byte(s)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil
	}
	return b
}

func (c *compiler) accountList(as []Account) {
	c.accounts = map[string]policy.AccountState{}
	for i, a := range as {
		path := fmt.Sprintf("accounts[%d]", i)
		if !checkName(c, path, a.Name, c.accounts) {
			continue
		}
		switch a.State {
		case "", "active":
			c.accounts[a.Name] = policy.AccountActive
		case "disabled":
			c.accounts[a.Name] = policy.AccountStateDisabled
		case "pending_deletion":
			c.accounts[a.Name] = policy.AccountStatePendingDeletion
		default:
			c.add(path+".state", "unknown state %q (want active, disabled or pending_deletion)", a.State)
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// checkName validates a name and that it is unique among seen; it reports whether to go on.
func checkName[V any](c *compiler, path, n string, seen map[string]V) bool {
	switch {
	case n == "":
		c.add(path+".name", "is required")
		return false
	case !nameRE.MatchString(n):
		c.add(path+".name", "%q must be 1-63 letters, digits, '.', '_' or '-'", n)
		return false
	}
	if _, dup := seen[n]; dup {
		c.add(path+".name", "%q is defined twice", n)
		return false
	}
	return true
}

func (c *compiler) maintenance(path string, m *Maintenance) *policy.MaintenanceWindow {
	if m == nil {
		return nil
	}
	return &policy.MaintenanceWindow{Enabled: m.Enabled, Until: m.Until, Message: m.Message}
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

func (c *compiler) endpoints(es []Endpoint) map[string]*policy.Endpoint {
	out := map[string]*policy.Endpoint{}
	for i := range es {
		e := &es[i]
		path := fmt.Sprintf("endpoints[%d]", i)
		if !checkName(c, path, e.Name, out) {
			continue
		}
		ep := &policy.Endpoint{Name: e.Name, Path: e.Path, Prefix: e.Prefix, CaseInsensitive: e.CaseInsensitive, Disabled: e.Disabled,
			SDKAuth: e.SDKAuth, Heartbeat: e.Heartbeat, Cost: e.Cost, Maintenance: c.maintenance(path+".maintenance", e.Maintenance)}
		if e.Path != "" && !policy.IsRulePath(e.Path) {
			c.add(path+".path", "%q must be an absolute path in normal form: visible ASCII without query, percent-encoding, ';' parameters, backslashes, empty or dot segments, or segments ending in '.'", e.Path)
		}
		if e.Prefix && e.Path == "" {
			c.add(path+".prefix", "needs a path")
		}
		if e.CaseInsensitive && e.Path == "" {
			c.add(path+".case_insensitive", "needs a path")
		}
		for j, m := range e.Methods {
			u := strings.ToUpper(m)
			if !slices.Contains(methods, u) {
				c.add(fmt.Sprintf("%s.methods[%d]", path, j), "unknown HTTP method %q", m)
			}
			ep.Methods = append(ep.Methods, u)
		}
		if e.Dialect != "" {
			d, err := policy.ParseDialect(e.Dialect)
			if err != nil {
				c.add(path+".dialect", "%v", err)
			}
			ep.Dialect = &d
		}
		if e.SDKAuth && e.Dialect != "" && e.Dialect != "license" {
			c.add(path+".sdk_auth", "only the license dialect has SDK auth endpoints")
		}
		var err error
		if ep.FailMode, err = policy.ParseFailMode(e.FailMode); err != nil {
			c.add(path+".fail_mode", "%v", err)
		}
		if e.Cost < 0 || e.Cost > 1_000_000 {
			c.add(path+".cost", "must be between 0 and 1000000")
		}
		switch e.Attestation {
		case "", "default":
		case "require":
			ep.Attestation = policy.AttestRequire
		case "exempt":
			ep.Attestation = policy.AttestExempt
		case "optional":
			ep.Attestation = policy.AttestOptional
		default:
			c.add(path+".attestation", "unknown mode %q (want default, require, exempt or optional)", e.Attestation)
		}
		c.serve(path, e, ep)
		ep.User = c.user(path+".user", e.User)
		ep.Payload = c.payload(path+".payload", e.Payload)
		for j, inj := range e.Inject {
			p := fmt.Sprintf("%s.inject[%d]", path, j)
			h := strings.ToLower(inj.Header)
			if !validHeaderName(h) || h == "host" || strings.HasPrefix(h, ":") {
				c.add(p+".header", "%q is not a header Gatehouse may set", inj.Header)
			}
			sec, ok := c.secrets[inj.Secret]
			if !ok {
				c.add(p+".secret", "unknown secret %q", inj.Secret)
			}
			ep.Inject = append(ep.Inject, policy.Injection{Header: h, Prefix: inj.Prefix, Secret: sec})
		}
		out[e.Name] = ep
	}
	return out
}

func (c *compiler) user(path string, u *UserAuth) *policy.UserAuth {
	if u == nil {
		return nil
	}
	v, ok := c.providers[u.Provider]
	if !ok {
		c.add(path+".provider", "unknown jwt provider %q", u.Provider)
	}
	h := strings.ToLower(u.Header)
	if h != "" && !validHeaderName(h) {
		c.add(path+".header", "%q is not a valid header name", u.Header)
	}
	return &policy.UserAuth{Verifier: v, Header: h, Optional: u.Optional, Roles: u.Roles, Scopes: u.Scopes,
		RequireEmailVerified: u.RequireEmailVerified, RequireOrg: u.RequireOrg, OrgRoles: u.OrgRoles}
}

func (c *compiler) payload(path string, p *Payload) *policy.Payload {
	if p == nil {
		return nil
	}
	out := &policy.Payload{MaxBytes: p.MaxBytes}
	if p.MaxBytes < 0 {
		c.add(path+".max_bytes", "must not be negative")
	}
	var doc any
	switch {
	case p.JSONSchema != nil && p.JSONSchemaFile != "":
		c.add(path, "set at most one of json_schema and json_schema_file")
		return out
	case p.JSONSchema != nil:
		// Round-trip through JSON so that YAML's types become JSON's.
		b, err := json.Marshal(p.JSONSchema)
		if err == nil {
			doc, err = jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		}
		if err != nil {
			c.add(path+".json_schema", "%v", err)
			return out
		}
	case p.JSONSchemaFile != "":
		name, present := c.ref(path+".json_schema_file", p.JSONSchemaFile)
		if !present {
			return out
		}
		b, err := ReadFile(name, MaxFileBytes)
		if err == nil {
			doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(b))
		}
		if err != nil {
			c.add(path+".json_schema_file", "%v", err)
			return out
		}
	default:
		return out
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource("gatehouse:///"+path+".json", doc); err != nil {
		c.add(path, "json schema: %v", err)
		return out
	}
	sch, err := comp.Compile("gatehouse:///" + path + ".json")
	if err != nil {
		c.add(path, "json schema: %v", err)
		return out
	}
	out.Schema = sch
	return out
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (c *compiler) hashes(path string, hs []string) []policy.Hash {
	out := make([]policy.Hash, 0, len(hs))
	for j, h := range hs {
		h = strings.ToLower(strings.TrimSpace(h))
		if !sha256Hex.MatchString(h) {
			c.add(fmt.Sprintf("%s[%d]", path, j), "must be 64 hex digits (a SHA-256 digest; `gatehouse hash` makes one)")
			continue
		}
		var x policy.Hash
		hex.Decode(x[:], []byte(h))
		out = append(out, x)
	}
	return out
}

func (c *compiler) apps(as []App, eps map[string]*policy.Endpoint) map[string]*policy.App {
	out := map[string]*policy.App{}
	for i := range as {
		a := &as[i]
		path := fmt.Sprintf("apps[%d]", i)
		if !checkName(c, path, a.Name, out) {
			continue
		}
		app := &policy.App{Name: a.Name, Disabled: a.Disabled, Account: a.Account, Org: a.Organization,
			Maintenance: c.maintenance(path+".maintenance", a.Maintenance), Endpoints: map[string]bool{}}
		var err error
		if app.Dialect, err = policy.ParseDialect(a.Dialect); err != nil {
			c.add(path+".dialect", "%v", err)
		}
		// local is the limiter's own fail mode (count per replica); other steps inherit.
		if a.FailMode != "local" {
			if app.FailMode, err = policy.ParseFailMode(a.FailMode); err != nil {
				c.add(path+".fail_mode", "%v (or local)", err)
			}
		}
		app.TokenHashes = c.hashes(path+".app_token_sha256", a.AppTokenSHA256)
		app.APIKeyHashes = c.hashes(path+".api_key_sha256", a.APIKeySHA256)
		if len(a.AppTokenSHA256) == 0 && len(a.APIKeySHA256) == 0 {
			c.add(path, "needs at least one app_token_sha256 or api_key_sha256")
		}
		if a.Account != "" {
			st, ok := c.accounts[a.Account]
			if !ok {
				c.add(path+".account", "unknown account %q", a.Account)
			}
			app.AccountState = st
		}
		for j, e := range a.Endpoints {
			if e == "*" {
				app.AllEndpoints = true
				continue
			}
			if _, ok := eps[e]; !ok {
				c.add(fmt.Sprintf("%s.endpoints[%d]", path, j), "unknown endpoint %q", e)
				continue
			}
			app.Endpoints[e] = true
		}
		c.device(path, a, app)
		out[a.Name] = app
	}
	return out
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

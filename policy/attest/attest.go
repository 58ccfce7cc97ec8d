// Package attest verifies app-attestation credentials: signed attestation tokens (JWTs
// issued by an attestation service), Firebase App Check tokens, Approov-style tokens,
// Apple App Attest assertions of keys enrolled before (package appattest), and Google Play
// Integrity tokens (package playintegrity).
//
// A Provider verifies one kind of credential for one app. Verification maps every failure
// to one catalogue code, in a fixed order (see README.md):
//
//  1. not parseable, wrong alg or typ, unknown key after a refresh → INVALID_ATTESTATION
//  2. bad signature, wrong issuer, audience or app, binding mismatch → ATTESTATION_FAILED
//  3. expired or too old → ATTESTATION_EXPIRED
//  4. the device verdict claims → DEVICE_COMPROMISED, EMULATOR_DETECTED, DEBUGGER_DETECTED,
//     APP_TAMPERED
//
// What a signature verification establishes about a token is cached in the verdict cache
// ([policy.Cache]) under a digest of the token, the provider and the app; what depends on
// the request or the clock (token binding, expiry, replay) is checked on every request.
package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of uncached verifications (a cache hit makes none); a no-op
// unless tracing is set up.
var tracer = otel.Tracer("github.com/gatehouse/gatehouse/policy/attest")

// Kind is an attestation provider type.
type Kind uint8

// The provider kinds.
const (
	SignedToken      Kind = iota + 1 // a JWT from an attestation service, keys from a JWKS
	FirebaseAppCheck                 // Firebase App Check: RS256, typ JWT, Firebase's JWKS
	Approov                          // Approov-style: HS256 with a shared secret (or RS256), token binding
	AppAttest                        // Apple App Attest assertions of keys enrolled before
	PlayIntegrity                    // Google Play Integrity: JWE holding a JWS, the app's own keys
	Session                          // a session token Gatehouse issued itself (package session)
)

var kindNames = map[Kind]string{SignedToken: "signed_token", FirebaseAppCheck: "firebase_app_check", Approov: "approov",
	AppAttest: "app_attest", PlayIntegrity: "play_integrity", Session: "session"}

// String returns the configuration spelling of k.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind reads a configuration spelling.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown provider type %q (want signed_token, firebase_app_check, approov, app_attest, play_integrity or session)", s)
}

// DefaultHeader returns the header a kind's credential is sent in by default.
func (k Kind) DefaultHeader() string {
	switch k {
	case FirebaseAppCheck:
		return "x-firebase-appcheck"
	case Approov:
		return "approov-token"
	case AppAttest:
		return "x-app-attest-assertion"
	case PlayIntegrity:
		return "x-play-integrity"
	case Session:
		return "x-session-token"
	}
	return "x-attestation-token"
}

// DefaultMaxTokenBytes caps the size of a credential: a larger one is INVALID_ATTESTATION
// before any parsing.
const DefaultMaxTokenBytes = 8 << 10

// FailureTTL is how long a refused token is remembered, so that a flood of one bad token
// costs one verification while a key rotation is still picked up soon.
const FailureTTL = 5 * time.Second

// ClaimNames names the claims a provider reads. A name may be a dotted path into nested
// objects ("verdict.emulator"). Empty names are not read.
type ClaimNames struct {
	DeviceID    string // string: the device id used for binding and throttling
	Compromised string // true: jailbroken or rooted
	Emulator    string // true: simulator or emulator
	Debugger    string // true: a debugger is attached
	Tampered    string // true: the app binary was modified
	AppVersion  string // string: the app's version, for MinAppVersion
	SigningCert string // string: digest of the app's signing certificate, for SigningCerts
}

// Verdict holds an app's policy on the device verdict claims.
type Verdict struct {
	AllowCompromised bool
	AllowEmulator    bool
	AllowDebugger    bool
	// MinAppVersion refuses older app versions (ATTESTATION_FAILED); nil: no minimum.
	MinAppVersion Version
	// SigningCerts, when set, are the only accepted signing-certificate digests (lower-case
	// hex); any other is APP_TAMPERED.
	SigningCerts []string
}

// Config is one provider's compiled configuration.
type Config struct {
	Kind   Kind
	Header string // lower-case header carrying the credential
	App    string // the app the provider belongs to
	// CacheID is a digest of everything a verdict depends on (the provider's settings, its
	// keys' source, the app). It is part of every cache key, so that a token verified under
	// one configuration is never accepted under another, and never for another app.
	CacheID    string
	Issuer     string   // exact iss; empty: not checked
	Audiences  []string // aud must contain one of them; empty: not checked
	Algorithms []string // accepted algs; "none" and anything unlisted is INVALID_ATTESTATION
	Typ        string   // required typ header; empty: any
	Keys       *jwks.Source
	Secret     []byte // HS256 secret (Approov); used instead of Keys
	// Leeway tolerates clock skew at exp, nbf, iat and the maximum age.
	Leeway time.Duration
	// MaxAge refuses tokens issued longer ago (ATTESTATION_EXPIRED); 0: no maximum. It
	// makes iat required.
	MaxAge        time.Duration
	MaxTokenBytes int // default DefaultMaxTokenBytes
	Claims        ClaimNames
	Verdict       Verdict
	// AppIDs, when set, is the allow-list of the sub claim (Firebase app ids).
	AppIDs []string
	// Replay, when set, refuses a jti seen before its token's exp; the jti becomes
	// required.
	Replay Replay
	// BindingHeader, when set, binds the token to the request: the pay claim must equal
	// base64(SHA-256(value of this header)). For app_attest its value is part of the
	// clientDataHash (see ClientDataHash).
	BindingHeader string
	// AppAttest holds the app_attest provider's keys; nil for other kinds.
	AppAttest *AppAttestSettings
	// PlayIntegrity, for kind PlayIntegrity, holds the keys and the policy; the request
	// binding then covers the method, the request target and BindingHeader's value (see
	// playintegrity.RequestHash), and MaxAge bounds the token's timestampMillis.
	PlayIntegrity *PlayIntegrityConfig
	// Session verifies the tokens of a Session provider (Gatehouse's own sessions).
	Session SessionVerifier
}

// SessionVerifier verifies a session token Gatehouse issued, presented on a request of
// app. It is safe for concurrent use and maps every refusal to a catalogue code.
type SessionVerifier interface {
	VerifySession(ctx context.Context, now time.Time, app, tok string) Outcome
}

// Provider verifies one kind of attestation credential for one app. It is immutable and
// safe for concurrent use.
type Provider struct {
	c      Config
	parser *jwt.Parser
	id     string // c.Kind.String(), for verdicts
}

// New returns a Provider for c. c must already be validated (config does that); New
// only fills defaults.
func New(c Config) *Provider {
	if c.Header == "" {
		c.Header = c.Kind.DefaultHeader()
	}
	if c.MaxTokenBytes <= 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.AppAttest != nil && c.AppAttest.KeyIDHeader == "" {
		aa := *c.AppAttest
		aa.KeyIDHeader = DefaultAppAttestKeyIDHeader
		c.AppAttest = &aa
	}
	// Claims are validated here, not by the parser: the order of the failure mapping is
	// ours to keep.
	return &Provider{c: c, id: c.Kind.String(),
		parser: jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())}
}

// Kind returns the provider's kind.
func (p *Provider) Kind() Kind { return p.c.Kind }

// Name returns the provider's name for verdicts and traces (its kind).
func (p *Provider) Name() string { return p.id }

// BindingHeader returns the header whose value the provider's tokens are bound to (""
// when none).
func (p *Provider) BindingHeader() string { return p.c.BindingHeader }

// Header returns the header the provider reads.
func (p *Provider) Header() string { return p.c.Header }

// Outcome is the verdict on one credential.
type Outcome struct {
	Code     policy.Code // empty: attested
	Message  string      // client-safe detail; empty: the catalogue's message
	DeviceID string      // the verified device id, when the token carries one
	// License is the hex SHA-256 of the license key a session was granted with (Session
	// providers): the license step checks that license's state without the key.
	License  string
	CacheHit bool
	Err      error // could not decide (keys or replay store unreachable)
	// Claimed is, with Err, the device id the token names though it could not be
	// verified: never an identity, only matched against block lists, where a claim can
	// only hurt the claimant.
	Claimed string
}

// facts is what verifying a token's signature and static claims established: the part of
// a verdict that depends on the token alone, so it can be cached.
type facts struct {
	code          policy.Code // per-token refusal; empty: signature and static claims passed
	msg           string
	deviceID      string
	verdict       policy.Code // device verdict refusal, checked after the clock
	verdictMsg    string
	exp, nbf, iat time.Time // zero when absent
	pay           [32]byte
	hasPay        bool
	jti           string
}

// Check verifies tok, a credential taken from the provider's header of in.
func (p *Provider) Check(ctx context.Context, now time.Time, in *policy.Input, tok string, cache *policy.Cache) Outcome {
	if p.c.Session != nil {
		return p.c.Session.VerifySession(ctx, now, p.c.App, tok)
	}
	if p.c.AppAttest != nil {
		return p.checkAppAttest(ctx, now, in, tok, cache)
	}
	key := policy.CacheKey("attest", p.c.CacheID, tok)
	var f *facts
	hit := false
	if x, ok := cache.Get(key); ok {
		f, hit = x.(*facts), true
	} else {
		var err error
		if f, err = p.verify(ctx, tok); err != nil {
			o := Outcome{Err: err}
			if f != nil {
				o.Claimed = f.deviceID
			}
			return o
		}
		cache.Set(key, f, int64(len(f.deviceID)+len(f.jti)+len(f.msg)+160), p.ttl(now, f))
	}
	o := p.judge(ctx, now, in, f)
	o.CacheHit = hit
	return o
}

// ttl is how long facts may be cached: a verified token until it stops being valid, a
// refused (or already expired) one for FailureTTL.
func (p *Provider) ttl(now time.Time, f *facts) time.Duration {
	if f.code != "" {
		return FailureTTL
	}
	until := f.exp
	if p.c.MaxAge > 0 && f.iat.Add(p.c.MaxAge).Before(until) {
		until = f.iat.Add(p.c.MaxAge)
	}
	if d := until.Add(p.c.Leeway).Sub(now); d > 0 {
		return d
	}
	return FailureTTL
}

// judge applies the per-request checks to a token's facts, in the order of the failure
// mapping.
func (p *Provider) judge(ctx context.Context, now time.Time, in *policy.Input, f *facts) Outcome {
	if f.code != "" {
		return Outcome{Code: f.code, Message: f.msg}
	}
	if (p.c.BindingHeader != "" || p.c.PlayIntegrity != nil) && !p.bound(in, f) {
		return Outcome{Code: policy.AttestationFailed, Message: "The attestation token is not bound to this request"}
	}
	l := p.c.Leeway
	switch {
	case !f.nbf.IsZero() && now.Before(f.nbf.Add(-l)), !f.iat.IsZero() && now.Before(f.iat.Add(-l)):
		return Outcome{Code: policy.AttestationFailed, Message: "The attestation token is not valid yet"}
	case !now.Before(f.exp.Add(l)):
		return Outcome{Code: policy.AttestationExpired}
	case p.c.MaxAge > 0 && !now.Before(f.iat.Add(p.c.MaxAge+l)):
		return Outcome{Code: policy.AttestationExpired, Message: "The attestation is too old"}
	}
	if f.verdict != "" {
		return Outcome{Code: f.verdict, Message: f.verdictMsg}
	}
	if p.c.Replay != nil {
		// Recorded on first acceptance, checked on every one, cached or not: a cache hit
		// for a replay-protected token is a replay.
		seen, err := p.c.Replay.Seen(ctx, now, policy.CacheKey("jti", p.c.Issuer, f.jti), f.exp.Add(l))
		if err != nil {
			return Outcome{Err: fmt.Errorf("%s replay store: %w", p.id, err), Claimed: f.deviceID}
		}
		if seen {
			return Outcome{Code: policy.AttestationFailed, Message: "The attestation token was already used"}
		}
	}
	return Outcome{DeviceID: f.deviceID}
}

// Sentinel causes of INVALID_ATTESTATION raised while choosing the key.
var (
	errAlg = errors.New("algorithm not accepted")
	errTyp = errors.New("typ not accepted")
	errKey = errors.New("no usable key")
)

// verify checks tok's signature and static claims, in a span of its own (it runs only on
// a cache miss). An error means the keys could not be loaded: the verdict is undecided,
// and only then is the span's status Error; a refusal is a verdict, not an error.
func (p *Provider) verify(ctx context.Context, tok string) (*facts, error) {
	ctx, span := tracer.Start(ctx, "gatehouse.attestation.verify",
		trace.WithAttributes(attribute.String("gatehouse.attestation.provider", p.id)))
	defer span.End()
	f, err := p.verifyToken(ctx, tok)
	if err != nil {
		span.SetStatus(otelcodes.Error, "attestation keys unavailable")
		span.SetAttributes(semconv.ErrorTypeKey.String("keys_unavailable"))
	}
	return f, err
}

// verifyToken is verify without the span.
func (p *Provider) verifyToken(ctx context.Context, tok string) (*facts, error) {
	if len(tok) > p.c.MaxTokenBytes {
		return &facts{code: policy.InvalidAttestation, msg: "The attestation token is too large"}, nil
	}
	if p.c.PlayIntegrity != nil {
		return p.playIntegrity(tok), nil
	}
	claims := jwt.MapClaims{}
	_, err := p.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) { return p.key(ctx, t) })
	switch {
	case errors.Is(err, jwks.ErrUnavailable):
		// The claims were decoded before the key was sought: keep the device id they
		// name for the block lists (Outcome.Claimed), never as an identity.
		return &facts{deviceID: p.claimedID(claims)}, fmt.Errorf("%s keys: %w", p.id, err)
	case errors.Is(err, errAlg), errors.Is(err, errTyp), errors.Is(err, errKey), errors.Is(err, jwks.ErrUnknownKey):
		return &facts{code: policy.InvalidAttestation}, nil
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return &facts{code: policy.AttestationFailed}, nil
	case err != nil:
		return &facts{code: policy.InvalidAttestation}, nil
	}
	return p.read(claims), nil
}

// key chooses the verification key of t, refusing algorithms, typ values and key types
// the provider does not accept (alg confusion: an HS256 token against an RSA key, none).
func (p *Provider) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !slices.Contains(p.c.Algorithms, alg) {
		return nil, errAlg
	}
	if p.c.Typ != "" {
		if typ, _ := t.Header["typ"].(string); typ != p.c.Typ {
			return nil, errTyp
		}
	}
	if p.c.Secret != nil {
		return p.c.Secret, nil
	}
	if p.c.Keys == nil {
		return nil, errKey
	}
	kid, _ := t.Header["kid"].(string)
	k, err := p.c.Keys.Lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	if (k.Alg != "" && k.Alg != alg) || !fits(alg, k.Key) {
		return nil, errKey
	}
	return k.Key, nil
}

// fits reports whether a public key is of the type (and curve) alg needs.
func fits(alg string, key any) bool {
	switch alg[:2] {
	case "RS", "PS":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
		return false
	case "Ed":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

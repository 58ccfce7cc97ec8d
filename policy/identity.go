package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of uncached verifications; a no-op unless tracing is set up.
var tracer = otel.Tracer("github.com/gatehouse/gatehouse/policy")

// JWTVerifier verifies user JWTs of one identity provider.
type JWTVerifier struct {
	Name string
	// Issuer is the iss every token must carry. Empty accepts any issuer only with
	// AnyIssuer; otherwise every token is refused.
	Issuer    string
	AnyIssuer bool
	// Audiences: a token's aud must contain one of them. Empty accepts any audience only
	// with AnyAudience; otherwise every token is refused.
	Audiences   []string
	AnyAudience bool
	Algorithms  []string // allow-list; "none" is never accepted
	Leeway      time.Duration
	Keys        *jwks.Source
	Claims      ClaimNames
}

// ClaimNames are the claim names a provider uses.
type ClaimNames struct {
	Roles         string // string or array; default "roles"
	Scopes        string // space-separated string or array; default "scope"
	EmailVerified string // default "email_verified"
	Org           string // string or array of organisation ids; default "org_id"
	OrgRole       string // the user's role in the organisation; default "org_role"
}

// UserAuth is an endpoint's user-token requirement.
type UserAuth struct {
	Verifier *JWTVerifier
	Header   string // default "authorization" (Bearer)
	Optional bool   // a missing token passes; a bad one is still refused
	// Roles: the token needs at least one of them. Scopes: it needs all of them.
	Roles                []string
	Scopes               []string
	RequireEmailVerified bool
	// RequireOrg requires the organisation claim to contain the app's organisation
	// (NOT_ORG_MEMBER otherwise); OrgRoles additionally requires one of these roles in it
	// (ORG_ACCESS_DENIED otherwise).
	RequireOrg bool
	OrgRoles   []string
}

// userClaims is a verified token's content, as cached.
type userClaims struct {
	code          Code // non-empty: the token was refused with this code
	subject       string
	roles, scopes []string
	emailVerified *bool
	orgs          []string
	orgRole       string
	expires       time.Time
}

// errUndecided wraps failures that leave the verdict open (keys unreachable).
var errUndecided = errors.New("could not verify")

// identity runs step 4. It reports whether the pipeline goes on and, when a token
// verified, its subject.
func (r *Rules) identity(ctx context.Context, now time.Time, in *Input, app *App, u *UserAuth, d *Decision, fail FailMode) (string, bool) {
	tok, present := userToken(in, u.Header)
	if !present {
		if u.Optional {
			return "", true
		}
		d.deny(StepIdentity, Unauthorized)
		return "", false
	}
	if tok == "" {
		d.deny(StepIdentity, InvalidToken)
		return "", false
	}
	c, hit, err := u.Verifier.verify(ctx, now, r.opt.Cache, r.cacheScope, tok)
	d.CacheHit = d.CacheHit || hit
	if err != nil {
		return "", d.undecided(StepIdentity, fail, err.Error())
	}
	if c.code != "" {
		d.deny(StepIdentity, c.code)
		return "", false
	}
	if code := u.authorize(c, app); code != "" {
		d.deny(StepIdentity, code)
		return "", false
	}
	if c.subject != "" {
		d.Upstream = append(d.Upstream, Header{Key: r.hdr.user, Value: c.subject})
	}
	return c.subject, true
}

// userToken returns the bearer token of the configured header. present is false when the
// header is absent; an ambiguous or non-bearer value is present with an empty token.
func userToken(in *Input, header string) (tok string, present bool) {
	if header == "" || header == "authorization" {
		if _, ok := in.Headers["authorization"]; !ok {
			return "", false
		}
		t, ok := bearer(in)
		if !ok || strings.Count(t, ".") != 2 {
			return "", true
		}
		return t, true
	}
	v, present, ok := in.singleValue(header)
	if !ok {
		return "", present
	}
	return v, true
}

func (u *UserAuth) authorize(c *userClaims, app *App) Code {
	if u.RequireEmailVerified && (c.emailVerified == nil || !*c.emailVerified) {
		return EmailNotVerified
	}
	if u.RequireOrg || len(u.OrgRoles) > 0 {
		if app.Org == "" || !slices.Contains(c.orgs, app.Org) {
			return NotOrgMember
		}
		if len(u.OrgRoles) > 0 && !slices.Contains(u.OrgRoles, c.orgRole) {
			return OrgAccessDenied
		}
	}
	if len(u.Roles) > 0 && !slices.ContainsFunc(u.Roles, func(r string) bool { return slices.Contains(c.roles, r) }) {
		return Forbidden
	}
	for _, s := range u.Scopes {
		if !slices.Contains(c.scopes, s) {
			return Forbidden
		}
	}
	return ""
}

// verify checks a token, through the cache. A cached verdict is only used while the
// token is unexpired at now.
func (v *JWTVerifier) verify(ctx context.Context, now time.Time, cache *Cache, version, tok string) (*userClaims, bool, error) {
	key := CacheKey("user", version, v.Name, tok)
	if x, ok := cache.Get(key); ok {
		c := x.(*userClaims)
		if c.code != "" || now.Before(c.expires.Add(v.Leeway)) {
			return c, true, nil
		}
	}
	c, err := v.parse(ctx, now, tok)
	if err != nil {
		return nil, false, err
	}
	if c.code == "" {
		cache.Set(key, c, int64(len(c.subject)+64*len(c.roles)+64*len(c.scopes)+128), c.expires.Add(v.Leeway).Sub(now))
	} else {
		// Refused tokens are remembered briefly, so a flood of one bad token costs one
		// verification, while a key rotation is still picked up soon.
		cache.Set(key, c, 64, 5*time.Second)
	}
	return c, false, nil
}

func (v *JWTVerifier) parse(ctx context.Context, now time.Time, tok string) (*userClaims, error) {
	if !v.bound() {
		return &userClaims{code: InvalidToken}, nil
	}
	ctx, span := tracer.Start(ctx, "gatehouse.jwt.verify", trace.WithAttributes(attribute.String("gatehouse.jwt.provider", v.Name)))
	defer span.End()
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.Algorithms),
		jwt.WithLeeway(v.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
	}
	if v.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.Issuer))
	}
	if len(v.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(v.Audiences...))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := v.Keys.Lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		if k.Alg != "" && k.Alg != t.Method.Alg() {
			return nil, fmt.Errorf("key %q is for %s", kid, k.Alg)
		}
		return k.Key, nil
	})
	switch {
	case errors.Is(err, jwks.ErrUnavailable):
		return nil, fmt.Errorf("%w: %s keys: %v", errUndecided, v.Name, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		// Only reached once the signature verified: a forged expired token is invalid.
		return &userClaims{code: TokenExpired}, nil
	case err != nil:
		return &userClaims{code: InvalidToken}, nil
	}
	c := &userClaims{}
	c.subject, _ = claims["sub"].(string)
	c.roles = stringList(claims[v.Claims.Roles], false)
	c.scopes = stringList(claims[v.Claims.Scopes], true)
	c.orgs = stringList(claims[v.Claims.Org], false)
	c.orgRole, _ = claims[v.Claims.OrgRole].(string)
	if b, ok := claims[v.Claims.EmailVerified].(bool); ok {
		c.emailVerified = &b
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		c.expires = exp.Time
	}
	return c, nil
}

// bound reports whether the verifier pins an issuer and audiences, or says explicitly
// that any is acceptable: one that does neither would take a token minted for any
// other service that shares the key set, so it accepts none.
func (v *JWTVerifier) bound() bool {
	return (v.Issuer != "" || v.AnyIssuer) && (len(v.Audiences) > 0 || v.AnyAudience)
}

// stringList reads a claim that is a string (space-separated when split) or an array of
// strings.
func stringList(v any, split bool) []string {
	switch x := v.(type) {
	case string:
		if split {
			return strings.Fields(x)
		}
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

package session

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenBytes caps a session token; a longer one is refused before any parsing.
const MaxTokenBytes = 4096

// TokenType is the typ header of a session token, so that no other JWT signed by the
// same keys could pass for one.
const TokenType = "gatehouse-session+jwt"

// Claims are what a session token says. The token is signed by the key set's active key.
type Claims struct {
	SessionID string    // sid: the session, which refreshes and heartbeats keep
	App       string    // aud: the app the session belongs to
	DeviceID  string    // sub: the device id verified at the exchange; "" (no sub) when the proof named none
	License   string    // lic: hex SHA-256 of the license key, when one was presented
	Provider  string    // prv: the proof the exchange accepted (a provider name, or "license")
	Verdicts  []string  // vrd: the checks the exchange passed
	Started   time.Time // ath: when the session began (the exchange)
	IssuedAt  time.Time // iat
	Expires   time.Time // exp: the token is expired at exactly this second
}

type wireClaims struct {
	jwt.RegisteredClaims
	SID      string   `json:"sid"`
	License  string   `json:"lic,omitempty"`
	Provider string   `json:"prv,omitempty"`
	Verdicts []string `json:"vrd,omitempty"`
	Started  int64    `json:"ath"` // unix nanoseconds
}

// Sign returns c as a token signed by the active key.
func (ks *KeySet) Sign(issuer string, c *Claims) (string, error) {
	w := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: c.DeviceID, Audience: jwt.ClaimStrings{c.App},
			IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.Expires)},
		SID: c.SessionID, License: c.License, Provider: c.Provider, Verdicts: c.Verdicts, Started: c.Started.UnixNano(),
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(ks.active.Alg), w)
	t.Header["kid"] = ks.active.ID
	t.Header["typ"] = TokenType
	return t.SignedString(ks.active.signer)
}

// verified is what checking a token's signature established: the part of a verdict that
// depends on the token alone, cached under a digest of the token.
type verified struct {
	code   policy.Code // refusal; empty: the signature and claims are sound
	claims Claims
	// state is this replica's last look at the store for the session, shared by the
	// requests that carry this token until it is due again.
	state atomic.Pointer[look]
}

// look is what the store said about a session (code "": live), trusted until until.
type look struct {
	code  policy.Code
	until time.Time
}

var errTokenKey = errors.New("no key for this token")

// parser accepts only the algorithms session keys use: none, HS256 (with the public key
// as an HMAC secret) and everything else is refused before any key is chosen.
var parser = jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "EdDSA"}), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())

// verify checks tok's signature, typ, issuer and claims' shape.
func (ks *KeySet) verify(issuer, tok string) *verified {
	if len(tok) > MaxTokenBytes {
		return &verified{code: policy.InvalidToken}
	}
	var w wireClaims
	_, err := parser.ParseWithClaims(tok, &w, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := ks.byID[kid]
		if typ, _ := t.Header["typ"].(string); !ok || typ != TokenType || k.Alg != t.Method.Alg() {
			return nil, errTokenKey
		}
		return k.signer.Public(), nil
	})
	if err != nil || w.Issuer != issuer || w.ExpiresAt == nil || w.IssuedAt == nil ||
		len(w.Audience) != 1 || w.SID == "" {
		return &verified{code: policy.InvalidToken}
	}
	return &verified{claims: Claims{SessionID: w.SID, App: w.Audience[0], DeviceID: w.Subject, License: w.License,
		Provider: w.Provider, Verdicts: w.Verdicts, Started: time.Unix(0, w.Started),
		IssuedAt: w.IssuedAt.Time, Expires: w.ExpiresAt.Time}}
}

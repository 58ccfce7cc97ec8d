package attest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/golang-jwt/jwt/v5"
)

// MaxDeviceIDBytes caps a device id; longer ones, or ones with bytes outside printable
// ASCII, are refused (they end up in upstream headers and store keys).
const MaxDeviceIDBytes = 128

// ValidDeviceID reports whether id may be used as a device id.
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > MaxDeviceIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' || id[i] == ',' {
			return false
		}
	}
	return true
}

// claimedID is the device id that claims name, when it may be one; "" otherwise.
func (p *Provider) claimedID(claims jwt.MapClaims) string {
	if p.c.Claims.DeviceID == "" {
		return ""
	}
	if id, ok := claim(claims, p.c.Claims.DeviceID).(string); ok && ValidDeviceID(id) {
		return id
	}
	return ""
}

// read turns the claims of a token whose signature verified into facts, checking what
// depends on the token alone, in the order of the failure mapping.
func (p *Provider) read(claims jwt.MapClaims) *facts {
	// Refusal messages stay the catalogue's where more detail would only help an attacker
	// probe the verifier.
	f := &facts{}
	// Malformed registered claims are malformed attestations.
	exp, err1 := claims.GetExpirationTime()
	nbf, err2 := claims.GetNotBefore()
	iat, err3 := claims.GetIssuedAt()
	if err1 != nil || err2 != nil || err3 != nil || exp == nil || (p.c.MaxAge > 0 && iat == nil) {
		return &facts{code: policy.InvalidAttestation}
	}
	f.exp = exp.Time
	if nbf != nil {
		f.nbf = nbf.Time
	}
	if iat != nil {
		f.iat = iat.Time
	}
	if p.c.Replay != nil {
		if f.jti, _ = claims["jti"].(string); f.jti == "" {
			return &facts{code: policy.InvalidAttestation}
		}
	}
	if p.c.Claims.DeviceID != "" {
		if id, ok := claim(claims, p.c.Claims.DeviceID).(string); ok && id != "" {
			if !ValidDeviceID(id) {
				return &facts{code: policy.InvalidAttestation}
			}
			f.deviceID = id
		}
	}
	// Issuer, audience and app: the token is genuine but not for us.
	if p.c.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != p.c.Issuer {
			return &facts{code: policy.AttestationFailed}
		}
	}
	if len(p.c.Audiences) > 0 {
		aud, err := claims.GetAudience()
		if err != nil || !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(p.c.Audiences, a) }) {
			return &facts{code: policy.AttestationFailed}
		}
	}
	if len(p.c.AppIDs) > 0 {
		if sub, _ := claims["sub"].(string); !slices.Contains(p.c.AppIDs, sub) {
			return &facts{code: policy.AttestationFailed}
		}
	}
	if p.c.BindingHeader != "" {
		pay, _ := claims["pay"].(string)
		b, err := base64.StdEncoding.DecodeString(pay)
		if err != nil || len(b) != sha256.Size {
			return &facts{code: policy.AttestationFailed, msg: "The attestation token is not bound to this request"}
		}
		copy(f.pay[:], b)
		f.hasPay = true
	}
	f.verdict, f.verdictMsg = p.verdict(claims)
	return f
}

// verdict maps the device verdict claims to a code, in a fixed order.
func (p *Provider) verdict(claims jwt.MapClaims) (policy.Code, string) {
	n, v := &p.c.Claims, &p.c.Verdict
	switch {
	case !v.AllowCompromised && truthy(claim(claims, n.Compromised)):
		return policy.DeviceCompromised, ""
	case !v.AllowEmulator && truthy(claim(claims, n.Emulator)):
		return policy.EmulatorDetected, ""
	case !v.AllowDebugger && truthy(claim(claims, n.Debugger)):
		return policy.DebuggerDetected, ""
	case truthy(claim(claims, n.Tampered)):
		return policy.AppTampered, ""
	}
	if len(v.SigningCerts) > 0 {
		cert, _ := claim(claims, n.SigningCert).(string)
		if !slices.Contains(v.SigningCerts, NormalizeCert(cert)) {
			return policy.AppTampered, ""
		}
	}
	if v.MinAppVersion != nil {
		s, _ := claim(claims, n.AppVersion).(string)
		ver, err := ParseVersion(s)
		if err != nil || ver.Less(v.MinAppVersion) {
			return policy.AttestationFailed, "This app version is no longer supported; update the app"
		}
	}
	return "", ""
}

// NormalizeCert spells a certificate digest as lower-case hex without separators.
func NormalizeCert(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
}

// claim returns the claim at a dotted path; nil when absent or the path is empty.
func claim(claims jwt.MapClaims, path string) any {
	if path == "" {
		return nil
	}
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = map[string]any(claims)
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// truthy reads a verdict flag: true, "true", or a non-zero number.
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	case float64:
		return x != 0
	}
	return false
}

// bound reports whether a token's pay claim matches the binding header of this request:
// present once, and hashing to pay (compared in constant time).
func (p *Provider) bound(in *policy.Input, f *facts) bool {
	if p.c.PlayIntegrity != nil {
		return p.playIntegrityBound(in, f)
	}
	v, ok := single(in, p.c.BindingHeader)
	if !ok || !f.hasPay {
		return false
	}
	sum := sha256.Sum256([]byte(v))
	return subtle.ConstantTimeCompare(sum[:], f.pay[:]) == 1
}

// single returns a header's value when it is present exactly once: Envoy merges repeated
// headers into one comma-separated value, which is ambiguous for a credential. This is
// policy.Input's credential rule.
func single(in *policy.Input, name string) (string, bool) {
	v, ok := in.Headers[name]
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	if v == "" || strings.IndexByte(v, ',') >= 0 {
		return "", false
	}
	return v, true
}

// Credential returns the value of a credential header. present is false when the header
// is absent; ok is false when it is empty or repeated (ambiguous: refuse it).
func Credential(in *policy.Input, name string) (v string, present, ok bool) {
	if _, present = in.Headers[name]; !present {
		return "", false, false
	}
	v, ok = single(in, name)
	return v, true, ok
}

// Version is a dotted numeric app version; a pre-release ("2.3.0-beta") sorts before
// its release.
type Version []int

// pre marks a pre-release as the last component.
const pre = -1

// ParseVersion reads "2.3.0", "v2.3", "2.3.0-beta.1" or "2.3.0+build".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "+")
	s, rc, isPre := strings.Cut(s, "-")
	if s == "" || (isPre && rc == "") {
		return nil, strconv.ErrSyntax
	}
	var v Version
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, strconv.ErrSyntax
		}
		v = append(v, n)
	}
	for len(v) > 1 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	if isPre {
		v = append(v, pre)
	}
	return v, nil
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	for i := 0; i < len(v) || i < len(w); i++ {
		a, b := 0, 0
		if i < len(v) {
			a = v[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return a < b
		}
	}
	return false
}

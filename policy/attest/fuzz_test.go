package attest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/golang-jwt/jwt/v5"
)

// attestCodes are the codes of the failure mapping (README.md).
var attestCodes = map[policy.Code]bool{policy.InvalidAttestation: true, policy.AttestationFailed: true, policy.AttestationExpired: true,
	policy.DeviceCompromised: true, policy.EmulatorDetected: true, policy.DebuggerDetected: true, policy.AppTampered: true}

// signedPart is a compact JWS without its signature: what the signature covers.
func signedPart(tok string) string {
	if i := strings.LastIndexByte(tok, '.'); i >= 0 {
		return tok[:i]
	}
	return tok
}

// FuzzCheck: no credential, however malformed, panics or passes, except one whose signed
// part is the valid token's (its signature may be re-encoded, never its header or claims),
// and every refusal is a code of the failure mapping.
func FuzzCheck(f *testing.F) {
	k := attesttest.NewKey(f, "ES256", "ES256")
	p := benchProvider(attest.SignedToken, k, nil)
	valid := attesttest.Sign(f, k, attesttest.Claims{"iss": signedIssuer, "aud": "bench", "exp": now.Unix() + 60}, nil)
	unsigned := attesttest.Unsigned(f, attesttest.Claims{"iss": signedIssuer, "aud": "bench", "exp": now.Unix() + 60}, nil)
	confused := attesttest.SignHS256(f, []byte(attesttest.JWKS(k)), attesttest.Claims{"iss": signedIssuer, "aud": "bench", "exp": now.Unix() + 60},
		map[string]any{"kid": k.ID})
	for _, s := range []string{valid, unsigned, confused, "", ".", "..", "a.b.c", "e30.e30.", valid[:len(valid)-3], valid + "x",
		valid + "." + valid, " " + valid, strings.Repeat("a", 9000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		o := p.Check(context.Background(), now, request("", "/"), tok, nil)
		if o.Err != nil {
			t.Fatalf("undecided: %v", o.Err)
		}
		if o.Code == "" && signedPart(tok) != signedPart(valid) {
			t.Fatalf("accepted %q", tok)
		}
		if o.Code != "" && !attestCodes[o.Code] {
			t.Fatalf("code %s", o.Code)
		}
	})
}

// FuzzCheckClaims signs an arbitrary JOSE header and claims with the provider's own key,
// so every token is genuine and only the header and claims are left to the parser.
// Attested means, checked here on the JSON itself: alg ES256 (the key's algorithm), the
// issuer, the audience, an unexpired exp, no future nbf or iat, no device verdict set,
// and the device id the token names.
func FuzzCheckClaims(f *testing.F) {
	k := attesttest.NewKey(f, "ES256", "ES256")
	p := benchProvider(attest.SignedToken, k, nil)
	exp := now.Unix() + 60
	for _, c := range []attesttest.Claims{
		{"iss": signedIssuer, "aud": "bench", "exp": exp, "device_id": "device-1"},
		{"iss": signedIssuer, "aud": []string{"x", "bench"}, "exp": exp, "nbf": now.Unix(), "iat": now.Unix()},
		{"iss": signedIssuer, "aud": "bench", "exp": exp, "emulator": true},
		{"iss": signedIssuer, "aud": "bench", "exp": exp, "compromised": "true", "device_id": 7},
		{"iss": signedIssuer, "aud": "bench", "exp": 1e300},
		{"iss": signedIssuer, "aud": "bench", "exp": float64(exp) + 0.5, "iat": exp},
	} {
		b, _ := json.Marshal(c)
		f.Add([]byte(`{"alg":"ES256","kid":"ES256","typ":"JWT"}`), b)
	}
	f.Add([]byte(`{"alg":"ES256","kid":"ES256"}`), []byte(`{"iss":"https://attest.test","aud":"bench","exp":1750000060,"iss":"https://other.test"}`))
	f.Add([]byte(`{"alg":"ES256","kid":"ES256"}`), []byte(`[]`))
	ok := []byte(`{"iss":"https://attest.test","aud":"bench","exp":1750000060}`)
	for _, h := range []string{`{"alg":"none","kid":"ES256"}`, `{"alg":"HS256","kid":"ES256"}`, `{"alg":"ES256"}`, `{"alg":"RS256","kid":"ES256"}`,
		`{"alg":"ES256","kid":"other"}`, `{"alg":"ES256","kid":"ES256","alg":"none"}`, `{"alg":"EdDSA","kid":"ES256"}`, `null`} {
		f.Add([]byte(h), ok)
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		o := p.Check(context.Background(), now, request("", "/"), signES256(t, k, header, claims), nil)
		if o.Err != nil {
			t.Fatalf("undecided: %v", o.Err)
		}
		if o.Code != "" {
			if !attestCodes[o.Code] {
				t.Fatalf("code %s", o.Code)
			}
			return
		}
		var h struct{ Alg string }
		if json.Unmarshal(header, &h) != nil || h.Alg != "ES256" {
			t.Fatalf("attested header %s", header)
		}
		if why := attestFault(claims, o.DeviceID); why != "" {
			t.Fatalf("attested claims %s: %s", claims, why)
		}
	})
}

// signES256 signs header and claims bytes as they are.
func signES256(t *testing.T, k *attesttest.Key, header, claims []byte) string {
	in := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := jwt.SigningMethodES256.Sign(in, k.Private.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// attestFault says why claims should not have been attested ("" when they are fine),
// reading the JSON with the standard library rather than the provider's parser.
func attestFault(claims []byte, deviceID string) string {
	var c map[string]any
	dec := json.NewDecoder(bytes.NewReader(claims))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil || c == nil {
		return "not a JSON object"
	}
	if c["iss"] != signedIssuer {
		return "issuer"
	}
	if a, ok := c["aud"].(string); !(ok && a == "bench") && !holds(c["aud"], "bench") {
		return "audience"
	}
	t, l := float64(now.Unix()), (30 * time.Second).Seconds()
	if e, ok := num(c["exp"]); !ok || !(t < e+l) {
		return "exp"
	}
	for _, k := range []string{"nbf", "iat"} {
		if v, present := c[k]; present {
			if n, ok := num(v); !ok || n > t+l+1e-6 {
				return k
			}
		}
	}
	for _, k := range []string{"compromised", "emulator", "debugger", "tampered"} {
		if c[k] == true {
			return k
		}
	}
	if d, _ := c["device_id"].(string); deviceID != "" && deviceID != d {
		return "device id"
	}
	return ""
}

func num(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0)
}

func holds(v any, want string) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range list {
		if e == want {
			return true
		}
	}
	return false
}

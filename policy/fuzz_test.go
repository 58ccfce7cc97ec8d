package policy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fuzzVerifier is the provider every user-token fuzz target runs against.
var fuzzVerifier = policy.JWTVerifier{Issuer: "https://id.test", Audiences: []string{"api", "web"}, Leeway: 30 * time.Second}

// signingInput is a compact JWS without its signature: what the signature covers.
func signingInput(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return tok
	}
	return tok[:i]
}

// FuzzUserToken: no bearer value, however malformed, panics or passes, except one whose
// signed part is the valid token's (a signature may be re-encoded, never the claims), and
// every refusal is a user-token code.
func FuzzUserToken(f *testing.F) {
	fx := newUserFixture(f)
	r := fx.rulesFor(f, fuzzVerifier, policy.UserAuth{Roles: []string{"reader"}})
	valid := fx.sign(f, jwt.MapClaims{"iss": "https://id.test", "aud": "api", "roles": []string{"reader"}})
	expired := fx.sign(f, jwt.MapClaims{"iss": "https://id.test", "aud": "api", "roles": []string{"reader"}, "exp": fx.now.Add(-time.Hour).Unix()})
	hdr, payload, _ := strings.Cut(valid, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + "."
	hs := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + payload + "." + sig
	for _, s := range []string{valid, expired, none, hs, "", ".", "..", "a.b.c", "e30.e30.", valid[:len(valid)-3], valid + "x",
		hdr + "." + payload, hdr + ".." + sig, strings.ToUpper(valid), valid + "." + sig} {
		f.Add(s)
	}
	codes := []policy.Code{policy.InvalidToken, policy.TokenExpired, policy.Unauthorized, policy.Forbidden}
	f.Fuzz(func(t *testing.T, tok string) {
		d := fx.decide(r, tok)
		if d.Allowed() && signingInput(tok) != signingInput(valid) {
			t.Fatalf("accepted %q", tok)
		}
		if !d.Allowed() && !slices.Contains(codes, d.Code) {
			t.Fatalf("code %q", d.Code)
		}
	})
}

// FuzzUserClaims signs an arbitrary JOSE header and claims with the provider's own key,
// so every token is genuine: what is left to the parser is the header and the claims.
// Allowed means, checked here on the JSON itself: alg ES256 (the provider's only
// algorithm), the issuer, one of the audiences, an unexpired exp, no future nbf, and the
// role the endpoint requires.
func FuzzUserClaims(f *testing.F) {
	fx := newUserFixture(f)
	r := fx.rulesFor(f, fuzzVerifier, policy.UserAuth{Roles: []string{"reader"}})
	exp := strconv.FormatInt(fx.now.Add(time.Hour).Unix(), 10)
	for _, s := range []string{
		`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":` + exp + `}`,
		`{"iss":"https://id.test","aud":["x","web"],"roles":"reader","exp":` + exp + `,"nbf":1}`,
		`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":1e300}`,
		`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":"` + exp + `"}`,
		`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":` + exp + `,"iss":"https://evil.test"}`,
		`{"iss":"https://id.test","aud":[],"roles":["reader"],"exp":` + exp + `}`,
		`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":` + exp + `.999,"iat":` + exp + `}`,
		`[]`, `null`, `{}`, `{"exp":-1}`,
	} {
		f.Add([]byte(`{"alg":"ES256","kid":"k1","typ":"JWT"}`), []byte(s))
	}
	ok := []byte(`{"iss":"https://id.test","aud":"api","roles":["reader"],"exp":` + exp + `}`)
	for _, h := range []string{`{"alg":"none","kid":"k1"}`, `{"alg":"HS256","kid":"k1"}`, `{"alg":"ES256"}`, `{"alg":"ES256","kid":"k2"}`,
		`{"alg":"ES256","kid":"k1","crit":["exp"]}`, `{"alg":"ES256","kid":"k1","alg":"none"}`, `{"alg":"ES384","kid":"k1"}`, `[]`} {
		f.Add([]byte(h), ok)
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		d := fx.decide(r, fx.signRaw(t, header, claims))
		if !d.Allowed() {
			return
		}
		var h struct{ Alg string }
		if json.Unmarshal(header, &h) != nil || h.Alg != "ES256" {
			t.Fatalf("accepted header %s", header)
		}
		if why := userClaimsFault(claims, fx.now, fuzzVerifier.Leeway); why != "" {
			t.Fatalf("accepted claims %s: %s", claims, why)
		}
	})
}

// signRaw signs header and claims bytes as they are, with the fixture's ES256 key.
func (f *userFixture) signRaw(t testing.TB, header, claims []byte) string {
	in := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := jwt.SigningMethodES256.Sign(in, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// userClaimsFault says why claims should not have been accepted ("" when they are fine),
// reading the JSON with the standard library rather than the verifier's parser.
func userClaimsFault(claims []byte, now time.Time, leeway time.Duration) string {
	var c map[string]any
	dec := json.NewDecoder(bytes.NewReader(claims))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil || c == nil {
		return "not a JSON object"
	}
	if c["iss"] != "https://id.test" {
		return "issuer"
	}
	if !anyOf(c["aud"], "api", "web") {
		return "audience"
	}
	if !anyOf(c["roles"], "reader") {
		return "role"
	}
	t := float64(now.Unix())
	l := leeway.Seconds()
	if e, ok := number(c["exp"]); !ok || !(t < e+l) {
		return "exp"
	}
	// iat is not checked: like Envoy's jwt_authn and OIDC verifiers, only exp and nbf.
	if v, present := c["nbf"]; present {
		if n, ok := number(v); !ok || n > t+l+1e-6 { // tolerance: the verifier keeps nanoseconds
			return "nbf"
		}
	}
	return ""
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0)
}

// anyOf reports whether v is one of want, or an array holding one of them.
func anyOf(v any, want ...string) bool {
	switch x := v.(type) {
	case string:
		return slices.Contains(want, x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}

// payloadSchema is the body rule of the payload fuzz target.
const payloadSchema = `{"type":"object","required":["message"],"additionalProperties":false,
 "properties":{"message":{"type":"string","minLength":1,"maxLength":20},"count":{"type":"integer","minimum":0,"maximum":10}}}`

// FuzzPayload sends arbitrary bodies to an endpoint with a 64-byte limit and a schema.
// A body over the limit (sent or declared) is PAYLOAD_TOO_LARGE; a truncated one is never
// allowed; INVALID_JSON only for what is not JSON; and what is allowed satisfies the
// schema, checked here on the JSON itself.
func FuzzPayload(f *testing.F) {
	r := fuzzPayloadRules(f)
	for _, s := range []string{`{"message":"hi"}`, `{"message":"hi","count":3}`, `{"message":"hi","count":3.0}`, `{"message":""}`,
		`{"message":"hi","extra":1}`, `{"count":1}`, `[]`, `{`, `{"message":"hi"} {}`, `{"message":"\u00e9\u00e9"}`,
		`{"message":"hi","message":5}`, `{"message":"hi","count":1e1}`, strings.Repeat(" ", 65), ""} {
		f.Add(s, int64(len(s)), false)
	}
	f.Add(`{"message":"h`, int64(100), true)
	codes := []policy.Code{policy.PayloadTooLarge, policy.InvalidJSON, policy.MissingField, policy.InvalidField, policy.ValidationError}
	f.Fuzz(func(t *testing.T, body string, declared int64, partial bool) {
		in := &policy.Input{Method: "POST", Path: "/v1/echo", Body: body, HasBody: body != "", BodySize: declared, BodyPartial: partial,
			Headers: map[string]string{"x-app-token": "app-token"}}
		d := r.Decide(t.Context(), time.Unix(1_750_000_000, 0), in)
		switch {
		case !d.Allowed() && !slices.Contains(codes, d.Code):
			t.Fatalf("code %q", d.Code)
		case (len(body) > 64 || declared > 64) && d.Code != policy.PayloadTooLarge:
			t.Fatalf("%d bytes (declared %d): code %q", len(body), declared, d.Code)
		case partial && d.Allowed():
			t.Fatal("a truncated body was allowed")
		case d.Code == policy.InvalidJSON && json.Valid([]byte(body)):
			t.Fatalf("valid JSON called invalid: %q", body)
		case d.Allowed():
			if why := payloadFault(body); why != "" {
				t.Fatalf("allowed %q: %s", body, why)
			}
		}
	})
}

// payloadFault says why body does not satisfy payloadSchema ("" when it does).
func payloadFault(body string) string {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return "not one JSON object"
	}
	msg, ok := m["message"].(string)
	if n := utf8.RuneCountInString(msg); !ok || n < 1 || n > 20 {
		return "message"
	}
	if c, present := m["count"]; present {
		n, ok := number(c)
		if !ok || n != math.Trunc(n) || n < 0 || n > 10 {
			return "count"
		}
	}
	for k := range m {
		if k != "message" && k != "count" {
			return "an unknown property"
		}
	}
	return ""
}

func fuzzPayloadRules(t testing.TB) *policy.Rules {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(payloadSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem:///s.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem:///s.json")
	if err != nil {
		t.Fatal(err)
	}
	app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
	ep := &policy.Endpoint{Name: "echo", Path: "/v1/echo", Payload: &policy.Payload{MaxBytes: 64, Schema: sch}}
	r, err := policy.NewRules(policy.Options{Version: "v1"}, []*policy.App{app}, []*policy.Endpoint{ep})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

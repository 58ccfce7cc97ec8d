package playintegrity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
	jose "github.com/go-jose/go-jose/v4"
)

const pkg = "com.example.shop"

var ts = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

// flip changes one character of segment i of a compact token, keeping it base64url.
func flip(tok string, i int) string {
	parts := strings.Split(tok, ".")
	s := []byte(parts[i])
	at := len(s) / 2
	if s[at] == 'A' {
		s[at] = 'B'
	} else {
		s[at] = 'A'
	}
	parts[i] = string(s)
	return strings.Join(parts, ".")
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestDecode: what Decode refuses and with which code (the README's failure mapping, rows
// 2 and 3), including algorithm confusion and inputs built to exhaust the parser.
func TestDecode(t *testing.T) {
	k, other := pitest.NewKeys(t), pitest.NewKeys(t)
	good := pitest.Good(pkg, pitest.Binding("GET", "/", ""), ts)
	tok := pitest.Token(t, k, good)
	body := []byte(`{"requestDetails":{"requestPackageName":"` + pkg + `"}}`)
	bomb := []byte(`{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`) // encoding/json alone would take it
	tooDeep := []byte(`{"a":` + strings.Repeat("[", playintegrity.MaxDepth) + strings.Repeat("]", playintegrity.MaxDepth) + `}`)
	deep := []byte(`{"a":` + strings.Repeat("[", playintegrity.MaxDepth-1) + strings.Repeat("]", playintegrity.MaxDepth-1) + `}`) // depth MaxDepth
	unsignedJWS := b64(`{"alg":"none"}`) + "." + b64(string(body)) + "."
	zipped := func() string {
		e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.A256KW, Key: k.Decryption},
			&jose.EncrypterOptions{Compression: jose.DEFLATE})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := e.Encrypt([]byte(pitest.Sign(t, k, body, jose.ES256)))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return s
	}()
	crit := b64(`{"alg":"A256KW","enc":"A256GCM","crit":["exp"],"exp":1}`) + strings.TrimPrefix(tok, strings.Split(tok, ".")[0])
	cases := []struct {
		name string
		tok  string
		want policy.Code
	}{
		{"genuine", tok, ""},
		{"empty", "", policy.InvalidAttestation},
		{"not compact", "garbage", policy.InvalidAttestation},
		{"four segments", strings.Join(strings.Split(tok, ".")[:4], "."), policy.InvalidAttestation},
		{"six segments", tok + ".x", policy.InvalidAttestation},
		{"header not base64url", "!!!." + strings.SplitN(tok, ".", 2)[1], policy.InvalidAttestation},
		{"header padded base64", base64.URLEncoding.EncodeToString([]byte(`{"alg":"A256KW","enc":"A256GCM"}x`)) + strings.TrimPrefix(tok, strings.Split(tok, ".")[0]), policy.InvalidAttestation},
		{"header not an object", b64(`[1]`) + strings.TrimPrefix(tok, strings.Split(tok, ".")[0]), policy.InvalidAttestation},
		{"header nested bomb", b64(`{"alg":"A256KW","enc":"A256GCM","x":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`) + strings.TrimPrefix(tok, strings.Split(tok, ".")[0]), policy.InvalidAttestation},
		{"header crit", crit, policy.InvalidAttestation},
		{"compressed (zip)", zipped, policy.InvalidAttestation},
		{"tampered ciphertext", flip(tok, 3), policy.AttestationFailed},
		{"tampered tag", flip(tok, 4), policy.AttestationFailed},
		{"tampered wrapped key", flip(tok, 1), policy.AttestationFailed},
		{"tampered iv", flip(tok, 2), policy.AttestationFailed},
		{"another app's decryption key", pitest.Token(t, other, good), policy.AttestationFailed},
		{"signed by another key", func() string {
			mixed := &pitest.Keys{Decryption: k.Decryption, Signing: other.Signing}
			return pitest.Token(t, mixed, good)
		}(), policy.AttestationFailed},
		{"signed by an attacker who embeds his key (jwk header)", func() string {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other.Signing}, &jose.SignerOptions{EmbedJWK: true})
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := signer.Sign(body)
			s, _ := jws.CompactSerialize()
			return pitest.Encrypt(t, k, []byte(s), jose.A256KW, jose.A256GCM)
		}(), policy.AttestationFailed},
		{"JWS with crit", pitest.Encrypt(t, k, []byte(b64(`{"alg":"ES256","crit":["b64"],"b64":false}`)+"."+b64(string(body))+".c2ln"), jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"key wrap RSA-OAEP", pitest.TokenRaw(t, k, body, jose.ES256, jose.RSA_OAEP, jose.A256GCM), policy.InvalidAttestation},
		{"key wrap dir", pitest.TokenRaw(t, k, body, jose.ES256, jose.DIRECT, jose.A256GCM), policy.InvalidAttestation},
		{"key wrap A128KW", pitest.TokenRaw(t, k, body, jose.ES256, jose.A128KW, jose.A256GCM), policy.InvalidAttestation},
		{"content A128GCM", pitest.TokenRaw(t, k, body, jose.ES256, jose.A256KW, jose.A128GCM), policy.InvalidAttestation},
		{"content A256CBC-HS512", pitest.TokenRaw(t, k, body, jose.ES256, jose.A256KW, jose.A256CBC_HS512), policy.InvalidAttestation},
		{"JWS HS256 with the decryption key", pitest.TokenRaw(t, k, body, jose.HS256, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"JWS alg none", pitest.Encrypt(t, k, []byte(unsignedJWS), jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"plaintext not a JWS", pitest.Encrypt(t, k, body, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"payload nested bomb", pitest.TokenRaw(t, k, bomb, jose.ES256, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"payload at the depth limit", pitest.TokenRaw(t, k, deep, jose.ES256, jose.A256KW, jose.A256GCM), ""},
		{"payload one deeper than the limit", pitest.TokenRaw(t, k, tooDeep, jose.ES256, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"payload not JSON", pitest.TokenRaw(t, k, []byte(`not json`), jose.ES256, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"payload an array", pitest.TokenRaw(t, k, []byte(`[1]`), jose.ES256, jose.A256KW, jose.A256GCM), policy.InvalidAttestation},
		{"timestamp not digits", pitest.Token(t, k, pitest.Good(pkg, "", ts).Set("requestDetails", "timestampMillis", "soon")), policy.InvalidAttestation},
		{"timestamp negative", pitest.Token(t, k, pitest.Good(pkg, "", ts).Set("requestDetails", "timestampMillis", "-5")), policy.InvalidAttestation},
		{"timestamp as a JSON number", pitest.Token(t, k, pitest.Good(pkg, "", ts).Set("requestDetails", "timestampMillis", ts.UnixMilli())), ""},
		{"verdict of the wrong type", pitest.Token(t, k, pitest.Good(pkg, "", ts).Set("deviceIntegrity", "deviceRecognitionVerdict", "MEETS_DEVICE_INTEGRITY")), policy.InvalidAttestation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := playintegrity.Decode(tc.tok, k.Verifier())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && p == nil:
				t.Fatal("no payload")
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want %s", tc.want)
			case tc.want != "" && err.Code != tc.want:
				t.Fatalf("%s (%s), want %s", err.Code, err.Reason, tc.want)
			}
		})
	}
}

// TestDecodeReadsFields: the fields a genuine token carries arrive in the payload.
func TestDecodeReadsFields(t *testing.T) {
	k := pitest.NewKeys(t)
	p, err := playintegrity.Decode(pitest.Token(t, k, pitest.Good(pkg, "bind", ts)), k.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := pitest.Cert("release")
	if p.RequestDetails.RequestPackageName != pkg || p.RequestDetails.RequestHash != "bind" ||
		int64(p.RequestDetails.TimestampMillis) != 1796612400000 || p.AppIntegrity.CertificateSha256Digest[0] != cert ||
		p.DeviceIntegrity.DeviceRecognitionVerdict[0] != "MEETS_DEVICE_INTEGRITY" {
		t.Errorf("payload %+v", p)
	}
}

// TestRequestHashWorkedExample: the README's worked example, its digest computed with
// `printf 'GET\n/v1/orders?id=7\nn-123' | openssl dgst -sha256 -binary | base64` (URL
// alphabet, no padding).
func TestRequestHashWorkedExample(t *testing.T) {
	sum := playintegrity.RequestHash("GET", "/v1/orders?id=7", "n-123")
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != "iXBsmQzCPU8rvMLuAVf-z52mHS1m3VCGy0n-PBO91XQ" {
		t.Errorf("got %s", got)
	}
	sum = playintegrity.RequestHash("POST", "/v1/secure", "")
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != "HpHnr3vAQ4hGU76IdfvTLncuWB2uGVk7kcs8c6TSHNY" {
		t.Errorf("without a binding header: got %s", got)
	}
	long := strings.Repeat("x", 2000) // beyond the stack buffer
	if a, b := playintegrity.RequestHash("GET", long, long), playintegrity.RequestHash("GET", long, long+"y"); a == b {
		t.Error("long inputs collide")
	}
}

func TestParseKeys(t *testing.T) {
	k := pitest.NewKeys(t)
	for name, text := range map[string]string{
		"base64":           k.DecryptionText(),
		"base64 + newline": k.DecryptionText() + "\n",
		"base64url":        base64.RawURLEncoding.EncodeToString(k.Decryption),
	} {
		if b, err := playintegrity.ParseDecryptionKey([]byte(text)); err != nil || string(b) != string(k.Decryption) {
			t.Errorf("decryption key %s: %v", name, err)
		}
	}
	for name, text := range map[string]string{
		"16 bytes": base64.StdEncoding.EncodeToString(k.Decryption[:16]),
		"33 bytes": base64.StdEncoding.EncodeToString(append(k.Decryption, 0)),
		"not b64":  "not base64!",
		"empty":    "",
	} {
		if _, err := playintegrity.ParseDecryptionKey([]byte(text)); err == nil {
			t.Errorf("decryption key %s accepted", name)
		}
	}
	for name, text := range map[string]string{"base64 DER": k.VerificationText(t), "PEM": k.VerificationPEM(t)} {
		if pub, err := playintegrity.ParseVerificationKey([]byte(text)); err != nil || !pub.Equal(&k.Signing.PublicKey) {
			t.Errorf("verification key %s: %v", name, err)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	derRSA, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	for name, text := range map[string]string{
		"P-384":           base64.StdEncoding.EncodeToString(der384),
		"RSA":             base64.StdEncoding.EncodeToString(derRSA),
		"private key PEM": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})),
		"garbage":         "AAAA",
		"the AES key":     k.DecryptionText(),
	} {
		if _, err := playintegrity.ParseVerificationKey([]byte(text)); err == nil {
			t.Errorf("verification key %s accepted", name)
		}
	}
}

// TestDecodeWithoutKeys: a provider whose key files were absent (validate --offline)
// refuses every token instead of panicking.
func TestDecodeWithoutKeys(t *testing.T) {
	k := pitest.NewKeys(t)
	tok := pitest.Token(t, k, pitest.Good(pkg, "", ts))
	for name, keys := range map[string]playintegrity.Keys{
		"none":                {},
		"no verification key": {Decryption: k.Decryption},
		"no decryption key":   {Verification: &k.Signing.PublicKey},
	} {
		if _, err := playintegrity.Decode(tok, keys); err == nil || err.Code != policy.AttestationFailed {
			t.Errorf("%s: %v", name, err)
		}
	}
}

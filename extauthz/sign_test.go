package extauthz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
)

// TestSignedDenial: a denial on a signed endpoint carries the echoed nonce, the
// timestamp and HMAC-SHA256(secret, canonical string) over the exact body and status the
// client receives, computed here independently of package signature; license SDK
// denials sign their HTTP 200.
func TestSignedDenial(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	sg, err := signature.New([]byte(secret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1767225600, 0)
	for _, tc := range []struct {
		name   string
		d      policy.Decision
		status int
		echo   bool
	}{
		{"with nonce", policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, Nonce: "nonce-aaaaaaaaaaaaaaaa"}, 429, true},
		{"without nonce", policy.Decision{Outcome: policy.Deny, Code: policy.ValidationError}, 400, false},
		{"license sdk", policy.Decision{Outcome: policy.Deny, Code: policy.InvalidKey, Dialect: policy.License, SDKAuth: true, Nonce: "nonce-aaaaaaaaaaaaaaaa"}, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			d.Signer, d.SignedAt = sg, at
			dr := ToResponse(&d, "id").GetDeniedResponse()
			if int(dr.GetStatus().GetCode()) != tc.status {
				t.Fatalf("status %d, want %d", dr.GetStatus().GetCode(), tc.status)
			}
			nonce, echoed := headerOf(dr.GetHeaders(), "x-nonce")
			if echoed != tc.echo || nonce != d.Nonce && tc.echo {
				t.Fatalf("echo %q (%v), want %v", nonce, echoed, tc.echo)
			}
			ts, _ := headerOf(dr.GetHeaders(), "x-signature-timestamp")
			sig, _ := headerOf(dr.GetHeaders(), "x-signature")
			bodySum := sha256.Sum256([]byte(dr.GetBody()))
			canonical := fmt.Sprintf("gatehouse-v1\n%s\n%d\n%s\n%x", nonce, tc.status, "1767225600", bodySum)
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(canonical))
			if ts != "1767225600" || sig != hex.EncodeToString(m.Sum(nil)) {
				t.Fatalf("timestamp %q signature %q, want 1767225600 and the HMAC of %q", ts, sig, canonical)
			}
		})
	}
	d := policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited}
	if _, ok := headerOf(ToResponse(&d, "id").GetDeniedResponse().GetHeaders(), "x-signature"); ok {
		t.Fatal("a denial without a signer is signed")
	}
}

// TestSignedServedAnswer: an answer Gatehouse serves itself (a session exchange, the
// JWKS) on a signed app is a response the client receives like any other: the SDK
// checks its signature and nonce echo. It reaches the client as a local reply that no
// ext_proc stream sees, so Check signs it.
func TestSignedServedAnswer(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	sg, err := signature.New([]byte(secret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	const nonce, body = "nonce-bbbbbbbbbbbbbbbb", `{"token":"t"}`
	d := policy.Decision{Outcome: policy.Served, Direct: &policy.Direct{Status: 200, Body: []byte(body)},
		Nonce: nonce, Signer: sg, SignedAt: time.Unix(1767225600, 0)}
	dr := ToResponse(&d, "id").GetDeniedResponse()
	if dr.GetBody() != body || dr.GetStatus().GetCode() != 200 {
		t.Fatalf("served %d %q, want 200 %q", dr.GetStatus().GetCode(), dr.GetBody(), body)
	}
	echo, _ := headerOf(dr.GetHeaders(), "x-nonce")
	ts, _ := headerOf(dr.GetHeaders(), "x-signature-timestamp")
	sig, _ := headerOf(dr.GetHeaders(), "x-signature")
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "gatehouse-v1\n%s\n200\n1767225600\n%x", nonce, sha256.Sum256([]byte(body)))
	if echo != nonce || ts != "1767225600" || sig != hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("echo %q timestamp %q signature %q: not signed", echo, ts, sig)
	}
	d.Signer = nil
	if _, ok := headerOf(ToResponse(&d, "id").GetDeniedResponse().GetHeaders(), "x-signature"); ok {
		t.Fatal("a served answer without a signer is signed")
	}
}

package signature

import (
	"strings"
	"testing"
	"time"
)

// The README's worked example. The expected values were computed with coreutils and
// OpenSSL, not with this package:
//
//	printf '%s' '{"ok":true}' | sha256sum
//	printf 'gatehouse-v1\nQm9uam91ci1ub25jZS0x\n200\n1767225600\n%s' "$H" |
//	  openssl dgst -sha256 -hmac 'example-signing-secret-0123456789'
const (
	exSecret = "example-signing-secret-0123456789"
	exNonce  = "Qm9uam91ci1ub25jZS0x"
	exBody   = `{"ok":true}`
	exTS     = 1767225600
	exBodyH  = "4062edaf750fb8074e7e83e0c9028c94e32468a8b6f1614774328ef045150f93"
	exSig    = "9f096055824739fe69c6d04592f25605581b59536b48f3f15ed549ea31ef0373"
)

func TestWorkedExample(t *testing.T) {
	want := "gatehouse-v1\n" + exNonce + "\n200\n1767225600\n" + exBodyH
	if got := string(AppendCanonical(nil, exNonce, 200, exTS, []byte(exBody))); got != want {
		t.Fatalf("canonical %q, want %q", got, want)
	}
	s, err := New([]byte(exSecret), Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(exNonce, 200, exTS, []byte(exBody)); got != exSig {
		t.Fatalf("signature %s, want %s", got, exSig)
	}
	// An empty nonce and body: printf 'gatehouse-v1\n\n401\n1767225600\n<sha256 of "">' | openssl ...
	if got := s.Sign("", 401, exTS, nil); got != "0436003fefafd43216030c91f62e48b04ded49afb68c601bd6f2d9593523e45d" {
		t.Fatalf("empty: signature %s", got)
	}
	if _, err := Verify([]byte(exSecret), exNonce, 200, exTS, []byte(exBody), exSig); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRefusesChanges: any change to what is signed fails verification.
func TestVerifyRefusesChanges(t *testing.T) {
	for _, tc := range []struct {
		name      string
		secret    string
		nonce     string
		status    int
		ts        int64
		body, sig string
	}{
		{"secret", exSecret + "x", exNonce, 200, exTS, exBody, exSig},
		{"nonce", exSecret, exNonce + "A", 200, exTS, exBody, exSig},
		{"status", exSecret, exNonce, 201, exTS, exBody, exSig},
		{"timestamp", exSecret, exNonce, 200, exTS + 1, exBody, exSig},
		{"body", exSecret, exNonce, 200, exTS, exBody + " ", exSig},
		{"signature", exSecret, exNonce, 200, exTS, exBody, strings.ToUpper(exSig)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify([]byte(tc.secret), tc.nonce, tc.status, tc.ts, []byte(tc.body), tc.sig); err != ErrMismatch {
				t.Fatalf("err %v, want a mismatch", err)
			}
		})
	}
}

// TestNonceBounds: 16 to 128 characters of the nonce alphabet; an invalid nonce is
// neither echoed nor signed.
func TestNonceBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nonce string
		ok    bool
	}{
		{"15 chars", strings.Repeat("a", 15), false},
		{"16 chars", strings.Repeat("a", 16), true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"129 chars", strings.Repeat("a", 129), false},
		{"uuid", "2f1c3e8a-7b4d-4c1e-9a0f-3d5b6c7e8f90", true},
		{"base64", "Zm9vYmFyYmF6cXV4+/==", true},
		{"comma (two headers merged)", "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb", false},
		{"space", "aaaaaaaa aaaaaaaa", false},
		{"newline", "aaaaaaaa\naaaaaaaa", false},
		{"non-ascii", "aaaaaaaaaaaaaaaé", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidNonce(tc.nonce); got != tc.ok {
				t.Fatalf("valid %v, want %v", got, tc.ok)
			}
		})
	}
	s, _ := New([]byte(exSecret), Settings{})
	hs := s.AppendHeaders(nil, "bad nonce\r\nx: y", 200, time.Unix(exTS, 0), nil)
	if len(hs) != 2 || hs[0].Key != DefaultTimestampHeader || hs[1].Value != s.Sign("", 200, exTS, nil) {
		t.Fatalf("headers %v, want only the timestamp and a signature over an empty nonce", hs)
	}
}

func TestSecretBound(t *testing.T) {
	if _, err := New([]byte(strings.Repeat("k", MinSecret-1)), Settings{}); err == nil {
		t.Fatal("a 31-byte secret was accepted")
	}
	if _, err := New([]byte(strings.Repeat("k", MinSecret)), Settings{}); err != nil {
		t.Fatal(err)
	}
}

package login_test

import (
	"encoding/json"
	"testing"

	"github.com/gatehouse/gatehouse/policy/login"
)

// FuzzFromJSON: any body is read without a panic; an account is found only in a valid
// JSON document, and it is the value encoding/json reads there when the key is unique.
func FuzzFromJSON(f *testing.F) {
	for _, s := range []string{`{"email":"a@x"}`, `{"email":"a","email":"b"}`, `{"user":{"email":"a"}}`,
		`[[[[[]]]]]`, `{"email":"\ud800"}`, `{"a":[1,2,{"b":null}],"email":"x"}`, `"email"`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := login.FromJSON(body, []string{"email"})
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("account %q read from invalid JSON %q", v, body)
		}
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			if got, ok := m["email"].(string); ok && got != v {
				t.Fatalf("read %q, encoding/json reads %q", v, got)
			}
		}
	})
}

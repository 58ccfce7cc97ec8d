package session_test

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// FuzzVerifySession: no token, however broken, panics or passes unless it is the one
// Gatehouse signed; every refusal is a catalogue code.
func FuzzVerifySession(f *testing.F) {
	m := manager(f, keySet(f, "k1", ecKey(f, "k1")), records())
	tk := start(f, m, "a", "dev-1", "")
	f.Add(tk.Session)
	f.Add(strings.Replace(tk.Session, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		o := m.VerifySession(ctx, t0, "a", tok)
		switch {
		case tok == tk.Session:
			if o.Code != "" || o.DeviceID != "dev-1" {
				t.Fatalf("the real token: %+v", o)
			}
		case o.Code == "" && o.Err == nil:
			t.Fatalf("accepted %q: %+v", tok, o)
		case o.Code != "":
			if _, ok := policy.Lookup(o.Code); !ok {
				t.Fatalf("code %q not in the catalogue", o.Code)
			}
		}
	})
}

package policy

import "testing"

// TestWrongCredentialEveryCode decides, for every code of the catalogue at every step,
// whether the refusal counts towards a lockout. The counted set is typed by hand, with
// the reason; every other code must not count.
func TestWrongCredentialEveryCode(t *testing.T) {
	counted := map[Code]string{
		Unauthorized:       "no or an unknown API key (app step only)",
		AppNotFound:        "an unknown app token",
		InvalidToken:       "a user JWT that does not verify",
		InvalidKey:         "an unknown license key",
		LicenseRevoked:     "a revoked (leaked, replayed) license key",
		HWIDMismatch:       "a license used beyond its devices, or a device header contradicting the attestation",
		InvalidAttestation: "an attestation that does not parse or names an unknown key",
		AttestationFailed:  "an attestation with a bad signature, audience or binding",
	}
	steps := []Step{StepApp, StepEndpoint, StepNetwork, StepIdentity, StepAttest, StepLicense, StepPayload, StepLimits, StepSecrets}
	if len(catalogue) < 50 {
		t.Fatalf("catalogue has %d codes: not the full table", len(catalogue))
	}
	for _, e := range catalogue {
		for _, s := range steps {
			_, want := counted[e.Code]
			if e.Code == Unauthorized && s != StepApp {
				want = false // past the app step: a missing user token, which honest clients send too
			}
			if got := wrongCredential(s, e.Code); got != want {
				t.Errorf("%s at step %s: counted %v, want %v", e.Code, s, got, want)
			}
		}
	}
	for c := range counted {
		if _, ok := Lookup(c); !ok {
			t.Errorf("%s is not in the catalogue", c)
		}
	}
}

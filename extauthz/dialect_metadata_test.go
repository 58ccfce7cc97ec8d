package extauthz

import (
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestDialectMetadata checks that every answer names, in its dynamic metadata, the dialect the
// client is spoken to in: Envoy's local_reply_config selects its mappers on this key, so that
// Envoy's own failures after Check (upstream timeouts, resets...) use the app's format.
func TestDialectMetadata(t *testing.T) {
	cases := []struct {
		name string
		d    policy.Decision
		want string // spelled as in the seeds' dialect names, typed here by hand
	}{
		{"allowed, default dialect", policy.Decision{Outcome: policy.Allow, App: "a"}, "protectmyapi"},
		{"allowed, protekt", policy.Decision{Outcome: policy.Allow, App: "a", Dialect: policy.Protekt}, "protekt"},
		{"allowed, license", policy.Decision{Outcome: policy.Allow, App: "a", Dialect: policy.License}, "license"},
		{"allowed, generic", policy.Decision{Outcome: policy.Allow, App: "a", Dialect: policy.Generic}, "generic"},
		{"denied, generic", policy.Decision{Outcome: policy.Deny, Code: policy.Unauthorized, Dialect: policy.Generic}, "generic"},
		{"denied before the app is known", policy.Decision{Outcome: policy.Deny, Code: policy.AppNotFound}, "protectmyapi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := ToResponse(&tc.d, "id-1").GetDynamicMetadata().GetFields()
			if got := md["dialect"].GetStringValue(); got != tc.want {
				t.Errorf("metadata dialect %q, want %q", got, tc.want)
			}
		})
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadAppAttestConfigs: one file per validation rule of the app_attest provider, with
// the message it must produce (also in the file's first line).
func TestBadAppAttestConfigs(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"missing", "apps[0].attestation.providers[0].app_attest: is required for type app_attest"},
		{"app_id", "apps[0].attestation.providers[0].app_attest.app_id: must be TEAMID.BUNDLEID (a 10-character team id)"},
		{"environment", "apps[0].attestation.providers[0].app_attest.environment: want production or development"},
		{"key_ttl", "apps[0].attestation.providers[0].app_attest.key_ttl: must be between 1h0m0s and 9600h0m0s"},
		{"challenge_ttl", "apps[0].attestation.providers[0].app_attest.challenge_ttl: must be between 1s and 1h0m0s"},
		{"unused", "apps[0].attestation.providers[0].allow_emulator: not used by type app_attest"},
		{"same_header", "apps[0].attestation.providers[0].header: must differ from the key id and binding headers"},
		{"root_missing", "apps[0].attestation.providers[0].app_attest.root_ca_file: cannot read the file"},
		{"not_for_type", "apps[0].attestation.providers[0].app_attest: only for type app_attest"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "appattest", tc.file+".yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "# Expected: "+tc.want) {
				t.Errorf("%s does not document its expected message", path)
			}
			_, err = Load(path, Deps{Offline: true, LookupEnv: func(string) (string, bool) { return strings.Repeat("A", 44), true }})
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("errors:\n%v\nwant exactly one containing %q", err, tc.want)
			}
		})
	}
}

// TestGoodAppAttestConfig: every key of the provider compiles, and the provider hands
// out its keys.
func TestGoodAppAttestConfig(t *testing.T) {
	snap, err := Load(filepath.Join("testdata", "appattest", "good.yaml"), Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if app, _ := snap.Rules.App("a"); app.Device == nil {
		t.Fatal("no device checker")
	}
}

package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// offlineConfig names files that are not present: an Approov secret, a block list, a
// JSON schema, TLS material and a rate-limit file. %s is their directory.
const offlineConfig = `server:
  tls: {cert_file: %s/tls.crt, key_file: %s/tls.key}
apps:
  - name: a
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767]
    endpoints: ["*"]
    network: {block_file: %s/blocked.txt}
    attestation:
      providers:
        - {type: approov, secret_file: %s/approov.key}
endpoints:
  - {name: e, path: /e, payload: {json_schema_file: %s/schema.json}}
rate_limit_service:
  files: [%s/domain.yaml]
`

// TestMissingFilesOK: with MissingFilesOK, each absent file is a warning naming its
// key, and the configuration loads; without it, the same configuration is rejected.
func TestMissingFilesOK(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "not-mounted")
	path := filepath.Join(dir, "config.yaml")
	write(t, path, strings.ReplaceAll(offlineConfig, "%s", gone))

	if _, err := Load(path, Deps{Offline: true}); err == nil {
		t.Fatal("plain load accepted absent files")
	}
	deps := Deps{Offline: true, MissingFilesOK: true}
	s, err := Load(path, deps)
	if err != nil {
		t.Fatalf("offline load rejected:\n%v", err)
	}
	want := []string{
		"apps[0].attestation.providers[0].secret_file: " + gone + "/approov.key is not present here; its content was not checked",
		"apps[0].network.block_file: " + gone + "/blocked.txt is not present here; its content was not checked",
		"endpoints[0].payload.json_schema_file: " + gone + "/schema.json is not present here; its content was not checked",
		"rate_limit_service.files[0]: " + gone + "/domain.yaml is not present here; its content was not checked",
		"server.tls.cert_file: " + gone + "/tls.crt is not present here; its content was not checked",
		"server.tls.key_file: " + gone + "/tls.key is not present here; its content was not checked",
	}
	got := slices.Clone(s.Warnings)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMissingFilesOKStaysStrict: absent files are forgiven, nothing else: a real
// problem, a present file with bad content, and an unknown key still fail.
func TestMissingFilesOKStaysStrict(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "not-mounted")
	base := strings.ReplaceAll(offlineConfig, "%s", gone)
	bad := filepath.Join(dir, "bad.txt")
	write(t, bad, "not-an-address\n")
	for _, tc := range []struct{ name, cfg, want string }{
		{"unknown method", strings.Replace(base, "path: /e,", "path: /e, methods: [FETCH],", 1), `endpoints[0].methods[0]: unknown HTTP method "FETCH"`},
		{"present bad file", strings.Replace(base, gone+"/blocked.txt", bad, 1), "apps[0].network.block_file: " + bad + " line 1"},
		{"unknown key", base + "bogus: 1\n", "bogus: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "config.yaml")
			write(t, path, tc.cfg)
			_, err := Load(path, Deps{Offline: true, MissingFilesOK: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestMissingFilesOKPattern: a rate-limit file pattern whose directory is absent (a
// ConfigMap mounted only in the cluster) is a warning with MissingFilesOK, as a file name
// there is; a pattern in a present directory that matches nothing is still refused, and
// without MissingFilesOK the absent directory is refused too.
func TestMissingFilesOKPattern(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "not-mounted", "ratelimit", "*.yaml")
	empty := filepath.Join(dir, "*.rls")
	path := filepath.Join(dir, "config.yaml")
	cfg := func(pattern string) string {
		return "endpoints:\n  - {name: e, path: /e}\nrate_limit_service:\n  files: [\"" + pattern + "\"]\n"
	}
	write(t, path, cfg(gone))
	s, err := Load(path, Deps{Offline: true, MissingFilesOK: true})
	if err != nil {
		t.Fatalf("offline load of a pattern in an absent directory rejected:\n%v", err)
	}
	want := []string{"rate_limit_service.files[0]: " + gone + " is not present here; its content was not checked"}
	if !slices.Equal(s.Warnings, want) {
		t.Fatalf("warnings %q, want %q", s.Warnings, want)
	}
	if _, err := Load(path, Deps{Offline: true}); err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Fatalf("plain load: %v, want a refusal (matches no file)", err)
	}
	write(t, path, cfg(empty))
	if _, err := Load(path, Deps{Offline: true, MissingFilesOK: true}); err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Fatalf("offline load of a pattern matching nothing in a present directory: %v, want a refusal", err)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// offlineSecretConfig names an Approov secret mounted at start-up but absent in CI.
const offlineSecretConfig = `apps:
  - name: a
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: approov, secret_file: /run/secrets/gatehouse-test-absent/approov.key}
endpoints:
  - {name: e, path: /e%s}
`

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = int(ee)
	default:
		code = 1
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

// TestValidateOffline: a missing secret file fails plain validate, passes --offline
// with the file listed as a warning; a real error still fails --offline.
func TestValidateOffline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(extra string) {
		if err := os.WriteFile(path, []byte(strings.Replace(offlineSecretConfig, "%s", extra, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	const warning = "warning: apps[0].attestation.providers[0].secret_file: /run/secrets/gatehouse-test-absent/approov.key is not present here; its content was not checked"

	code, _, stderr := runCLI("validate", "--config", path)
	if code != 1 || !strings.Contains(stderr, "apps[0].attestation.providers[0].secret_file: cannot read the secret") {
		t.Fatalf("plain validate: exit %d, stderr:\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI("validate", "--offline", "--config", path)
	if code != 0 || !strings.Contains(stderr, warning) || !strings.Contains(stdout, "OK") {
		t.Fatalf("validate --offline: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	write(", methods: [FETCH]")
	code, _, stderr = runCLI("validate", "--offline", "--config", path)
	if code != 1 || !strings.Contains(stderr, `endpoints[0].methods[0]: unknown HTTP method "FETCH"`) {
		t.Fatalf("validate --offline of a bad configuration: exit %d, stderr:\n%s", code, stderr)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttestVerifyAppAttestFileBound: FILE is read up to 65536 bytes (base64 of the
// largest attestation object, 16 KiB, with room for line breaks), like the Play Integrity
// verifier's; a larger file is refused at the size check without being read whole (a
// device file or a huge capture would otherwise be read until memory runs out). Up to the
// bound, the object's own 16 KiB bound refuses these (raw, not base64) contents.
func TestAttestVerifyAppAttestFileBound(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size int
		want string
	}{
		{65535, "  FAIL  size: attestation object too large\n"},
		{65536, "  FAIL  size: attestation object too large\n"},
		{65537, "  FAIL  size: FILE is larger than 65536 bytes\n"},
	} {
		name := filepath.Join(dir, "obj")
		body := "!" + strings.Repeat("A", tc.size-1) // '!': not base64, the bytes are the object
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(append(appleSample, name)...)
		if code != 1 || !strings.Contains(stdout, tc.want) || !strings.Contains(stdout, "verdict: REFUSED INVALID_ATTESTATION") {
			t.Fatalf("%d bytes: exit %d, want 1 and %q\n%s%s", tc.size, code, tc.want, stdout, stderr)
		}
	}
}

// TestAttestVerifyAppAttestRootBound: --root is read up to 1 MiB, as every file the
// configuration names; a larger one is bad usage (exit 2) whatever it holds.
func TestAttestVerifyAppAttestRootBound(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size int
		want string
	}{
		{1 << 20, "no PEM certificate in the file"},
		{1<<20 + 1, "cannot read the file"},
	} {
		name := filepath.Join(dir, "root.pem")
		if err := os.WriteFile(name, []byte(strings.Repeat("x", tc.size)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(append(appleSample, "--root", name, appleSampleFile)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Fatalf("%d bytes: exit %d, want 2 and %q\n%s%s", tc.size, code, tc.want, stdout, stderr)
		}
	}
}

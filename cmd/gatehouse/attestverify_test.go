package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestAttestVerifyDispatch: `attest verify` finds --type wherever it is, hands the other
// arguments to that type's verifier in order, and passes its exit status through; a
// missing or unknown type, or another subcommand, is a usage error (2).
func TestAttestVerifyDispatch(t *testing.T) {
	var got []string
	attestVerifiers["test-kind"] = attestVerifier{synopsis: "for tests", verify: func(args []string, stdout, _ io.Writer) error {
		got = args
		fmt.Fprintln(stdout, "verdict")
		if len(args) > 0 && args[len(args)-1] == "bad" {
			return exitError(1)
		}
		return nil
	}}
	t.Cleanup(func() { delete(attestVerifiers, "test-kind") })
	for _, tc := range []struct {
		name string
		args []string
		code int
		rest string
		err  string
	}{
		{"type first", []string{"attest", "verify", "--type", "test-kind", "--a", "1", "f"}, 0, "--a 1 f", ""},
		{"type last flag", []string{"attest", "verify", "--a", "1", "--type=test-kind", "f"}, 0, "--a 1 f", ""},
		{"single dash", []string{"attest", "verify", "-type", "test-kind", "f"}, 0, "f", ""},
		{"not verified", []string{"attest", "verify", "--type", "test-kind", "bad"}, 1, "bad", ""},
		{"no type", []string{"attest", "verify", "f"}, 2, "", "--type is required"},
		{"type without value", []string{"attest", "verify", "f", "--type"}, 2, "", "--type is required"},
		{"unknown type", []string{"attest", "verify", "--type", "x<script>", "f"}, 2, "", "unknown --type"},
		{"no subcommand", []string{"attest"}, 2, "", "usage: gatehouse attest verify"},
		{"other subcommand", []string{"attest", "sign"}, 2, "", "unknown subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			code, _, stderr := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if tc.err != "" && !strings.Contains(stderr, tc.err) {
				t.Fatalf("stderr %q, want %q", stderr, tc.err)
			}
			if strings.Contains(stderr, "x<script>") {
				t.Fatalf("stderr echoes the argument: %q", stderr)
			}
			if tc.err == "" && strings.Join(got, " ") != tc.rest {
				t.Fatalf("verifier got %q, want %q", got, tc.rest)
			}
		})
	}
}

// TestAttestHelp: --help at each level prints a usage on stdout and exits 0.
func TestAttestHelp(t *testing.T) {
	for _, args := range [][]string{{"attest", "--help"}, {"attest", "-h"}, {"attest", "verify", "--help"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || !strings.HasPrefix(stdout, "usage: gatehouse attest verify") || stderr != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	if _, stdout, _ := runCLI("--help"); !strings.Contains(stdout, "attest verify --type TYPE FILE") {
		t.Fatalf("gatehouse --help does not list attest: %q", stdout)
	}
}

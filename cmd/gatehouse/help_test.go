package main

import (
	"strings"
	"testing"
)

// TestHelpOnEverySubcommand: --help and -h print the subcommand's usage on stdout and
// exit 0, for every subcommand (typed by hand: a new one must be added here).
func TestHelpOnEverySubcommand(t *testing.T) {
	for _, tc := range []struct{ cmd, usage string }{
		{"serve", "usage: gatehouse serve"},
		{"validate", "usage: gatehouse validate"},
		{"check", "usage: gatehouse check"},
		{"hash", "usage: gatehouse hash"},
		{"demo-token", "usage: gatehouse demo-token"},
		{"probe", "usage: gatehouse probe"},
		{"attest", "usage: gatehouse attest verify"},
		{"version", "usage: gatehouse version"},
		{"help", "usage: gatehouse <command>"},
	} {
		for _, flag := range []string{"--help", "-h", "-help"} {
			t.Run(tc.cmd+flag, func(t *testing.T) {
				code, stdout, stderr := runCLI(tc.cmd, flag)
				if code != 0 {
					t.Fatalf("exit %d, want 0\nstderr:\n%s", code, stderr)
				}
				if !strings.HasPrefix(stdout, tc.usage) {
					t.Fatalf("stdout %q, want it to start with %q", stdout, tc.usage)
				}
				if stderr != "" {
					t.Fatalf("stderr %q, want nothing", stderr)
				}
			})
		}
	}
}

// TestBadFlagOnEverySubcommand: an unknown flag still exits 2 with the usage on stderr,
// so that a typo in a script is not taken for success.
func TestBadFlagOnEverySubcommand(t *testing.T) {
	for _, cmd := range []string{"serve", "validate", "check", "hash", "demo-token", "probe", "version"} {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runCLI(cmd, "--no-such-flag")
			if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -no-such-flag") || stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and the error on stderr", code, stdout, stderr)
			}
		})
	}
}

package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

const attestUsage = `usage: gatehouse attest verify --type TYPE [flags] FILE

Checks one attestation proof from FILE offline and prints the verdict and every check
made, so that a developer can see why a device was refused. Exit status: 0 verified,
1 not verified, 2 bad usage.

types:
%s
Run "gatehouse attest verify --type TYPE --help" for the flags of one type.
`

// attestVerifier checks one proof from its command-line arguments (those after
// --type TYPE), prints the verdict and each check on stdout, and returns the exit status:
// 0 verified, 1 not verified, 2 bad usage (0 for --help).
type attestVerifier struct {
	synopsis string
	verify   func(args []string, stdout, stderr io.Writer) error // nil: verified; exitError otherwise
}

// attestVerifiers holds one entry per proof type of `gatehouse attest verify`. Each type
// lives in its own file (attestverify_<type>.go), which registers it from an init func:
//
//	func init() { attestVerifiers["play-integrity"] = attestVerifier{"...", verifyPlayIntegrity} }
var attestVerifiers = map[string]attestVerifier{}

// attestCommand runs `gatehouse attest verify --type TYPE ...`.
func attestCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, attestHelp())
		return exitError(2)
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stdout, attestHelp())
		return errHelp
	}
	if args[0] != "verify" {
		fmt.Fprintf(stderr, "gatehouse attest: unknown subcommand (want verify)\n\n%s", attestHelp())
		return exitError(2)
	}
	typ, rest, ok := splitType(args[1:])
	if !ok {
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprint(stdout, attestHelp())
			return errHelp
		}
		fmt.Fprintf(stderr, "gatehouse attest verify: --type is required\n\n%s", attestHelp())
		return exitError(2)
	}
	v, found := attestVerifiers[typ]
	if !found {
		fmt.Fprintf(stderr, "gatehouse attest verify: unknown --type (want one of %s)\n", strings.Join(attestTypes(), ", "))
		return exitError(2)
	}
	return v.verify(rest, stdout, stderr)
}

// splitType takes --type TYPE (or --type=TYPE, -type) out of args, wherever it is
// before a lone "--".
func splitType(args []string) (typ string, rest []string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "type" {
			continue
		}
		rest = append(append(rest, args[:i]...), args[i+1:]...)
		if hasVal {
			return val, rest, true
		}
		if i+1 >= len(args) {
			return "", rest, false
		}
		rest = append(append([]string(nil), args[:i]...), args[i+2:]...)
		return args[i+1], rest, true
	}
	return "", args, false
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func attestTypes() []string {
	types := make([]string, 0, len(attestVerifiers))
	for t := range attestVerifiers {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

func attestHelp() string {
	var b strings.Builder
	for _, t := range attestTypes() {
		fmt.Fprintf(&b, "  %-15s %s\n", t, attestVerifiers[t].synopsis)
	}
	return fmt.Sprintf(attestUsage, b.String())
}

// verifyUsage is what the flag checks of every `attest verify` type share: the flags
// given, the one FILE, and the problems found, all reported in one line.
type verifyUsage struct {
	set      map[string]bool // flags given on the command line
	file     string
	problems []string
}

// checkUsage starts the checks of fs's parsed flags: exactly one FILE is a problem to
// report like any other.
func checkUsage(fs *flag.FlagSet) *verifyUsage {
	u := &verifyUsage{set: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { u.set[f.Name] = true })
	if fs.NArg() != 1 {
		u.bad("want exactly one FILE")
	} else {
		u.file = fs.Arg(0)
	}
	return u
}

func (u *verifyUsage) bad(s string) { u.problems = append(u.problems, s) }

// err reports the problems found on stderr, with exit status 2; nil when there are none.
func (u *verifyUsage) err(stderr io.Writer) error {
	if len(u.problems) == 0 {
		return nil
	}
	fmt.Fprintf(stderr, "gatehouse attest verify: %s\n", strings.Join(u.problems, "; "))
	return exitError(2)
}

// Command gatehouse is the Gatehouse server and its tools.
//
//	gatehouse serve    --config F | --demo [--grpc-addr :9191] [--admin-addr :9192]
//	gatehouse validate [--offline] --config F
//	gatehouse check    [--config F] [-X METHOD] [-H 'name: value']... [-d BODY] PATH
//	gatehouse hash     (reads a credential on stdin, prints its SHA-256 for the config)
//	gatehouse demo-token [--device ID] [--emulator] [--expired] [--tampered]
//	gatehouse probe    [--admin http://host:9192] [--addr host:9191] [--check-path /p]
//	gatehouse attest verify --type TYPE [flags] FILE
//	gatehouse version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(1)
	}
}

// exitError is an exit status whose message was already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const usage = `usage: gatehouse <command> [flags]

commands:
  serve      run the server: --config FILE, or --demo for the embedded demo configuration
             (it trusts a public demo key: never in production)
  validate   check a configuration file the way a reload does; exits 1 with every problem
             (--offline: absent secret files are warnings, for CI)
  check      explain one request offline: decision, code, status, headers and body
  hash       read a credential on stdin and print the SHA-256 digest the config wants
  demo-token print an attestation token signed with the demo key (for GET /v1/secure)
  probe      check a running server over the network: /healthz, /readyz, gRPC health, a Check
  attest     attest verify --type TYPE FILE: check one device attestation proof offline and
             print every check made (exit 0 only when verified)
  version    print the version, commit, build date and Go version
`

// run is the whole program; ctx ends on SIGTERM or SIGINT.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	err := runCommand(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "check":
		return check(ctx, args[1:], stdout, stderr)
	case "hash":
		if err := noFlags("hash", "hash < credential\n\nReads a credential on stdin and prints the SHA-256 digest the configuration wants.", args[1:], stdout, stderr); err != nil {
			return err
		}
		return hash(stdin, stdout)
	case "demo-token":
		return demoToken(args[1:], stdout, stderr)
	case "probe":
		return probe(ctx, args[1:], stdout, stderr)
	case "attest":
		return attestCommand(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		if err := noFlags("version", "version", args[1:], stdout, stderr); err != nil {
			return err
		}
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
	return exitError(2)
}

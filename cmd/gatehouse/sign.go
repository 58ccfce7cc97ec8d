package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/signature"
)

const signUsage = "sign verify --secret-file F --nonce N --status S --timestamp T --signature HEX [--body-file F]\n\n" +
	"Checks a captured signed response offline: exits 0 when the signature verifies, 1 when it does not\n" +
	"(printing what it computed), 2 on bad input. Without --body-file the body is empty."

// signCmd runs `gatehouse sign verify`.
func signCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(stdout, "usage: gatehouse %s\n", signUsage)
			return nil
		}
		fmt.Fprintf(stderr, "usage: gatehouse %s\n", signUsage)
		return exitError(2)
	}
	fs := newFlags("sign verify", signUsage[len("sign verify "):])
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gatehouse %s\n\nflags:\n", signUsage)
		fs.PrintDefaults()
	}
	secretFile := fs.String("secret-file", "", "file holding the signing secret (one trailing newline is dropped, as the server does)")
	nonce := fs.String("nonce", "", "the nonce the request sent (empty when it sent none)")
	status := fs.String("status", "", "the HTTP status of the response")
	ts := fs.String("timestamp", "", "the timestamp header of the response (Unix seconds)")
	sig := fs.String("signature", "", "the signature header of the response")
	bodyFile := fs.String("body-file", "", "file holding the exact body bytes of the response")
	if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
		return err
	}
	in, err := readSignInput(*secretFile, *status, *ts, *bodyFile)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse sign verify: %v\n", err)
		return exitError(2)
	}
	return printVerify(stdout, in, *nonce, *sig)
}

// signInput is a captured response, read and parsed.
type signInput struct {
	secret, body []byte
	status       int
	ts           int64
}

func readSignInput(secretFile, status, ts, bodyFile string) (signInput, error) {
	var in signInput
	var err error
	if secretFile == "" {
		return in, errors.New("--secret-file is required")
	}
	if in.secret, err = config.ReadFile(secretFile, config.MaxFileBytes); err != nil {
		return in, fmt.Errorf("--secret-file: cannot read %s", secretFile)
	}
	if n := len(in.secret); n > 0 && in.secret[n-1] == '\n' {
		in.secret = in.secret[:n-1]
	}
	if in.status, err = strconv.Atoi(status); err != nil || in.status < 100 || in.status > 999 {
		return in, errors.New("--status: want an HTTP status, e.g. 200")
	}
	if in.ts, err = strconv.ParseInt(ts, 10, 64); err != nil {
		return in, errors.New("--timestamp: want Unix seconds, e.g. 1767225600")
	}
	if bodyFile != "" {
		if in.body, err = os.ReadFile(bodyFile); err != nil {
			return in, fmt.Errorf("--body-file: cannot read %s", bodyFile)
		}
	}
	return in, nil
}

var lowerHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// printVerify prints what was computed and whether it verifies.
func printVerify(w io.Writer, in signInput, nonce, sig string) error {
	sum := sha256.Sum256(in.body)
	canonical := signature.AppendCanonical(nil, nonce, in.status, in.ts, in.body)
	want, err := signature.Verify(in.secret, nonce, in.status, in.ts, in.body, sig)
	fmt.Fprintf(w, "body:       %d bytes, SHA-256 %s\ncanonical:  %q\ncomputed:   %s\nreceived:   %s\n",
		len(in.body), hex.EncodeToString(sum[:]), canonical, want, sig)
	if err == nil {
		fmt.Fprintln(w, "OK: the signature verifies")
		return nil
	}
	fmt.Fprintln(w, "MISMATCH: the signature does not verify")
	switch {
	case !lowerHex64.MatchString(sig):
		fmt.Fprintln(w, "  the received signature is not 64 lowercase hex digits")
	case nonce != "" && !signature.ValidNonce(nonce):
		fmt.Fprintln(w, "  the nonce is not one Gatehouse accepts: it signs such responses with an empty nonce")
	default:
		fmt.Fprintln(w, "  the secret, nonce, status, timestamp or body differs from what was signed")
	}
	return exitError(1)
}

package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
)

func init() {
	attestVerifiers["app-attest"] = attestVerifier{"an Apple App Attest attestation object", verifyAppAttest}
}

const appAttestSynopsis = `attest verify --type app-attest --app-id TEAMID.BUNDLEID --key-id BASE64
       (--challenge STRING | --client-data-hash BASE64) [--env production|development]
       [--at RFC3339] [--root PEM] FILE

Verifies an App Attest attestation object (FILE: the raw CBOR, or its base64) the way
enrolment does, and prints every check. --challenge hashes the string with SHA-256, as
apps do; --client-data-hash takes the bytes as they are. --at sets the verification time:
the certificates of captured samples expire after three days.`

// appAttestArgs are the parsed flags of `attest verify --type app-attest`.
type appAttestArgs struct {
	params   appattest.Params
	keyID    []byte
	cdh      []byte
	at       time.Time
	fileName string
}

// verifyAppAttest runs `gatehouse attest verify --type app-attest`.
func verifyAppAttest(args []string, stdout, stderr io.Writer) error {
	a, err := parseAppAttestArgs(args, stdout, stderr)
	if err != nil {
		return err // a bad flag's exit status, or --help
	}
	obj, err := readProof(a.fileName)
	if err != nil && !errors.Is(err, config.ErrTooLarge) {
		fmt.Fprintf(stderr, "gatehouse attest verify: %v\n", err)
		return exitError(2)
	}
	fmt.Fprintf(stdout, "App Attest attestation, app id %s, %s, at %s\n", a.params.AppID, a.params.Env, a.at.Format(time.RFC3339))
	var got *appattest.Attested
	var verr error
	if err != nil {
		verr = &appattest.Error{Step: appattest.StepSize, Code: policy.InvalidAttestation,
			Msg: fmt.Sprintf("FILE is larger than %d bytes", maxProofFileBytes)}
	} else {
		got, verr = appattest.VerifyAttestation(obj, a.keyID, a.cdh, a.params, a.at)
	}
	printSteps(stdout, appattest.AttestationSteps, verr)
	if verr != nil {
		var e *appattest.Error
		errors.As(verr, &e)
		fmt.Fprintf(stdout, "verdict: REFUSED %s\n", e.Code)
		return exitError(1)
	}
	fmt.Fprintf(stdout, "key id:  %s\nreceipt: %d bytes\nverdict: VERIFIED\n", base64.StdEncoding.EncodeToString(got.KeyID[:]), len(got.Receipt))
	return nil
}

// printSteps prints each check: ok before the failing one, FAIL with its reason, then
// "-" for those not reached.
func printSteps(w io.Writer, steps []appattest.Step, err error) {
	var e *appattest.Error
	errors.As(err, &e)
	reached := true
	for _, s := range steps {
		switch {
		case !reached:
			fmt.Fprintf(w, "  -     %s (not checked)\n", s)
		case e != nil && e.Step == s:
			fmt.Fprintf(w, "  FAIL  %s: %s\n", s, e.Msg)
			reached = false
		default:
			fmt.Fprintf(w, "  ok    %s\n", s)
		}
	}
}

func parseAppAttestArgs(args []string, stdout, stderr io.Writer) (appAttestArgs, error) {
	var a appAttestArgs
	fs := newFlags("attest verify --type app-attest", appAttestSynopsis)
	appID := fs.String("app-id", "", "`TEAMID.BUNDLEID` the key was attested for")
	keyID := fs.String("key-id", "", "the key id, `BASE64` (standard or URL alphabet)")
	challenge := fs.String("challenge", "", "the server's challenge `STRING`; its SHA-256 is the clientDataHash")
	cdh := fs.String("client-data-hash", "", "the clientDataHash as `BASE64`, used as it is")
	env := fs.String("env", "production", "`production` or development: the aaguid accepted")
	at := fs.String("at", "", "verification time, `RFC3339` (default now)")
	root := fs.String("root", "", "trust this `PEM` root instead of Apple's App Attestation Root CA")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return a, err
	}
	u := checkUsage(fs)
	set, bad := u.set, u.bad
	a.fileName = u.file
	if !strings.Contains(*appID, ".") {
		bad("--app-id must be TEAMID.BUNDLEID")
	}
	a.params.AppID = *appID
	var err error
	if a.keyID, err = decodeB64(*keyID); err != nil || len(a.keyID) != sha256.Size {
		bad("--key-id must be the base64 of 32 bytes")
	}
	switch {
	case set["challenge"] == set["client-data-hash"]:
		bad("give one of --challenge and --client-data-hash")
	case set["challenge"]:
		h := sha256.Sum256([]byte(*challenge))
		a.cdh = h[:]
	default:
		if a.cdh, err = decodeB64(*cdh); err != nil || len(a.cdh) == 0 {
			bad("--client-data-hash must be base64")
		}
	}
	if a.params.Env, err = appattest.ParseEnv(*env); err != nil {
		bad("--env: " + err.Error())
	}
	a.at = time.Now()
	if *at != "" {
		if a.at, err = time.Parse(time.RFC3339, *at); err != nil {
			bad("--at must be an RFC 3339 time")
		}
	}
	if *root != "" {
		if a.params.Roots, err = readRoot(*root); err != nil {
			bad("--root: " + err.Error())
		}
	}
	return a, u.err(stderr)
}

// decodeB64 reads standard or URL-alphabet base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// readProof reads FILE, up to maxProofFileBytes (config.ErrTooLarge beyond): its base64
// when the whole file is base64 text, else its bytes.
func readProof(name string) ([]byte, error) {
	b, err := config.ReadFile(name, maxProofFileBytes)
	if errors.Is(err, config.ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, errors.New("cannot read FILE")
	}
	if dec, err := decodeB64(strings.Join(strings.Fields(string(b)), "")); err == nil && len(dec) > 0 {
		return dec, nil
	}
	return b, nil
}

// readRoot reads a PEM root file of at most config.MaxFileBytes.
func readRoot(name string) (*x509.CertPool, error) {
	b, err := config.ReadFile(name, config.MaxFileBytes)
	if err != nil {
		return nil, errors.New("cannot read the file")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

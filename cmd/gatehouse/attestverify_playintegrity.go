package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
)

func init() {
	attestVerifiers["play-integrity"] = attestVerifier{"a Google Play Integrity token", verifyPlayIntegrity}
}

const playIntegritySynopsis = `attest verify --type play-integrity --package NAME --decryption-key FILE
       --verification-key FILE [--request-hash B64 | --nonce STRING] [--at RFC3339]
       [--max-age 5m] [--leeway 30s] [--min-device-level basic|device|strong]
       [--allow-emulator] [--allow-unrecognized-version] [--signing-cert HEX,...]
       [--require-licensed] [--play-protect VERDICT,...] FILE

Decrypts and verifies a Play Integrity token (FILE: the token as the app received it)
with the app's keys from the Play Console (the base64 decryption key; the verification
key as base64 DER or PEM), then prints every check with the policy given by the flags,
which mirror the play_integrity provider's settings. --request-hash or --nonce is the
value the token must carry as requestHash or nonce; without either the binding is not
checked. --at sets the verification time (default now).`

// maxProofFileBytes bounds FILE: a larger token is refused as the provider refuses one
// over max_token_bytes.
const maxProofFileBytes = 65536

// playIntegrityArgs are the parsed flags of `attest verify --type play-integrity`.
type playIntegrityArgs struct {
	keys           playintegrity.Keys
	pol            playintegrity.Policy
	binding, field string // the expected requestHash or nonce, and which
	at             time.Time
	maxAge, leeway time.Duration
	fileName       string
}

// verifyPlayIntegrity runs `gatehouse attest verify --type play-integrity`.
func verifyPlayIntegrity(args []string, stdout, stderr io.Writer) error {
	a, err := parsePlayIntegrityArgs(args, stdout, stderr)
	if err != nil {
		return err // a bad flag's exit status, or --help
	}
	b, err := config.ReadFile(a.fileName, maxProofFileBytes)
	if err != nil && !errors.Is(err, config.ErrTooLarge) {
		fmt.Fprintln(stderr, "gatehouse attest verify: cannot read FILE")
		return exitError(2)
	}
	fmt.Fprintf(stdout, "Play Integrity token, package %s, at %s\n", a.pol.PackageName, a.at.Format(time.RFC3339Nano))
	tok := strings.TrimSpace(string(b))
	if errors.Is(err, config.ErrTooLarge) {
		return piRefuse(stdout, fmt.Sprintf("size: larger than %d bytes", maxProofFileBytes), "INVALID_ATTESTATION")
	}
	p, derr := playintegrity.Decode(tok, a.keys)
	if derr != nil {
		return piRefuse(stdout, "decrypt (A256KW, A256GCM) and verify (ES256): "+derr.Reason, string(derr.Code))
	}
	fmt.Fprintf(stdout, "  ok    decrypt (A256KW, A256GCM) and verify (ES256), %d bytes\n", len(tok))
	results := []playintegrity.Result{a.pol.Genuine(p), a.bindingResult(p), playintegrity.Fresh(p, a.at, a.maxAge, a.leeway)}
	results = append(results, a.pol.Verdicts(p)...)
	verdict := ""
	for _, r := range results {
		switch {
		case r.Skipped:
			fmt.Fprintf(stdout, "  -     %s (not checked: %s)\n", r.Name, r.Message)
		case r.Code == "":
			fmt.Fprintf(stdout, "  ok    %s\n", r.Name)
		default:
			fmt.Fprintf(stdout, "  FAIL  %s: %s\n", r.Name, r.Code)
			if verdict == "" {
				verdict = string(r.Code)
			}
		}
	}
	printPayload(stdout, p)
	if verdict != "" {
		fmt.Fprintf(stdout, "verdict: REFUSED %s\n", verdict)
		return exitError(1)
	}
	fmt.Fprintln(stdout, "verdict: VERIFIED")
	return nil
}

// piRefuse prints a failed decoding step, the steps it left unchecked and the verdict.
func piRefuse(w io.Writer, step, code string) error {
	fmt.Fprintf(w, "  FAIL  %s\n  -     the payload's checks (not checked)\nverdict: REFUSED %s\n", step, code)
	return exitError(1)
}

// bindingResult compares the token's requestHash (or nonce) with the expected value.
func (a *playIntegrityArgs) bindingResult(p *playintegrity.Payload) playintegrity.Result {
	r := playintegrity.Result{Name: "requestDetails." + a.field}
	if a.binding == "" {
		r.Name, r.Message, r.Skipped = "request binding", "give --request-hash or --nonce", true
		return r
	}
	got := p.RequestDetails.RequestHash
	if a.field == "nonce" {
		got = p.RequestDetails.Nonce
	}
	if got == "" || strings.TrimRight(got, "=") != strings.TrimRight(a.binding, "=") {
		r.Code = "ATTESTATION_FAILED"
	}
	return r
}

// printPayload shows the verdict fields as the token states them, for the developer.
func printPayload(w io.Writer, p *playintegrity.Payload) {
	d := &p.RequestDetails
	fmt.Fprintf(w, "token says:\n  requestPackageName %q, timestampMillis %d (%s)\n", d.RequestPackageName, d.TimestampMillis,
		time.UnixMilli(int64(d.TimestampMillis)).UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  requestHash %q, nonce %q\n", d.RequestHash, d.Nonce)
	fmt.Fprintf(w, "  appRecognitionVerdict %q, packageName %q, certificateSha256Digest %q\n", p.AppIntegrity.AppRecognitionVerdict,
		p.AppIntegrity.PackageName, p.AppIntegrity.CertificateSha256Digest)
	fmt.Fprintf(w, "  deviceRecognitionVerdict %q\n  appLicensingVerdict %q, playProtectVerdict %q\n",
		p.DeviceIntegrity.DeviceRecognitionVerdict, p.AccountDetails.AppLicensingVerdict, p.EnvironmentDetails.PlayProtectVerdict)
}

func parsePlayIntegrityArgs(args []string, stdout, stderr io.Writer) (playIntegrityArgs, error) {
	a := playIntegrityArgs{}
	fs := newFlags("attest verify --type play-integrity", playIntegritySynopsis)
	pkg := fs.String("package", "", "the app's package `NAME` (requestPackageName)")
	decKey := fs.String("decryption-key", "", "`FILE` holding the base64 decryption key")
	verKey := fs.String("verification-key", "", "`FILE` holding the verification key (base64 DER or PEM)")
	reqHash := fs.String("request-hash", "", "the requestHash the token must carry (`B64`)")
	nonce := fs.String("nonce", "", "the nonce the token must carry (`STRING`)")
	at := fs.String("at", "", "verification time, `RFC3339` (default now)")
	fs.DurationVar(&a.maxAge, "max-age", attest.DefaultPlayIntegrityMaxAge, "how old timestampMillis may be")
	fs.DurationVar(&a.leeway, "leeway", 30*time.Second, "clock skew allowed")
	level := fs.String("min-device-level", "device", "weakest device integrity accepted: `basic`, device or strong")
	fs.BoolVar(&a.pol.AllowEmulator, "allow-emulator", false, "accept MEETS_VIRTUAL_INTEGRITY")
	fs.BoolVar(&a.pol.AllowUnrecognizedVersion, "allow-unrecognized-version", false, "accept appRecognitionVerdict UNRECOGNIZED_VERSION")
	certs := fs.String("signing-cert", "", "accepted signing-certificate SHA-256 digests, `HEX,...`")
	fs.BoolVar(&a.pol.RequireLicensed, "require-licensed", false, "require appLicensingVerdict LICENSED")
	protect := fs.String("play-protect", "", "accepted playProtectVerdict values, `VERDICT,...`")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return a, err
	}
	u := checkUsage(fs)
	set, bad := u.set, u.bad
	a.fileName = u.file
	if a.pol.PackageName = *pkg; *pkg == "" {
		bad("--package is required")
	}
	a.readKeys(*decKey, *verKey, bad)
	switch {
	case set["request-hash"] && set["nonce"]:
		bad("give at most one of --request-hash and --nonce")
	case set["request-hash"]:
		a.binding, a.field = *reqHash, "requestHash"
	case set["nonce"]:
		a.binding, a.field = *nonce, "nonce"
	}
	var err error
	a.at = time.Now()
	if *at != "" {
		if a.at, err = time.Parse(time.RFC3339Nano, *at); err != nil {
			bad("--at must be an RFC 3339 time")
		}
	}
	if a.pol.MinLevel, err = playintegrity.ParseLevel(*level); err != nil {
		bad("--min-device-level: " + err.Error())
	}
	a.pol.SigningCerts = parseCerts(*certs, bad)
	if *protect != "" {
		a.pol.PlayProtect = strings.Split(*protect, ",")
	}
	if a.maxAge <= 0 || a.leeway < 0 {
		bad("--max-age must be positive and --leeway not negative")
	}
	return a, u.err(stderr)
}

// readKeys reads both key files; a problem is reported without the files' content.
func (a *playIntegrityArgs) readKeys(dec, ver string, bad func(string)) {
	read := func(flagName, name string) []byte {
		if name == "" {
			bad("--" + flagName + " is required")
			return nil
		}
		b, err := config.ReadFile(name, config.MaxFileBytes)
		if err != nil {
			bad("--" + flagName + ": cannot read the file")
		}
		return b
	}
	if b := read("decryption-key", dec); b != nil {
		var err error
		if a.keys.Decryption, err = playintegrity.ParseDecryptionKey(b); err != nil {
			bad("--decryption-key: " + err.Error())
		}
	}
	if b := read("verification-key", ver); b != nil {
		var err error
		if a.keys.Verification, err = playintegrity.ParseVerificationKey(b); err != nil {
			bad("--verification-key: " + err.Error())
		}
	}
}

// parseCerts reads a comma-separated list of hex SHA-256 digests (colons allowed).
func parseCerts(s string, bad func(string)) [][sha256.Size]byte {
	var out [][sha256.Size]byte
	for d := range strings.SplitSeq(s, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		b, err := hex.DecodeString(attest.NormalizeCert(d))
		if err != nil || len(b) != sha256.Size {
			bad("--signing-cert: each must be a SHA-256 digest in hex")
			return nil
		}
		out = append(out, [sha256.Size]byte(b))
	}
	return out
}

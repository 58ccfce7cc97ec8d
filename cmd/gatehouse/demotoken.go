package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const demoTokenUsage = `usage: gatehouse demo-token [--device ID] [--emulator] [--expired] [--tampered]

Prints an attestation token signed with the DEMO key, which only the embedded demo
configuration trusts. Send it to the demo's GET /v1/secure:

  gatehouse check -H 'x-app-token: demo-app-token' \
    -H "x-attestation-token: $(gatehouse demo-token)" /v1/secure

--emulator, --expired and --tampered mint tokens the demo refuses (EMULATOR_DETECTED,
ATTESTATION_EXPIRED, APP_TAMPERED); changing any character of a token makes it
ATTESTATION_FAILED or INVALID_ATTESTATION.

flags:
`

// demoToken prints a demo attestation token (gatehouse demo-token).
func demoToken(args []string, stdout, stderr io.Writer) error {
	return demoTokenAt(time.Now(), args, stdout, stderr)
}

func demoTokenAt(now time.Time, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoTokenUsage); fs.PrintDefaults() }
	device := fs.String("device", "demo-device-1", "the attested device id")
	emulator := fs.Bool("emulator", false, "attest an emulator (refused: EMULATOR_DETECTED)")
	expired := fs.Bool("expired", false, "mint a token that expired an hour ago (refused: ATTESTATION_EXPIRED)")
	tampered := fs.Bool("tampered", false, "attest a modified app binary (refused: APP_TAMPERED)")
	ttl := fs.Duration("ttl", 10*time.Minute, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse demo-token: unexpected argument %q\n", fs.Arg(0))
		return exitError(2)
	}
	if *ttl <= 0 || *ttl > 24*time.Hour {
		fmt.Fprintln(stderr, "gatehouse demo-token: --ttl must be between 1s and 24h")
		return exitError(2)
	}
	tok, err := mintDemoToken(now, *device, *emulator, *expired, *tampered, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// mintDemoToken signs a demo attestation token with the demo key.
func mintDemoToken(now time.Time, device string, emulator, expired, tampered bool, ttl time.Duration) (string, error) {
	block, _ := pem.Decode([]byte(demoPrivateKey))
	if block == nil {
		return "", errors.New("demo-token: the embedded demo key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("demo-token: embedded demo key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", errors.New("demo-token: the embedded demo key is not an ECDSA key")
	}
	iat := now
	if expired {
		iat = now.Add(-ttl - time.Hour)
	}
	claims := jwt.MapClaims{
		"iss":       demoIssuer,
		"aud":       demoAudience,
		"iat":       iat.Unix(),
		"nbf":       iat.Unix(),
		"exp":       iat.Add(ttl).Unix(),
		"device_id": device,
		"emulator":  emulator,
		"tampered":  tampered,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = demoKeyID
	return t.SignedString(key)
}

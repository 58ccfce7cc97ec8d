package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/golang-jwt/jwt/v5"
)

const demoTokenUsage = `usage: gatehouse demo-token [--device ID] [--count N] [--emulator] [--expired] [--tampered]

Prints an attestation token signed with the DEMO key, which only the embedded demo
configuration trusts. Send it to the demo's GET /v1/secure:

  gatehouse check -H 'x-app-token: demo-app-token' \
    -H "x-attestation-token: $(gatehouse demo-token)" /v1/secure

--emulator, --expired and --tampered mint tokens the demo refuses (EMULATOR_DETECTED,
ATTESTATION_EXPIRED, APP_TAMPERED); changing any character of a token makes it
ATTESTATION_FAILED or INVALID_ATTESTATION.

--count N prints N tokens for N devices, one per line as "DEVICE<TAB>TOKEN", where the
device ids are PREFIX-0 … PREFIX-(N-1) and --device is the PREFIX (default "device"),
e.g. for load tests (gatehouse-load run --attest).

flags:
`

// demoToken prints a demo attestation token (gatehouse demo-token).
func demoToken(args []string, stdout, stderr io.Writer) error {
	return demoTokenAt(time.Now(), args, stdout, stderr)
}

func demoTokenAt(now time.Time, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-token", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), demoTokenUsage); fs.PrintDefaults() }
	device := fs.String("device", "demo-device-1", "the attested device id; with --count, the device id prefix (default \"device\")")
	count := fs.Int("count", 0, "print `N` tokens, one per device PREFIX-0 … PREFIX-(N-1), as \"DEVICE<TAB>TOKEN\" lines")
	emulator := fs.Bool("emulator", false, "attest an emulator (refused: EMULATOR_DETECTED)")
	expired := fs.Bool("expired", false, "mint a token that expired an hour ago (refused: ATTESTATION_EXPIRED)")
	tampered := fs.Bool("tampered", false, "attest a modified app binary (refused: APP_TAMPERED)")
	ttl := fs.Duration("ttl", 10*time.Minute, "lifetime of the token")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse demo-token: unexpected argument %q\n", fs.Arg(0))
		return exitError(2)
	}
	if *ttl <= 0 || *ttl > 24*time.Hour {
		fmt.Fprintln(stderr, "gatehouse demo-token: --ttl must be between 1s and 24h")
		return exitError(2)
	}
	key, err := demoKey()
	if err != nil {
		return err
	}
	counted := false
	fs.Visit(func(f *flag.Flag) { counted = counted || f.Name == "count" })
	if !counted {
		tok, err := signDemoToken(key, now, *device, *emulator, *expired, *tampered, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
	if *count < 1 || *count > maxDemoTokens {
		fmt.Fprintf(stderr, "gatehouse demo-token: --count must be between 1 and %d\n", maxDemoTokens)
		return exitError(2)
	}
	prefix := "device"
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "device" {
			prefix = *device
		}
	})
	// The longest id, PREFIX-(N-1), must be a valid device id, or every token would be
	// refused as INVALID_ATTESTATION.
	if last := prefix + "-" + strconv.Itoa(*count-1); !attest.ValidDeviceID(last) {
		fmt.Fprintf(stderr, "gatehouse demo-token: %q is not a valid device id (printable ASCII, no spaces or commas, at most %d bytes)\n", last, attest.MaxDeviceIDBytes)
		return exitError(2)
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	for i := range *count {
		id := prefix + "-" + strconv.Itoa(i)
		tok, err := signDemoToken(key, now, id, *emulator, *expired, *tampered, *ttl)
		if err != nil {
			return err
		}
		w.WriteString(id)
		w.WriteByte('\t')
		w.WriteString(tok)
		w.WriteByte('\n')
	}
	return w.Flush()
}

// maxDemoTokens caps --count.
const maxDemoTokens = 1_000_000

// demoKey parses the embedded demo signing key.
func demoKey() (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(demoPrivateKey))
	if block == nil {
		return nil, errors.New("demo-token: the embedded demo key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("demo-token: embedded demo key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("demo-token: the embedded demo key is not an ECDSA key")
	}
	return key, nil
}

// signDemoToken signs a demo attestation token with key.
func signDemoToken(key *ecdsa.PrivateKey, now time.Time, device string, emulator, expired, tampered bool, ttl time.Duration) (string, error) {
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

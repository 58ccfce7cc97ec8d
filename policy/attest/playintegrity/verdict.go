package playintegrity

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// Level is a device integrity level: what deviceRecognitionVerdict says at best.
type Level uint8

// The levels, weakest first.
const (
	NoIntegrity Level = iota
	Basic             // MEETS_BASIC_INTEGRITY
	Device            // MEETS_DEVICE_INTEGRITY
	Strong            // MEETS_STRONG_INTEGRITY
)

var levelNames = [...]string{"none", "basic", "device", "strong"}

// String returns the configuration spelling of l.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel reads basic, device or strong (the configuration spelling; "" is device).
func ParseLevel(s string) (Level, error) {
	switch s {
	case "basic":
		return Basic, nil
	case "", "device":
		return Device, nil
	case "strong":
		return Strong, nil
	}
	return 0, fmt.Errorf("unknown device level %q (want basic, device or strong)", s)
}

// The verdict labels Gatehouse reads.
const (
	PlayRecognized      = "PLAY_RECOGNIZED"
	UnrecognizedVersion = "UNRECOGNIZED_VERSION"
	MeetsVirtual        = "MEETS_VIRTUAL_INTEGRITY"
	Licensed            = "LICENSED"
)

var levelLabels = map[string]Level{"MEETS_BASIC_INTEGRITY": Basic, "MEETS_DEVICE_INTEGRITY": Device, "MEETS_STRONG_INTEGRITY": Strong}

// Policy is what an app accepts. The zero value is not usable: PackageName is required.
type Policy struct {
	PackageName string
	// MinLevel is the weakest device integrity accepted (default Device).
	MinLevel Level
	// AllowEmulator accepts MEETS_VIRTUAL_INTEGRITY (an emulator with Google Play
	// services), as the device level.
	AllowEmulator bool
	// AllowUnrecognizedVersion accepts appRecognitionVerdict UNRECOGNIZED_VERSION (a build
	// Google Play does not know, such as an internal one); SigningCerts then decide.
	AllowUnrecognizedVersion bool
	// SigningCerts, when set, are the accepted SHA-256 digests of the app's signing
	// certificate: every digest the token lists must be one of them.
	SigningCerts [][sha256.Size]byte
	// RequireLicensed refuses appLicensingVerdict other than LICENSED.
	RequireLicensed bool
	// PlayProtect, when set, are the accepted playProtectVerdict values (NO_ISSUES…).
	PlayProtect []string
}

// Result is one check made on a token, for the offline verifier's listing and the
// provider's verdict. Code is empty when the check passed.
type Result struct {
	Name    string
	Code    policy.Code
	Message string // client-safe; never token data
	// Skipped is set when the policy does not ask for the check (it then passes).
	Skipped bool
}

// Genuine checks that the token was requested by the app: requestPackageName (row 3 of
// the failure mapping: a genuine token, not for us).
func (pol *Policy) Genuine(p *Payload) Result {
	r := Result{Name: "requestDetails.requestPackageName"}
	if p.RequestDetails.RequestPackageName != pol.PackageName {
		r.Code, r.Message = policy.AttestationFailed, "The integrity token was requested by another app"
	}
	return r
}

// Verdicts checks the device, app, account and environment verdicts, in the order of the
// failure mapping (row 5); each result says whether it passed.
func (pol *Policy) Verdicts(p *Payload) []Result {
	return []Result{pol.emulator(p), pol.level(p), pol.recognition(p), pol.appPackage(p),
		pol.certs(p), pol.licensing(p), pol.playProtect(p)}
}

// Verdict is the first failing result of Verdicts, or a passing one.
func (pol *Policy) Verdict(p *Payload) Result {
	for _, r := range pol.Verdicts(p) {
		if r.Code != "" {
			return r
		}
	}
	return Result{}
}

func (pol *Policy) emulator(p *Payload) Result {
	r := Result{Name: "deviceIntegrity: not an emulator"}
	if !pol.AllowEmulator && slices.Contains(p.DeviceIntegrity.DeviceRecognitionVerdict, MeetsVirtual) {
		r.Code = policy.EmulatorDetected
	}
	return r
}

// DeviceLevel is the strongest level deviceRecognitionVerdict names; an allowed emulator
// counts as Device.
func (pol *Policy) DeviceLevel(p *Payload) Level {
	best := NoIntegrity
	for _, v := range p.DeviceIntegrity.DeviceRecognitionVerdict {
		l := levelLabels[v]
		if v == MeetsVirtual && pol.AllowEmulator {
			l = Device
		}
		best = max(best, l)
	}
	return best
}

func (pol *Policy) level(p *Payload) Result {
	r := Result{Name: "deviceIntegrity: at least " + pol.MinLevel.String()}
	if pol.DeviceLevel(p) < pol.MinLevel {
		r.Code, r.Message = policy.DeviceCompromised, "The device does not meet the required integrity level"
	}
	return r
}

func (pol *Policy) recognition(p *Payload) Result {
	r := Result{Name: "appIntegrity.appRecognitionVerdict"}
	switch v := p.AppIntegrity.AppRecognitionVerdict; {
	case v == PlayRecognized, v == UnrecognizedVersion && pol.AllowUnrecognizedVersion:
	case v == UnrecognizedVersion:
		r.Code, r.Message = policy.AppTampered, "This build of the app is not recognized by Google Play"
	default: // UNEVALUATED, absent or unknown
		r.Code, r.Message = policy.AttestationFailed, "The app's integrity was not evaluated"
	}
	return r
}

func (pol *Policy) appPackage(p *Payload) Result {
	r := Result{Name: "appIntegrity.packageName"}
	if n := p.AppIntegrity.PackageName; n != "" && n != pol.PackageName {
		r.Code = policy.AppTampered
	}
	return r
}

func (pol *Policy) certs(p *Payload) Result {
	r := Result{Name: "appIntegrity.certificateSha256Digest"}
	if len(pol.SigningCerts) == 0 {
		r.Skipped, r.Message = true, "no signing certificates configured"
		return r
	}
	digests := p.AppIntegrity.CertificateSha256Digest
	ok := len(digests) > 0
	for _, d := range digests {
		b, err := decodeBase64(d)
		ok = ok && err == nil && len(b) == sha256.Size && slices.Contains(pol.SigningCerts, [sha256.Size]byte(b))
	}
	if !ok {
		r.Code = policy.AppTampered
	}
	return r
}

func (pol *Policy) licensing(p *Payload) Result {
	r := Result{Name: "accountDetails.appLicensingVerdict"}
	switch {
	case !pol.RequireLicensed:
		r.Skipped, r.Message = true, "licensing not required"
	case p.AccountDetails.AppLicensingVerdict != Licensed:
		r.Code, r.Message = policy.AttestationFailed, "The app is not licensed to this account"
	}
	return r
}

func (pol *Policy) playProtect(p *Payload) Result {
	r := Result{Name: "environmentDetails.playProtectVerdict"}
	switch {
	case len(pol.PlayProtect) == 0:
		r.Skipped, r.Message = true, "no accepted Play Protect verdicts configured"
	case !slices.Contains(pol.PlayProtect, p.EnvironmentDetails.PlayProtectVerdict):
		r.Code, r.Message = policy.DeviceCompromised, "Google Play Protect reports a risk on this device"
	}
	return r
}

// Binding returns the request binding a token carries, decoded: requestHash for a
// standard request, else nonce for a classic one. ok is false when it has neither, or
// the value is not base64url of 32 bytes (it can then bind no request).
func Binding(p *Payload) (sum [sha256.Size]byte, ok bool) {
	v := p.RequestDetails.RequestHash
	if v == "" {
		v = p.RequestDetails.Nonce
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(v, "="))
	if err != nil || len(b) != sha256.Size {
		return sum, false
	}
	return [sha256.Size]byte(b), true
}

// RequestHash is the binding value of a request: SHA-256 of the method, the request
// target (path and query, as sent) and the binding header's value, joined by "\n". An
// app sends base64url of it (no padding) as requestHash or nonce.
func RequestHash(method, target, value string) [sha256.Size]byte {
	var buf [512]byte // most requests fit: no allocation
	b := append(buf[:0], method...)
	b = append(append(b, '\n'), target...)
	b = append(append(b, '\n'), value...)
	return sha256.Sum256(b)
}

// SameBinding compares two binding values in constant time.
func SameBinding(a, b [sha256.Size]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Fresh checks timestampMillis against now the way the provider does: expired from
// timestampMillis + maxAge + leeway on (ATTESTATION_EXPIRED), not valid yet before
// timestampMillis - leeway (ATTESTATION_FAILED); absent is INVALID_ATTESTATION.
func Fresh(p *Payload, now time.Time, maxAge, leeway time.Duration) Result {
	r := Result{Name: "requestDetails.timestampMillis within " + maxAge.String() + " (leeway " + leeway.String() + ")"}
	ts := time.UnixMilli(int64(p.RequestDetails.TimestampMillis))
	switch {
	case p.RequestDetails.TimestampMillis == 0:
		r.Code = policy.InvalidAttestation
	case now.Before(ts.Add(-leeway)):
		r.Code, r.Message = policy.AttestationFailed, "The attestation token is not valid yet"
	case !now.Before(ts.Add(maxAge + leeway)):
		r.Code = policy.AttestationExpired
	}
	return r
}

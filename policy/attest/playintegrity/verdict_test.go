package playintegrity_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

// verdictOf decodes a real token made of p and returns the first failing verdict.
func verdictOf(t *testing.T, k *pitest.Keys, pol *playintegrity.Policy, p pitest.Payload) policy.Code {
	t.Helper()
	dec, err := playintegrity.Decode(pitest.Token(t, k, p), k.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	return pol.Verdict(dec).Code
}

func certDigest(t *testing.T, seed string) [sha256.Size]byte {
	_, h := pitest.Cert(seed)
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(b)
}

const (
	ok   = policy.Code("")
	emu  = policy.EmulatorDetected
	comp = policy.DeviceCompromised
	tamp = policy.AppTampered
	fail = policy.AttestationFailed
)

// TestDeviceVerdicts: every device label set against every minimum level, with and without
// allow_emulator. Expected codes typed by hand from the README's mapping: an emulator is
// EMULATOR_DETECTED unless allowed (then it counts as device integrity); below the
// minimum, or no label, is DEVICE_COMPROMISED.
func TestDeviceVerdicts(t *testing.T) {
	k := pitest.NewKeys(t)
	labels := map[string][]string{
		"none":          nil,
		"empty":         {},
		"basic":         {"MEETS_BASIC_INTEGRITY"},
		"basic+device":  {"MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"},
		"device only":   {"MEETS_DEVICE_INTEGRITY"},
		"all three":     {"MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"},
		"virtual":       {"MEETS_VIRTUAL_INTEGRITY"},
		"virtual+basic": {"MEETS_BASIC_INTEGRITY", "MEETS_VIRTUAL_INTEGRITY"},
		"unknown label": {"MEETS_SOMETHING_NEW"},
	}
	// want[labels] = codes for (basic, device, strong) without allow_emulator, then with it.
	want := map[string][6]policy.Code{
		"none":          {comp, comp, comp, comp, comp, comp},
		"empty":         {comp, comp, comp, comp, comp, comp},
		"basic":         {ok, comp, comp, ok, comp, comp},
		"basic+device":  {ok, ok, comp, ok, ok, comp},
		"device only":   {ok, ok, comp, ok, ok, comp},
		"all three":     {ok, ok, ok, ok, ok, ok},
		"virtual":       {emu, emu, emu, ok, ok, comp},
		"virtual+basic": {emu, emu, emu, ok, ok, comp},
		"unknown label": {comp, comp, comp, comp, comp, comp},
	}
	levels := []playintegrity.Level{playintegrity.Basic, playintegrity.Device, playintegrity.Strong}
	for name, ls := range labels {
		var v any = ls
		if ls == nil {
			v = nil
		}
		tok := pitest.Good(pkg, "", ts).Set("deviceIntegrity", "deviceRecognitionVerdict", v)
		for i := range 6 {
			pol := &playintegrity.Policy{PackageName: pkg, MinLevel: levels[i%3], AllowEmulator: i >= 3}
			if got := verdictOf(t, k, pol, tok); got != want[name][i] {
				t.Errorf("%s, min %s, allow_emulator %v: %q, want %q", name, pol.MinLevel, pol.AllowEmulator, got, want[name][i])
			}
		}
	}
}

// TestAppVerdicts: app recognition, the app's package name and the signing certificates.
func TestAppVerdicts(t *testing.T) {
	k := pitest.NewKeys(t)
	release, _ := pitest.Cert("release")
	debug, _ := pitest.Cert("debug")
	certs := [][sha256.Size]byte{certDigest(t, "release")}
	cases := []struct {
		name         string
		field        string
		value        any
		allowUnrecog bool
		certs        [][sha256.Size]byte
		want         policy.Code
	}{
		{"recognized", "appRecognitionVerdict", "PLAY_RECOGNIZED", false, nil, ok},
		{"recognized, unrecognized allowed", "appRecognitionVerdict", "PLAY_RECOGNIZED", true, nil, ok},
		{"unrecognized version", "appRecognitionVerdict", "UNRECOGNIZED_VERSION", false, nil, tamp},
		{"unrecognized version, allowed", "appRecognitionVerdict", "UNRECOGNIZED_VERSION", true, certs, ok},
		{"unevaluated", "appRecognitionVerdict", "UNEVALUATED", false, nil, fail},
		{"unevaluated, unrecognized allowed", "appRecognitionVerdict", "UNEVALUATED", true, nil, fail},
		{"verdict absent", "appRecognitionVerdict", nil, false, nil, fail},
		{"verdict unknown", "appRecognitionVerdict", "play_recognized", false, nil, fail},
		{"package name of another app", "packageName", "com.example.other", false, nil, tamp},
		{"package name absent", "packageName", nil, false, nil, ok},
		{"cert listed", "certificateSha256Digest", []string{release}, false, certs, ok},
		{"cert listed, padded base64", "certificateSha256Digest", []string{release + "="}, false, certs, ok},
		{"cert not listed", "certificateSha256Digest", []string{debug}, false, certs, tamp},
		{"one listed and one not", "certificateSha256Digest", []string{release, debug}, false, certs, tamp},
		{"both listed", "certificateSha256Digest", []string{release, debug}, false, append(certs, certDigest(t, "debug")), ok},
		{"no cert", "certificateSha256Digest", []string{}, false, certs, tamp},
		{"cert absent", "certificateSha256Digest", nil, false, certs, tamp},
		{"cert in hex", "certificateSha256Digest", []string{hex.EncodeToString(certs[0][:])}, false, certs, tamp},
		{"cert truncated", "certificateSha256Digest", []string{release[:20]}, false, certs, tamp},
		{"certs not configured", "certificateSha256Digest", []string{debug}, false, nil, ok},
		{"unrecognized and wrong cert", "appRecognitionVerdict", "UNRECOGNIZED_VERSION", true, [][sha256.Size]byte{certDigest(t, "other")}, tamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := &playintegrity.Policy{PackageName: pkg, MinLevel: playintegrity.Device, AllowUnrecognizedVersion: tc.allowUnrecog, SigningCerts: tc.certs}
			if got := verdictOf(t, k, pol, pitest.Good(pkg, "", ts).Set("appIntegrity", tc.field, tc.value)); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

// TestAccountAndEnvironmentVerdicts: licensing (when required) and Play Protect (when a set
// of accepted verdicts is configured).
func TestAccountAndEnvironmentVerdicts(t *testing.T) {
	k := pitest.NewKeys(t)
	for _, tc := range []struct {
		licensing string
		require   bool
		want      policy.Code
	}{
		{"LICENSED", false, ok}, {"LICENSED", true, ok},
		{"UNLICENSED", false, ok}, {"UNLICENSED", true, fail},
		{"UNEVALUATED", false, ok}, {"UNEVALUATED", true, fail},
		{"", false, ok}, {"", true, fail},
	} {
		var v any = tc.licensing
		if tc.licensing == "" {
			v = nil
		}
		pol := &playintegrity.Policy{PackageName: pkg, MinLevel: playintegrity.Device, RequireLicensed: tc.require}
		if got := verdictOf(t, k, pol, pitest.Good(pkg, "", ts).Set("accountDetails", "appLicensingVerdict", v)); got != tc.want {
			t.Errorf("licensing %q, required %v: %q, want %q", tc.licensing, tc.require, got, tc.want)
		}
	}
	sets := [][]string{nil, {"NO_ISSUES"}, {"NO_ISSUES", "NO_DATA"}}
	// want[verdict] = codes for the three sets above.
	want := map[string][3]policy.Code{
		"NO_ISSUES":     {ok, ok, ok},
		"NO_DATA":       {ok, comp, ok},
		"POSSIBLE_RISK": {ok, comp, comp},
		"MEDIUM_RISK":   {ok, comp, comp},
		"HIGH_RISK":     {ok, comp, comp},
		"UNEVALUATED":   {ok, comp, comp},
		"":              {ok, comp, comp},
	}
	for verdict, codes := range want {
		var v any = verdict
		if verdict == "" {
			v = nil
		}
		for i, set := range sets {
			pol := &playintegrity.Policy{PackageName: pkg, MinLevel: playintegrity.Device, PlayProtect: set}
			if got := verdictOf(t, k, pol, pitest.Good(pkg, "", ts).Set("environmentDetails", "playProtectVerdict", v)); got != codes[i] {
				t.Errorf("play protect %q against %v: %q, want %q", verdict, set, got, codes[i])
			}
		}
	}
}

// TestVerdictOrder: with several verdicts failing, the first row of the mapping decides,
// and Verdicts lists every check with its own outcome.
func TestVerdictOrder(t *testing.T) {
	k := pitest.NewKeys(t)
	pol := &playintegrity.Policy{PackageName: pkg, MinLevel: playintegrity.Strong, RequireLicensed: true, PlayProtect: []string{"NO_ISSUES"}}
	p := pitest.Good(pkg, "", ts).
		Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}).
		Set("appIntegrity", "appRecognitionVerdict", "UNRECOGNIZED_VERSION").
		Set("accountDetails", "appLicensingVerdict", "UNLICENSED").
		Set("environmentDetails", "playProtectVerdict", "HIGH_RISK")
	dec, err := playintegrity.Decode(pitest.Token(t, k, p), k.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	var got []policy.Code
	for _, r := range pol.Verdicts(dec) {
		got = append(got, r.Code)
	}
	want := []policy.Code{emu, comp, tamp, ok, ok, fail, comp}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("check %d: %q, want %q", i, got[i], want[i])
		}
	}
	if pol.Verdict(dec).Code != emu {
		t.Errorf("first failure %q, want %q", pol.Verdict(dec).Code, emu)
	}
	if g := pol.Genuine(dec); g.Code != "" {
		t.Errorf("genuine: %q", g.Code)
	}
	other := &playintegrity.Policy{PackageName: "com.example.other"}
	if g := other.Genuine(dec); g.Code != fail {
		t.Errorf("another package: %q, want %q", g.Code, fail)
	}
}

// TestBinding: requestHash wins over nonce; either must be base64url of 32 bytes.
func TestBinding(t *testing.T) {
	k := pitest.NewKeys(t)
	bind := pitest.Binding("GET", "/v1/orders?id=7", "n-123")
	want := playintegrity.RequestHash("GET", "/v1/orders?id=7", "n-123")
	cases := []struct {
		name        string
		hash, nonce any
		ok          bool
	}{
		{"standard", bind, nil, true},
		{"classic", nil, bind, true},
		{"classic, padded", nil, bind + "=", true},
		{"both: requestHash decides", bind, "other", true},
		{"both: a wrong requestHash fails", pitest.Binding("GET", "/", ""), bind, true}, // decodes; compared later
		{"neither", nil, nil, false},
		{"standard base64 alphabet", nil, "+/" + bind[2:], false},
		{"31 bytes", bind[:41], nil, false},
		{"not base64", "%%%", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pitest.Good(pkg, "", ts).Set("requestDetails", "requestHash", tc.hash).Set("requestDetails", "nonce", tc.nonce)
			dec, err := playintegrity.Decode(pitest.Token(t, k, p), k.Verifier())
			if err != nil {
				t.Fatal(err)
			}
			sum, got := playintegrity.Binding(dec)
			if got != tc.ok {
				t.Fatalf("ok %v, want %v", got, tc.ok)
			}
			if tc.name == "both: a wrong requestHash fails" {
				if playintegrity.SameBinding(sum, want) {
					t.Error("a wrong requestHash matched")
				}
				return
			}
			if tc.ok && !playintegrity.SameBinding(sum, want) {
				t.Error("binding differs")
			}
		})
	}
}

// TestFresh: the offline verifier's clock rule, the provider's: expired from
// timestampMillis + max_age + leeway, not valid before timestampMillis - leeway; each
// at the exact millisecond and one either side.
func TestFresh(t *testing.T) {
	const ms = time.Millisecond
	p := &playintegrity.Payload{}
	p.RequestDetails.TimestampMillis = playintegrity.Millis(ts.UnixMilli())
	for _, tc := range []struct {
		at   time.Time
		want policy.Code
	}{
		{ts.Add(5*time.Minute + 30*time.Second - ms), ok},
		{ts.Add(5*time.Minute + 30*time.Second), policy.AttestationExpired},
		{ts.Add(5*time.Minute + 30*time.Second + ms), policy.AttestationExpired},
		{ts.Add(-30*time.Second - ms), fail},
		{ts.Add(-30 * time.Second), ok},
		{ts.Add(-30*time.Second + ms), ok},
	} {
		if got := playintegrity.Fresh(p, tc.at, 5*time.Minute, 30*time.Second).Code; got != tc.want {
			t.Errorf("at ts%+v: %q, want %q", tc.at.Sub(ts), got, tc.want)
		}
	}
	if got := playintegrity.Fresh(&playintegrity.Payload{}, ts, time.Minute, 0).Code; got != policy.InvalidAttestation {
		t.Errorf("no timestamp: %q", got)
	}
}

package config

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
)

// PlayIntegrity is a play_integrity provider's own settings (its play_integrity key). The
// provider's max_age (default 5m) bounds timestampMillis, allow_emulator accepts
// MEETS_VIRTUAL_INTEGRITY, signing_certs lists the accepted certificate digests and
// binding_header names the header whose value the request hash covers.
type PlayIntegrity struct {
	// PackageName is the app's package name (required): requestPackageName and
	// appIntegrity.packageName must equal it.
	PackageName string `yaml:"package_name"`
	// DecryptionKeyFile holds the base64 decryption key from the Play Console (required).
	DecryptionKeyFile string `yaml:"decryption_key_file"`
	// VerificationKeyFile holds the verification key from the Play Console: base64 DER
	// or PEM (required).
	VerificationKeyFile string `yaml:"verification_key_file"`
	// MinDeviceLevel is the weakest device integrity accepted: basic, device (default)
	// or strong.
	MinDeviceLevel string `yaml:"min_device_level"`
	// AllowUnrecognizedVersion accepts appRecognitionVerdict UNRECOGNIZED_VERSION; it
	// needs signing_certs.
	AllowUnrecognizedVersion bool `yaml:"allow_unrecognized_version"`
	// RequireLicensed refuses an appLicensingVerdict other than LICENSED.
	RequireLicensed bool `yaml:"require_licensed"`
	// PlayProtect, when set, are the accepted playProtectVerdict values.
	PlayProtect []string `yaml:"play_protect"`
}

var (
	packageName        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)
	playProtectVerdict = []string{"NO_ISSUES", "NO_DATA", "POSSIBLE_RISK", "MEDIUM_RISK", "HIGH_RISK", "UNEVALUATED"}
)

// playIntegrity compiles a play_integrity provider's settings into pc. It returns a
// digest of both keys, for the provider's cache id: a new key drops the cached verdicts.
func (c *compiler) playIntegrity(path string, p *AttestationProvider, pc *attest.Config) string {
	for key, set := range map[string]bool{"algorithms": len(p.Algorithms) > 0, "jwks": p.JWKS != (AttestationJWKS{}),
		"claims": p.Claims != (AttestationClaims{}), "allow_compromised": p.AllowCompromised,
		"allow_debugger": p.AllowDebugger, "min_app_version": p.MinAppVersion != ""} {
		if set {
			c.add(path+"."+key, "not for type play_integrity (its verdicts are Google's, see play_integrity)")
		}
	}
	pi := p.PlayIntegrity
	if pi == nil {
		c.add(path+".play_integrity", "is required for type play_integrity")
		return ""
	}
	pc.BindingHeader = c.header(path+".binding_header", p.BindingHeader, "")
	// Google's server refuses a token decoded twice; decoded here, each is accepted once.
	pc.Replay = c.replay(path)
	if pc.BindingHeader != "" && pc.BindingHeader == pc.Header {
		c.add(path+".binding_header", "must not be the token's own header")
	}
	if pc.MaxAge == 0 {
		pc.MaxAge = attest.DefaultPlayIntegrityMaxAge
	}
	if pc.MaxAge > playIntegrityMaxAge {
		c.add(path+".max_age", "must be at most %s for play_integrity: a token is meant to be used at once", playIntegrityMaxAge)
	}
	path += ".play_integrity"
	cfg := &attest.PlayIntegrityConfig{Policy: playintegrity.Policy{PackageName: pi.PackageName,
		AllowEmulator: p.AllowEmulator, AllowUnrecognizedVersion: pi.AllowUnrecognizedVersion,
		RequireLicensed: pi.RequireLicensed, PlayProtect: pi.PlayProtect}}
	if !packageName.MatchString(pi.PackageName) {
		c.add(path+".package_name", "must be an Android package name like com.example.app")
	}
	var err error
	if cfg.Policy.MinLevel, err = playintegrity.ParseLevel(pi.MinDeviceLevel); err != nil {
		c.add(path+".min_device_level", "%v", err)
	}
	for i, v := range pi.PlayProtect {
		if !slices.Contains(playProtectVerdict, v) {
			c.add(fmt.Sprintf("%s.play_protect[%d]", path, i), "unknown verdict %q (want one of %v)", v, playProtectVerdict)
		}
	}
	for _, d := range p.SigningCerts { // invalid ones are reported with the other providers'
		if b, err := hex.DecodeString(attest.NormalizeCert(d)); err == nil && len(b) == sha256.Size {
			cfg.Policy.SigningCerts = append(cfg.Policy.SigningCerts, [sha256.Size]byte(b))
		}
	}
	if pi.AllowUnrecognizedVersion && len(p.SigningCerts) == 0 {
		c.add(path+".allow_unrecognized_version", "needs signing_certs: a build Google Play does not know is judged by its signing certificate alone")
	}
	dec, decText := c.playIntegrityKey(path+".decryption_key_file", pi.DecryptionKeyFile, func(b []byte) (any, error) {
		return playintegrity.ParseDecryptionKey(b)
	})
	ver, verText := c.playIntegrityKey(path+".verification_key_file", pi.VerificationKeyFile, func(b []byte) (any, error) {
		return playintegrity.ParseVerificationKey(b)
	})
	if k, ok := dec.([]byte); ok {
		cfg.Keys.Decryption = k
	}
	if k, ok := ver.(*ecdsa.PublicKey); ok {
		cfg.Keys.Verification = k
	}
	pc.PlayIntegrity = cfg
	sum := policy.CacheKey("play-integrity-keys", decText, verText)
	return hex.EncodeToString(sum[:])
}

// playIntegrityKey reads and parses one key file. Absent under validate --offline (a
// warning already), it yields nothing and no error; the provider is then never used.
func (c *compiler) playIntegrityKey(key, file string, parse func([]byte) (any, error)) (any, string) {
	if file == "" {
		c.add(key, "is required")
		return nil, ""
	}
	text, ok := c.read(key, file, "")
	if !ok {
		if !c.skipped[c.path(file)] {
			c.add(key, "cannot read %s", file)
		}
		return nil, ""
	}
	k, err := parse([]byte(text))
	if err != nil {
		c.add(key, "%s: %v", file, err) // the parser's message never quotes the file
		return nil, ""
	}
	return k, text
}

// playIntegrityMaxAge is the largest max_age of a play_integrity provider: tokens are
// meant to be used at once.
const playIntegrityMaxAge = 24 * time.Hour

package device

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
)

// Bindings binds license keys to device ids: first come, first bound, persisted so that
// restarts and other replicas agree. The rate-limit stores (memory with file persistence,
// Redis) implement it. Implementations are safe for concurrent use and Bind is atomic:
// however many callers race to bind devices to one license, at most max are bound.
type Bindings interface {
	// Bind binds device to license if fewer than max devices are bound, or reports that
	// it already is: bound says whether device is bound after the call, count how many
	// devices license has.
	Bind(ctx context.Context, license, device string, max int) (bound bool, count int, err error)
	// ResetBindings unbinds every device of license (an admin action).
	ResetBindings(ctx context.Context, license string) error
}

// BindingKey is the key a license's bindings are stored under: derived from the key's
// hash, never the key itself.
func BindingKey(h policy.Hash) string { return "license:" + hex.EncodeToString(h[:]) }

// MemoryBindings is Bindings in process memory (tests, and single-replica setups that do
// not need bindings to survive a restart).
type MemoryBindings struct {
	mu sync.Mutex
	m  map[string]map[string]struct{}
}

var _ Bindings = (*MemoryBindings)(nil)

// NewMemoryBindings returns empty bindings.
func NewMemoryBindings() *MemoryBindings {
	return &MemoryBindings{m: map[string]map[string]struct{}{}}
}

// Bind implements Bindings.
func (b *MemoryBindings) Bind(_ context.Context, license, device string, maxDevices int) (bool, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.m[license]
	if _, ok := set[device]; ok {
		return true, len(set), nil
	}
	if len(set) >= maxDevices {
		return false, len(set), nil
	}
	if set == nil {
		set = map[string]struct{}{}
		b.m[license] = set
	}
	set[device] = struct{}{}
	return true, len(set), nil
}

// ResetBindings implements Bindings.
func (b *MemoryBindings) ResetBindings(_ context.Context, license string) error {
	b.mu.Lock()
	delete(b.m, license)
	b.mu.Unlock()
	return nil
}

// State is a license's state.
type State uint8

// The license states.
const (
	Active State = iota
	Revoked
	Expired
)

// ParseState reads active, revoked or expired; empty is active.
func ParseState(s string) (State, error) {
	switch s {
	case "", "active":
		return Active, nil
	case "revoked":
		return Revoked, nil
	case "expired":
		return Expired, nil
	}
	return 0, fmt.Errorf("unknown state %q (want active, revoked or expired)", s)
}

// License is one license key, known by its hash.
type License struct {
	Hash      policy.Hash
	State     State
	ExpiresAt time.Time // zero: never
	// MaxDevices is how many device ids the key may be bound to; 0 binds none (any device).
	MaxDevices int
}

// Catalog finds licenses by key hash. The config implementation is a map; a store-backed
// one may hold keys issued at run time. Implementations are safe for concurrent use.
type Catalog interface {
	License(ctx context.Context, h policy.Hash) (License, bool, error)
}

// StaticCatalog is a Catalog of configured keys.
type StaticCatalog map[policy.Hash]License

// License implements Catalog. The map is keyed by a SHA-256 digest, so its timing reveals
// nothing usable about a key; the final comparison is constant-time anyway.
func (c StaticCatalog) License(_ context.Context, h policy.Hash) (License, bool, error) {
	l, ok := c[h]
	if !ok || subtle.ConstantTimeCompare(l.Hash[:], h[:]) != 1 {
		return License{}, false, nil
	}
	return l, true, nil
}

// Licenses is an app's license step (6).
type Licenses struct {
	Header   string // default x-license-key
	Required bool   // a request without a key is INVALID_KEY; otherwise only presented keys are checked
	Catalog  Catalog
	Bindings Bindings
}

// check runs the license step for a request whose device id (verified, or trusted) is id.
// session is the hex digest of the license a verified session was granted with: without a
// key on the request, that license's state is checked (its device was bound at the
// exchange).
func (l *Licenses) check(ctx context.Context, now time.Time, in *policy.Input, id string, noDevice policy.Code, session string) policy.DeviceVerdict {
	v := policy.DeviceVerdict{Step: policy.StepLicense}
	key, present, ok := attest.Credential(in, l.Header)
	switch {
	case !present && session != "":
		return l.sessionLicense(ctx, now, session)
	case !present && !l.Required:
		return policy.DeviceVerdict{}
	case !present:
		v.Code, v.Message = policy.InvalidKey, "A license key is required"
		return v
	case !ok:
		v.Code = policy.InvalidKey
		return v
	}
	h := policy.HashCredential(key)
	lic, found, err := l.Catalog.License(ctx, h)
	if v := l.state(now, lic, found, err); v.Code != "" || v.Err != nil {
		return v
	}
	if lic.MaxDevices > 0 {
		if id == "" {
			v.Code, v.Message = noDevice, "The license is bound to devices and the request has no verified device id"
			return v
		}
		bound, _, err := l.Bindings.Bind(ctx, BindingKey(h), id, lic.MaxDevices)
		if err != nil {
			v.Err = fmt.Errorf("license bindings: %w", err)
			return v
		}
		if !bound {
			v.Code = policy.HWIDMismatch
			return v
		}
	}
	return policy.DeviceVerdict{License: hex.EncodeToString(h[:])}
}

// state refuses a license that is unknown, revoked or expired at now.
func (l *Licenses) state(now time.Time, lic License, found bool, err error) policy.DeviceVerdict {
	v := policy.DeviceVerdict{Step: policy.StepLicense}
	switch {
	case err != nil:
		v.Err = fmt.Errorf("license catalog: %w", err)
	case !found:
		v.Code = policy.InvalidKey
	case lic.State == Revoked:
		v.Code = policy.LicenseRevoked
	case lic.State == Expired, !lic.ExpiresAt.IsZero() && !now.Before(lic.ExpiresAt):
		v.Code = policy.LicenseExpired
	}
	return v
}

// sessionLicense checks the state of a session's license, known by its hex digest.
func (l *Licenses) sessionLicense(ctx context.Context, now time.Time, session string) policy.DeviceVerdict {
	var h policy.Hash
	b, err := hex.DecodeString(session)
	if err != nil || len(b) != len(h) {
		return policy.DeviceVerdict{Step: policy.StepLicense, Code: policy.InvalidKey}
	}
	copy(h[:], b)
	lic, found, err := l.Catalog.License(ctx, h)
	if v := l.state(now, lic, found, err); v.Code != "" || v.Err != nil {
		return v
	}
	return policy.DeviceVerdict{License: session}
}

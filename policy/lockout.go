package policy

import (
	"context"
	"net/netip"
	"time"
)

// lockKeys are a request's lockout keys, added as they become known (LockoutKinds);
// the first checked of them have been checked for a lock already.
type lockKeys struct {
	keys       [3]string
	n, checked int
}

// newLockKeys returns a request's lockout keys with its client address, or nil without a
// lockout (nothing to collect, nothing allocated).
func (r *Rules) newLockKeys(ip netip.Addr) *lockKeys {
	if r.opt.Lockout == nil {
		return nil
	}
	k := new(lockKeys)
	if ip.IsValid() {
		r.addLockKey(k, LockIP, "ip:", clientKey(ip))
	}
	return k
}

// IPLockKey is the lockout key of a client as the pipeline counts it (client is
// [ClientKey] of its address), so that the response phase's login lockout counts the
// same key.
func IPLockKey(client string) string { return "ip:" + client }

// ClientKey is the client address as lockouts and IP limits count it (an IPv6 client by
// its /64).
func ClientKey(ip netip.Addr) string { return clientKey(ip) }

// addLockKey adds the key prefix+v when the lockout counts keys of kind.
func (r *Rules) addLockKey(k *lockKeys, kind LockoutKinds, prefix, v string) {
	if (r.opt.LockoutKeys != 0 && r.opt.LockoutKeys&kind == 0) || k.n == len(k.keys) {
		return
	}
	k.keys[k.n] = prefix + v
	k.n++
}

// locked refuses the request with ACCOUNT_LOCKED when one of the keys not checked yet is
// locked out. A store error is "not locked".
func (r *Rules) locked(ctx context.Context, now time.Time, k *lockKeys, d *Decision) bool {
	if k == nil || k.checked == k.n {
		return false
	}
	keys := k.keys[k.checked:k.n]
	k.checked = k.n
	until, locked, err := r.opt.Lockout.Locked(ctx, now, keys...)
	if err != nil || !locked {
		return false
	}
	d.RetryAfter = until.Sub(now)
	d.Message = ""
	d.deny(StepApp, AccountLocked)
	return true
}

// failedCredential counts a refusal towards the lockout of every key known so far when
// it is a wrong credential (wrongCredential). A key that is locked out already turns the
// refusal into ACCOUNT_LOCKED, so that a locked client learns nothing from its guesses:
// the right credential and a wrong one get the same answer.
func (r *Rules) failedCredential(ctx context.Context, now time.Time, k *lockKeys, d *Decision) {
	if k == nil || k.n == 0 || d.Outcome != Deny || !wrongCredential(d.Step, d.Code) {
		return
	}
	if r.locked(ctx, now, k, d) {
		return
	}
	_ = r.opt.Lockout.Fail(ctx, now, k.keys[:k.n]...) // best effort: a lockout never denies on store errors
}

// wrongCredential reports whether a refusal is what guessing or replaying a credential
// produces: an unknown app token or API key, a user token or attestation that does not
// verify, an unknown or revoked license key, a license used beyond its devices or a
// device header that contradicts the attested device. Refusals of genuine credentials
// (expired tokens and attestations, a role or verdict the caller lacks, a lapsed license),
// of missing ones past the app step, and "could not decide" do not count: honest clients
// produce them, and counting them would lock honest clients out.
func wrongCredential(s Step, c Code) bool {
	switch c {
	case Unauthorized:
		return s == StepApp // no or an unknown API key; at the identity step: no user token
	case AppNotFound, InvalidToken, InvalidKey, LicenseRevoked, HWIDMismatch, InvalidAttestation, AttestationFailed:
		return true
	}
	return false
}

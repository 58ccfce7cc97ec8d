package attest

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Replay is the replay damper's memory: single-use token ids (jti), each kept until its
// token expires. It must outlive config snapshots (a reload must not forget which tokens
// were used). Implementations are safe for concurrent use; Seen is atomic: of two
// concurrent calls with the same id, exactly one reports false.
type Replay interface {
	// Seen records id until the given time and reports whether it was already recorded
	// and unexpired at now (a replay).
	Seen(ctx context.Context, now time.Time, id policy.Hash, until time.Time) (bool, error)
}

// RecordsReplay is a Replay in the shared store: a token id is recorded with
// Records.Create (Redis: SET NX PX) until its token expires, so that a token replayed to
// any replica sharing the store is refused there too. The memory store keeps the marks in
// its file, so they survive a restart.
type RecordsReplay struct {
	Records state.Records
}

var _ Replay = RecordsReplay{}

// Seen implements Replay. An id whose token is already expired (until not after now) is
// reported seen: it can be recorded for no positive time, and its token is refused anyway.
func (r RecordsReplay) Seen(ctx context.Context, now time.Time, id policy.Hash, until time.Time) (bool, error) {
	ttl := until.Sub(now)
	if ttl <= 0 {
		return true, nil
	}
	_, created, err := r.Records.Create(ctx, now, "replay:"+hex.EncodeToString(id[:]), []byte{1}, ttl)
	if err != nil {
		return false, err
	}
	return !created, nil
}

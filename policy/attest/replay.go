package attest

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
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

// ErrReplayFull means the memory replay damper holds its maximum of unexpired ids; the
// verdict is undecided rather than the damper silently forgetting.
var ErrReplayFull = errors.New("replay damper full")

const replayShards = 32

// MemoryReplay is a Replay in process memory: one replica's view (tokens replayed to
// another replica are not seen; use a shared store for many replicas).
type MemoryReplay struct {
	max    int // per shard
	shards [replayShards]replayShard
}

type replayShard struct {
	mu    sync.Mutex
	ids   map[policy.Hash]time.Time
	sweep int // inserts since the last sweep
}

var _ Replay = (*MemoryReplay)(nil)

// NewMemoryReplay returns a damper holding at most maxIDs unexpired ids (default 1<<20).
func NewMemoryReplay(maxIDs int) *MemoryReplay {
	if maxIDs <= 0 {
		maxIDs = 1 << 20
	}
	r := &MemoryReplay{max: max(maxIDs/replayShards, 1)}
	for i := range r.shards {
		r.shards[i].ids = map[policy.Hash]time.Time{}
	}
	return r
}

// Seen implements Replay.
func (r *MemoryReplay) Seen(_ context.Context, now time.Time, id policy.Hash, until time.Time) (bool, error) {
	s := &r.shards[binary.LittleEndian.Uint64(id[:8])%replayShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.ids[id]; ok && now.Before(exp) {
		return true, nil
	}
	if s.sweep++; s.sweep >= 1024 || len(s.ids) >= r.max {
		s.sweep = 0
		for k, exp := range s.ids {
			if !now.Before(exp) {
				delete(s.ids, k)
			}
		}
		if len(s.ids) >= r.max {
			return false, ErrReplayFull
		}
	}
	s.ids[id] = until
	return false, nil
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

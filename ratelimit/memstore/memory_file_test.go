package memstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// TestMemoryFileVersion1: a file written before counters carried their keys (version 1:
// digests only) is still read: its counters and bindings keep counting after an upgrade,
// and the next write keeps them.
func TestMemoryFileVersion1(t *testing.T) {
	file := filepath.Join(t.TempDir(), "counters.json")
	k := state.NewKey("app/a/monthly#c5UTC", "a", t0.Unix(), "dev")
	v1 := fmt.Sprintf(`{"version":1,"counters":[{"k":%d,"v":5,"e":%d}],"bindings":[{"k":%d,"m":[%d]}]}`,
		k.Hash(), t0.Add(time.Hour).UnixNano(), bindHash("lic"), xxhash.Sum64String("dev1"))
	if err := os.WriteFile(file, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := 0; round < 2; round++ { // the version 1 file, then the version 2 file written at Close
		s, err := Open(state.MemoryConfig{File: file}, func() time.Time { return t0 })
		if err != nil {
			t.Fatal(err)
		}
		out := make([]state.Outcome, 1)
		op := state.Op{Key: k, Kind: state.KindCounter, Limit: 100, Cost: 1, Expire: t0.Add(time.Hour).UnixNano(), Persist: true}
		if err := s.Apply(ctx, t0, []state.Op{op}, out); err != nil || out[0].Value != int64(6+round) {
			t.Fatalf("round %d: counter %+v %v, want %d", round, out[0], err, 6+round)
		}
		if bound, n, _ := s.Bind(ctx, "lic", "dev1", 1); !bound || n != 1 {
			t.Fatalf("round %d: dev1 bound %v (%d members), want bound", round, bound, n)
		}
		if bound, _, _ := s.Bind(ctx, "lic", "dev2", 1); bound {
			t.Fatalf("round %d: dev2 bound past the maximum", round)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), `"version":2`) {
		t.Fatalf("rewritten file: %s", data)
	}
}

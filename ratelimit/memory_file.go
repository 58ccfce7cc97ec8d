package ratelimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// memFile is the persisted state of a memory store: counters by key hash (hashes are
// stable across restarts) and bindings by key hash with member hashes.
type memFile struct {
	Version  int          `json:"version"`
	Counters []memRecord  `json:"counters"`
	Bindings []memBinding `json:"bindings"`
}

type memRecord struct {
	K uint64 `json:"k"`
	V int64  `json:"v"`
	E int64  `json:"e,omitempty"`
}

type memBinding struct {
	K uint64   `json:"k"`
	M []uint64 `json:"m"`
}

const memFileVersion = 1

// flush writes persisted counters and bindings to the file atomically: a temporary file in
// the same directory, synced, then renamed over the old one.
func (s *memoryStore) flush() error {
	if s.file == "" {
		return nil
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	ns := s.clock().UnixNano()
	f := memFile{Version: memFileVersion}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.persist && (e.exp == 0 || e.exp > ns) {
				f.Counters = append(f.Counters, memRecord{K: k, V: e.val, E: e.exp})
			}
		}
		for k, set := range sh.binds {
			b := memBinding{K: k, M: make([]uint64, 0, len(set))}
			for m := range set {
				b.M = append(b.M, m)
			}
			slices.Sort(b.M)
			f.Bindings = append(f.Bindings, b)
		}
		sh.mu.Unlock()
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("ratelimit: encode %s: %w", s.file, err)
	}
	return writeAtomic(s.file, data)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("ratelimit: persist: %w", err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(name)
		return fmt.Errorf("ratelimit: persist %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("ratelimit: persist %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// load reads the file written by flush; a missing file is an empty store.
func (s *memoryStore) load() error {
	if s.file == "" {
		return nil
	}
	data, err := os.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ratelimit: read %s: %w", s.file, err)
	}
	var f memFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("ratelimit: read %s: %w", s.file, err)
	}
	if f.Version != memFileVersion {
		return fmt.Errorf("ratelimit: read %s: unknown version %d", s.file, f.Version)
	}
	ns := s.clock().UnixNano()
	for _, r := range f.Counters {
		if r.E != 0 && r.E <= ns {
			continue
		}
		s.shard(r.K).m[r.K] = entry{val: r.V, exp: r.E, persist: true}
	}
	for _, b := range f.Bindings {
		set := make(map[uint64]struct{}, len(b.M))
		for _, m := range b.M {
			set[m] = struct{}{}
		}
		s.shard(b.K).binds[b.K] = set
	}
	return nil
}

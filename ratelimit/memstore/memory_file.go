package memstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// memFile is the persisted state of a memory store: counters by key digest (digests are
// stable across restarts) and identity, bindings by key with their members, and live
// records (absent from files written before records existed). Version 1 files named
// counters and bindings by digests only; they are still read (see entry and legacyBinds).
type memFile struct {
	Version  int          `json:"version"`
	Counters []memRecord  `json:"counters"`
	Bindings []memBinding `json:"bindings"`
	Records  []memRec     `json:"records,omitempty"`
}

// memRec is one record (state.Records): key, value and expiry (unix ns).
type memRec struct {
	K []byte `json:"k"`
	V []byte `json:"v"`
	E int64  `json:"e"`
}

type memRecord struct {
	K uint64 `json:"k,omitempty"` // version 1: the key's digest
	I []byte `json:"i,omitempty"` // version 2: the key's identity
	V int64  `json:"v"`
	E int64  `json:"e,omitempty"`
}

// memBinding is one binding key: Key and Members (version 2; bytes, since keys and
// members are not always UTF-8), or K and M, digests of a version 1 file.
type memBinding struct {
	Key     []byte   `json:"key,omitempty"`
	Members [][]byte `json:"members,omitempty"`
	K       uint64   `json:"k,omitempty"`
	M       []uint64 `json:"m,omitempty"`
}

const memFileVersion = 2

// flush writes persisted counters, bindings and records to the file atomically: a temporary file in
// the same directory, synced, then renamed over the old one.
func (s *Store) flush() error {
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
		f.Counters = sh.appendRecords(f.Counters, ns)
		f.Bindings = sh.appendBindings(f.Bindings)
		f.Records = sh.appendRecs(f.Records, ns)
		sh.mu.Unlock()
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("ratelimit: encode %s: %w", s.file, err)
	}
	return writeAtomic(s.file, data)
}

// appendRecords appends the shard's persisted live counters; the shard is locked.
func (sh *memShard) appendRecords(rs []memRecord, ns int64) []memRecord {
	add := func(h uint64, id string, e entry) {
		if !e.persist || (e.exp != 0 && e.exp <= ns) {
			return
		}
		if id == "" { // a version 1 counter no key has adopted yet
			rs = append(rs, memRecord{K: h, V: e.val, E: e.exp})
		} else {
			rs = append(rs, memRecord{I: []byte(id), V: e.val, E: e.exp})
		}
	}
	for h, e := range sh.m {
		add(h, sh.ids[e.id], e)
	}
	for id, e := range sh.over {
		add(0, id, e)
	}
	return rs
}

// appendBindings appends the shard's bindings; the shard is locked.
func (sh *memShard) appendBindings(bs []memBinding) []memBinding {
	for k, set := range sh.binds {
		b := memBinding{Key: []byte(k), Members: make([][]byte, 0, len(set))}
		for m := range set {
			b.Members = append(b.Members, []byte(m))
		}
		slices.SortFunc(b.Members, bytes.Compare)
		bs = append(bs, b)
	}
	for k, set := range sh.legacyBinds {
		b := memBinding{K: k, M: make([]uint64, 0, len(set))}
		for m := range set {
			b.M = append(b.M, m)
		}
		slices.Sort(b.M)
		bs = append(bs, b)
	}
	return bs
}

// appendRecs appends the shard's live records; the shard is locked.
func (sh *memShard) appendRecs(rs []memRec, ns int64) []memRec {
	for k, r := range sh.recs {
		if r.live(ns) {
			rs = append(rs, memRec{K: []byte(k), V: r.val, E: r.exp})
		}
	}
	return rs
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
func (s *Store) load() error {
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
	if f.Version != 1 && f.Version != memFileVersion {
		return fmt.Errorf("ratelimit: read %s: unknown version %d", s.file, f.Version)
	}
	ns := s.clock().UnixNano()
	for _, r := range f.Counters {
		if r.E != 0 && r.E <= ns {
			continue
		}
		s.loadCounter(r)
	}
	for _, b := range f.Bindings {
		s.loadBinding(b)
	}
	for _, r := range f.Records {
		s.loadRec(r, ns)
	}
	return nil
}

// loadCounter places a counter read from the file: a version 2 record by its key
// (decoded from its identity), a version 1 record by its digest alone.
func (s *Store) loadCounter(r memRecord) {
	e := entry{val: r.V, exp: r.E, persist: true, keep: true}
	if r.I == nil {
		s.shard(r.K).m[r.K] = e
		return
	}
	k, ok := state.KeyOf(string(r.I))
	if !ok {
		return // not written by this code: ignore rather than guess
	}
	s.shard(k.Hash()).put(&k, e, 0, math.MaxInt, 0)
}

func (s *Store) loadBinding(b memBinding) {
	if b.Key == nil {
		set := make(map[uint64]struct{}, len(b.M))
		for _, m := range b.M {
			set[m] = struct{}{}
		}
		s.shard(b.K).legacyBinds[b.K] = set
		return
	}
	set := make(map[string]struct{}, len(b.Members))
	for _, m := range b.Members {
		set[string(m)] = struct{}{}
	}
	s.bindShard(string(b.Key)).binds[string(b.Key)] = set
}

// loadRec places a live record read from the file. Every one is kept, even past
// MaxRecords (lowered since the file was written): new records wait for room instead.
func (s *Store) loadRec(r memRec, ns int64) {
	if r.E <= ns || len(r.K) > state.MaxRecordKey || len(r.V) > state.MaxRecordValue {
		return
	}
	sh := s.recShard(string(r.K))
	if _, ok := sh.recs[string(r.K)]; !ok {
		s.nrec.Add(1)
		if c := s.nsCount(string(r.K)); c != nil {
			c.Add(1)
		}
	}
	if r.V == nil {
		r.V = []byte{}
	}
	sh.recs[string(r.K)] = rec{val: r.V, exp: r.E}
}

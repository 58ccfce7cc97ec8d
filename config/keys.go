package config

import (
	"fmt"
	"slices"
	"sync"

	"github.com/gatehouse/gatehouse/policy/jwks"
)

// KeySources shares JWKS sources across reloads, so that a reload neither refetches every
// key set nor loses the keys it has. Safe for concurrent use.
type KeySources struct {
	mu      sync.Mutex
	sources map[string]*jwks.Source
}

// NewKeySources returns an empty registry.
func NewKeySources() *KeySources { return &KeySources{sources: map[string]*jwks.Source{}} }

// Get returns the source for o, creating it on first use; client names what o.Client
// trusts (a digest of its CA bundle; "" for the default), so that a changed CA gets a new
// source. Offline, a URL source is not fetched: it is an empty placeholder, used by
// `gatehouse validate`.
func (k *KeySources) Get(o jwks.Options, client string, offline bool) (*jwks.Source, error) {
	id := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s", o.File, o.URL, o.Refresh, o.MinRefresh, o.MaxBackoff, o.Wait, o.MaxAge, client)
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.sources[id]; ok && o.File == "" {
		return s, nil
	}
	if offline && o.URL != "" {
		return jwks.NewStatic(), nil
	}
	s, err := jwks.New(o)
	if err != nil {
		return nil, err
	}
	if old, ok := k.sources[id]; ok {
		old.Close() // a file source is re-read on every reload: the file may have changed
	}
	k.sources[id] = s
	return s, nil
}

// Retain stops and forgets every source but those in keep (the sources of the
// configuration in force), so that a key set no longer named is not fetched on.
func (k *KeySources) Retain(keep []*jwks.Source) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, s := range k.sources {
		if !slices.Contains(keep, s) {
			s.Close()
			delete(k.sources, id)
		}
	}
}

// Close stops every source.
func (k *KeySources) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, s := range k.sources {
		s.Close()
		delete(k.sources, id)
	}
}

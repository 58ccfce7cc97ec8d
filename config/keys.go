package config

import (
	"fmt"
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

// Get returns the source for o, creating it on first use. Offline, a URL source is not
// fetched: it is an empty placeholder, used by `gatehouse validate`.
func (k *KeySources) Get(o jwks.Options, offline bool) (*jwks.Source, error) {
	id := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", o.File, o.URL, o.Refresh, o.MinRefresh, o.MaxBackoff, o.Wait, o.MaxAge)
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

// Close stops every source.
func (k *KeySources) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, s := range k.sources {
		s.Close()
		delete(k.sources, id)
	}
}

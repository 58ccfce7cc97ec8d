package config

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const keysReloadConfig = `jwt_providers:
  - name: users
    issuer: https://id.example.com/
    audiences: [api]
    jwks: {url: "%URL%", allow_http: true%CA%}
endpoints:
  - {name: e, path: /e%BAD%}
`

// keySourceURLs lists the URL of every source the registry keeps (its ids start with the
// file, then the URL).
func keySourceURLs(k *KeySources) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var urls []string
	for id := range k.sources {
		urls = append(urls, strings.Split(id, "|")[1])
	}
	slices.Sort(urls)
	return urls
}

// TestReloadKeepsOnlyKeySourcesInUse: a reload that names another key-set URL stops the
// source of the old one, and a rejected load leaves only the sources of the configuration
// in force. Otherwise each old URL would be fetched in the background until a restart,
// counting failures that keep GatehouseJWKSFetchFailing firing for a URL no longer used.
func TestReloadKeepsOnlyKeySourcesInUse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusNotFound) }))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	set := func(path, ca, bad string) {
		r := strings.NewReplacer("%URL%", srv.URL+path, "%CA%", ca, "%BAD%", bad)
		write(t, cfg, r.Replace(keysReloadConfig))
	}
	keys := NewKeySources()
	defer keys.Close()
	deps := testDeps()
	deps.Offline, deps.Keys = false, keys
	r := &Reloader{Path: cfg, Deps: deps, Store: &Store{}}

	set("/a", "", "")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	set("/b", "", "")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := keySourceURLs(keys), []string{srv.URL + "/b"}; !slices.Equal(got, want) {
		t.Fatalf("after moving to /b, sources for %q, want %q", got, want)
	}
	set("/c", "", ", methods: [FETCH]")
	if err := r.Reload(); err == nil {
		t.Fatal("a bad configuration loaded")
	}
	if got, want := keySourceURLs(keys), []string{srv.URL + "/b"}; !slices.Equal(got, want) {
		t.Fatalf("after a rejected load naming /c, sources for %q, want %q", got, want)
	}
}

// TestKeySourceFollowsItsCAFile: a key-set URL whose ca_file changes (named anew, or the
// same file with other content) gets a new source, whose client trusts the new CA; the
// source of the old CA is not reused.
func TestKeySourceFollowsItsCAFile(t *testing.T) {
	dir := t.TempDir()
	certA, _, _ := pemFiles(t, dir)
	certB, _, _ := pemFiles(t, t.TempDir())
	ca := filepath.Join(dir, "ca.pem")
	write(t, ca, readString(t, certA))
	keys := NewKeySources()
	defer keys.Close()
	deps := testDeps()
	deps.Offline, deps.Keys = false, keys
	cfg := filepath.Join(dir, "config.yaml")
	r := &Reloader{Path: cfg, Deps: deps, Store: &Store{}}
	load := func() *Snapshot {
		t.Helper()
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		return r.Store.Current()
	}
	sources := func() map[string]bool {
		keys.mu.Lock()
		defer keys.mu.Unlock()
		ids := map[string]bool{}
		for id := range keys.sources {
			ids[id] = true
		}
		return ids
	}
	write(t, cfg, strings.NewReplacer("%URL%", "https://keys.example.com/jwks", "%CA%", "", "%BAD%", "").Replace(keysReloadConfig))
	load()
	before := sources()
	write(t, cfg, strings.NewReplacer("%URL%", "https://keys.example.com/jwks", "%CA%", ", ca_file: "+ca, "%BAD%", "").Replace(keysReloadConfig))
	load()
	withA := sources()
	if len(withA) != 1 || equalSets(withA, before) {
		t.Fatalf("adding a ca_file kept the source of the default client: %v then %v", before, withA)
	}
	write(t, ca, readString(t, certB))
	load()
	if withB := sources(); len(withB) != 1 || equalSets(withB, withA) {
		t.Fatalf("new content in the ca_file kept the source of the old CA: %v then %v", withA, withB)
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

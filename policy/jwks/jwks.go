// Package jwks fetches and caches JSON Web Key Sets, from a file or an HTTPS URL, for
// verifying JWTs (user tokens and attestation tokens).
//
// A Source refreshes in the background at a fixed interval and, when a token names a key
// id it does not know (a key rotation) or no set has loaded yet, refreshes on demand:
// one fetch at a time however many requests wait (single flight), at most once per
// MinRefresh, and after failed fetches at most once per a backoff that doubles with each
// failure up to MaxBackoff. So a flood of tokens with made-up key ids, or of requests
// while the key server is down, cannot turn into a flood of fetches. A request waits for
// an on-demand fetch at most Wait; the fetch goes on without it, and the request is
// answered ErrUnavailable (the caller's fail mode decides) when no set is loaded.
package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse/gatehouse/internal/capped"
)

// ErrUnknownKey means the set, even freshly fetched, has no key with the token's kid
// (or no kid was given and the set has more than one candidate key).
var ErrUnknownKey = errors.New("jwks: unknown key id")

// ErrUnavailable means no key set could be loaded: the verdict cannot be decided.
var ErrUnavailable = errors.New("jwks: key set unavailable")

// Options configure a Source.
type Options struct {
	File string // a local JWKS file; re-read on refresh
	URL  string // an HTTPS (or, for tests, HTTP) URL
	// Refresh is the background refresh interval (default 10m). MaxAge caps how long a
	// fetched set is used without a successful refresh (default: no cap).
	Refresh time.Duration
	MaxAge  time.Duration
	// MinRefresh is the least time between two on-demand fetches (default 30s).
	MinRefresh time.Duration
	// MaxBackoff caps the wait between on-demand fetches after consecutive failures,
	// which doubles from MinRefresh with each failure (default 5m, at least MinRefresh).
	MaxBackoff time.Duration
	// Wait is the longest a request waits for an on-demand fetch (default 100ms, below
	// Envoy's 200 ms ext_authz deadline).
	Wait   time.Duration
	Client *http.Client // default: a client with a 5 s timeout
	// OnFetch, when set, is called after every fetch with its outcome (metrics).
	OnFetch func(err error)
	// Now is the clock of refresh pacing and max_age (default time.Now).
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultRefresh    = 10 * time.Minute
	DefaultMinRefresh = 30 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultWait       = 100 * time.Millisecond
)

// Key is one verification key.
type Key struct {
	ID  string
	Alg string // the JWK's alg, may be empty
	Key crypto.PublicKey
}

type keySet struct {
	keys    map[string]Key
	fetched time.Time
}

// Source is a refreshed key set. It is safe for concurrent use.
type Source struct {
	o        Options
	set      atomic.Pointer[keySet]
	mu       sync.Mutex
	next     time.Time     // no on-demand fetch before this instant
	fail     int           // consecutive failed fetches
	inflight chan struct{} // closed when the running fetch ends; nil: none runs
	stop     chan struct{}
	once     sync.Once
}

// New returns a Source. A file source is read at once and an unreadable file is an error;
// a URL source fetches in the background and answers ErrUnavailable until it succeeds.
func New(o Options) (*Source, error) {
	if (o.File == "") == (o.URL == "") {
		return nil, errors.New("jwks: exactly one of file and url must be set")
	}
	o = o.withDefaults()
	s := &Source{o: o, stop: make(chan struct{})}
	if o.File != "" {
		if err := s.refresh(context.Background()); err != nil {
			return nil, err
		}
	} else {
		s.join(true) // in flight before any request can look: requests join it
	}
	go s.loop()
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinRefresh)
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewStatic returns a Source over fixed keys (tests and embedded demo keys).
func NewStatic(keys ...Key) *Source {
	s := &Source{o: Options{Now: time.Now}, stop: make(chan struct{})}
	m := make(map[string]Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	s.set.Store(&keySet{keys: m, fetched: time.Now()})
	s.once.Do(func() { close(s.stop) })
	return s
}

// Close stops background refreshes.
func (s *Source) Close() { s.once.Do(func() { close(s.stop) }) }

// loop runs the background refreshes every Refresh (New started the first one). They
// share the single flight of on-demand fetches: requests arriving during one wait for it
// rather than start another.
func (s *Source) loop() {
	t := time.NewTicker(s.o.Refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.join(true)
		}
	}
}

// Lookup returns the key for kid. When kid is unknown, or no usable set is loaded, it
// joins the running fetch or starts one if the pacing allows, waits for it at most
// Options.Wait, and looks again. It never waits past ctx.
func (s *Source) Lookup(ctx context.Context, kid string) (Key, error) {
	set := s.set.Load()
	if set != nil && !s.stale(set) {
		if k, ok := set.find(kid); ok {
			return k, nil
		}
	}
	if done := s.join(false); done != nil {
		t := time.NewTimer(s.o.Wait)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		set = s.set.Load()
	}
	if set == nil || s.stale(set) {
		return Key{}, ErrUnavailable
	}
	if k, ok := set.find(kid); ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// join returns the channel of the running fetch, or starts a fetch when none runs and
// the pacing allows one (always when background is set: the periodic refresh), or
// returns nil. The fetch runs on its own, whoever stops waiting for it.
func (s *Source) join(background bool) <-chan struct{} {
	if s.o.File == "" && s.o.URL == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	now := s.o.Now()
	if !background {
		if now.Before(s.next) {
			return nil
		}
		s.next = now.Add(s.backoff())
	}
	done := make(chan struct{})
	s.inflight = done
	go func() {
		err := s.refresh(context.Background())
		s.mu.Lock()
		s.settle(now, err)
		s.inflight = nil
		s.mu.Unlock()
		close(done)
	}()
	return done
}

func (s *Source) stale(set *keySet) bool {
	return s.o.MaxAge > 0 && s.o.Now().Sub(set.fetched) > s.o.MaxAge
}

// backoff is the least time between on-demand fetches given the consecutive failures so
// far: MinRefresh, then doubling with each failure after the first, up to MaxBackoff.
// s.mu is held.
func (s *Source) backoff() time.Duration {
	d := s.o.MinRefresh
	for i := 1; i < s.fail && d < s.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.o.MaxBackoff)
}

// settle records the outcome of a fetch started at start for the pacing; s.mu is held.
// A success ends the backoff: the next on-demand fetch may start MinRefresh after the
// last on-demand one at most. A failure pushes it out by the grown backoff, counted from
// the end of the failed fetch.
func (s *Source) settle(start time.Time, err error) {
	if err == nil {
		s.fail = 0
		if end := start.Add(s.o.MinRefresh); s.next.After(end) {
			s.next = end
		}
		return
	}
	s.fail++
	if end := s.o.Now().Add(s.backoff()); end.After(s.next) {
		s.next = end
	}
}

func (k *keySet) find(kid string) (Key, bool) {
	if kid != "" {
		key, ok := k.keys[kid]
		return key, ok
	}
	if len(k.keys) == 1 {
		for _, key := range k.keys {
			return key, true
		}
	}
	return Key{}, false
}

func (s *Source) refresh(ctx context.Context) error {
	ctx, span := tracer.Start(ctx, "gatehouse.jwks.fetch", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	data, err := s.fetch(ctx)
	errType := fetchErrorType(err)
	if err == nil {
		var keys map[string]Key
		if keys, err = Parse(data); err == nil {
			s.set.Store(&keySet{keys: keys, fetched: s.o.Now()})
		}
		errType = "invalid_key_set"
	}
	if s.o.OnFetch != nil {
		s.o.OnFetch(err)
	}
	if err != nil {
		span.SetStatus(codes.Error, "key set fetch failed")
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
	}
	return err
}

// fetchErrorType is the error.type of a failed fetch: a fixed value, never the error's
// text.
func fetchErrorType(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "fetch_failed"
}

// tracer makes fetch spans; a no-op unless tracing is set up.
var tracer = otel.Tracer("github.com/gatehouse/gatehouse/policy/jwks")

func (s *Source) fetch(ctx context.Context) ([]byte, error) {
	if s.o.File != "" {
		b, err := capped.ReadFile(s.o.File, MaxBytes)
		if errors.Is(err, capped.ErrTooLarge) {
			err = fmt.Errorf("jwks: %s: %w", s.o.File, err)
		}
		return b, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetch: HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, MaxBytes))
}

// MaxBytes bounds a key set, fetched or read from a file.
const MaxBytes = 1 << 20

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// Parse reads a JWKS document. Keys that are not for signatures, or of unsupported
// types, are skipped; a malformed supported key is an error.
func Parse(data []byte) (map[string]Key, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]Key, len(doc.Keys))
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("jwks: keys[%d] (kid %q): %w", i, k.Kid, err)
		}
		if pub == nil {
			continue
		}
		keys[k.Kid] = Key{ID: k.Kid, Alg: k.Alg, Key: pub}
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable signing keys")
	}
	return keys, nil
}

func (k jwk) public() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64int(k.N)
		e, err2 := b64int(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if n.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var c elliptic.Curve
		switch k.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64int(k.X)
		y, err2 := b64int(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		size := (c.Params().BitSize + 7) / 8
		raw := make([]byte, 1+2*size)
		raw[0] = 4
		if x.BitLen() > size*8 || y.BitLen() > size*8 {
			return nil, errors.New("EC coordinates too long")
		}
		x.FillBytes(raw[1 : 1+size])
		y.FillBytes(raw[1+size:])
		pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported OKP curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

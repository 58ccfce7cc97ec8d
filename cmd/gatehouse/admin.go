package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/capped"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/policy/session"
	"github.com/gatehouse/gatehouse/ratelimit"
)

// adminHandler serves the admin port. GET (and HEAD, which the mux answers like GET) reads
// and is open to anyone who reaches the port. Every other method, on any path, is a write:
// it needs the admin token before any route is looked up, so a write route added later
// cannot be reached without it, whatever its path or method spelling. Without a token
// (--admin-token-file unset) writes are disabled.
type adminHandler struct {
	mux    *http.ServeMux
	routes []adminRoute
	// tokenFile holds the token; it is read again for every write, so that a rotated
	// Secret takes effect at once. "": no token configured, writes disabled.
	tokenFile string
}

// adminRoute is one registered route, kept so that tests can walk every write.
type adminRoute struct {
	method, path string
}

// readMethod reports whether a request only reads. Methods are case-sensitive: "get"
// is not GET, and needs the token like any write.
func readMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

func newAdminHandler() *adminHandler { return &adminHandler{mux: http.NewServeMux()} }

// handle registers h for method and path.
func (a *adminHandler) handle(method, path string, h http.Handler) {
	a.routes = append(a.routes, adminRoute{method, path})
	a.mux.Handle(method+" "+path, h)
}

// readToken checks the admin token file at start (a missing or short one stops the
// server, as a typo should); only the file's name is kept.
func (a *adminHandler) readToken(file string) error {
	if _, err := tokenDigest(file); err != nil {
		return fmt.Errorf("--admin-token-file: %w", err)
	}
	a.tokenFile = file
	return nil
}

// tokenDigest reads the token file and returns the token's digest.
func tokenDigest(file string) (*[sha256.Size]byte, error) {
	b, err := capped.ReadFile(file, 4<<10)
	if err != nil {
		return nil, err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return nil, errors.New("the token must be at least 16 characters")
	}
	sum := sha256.Sum256([]byte(tok))
	return &sum, nil
}

func (a *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !readMethod(r.Method) {
		if a.tokenFile == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin writes are disabled: no admin token is configured (--admin-token-file)"})
			return
		}
		want, err := tokenDigest(a.tokenFile)
		if err != nil {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "admin writes are disabled: the admin token file cannot be used"})
			return
		}
		if !authorized(r, want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid admin bearer token is required"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	a.mux.ServeHTTP(w, r)
}

// authorized checks that the request carries exactly one Authorization header holding
// the token as a bearer token. The digests are compared in constant time, so neither
// the token nor its length leaks through timing.
func authorized(r *http.Request, want *[sha256.Size]byte) bool {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return false
	}
	scheme, got, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// admin serves the operator's write operations: resetting a license's device bindings
// and topping up prepaid credits.
type admin struct {
	s *server
}

func (a *admin) register(h *adminHandler) {
	h.handle(http.MethodPost, "/admin/licenses/reset", http.HandlerFunc(a.resetLicense))
	h.handle(http.MethodPost, "/admin/credits", http.HandlerFunc(a.credits))
	h.handle(http.MethodPost, "/admin/sessions/revoke", http.HandlerFunc(a.revokeSessions))
	h.handle(http.MethodGet, "/-/session-jwks", http.HandlerFunc(a.sessionJWKS))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func decodeHash(s string) (policy.Hash, error) {
	var h policy.Hash
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(h) {
		return h, errors.New("license_sha256 must be 64 hex digits (`printf %s \"$KEY\" | gatehouse hash`)")
	}
	copy(h[:], b)
	return h, nil
}

// resetLicense unbinds every device of a license: {"license_sha256": "<hex>"}.
func (a *admin) resetLicense(w http.ResponseWriter, r *http.Request) {
	var req struct {
		LicenseSHA256 string `json:"license_sha256"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON: " + err.Error()})
		return
	}
	h, err := decodeHash(req.LicenseSHA256)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	b, ok := a.s.counterStore().(ratelimit.Bindings)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store: keeps no license bindings"})
		return
	}
	if err := b.ResetBindings(r.Context(), device.BindingKey(h)); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store: " + err.Error()})
		return
	}
	// The license's sessions go with its bindings: a device unbound here keeps no session
	// minted while it was bound.
	if snap := a.s.store.Current(); snap != nil && snap.Sessions != nil {
		t := session.Target{License: hex.EncodeToString(h[:])}
		if err := snap.Sessions.Revoke(r.Context(), time.Now(), t); err != nil {
			a.s.log.Warn("license sessions not revoked", "error", err.Error())
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "bindings reset; sessions not revoked: store unavailable"})
			return
		}
	}
	a.s.log.Info("license bindings reset", "license_sha256_prefix", req.LicenseSHA256[:12])
	writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
}

// credits reads or tops up a prepaid-credits limit. The body names the limit (scope app,
// endpoint or org; owner; name) and the entity it counts for (the fields the limit is
// keyed on); amount 0 only reads the balance, a negative amount withdraws.
func (a *admin) credits(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Scope, Owner, Name         string
		Amount                     int64
		App, Endpoint, Org, Device string
		IP                         string
		LicenseSHA256              string `json:"license_sha256"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON with scope, owner, name, amount and the entity fields: " + err.Error()})
		return
	}
	snap := a.s.store.Current()
	if snap == nil || snap.Limits == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no configuration loaded"})
		return
	}
	lr := policy.LimitRequest{App: req.App, Endpoint: req.Endpoint, Org: req.Org, Device: req.Device, IP: req.IP}
	if req.LicenseSHA256 != "" {
		h, err := decodeHash(req.LicenseSHA256)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		lr.License = hex.EncodeToString(h[:])
	}
	bal, err := snap.Limits.TopUp(r.Context(), ratelimit.CreditsRef{Scope: req.Scope, Owner: req.Owner, Name: req.Name}, lr, req.Amount)
	switch {
	case errors.Is(err, ratelimit.ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if req.Amount != 0 {
		a.s.log.Info("credits adjusted", "scope", req.Scope, "owner", req.Owner, "limit", req.Name, "amount", req.Amount, "balance", bal)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"balance": bal})
}

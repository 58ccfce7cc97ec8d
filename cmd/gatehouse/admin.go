package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/ratelimit"
)

// admin serves the operator's write operations on the admin port: resetting a license's
// device bindings and topping up prepaid credits. They are off unless --admin-token-file
// is set, and every call must carry that token as a bearer token.
type admin struct {
	s     *server
	token [sha256.Size]byte
}

func newAdmin(s *server, tokenFile string) (*admin, error) {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return nil, errors.New("--admin-token-file: the token must be at least 16 characters")
	}
	return &admin{s: s, token: sha256.Sum256([]byte(tok))}, nil
}

func (a *admin) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/licenses/reset", a.auth(a.resetLicense))
	mux.HandleFunc("POST /admin/credits", a.auth(a.credits))
}

// auth checks the bearer token in constant time (comparing digests, so the length of the
// token does not leak either).
func (a *admin) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid admin bearer token is required"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h(w, r)
	}
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
	if err := a.s.deps.Store.ResetBindings(r.Context(), device.BindingKey(h)); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store: " + err.Error()})
		return
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

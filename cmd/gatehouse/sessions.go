package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/policy/session"
)

// revokeSessions revokes one session, every session of a device of an app, or every
// session of a license: {"session_id": "..."}, {"app": "...", "device_id": "..."} or
// {"license_sha256": "<hex>"}. The revocation is in the store: every replica applies it
// within the sessions' revocation_check.
func (a *admin) revokeSessions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SessionID     string `json:"session_id"`
		App           string `json:"app"`
		DeviceID      string `json:"device_id"`
		LicenseSHA256 string `json:"license_sha256"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON with session_id, app and device_id, or license_sha256"})
		return
	}
	t := session.Target{SessionID: req.SessionID, App: req.App, DeviceID: req.DeviceID}
	if req.LicenseSHA256 != "" {
		h, err := decodeHash(req.LicenseSHA256)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		t.License = hex.EncodeToString(h[:])
	}
	snap := a.s.store.Current()
	if snap == nil || snap.Sessions == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "sessions are not configured"})
		return
	}
	err := snap.Sessions.Revoke(r.Context(), time.Now(), t)
	switch {
	case errors.Is(err, session.ErrTarget):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	case err != nil:
		a.s.log.Warn("session revocation failed", "error", err.Error())
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable"})
		return
	}
	a.s.log.Info("sessions revoked", "by_session", t.SessionID != "", "by_device", t.DeviceID != "", "by_license", t.License != "")
	writeJSON(w, http.StatusOK, map[string]string{"status": "revoked"})
}

// sessionJWKS publishes the public keys of Gatehouse's session tokens, for services that
// verify them themselves: an empty set when sessions are not configured (no token verifies).
func (a *admin) sessionJWKS(w http.ResponseWriter, _ *http.Request) {
	doc := []byte(`{"keys":[]}`)
	if snap := a.s.store.Current(); snap != nil && snap.Sessions != nil {
		doc = snap.Sessions.Keys().JWKS()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=60")
	w.Write(doc)
}

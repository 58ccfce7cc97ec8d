package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
)

// MaxEnrolmentBody caps the body of an App Attest enrolment at the exchange: an
// attestation object is at most 16 KiB, a third more in base64.
const MaxEnrolmentBody = 32 << 10

// enrolment is the JSON body of an App Attest enrolment: the key id and the attestation
// object in standard base64 (as iOS gives them), and the challenge the app hashed into
// its clientDataHash.
type enrolment struct {
	KeyID       string `json:"key_id"`
	Attestation string `json:"attestation"`
	Challenge   string `json:"challenge"`
}

// readEnrolment returns the enrolment a request's body holds; ok is false when the body
// holds none (no body, or no attestation field), and code is set when it holds a broken one.
func readEnrolment(in *policy.Input) (e enrolment, keyID, obj []byte, ok bool, code policy.Code) {
	if !in.HasBody || in.Body == "" {
		return e, nil, nil, false, ""
	}
	if in.BodyPartial || len(in.Body) > MaxEnrolmentBody {
		return e, nil, nil, true, policy.InvalidAttestation
	}
	if json.Unmarshal([]byte(in.Body), &e) != nil || e.Attestation == "" {
		return e, nil, nil, false, ""
	}
	keyID, err1 := base64.StdEncoding.DecodeString(e.KeyID)
	obj, err2 := base64.StdEncoding.DecodeString(e.Attestation)
	if err1 != nil || err2 != nil || len(keyID) != 32 || e.Challenge == "" {
		return e, nil, nil, true, policy.InvalidAttestation
	}
	return e, keyID, obj, true, ""
}

// enrol verifies an App Attest enrolment at the exchange with the app's keys, and returns
// the device id its key gives later requests.
func (e *Endpoint) enrol(ctx context.Context, now time.Time, req *policy.ServeRequest) (string, policy.ServeResult, bool) {
	keys := e.Enrol[req.App]
	if keys == nil {
		return "", policy.ServeResult{}, false
	}
	body, keyID, obj, ok, code := readEnrolment(req.In)
	switch {
	case !ok:
		return "", policy.ServeResult{}, false
	case code != "":
		return "", policy.ServeResult{Code: code, Message: "The enrolment must hold key_id, attestation (standard base64) and challenge"}, true
	}
	_, err := keys.Enrol(ctx, now, keyID, obj, body.Challenge)
	var refusal *appattest.Error
	switch {
	case errors.As(err, &refusal):
		return "", policy.ServeResult{Code: refusal.Code}, true
	case err != nil:
		return "", policy.ServeResult{Err: err}, true
	}
	return keys.DeviceID(keyID), policy.ServeResult{}, true
}

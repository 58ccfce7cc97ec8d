package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
)

// sessionHeader carries the session token on --sessions requests.
const sessionHeader = "x-session-token"

// sessionsConfig is the demo app accepting Gatehouse's own sessions before its demo
// attestation tokens, with an exchange endpoint and the attested endpoint /v1/secure.
const sessionsConfig = `server:
  default_dialect: protectmyapi
apps:
  - name: demo
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767]
    endpoints: ["*"]
    attestation:
      providers:
        - type: session
` + demoTokenProvider + `sessions:
  keys: [{id: load-1, file: {{KEY}}}]
  active_key: load-1
  ttl: 24h
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: secure, path: /v1/secure, methods: [GET], attestation: require}
`

// writeSessionsConfig writes a fresh ES256 session key and sessionsConfig into dir and
// returns the config's path.
func writeSessionsConfig(dir string) (string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	keyPath := filepath.Join(dir, "session-key.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "gatehouse-sessions.yaml")
	return path, os.WriteFile(path, []byte(strings.ReplaceAll(sessionsConfig, "{{KEY}}", keyPath)), 0o600)
}

// exchangeSessions exchanges every device's attestation token for a session token at
// Gatehouse's exchange endpoint, and makes the requests carry the session token instead.
func exchangeSessions(ctx context.Context, cc *grpc.ClientConn, s *reqShape) error {
	client := authv3.NewAuthorizationClient(cc)
	for i, tok := range s.tokens {
		h := map[string]string{":method": "POST", ":path": "/v1/attest/exchange", ":authority": s.host,
			"x-app-token": "demo-app-token", attestHeader: tok, s.deviceHeader: s.deviceIDs[i]}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v1/attest/exchange", Host: s.host, Headers: h}}}}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.Check(cctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("--sessions: exchange of device %d: %w", i, err)
		}
		var a struct {
			SessionToken string `json:"session_token"`
		}
		d := resp.GetDeniedResponse()
		if d.GetStatus().GetCode() != 200 || json.Unmarshal([]byte(d.GetBody()), &a) != nil || a.SessionToken == "" {
			return fmt.Errorf("--sessions: exchange of device %d answered %d %s", i, d.GetStatus().GetCode(), d.GetBody())
		}
		s.tokens[i] = a.SessionToken
	}
	s.tokenHeader = sessionHeader
	return nil
}

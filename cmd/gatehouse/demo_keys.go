package main

// ┌──────────────────────────────────────────────────────────────────────────────────────┐
// │ DEMO KEY — NOT A SECRET. Its private half is published in this source file and in    │
// │ every gatehouse binary, so anyone can sign attestation tokens with it. Only the       │
// │ embedded demo configuration (config/demo.yaml) trusts its public half. Never put      │
// │ this key, or the JWKS built from it, into a real configuration.                       │
// └──────────────────────────────────────────────────────────────────────────────────────┘

// demoKeyID is the kid of the demo attestation key in config/demo.yaml's inline JWKS.
const demoKeyID = "gatehouse-demo-1"

// demoIssuer and demoAudience are what the demo app's signed_token provider expects.
const (
	demoIssuer   = "https://attest.gatehouse.demo"
	demoAudience = "demo"
)

// demoPrivateKey is the demo attestation service's ES256 (P-256) signing key, PKCS #8.
// DEMO ONLY: see the box above.
const demoPrivateKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoZrZFRgNb03YtL8z
7H1I1s55jPrVbeIa10WxnH4uHJyhRANCAASUVyIFsVS8JSgmWO1Tzkz9Ok/+P3ru
7ahTLWZmO2RhXdpjzWPpS+vyx4PINJWYeK5B567u9mztYjYkWhH3EhGf
-----END PRIVATE KEY-----
`

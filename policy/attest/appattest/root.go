package appattest

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"sync"
)

// appleRootPEM is Apple's App Attestation Root CA, as published at
// https://www.apple.com/certificateauthority/Apple_App_Attestation_Root_CA.pem
// (CN=Apple App Attestation Root CA, P-384, valid 2020-03-18 to 2045-03-15, SHA-256 of
// the DER 1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932; a test checks
// the digest, the self-signature and that Apple's published sample attestation chains
// to it).
//
//go:embed apple-app-attestation-root-ca.pem
var appleRootPEM []byte

var appleRoots = sync.OnceValue(func() *x509.CertPool {
	block, _ := pem.Decode(appleRootPEM)
	if block == nil {
		panic("appattest: embedded root is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("appattest: embedded root: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
})

// AppleRoots returns a pool holding only Apple's App Attestation Root CA, the default
// trust anchor of [VerifyAttestation].
func AppleRoots() *x509.CertPool { return appleRoots() }

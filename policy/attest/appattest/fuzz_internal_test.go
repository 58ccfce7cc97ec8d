package appattest

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// FuzzCBOR: the CBOR paths alone (attestation object, authenticator data with its COSE
// key and extension map, assertion), without the certificate checks that make
// FuzzAttestation slow: nothing panics, and bounded decoding holds whatever the input.
func FuzzCBOR(f *testing.F) {
	b64, err := os.ReadFile("testdata/apple-guide-attestation.b64")
	if err != nil {
		f.Fatal(err)
	}
	obj, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b64)))
	f.Add(obj)
	f.Add([]byte{0xa2, 0x69, 's', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		var att attestationObject
		if decMode.Unmarshal(b, &att) == nil {
			parseAuthData(att.AuthData)
		}
		parseAuthData(b)
		var a assertionObject
		decMode.Unmarshal(b, &a)
	})
}

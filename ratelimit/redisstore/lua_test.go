package redisstore

import (
	"crypto/sha1" //nolint:gosec // Redis names scripts by SHA-1
	"encoding/hex"
	"testing"
)

// TestScriptsUnchanged: the embedded scripts are byte for byte the ones replicas already
// running have loaded (their SHA-1s, recorded before the scripts moved into .lua files),
// so that a rolling upgrade's EVALSHA finds them and nothing is counted by two versions.
func TestScriptsUnchanged(t *testing.T) {
	for _, tc := range []struct{ name, text, sha string }{
		{"apply", applyScriptText, "9240d2b851821d3628bbc351aef021e76e62f6c6"},
		{"gcra", gcraScriptText, "32a5731702353c3a4b8499d45ff5b0d78bd44dc0"},
		{"return", returnScriptText, "d037959b2d859a3d46af16443cedbe826ad302e6"},
		{"bind", bindScriptText, "be97043d8cee134ede7c9f7a916a4c107944694a"},
		{"recswap", recSwapScriptText, "c953a621060f0f3f5d92f91f7bec0ed5c9e5b31c"},
	} {
		sum := sha1.Sum([]byte(tc.text)) //nolint:gosec // as above
		if got := hex.EncodeToString(sum[:]); got != tc.sha {
			t.Errorf("%s.lua: SHA-1 %s, want %s", tc.name, got, tc.sha)
		}
	}
}

package redisstore

import (
	"crypto/sha1" //nolint:gosec // Redis names scripts by SHA-1
	_ "embed"
	"encoding/hex"
)

// The Lua scripts live in lua/*.lua, embedded byte for byte: Redis knows a script by its
// SHA-1, so any change to a file, even of white space, is a new script (see
// TestScriptsUnchanged).

// luaScript is a script sent by EVALSHA (EVAL when Redis does not know it).
type luaScript struct{ text, sha string }

func newLuaScript(text string) luaScript {
	sum := sha1.Sum([]byte(text)) // names a Lua script for EVALSHA, as Redis does
	return luaScript{text: text, sha: hex.EncodeToString(sum[:])}
}

// applyScript evaluates every op against one consistent state and commits the admitting
// ones only if no enforcing op denies. It mirrors memoryStore.apply; values of GCRA ops
// are in µs (Lua numbers are doubles). Arguments (encode): now, then per op kind, limit,
// cost, interval, ttl, flags (1: shadow, 2: always; Op.Always). Reply: commit, then per op admitted, value, pttl.
var applyScript = newLuaScript(applyScriptText)

//go:embed lua/apply.lua
var applyScriptText string

// gcraScript is applyScript for a single GCRA op, with the same arguments and reply: a
// request with one token bucket (the usual inline device throttle) costs Redis about
// half of what the general script does.
var gcraScript = newLuaScript(gcraScriptText)

//go:embed lua/gcra.lua
var gcraScriptText string

// bindScript: bind ARGV[1] to set KEYS[1] if it has fewer than ARGV[2] members or already
// holds it; returns {bound, count}.
var bindScript = newLuaScript(bindScriptText)

//go:embed lua/bind.lua
var bindScriptText string

// returnScript takes ARGV[1] units off KEYS[1], not below zero, keeping its expiry
// (KEEPTTL: Redis 6.0 or later); a missing key stays missing.
var returnScript = newLuaScript(returnScriptText)

//go:embed lua/return.lua
var returnScriptText string

// recSwapScript replaces record KEYS[1] when its value is ARGV[2] (ARGV[1] '1') or when
// it holds none (ARGV[1] '0'): by ARGV[4] for ARGV[5] ms (ARGV[3] '1'), or by nothing
// (ARGV[3] '0', a delete). Returns 1 when it swapped, 0 otherwise.
var recSwapScript = newLuaScript(recSwapScriptText)

//go:embed lua/recswap.lua
var recSwapScriptText string

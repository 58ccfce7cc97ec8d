package config

import _ "embed"

// Demo is the embedded demo configuration that `gatehouse serve --demo` runs.
// Its facts are stable (the README, tests and smoke checks rely on them): app "demo"
// with app token "demo-app-token", the ProtectMyAPI dialect, and GET /v1/hello open to
// any request with that token.
//
//go:embed demo.yaml
var Demo []byte

// DemoPath names the demo configuration in messages.
const DemoPath = "(embedded demo)"

// Package compose holds the compose walk-through (compose.yaml, envoy.yaml, the Gatehouse
// configuration in gatehouse/ and README.md) and the tests that check, without a container
// engine, that its files fit together: the compose file parses and names pinned images,
// every file it mounts exists, and the ports and names agree with envoy.yaml and the
// Gatehouse configuration. envoy/compose_test.go validates envoy.yaml against Envoy's
// protos; cmd/gatehouse/compose_e2e_test.go replays the README's requests against a real
// server and a real Redis.
package compose

package main

import (
	"strings"
	"testing"
)

// TestLastReloadSuccessfulEndToEnd: a server whose configuration is bad from the start
// exports gatehouse_config_last_reload_successful 0 (its failure counter is already 1 at
// the first scrape, so an alert on its increase alone never fires), and 1 once the file
// is fixed; a later bad file sets it back to 0 while the good configuration serves.
func TestLastReloadSuccessfulEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const good = "endpoints:\n  - {name: e, path: /e}\n"
	path := writeConfig(t, dir, good+"not_a_key: 1\n")
	srv := startAdmin(t, false, "--config", path) // the gRPC port opens once a file loads
	metric := func(want string) func() bool {
		return func() bool { return strings.Contains(srv.body(t, "/metrics"), want) }
	}
	waitUntil(t, "the first load to fail", metric(`gatehouse_config_reloads_total{result="failure"} 1`))
	if !metric("\ngatehouse_config_last_reload_successful 0\n")() {
		t.Fatal("a server that never loaded its configuration does not say so")
	}
	writeConfig(t, dir, good)
	waitUntil(t, "the fixed file to load", metric("\ngatehouse_config_last_reload_successful 1\n"))
	srv.waitReady(t)
	writeConfig(t, dir, good+"not_a_key: 2\n")
	waitUntil(t, "the bad file to be refused", metric(`gatehouse_config_reloads_total{result="failure"} 2`))
	if !metric("\ngatehouse_config_last_reload_successful 0\n")() {
		t.Fatal("a refused reload does not say so")
	}
}

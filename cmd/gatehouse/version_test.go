package main

import (
	"context"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestBuildInfoSources: values set by -ldflags win; without them the VCS stamp of the Go
// toolchain is used; without either the fields say unknown. Expected values are typed here.
func TestBuildInfoSources(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
	}}
	cases := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  buildInfo
	}{
		{"ldflags win", "v1.2.3", "abc1234", "2026-02-03T04:05:06Z", stamped,
			buildInfo{Version: "v1.2.3", Commit: "abc1234", Date: "2026-02-03T04:05:06Z", GoVersion: runtime.Version()}},
		{"vcs fallback", "dev", "", "", stamped,
			buildInfo{Version: "dev", Commit: "0123456789abcdef0123456789abcdef01234567", Date: "2026-01-02T03:04:05Z", GoVersion: runtime.Version()}},
		{"modified tree", "dev", "", "", &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "feed"}, {Key: "vcs.modified", Value: "true"}}},
			buildInfo{Version: "dev", Commit: "feed-dirty", Date: "unknown", GoVersion: runtime.Version()}},
		{"nothing known", "", "", "", nil,
			buildInfo{Version: "dev", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := resolveBuild(c.version, c.commit, c.date, c.bi); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestVersionCommandPrintsBuild: `gatehouse version` names the version, commit, build
// date and Go version, one per line.
func TestVersionCommandPrintsBuild(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	b := currentBuild()
	for _, want := range []string{"gatehouse " + b.Version + "\n", "commit: " + b.Commit + "\n", "built: " + b.Date + "\n", "go: " + runtime.Version() + "\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
}

const monitoringMinimalConfig = `
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
endpoints:
  - {name: hello, path: /v1/hello}
`

// TestBuildInfoMetric: /metrics carries gatehouse_build_info with the build's labels and
// value 1.
func TestBuildInfoMetric(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), monitoringMinimalConfig))
	b := currentBuild()
	want := `gatehouse_build_info{commit="` + b.Commit + `",go_version="` + runtime.Version() + `",version="` + b.Version + `"} 1`
	if body := srv.body(t, "/metrics"); !strings.Contains(body, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
}

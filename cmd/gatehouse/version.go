package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=… -X main.date=…"
// (the Makefile and the Dockerfile do). A build without them falls back to the VCS stamp
// the Go toolchain records (vcs.revision, vcs.time).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildInfo says what was built, from which commit, when and with which Go.
type buildInfo struct {
	Version, Commit, Date, GoVersion string
}

// currentBuild is this binary's build information.
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(version, commit, date, bi)
}

// resolveBuild prefers the -ldflags values, then the VCS stamp of bi; what neither says
// is "unknown" ("dev" for the version). A commit built from a modified tree ends in -dirty.
func resolveBuild(version, commit, date string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if bi != nil {
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit == "" && b.Commit != "" {
			b.Commit += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// printVersion writes the build information, one fact per line.
func printVersion(w io.Writer) {
	b := currentBuild()
	fmt.Fprintf(w, "gatehouse %s\ncommit: %s\nbuilt: %s\ngo: %s\n", b.Version, b.Commit, b.Date, b.GoVersion)
}

package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time for tagged builds:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/chatd
//
// (make release does). Without it, chatd reports the module version the Go
// toolchain recorded, or "dev" for a build from a source tree.
var version = ""

// revision, revisionTime and dirty may be set the same way (-X
// main.revision=...); they win over what the toolchain recorded, which is
// nothing when building with -buildvcs=false or from a git worktree.
var revision, revisionTime, dirty string

// buildInfo is what `chatd version` prints and chatd_build_info carries.
type buildInfo struct {
	Version   string // v1.2.0, or dev
	Revision  string // VCS revision ("" when built without VCS information)
	Time      string // the revision's commit time, RFC 3339
	Dirty     bool   // built from a tree with uncommitted changes
	GoVersion string // go1.26.8
	Platform  string // linux/amd64
}

// readBuildInfo reads this binary's build information: -ldflags for the
// version, runtime/debug.ReadBuildInfo for the rest.
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(version, bi)
}

func buildInfoFrom(ldVersion string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: ldVersion, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Dirty = s.Value == "true"
			}
		}
	}
	if revision != "" {
		b.Revision, b.Time, b.Dirty = revision, revisionTime, dirty == "true"
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// write prints the build information: the first line is "chatd VERSION",
// then one "key: value" line each.
func (b buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "chatd %s\n", b.Version)
	rev, at := b.Revision, b.Time
	if rev == "" {
		rev = "unknown (built without VCS information)"
	}
	if at == "" {
		at = "unknown"
	}
	fmt.Fprintf(w, "revision: %s\n", rev)
	fmt.Fprintf(w, "time: %s\n", at)
	fmt.Fprintf(w, "dirty: %t\n", b.Dirty)
	fmt.Fprintf(w, "go: %s %s\n", b.GoVersion, b.Platform)
}

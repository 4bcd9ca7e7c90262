package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// The version comes from -ldflags when given, else from the module; the
// revision, its time and the dirty flag from the toolchain's VCS stamp.
func TestBuildInfoFrom(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	b := buildInfoFrom("", bi)
	want := buildInfo{Version: "dev", Revision: "0123abcd", Time: "2026-01-02T03:04:05Z", Dirty: true,
		GoVersion: "go1.99.1", Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if b != want {
		t.Errorf("got %+v, want %+v", b, want)
	}
	if b := buildInfoFrom("v1.2.3", bi); b.Version != "v1.2.3" {
		t.Errorf("-ldflags version: got %q", b.Version)
	}
	bi.Main.Version = "v0.4.0"
	if b := buildInfoFrom("", bi); b.Version != "v0.4.0" {
		t.Errorf("module version: got %q", b.Version)
	}
	if b := buildInfoFrom("", nil); b.Version != "dev" || b.Revision != "" || b.GoVersion != runtime.Version() {
		t.Errorf("no build info: got %+v", b)
	}
}

// `chatd version` of the real binary, built plain and as a tagged release
// is (make release passes the same -X flags).
func TestVersionCommand(t *testing.T) {
	out, err := exec.Command(chatdBinary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || lines[0] != "chatd dev" || !strings.HasPrefix(lines[1], "revision: ") ||
		!strings.HasPrefix(lines[2], "time: ") || !strings.HasPrefix(lines[3], "dirty: ") ||
		lines[4] != "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("chatd version printed:\n%s", out)
	}

	bin := filepath.Join(t.TempDir(), "chatd")
	ld := "-X main.version=v9.8.7 -X main.revision=0123456789abcdef -X main.revisionTime=2026-01-02T03:04:05Z -X main.dirty=true"
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("chatd v9.8.7\nrevision: 0123456789abcdef\ntime: 2026-01-02T03:04:05Z\ndirty: true\ngo: %s %s/%s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if string(out) != want {
		t.Errorf("tagged build printed:\n%s\nwant:\n%s", out, want)
	}
}

// /metrics carries chatd_build_info with the build's labels.
func TestBuildInfoMetric(t *testing.T) {
	m := mustRunMain(t, "--admin", "127.0.0.1:0")
	code, body, err := get("http://" + m.AdminAddr().String() + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	b := readBuildInfo()
	name := fmt.Sprintf(`chatd_build_info{dirty="%t",goversion="%s",revision="%s",version="%s"}`, b.Dirty, b.GoVersion, b.Revision, b.Version)
	if v, ok := metric(body, name); !ok || v != 1 {
		t.Errorf("%s = %v (present %v), want 1", name, v, ok)
	}
}

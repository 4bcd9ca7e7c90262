//go:build release

package main

// The release checks (make release-check, after make release): the
// archives and the .deb in dist/ hold what they should, every linux binary
// runs `version`, and the amd64 one starts and takes a NAME handshake.

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func distDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHATD_DIST")
	if dir == "" {
		dir = "../../dist"
	}
	if _, err := os.Stat(filepath.Join(dir, "SHA256SUMS")); err != nil {
		t.Fatalf("no release in %s (run make release first): %v", dir, err)
	}
	return dir
}

// SHA256SUMS names every file of dist/ and each sum is right.
func TestReleaseChecksums(t *testing.T) {
	dir := distDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		listed[name] = true
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sum mismatch", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "SHA256SUMS" && !listed[e.Name()] {
			t.Errorf("%s is not in SHA256SUMS", e.Name())
		}
	}
	for _, want := range []string{"linux-amd64.tar.gz", "linux-arm64.tar.gz", "darwin-amd64.tar.gz",
		"darwin-arm64.tar.gz", "windows-amd64.zip", "_amd64.deb", "_arm64.deb"} {
		found := false
		for name := range listed {
			found = found || strings.HasSuffix(name, want)
		}
		if !found {
			t.Errorf("no *%s in the release", want)
		}
	}
}

// extract unpacks a .tar.gz into a temporary folder and returns it.
func extract(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		path := filepath.Join(out, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(path, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(path), 0o755)
		w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, tr)
		w.Close()
	}
}

// Each linux archive holds a static binary with README and LICENSE; the
// binary prints its version (arm64 under qemu-aarch64 when there is one).
func TestReleaseLinuxBinaries(t *testing.T) {
	dir := distDir(t)
	archives, _ := filepath.Glob(filepath.Join(dir, "chatd-*-linux-*.tar.gz"))
	if len(archives) < 2 {
		t.Fatalf("linux archives: %v", archives)
	}
	versionRE := regexp.MustCompile(`^chatd (\S+)\nrevision: ([^\n]+)\ntime: (\S+)\ndirty: (true|false)\ngo: go\S+ linux/(amd64|arm64)\n$`)
	for _, archive := range archives {
		name := strings.TrimSuffix(filepath.Base(archive), ".tar.gz")
		arch := name[strings.LastIndex(name, "-")+1:]
		t.Run(arch, func(t *testing.T) {
			root := filepath.Join(extract(t, archive), name)
			for _, f := range []string{"chatd", "README.md", "LICENSE", "THIRD_PARTY_LICENSES.md"} {
				if _, err := os.Stat(filepath.Join(root, f)); err != nil {
					t.Errorf("archive lacks %s", f)
				}
			}
			bin := filepath.Join(root, "chatd")
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("the binary is dynamically linked")
				}
			}
			ef.Close()

			var cmd *exec.Cmd
			switch {
			case arch == runtime.GOARCH:
				cmd = exec.Command(bin, "version")
			case arch == "arm64":
				qemu, err := exec.LookPath("qemu-aarch64")
				if err != nil {
					if qemu, err = exec.LookPath("qemu-aarch64-static"); err != nil {
						t.Skip("no qemu-aarch64 to run the arm64 binary (apt-get install qemu-user)")
					}
				}
				cmd = exec.Command(qemu, bin, "version")
			default:
				t.Skipf("cannot run %s here", arch)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("chatd version: %v", err)
			}
			m := versionRE.FindStringSubmatch(string(out))
			if m == nil || !strings.Contains(name, "-"+m[1]+"-") || m[5] != arch {
				t.Fatalf("chatd version printed:\n%s", out)
			}
			if rev, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && m[2] != strings.TrimSpace(string(rev)) {
				t.Errorf("built from revision %s, but HEAD is %s: dist/ is stale (make release)", m[2], strings.TrimSpace(string(rev)))
			}
		})
	}
}

// The amd64 binary of the release starts and takes a NAME handshake.
func TestReleaseHandshake(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the linux/amd64 binary")
	}
	archives, _ := filepath.Glob(filepath.Join(distDir(t), "chatd-*-linux-amd64.tar.gz"))
	if len(archives) != 1 {
		t.Fatalf("linux/amd64 archives: %v", archives)
	}
	name := strings.TrimSuffix(filepath.Base(archives[0]), ".tar.gz")
	bin := filepath.Join(extract(t, archives[0]), name, "chatd")
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--http", "", "--irc", "", "--data", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addrRE := regexp.MustCompile(`nc (127\.0\.0\.1) (\d+)`)
	sc := bufio.NewScanner(stdout)
	addr := ""
	for addr == "" && sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1] + ":" + m[2]
		}
	}
	if addr == "" {
		t.Fatal("the release binary printed no nc line")
	}
	go io.Copy(io.Discard, stdout)
	alice := join(t, addr, "alice")
	alice.Send("hello\n")
	alice.Expect("alice: hello")
}

// The .deb installs the binary, the Type=notify unit pointing at it, the
// sysusers entry and a postinst that makes the chatd user.
func TestReleaseDeb(t *testing.T) {
	debs, _ := filepath.Glob(filepath.Join(distDir(t), "chatd_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("amd64 .deb: %v", debs)
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb")
	}
	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-R", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -R: %v\n%s", err, out)
	}
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/bin/chatd")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/chatd: %v %v", fi, err)
	}
	unit := read("lib/systemd/system/chatd.service")
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ExecStart=/usr/bin/chatd ", "User=chatd", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if s := read("usr/lib/sysusers.d/chatd.conf"); !strings.Contains(s, "u chatd ") {
		t.Errorf("sysusers: %q", s)
	}
	if s := read("DEBIAN/postinst"); !strings.Contains(s, "systemd-sysusers chatd.conf") || !strings.Contains(s, "adduser --system") {
		t.Errorf("postinst makes no chatd user:\n%s", s)
	}
	if s := read("DEBIAN/control"); !strings.Contains(s, "Depends: adduser") {
		t.Errorf("control:\n%s", s)
	}
	if s := read("DEBIAN/conffiles"); strings.TrimSpace(s) != "/etc/chatd/chatd.conf" {
		t.Errorf("conffiles: %q", s)
	}
}

package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"recontext.dev/guest/agent/internal/fusetest"
)

// The test binary doubles as recontext-ffs: with RECONTEXT_FFS_AS_CLI=1 it runs Main, so the
// command line is tested as a process (signals, exit status, stderr) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RECONTEXT_FFS_AS_CLI") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func ffs(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RECONTEXT_FFS_AS_CLI=1")
	return cmd
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := ffs(args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"mount"}, {"mount", "/a", "/b"}, {"mount", "/a", "--nope"}, {"set", "/a", "--layer", "x"}} {
		if out, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, out)
		}
	}
}

func TestMountSetStatusAndStop(t *testing.T) {
	fusetest.RequireFuse(t)
	dir := t.TempDir()
	mp, a, b := filepath.Join(dir, "mnt"), filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.Mkdir(mp, 0o755)
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) }) // if the agent was killed
	// The hook runs as nobody and writes in here (t.TempDir's parents are root's, mode 0700).
	marker, err := os.MkdirTemp("", "recontext-ffs-hook-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(marker) })
	os.Chmod(marker, 0o777)
	hooks := `{"hooks":[{"name":"note","paths":["/etc"],"run":["/bin/sh","-c","echo \"$RECONTEXT_CHANGED_PATHS\" > ` + marker + `/paths"],"debounceMs":0}]}`
	fusetest.WriteTree(t, a, map[string]string{"etc/app.conf": "a", ".recontext/manifest.json": `{"layer":"svc","class":"service","digest":"sha256:aa"}`, ".recontext/hooks.json": hooks})
	fusetest.WriteTree(t, b, map[string]string{"etc/app.conf": "b", ".recontext/manifest.json": `{"layer":"svc","class":"service","digest":"sha256:bb"}`, ".recontext/hooks.json": hooks})

	cmd := ffs("mount", mp, "--layer", "svc="+a+":100", "--control", filepath.Join(dir, "ctl.sock"), "--config", filepath.Join(dir, "absent.yaml"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				t.Errorf("a log line that is not JSON: %s", sc.Text())
				continue
			}
			logs <- line
		}
		close(logs)
	}()
	waitLog := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-logs:
				if !ok {
					t.Fatalf("recontext-ffs ended before logging %q", msg)
				}
				if l["msg"] == msg {
					return l
				}
				if l["level"] != "info" {
					t.Logf("recontext-ffs: %v", l)
				}
			case <-timeout:
				t.Fatalf("no %q log line within 10 s", msg)
			}
		}
	}
	defer cmd.Process.Kill()
	waitLog("control socket ready")
	if got, _ := os.ReadFile(mp + "/etc/app.conf"); string(got) != "a" {
		t.Fatalf("etc/app.conf = %q", got)
	}
	out, code := run(t, "status", mp)
	if code != 0 || !strings.Contains(out, "generation 1") || !strings.Contains(out, "svc") || !strings.Contains(out, "service") || !strings.Contains(out, "sha256:aa") {
		t.Errorf("status (exit %d):\n%s", code, out)
	}
	out, code = run(t, "set", mp, "--layer", "svc="+b+":100")
	if code != 0 || !strings.HasPrefix(out, "generation 2: svc:100") {
		t.Fatalf("set (exit %d): %s", code, out)
	}
	// set returns after the swap is announced: a read now sees the new layer.
	if got, _ := os.ReadFile(mp + "/etc/app.conf"); string(got) != "b" {
		t.Errorf("right after set: etc/app.conf = %q, want b", got)
	}
	waitLog("hook ran")
	if got, _ := os.ReadFile(marker + "/paths"); string(got) != "/etc/app.conf\n" {
		t.Errorf("the hook saw %q", got)
	}
	out, code = run(t, "status", mp, "--json")
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["generation"] != float64(2) {
		t.Errorf("status --json (exit %d): %s", code, out)
	}
	// A bad stack is refused and the stack kept.
	if out, code = run(t, "set", mp, "--layer", "svc="+a+":1", "--layer", "svc="+b+":2"); code != 1 || !strings.Contains(out, "twice") {
		t.Errorf("set with a name twice: exit %d, %s", code, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog("unmounted")
	for range logs {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(" "+mp+" ")) {
		t.Error("the mount is still there after SIGTERM")
	}
	_ = io.Discard
}

func TestRestartAfterAKillMountsAgain(t *testing.T) {
	fusetest.RequireFuse(t)
	dir := t.TempDir()
	mp, a := filepath.Join(dir, "mnt"), filepath.Join(dir, "a")
	os.Mkdir(mp, 0o755)
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	fusetest.WriteTree(t, a, map[string]string{"f": "a"})
	start := func() *exec.Cmd {
		cmd := ffs("mount", mp, "--layer", "a="+a+":1", "--control", filepath.Join(dir, "ctl.sock"), "--config", filepath.Join(dir, "absent.yaml"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			if got, _ := os.ReadFile(mp + "/f"); string(got) == "a" {
				return cmd
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatal("the union did not come up within 2 s")
		return nil
	}
	first := start()
	first.Process.Signal(syscall.SIGKILL) // leaves a dead mount behind (ENOTCONN)
	first.Wait()
	second := start()
	// Mounting over the dead mount works without detaching it, but would stack a dead mount
	// under every restart: exactly one mount is at mp.
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mountinfo), " "+mp+" "); n != 1 {
		t.Errorf("%d mounts at %s after the restart, want 1 (the dead one detached)", n, mp)
	}
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("the restarted agent: %v", err)
	}
}

package hooks

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/union"
)

func serviceLayer(t *testing.T, name string, files map[string]string) layer.Layer {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	fusetest.WriteTree(t, root, files)
	return layer.Layer{Name: name, Class: "service", Priority: 100, Root: root, Source: layer.Source{Kind: "device", Device: "/dev/sr0"}}
}

const idHook = `{"hooks":[{"name":"who","paths":["/etc/app"],"run":["/bin/sh","-c","echo uid=$(id -u) groups=$(id -G); echo \"$RECONTEXT_CHANGED_PATHS\""],"debounceMs":50}]}`

func newRunner(t *testing.T, policy Policy) (*union.Union, *Runner) {
	t.Helper()
	u := union.New(union.Options{})
	r := NewRunner(policy, "/run/recontext/context", slog.New(slog.NewTextHandler(io.Discard, nil)))
	u.OnChange(r.OnChange)
	t.Cleanup(r.Close)
	return u, r
}

func swap(t *testing.T, u *union.Union, layers ...layer.Layer) {
	t.Helper()
	if _, err := u.Swap(layers); err != nil {
		t.Fatal(err)
	}
}

func TestRunHookRunsAsTheConfiguredUserWithTheChangedPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("hook tests switch users and need root: run `go test` as root")
	}
	u, r := newRunner(t, DefaultPolicy())
	v1 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": idHook, "etc/app/a.conf": "1", "etc/other": "1"})
	v2 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": idHook, "etc/app/a.conf": "2", "etc/other": "2"})
	v3 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": idHook, "etc/app/a.conf": "2", "etc/app/b.conf": "new", "etc/other": "3"})
	swap(t, u, v1) // the first stack fires nothing
	r.Idle()
	if st := r.Status(); len(st.InForce) != 1 || st.InForce[0].Runs != 0 {
		t.Fatalf("after the first stack: %+v", st)
	}
	// Two swaps 10 ms apart make one run (debounce 50 ms) with the paths of both.
	swap(t, u, v2)
	time.Sleep(10 * time.Millisecond)
	swap(t, u, v3)
	r.Idle()
	st := r.Status().InForce[0]
	if st.Runs != 1 {
		t.Fatalf("%d runs, want 1 (debounced)", st.Runs)
	}
	out := st.LastRun.Output
	if !strings.Contains(out, "uid=65534 groups=65534") {
		t.Errorf("the hook ran as %q, want nobody without root's groups", out)
	}
	if !strings.Contains(out, "/etc/app/a.conf\n/etc/app/b.conf") || strings.Contains(out, "/etc/other") {
		t.Errorf("changed paths %q, want a.conf and b.conf under the hook's path only", out)
	}
	// A swap that changes nothing under /etc/app runs nothing.
	v4 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": idHook, "etc/app/a.conf": "2", "etc/app/b.conf": "new", "etc/other": "4"})
	swap(t, u, v4)
	r.Idle()
	if got := r.Status().InForce[0].Runs; got != 1 {
		t.Errorf("%d runs after a change outside the hook's paths, want still 1", got)
	}
}

func TestHooksOfOtherClassesDoNotRun(t *testing.T) {
	u, r := newRunner(t, DefaultPolicy())
	marker := filepath.Join(t.TempDir(), "ran")
	hook := `{"hooks":[{"name":"x","paths":["/"],"run":["/bin/touch","` + marker + `"],"debounceMs":0}]}`
	b1 := serviceLayer(t, "broker", map[string]string{".recontext/hooks.json": hook, "f": "1"})
	b2 := serviceLayer(t, "broker", map[string]string{".recontext/hooks.json": hook, "f": "2"})
	b1.Class, b2.Class, b1.Priority, b2.Priority = "broker", "broker", 1000, 1000
	swap(t, u, b1)
	swap(t, u, b2)
	r.Idle()
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a broker layer's hook ran")
	}
	if st := r.Status(); len(st.InForce) != 0 || len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error, "class broker") {
		t.Errorf("status %+v, want no hook in force and the refusal listed", st)
	}
}

func TestSignalHookRefusesAPidfileLinkedIntoTheMount(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "mnt")
	os.MkdirAll(mp, 0o755)
	os.WriteFile(filepath.Join(mp, "app.pid"), []byte("12345\n"), 0o644)
	link := filepath.Join(dir, "app.pid")
	if err := os.Symlink(filepath.Join(mp, "app.pid"), link); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(Policy{Pidfiles: []string{link}, Signals: []string{"HUP"}}, mp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := r.signal(Hook{Pidfile: link, SignalName: "SIGHUP"})
	if err == nil || !strings.Contains(err.Error(), "leads into the mount") {
		t.Errorf("signal through a link into the mount: %v", err)
	}
}

func TestRunHookIsKilledWholeAtItsTimeout(t *testing.T) {
	u, r := newRunner(t, DefaultPolicy())
	// The shell starts a grandchild: the timeout must kill the group, not leave it behind.
	hook := `{"hooks":[{"name":"slow","paths":["/"],"run":["/bin/sh","-c","sleep 30 & wait"],"debounceMs":0,"timeoutMs":200}]}`
	v1 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "f": "1"})
	v2 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "f": "2"})
	swap(t, u, v1)
	started := time.Now()
	swap(t, u, v2)
	r.Idle()
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("the run took %v: the grandchild kept it alive", took)
	}
	last := r.Status().InForce[0].LastRun
	if last == nil || last.ExitCode != nil || !strings.Contains(last.Error, "killed after timeoutMs 200") {
		t.Errorf("last run %+v, want killed after its timeout", last)
	}
}

func TestSignalHookSignalsTheListedPidfile(t *testing.T) {
	dir := t.TempDir()
	got, pidfile := filepath.Join(dir, "got"), filepath.Join(dir, "app.pid")
	app := exec.Command("/bin/sh", "-c", `trap 'echo HUP > `+got+`; exit 0' HUP; echo $$ > `+pidfile+`; while :; do sleep 0.05; done`)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer app.Process.Kill()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(pidfile); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	policy := DefaultPolicy()
	policy.Pidfiles = []string{pidfile}
	u, r := newRunner(t, policy)
	hook := `{"hooks":[{"name":"hup","paths":["/etc"],"signal":{"name":"HUP","pidfile":"` + pidfile + `"},"debounceMs":0}]}`
	swap(t, u, serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "etc/a": "1"}))
	swap(t, u, serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "etc/a": "2"}))
	r.Idle()
	app.Wait()
	if b, _ := os.ReadFile(got); string(b) != "HUP\n" {
		t.Errorf("the application got %q; last run %+v", b, r.Status().InForce[0].LastRun)
	}
}

func TestChangesDuringARunMakeOneMoreRunNeverOverlapping(t *testing.T) {
	u, r := newRunner(t, DefaultPolicy())
	lock := filepath.Join(t.TempDir(), "lock")
	// mkdir fails if another run holds the lock: the output says OVERLAP.
	hook := `{"hooks":[{"name":"slow","paths":["/"],"run":["/bin/sh","-c","mkdir ` + lock + ` || echo OVERLAP; sleep 0.3; rmdir ` + lock + `; echo \"$RECONTEXT_CHANGED_PATHS\""],"debounceMs":0}]}`
	r.policy.RunUser = "root" // the lock lives in root's temporary directory
	layers := make([]layer.Layer, 5)
	for i := range layers {
		layers[i] = serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, fmt.Sprintf("f%d", i): "x"})
	}
	swap(t, u, layers[0])
	swap(t, u, layers[1])              // run 1 starts at once
	time.Sleep(100 * time.Millisecond) // …and is running:
	swap(t, u, layers[2])
	swap(t, u, layers[3]) // these two make one more run after it
	r.Idle()
	st := r.Status().InForce[0]
	if st.Runs != 2 {
		t.Errorf("%d runs, want 2", st.Runs)
	}
	if out := st.LastRun.Output; strings.Contains(out, "OVERLAP") || !strings.Contains(out, "/f2\n/f3") {
		t.Errorf("last run's output %q: want no overlap and the paths of the changes during the first run", out)
	}
}

// A forced media change takes the old image away before the agent hears of it: the comparison
// must not need the old tree any more (it was indexed, contents hashed, when it arrived).
func TestChangesAreFoundWhenTheOldTreeIsGone(t *testing.T) {
	u, r := newRunner(t, DefaultPolicy())
	hook := `{"hooks":[{"name":"x","paths":["/etc"],"run":["/bin/sh","-c","echo \"$RECONTEXT_CHANGED_PATHS\""],"debounceMs":0}]}`
	r.policy.RunUser = "root"
	v1 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "etc/a.conf": "1", "etc/same.conf": "same"})
	v2 := serviceLayer(t, "app", map[string]string{".recontext/hooks.json": hook, "etc/a.conf": "2", "etc/same.conf": "same"})
	swap(t, u, v1)
	r.Idle()
	if err := os.RemoveAll(v1.Root); err != nil { // the medium is gone
		t.Fatal(err)
	}
	swap(t, u, v2)
	r.Idle()
	st := r.Status().InForce
	if len(st) != 1 || st[0].LastRun == nil {
		t.Fatalf("no run: %+v", r.Status())
	}
	if got := st[0].LastRun.Output; got != "/etc/a.conf" {
		t.Errorf("changed paths %q, want only /etc/a.conf (same.conf has the same content)", got)
	}
}

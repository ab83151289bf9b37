package union

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
)

// mountUnion mounts a fresh union in a temporary directory and unmounts it when the test ends.
func mountUnion(t *testing.T, opts Options) (*Union, string) {
	t.Helper()
	fusetest.RequireFuse(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	u := New(opts)
	if err := u.Mount(mp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return u, mp
}

// image is a layer whose tree never changes (as a mounted context image).
func image(t *testing.T, name string, priority int64, files map[string]string) layer.Layer {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	fusetest.WriteTree(t, root, files)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return layer.Layer{Name: name, Priority: priority, Root: root, Source: layer.Source{Kind: "device", Device: "/dev/test"}}
}

func mustSwap(t *testing.T, u *Union, layers ...layer.Layer) Change {
	t.Helper()
	c, err := u.Swap(layers)
	if err != nil {
		t.Fatal(err)
	}
	if c.InvalidateErr != nil {
		t.Fatal(c.InvalidateErr)
	}
	return c
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestMountServesMergeRules(t *testing.T) {
	u, mp := mountUnion(t, Options{})
	low := image(t, "low", 100, map[string]string{"etc/a": "low a", "etc/b": "low b", "hidden/x": "x", ".recontext/manifest.json": "{}"})
	high := image(t, "high", 300, map[string]string{"etc/a": "high a", "hidden": "a file hides the directory below"})
	mustSwap(t, u, low, high)
	if got := read(t, mp+"/etc/a"); got != "high a" {
		t.Errorf("etc/a = %q, want the higher layer's", got)
	}
	if got := read(t, mp+"/etc/b"); got != "low b" {
		t.Errorf("etc/b = %q, want the lower layer's (directories merge)", got)
	}
	if _, err := os.Stat(mp + "/hidden/x"); err == nil {
		t.Error("hidden/x is visible through a higher layer's file named hidden")
	}
	names, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if want := []string{".recontext", "etc", "hidden"}; !slices.Equal(got, want) {
		t.Errorf("root lists %v, want %v (the layers' .recontext is metadata, the union's is its own)", got, want)
	}
	if err := os.WriteFile(mp+"/etc/a", []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writing = %v, want EROFS", err)
	}
	// Removing the higher layer reveals what was beneath.
	mustSwap(t, u, low)
	if got := read(t, mp+"/etc/a"); got != "low a" {
		t.Errorf("after removing high: etc/a = %q, want low a", got)
	}
	if got := read(t, mp+"/hidden/x"); got != "x" {
		t.Errorf("after removing high: hidden/x = %q", got)
	}
}

func TestSwapInvalidatesExactlyWhatChanged(t *testing.T) {
	u, mp := mountUnion(t, Options{})
	base := image(t, "base", 100, map[string]string{"etc/static.conf": "static", "srv/data": "data"})
	siteA := image(t, "siteA", 300, map[string]string{"etc/app.conf": "A"})
	siteB := image(t, "siteA", 300, map[string]string{"etc/app.conf": "B", "etc/new.conf": "new"})
	mustSwap(t, u, base, siteA)
	// The kernel learns these; a negative entry for etc/new.conf too.
	staticIno, appIno, dataIno := ino(t, mp+"/etc/static.conf"), ino(t, mp+"/etc/app.conf"), ino(t, mp+"/srv/data")
	if _, err := os.Stat(mp + "/etc/new.conf"); !os.IsNotExist(err) {
		t.Fatalf("etc/new.conf before: %v", err)
	}
	before := u.Notified()
	c := mustSwap(t, u, base, siteB)
	// app.conf is another version, new.conf appeared: two names in etc, nothing else.
	// The root's and etc's attributes are the top layer's, whose directories differ in mtime.
	if got := u.Notified() - before; got < 2 || got > 4 {
		t.Errorf("%d invalidations, want the 2 changed names in etc (+ the attributes of / and etc at most)", got)
	}
	if c.Invalidated != int(u.Notified()-before) {
		t.Errorf("Change.Invalidated %d, notified %d", c.Invalidated, u.Notified()-before)
	}
	if got := read(t, mp+"/etc/app.conf"); got != "B" {
		t.Errorf("app.conf right after the swap = %q, want B", got)
	}
	if got := read(t, mp+"/etc/new.conf"); got != "new" {
		t.Errorf("new.conf right after the swap = %q (a cached negative entry not invalidated?)", got)
	}
	if ino(t, mp+"/etc/app.conf") == appIno {
		t.Error("a changed file kept its inode: its page cache could mix two versions")
	}
	if ino(t, mp+"/etc/static.conf") != staticIno || ino(t, mp+"/srv/data") != dataIno {
		t.Error("an unchanged file got a new inode: the swap invalidated more than what changed")
	}
}

func TestOpenFileKeepsItsVersion(t *testing.T) {
	u, mp := mountUnion(t, Options{})
	v1 := image(t, "site", 1, map[string]string{"f": strings.Repeat("1", 300_000)})
	v2 := image(t, "site", 1, map[string]string{"f": strings.Repeat("2", 200_000)})
	mustSwap(t, u, v1)
	f, err := os.Open(mp + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := f.Read(head); err != nil {
		t.Fatal(err)
	}
	mustSwap(t, u, v2)
	if got := read(t, mp+"/f"); got != strings.Repeat("2", 200_000) {
		t.Fatalf("a new open after the swap reads %d bytes starting %q, want version 2", len(got), got[:1])
	}
	rest := make([]byte, 400_000)
	n, _ := f.ReadAt(rest, 4096)
	if got := string(rest[:n]); got != strings.Repeat("1", 300_000-4096) {
		t.Errorf("the file opened before the swap read %d bytes, not version 1 to its end", n)
	}
	if u.OpenFiles(v1.Root) != 1 {
		t.Errorf("OpenFiles(v1) = %d, want 1", u.OpenFiles(v1.Root))
	}
	released := u.Released(v1.Root)
	f.Close()
	<-released
}

func TestStatusFile(t *testing.T) {
	u, mp := mountUnion(t, Options{Status: func() []byte { return []byte(`{"generation":42}` + "\n") }})
	_ = u
	if got := read(t, mp+"/.recontext/status.json"); got != "{\"generation\":42}\n" {
		t.Errorf("status.json = %q", got)
	}
	st, err := os.Stat(mp + "/.recontext/status.json")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("status.json mode %v, want 0600 (hook output may be sensitive)", st.Mode())
	}
}

// The FUSE connection must not leak into child processes (hook commands run as another user):
// a child holding it could answer the kernel's requests for the union.
func TestFuseDeviceIsNotInherited(t *testing.T) {
	mountUnion(t, Options{})
	out, err := exec.Command("/bin/sh", "-c", "ls -l /proc/$$/fd").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "/dev/fuse") {
		t.Errorf("a child process inherited the FUSE connection:\n%s", out)
	}
}

// Package fusetest holds what tests against real FUSE mounts share: the prerequisite check
// (fails, saying what to install, instead of skipping) and tree builders.
package fusetest

import (
	"os"
	"path/filepath"
	"testing"
)

// RequireFuse fails the test unless a real FUSE mount can be made here: root (go-fuse mounts
// /dev/fuse itself) and the kernel's fuse module.
func RequireFuse(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("FUSE tests mount /dev/fuse directly and need root (CAP_SYS_ADMIN): run `go test` as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("FUSE tests need /dev/fuse (%v): load the kernel module (`modprobe fuse`); in a container, pass --device /dev/fuse", err)
	}
}

// WriteTree writes files (relative path → content) under root, creating directories.
func WriteTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

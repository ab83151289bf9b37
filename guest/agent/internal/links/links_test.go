package links

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	l := Link{Path: "/etc/glusterfs"}
	const mp = "/run/recontext/context"
	for _, tc := range []struct {
		name string
		now  Existing
		want Action
	}{
		{"nothing there", Existing{}, Create},
		{"our link", Existing{Present: true, Symlink: true, Target: mp + "/etc/glusterfs"}, Keep},
		{"our link to another mountpoint", Existing{Present: true, Symlink: true, Target: "/mnt/ctx/etc/glusterfs"}, Conflict},
		{"someone else's link", Existing{Present: true, Symlink: true, Target: "/opt/gluster/etc"}, Conflict},
		{"a real directory", Existing{Present: true}, Conflict},
	} {
		if got := Decide(l, mp, tc.now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := (Link{Path: "/etc/nginx/site.conf", From: "/nginx/site.conf"}).Target(mp); got != mp+"/nginx/site.conf" {
		t.Errorf("target with from: %s", got)
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "context")
	taken := filepath.Join(dir, "etc/taken")
	os.MkdirAll(taken, 0o755)
	ours := filepath.Join(dir, "etc/ours")
	os.Symlink(filepath.Join(mp, ours), ours) // made by an earlier run
	results := Apply([]Link{
		{Path: filepath.Join(dir, "etc/app")},
		{Path: taken},
		{Path: ours},
		{Path: filepath.Join(mp, "inside")},
	}, mp)
	var states []string
	for _, r := range results {
		states = append(states, strings.SplitN(r.State, ":", 2)[0])
	}
	if strings.Join(states, " ") != "created conflict kept conflict" {
		t.Fatalf("states %v (%+v)", states, results)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "etc/app")); target != filepath.Join(mp, dir, "etc/app") {
		t.Errorf("created link points to %s", target)
	}
	if info, _ := os.Lstat(taken); !info.IsDir() {
		t.Error("a real directory was replaced")
	}
	again := Apply([]Link{{Path: filepath.Join(dir, "etc/app")}}, mp)
	if again[0].State != "kept" {
		t.Errorf("second run: %s", again[0].State)
	}
	if err := (Link{Path: "etc/x"}).Validate(); err == nil {
		t.Error("a relative path must not validate")
	}
}

package union

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
)

func stackOf(t *testing.T, gen uint64, layers ...layer.Layer) *Stack {
	t.Helper()
	s, err := NewStack(layers, gen, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sameTimes gives every entry of a tree one mtime, so directories of two trees written alike
// have equal attributes (as two images built with one timestamp do).
func sameTimes(t *testing.T, root string) {
	t.Helper()
	when := time.Unix(1_700_000_000, 0)
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Chtimes(p, when, when)
		}
		return nil
	})
}

func TestInvalidations(t *testing.T) {
	tree := func(name string, priority int64, files map[string]string) layer.Layer {
		l := image(t, name, priority, files)
		sameTimes(t, l.Root)
		return l
	}
	base := tree("base", 100, map[string]string{"etc/static.conf": "s", "etc/over.conf": "base", "lib/x": "x"})
	siteA := tree("site", 300, map[string]string{"etc/app.conf": "a", "etc/over.conf": "site"})
	siteB := tree("site", 300, map[string]string{"etc/app.conf": "b", "etc/new.conf": "n"})
	known := []string{"", "etc", "lib"}
	str := func(invs []Invalidation) []string {
		var out []string
		for _, i := range invs {
			out = append(out, fmt.Sprintf("%s:%s", i.Dir, i.Name))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name          string
		before, after *Stack
		want          []string
	}{
		{"the same trees: nothing", stackOf(t, 1, base, siteA), stackOf(t, 2, base, siteA), nil},
		{"a new image of the top layer: its names in etc, and what it revealed",
			stackOf(t, 1, base, siteA), stackOf(t, 2, base, siteB),
			[]string{"etc:app.conf", "etc:new.conf", "etc:over.conf"}},
		{"removing the top layer reveals the base's over.conf", stackOf(t, 1, base, siteA), stackOf(t, 2, base),
			[]string{"etc:app.conf", "etc:over.conf"}},
		// Known directories that vanish lose their attributes too: a process inside one sees the
		// change at its next stat.
		{"everything goes", stackOf(t, 1, base), stackOf(t, 2),
			[]string{":", ":etc", ":lib", "etc:", "etc:over.conf", "etc:static.conf", "lib:", "lib:x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			invs, err := Invalidations(tc.before, tc.after, known)
			if err != nil {
				t.Fatal(err)
			}
			if got := str(invs); !slices.Equal(got, tc.want) {
				t.Errorf("invalidations %v, want %v", got, tc.want)
			}
		})
	}
	// Only what the kernel knows is visited: with lib unknown, nothing under it.
	invs, _ := Invalidations(stackOf(t, 1, base), stackOf(t, 2), []string{""})
	if got := str(invs); !slices.Equal(got, []string{":", ":etc", ":lib"}) {
		t.Errorf("root only: %v", got)
	}
}

func TestDirectoryLayerEditedInPlaceIsSeenAfterTheNextSet(t *testing.T) {
	u, mp := mountUnion(t, Options{})
	root := filepath.Join(t.TempDir(), "dir")
	fusetest.WriteTree(t, root, map[string]string{"etc/a.conf": "one"})
	l := layer.Layer{Name: "local", Priority: 1, Root: root, Source: layer.Source{Kind: "dir", Path: root}}
	mustSwap(t, u, l)
	if got := read(t, mp+"/etc/a.conf"); got != "one" {
		t.Fatal(got)
	}
	fusetest.WriteTree(t, root, map[string]string{"etc/a.conf": "two, longer"})
	// The same layer again: a directory layer is re-read at every swap, and exactly the file
	// edited is invalidated.
	if c := mustSwap(t, u, l); c.Invalidated != 1 {
		t.Errorf("%d invalidations, want 1 (etc/a.conf)", c.Invalidated)
	}
	if got := read(t, mp+"/etc/a.conf"); got != "two, longer" {
		t.Errorf("after set: %q", got)
	}
	if c := mustSwap(t, u, l); c.Invalidated != 0 {
		t.Errorf("a set that changes nothing invalidated %d entries", c.Invalidated)
	}
}

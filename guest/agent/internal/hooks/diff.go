package hooks

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"recontext.dev/guest/agent/internal/union"
)

// viewEntry is one union path of a stack as the diff sees it.
type viewEntry struct {
	kind     union.Kind
	realPath string
	mode     uint32
	uid, gid uint32
	size     int64
	dev, ino uint64
	mtime    int64
}

// indexView lists every union path of a stack ("/etc/x.conf") at or under one of within (hook
// paths; "/" is everything), walking only their ancestors to get there: a change elsewhere
// concerns no hook, and walking (and hashing) it would only delay the hooks. Reads the layer
// trees through the stack's memoized resolution, never the mount.
func indexView(s *union.Stack, within []string) (map[string]viewEntry, error) {
	index := map[string]viewEntry{}
	where := func(path string) (in, towards bool) {
		for _, w := range within {
			if PathMatches(w, path) {
				return true, false
			}
			if strings.HasPrefix(w, path+"/") {
				towards = true
			}
		}
		return false, towards
	}
	var visit func(rel string, dir *union.Entry) error
	visit = func(rel string, dir *union.Entry) error {
		names, err := s.List(rel, dir)
		if err != nil {
			return err
		}
		for _, name := range names {
			childRel := name
			if rel != "" {
				childRel = rel + "/" + name
			}
			in, towards := where("/" + childRel)
			if !in && !towards {
				continue
			}
			child, err := s.Resolve(childRel)
			if err != nil {
				return err
			}
			if child == nil {
				continue
			}
			if in {
				st := &child.Stat
				index["/"+childRel] = viewEntry{kind: child.Kind, realPath: child.RealPath, mode: st.Mode, uid: st.Uid, gid: st.Gid,
					size: st.Size, dev: st.Dev, ino: st.Ino, mtime: st.Mtim.Nano()}
			}
			if child.Kind == union.Dir {
				if err := visit(childRel, child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root, err := s.Resolve("")
	if err != nil || root == nil || root.Kind != union.Dir {
		return index, err
	}
	return index, visit("", root)
}

// contentHashes keeps file hashes by identity, so a file seen in several diffs is read once. Bounded.
type contentHashes struct {
	mu     sync.Mutex
	hashes map[string][32]byte
}

const maxHashes = 20_000

func (c *contentHashes) hash(e viewEntry) ([32]byte, error) {
	key := fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d", e.realPath, e.dev, e.ino, e.size, e.mtime)
	c.mu.Lock()
	h, ok := c.hashes[key]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	f, err := os.Open(e.realPath)
	if err != nil {
		return h, err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return h, err
	}
	copy(h[:], sum.Sum(nil))
	c.mu.Lock()
	if c.hashes == nil || len(c.hashes) >= maxHashes {
		c.hashes = map[string][32]byte{}
	}
	c.hashes[key] = h
	c.mu.Unlock()
	return h, nil
}

// diffViews lists the sorted union paths that differ: type, mode, owner, symlink target, or
// content (size, then sha256 when sizes are equal; the same real file with the same size and
// mtime is not read).
func diffViews(before, after map[string]viewEntry, hashes *contentHashes) ([]string, error) {
	var changed []string
	for path, a := range before {
		b, ok := after[path]
		if !ok {
			changed = append(changed, path)
			continue
		}
		d, err := differs(a, b, hashes)
		if err != nil {
			return nil, err
		}
		if d {
			changed = append(changed, path)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			changed = append(changed, path)
		}
	}
	slices.Sort(changed)
	return changed, nil
}

func differs(a, b viewEntry, hashes *contentHashes) (bool, error) {
	if a.kind != b.kind || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid {
		return true, nil
	}
	switch a.kind {
	case union.Dir:
		return false, nil
	case union.Symlink:
		ta, err := os.Readlink(a.realPath)
		if err != nil {
			return false, err
		}
		tb, err := os.Readlink(b.realPath)
		return ta != tb, err
	}
	if a.size != b.size {
		return true, nil
	}
	if a.realPath == b.realPath && a.dev == b.dev && a.ino == b.ino && a.mtime == b.mtime {
		return false, nil
	}
	ha, err := hashes.hash(a)
	if err != nil {
		return false, err
	}
	hb, err := hashes.hash(b)
	return ha != hb, err
}

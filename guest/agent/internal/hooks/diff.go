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
	sum      [32]byte // a file's content hash, taken when indexed
	target   string   // a symlink's target
}

// indexView lists every union path of a stack ("/etc/x.conf") at or under one of within (hook
// paths; "/" is everything), walking only their ancestors to get there: a change elsewhere
// concerns no hook, and walking (and hashing) it would only delay the hooks. Reads the layer
// trees through the stack's memoized resolution, never the mount. Contents are hashed and
// symlinks read now, while the stack's media are surely there: the next change compares against
// this index, when the medium may be gone (a forced media change).
func indexView(s *union.Stack, within []string, hashes *contentHashes) (map[string]viewEntry, error) {
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
				e := viewEntry{kind: child.Kind, realPath: child.RealPath, mode: st.Mode, uid: st.Uid, gid: st.Gid,
					size: st.Size, dev: st.Dev, ino: st.Ino, mtime: st.Mtim.Nano()}
				switch child.Kind {
				case union.File:
					if e.sum, err = hashes.hash(e); err != nil {
						return err
					}
				case union.Symlink:
					if e.target, err = os.Readlink(child.RealPath); err != nil {
						return err
					}
				}
				index["/"+childRel] = e
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
// content (size, then the hash taken at indexing).
func diffViews(before, after map[string]viewEntry) []string {
	var changed []string
	for path, a := range before {
		if b, ok := after[path]; !ok || differs(a, b) {
			changed = append(changed, path)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			changed = append(changed, path)
		}
	}
	slices.Sort(changed)
	return changed
}

func differs(a, b viewEntry) bool {
	if a.kind != b.kind || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid {
		return true
	}
	switch a.kind {
	case union.Dir:
		return false
	case union.Symlink:
		return a.target != b.target
	}
	return a.size != b.size || a.sum != b.sum
}

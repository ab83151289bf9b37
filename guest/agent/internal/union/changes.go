package union

import (
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Invalidation is one kernel cache entry a swap must drop before it is announced.
type Invalidation struct {
	Dir  string // the directory (union path relative to the root; "" is the root)
	Name string // a name in Dir whose lookup answer changed; "" means Dir's own attributes
}

// version identifies what a union path shows: two stacks showing the same version for a path
// answer every lookup, stat and read of it identically. A file or symlink is one version of one
// real file: its path (a new image is mounted at a new directory, so its files are new versions
// even with equal bytes: the old image may be unmounted while the new inode is read) and its
// identity and change time (a directory layer's file edited in place between two swaps is a new
// version; one left alone is not). A directory is its visible attributes (its children are
// compared one level down). The zero version is "absent".
type version struct {
	kind           Kind
	path           string
	dev, ino       uint64
	mode, uid, gid uint32
	size           int64
	mtime, ctime   unix.Timespec
}

func versionOf(e *Entry) version {
	if e == nil {
		return version{}
	}
	st := &e.Stat
	if e.Kind == Dir {
		return version{kind: Dir, mode: st.Mode, uid: st.Uid, gid: st.Gid, mtime: st.Mtim}
	}
	return version{kind: e.Kind, path: e.RealPath, dev: st.Dev, ino: st.Ino, mode: st.Mode, uid: st.Uid, gid: st.Gid,
		size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// treeKey identifies everything at and below a directory: the trees of its contributors. Equal
// keys in two stacks mean the whole subtree resolves identically (resolution below a directory
// depends only on its contributors).
func treeKey(s *Stack, e *Entry) string {
	if e == nil || e.Kind != Dir {
		return ""
	}
	ids := make([]string, len(e.Contributors))
	for i, c := range e.Contributors {
		ids[i] = s.identity[c]
	}
	return strings.Join(ids, "\x01")
}

// Invalidations lists, for the directories the kernel may hold entries of (known), every name
// whose lookup answer differs between the stacks before and after a swap: entries added, removed,
// or showing another version (a changed file gets a new inode, so an open file keeps its own
// pages); and the directories whose own attributes changed. Directories whose contributors are
// the same trees in both stacks are skipped with everything below them.
//
// A directory known to the kernel whose attributes changed is invalidated as an inode (its
// cached children stay, and so do their page caches), not as an entry of its parent.
func Invalidations(before, after *Stack, known []string) ([]Invalidation, error) {
	var out []Invalidation
	isKnown := make(map[string]bool, len(known))
	for _, dir := range known {
		isKnown[dir] = true
	}
	for _, dir := range known {
		b, err := before.Resolve(dir)
		if err != nil {
			return nil, err
		}
		a, err := after.Resolve(dir)
		if err != nil {
			return nil, err
		}
		if dir == "" && b == nil && a == nil {
			continue
		}
		if (b != nil || a != nil) && treeKey(before, b) == treeKey(after, a) && versionOf(b) == versionOf(a) {
			continue
		}
		if versionOf(b) != versionOf(a) {
			out = append(out, Invalidation{Dir: dir})
		}
		names, err := unionOfNames(before, b, after, a, dir)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			child := joinRel(dir, name)
			cb, err := before.Resolve(child)
			if err != nil {
				return nil, err
			}
			ca, err := after.Resolve(child)
			if err != nil {
				return nil, err
			}
			if cb != nil && ca != nil && cb.Kind == Dir && ca.Kind == Dir && isKnown[child] {
				continue // compared as a known directory itself
			}
			if (cb == nil) != (ca == nil) || versionOf(cb) != versionOf(ca) {
				out = append(out, Invalidation{Dir: dir, Name: name})
			}
		}
	}
	return out, nil
}

func unionOfNames(before *Stack, b *Entry, after *Stack, a *Entry, dir string) ([]string, error) {
	var names []string
	if b != nil && b.Kind == Dir {
		n, err := before.List(dir, b)
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	if a != nil && a.Kind == Dir {
		n, err := after.List(dir, a)
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

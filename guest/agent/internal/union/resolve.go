package union

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"recontext.dev/guest/agent/internal/layer"
)

// Kind is what a union path is. Device nodes, FIFOs and sockets inside layers are absent: the
// union serves configuration.
type Kind uint8

const (
	File Kind = iota + 1
	Dir
	Symlink
)

// Entry is a resolved union path in one stack.
type Entry struct {
	Kind     Kind
	Layer    int    // index in Stack.Layers of the layer serving it (a directory: the highest that has it)
	RealPath string // the path in that layer's tree
	Stat     unix.Stat_t
	// Contributors: for a directory, the indexes of the layers whose directories merge here,
	// highest first. Below this path only these layers can show through.
	Contributors []int
}

func kindOf(mode uint32) Kind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	}
	return 0
}

// Resolve resolves a union path relative to the root ("" is the root, "etc/x.conf") against the
// stack: nil when no layer has it. The rule (the paper's): the highest-priority layer that has the
// path serves it; a layer shows through below a path only if every higher layer that has the
// parent has it as a directory. The reserved directory at the root is never resolved here.
// Memoized per stack (a layer's tree does not change while it is in the stack).
func (s *Stack) Resolve(rel string) (*Entry, error) {
	s.mu.Lock()
	e, ok := s.entries[rel]
	s.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := s.resolve(rel)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.entries[rel] = e
	s.mu.Unlock()
	return e, nil
}

func (s *Stack) resolve(rel string) (*Entry, error) {
	if rel == "" {
		all := make([]int, len(s.Layers))
		for i := range all {
			all[i] = i
		}
		return s.lookupIn(all, "")
	}
	first, _, _ := strings.Cut(rel, "/")
	if first == layer.Reserved {
		return nil, nil
	}
	parent, err := s.Resolve(parentOf(rel))
	if err != nil || parent == nil || parent.Kind != Dir {
		return nil, err
	}
	return s.lookupIn(parent.Contributors, rel)
}

// lookupIn resolves rel among eligible layers (each has rel's parent as a directory).
func (s *Stack) lookupIn(eligible []int, rel string) (*Entry, error) {
	var found *Entry
	for _, i := range eligible {
		var st unix.Stat_t
		path := filepath.Join(s.Layers[i].Root, rel)
		var err error
		if rel == "" {
			err = unix.Stat(path, &st) // a layer root may be a symlink to its tree
		} else {
			err = unix.Lstat(path, &st)
		}
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
		}
		kind := kindOf(st.Mode)
		if kind == 0 {
			continue
		}
		if found == nil {
			found = &Entry{Kind: kind, Layer: i, RealPath: path, Stat: st}
			if kind != Dir {
				break
			}
			found.Contributors = []int{i}
		} else if kind == Dir {
			found.Contributors = append(found.Contributors, i)
		} else {
			break
		}
	}
	return found, nil
}

// List is the sorted union of the names in a directory's contributors (at the root without the
// reserved directory; special files left out). Memoized per stack.
func (s *Stack) List(rel string, dir *Entry) ([]string, error) {
	s.mu.Lock()
	names, ok := s.listings[rel]
	s.mu.Unlock()
	if ok {
		return names, nil
	}
	seen := map[string]bool{}
	for _, i := range dir.Contributors {
		path := filepath.Join(s.Layers[i].Root, rel)
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, d := range entries {
			if rel == "" && d.Name() == layer.Reserved {
				continue
			}
			if d.Type()&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) != 0 {
				continue
			}
			seen[d.Name()] = true
		}
	}
	names = make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	s.mu.Lock()
	s.listings[rel] = names
	s.mu.Unlock()
	return names, nil
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func baseOf(rel string) string { return rel[strings.LastIndexByte(rel, '/')+1:] }

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

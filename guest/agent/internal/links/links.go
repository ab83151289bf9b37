// Package links puts the context where applications look for their configuration: each link the
// guest owner declares in ffs.yaml becomes a symbolic link from the application's usual path (say
// /etc/glusterfs) to that path in the union (/run/recontext/context/etc/glusterfs). Symbolic
// links rather than bind mounts: they follow every swap by construction (the union path stays),
// survive an agent restart, and need no unmounting. Nothing that exists is ever replaced.
package links

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Link is one declared link: Path (absolute, outside the union) shows From, a union path (default: Path).
type Link struct {
	Path string `json:"path"`
	From string `json:"from"`
}

// Validate checks a declared link.
func (l Link) Validate() error {
	if !filepath.IsAbs(l.Path) || filepath.Clean(l.Path) != l.Path || l.Path == "/" {
		return fmt.Errorf("links: path %q is not a clean absolute path below /", l.Path)
	}
	if l.From != "" && (!filepath.IsAbs(l.From) || filepath.Clean(l.From) != l.From) {
		return fmt.Errorf("links: from %q is not a clean absolute union path", l.From)
	}
	return nil
}

// Target is what the link at Path points to for a union mounted at mountpoint.
func (l Link) Target(mountpoint string) string {
	from := l.From
	if from == "" {
		from = l.Path
	}
	return filepath.Join(mountpoint, from)
}

// Action is what Decide says to do at a link's path.
type Action int

const (
	Create   Action = iota // nothing there: make the link
	Keep                   // the right link is there
	Conflict               // something else is there: leave it, report it
)

// Existing is what is at a link's path now: nothing, a symbolic link (with its target), or other.
type Existing struct {
	Present bool
	Symlink bool
	Target  string
}

// Decide is the pure decision for one link.
func Decide(l Link, mountpoint string, now Existing) Action {
	switch {
	case !now.Present:
		return Create
	case now.Symlink && now.Target == l.Target(mountpoint):
		return Keep
	}
	return Conflict
}

// Result is what Apply did for one link.
type Result struct {
	Path   string `json:"path"`
	Target string `json:"target"`
	State  string `json:"state"` // created, kept, conflict: …, error: …
}

// Apply makes the declared links for a union at mountpoint.
func Apply(declared []Link, mountpoint string) []Result {
	var out []Result
	for _, l := range declared {
		target := l.Target(mountpoint)
		r := Result{Path: l.Path, Target: target}
		if strings.HasPrefix(l.Path+"/", mountpoint+"/") {
			r.State = "conflict: the path is inside the union"
			out = append(out, r)
			continue
		}
		now, err := inspect(l.Path)
		if err != nil {
			r.State = "error: " + err.Error()
			out = append(out, r)
			continue
		}
		switch Decide(l, mountpoint, now) {
		case Keep:
			r.State = "kept"
		case Create:
			r.State = "created"
			if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
				r.State = "error: " + err.Error()
			} else if err := os.Symlink(target, l.Path); err != nil {
				r.State = "error: " + err.Error()
			}
		case Conflict:
			r.State = "conflict: something else is at the path (not replaced)"
		}
		out = append(out, r)
	}
	return out
}

func inspect(path string) (Existing, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Existing{}, nil
	}
	if err != nil {
		return Existing{}, err
	}
	if info.Mode()&os.ModeSymlink == 0 {
		return Existing{Present: true}, nil
	}
	target, err := os.Readlink(path)
	return Existing{Present: true, Symlink: true, Target: target}, err
}

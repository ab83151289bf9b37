// Package layer describes one layer of the union: a directory tree (a mounted context image or a
// plain directory) with the identity the operator gave it, and reads an image's manifest
// (.recontext/manifest.json, written by the operator's src/reconcile/render.ts).
package layer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Source says where a layer's tree comes from: a plain directory, or a block device mounted at Root.
type Source struct {
	Kind   string `json:"kind"` // "dir" or "device"
	Path   string `json:"path,omitempty"`
	Device string `json:"device,omitempty"`
}

// Layer is one tree of the union. A layer's tree must not change while it is in a stack.
type Layer struct {
	Name     string // unique in a stack: 1-253 of A-Z a-z 0-9 . _ -
	Class    string // service, infrastructure, legislative, broker…; "" when unknown
	Priority int64  // higher wins; equal priorities: the name that sorts first wins
	Digest   string // sha256:… from the manifest, "" when unknown
	Root     string // absolute directory served
	Source   Source
}

// Reserved is the directory every layer keeps its metadata in; it is not part of the union view.
// The operator writes it (src/crds/contextlayer.ts defines the same names): they must agree, and
// the operator's test/lint/image-format.test.ts compares them.
const Reserved = ".recontext"

// ManifestPath and HooksPath are relative to a layer root.
const (
	ManifestPath = Reserved + "/manifest.json"
	HooksPath    = Reserved + "/hooks.json"
)

// Error is a layer or stack that cannot be built as asked; the message names the layer.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// ValidName reports whether s is a valid layer name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Validate checks one layer.
func (l Layer) Validate() error {
	if !ValidName(l.Name) {
		return errorf("layer name %q must be 1-253 of A-Z a-z 0-9 . _ -", l.Name)
	}
	if !filepath.IsAbs(l.Root) {
		return errorf("layer %s: root %s is not an absolute path", l.Name, l.Root)
	}
	return nil
}

// Manifest is what an image's manifest says; absent or malformed fields are zero (Has* false).
type Manifest struct {
	Layer       string
	Class       string
	Priority    int64
	HasPriority bool
	Digest      string
}

// ReadManifest reads .recontext/manifest.json under root. ok is false when there is none; a
// manifest that is not a JSON object is an error (a broken image is noticed, not served under a guess).
func ReadManifest(root string) (m Manifest, ok bool, err error) {
	path := filepath.Join(root, ManifestPath)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return Manifest{}, false, nil
	}
	if err != nil {
		return Manifest{}, false, err
	}
	m, err = ParseManifest(data)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return m, true, nil
}

// ParseManifest decodes a manifest, keeping the fields of the right type (as the first agent did).
func ParseManifest(data []byte) (Manifest, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return Manifest{}, errorf("manifest is not a JSON object")
	}
	var m Manifest
	if s, ok := raw["layer"].(string); ok {
		m.Layer = s
	}
	if s, ok := raw["class"].(string); ok {
		m.Class = s
	}
	if s, ok := raw["digest"].(string); ok {
		m.Digest = s
	}
	if f, ok := raw["priority"].(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1<<53-1 {
		m.Priority, m.HasPriority = int64(f), true
	}
	return m, nil
}

// DirSpec is a plain-directory layer as the command line names it: NAME=DIR:PRIORITY.
type DirSpec struct {
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	Priority int64  `json:"priority"`
}

// ParseArgument parses NAME=DIR:PRIORITY (DIR may contain ':'; the priority follows the last one),
// making DIR absolute against cwd.
func ParseArgument(arg, cwd string) (DirSpec, error) {
	eq := strings.IndexByte(arg, '=')
	colon := strings.LastIndexByte(arg, ':')
	if eq <= 0 || colon < eq+2 {
		return DirSpec{}, errorf("--layer %s: expected NAME=DIR:PRIORITY", arg)
	}
	prio, err := strconv.ParseInt(arg[colon+1:], 10, 64)
	if err != nil || prio > 1<<53-1 || prio < -(1<<53-1) {
		return DirSpec{}, errorf("--layer %s: priority %q is not an integer", arg, arg[colon+1:])
	}
	spec := DirSpec{Name: arg[:eq], Dir: arg[eq+1 : colon], Priority: prio}
	if !filepath.IsAbs(spec.Dir) {
		spec.Dir = filepath.Join(cwd, spec.Dir)
	}
	spec.Dir = filepath.Clean(spec.Dir)
	if !ValidName(spec.Name) {
		return DirSpec{}, errorf("--layer %s: name must be 1-253 of A-Z a-z 0-9 . _ -", arg)
	}
	return spec, nil
}

// FromDir is a layer from a plain directory: name and priority are the caller's; class and digest
// come from the directory's manifest when it has one (a directory holding an unpacked image).
func FromDir(spec DirSpec) (Layer, error) {
	l := Layer{Name: spec.Name, Priority: spec.Priority, Root: spec.Dir, Source: Source{Kind: "dir", Path: spec.Dir}}
	m, ok, err := ReadManifest(spec.Dir)
	if err != nil {
		return Layer{}, err
	}
	if ok {
		l.Class, l.Digest = m.Class, m.Digest
	}
	return l, l.Validate()
}

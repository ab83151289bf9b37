// Package hooks runs what context layers declare in .recontext/hooks.json ("when files under
// PATH change, run this / send this signal / restart this unit"), within what the guest owner's
// policy admits (Policy, from /etc/recontext/ffs.yaml). The file format: guest/agent/README.md,
// "Hooks" (the one the operator writes, src/reconcile/render.ts).
package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Action kinds.
const (
	Run     = "run"
	Signal  = "signal"
	Restart = "restart"
)

// Hook is one hook as a layer declares it.
type Hook struct {
	Name        string
	Layer       string   // the layer whose hooks file defines it
	Class       string   // that layer's class
	Paths       []string // union paths, normalized: "/etc/glusterfs"; "/" is everything
	Action      string   // Run, Signal or Restart
	Argv        []string // Run
	SignalName  string   // Signal: "SIGHUP"
	Pidfile     string   // Signal
	Unit        string   // Restart
	DebounceMs  int
	TimeoutMs   int
	AppendPaths bool
	Disabled    bool // an entry switching off a lower layer's hook of this name
}

// Defaults: a migration swaps a VM's layers ~35 ms apart (bench/ffs-guest), so 100 ms still
// makes them one run, and is what the default adds to a single swap's attach → hook time.
const (
	DefaultDebounceMs = 100
	DefaultTimeoutMs  = 60_000
	maxDebounceMs     = 60_000
	maxTimeoutMs      = 3_600_000
)

// FormatError is a hooks file that does not parse; the message names the layer and entry.
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return e.Msg }

var (
	hookNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	knownKeys  = []string{"name", "paths", "run", "signal", "restart", "debounceMs", "timeoutMs", "appendPaths", "disabled"}
)

// NormalizePath turns a hook path into a union path: "etc/glusterfs/" → "/etc/glusterfs".
func NormalizePath(p string) (string, error) {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c == "." || c == ".." {
			return "", fmt.Errorf("path %q must not contain . or ..", p)
		}
		if c != "" {
			parts = append(parts, c)
		}
	}
	return "/" + strings.Join(parts, "/"), nil
}

// PathMatches reports whether a changed union path is (under) a hook path.
func PathMatches(hookPath, changed string) bool {
	return hookPath == "/" || changed == hookPath || strings.HasPrefix(changed, hookPath+"/")
}

// Parse parses a hooks file of a layer; every problem is a *FormatError.
func Parse(data []byte, layerName, class string) ([]Hook, error) {
	fail := func(format string, args ...any) ([]Hook, error) {
		return nil, &FormatError{Msg: fmt.Sprintf("layer %s: ", layerName) + fmt.Sprintf(format, args...)}
	}
	var file struct {
		Hooks []map[string]json.RawMessage `json:"hooks"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&file); err != nil {
		return fail("hooks file is not an object with a \"hooks\" array of objects: %v", err)
	}
	if file.Hooks == nil {
		return fail("hooks file must be an object with a \"hooks\" array")
	}
	var out []Hook
	names := map[string]bool{}
	for i, entry := range file.Hooks {
		where := fmt.Sprintf("hooks[%d]", i)
		var name string
		if json.Unmarshal(entry["name"], &name) != nil || !hookNameRE.MatchString(name) {
			return fail("%s: \"name\" must be 1-128 of A-Z a-z 0-9 . _ -", where)
		}
		where = fmt.Sprintf("%s (%s)", where, name)
		if names[name] {
			return fail("%s: hook %s is defined twice", where, name)
		}
		names[name] = true
		for key := range entry {
			if !slices.Contains(knownKeys, key) {
				return fail("%s: unknown field %q", where, key)
			}
		}
		var disabled bool
		if raw, ok := entry["disabled"]; ok && json.Unmarshal(raw, &disabled) != nil {
			return fail("%s: \"disabled\" must be true or false", where)
		}
		if disabled {
			out = append(out, Hook{Name: name, Layer: layerName, Class: class, Disabled: true})
			continue
		}
		h, err := parseHook(entry)
		if err != nil {
			return fail("%s: %v", where, err)
		}
		h.Name, h.Layer, h.Class = name, layerName, class
		out = append(out, h)
	}
	return out, nil
}

func parseHook(entry map[string]json.RawMessage) (Hook, error) {
	var h Hook
	var paths []string
	if json.Unmarshal(entry["paths"], &paths) != nil || len(paths) == 0 || slices.Contains(paths, "") {
		return h, fmt.Errorf("\"paths\" must be a non-empty array of paths")
	}
	for _, p := range paths {
		n, err := NormalizePath(p)
		if err != nil {
			return h, err
		}
		h.Paths = append(h.Paths, n)
	}
	var actions []string
	for _, k := range []string{Run, Signal, Restart} {
		if raw, ok := entry[k]; ok && string(raw) != "null" {
			actions = append(actions, k)
		}
	}
	if len(actions) != 1 {
		return h, fmt.Errorf("exactly one of \"run\", \"signal\", \"restart\" is needed")
	}
	h.Action = actions[0]
	switch h.Action {
	case Run:
		if json.Unmarshal(entry[Run], &h.Argv) != nil || len(h.Argv) == 0 || !strings.HasPrefix(h.Argv[0], "/") {
			return h, fmt.Errorf("\"run\" must be an argv array whose first element is an absolute path")
		}
	case Signal:
		var sig struct {
			Name    string `json:"name"`
			Pidfile string `json:"pidfile"`
		}
		if json.Unmarshal(entry[Signal], &sig) != nil {
			return h, fmt.Errorf("\"signal\" must be an object with name and pidfile")
		}
		h.SignalName = sig.Name
		if !strings.HasPrefix(h.SignalName, "SIG") {
			h.SignalName = "SIG" + h.SignalName
		}
		if unix.SignalNum(h.SignalName) == 0 {
			return h, fmt.Errorf("\"signal.name\" must be a signal name such as HUP")
		}
		if !strings.HasPrefix(sig.Pidfile, "/") {
			return h, fmt.Errorf("\"signal.pidfile\" must be an absolute path")
		}
		h.Pidfile = sig.Pidfile
	case Restart:
		if json.Unmarshal(entry[Restart], &h.Unit) != nil || !ValidUnit(h.Unit) {
			return h, fmt.Errorf("\"restart\" must be a systemd unit name (A-Z a-z 0-9 @ . _ : \\ -, not starting with -)")
		}
	}
	var err error
	if h.DebounceMs, err = optionalInt(entry, "debounceMs", DefaultDebounceMs, 0, maxDebounceMs); err != nil {
		return h, err
	}
	if h.TimeoutMs, err = optionalInt(entry, "timeoutMs", DefaultTimeoutMs, 1, maxTimeoutMs); err != nil {
		return h, err
	}
	if raw, ok := entry["appendPaths"]; ok && json.Unmarshal(raw, &h.AppendPaths) != nil {
		return h, fmt.Errorf("\"appendPaths\" must be true or false")
	}
	if h.AppendPaths && h.Action != Run {
		return h, fmt.Errorf("\"appendPaths\" only goes with \"run\"")
	}
	return h, nil
}

var unitRE = regexp.MustCompile(`^[A-Za-z0-9@._:\\-]{1,255}$`)

// ValidUnit: a systemd unit name that systemctl cannot mistake for an option.
func ValidUnit(u string) bool { return unitRE.MatchString(u) && !strings.HasPrefix(u, "-") }

func optionalInt(entry map[string]json.RawMessage, key string, fallback, lo, hi int) (int, error) {
	raw, ok := entry[key]
	if !ok {
		return fallback, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f != float64(int(f)) || int(f) < lo || int(f) > hi {
		return 0, fmt.Errorf("%q must be an integer from %d to %d", key, lo, hi)
	}
	return int(f), nil
}

// Merge decides the hooks in force from each layer's entries, highest priority first: per name
// the highest layer's entry decides, and a disabled entry drops the name. Sorted by name.
func Merge(perLayerHighestFirst [][]Hook) []Hook {
	decided := map[string]Hook{}
	for _, entries := range perLayerHighestFirst {
		for _, h := range entries {
			if _, ok := decided[h.Name]; !ok {
				decided[h.Name] = h
			}
		}
	}
	var out []Hook
	for _, h := range decided {
		if !h.Disabled {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Hook) int { return strings.Compare(a.Name, b.Name) })
	return out
}

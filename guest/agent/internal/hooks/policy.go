package hooks

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Policy is the guest owner's say over the hooks layers declare (guest/agent/README.md, "Threat
// model"; set in /etc/recontext/ffs.yaml). A layer can only ask: nothing in a hooks file widens it.
type Policy struct {
	// Classes: the layer classes whose hooks files count at all. The entries of other layers,
	// disabling ones included, are ignored (a broker layer can neither add a hook nor switch a
	// service layer's hook off). Default: service.
	Classes []string
	// RunUser and RunGroup: the account `run` hooks execute as. Default nobody and the user's
	// primary group; root only when the guest owner writes it here.
	RunUser, RunGroup string
	// Commands: what a `run` hook may execute (its argv[0]): absolute paths, or directories
	// ending in "/" for everything below them. Default "/" (any command, as RunUser).
	Commands []string
	// Units: the systemd units a `restart` hook may restart (as root). Default: none.
	Units []string
	// Pidfiles: the pidfiles a `signal` hook may name (outside the mount), and Signals the
	// signals it may send (as root). Defaults: no pidfile; SIGHUP.
	Pidfiles []string
	Signals  []string
}

// DefaultPolicy is what applies without a config file.
func DefaultPolicy() Policy {
	return Policy{Classes: []string{"service"}, RunUser: "nobody", Commands: []string{"/"}, Signals: []string{"SIGHUP"}}
}

// Validate checks a policy the guest owner wrote (paths absolute and clean, names valid).
func (p Policy) Validate() error {
	for _, c := range p.Commands {
		if !strings.HasPrefix(c, "/") || filepath.Clean(c) != strings.TrimSuffix(c, "/") && c != "/" {
			return fmt.Errorf("hooks.run.commands: %q is not a clean absolute path", c)
		}
	}
	for _, u := range p.Units {
		if !ValidUnit(u) {
			return fmt.Errorf("hooks.restart.units: %q is not a systemd unit name", u)
		}
	}
	for _, f := range p.Pidfiles {
		if !filepath.IsAbs(f) || filepath.Clean(f) != f {
			return fmt.Errorf("hooks.signal.pidfiles: %q is not a clean absolute path", f)
		}
	}
	for _, s := range p.Signals {
		if unix.SignalNum(signalName(s)) == 0 {
			return fmt.Errorf("hooks.signal.signals: %q is not a signal name", s)
		}
	}
	if p.RunUser == "" {
		return fmt.Errorf("hooks.run.user must name a user")
	}
	return nil
}

func signalName(s string) string {
	if strings.HasPrefix(s, "SIG") {
		return s
	}
	return "SIG" + s
}

// Refusal is a hook entry the policy did not admit.
type Refusal struct {
	Layer, Hook, Reason string
}

// Decide gives the hooks in force for a stack from each layer's entries (highest priority
// first): entries of classes that may not declare hooks are dropped before merging (so they do
// not shadow or disable anything), then merged by name (Merge), then each merged hook is checked
// against the policy; a refused hook is not run (and does not let a lower one of its name through:
// the layer that decides a name decides it).
func (p Policy) Decide(perLayerHighestFirst [][]Hook, mountpoint string) (inForce []Hook, refused []Refusal) {
	admitted := make([][]Hook, 0, len(perLayerHighestFirst))
	for _, entries := range perLayerHighestFirst {
		if len(entries) == 0 {
			continue
		}
		if !slices.Contains(p.Classes, entries[0].Class) {
			class := entries[0].Class
			if class == "" {
				class = "(none)"
			}
			refused = append(refused, Refusal{Layer: entries[0].Layer, Reason: fmt.Sprintf("layers of class %s may not declare hooks here (hooks.classes)", class)})
			continue
		}
		admitted = append(admitted, entries)
	}
	for _, h := range Merge(admitted) {
		if err := p.admit(h, mountpoint); err != nil {
			refused = append(refused, Refusal{Layer: h.Layer, Hook: h.Name, Reason: err.Error()})
			continue
		}
		inForce = append(inForce, h)
	}
	return inForce, refused
}

// admit checks one hook's action against the policy.
func (p Policy) admit(h Hook, mountpoint string) error {
	switch h.Action {
	case Run:
		cmd := h.Argv[0]
		if filepath.Clean(cmd) != cmd {
			return fmt.Errorf("command %s is not a clean path", cmd)
		}
		for _, allowed := range p.Commands {
			if cmd == allowed || strings.HasSuffix(allowed, "/") && strings.HasPrefix(cmd, allowed) {
				return nil
			}
		}
		return fmt.Errorf("command %s is not allowed (hooks.run.commands)", cmd)
	case Restart:
		if !ValidUnit(h.Unit) {
			return fmt.Errorf("%q is not a unit name", h.Unit)
		}
		if !slices.Contains(p.Units, h.Unit) {
			return fmt.Errorf("unit %s may not be restarted (hooks.restart.units)", h.Unit)
		}
		return nil
	case Signal:
		if filepath.Clean(h.Pidfile) != h.Pidfile {
			return fmt.Errorf("pidfile %s is not a clean path", h.Pidfile)
		}
		if Within(mountpoint, h.Pidfile) {
			return fmt.Errorf("pidfile %s is inside the mount (a layer would choose the process)", h.Pidfile)
		}
		if !slices.Contains(p.Pidfiles, h.Pidfile) {
			return fmt.Errorf("pidfile %s is not allowed (hooks.signal.pidfiles)", h.Pidfile)
		}
		if !slices.ContainsFunc(p.Signals, func(s string) bool { return signalName(s) == h.SignalName }) {
			return fmt.Errorf("signal %s is not allowed (hooks.signal.signals)", h.SignalName)
		}
		return nil
	}
	return fmt.Errorf("unknown action %q", h.Action)
}

// Within reports whether path is dir or below it (both clean and absolute).
func Within(dir, path string) bool {
	return dir != "" && (path == dir || dir == "/" || strings.HasPrefix(path, dir+"/"))
}

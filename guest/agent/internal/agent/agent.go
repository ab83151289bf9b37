// Package agent is one running recontext-ffs: the union mounted at a mountpoint, the hook
// runner, the device watcher, the control socket and the status file, wired together.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"recontext.dev/guest/agent/internal/devices"
	"recontext.dev/guest/agent/internal/hooks"
	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/links"
	"recontext.dev/guest/agent/internal/union"
)

// Options for Start. Zero values take the documented defaults.
type Options struct {
	Mountpoint string        // required: an existing directory
	Layers     []layer.Layer // plain-directory layers of the first stack
	Control    string        // control socket; default DefaultControlPath(Mountpoint)
	Devices    bool          // also serve the context images on CD-ROM drives
	MediaDir   string        // where media are mounted; default /run/recontext-ffs/media
	Policy     hooks.Policy  // default hooks.DefaultPolicy()
	Log        *slog.Logger  // required
	Trace      bool          // ffs-devd-format trace lines on stderr
	AllowOther bool          // let every user read (root only)
	Union      union.Options // CacheTimeout etc.; Status is the agent's
	Links      []links.Link  // made once mounted (ffs.yaml links)
}

// Agent is one running mount.
type Agent struct {
	o       Options
	union   *union.Union
	runner  *hooks.Runner
	watcher *devices.Watcher
	control net.Listener
	links   []links.Result

	mu    sync.Mutex
	since map[string]time.Time // layer identity → when it entered the stack unchanged
}

// Start mounts and serves until Close.
func Start(o Options) (*Agent, error) {
	if o.Policy.RunUser == "" {
		o.Policy = hooks.DefaultPolicy()
	}
	if o.Control == "" {
		o.Control = DefaultControlPath(o.Mountpoint)
	}
	a := &Agent{o: o, since: map[string]time.Time{}}
	uo := o.Union
	uo.Status = a.statusBytes
	uo.AllowOther = o.AllowOther
	a.union = union.New(uo)
	a.runner = hooks.NewRunner(o.Policy, o.Mountpoint, o.Log)
	a.union.OnChange(a.remember)
	a.union.OnChange(func(c union.Change) {
		fields := []any{"generation", c.Current.Generation, "layers", c.Current.LayerNames(), "invalidated", c.Invalidated, "swapMs", float64(c.Took.Microseconds()) / 1000}
		if c.InvalidateErr != nil {
			o.Log.Error("stack changed; exact invalidation failed, dropped every cached entry", append(fields, "error", c.InvalidateErr.Error())...)
			return
		}
		if c.Previous.Generation > 0 {
			o.Log.Info("stack changed", fields...)
		}
	})
	a.union.OnChange(a.runner.OnChange)
	// The first stack, before mounting: the directory layers and, with devices, the media in the
	// drives now, in one swap (generation 1, which fires no hooks).
	if o.Devices {
		a.watcher = devices.NewWatcher(devices.Options{
			MediaDir: o.MediaDir,
			Fixed:    o.Layers,
			Publish: func(layers []layer.Layer) error {
				_, err := a.union.Swap(layers)
				return err
			},
			Released: a.union.Released,
			Log:      o.Log,
			Trace:    o.Trace,
		})
		if err := a.watcher.Start(); err != nil {
			a.watcher.Stop()
			return nil, fmt.Errorf("devices: %w", err)
		}
		var media []string
		for _, m := range a.watcher.Media() {
			if m.Layer != nil {
				media = append(media, m.Dev+":"+m.Layer.Name)
			}
		}
		o.Log.Info("watching context devices", "mediaDir", a.watcher.MediaDir(), "media", media)
	} else if _, err := a.union.Swap(o.Layers); err != nil {
		return nil, err
	}
	if err := a.union.Mount(o.Mountpoint); err != nil {
		if a.watcher != nil {
			a.watcher.Stop()
		}
		return nil, err
	}
	o.Log.Info("mounted", "mountpoint", o.Mountpoint, "generation", a.union.Current().Generation, "layers", a.union.Current().LayerNames())
	a.links = links.Apply(o.Links, o.Mountpoint)
	for _, r := range a.links {
		if r.State == "created" || r.State == "kept" {
			o.Log.Info("link", "path", r.Path, "target", r.Target, "state", r.State)
		} else {
			o.Log.Error("link not made", "path", r.Path, "target", r.Target, "state", r.State)
		}
	}
	ln, err := serveControl(o.Control, a.handle)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("control socket %s: %w", o.Control, err)
	}
	a.control = ln
	o.Log.Info("control socket ready", "control", o.Control)
	return a, nil
}

// Union is the mounted union.
func (a *Agent) Union() *union.Union { return a.union }

// Hooks is the hook runner.
func (a *Agent) Hooks() *hooks.Runner { return a.runner }

func (a *Agent) handle(req Request) (any, error) {
	if req.Op == "status" {
		return json.RawMessage(a.statusBytes()), nil
	}
	var next []layer.Layer
	for _, spec := range req.Layers {
		l, err := layer.FromDir(spec)
		if err != nil {
			return nil, err
		}
		next = append(next, l)
	}
	var err error
	if a.watcher != nil {
		err = a.watcher.SetFixed(next)
	} else {
		_, err = a.union.Swap(next)
	}
	if err != nil {
		return nil, err
	}
	return map[string]uint64{"generation": a.union.Announced().Generation}, nil
}

// Close stops the hooks (running ones are waited for), the watcher and the control socket,
// then unmounts.
func (a *Agent) Close() error {
	if a.control != nil {
		a.control.Close()
		os.Remove(a.o.Control)
	}
	if a.watcher != nil {
		a.watcher.Stop()
	}
	a.runner.Close()
	err := a.union.Unmount()
	if err == nil {
		a.o.Log.Info("unmounted", "mountpoint", a.o.Mountpoint)
	}
	if a.watcher != nil {
		a.watcher.ReleaseAll()
	}
	return err
}

func layerKey(l layer.Layer) string { return l.Name + "\x00" + l.Root + "\x00" + l.Digest }

func (a *Agent) remember(c union.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := map[string]time.Time{}
	for _, l := range c.Current.Layers {
		if t, ok := a.since[layerKey(l)]; ok {
			next[layerKey(l)] = t
		} else {
			next[layerKey(l)] = c.Current.ChangedAt
		}
	}
	a.since = next
}

type statusLayer struct {
	Name      string       `json:"name"`
	Class     string       `json:"class,omitempty"`
	Priority  int64        `json:"priority"`
	Digest    string       `json:"digest,omitempty"`
	Source    layer.Source `json:"source"`
	Root      string       `json:"root"`
	Since     string       `json:"since"`
	OpenFiles int          `json:"openFiles"`
}

type statusMedium struct {
	Dev   string `json:"dev"`
	Seq   int    `json:"seq"`
	Dir   string `json:"dir"`
	Layer string `json:"layer,omitempty"`
}

// Status is status.json (guest/agent/README.md, "What the mount shows").
type Status struct {
	Mountpoint string         `json:"mountpoint"`
	Pid        int            `json:"pid"`
	Control    string         `json:"control"`
	Media      []statusMedium `json:"media,omitempty"`
	Links      []links.Result `json:"links,omitempty"`
	Hooks      hooks.Status   `json:"hooks"`
	Generation uint64         `json:"generation"`
	ChangedAt  string         `json:"changedAt"`
	Layers     []statusLayer  `json:"layers"`
}

const timeFormat = "2006-01-02T15:04:05.000Z"

// Status renders the announced stack: a swap shows here only once its invalidation is done.
func (a *Agent) Status() Status {
	stack := a.union.Announced()
	st := Status{Mountpoint: a.o.Mountpoint, Pid: os.Getpid(), Control: a.o.Control, Hooks: a.runner.Status(),
		Generation: stack.Generation, ChangedAt: stack.ChangedAt.UTC().Format(timeFormat), Layers: []statusLayer{}, Links: a.links}
	a.mu.Lock()
	for _, l := range stack.Layers {
		since, ok := a.since[layerKey(l)]
		if !ok {
			since = stack.ChangedAt
		}
		st.Layers = append(st.Layers, statusLayer{Name: l.Name, Class: l.Class, Priority: l.Priority, Digest: l.Digest, Source: l.Source,
			Root: l.Root, Since: since.UTC().Format(timeFormat), OpenFiles: a.union.OpenFiles(l.Root)})
	}
	a.mu.Unlock()
	if a.watcher != nil {
		for _, m := range a.watcher.Media() {
			sm := statusMedium{Dev: m.Dev, Seq: m.Seq, Dir: m.Dir}
			if m.Layer != nil {
				sm.Layer = m.Layer.Name
			}
			st.Media = append(st.Media, sm)
		}
	}
	return st
}

func (a *Agent) statusBytes() []byte {
	data, err := json.MarshalIndent(a.Status(), "", "  ")
	if err != nil {
		return []byte(fmt.Sprintf("{\"error\": %q}\n", err.Error()))
	}
	return append(data, '\n')
}

// ErrUsage marks command-line mistakes (exit status 2).
var ErrUsage = errors.New("usage")

package devices

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"recontext.dev/guest/agent/internal/layer"
)

// Options configure a Watcher. Zero values take the documented defaults.
type Options struct {
	// MediaDir: each medium is mounted at MediaDir/srN.SEQ. Default /run/recontext-ffs/media.
	MediaDir string
	// PollMs: the kernel's media-event polling interval. Default 100.
	PollMs int
	// Publish replaces the union's whole stack (union.Swap); it returns once the swap is announced.
	Publish func([]layer.Layer) error
	// Released is closed once no file is open on a layer root (union.Released).
	Released func(root string) <-chan struct{}
	// ReleaseTimeout: how long readers may keep a released image's files open before the drive
	// is given back anyway. Default 3 s (libvirt waits 5 s for the tray).
	ReleaseTimeout time.Duration
	// Fixed: plain-directory layers kept in every stack (SetFixed replaces them).
	Fixed []layer.Layer
	// Kernel: default Linux{}.
	Kernel Kernel
	Log    *slog.Logger
	// Trace writes timestamped lines (uevents, drive status, mounts) to stderr in ffs-devd's
	// format ("ffs-devd trace SEC.MS …"), which bench:ffs-guest and the in-guest e2e read.
	Trace bool
}

// Retries while a drive settles after a media change (the "EIO in flux" of a fresh medium):
// the drive status is asked every 5 ms for up to 1 s, a failed mount retried every 25 ms 40 times.
const (
	statusPolls    = 200
	statusInterval = 5 * time.Millisecond
	mountAttempts  = 40
	mountInterval  = 25 * time.Millisecond
)

// Watcher owns the drives: one event at a time, in arrival order.
type Watcher struct {
	o        Options
	mu       sync.Mutex
	media    map[string]*Medium // by drive
	seq      map[string]int
	arrivals int
	events   *Uevents
	scanning bool // Start's scan: publish once at its end
	// snapshot is Media's answer, replaced at every publish: the status file reads it from
	// FUSE requests, which must never wait for w.mu (held across a swap's invalidation).
	snapshot atomic.Pointer[[]Medium]
}

// NewWatcher fills defaults.
func NewWatcher(o Options) *Watcher {
	if o.MediaDir == "" {
		o.MediaDir = "/run/recontext-ffs/media"
	}
	if o.PollMs == 0 {
		o.PollMs = 100
	}
	if o.ReleaseTimeout == 0 {
		o.ReleaseTimeout = 3 * time.Second
	}
	if o.Kernel == nil {
		o.Kernel = Linux{}
	}
	return &Watcher{o: o, media: map[string]*Medium{}, seq: map[string]int{}}
}

// Start opens the uevent socket, turns autoclose off, mounts what the drives hold, publishes
// the stack, and then follows the uevents until Stop.
func (w *Watcher) Start() error {
	events, err := OpenUevents()
	if err != nil {
		return err
	}
	w.events = events
	if err := w.o.Kernel.DisableAutoclose(); err != nil {
		w.o.Log.Warn("cannot turn the cdrom autoclose off", "error", err.Error())
	}
	w.cleanStale()
	drives, err := w.o.Kernel.Drives()
	if err != nil {
		return err
	}
	// The drives present at start make one stack, published once: the first stack a union gets
	// fires no hooks (services start after it and read it as it is).
	w.mu.Lock()
	w.scanning = true
	w.mu.Unlock()
	for _, dev := range drives {
		w.Handle(Uevent{Action: "add", Dev: dev, Subsystem: "block"})
	}
	w.mu.Lock()
	w.scanning = false
	err = w.publish()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	go func() {
		for {
			ev, err := events.Next()
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				w.o.Log.Error("uevent socket", "error", err.Error()) // ENOBUFS: an overrun, events lost
				continue
			}
			w.Handle(ev)
		}
	}()
	return nil
}

// Stop ends the uevent loop. Media stay mounted until ReleaseAll (after the union is unmounted).
func (w *Watcher) Stop() {
	if w.events != nil {
		w.events.Close()
	}
}

// ReleaseAll unmounts every medium lazily: the agent is going away and its union with it.
func (w *Watcher) ReleaseAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for dev, m := range w.media {
		w.unmount(m)
		delete(w.media, dev)
	}
}

// cleanStale unmounts what a previous run left mounted under MediaDir (it crashed, or was killed
// before ReleaseAll), so media are mounted once, in fresh directories.
func (w *Watcher) cleanStale() {
	for _, dir := range mountsUnder(w.o.MediaDir) {
		w.o.Log.Info("unmounting a medium a previous run left mounted", "dir", dir)
		if err := w.o.Kernel.Unmount(dir); err != nil {
			w.o.Log.Warn("cannot unmount a stale medium", "dir", dir, "error", err.Error())
		}
	}
}

// SetFixed replaces the plain-directory layers (recontext-ffs set); media stay.
func (w *Watcher) SetFixed(layers []layer.Layer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.o.Fixed = layers
	return w.publish()
}

// Media are the media mounted as of the last published stack, by drive.
func (w *Watcher) Media() []Medium {
	if p := w.snapshot.Load(); p != nil {
		return *p
	}
	return nil
}

// Handle acts on one uevent.
func (w *Watcher) Handle(ev Uevent) {
	if ev.Subsystem != "block" || !IsDrive(ev.Dev) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	flags := ""
	if ev.MediaChange {
		flags += " media-change"
	}
	if ev.EjectRequest {
		flags += " eject-request"
	}
	w.trace("uevent %s %s%s", ev.Action, ev.Dev, flags)
	switch {
	case ev.Action == "add":
		// Again per drive: the cdrom driver may have been loaded after Start.
		if err := w.o.Kernel.DisableAutoclose(); err != nil {
			w.o.Log.Warn("cannot turn the cdrom autoclose off", "error", err.Error())
		}
		if err := w.o.Kernel.EnablePolling(ev.Dev, w.o.PollMs); err != nil {
			w.o.Log.Warn("cannot turn media polling on", "dev", ev.Dev, "error", err.Error())
		}
		w.mountNew(ev.Dev)
	case ev.Action == "remove":
		w.drop(ev.Dev)
	case ev.Action == "change" && ev.EjectRequest:
		w.release(ev.Dev)
	case ev.Action == "change" && ev.MediaChange:
		if w.sameMedium(ev.Dev) {
			w.trace("%s same medium, mount kept", ev.Dev)
			return
		}
		w.mountNew(ev.Dev)
	}
}

// sameMedium: every swap raises two media-change uevents (the kernel's poll, then the echo of
// our own first open of the changed drive). Identical PVD bytes mean the mounted medium is still
// there: the operator writes the image's content digest into every layer image's volume id, so
// two images never share a PVD. A read error or other bytes mean a new medium.
func (w *Watcher) sameMedium(dev string) bool {
	m := w.media[dev]
	if m == nil || m.PVD == nil {
		return false
	}
	now, err := w.o.Kernel.ReadPVD(dev)
	if err != nil {
		w.trace("pvd %s unreadable: %v; remounting", dev, err)
		return false
	}
	if !bytes.Equal(now, m.PVD) {
		w.trace("pvd %s differs; remounting", dev)
		return false
	}
	return true
}

// mountNew mounts the medium now in dev in a fresh directory, switches the stack to it, and
// only then lets the drive's previous medium go.
func (w *Watcher) mountNew(dev string) {
	status := w.waitReady(dev)
	if status == NoDisc || status == TrayOpen {
		w.trace("%s has no disc (drive status %d): nothing to mount", dev, status)
		w.drop(dev)
		return
	}
	w.seq[dev]++
	seq := w.seq[dev]
	dir := filepath.Join(w.o.MediaDir, fmt.Sprintf("%s.%d", dev, seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.o.Log.Error("cannot make a media directory", "dev", dev, "error", err.Error())
		return
	}
	var before []byte
	var err error
	attempt := 0
	for ; attempt < mountAttempts; attempt++ {
		before, _ = w.o.Kernel.ReadPVD(dev)
		if err = w.o.Kernel.Mount(dev, dir); err == nil {
			break
		}
		w.trace("mount %s failed: %v", dev, err)
		if errors.Is(err, unix.ENOMEDIUM) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) {
			break
		}
		time.Sleep(mountInterval)
	}
	if err != nil {
		os.Remove(dir)
		if !errors.Is(err, unix.ENOMEDIUM) && !errors.Is(err, unix.ENXIO) {
			w.o.Log.Error("cannot mount a medium", "dev", dev, "error", err.Error())
		}
		w.drop(dev)
		return
	}
	// The PVD is kept only if it read the same just before and after the mount: then it is the
	// mounted medium's.
	after, afterErr := w.o.Kernel.ReadPVD(dev)
	pvd := []byte(nil)
	if before != nil && afterErr == nil && bytes.Equal(before, after) {
		pvd = after
	}
	w.trace("mounted %s %d after %d failed attempts (pvd %s)", dev, seq, attempt, map[bool]string{true: "kept", false: "not kept"}[pvd != nil])
	m := &Medium{Dev: dev, Seq: seq, Dir: dir, PVD: pvd}
	manifest, ok, err := layer.ReadManifest(dir)
	switch {
	case err != nil:
		w.o.Log.Warn("medium has a broken manifest; not used", "dev", dev, "error", err.Error())
	case !ok || LayerOf(manifest, dev, dir) == nil:
		w.o.Log.Info("medium is not a context layer; ignored", "dev", dev, "dir", dir)
	default:
		w.arrivals++
		m.Arrival, m.Layer = w.arrivals, LayerOf(manifest, dev, dir)
		w.o.Log.Info("layer image arrived", "dev", dev, "layer", m.Layer.Name, "digest", m.Layer.Digest, "priority", m.Layer.Priority)
	}
	old := w.media[dev]
	w.media[dev] = m
	if err := w.publish(); err != nil {
		w.o.Log.Error("cannot switch to the new medium", "dev", dev, "error", err.Error())
	}
	if old != nil {
		w.unmount(old)
	}
}

// drop takes dev's medium out of the stack, then unmounts it lazily.
func (w *Watcher) drop(dev string) {
	old := w.media[dev]
	if old == nil {
		return
	}
	delete(w.media, dev)
	if err := w.publish(); err != nil {
		w.o.Log.Error("cannot drop a medium from the stack", "dev", dev, "error", err.Error())
	}
	w.unmount(old)
}

// release answers the host's eject request: the layer leaves the stack (or its newer image
// takes over) first, the last reader of the image closes (or ReleaseTimeout passes), then the
// medium is unmounted lazily and the tray opened, so the host's non-forced eject succeeds.
func (w *Watcher) release(dev string) {
	m := w.media[dev]
	delete(w.media, dev)
	if m != nil {
		if err := w.publish(); err != nil {
			w.o.Log.Error("cannot take a released medium out of the stack", "dev", dev, "error", err.Error())
		}
		if m.Layer != nil && w.o.Released != nil {
			select {
			case <-w.o.Released(m.Dir):
			case <-time.After(w.o.ReleaseTimeout):
				w.o.Log.Warn("files of a replaced image are still open; releasing its drive anyway", "dev", dev, "root", m.Dir)
			}
		}
		w.unmount(m)
	}
	err := w.o.Kernel.Eject(dev)
	if err != nil {
		w.o.Log.Warn("eject failed; the host will retry", "dev", dev, "error", err.Error())
	}
	layerName := ""
	if m != nil && m.Layer != nil {
		layerName = m.Layer.Name
	}
	w.o.Log.Info("released a drive the host asked for", "dev", dev, "layer", layerName, "ejected", err == nil)
}

func (w *Watcher) unmount(m *Medium) {
	if err := w.o.Kernel.Unmount(m.Dir); err != nil {
		w.o.Log.Warn("cannot unmount a medium", "dev", m.Dev, "dir", m.Dir, "error", err.Error())
	}
}

// waitReady asks the drive until it says a disc is ready (or none is there): right after a media
// change the first access meets the drive's unit attention, and a mount then fails slowly
// (~130 ms under TCG) where asking costs a few ms.
func (w *Watcher) waitReady(dev string) DriveStatus {
	var status DriveStatus
	polls := 0
	for ; polls < statusPolls; polls++ {
		status = w.o.Kernel.DriveStatus(dev)
		if status == DiscOK || status == NoDisc || status == TrayOpen || status < 0 {
			break
		}
		time.Sleep(statusInterval)
	}
	w.trace("drive /dev/%s status %d after %d polls", dev, status, polls)
	return status
}

// MediaDir is where media are mounted.
func (w *Watcher) MediaDir() string { return w.o.MediaDir }

func (w *Watcher) publish() error {
	if w.scanning {
		return nil
	}
	media := make([]*Medium, 0, len(w.media))
	snapshot := make([]Medium, 0, len(w.media))
	for _, m := range w.media {
		media = append(media, m)
		snapshot = append(snapshot, *m)
	}
	slices.SortFunc(snapshot, func(a, b Medium) int { return strings.Compare(a.Dev, b.Dev) })
	w.snapshot.Store(&snapshot)
	return w.o.Publish(StackOf(media, w.o.Fixed))
}

func (w *Watcher) trace(format string, args ...any) {
	if !w.o.Trace {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "ffs-devd trace %d.%03d %s\n", now.Unix(), now.Nanosecond()/1e6, fmt.Sprintf(format, args...))
}

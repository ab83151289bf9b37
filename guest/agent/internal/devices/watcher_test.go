package devices

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/logx"
)

// fakeDrives stands in for the kernel in decision tests: discs are manifests by drive, every
// call is recorded in order with the stacks published between them.
type fakeDrives struct {
	mu         sync.Mutex
	disc       map[string]string // dev → layer name@digest, "" = empty drive
	mountFails map[string][]error
	notReady   map[string]int // dev → DriveStatus polls answering "not ready" first
	ops        []string
}

func (f *fakeDrives) record(format string, args ...any) {
	f.mu.Lock()
	f.ops = append(f.ops, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}
func (f *fakeDrives) EnablePolling(dev string, ms int) error { return nil }
func (f *fakeDrives) DisableAutoclose() error                { return nil }
func (f *fakeDrives) Drives() ([]string, error)              { return nil, nil }
func (f *fakeDrives) DriveStatus(dev string) DriveStatus {
	if f.notReady[dev] > 0 {
		f.notReady[dev]--
		return DriveNotReady
	}
	if f.disc[dev] == "" {
		return NoDisc
	}
	return DiscOK
}
func (f *fakeDrives) ReadPVD(dev string) ([]byte, error) {
	if f.disc[dev] == "" {
		return nil, syscall.ENOMEDIUM
	}
	return []byte("PVD " + f.disc[dev]), nil
}
func (f *fakeDrives) Mount(dev, dir string) error {
	if errs := f.mountFails[dev]; len(errs) > 0 {
		f.mountFails[dev] = errs[1:]
		return errs[0]
	}
	name, digest, _ := strings.Cut(f.disc[dev], "@")
	os.MkdirAll(filepath.Join(dir, ".recontext"), 0o755)
	os.WriteFile(filepath.Join(dir, layer.ManifestPath), []byte(fmt.Sprintf(`{"layer":%q,"class":"service","priority":100,"digest":%q}`, name, digest)), 0o644)
	f.record("mount %s %s", dev, filepath.Base(dir))
	return nil
}
func (f *fakeDrives) Unmount(dir string) error {
	f.record("unmount %s", filepath.Base(dir))
	return nil
}
func (f *fakeDrives) Eject(dev string) error {
	f.record("eject %s", dev)
	return nil
}

func newFakeWatcher(t *testing.T, f *fakeDrives, released func(string) <-chan struct{}) *Watcher {
	return NewWatcher(Options{
		MediaDir: t.TempDir(),
		Kernel:   f,
		Log:      logx.Discard(),
		Released: released,
		Publish: func(layers []layer.Layer) error {
			var names []string
			for _, l := range layers {
				names = append(names, l.Name+"@"+l.Digest+"="+filepath.Base(l.Root))
			}
			f.record("publish [%s]", strings.Join(names, " "))
			return nil
		},
	})
}

func change(dev string) Uevent {
	return Uevent{Action: "change", Dev: dev, Subsystem: "block", MediaChange: true}
}

func expectOps(t *testing.T, f *fakeDrives, want ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.ops, "\n") != strings.Join(want, "\n") {
		t.Errorf("operations:\n  %s\nwant:\n  %s", strings.Join(f.ops, "\n  "), strings.Join(want, "\n  "))
	}
	f.ops = nil
}

func TestSpareDriveSwapThenEjectRequest(t *testing.T) {
	f := &fakeDrives{disc: map[string]string{"sr0": "site@v1"}}
	gone := make(chan struct{})
	w := newFakeWatcher(t, f, func(string) <-chan struct{} { return gone })
	w.Handle(Uevent{Action: "add", Dev: "sr0", Subsystem: "block"})
	expectOps(t, f, "mount sr0 sr0.1", "publish [site@v1=sr0.1]")
	// The host puts the new image in a spare drive: the newest image of the layer wins.
	f.disc["sr1"] = "site@v2"
	w.Handle(change("sr1"))
	expectOps(t, f, "mount sr1 sr1.1", "publish [site@v2=sr1.1]")
	// The echo of our own first open: same PVD, the mount is kept.
	w.Handle(change("sr1"))
	expectOps(t, f)
	// The host asks for sr0 back: out of the stack, wait for its readers, unmount, open the tray.
	done := make(chan struct{})
	go func() {
		w.Handle(Uevent{Action: "change", Dev: "sr0", Subsystem: "block", EjectRequest: true})
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	expectOps(t, f, "publish [site@v2=sr1.1]")
	close(gone) // the last reader of the old image closes
	<-done
	expectOps(t, f, "unmount sr0.1", "eject sr0")
}

func TestInPlaceChangeSwitchesBeforeUnmountingAndRetriesInFlux(t *testing.T) {
	f := &fakeDrives{disc: map[string]string{"sr0": "site@v1"}, notReady: map[string]int{}, mountFails: map[string][]error{}}
	w := newFakeWatcher(t, f, nil)
	w.Handle(Uevent{Action: "add", Dev: "sr0", Subsystem: "block"})
	expectOps(t, f, "mount sr0 sr0.1", "publish [site@v1=sr0.1]")
	// A new medium in the same drive, still settling: not ready twice, then the mount meets EIO twice.
	f.disc["sr0"] = "site@v2"
	f.notReady["sr0"] = 2
	f.mountFails["sr0"] = []error{syscall.EIO, syscall.EIO}
	w.Handle(change("sr0"))
	expectOps(t, f, "mount sr0 sr0.2", "publish [site@v2=sr0.2]", "unmount sr0.1")
	// The medium is taken away: out of the stack, then unmounted.
	f.disc["sr0"] = ""
	w.Handle(change("sr0"))
	expectOps(t, f, "publish []", "unmount sr0.2")
}

func TestStackOf(t *testing.T) {
	dirLayer := layer.Layer{Name: "site", Root: "/srv/site", Source: layer.Source{Kind: "dir"}}
	other := layer.Layer{Name: "local", Root: "/srv/local", Source: layer.Source{Kind: "dir"}}
	m := func(name string, arrival int, root string) *Medium {
		return &Medium{Arrival: arrival, Layer: &layer.Layer{Name: name, Root: root}}
	}
	got := StackOf([]*Medium{m("site", 1, "/m/a"), m("site", 3, "/m/b"), m("svc", 2, "/m/c"), {Arrival: 4}}, []layer.Layer{dirLayer, other})
	var roots []string
	for _, l := range got {
		roots = append(roots, l.Root)
	}
	if strings.Join(roots, " ") != "/srv/local /m/b /m/c" {
		t.Errorf("stack roots %v: want the directory layer without a medium, the newest site image, svc", roots)
	}
}

func TestParseUevent(t *testing.T) {
	msg := "change@/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sr0\x00ACTION=change\x00DEVPATH=/devices/…/block/sr0\x00SUBSYSTEM=block\x00DISK_MEDIA_CHANGE=1\x00DEVNAME=sr0\x00DEVTYPE=disk\x00SEQNUM=2001\x00"
	ev := ParseUevent([]byte(msg))
	if ev != (Uevent{Action: "change", Dev: "sr0", Subsystem: "block", MediaChange: true}) {
		t.Errorf("%+v", ev)
	}
	for dev, want := range map[string]bool{"sr0": true, "sr12": true, "sr": false, "sda": false, "sr0p1": false, "srx": false} {
		if IsDrive(dev) != want {
			t.Errorf("IsDrive(%q) = %v", dev, !want)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := `22 1 0:21 / /run rw - tmpfs tmpfs rw
40 22 11:0 / /run/recontext-ffs/media/sr0.1 ro - iso9660 /dev/sr0 ro
41 22 11:1 / /run/recontext-ffs/media/sr1.3 ro - iso9660 /dev/sr1 ro
42 22 11:1 / /run/recontext-ffs/media-other ro - iso9660 /dev/sr1 ro
43 40 0:50 / /run/recontext-ffs/media/with\040space ro - iso9660 /dev/sr2 ro
`
	got := parseMountsUnder(info, "/run/recontext-ffs/media")
	want := []string{"/run/recontext-ffs/media/sr0.1", "/run/recontext-ffs/media/sr1.3", "/run/recontext-ffs/media/with space"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

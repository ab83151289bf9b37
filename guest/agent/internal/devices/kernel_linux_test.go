package devices

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The kernel edges this host can exercise without a CD-ROM drive (the drives themselves are
// exercised in the test guest): the uevent socket hears a real kernel uevent, and the PVD read
// goes through O_DIRECT on a real file.

func TestUeventSocketHearsTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the uevent test triggers a kernel uevent through /sys and needs root: run `go test` as root")
	}
	ev, err := OpenUevents()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	got := make(chan Uevent, 16)
	go func() {
		for {
			u, err := ev.Next()
			if err != nil {
				close(got)
				return
			}
			got <- u
		}
	}()
	// Any block device will do: ask the kernel to announce loop0 again.
	if err := os.WriteFile("/sys/block/loop0/uevent", []byte("change"), 0); err != nil {
		t.Fatalf("cannot trigger a uevent (needs /sys/block/loop0; `modprobe loop`): %v", err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case u := <-got:
			if u.Dev == "loop0" && u.Action == "change" && u.Subsystem == "block" {
				return
			}
		case <-deadline:
			t.Fatal("no change uevent for loop0 within 5 s")
		}
	}
}

func TestReadPVDReadsSector16Direct(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.iso")
	image := make([]byte, 20*2048)
	copy(image[16*2048:], "\x01CD001\x01 RCTX_0123456789abcdef01234567")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	pvd, err := readPVD(path)
	if err != nil {
		t.Fatalf("O_DIRECT read of %s: %v", path, err)
	}
	if !bytes.Equal(pvd, image[16*2048:17*2048]) {
		t.Errorf("read %q…, want sector 16", pvd[:16])
	}
}

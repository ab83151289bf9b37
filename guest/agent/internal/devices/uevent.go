// Package devices follows the context images on the guest's CD-ROM drives (guest/agent/README.md,
// "Devices"): kernel uevents over netlink, media-event polling on, the cdrom
// driver's autoclose off, each medium mounted read-only once in a directory of its own, found by
// its manifest, and the drive released when the host asks for it (an eject request) once no
// reader is left on its image. The decisions are pure functions (ParseUevent, StackOf); the
// kernel calls sit behind the Kernel interface (kernel_linux.go).
package devices

import (
	"strconv"
	"strings"
)

// Uevent is the part of a kernel uevent the watcher reads.
type Uevent struct {
	Action       string // add, remove, change
	Dev          string // "sr0"
	Subsystem    string
	EjectRequest bool // DISK_EJECT_REQUEST=1: the host wants the drive (a non-forced eject or media change)
	MediaChange  bool // DISK_MEDIA_CHANGE=1
}

// ParseUevent decodes one netlink message ("ACTION@DEVPATH\0KEY=VALUE\0…").
func ParseUevent(msg []byte) Uevent {
	var ev Uevent
	for _, kv := range strings.Split(string(msg), "\x00") {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch key {
		case "ACTION":
			ev.Action = value
		case "DEVNAME":
			ev.Dev = strings.TrimPrefix(value, "/dev/")
		case "SUBSYSTEM":
			ev.Subsystem = value
		case "DISK_EJECT_REQUEST":
			ev.EjectRequest = value == "1"
		case "DISK_MEDIA_CHANGE":
			ev.MediaChange = value == "1"
		}
	}
	return ev
}

// IsDrive reports whether dev names a SCSI CD-ROM drive (srN).
func IsDrive(dev string) bool {
	n, ok := strings.CutPrefix(dev, "sr")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 16)
	return err == nil
}

package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// From linux/cdrom.h (not in x/sys/unix).
const (
	cdromEject       = 0x5309
	cdromLockDoor    = 0x5329
	cdromDriveStatus = 0x5326
	cdslCurrent      = 0x7fffffff
)

// DriveStatus is CDROM_DRIVE_STATUS's answer (CDS_*), or -1 when the drive cannot be asked.
type DriveStatus int

const (
	NoInfo        DriveStatus = 0
	NoDisc        DriveStatus = 1
	TrayOpen      DriveStatus = 2
	DriveNotReady DriveStatus = 3
	DiscOK        DriveStatus = 4
)

// Kernel is what the watcher asks of the kernel; Linux is the real one.
type Kernel interface {
	EnablePolling(dev string, ms int) error
	DisableAutoclose() error
	DriveStatus(dev string) DriveStatus
	ReadPVD(dev string) ([]byte, error)
	Mount(dev, dir string) error
	Unmount(dir string) error
	Eject(dev string) error
	Drives() ([]string, error)
}

// Linux talks to the real drives.
type Linux struct{}

// EnablePolling turns on the kernel's media-event polling (off by default: without it the
// guest never hears of a media change or an eject request).
func (Linux) EnablePolling(dev string, ms int) error {
	return os.WriteFile(filepath.Join("/sys/block", dev, "events_poll_msecs"), []byte(strconv.Itoa(ms)), 0)
}

// DisableAutoclose: opening a drive whose tray we just opened for the host would close it again
// under the host's feet.
func (Linux) DisableAutoclose() error {
	err := os.WriteFile("/proc/sys/dev/cdrom/autoclose", []byte("0"), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no cdrom driver loaded yet: nothing to close
	}
	return err
}

// DriveStatus asks the drive (O_NONBLOCK: the open needs no disc and locks no door).
func (Linux) DriveStatus(dev string) DriveStatus {
	fd, err := unix.Open("/dev/"+dev, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(fd)
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cdromDriveStatus, cdslCurrent)
	if errno != 0 {
		return -1
	}
	return DriveStatus(r)
}

const (
	pvdOffset = 16 * 2048
	pvdSize   = 2048
)

// ReadPVD reads the medium's ISO9660 Primary Volume Descriptor from the drive itself: O_DIRECT,
// so neither the block device's page cache nor a mount's buffers answer for a medium since
// replaced. The buffer is an anonymous mapping: page-aligned, as O_DIRECT needs.
func (Linux) ReadPVD(dev string) ([]byte, error) {
	return readPVD("/dev/" + dev)
}

func readPVD(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(buf)
	var n int
	for {
		n, err = unix.Pread(fd, buf[:pvdSize], pvdOffset)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if n != pvdSize {
		return nil, fmt.Errorf("%s: short read of the volume descriptor (%d bytes)", path, n)
	}
	return append([]byte(nil), buf[:pvdSize]...), nil
}

// Mount mounts the medium read-only, without devices or set-id programs.
func (Linux) Mount(dev, dir string) error {
	return unix.Mount("/dev/"+dev, dir, "iso9660", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "")
}

// Unmount lets go of a medium lazily: readers of files still open finish undisturbed.
func (Linux) Unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	os.Remove(dir)
	return err
}

// Eject unlocks the door and opens the tray: the host's non-forced eject or media change waits
// for exactly this. EBUSY: a reader still holds a file of the old medium; the host retries.
func (Linux) Eject(dev string) error {
	fd, err := unix.Open("/dev/"+dev, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cdromLockDoor, 0)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cdromEject, 0); errno != 0 {
		return errno
	}
	return nil
}

// Drives lists the srN block devices present.
func (Linux) Drives() ([]string, error) {
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if IsDrive(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Uevents receives kernel uevents (NETLINK_KOBJECT_UEVENT, the kernel's own multicast group) and
// delivers them until the socket is closed. Messages from user space (sender port not 0) are
// dropped: only the kernel speaks for the drives.
type Uevents struct {
	fd     int
	closed atomic.Bool
}

// ErrClosed ends the uevent stream after Close.
var ErrClosed = errors.New("uevent socket closed")

// OpenUevents binds the socket; open it before scanning the drives, so a drive that appears in
// between is heard as an add event.
func OpenUevents() (*Uevents, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20)
	// A receive timeout lets Next see Close (closing a socket does not wake a blocked recvfrom).
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
	return &Uevents{fd: fd}, nil
}

// Next blocks for the next kernel uevent. ENOBUFS (an overrun) is returned for the caller to log;
// other errors end the stream.
func (u *Uevents) Next() (Uevent, error) {
	buf := make([]byte, 16384)
	for {
		if u.closed.Load() {
			unix.Close(u.fd)
			return Uevent{}, ErrClosed
		}
		n, from, err := unix.Recvfrom(u.fd, buf, 0)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return Uevent{}, err
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		return ParseUevent(buf[:n]), nil
	}
}

// Close ends Next (within its receive timeout), which closes the socket.
func (u *Uevents) Close() { u.closed.Store(true) }

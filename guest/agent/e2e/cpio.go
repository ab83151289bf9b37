// Package e2e boots the agent in a real guest: a Debian kernel under QEMU with the agent binary,
// busybox and the kernel modules in an initramfs, CD-ROM drives on AHCI, media changed through
// QMP the way libvirt does it (open the tray: an eject request while the guest holds the door
// locked; then insert and close). See guest_test.go.
package e2e

import (
	"bytes"
	"fmt"
	"sort"
)

// cpioFile is one entry of an initramfs.
type cpioFile struct {
	mode uint32 // with the type bits (0o100000 file, 0o040000 dir, 0o120000 symlink)
	data []byte // content, or the target of a symlink
}

// writeCpio lays files out as a "newc" archive (what the kernel unpacks as an initramfs),
// parents before children, in a fixed order and with zero times: the same inputs, the same bytes.
func writeCpio(files map[string]cpioFile) []byte {
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	ino := 1
	entry := func(name string, f cpioFile) {
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, f.mode, 0, 0, 1, 0, len(f.data), 0, 0, 0, 0, len(name)+1, 0)
		ino++
		buf.WriteString(name)
		buf.WriteByte(0)
		pad(&buf)
		buf.Write(f.data)
		pad(&buf)
	}
	for _, name := range names {
		entry(name, files[name])
	}
	entry("TRAILER!!!", cpioFile{})
	return buf.Bytes()
}

func pad(buf *bytes.Buffer) {
	for buf.Len()%4 != 0 {
		buf.WriteByte(0)
	}
}

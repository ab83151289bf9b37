// Package e2e boots the agent in a real guest: a Debian kernel under QEMU with the agent binary,
// busybox and the kernel modules in an initramfs, CD-ROM drives on AHCI, media changed through
// QMP the way libvirt does it (open the tray: an eject request while the guest holds the door
// locked; then insert and close). See guest_test.go.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
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

// writeCpioTree writes a directory tree as a "newc" archive to w: directories, regular files and
// symbolic links with their modes and owners (device nodes and the like are left out: the
// kernel's devtmpfs provides /dev). Entries are sorted, times zero: reproducible.
func writeCpioTree(w io.Writer, root string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	ino := 1
	written := 0
	pad := func() {
		for written%4 != 0 {
			bw.WriteByte(0)
			written++
		}
	}
	header := func(name string, mode, uid, gid uint32, size int) {
		n, _ := fmt.Fprintf(bw, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, uid, gid, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
		ino++
		written += n
		bw.WriteString(name)
		bw.WriteByte(0)
		written += len(name) + 1
		pad()
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		var uid, gid uint32
		if st != nil {
			uid, gid = st.Uid, st.Gid
		}
		perm := uint32(info.Mode().Perm())
		if info.Mode()&os.ModeSetuid != 0 {
			perm |= 0o4000
		}
		if info.Mode()&os.ModeSetgid != 0 {
			perm |= 0o2000
		}
		if info.Mode()&os.ModeSticky != 0 {
			perm |= 0o1000
		}
		switch {
		case d.IsDir():
			header(rel, 0o040000|perm, uid, gid, 0)
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			header(rel, 0o120000|perm, uid, gid, len(target))
			bw.WriteString(target)
			written += len(target)
			pad()
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			header(rel, 0o100000|perm, uid, gid, len(data))
			bw.Write(data)
			written += len(data)
			pad()
		}
		return nil
	})
	if err != nil {
		return err
	}
	header("TRAILER!!!", 0, 0, 0, 0)
	return bw.Flush()
}

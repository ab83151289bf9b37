package union

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
)

// Benchmarks of the union against the kernel's overlayfs over the same two trees (go test
// -bench . -run '^$' ./internal/union). Warm: the same path again and again; cold: a path never
// looked up in this mount; read: one 64 MiB file, sequential, 1 MiB reads, page cache warm.
type benchBed struct {
	union, overlay string
	files          []string
}

func newBenchBed(b *testing.B, nfiles int) benchBed {
	fusetest.RequireFuse(b)
	dir := b.TempDir()
	low, high := filepath.Join(dir, "low"), filepath.Join(dir, "high")
	files := map[string]string{}
	var names []string
	for i := 0; i < nfiles; i++ {
		name := fmt.Sprintf("etc/d%d/f%d.conf", i%100, i)
		files[name] = "x"
		names = append(names, name)
	}
	fusetest.WriteTree(b, low, files)
	fusetest.WriteTree(b, high, map[string]string{"etc/app.conf": "high"})
	big := make([]byte, 64<<20)
	os.WriteFile(filepath.Join(low, "big"), big, 0o644)

	mp := filepath.Join(dir, "union")
	os.Mkdir(mp, 0o755)
	u := New(Options{})
	u.Swap([]layer.Layer{
		{Name: "low", Priority: 1, Root: low, Source: layer.Source{Kind: "device"}},
		{Name: "high", Priority: 2, Root: high, Source: layer.Source{Kind: "device"}},
	})
	if err := u.Mount(mp); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { u.Unmount() })
	ov := filepath.Join(dir, "overlay")
	os.Mkdir(ov, 0o755)
	if err := unix.Mount("overlay", ov, "overlay", unix.MS_RDONLY, "lowerdir="+high+":"+low); err != nil {
		b.Fatalf("overlayfs (the reference): %v", err)
	}
	b.Cleanup(func() { unix.Unmount(ov, unix.MNT_DETACH) })
	return benchBed{union: mp, overlay: ov, files: names}
}

func benchStat(b *testing.B, root string, paths []string) {
	var st syscall.Stat_t
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := syscall.Stat(filepath.Join(root, paths[i%len(paths)]), &st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatWarm(b *testing.B) {
	bed := newBenchBed(b, 1000)
	paths := []string{"etc/app.conf", "etc/d7/f7.conf"}
	for _, root := range []string{bed.union, bed.overlay} {
		benchStat(&testing.B{}, root, paths) // warm up
	}
	b.Run("union", func(b *testing.B) { benchStat(b, bed.union, paths) })
	b.Run("overlayfs", func(b *testing.B) { benchStat(b, bed.overlay, paths) })
}

func BenchmarkStatCold(b *testing.B) {
	for _, kind := range []string{"union", "overlayfs"} {
		b.Run(kind, func(b *testing.B) {
			bed := newBenchBed(b, max(b.N, 1))
			root := bed.union
			if kind == "overlayfs" {
				root = bed.overlay
			}
			benchStat(b, root, bed.files) // each path once
		})
	}
}

func benchRead(b *testing.B, path string) {
	buf := make([]byte, 1<<20)
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := f.Read(buf)
			if n == 0 || err != nil {
				break
			}
		}
		f.Close()
	}
}

func BenchmarkRead64MiB(b *testing.B) {
	bed := newBenchBed(b, 10)
	b.Run("union", func(b *testing.B) { benchRead(b, bed.union+"/big") })
	b.Run("overlayfs", func(b *testing.B) { benchRead(b, bed.overlay+"/big") })
}

func benchReaddir(b *testing.B, dir string) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Readdirnames(-1); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkReaddirWarm lists a directory of 100 entries again and again.
func BenchmarkReaddirWarm(b *testing.B) {
	bed := newBenchBed(b, 10_000)
	b.Run("union", func(b *testing.B) { benchReaddir(b, bed.union+"/etc/d7") })
	b.Run("overlayfs", func(b *testing.B) { benchReaddir(b, bed.overlay+"/etc/d7") })
}

// BenchmarkReadSmallWarm opens, reads and closes a 4 KiB file again and again (page cache warm):
// what a service re-reading its configuration does.
func BenchmarkReadSmallWarm(b *testing.B) {
	bed := newBenchBed(b, 10)
	small := make([]byte, 4096)
	// Into the high layer before anything looked the name up (both mounts resolve it fresh).
	if err := os.WriteFile(filepath.Join(filepath.Dir(bed.union), "high", "small.conf"), small, 0o644); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8192)
	read := func(b *testing.B, path string) {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := f.Read(buf); n != len(small) {
				b.Fatalf("read %d bytes of %s", n, path)
			}
			f.Close()
		}
	}
	b.Run("union", func(b *testing.B) { read(b, bed.union+"/small.conf") })
	b.Run("overlayfs", func(b *testing.B) { read(b, bed.overlay+"/small.conf") })
}

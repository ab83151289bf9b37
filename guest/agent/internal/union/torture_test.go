package union

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
)

// The invalidation torture test (issue 19): 1 000 swaps under concurrent readers that stat and
// read right after each announced swap. Every version of etc/app.conf is its generation's token
// repeated over ~10 pages, with a size that encodes the generation too, so a stale answer (an
// older generation than announced before the operation began) and a torn one (two tokens in
// one read, or a size from another version) are both detectable.
const tortureSwaps = 1000

func token(gen int) string { return fmt.Sprintf("<%08d>", gen) }

func appSize(gen int) int { return 10 * (4096 + gen) }

func appContent(gen int) string { return strings.Repeat(token(gen), appSize(gen)/10) }

// generationOf checks that content is exactly one version and returns its generation.
func generationOf(content string) (int, error) {
	if len(content) < 10 {
		return 0, fmt.Errorf("%d bytes", len(content))
	}
	gen, err := strconv.Atoi(content[1:9])
	if err != nil {
		return 0, fmt.Errorf("no token at the start: %q", content[:10])
	}
	if content != appContent(gen) {
		return gen, fmt.Errorf("torn: starts as generation %d but is not that version (%d bytes, want %d)", gen, len(content), appSize(gen))
	}
	return gen, nil
}

func TestTortureSwapsUnderReaders(t *testing.T) {
	fusetest.RequireFuse(t)
	u, mp := mountUnion(t, Options{})
	base := image(t, "base", 100, map[string]string{"etc/static.conf": "static", "etc/app.conf": appContent(0)})
	images := make([]layer.Layer, tortureSwaps+1)
	dir := t.TempDir()
	for gen := 1; gen <= tortureSwaps; gen++ {
		files := map[string]string{"etc/app.conf": appContent(gen)}
		if gen%2 == 0 {
			files["etc/gen-even"] = token(gen)
		} else {
			files["d/x"] = token(gen)
		}
		root := filepath.Join(dir, strconv.Itoa(gen))
		fusetest.WriteTree(t, root, files)
		images[gen] = layer.Layer{Name: "site", Priority: 300, Root: root, Source: layer.Source{Kind: "device", Device: "/dev/sr0"}}
	}
	mustSwap(t, u, base)

	var announced atomic.Int64 // the generation of the site image last announced
	var done atomic.Bool
	var failures atomic.Int64
	var reads, stats atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	var wg sync.WaitGroup
	const readers = 4
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !done.Load(); i++ {
				g0 := int(announced.Load())
				var st syscall.Stat_t
				if err := syscall.Stat(mp+"/etc/app.conf", &st); err != nil {
					fail("stat after generation %d: %v", g0, err)
					continue
				}
				stats.Add(1)
				if gs := int(st.Size)/10 - 4096; int(st.Size) != appSize(gs) || gs < g0 {
					fail("stale stat: size %d (generation %d) after generation %d was announced", st.Size, gs, g0)
				}
				b, err := os.ReadFile(mp + "/etc/app.conf")
				if err != nil {
					fail("read after generation %d: %v", g0, err)
					continue
				}
				reads.Add(1)
				gen, err := generationOf(string(b))
				if err != nil {
					fail("after generation %d: %v", g0, err)
				} else if gen < g0 {
					fail("stale read: generation %d after generation %d was announced", gen, g0)
				}
				if i%8 == 0 { // the kernel caches entries of these too
					os.Stat(mp + "/etc/gen-even")
					os.Stat(mp + "/d/x")
					os.ReadDir(mp + "/etc")
				}
			}
		}()
	}
	// A reader that holds one file open across swaps: it must read its version to the end.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			f, err := os.Open(mp + "/etc/app.conf")
			if err != nil {
				fail("open: %v", err)
				return
			}
			var sb strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := f.Read(buf)
				sb.Write(buf[:n])
				if err != nil {
					break
				}
				time.Sleep(50 * time.Microsecond) // let swaps happen mid-file
			}
			f.Close()
			if _, err := generationOf(sb.String()); err != nil {
				fail("file held open across swaps: %v", err)
			}
		}
	}()

	exists := func(path string) bool {
		_, err := os.Stat(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fail("stat %s: %v", path, err)
		}
		return err == nil
	}
	var swapTotal, swapMax time.Duration
	started := time.Now()
	for gen := 1; gen <= tortureSwaps && failures.Load() == 0; gen++ {
		c := mustSwap(t, u, base, images[gen])
		swapTotal += c.Took
		swapMax = max(swapMax, c.Took)
		announced.Store(int64(gen))
		// Right after the announcement, with no swap in between: exactly this generation.
		b, err := os.ReadFile(mp + "/etc/app.conf")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := generationOf(string(b)); err != nil || got != gen {
			fail("right after announcing generation %d: read generation %d (%v)", gen, got, err)
		}
		if got := exists(mp + "/etc/gen-even"); got != (gen%2 == 0) {
			fail("generation %d: etc/gen-even exists=%v", gen, got)
		}
		if got := exists(mp + "/d/x"); got != (gen%2 == 1) {
			fail("generation %d: d/x exists=%v", gen, got)
		}
		entries, err := os.ReadDir(mp + "/etc")
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, e := range entries {
			listed = listed || e.Name() == "gen-even"
		}
		if listed != (gen%2 == 0) {
			fail("generation %d: etc lists gen-even=%v", gen, listed)
		}
	}
	elapsed := time.Since(started)
	done.Store(true)
	wg.Wait()
	if reads.Load() < tortureSwaps {
		t.Errorf("only %d concurrent reads over %d swaps: the readers did not race the swaps", reads.Load(), tortureSwaps)
	}
	t.Logf("%d swaps in %v: swap→announce mean %v, max %v; %d concurrent stats, %d reads; %d invalidations",
		tortureSwaps, elapsed.Round(time.Millisecond), (swapTotal / tortureSwaps).Round(time.Microsecond), swapMax.Round(time.Microsecond),
		stats.Load(), reads.Load(), u.Notified())
}

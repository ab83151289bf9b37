// build writes the recontext-ffs release artefacts to guest/agent/dist (npm run build:guest):
// static binaries recontext-ffs-linux-{amd64,arm64} (CGO off) and, with nfpm as a library,
// .deb and .rpm packages of each. Reproducible: -trimpath, no build id, no VCS stamp, and every
// timestamp in the packages is SOURCE_DATE_EPOCH (default: the time of the last commit touching
// guest/agent), so two builds of one commit are byte-identical.
//
//	go -C guest/agent/tools run ./build [-binaries-only]
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

var arches = []string{"amd64", "arm64"}

// maxInstalledBytes is the bound on the installed size.
const maxInstalledBytes = 10 << 20

func main() {
	binariesOnly := flag.Bool("binaries-only", false, "build the binaries, not the packages")
	flag.Parse()
	if err := run(*binariesOnly); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(binariesOnly bool) error {
	agent, err := filepath.Abs("..") // run from guest/agent/tools
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(agent, "cmd/recontext-ffs")); err != nil {
		return fmt.Errorf("run from guest/agent/tools: %w", err)
	}
	dist := filepath.Join(agent, "dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return err
	}
	versionBytes, err := os.ReadFile(filepath.Join(agent, "VERSION"))
	if err != nil {
		return err
	}
	version := strings.TrimSpace(string(versionBytes))
	for _, arch := range arches {
		out := filepath.Join(dist, "recontext-ffs-linux-"+arch)
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/recontext-ffs")
		cmd.Dir = agent
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-mod=readonly")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", arch, err)
		}
		report(out)
	}
	if binariesOnly {
		return nil
	}
	mtime, err := sourceDate(agent)
	if err != nil {
		return err
	}
	for _, arch := range arches {
		vars := map[string]string{"GOARCH": arch, "VERSION": version, "DIST": dist}
		text, err := os.ReadFile(filepath.Join(agent, "packaging/nfpm.yaml"))
		if err != nil {
			return err
		}
		// nfpm expands variables in some fields only; expand the whole file (contents' src too).
		mapping := func(k string) string { return vars[k] }
		cfg, err := nfpm.ParseWithEnvMapping(strings.NewReader(os.Expand(string(text), mapping)), mapping)
		if err != nil {
			return err
		}
		for _, format := range []string{"deb", "rpm"} {
			if err := pack(agent, dist, cfg, format, mtime); err != nil {
				return fmt.Errorf("%s %s: %w", format, arch, err)
			}
		}
	}
	return nil
}

func pack(agent, dist string, cfg nfpm.Config, format string, mtime time.Time) error {
	// nfpm resolves the contents' relative sources against the working directory.
	if err := os.Chdir(agent); err != nil {
		return err
	}
	info, err := cfg.Get(format)
	if err != nil {
		return err
	}
	info.MTime = mtime
	for _, c := range info.Contents {
		if c.FileInfo != nil {
			c.FileInfo.MTime = mtime
		}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return err
	}
	packager, err := nfpm.Get(format)
	if err != nil {
		return err
	}
	var installed int64
	for _, c := range info.Contents {
		if c.FileInfo != nil {
			installed += c.FileInfo.Size
		}
	}
	if installed > maxInstalledBytes {
		return fmt.Errorf("installed size %d bytes exceeds %d", installed, maxInstalledBytes)
	}
	var buf bytes.Buffer
	if err := packager.Package(info, &buf); err != nil {
		return err
	}
	out := filepath.Join(dist, packager.ConventionalFileName(info))
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	report(out)
	fmt.Printf("  installed size %d bytes\n", installed)
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH, or the time of the last commit touching guest/agent.
func sourceDate(agent string) (time.Time, error) {
	text := os.Getenv("SOURCE_DATE_EPOCH")
	if text == "" {
		out, err := exec.Command("git", "-C", agent, "log", "-1", "--format=%ct", "--", ".").Output()
		if err != nil {
			return time.Time{}, fmt.Errorf("no SOURCE_DATE_EPOCH and no git history: %w", err)
		}
		text = strings.TrimSpace(string(out))
	}
	sec, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", text, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func report(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	fmt.Printf("%s  %d bytes  sha256:%x\n", filepath.Base(path), len(data), sha256.Sum256(data))
}

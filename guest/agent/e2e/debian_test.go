package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The package in a stock systemd guest (issue 19, "proof in a stock system"): a Debian bookworm
// root file system (mmdebstrap, minbase + systemd + udev + kmod), the .deb that npm run
// build:guest makes installed with dpkg -i, booted from an initramfs under QEMU. The unit must
// start at boot, a service ordered after it must read the context, and an in-place media swap must
// make the layer's hook restart that service (allowed by the guest owner's ffs.yaml).

// debianPackages is what the base root file system holds besides minbase.
var debianPackages = []string{"systemd", "systemd-sysv", "udev", "kmod"}

// The guest owner's configuration: service layers may restart exactly the demo application.
const ownerConfig = `hooks:
  classes: [service]
  restart:
    units: [demo-app.service]
  signal:
    pidfiles: [/run/demo-http.pid]
    signals: [HUP]
`

// The demo application reads its configuration from the context when it starts and says so on
// the console; the layer's hook restarts it when that configuration changes.
const demoUnit = `[Unit]
Description=demo application configured from the context
After=recontext-ffs.service
Requires=recontext-ffs.service

[Service]
ExecStart=/bin/sh -c 'echo "E2E SERVICE $(cat /run/recontext/context/etc/app.conf)" > /dev/console; exec sleep infinity'

[Install]
WantedBy=multi-user.target
`

// The HTTP server (demohttp) reloads on SIGHUP and says what it serves then.
const httpUnit = `[Unit]
Description=demo HTTP server configured from the context
After=recontext-ffs.service
Requires=recontext-ffs.service

[Service]
ExecStart=/usr/local/bin/demohttp /run/recontext/context/etc/app.conf /run/demo-http.pid 127.0.0.1:8080
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`

// The layer's hooks: restart one service, signal the other.
const serviceHooks = `{"hooks":[
  {"name":"demo-app","paths":["/etc/app.conf"],"restart":"demo-app.service"},
  {"name":"demo-http","paths":["/etc/app.conf"],"signal":{"name":"HUP","pidfile":"/run/demo-http.pid"}}]}`

// debianRootfs returns a tarball of the base root file system, made once with mmdebstrap and
// kept in ~/.cache/recontext/agent-e2e (keyed by the package list).
func debianRootfs(t *testing.T) string {
	t.Helper()
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache/recontext/agent-e2e")
	os.MkdirAll(dir, 0o755)
	key := sha256.Sum256([]byte(strings.Join(debianPackages, ",")))
	tarball := filepath.Join(dir, fmt.Sprintf("debian-bookworm-%x.tar", key[:6]))
	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	need(t, "mmdebstrap", "apt-get install mmdebstrap")
	cmd := exec.Command("nice", "-n", "10", "mmdebstrap", "--format=tar", "--variant=minbase", "--include="+strings.Join(debianPackages, ","), "bookworm", tarball+".part")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap (needs the Debian archive through apt's sources): %v\n%s", err, out)
	}
	if err := os.Rename(tarball+".part", tarball); err != nil {
		t.Fatal(err)
	}
	return tarball
}

// debianPackage builds the release artefacts (tools/build) and returns the amd64 .deb.
func debianPackage(t *testing.T) string {
	t.Helper()
	build := exec.Command("go", "run", "./build")
	build.Dir = "../tools"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tools/build: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob("../dist/recontext-ffs_*_amd64.deb")
	if len(debs) != 1 {
		t.Fatalf("tools/build left %d amd64 .deb files in dist", len(debs))
	}
	abs, _ := filepath.Abs(debs[0])
	return abs
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPackageInAStockSystemdGuest(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatal("the guest test boots an amd64 Debian kernel: run it on amd64")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the Debian guest test unpacks a root file system with its owners and chroots: run it as root")
	}
	need(t, "xorriso", "apt-get install xorriso")
	dir := t.TempDir()
	vmlinuz, modules := kernelTree(t, dir)
	tarball := debianRootfs(t)
	deb := debianPackage(t)

	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	run(t, "tar", "-xf", tarball, "-C", root, "--exclude=./dev/*")
	// The kernel modules the guest needs, where modprobe finds them.
	version := filepath.Base(modules)
	for _, m := range guestModules {
		dst := filepath.Join(root, "lib/modules", version, "kernel", m+".ko")
		os.MkdirAll(filepath.Dir(dst), 0o755)
		run(t, "cp", filepath.Join(modules, "kernel", m+".ko"), dst)
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		run(t, "cp", filepath.Join(modules, f), filepath.Join(root, "lib/modules", version, f))
	}
	run(t, "chroot", root, "depmod", version)
	// The package, as an image build installs it.
	run(t, "cp", deb, filepath.Join(root, "tmp/recontext-ffs.deb"))
	installed := run(t, "chroot", root, "dpkg", "-i", "/tmp/recontext-ffs.deb")
	t.Logf("dpkg -i:\n%s", installed)
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/recontext-ffs.service")); err != nil {
		t.Fatalf("the package did not enable its unit: %v", err)
	}
	// The guest owner's policy and application.
	os.WriteFile(filepath.Join(root, "etc/recontext/ffs.yaml"), []byte(ownerConfig), 0o644)
	os.WriteFile(filepath.Join(root, "etc/systemd/system/demo-app.service"), []byte(demoUnit), 0o644)
	os.Symlink("/etc/systemd/system/demo-app.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/demo-app.service"))
	demohttp := filepath.Join(root, "usr/local/bin/demohttp")
	build := exec.Command("go", "build", "-trimpath", "-o", demohttp, "./e2e/demohttp")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build demohttp: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(root, "etc/systemd/system/demo-http.service"), []byte(httpUnit), 0o644)
	os.Symlink("/etc/systemd/system/demo-http.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/demo-http.service"))
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("guest\n"), 0o644)
	// The watcher's trace lines in the journal (forwarded to the console), for the record.
	os.MkdirAll(filepath.Join(root, "etc/systemd/system/recontext-ffs.service.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/systemd/system/recontext-ffs.service.d/trace.conf"), []byte("[Service]\nEnvironment=FFS_DEVD_TRACE=1\n"), 0o644)
	// The kernel runs /init from an initramfs.
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "init"))

	initrd := filepath.Join(dir, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCpioTree(f, root); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(initrd)
	t.Logf("initramfs: %d MB", st.Size()>>20)

	v1, v2, v3 := image(t, dir, "v1", serviceHooks), image(t, dir, "v2", serviceHooks), image(t, dir, "v3", serviceHooks)
	t.Cleanup(func() {
		if keep := os.Getenv("RECONTEXT_E2E_KEEP"); keep != "" && t.Failed() {
			exec.Command("cp", filepath.Join(dir, "console.log"), filepath.Join(keep, "debian-console.log")).Run()
		}
	})
	booted := time.Now()
	q, con := boot(t, dir, vmlinuz, initrd, "console=ttyS0 panic=-1 systemd.journald.forward_to_console=1 systemd.show_status=1", 1536, v1)
	con.wait(t, `E2E SERVICE v1`, 300*time.Second)
	served := *con
	served.wait(t, `E2E SERVED v1`, 60*time.Second)
	t.Logf("%s: boot → both services read v1 from the context in %v", accelerator(), time.Since(booted).Round(time.Millisecond))

	released := swapInPlace(t, q, "cd0", v2)
	inserted := time.Now()
	_, seen := con.wait(t, `E2E SERVICE v2`, 60*time.Second)
	_, reloaded := served.wait(t, `E2E SERVED v2`, 60*time.Second)
	t.Logf("in place: eject request → tray open %v; insert → the hook restarted demo-app, which read v2, %v; the HTTP server got SIGHUP and serves v2 %v",
		released.Round(time.Millisecond), seen.Sub(inserted).Round(time.Millisecond), reloaded.Sub(inserted).Round(time.Millisecond))

	// Into the spare drive, then the host takes the older image's drive back (systemd and udev
	// watch these drives too: neither may get in the way).
	inserted = time.Now()
	insert(t, q, "cd1", v3)
	_, seen = con.wait(t, `E2E SERVICE v3`, 60*time.Second)
	_, reloaded = served.wait(t, `E2E SERVED v3`, 60*time.Second)
	t.Logf("spare drive: insert → both services serve v3 %v / %v", seen.Sub(inserted).Round(time.Millisecond), reloaded.Sub(inserted).Round(time.Millisecond))
	started := time.Now()
	if _, err := q.run("blockdev-open-tray", map[string]any{"id": "cd0"}); err != nil {
		t.Fatal(err)
	}
	if err := q.trayMoved("cd0", true, 10*time.Second); err != nil {
		t.Fatalf("the agent did not release sr0 (an image no longer in the stack): %v", err)
	}
	t.Logf("eject request for an image out of the stack → tray open %v", time.Since(started).Round(time.Millisecond))
	time.Sleep(time.Second)
	text, _ := os.ReadFile(con.path)
	if strings.Count(string(text), "E2E SERVICE ") != 3 || strings.Count(string(text), "E2E SERVED ") != 3 {
		t.Errorf("the services did not see exactly v1, v2, v3:\n%s", grep(string(text), "E2E "))
	}
	if strings.Contains(string(text), `"level":"error"`) {
		t.Errorf("the agent logged errors:\n%s", grep(string(text), `"level":"error"`))
	}
	t.Logf("the agent said:\n%s", grep(string(text), `recontext-ffs`))
}

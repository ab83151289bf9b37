package e2e

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The kernel modules the guest loads, in dependency order (AHCI CD-ROMs, ISO9660, FUSE).
var guestModules = []string{
	"drivers/scsi/scsi_common", "drivers/scsi/scsi_mod", "drivers/ata/libata", "drivers/ata/libahci", "drivers/ata/ahci",
	"drivers/cdrom/cdrom", "drivers/scsi/sr_mod", "fs/isofs/isofs", "fs/fuse/fuse",
}

const guestInit = `#!/bin/busybox sh
# PID 1: pseudo file systems, modules, the agent with the drives, and a reader that reports on the
# console what the union shows (E2E APP) and what the hook saw (E2E HOOK).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
for m in $(cat /etc/modules.list); do insmod /lib/modules/$m.ko || echo "E2E WARN insmod $m"; done
mkdir -p /run/recontext/context
FFS_DEVD_TRACE=1 recontext-ffs mount /run/recontext/context --devices &
last=""; hooks=0
while :; do
  c=$(cat /run/recontext/context/etc/app.conf 2>/dev/null)
  if [ "$c" != "$last" ]; then echo "E2E APP ${c:-none}"; last=$c; fi
  if [ -f /tmp/hooks.log ]; then
    n=$(wc -l < /tmp/hooks.log)
    if [ "$n" -gt "$hooks" ]; then tail -n $((n - hooks)) /tmp/hooks.log | sed 's/^/E2E HOOK /'; hooks=$n; fi
  fi
  sleep 0.05
done
`

// The hook every image declares: it runs as the default user (nobody) and appends what it saw.
const imageHooks = `{"hooks":[{"name":"report","paths":["/etc"],"run":["/bin/sh","-c","echo \"uid=$(id -u) gen=$RECONTEXT_GENERATION paths=$(echo $RECONTEXT_CHANGED_PATHS)\" >> /tmp/hooks.log"]}]}`

func need(t *testing.T, tool, install string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("the guest test needs %s: %s", tool, install)
	}
	return path
}

// staticBusybox finds a statically linked busybox (no ELF interpreter).
func staticBusybox(t *testing.T) string {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			static = static && prog.Type != elf.PT_INTERP
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Fatal("the guest test needs a static busybox: apt-get install busybox-static")
	return ""
}

// kernelDeb finds a Debian kernel package: $RECONTEXT_GUEST_KERNEL_DEB, the test bed's cache, or
// one downloaded (apt-get download, no install) into ~/.cache/recontext/agent-e2e.
func kernelDeb(t *testing.T) string {
	if p := os.Getenv("RECONTEXT_GUEST_KERNEL_DEB"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, pattern := range []string{".cache/recontext/testbed/kernel/linux-image-*-amd64_*.deb", ".cache/recontext/agent-e2e/linux-image-*-amd64_*.deb"} {
		if m, _ := filepath.Glob(filepath.Join(home, pattern)); len(m) > 0 {
			return m[len(m)-1]
		}
	}
	dir := filepath.Join(home, ".cache/recontext/agent-e2e")
	os.MkdirAll(dir, 0o755)
	deps, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	pkg := regexp.MustCompile(`Depends: (linux-image-[0-9][^ \n]*-amd64)\b`).FindSubmatch(deps)
	if err != nil || pkg == nil {
		t.Fatalf("the guest test needs a Debian kernel package: set RECONTEXT_GUEST_KERNEL_DEB, or make apt-get able to download linux-image-amd64's kernel (%v)", err)
	}
	cmd := exec.Command("apt-get", "download", string(pkg[1]))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", pkg[1], err, out)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "linux-image-*-amd64_*.deb"))
	if len(m) == 0 {
		t.Fatalf("apt-get download %s left no package in %s", pkg[1], dir)
	}
	return m[len(m)-1]
}

// image writes a context layer image the way the operator does: Rock Ridge, the manifest, the
// hooks file, and a volume id carrying the content digest (so two images never share a PVD).
func image(t *testing.T, dir, version, hooks string) string {
	root := filepath.Join(dir, "tree-"+version)
	files := map[string]string{
		".recontext/manifest.json": fmt.Sprintf(`{"layer":"site","class":"service","priority":300,"digest":"sha256:%s"}`, version),
		".recontext/hooks.json":    hooks,
		"etc/app.conf":             version,
	}
	for rel, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755)
		os.WriteFile(filepath.Join(root, rel), []byte(content), 0o644)
	}
	iso := filepath.Join(dir, version+".iso")
	var out []byte
	var err error
	// xorriso 1.5.4 (Debian 12) now and then dies of SIGSEGV while shutting down after a
	// complete write: try again.
	for attempt := 0; attempt < 3; attempt++ {
		out, err = exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "RCTX_"+strings.ToUpper(version), "-o", iso, root).CombinedOutput()
		if err == nil {
			return iso
		}
	}
	t.Fatalf("xorriso: %v\n%s", err, out)
	return ""
}

// console follows the guest's serial console file.
type console struct {
	path   string
	offset int
}

// wait returns the first line at or after the offset matching re, and moves past it.
func (c *console) wait(t *testing.T, re string, timeout time.Duration) (string, time.Time) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(c.path)
		text := string(data[min(c.offset, len(data)):])
		for _, line := range strings.SplitAfter(text, "\n") {
			if !strings.HasSuffix(line, "\n") {
				break
			}
			if rx.MatchString(strings.TrimRight(line, "\r\n")) {
				c.offset += strings.Index(text, line) + len(line)
				return strings.TrimSpace(line), time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	data, _ := os.ReadFile(c.path)
	tail := string(data)
	if len(tail) > 4000 {
		tail = tail[len(tail)-4000:]
	}
	t.Fatalf("no console line matching %q within %v; console ends:\n%s", re, timeout, tail)
	return "", time.Time{}
}

func TestAgentFollowsMediaSwapsInAGuest(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatal("the guest test boots an amd64 Debian kernel: run it on amd64")
	}
	need(t, "xorriso", "apt-get install xorriso")
	busybox := staticBusybox(t)
	dir := t.TempDir()
	vmlinuz, modules := kernelTree(t, dir)
	agent := buildAgent(t, dir)
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	files := map[string]cpioFile{
		"bin": {mode: 0o40755}, "dev": {mode: 0o40755}, "proc": {mode: 0o40755}, "sys": {mode: 0o40755},
		"run": {mode: 0o40755}, "tmp": {mode: 0o41777}, "etc": {mode: 0o40755}, "lib": {mode: 0o40755}, "lib/modules": {mode: 0o40755},
		"init":              {mode: 0o100755, data: []byte(guestInit)},
		"bin/busybox":       {mode: 0o100755, data: read(busybox)},
		"bin/recontext-ffs": {mode: 0o100755, data: read(agent)},
		"etc/passwd":        {mode: 0o100644, data: []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		"etc/group":         {mode: 0o100644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	var list []string
	for _, m := range guestModules {
		name := filepath.Base(m)
		files["lib/modules/"+name+".ko"] = cpioFile{mode: 0o100644, data: read(filepath.Join(modules, "kernel", m+".ko"))}
		list = append(list, name)
	}
	files["etc/modules.list"] = cpioFile{mode: 0o100644, data: []byte(strings.Join(list, "\n") + "\n")}
	initrd := filepath.Join(dir, "initrd.cpio")
	os.WriteFile(initrd, writeCpio(files), 0o644)
	v1, v2, v3 := image(t, dir, "v1", imageHooks), image(t, dir, "v2", imageHooks), image(t, dir, "v3", imageHooks)

	booted := time.Now()
	q, con := boot(t, dir, vmlinuz, initrd, "console=ttyS0 panic=-1 quiet", 512, v1)
	con.wait(t, `^E2E APP v1$`, 120*time.Second)
	t.Logf("%s: boot → the union shows v1 in %v", accelerator(), time.Since(booted).Round(time.Millisecond))
	// The media present at boot are the first stack: no hook runs for them.
	time.Sleep(500 * time.Millisecond)
	if data, _ := os.ReadFile(con.path); strings.Contains(string(data), "E2E HOOK") {
		t.Errorf("a hook ran at boot:\n%s", grep(string(data), "E2E HOOK"))
	}

	// In place, as libvirt's non-forced change-media.
	released := swapInPlace(t, q, "cd0", v2)
	inserted := time.Now()
	_, seen := con.wait(t, `^E2E APP v2$`, 20*time.Second)
	// The medium left (its layer with it), then came back: the hook runs for the arrival, as
	// nobody, with the changed paths.
	hook, hookSeen := con.wait(t, `^E2E HOOK uid=\d+ gen=\d+ paths=/etc /etc/app.conf$`, 20*time.Second)
	t.Logf("in place: eject request → tray open %v; insert → the union shows v2 %v, the hook has run %v",
		released.Round(time.Millisecond), seen.Sub(inserted).Round(time.Millisecond), hookSeen.Sub(inserted).Round(time.Millisecond))
	if !strings.Contains(hook, "uid=65534") {
		t.Errorf("hook line %q: want it run as nobody", hook)
	}

	// Into the spare drive (empty, unlocked): the newest image of the layer wins.
	inserted = time.Now()
	insert(t, q, "cd1", v3)
	_, seen = con.wait(t, `^E2E APP v3$`, 20*time.Second)
	_, hookSeen = con.wait(t, `^E2E HOOK uid=65534 gen=\d+ paths=/etc/app.conf$`, 20*time.Second)
	t.Logf("spare drive: insert → the union shows v3 %v, the hook has run %v", seen.Sub(inserted).Round(time.Millisecond), hookSeen.Sub(inserted).Round(time.Millisecond))

	// The host takes the older image's drive back: released at once, the union keeps v3.
	started := time.Now()
	q.run("blockdev-open-tray", map[string]any{"id": "cd0"})
	if err := q.trayMoved("cd0", true, 10*time.Second); err != nil {
		t.Fatalf("the agent did not release sr0 (an image no longer in the stack): %v", err)
	}
	t.Logf("eject request for an image out of the stack → tray open %v", time.Since(started).Round(time.Millisecond))

	log, _ := os.ReadFile(con.path)
	text := string(log)
	if strings.Contains(text, "E2E APP v2\nE2E APP none") || strings.Count(text, "E2E APP v3") != 1 {
		t.Errorf("the union flickered:\n%s", grep(text, "E2E APP"))
	}
	if n := regexp.MustCompile(`ffs-devd trace \S+ mounted sr0 `).FindAllStringIndex(text, -1); len(n) != 2 {
		t.Errorf("sr0 mounted %d times, want once per medium (v1, v2):\n%s", len(n), grep(text, "ffs-devd trace"))
	}
	if n := regexp.MustCompile(`ffs-devd trace \S+ mounted sr1 `).FindAllStringIndex(text, -1); len(n) != 1 {
		t.Errorf("sr1 mounted %d times, want once", len(n))
	}
	if strings.Contains(text, `"level":"error"`) {
		t.Errorf("the agent logged errors:\n%s", grep(text, `"level":"error"`))
	}
	t.Logf("media-change echoes that kept their mount: %d", strings.Count(text, "same medium, mount kept"))
	t.Logf("what the guest reported:\n%s\n%s", grep(text, "E2E "), grep(text, `"msg":"hook`))
}

// buildAgent builds the agent as the release does (static, amd64).
func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	agent := filepath.Join(dir, "recontext-ffs")
	build := exec.Command("go", "build", "-trimpath", "-o", agent, "./cmd/recontext-ffs")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return agent
}

func grep(text, needle string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, needle) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// accelerator is TCG: /dev/kvm may exist and still not boot a guest (nested, as on the machine
// this was written on); RECONTEXT_GUEST_ACCEL=kvm where it does.
func accelerator() string {
	if os.Getenv("RECONTEXT_GUEST_ACCEL") == "kvm" {
		return "kvm"
	}
	return "tcg"
}

// boot starts QEMU (q35, two AHCI CD-ROM drives cd0 and cd1, cd0 holding first) with its serial
// console in a file and QMP on a socket; the guest is killed when the test ends.
func boot(t *testing.T, dir, kernel, initrd, cmdline string, memoryMiB int, first string) (*qmp, *console) {
	t.Helper()
	qemu := need(t, "qemu-system-x86_64", "apt-get install qemu-system-x86")
	consolePath, qmpPath := filepath.Join(dir, "console.log"), filepath.Join(dir, "qmp.sock")
	vm := exec.Command(qemu, "-machine", "q35", "-accel", accelerator(), "-m", fmt.Sprint(memoryMiB), "-smp", "1", "-nodefaults", "-no-reboot",
		"-display", "none", "-serial", "file:"+consolePath, "-qmp", "unix:"+qmpPath+",server=on,wait=off",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-drive", "if=none,id=drv0,media=cdrom,readonly=on,file="+first, "-device", "ide-cd,drive=drv0,id=cd0,bus=ide.0",
		"-drive", "if=none,id=drv1,media=cdrom,readonly=on", "-device", "ide-cd,drive=drv1,id=cd1,bus=ide.1")
	var out bytes.Buffer
	vm.Stdout, vm.Stderr = &out, &out
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Process.Kill()
		vm.Wait()
		if t.Failed() {
			t.Logf("qemu: %s", out.String())
		}
	})
	q, err := dialQMP(qmpPath, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return q, &console{path: consolePath}
}

// swapInPlace changes the medium in a drive the way libvirt's non-forced change-media does: open
// the tray (the guest holds the door locked, so QEMU sends an eject request and the tray opens
// once the guest lets go), insert, close. It returns how long the guest took to let go.
func swapInPlace(t *testing.T, q *qmp, id, iso string) time.Duration {
	t.Helper()
	started := time.Now()
	if _, err := q.run("blockdev-open-tray", map[string]any{"id": id}); err != nil {
		t.Fatal(err)
	}
	if err := q.trayMoved(id, true, 10*time.Second); err != nil {
		t.Fatalf("the agent did not release %s for the host: %v", id, err)
	}
	released := time.Since(started)
	insert(t, q, id, iso)
	return released
}

// insert puts a medium into an open or empty drive and closes it.
func insert(t *testing.T, q *qmp, id, iso string) {
	t.Helper()
	if _, err := q.run("blockdev-change-medium", map[string]any{"id": id, "filename": iso, "format": "raw", "read-only-mode": "read-only"}); err != nil {
		t.Fatal(err)
	}
}

// kernelTree unpacks the Debian kernel package: the kernel image and the modules directory.
func kernelTree(t *testing.T, dir string) (vmlinuz, modules string) {
	t.Helper()
	need(t, "dpkg-deb", "apt-get install dpkg")
	deb := kernelDeb(t)
	kdir := filepath.Join(dir, "kernel")
	if out, err := exec.Command("dpkg-deb", "-x", deb, kdir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	k, _ := filepath.Glob(filepath.Join(kdir, "boot/vmlinuz-*"))
	m, _ := filepath.Glob(filepath.Join(kdir, "lib/modules/*"))
	if len(k) != 1 || len(m) != 1 {
		t.Fatalf("%s holds no kernel and modules", deb)
	}
	return k[0], m[0]
}

/*
 * ffs-devd: the kernel side of FFS's device watcher (guest/ffs/src/devices.ts). Node has no
 * netlink sockets, no mount(2) and no ioctl, so this small static helper does those three things
 * and talks to FFS in lines over stdin/stdout:
 *
 *  - turns on the kernel's media-event polling for every CD-ROM (srN; off by default, and without
 *    it the guest never hears of a media change or an eject request), and turns off the cdrom
 *    driver's autoclose (opening a drive whose tray we just opened for the host would close it
 *    again under the host's feet);
 *  - listens for kernel uevents (NETLINK_KOBJECT_UEVENT) — no polling loop of its own;
 *  - mounts each new medium read-only in a directory of its own, ROOT/srN.SEQ (a new one per
 *    medium, so FFS can switch to it while readers of the previous one finish);
 *  - passes the host's eject requests on, and ejects once FFS has switched away from the medium.
 *
 * Out (one line each):              In:
 *   READY                             RELEASE <dev>   unmount (lazily) every medium of dev and
 *   MOUNTED <dev> <seq> <dir>                         open the tray, so the host's non-forced
 *   UNMOUNTED <dev> <seq>                             eject/media change can proceed
 *   EJECT-REQUEST <dev>
 *   EJECTED <dev> ok|<errno text>
 *   ERROR <dev> <what> <errno text>
 *
 * Exits when stdin closes (FFS is gone). Build: gcc -static -O2 -o ffs-devd ffs-devd.c
 * Usage: ffs-devd ROOT [POLL_MS]   (POLL_MS: media-event polling interval, default 100)
 * FFS_DEVD_TRACE=1: also timestamped trace lines on stderr (uevents, mounts), for profiling.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/cdrom.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEVS 64

static const char *root;
static char poll_ms[16] = "100";
/* Per srN: sequence number of its current mount (0 = none) and a counter for the next. */
static unsigned long current[MAX_DEVS], next_seq[MAX_DEVS];

/*
 * Per srN: the ISO9660 Primary Volume Descriptor (sector 16) of the mounted medium, if read. Every
 * swap raises two media-change uevents: the kernel's poll, then an echo caused by our own first
 * open of the changed drive. On a media-change uevent for a drive with a mount, a PVD read back
 * identical means the same medium: the mount is kept (no second mount). That is safe because the
 * operator writes RCTX_<24 hex chars of the image's content digest> as the volume identifier of
 * every layer image (src/images/layer-image.ts volumeId()), so two different images never share
 * a PVD; for foreign media, identical PVD bytes (volume id, sizes, creation/modification times)
 * mean the same disc for all practical purposes. Anything else (a read error, other bytes, no
 * PVD kept) mounts anew, as before.
 */
#define PVD_SIZE 2048
#define PVD_OFFSET (16 * 2048)
static unsigned char pvd[MAX_DEVS][PVD_SIZE];
static int have_pvd[MAX_DEVS];

static void say(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(STDOUT_FILENO, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) exit(0); /* FFS is gone */
        off += (int)w;
    }
}

/* FFS_DEVD_TRACE=1 in the environment: timestamped lines on stderr (wall clock, ms, as FFS's log ts). */
static int tracing;
static void trace(const char *fmt, ...) {
    if (!tracing) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[512];
    int n = snprintf(line, sizeof line, "ffs-devd trace %lld.%03ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000000L);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) tracing = 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* mkdir -p: the media root's parents may not exist yet (/run/recontext-ffs/media at boot). */
static void mkdir_p(const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    mkdir(buf, 0755);
}

static int sr_index(const char *dev) {
    if (strncmp(dev, "sr", 2) != 0 || dev[2] < '0' || dev[2] > '9') return -1;
    char *end;
    long n = strtol(dev + 2, &end, 10);
    return *end == '\0' && n >= 0 && n < MAX_DEVS ? (int)n : -1;
}

static void mount_dir(const char *dev, unsigned long seq, char *dir, size_t size) {
    snprintf(dir, size, "%s/%s.%lu", root, dev, seq);
}

/* Lets go of dev's current medium: lazily, so readers of open files finish undisturbed. */
static void release_mount(const char *dev) {
    int idx = sr_index(dev);
    if (idx < 0 || current[idx] == 0) return;
    char dir[512];
    mount_dir(dev, current[idx], dir, sizeof dir);
    if (umount2(dir, MNT_DETACH) != 0) say("ERROR %s umount %s", dev, strerror(errno));
    rmdir(dir);
    say("UNMOUNTED %s %lu", dev, current[idx]);
    current[idx] = 0;
    have_pvd[idx] = 0;
}

/*
 * Reads the medium's PVD (2048 bytes at byte 32768) into out, from the drive itself: O_DIRECT, so
 * neither the block device's page cache nor a mount's buffers answer for a medium since replaced
 * (O_NONBLOCK: the open neither needs a disc nor locks the door). Returns 0, or an errno.
 */
static int read_pvd(const char *path, unsigned char *out) {
    static unsigned char buf[PVD_SIZE] __attribute__((aligned(4096)));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n;
    do n = pread(fd, buf, PVD_SIZE, PVD_OFFSET);
    while (n < 0 && errno == EINTR);
    int err = n == PVD_SIZE ? 0 : n < 0 ? errno : EIO;
    close(fd);
    if (err == 0) memcpy(out, buf, PVD_SIZE);
    return err;
}

/* After a media-change uevent: is dev's mounted medium still in the drive (see pvd above)? */
static int same_medium(const char *dev) {
    int idx = sr_index(dev);
    if (idx < 0 || current[idx] == 0 || !have_pvd[idx]) return 0;
    char path[64];
    unsigned char now[PVD_SIZE];
    snprintf(path, sizeof path, "/dev/%s", dev);
    int err = read_pvd(path, now);
    if (err != 0) {
        trace("pvd %s unreadable: %s; remounting", dev, strerror(err));
        return 0;
    }
    if (memcmp(now, pvd[idx], PVD_SIZE) != 0) {
        trace("pvd %s differs; remounting", dev);
        return 0;
    }
    return 1;
}

/*
 * Waits (up to 1 s) until the drive says a disc is ready. Right after a media change the first
 * access meets the drive's unit attention / "becoming ready"; a mount attempt then fails slowly
 * (~130 ms under TCG) where a TEST UNIT READY (CDROM_DRIVE_STATUS) costs a few ms. Returns the
 * last status (CDS_*), or -1 when the drive cannot be opened.
 */
static int wait_ready(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    int status = -1, polls = 0;
    for (; polls < 200; polls++) {
        status = ioctl(fd, CDROM_DRIVE_STATUS, CDSL_CURRENT);
        if (status == CDS_DISC_OK || status == CDS_NO_DISC || status == CDS_TRAY_OPEN || status < 0) break;
        sleep_ms(5);
    }
    close(fd);
    trace("drive %s status %d after %d polls", path, status, polls);
    return status;
}

static void do_mount(const char *dev) {
    int idx = sr_index(dev);
    if (idx < 0) return;
    release_mount(dev); /* a medium changed under a stale mount (e.g. a forced change) */
    unsigned long seq = ++next_seq[idx];
    char dir[512], path[64];
    mount_dir(dev, seq, dir, sizeof dir);
    snprintf(path, sizeof path, "/dev/%s", dev);
    mkdir_p(root);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        say("ERROR %s mkdir %s", dev, strerror(errno));
        return;
    }
    int err = 0;
    int status = wait_ready(path);
    /* An empty drive (the uevent of the host taking a medium away) has nothing to mount. Trying
     * anyway cost ~200 ms under TCG, during which this single-threaded helper heard no other
     * drive: the next swap of a migration waited for it. */
    if (status == CDS_NO_DISC || status == CDS_TRAY_OPEN) {
        rmdir(dir);
        trace("%s has no disc (drive status %d): nothing to mount", dev, status);
        return;
    }
    /* The PVD just before and after the mount: kept only if both agree, so it is the mounted medium's. */
    unsigned char before[PVD_SIZE];
    int before_err = 0;
    /* Right after a media change the drive may still be "becoming ready": retry briefly. */
    int attempt;
    for (attempt = 0; attempt < 40; attempt++) {
        before_err = read_pvd(path, before);
        if (mount(path, dir, "iso9660", MS_RDONLY | MS_NODEV | MS_NOSUID, "") == 0) {
            err = 0;
            break;
        }
        err = errno;
        trace("mount %s failed: %s", dev, strerror(err));
        if (err == ENOMEDIUM || err == ENOENT || err == ENXIO) break;
        sleep_ms(25);
    }
    if (err != 0) {
        rmdir(dir);
        if (err != ENOMEDIUM && err != ENXIO) say("ERROR %s mount %s", dev, strerror(err));
        return;
    }
    current[idx] = seq;
    int pvd_err = before_err != 0 ? before_err : read_pvd(path, pvd[idx]);
    have_pvd[idx] = pvd_err == 0 && memcmp(before, pvd[idx], PVD_SIZE) == 0;
    trace("mounted %s %lu after %d failed attempts (pvd %s)", dev, seq, attempt,
          have_pvd[idx] ? "kept" : pvd_err != 0 ? strerror(pvd_err) : "changed during the mount");
    say("MOUNTED %s %lu %s", dev, seq, dir);
}

/* Opens the tray: the host's non-forced eject or media change waits for exactly this. */
static void do_eject(const char *dev) {
    char path[64];
    snprintf(path, sizeof path, "/dev/%s", dev);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        say("EJECTED %s %s", dev, strerror(errno));
        return;
    }
    ioctl(fd, CDROM_LOCKDOOR, 0);
    int rc = ioctl(fd, CDROMEJECT, 0);
    /* EBUSY: a reader still holds a file of the old medium open; the host retries its eject. */
    say("EJECTED %s %s", dev, rc == 0 ? "ok" : strerror(errno));
    close(fd);
}

static void enable_polling(const char *dev) {
    char path[128];
    snprintf(path, sizeof path, "/sys/block/%s/events_poll_msecs", dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, poll_ms, strlen(poll_ms)) < 0) say("ERROR %s events_poll_msecs %s", dev, strerror(errno));
    close(fd);
}

static void handle_uevent(char *buf, size_t len) {
    const char *action = NULL, *devname = NULL, *subsystem = NULL;
    int eject = 0, change = 0;
    for (size_t off = 0; off < len;) {
        char *kv = buf + off;
        size_t n = strnlen(kv, len - off);
        if (strncmp(kv, "ACTION=", 7) == 0) action = kv + 7;
        else if (strncmp(kv, "DEVNAME=", 8) == 0) devname = kv + 8;
        else if (strncmp(kv, "SUBSYSTEM=", 10) == 0) subsystem = kv + 10;
        else if (strcmp(kv, "DISK_EJECT_REQUEST=1") == 0) eject = 1;
        else if (strcmp(kv, "DISK_MEDIA_CHANGE=1") == 0) change = 1;
        off += n + 1;
    }
    if (!action || !devname || !subsystem || strcmp(subsystem, "block") != 0) return;
    if (strncmp(devname, "/dev/", 5) == 0) devname += 5;
    if (sr_index(devname) < 0) return;
    trace("uevent %s %s%s%s", action, devname, change ? " media-change" : "", eject ? " eject-request" : "");
    if (strcmp(action, "add") == 0) {
        enable_polling(devname);
        do_mount(devname);
    } else if (strcmp(action, "remove") == 0) {
        release_mount(devname);
    } else if (strcmp(action, "change") == 0) {
        if (eject) say("EJECT-REQUEST %s", devname); /* FFS switches away, then says RELEASE */
        else if (change && same_medium(devname)) trace("%s same medium, mount kept", devname);
        else if (change) do_mount(devname);
    }
}

static void handle_command(char *line) {
    if (strncmp(line, "RELEASE ", 8) == 0 && sr_index(line + 8) >= 0) {
        release_mount(line + 8);
        do_eject(line + 8);
    } else {
        say("ERROR - command unknown: %s", line);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ffs-devd ROOT [POLL_MS]\n");
        return 2;
    }
    root = argv[1];
    tracing = getenv("FFS_DEVD_TRACE") != NULL && strcmp(getenv("FFS_DEVD_TRACE"), "1") == 0;
    if (argc == 3) snprintf(poll_ms, sizeof poll_ms, "%d", atoi(argv[2]) > 0 ? atoi(argv[2]) : 100);
    setvbuf(stdout, NULL, _IONBF, 0);
    int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = 1};
    if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        say("ERROR - netlink %s", strerror(errno));
        return 1;
    }
    int rcvbuf = 1 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    int autoclose = open("/proc/sys/dev/cdrom/autoclose", O_WRONLY | O_CLOEXEC);
    if (autoclose >= 0) {
        if (write(autoclose, "0", 1) != 1) say("ERROR - autoclose %s", strerror(errno));
        close(autoclose);
    }

    /* Socket first, then the scan: a device that appears in between is seen as an add event. */
    DIR *block = opendir("/sys/block");
    if (block) {
        struct dirent *e;
        while ((e = readdir(block)) != NULL) {
            if (sr_index(e->d_name) < 0) continue;
            enable_polling(e->d_name);
            do_mount(e->d_name);
        }
        closedir(block);
    }
    say("READY");

    char buf[16384], input[1024];
    size_t have = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = sock, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                handle_uevent(buf, (size_t)n);
            } else if (n < 0 && errno == ENOBUFS) {
                say("ERROR - netlink overrun");
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(STDIN_FILENO, input + have, sizeof input - 1 - have);
            if (n <= 0) return 0; /* FFS closed our stdin: it is gone */
            have += (size_t)n;
            char *start = input, *nl;
            while ((nl = memchr(start, '\n', have - (size_t)(start - input))) != NULL) {
                *nl = '\0';
                handle_command(start);
                start = nl + 1;
            }
            have -= (size_t)(start - input);
            memmove(input, start, have);
            if (have == sizeof input - 1) have = 0; /* an absurd line: drop it */
        }
    }
}

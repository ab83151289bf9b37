/*
 * ctxagent: the test guest's context agent (guest side of the cooperative CD-ROM swap,
 * docs/cdrom-swap.md). Static, no libraries beyond libc; built with gcc -static -O2.
 *
 *  - enables the kernel's media-event polling on every srN (events_poll_msecs, off by default);
 *  - listens for kernel uevents (NETLINK_KOBJECT_UEVENT, multicast group 1);
 *  - DISK_EJECT_REQUEST=1 (the host asked for a non-forced eject of a locked tray):
 *      unmount /ctx/srN, then ioctl(CDROMEJECT) so the tray opens and the host can insert;
 *  - DISK_MEDIA_CHANGE=1: mount the new medium read-only (iso9660) at /ctx/srN;
 *  - block add/remove of srN (hotplugged virtio-scsi CD-ROMs): mount / forget;
 *  - with ctx.devices=off on the kernel command line (a guest running FFS, whose own helper
 *    handles the drives) it leaves the CD-ROMs alone and only sends its heartbeat;
 *  - reports everything it sees on stdout (the serial console) as one line per write():
 *      CTX AGENT start
 *      CTX ALIVE <n>                     every second
 *      CTX MOUNT <dev> <label> <dir>     then one line per regular file (up to MAX_FILES):
 *      CTX FILE <dev> <relpath> <size> <base64 of the content, or - when > MAX_INLINE bytes>
 *      CTX END <dev> <files>             the report of that medium is complete
 *      CTX UMOUNT <dev>
 *      CTX EJECT <dev> ok|<errno text>
 *      CTX NOMEDIUM <dev>
 *      CTX ERROR <dev> <what> <errno text>
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#define CTX_ROOT "/ctx"
#define MAX_INLINE 4096
#define MAX_FILES 256
#define MAX_DEVS 32

/* Mounted state per srN (index N). */
static int mounted[MAX_DEVS];

/* One line, one write(): the serial log never interleaves our own lines. */
static void say(const char *fmt, ...) {
    char line[8192];
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
        if (w <= 0) return;
        off += (int)w;
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* "sr12" -> 12, anything else -> -1. */
static int sr_index(const char *dev) {
    if (strncmp(dev, "sr", 2) != 0 || dev[2] < '0' || dev[2] > '9') return -1;
    int n = atoi(dev + 2);
    return n >= 0 && n < MAX_DEVS ? n : -1;
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Volume identifier of the ISO9660 primary volume descriptor (sector 16, bytes 40..71). */
static void volume_label(const char *dev, char *label, size_t size) {
    char path[64];
    unsigned char pvd[2048];
    snprintf(path, sizeof path, "/dev/%s", dev);
    snprintf(label, size, "-");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (pread(fd, pvd, sizeof pvd, 16 * 2048) == (ssize_t)sizeof pvd && pvd[0] == 1 && memcmp(pvd + 1, "CD001", 5) == 0) {
        size_t n = 32;
        while (n > 0 && (pvd[40 + n - 1] == ' ' || pvd[40 + n - 1] == '\0')) n--;
        if (n > 0 && n < size) {
            memcpy(label, pvd + 40, n);
            label[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if (label[i] <= ' ') label[i] = '_';
        }
    }
    close(fd);
}

/* nftw callback state: which device and mount we are reporting. */
static const char *walk_dev;
static size_t walk_root_len;
static int walk_files;

static int report_file(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
    if (++walk_files > MAX_FILES) return 1;
    const char *rel = path + walk_root_len + 1;
    if (st->st_size > MAX_INLINE) {
        say("CTX FILE %s %s %lld -", walk_dev, rel, (long long)st->st_size);
        return 0;
    }
    unsigned char data[MAX_INLINE];
    char encoded[MAX_INLINE / 3 * 4 + 8];
    ssize_t n = -1;
    int err = 0;
    /* A drive in flux (a second media-change event, a SCSI drive being unplugged) answers EIO
       for a moment, as at mount time: retry briefly; a drive that went away has no medium. */
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, data, sizeof data);
            err = n < 0 ? errno : 0;
            close(fd);
        } else {
            err = errno;
        }
        if (n >= 0 || err != EIO) break;
        sleep_ms(50);
    }
    if (n < 0) {
        char node[64];
        snprintf(node, sizeof node, "/dev/%s", walk_dev);
        if (err == EIO && access(node, F_OK) != 0) {
            say("CTX NOMEDIUM %s", walk_dev);
            return 1; /* stop the walk: the medium is gone */
        }
        say("CTX ERROR %s read:%s %s", walk_dev, rel, strerror(err));
        return 0;
    }
    base64(data, (size_t)n, encoded);
    say("CTX FILE %s %s %lld %s", walk_dev, rel, (long long)n, n == 0 ? "=" : encoded);
    return 0;
}

static void mount_dir(const char *dev, char *dir, size_t size) {
    snprintf(dir, size, CTX_ROOT "/%s", dev);
}

static void do_umount(const char *dev) {
    int idx = sr_index(dev);
    if (idx < 0 || !mounted[idx]) return;
    char dir[64];
    mount_dir(dev, dir, sizeof dir);
    /* Nothing else in this guest holds files open; fall back to a lazy unmount anyway. */
    if (umount2(dir, 0) != 0 && umount2(dir, MNT_DETACH) != 0) {
        say("CTX ERROR %s umount %s", dev, strerror(errno));
        return;
    }
    mounted[idx] = 0;
    say("CTX UMOUNT %s", dev);
}

/* Mounts the medium of srN and reports it. Quietly reports NOMEDIUM when the tray is empty. */
static void do_mount(const char *dev) {
    int idx = sr_index(dev);
    if (idx < 0) return;
    if (mounted[idx]) do_umount(dev); /* a changed medium under a stale mount: let go first */
    char dir[64], path[64];
    mount_dir(dev, dir, sizeof dir);
    snprintf(path, sizeof path, "/dev/%s", dev);
    mkdir(CTX_ROOT, 0755);
    mkdir(dir, 0755);
    int err = 0;
    /* Right after a media change the drive may still report "becoming ready": retry briefly. */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (mount(path, dir, "iso9660", MS_RDONLY | MS_NODEV | MS_NOSUID, "") == 0) {
            err = 0;
            break;
        }
        err = errno;
        if (err == ENOMEDIUM || err == ENOENT || err == ENXIO) break;
        sleep_ms(50);
    }
    if (err == ENOMEDIUM || err == ENXIO || err == ENOENT) {
        /* ENOENT: the device node went away under us (a drive being unplugged): no medium. */
        say("CTX NOMEDIUM %s", dev);
        return;
    }
    if (err != 0) {
        say("CTX ERROR %s mount %s", dev, strerror(err));
        return;
    }
    mounted[idx] = 1;
    char label[64];
    volume_label(dev, label, sizeof label);
    say("CTX MOUNT %s %s %s", dev, label, dir);
    walk_dev = dev;
    walk_root_len = strlen(dir);
    walk_files = 0;
    nftw(dir, report_file, 16, FTW_PHYS);
    say("CTX END %s %d", dev, walk_files > MAX_FILES ? MAX_FILES : walk_files);
}

/* Opens the tray. The host's non-forced eject waits for exactly this. */
static void do_eject(const char *dev) {
    char path[64];
    snprintf(path, sizeof path, "/dev/%s", dev);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        say("CTX EJECT %s %s", dev, strerror(errno));
        return;
    }
    ioctl(fd, CDROM_LOCKDOOR, 0); /* the kernel unlocks on last close anyway; be explicit */
    int rc = ioctl(fd, CDROMEJECT, 0);
    say("CTX EJECT %s %s", dev, rc == 0 ? "ok" : strerror(errno));
    close(fd);
}

/* Media-event polling is off by default: without it the guest never hears about the tray. */
static void enable_polling(const char *dev) {
    char path[128];
    snprintf(path, sizeof path, "/sys/block/%s/events_poll_msecs", dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, "100", 3) != 3) say("CTX ERROR %s events_poll_msecs %s", dev, strerror(errno));
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
    if (strcmp(action, "add") == 0) {
        enable_polling(devname);
        do_mount(devname);
    } else if (strcmp(action, "remove") == 0) {
        do_umount(devname);
    } else if (strcmp(action, "change") == 0) {
        if (eject) {
            do_umount(devname);
            do_eject(devname);
        } else if (change) {
            do_mount(devname);
        }
    }
}

/* Whether the kernel command line has `word` (space separated). */
static int cmdline_has(const char *word) {
    char line[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, line + 1, sizeof line - 3);
    close(fd);
    if (n <= 0) return 0;
    line[0] = ' ';
    if (line[n] == '\n') n--;
    line[n + 1] = ' ';
    line[n + 2] = '\0';
    char padded[256];
    snprintf(padded, sizeof padded, " %s ", word);
    return strstr(line, padded) != NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (cmdline_has("ctx.devices=off")) {
        say("CTX AGENT start heartbeat-only");
        for (unsigned long alive = 1;; alive++) {
            sleep_ms(1000);
            say("CTX ALIVE %lu", alive);
        }
    }
    int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = 1};
    if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        say("CTX ERROR - netlink %s", strerror(errno));
        return 1;
    }
    int rcvbuf = 1 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    say("CTX AGENT start");

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

    unsigned long alive = 0;
    double next = now_s() + 1.0;
    char buf[16384];
    for (;;) {
        double wait = next - now_s();
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        int rc = poll(&pfd, 1, wait > 0 ? (int)(wait * 1000) + 1 : 0);
        if (rc > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                handle_uevent(buf, (size_t)n);
            } else if (n < 0 && errno == ENOBUFS) {
                say("CTX ERROR - netlink overrun");
            }
        }
        if (now_s() >= next) {
            say("CTX ALIVE %lu", ++alive);
            next += 1.0;
            if (next < now_s()) next = now_s() + 1.0; /* after a long stop (migration downtime) */
        }
    }
}

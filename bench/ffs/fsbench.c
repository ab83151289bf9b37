// The client side of bench:ffs: a small C program (compiled with gcc when the bench starts) that
// does the file system calls and times each one, so the numbers hold no Node event loop, and the
// process serving a FUSE mount is never the one reading it. It chdirs into the mount first, so a
// path walk starts there (not in the scratch directory's own ext4 components).
//
//   fsbench ROOT stat    LIST PASSES      LIST: "path<TAB>expected size" lines; stat(2) each path
//   fsbench ROOT readdir LIST PASSES      LIST: "dir<TAB>expected entries" lines; opendir + readdir all + closedir
//   fsbench ROOT read    PATH RUNS DROP [UNDERLYING]
//                                         open + read to EOF (1 MiB buffer) + close, RUNS times; DROP=1:
//                                         before each run, posix_fadvise(DONTNEED) on PATH and on UNDERLYING
//                                         (the layer's real file), so the run reads from the disk
//
// Prints one line per operation, "PASS NANOSECONDS" (read: "RUN NANOSECONDS BYTES"). A stat whose size,
// or a listing whose entry count, differs from the expected one (the wrong layer won) is counted and
// reported on stderr as "mismatch …"; errors exit 1.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  char *path;
  long long expected;
} item;

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static item *load(const char *file, size_t *count) {
  FILE *f = fopen(file, "r");
  if (f == NULL) die("open", file);
  size_t cap = 1024, n = 0;
  item *items = malloc(cap * sizeof *items);
  char *line = NULL;
  size_t len = 0;
  ssize_t got;
  while ((got = getline(&line, &len, f)) > 0) {
    if (line[got - 1] == '\n') line[got - 1] = '\0';
    char *tab = strchr(line, '\t');
    if (tab == NULL) continue;
    *tab = '\0';
    if (n == cap) items = realloc(items, (cap *= 2) * sizeof *items);
    items[n].path = strdup(line);
    items[n].expected = atoll(tab + 1);
    n++;
  }
  free(line);
  fclose(f);
  *count = n;
  return items;
}

static void drop(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) die("open", path);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: fsbench ROOT stat|readdir LIST PASSES | fsbench ROOT read PATH RUNS DROP [UNDERLYING]\n");
    return 2;
  }
  const char *mode = argv[2];
  // Resolve the underlying path before leaving the caller's directory (it may be relative).
  char *underlying = argc > 6 ? realpath(argv[6], NULL) : NULL;
  if (argc > 6 && underlying == NULL) die("realpath", argv[6]);
  if (chdir(argv[1]) != 0) die("chdir", argv[1]);
  long mismatches = 0;
  if (strcmp(mode, "stat") == 0 || strcmp(mode, "readdir") == 0) {
    size_t n;
    item *items = load(argv[3], &n);
    int passes = atoi(argv[4]);
    int is_stat = strcmp(mode, "stat") == 0;
    for (int pass = 0; pass < passes; pass++) {
      for (size_t i = 0; i < n; i++) {
        long long start = now_ns(), got;
        if (is_stat) {
          struct stat st;
          if (stat(items[i].path, &st) != 0) die("stat", items[i].path);
          got = st.st_size;
        } else {
          DIR *dir = opendir(items[i].path);
          if (dir == NULL) die("opendir", items[i].path);
          got = 0;
          struct dirent *entry;
          errno = 0;
          while ((entry = readdir(dir)) != NULL) {
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) got++;
          }
          if (errno != 0) die("readdir", items[i].path);
          closedir(dir);
        }
        long long ns = now_ns() - start;
        printf("%d %lld\n", pass, ns);
        if (got != items[i].expected && mismatches++ < 5) {
          fprintf(stderr, "mismatch %s: %lld, expected %lld\n", items[i].path, got, items[i].expected);
        }
      }
    }
  } else if (strcmp(mode, "read") == 0 && argc >= 6) {
    const char *path = argv[3];
    int runs = atoi(argv[4]);
    int cold = atoi(argv[5]);
    size_t size = 1 << 20;
    char *buffer = malloc(size);
    for (int run = 0; run < runs; run++) {
      if (cold) {
        drop(path);
        if (underlying != NULL) drop(underlying);
      }
      long long start = now_ns(), total = 0;
      int fd = open(path, O_RDONLY);
      if (fd < 0) die("open", path);
      ssize_t got;
      while ((got = read(fd, buffer, size)) > 0) total += got;
      if (got < 0) die("read", path);
      close(fd);
      printf("%d %lld %lld\n", run, now_ns() - start, total);
    }
  } else {
    fprintf(stderr, "fsbench: unknown mode %s\n", mode);
    return 2;
  }
  if (mismatches > 0) fprintf(stderr, "mismatch total %ld\n", mismatches);
  return 0;
}

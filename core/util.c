/* util.c - see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_name = "rlhf";
static log_level_t log_level = LOG_INFO;

void err_set(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void die_alloc(size_t n, const char *file, int line) {
    fprintf(stderr, "error: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    exit(1);
}

void *malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) die_alloc(n, file, line);
    return p;
}

void *calloc_check(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_alloc(count * size, file, line);
    return p;
}

void *realloc_check(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_alloc(n, file, line);
    return q;
}

char *strdup_check(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = malloc_check(n, file, line);
    memcpy(p, s, n);
    return p;
}

void log_set_name(const char *name) { log_name = name; }
void log_set_level(log_level_t level) { log_level = level; }

void log_msg(log_level_t level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < log_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One write per line so concurrent processes do not interleave mid-line. */
    fprintf(stderr, "%s: %s: %s\n", log_name, names[level], buf);
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        log_error("path too long: %s", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            log_error("cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        log_error("cannot fsync %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        log_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* The rename is durable only once the folder is synced. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* util.h */
int proc_table(int *pids, int *ppids, int max) {
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        const char *close = strrchr(buf, ')');   /* the name may hold spaces and parentheses */
        char state;
        int ppid;
        if (!close || sscanf(close + 2, "%c %d", &state, &ppid) != 2 || state == 'Z') continue;
        pids[n] = atoi(e->d_name);
        ppids[n++] = ppid;
    }
    if (d) closedir(d);
    return n;
}

/* util.h */
int proc_descendants(int *out, int max) {
    /* pid -> ppid for every process, then each one's ancestry. */
    static int pids[65536], ppids[65536];
    int n = proc_table(pids, ppids, 65536), k = 0;
    int me = (int)getpid();
    for (int i = 0; i < n && k < max; i++) {
        int up = ppids[i];
        for (int depth = 0; depth < 64 && up > 1 && up != me; depth++) {
            int j = 0;
            while (j < n && pids[j] != up) j++;
            up = j < n ? ppids[j] : 0;
        }
        if (up == me) out[k++] = pids[i];
    }
    return k;
}

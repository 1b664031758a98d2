/* util.h - small helpers every module uses: checked allocation, logging,
 * monotonic time, and the xxxCheck() wrappers that report file:line.
 *
 * Invariant: a failed allocation never returns to the caller; it logs the
 * site and exits(1). Everything else reports errors with 0/-1 returns. */
#ifndef RLHF_UTIL_H
#define RLHF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void *malloc_check(size_t n, const char *file, int line);
void *calloc_check(size_t count, size_t size, const char *file, int line);
void *realloc_check(void *p, size_t n, const char *file, int line);
char *strdup_check(const char *s, const char *file, int line);
#define mallocCheck(n) malloc_check((n), __FILE__, __LINE__)
#define callocCheck(c, s) calloc_check((c), (s), __FILE__, __LINE__)
#define reallocCheck(p, n) realloc_check((p), (n), __FILE__, __LINE__)
#define strdupCheck(s) strdup_check((s), __FILE__, __LINE__)

/* Logging goes to stderr, one line each, prefixed with the level and the
 * process name set by log_set_name(). */
typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;
void log_set_name(const char *name);
void log_set_level(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Formats an error message into err[errlen] (vsnprintf, so it is always
 * NUL-terminated and truncated to fit). Does nothing when err is NULL or
 * errlen is 0, so callers may pass a NULL buffer to ignore the message. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Seconds from an arbitrary fixed point (CLOCK_MONOTONIC). */
double now_s(void);

/* Writes a file atomically: temp file in the same folder, fsync, rename,
 * fsync of the folder. Returns 0 or -1 (errno set, message logged). */
int write_file_atomic(const char *path, const void *data, size_t n);

/* mkdir -p. Returns 0 or -1. */
int mkdir_p(const char *path);

/* Every live (non-zombie) process, read from /proc: up to max pids with
 * their parents' pids; returns how many. */
int proc_table(int *pids, int *ppids, int max);

/* The live (non-zombie) descendants of this process, read from /proc: up to
 * max pids into out; returns how many. Finds children that left our process
 * group (mpirun puts its ranks in groups of its own). */
int proc_descendants(int *out, int max);

/* 64-bit FNV-1a of n bytes, continuing from h (FNV_OFFSET to start): the
 * checkpoint's checksum and job hash, learner_hash(). Not cryptographic. */
#define FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t fnv1a(uint64_t h, const void *data, size_t n);

#endif

/* bench_http.c - human labels over HTTP against SQLite's own commit rate,
 * on the same disk, in the same run.
 *
 *   http     a real run (`rlhf run JOB --feedback human`: coordinator with
 *            its HTTP API, a 1-rank learner, one rollout worker producing
 *            real segments) with a label budget far larger than the bench
 *            can answer and every label due at once (feedback.initial_frac
 *            = 1), so queries stay available (the queue refills up to
 *            coordinator.queue_max as rollouts come in). N labeler threads,
 *            each with its own token (rlhf labelers add, on the live
 *            feedback.db), loop: GET /api/next, then POST /api/labels for
 *            the query it got. A label counts once its 200 {"status":
 *            "stored"} is back: the coordinator sends that only after the
 *            SQLite commit (WAL, synchronous=FULL), so this is acknowledged
 *            durable labels per second. /api/next latency (the request
 *            whole: connect, lease committed, JSON with the segments'
 *            render states, close) p50 / p99 over every request. An empty
 *            /api/next (no query for this labeler right now) is counted and
 *            timed too.
 *   sqlite   one row like a label inserted and committed per transaction
 *            (a fresh database next to feedback.db: WAL, synchronous=FULL),
 *            one thread: what the disk gives a single durable commit, the
 *            bound on one-label-per-commit with one writer. Measured before
 *            and after the HTTP runs; the better of the two is printed.
 *
 * Prints, per N: labels/s, the ratio to the SQLite rate, /api/next p50 and
 * p99, POST /api/labels p50 and p99 (request to acknowledgement), the share
 * of empty /api/next answers and the requests that failed.
 *
 *   bench_http [BUILD] [--labelers 1,4,16] [--seconds S]
 *   (BUILD/bin/rlhf; default: the folder above this program's)
 *
 * The disk syncs behind it: `strace -f -c -e trace=fdatasync,fsync -p PID`
 * on the run's rlhf-coordinator while this runs (bench/RESULTS.md: one per
 * acknowledged label; leases and skips are committed synchronous=NORMAL).
 * rlhf run's output also has a "status page:" line on the same port.
 *
 * The run directory is under $TMPDIR (default /tmp): put TMPDIR on the disk
 * you want to measure. Both figures use that same directory. It is removed
 * at the end unless BENCH_KEEP is set (then its feedback.db and logs/ stay
 * for a look). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "httpc.h"
#include "json.h"
#include "labelers.h"
#include "util.h"

#define MAX_LABELERS 64

static char run_dir[PATH_MAX], token0[65];
static int port;
static pid_t run_pid;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "bench_http: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (run_pid > 0) {
        kill(run_pid, SIGTERM);
        waitpid(run_pid, NULL, 0);
    }
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* ---- SQLite alone ---------------------------------------------------------- */

/* Rows inserted and committed one per transaction for seconds: rows/s. */
static double sqlite_rate(const char *dir, double seconds) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/raw.db", dir);
    unlink(path);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die("cannot open %s", path);
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE labels(id INTEGER PRIMARY KEY, idempotency_id TEXT UNIQUE, query_id INT,"
                 " labeler TEXT, kind INT, preference INT, created_us INT)",
                 NULL, NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO labels(idempotency_id, query_id, labeler, kind, preference, created_us)"
                           " VALUES(?, ?, 'bench', 1, 1, ?)", -1, &st, NULL);
    long n = 0;
    double t0 = now_s(), t;
    while ((t = now_s()) - t0 < seconds) {
        char idem[48];
        snprintf(idem, sizeof idem, "raw-%ld", n);
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        sqlite3_bind_text(st, 1, idem, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, n);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)(t * 1e6));
        if (sqlite3_step(st) != SQLITE_DONE) die("insert: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die("commit: %s", sqlite3_errmsg(db));
        n++;
    }
    double rate = (double)n / (now_s() - t0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    unlink(path);
    char side[PATH_MAX + 40];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rate;
}

/* ---- HTTP labelers ----------------------------------------------------------- */

typedef struct {
    char token[65];
    int id;
    double until;
    long acked, empty, errors;
    unsigned long seq;      /* labels sent, over every round: idempotency ids stay unique */
    double *lat;            /* /api/next latencies, s */
    size_t n_lat, cap_lat;
    double *post;           /* POST /api/labels latencies, s */
    size_t n_post, cap_post;
} worker_t;

static json_t *request(worker_t *w, const char *method, const char *path, const char *body, int *status) {
    char hdr[160], err[256], *resp = NULL;
    size_t len = 0;
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", w->token);
    if (httpc_request("127.0.0.1", port, method, path, hdr, body, body ? strlen(body) : 0, 10000, status, &resp, &len,
                      err, sizeof err) != 0) {
        *status = -1;
        return NULL;
    }
    json_t *doc = json_parse(resp, len, err, sizeof err);
    free(resp);
    return doc;
}

static void *labeler_main(void *arg) {
    worker_t *w = arg;
    while (now_s() < w->until) {
        int status;
        double t0 = now_s();
        json_t *doc = request(w, "GET", "/api/next", NULL, &status);
        double dt = now_s() - t0;
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 4096;
            w->lat = reallocCheck(w->lat, w->cap_lat * sizeof *w->lat);
        }
        w->lat[w->n_lat++] = dt;
        const json_t *q = json_get(doc, "query");
        if (status != 200) {
            if (w->errors++ < 3 && getenv("BENCH_VERBOSE"))
                fprintf(stderr, "bench_http: labeler %d: GET /api/next: %d\n", w->id, status);
        } else if (json_type(q) != JSON_OBJECT) {
            w->empty++;
            usleep(2000);   /* no query for us now: the rollouts are making more */
        } else {
            char body[256];
            snprintf(body, sizeof body,
                     "{\"query_id\": \"%s\", \"idempotency_id\": \"bench-%d-%lu\", \"preference\": \"%s\"}",
                     json_string(json_get(q, "id")) ? json_string(json_get(q, "id")) : "0", w->id, w->seq,
                     w->seq % 2 ? "left" : "right");
            w->seq++;
            double p0 = now_s();
            json_t *ack = request(w, "POST", "/api/labels", body, &status);
            if (w->n_post == w->cap_post) {
                w->cap_post = w->cap_post ? 2 * w->cap_post : 4096;
                w->post = reallocCheck(w->post, w->cap_post * sizeof *w->post);
            }
            w->post[w->n_post++] = now_s() - p0;
            const char *s = json_string(json_get(ack, "status"));
            if (status == 200 && s && strcmp(s, "stored") == 0) {
                w->acked++;
            } else {
                if (w->errors++ < 3 && getenv("BENCH_VERBOSE")) {
                    char *text = json_serialize(ack, NULL);
                    fprintf(stderr, "bench_http: labeler %d: POST /api/labels: %d %s\n", w->id, status,
                            text ? text : "(no JSON)");
                    free(text);
                }
            }
            json_destroy(&ack);
        }
        json_destroy(&doc);
    }
    return NULL;
}

static int queue_depth(void) {
    worker_t w = {.id = 0};
    memcpy(w.token, token0, sizeof w.token);
    int status;
    json_t *doc = request(&w, "GET", "/api/stats", NULL, &status);
    double d = -1;
    if (status != 200 || json_number(json_get(doc, "queue_depth"), &d) != 0) d = -1;
    json_destroy(&doc);
    return (int)d;
}

typedef struct {
    double rate, p50, p99, post50, post99, empty_share;
    long acked, errors;
} http_result_t;

/* The q-quantile of n sorted values. */
static double quantile(const double *v, size_t n, double q) { return n ? v[(size_t)((double)(n - 1) * q)] : 0; }

static http_result_t http_round(worker_t *ws, int n, double seconds) {
    pthread_t th[MAX_LABELERS];
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ws[i].until = t0 + seconds;
        ws[i].acked = ws[i].empty = ws[i].errors = 0;
        ws[i].n_lat = ws[i].n_post = 0;
        pthread_create(&th[i], NULL, labeler_main, &ws[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double wall = now_s() - t0;
    http_result_t r = {0};
    size_t total = 0;
    long empty = 0;
    for (int i = 0; i < n; i++) total += ws[i].n_lat, r.acked += ws[i].acked, r.errors += ws[i].errors,
                                empty += ws[i].empty;
    size_t n_post = 0;
    for (int i = 0; i < n; i++) n_post += ws[i].n_post;
    double *all = mallocCheck((total + 1) * sizeof *all), *posts = mallocCheck((n_post + 1) * sizeof *posts);
    size_t k = 0, kp = 0;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < ws[i].n_lat; j++) all[k++] = ws[i].lat[j];
        for (size_t j = 0; j < ws[i].n_post; j++) posts[kp++] = ws[i].post[j];
    }
    qsort(all, total, sizeof *all, cmp_double);
    qsort(posts, n_post, sizeof *posts, cmp_double);
    r.rate = (double)r.acked / wall;
    r.p50 = quantile(all, total, 0.5);
    r.p99 = quantile(all, total, 0.99);
    r.post50 = quantile(posts, n_post, 0.5);
    r.post99 = quantile(posts, n_post, 0.99);
    r.empty_share = total ? (double)empty / (double)total : 0;
    free(all);
    free(posts);
    return r;
}

/* ---- the run --------------------------------------------------------------- */

static void start_run(const char *build) {
    char job[PATH_MAX + 16], out[PATH_MAX + 16], bin[PATH_MAX + 16];
    snprintf(job, sizeof job, "%s/job.ini", run_dir);
    snprintf(out, sizeof out, "%s/run.stdout", run_dir);
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build);
    FILE *f = fopen(job, "w");
    if (!f) die("cannot write %s", job);
    fprintf(f, "[env]\nid = CartPole-v1\nn_envs = 8\n"
               "[policy]\nhidden = 64,64\n"
               "[ppo]\nn_steps = 32\nminibatch = 256\n"
               "[feedback]\nmode = human\nlabels = 1000000\ninitial_frac = 1\nlabel_until = 0.01\n"
               "segment_len = 25\nquery = pair\nselect = random\nundo_s = 0\n"
               "[coordinator]\nqueue_max = 2000\n"
               "[run]\ntotal_steps = 100000000\nseed = 1\n");
    fclose(f);
    char dir_run[PATH_MAX + 16], log[PATH_MAX + 16];
    snprintf(dir_run, sizeof dir_run, "%s/run", run_dir);
    snprintf(log, sizeof log, "%s/run.stderr", run_dir);
    run_pid = fork();
    if (run_pid < 0) die("fork: %s", strerror(errno));
    if (run_pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2);
        execl(bin, bin, "run", job, "--feedback", "human", "--learners", "1", "--rollouts", "1", "--out", dir_run,
              (char *)NULL);
        _exit(127);
    }
    /* The URL and the token. */
    double end = now_s() + 60;
    while (now_s() < end) {
        FILE *s = fopen(out, "r");
        char line[512];
        while (s && fgets(line, sizeof line, s)) {
            const char *u = strstr(line, "http://127.0.0.1:");
            if (u) port = atoi(u + strlen("http://127.0.0.1:"));
            if (strncmp(line, "token: ", 7) == 0 && strlen(line) >= 7 + 64) memcpy(token0, line + 7, 64);
        }
        if (s) fclose(s);
        if (port > 0 && token0[0]) return;
        if (waitpid(run_pid, NULL, WNOHANG) == run_pid) {
            run_pid = 0;
            die("rlhf run exited early; see %s", log);
        }
        usleep(50000);
    }
    die("no labeling URL and token from rlhf run after 60 s (%s)", log);
}

int main(int argc, char **argv) {
    char build[PATH_MAX];
    int counts[16] = {1, 4, 16}, n_counts = 3;
    double seconds = 5;
    const char *build_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--labelers") == 0 && i + 1 < argc) {
            n_counts = 0;
            for (char *p = argv[++i]; *p && n_counts < 16;) {
                counts[n_counts] = (int)strtol(p, &p, 10);
                if (counts[n_counts] < 1 || counts[n_counts] > MAX_LABELERS) die("--labelers: 1..64 each, got '%s'", argv[i]);
                n_counts++;
                if (*p == ',') p++;
                else if (*p) die("--labelers: expected N,N,..., got '%s'", argv[i]);
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            if (seconds <= 0) die("--seconds: expected > 0, got '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !build_arg) {
            build_arg = argv[i];
        } else {
            die("usage: bench_http [BUILD] [--labelers 1,4,16] [--seconds S] (unexpected '%s')", argv[i]);
        }
    }
    if (build_arg) {
        snprintf(build, sizeof build, "%s", build_arg);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) die("%s", "/proc/self/exe");
        self[n] = '\0';
        snprintf(build, sizeof build, "%s", dirname(dirname(self)));
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(run_dir, sizeof run_dir, "%s/bench_http.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(run_dir)) die("mkdtemp: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    double raw1 = sqlite_rate(run_dir, 2.0);
    start_run(build);
    int max_n = 0;
    for (int i = 0; i < n_counts; i++) max_n = counts[i] > max_n ? counts[i] : max_n;
    static worker_t ws[MAX_LABELERS];
    char db[PATH_MAX + 32], err[512];
    snprintf(db, sizeof db, "%s/run/feedback.db", run_dir);
    memcpy(ws[0].token, token0, sizeof ws[0].token);
    for (int i = 0; i < max_n; i++) {
        ws[i].id = i;
        char name[32];
        snprintf(name, sizeof name, "bench-%d", i);
        if (i > 0 && labelers_add(db, name, ws[i].token, err, sizeof err) != 0) die("labelers add: %s", err);
    }
    /* Let the rollouts fill the queue a little first. */
    double end = now_s() + 30;
    int depth = 0;
    while (now_s() < end && (depth = queue_depth()) < 200) usleep(100000);
    printf("bench_http: CartPole-v1 pairs of 25 steps, coordinator + 1 learner rank + 1 rollout worker running; "
           "queue depth %d at the start; %.0f s per point; run directory %s\n",
           depth, seconds, run_dir);
    http_result_t res[16];
    for (int i = 0; i < n_counts; i++) res[i] = http_round(ws, counts[i], seconds);
    kill(run_pid, SIGTERM);
    waitpid(run_pid, NULL, 0);
    run_pid = 0;
    double raw2 = sqlite_rate(run_dir, 2.0), raw = raw1 > raw2 ? raw1 : raw2;

    printf("SQLite alone, one insert + commit per transaction (WAL, synchronous=FULL), same directory: %.0f commits/s "
           "(%.0f before, %.0f after)\n",
           raw, raw1, raw2);
    printf("%-9s %15s %10s %12s %12s %12s %12s %6s %6s\n", "labelers", "labels/s acked", "vs SQLite", "next p50 ms",
           "next p99 ms", "post p50 ms", "post p99 ms", "empty", "errors");
    for (int i = 0; i < n_counts; i++)
        printf("%-9d %15.0f %9.2fx %12.2f %12.2f %12.2f %12.2f %5.0f%% %6ld\n", counts[i], res[i].rate,
               res[i].rate / raw, 1e3 * res[i].p50, 1e3 * res[i].p99, 1e3 * res[i].post50, 1e3 * res[i].post99,
               100 * res[i].empty_share, res[i].errors);
    for (int i = 0; i < max_n; i++) free(ws[i].lat), free(ws[i].post);
    if (getenv("BENCH_KEEP")) printf("run directory kept: %s\n", run_dir);
    else nftw(run_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* run.c - `rlhf run`: the distributed system on this machine, as one
 * command.
 *
 *   rlhf run JOB.ini [--learners L] [--rollouts R] [--labelers T] [--seed N]
 *            [--out DIR] [--set section.key=value]... [--feedback teacher|true-reward|human]
 *   rlhf run --resume --out DIR [--learners L] [--rollouts R] [--labelers T]
 *
 * Starts, on a free loopback port, rlhf-coordinator, `mpirun -np L
 * rlhf-worker --coordinator ...` (the learner; rank 0 writes the run
 * directory), R rlhf-rollout workers and T `rlhf label` scripted teachers
 * (none with feedback.mode = true-reward), all in one process group of
 * their own (so a Ctrl-C at the terminal reaches only us, and we stop them
 * in order). The binaries are the ones next to this one.
 *
 * The run ends when the learner does: it sends the coordinator Shutdown
 * once run.total_steps are reached (the coordinator tells every peer and
 * exits 0), then evaluates and writes summary.json. Then nothing may be
 * left: every process of the group and every descendant (we are a child
 * subreaper, so ranks orphaned by a dying mpirun come back to us) gets
 * SIGTERM, and SIGKILL after a grace period. SIGINT / SIGTERM to us does
 * the same at once (the ranks checkpoint on SIGTERM, worker/main.c).
 *
 * The coordinator always serves HTTP: on coordinator.http_port, or when
 * the job leaves it 0 on a free loopback port (written to config.ini), and
 * once it answers we print
 *     status page: http://127.0.0.1:PORT/status (metrics: http://127.0.0.1:PORT/metrics)
 * on stdout, so any run can be watched in a browser and scraped by
 * Prometheus.
 *
 * --feedback human (feedback.mode = human): no scripted labelers; people
 * label in the browser, on the same port. A first labeler "human-N" is
 * added to DIR/feedback.db before the coordinator starts, and we also print
 *     labeling page: http://127.0.0.1:PORT/ ...
 *     token: TOKEN
 * on stdout (the token only there, never in a log). docs/labeling.md.
 *
 * Progress: one live line on a terminal (the tail of DIR/metrics.jsonl),
 * a plain line every few seconds otherwise. Children's output goes to
 * DIR/logs/<name>.log.
 *
 * --resume continues a stopped run (SIGTERM / Ctrl-C: the ranks left
 * DIR/checkpoint.bin) with its own job, DIR/config.ini: a fresh
 * coordinator, `rlhf-worker --coordinator ... --resume` (whose first
 * Register carries the checkpoint's env steps, answered queries and label
 * cursor, so the coordinator's label schedule goes on from there), the
 * rollout workers and labelers. metrics.jsonl is kept (the learner cuts it
 * back to the checkpoint). A missing or corrupt checkpoint: exit 2 before
 * anything starts.
 *
 * Exit status: 0 only when the learner and the coordinator both exited 0;
 * 1 otherwise; 2 on a bad command line or job; 128 + signal when stopped
 * by one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "job.h"
#include "learner.h"
#include "json.h"
#include "labelers.h"
#include "report.h"
#include "transport.h"
#include "util.h"

#define MAX_PROCS 256
#define GRACE_S 5.0             /* SIGTERM to SIGKILL */
#define COORD_AFTER_LEARNER_S 10.0  /* the coordinator exits on the learner's Shutdown, before it */
#define LEARNER_AFTER_COORD_S 120.0 /* evaluation and summary after the Shutdown */

typedef struct {
    pid_t pid;
    char name[32];
    int reaped, status;
} proc_t;

static proc_t procs[MAX_PROCS];
static int n_procs;
static pid_t group;             /* the process group of every child: the first child's pid */
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig) { stop_sig = sig; }

/* Starts argv (argv[0] a path, or a name looked up in PATH) with its output
 * to log, in the group. asan_quiet: Open MPI's allocations at exit read as
 * leaks to LeakSanitizer, which only matters when we are built with it. */
static proc_t *spawn(const char *name, char *const argv[], const char *log, int asan_quiet) {
    if (n_procs == MAX_PROCS) return NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return NULL;
    }
    if (pid == 0) {
        setpgid(0, group);
        struct sigaction sa = {0};
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int in = open("/dev/null", O_RDONLY), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in >= 0) dup2(in, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (asan_quiet && !getenv("ASAN_OPTIONS")) setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, group ? group : pid);   // both sides: no race with the first kill
    if (!group) group = pid;
    proc_t *p = &procs[n_procs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

/* Reaps whatever exited: our children, and orphans adopted as subreaper
 * (not ours to report). */
static void reap(void) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        for (int i = 0; i < n_procs; i++)
            if (procs[i].pid == pid) {
                procs[i].reaped = 1;
                procs[i].status = st;
            }
}

static int exit_code(const proc_t *p) {
    return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
}

/* Signals every descendant but spare (0: none spared; the group too then).
 * Each one by pid, because the ranks live in process groups of mpirun's
 * making. Returns how many descendants are alive. */
static int signal_all(int sig, pid_t spare) {
    if (!spare && group > 0) kill(-group, sig);
    static int pids[65536];
    int n = proc_descendants(pids, 65536);
    for (int i = 0; i < n; i++)
        if (pids[i] != spare) kill(pids[i], sig);
    return n;
}

static int all_reaped(void) {
    for (int i = 0; i < n_procs; i++)
        if (!procs[i].reaped) return 0;
    return 1;
}

/* Waits up to seconds for every child to exit and no descendant to be
 * left; 1 when so. */
static int wait_all(double seconds) {
    double end = now_s() + seconds;
    for (;;) {
        reap();
        if (all_reaped() && signal_all(0, 0) == 0) return 1;
        if (now_s() > end) return 0;
        usleep(20000);
    }
}

/* SIGTERM to everything, SIGKILL to what is left after the grace period.
 * mpirun is spared the SIGTERM: it relays the ranks' output, which would
 * be lost (their last words, the checkpoint's log line) were it to exit
 * first; it exits by itself when they have. */
static void stop_all(pid_t mpirun) {
    signal_all(SIGTERM, mpirun);
    if (wait_all(GRACE_S)) return;
    log_warn("children still running %.0f s after SIGTERM: killing them", GRACE_S);
    signal_all(SIGKILL, 0);
    if (!wait_all(5.0)) log_error("children survived SIGKILL");
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* 1 when port can be bound now (on every interface, as a listener would
 * be refused when anything holds it). */
static int port_bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = htons(port)};
    if (fd < 0) return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* 1 when something accepts TCP connections on host (IPv4):port. */
static int port_open(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* --feedback human: adds the run's first labeler, "human-N" with the
 * lowest N not in DIR/feedback.db yet (a resumed run keeps its earlier
 * labelers and gets one more). 0, or -1 with err. */
static int first_labeler(const char *dir, char *name, size_t name_len, char token[LABELER_TOKEN_LEN + 1], char *err,
                         size_t errlen) {
    char db[1400];
    snprintf(db, sizeof db, "%s/feedback.db", dir);
    labeler_info_t *have = NULL;
    size_t n = 0;
    if (access(db, F_OK) == 0 && labelers_list(db, &have, &n, err, errlen) != 0) return -1;
    int rc = -1;
    for (int i = 1; i <= 1000 && rc != 0; i++) {
        snprintf(name, name_len, "human-%d", i);
        size_t j = 0;
        while (j < n && strcmp(have[j].name, name) != 0) j++;
        if (j == n) rc = labelers_add(db, name, token, err, errlen) == 0 ? 0 : -2;
        if (rc == -2) break;
    }
    free(have);
    if (rc == -1) err_set(err, errlen, "%s: no free labeler name human-1 .. human-1000", db);
    return rc == 0 ? 0 : -1;
}

/* The last complete line of path, parsed (NULL when none yet). */
static json_t *last_line(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f), from = size > (long)sizeof buf - 1 ? size - (long)(sizeof buf - 1) : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] != '\n') buf[--n] = '\0';   // a line being written
    if (n == 0) return NULL;
    buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    char err[128];
    return json_parse(line, strlen(line), err, sizeof err);
}

static double num(const json_t *doc, const char *key) {
    double v;
    return json_number(json_get(doc, key), &v) == 0 ? v : NAN;
}

/* The progress line from the metrics' tail; plain lines every 5 s when not
 * on a terminal (and a last one when final). */
static void progress(const char *metrics, const job_t *job, long long iterations, int tty, double t0, int final) {
    static double last_plain, last_return = NAN;
    static long long last_it = -1;
    json_t *m = last_line(metrics);
    if (!m) return;
    long long it = (long long)num(m, "iteration") + 1;
    /* An iteration in which no episode ended has no return: keep showing
     * the last one rather than "nan". */
    if (isfinite(num(m, "true_return"))) last_return = num(m, "true_return");
    double now = now_s();
    if (tty || (it != last_it && (final || now - last_plain >= 5.0))) {
        fprintf(stderr, "%siter %lld/%lld  steps %.0f/%lld  labels %.0f/%d  return %.1f  %.0f s%s", tty ? "\r\033[K" : "",
                it, iterations, num(m, "env_steps"), job->run.total_steps, num(m, "labels"), job->feedback.labels,
                last_return, now - t0, tty ? "" : "\n");
        fflush(stderr);
        last_plain = now;
        last_it = it;
    }
    json_destroy(&m);
}

/* Prints the summary line as `rlhf train` does. 0, or -1 when there is no
 * summary.json. */
static int print_summary(const job_t *job, const char *dir, int L, int R, int T) {
    char path[1400];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char err[128];
    json_t *s = json_parse(buf, n, err, sizeof err);
    if (!s) return -1;
    printf("%s: true return %.1f +- %.1f over %.0f episodes; %.0f labels, %.0f env steps, %.1f s; "
           "%d learner rank%s, %d rollout worker%s, %d labeler%s; %s\n",
           job->env.id, num(s, "true_return_mean"), num(s, "true_return_std"), num(s, "eval_episodes"),
           num(s, "labels"), num(s, "env_steps"), num(s, "wall_s"), L, L == 1 ? "" : "s", R,
           R == 1 ? "" : "s", T, T == 1 ? "" : "s", path);
    json_destroy(&s);
    return 0;
}

/* security.curve: KEYS/NAME.key and .pub, made with transport's key
 * functions when absent (a resumed run keeps its identities); pub gets the
 * public key. 0, or -1 with err. */
static int ensure_pair(const char *keys, const char *name, char pub[TRANSPORT_Z85_LEN + 1], char *err,
                       size_t errlen) {
    char path[1400];
    transport_keypair_t kp;
    snprintf(path, sizeof path, "%s/%s.key", keys, name);
    int rc = access(path, F_OK) == 0 ? transport_keypair_load(&kp, keys, name, err, errlen)
                                     : transport_keypair_generate(&kp, err, errlen) != 0
                                           ? -1
                                           : transport_keypair_save(&kp, keys, name, err, errlen);
    if (rc == 0) memcpy(pub, kp.public_z85, TRANSPORT_Z85_LEN + 1);
    memset(&kp, 0, sizeof kp);
    return rc;
}

/* security.curve: the coordinator's pair, one pair per client process
 * (learner, rollout-N, labeler-N) and KEYS/allow.list naming exactly those
 * clients. 0, or -1 with err. */
static int make_keys(const char *keys, int R, int T, char *err, size_t errlen) {
    char pub[TRANSPORT_Z85_LEN + 1], path[1400], tmp[1420];
    if (mkdir_p(keys) != 0 || chmod(keys, 0700) != 0) {
        snprintf(err, errlen, "%s: cannot create the folder: %s", keys, strerror(errno));
        return -1;
    }
    if (ensure_pair(keys, "coordinator", pub, err, errlen) != 0) return -1;
    snprintf(path, sizeof path, "%s/allow.list", keys);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# rlhf run: the client keys the coordinator accepts\n");
    int rc = 0;
    for (int i = 0; rc == 0 && i < 1 + R + T; i++) {
        char name[32];
        if (i == 0)
            snprintf(name, sizeof name, "learner");
        else if (i <= R)
            snprintf(name, sizeof name, "rollout-%d", i);
        else
            snprintf(name, sizeof name, "labeler-%d", i - R);
        rc = ensure_pair(keys, name, pub, err, errlen);
        if (rc == 0) fprintf(f, "%s  %s\n", pub, name);
    }
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    return rc;
}

/* A client's CURVE options into a (room for four), when the job asks for
 * CURVE: its own secret key (into key, which must outlive the spawn) and
 * the coordinator's public one. */
static void client_curve(char **a, const job_t *job, const char *keys, const char *name, char *key, char *server_pub) {
    if (!job->security.curve) return;
    snprintf(key, 1400, "%s/%s.key", keys, name);
    a[0] = "--curve-secret", a[1] = key, a[2] = "--curve-server", a[3] = server_pub;
}

static int parse_n(const char *opt, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "rlhf run: %s: expected %d..%d, got '%s'\n", opt, lo, hi, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* --resume: the job is DIR/config.ini, as the stopped run wrote it; the
 * job's options would make it another run, so they are refused. rest holds
 * the job command's arguments (rest[0] the command). Loads the job and
 * checks DIR/checkpoint.bin decodes against it, so that a missing or
 * corrupt checkpoint stops us before anything starts. 0, or 2 after
 * printing why. */
static int load_resume_job(int n_rest, char **rest, job_t *job, const char **out) {
    const char *dir = NULL;
    for (int i = 1; i < n_rest; i++) {
        const char *a = rest[i];
        if (strcmp(a, "--out") == 0 && i + 1 < n_rest) {
            dir = rest[++i];
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--feedback") == 0) {
            fprintf(stderr, "rlhf run: --resume continues the run in --out DIR with its own job (DIR/config.ini); "
                            "%s would make it another run\n", a);
            return 2;
        } else {
            fprintf(stderr, "rlhf run: --resume: unexpected '%s' (the job is DIR/config.ini: "
                            "rlhf run --resume --out DIR [--learners L] [--rollouts R] [--labelers T])\n", a);
            return 2;
        }
    }
    if (!dir || !*dir) {
        fprintf(stderr, "rlhf run: --resume needs the run directory: --out DIR\n");
        return 2;
    }
    char config[1300], ckpt[1300], err[4096];
    snprintf(config, sizeof config, "%s/config.ini", dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", dir);
    char *args[] = {rest[0], config, "--out", (char *)dir, NULL};
    int rc = cli_load_job(4, args, "run --resume", job, out);
    if (rc) return rc;
    learner_t *l = learner_new(job, err, sizeof err);
    if (!l) {
        fprintf(stderr, "rlhf run: %s: %s\n", config, err);
        return 2;
    }
    checkpoint_loop_t loop = {0};
    rc = checkpoint_load(ckpt, l, &loop, err, sizeof err);
    learner_destroy(&l);
    free(loop.extra);
    if (rc != 0) {
        fprintf(stderr, "rlhf run: cannot resume: %s\n", err);
        return 2;
    }
    log_info("resuming %s after %lld iterations (%lld env steps, %d labels answered)", dir, loop.iteration,
             loop.env_steps, loop.answered);
    return 0;
}

int cmd_run(int argc, char **argv) {
    int L = 2, R = 2, T = 2, resume = 0;
    /* Our own options out; the rest is what every job command takes. */
    char **rest = mallocCheck(sizeof(char *) * (argc + 1));
    int n_rest = 0;
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--learners") == 0) rc = parse_n(a, v, 1, 64, &L), i++;
        else if (strcmp(a, "--rollouts") == 0) rc = parse_n(a, v, 1, 64, &R), i++;
        else if (strcmp(a, "--labelers") == 0) rc = parse_n(a, v, 0, 64, &T), i++;
        else if (strcmp(a, "--resume") == 0) resume = 1;
        else rest[n_rest++] = argv[i];
        if (rc) {
            free(rest);
            return 2;
        }
    }
    rest[n_rest] = NULL;
    static job_t job;
    const char *out;
    int rc = resume ? load_resume_job(n_rest, rest, &job, &out) : cli_load_job(n_rest, rest, "run", &job, &out);
    free(rest);
    if (rc) return rc;
    if (job.feedback.mode != FEEDBACK_TEACHER) T = 0;   // true-reward needs none; human needs people
    int human = job.feedback.mode == FEEDBACK_HUMAN;
    char dir[1200], err[4096], path[1400], logs[1300], endpoint[64], metrics[1300];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        cli_default_run_dir(&job, dir, sizeof dir);
    if (strlen(dir) >= sizeof job.run.out) {
        fprintf(stderr, "rlhf run: --out: the path is too long\n");
        return 2;
    }
    memcpy(job.run.out, dir, strlen(dir) + 1);
    /* HTTP (the status page and /metrics; for human feedback also the
     * labeling page and API) on coordinator.http_port, or when the job
     * leaves it 0 on a free port of ours (written to config.ini). */
    int http_port = job.coordinator.http_port, picked = 0;
    if (resume && http_port && !port_bindable(http_port)) {
        /* The stopped run's port (its config.ini) is taken by now: another one. */
        log_warn("coordinator.http_port %d of the stopped run is in use: HTTP on another free port", http_port);
        http_port = 0;
    }
    if (http_port == 0) {
        http_port = free_port();
        if (http_port < 0) {
            fprintf(stderr, "rlhf run: no free port for HTTP: %s\n", strerror(errno));
            return 1;
        }
        job.coordinator.http_port = http_port;
        picked = 1;
    }
    /* config.ini is the effective job (options applied): the coordinator
     * reads it, and hands exactly it to every peer. */
    snprintf(logs, sizeof logs, "%s/logs", dir);
    err[0] = '\0';
    if (((!resume || human || picked) && report_open_dir(dir, &job, err, sizeof err) != 0) || mkdir_p(logs) != 0) {
        fprintf(stderr, "rlhf run: %s\n", err[0] ? err : strerror(errno));
        return 1;
    }
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    /* A previous run's tail is not our progress; a resumed run's is (the
     * learner cuts it back to its checkpoint). */
    if (!resume) unlink(metrics);
    int port = free_port();
    while (port == http_port) port = free_port();
    if (port < 0) {
        fprintf(stderr, "rlhf run: no free loopback port: %s\n", strerror(errno));
        return 1;
    }
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    /* Our siblings. */
    char exe[PATH_MAX], bin_coord[PATH_MAX + 32], bin_worker[PATH_MAX + 32], bin_rollout[PATH_MAX + 32],
        bin_rlhf[PATH_MAX + 32];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "rlhf run: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    exe[len] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(bin_coord, sizeof bin_coord, "%s/rlhf-coordinator", exe);
    snprintf(bin_worker, sizeof bin_worker, "%s/rlhf-worker", exe);
    snprintf(bin_rollout, sizeof bin_rollout, "%s/rlhf-rollout", exe);
    snprintf(bin_rlhf, sizeof bin_rlhf, "%s/rlhf", exe);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* One BLAS thread per process: L + R + T processes share the cores.
     * ob1: Open MPI's TCP/shared-memory path, which starts fastest here. */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    setenv("OMPI_MCA_pml", "ob1", 0);
#if defined(__SANITIZE_ADDRESS__)
    int asan = 1;
#else
    int asan = 0;
#endif

    /* security.curve: keys for every process, and the options that use them. */
    char keys[1300], coord_key[1400], coord_pub[1400], allow[1400];
    if (job.security.curve) {
        if (job.security.keys_dir[0])
            snprintf(keys, sizeof keys, "%s", job.security.keys_dir);
        else
            snprintf(keys, sizeof keys, "%s/keys", dir);
        if (make_keys(keys, R, T, err, sizeof err) != 0) {
            fprintf(stderr, "rlhf run: security.curve: %s\n", err);
            return 1;
        }
        snprintf(coord_key, sizeof coord_key, "%s/coordinator.key", keys);
        snprintf(coord_pub, sizeof coord_pub, "%s/coordinator.pub", keys);
        snprintf(allow, sizeof allow, "%s/allow.list", keys);
    }

    /* Human feedback: a first labeler, in feedback.db before the
     * coordinator opens it; its token is printed once the page is up. */
    char token[LABELER_TOKEN_LEN + 1] = "", labeler[32] = "";
    if (human && first_labeler(dir, labeler, sizeof labeler, token, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf run: --feedback human: %s\n", err);
        return 1;
    }

    double t0 = now_s();
    char config[1300], nps[16], key[1400];
    snprintf(config, sizeof config, "%s/config.ini", dir);
    snprintf(nps, sizeof nps, "%d", L);
    snprintf(path, sizeof path, "%s/coordinator.log", logs);
    /* Each argv ends with room for the CURVE options (curve() fills it). */
#define CURVE_ARGS NULL, NULL, NULL, NULL, NULL
    char *coord_argv[] = {bin_coord, config, "--bind", endpoint, "--out", dir, CURVE_ARGS};
    if (job.security.curve) {
        char **a = coord_argv + 6;
        a[0] = "--curve-secret", a[1] = coord_key, a[2] = "--allow", a[3] = allow;
    }
    proc_t *coord = spawn("coordinator", coord_argv, path, 0);
    snprintf(path, sizeof path, "%s/learner.log", logs);
    char *worker_argv[] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", nps, bin_worker,
                           "--coordinator", endpoint, "--id", "learner", "--out", dir,
                           resume ? "--resume" : NULL, CURVE_ARGS};
    client_curve(worker_argv + 12 + resume, &job, keys, "learner", key, coord_pub);
    proc_t *learner = coord ? spawn("learner", worker_argv, path, asan) : NULL;
    int started = coord && learner;
    for (int i = 0; started && i < R; i++) {
        char id[32];
        snprintf(id, sizeof id, "rollout-%d", i + 1);
        snprintf(path, sizeof path, "%s/%s.log", logs, id);
        char *a[] = {bin_rollout, "--coordinator", endpoint, "--id", id, CURVE_ARGS};
        client_curve(a + 5, &job, keys, id, key, coord_pub);
        started = spawn(id, a, path, 0) != NULL;
    }
    for (int i = 0; started && i < T; i++) {
        char id[32];
        snprintf(id, sizeof id, "labeler-%d", i + 1);
        snprintf(path, sizeof path, "%s/%s.log", logs, id);
        char *a[] = {bin_rlhf, "label", "--teacher", job.feedback.teacher, "--coordinator", endpoint, "--id", id,
                     CURVE_ARGS};
        client_curve(a + 8, &job, keys, id, key, coord_pub);
        started = spawn(id, a, path, 0) != NULL;
    }
#undef CURVE_ARGS
    if (started) {
        /* The URLs once the port answers (or the coordinator gave up), so
         * that whoever reads them can open them at once.
         * coordinator.http_bind "0.0.0.0" (every interface) is reached on
         * loopback here. */
        const char *host = job.coordinator.http_bind[0] && strcmp(job.coordinator.http_bind, "0.0.0.0") != 0
                               ? job.coordinator.http_bind
                               : "127.0.0.1";
        double until = now_s() + 30.0;
        while (!stop_sig && !port_open(host, http_port) && now_s() < until) {
            reap();
            if (coord->reaped) break;
            usleep(50000);
        }
        if (!port_open(host, http_port))
            log_warn("HTTP on port %d does not answer yet (%s/coordinator.log)", http_port, logs);
        if (!coord->reaped && !stop_sig) {
            int v6 = strchr(host, ':') != NULL;
            const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
            if (human) {
                printf("labeling page: http://%s%s%s:%d/ (labeler %s; more with: rlhf labelers add NAME --out %s)\n",
                       lb, host, rb, http_port, labeler, dir);
                printf("token: %s\n", token);
            }
            printf("status page: http://%s%s%s:%d/status (metrics: http://%s%s%s:%d/metrics)\n", lb, host, rb,
                   http_port, lb, host, rb, http_port);
            fflush(stdout);
        }
        memset(token, 0, sizeof token);
    }
    log_info("%s: coordinator at %s, %d learner rank%s, %d rollout worker%s, %d labeler%s; run directory %s",
             job.env.id, endpoint, L, L == 1 ? "" : "s", R, R == 1 ? "" : "s", T, T == 1 ? "" : "s", dir);

    long long per_iter = (long long)job.ppo.n_steps * job.env.n_envs;
    long long iterations = (job.run.total_steps + per_iter - 1) / per_iter;
    int tty = isatty(STDERR_FILENO);
    double coord_done = 0, last_progress = 0;
    const char *why = NULL;
    while (started && !stop_sig) {
        reap();
        if (learner->reaped) break;
        if (coord->reaped && !coord_done) {
            coord_done = now_s();
            if (exit_code(coord) != 0) {
                why = "the coordinator failed";
                break;
            }
        }
        if (coord_done && now_s() - coord_done > LEARNER_AFTER_COORD_S) {
            why = "the learner did not finish after the coordinator ended the run";
            break;
        }
        if (now_s() - last_progress >= 0.5) {
            last_progress = now_s();
            progress(metrics, &job, iterations, tty, t0, 0);
        }
        usleep(50000);
    }
    progress(metrics, &job, iterations, tty, t0, 1);
    if (tty) fputc('\n', stderr);
    if (stop_sig) {
        log_info("signal %d: stopping every process", (int)stop_sig);
    } else if (learner && learner->reaped && !coord->reaped) {
        /* The learner's Shutdown ends the coordinator: give it the time to
         * tell the peers. */
        double end = now_s() + COORD_AFTER_LEARNER_S;
        while (!coord->reaped && now_s() < end) {
            reap();
            usleep(20000);
        }
    }
    stop_all(learner ? learner->pid : 0);
    int ok = started && learner->reaped && coord->reaped && exit_code(learner) == 0 && exit_code(coord) == 0;
    if (!ok && !stop_sig) {
        if (why) log_error("%s", why);
        for (int i = 0; i < n_procs; i++)
            if (procs[i].reaped && exit_code(&procs[i]) != 0)
                log_error("%s exited with status %d (%s/%s.log)", procs[i].name, exit_code(&procs[i]), logs,
                          procs[i].name);
    }
    if (ok && print_summary(&job, dir, L, R, T) != 0) {
        log_error("the learner exited 0 but wrote no %s/summary.json", dir);
        ok = 0;
    }
    if (stop_sig) return 128 + stop_sig;
    return ok ? 0 : 1;
}

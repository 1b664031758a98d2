/* test_run.c - `rlhf run`, the launcher, with real processes: a small
 * CartPole teacher job with 2 learner ranks, 2 rollout workers and 2
 * labelers runs to the end (exit 0, summary.json within the label budget
 * and past run.total_steps); the same with 1 learner rank; and SIGTERM to
 * `rlhf run` mid-run stops it promptly, the ranks with a checkpoint. Every time, no process it started
 * may be left.
 *
 * How "none left" is checked: this test is a child subreaper, so whatever
 * `rlhf run` leaves behind becomes our child when it exits; besides, every
 * descendant seen while the run went on (sampled from /proc, ranks
 * included: mpirun puts them in process groups of their own) must be gone
 * afterwards. Every wait is bounded; an alarm and the teardown SIGKILL
 * every descendant. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "json.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char tmp_dir[512], build_dir[256], job_path[700];

/* ---- descendants --------------------------------------------------------- */

#define MAX_SEEN 512
static pid_t seen[MAX_SEEN];
static int n_seen;

/* Live (non-zombie) descendants of this process into out; returns how many. */
static int descendants(pid_t *out, int max) {
    static pid_t pids[65536], ppids[65536];
    int n = 0, k = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 65536) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        const char *close = strrchr(buf, ')');
        char st;
        int ppid;
        if (!close || sscanf(close + 2, "%c %d", &st, &ppid) != 2 || st == 'Z') continue;
        pids[n] = atoi(e->d_name);
        ppids[n++] = ppid;
    }
    if (d) closedir(d);
    pid_t me = getpid();
    for (int i = 0; i < n && k < max; i++) {
        pid_t up = ppids[i];
        for (int depth = 0; depth < 64 && up > 1 && up != me; depth++) {
            int j = 0;
            while (j < n && pids[j] != up) j++;
            up = j < n ? ppids[j] : 0;
        }
        if (up == me) out[k++] = pids[i];
    }
    return k;
}

static void note_descendants(void) {
    pid_t now[MAX_SEEN];
    int n = descendants(now, MAX_SEEN);
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (int j = 0; j < n_seen && !known; j++) known = seen[j] == now[i];
        if (!known && n_seen < MAX_SEEN) seen[n_seen++] = now[i];
    }
}

static void kill_descendants(void) {
    pid_t now[MAX_SEEN];
    int n = descendants(now, MAX_SEEN);
    for (int i = 0; i < n; i++) kill(now[i], SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_run: timed out; killing every descendant\n";
    kill_descendants();
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

/* Nothing we saw may be alive, and nothing may be left under us. */
static void assert_none_left(void) {
    double end = now_s() + 2.0;   // orphans handed to us: reap them first
    pid_t now[MAX_SEEN];
    int n;
    while ((n = descendants(now, MAX_SEEN)) > 0 && now_s() < end) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        usleep(20000);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (n > 0) fail_msg("%d processes left behind (the first: pid %d)", n, (int)now[0]);
    for (int i = 0; i < n_seen; i++)
        if (kill(seen[i], 0) == 0) fail_msg("pid %d (seen during the run) is still alive", (int)seen[i]);
    assert_true(n_seen >= 3);   // we did watch the processes
}

/* ---- rlhf run ------------------------------------------------------------ */

typedef struct {
    pid_t pid;
    char out[700], log[760];
} run_t;

static run_t start_run(const char *tag, const char *job, const char *const *extra) {
    run_t r;
    snprintf(r.out, sizeof r.out, "%s/%s", tmp_dir, tag);
    snprintf(r.log, sizeof r.log, "%s/%s.log", tmp_dir, tag);
    char bin[400];
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    const char *argv[32] = {bin, "run", job, "--out", r.out};
    int argc = 5;
    while (extra && *extra && argc < 31) argv[argc++] = *extra++;
    argv[argc] = NULL;
    n_seen = 0;
    r.pid = fork();
    assert_true(r.pid >= 0);
    if (r.pid == 0) {
        int fd = open(r.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return r;
}

/* Waits up to seconds for r (sampling its descendants meanwhile); returns
 * its exit status, or fails with its log. */
static int wait_run(const run_t *r, double seconds) {
    double end = now_s() + seconds;
    int st;
    for (;;) {
        note_descendants();
        pid_t got = waitpid(r->pid, &st, WNOHANG);
        if (got == r->pid) break;
        if (now_s() > end) {
            kill_descendants();
            char *log = NULL;
            FILE *f = fopen(r->log, "r");
            if (f) {
                log = calloc(1, 1 << 16);
                if (fread(log, 1, (1 << 16) - 1, f) == 0) log[0] = '\0';
                fclose(f);
            }
            fail_msg("rlhf run still running after %.0f s; log:\n%s", seconds, log ? log : "");
        }
        usleep(50000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void print_log(const char *path) {
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    if (f) fclose(f);
}

static json_t *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s: %s", path, strerror(errno));
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    char err[256];
    json_t *doc = json_parse(buf, n, err, sizeof err);
    free(buf);
    if (!doc) fail_msg("%s: %s", path, err);
    return doc;
}

static double timeout_s(double normal) { return SANITIZED ? 6 * normal : normal; }

/* A small CartPole teacher job: 8192 env steps, 40 labels. */
static void write_job(const char *path, long long total_steps) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[env]\nid = CartPole-v1\nn_envs = 8\n"
               "[policy]\nhidden = 64,64\nactivation = tanh\n"
               "[ppo]\nn_steps = 32\nepochs = 10\nminibatch = 256\nlr = 1e-3\nanneal_lr = true\n"
               "[reward]\nmembers = 3\nhidden = 32,32\nepochs = 10\nbatch = 32\n"
               "[feedback]\nmode = teacher\nlabels = 40\ninitial_frac = 0.25\nlabel_until = 0.5\n"
               "segment_len = 25\nquery = pair\nselect = disagreement\nteacher = oracle\n"
               "[run]\ntotal_steps = %lld\neval_episodes = 10\nseed = 5\n",
            total_steps);
    fclose(f);
}

static void check_finished_run(int learners) {
    char nl[16];
    snprintf(nl, sizeof nl, "%d", learners);
    const char *extra[] = {"--learners", nl, "--rollouts", "2", "--labelers", "2", NULL};
    char tag[32];
    snprintf(tag, sizeof tag, "run-l%d", learners);
    double t0 = now_s();
    run_t r = start_run(tag, job_path, extra);
    int rc = wait_run(&r, timeout_s(25));
    if (rc != 0) print_log(r.log);
    assert_int_equal(rc, 0);
    char path[800];
    snprintf(path, sizeof path, "%s/summary.json", r.out);
    json_t *s = read_json(path);
    long long labels = -1, steps = -1, ranks = -1;
    assert_int_equal(json_int(json_get(s, "labels"), &labels), 0);
    assert_int_equal(json_int(json_get(s, "env_steps"), &steps), 0);
    assert_int_equal(json_int(json_get(s, "ranks"), &ranks), 0);
    json_destroy(&s);
    assert_true(labels > 0 && labels <= 40);
    assert_true(steps >= 8192);
    assert_int_equal(ranks, learners);
    /* The summary line, as `rlhf train` prints it. */
    FILE *f = fopen(r.log, "r");
    char line[2048];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) found |= strstr(line, "CartPole-v1: true return") != NULL;
    if (f) fclose(f);
    assert_true(found);
    assert_none_left();
    /* A sanitizer report in any child's log fails the run too (a rollout
     * worker's or labeler's exit status is not the launcher's). */
    static const char *const logs[] = {"coordinator", "learner", "rollout-1", "rollout-2", "labeler-1", "labeler-2"};
    for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
        snprintf(path, sizeof path, "%s/logs/%s.log", r.out, logs[i]);
        f = fopen(path, "r");
        if (!f) fail_msg("no log %s", path);
        while (fgets(line, sizeof line, f))
            if (strstr(line, "AddressSanitizer") || strstr(line, "runtime error:")) {
                print_log(path);
                fail_msg("%s: a sanitizer report", path);
            }
        fclose(f);
    }
    fprintf(stderr, "rlhf run --learners %d: %lld labels, %lld env steps, %.1f s\n", learners, labels, steps,
            now_s() - t0);
}

static void test_run_two_learners(void **state) {
    (void)state;
    check_finished_run(2);
}

static void test_run_one_learner(void **state) {
    (void)state;
    check_finished_run(1);
}

/* SIGTERM mid-run: out promptly (the launcher's grace period is 5 s), with
 * 128 + SIGTERM, and nothing left. */
static void test_run_sigterm(void **state) {
    (void)state;
    char path[800];
    snprintf(path, sizeof path, "%s/long.ini", tmp_dir);
    write_job(path, 10000000);
    run_t r = start_run("run-term", path, NULL);
    snprintf(path, sizeof path, "%s/metrics.jsonl", r.out);
    /* Wait until the learner is learning (a few lines of metrics). */
    double end = now_s() + timeout_s(20);
    int lines = 0;
    while (lines < 3 && now_s() < end) {
        note_descendants();
        FILE *f = fopen(path, "r");
        lines = 0;
        for (int c; f && (c = fgetc(f)) != EOF;) lines += c == '\n';
        if (f) fclose(f);
        usleep(50000);
    }
    if (lines < 3) {
        kill_descendants();
        print_log(r.log);
        fail_msg("the run did not start learning in time");
    }
    note_descendants();
    double t0 = now_s();
    kill(r.pid, SIGTERM);
    int rc = wait_run(&r, timeout_s(12));
    double took = now_s() - t0;
    if (rc != 128 + SIGTERM) print_log(r.log);
    assert_int_equal(rc, 128 + SIGTERM);
    assert_true(took < timeout_s(8));
    assert_none_left();
    /* The ranks stopped on the signal with a checkpoint (worker/main.c). */
    snprintf(path, sizeof path, "%s/checkpoint.bin", r.out);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    fprintf(stderr, "SIGTERM: rlhf run out in %.1f s\n", took);
}

static int setup(void **state) {
    (void)state;
    alarm(SANITIZED ? 600 : 120);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    kill_descendants();
    alarm(0);
    return 0;
}

int main(void) {
    const char *b = getenv("RLHF_BUILD"), *t = getenv("RLHF_TEST_TMP");
    snprintf(build_dir, sizeof build_dir, "%s", b && *b ? b : "build");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_run.%d", t && *t ? t : "/tmp", (int)getpid());
    mkdir_p(tmp_dir);
    snprintf(job_path, sizeof job_path, "%s/small.ini", tmp_dir);
    signal(SIGALRM, on_alarm);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_two_learners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_one_learner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_sigterm, setup, teardown),
    };
    /* write_job asserts: outside a test only fopen can fail, so check it. */
    FILE *f = fopen(job_path, "w");
    if (!f) {
        fprintf(stderr, "test_run: cannot write %s\n", job_path);
        return 1;
    }
    fclose(f);
    write_job(job_path, 8192);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_slurm.c - deploy/slurm/ on a real Slurm: munged, slurmctld and
 * slurmd on this machine, brought up by deploy/slurm-local-up.sh in a
 * private folder (its own ports) at the start and stopped by
 * slurm-local-down.sh at the end. With RLHF_SLURM_CONF set, that cluster is
 * used instead and left running.
 *
 *   job:      `sbatch rlhf.sbatch` (a small CartPole teacher job: a 2-rank
 *             learner, 1 rollout worker, 2 labelers in one allocation) and
 *             `sbatch -n 2 rollouts.sbatch --run-dir` beside it: the run
 *             finishes (summary.json, a return far above a random
 *             policy's), the added workers did act for it, and their job
 *             ends by itself with the run.
 *   requeue:  `scontrol requeue` mid-run, then the time limit's warning
 *             (`scancel --batch --signal=USR1`, what --signal=B:USR1@N
 *             sends): each time the ranks checkpoint and the job starts
 *             again (the second time requeued by the script itself) and
 *             resumes; the finished run's metrics.jsonl holds every
 *             iteration exactly once with env steps going up one batch
 *             at a time.
 *   elastic:  1 rollout worker, then 3 (sbatch rollouts.sbatch -n 2),
 *             then 1 again (scancel), while the run goes on: the learner's
 *             env steps/s follow the worker count. Each worker is paced
 *             (--max-steps-per-s) so that rollouts, not the 2 cores, are
 *             the bottleneck; the rate must triple and fall back.
 *
 * The binaries are RLHF_BUILD's (build-san's under SAN=1), handed to the
 * jobs as RLHF_BIN; every process's log is searched for sanitizer reports.
 * Every wait is bounded; an alarm cancels the jobs and stops the cluster. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "json.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char slurm_tmp[1024], bin_dir[1024], src_dir[1024], slurm_dir[128];
static int own_cluster;

static double bound(double plain) { return SANITIZED ? 3 * plain : plain; }

/* ---- shell commands -------------------------------------------------------- */

/* Runs `/bin/sh -c CMD` (from the source tree, SLURM_CONF set) with its
 * output into out; returns its exit status, -1 after timeout seconds (the
 * command killed). */
static int sh(char *out, size_t outlen, double timeout, const char *fmt, ...) {
    char cmd[4096], path[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/sh.out", slurm_tmp);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double end = now_s() + timeout;
    int st = 0, rc;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (now_s() > end) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            rc = -1;
            break;
        }
        usleep(20000);
    }
    if (out && outlen) {
        out[0] = '\0';
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(out, 1, outlen - 1, f);
            out[n] = '\0';
            fclose(f);
        }
    }
    return rc;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf) buf[got] = '\0';
    return buf;
}

static int file_has(const char *path, const char *what) {
    char *s = read_file(path);
    int found = s && strstr(s, what);
    free(s);
    return found;
}

static int count_in_file(const char *path, const char *what) {
    char *s = read_file(path);
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, what)); p += strlen(what)) n++;
    free(s);
    return n;
}

static void print_file(const char *path) {
    char *s = read_file(path);
    fprintf(stderr, "---- %s\n%s\n", path, s ? s : "(none)");
    free(s);
}

static json_t *read_json(const char *path) {
    char *s = read_file(path), err[256];
    json_t *doc = s ? json_parse(s, strlen(s), err, sizeof err) : NULL;
    free(s);
    return doc;
}

static int lines_of(const char *path) {
    char *s = read_file(path);
    int n = 0;
    for (const char *p = s; p && *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* The last complete line of a JSON-lines file, parsed, or NULL. */
static json_t *last_line(const char *path) {
    char *s = read_file(path), err[256];
    if (!s) return NULL;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] != '\n') n--;   // a line being written
    if (n == 0) {
        free(s);
        return NULL;
    }
    s[--n] = '\0';
    char *line = strrchr(s, '\n');
    line = line ? line + 1 : s;
    json_t *doc = json_parse(line, strlen(line), err, sizeof err);
    free(s);
    return doc;
}

static double num(const json_t *doc, const char *key) {
    double v;
    return json_number(json_get(doc, key), &v) == 0 ? v : -1;
}

/* ---- the cluster and its jobs -------------------------------------------- */

/* "scancel ID ID ...": every job this test submitted (the alarm runs it). */
static char scancel_cmd[1024] = "scancel";

/* Cancels every job this test submitted that is still known (only ours:
 * RLHF_SLURM_CONF may name a cluster other people use). */
static void cancel_our_jobs(void) {
    if (strcmp(scancel_cmd, "scancel") != 0) sh(NULL, 0, 30, "%s", scancel_cmd);
}

/* Emergency stop from the alarm: cancel the jobs, stop our cluster. Only
 * fork/exec/wait here (async-signal-safe). */
static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_slurm: timed out; cancelling the jobs and stopping the cluster\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    pid_t p = fork();
    if (p == 0) {
        if (own_cluster)
            execl("deploy/slurm-local-down.sh", "slurm-local-down.sh", slurm_dir, "--purge", (char *)NULL);
        else
            execl("/bin/sh", "sh", "-c", scancel_cmd, (char *)NULL);
        _exit(127);
    }
    if (p > 0) waitpid(p, NULL, 0);
    _exit(1);
}

/* Submits script with options and arguments; returns the job id (fails the
 * test otherwise). The job's output goes to TMP/<tag>.out. */
static long submit(const char *tag, const char *sbatch_opts, const char *script, const char *args) {
    char out[4096];
    int rc = sh(out, sizeof out, 30, "sbatch --parsable --chdir '%s' -o '%s/%s.out' %s '%s/deploy/slurm/%s' %s", slurm_tmp,
                slurm_tmp, tag, sbatch_opts, src_dir, script, args);
    char *end;
    long id = strtol(out, &end, 10);
    if (rc != 0 || id <= 0) fail_msg("sbatch %s %s failed (exit %d): %s", script, args, rc, out);
    size_t len = strlen(scancel_cmd);
    snprintf(scancel_cmd + len, sizeof scancel_cmd - len, " %ld", id);
    return id;
}

/* The job's state ("RUNNING", "PENDING", ...), or "" once Slurm forgot it. */
static void job_state(long id, char *state, size_t len) {
    char out[512];
    state[0] = '\0';
    if (sh(out, sizeof out, 15, "squeue -h -j %ld -o %%T", id) == 0) {
        out[strcspn(out, "\n")] = '\0';
        snprintf(state, len, "%.63s", out);
    }
}

static void wait_job_gone(long id, double seconds, const char *tag) {
    double end = now_s() + seconds;
    char state[64];
    for (;;) {
        job_state(id, state, sizeof state);
        if (!state[0]) return;
        if (now_s() > end) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s.out", slurm_tmp, tag);
            print_file(path);
            fail_msg("job %ld (%s) still %s after %.0f s", id, tag, state, seconds);
        }
        usleep(250000);
    }
}

/* Waits until path holds at least n lines. */
static void wait_lines(const char *path, int n, double seconds, const char *job_out) {
    double end = now_s() + seconds;
    while (lines_of(path) < n) {
        if (now_s() > end) {
            print_file(job_out);
            fail_msg("%s: %d lines after %.0f s, waited for %d", path, lines_of(path), seconds, n);
        }
        usleep(100000);
    }
}

/* Waits until file holds what. */
static void wait_text(const char *path, const char *what, double seconds) {
    double end = now_s() + seconds;
    while (!file_has(path, what)) {
        if (now_s() > end) {
            print_file(path);
            fail_msg("%s: no '%s' after %.0f s", path, what, seconds);
        }
        usleep(100000);
    }
}

/* The coordinator's live rollout workers, from RUN/status.json (-1: none yet). */
static int rollouts_live(const char *run) {
    char path[1400];
    snprintf(path, sizeof path, "%s/status.json", run);
    json_t *s = read_json(path);
    double n = num(json_get(s, "counters"), "peers.rollout");
    json_destroy(&s);
    return (int)n;
}

static void wait_rollouts(const char *run, int n, double seconds, const char *job_out) {
    double end = now_s() + seconds;
    while (rollouts_live(run) != n) {
        if (now_s() > end) {
            print_file(job_out);
            fail_msg("%s: %d rollout workers after %.0f s, waited for %d", run, rollouts_live(run), seconds, n);
        }
        usleep(100000);
    }
}

/* The learner's env steps per second over the next `seconds`: from the
 * last metrics line now and then (env_steps and the learner's wall_s). */
static double rate(const char *metrics, double seconds) {
    json_t *a = last_line(metrics);
    usleep((useconds_t)(seconds * 1e6));
    json_t *b = last_line(metrics);
    double steps = num(b, "env_steps") - num(a, "env_steps"), wall = num(b, "wall_s") - num(a, "wall_s");
    json_destroy(&a);
    json_destroy(&b);
    if (!(wall > 0)) fail_msg("%s: no iteration within %.1f s", metrics, seconds);
    return steps / wall;
}

/* The coordinator's and learner's logs are there, and no log of the run
 * holds a sanitizer report. */
static void check_logs(const char *run) {
    check_run_logs(run, (const char *const[]){"coordinator", "learner", NULL});
}

/* A CartPole job: true-reward, or teacher with 40 labels. */
static void write_job(const char *path, const char *mode, long long total_steps) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[env]\nid = CartPole-v1\nn_envs = 8\n"
               "[policy]\nhidden = 64,64\nactivation = tanh\n"
               "[ppo]\nn_steps = 32\nepochs = 10\nminibatch = 256\nlr = 1e-3\nanneal_lr = true\n"
               "[reward]\nmembers = 3\nhidden = 32,32\nepochs = 10\nbatch = 32\n"
               "[feedback]\nmode = %s\nlabels = 40\ninitial_frac = 0.25\nlabel_until = 0.5\n"
               "segment_len = 25\nquery = pair\nselect = disagreement\nteacher = oracle\n"
               "[run]\ntotal_steps = %lld\neval_episodes = 10\nseed = 5\n",
            mode, total_steps);
    fclose(f);
}

/* The iteration count after `what` (e.g. "checkpoint after ") at its last
 * (last = 1) or first occurrence in text[from, to); -1 when none. */
static long iterations_after(const char *text, const char *from, const char *to, const char *what, int last) {
    const char *a = from ? strstr(text, from) : text, *b = a && to ? strstr(a, to) : NULL;
    if (!a) return -1;
    if (!b) b = a + strlen(a);
    long n = -1;
    for (const char *p = a; (p = strstr(p, what)) && p < b; p += strlen(what)) {
        n = strtol(p + strlen(what), NULL, 10);
        if (!last) break;
    }
    return n;
}

/* The batches a rollout worker's log says it sent by the run's end. */
static long batches_at_shutdown(const char *log) {
    char *s = read_file(log);
    const char *p = s ? strstr(s, "shutdown: run finished (") : NULL;
    long n = p ? strtol(p + strlen("shutdown: run finished ("), NULL, 10) : -1;
    free(s);
    return n;
}

/* ---- the cases ------------------------------------------------------------- */

/* The whole job in one allocation, 2 more rollout workers from a second
 * job, to the end. */
/* A random policy scores about 22. Under the sanitizers every process runs
 * 3-5 times slower with other relative speeds, so the learner sees batches
 * at other policy lags and learns less in the same steps (129 was seen
 * where plain runs reach 367-500): it must still learn clearly. */
#define MIN_RETURN (SANITIZED ? 60.0 : 100.0)

static void test_job_and_added_rollouts(void **state) {
    (void)state;
    const long long total = 51200;
    char job[1400], run[1100], args[4400], path[1400], out_a[1400],
        out_r[1400];
    snprintf(job, sizeof job, "%s/teacher.ini", slurm_tmp);
    snprintf(run, sizeof run, "%s/runs/job", slurm_tmp);
    snprintf(out_a, sizeof out_a, "%s/job.out", slurm_tmp);
    snprintf(out_r, sizeof out_r, "%s/job-rollouts.out", slurm_tmp);
    write_job(job, "teacher", total);
    double t0 = now_s();
    snprintf(args, sizeof args, "'%s' --out '%s' --learners 2 --rollouts 1 --rollout-steps-per-s 1500", job, run);
    long id = submit("job", "-n 3", "rlhf.sbatch", args);
    snprintf(args, sizeof args, "--run-dir '%s' --max-steps-per-s 1500", run);
    /* Submitted at once, like a user would: rollouts.sbatch waits for the
     * run's endpoint (its folder need not exist yet). */
    long added = submit("job-rollouts", "-n 2", "rollouts.sbatch", args);
    wait_job_gone(id, bound(90), "job");
    wait_job_gone(added, bound(30), "job-rollouts");
    double took = now_s() - t0;

    if (!file_has(out_a, "] finished: ")) {
        print_file(out_a);
        fail_msg("rlhf.sbatch did not finish the run");
    }
    snprintf(path, sizeof path, "%s/summary.json", run);
    json_t *s = read_json(path);
    if (!s) fail_msg("no %s", path);
    double ret = num(s, "true_return_mean"), labels = num(s, "labels"), steps = num(s, "env_steps"),
           ranks = num(s, "ranks");
    json_destroy(&s);
    if (ret < MIN_RETURN || labels <= 0 || labels > 40 || steps < total || ranks != 2) {
        print_file(out_a);
        fail_msg("summary: true return %.1f (want >= %.0f; random is about 22), %.0f labels, %.0f env steps, %.0f ranks",
                 ret, MIN_RETURN, labels, steps, ranks);
    }
    /* The added workers acted for this run and left with it. */
    if (!file_has(out_r, "the run has ended")) {
        print_file(out_r);
        fail_msg("the rollouts job did not end with the run");
    }
    long sent[2];
    for (int t = 0; t < 2; t++) {
        snprintf(path, sizeof path, "%s/logs/rollouts-%ld-%d.log", run, added, t);
        sent[t] = batches_at_shutdown(path);
        if (sent[t] <= 0) {
            print_file(path);
            fail_msg("added rollout worker %d sent no batch to the run", t);
        }
    }
    snprintf(path, sizeof path, "%s/status.json", run);
    s = read_json(path);
    double registered = num(json_get(s, "counters"), "peers.registered");
    json_destroy(&s);
    assert_true(registered >= 6);   // learner, 1 + 2 rollout workers, 2 labelers
    check_logs(run);
    fprintf(stderr, "sbatch rlhf.sbatch + rollouts.sbatch: true return %.1f, %.0f labels, added workers sent %ld + %ld "
                    "batches, %.1f s\n",
            ret, labels, sent[0], sent[1], took);
}

/* Requeued twice (by Slurm, then by the script on the time limit's
 * warning): resumed each time, every iteration exactly once. */
static void test_requeue(void **state) {
    (void)state;
    const long long total = 40960, batch = 8 * 32, iterations = total / batch;
    char job[1400], run[1100], args[4400], metrics[1400], out[1400],
        path[1400], text[4096];
    snprintf(job, sizeof job, "%s/requeue.ini", slurm_tmp);
    snprintf(run, sizeof run, "%s/runs/requeue", slurm_tmp);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    snprintf(out, sizeof out, "%s/requeue.out", slurm_tmp);
    write_job(job, "teacher", total);
    double t0 = now_s();
    snprintf(args, sizeof args,
             "'%s' --out '%s' --learners 2 --rollouts 1 --rollout-steps-per-s 2000 --checkpoint-every 10", job, run);
    long id = submit("requeue", "-n 3 --requeue", "rlhf.sbatch", args);

    /* 1: Slurm requeues the job (every process gets SIGTERM). */
    wait_lines(metrics, 30, bound(60), out);
    int rc = sh(text, sizeof text, 30, "scontrol requeue %ld", id);
    if (rc != 0) fail_msg("scontrol requeue %ld: exit %d: %s", id, rc, text);
    wait_text(out, "restart 1 of job", bound(60));
    wait_text(out, "resumed; run directory", bound(30));
    int first = lines_of(metrics);

    /* 2: the time limit's warning to the batch script alone: it stops the
     * run with a checkpoint and requeues the job itself. */
    wait_lines(metrics, first + 30, bound(60), out);
    rc = sh(text, sizeof text, 30, "scancel --batch --signal=USR1 %ld", id);
    if (rc != 0) fail_msg("scancel --batch --signal=USR1 %ld: exit %d: %s", id, rc, text);
    wait_text(out, "requeued job", bound(30));
    wait_text(out, "restart 2 of job", bound(60));
    wait_job_gone(id, bound(90), "requeue");
    double took = now_s() - t0;

    if (!file_has(out, "] finished: ")) {
        print_file(out);
        fail_msg("the requeued run did not finish");
    }
    /* Each start resumed from the last checkpoint the one before wrote. 1:
     * Slurm's SIGTERM reaches the ranks and srun at once, and srun kills its
     * tasks: the SIGTERM checkpoint may lose that race, a periodic one (every
     * 10 iterations) is there. 2: the warning goes to the learner's ranks
     * alone, so they stop with a checkpoint every time. */
    snprintf(path, sizeof path, "%s/logs/learner.log", run);
    char *log = read_file(path);
    assert_non_null(log);
    long ck1 = iterations_after(log, NULL, "restart 1 on", "checkpoint after ", 1),
         res1 = iterations_after(log, "restart 1 on", "restart 2 on", "checkpoint.bin after ", 0),
         stop2 = iterations_after(log, "restart 1 on", "restart 2 on", "signal 15: stopping after ", 1),
         ck2 = iterations_after(log, "restart 1 on", "restart 2 on", "checkpoint after ", 1),
         res2 = iterations_after(log, "restart 2 on", NULL, "checkpoint.bin after ", 0);
    int sigterm_ckpt1 = iterations_after(log, NULL, "restart 1 on", "signal 15: stopping after ", 1) >= 0;
    free(log);
    if (ck1 < 20 || res1 != ck1 || stop2 < first + 30 || ck2 != stop2 || res2 != stop2) {
        print_file(path);
        fail_msg("requeue 1: last checkpoint %ld, resumed at %ld; requeue 2: stopped at %ld, checkpoint %ld, resumed "
                 "at %ld (the warning came at >= %d)",
                 ck1, res1, stop2, ck2, res2, first + 30);
    }
    snprintf(path, sizeof path, "%s/logs/coordinator.log", run);
    assert_int_equal(count_in_file(path, "resuming the run at"), 2);
    snprintf(path, sizeof path, "%s/summary.json", run);
    json_t *s = read_json(path);
    if (!s) fail_msg("no %s", path);
    double resumed = num(s, "resumed_from"), labels = num(s, "labels"), steps = num(s, "env_steps");
    json_destroy(&s);
    assert_int_equal((long)resumed, res2);
    assert_true(labels > 0 && labels <= 40);
    assert_true(steps == (double)total);

    /* Every iteration exactly once, env steps one batch apart, labels never
     * over budget: nothing skipped or repeated across the two resumes. */
    check_metrics_lines(metrics, batch, iterations, total, 40);
    check_logs(run);
    fprintf(stderr, "scontrol requeue at iteration >= 30: resumed at %ld (%s); USR1 (time limit) at >= %d: stopped, "
                    "requeued itself, resumed at %ld; %lld iterations once each, %.1f s\n",
            res1, sigterm_ckpt1 ? "the SIGTERM checkpoint" : "a periodic checkpoint", first + 30, res2, iterations, took);
}

/* 1 -> 3 -> 1 rollout workers while the run goes on. */
static void test_elastic(void **state) {
    (void)state;
    const double pace = 500, window = 5;
    char job[1400], run[1100], args[4400], metrics[1400], out[1400],
        st[64];
    snprintf(job, sizeof job, "%s/elastic.ini", slurm_tmp);
    snprintf(run, sizeof run, "%s/runs/elastic", slurm_tmp);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    snprintf(out, sizeof out, "%s/elastic.out", slurm_tmp);
    write_job(job, "true-reward", 100000000);
    double t0 = now_s();
    snprintf(args, sizeof args, "'%s' --out '%s' --learners 1 --rollouts 1 --rollout-steps-per-s %.0f", job, run, pace);
    long id = submit("elastic", "-n 2", "rlhf.sbatch", args);
    wait_rollouts(run, 1, bound(30), out);
    wait_lines(metrics, 4, bound(30), out);
    double r1 = rate(metrics, window);

    snprintf(args, sizeof args, "--run-dir '%s' --max-steps-per-s %.0f", run, pace);
    long added = submit("elastic-rollouts", "-n 2", "rollouts.sbatch", args);
    wait_rollouts(run, 3, bound(30), out);
    usleep(1000000);   // the newcomers' first batches
    double r3 = rate(metrics, window);

    char text[512];
    int rc = sh(text, sizeof text, 30, "scancel %ld", added);
    if (rc != 0) fail_msg("scancel %ld: exit %d: %s", added, rc, text);
    wait_job_gone(added, bound(30), "elastic-rollouts");
    wait_rollouts(run, 1, bound(30), out);
    double r1b = rate(metrics, window);

    /* The run went on through it all, and stops with a checkpoint. */
    job_state(id, st, sizeof st);
    if (strcmp(st, "RUNNING") != 0) {
        print_file(out);
        fail_msg("the run's job is '%s' after the rollouts job was cancelled", st);
    }
    rc = sh(text, sizeof text, 30, "scancel %ld", id);
    assert_int_equal(rc, 0);
    wait_job_gone(id, bound(40), "elastic");
    char path[1400];
    snprintf(path, sizeof path, "%s/checkpoint.bin", run);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(file_has(out, "stopped with a checkpoint"));
    check_logs(run);
    fprintf(stderr, "elastic, workers paced at %.0f env steps/s: 1 worker %.0f/s, 3 workers %.0f/s, 1 again %.0f/s "
                    "(%.1f s)\n",
            pace, r1, r3, r1b, now_s() - t0);
    /* One worker runs at its pace, not faster (so the pace is the bottleneck);
     * three run about three times as fast, and back. */
    if (r1 > 1.25 * pace || r1b > 1.25 * pace || r3 < 2.2 * r1 || r3 < 2.2 * r1b || r3 > 1.25 * 3 * pace)
        fail_msg("env steps/s did not follow the workers: %.0f (1), %.0f (3), %.0f (1)", r1, r3, r1b);
}

/* ---- setup --------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    char out[8192];
    const char *conf = getenv("RLHF_SLURM_CONF");
    if (conf && *conf) {
        setenv("SLURM_CONF", conf, 1);
    } else {
        /* Short: unix socket paths under it are limited. */
        snprintf(slurm_dir, sizeof slurm_dir, "/tmp/rlhf-sl.%d", (int)getpid());
        own_cluster = 1;
        double t0 = now_s();
        int rc = sh(out, sizeof out, 60, "deploy/slurm-local-up.sh '%s'", slurm_dir);
        if (rc != 0) {
            fprintf(stderr, "deploy/slurm-local-up.sh %s failed (exit %d):\n%s\n", slurm_dir, rc, out);
            return -1;
        }
        char c[256];
        snprintf(c, sizeof c, "%s/etc/slurm.conf", slurm_dir);
        setenv("SLURM_CONF", c, 1);
        fprintf(stderr, "slurm-local-up.sh: a private Slurm in %.1f s (%s)\n", now_s() - t0, slurm_dir);
    }
    if (sh(out, sizeof out, 30, "sinfo -h -o '%%T %%c'") != 0) {
        fprintf(stderr, "sinfo failed: %s\n", out);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    cancel_our_jobs();
    if (own_cluster) {
        char out[4096];
        if (sh(out, sizeof out, 60, "deploy/slurm-local-down.sh '%s' --purge", slurm_dir) != 0)
            fprintf(stderr, "slurm-local-down.sh: %s\n", out);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cancel_our_jobs();   // a failed case leaves nothing running for the next one
    return 0;
}

int main(void) {
    const char *b = getenv("RLHF_BUILD"), *t = getenv("RLHF_TEST_TMP");
    char bin[1100];
    snprintf(bin, sizeof bin, "%s/bin", b && *b ? b : "build");
    char abs_bin[PATH_MAX];
    if (!realpath(bin, abs_bin) || strlen(abs_bin) >= sizeof bin_dir || !getcwd(src_dir, sizeof src_dir)) {
        fprintf(stderr, "test_slurm: no binaries in %s: %s\n", bin, strerror(errno));
        return 1;
    }
    memcpy(bin_dir, abs_bin, strlen(abs_bin) + 1);
    snprintf(slurm_tmp, sizeof slurm_tmp, "%s/test_slurm.%d", t && *t ? t : "/tmp", (int)getpid());
    if (mkdir_p(slurm_tmp) != 0 || access("deploy/slurm/rlhf.sbatch", R_OK) != 0) {
        fprintf(stderr, "test_slurm: run from the source tree (deploy/slurm/rlhf.sbatch), with a writable %s\n", slurm_tmp);
        return 1;
    }
    char abs_tmp[PATH_MAX];
    if (realpath(slurm_tmp, abs_tmp) && strlen(abs_tmp) < sizeof slurm_tmp) memcpy(slurm_tmp, abs_tmp, strlen(abs_tmp) + 1);
    setenv("RLHF_BIN", bin_dir, 1);   // sbatch hands our environment to the jobs
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    /* The test's node advertises more CPUs than there are cores: MPI ranks
     * that wait must not spin them away from the rest. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    signal(SIGALRM, on_alarm);
    alarm(SANITIZED ? 900 : 400);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_job_and_added_rollouts, teardown),
        cmocka_unit_test_teardown(test_requeue, teardown),
        cmocka_unit_test_teardown(test_elastic, teardown),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    alarm(0);
    return rc;
}

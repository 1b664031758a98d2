/* test_worker.c - the MPI learner (rlhf-worker) and its checkpoints.
 *
 * In-process (no MPI): a learner's checkpoint round trip (same
 * learner_hash, same labels, and the two go on identically), and every way
 * a checkpoint is refused (flipped bytes, truncation, another job) leaving
 * the learner untouched.
 *
 * Through mpirun ($RLHF_BUILD/bin/rlhf-worker, --local feed, a small
 * CartPole job): -np 2 and -np 1 runs write the run directory with replica
 * hash checks, and -np 1 learns bit for bit what `rlhf train` learns;
 * SIGTERM to one rank stops every rank after the same iteration with a
 * checkpoint and status 143, and --resume finishes with every iteration in
 * metrics.jsonl exactly once, continuous env steps and bitwise the
 * uninterrupted run's result; a corrupted checkpoint and another job are
 * refused (status 2); a perturbed replica aborts the job (status 3); and
 * jobs/cartpole.ini with 2 ranks reaches a return >= 475.
 *
 * mpirun runs as root here (--allow-run-as-root), oversubscribed, with
 * OMPI_MCA_pml=ob1 (faster start), OPENBLAS_NUM_THREADS=1, and
 * OMPI_MCA_odls_base_sigkill_timeout=0: after a rank exits non-zero, mpirun
 * kills the others at once rather than 1 s later (every non-zero exit
 * cost 2 s), which also proves rank 0 has finished its checkpoint before
 * any rank exits. Under ASan
 * the children get ASAN_OPTIONS=detect_leaks=0 (Open MPI's own allocations
 * at exit are reported as leaks) unless ASAN_OPTIONS is already set. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "actor.h"
#include "checkpoint.h"
#include "episodes.h"
#include "job.h"
#include "harness.h"
#include "json.h"
#include "learner.h"
#include "query.h"
#include "teacher.h"

extern char **environ;

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void copy_dir(const char *from, const char *to) {
    rm_rf(to);
    mkdir(to, 0755);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        size_t n;
        char *data = slurp_n(a, &n);
        if (data) spit_n(b, data, n);
        free(data);
    }
    closedir(d);
}

/* ---- running mpirun */

typedef struct {
    pid_t pid;
    char out_path[1024], err_path[1024];
} proc_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* environ plus what mpirun and the ranks need here; extra (NULL or
 * "K=V") last. Returns a malloc'd array of pointers into static storage. */
static char **child_env(const char *extra) {
    static const char *const add[] = {"OMPI_MCA_pml=ob1", "OPENBLAS_NUM_THREADS=1", "OMPI_ALLOW_RUN_AS_ROOT=1",
                                      "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_rmaps_base_oversubscribe=1",
                                      "OMPI_MCA_odls_base_sigkill_timeout=0"};
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 16, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t j = 0; j < sizeof add / sizeof add[0]; j++)
            if (strncmp(environ[i], add[j], strchr(add[j], '=') - add[j] + 1) == 0) skip = 1;
        if (!skip) env[k++] = environ[i];
    }
    for (size_t j = 0; j < sizeof add / sizeof add[0]; j++) env[k++] = (char *)add[j];
    if (SANITIZED && !getenv("ASAN_OPTIONS")) env[k++] = "ASAN_OPTIONS=detect_leaks=0";
    if (extra) env[k++] = (char *)extra;
    env[k] = NULL;
    return env;
}

/* Starts mpirun -np np rlhf-worker args... (NULL-terminated). */
static proc_t start_worker(int np, const char *tag, const char *extra_env, const char *const *args) {
    const char *build = getenv("RLHF_BUILD");
    char bin[1024], nps[16];
    snprintf(bin, sizeof bin, "%s/bin/rlhf-worker", build && *build ? build : "build");
    snprintf(nps, sizeof nps, "%d", np);
    proc_t p;
    char name[128];
    snprintf(name, sizeof name, "%s.stdout", tag);
    tmp_path(p.out_path, sizeof p.out_path, name);
    snprintf(name, sizeof name, "%s.stderr", tag);
    tmp_path(p.err_path, sizeof p.err_path, name);
    char *argv[48];
    int argc = 0;
    argv[argc++] = "mpirun";
    argv[argc++] = "--allow-run-as-root";
    argv[argc++] = "--oversubscribe";
    argv[argc++] = "-np";
    argv[argc++] = nps;
    argv[argc++] = bin;
    for (; *args && argc < 47; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, p.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, p.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char **env = child_env(extra_env);
    int rc = posix_spawnp(&p.pid, "mpirun", &fa, NULL, argv, env);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run mpirun: %s", strerror(rc));
    return p;
}

/* Waits for p, at most timeout seconds (then kills it and fails). */
static result_t finish(proc_t p, double timeout, double t0) {
    int st;
    for (;;) {
        pid_t got = waitpid(p.pid, &st, WNOHANG);
        if (got == p.pid) break;
        if (got < 0 && errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
        if (now_s() - t0 > timeout) {
            kill(p.pid, SIGTERM);
            sleep(2);
            kill(p.pid, SIGKILL);
            waitpid(p.pid, &st, 0);
            char *err = must_slurp(p.err_path);
            fail_msg("mpirun still running after %.0f s; killed. stderr:\n%s", timeout, err);
        }
        usleep(20000);
    }
    result_t r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = must_slurp(p.out_path);
    r.err = must_slurp(p.err_path);
    r.seconds = now_s() - t0;
    return r;
}

static double timeout_s(double normal) { return SANITIZED ? 8 * normal : normal; }

static result_t run_worker(int np, const char *tag, const char *extra_env, const char *const *args, double timeout) {
    double t0 = now_s();
    proc_t p = start_worker(np, tag, extra_env, args);
    result_t r = finish(p, timeout_s(timeout), t0);
    fprintf(stderr, "    [%s: -np %d, exit %d, %.1f s]\n", tag, np, r.status, r.seconds);
    return r;
}

/* ---- run directories */

static json_t *read_json(const char *dir, const char *name) {
    char path[1200], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = must_slurp(path);
    json_t *doc = json_parse(text, strlen(text), err, sizeof err);
    if (!doc) fail_msg("%s: %s", path, err);
    free(text);
    return doc;
}

static double num(const json_t *obj, const char *key) {
    double v;
    if (json_number(json_get(obj, key), &v) != 0) fail_msg("no number '%s'", key);
    return v;
}

static const char *summary_hash(const char *dir, char *out, size_t n) {
    json_t *sum = read_json(dir, "summary.json");
    snprintf(out, n, "%s", json_string(json_get(sum, "learner_hash")));
    json_destroy(&sum);
    return out;
}

/* metrics.jsonl: every line whole and valid, iterations 0..n-1 exactly
 * once each in order, env_steps (i + 1) * per_iter, ranks as given.
 * Returns the lines. */
static int check_metrics(const char *dir, int n_expected, long long per_iter, int ranks) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *text = must_slurp(path);
    int n = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) fail_msg("%s: last line is not terminated: %s", path, line);
        char err[256];
        json_t *doc = json_parse(line, (size_t)(nl - line), err, sizeof err);
        if (!doc) fail_msg("%s: line %d: %s", path, n + 1, err);
        long long it, steps;
        assert_int_equal(json_int(json_get(doc, "iteration"), &it), 0);
        if (it != n) fail_msg("%s: line %d is iteration %lld, expected %d", path, n + 1, it, n);
        assert_int_equal(json_int(json_get(doc, "env_steps"), &steps), 0);
        if (steps != (n + 1) * per_iter)
            fail_msg("%s: iteration %d has env_steps %lld, expected %lld", path, n, steps, (n + 1) * per_iter);
        assert_int_equal((int)num(doc, "ranks"), ranks);
        (void)num(doc, "allreduce_s");
        (void)num(doc, "t_step");
        json_destroy(&doc);
        n++;
    }
    free(text);
    if (n_expected >= 0) assert_int_equal(n, n_expected);
    return n;
}

/* A small CartPole job: 4 envs x 32 steps per iteration, 30 labels. */
#define SMALL_PER_ITER 128
static const char *small_job(long long total_steps) {
    static char path[600];
    char text[1024];
    snprintf(text, sizeof text,
             "[env]\nid = CartPole-v1\nn_envs = 4\n"
             "[policy]\nhidden = 32,32\n"
             "[ppo]\nn_steps = 32\nepochs = 4\nminibatch = 64\nlr = 1e-3\n"
             "[reward]\nmembers = 2\nhidden = 32\nepochs = 5\nbatch = 16\n"
             "[feedback]\nmode = teacher\nlabels = 30\nsegment_len = 20\nrounds = 3\nselect = disagreement\n"
             "[run]\ntotal_steps = %lld\neval_episodes = 4\n",
             total_steps);
    char name[64];
    snprintf(name, sizeof name, "small-%lld.ini", total_steps);
    spit(tmp_path(path, sizeof path, name), text);
    return path;
}

/* ---- in-process: checkpoints of a learner */

typedef struct {
    job_t job;
    actor_t *actor;
    episodes_t *eps;
    traj_t *batch;
    segstore_t *segs;
    teacher_t teacher;
    rng_t rng_act, rng_q, rng_t;
    int next_kind;
} world_t;

static void world_init(world_t *w) {
    char err[512];
    memset(w, 0, sizeof *w);
    job_defaults(&w->job);
    assert_int_equal(job_load(&w->job, small_job(4000), err, sizeof err), 0);
    assert_int_equal(job_validate(&w->job, err, sizeof err), 0);
    w->actor = actor_new(w->job.env.id, w->job.env.n_envs, 7, err, sizeof err);
    assert_non_null(w->actor);
    const env_class_t *cls = actor_env_class(w->actor);
    w->eps = episodes_new(cls->obs_dim, 1, cls->max_steps, 64);
    w->batch = traj_new(w->job.ppo.n_steps, w->job.env.n_envs, cls->obs_dim, 1);
    w->segs = segstore_new(w->job.feedback.segment_len, cls->obs_dim, 1);
    teacher_oracle(&w->teacher);
    rng_seed(&w->rng_act, 11);
    rng_seed(&w->rng_q, 12);
    rng_seed(&w->rng_t, 13);
}

static void world_free(world_t *w) {
    actor_destroy(&w->actor);
    episodes_destroy(&w->eps);
    traj_destroy(&w->batch);
    segstore_destroy(&w->segs);
}

/* Acts with `actor_policy` and makes up to n pair labels (oracle). */
static int world_step(world_t *w, policy_t *actor_policy, int n, label_t *labels) {
    actor_run(w->actor, actor_policy, &w->rng_act, w->batch);
    episodes_add(w->eps, 0, w->batch);
    query_t q[64];
    w->segs->n = 0;
    int made = query_make(&w->job, w->eps, NULL, n, &w->next_kind, &w->rng_q, w->segs, q), k = 0;
    for (int i = 0; i < made; i++) {
        pref_t p = teacher_pair(&w->teacher, segstore_true_r(w->segs, q[i].seg[0]),
                                segstore_true_r(w->segs, q[i].seg[1]), w->segs->T, &w->rng_t);
        if (p == PREF_CANT_TELL) continue;
        memset(&labels[k], 0, sizeof labels[k]);
        labels[k].kind = QUERY_PAIR;
        labels[k].k = 2;
        labels[k].seg[0] = q[i].seg[0];
        labels[k].seg[1] = q[i].seg[1];
        labels[k].pref = p == PREF_LEFT ? 1.0f : p == PREF_RIGHT ? 0.0f : 0.5f;
        k++;
    }
    return k;
}

/* One iteration of learning, the same on every learner it is given. */
static void learn(learner_t **ls, int n_ls, const world_t *w, const label_t *labels, int n_labels) {
    for (int j = 0; j < n_ls; j++) {
        for (int i = 0; i < n_labels; i++) learner_add_label(ls[j], &labels[i], w->segs);
        if (n_labels) learner_fit_reward(ls[j]);
        ppo_stats_t ps;
        learner_update(ls[j], w->batch, 1e-3, &ps);
    }
}

/* scaled: with ppo.norm_learned_reward, whose return statistics the
 * checkpoint must carry for the two learners to go on identically. */
static void checkpoint_round_trip(int scaled) {
    world_t w;
    world_init(&w);
    w.job.ppo.norm_learned_reward = scaled;
    char err0[256];
    assert_int_equal(job_validate(&w.job, err0, sizeof err0), 0);
    char err[2048], path[600];
    learner_t *a = learner_new(&w.job, err, sizeof err);
    assert_non_null(a);
    assert_true(!a->ret_norm == !scaled);
    label_t labels[64];
    for (int it = 0; it < 4; it++) {
        int n = world_step(&w, a->policy, it < 2 ? 12 : 0, labels);
        learn(&a, 1, &w, labels, n);
    }
    assert_true(a->n_labels > 0);
    assert_true(a->fits > 0);

    checkpoint_loop_t loop = {0};
    loop.iteration = 4;
    loop.env_steps = 4LL * SMALL_PER_ITER;
    loop.answered = 24;
    loop.next_kind = 1;
    loop.rng_act = w.rng_act;
    rng_seed(&loop.rng_feedback, 99);
    rng_normal(&loop.rng_feedback);     // has_spare set
    loop.rng_teacher = w.rng_t;
    loop.wall_s = 1.25;
    unsigned char extra[5] = {1, 2, 3, 4, 5};
    loop.extra = extra;
    loop.extra_len = sizeof extra;
    tmp_path(path, sizeof path, "round-trip.ckpt");
    assert_int_equal(checkpoint_save(path, a, &loop, err, sizeof err), 0);

    learner_t *b = learner_new(&w.job, err, sizeof err);
    assert_non_null(b);
    assert_true(learner_hash(a) != learner_hash(b));
    checkpoint_loop_t got;
    if (checkpoint_load(path, b, &got, err, sizeof err) != 0) fail_msg("load: %s", err);
    assert_true(learner_hash(a) == learner_hash(b));
    assert_int_equal(b->n_labels, a->n_labels);
    assert_int_equal(b->segs->n, a->segs->n);
    assert_memory_equal(b->segs->obs, a->segs->obs, sizeof(float) * a->segs->n * a->segs->T * a->segs->obs_dim);
    assert_memory_equal(b->segs->absorbing, a->segs->absorbing, (size_t)a->segs->n * a->segs->T);
    assert_memory_equal(b->labels, a->labels, sizeof(label_t) * a->n_labels);
    assert_true(b->policy_version == a->policy_version);
    assert_int_equal(b->fits, a->fits);
    assert_true(b->r_zero == a->r_zero && b->r_scale == a->r_scale);
    assert_true(b->fit.val_acc == a->fit.val_acc);
    assert_true(got.iteration == 4 && got.env_steps == 4LL * SMALL_PER_ITER && got.answered == 24 &&
                got.next_kind == 1 && got.wall_s == 1.25);
    assert_memory_equal(&got.rng_act, &loop.rng_act, sizeof(uint64_t) * 4);
    assert_int_equal(got.rng_feedback.has_spare, 1);
    assert_true(got.rng_feedback.spare == loop.rng_feedback.spare);
    assert_int_equal(got.extra_len, sizeof extra);
    assert_memory_equal(got.extra, extra, sizeof extra);
    free(got.extra);

    /* Both go on identically: the random streams came back too. */
    learner_t *both[2] = {a, b};
    for (int it = 0; it < 3; it++) {
        int n = world_step(&w, a->policy, 8, labels);
        learn(both, 2, &w, labels, n);
        assert_true(learner_hash(a) == learner_hash(b));
    }
    learner_destroy(&a);
    learner_destroy(&b);
    world_free(&w);
}

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    checkpoint_round_trip(0);
}

static void test_checkpoint_round_trip_scaled(void **state) {
    (void)state;
    checkpoint_round_trip(1);
}

static void test_checkpoint_refused(void **state) {
    (void)state;
    world_t w;
    world_init(&w);
    char err[2048];
    learner_t *a = learner_new(&w.job, err, sizeof err);
    label_t labels[64];
    int n = world_step(&w, a->policy, 10, labels);
    learn(&a, 1, &w, labels, n);
    unsigned char *buf;
    size_t len;
    checkpoint_encode(a, NULL, &buf, &len);

    learner_t *b = learner_new(&w.job, err, sizeof err);
    uint64_t fresh = learner_hash(b);
    /* A flipped byte anywhere: the magic, the header, the middle, the checksum. */
    size_t at[] = {0, 9, 40, len / 2, len - 20, len - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        buf[at[i]] ^= 0x20;
        err[0] = '\0';
        assert_int_equal(checkpoint_decode(b, buf, len, NULL, err, sizeof err), -1);
        assert_true(strlen(err) > 0);
        if (at[i] >= 24) expect_in(err, "checksum mismatch", "a flipped byte after the header's start");
        assert_true(learner_hash(b) == fresh);
        assert_int_equal(b->n_labels, 0);
        buf[at[i]] ^= 0x20;
    }
    assert_int_equal(checkpoint_decode(b, buf, len - 100, NULL, err, sizeof err), -1);
    expect_in(err, "truncated", "a truncated checkpoint");
    assert_int_equal(checkpoint_decode(b, buf, 100, NULL, err, sizeof err), -1);
    expect_in(err, "truncated", "a checkpoint shorter than its header");

    /* Another job: named key by key. */
    job_t other = w.job;
    assert_int_equal(job_set(&other, "ppo.lr=3e-4", err, sizeof err), 0);
    learner_t *c = learner_new(&other, err, sizeof err);
    assert_int_equal(checkpoint_decode(c, buf, len, NULL, err, sizeof err), -1);
    expect_in(err, "different job", "another job");
    expect_in(err, "[ppo] lr", "the differing key");
    expect_in(err, "0.0003", "its value now");
    learner_destroy(&c);
    job_t wider = w.job;
    assert_int_equal(job_set(&wider, "policy.hidden=64,64", err, sizeof err), 0);
    c = learner_new(&wider, err, sizeof err);
    assert_int_equal(checkpoint_decode(c, buf, len, NULL, err, sizeof err), -1);
    expect_in(err, "[policy] hidden", "the differing key");
    learner_destroy(&c);
    /* A moved run directory is the same job. */
    job_t moved = w.job;
    assert_int_equal(job_set(&moved, "run.out=/somewhere/else", err, sizeof err), 0);
    c = learner_new(&moved, err, sizeof err);
    if (checkpoint_decode(c, buf, len, NULL, err, sizeof err) != 0) fail_msg("run.out changed: %s", err);
    assert_true(learner_hash(c) == learner_hash(a));
    learner_destroy(&c);

    free(buf);
    learner_destroy(&a);
    learner_destroy(&b);
    world_free(&w);
}

/* ---- through mpirun */

static void check_run(const char *dir, int ranks, int iterations) {
    json_t *sum = read_json(dir, "summary.json");
    assert_int_equal((int)num(sum, "ranks"), ranks);
    assert_int_equal((int)num(sum, "iterations"), iterations);
    if (num(sum, "replica_hash_checks") < 1) fail_msg("%s: no replica hash check", dir);
    assert_int_equal((long long)num(sum, "env_steps"), (long long)iterations * SMALL_PER_ITER);
    assert_true(num(sum, "labels") >= 25);
    assert_true(isfinite(num(sum, "true_return_mean")));
    assert_non_null(json_string(json_get(sum, "learner_hash")));
    json_destroy(&sum);
    check_metrics(dir, iterations, SMALL_PER_ITER, ranks);
    char path[1200];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    assert_true(exists(path));
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    assert_true(exists(path));
}

static void test_worker_np2(void **state) {
    (void)state;
    char dir[600];
    tmp_path(dir, sizeof dir, "np2");
    const char *job = small_job(3000);
    result_t r = run_worker(2, "np2", NULL, (const char *const[]){job, "--local", "--out", dir, NULL}, 60);
    expect_status(&r, 0, "rlhf-worker -np 2");
    expect_in(r.out, "2 ranks", "the closing line");
    check_run(dir, 2, 24);
    result_free(&r);
}

static void test_worker_np1(void **state) {
    (void)state;
    char dir[600];
    tmp_path(dir, sizeof dir, "np1");
    const char *job = small_job(3000);
    result_t r = run_worker(1, "np1", NULL, (const char *const[]){job, "--local", "--out", dir, NULL}, 60);
    expect_status(&r, 0, "rlhf-worker -np 1");
    check_run(dir, 1, 24);
    result_free(&r);
}

/* One rank is the single-process loop: the same data and the same
 * learning, so every figure of metrics.jsonl but the timings, and the final
 * learner_hash, match `rlhf train`'s, bit for bit. */
static void test_np1_is_rlhf_train(void **state) {
    (void)state;
    char dir[600], train_dir[600];
    tmp_path(dir, sizeof dir, "np1");     // test_worker_np1's run
    tmp_path(train_dir, sizeof train_dir, "train");
    const char *build = getenv("RLHF_BUILD");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build && *build ? build : "build");
    char *argv[] = {bin, "train", (char *)small_job(3000), "--out", train_dir, NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    char **env = child_env(NULL);
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, env), 0);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/metrics.jsonl", dir);
    snprintf(pb, sizeof pb, "%s/metrics.jsonl", train_dir);
    char *a = must_slurp(pa), *b = must_slurp(pb), *la = a, *lb = b;
    int lines = 0;
    static const char *const timings[] = {"t_rollout", "t_reward", "t_ppo", "wall_s"};
    for (char *na, *nb; (na = strchr(la, '\n')) && (nb = strchr(lb, '\n')); la = na + 1, lb = nb + 1, lines++) {
        json_t *ja = json_parse(la, (size_t)(na - la), NULL, 0), *jb = json_parse(lb, (size_t)(nb - lb), NULL, 0);
        assert_non_null(ja);
        assert_non_null(jb);
        for (size_t i = 0; i < json_size(jb); i++) {
            const char *key = json_key_at(jb, i);
            int timing = 0;
            for (size_t t = 0; t < 4; t++) timing |= strcmp(key, timings[t]) == 0;
            if (timing) continue;
            char *va = json_serialize(json_get(ja, key), NULL), *vb = json_serialize(json_at(jb, i), NULL);
            if (!va || strcmp(va, vb) != 0)
                fail_msg("iteration %d: %s is %s with rlhf-worker -np 1, %s with rlhf train", lines, key,
                         va ? va : "absent", vb);
            free(va);
            free(vb);
        }
        json_destroy(&ja);
        json_destroy(&jb);
    }
    assert_int_equal(lines, 24);
    free(a);
    free(b);
    char h1[64], h2[64];
    if (strcmp(summary_hash(dir, h1, sizeof h1), summary_hash(train_dir, h2, sizeof h2)) != 0)
        fail_msg("learner_hash %s with rlhf-worker -np 1, %s with rlhf train", h1, h2);
}

/* The ranks of a running mpirun: its children running rlhf-worker (by
 * command line: the comm is "exe" after blas_setup's re-exec). */
static int rank_pids(pid_t mpirun, pid_t *pids, int max) {
    pid_t kids[256];
    int k = proc_children(mpirun, kids, 256), n = 0;
    for (int i = 0; i < k && n < max; i++) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)kids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';   // the first argument
        if (strstr(buf, "rlhf-worker")) pids[n++] = kids[i];
    }
    return n;
}

static int count_lines(const char *path) {
    char *text = slurp_n(path, NULL);
    int n = 0;
    for (char *p = text; p && *p; p++) n += *p == '\n';
    free(text);
    return n;
}

/* SIGTERM to one rank mid-run: every rank stops after the same iteration,
 * checkpoint, 143; --resume completes the run with a seamless metrics file
 * (lines a dead run wrote after its checkpoint are dropped); a corrupted
 * checkpoint or another job is refused. */
static void test_sigterm_resume(void **state) {
    (void)state;
    char dir[600], ckpt[700], metrics[700], ref_dir[600];
    tmp_path(dir, sizeof dir, "term");
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    const long long total = 102400;    // 800 iterations (about 2 s): time to signal mid-run
    const int iterations = (int)((total + SMALL_PER_ITER - 1) / SMALL_PER_ITER);
    const char *job = small_job(total);

    double t0 = now_s();
    proc_t p = start_worker(2, "term", NULL,
                            (const char *const[]){job, "--local", "--out", dir, "--checkpoint-every", "7", NULL});
    /* Wait for some progress, then signal one rank only. */
    int lines = 0;
    while ((lines = exists(metrics) ? count_lines(metrics) : 0) < 12) {
        if (now_s() - t0 > timeout_s(30)) fail_msg("no progress in %s", metrics);
        if (waitpid(p.pid, NULL, WNOHANG) == p.pid) fail_msg("the worker ended before the signal: %s", must_slurp(p.err_path));
        usleep(20000);
    }
    pid_t pids[8];
    int n = rank_pids(p.pid, pids, 8);
    if (n != 2) fail_msg("expected 2 ranks under mpirun %d, found %d", (int)p.pid, n);
    kill(pids[1], SIGTERM);
    result_t r = finish(p, timeout_s(60), t0);
    fprintf(stderr, "    [term: -np 2, exit %d after SIGTERM at metrics line %d, %.1f s]\n", r.status, lines, r.seconds);
    expect_status(&r, 143, "rlhf-worker after SIGTERM");
    expect_in(r.err, "signal 15", "rank 0 says why it stops");
    assert_true(exists(ckpt));
    assert_false(exists(tmp_path(ref_dir, sizeof ref_dir, "term/summary.json")));
    int done = check_metrics(dir, -1, SMALL_PER_ITER, 2);
    if (done >= iterations) fail_msg("the run finished (%d iterations) before SIGTERM took effect", done);
    result_free(&r);

    /* A run that died after writing metrics past its checkpoint: a line
     * of the next iteration and a torn one. Resume must drop them. */
    FILE *f = fopen(metrics, "a");
    fprintf(f, "{\"iteration\":%d,\"env_steps\":1,\"ranks\":2}\n{\"iteration\":%d,\"env_st", done, done + 1);
    fclose(f);

    /* A corrupted copy is refused, and nothing is changed. */
    char bad_dir[600], bad_ckpt[700];
    tmp_path(bad_dir, sizeof bad_dir, "term-corrupt");
    copy_dir(dir, bad_dir);
    snprintf(bad_ckpt, sizeof bad_ckpt, "%s/checkpoint.bin", bad_dir);
    size_t len = 0;
    char *bytes = slurp_n(bad_ckpt, &len);
    assert_non_null(bytes);
    bytes[len / 2] ^= 0x01;
    spit_n(bad_ckpt, bytes, len);
    free(bytes);
    r = run_worker(2, "corrupt", NULL, (const char *const[]){job, "--local", "--out", bad_dir, "--resume", NULL}, 30);
    expect_status(&r, 2, "--resume from a corrupted checkpoint");
    expect_in(r.err, "checksum mismatch", "the refusal says why");
    expect_in(r.err, "checkpoint.bin", "the refusal names the file");
    result_free(&r);

    /* Another job is refused, naming the key. */
    char other_dir[600];
    tmp_path(other_dir, sizeof other_dir, "term-other");
    copy_dir(dir, other_dir);
    r = run_worker(2, "otherjob", NULL,
                   (const char *const[]){job, "--local", "--out", other_dir, "--resume", "--set", "ppo.epochs=5", NULL},
                   30);
    expect_status(&r, 2, "--resume with another job");
    expect_in(r.err, "[ppo] epochs", "the refusal names the key");
    result_free(&r);

    /* The resume. */
    r = run_worker(2, "resume", NULL, (const char *const[]){job, "--local", "--out", dir, "--resume", NULL}, 60);
    expect_status(&r, 0, "--resume");
    result_free(&r);
    check_metrics(dir, iterations, SMALL_PER_ITER, 2);
    json_t *sum = read_json(dir, "summary.json");
    assert_int_equal((int)num(sum, "iterations"), iterations);
    assert_true(num(sum, "resumed_from") >= 12 && num(sum, "resumed_from") < iterations);
    assert_true(num(sum, "replica_hash_checks") >= 1);
    json_destroy(&sum);

    /* Bitwise the uninterrupted run: the environments and the episode
     * ring came back too. */
    tmp_path(ref_dir, sizeof ref_dir, "term-ref");
    r = run_worker(2, "term-ref", NULL, (const char *const[]){job, "--local", "--out", ref_dir, NULL}, 60);
    expect_status(&r, 0, "the uninterrupted run");
    result_free(&r);
    char h1[64], h2[64];
    if (strcmp(summary_hash(dir, h1, sizeof h1), summary_hash(ref_dir, h2, sizeof h2)) != 0)
        fail_msg("resumed run's learner_hash %s, the uninterrupted run's %s", h1, h2);
}

static void test_divergence_aborts(void **state) {
    (void)state;
    char dir[600];
    tmp_path(dir, sizeof dir, "diverge");
    result_t r = run_worker(2, "diverge", "RLHF_WORKER_TEST_DIVERGE=1:3",
                            (const char *const[]){small_job(3000), "--local", "--out", dir, "--hash-every", "1", NULL}, 60);
    expect_status(&r, 3, "a perturbed replica");
    expect_in(r.err, "REPLICAS DIVERGED after 4 iterations", "rank 0 says when");
    expect_in(r.err, "rank 0: learner_hash", "every rank's hash");
    expect_in(r.err, "rank 1: learner_hash", "every rank's hash");
    result_free(&r);
}

static void test_bad_input(void **state) {
    (void)state;
    char dir[600];
    tmp_path(dir, sizeof dir, "bad");
    result_t r = run_worker(2, "badset", NULL,
                            (const char *const[]){small_job(3000), "--local", "--out", dir, "--set", "ppo.lr=abc", NULL}, 30);
    expect_status(&r, 2, "--set ppo.lr=abc");
    expect_in(r.err, "lr", "the message names the key");
    result_free(&r);
    r = run_worker(1, "nolocal", NULL, (const char *const[]){small_job(3000), "--out", dir, NULL}, 30);
    expect_status(&r, 2, "without --local");
    expect_in(r.err, "--local", "the message says what to do");
    result_free(&r);
    char empty[600];
    tmp_path(empty, sizeof empty, "no-checkpoint");
    r = run_worker(1, "nockpt", NULL, (const char *const[]){small_job(3000), "--local", "--out", empty, "--resume", NULL}, 30);
    expect_status(&r, 2, "--resume without a checkpoint");
    expect_in(r.err, "checkpoint.bin", "the message names the file");
    result_free(&r);
}

/* The acceptance check of the learner side: jobs/cartpole.ini with L = 2. */
static void test_cartpole_np2_solves(void **state) {
    (void)state;
    char dir[600];
    tmp_path(dir, sizeof dir, "cartpole-np2");
    result_t r = run_worker(2, "cartpole", NULL, (const char *const[]){"jobs/cartpole.ini", "--local", "--out", dir, NULL}, 150);
    expect_status(&r, 0, "jobs/cartpole.ini with 2 ranks");
    json_t *sum = read_json(dir, "summary.json");
    double ret = num(sum, "true_return_mean");
    fprintf(stderr, "    [cartpole: -np 2, true return %.1f, wall %.1f s]\n", ret, num(sum, "wall_s"));
    if (ret < 475) fail_msg("jobs/cartpole.ini with 2 ranks: true return %.1f < 475", ret);
    assert_int_equal((int)num(sum, "ranks"), 2);
    assert_true(num(sum, "replica_hash_checks") > 1);
    json_destroy(&sum);
    result_free(&r);
}

int main(void) {
    const char *base = getenv("RLHF_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/worker.%d", base && *base ? base : "/tmp", (int)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp_dir);
    if (system(cmd) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoint_round_trip_scaled),
        cmocka_unit_test(test_checkpoint_refused),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_worker_np2),
        cmocka_unit_test(test_worker_np1),
        cmocka_unit_test(test_np1_is_rlhf_train),
        cmocka_unit_test(test_divergence_aborts),
        cmocka_unit_test(test_sigterm_resume),
        cmocka_unit_test(test_cartpole_np2_solves),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0) return 1;
    }
    return failed;
}

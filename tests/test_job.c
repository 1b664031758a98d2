/* test_job.c - the job table: defaults, INI loading and every kind of error
 * (with file:line), --set overrides, cross-field validation, the
 * job_write() -> job_load() round trip, and docs/config.md naming every key.
 * Runs from the repository root (the doc check opens docs/config.md). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "job.h"

static char tmp_path[512];

/* Writes text to a fresh file under RLHF_TEST_TMP (or /tmp); returns its path. */
static const char *write_tmp(const char *name, const char *text) {
    const char *dir = getenv("RLHF_TEST_TMP") ? getenv("RLHF_TEST_TMP") : "/tmp";
    snprintf(tmp_path, sizeof tmp_path, "%s/job-%d-%s.ini", dir, (int)getpid(), name);
    FILE *f = fopen(tmp_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return tmp_path;
}

static void test_defaults(void **state) {
    (void)state;
    job_t job;
    char err[1024] = "";
    job_defaults(&job);
    if (job_validate(&job, err, sizeof err) != 0) fail_msg("defaults do not validate: %s", err);
    assert_string_equal(job.env.id, "CartPole-v1");
    assert_int_equal(job.env.n_envs, 8);
    assert_int_equal(job.policy.n_hidden, 2);
    assert_int_equal(job.policy.hidden[0], 64);
    assert_int_equal(job.policy.hidden[1], 64);
    assert_int_equal(job.policy.activation, ACT_TANH);
    assert_true(job.policy.log_std_init == 0.0);
    assert_int_equal(job.ppo.n_steps, 128);
    assert_int_equal(job.ppo.epochs, 10);
    assert_int_equal(job.ppo.minibatch, 256);
    assert_true(job.ppo.lr == 3e-4);
    assert_int_equal(job.ppo.anneal_lr, 1);
    assert_true(job.ppo.gamma == 0.99);
    assert_true(job.ppo.lambda == 0.95);
    assert_true(job.ppo.clip == 0.2);
    assert_true(job.ppo.ent_coef == 0.0);
    assert_true(job.ppo.vf_coef == 0.5);
    assert_true(job.ppo.max_grad_norm == 0.5);
    assert_int_equal(job.ppo.norm_obs, 1);
    assert_true(job.ppo.target_kl == 0.0);
    assert_int_equal(job.reward.members, 3);
    assert_int_equal(job.reward.n_hidden, 2);
    assert_int_equal(job.reward.hidden[1], 64);
    assert_int_equal(job.reward.activation, ACT_RELU);
    assert_true(job.reward.lr == 1e-3);
    assert_int_equal(job.reward.epochs, 20);
    assert_int_equal(job.reward.batch, 32);
    assert_true(job.reward.weight_decay == 1e-4);
    assert_true(job.reward.noise == 0.1);
    assert_int_equal(job.reward.bootstrap, 1);
    assert_int_equal(job.feedback.mode, FEEDBACK_TEACHER);
    assert_int_equal(job.feedback.labels, 500);
    assert_true(job.feedback.initial_frac == 0.25);
    assert_true(job.feedback.label_until == 0.5);
    assert_int_equal(job.feedback.segment_len, 25);
    assert_int_equal(job.feedback.query_kinds, QUERY_PAIR);
    assert_int_equal(job.feedback.rank_k, 3);
    assert_int_equal(job.feedback.select, SELECT_DISAGREEMENT);
    assert_int_equal(job.feedback.pool_factor, 4);
    assert_string_equal(job.feedback.teacher, "oracle");
    assert_true(job.run.total_steps == 100000);
    assert_true(job.run.seed == 1);
    assert_string_equal(job.run.out, "");
    assert_int_equal(job.run.eval_episodes, 100);
}

static void test_load_good(void **state) {
    (void)state;
    const char *path = write_tmp("good",
                                 "; a job file\n"
                                 "# both comment styles\n"
                                 "[env]\n"
                                 "id = Pendulum-v1\n"
                                 "n_envs=4\n"
                                 "\n"
                                 "[policy]\n"
                                 "  hidden = 32, 16 ,8\n" /* indented keys are keys, not continuations */
                                 "  activation = relu\n"
                                 "  log_std_init = -0.5\n"
                                 "[ppo]\n"
                                 "lr = 1e-4 ; inline comment\n"
                                 "anneal_lr = no\n"
                                 "norm_obs = 0\n"
                                 "minibatch = 64\n"
                                 "lr = 2.5e-4\n" /* last wins */
                                 "[feedback]\n"
                                 "mode = true-reward\r\n" /* CRLF */
                                 "labels = 0\n"
                                 "query = pair + ranking\n"
                                 "select = random\n"
                                 "[run]\n"
                                 "total_steps = 1e6\n"
                                 "seed = 18446744073709551615\n"
                                 "out = runs/my run\n");
    job_t job;
    char err[1024] = "";
    job_defaults(&job);
    if (job_load(&job, path, err, sizeof err) != 0) fail_msg("load failed: %s", err);
    if (job_validate(&job, err, sizeof err) != 0) fail_msg("validate failed: %s", err);
    assert_string_equal(job.env.id, "Pendulum-v1");
    assert_int_equal(job.env.n_envs, 4);
    assert_int_equal(job.policy.n_hidden, 3);
    assert_int_equal(job.policy.hidden[0], 32);
    assert_int_equal(job.policy.hidden[1], 16);
    assert_int_equal(job.policy.hidden[2], 8);
    assert_int_equal(job.policy.hidden[3], 0);
    assert_int_equal(job.policy.activation, ACT_RELU);
    assert_true(job.policy.log_std_init == -0.5);
    assert_true(job.ppo.lr == 2.5e-4);
    assert_int_equal(job.ppo.anneal_lr, 0);
    assert_int_equal(job.ppo.norm_obs, 0);
    assert_int_equal(job.ppo.minibatch, 64);
    assert_int_equal(job.ppo.epochs, 10); /* untouched keys keep their defaults */
    assert_int_equal(job.feedback.mode, FEEDBACK_TRUE_REWARD);
    assert_int_equal(job.feedback.labels, 0);
    assert_int_equal(job.feedback.query_kinds, QUERY_PAIR | QUERY_RANKING);
    assert_int_equal(job.feedback.select, SELECT_RANDOM);
    assert_true(job.run.total_steps == 1000000);
    assert_true(job.run.seed == UINT64_MAX);
    assert_string_equal(job.run.out, "runs/my run");
    unlink(path);
}

/* Loads text and expects -1 with an error containing want (and, when line
 * > 0, starting with "<path>:<line>: "); the job must be left unchanged. */
static void expect_load_error(const char *text, int line, const char *want) {
    const char *path = write_tmp("bad", text);
    job_t job, before;
    char err[1024] = "", prefix[600];
    job_defaults(&job);
    before = job;
    int rc = job_load(&job, path, err, sizeof err);
    if (rc != -1) fail_msg("loading %s: expected an error containing \"%s\", got rc %d", text, want, rc);
    if (line > 0) {
        snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
        if (strncmp(err, prefix, strlen(prefix)) != 0) fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
    }
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_memory_equal(&job, &before, sizeof job);
    unlink(path);
}

static void test_load_errors(void **state) {
    (void)state;
    expect_load_error("[env]\nid = x\n[secrity]\nfoo = 1\n", 3, "unknown section [secrity] (known: env, policy, ppo");
    expect_load_error("[env]\n[bogus]\n", 2, "unknown section [bogus]");
    expect_load_error("[ppo]\nlrr = 1\n", 2, "[ppo] lrr: unknown key ([ppo] has n_steps, epochs");
    expect_load_error("[ppo]\n\nlr = abc\n", 3, "[ppo] lr: expected a number > 0, got 'abc'");
    expect_load_error("[ppo]\nlr = 0\n", 2, "[ppo] lr: expected a number > 0, got '0'");
    expect_load_error("[ppo]\nlr = nan\n", 2, "[ppo] lr: expected a number > 0, got 'nan'");
    expect_load_error("[ppo]\nlr =\n", 2, "[ppo] lr: expected a number > 0, got ''");
    expect_load_error("[ppo]\ngamma = 1.5\n", 2, "[ppo] gamma: expected a number in [0, 1], got '1.5'");
    expect_load_error("[ppo]\nlr = 3e-4 # not a comment\n", 2, "got '3e-4 # not a comment'");
    expect_load_error("[feedback]\nrank_k = 9\n", 2, "[feedback] rank_k: expected an integer in [2, 8], got '9'");
    expect_load_error("[feedback]\nlabel_until = 0\n", 2, "[feedback] label_until: expected a number in (0, 1], got '0'");
    expect_load_error("[env]\nn_envs = 2.5\n", 2, "[env] n_envs: expected an integer in [1, 4096], got '2.5'");
    expect_load_error("[env]\nn_envs = 0x10\n", 2, "got '0x10'");
    expect_load_error("[run]\ntotal_steps = 99999999999999999999\n", 2, "[run] total_steps: expected an integer in [1,");
    expect_load_error("[run]\nseed = -1\n", 2, "[run] seed: expected an integer in [0, 18446744073709551615], got '-1'");
    expect_load_error("[policy]\nactivation = sigmoid\n", 2, "[policy] activation: expected one of tanh|relu, got 'sigmoid'");
    expect_load_error("[feedback]\nmode = people\n", 2, "expected one of teacher|true-reward|human, got 'people'");
    expect_load_error("[ppo]\nanneal_lr = maybe\n", 2, "[ppo] anneal_lr: expected true or false");
    const char *want_list = "[policy] hidden: expected 1 to 8 integers joined by ','";
    expect_load_error("[policy]\nhidden = 64,,64\n", 2, want_list);
    expect_load_error("[policy]\nhidden = 64,\n", 2, want_list);
    expect_load_error("[policy]\nhidden =\n", 2, want_list);
    expect_load_error("[policy]\nhidden = 0\n", 2, want_list);
    expect_load_error("[policy]\nhidden = 1,2,3,4,5,6,7,8,9\n", 2, "got '1,2,3,4,5,6,7,8,9'");
    expect_load_error("[policy]\nhidden = 64x64\n", 2, "got '64x64'");
    expect_load_error("[feedback]\nquery = pair+votes\n", 2,
                      "[feedback] query: expected one or more of pair|rating|ranking joined by '+', got 'pair+votes'");
    expect_load_error("[feedback]\nquery = pair+\n", 2, "[feedback] query: expected");
    /* Malformed lines: inih's own syntax errors, reported with the text. */
    expect_load_error("[ppo]\nlr 3e-4\n", 2, "malformed line: expected '[section]' or 'key = value', got 'lr 3e-4'");
    expect_load_error("[env]\nid = x\n[ppo\nlr = 1\n", 3, "malformed line");
    expect_load_error("lr = 1\n", 1, "'lr' is outside any section");
    /* The first error is the one reported, whichever kind it is. */
    expect_load_error("[ppo]\nlr = abc\ngamma = 5\n", 2, "[ppo] lr:");
    expect_load_error("[ppo]\noops\nlr = abc\n", 2, "malformed line");
    /* A line longer than inih's buffer is an error, not two lines. */
    char long_line[600];
    snprintf(long_line, sizeof long_line, "[run]\nout = %0500d\n", 0);
    expect_load_error(long_line, 2, "line is 506 bytes long; inih reads at most");
}

static void test_load_misc(void **state) {
    (void)state;
    job_t job;
    char err[1024] = "";
    job_defaults(&job);
    assert_int_equal(job_load(&job, "/nonexistent/job.ini", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/job.ini: cannot open job file: No such file or directory");
    /* A long comment is fine: it is a comment however long. */
    char text[700];
    snprintf(text, sizeof text, "# %0600d\n[env]\nn_envs = 2\n", 0);
    assert_int_equal(job_load(&job, write_tmp("longcomment", text), err, sizeof err), 0);
    unlink(tmp_path);
    assert_int_equal(job.env.n_envs, 2);
    /* An empty file changes nothing. */
    job_t before = job;
    assert_int_equal(job_load(&job, write_tmp("empty", ""), err, sizeof err), 0);
    unlink(tmp_path);
    assert_memory_equal(&job, &before, sizeof job);
    /* A NULL err is allowed. */
    assert_int_equal(job_load(&job, "/nonexistent/job.ini", NULL, 0), -1);
}

static void expect_set_error(const char *assignment, const char *want) {
    job_t job, before;
    char err[1024] = "";
    job_defaults(&job);
    before = job;
    if (job_set(&job, assignment, err, sizeof err) != -1) fail_msg("--set %s: expected an error", assignment);
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_memory_equal(&job, &before, sizeof job);
}

static void test_set(void **state) {
    (void)state;
    job_t job;
    char err[1024] = "";
    job_defaults(&job);
    assert_int_equal(job_set(&job, "ppo.lr=1e-4", err, sizeof err), 0);
    assert_true(job.ppo.lr == 1e-4);
    assert_int_equal(job_set(&job, " run.seed = 42 ", err, sizeof err), 0);
    assert_true(job.run.seed == 42);
    assert_int_equal(job_set(&job, "policy.hidden=32", err, sizeof err), 0);
    assert_int_equal(job.policy.n_hidden, 1);
    assert_int_equal(job.policy.hidden[0], 32);
    assert_int_equal(job.policy.hidden[1], 0);
    assert_int_equal(job_set(&job, "feedback.query=ranking+pair+rating", err, sizeof err), 0);
    assert_int_equal(job.feedback.query_kinds, QUERY_PAIR | QUERY_RATING | QUERY_RANKING);
    assert_int_equal(job_set(&job, "run.out=/tmp/x=y", err, sizeof err), 0); /* '=' in a value */
    assert_string_equal(job.run.out, "/tmp/x=y");
    assert_int_equal(job_set(&job, "run.out=", err, sizeof err), 0);
    assert_string_equal(job.run.out, "");
    assert_int_equal(job_set(&job, "feedback.mode=human", err, sizeof err), 0);
    assert_int_equal(job.feedback.mode, FEEDBACK_HUMAN);
    assert_int_equal(job_set(&job, "ppo.norm_obs=FALSE", err, sizeof err), 0);
    assert_int_equal(job.ppo.norm_obs, 0);
    /* A string of exactly the field size minus the NUL fits; one more does not. */
    char big[JOB_STR + 40];
    snprintf(big, sizeof big, "env.id=%0*d", JOB_STR - 1, 0);
    assert_int_equal(job_set(&job, big, err, sizeof err), 0);
    assert_int_equal(strlen(job.env.id), JOB_STR - 1);

    snprintf(big, sizeof big, "env.id=%0*d", JOB_STR, 0);
    expect_set_error(big, "[env] id: expected a string of at most 255 bytes without control characters, got 256 bytes");
    expect_set_error("ppo.lr=abc", "--set ppo.lr=abc: [ppo] lr: expected a number > 0, got 'abc'");
    expect_set_error("ppo.lr", "--set ppo.lr: expected section.key=value");
    expect_set_error("lr=1", "--set lr=1: expected section.key=value");
    expect_set_error("nope.x=1", "--set nope.x=1: unknown section [nope]");
    expect_set_error("ppo.nope=1", "--set ppo.nope=1: [ppo] nope: unknown key");
    expect_set_error("feedback.rank_k=1", "[feedback] rank_k: expected an integer in [2, 8], got '1'");
    expect_set_error("run.seed=18446744073709551616", "[run] seed: expected");
    expect_set_error("run.out=a\nb", "[run] out: expected a string");
    expect_set_error("run.out=a ;b", "[run] out: expected a string");
    expect_set_error("policy.activation=", "got ''");
}

static void test_validate(void **state) {
    (void)state;
    job_t job;
    char err[1024] = "";

    job_defaults(&job);
    job.ppo.minibatch = 8 * 128 + 1;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[ppo] minibatch: 1025 is more than the samples per iteration, env.n_envs * ppo.n_steps = 8 * 128 = 1024"));
    job.ppo.minibatch = 1024;
    assert_int_equal(job_validate(&job, err, sizeof err), 0);

    job_defaults(&job);
    job.feedback.labels = 0;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[feedback] labels: must be >= 1 when feedback.mode is teacher"));
    job.feedback.mode = FEEDBACK_TRUE_REWARD;
    assert_int_equal(job_validate(&job, err, sizeof err), 0);

    job_defaults(&job);
    job.env.id[0] = '\0';
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[env] id: must not be empty"));

    job_defaults(&job);
    job.feedback.teacher[0] = '\0';
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[feedback] teacher: must not be empty"));

    job_defaults(&job);
    job.run.total_steps = 1000;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[run] total_steps: 1000 is less than one iteration"));

    /* Fields set in code get the parser's range checks. */
    job_defaults(&job);
    job.feedback.rank_k = 9;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_string_equal(err, "[feedback] rank_k: expected an integer in [2, 8], got '9'");
    job_defaults(&job);
    job.feedback.initial_frac = 1.5;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[feedback] initial_frac:"));
    job_defaults(&job);
    job.feedback.segment_len = 1001;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[feedback] segment_len:"));
    job_defaults(&job);
    job.ppo.lr = NAN;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[ppo] lr: expected a number > 0"));
    job_defaults(&job);
    job.policy.activation = (job_act_t)7;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[policy] activation: expected one of tanh|relu, got '7'"));
    job_defaults(&job);
    job.reward.n_hidden = 0;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[reward] hidden: has 0 entries"));
    job_defaults(&job);
    job.policy.hidden[1] = 0;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[policy] hidden: expected"));
    job_defaults(&job);
    job.feedback.query_kinds = 0;
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[feedback] query: expected"));
    job_defaults(&job);
    memset(job.run.out, 'x', sizeof job.run.out);
    assert_int_equal(job_validate(&job, err, sizeof err), -1);
    assert_non_null(strstr(err, "[run] out: not NUL-terminated"));
}

/* A non-default value for every key; test_roundtrip checks the list covers
 * job_each_key(), so a new key without a line here fails the test. */
static const char *const every_key[] = {
    "env.id=MountainCarContinuous-v0",
    "env.n_envs=3",
    "policy.hidden=7,5,3,2,9,11,13,17",
    "policy.activation=relu",
    "policy.log_std_init=-0.7",
    "ppo.n_steps=33",
    "ppo.epochs=4",
    "ppo.minibatch=99",
    "ppo.lr=0.00012345678901234567",
    "ppo.anneal_lr=false",
    "ppo.gamma=0.999",
    "ppo.lambda=0.9",
    "ppo.clip=0.1",
    "ppo.ent_coef=0.01",
    "ppo.vf_coef=1",
    "ppo.max_grad_norm=10",
    "ppo.norm_obs=false",
    "ppo.norm_reward=true",
    "ppo.norm_learned_reward=true",
    "ppo.target_kl=0.015",
    "reward.members=5",
    "reward.hidden=256",
    "reward.activation=tanh",
    "reward.lr=3.3e-5",
    "reward.epochs=7",
    "reward.batch=17",
    "reward.weight_decay=0",
    "reward.noise=0",
    "reward.bootstrap=no",
    "feedback.mode=human",
    "feedback.labels=1234",
    "feedback.initial_frac=0.1",
    "feedback.label_until=1",
    "feedback.segment_len=50",
    "feedback.query=pair+rating+ranking",
    "feedback.rank_k=8",
    "feedback.select=random",
    "feedback.pool_factor=10",
    "feedback.rounds=7",
    "feedback.teacher=stochastic:beta=1",
    "feedback.redundancy=3",
    "feedback.undo_s=2.5",
    "coordinator.heartbeat_ms=250",
    "coordinator.liveness=5",
    "coordinator.learner_timeout_ms=9000",
    "coordinator.max_policy_lag=0",
    "coordinator.lease_ms=1500",
    "coordinator.learner_queue=7",
    "coordinator.rollout_credit=3",
    "coordinator.label_resend_ms=333",
    "coordinator.http_port=8123",
    "coordinator.http_bind=0.0.0.0",
    "coordinator.queue_max=77",
    "run.total_steps=123456789012",
    "run.seed=18446744073709551615",
    "run.out=runs/a b/c",
    "run.eval_episodes=0",
    "security.curve=true",
    "security.keys_dir=/etc/rlhf keys",
};
#define N_EVERY (sizeof every_key / sizeof every_key[0])

typedef struct {
    int n, missing;
} cover_t;

static void cover_key(const char *section, const char *key, const char *doc, void *arg) {
    cover_t *c = arg;
    char name[128];
    c->n++;
    assert_non_null(doc);
    assert_true(doc[0] != '\0');
    snprintf(name, sizeof name, "%s.%s=", section, key);
    for (size_t i = 0; i < N_EVERY; i++)
        if (strncmp(every_key[i], name, strlen(name)) == 0) return;
    print_error("test_job: every_key[] has no line for %s.%s\n", section, key);
    c->missing++;
}

/* job_write -> job_load into a zeroed struct: the same bytes. Loading over
 * zeros (not defaults) also shows that job_write wrote every key. */
static void roundtrip(const job_t *job, const char *name) {
    const char *dir = getenv("RLHF_TEST_TMP") ? getenv("RLHF_TEST_TMP") : "/tmp";
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/job-%d-%s.ini", dir, (int)getpid(), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    job_write(job, f);
    fclose(f);
    job_t back;
    memset(&back, 0, sizeof back);
    if (job_load(&back, path, err, sizeof err) != 0) fail_msg("reading back %s: %s", path, err);
    assert_memory_equal(&back, job, sizeof back);
    if (job_validate(&back, err, sizeof err) != 0) fail_msg("read back, does not validate: %s", err);
    unlink(path);
}

static void test_roundtrip(void **state) {
    (void)state;
    job_t job, defaults;
    char err[1024] = "";
    cover_t c = {0, 0};
    job_each_key(cover_key, &c);
    assert_int_equal(c.missing, 0);
    assert_int_equal((size_t)c.n, N_EVERY);

    job_defaults(&job);
    roundtrip(&job, "rt-defaults");

    job_defaults(&defaults);
    for (size_t i = 0; i < N_EVERY; i++)
        if (job_set(&job, every_key[i], err, sizeof err) != 0) fail_msg("%s", err);
    if (job_validate(&job, err, sizeof err) != 0) fail_msg("%s", err);
    roundtrip(&job, "rt-every");
    /* The overrides took: the job is no longer the defaults. */
    assert_memory_not_equal(&job, &defaults, sizeof job);

    /* Doubles that have no short decimal form come back bit for bit. */
    job.ppo.lr = 0.1 + 0.2;
    job.ppo.gamma = 1.0 / 3.0;
    job.policy.log_std_init = -0.0;
    job.reward.weight_decay = 5e-324;
    job.ppo.vf_coef = 1.7976931348623157e308;
    roundtrip(&job, "rt-doubles");
}

typedef struct {
    const char *doc;
    int missing;
} doc_check_t;

static void doc_key(const char *section, const char *key, const char *doc, void *arg) {
    (void)doc;
    doc_check_t *d = arg;
    char name[128];
    snprintf(name, sizeof name, "`%s.%s`", section, key);
    if (!strstr(d->doc, name)) {
        print_error("docs/config.md does not mention %s\n", name);
        d->missing++;
    }
}

/* The command-line options every job command shares map onto keys. */
static void test_job_option(void **state) {
    (void)state;
    job_t job;
    char err[1024];
    job_defaults(&job);
    assert_int_equal(job_option(&job, "--seed", "42", err, sizeof err), 1);
    assert_true(job.run.seed == 42);
    assert_int_equal(job_option(&job, "--out", "/tmp/x", err, sizeof err), 1);
    assert_string_equal(job.run.out, "/tmp/x");
    assert_int_equal(job_option(&job, "--feedback", "true-reward", err, sizeof err), 1);
    assert_int_equal(job.feedback.mode, FEEDBACK_TRUE_REWARD);
    assert_int_equal(job_option(&job, "--set", "ppo.lr=0.5", err, sizeof err), 1);
    assert_true(job.ppo.lr == 0.5);
    assert_int_equal(job_option(&job, "--resume", "x", err, sizeof err), 0);
    assert_int_equal(job_option(&job, "--seed", "abc", err, sizeof err), -1);
    assert_non_null(strstr(err, "--seed abc"));
    assert_int_equal(job_option(&job, "--set", "ppo.lr=abc", err, sizeof err), -1);
    assert_non_null(strstr(err, "lr"));
    assert_null(strstr(err, "--set --set"));
    assert_true(job.ppo.lr == 0.5);     // a refused value changes nothing
}

static void test_docs(void **state) {
    (void)state;
    FILE *f = fopen("docs/config.md", "r");
    if (!f) fail_msg("docs/config.md: cannot open (tests run from the repository root)");
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    doc_check_t d = {text, 0};
    job_each_key(doc_key, &d);
    assert_int_equal(d.missing, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_load_good), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_misc), cmocka_unit_test(test_set),       cmocka_unit_test(test_validate),
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_job_option), cmocka_unit_test(test_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

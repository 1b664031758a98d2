/* test_cli.c - the rlhf command as a user meets it: the real binary
 * ($RLHF_BUILD/bin/rlhf) run as a child process, its exit status and what
 * it prints. Exit statuses are part of the interface (scripts test them):
 * 0 success, 1 a run or a replay that failed, 2 a usage or input error. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "json.h"

extern char **environ;

/* Runs the rlhf binary with args (NULL-terminated, without argv[0]);
 * stdout and stderr go to files, read back once it has exited. */
static result_t rlhf(const char *const *args) {
    const char *build = getenv("RLHF_BUILD");
    char bin[1024], out_path[600], err_path[600];
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build && *build ? build : "build");
    tmp_path(out_path, sizeof out_path, "stdout");
    tmp_path(err_path, sizeof err_path, "stderr");
    char *argv[32];
    int argc = 0;
    argv[argc++] = bin;
    for (; *args && argc < 31; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run %s: %s", bin, strerror(rc));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
    result_t r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = must_slurp(out_path);
    r.err = must_slurp(err_path);
    return r;
}

/* ---- env */

static const char *const cartpole_ref = "tests/data/gymnasium/CartPole-v1.jsonl";

static void test_replay_ok(void **state) {
    (void)state;
    result_t r = rlhf((const char *const[]){"env", "replay", cartpole_ref, NULL});
    expect_status(&r, 0, "replay of the reference file");
    expect_in(r.out, "worst deviation", "replay report");
    expect_in(r.out, "CartPole-v1", "replay report");
    result_free(&r);
}

/* One observation moved by 1e-3, a hundred times the tolerance: the replay
 * must notice, say where, and fail. */
static void test_replay_corrupted(void **state) {
    (void)state;
    char *text = must_slurp(cartpole_ref);
    char *obs = strstr(text, "\"obs\":[");
    assert_non_null(obs);
    char *num = obs + strlen("\"obs\":["), *end;
    double v = strtod(num, &end);
    assert_true(end > num);
    char path[600], changed[64];
    snprintf(changed, sizeof changed, "%.17g", v + 1e-3);
    size_t head = (size_t)(num - text);
    char *bad = malloc(strlen(text) + sizeof changed);
    memcpy(bad, text, head);
    strcpy(bad + head, changed);
    strcat(bad, end);
    spit(tmp_path(path, sizeof path, "corrupted.jsonl"), bad);
    result_t r = rlhf((const char *const[]){"env", "replay", path, NULL});
    expect_status(&r, 1, "replay of a corrupted file");
    expect_in(r.out, "worst deviation", "replay report");
    expect_in(r.out, "obs[0]", "replay report names the value");
    result_free(&r);
    free(bad);
    free(text);
}

static void test_replay_missing(void **state) {
    (void)state;
    char path[600];
    tmp_path(path, sizeof path, "no-such-file.jsonl");
    result_t r = rlhf((const char *const[]){"env", "replay", path, NULL});
    expect_status(&r, 2, "replay of a missing file");
    expect_in(r.err, path, "the message names the file");
    result_free(&r);
}

static void test_env_list(void **state) {
    (void)state;
    static const char *const ids[] = {"CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0",
                                      "Acrobot-v1", "Hopper-v4", "HalfCheetah-v4", "Walker2d-v4", "Swimmer-v4",
                                      "Reacher-v4", "InvertedPendulum-v4", "InvertedDoublePendulum-v4", "Ant-v4"};
    const size_t n = sizeof ids / sizeof ids[0];
    result_t r = rlhf((const char *const[]){"env", "list", NULL});
    expect_status(&r, 0, "env list");
    int lines = 0, seen = 0;
    for (char *line = r.out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        size_t i = 0;
        while (i < n && strcmp(line, ids[i]) != 0) i++;
        if (i == n) fail_msg("env list: unexpected line '%s'", line);
        if (seen & (1 << i)) fail_msg("env list: '%s' listed twice", line);
        seen |= 1 << i;
        lines++;
    }
    assert_int_equal(lines, n);
    assert_int_equal(seen, (1 << n) - 1);
    result_free(&r);
}

/* ---- train: errors */

static void test_train_unknown_key(void **state) {
    (void)state;
    char path[600], where[700];
    spit(tmp_path(path, sizeof path, "unknown-key.ini"),
         "[env]\n"
         "id = CartPole-v1\n"
         "\n"
         "[ppo]\n"
         "lr = 1e-3\n"
         "learning_rat = 3\n");
    result_t r = rlhf((const char *const[]){"train", path, NULL});
    expect_status(&r, 2, "a job file with an unknown key");
    snprintf(where, sizeof where, "%s:6", path);
    expect_in(r.err, where, "the message names file:line");
    expect_in(r.err, "learning_rat", "the message names the key");
    result_free(&r);
}

static void test_train_bad_value(void **state) {
    (void)state;
    result_t r = rlhf((const char *const[]){"train", "jobs/cartpole.ini", "--set", "ppo.lr=abc", NULL});
    expect_status(&r, 2, "--set ppo.lr=abc");
    expect_in(r.err, "lr", "the message names the key");
    expect_in(r.err, "abc", "the message names the value");
    result_free(&r);
}

static void test_train_unknown_option(void **state) {
    (void)state;
    result_t r = rlhf((const char *const[]){"train", "jobs/cartpole.ini", "--frobnicate", "1", NULL});
    expect_status(&r, 2, "an unknown option");
    expect_in(r.err, "--frobnicate", "the message names the option");
    result_free(&r);
}

static void test_no_args(void **state) {
    (void)state;
    result_t r = rlhf((const char *const[]){NULL});
    expect_status(&r, 2, "no arguments");
    expect_in(r.err, "usage", "usage text");
    expect_in(r.err, "train", "usage names the commands");
    result_free(&r);
}

/* ---- train: a short real run */

static void test_train_short(void **state) {
    (void)state;
    char dir[600], path[700];
    tmp_path(dir, sizeof dir, "short-run");
    result_t r = rlhf((const char *const[]){"train", "jobs/cartpole.ini", "--set", "run.total_steps=2048", "--set",
                                            "feedback.labels=20", "--out", dir, NULL});
    expect_status(&r, 0, "a short training run");
    expect_in(r.out, "summary.json", "the closing line points at the summary");
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = must_slurp(path);
    char err[256];
    json_t *s = json_parse(text, strlen(text), err, sizeof err);
    if (!s) fail_msg("summary.json: %s", err);
    assert_string_equal(json_string(json_get(s, "env")), "CartPole-v1");
    double labels = -1, steps = 0;
    assert_int_equal(json_number(json_get(s, "labels"), &labels), 0);
    assert_int_equal(json_number(json_get(s, "env_steps"), &steps), 0);
    assert_true(labels > 0 && labels <= 20);
    assert_true(steps >= 2048);
    json_destroy(&s);
    free(text);
    result_free(&r);
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("RLHF_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/cli-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    if (mkdir(tmp_dir, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_ok),
        cmocka_unit_test(test_replay_corrupted),
        cmocka_unit_test(test_replay_missing),
        cmocka_unit_test(test_env_list),
        cmocka_unit_test(test_train_unknown_key),
        cmocka_unit_test(test_train_bad_value),
        cmocka_unit_test(test_train_unknown_option),
        cmocka_unit_test(test_no_args),
        cmocka_unit_test(test_train_short),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/* test_browser.c - the labeling page end to end, in a real browser: `rlhf
 * run --feedback human` on a small CartPole job asking 20 pair labels, all
 * before RL starts (feedback.initial_frac = 1, so the learner waits for
 * them); tests/browser/label.mjs drives Debian's headless Chromium through
 * playwright-core against the URL and token the run prints: it signs in,
 * sees two animated segments, answers 20 queries with the arrow keys (one
 * undone with U and answered again) and sees them saved (label.mjs says in
 * detail what it checks). Then:
 *  - the run ends by itself, exit 0, nothing left running (browser included);
 *  - the labels reached the learner: metrics.jsonl counts 20 labels, and
 *    so does summary.json;
 *  - RUN_DIR/feedback.db holds exactly the 20 standing answers label.mjs
 *    reported (by query and label id) from the printed labeler, plus the one
 *    undone (retracted), and nothing else;
 *  - no sanitizer report in any process's log.
 *
 * Nothing is skipped: a missing node, chromium or playwright-core is a
 * failure (make test runs tests/browser/setup.sh first, and
 * deploy/install-deps.sh installs node and chromium). Run from the source
 * tree, as tests/run.sh does.
 *
 * Processes: this test is a child subreaper; every descendant seen while
 * the run went on must be gone at the end; every wait is bounded; an alarm
 * and the teardown SIGKILL every descendant. */
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
#include <sqlite3.h>

#include "harness.h"
#include "json.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Sanitized processes run several times slower: every wait stretches. */
#define SCALE (SANITIZED ? 5 : 1)
#define LABELS 20
#define LABEL_SCRIPT "tests/browser/label.mjs"
/* The undo window: label.mjs checks the page's list of answers right after
 * the last one, while the coordinator still holds it (the run ends soon
 * after the learner has all 20), so the window must outlast a page refresh
 * or two, in a slow sanitized build too. */
#define UNDO_S (SANITIZED ? 10 : 4)

/* ---- files ------------------------------------------------------------------ */

static void print_file(const char *title, const char *path) {
    char *s = slurp_n(path, NULL);
    fprintf(stderr, "---- %s (%s) ----\n%s\n", title, path, s ? s : "(cannot read it)");
    free(s);
}

/* ---- processes ---------------------------------------------------------------- */

static pid_t spawn_logged(const char *const *argv, const char *log, const char *const *env) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (; env && *env; env += 2) setenv(env[0], env[1], 1);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Exit status of pid within seconds (sampling descendants), or -1 on timeout. */
static int wait_pid(pid_t pid, double seconds) {
    double end = now_s() + seconds;
    int st;
    for (;;) {
        note_descendants();
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_s() > end) return -1;
        usleep(50000);
    }
}

static void check_logs(const char *run_dir) {
    check_run_logs(run_dir, (const char *const[]){"coordinator", "learner", "rollout-1", NULL});
}

/* ---- the test ---------------------------------------------------------------- */

static void write_job(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[env]\nid = CartPole-v1\nn_envs = 8\n"
               "[policy]\nhidden = 32,32\nactivation = tanh\n"
               "[ppo]\nn_steps = 32\nepochs = 4\nminibatch = 256\nlr = 1e-3\n"
               "[reward]\nmembers = 2\nhidden = 32,32\nepochs = 10\nbatch = 16\n"
               "[feedback]\nmode = human\nlabels = %d\ninitial_frac = 1\nsegment_len = 25\nquery = pair\n"
               "select = random\nundo_s = %d\n"
               "[run]\ntotal_steps = 4096\neval_episodes = 5\nseed = 11\n",
            LABELS, UNDO_S);
    fclose(f);
}

/* Finds "labeling page: http://..." and "token: ..." in the run's output. */
static int read_url_token(const char *log, char *url, size_t urllen, char *token, size_t toklen, char *labeler,
                          size_t lablen) {
    char *s = slurp_n(log, NULL);
    if (!s) return 0;
    int have = 0;
    char *p = strstr(s, "labeling page: http://");
    if (p) {
        p += strlen("labeling page: ");
        size_t n = strcspn(p, " \n");
        snprintf(url, urllen, "%.*s", (int)n, p);
        char *l = strstr(p, "(labeler ");
        if (l) {
            l += strlen("(labeler ");
            snprintf(labeler, lablen, "%.*s", (int)strcspn(l, ";) \n"), l);
        }
        have++;
    }
    char *t = strstr(s, "\ntoken: ");
    if (!t && strncmp(s, "token: ", 7) == 0) t = s - 1;
    if (t) {
        t += strlen("\ntoken: ");
        size_t n = strcspn(t, " \r\n");
        if (t[n] == '\n') {   // the whole line is there
            snprintf(token, toklen, "%.*s", (int)n, t);
            have++;
        }
    }
    free(s);
    return have == 2;
}

static long long sql_count(sqlite3 *db, const char *sql, const char *arg) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    long long n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_label_in_the_browser(void **state) {
    (void)state;
    struct stat sb;
    if (stat(LABEL_SCRIPT, &sb) != 0) fail_msg("%s: %s (run from the source tree)", LABEL_SCRIPT, strerror(errno));
    if (stat("tests/browser/node_modules/playwright-core/package.json", &sb) != 0)
        fail_msg("playwright-core is not installed in tests/browser/node_modules: run tests/browser/setup.sh "
                 "(make test does)");
    if (access("/usr/bin/chromium", X_OK) != 0)
        fail_msg("/usr/bin/chromium: %s (deploy/install-deps.sh installs it)", strerror(errno));

    char job[700], run_dir[700], run_log[760], node_log[760], artifacts[760], bin[400], path[900];
    snprintf(job, sizeof job, "%s/human.ini", tmp_dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", tmp_dir);
    snprintf(run_log, sizeof run_log, "%s/run.log", tmp_dir);
    snprintf(node_log, sizeof node_log, "%s/label.log", tmp_dir);
    snprintf(artifacts, sizeof artifacts, "%s/artifacts", tmp_dir);
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    write_job(job);
    double t0 = now_s();

    /* The run, printing the URL and the token. */
    const char *run_argv[] = {bin, "run", job, "--feedback", "human", "--out", run_dir,
                              "--learners", "1", "--rollouts", "1", NULL};
    pid_t run = spawn_logged(run_argv, run_log, NULL);
    char url[300] = "", token[200] = "", labeler[100] = "";
    double end = now_s() + 60.0 * SCALE;
    while (!read_url_token(run_log, url, sizeof url, token, sizeof token, labeler, sizeof labeler)) {
        note_descendants();
        int st;
        if (waitpid(run, &st, WNOHANG) == run) {
            print_file("rlhf run", run_log);
            fail_msg("rlhf run exited (status %d) before printing the labeling URL and token",
                     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        }
        if (now_s() > end) {
            kill_descendants();
            print_file("rlhf run", run_log);
            fail_msg("rlhf run printed no 'labeling page: http://...' and 'token: ...' lines in %d s", 60 * SCALE);
        }
        usleep(50000);
    }
    assert_int_equal(strlen(token), 64);   // 32 random bytes, hex
    assert_true(labeler[0] != '\0');
    fprintf(stderr, "labeling page %s for labeler %s after %.1f s\n", url, labeler, now_s() - t0);

    /* The person at the page. */
    char scale[16];
    snprintf(scale, sizeof scale, "%d", SCALE);
    const char *node_argv[] = {"node", LABEL_SCRIPT, url, token, "20", NULL};
    const char *node_env[] = {"RLHF_TIMEOUT_SCALE", scale, "RLHF_BROWSER_ARTIFACTS", artifacts, NULL};
    pid_t node = spawn_logged(node_argv, node_log, node_env);
    int rc = wait_pid(node, 700.0 * SCALE);
    if (rc != 0) {
        print_file("label.mjs", node_log);
        print_file("rlhf run", run_log);
        snprintf(path, sizeof path, "%s/logs/coordinator.log", run_dir);
        print_file("coordinator", path);
        kill_descendants();
        if (rc == 127) fail_msg("cannot run node (deploy/install-deps.sh installs it)");
        if (rc < 0) fail_msg("label.mjs did not finish in %d s", 700 * SCALE);
        fail_msg("label.mjs failed (exit %d)", rc);
    }
    double t_label = now_s() - t0;
    print_file("label.mjs", node_log);

    /* The run ends by itself once the learner has its labels and its steps. */
    rc = wait_pid(run, 180.0 * SCALE);
    if (rc != 0) {
        kill_descendants();
        print_file("rlhf run", run_log);
        snprintf(path, sizeof path, "%s/logs/coordinator.log", run_dir);
        print_file("coordinator", path);
        snprintf(path, sizeof path, "%s/logs/learner.log", run_dir);
        print_file("learner", path);
        if (rc < 0) fail_msg("rlhf run did not end within %d s after the labels were given", 180 * SCALE);
        fail_msg("rlhf run exited with status %d", rc);
    }
    assert_none_left(5.0, 4);   // chromium's helpers are orphans handed to us
    check_logs(run_dir);

    /* label.mjs's account: the query and label ids of the standing answers. */
    char *out = slurp_n(node_log, NULL);
    assert_non_null(out);
    char *line = strstr(out, "{\"labels\":");
    if (!line) fail_msg("label.mjs printed no summary:\n%s", out);
    line[strcspn(line, "\n")] = '\0';
    char err[256];
    json_t *summary = json_parse(line, strlen(line), err, sizeof err);
    if (!summary) fail_msg("label.mjs's summary: %s", err);
    const json_t *queries = json_get(summary, "queries"), *label_ids = json_get(summary, "label_ids");
    const json_t *undone = json_get(summary, "undone");
    assert_non_null(queries);
    assert_non_null(label_ids);
    assert_non_null(undone);
    assert_int_equal(json_size(queries), LABELS);
    assert_int_equal(json_size(label_ids), LABELS);

    /* The labels reached the learner. */
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    static char mline[1 << 16];
    long long max_labels = -1, lines = 0;
    while (fgets(mline, sizeof mline, f)) {
        json_t *m = json_parse(mline, strlen(mline), err, sizeof err);
        if (!m) fail_msg("%s line %lld: %s", path, lines + 1, err);
        long long labels = -1;
        assert_int_equal(json_int(json_get(m, "labels"), &labels), 0);
        if (labels > max_labels) max_labels = labels;
        json_destroy(&m);
        lines++;
    }
    fclose(f);
    if (max_labels != LABELS) fail_msg("%s: the learner counted %lld labels, expected %d", path, max_labels, LABELS);
    assert_true(lines > 0);
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    char *sj = slurp_n(path, NULL);
    if (!sj) fail_msg("no %s: the run did not finish", path);
    json_t *s = json_parse(sj, strlen(sj), err, sizeof err);
    free(sj);
    if (!s) fail_msg("%s: %s", path, err);
    long long sum_labels = -1;
    assert_int_equal(json_int(json_get(s, "labels"), &sum_labels), 0);
    json_destroy(&s);
    assert_int_equal(sum_labels, LABELS);

    /* The store: exactly the answers label.mjs saw saved, from our labeler. */
    snprintf(path, sizeof path, "%s/feedback.db", run_dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
    assert_int_equal(sql_count(db, "SELECT count(*) FROM labels WHERE retracted = 0", NULL), LABELS);
    assert_int_equal(sql_count(db, "SELECT count(*) FROM labels WHERE retracted = 0 AND labeler = ?1", labeler),
                     LABELS);
    assert_int_equal(sql_count(db, "SELECT count(*) FROM labels WHERE retracted != 0", NULL), 1);
    assert_int_equal(sql_count(db, "SELECT count(DISTINCT idempotency_id) FROM labels", NULL), LABELS + 1);
    for (size_t i = 0; i < LABELS; i++) {
        const char *q = json_string(json_at(queries, i)), *l = json_string(json_at(label_ids, i));
        assert_non_null(q);
        assert_non_null(l);
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM labels WHERE retracted = 0 AND CAST(query_id AS TEXT) = ?1 AND id = %lld",
                 strtoll(l, NULL, 10));
        if (sql_count(db, sql, q) != 1) fail_msg("feedback.db has no standing label %s for query %s", l, q);
    }
    const char *uq = json_string(undone);
    assert_non_null(uq);
    assert_int_equal(sql_count(db, "SELECT count(*) FROM labels WHERE CAST(query_id AS TEXT) = ?1", uq), 2);
    sqlite3_close(db);
    json_destroy(&summary);
    free(out);
    fprintf(stderr, "browser: %d labels given in the page and learned from; labeling done at %.1f s, run over at "
                    "%.1f s\n",
            LABELS, t_label, now_s() - t0);
}

static int setup(void **state) {
    (void)state;
    n_seen = 0;
    alarm(1200 * SCALE);
    return 0;
}

int main(void) {
    subreaper_main_init("test_browser", on_alarm_descendants);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_label_in_the_browser, setup, descendants_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

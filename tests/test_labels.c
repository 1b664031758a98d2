/* test_labels.c - labelers and their tokens (labelers.h), `rlhf labelers`,
 * `rlhf labels export` / `import`, and `rlhf run --feedback human`.
 *
 *  - tokens: made, checked, refused when wrong, malformed or disabled; a
 *    duplicate or bad name refused with a clear error; only the hash is
 *    stored (the token appears nowhere in the database file);
 *  - the CLI: `rlhf labelers add` prints a token that labelers_check knows;
 *  - export / import: a feedback.db built through the store (store.h) with
 *    every kind of answer, a retracted label and a query answered twice is
 *    exported (one line per label not retracted, chosen / rejected for the
 *    decided pairs, the numbers exact), imported into a new run and
 *    exported again: the same labels, segments and answers (ids are the new
 *    store's); importing into a run that has feedback, for another env or
 *    segment length, or a malformed file, is refused with a clear error and
 *    leaves nothing behind;
 *  - `rlhf run JOB --feedback human` prints the labeling URL and `token:
 *    TOKEN`; a labeler answering over HTTP (httpc) gets 200s, a wrong token
 *    401, the learner receives the labels (metrics.jsonl shows labels > 0),
 *    and the run ends by itself leaving no process behind. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include <unistd.h>
#include <cmocka.h>

#include "httpc.h"
#include "harness.h"
#include "json.h"
#include "labelers.h"
#include "store.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* ---- helpers --------------------------------------------------------------- */

/* Runs $RLHF_BUILD/bin/rlhf with args (NULL-terminated); waits. */
static result_t rlhf(const char *const *args) {
    char bin[400], out_path[700], err_path[700];
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmp_dir);
    const char *argv[32] = {bin};
    int argc = 1;
    while (*args && argc < 31) argv[argc++] = *args++;
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in, 0), dup2(o, 1), dup2(e, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
    result_t r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), .out = slurp(out_path), .err = slurp(err_path)};
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    return r;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmp_dir, name); }

/* The 64 hex characters after "token: " in text, or fails. */
static void token_from(const char *text, char token[65]) {
    const char *t = strstr(text, "token: ");
    if (!t) fail_msg("no 'token: ' line in:\n%s", text);
    t += 7;
    for (int i = 0; i < 64; i++) {
        char c = t[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) fail_msg("the token is not 64 hex digits: %.70s", t);
        token[i] = c;
    }
    if (t[64] != '\n') fail_msg("the token line has more than 64 characters: %.80s", t);
    token[64] = '\0';
}

/* ---- tokens ---------------------------------------------------------------- */

static void test_tokens(void **state) {
    (void)state;
    char db_path[700], err[512], tok_a[65], tok_b[65], name[LABELER_NAME_MAX + 1];
    path_in(db_path, sizeof db_path, "tokens.db");
    unlink(db_path);
    assert_int_equal(labelers_add(db_path, "alice", tok_a, err, sizeof err), 0);
    assert_int_equal(labelers_add(db_path, "bob.smith-2_X", tok_b, err, sizeof err), 0);
    assert_int_equal(strlen(tok_a), 64);
    assert_int_not_equal(strcmp(tok_a, tok_b), 0);
    for (int i = 0; i < 64; i++) assert_non_null(strchr("0123456789abcdef", tok_a[i]));

    sqlite3 *db = labelers_open_db(db_path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(labelers_check(db, tok_a, name, sizeof name), 1);
    assert_string_equal(name, "alice");
    assert_int_equal(labelers_check(db, tok_b, name, sizeof name), 1);
    assert_string_equal(name, "bob.smith-2_X");
    /* Typed in capitals: the same token. */
    char upper[65];
    for (int i = 0; i < 65; i++) upper[i] = (tok_a[i] >= 'a' && tok_a[i] <= 'f') ? (char)(tok_a[i] - 32) : tok_a[i];
    assert_int_equal(labelers_check(db, upper, name, sizeof name), 1);
    /* Wrong by one digit, truncated, too long, not hex, empty, NULL. */
    char wrong[66];
    memcpy(wrong, tok_a, 65);
    wrong[17] = wrong[17] == '0' ? '1' : '0';
    assert_int_equal(labelers_check(db, wrong, name, sizeof name), 0);
    assert_string_equal(name, "");
    wrong[17] = tok_a[17];
    wrong[63] = '\0';
    assert_int_equal(labelers_check(db, wrong, name, sizeof name), 0);
    memcpy(wrong, tok_a, 64);
    wrong[64] = 'a', wrong[65] = '\0';
    assert_int_equal(labelers_check(db, wrong, name, sizeof name), 0);
    memcpy(wrong, tok_a, 65);
    wrong[0] = 'g';
    assert_int_equal(labelers_check(db, wrong, name, sizeof name), 0);
    assert_int_equal(labelers_check(db, "", name, sizeof name), 0);
    assert_int_equal(labelers_check(db, NULL, name, sizeof name), 0);

    /* A duplicate name: refused, and the first token still works. */
    char tok_c[65];
    assert_int_equal(labelers_add(db_path, "alice", tok_c, err, sizeof err), -1);
    expect_in(err, "already exists", "duplicate name");
    assert_string_equal(tok_c, "");
    assert_int_equal(labelers_check(db, tok_a, NULL, 0), 1);
    /* Bad names. */
    char long_name[80];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    const char *bad[] = {"", "a b", "../etc", "al/ice", "caf\xc3\xa9", "semi;colon", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(labelers_add(db_path, bad[i], tok_c, err, sizeof err), -1);
        expect_in(err, "bad labeler name", bad[i]);
    }
    long_name[64] = '\0';   /* 64 characters: the longest allowed */
    assert_int_equal(labelers_add(db_path, long_name, tok_c, err, sizeof err), 0);

    /* Disabled: refused from then on; disabling an unknown name is an error. */
    assert_int_equal(labelers_disable(db_path, "bob.smith-2_X", err, sizeof err), 0);
    assert_int_equal(labelers_check(db, tok_b, name, sizeof name), 0);
    assert_int_equal(labelers_check(db, tok_a, name, sizeof name), 1);
    assert_int_equal(labelers_disable(db_path, "carol", err, sizeof err), -1);
    expect_in(err, "no labeler named 'carol'", "disable unknown");

    labeler_info_t *v = NULL;
    size_t n = 0;
    assert_int_equal(labelers_list(db_path, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].name, "alice");
    assert_int_equal(v[0].disabled, 0);
    assert_string_equal(v[1].name, "bob.smith-2_X");
    assert_int_equal(v[1].disabled, 1);
    assert_true(v[0].created_us > 1600000000LL * 1000000);
    free(v);
    sqlite3_close(db);

    /* Only the hash is stored: no token in the file or its WAL. */
    static const char *const files[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s%s", db_path, files[i]);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        size_t cap = 1 << 22;
        char *buf = malloc(cap);
        size_t len = fread(buf, 1, cap, f);
        fclose(f);
        assert_null(memmem(buf, len, tok_a, 64));
        assert_null(memmem(buf, len, tok_b, 64));
        free(buf);
    }
}

static void test_labelers_cli(void **state) {
    (void)state;
    char dir[700], db_path[800], name[LABELER_NAME_MAX + 1], token[65], err[256];
    path_in(dir, sizeof dir, "cli-run");
    result_t r = rlhf((const char *const[]){"labelers", "add", "alice", "--out", dir, NULL});
    expect_status(&r, 0, "labelers add");
    token_from(r.out, token);
    result_free(&r);
    snprintf(db_path, sizeof db_path, "%s/feedback.db", dir);
    sqlite3 *db = labelers_open_db(db_path, 0, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(labelers_check(db, token, name, sizeof name), 1);
    assert_string_equal(name, "alice");

    r = rlhf((const char *const[]){"labelers", "add", "alice", "--out", dir, NULL});
    expect_status(&r, 1, "labelers add, a second alice");
    expect_in(r.err, "already exists", "duplicate");
    result_free(&r);
    r = rlhf((const char *const[]){"labelers", "add", "a b", "--out", dir, NULL});
    expect_status(&r, 2, "labelers add, a bad name");
    expect_in(r.err, "bad labeler name", "bad name");
    result_free(&r);
    r = rlhf((const char *const[]){"labelers", "add", "bob", NULL});
    expect_status(&r, 2, "labelers add without --out");
    expect_in(r.err, "--out RUN_DIR", "no --out");
    result_free(&r);

    r = rlhf((const char *const[]){"labelers", "disable", "alice", "--out", dir, NULL});
    expect_status(&r, 0, "labelers disable");
    result_free(&r);
    assert_int_equal(labelers_check(db, token, name, sizeof name), 0);
    sqlite3_close(db);
    r = rlhf((const char *const[]){"labelers", "list", "--out", dir, NULL});
    expect_status(&r, 0, "labelers list");
    expect_in(r.out, "alice", "list");
    expect_in(r.out, "disabled", "list");
    result_free(&r);
}

/* ---- export / import --------------------------------------------------------- */

#define T_SEG 5
#define OBS 4
#define RDIM 2

/* Segment i's numbers: distinct, not round in binary, with a negative zero
 * and a tiny one, so that a lossy print would show. */
static void seg_data(int i, float *obs, float *act, float *r, uint8_t *abs, float *ren) {
    for (int t = 0; t < T_SEG; t++) {
        for (int d = 0; d < OBS; d++) obs[t * OBS + d] = (float)(0.1 * (i + 1) + 0.01 * t - 0.3 * d) / 3.0f;
        act[t] = (float)((i + t) % 2);
        r[t] = t == 0 && i == 0 ? -0.0f : 1.0f + 1e-7f * (float)i;
        abs[t] = (i % 3 == 2) && t >= 3;
        ren[t * RDIM] = (float)t * 0.25f - (float)i, ren[t * RDIM + 1] = 1e-30f * (float)(i + 1);
    }
}

static void write_job_labels(const char *path, const char *env, int seg_len, const char *mode, long long steps,
                             int labels) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[env]\nid = %s\nn_envs = 8\n"
               "[policy]\nhidden = 32,32\n"
               "[ppo]\nn_steps = 32\nepochs = 4\nminibatch = 128\nlr = 1e-3\n"
               "[reward]\nmembers = 2\nhidden = 16,16\nepochs = 4\nbatch = 16\n"
               "[feedback]\nmode = %s\nlabels = %d\ninitial_frac = 0.5\nlabel_until = 0.5\n"
               "segment_len = %d\nquery = pair\nselect = random\nteacher = oracle\nundo_s = 0\n"
               "[run]\ntotal_steps = %lld\neval_episodes = 2\nseed = 3\n",
            env, mode, labels, seg_len, steps);
    fclose(f);
}

/* A small job: 8 x 32 env steps an iteration, 12 labels, undo off (labels
 * reach the learner at once). */
static void write_job(const char *path, const char *env, int seg_len, const char *mode, long long steps) {
    write_job_labels(path, env, seg_len, mode, steps, 12);
}

typedef struct {
    int kind, k, pref, rating, cant, wanted;
    uint32_t ranking[3];
    int retract;
    const char *who[2];
} spec_t;

/* A run directory whose feedback.db was written by the store: 9 segments,
 * queries of every kind and answer, one answered by two labelers, one label
 * retracted. Returns the labels that are not retracted. */
static int build_run(const char *dir) {
    char db_path[800], err[512];
    mkdir_p(dir);
    snprintf(db_path, sizeof db_path, "%s/feedback.db", dir);
    store_t *s = store_open(db_path, "CartPole-v1", T_SEG, OBS, 1, RDIM, "cartpole", err, sizeof err);
    if (!s) fail_msg("store_open: %s", err);
    uint64_t seg[9];
    for (int i = 0; i < 9; i++) {
        float obs[T_SEG * OBS], act[T_SEG], r[T_SEG], ren[T_SEG * RDIM];
        uint8_t abs[T_SEG];
        seg_data(i, obs, act, r, abs, ren);
        seg[i] = store_put_segment(s, obs, act, r, abs, i == 8 ? NULL : ren, "rollout-1", (uint64_t)i, err, sizeof err);
        if (!seg[i]) fail_msg("store_put_segment: %s", err);
    }
    const spec_t specs[] = {
        {1, 2, 1, 0, 0, 1, {0}, 0, {"alice"}},           /* left */
        {1, 2, 2, 0, 0, 1, {0}, 0, {"bob"}},             /* right */
        {1, 2, 3, 0, 0, 1, {0}, 0, {"alice"}},           /* equal */
        {1, 2, 4, 0, 1, 1, {0}, 0, {"alice"}},           /* can't tell */
        {2, 1, 0, 5, 0, 1, {0}, 0, {"bob"}},             /* rating 5 */
        {2, 1, 0, 0, 1, 1, {0}, 0, {"bob"}},             /* rating, can't tell */
        {3, 3, 0, 0, 0, 1, {2, 0, 1}, 0, {"alice"}},     /* ranking */
        {1, 2, 2, 0, 0, 2, {0}, 0, {"alice", "bob"}},    /* two labelers */
        {1, 2, 1, 0, 0, 1, {0}, 1, {"carol"}},           /* retracted */
    };
    int si = 0, kept = 0;
    for (size_t q = 0; q < sizeof specs / sizeof specs[0]; q++) {
        const spec_t *p = &specs[q];
        store_query_t sq = {0};
        sq.kind = (Rlhf__QueryKind)p->kind;
        sq.k = (uint32_t)p->k;
        for (int j = 0; j < p->k; j++) sq.seg_ids[j] = seg[(si + j) % 9];
        si += p->k;
        sq.score = 0.5f;
        sq.answers_wanted = p->wanted;
        uint64_t qid = store_put_query(s, &sq, err, sizeof err);
        if (!qid) fail_msg("store_put_query: %s", err);
        for (int w = 0; w < p->wanted; w++) {
            Rlhf__Label l;
            rlhf__label__init(&l);
            char idem[64];
            snprintf(idem, sizeof idem, "idem-%zu-%d", q, w);
            l.idempotency_id = idem;
            l.has_query_id = 1, l.query_id = qid;
            l.has_kind = 1, l.kind = (Rlhf__QueryKind)p->kind;
            l.labeler_id = (char *)p->who[w];
            if (p->pref) l.has_preference = 1, l.preference = (Rlhf__Preference)p->pref;
            if (p->rating) l.has_rating = 1, l.rating = (uint32_t)p->rating;
            if (p->cant) l.has_cant_tell = 1, l.cant_tell = 1;
            uint32_t rk[3];
            if (p->kind == 3) {
                memcpy(rk, p->ranking, sizeof rk);
                l.n_ranking = 3, l.ranking = rk;
            }
            l.has_shown_at_us = 1, l.shown_at_us = 1764400000000000ULL + q * 1000 + (uint64_t)w;
            l.has_answered_at_us = 1, l.answered_at_us = l.shown_at_us + 2500000;
            l.has_time_spent_ms = 1, l.time_spent_ms = 2500 + (uint32_t)q;
            uint64_t lid;
            int rc = store_put_label(s, &l, p->who[w], 0, q + 1, 0, &lid, err, sizeof err);
            if (rc != STORE_STORED) fail_msg("store_put_label: %s", err);
            if (p->retract) {
                if (store_retract_label(s, lid, err, sizeof err) != 0) fail_msg("store_retract_label: %s", err);
            } else {
                kept++;
            }
        }
    }
    store_destroy(&s);
    return kept;
}

static int count_lines(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

/* Equal JSON values, ignoring the ids the store assigns (keys "id",
 * "label_id", "query_id") and the "created_us" of queries. */
static int same_json(const json_t *a, const json_t *b) {
    if (json_type(a) != json_type(b)) return 0;
    switch (json_type(a)) {
    case JSON_NUMBER: {
        double x, y;
        json_number(a, &x), json_number(b, &y);
        return x == y && signbit(x) == signbit(y);
    }
    case JSON_STRING: return strcmp(json_string(a), json_string(b)) == 0;
    case JSON_BOOL: {
        int x, y;
        json_bool(a, &x), json_bool(b, &y);
        return x == y;
    }
    case JSON_ARRAY:
        if (json_size(a) != json_size(b)) return 0;
        for (size_t i = 0; i < json_size(a); i++)
            if (!same_json(json_at(a, i), json_at(b, i))) return 0;
        return 1;
    case JSON_OBJECT: {
        size_t na = 0, nb = 0;
        for (size_t i = 0; i < json_size(a); i++) {
            const char *k = json_key_at(a, i);
            if (!strcmp(k, "id") || !strcmp(k, "label_id") || !strcmp(k, "query_id")) continue;
            na++;
            if (!same_json(json_at(a, i), json_get(b, k))) {
                fprintf(stderr, "differs at key '%s'\n", k);
                return 0;
            }
        }
        for (size_t i = 0; i < json_size(b); i++) {
            const char *k = json_key_at(b, i);
            nb += strcmp(k, "id") && strcmp(k, "label_id") && strcmp(k, "query_id");
        }
        return na == nb;
    }
    default: return 1;
    }
}

static json_t **parse_lines(const char *text, int *n) {
    int cap = count_lines(text);
    json_t **v = calloc((size_t)cap + 1, sizeof *v);
    *n = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        if (!e) fail_msg("an unterminated line: %s", p);
        char err[256];
        v[*n] = json_parse(p, (size_t)(e - p), err, sizeof err);
        if (!v[*n]) fail_msg("line %d is not JSON: %s", *n + 1, err);
        (*n)++;
        p = e + 1;
    }
    return v;
}

static void free_lines(json_t **v, int n) {
    for (int i = 0; i < n; i++) json_destroy(&v[i]);
    free(v);
}

static float num_at(const json_t *arr2, int row, int col) {
    double d;
    const json_t *x = col < 0 ? json_at(arr2, (size_t)row) : json_at(json_at(arr2, (size_t)row), (size_t)col);
    if (json_number(x, &d) != 0) fail_msg("not a number at [%d][%d]", row, col);
    return (float)d;
}

/* The segment object holds exactly segment i's numbers. */
static void check_segment(const json_t *s, int i, int has_render) {
    float obs[T_SEG * OBS], act[T_SEG], r[T_SEG], ren[T_SEG * RDIM];
    uint8_t abs[T_SEG];
    seg_data(i, obs, act, r, abs, ren);
    for (int t = 0; t < T_SEG; t++) {
        for (int d = 0; d < OBS; d++) {
            float x = num_at(json_get(s, "obs"), t, d);
            assert_memory_equal(&x, &obs[t * OBS + d], 4);
        }
        float a = num_at(json_get(s, "actions"), t, 0), rr = num_at(json_get(s, "true_rewards"), t, -1);
        assert_memory_equal(&a, &act[t], 4);
        assert_memory_equal(&rr, &r[t], 4);   /* -0.0 stays -0.0 */
        long long ab;
        assert_int_equal(json_int(json_at(json_get(s, "absorbing"), (size_t)t), &ab), 0);
        assert_int_equal(ab, abs[t]);
        if (has_render)
            for (int d = 0; d < RDIM; d++) {
                float x = num_at(json_get(s, "render_states"), t, d);
                assert_memory_equal(&x, &ren[t * RDIM + d], 4);
            }
    }
    assert_int_equal(json_get(s, "render_states") != NULL, has_render);
}

/* Which of the 9 segments this one is (by its first observation). */
static int which_segment(const json_t *s) {
    float x = num_at(json_get(s, "obs"), 0, 0);
    for (int i = 0; i < 9; i++) {
        float obs[T_SEG * OBS], act[T_SEG], r[T_SEG], ren[T_SEG * RDIM];
        uint8_t abs[T_SEG];
        seg_data(i, obs, act, r, abs, ren);
        if (obs[0] == x) return i;
    }
    fail_msg("a segment that is none of the nine");
    return -1;
}

static void test_export_import(void **state) {
    (void)state;
    char run_a[700], run_b[700], file_a[700], file_b[700], job[700], db_path[800];
    path_in(run_a, sizeof run_a, "export-a");
    path_in(run_b, sizeof run_b, "import-b");
    path_in(file_a, sizeof file_a, "a.jsonl");
    path_in(file_b, sizeof file_b, "b.jsonl");
    path_in(job, sizeof job, "cartpole5.ini");
    write_job(job, "CartPole-v1", T_SEG, "human", 4096);
    int kept = build_run(run_a);
    assert_int_equal(kept, 9);

    result_t r = rlhf((const char *const[]){"labels", "export", run_a, "-o", file_a, NULL});
    expect_status(&r, 0, "labels export");
    result_free(&r);
    char *text_a = slurp(file_a);
    assert_non_null(text_a);
    int n_a;
    json_t **a = parse_lines(text_a, &n_a);
    assert_int_equal(n_a, kept);   /* the retracted one is not exported */

    /* The answers and the chosen / rejected shape. */
    const char *answers[] = {"left", "right", "equal", "cant_tell", "5", "cant_tell", "2,0,1", "right", "right"};
    int chosen_seen = 0;
    for (int i = 0; i < n_a; i++) {
        const json_t *l = a[i];
        const char *kind = json_string(json_get(l, "kind"));
        assert_non_null(kind);
        assert_string_equal(json_string(json_get(l, "env_id")), "CartPole-v1");
        assert_non_null(json_string(json_get(l, "labeler")));
        assert_non_null(json_string(json_get(l, "idempotency_id")));
        long long shown, spent;
        assert_int_equal(json_int(json_get(l, "shown_at_us"), &shown), 0);
        assert_int_equal(json_int(json_get(l, "time_spent_ms"), &spent), 0);
        assert_true(shown >= 1764400000000000LL);
        const json_t *ans = json_get(l, "answer");
        char got[32];
        if (json_type(ans) == JSON_STRING) {
            snprintf(got, sizeof got, "%s", json_string(ans));
        } else if (json_type(ans) == JSON_NUMBER) {
            long long v;
            json_int(ans, &v);
            snprintf(got, sizeof got, "%lld", v);
        } else {
            long long x, y, z;
            json_int(json_at(ans, 0), &x), json_int(json_at(ans, 1), &y), json_int(json_at(ans, 2), &z);
            snprintf(got, sizeof got, "%lld,%lld,%lld", x, y, z);
        }
        assert_string_equal(got, answers[i]);
        const json_t *segs = json_get(l, "segments");
        int decided = !strcmp(kind, "pair") && (!strcmp(got, "left") || !strcmp(got, "right"));
        assert_int_equal(json_get(l, "chosen") != NULL, decided);
        assert_int_equal(json_get(l, "rejected") != NULL, decided);
        if (decided) {
            int c = !strcmp(got, "left") ? 0 : 1;
            assert_int_equal(which_segment(json_get(l, "chosen")), which_segment(json_at(segs, (size_t)c)));
            assert_int_equal(which_segment(json_get(l, "rejected")), which_segment(json_at(segs, (size_t)(1 - c))));
            chosen_seen++;
        }
        for (size_t j = 0; j < json_size(segs); j++) {
            int w = which_segment(json_at(segs, j));
            check_segment(json_at(segs, j), w, w != 8);
        }
    }
    assert_int_equal(chosen_seen, 4);

    /* Import into a new run, export again: the same labels. */
    r = rlhf((const char *const[]){"labels", "import", file_a, job, "--out", run_b, NULL});
    expect_status(&r, 0, "labels import");
    expect_in(r.out, "imported 9 labels", "import");
    result_free(&r);
    r = rlhf((const char *const[]){"labels", "export", run_b, "-o", file_b, NULL});
    expect_status(&r, 0, "labels export of the imported run");
    result_free(&r);
    char *text_b = slurp(file_b);
    int n_b;
    json_t **b = parse_lines(text_b, &n_b);
    assert_int_equal(n_b, n_a);
    for (int i = 0; i < n_a; i++)
        if (!same_json(a[i], b[i])) fail_msg("line %d differs after export -> import -> export:\n%s\n%s", i + 1,
                                            json_serialize(a[i], NULL), json_serialize(b[i], NULL));
    /* The imported run's queries are answered (never asked again), and the
     * query answered twice wants and has two answers. */
    snprintf(db_path, sizeof db_path, "%s/feedback.db", run_b);
    char err[512];
    store_t *s = store_open(db_path, "CartPole-v1", T_SEG, OBS, 1, RDIM, "cartpole", err, sizeof err);
    if (!s) fail_msg("store_open of the imported run: %s", err);
    assert_int_equal(store_query_count(s), 8);
    assert_int_equal(store_label_count(s), 9);
    int twice = 0;
    for (size_t i = 0; i < store_query_count(s); i++) {
        const store_query_t *q = store_query_at(s, i);
        assert_true(q->done);
        twice += q->answers == 2 && q->answers_wanted == 2;
        /* The teacher's answer from the true returns, for the agreement
         * figures: segment i's true reward is 1 + 1e-7 i a step (segment
         * 0's first is 0), so the later segment of every pair wins. */
        if (q->kind == RLHF__QUERY_KIND__QUERY_PAIR) assert_string_equal(q->teacher, "right");
        if (q->kind == RLHF__QUERY_KIND__QUERY_RATING) assert_string_equal(q->teacher, "");
    }
    assert_int_equal(twice, 1);
    store_destroy(&s);

    /* A second import into that run: refused, nothing added. */
    r = rlhf((const char *const[]){"labels", "import", file_a, job, "--out", run_b, NULL});
    expect_status(&r, 1, "a second import");
    expect_in(r.err, "already holds", "second import");
    result_free(&r);
    /* Without a job, and the directory has no config.ini: say so. */
    char run_c[700];
    path_in(run_c, sizeof run_c, "import-c");
    r = rlhf((const char *const[]){"labels", "import", file_a, "--out", run_c, NULL});
    expect_status(&r, 2, "import without a job");
    expect_in(r.err, "no job to check the labels against", "no job");
    result_free(&r);

    free_lines(a, n_a);
    free_lines(b, n_b);
    free(text_a);
    free(text_b);
}

static void expect_import_refused(const char *file, const char *job, const char *tag, const char *why) {
    char dir[700], db_path[800];
    path_in(dir, sizeof dir, tag);
    result_t r = rlhf((const char *const[]){"labels", "import", file, job, "--out", dir, NULL});
    expect_status(&r, 1, tag);
    expect_in(r.err, why, tag);
    result_free(&r);
    snprintf(db_path, sizeof db_path, "%s/feedback.db", dir);
    if (access(db_path, F_OK) == 0) fail_msg("%s: a refused import left %s behind", tag, db_path);
}

static void test_import_refused(void **state) {
    (void)state;
    char run_a[700], file_a[700], job[700], bad[700];
    path_in(run_a, sizeof run_a, "refused-a");
    path_in(file_a, sizeof file_a, "refused-a.jsonl");
    build_run(run_a);
    result_t r = rlhf((const char *const[]){"labels", "export", run_a, "-o", file_a, NULL});
    expect_status(&r, 0, "labels export");
    result_free(&r);

    path_in(job, sizeof job, "pendulum5.ini");
    write_job(job, "Pendulum-v1", T_SEG, "human", 4096);
    expect_import_refused(file_a, job, "refused-env", "the job's env is Pendulum-v1");
    path_in(job, sizeof job, "cartpole10.ini");
    write_job(job, "CartPole-v1", 10, "human", 4096);
    expect_import_refused(file_a, job, "refused-len", "feedback.segment_len is 10");

    /* A malformed line names the file and line; nothing is imported. */
    path_in(job, sizeof job, "cartpole5.ini");
    write_job(job, "CartPole-v1", T_SEG, "human", 4096);
    char *text = slurp(file_a);
    char *second = strchr(text, '\n') + 1;
    size_t keep = (size_t)(second - text);
    path_in(bad, sizeof bad, "bad.jsonl");
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fwrite(text, 1, keep, f);
    fputs("{\"kind\": \"pair\", \"query_id\": \"7\", \"idempotency_id\": \"x\", \"segments\": [}\n", f);
    fclose(f);
    char where[800];
    snprintf(where, sizeof where, "%s:2:", bad);
    expect_import_refused(bad, job, "refused-json", where);
    /* A pair answer that is none of the four. */
    f = fopen(bad, "w");
    assert_non_null(f);
    char *p = strstr(text, "\"preference\":\"left\"");
    assert_non_null(p);
    memcpy(p, "\"preference\":\"west\"", 19);
    fwrite(text, 1, keep, f);
    fclose(f);
    expect_import_refused(bad, job, "refused-pref", "\"left\", \"right\", \"equal\" or \"cant_tell\"");
    free(text);
    spit(bad, "");
    expect_import_refused(bad, job, "refused-empty", "holds no labels");
}

/* ---- rlhf run --feedback human ------------------------------------------------ */

static pid_t run_pid;

static void kill_run(void) {
    if (run_pid > 0) {
        kill(run_pid, SIGTERM);
        for (int i = 0; i < 200 && waitpid(run_pid, NULL, WNOHANG) == 0; i++) usleep(50000);
        kill(run_pid, SIGKILL);
        waitpid(run_pid, NULL, 0);
        run_pid = 0;
    }
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_labels: timed out\n";
    if (run_pid > 0) kill(run_pid, SIGKILL);
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

/* One HTTP request with the token; the parsed JSON body (or NULL) and its
 * status, or status -1 when the server cannot be reached (tolerated: the
 * coordinator's HTTP server goes away when the run ends). */
static json_t *api_try(int port, const char *method, const char *path, const char *token, const char *body,
                       int *status) {
    char hdr[200], err[256], *resp = NULL;
    size_t len = 0;
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", token);
    if (httpc_request("127.0.0.1", port, method, path, hdr, body, body ? strlen(body) : 0, 10000, status, &resp, &len,
                      err, sizeof err) != 0) {
        *status = -1;
        return NULL;
    }
    json_t *doc = json_parse(resp, len, err, sizeof err);
    free(resp);
    return doc;
}

static json_t *api(int port, const char *method, const char *path, const char *token, const char *body, int *status) {
    json_t *doc = api_try(port, method, path, token, body, status);
    if (*status < 0) fail_msg("%s %s: the coordinator's HTTP server cannot be reached", method, path);
    return doc;
}

static double metrics_labels(const char *path) {
    char *text = slurp(path);
    double best = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char err[128];
        json_t *m = json_parse(line, strlen(line), err, sizeof err);
        double v;
        if (json_number(json_get(m, "labels"), &v) == 0 && v > best) best = v;
        json_destroy(&m);
    }
    free(text);
    return best;
}

/* Processes left under us once the run is over: none may be. */
static int children_left(void) {
    pid_t kids[1024];
    return proc_children(getpid(), kids, 1024);
}

/* The run's logs: the coordinator, learner and rollout worker, no scripted
 * labeler, and no sanitizer report in any. */
static void check_logs(const char *dir) {
    char path[900];
    snprintf(path, sizeof path, "%s/logs/labeler-1.log", dir);
    if (access(path, F_OK) == 0) fail_msg("--feedback human started a scripted labeler (%s)", path);
    check_run_logs(dir, (const char *const[]){"coordinator", "learner", "rollout-1", NULL});
}

/* Starts `rlhf run JOB --feedback human` into dir; waits for its token
 * line; returns the port and fills token. */
static int start_human(const char *job, const char *dir, const char *tag, char token[65]) {
    char out_path[800], log_path[800], bin[400];
    snprintf(out_path, sizeof out_path, "%s/%s.stdout", tmp_dir, tag);
    snprintf(log_path, sizeof log_path, "%s/%s.stderr", tmp_dir, tag);
    snprintf(bin, sizeof bin, "%s/bin/rlhf", build_dir);
    run_pid = fork();
    assert_true(run_pid >= 0);
    if (run_pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2);
        execl(bin, bin, "run", job, "--feedback", "human", "--learners", "1", "--rollouts", "1", "--out", dir,
              (char *)NULL);
        _exit(127);
    }
    double end = now_s() + (SANITIZED ? 120 : 40);
    char *out = NULL;
    while (now_s() < end) {
        free(out);
        out = slurp(out_path);
        if (out && strstr(out, "token: ") && strchr(strstr(out, "token: "), '\n')) break;
        if (waitpid(run_pid, NULL, WNOHANG) == run_pid) {
            run_pid = 0;
            char *log = slurp(log_path);
            fail_msg("rlhf run exited before printing a token:\n%s", log ? log : "");
        }
        usleep(50000);
    }
    if (!out || !strstr(out, "token: ")) {
        kill_run();
        fail_msg("no token after the wait; stdout:\n%s", out ? out : "");
    }
    token_from(out, token);
    const char *url = strstr(out, "http://127.0.0.1:");
    if (!url) fail_msg("no labeling URL http://127.0.0.1:PORT/ in:\n%s", out);
    int port = atoi(url + strlen("http://127.0.0.1:"));
    assert_true(port > 0 && port < 65536);
    const char *slash = url + strlen("http://127.0.0.1:");
    while (*slash >= '0' && *slash <= '9') slash++;
    assert_int_equal(*slash, '/');
    free(out);
    return port;
}

/* Ctrl-C (SIGINT to rlhf run, as the terminal sends it) stops everything:
 * exit 130 within a few seconds, no process left. */
static void test_run_human_sigint(void **state) {
    (void)state;
    char job[700], dir[700], token[65];
    path_in(job, sizeof job, "human-long.ini");
    path_in(dir, sizeof dir, "human-sigint");
    write_job(job, "CartPole-v1", 25, "human", 10000000);
    int port = start_human(job, dir, "human-sigint", token);
    /* Mid-run: once the learner has registered (a rank still starting up
     * under mpirun may sit out SIGTERM until the launcher's SIGKILL). */
    int status, learners = 0;
    double until = now_s() + (SANITIZED ? 120 : 40);
    while (learners < 1 && now_s() < until) {
        json_t *doc = api(port, "GET", "/api/stats", token, NULL, &status);
        assert_int_equal(status, 200);
        double v = 0;
        if (json_number(json_get(json_get(doc, "workers"), "learner"), &v) == 0) learners = (int)v;
        json_destroy(&doc);
        if (learners < 1) usleep(100000);
    }
    if (learners < 1) fail_msg("the learner never registered");
    json_t *doc = api(port, "GET", "/api/next", token, NULL, &status);
    assert_int_equal(status, 200);
    json_destroy(&doc);
    double t0 = now_s();
    kill(run_pid, SIGINT);
    int st = 0;
    while (waitpid(run_pid, &st, WNOHANG) == 0 && now_s() - t0 < 30) usleep(20000);
    if (now_s() - t0 >= 30) fail_msg("rlhf run still running 30 s after SIGINT");
    run_pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 128 + SIGINT);
    /* Every process left on SIGTERM: none had to be killed. */
    char log_path[800];
    snprintf(log_path, sizeof log_path, "%s/human-sigint.stderr", tmp_dir);
    char *log = slurp(log_path);
    if (log && strstr(log, "killing them")) fail_msg("processes survived SIGTERM:\n%s", log);
    free(log);
    until = now_s() + 3;
    while (children_left() > 0 && now_s() < until) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        usleep(50000);
    }
    assert_int_equal(children_left(), 0);
    check_logs(dir);
    fprintf(stderr, "rlhf run --feedback human: stopped by SIGINT in %.1f s\n", now_s() - t0);
}

static void test_run_human(void **state) {
    (void)state;
    char job[700], dir[700], metrics[800], log_path[800], token[65];
    path_in(job, sizeof job, "human.ini");
    path_in(dir, sizeof dir, "human-run");
    write_job(job, "CartPole-v1", 25, "human", 4096);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(log_path, sizeof log_path, "%s/human.stderr", tmp_dir);
    int port = start_human(job, dir, "human", token);

    /* The page is served, a wrong token is refused. */
    int status;
    json_t *doc = api(port, "GET", "/api/next", "0000000000000000000000000000000000000000000000000000000000000000",
                      NULL, &status);
    assert_int_equal(status, 401);
    json_destroy(&doc);
    char *page = NULL, err[256];
    size_t plen = 0;
    assert_int_equal(httpc_request("127.0.0.1", port, "GET", "/", NULL, NULL, 0, 10000, &status, &page, &plen, err,
                                   sizeof err), 0);
    assert_int_equal(status, 200);
    assert_true(plen > 100);
    free(page);

    /* Answer every query until the run ends (it needs the labels). */
    int answered = 0, rc = -1;
    unsigned n = 0;
    double end = now_s() + (SANITIZED ? 600 : 150);
    while (now_s() < end) {
        int st;
        if (waitpid(run_pid, &st, WNOHANG) == run_pid) {
            run_pid = 0;
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        doc = api_try(port, "GET", "/api/next", token, NULL, &status);
        if (status != 200) {
            /* The coordinator ends the run and its HTTP server with it. */
            json_destroy(&doc);
            usleep(100000);
            continue;
        }
        const json_t *q = json_get(doc, "query");
        assert_string_equal(json_string(json_get(doc, "labeler")), "human-1");
        if (json_type(q) == JSON_OBJECT) {
            const char *qid = json_string(json_get(q, "id"));
            assert_non_null(qid);
            assert_int_equal(json_size(json_get(q, "segments")), 2);
            long long seg_len = 0;
            assert_int_equal(json_int(json_get(json_at(json_get(q, "segments"), 0), "length"), &seg_len), 0);
            assert_int_equal(seg_len, 25);
            char body[300];
            snprintf(body, sizeof body, "{\"query_id\": \"%s\", \"idempotency_id\": \"test-%u\", \"preference\": \"%s\"}",
                     qid, n, n % 2 ? "left" : "right");
            n++;
            json_t *ack = api_try(port, "POST", "/api/labels", token, body, &status);
            if (status < 0) {   /* the run is ending */
                json_destroy(&doc);
                continue;
            }
            if (status != 200) fail_msg("POST /api/labels: %d %s", status, json_serialize(ack, NULL));
            assert_string_equal(json_string(json_get(ack, "status")), "stored");
            json_destroy(&ack);
            answered++;
        } else {
            usleep(100000);
        }
        json_destroy(&doc);
    }
    if (rc < 0) {
        kill_run();
        char *log = slurp(log_path);
        fail_msg("rlhf run --feedback human did not finish; %d labels answered; its log:\n%s", answered,
                 log ? log : "");
    }
    if (rc != 0) {
        char *log = slurp(log_path);
        fail_msg("rlhf run --feedback human exited %d; its log:\n%s", rc, log ? log : "");
    }
    assert_true(answered > 0);
    check_logs(dir);
    double labels = metrics_labels(metrics);
    if (labels <= 0) fail_msg("%d labels answered over HTTP, but metrics.jsonl shows none reached the learner", answered);
    fprintf(stderr, "rlhf run --feedback human: %d labels over HTTP, the learner counted %.0f\n", answered, labels);
    /* No process left behind (we are a subreaper: orphans come to us). */
    double until = now_s() + 3;
    while (children_left() > 0 && now_s() < until) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        usleep(50000);
    }
    assert_int_equal(children_left(), 0);
}

/* An imported run's learner gets the imported labels first: a run whose
 * budget the import fills learns from them with nobody labeling, every
 * line of its metrics counting them all. */
static void test_import_then_run(void **state) {
    (void)state;
    char run_a[700], file_a[700], job[700], dir[700], metrics[800], token[65];
    path_in(run_a, sizeof run_a, "seed-a");
    path_in(file_a, sizeof file_a, "seed-a.jsonl");
    path_in(job, sizeof job, "seed.ini");
    path_in(dir, sizeof dir, "seeded");
    int kept = build_run(run_a);
    result_t r = rlhf((const char *const[]){"labels", "export", run_a, "-o", file_a, NULL});
    expect_status(&r, 0, "labels export");
    result_free(&r);
    write_job_labels(job, "CartPole-v1", T_SEG, "human", 2048, kept);   /* the budget: what the import brings */
    r = rlhf((const char *const[]){"labels", "import", file_a, job, "--out", dir, NULL});
    expect_status(&r, 0, "labels import");
    result_free(&r);
    start_human(job, dir, "seeded", token);
    int st = 0;
    double t0 = now_s();
    while (waitpid(run_pid, &st, WNOHANG) == 0 && now_s() - t0 < (SANITIZED ? 300 : 90)) usleep(50000);
    if (now_s() - t0 >= (SANITIZED ? 300 : 90)) {
        kill_run();
        fail_msg("the seeded run did not finish");
    }
    run_pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char log[800];
        snprintf(log, sizeof log, "%s/seeded.stderr", tmp_dir);
        char *text = slurp(log);
        fail_msg("the seeded run failed:\n%s", text ? text : "");
    }
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    char *text = slurp(metrics);
    assert_non_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char err[128];
        json_t *m = json_parse(line, strlen(line), err, sizeof err);
        double labels = -1, used = -1;
        json_number(json_get(m, "labels"), &labels);
        json_number(json_get(m, "labels_used"), &used);
        json_destroy(&m);
        if (labels != kept) fail_msg("metrics line %d: labels %.0f, expected the %d imported", lines + 1, labels, kept);
        /* Trained on: every one but the can't-tell answers. */
        if (used < kept - 2) fail_msg("metrics line %d: labels_used %.0f of %d", lines + 1, used, kept);
        lines++;
    }
    free(text);
    assert_true(lines > 0);
    check_logs(dir);
}

static int setup(void **state) {
    (void)state;
    alarm(SANITIZED ? 900 : 300);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    kill_run();
    alarm(0);
    return 0;
}

int main(void) {
    subreaper_main_init("test_labels", on_alarm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labelers_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_human, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_human_sigint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_then_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

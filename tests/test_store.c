/* test_store.c - the SQLite feedback store (store.h): everything recovered
 * after close and reopen (segments with render states, queries with their
 * answer counts, labels with their numbering, leases), idempotency dedupe
 * across a reopen, retraction, query order by id, a database of another run
 * refused, and fault injection: a commit that fails stores nothing, in the
 * file or in memory, and says so; each write's durability (leases and
 * skips synchronous=NORMAL, the rest FULL; no durable write inside a lazy
 * transaction) and skips recovered after a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

#define T 5

static char path[600];

static store_t *open_store(void) {
    char err[512];
    store_t *s = store_open(path, "CartPole-v1", T, 4, 1, 2, "cartpole", err, sizeof err);
    if (!s) fail_msg("store_open: %s", err);
    return s;
}

static uint64_t put_seg(store_t *s, float base, int with_render) {
    float obs[T * 4], act[T], r[T], ren[T * 2];
    uint8_t ab[T] = {0, 0, 0, 1, 1};
    for (int i = 0; i < T * 4; i++) obs[i] = base + (float)i;
    for (int i = 0; i < T; i++) act[i] = (float)(i & 1), r[i] = base;
    for (int i = 0; i < T * 2; i++) ren[i] = base * 10 + (float)i;
    char err[256];
    uint64_t id = store_put_segment(s, obs, act, r, ab, with_render ? ren : NULL, "rollout-1", 3, err, sizeof err);
    if (!id) fail_msg("store_put_segment: %s", err);
    return id;
}

/* store_put_segment's id (0 with err on refusal). */
static uint64_t put_seg_raw(store_t *s, char *err, size_t errlen) {
    float obs[T * 4] = {0}, act[T] = {0}, r[T] = {0};
    uint8_t ab[T] = {0};
    return store_put_segment(s, obs, act, r, ab, NULL, "rollout-1", 3, err, errlen);
}

static Rlhf__Label pair_label(uint64_t qid, const char *idem, Rlhf__Preference p) {
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = qid;
    l.idempotency_id = (char *)idem;
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_PAIR;
    l.has_preference = 1, l.preference = p;
    return l;
}

static int count(store_t *s, const char *sql) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_recovery(void **state) {
    (void)state;
    store_t *s = open_store();
    assert_true(store_persistent(s));
    uint64_t a = put_seg(s, 1, 1), b = put_seg(s, 2, 0);
    assert_int_equal(b, a + 1);
    char err[256];
    store_query_t q = {.kind = RLHF__QUERY_KIND__QUERY_PAIR, .k = 2, .seg_ids = {a, b}, .score = 0.7f,
                       .answers_wanted = 2, .teacher = "right"};
    uint64_t q1 = store_put_query(s, &q, err, sizeof err);
    q.score = 0.1f, q.answers_wanted = 1;
    uint64_t q2 = store_put_query(s, &q, err, sizeof err);
    assert_true(q1 && q2 == q1 + 1);
    store_set_label_base(s, 100);
    assert_int_equal(store_put_lease(s, q1, "alice", 123456789, err, sizeof err), 0);
    assert_int_equal(store_put_lease(s, q1, "bob", 987654321, err, sizeof err), 0);
    Rlhf__Label l = pair_label(q1, "idem-1", RLHF__PREFERENCE__PREF_RIGHT);
    uint64_t id;
    assert_int_equal(store_put_label(s, &l, "alice", 0, 1, 0, &id, err, sizeof err), STORE_STORED);
    assert_int_equal(id, 101);
    assert_int_equal(store_query(s, q1)->answers, 1);
    assert_false(store_query(s, q1)->done);
    l = pair_label(q2, "idem-2", RLHF__PREFERENCE__PREF_EQUAL);
    assert_int_equal(store_put_label(s, &l, "bob", 1, 2, 77, &id, err, sizeof err), STORE_STORED);
    assert_int_equal(id, 102);
    assert_true(store_query(s, q2)->done);
    store_destroy(&s);
    assert_null(s);

    s = open_store();
    assert_int_equal(store_query_count(s), 2);
    const store_query_t *r1 = store_query(s, q1), *r2 = store_query(s, q2);
    assert_non_null(r1);
    assert_int_equal(r1->answers, 1);
    assert_int_equal(r1->answers_wanted, 2);
    assert_false(r1->done);
    assert_string_equal(r1->teacher, "right");
    assert_true(r1->score > 0.69f && r1->score < 0.71f);
    assert_true(r2->done);
    assert_int_equal(r1->seg_ids[1], b);
    Rlhf__Segment seg;
    assert_int_equal(store_segment(s, a, &seg), 0);
    assert_int_equal(seg.n_obs, T * 4);
    assert_true(seg.obs[6] == 7.0f);
    assert_true(seg.absorbing[3] && !seg.absorbing[2]);
    assert_int_equal(seg.render_dim, 2);
    assert_true(seg.render_states[3] == 13.0f);
    assert_null(store_segment_render(s, b));
    assert_int_equal(store_label_count(s), 2);
    store_label_t sl = store_label_at(s, 1);
    assert_int_equal(sl.label->id, 102);
    assert_string_equal(sl.label->labeler_id, "bob");
    assert_string_equal(sl.answer, "equal");
    assert_true(sl.round_done);
    assert_int_equal(sl.answered, 2);
    assert_int_equal(sl.hold_until_us, 77);
    assert_int_equal(store_label_after(s, 101), 1);
    /* Dedupe survives the reopen. */
    l = pair_label(q1, "idem-1", RLHF__PREFERENCE__PREF_LEFT);
    assert_int_equal(store_put_label(s, &l, "carol", 0, 3, 0, &id, err, sizeof err), STORE_DUPLICATE);
    assert_int_equal(id, 101);
    /* The lease of alice ended with her label; bob's is kept. */
    size_t n;
    store_lease_t *ls = store_leases(s, &n);
    assert_int_equal(n, 1);
    assert_string_equal(ls[0].labeler, "bob");
    assert_int_equal(ls[0].deadline_us, 987654321);
    free(ls);
    /* Numbering goes on after the reopen; the base is not moved. */
    store_set_label_base(s, 5000);
    l = pair_label(q1, "idem-3", RLHF__PREFERENCE__PREF_LEFT);
    assert_int_equal(store_put_label(s, &l, "carol", 0, 3, 0, &id, err, sizeof err), STORE_STORED);
    assert_int_equal(id, 103);
    assert_true(store_query(s, q1)->done);
    /* Retraction reopens the query; it survives a reopen too. */
    assert_int_equal(store_retract_label(s, 103, err, sizeof err), 0);
    assert_int_equal(store_retract_label(s, 103, err, sizeof err), -1);
    assert_non_null(strstr(err, "undone already"));
    assert_false(store_query(s, q1)->done);
    uint64_t next_seg = put_seg(s, 3, 0);
    assert_int_equal(next_seg, b + 1);
    store_destroy(&s);
    s = open_store();
    assert_true(store_label_at(s, 2).retracted);
    assert_int_equal(store_query(s, q1)->answers, 1);
    assert_int_equal(count(s, "SELECT COUNT(*) FROM labels WHERE retracted=1"), 1);
    assert_int_equal(count(s, "SELECT COUNT(*) FROM queries WHERE state='open'"), 1);
    store_destroy(&s);
}

/* A commit that fails (the commit hook turns it into a rollback): the label
 * is refused with an error, and neither the file nor the in-memory copy
 * holds it; the next attempt (the labeler's resend) stores it once. */
static void test_fault_injection(void **state) {
    (void)state;
    store_t *s = open_store();
    uint64_t a = put_seg(s, 1, 1), b = put_seg(s, 2, 1);
    char err[256];
    store_query_t q = {.kind = RLHF__QUERY_KIND__QUERY_PAIR, .k = 2, .seg_ids = {a, b}, .answers_wanted = 1};
    uint64_t qid = store_put_query(s, &q, err, sizeof err);
    Rlhf__Label l = pair_label(qid, "fault-1", RLHF__PREFERENCE__PREF_LEFT);
    uint64_t id = 0;
    store_fail_commits(s, 1);
    err[0] = '\0';
    assert_int_equal(store_put_label(s, &l, "alice", 0, 1, 0, &id, err, sizeof err), STORE_FAILED);
    assert_true(err[0] != '\0');
    assert_int_equal(store_label_count(s), 0);
    assert_null(store_find_label(s, "fault-1"));
    assert_false(store_query(s, qid)->done);
    assert_int_equal(count(s, "SELECT COUNT(*) FROM labels"), 0);
    /* A failed round: segments and query rolled back together. */
    store_fail_commits(s, 1);
    assert_int_equal(store_begin(s, err, sizeof err), 0);
    uint64_t c = put_seg(s, 5, 0);
    store_query_t q2 = {.kind = RLHF__QUERY_KIND__QUERY_RATING, .k = 1, .seg_ids = {c}, .answers_wanted = 1};
    assert_true(store_put_query(s, &q2, err, sizeof err) > 0);
    assert_int_equal(store_commit(s, err, sizeof err), -1);
    assert_int_equal(store_query_count(s), 1);
    assert_int_equal(store_segment(s, c, &(Rlhf__Segment){0}), -1);
    assert_int_equal(count(s, "SELECT COUNT(*) FROM segments"), 2);
    /* The resend. */
    assert_int_equal(store_put_label(s, &l, "alice", 0, 1, 0, &id, err, sizeof err), STORE_STORED);
    assert_int_equal(store_put_label(s, &l, "alice", 0, 1, 0, &id, err, sizeof err), STORE_DUPLICATE);
    store_destroy(&s);
    s = open_store();
    assert_int_equal(store_label_count(s), 1);
    assert_int_equal(put_seg(s, 9, 0), b + 1); /* ids of the rolled-back segment are reused: never served */
    store_destroy(&s);
}

/* PRAGMA synchronous as the connection has it now. */
static int sync_level(store_t *s) { return count(s, "PRAGMA synchronous"); }

static void test_durability_and_skips(void **state) {
    (void)state;
    store_t *s = open_store();
    char err[256];
    uint64_t a = put_seg(s, 1, 1), b = put_seg(s, 2, 1);
    assert_int_equal(sync_level(s), 2); /* segments: FULL */
    store_query_t q = {.kind = RLHF__QUERY_KIND__QUERY_PAIR, .k = 2, .seg_ids = {a, b}, .answers_wanted = 2};
    uint64_t q1 = store_put_query(s, &q, err, sizeof err), q2 = store_put_query(s, &q, err, sizeof err);
    assert_true(q1 && q2);
    assert_int_equal(store_put_lease(s, q1, "alice", 1000, err, sizeof err), 0);
    assert_int_equal(sync_level(s), 1); /* a lease: NORMAL */
    Rlhf__Label l = pair_label(q1, "d-1", RLHF__PREFERENCE__PREF_LEFT);
    uint64_t id;
    assert_int_equal(store_put_label(s, &l, "alice", 0, 1, 0, &id, err, sizeof err), STORE_STORED);
    assert_int_equal(sync_level(s), 2); /* a label: FULL again */
    /* A lazy transaction takes leases and skips, and refuses durable writes. */
    assert_int_equal(store_begin_lazy(s, err, sizeof err), 0);
    assert_int_equal(sync_level(s), 1);
    assert_int_equal(store_put_lease(s, q2, "bob", 2000, err, sizeof err), 0);
    assert_int_equal(store_put_skip(s, q1, "bob", err, sizeof err), 0);
    assert_int_equal(store_put_skip(s, q1, "bob", err, sizeof err), 0); /* again: one row */
    err[0] = '\0';
    assert_int_equal(put_seg_raw(s, err, sizeof err), 0);
    assert_non_null(strstr(err, "lazy"));
    l = pair_label(q2, "d-2", RLHF__PREFERENCE__PREF_LEFT);
    assert_int_equal(store_put_label(s, &l, "bob", 0, 1, 0, &id, err, sizeof err), STORE_FAILED);
    assert_null(store_find_label(s, "d-2"));
    assert_int_equal(store_commit(s, err, sizeof err), 0);
    assert_int_equal(store_put_skip(s, q2, "carol", err, sizeof err), 0);
    store_destroy(&s);
    s = open_store();
    size_t n;
    store_lease_t *sk = store_skips(s, &n);
    assert_int_equal(n, 2);
    assert_int_equal(sk[0].query_id, q1);
    assert_string_equal(sk[0].labeler, "bob");
    assert_int_equal(sk[1].query_id, q2);
    assert_string_equal(sk[1].labeler, "carol");
    free(sk);
    store_lease_t *ls = store_leases(s, &n);
    assert_int_equal(n, 1);
    assert_string_equal(ls[0].labeler, "bob");
    free(ls);
    assert_int_equal(store_label_count(s), 1);
    store_destroy(&s);
}

static void test_other_run_refused(void **state) {
    (void)state;
    store_t *s = open_store();
    store_destroy(&s);
    char err[512];
    s = store_open(path, "Pendulum-v1", T, 3, 1, 2, "pendulum", err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "another run"));
    assert_non_null(strstr(err, "env_id"));
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("RLHF_TEST_TMP");
    snprintf(path, sizeof path, "%s/test_store-%d.db", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    mkdir_p(tmp && *tmp ? tmp : "/tmp");
    unlink(path);
    char side[700];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return 0;
}

static int teardown(void **state) {
    setup(state);
    return 0;
}

int main(void) {
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_and_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_run_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

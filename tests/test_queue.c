/* test_queue.c - the human-feedback queue through the coordinator's HTTP
 * API (docs/http-api.md) with real processes: a real rlhf-coordinator and
 * rlhf-rollout worker as child processes, the
 * learner in this process (learnerlink.h + learner.h) and HTTP labelers
 * speaking through httpc.h.
 *
 * Cases: the API's errors (401 without or with a wrong token, 400 naming
 * the field, 404, 405, 413) and static pages; a labeling session (render
 * states in /api/next, every kind of the job's pair+rating+ranking mix
 * answered, a duplicate stored once, undo inside the window and the query
 * leased again to the same labeler, undo across a coordinator crash, skip,
 * recent, stats with the people counted as labelers, metrics, a skip
 * that survives a crash) whose
 * labels reach the learner; redundancy (k distinct labelers, agreement),
 * the bounded queue, and a label whose commit fails (injected) refused
 * with 503 and stored once when resent; and the crash test: while an HTTP
 * labeler and a ZeroMQ labeler (both in this process, resending until
 * acknowledged) label, the coordinator is killed with SIGKILL 20 times at
 * random moments, half of them 0-4 ms into an HTTP POST of a label, and
 * restarted on the same OUT; after each restart every label acknowledged
 * (HTTP 200 or LabelAck) is in feedback.db exactly once under the id it
 * was acknowledged with, and the learner gets every stored label exactly
 * once.
 *
 * Children join one process group, killed as a whole by the teardown, an
 * alarm or a failed assertion; every wait is bounded. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "codec.h"
#include "harness.h"
#include "httpc.h"
#include "job.h"
#include "json.h"
#include "labelers.h"
#include "learner.h"
#include "learnerlink.h"
#include "peer.h"
#include "transport.h"
#include "util.h"
#include "wire.h"

/* ---- the learner, in this process -------------------------------------------- */

#define MAX_LEARNED 8192
static uint64_t learned[MAX_LEARNED];   /* label ids the learner took, this case */
static size_t n_learned;

/* The learner side gets each label once (tl_on_label, set by main). */
static void learned_once(const learnerlink_label_t *lb) {
    for (size_t i = 0; i < n_learned; i++)
        if (learned[i] == lb->label_id) fail_msg("the learner got label %" PRIu64 " twice", lb->label_id);
    if (n_learned < MAX_LEARNED) learned[n_learned++] = lb->label_id;
}

/* The coordinator's registered rollout workers and labelers, by a Status
 * request (0, 0 while the learner is not registered or no answer came). */
static void peers_now(tlearner_t *t, uint64_t *nr, uint64_t *nl) {
    *nr = *nl = 0;
    if (!learnerlink_registered(t->ll)) return;
    uint64_t before = learnerlink_status_count(t->ll);
    learnerlink_request_status(t->ll);
    double until = now_s() + 1;
    while (learnerlink_status_count(t->ll) == before && now_s() < until) tl_step(t, 10);
    if (learnerlink_counter(t->ll, "peers.rollout", nr) != 0 || learnerlink_counter(t->ll, "peers.labeler", nl) != 0)
        *nr = *nl = 0;
}

/* ---- HTTP --------------------------------------------------------------------- */

typedef struct {
    int port;
    char token[LABELER_TOKEN_LEN + 1];
    char auth[128];
} hl_t; /* an HTTP labeler */

static void hl_init(hl_t *h, int port, const char *db, const char *name) {
    memset(h, 0, sizeof *h);
    h->port = port;
    char err[512];
    if (labelers_add(db, name, h->token, err, sizeof err) != 0) fail_msg("labelers_add: %s", err);
    snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %s\r\n", h->token);
}

/* One request; returns the status (-1: no answer, e.g. the coordinator is
 * down) and the parsed JSON body in *doc (NULL when not JSON). */
static int call(const hl_t *h, const char *method, const char *path, const char *headers, const char *body,
                json_t **doc, char **raw) {
    int status = 0;
    char *resp = NULL, err[256];
    size_t len = 0;
    if (doc) *doc = NULL;
    if (raw) *raw = NULL;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "%s%s", headers ? headers : "", body ? "Content-Type: application/json\r\n" : "");
    if (httpc_request("127.0.0.1", h->port, method, path, hdr, body, body ? strlen(body) : 0, 3000, &status, &resp,
                      &len, err, sizeof err) != 0)
        return -1;
    if (doc) *doc = json_parse(resp, len, NULL, 0);
    if (raw) *raw = resp;
    else free(resp);
    return status;
}

static int api(const hl_t *h, const char *method, const char *path, const char *body, json_t **doc) {
    return call(h, method, path, h->auth, body, doc, NULL);
}

static const char *error_of(const json_t *doc) { return json_string(json_get(doc, "error")); }

static void expect_error(const hl_t *h, const char *method, const char *path, const char *headers, const char *body,
                         int want, const char *needle) {
    json_t *doc;
    int st = call(h, method, path, headers, body, &doc, NULL);
    if (st != want || !error_of(doc) || !strstr(error_of(doc), needle))
        fail_msg("%s %s: status %d, error '%s'; expected %d with '%s'", method, path, st,
                 error_of(doc) ? error_of(doc) : "(none)", want, needle);
    json_destroy(&doc);
}

/* The answer body for a query of /api/next (a pair: left; a rating: 4; a
 * ranking: 0..k-1), with an idempotency id. */
static void answer_for(const json_t *q, const char *idem, char *body, size_t n) {
    const char *kind = json_string(json_get(q, "kind")), *id = json_string(json_get(q, "id"));
    if (strcmp(kind, "pair") == 0)
        snprintf(body, n, "{\"query_id\":\"%s\",\"idempotency_id\":\"%s\",\"preference\":\"left\",\"time_spent_ms\":1200}",
                 id, idem);
    else if (strcmp(kind, "rating") == 0)
        snprintf(body, n, "{\"query_id\":\"%s\",\"idempotency_id\":\"%s\",\"rating\":4}", id, idem);
    else {
        size_t k = json_size(json_get(q, "segments"));
        int m = snprintf(body, n, "{\"query_id\":\"%s\",\"idempotency_id\":\"%s\",\"ranking\":[", id, idem);
        for (size_t j = 0; j < k; j++) m += snprintf(body + m, n - (size_t)m, "%s%zu", j ? "," : "", j);
        snprintf(body + m, n - (size_t)m, "]}");
    }
}

static int db_count(const char *db, const char *sql, const char *arg) {
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static void http_job(cluster_t *cl, const char *name, int port, long long steps, int labels, const char *more) {
    char extra[1024];
    snprintf(extra, sizeof extra, "[coordinator]\nhttp_port = %d\nheartbeat_ms = 200\nlease_ms = 4000\n%s", port,
             more ? more : "");
    cluster_job(cl, name, steps, labels, extra);
}

/* ---- cases -------------------------------------------------------------------- */

static void test_api_errors(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "api");
    int port = free_port();
    http_job(&cl, "api", port, 100000, 20, NULL);
    char db[700];
    snprintf(db, sizeof db, "%s/feedback.db", cl.out);
    mkdir_p(cl.out);
    hl_t h;
    hl_init(&h, port, db, "alice");
    child_t *co = start_coordinator(&cl, "coordinator");
    json_t *doc = NULL;
    double end = now_s() + 10;
    int st;
    while ((st = call(&h, "GET", "/metrics", NULL, NULL, NULL, NULL)) != 200 && now_s() < end) usleep(20000);
    if (st != 200) {
        dump_logs();
        fail_msg("the coordinator's HTTP server did not answer within 10 s");
    }
    expect_error(&h, "GET", "/api/next", NULL, NULL, 401, "no token");
    expect_error(&h, "GET", "/api/next", "Authorization: Bearer 00112233\r\n", NULL, 401, "unknown or disabled token");
    char bad[200];
    snprintf(bad, sizeof bad, "Authorization: Bearer %064d\r\n", 7);
    expect_error(&h, "GET", "/api/stats", bad, NULL, 401, "unknown or disabled token");
    /* Authenticated. */
    assert_int_equal(api(&h, "GET", "/api/next", NULL, &doc), 200);
    assert_int_equal(json_type(json_get(doc, "query")), JSON_NULL);
    assert_string_equal(json_string(json_get(doc, "labeler")), "alice");
    json_destroy(&doc);
    expect_error(&h, "POST", "/api/labels", h.auth, "{\"query_id\": ", 400, "body is not JSON");
    expect_error(&h, "POST", "/api/labels", h.auth, "[1,2]", 400, "JSON object");
    expect_error(&h, "POST", "/api/labels", h.auth, "{}", 400, "query_id");
    expect_error(&h, "POST", "/api/labels", h.auth, "{\"query_id\":\"12x\"}", 400, "query_id");
    expect_error(&h, "POST", "/api/labels", h.auth, "{\"query_id\":\"12\"}", 400, "idempotency_id");
    expect_error(&h, "POST", "/api/labels", h.auth,
                 "{\"query_id\":\"12\",\"idempotency_id\":\"a\",\"preference\":\"left\"}", 404, "no such query 12");
    expect_error(&h, "POST", "/api/skip", h.auth, "{\"query_id\":\"99\"}", 404, "no such query");
    expect_error(&h, "POST", "/api/undo", h.auth, "{\"label_id\":\"5\"}", 404, "no label 5 of yours");
    expect_error(&h, "POST", "/api/undo", h.auth, "{\"label_id\":true}", 400, "label_id");
    expect_error(&h, "GET", "/api/labels", h.auth, NULL, 405, "takes POST");
    expect_error(&h, "POST", "/api/next", h.auth, "{}", 405, "takes GET");
    expect_error(&h, "GET", "/api/nothing", h.auth, NULL, 404, "no such API call");
    expect_error(&h, "GET", "/no-such-page.html", NULL, NULL, 404, "no such page");
    char *big = malloc(HTTPC_MAX_RESPONSE / 256);
    size_t bn = 70 * 1024;
    memset(big, ' ', bn);
    big[0] = '{', big[bn - 1] = '}', big[bn] = '\0';
    expect_error(&h, "POST", "/api/labels", h.auth, big, 413, "larger than");
    free(big);
    /* The pages and the metrics need no token. */
    char *raw = NULL;
    assert_int_equal(call(&h, "GET", "/", NULL, NULL, NULL, &raw), 200);
    assert_non_null(strstr(raw, "<html") ? raw : strstr(raw, "<!DOCTYPE") ? raw : strstr(raw, "<!doctype"));
    free(raw);
    assert_int_equal(call(&h, "GET", "/metrics", NULL, NULL, NULL, &raw), 200);
    assert_non_null(strstr(raw, "rlhf_queue_depth 0"));
    assert_non_null(strstr(raw, "rlhf_workers{kind=\"learner\"} 0"));
    free(raw);
    assert_int_equal(api(&h, "GET", "/api/stats", NULL, &doc), 200);
    assert_int_equal(json_size(json_get(doc, "labelers")), 1);
    assert_string_equal(json_string(json_get(json_at(json_get(doc, "labelers"), 0), "name")), "alice");
    assert_int_equal(json_type(json_get(json_get(doc, "curves"), "true_return")), JSON_ARRAY);
    json_destroy(&doc);
    kill(co->pid, SIGTERM);
    assert_true(wait_exit(co, 10));
    assert_true(exited_with(co, 0));
    /* HTTP without --out is refused (no durable store). */
    char *argv[] = {cl.bin_coord, cl.job, "--bind", cl.endpoint, NULL};
    child_t *c2 = spawn("coordinator-no-out", argv);
    assert_true(wait_exit(c2, 10));
    assert_true(exited_with(c2, 1));
    assert_true(log_has(c2, "no --out"));
    stop_group();
}

static void test_label_session(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "session");
    int port = free_port();
    http_job(&cl, "session", port, 40000, 12, "[feedback]\nundo_s = 3\n");
    char db[700];
    snprintf(db, sizeof db, "%s/feedback.db", cl.out);
    mkdir_p(cl.out);
    hl_t h, h2;
    hl_init(&h, port, db, "alice");
    hl_init(&h2, port, db, "bob");
    child_t *co = start_coordinator(&cl, "coordinator");
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    start_rollout(&cl, "r1", NULL, NULL);
    json_t *doc = NULL;
    /* The first query (the initial round, once episodes have ended). */
    const json_t *q = NULL;
    double end = now_s() + 30;
    while (now_s() < end) {
        tl_step(&t, 10);
        json_destroy(&doc);
        assert_int_equal(api(&h, "GET", "/api/next", NULL, &doc), 200);
        q = json_get(doc, "query");
        if (json_type(q) == JSON_OBJECT) break;
    }
    if (json_type(q) != JSON_OBJECT) {
        dump_logs();
        fail_msg("no query over HTTP within 30 s");
    }
    /* Render states: one frame of render_dim numbers per step of each segment. */
    assert_string_equal(json_string(json_get(q, "render_kind")), "cartpole");
    long long rd = 0;
    assert_int_equal(json_int(json_get(q, "render_dim"), &rd), 0);
    assert_int_equal(rd, 2);
    const json_t *seg0 = json_at(json_get(q, "segments"), 0);
    assert_int_equal(json_type(json_get(seg0, "render_states")), JSON_ARRAY);
    assert_int_equal(json_size(json_get(seg0, "render_states")), 15);
    assert_int_equal(json_size(json_at(json_get(seg0, "render_states"), 0)), 2);
    /* The same labeler asking again gets the same query. */
    char qid[32];
    snprintf(qid, sizeof qid, "%s", json_string(json_get(q, "id")));
    json_t *again;
    assert_int_equal(api(&h, "GET", "/api/next", NULL, &again), 200);
    assert_string_equal(json_string(json_get(json_get(again, "query"), "id")), qid);
    json_destroy(&again);
    /* A wrong kind is refused naming the field. */
    const char *kind = json_string(json_get(q, "kind"));
    char body[512];
    if (strcmp(kind, "rating") != 0) {
        snprintf(body, sizeof body, "{\"query_id\":\"%s\",\"idempotency_id\":\"w1\",\"rating\":3}", qid);
        expect_error(&h, "POST", "/api/labels", h.auth, body, 400, "rating: query");
    } else {
        snprintf(body, sizeof body, "{\"query_id\":\"%s\",\"idempotency_id\":\"w1\",\"preference\":\"left\"}", qid);
        expect_error(&h, "POST", "/api/labels", h.auth, body, 400, "preference: query");
        snprintf(body, sizeof body, "{\"query_id\":\"%s\",\"idempotency_id\":\"w1\",\"rating\":9}", qid);
        expect_error(&h, "POST", "/api/labels", h.auth, body, 400, "rating: expected a whole number from 1 to 7");
    }
    /* Answer, twice with the same idempotency id: stored once. */
    answer_for(q, "s-1", body, sizeof body);
    json_t *r1, *r2;
    assert_int_equal(api(&h, "POST", "/api/labels", body, &r1), 200);
    assert_string_equal(json_string(json_get(r1, "status")), "stored");
    assert_int_equal(api(&h, "POST", "/api/labels", body, &r2), 200);
    assert_string_equal(json_string(json_get(r2, "status")), "duplicate");
    assert_string_equal(json_string(json_get(r1, "label_id")), json_string(json_get(r2, "label_id")));
    char lid[32];
    snprintf(lid, sizeof lid, "%s", json_string(json_get(r1, "label_id")));
    json_destroy(&r1);
    json_destroy(&r2);
    assert_int_equal(db_count(db, "SELECT COUNT(*) FROM labels WHERE idempotency_id='s-1' AND labeler='alice'", NULL),
                     1);
    /* Recent shows it, undoable. */
    assert_int_equal(api(&h, "GET", "/api/recent", NULL, &r1), 200);
    const json_t *rec = json_at(json_get(r1, "labels"), 0);
    assert_string_equal(json_string(json_get(rec, "label_id")), lid);
    int undoable = 0;
    assert_int_equal(json_bool(json_get(rec, "undoable"), &undoable), 0);
    assert_true(undoable);
    json_destroy(&r1);
    /* Undo: the same query comes back to the same labeler. */
    snprintf(body, sizeof body, "{\"label_id\":\"%s\"}", lid);
    assert_int_equal(api(&h, "POST", "/api/undo", body, &r1), 200);
    assert_string_equal(json_string(json_get(r1, "status")), "undone");
    assert_string_equal(json_string(json_get(r1, "query_id")), qid);
    json_destroy(&r1);
    expect_error(&h, "POST", "/api/undo", h.auth, body, 409, "undone already");
    assert_int_equal(api(&h, "GET", "/api/next", NULL, &r1), 200);
    assert_string_equal(json_string(json_get(json_get(r1, "query"), "id")), qid);
    json_destroy(&r1);
    /* bob does not get alice's leased query. */
    assert_int_equal(api(&h2, "GET", "/api/next", NULL, &r1), 200);
    if (json_type(json_get(r1, "query")) == JSON_OBJECT)
        assert_string_not_equal(json_string(json_get(json_get(r1, "query"), "id")), qid);
    /* bob skips what he got: released, not offered to him again. */
    char bq[32] = "";
    if (json_type(json_get(r1, "query")) == JSON_OBJECT) {
        snprintf(bq, sizeof bq, "%s", json_string(json_get(json_get(r1, "query"), "id")));
        snprintf(body, sizeof body, "{\"query_id\":\"%s\"}", bq);
        json_t *sk;
        assert_int_equal(api(&h2, "POST", "/api/skip", body, &sk), 200);
        assert_string_equal(json_string(json_get(sk, "status")), "skipped");
        json_destroy(&sk);
        json_t *n2;
        assert_int_equal(api(&h2, "GET", "/api/next", NULL, &n2), 200);
        if (json_type(json_get(n2, "query")) == JSON_OBJECT)
            assert_string_not_equal(json_string(json_get(json_get(n2, "query"), "id")), bq);
        json_destroy(&n2);
    }
    json_destroy(&r1);
    /* Answer again (a new id), then label everything offered until the
     * learner has 8 answers: every kind of the mix, through the learner. */
    answer_for(q, "s-2", body, sizeof body);
    assert_int_equal(api(&h, "POST", "/api/labels", body, &r1), 200);
    snprintf(lid, sizeof lid, "%s", json_string(json_get(r1, "label_id")));
    json_destroy(&r1);
    /* The undo window survives a crash: SIGKILL, restart on the same OUT,
     * undo (the query, recovered as done, reopens) and answer again. */
    assert_int_equal(kill(co->pid, SIGKILL), 0);
    assert_true(wait_exit(co, 5));
    co = start_coordinator(&cl, "coordinator-2");
    snprintf(body, sizeof body, "{\"label_id\":\"%s\"}", lid);
    int ust = -1;
    end = now_s() + 5;
    while (now_s() < end && (ust = api(&h, "POST", "/api/undo", body, &r1)) < 0) usleep(20000);
    if (ust != 200) fail_msg("undo after the restart: %d %s", ust, error_of(r1) ? error_of(r1) : "");
    json_destroy(&r1);
    assert_int_equal(api(&h, "GET", "/api/next", NULL, &r1), 200);
    assert_string_equal(json_string(json_get(json_get(r1, "query"), "id")), qid);
    json_destroy(&r1);
    answer_for(q, "s-2b", body, sizeof body);
    assert_int_equal(api(&h, "POST", "/api/labels", body, &r1), 200);
    assert_string_equal(json_string(json_get(r1, "status")), "stored");
    snprintf(lid, sizeof lid, "%s", json_string(json_get(r1, "label_id")));
    json_destroy(&r1);
    assert_int_equal(db_count(db, "SELECT COUNT(*) FROM labels WHERE idempotency_id IN ('s-1','s-2') AND retracted=1",
                              NULL), 2);
    /* bob's skip survived the crash: walking through every query offered
     * to him now (skipping each), he is never offered bq again. */
    if (bq[0]) {
        assert_int_equal(db_count(db, "SELECT COUNT(*) FROM skips WHERE labeler='bob'", NULL), 1);
        for (int i = 0; i < 50; i++) {
            json_t *w;
            assert_int_equal(api(&h2, "GET", "/api/next", NULL, &w), 200);
            const json_t *wq = json_get(w, "query");
            if (json_type(wq) != JSON_OBJECT) {
                json_destroy(&w);
                break;
            }
            const char *wid = json_string(json_get(wq, "id"));
            if (strcmp(wid, bq) == 0) fail_msg("query %s, skipped by bob before the restart, offered to him again", bq);
            snprintf(body, sizeof body, "{\"query_id\":\"%s\"}", wid);
            json_destroy(&w);
            assert_int_equal(api(&h2, "POST", "/api/skip", body, &w), 200);
            json_destroy(&w);
        }
    }
    int kinds_seen[3] = {0}, n = 2, want = 8, turn = 0;
    end = now_s() + 60;
    while (t.answers < want && now_s() < end) {
        tl_step(&t, 10);
        json_t *nx;
        hl_t *who = turn++ % 2 ? &h2 : &h; /* by turns: one with nothing to do does not hold up the other */
        if (api(who, "GET", "/api/next", NULL, &nx) != 200) fail_msg("GET /api/next failed");
        const json_t *nq = json_get(nx, "query");
        if (json_type(nq) == JSON_OBJECT) {
            const char *k = json_string(json_get(nq, "kind"));
            kinds_seen[strcmp(k, "pair") == 0 ? 0 : strcmp(k, "rating") == 0 ? 1 : 2]++;
            char idem[32];
            snprintf(idem, sizeof idem, "s-%d", ++n);
            answer_for(nq, idem, body, sizeof body);
            json_t *ar;
            int st = api(who, "POST", "/api/labels", body, &ar);
            if (st != 200) fail_msg("POST /api/labels: %d %s", st, error_of(ar) ? error_of(ar) : "");
            json_destroy(&ar);
        }
        json_destroy(&nx);
    }
    if (t.answers < want) {
        dump_logs();
        fail_msg("the learner got %d answers of %d within 60 s", t.answers, want);
    }
    print_message("kinds answered: pair %d, rating %d, ranking %d; learner answers %d\n", kinds_seen[0], kinds_seen[1],
                  kinds_seen[2], t.answers);
    assert_true(kinds_seen[0] + kinds_seen[1] + kinds_seen[2] >= 5);
    /* The undo window is over for the first label: 409. */
    snprintf(body, sizeof body, "{\"label_id\":\"%s\"}", lid);
    end = now_s() + 8;
    while (now_s() < end && api(&h, "POST", "/api/undo", body, &r1) != 409) json_destroy(&r1), usleep(100000);
    json_destroy(&r1);
    expect_error(&h, "POST", "/api/undo", h.auth, body, 409, "undo window");
    /* Stats and metrics see the labels. */
    assert_int_equal(api(&h, "GET", "/api/stats", NULL, &r1), 200);
    long long total = 0, mine = 0;
    assert_int_equal(json_int(json_get(r1, "labels_total"), &total), 0);
    assert_int_equal(json_int(json_get(r1, "my_labels"), &mine), 0);
    assert_true(total >= want && mine >= 1);
    long long learners = 0;
    assert_int_equal(json_int(json_get(json_get(r1, "workers"), "learner"), &learners), 0);
    assert_int_equal(learners, 1);
    /* People count as labelers: alice and bob called the API this minute
     * (no ZeroMQ labeler in this run). */
    long long labelers = 0, web = 0;
    assert_int_equal(json_int(json_get(json_get(r1, "workers"), "labeler"), &labelers), 0);
    assert_int_equal(json_int(json_get(json_get(r1, "workers"), "web_labeler"), &web), 0);
    assert_int_equal(labelers, 2);
    assert_int_equal(web, 2);
    json_destroy(&r1);
    char *raw;
    assert_int_equal(call(&h, "GET", "/metrics", NULL, NULL, NULL, &raw), 200);
    char needle[64];
    snprintf(needle, sizeof needle, "rlhf_labels_total %lld", total);
    assert_non_null(strstr(raw, needle));
    assert_non_null(strstr(raw, "rlhf_policy_lag_count"));
    assert_non_null(strstr(raw, "rlhf_workers{kind=\"labeler\"} 2\n"));
    assert_non_null(strstr(raw, "rlhf_web_labelers 2\n"));
    free(raw);
    json_destroy(&doc);
    uint64_t nr = 0, nl = 0; /* the rollout worker back from the restart, to hear the Shutdown */
    end = now_s() + 20;
    while (now_s() < end && nr != 1) {
        tl_step(&t, 10);
        peers_now(&t, &nr, &nl);
    }
    assert_int_equal(nr, 1);
    finish_run(&t, 1);
    stop_group();
}

/* Redundancy 2: the same query goes to two distinct labelers (a third gets
 * another one), is done after both answers, and /api/stats has their
 * agreement. queue_max 3: never more than 3 open queries; the schedule
 * waits (counted in the metrics). */
static void test_redundancy_and_bound(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "redundancy");
    int port = free_port();
    http_job(&cl, "redundancy", port, 40000, 20,
             "queue_max = 3\n[feedback]\nundo_s = 0\nredundancy = 2\nquery = pair\nselect = random\n");
    char db[700];
    snprintf(db, sizeof db, "%s/feedback.db", cl.out);
    mkdir_p(cl.out);
    hl_t a, b, c;
    hl_init(&a, port, db, "alice");
    hl_init(&b, port, db, "bob");
    hl_init(&c, port, db, "carol");
    setenv("RLHF_FAULT_LABEL_COMMITS", "1", 1); /* the first label's commit fails */
    child_t *co = start_coordinator(&cl, "coordinator");
    unsetenv("RLHF_FAULT_LABEL_COMMITS");
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    start_rollout(&cl, "r1", NULL, NULL);
    json_t *da = NULL, *db_ = NULL, *dc = NULL;
    double end = now_s() + 30;
    while (now_s() < end) {
        tl_step(&t, 10);
        json_destroy(&da);
        assert_int_equal(api(&a, "GET", "/api/next", NULL, &da), 200);
        if (json_type(json_get(da, "query")) == JSON_OBJECT) break;
    }
    if (json_type(json_get(da, "query")) != JSON_OBJECT) {
        dump_logs();
        fail_msg("no query within 30 s");
    }
    const char *qa = json_string(json_get(json_get(da, "query"), "id"));
    assert_int_equal(api(&b, "GET", "/api/next", NULL, &db_), 200);
    assert_string_equal(json_string(json_get(json_get(db_, "query"), "id")), qa);
    assert_int_equal(api(&c, "GET", "/api/next", NULL, &dc), 200);
    if (json_type(json_get(dc, "query")) == JSON_OBJECT)
        assert_string_not_equal(json_string(json_get(json_get(dc, "query"), "id")), qa);
    char body[512];
    answer_for(json_get(da, "query"), "r-a", body, sizeof body);
    json_t *r;
    /* The failed commit: no acknowledgement (503 with the reason), nothing stored. */
    expect_error(&a, "POST", "/api/labels", a.auth, body, 503, "could not be stored");
    assert_int_equal(db_count(db, "SELECT COUNT(*) FROM labels", NULL), 0);
    /* The resend is stored, once. */
    assert_int_equal(api(&a, "POST", "/api/labels", body, &r), 200);
    assert_string_equal(json_string(json_get(r, "status")), "stored");
    json_destroy(&r);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM queries WHERE id=%s AND state='open' AND answers=1", qa);
    assert_int_equal(db_count(db, sql, NULL), 1);
    /* alice is not asked the same query again. */
    json_t *again;
    assert_int_equal(api(&a, "GET", "/api/next", NULL, &again), 200);
    if (json_type(json_get(again, "query")) == JSON_OBJECT)
        assert_string_not_equal(json_string(json_get(json_get(again, "query"), "id")), qa);
    json_destroy(&again);
    answer_for(json_get(db_, "query"), "r-b", body, sizeof body);
    assert_int_equal(api(&b, "POST", "/api/labels", body, &r), 200);
    json_destroy(&r);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM queries WHERE id=%s AND state='done' AND answers=2", qa);
    assert_int_equal(db_count(db, sql, NULL), 1);
    /* A third answer to a done query: 409. */
    answer_for(json_get(da, "query"), "r-c", body, sizeof body);
    expect_error(&c, "POST", "/api/labels", c.auth, body, 409, "answered already");
    /* The bound: the schedule waited, never more than 3 open. */
    char *raw = NULL;
    end = now_s() + 10;
    while (now_s() < end) {
        tl_step(&t, 10);
        free(raw);
        assert_int_equal(call(&a, "GET", "/metrics", NULL, NULL, NULL, &raw), 200);
        if (!strstr(raw, "rlhf_coord_queries_waited 0")) break;
    }
    assert_non_null(strstr(raw, "rlhf_coord_queries_waited "));
    assert_null(strstr(raw, "rlhf_coord_queries_waited 0\n"));
    free(raw);
    assert_true(db_count(db, "SELECT COUNT(*) FROM queries WHERE state='open'", NULL) <= 3);
    /* A lease survives a crash: after SIGKILL and a restart on the same
     * OUT, carol is handed the query she held. */
    json_t *held = NULL;
    assert_int_equal(api(&c, "GET", "/api/next", NULL, &held), 200);
    if (json_type(json_get(held, "query")) == JSON_OBJECT) {
        char hq[32];
        snprintf(hq, sizeof hq, "%s", json_string(json_get(json_get(held, "query"), "id")));
        assert_int_equal(kill(co->pid, SIGKILL), 0);
        assert_true(wait_exit(co, 5));
        co = start_coordinator(&cl, "coordinator-2");
        json_t *after = NULL;
        int st2 = -1;
        end = now_s() + 10;
        while (now_s() < end && (st2 = api(&c, "GET", "/api/next", NULL, &after)) != 200) {
            json_destroy(&after);
            tl_step(&t, 20);
        }
        assert_int_equal(st2, 200);
        assert_string_equal(json_string(json_get(json_get(after, "query"), "id")), hq);
        json_destroy(&after);
        /* The rollout worker back too, so it hears the Shutdown at the end. */
        uint64_t nr = 0, nl = 0;
        end = now_s() + 20;
        while (now_s() < end && nr != 1) {
            tl_step(&t, 10);
            peers_now(&t, &nr, &nl);
        }
        assert_int_equal(nr, 1);
    } else {
        fail_msg("carol got no query to hold across the restart");
    }
    json_destroy(&held);
    /* Agreement: both said the same of qa. */
    json_t *st;
    assert_int_equal(api(&a, "GET", "/api/stats", NULL, &st), 200);
    const json_t *ls = json_get(st, "labelers");
    int found = 0;
    for (size_t i = 0; i < json_size(ls); i++) {
        const json_t *l = json_at(ls, i);
        if (strcmp(json_string(json_get(l, "name")), "alice") != 0) continue;
        double maj = -1, tea = -1;
        assert_int_equal(json_number(json_get(l, "agreement_majority"), &maj), 0);
        assert_true(maj == 1.0);
        assert_int_equal(json_number(json_get(l, "agreement_teacher"), &tea), 0);
        assert_true(tea == 0.0 || tea == 1.0);
        found = 1;
    }
    assert_true(found);
    json_destroy(&st);
    json_destroy(&da);
    json_destroy(&db_);
    json_destroy(&dc);
    finish_run(&t, 1);
    stop_group();
}

/* ---- the crash test --------------------------------------------------------------- */

/* A ZeroMQ labeler in this process (peer.h), so the test sees its LabelAcks:
 * it answers each query it gets and sends the label again (same
 * idempotency id) every 300 ms until acknowledged. */
typedef struct {
    peer_t *p;
    int busy;                   /* a label waiting for its ack */
    uint64_t qid;
    Rlhf__QueryKind kind;
    size_t k;
    char idem[40];
    double resend_at;
    int n;
} zl_t;

static void zl_register(Rlhf__Register *r, void *arg) {
    (void)arg;
    static Rlhf__QueryKind kinds[] = {RLHF__QUERY_KIND__QUERY_PAIR, RLHF__QUERY_KIND__QUERY_RATING,
                                      RLHF__QUERY_KIND__QUERY_RANKING};
    r->caps->n_query_kinds = 3, r->caps->query_kinds = kinds;
}

static void zl_send(zl_t *z) {
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = z->qid;
    l.labeler_id = "zlab";
    l.idempotency_id = z->idem;
    l.has_kind = 1, l.kind = z->kind;
    uint32_t rank[WIRE_MAX_RANK_K];
    if (z->kind == RLHF__QUERY_KIND__QUERY_PAIR) l.has_preference = 1, l.preference = RLHF__PREFERENCE__PREF_RIGHT;
    if (z->kind == RLHF__QUERY_KIND__QUERY_RATING) l.has_rating = 1, l.rating = 2;
    if (z->kind == RLHF__QUERY_KIND__QUERY_RANKING) {
        for (size_t j = 0; j < z->k; j++) rank[j] = (uint32_t)(z->k - 1 - j);
        l.n_ranking = z->k, l.ranking = rank;
    }
    Rlhf__Envelope env;
    peer_envelope(z->p, &env);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = &l;
    peer_send(z->p, &env); /* not registered (a restart): the resend timer tries again */
    z->resend_at = now_s() + 0.3;
}

#define MAX_ACKED 16384

typedef struct {
    char idem[40];
    long long label_id;
} acked_t;

/* The first acknowledged label that is not in db exactly once under the id
 * it was acknowledged with, or -1 when all are (one connection for all). */
static int first_missing(const char *db, const acked_t *acked, int n) {
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM labels WHERE idempotency_id=? AND id=?", -1, &st, NULL),
                     SQLITE_OK);
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++) {
        sqlite3_bind_text(st, 1, acked[i].idem, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, acked[i].label_id);
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) bad = i;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return bad;
}

/* One turn of the ZeroMQ labeler; an acknowledged label goes into acked. */
static void zl_step(zl_t *z, acked_t *acked, int *n_acked, const char *db) {
    Rlhf__Envelope *env = NULL;
    if (peer_poll(z->p, 0, &env) < 0) fail_msg("zlab: %s", peer_error(z->p));
    if (env && env->body_case == RLHF__ENVELOPE__BODY_QUERY && !z->busy) {
        z->busy = 1;
        z->qid = env->query->id;
        z->kind = env->query->kind;
        z->k = env->query->n_segment_ids;
        snprintf(z->idem, sizeof z->idem, "z-%d", ++z->n);
        z->resend_at = now_s() + 0.02; /* it thinks a little, like the HTTP labeler's round trips */
    } else if (env && env->body_case == RLHF__ENVELOPE__BODY_LABEL_ACK && z->busy &&
               strcmp(env->label_ack->idempotency_id, z->idem) == 0) {
        Rlhf__AckStatus st = env->label_ack->status;
        if (st == RLHF__ACK_STATUS__ACK_STORED || st == RLHF__ACK_STATUS__ACK_DUPLICATE) {
            assert_true(*n_acked < MAX_ACKED);
            snprintf(acked[*n_acked].idem, sizeof acked[*n_acked].idem, "%s", z->idem);
            acked[(*n_acked)++].label_id = (long long)env->label_ack->label_id;
        } else {
            /* Refused (answered by another labeler first): never stored. */
            assert_int_equal(db_count(db, "SELECT COUNT(*) FROM labels WHERE idempotency_id=?", z->idem), 0);
        }
        z->busy = 0;
    } else if (env && env->body_case == RLHF__ENVELOPE__BODY_SHUTDOWN) {
        peer_ack(z->p, env->seq, 0);
    }
    wire_free(&env);
    if (z->busy && now_s() >= z->resend_at) zl_send(z);
}

static void test_crash(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "crash");
    int port = free_port();
    /* A budget the test never exhausts: half of it due at once, served
     * coordinator.queue_max (1000) open queries at a time. */
    http_job(&cl, "crash", port, 4000000, 20000, "[feedback]\nundo_s = 0\nsegment_len = 10\ninitial_frac = 0.5\n");
    char db[700];
    snprintf(db, sizeof db, "%s/feedback.db", cl.out);
    mkdir_p(cl.out);
    hl_t h;
    hl_init(&h, port, db, "alice");
    child_t *co = start_coordinator(&cl, "coordinator-0");
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    start_rollout(&cl, "r1", NULL, NULL);
    char err[512];
    zl_t z = {0};
    peer_options_t po = {.endpoint = cl.endpoint, .kind = RLHF__PEER_KIND__PEER_LABELER, .peer_id = "zlab",
                         .on_register = zl_register};
    z.p = peer_new(&po, err, sizeof err);
    assert_non_null(z.p);
    static acked_t acked[MAX_ACKED];
    int n_http = 0, n_acked = 0, n_idem = 0, kills = 0, refused = 0, down = 0, during = 0, dup_acks = 0;
    char pending[1024] = "", pending_idem[40] = "";
    srand(20261129);
    double next_kill = now_s() + 2.0 + (rand() % 1000) / 1000.0;
    double end = now_s() + 75;
    while (kills < 20 && now_s() < end) {
        tl_step(&t, 5);
        zl_step(&z, acked, &n_acked, db);
        /* One HTTP step: resend the pending label until acknowledged, else
         * fetch the next query and answer it. Every other kill lands while
         * a label is being posted: a killer process fires 0-4 ms into the
         * request, before, during or after the commit and the 200. */
        int kill_now = now_s() >= next_kill;
        if (kill_now && kills % 2 == 0 && !pending[0] && now_s() < next_kill + 2) kill_now = 0; /* wait for a POST */
        pid_t killer = -1;
        if (kill_now && pending[0] && kills % 2 == 0) {
            useconds_t delay = (useconds_t)(rand() % 4000);
            killer = fork();
            assert_true(killer >= 0);
            if (killer == 0) {
                usleep(delay);
                kill(co->pid, SIGKILL);
                _exit(0);
            }
        }
        json_t *doc = NULL;
        if (pending[0]) {
            int st = api(&h, "POST", "/api/labels", pending, &doc);
            if (st == 200) {
                assert_true(n_acked < MAX_ACKED);
                snprintf(acked[n_acked].idem, sizeof acked[n_acked].idem, "%s", pending_idem);
                const char *lid = json_string(json_get(doc, "label_id"));
                assert_non_null(lid);
                acked[n_acked++].label_id = strtoll(lid, NULL, 10);
                n_http++;
                dup_acks += strcmp(json_string(json_get(doc, "status")), "duplicate") == 0;
                pending[0] = '\0';
            } else if (st == 409) {
                /* The teacher answered it first (redundancy 1): not acknowledged, not stored. */
                assert_int_equal(db_count(db, "SELECT COUNT(*) FROM labels WHERE idempotency_id=?", pending_idem), 0);
                refused++;
                pending[0] = '\0';
            } else if (st > 0 && st != 503) {
                fail_msg("POST /api/labels: %d %s", st, error_of(doc) ? error_of(doc) : "");
            } else {
                down++;
            }
        } else if (api(&h, "GET", "/api/next", NULL, &doc) == 200 && json_type(json_get(doc, "query")) == JSON_OBJECT) {
            snprintf(pending_idem, sizeof pending_idem, "crash-%d", ++n_idem);
            answer_for(json_get(doc, "query"), pending_idem, pending, sizeof pending);
        }
        json_destroy(&doc);
        if (kill_now) {
            if (killer > 0) {
                assert_int_equal(waitpid(killer, NULL, 0), killer);
                during++;
            } else {
                assert_int_equal(kill(co->pid, SIGKILL), 0);
            }
            assert_true(wait_exit(co, 5));
            kills++;
            /* Every label acknowledged so far: in the file once, under the id it was acknowledged with. */
            int bad = first_missing(db, acked, n_acked);
            if (bad >= 0)
                fail_msg("after kill %d: acknowledged label %s (id %lld) is not in feedback.db exactly once", kills,
                         acked[bad].idem, acked[bad].label_id);
            assert_int_equal(db_count(db, "SELECT COUNT(*) - COUNT(DISTINCT idempotency_id) FROM labels", NULL), 0);
            char name[32];
            snprintf(name, sizeof name, "coordinator-%d", kills);
            co = start_coordinator(&cl, name);
            next_kill = now_s() + 0.3 + (rand() % 900) / 1000.0;
        }
    }
    print_message("%d kills so far (%d during a POST), %d HTTP labels acknowledged\n", kills, during, n_http);
    assert_int_equal(kills, 20);
    assert_true(during >= 5);
    /* Settle: the learner gets every stored label. */
    int stored = 0;
    end = now_s() + 30;
    while (now_s() < end) {
        tl_step(&t, 10);
        zl_step(&z, acked, &n_acked, db);
        stored = db_count(db, "SELECT COUNT(*) FROM labels WHERE retracted=0", NULL);
        if (t.answers >= stored) break;
    }
    print_message("%d kills (%d during a POST); %d labels acknowledged over HTTP (%d as duplicates of a send whose "
                  "200 was lost, %d refused as answered already, %d sends failed), %d over ZeroMQ; %d stored in all; "
                  "the learner got %d\n",
                  kills, during, n_http, dup_acks, refused, down, n_acked - n_http, stored, t.answers);
    if (t.answers != stored) {
        dump_logs();
        fail_msg("the learner got %d answers; feedback.db holds %d labels", t.answers, stored);
    }
    assert_true(n_http >= 5 && n_acked - n_http >= 5);
    assert_true(stored >= n_acked);
    assert_int_equal(db_count(db, "SELECT COUNT(DISTINCT labeler) FROM labels", NULL), 2);
    /* Each acknowledged label once, under its acknowledged id, at the end too. */
    assert_int_equal(first_missing(db, acked, n_acked), -1);
    /* Every peer back from the last restart, so they all hear the Shutdown. */
    end = now_s() + 20;
    uint64_t nr = 0, nl = 0;
    while (now_s() < end && !(nr == 1 && nl == 1)) {
        tl_step(&t, 10);
        zl_step(&z, acked, &n_acked, db);
        peers_now(&t, &nr, &nl);
    }
    if (!(nr == 1 && nl == 1)) {
        dump_logs();
        fail_msg("the rollout worker and the labelers did not register again within 20 s");
    }
    assert_int_equal(learnerlink_shutdown(t.ll, "run finished", 5000), 0);
    double until = now_s() + 2;
    while (now_s() < until) zl_step(&z, acked, &n_acked, db);
    peer_destroy(&z.p);
    finish_run(&t, 0);
    stop_group();
}

static int setup(void **state) {
    n_learned = 0;
    return group_case_setup(state);
}

int main(void) {
    if (group_main_init("test_queue", "queue", 280) != 0) return 1;
    tl_on_label = learned_once;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_api_errors, setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_label_session, setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_redundancy_and_bound, setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, group_case_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

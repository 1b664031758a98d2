/* test_cluster.c - the distributed runtime end to end on 127.0.0.1: a real
 * rlhf-coordinator, rlhf-rollout workers and `rlhf label` teachers as child
 * processes, and the learner in this process (learnerlink.h + learner.h: a
 * single-rank learner loop, so the test does not depend on the MPI worker).
 *
 * Cases: a short CartPole run to completion; a rollout worker killed with
 * SIGKILL (declared dead within 3.5 s) and a replacement that gets the
 * current weights; the coordinator killed and restarted mid-run; a duplicate
 * label stored once; oversized and garbage messages; CURVE with an
 * allow-list and a refused key.
 *
 * Every child joins one process group (led by a child that only waits), so
 * the teardown, an alarm or a failed assertion kill them all with one
 * kill(-group). Every wait is bounded. Children's output goes to log files
 * under RLHF_TEST_TMP, which the assertions read (and which are printed when
 * a case fails). */
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

#include "codec.h"
#include "harness.h"
#include "job.h"
#include "learner.h"
#include "learnerlink.h"
#include "peer.h"
#include "transport.h"
#include "util.h"
#include "wire.h"

/* ---- the cluster (harness.h), and teacher labelers ---------------------------- */

static child_t *start_labeler(cluster_t *cl, const char *id, const char *key, const char *server) {
    char *argv[14];
    int n = 0;
    argv[n++] = cl->bin_rlhf;
    argv[n++] = "label";
    argv[n++] = "--teacher";
    argv[n++] = "oracle";
    argv[n++] = "--coordinator";
    argv[n++] = cl->endpoint;
    argv[n++] = "--id";
    argv[n++] = (char *)id;
    if (key) argv[n++] = "--curve-secret", argv[n++] = (char *)key, argv[n++] = "--curve-server", argv[n++] = (char *)server;
    argv[n] = NULL;
    return spawn(id, argv);
}

/* ---- the learner, in this process -------------------------------------------- */

/* Runs the learner until done(t, arg) or the time is up; returns done's value. */
static int tl_run_until(tlearner_t *t, int (*done)(tlearner_t *, void *), void *arg, double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end) {
        if (done(t, arg)) return 1;
        tl_step(t, 10);
    }
    return done(t, arg);
}

static int run_finished(tlearner_t *t, void *arg) {
    (void)arg;
    return t->steps >= t->job.run.total_steps;
}

static int steps_at_least(tlearner_t *t, void *arg) { return t->steps >= *(long long *)arg; }

/* Asks the coordinator for its counters and waits for the answer. */
static uint64_t coordinator_counter(tlearner_t *t, const char *name) {
    uint64_t before = learnerlink_status_count(t->ll), v = 0;
    learnerlink_request_status(t->ll);
    double end = now_s() + 3;
    while (learnerlink_status_count(t->ll) == before && now_s() < end) tl_step(t, 10);
    if (learnerlink_counter(t->ll, name, &v) != 0) fail_msg("the coordinator's Status has no counter %s", name);
    return v;
}

/* Waits (running the learner) until the coordinator has this many rollout
 * workers and labelers registered: children start at their own pace. */
static void wait_peers(tlearner_t *t, uint64_t rollouts, uint64_t labelers) {
    double end = now_s() + 20;
    while (now_s() < end) {
        if (coordinator_counter(t, "peers.rollout") == rollouts && coordinator_counter(t, "peers.labeler") == labelers)
            return;
        double pause = now_s() + 0.05;
        while (now_s() < pause) tl_step(t, 10);
    }
    dump_logs();
    fail_msg("the peers did not all register within 20 s");
}

/* ---- cases -------------------------------------------------------------------- */

/* Coordinator, 2 rollout workers, 2 teacher labelers and the learner run a
 * short job to the end. */
static void test_full_run(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "full");
    cluster_job(&cl, "full", 48000, 30, NULL);
    child_t *co = start_coordinator(&cl, "full-coordinator");
    child_t *r1 = start_rollout(&cl, "r1", NULL, NULL), *r2 = start_rollout(&cl, "r2", NULL, NULL);
    start_labeler(&cl, "lab1", NULL, NULL);
    start_labeler(&cl, "lab2", NULL, NULL);
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    wait_peers(&t, 2, 2);
    if (!tl_run_until(&t, run_finished, NULL, 40)) {
        dump_logs();
        fail_msg("the run did not finish in 40 s: %lld of %lld steps, %d labels", t.steps, t.job.run.total_steps,
                 t.labels);
    }
    /* Labels arrived in rounds; the learner refit and trained. */
    assert_true(t.answers >= 20);
    assert_true(t.labels >= 10);
    assert_true(t.fits >= 2);
    assert_true(t.updates >= 100);
    /* Rollouts acted with new policies: batches came back made with them. */
    assert_true(t.max_batch_version >= 10);
    uint64_t accepted = coordinator_counter(&t, "batches.accepted");
    assert_true(accepted >= (uint64_t)t.updates);
    assert_int_equal(coordinator_counter(&t, "peers.rollout"), 2);
    assert_int_equal(coordinator_counter(&t, "peers.labeler"), 2);
    assert_int_equal(coordinator_counter(&t, "labels.duplicate"), 0);
    assert_true(coordinator_counter(&t, "weights.reward") >= 2);
    /* The lag histogram, and the learner's metrics relayed to status.json. */
    assert_true(coordinator_counter(&t, "lag.0") > 0);
    child_t status = {0}; /* log_has() reads any file */
    snprintf(status.log, sizeof status.log, "%.600s/status.json", cl.out);
    double end = now_s() + 5;
    int relayed = 0;
    while (!relayed && now_s() < end) {
        tl_step(&t, 20);
        relayed = log_has(&status, "\"learner\":{\"entropy\":");
    }
    assert_true(relayed);
    finish_run(&t, 1);
    assert_true(log_has(co, "every peer acknowledged the shutdown"));
    assert_true(log_has(r1, "shutdown: run finished"));
    assert_true(log_has(r2, "shutdown: run finished"));
    stop_group();
}

/* A rollout worker killed with SIGKILL is declared dead within 3.5 s
 * (liveness 3 x 1 s); a replacement joining later gets the Welcome and the
 * current weights, and its batches are accepted. */
static int log_says_dead(tlearner_t *t, void *arg) {
    (void)t;
    return log_line_has(arg, "rollout r1 (#", "declared dead");
}

static int watched_arrived(tlearner_t *t, void *arg) {
    (void)arg;
    return t->watch_batches >= 3;
}

static void test_rollout_killed(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "kill");
    cluster_job(&cl, "kill", 1000000000, 24, NULL);
    child_t *co = start_coordinator(&cl, "kill-coordinator");
    child_t *r1 = start_rollout(&cl, "r1", NULL, NULL);
    start_rollout(&cl, "r2", NULL, NULL);
    start_labeler(&cl, "lab1", NULL, NULL);
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    wait_peers(&t, 2, 1);
    long long warm = 3000;
    if (!tl_run_until(&t, steps_at_least, &warm, 30)) {
        dump_logs();
        fail_msg("no progress: %lld steps", t.steps);
    }
    assert_int_equal(kill(r1->pid, SIGKILL), 0);
    double t0 = now_s();
    assert_true(wait_exit(r1, 5));
    if (!tl_run_until(&t, log_says_dead, co, 6)) {
        dump_logs();
        fail_msg("r1 was not declared dead within 6 s");
    }
    double dt = now_s() - t0;
    print_message("r1 declared dead %.2f s after SIGKILL\n", dt);
    assert_true(dt < 3.5);
    assert_int_equal(coordinator_counter(&t, "peers.dead"), 1);
    assert_int_equal(coordinator_counter(&t, "peers.rollout"), 1);

    /* A replacement: Welcome, the current policy, batches accepted. */
    uint64_t version = coordinator_counter(&t, "policy_version");
    assert_true(version >= 5);
    t.watch = "r3";
    child_t *r3 = start_rollout(&cl, "r3", NULL, NULL);
    if (!tl_run_until(&t, watched_arrived, NULL, 15)) {
        dump_logs();
        fail_msg("no batches from the replacement r3 within 15 s");
    }
    assert_true(log_has(r3, "registered with"));
    /* Its very first batch was acted with weights at least as new as the
     * coordinator's when it joined: it got them with its Welcome. */
    assert_true(t.watch_first_version >= version);
    assert_int_equal(coordinator_counter(&t, "peers.rollout"), 2);
    finish_run(&t, 1);
    stop_group();
}

/* The coordinator killed (SIGKILL) and restarted mid-run on the same port:
 * rollout workers, labelers and the learner find it again by themselves,
 * the label schedule resumes where the learner is, and the run finishes. */
static void test_coordinator_restart(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "restart");
    cluster_job(&cl, "restart", 200000, 24, NULL);
    child_t *co1 = start_coordinator(&cl, "restart-coordinator-1");
    child_t *r1 = start_rollout(&cl, "r1", NULL, NULL), *r2 = start_rollout(&cl, "r2", NULL, NULL);
    child_t *lab1 = start_labeler(&cl, "lab1", NULL, NULL);
    start_labeler(&cl, "lab2", NULL, NULL);
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    wait_peers(&t, 2, 2);
    long long part = t.steps + 6000; /* labels go on until 100000 */
    if (!tl_run_until(&t, steps_at_least, &part, 30)) {
        dump_logs();
        fail_msg("no progress before the restart: %lld steps", t.steps);
    }
    int answers_before = t.answers;
    assert_int_equal(kill(co1->pid, SIGKILL), 0);
    assert_true(wait_exit(co1, 5));
    /* The learner goes on with what it holds while the coordinator is away. */
    double end = now_s() + 0.5;
    while (now_s() < end) tl_step(&t, 10);
    child_t *co2 = start_coordinator(&cl, "restart-coordinator-2");
    if (!tl_run_until(&t, run_finished, NULL, 60)) {
        dump_logs();
        fail_msg("the run did not finish after the restart: %lld of %lld steps", t.steps, t.job.run.total_steps);
    }
    assert_true(learnerlink_welcomes(t.ll) >= 2);
    assert_true(log_count(r1, "registered with") >= 2);
    assert_true(log_count(r2, "registered with") >= 2);
    assert_true(log_count(lab1, "registered with") >= 2);
    assert_true(log_has(co2, "resuming the run at"));
    /* The schedule went on from the learner's count: the budget, no more. */
    assert_true(t.answers > answers_before);
    assert_true(t.answers <= 24);
    assert_true(coordinator_counter(&t, "batches.accepted") > 0);
    finish_run(&t, 1);
    stop_group();
}

/* A labeler that sends its label again (same idempotency id) gets
 * DUPLICATE with the same label id; the label is stored and forwarded once.
 * Another answer to an answered query is rejected. */
static Rlhf__Envelope *raw_wait(peer_t *p, tlearner_t *t, Rlhf__Envelope__BodyCase want, double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end) {
        Rlhf__Envelope *env = NULL;
        if (peer_poll(p, 5, &env) < 0) fail_msg("raw labeler: %s", peer_error(p));
        if (env && env->body_case == want) return env;
        wire_free(&env);
        tl_step(t, 5);
    }
    return NULL;
}

static void raw_send_label(peer_t *p, const Rlhf__Query *q, const char *idem) {
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = q->id;
    l.labeler_id = "raw";
    l.idempotency_id = (char *)idem;
    l.has_kind = 1, l.kind = q->kind;
    uint32_t rank[WIRE_MAX_RANK_K];
    if (q->kind == RLHF__QUERY_KIND__QUERY_PAIR) l.has_preference = 1, l.preference = RLHF__PREFERENCE__PREF_LEFT;
    if (q->kind == RLHF__QUERY_KIND__QUERY_RATING) l.has_rating = 1, l.rating = 4;
    if (q->kind == RLHF__QUERY_KIND__QUERY_RANKING) {
        for (size_t j = 0; j < q->n_segment_ids; j++) rank[j] = (uint32_t)j;
        l.n_ranking = q->n_segment_ids, l.ranking = rank;
    }
    Rlhf__Envelope env;
    peer_envelope(p, &env);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = &l;
    assert_int_equal(peer_send(p, &env), 0);
}

static void raw_register(Rlhf__Register *r, void *arg) {
    (void)arg;
    static Rlhf__QueryKind kinds[] = {RLHF__QUERY_KIND__QUERY_PAIR, RLHF__QUERY_KIND__QUERY_RATING,
                                      RLHF__QUERY_KIND__QUERY_RANKING};
    r->caps->n_query_kinds = 3, r->caps->query_kinds = kinds;
}

static void test_duplicate_label(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "dup");
    cluster_job(&cl, "dup", 1000000000, 24, NULL);
    start_coordinator(&cl, "dup-coordinator");
    start_rollout(&cl, "r1", NULL, NULL);
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    t.gate = 0; /* no labeler but ours: RL does not wait for a round */
    char err[512];
    peer_options_t po = {.endpoint = cl.endpoint, .kind = RLHF__PEER_KIND__PEER_LABELER, .peer_id = "raw",
                         .on_register = raw_register};
    peer_t *raw = peer_new(&po, err, sizeof err);
    assert_non_null(raw);
    Rlhf__Envelope *qe = raw_wait(raw, &t, RLHF__ENVELOPE__BODY_QUERY, 15);
    if (!qe) {
        dump_logs();
        fail_msg("no query for the raw labeler within 15 s");
    }
    raw_send_label(raw, qe->query, "raw-answer-1");
    Rlhf__Envelope *a1 = raw_wait(raw, &t, RLHF__ENVELOPE__BODY_LABEL_ACK, 5);
    assert_non_null(a1);
    assert_int_equal(a1->label_ack->status, RLHF__ACK_STATUS__ACK_STORED);
    assert_string_equal(a1->label_ack->idempotency_id, "raw-answer-1");
    uint64_t id = a1->label_ack->label_id;
    assert_true(id > 0);
    for (int i = 0; i < 2; i++) {
        raw_send_label(raw, qe->query, "raw-answer-1"); /* a resend: same id */
        Rlhf__Envelope *a2 = raw_wait(raw, &t, RLHF__ENVELOPE__BODY_LABEL_ACK, 5);
        assert_non_null(a2);
        assert_int_equal(a2->label_ack->status, RLHF__ACK_STATUS__ACK_DUPLICATE);
        assert_int_equal(a2->label_ack->label_id, id);
        wire_free(&a2);
    }
    raw_send_label(raw, qe->query, "raw-answer-2"); /* another answer to the same query */
    Rlhf__Envelope *a3 = raw_wait(raw, &t, RLHF__ENVELOPE__BODY_LABEL_ACK, 5);
    assert_non_null(a3);
    assert_int_equal(a3->label_ack->status, RLHF__ACK_STATUS__ACK_REJECTED);
    assert_non_null(strstr(a3->label_ack->detail, "answered already"));
    wire_free(&a3);
    wire_free(&a1);
    wire_free(&qe);
    assert_int_equal(coordinator_counter(&t, "labels.stored"), 1);
    assert_int_equal(coordinator_counter(&t, "labels.duplicate"), 2);
    assert_int_equal(coordinator_counter(&t, "labels.rejected"), 1);
    assert_int_equal(coordinator_counter(&t, "labels.forwarded"), 1);
    double end = now_s() + 0.5;
    while (now_s() < end) tl_step(&t, 10);
    assert_int_equal(t.answers, 1); /* the learner got it once */
    /* End: the raw labeler acknowledges the coordinator's Shutdown too. */
    assert_int_equal(learnerlink_shutdown(t.ll, "run finished", 5000), 0);
    Rlhf__Envelope *sd = raw_wait(raw, &t, RLHF__ENVELOPE__BODY_SHUTDOWN, 5);
    assert_non_null(sd);
    peer_ack(raw, sd->seq, 0);
    wire_free(&sd);
    peer_destroy(&raw);
    finish_run(&t, 0);
    stop_group();
}

/* Garbage, a message over the coordinator's limit, wrong frame counts, a
 * decodable but invalid envelope and a message from a stranger: each is
 * logged and dropped (or answered NOT_REGISTERED), and the run finishes. */
static void test_garbage(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "garbage");
    snprintf(cl.max_message, sizeof cl.max_message, "%d", 1 << 20);
    cluster_job(&cl, "garbage", 12000, 12, NULL);
    child_t *co = start_coordinator(&cl, "garbage-coordinator");
    start_rollout(&cl, "r1", NULL, NULL);
    start_labeler(&cl, "lab1", NULL, NULL);
    tlearner_t t;
    tl_start(&t, &cl, NULL, NULL);
    wait_peers(&t, 1, 1);
    long long warm = 2000;
    assert_true(tl_run_until(&t, steps_at_least, &warm, 30));

    transport_t *tx = transport_new(NULL);
    char err[256];
    transport_sock_t *evil = transport_client_new(tx, cl.endpoint, NULL, NULL, err, sizeof err);
    assert_non_null(evil);
    void *raw = transport_sock_zmq(evil);
    /* 1. not protobuf at all */
    const char junk[] = "\x0a\xff\xff\xff\xff\x0f garbage";
    assert_true(zmq_send(raw, junk, sizeof junk - 1, 0) > 0);
    /* 2. two frames where one is expected */
    assert_true(zmq_send(raw, "a", 1, ZMQ_SNDMORE) == 1);
    assert_true(zmq_send(raw, "b", 1, 0) == 1);
    /* 3. decodes, but a rating of 9 does not validate */
    Rlhf__Envelope env;
    Rlhf__Label l;
    wire_envelope_init(&env, "mallory", 1);
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = 5;
    l.labeler_id = "mallory", l.idempotency_id = "x";
    l.has_kind = 1, l.kind = RLHF__QUERY_KIND__QUERY_RATING;
    l.has_rating = 1, l.rating = 9;
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = &l;
    size_t n = rlhf__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(n);
    rlhf__envelope__pack(&env, buf);
    assert_true(zmq_send(raw, buf, n, 0) == (int)n);
    free(buf);
    /* 4. valid, but from nobody registered: told to register */
    l.rating = 3;
    assert_int_equal(transport_send(evil, NULL, 0, &env), 0);
    transport_from_t from;
    Rlhf__Envelope *reply = NULL;
    double end = now_s() + 5;
    while (!reply && now_s() < end) {
        tl_step(&t, 5);
        zmq_pollitem_t it = {raw, 0, ZMQ_POLLIN, 0};
        transport_poll(tx, &it, 1, 5);
        if (transport_recv(evil, &from, &reply) != 0) reply = NULL;
    }
    assert_non_null(reply);
    assert_int_equal(reply->body_case, RLHF__ENVELOPE__BODY_ERROR);
    assert_int_equal(reply->error->code, RLHF__ERROR_CODE__ERR_NOT_REGISTERED);
    wire_free(&reply);
    /* 5. over the 1 MiB limit: libzmq cuts the connection */
    size_t big = (size_t)2 << 20;
    char *blob = calloc(1, big);
    assert_true(zmq_send(raw, blob, big, 0) == (int)big);
    free(blob);
    end = now_s() + 1;
    while (now_s() < end) tl_step(&t, 10);
    transport_destroy(&tx);

    if (!tl_run_until(&t, run_finished, NULL, 40)) {
        dump_logs();
        fail_msg("the run did not finish after the garbage: %lld steps", t.steps);
    }
    assert_true(coordinator_counter(&t, "messages.dropped") >= 3);
    assert_true(coordinator_counter(&t, "messages.unregistered") >= 1);
    assert_true(coordinator_counter(&t, "connections.disconnects") >= 1);
    finish_run(&t, 1);
    assert_true(log_has(co, "bad envelope"));
    assert_true(log_has(co, "frames, expected 2"));
    assert_true(log_has(co, "label.rating: 9 is outside 1..7"));
    assert_true(log_has(co, "from unregistered sender 'mallory'"));
    assert_true(log_has(co, "over the 1048576-byte limit"));
    stop_group();
}

/* CURVE with an allow-list: the listed rollout worker, labeler and learner
 * run the job; a rollout worker with a key not on the list is refused (the
 * coordinator logs the refusal, the worker exits 3 saying why). */
static char *keygen(cluster_t *cl, const char *dir, const char *name) {
    char *argv[] = {cl->bin_rlhf, "keygen", (char *)dir, (char *)name, NULL};
    char logname[80];
    snprintf(logname, sizeof logname, "keygen-%s", name);
    child_t *c = spawn(logname, argv);
    assert_true(wait_exit(c, 10));
    assert_true(exited_with(c, 0));
    return read_log(c); /* "<public key>  <name>\n": an allow-list line */
}

static void test_curve(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "curve");
    cluster_job(&cl, "curve", 8000, 12, NULL);
    char keys[600], allow[700], path[800], server_pub[800];
    snprintf(keys, sizeof keys, "%s/curve-keys", tmp_dir);
    snprintf(allow, sizeof allow, "%s/allow.txt", keys);
    free(keygen(&cl, keys, "coordinator"));
    FILE *f = fopen(allow, "w");
    assert_non_null(f);
    const char *allowed[] = {"r1", "lab1", "learner"};
    for (int i = 0; i < 3; i++) {
        char *line = keygen(&cl, keys, allowed[i]);
        fputs(line, f);
        free(line);
    }
    fclose(f);
    free(keygen(&cl, keys, "intruder"));
    char secret[800];
    snprintf(secret, sizeof secret, "%s/coordinator.key", keys);
    snprintf(server_pub, sizeof server_pub, "%s/coordinator.pub", keys);
    cl.curve_secret = secret;
    cl.allow = allow;
    child_t *co = start_coordinator(&cl, "curve-coordinator");
    char k_r1[800], k_lab[800], k_bad[800];
    snprintf(k_r1, sizeof k_r1, "%s/r1.key", keys);
    snprintf(k_lab, sizeof k_lab, "%s/lab1.key", keys);
    snprintf(k_bad, sizeof k_bad, "%s/intruder.key", keys);
    start_rollout(&cl, "r1", k_r1, server_pub);
    start_labeler(&cl, "lab1", k_lab, server_pub);
    child_t *bad = start_rollout(&cl, "intruder", k_bad, server_pub);
    transport_keypair_t lk;
    char spub[TRANSPORT_Z85_LEN + 1], err[512];
    snprintf(path, sizeof path, "%s/learner.key", keys);
    assert_int_equal(peer_load_keys(path, server_pub, &lk, spub, err, sizeof err), 0);
    tlearner_t t;
    tl_start(&t, &cl, &lk, spub);
    wait_peers(&t, 1, 1);
    if (!tl_run_until(&t, run_finished, NULL, 40)) {
        dump_logs();
        fail_msg("the CURVE run did not finish: %lld steps", t.steps);
    }
    assert_true(t.labels > 0);
    /* The intruder never got in, and says why. */
    assert_true(wait_exit(bad, 10));
    assert_true(exited_with(bad, 3));
    assert_true(log_has(bad, "refuses our key"));
    assert_true(coordinator_counter(&t, "zap.refused") >= 1);
    assert_int_equal(coordinator_counter(&t, "peers.rollout"), 1);
    finish_run(&t, 1);
    assert_true(log_has(co, "ZAP: refused CURVE client key"));
    stop_group();
}

/* `rlhf label` against a coordinator played by the test: it answers a
 * pair (by the true rewards), a rating and a ranking; a label without a
 * LabelAck is sent again after coordinator.label_resend_ms with the same
 * idempotency id, and not again once acknowledged; Shutdown ends it with
 * exit 0 after its Ack. */
typedef struct {
    transport_t *t;
    transport_sock_t *srv;
    uint8_t id[256];
    size_t id_len;
    uint64_t seq;
} fake_coord_t;

static Rlhf__Envelope *fake_recv(fake_coord_t *f, Rlhf__Envelope__BodyCase want, double seconds) {
    double end = now_s() + seconds;
    while (now_s() < end) {
        zmq_pollitem_t it = {transport_sock_zmq(f->srv), 0, ZMQ_POLLIN, 0};
        transport_poll(f->t, &it, 1, 10);
        transport_from_t from;
        Rlhf__Envelope *env = NULL;
        while (transport_recv(f->srv, &from, &env) == 0) {
            memcpy(f->id, from.identity, from.identity_len);
            f->id_len = from.identity_len;
            if (env->body_case == want) return env;
            wire_free(&env);
        }
    }
    return NULL;
}

static void fake_header(fake_coord_t *f, Rlhf__Envelope *env) { wire_envelope_init(env, "coordinator", ++f->seq); }

static void send_query(fake_coord_t *f, uint64_t id, Rlhf__QueryKind kind, int k, const float *returns, int T) {
    Rlhf__Query q;
    rlhf__query__init(&q);
    uint64_t ids[8];
    Rlhf__Segment segs[8], *ptrs[8];
    static float obs[8][40], act[8][10], r[8][10];
    static protobuf_c_boolean ab[8][10];
    for (int j = 0; j < k; j++) {
        ids[j] = 100 * id + (uint64_t)j + 1;
        for (int t = 0; t < T; t++) r[j][t] = returns[j] / (float)T;
        codec_segment_view(&segs[j], ids[j], "CartPole-v1", T, 4, 1, obs[j], act[j], r[j], ab[j]);
        ptrs[j] = &segs[j];
    }
    q.has_id = 1, q.id = id;
    q.has_kind = 1, q.kind = kind;
    q.n_segment_ids = (size_t)k, q.segment_ids = ids;
    if (kind == RLHF__QUERY_KIND__QUERY_RANKING) q.has_k = 1, q.k = (uint32_t)k;
    q.n_segments = (size_t)k, q.segments = ptrs;
    Rlhf__Envelope env;
    fake_header(f, &env);
    env.body_case = RLHF__ENVELOPE__BODY_QUERY;
    env.query = &q;
    assert_int_equal(transport_send(f->srv, f->id, f->id_len, &env), 0);
}

static void test_labeler_resend(void **state) {
    (void)state;
    cluster_t cl;
    cluster_init(&cl, "labeler");
    fake_coord_t f = {0};
    f.t = transport_new(NULL);
    char err[256];
    f.srv = transport_server_new(f.t, "tcp://127.0.0.1:*", NULL, err, sizeof err);
    assert_non_null(f.srv);
    snprintf(cl.endpoint, sizeof cl.endpoint, "%s", transport_sock_endpoint(f.srv));
    child_t *lab = start_labeler(&cl, "labR", NULL, NULL);
    Rlhf__Envelope *reg = fake_recv(&f, RLHF__ENVELOPE__BODY_REGISTER, 10);
    if (!reg) {
        dump_logs();
        fail_msg("no Register from the labeler");
    }
    assert_int_equal(reg->register_->kind, RLHF__PEER_KIND__PEER_LABELER);
    assert_int_equal(reg->register_->caps->n_query_kinds, 3);
    job_t job;
    job_defaults(&job);
    job.feedback.segment_len = 10;
    job.coordinator.label_resend_ms = 300;
    char *text = job_write_text(&job);
    Rlhf__Envelope env;
    Rlhf__Welcome w;
    Rlhf__JobConfig jc;
    rlhf__welcome__init(&w);
    rlhf__job_config__init(&jc);
    jc.ini = text;
    jc.has_hash = 1, jc.hash = wire_hash64(text, strlen(text));
    w.peer_id = "labR";
    w.has_incarnation = 1, w.incarnation = reg->register_->incarnation;
    w.run_id = "labeler-test";
    w.job = &jc;
    w.has_heartbeat_interval_ms = 1, w.heartbeat_interval_ms = 1000;
    w.has_heartbeat_liveness = 1, w.heartbeat_liveness = 3;
    w.has_seed = 1, w.seed = 5;
    wire_free(&reg);
    fake_header(&f, &env);
    env.body_case = RLHF__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    assert_int_equal(transport_send(f.srv, f.id, f.id_len, &env), 0);
    free(text);

    /* A pair: the left segment returned more. */
    const float pair[2] = {9, 2};
    send_query(&f, 7, RLHF__QUERY_KIND__QUERY_PAIR, 2, pair, 10);
    Rlhf__Envelope *l1 = fake_recv(&f, RLHF__ENVELOPE__BODY_LABEL, 5);
    assert_non_null(l1);
    double t1 = now_s();
    assert_int_equal(l1->label->query_id, 7);
    assert_int_equal(l1->label->preference, RLHF__PREFERENCE__PREF_LEFT);
    /* No acknowledgement: the same label again, the same id. */
    Rlhf__Envelope *l2 = fake_recv(&f, RLHF__ENVELOPE__BODY_LABEL, 3);
    assert_non_null(l2);
    assert_true(now_s() - t1 > 0.2);
    assert_string_equal(l2->label->idempotency_id, l1->label->idempotency_id);
    assert_int_equal(l2->label->preference, RLHF__PREFERENCE__PREF_LEFT);
    Rlhf__LabelAck a;
    rlhf__label_ack__init(&a);
    a.has_query_id = 1, a.query_id = 7;
    a.idempotency_id = l1->label->idempotency_id;
    a.has_status = 1, a.status = RLHF__ACK_STATUS__ACK_STORED;
    a.has_label_id = 1, a.label_id = 1;
    fake_header(&f, &env);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL_ACK;
    env.label_ack = &a;
    assert_int_equal(transport_send(f.srv, f.id, f.id_len, &env), 0);
    char first_id[WIRE_MAX_NAME + 1];
    snprintf(first_id, sizeof first_id, "%s", l1->label->idempotency_id);
    /* Acknowledged: never again. */
    Rlhf__Envelope *l3 = fake_recv(&f, RLHF__ENVELOPE__BODY_LABEL, 0.8);
    assert_null(l3);
    wire_free(&l1);
    wire_free(&l2);
    /* A ranking of 3 (best first: positions 1, 2, 0) and a rating (the
     * oracle maps returns linearly onto 1..7 over [0, 10] for CartPole's
     * 0..1 reward per step: 10 -> 7). */
    const float three[3] = {1, 8, 5};
    send_query(&f, 8, RLHF__QUERY_KIND__QUERY_RANKING, 3, three, 10);
    Rlhf__Envelope *lr = fake_recv(&f, RLHF__ENVELOPE__BODY_LABEL, 5);
    assert_non_null(lr);
    assert_int_equal(lr->label->n_ranking, 3);
    assert_int_equal(lr->label->ranking[0], 1);
    assert_int_equal(lr->label->ranking[1], 2);
    assert_int_equal(lr->label->ranking[2], 0);
    assert_string_not_equal(lr->label->idempotency_id, first_id);
    wire_free(&lr);
    const float one[1] = {10};
    send_query(&f, 9, RLHF__QUERY_KIND__QUERY_RATING, 1, one, 10);
    Rlhf__Envelope *lt = fake_recv(&f, RLHF__ENVELOPE__BODY_LABEL, 5);
    assert_non_null(lt);
    assert_int_equal(lt->label->rating, 7);
    wire_free(&lt);
    /* Shutdown: acknowledged, then exit 0. */
    Rlhf__Shutdown sd;
    rlhf__shutdown__init(&sd);
    sd.reason = "test over";
    fake_header(&f, &env);
    env.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &sd;
    assert_int_equal(transport_send(f.srv, f.id, f.id_len, &env), 0);
    uint64_t sd_seq = env.seq;
    Rlhf__Envelope *ack = fake_recv(&f, RLHF__ENVELOPE__BODY_ACK, 5);
    assert_non_null(ack);
    assert_int_equal(ack->ack->seq, sd_seq);
    wire_free(&ack);
    assert_true(wait_exit(lab, 5));
    assert_true(exited_with(lab, 0));
    transport_destroy(&f.t);
    stop_group();
}

int main(void) {
    if (group_main_init("test_cluster", "cluster", 170) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_run, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_rollout_killed, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_restart, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_label, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_garbage, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_curve, group_case_setup, group_case_teardown),
        cmocka_unit_test_setup_teardown(test_labeler_resend, group_case_setup, group_case_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

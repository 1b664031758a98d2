/* test_transport.c - the ZeroMQ transport over real tcp://127.0.0.1 sockets
 * on free ports: round trips plain and with CURVE, the ZAP allow-list, a
 * wrong server key, over-limit and malformed messages, key files and
 * allow-lists with each of their errors, and a context that terminates
 * promptly. Server and client live in separate transport_t (separate
 * contexts), as they do in separate processes. Every wait is bounded; an
 * alarm kills the program if something hangs anyway. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "transport.h"
#include "util.h"
#include "wire.h"

static char tmp_root[512];

static void make_dir(char *out, size_t n, const char *what) {
    snprintf(out, n, "%s/%s", tmp_root, what);
    assert_int_equal(mkdir_p(out), 0);
}

static void write_text(const char *path, const char *text, mode_t mode) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* ---- messages ------------------------------------------------------- */

typedef struct {
    Rlhf__Envelope env;
    Rlhf__Heartbeat hb;
} hb_msg_t;

static const Rlhf__Envelope *heartbeat(hb_msg_t *m, const char *sender, uint64_t seq) {
    wire_envelope_init(&m->env, sender, seq);
    rlhf__heartbeat__init(&m->hb);
    m->hb.has_seq = 1, m->hb.seq = seq;
    m->env.body_case = RLHF__ENVELOPE__BODY_HEARTBEAT;
    m->env.heartbeat = &m->hb;
    return &m->env;
}

/* A valid TrajectoryBatch of `steps` steps of 32 floats each (about 150
 * bytes a step). Free with free_batch(). */
static Rlhf__Envelope *big_batch(uint32_t steps) {
    Rlhf__Envelope *e = calloc(1, sizeof *e);
    Rlhf__TrajectoryBatch *b = calloc(1, sizeof *b);
    wire_envelope_init(e, "w-big", 1);
    rlhf__trajectory_batch__init(b);
    b->worker_id = "w-big";
    b->has_batch_seq = 1, b->batch_seq = 1;
    b->has_policy_version = 1;
    b->env_id = "CartPole-v1";
    b->has_n_envs = 1, b->n_envs = 1;
    b->has_steps = 1, b->steps = steps;
    b->has_obs_dim = 1, b->obs_dim = 32;
    b->has_act_dim = 1, b->act_dim = 1;
    b->n_obs = (size_t)steps * 32, b->obs = calloc(b->n_obs, sizeof(float));
    b->n_actions = steps, b->actions = calloc(steps, sizeof(float));
    b->n_logp = steps, b->logp = calloc(steps, sizeof(float));
    b->n_values = steps, b->values = calloc(steps, sizeof(float));
    b->n_true_rewards = steps, b->true_rewards = calloc(steps, sizeof(float));
    b->has_ends = 1, b->ends.len = steps, b->ends.data = calloc(steps, 1);
    for (size_t i = 0; i < b->n_obs; i++) b->obs[i] = (float)i * 0.5f;
    e->body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH;
    e->trajectory_batch = b;
    return e;
}

static void free_batch(Rlhf__Envelope *e) {
    Rlhf__TrajectoryBatch *b = e->trajectory_batch;
    free(b->obs), free(b->actions), free(b->logp), free(b->values), free(b->true_rewards);
    free(b->ends.data);
    free(b), free(e);
}

/* ---- bounded waits ------------------------------------------------------ */

/* Runs both event loops (ZAP, monitors) for up to `seconds`, receiving on
 * s; returns transport_recv()'s first result other than -1 (0 or -2), or -1
 * when nothing arrived in time. */
static int wait_recv(transport_t *ts, transport_t *tc, transport_sock_t *s, double seconds, transport_from_t *from,
                     Rlhf__Envelope **env) {
    double end = now_s() + seconds;
    *env = NULL;
    do {
        zmq_pollitem_t it = {transport_sock_zmq(s), 0, ZMQ_POLLIN, 0};
        transport_t *owner = ts;
        transport_t *other = tc;
        /* Poll on the side that owns s; just drain the other side. */
        (void)transport_poll(owner, &it, 1, 5);
        if (other) transport_process_events(other);
        int rc = transport_recv(s, from, env);
        if (rc != -1) return rc;
    } while (now_s() < end);
    return -1;
}

/* Runs both loops until *flag (a stats field) becomes nonzero or time is up. */
static int wait_flag(transport_t *a, transport_t *b, const volatile uint64_t *count, const int *flag,
                     double seconds) {
    double end = now_s() + seconds;
    do {
        transport_poll(a, NULL, 0, 5);
        if (b) transport_process_events(b);
        if ((count && *count) || (flag && *flag)) return 1;
    } while (now_s() < end);
    return 0;
}

static transport_t *new_transport(size_t max_message) {
    transport_options_t o;
    transport_options_default(&o);
    o.linger_ms = 100;
    o.reconnect_ivl_ms = 50;
    o.reconnect_ivl_max_ms = 200;
    if (max_message) o.max_message = max_message;
    transport_t *t = transport_new(&o);
    assert_non_null(t);
    return t;
}

static transport_sock_t *new_server(transport_t *t, const transport_keypair_t *keys) {
    char err[256] = "";
    transport_sock_t *s = transport_server_new(t, "tcp://127.0.0.1:*", keys, err, sizeof err);
    if (!s) fail_msg("server: %s", err);
    assert_non_null(strstr(transport_sock_endpoint(s), "tcp://127.0.0.1:"));
    return s;
}

static transport_sock_t *new_client(transport_t *t, transport_sock_t *server, const transport_keypair_t *keys,
                                    const char *server_pub) {
    char err[256] = "";
    transport_sock_t *c = transport_client_new(t, transport_sock_endpoint(server), keys, server_pub, err, sizeof err);
    if (!c) fail_msg("client: %s", err);
    return c;
}

/* ---- tests ---------------------------------------------------------------- */

/* DEALER -> ROUTER -> DEALER with a Heartbeat, replying to the identity. */
static void test_plain_round_trip(void **state) {
    (void)state;
    transport_t *ts = new_transport(0), *tc = new_transport(0);
    transport_sock_t *srv = new_server(ts, NULL);
    transport_sock_t *cli = new_client(tc, srv, NULL, NULL);
    hb_msg_t m;
    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 1)), 0);
    transport_from_t from;
    Rlhf__Envelope *env = NULL;
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), 0);
    assert_int_equal(env->body_case, RLHF__ENVELOPE__BODY_HEARTBEAT);
    assert_string_equal(env->sender, "w1");
    assert_int_equal(env->heartbeat->seq, 1);
    assert_true(from.identity_len > 0);
    assert_string_equal(from.peer_address, "127.0.0.1");
    assert_string_equal(from.user_id, "");
    wire_free(&env);
    assert_null(env);

    assert_int_equal(transport_send(srv, from.identity, from.identity_len, heartbeat(&m, "coordinator", 1)), 0);
    transport_from_t cfrom;
    assert_int_equal(wait_recv(tc, ts, cli, 3.0, &cfrom, &env), 0);
    assert_string_equal(env->sender, "coordinator");
    assert_int_equal(cfrom.identity_len, 0);
    wire_free(&env);

    /* The monitor saw the handshake. */
    assert_true(wait_flag(tc, ts, NULL, &transport_sock_stats(cli)->up, 2.0));
    assert_false(transport_client_handshake_failed(cli));
    assert_int_equal(transport_sock_stats(cli)->sent, 1);
    assert_int_equal(transport_sock_stats(srv)->received, 1);
    assert_int_equal(transport_sock_stats(srv)->sent, 1);

    /* Misuse is refused, not crashed on: a server send without identity, a
     * client send with one, a NULL or invalid envelope, a vanished peer. */
    errno = 0;
    assert_int_equal(transport_send(srv, NULL, 0, heartbeat(&m, "coordinator", 2)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(transport_send(cli, (const uint8_t *)"x", 1, heartbeat(&m, "w1", 2)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(transport_send(cli, NULL, 0, NULL), -1);
    heartbeat(&m, "w1", 2);
    m.hb.has_seq = 0;
    assert_int_equal(transport_send(cli, NULL, 0, &m.env), -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(transport_sock_stats(cli)->last_error, "heartbeat.seq: missing"));
    const uint8_t ghost[5] = {0, 1, 2, 3, 4};
    assert_int_equal(transport_send(srv, ghost, sizeof ghost, heartbeat(&m, "coordinator", 2)), -1);
    assert_int_equal(errno, EHOSTUNREACH);
    assert_non_null(strstr(transport_sock_stats(srv)->last_error, "no such peer"));
    transport_destroy(&tc);
    transport_destroy(&ts);
    assert_null(ts);
}

typedef struct {
    transport_keypair_t server, client, stranger;
} keys_t;

static void make_keys(keys_t *k) {
    char err[256];
    assert_int_equal(transport_keypair_generate(&k->server, err, sizeof err), 0);
    assert_int_equal(transport_keypair_generate(&k->client, err, sizeof err), 0);
    assert_int_equal(transport_keypair_generate(&k->stranger, err, sizeof err), 0);
}

/* A CURVE server whose allow-list holds k->client as "worker-1". */
static transport_sock_t *curve_server(transport_t *ts, const keys_t *k) {
    char err[256];
    transport_allow_t *allow = transport_allow_new();
    assert_int_equal(transport_allow_add(allow, k->client.public_z85, "worker-1", err, sizeof err), 0);
    assert_int_equal(transport_zap_start(ts, &allow, err, sizeof err), 0);
    assert_null(allow);
    return new_server(ts, &k->server);
}

static void test_curve_allowed(void **state) {
    (void)state;
    keys_t k;
    make_keys(&k);
    transport_t *ts = new_transport(0), *tc = new_transport(0);
    /* Without ZAP a CURVE server would accept anyone: refused. */
    char err[256] = "";
    assert_null(transport_server_new(ts, "tcp://127.0.0.1:*", &k.server, err, sizeof err));
    assert_non_null(strstr(err, "allow-list"));
    transport_sock_t *srv = curve_server(ts, &k);
    transport_sock_t *cli = new_client(tc, srv, &k.client, k.server.public_z85);
    hb_msg_t m;
    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 1)), 0);
    transport_from_t from;
    Rlhf__Envelope *env = NULL;
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), 0);
    assert_string_equal(env->sender, "w1");
    /* The ZAP reply's user id tells the receiver which key this is. */
    assert_string_equal(from.user_id, "worker-1");
    wire_free(&env);
    assert_int_equal(transport_send(srv, from.identity, from.identity_len, heartbeat(&m, "coordinator", 1)), 0);
    assert_int_equal(wait_recv(tc, ts, cli, 3.0, &from, &env), 0);
    wire_free(&env);
    assert_true(wait_flag(tc, ts, NULL, &transport_sock_stats(cli)->up, 2.0));
    assert_true(transport_zap_stats(ts)->accepted >= 1);
    assert_int_equal(transport_zap_stats(ts)->refused, 0);
    assert_null(transport_zap_stats(tc));
    transport_destroy(&tc);
    transport_destroy(&ts);
}

/* A key not on the list: ZAP refuses it, logs key and address, the client
 * learns it, and no message reaches the server. */
static void test_curve_refused(void **state) {
    (void)state;
    keys_t k;
    make_keys(&k);
    transport_t *ts = new_transport(0), *tc = new_transport(0);
    transport_sock_t *srv = curve_server(ts, &k);
    transport_sock_t *cli = new_client(tc, srv, &k.stranger, k.server.public_z85);
    hb_msg_t m;
    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "intruder", 1)), 0);
    assert_true(wait_flag(tc, ts, NULL, &transport_sock_stats(cli)->handshake_failed, 2.0));
    assert_true(transport_client_handshake_failed(cli));
    assert_false(transport_client_up(cli));
    assert_non_null(strstr(transport_sock_stats(cli)->last_error, "CURVE handshake with tcp://127.0.0.1:"));
    assert_non_null(strstr(transport_sock_stats(cli)->last_error, "refused our key"));
    transport_from_t from;
    Rlhf__Envelope *env = NULL;
    assert_int_equal(wait_recv(ts, tc, srv, 0.5, &from, &env), -1);
    assert_null(env);
    const transport_zap_stats_t *z = transport_zap_stats(ts);
    assert_true(z->refused >= 1);
    assert_int_equal(z->accepted, 0);
    assert_non_null(strstr(z->last_refusal, k.stranger.public_z85));
    assert_non_null(strstr(z->last_refusal, "127.0.0.1"));
    assert_int_equal(transport_sock_stats(srv)->received, 0);
    transport_destroy(&tc);
    transport_destroy(&ts);
}

/* A client holding the wrong server key: the server cannot open its HELLO
 * and hangs up; the client's status says so within about 2 s. A plain
 * client to a CURVE server fails likewise. */
static void test_curve_wrong_server_key(void **state) {
    (void)state;
    keys_t k;
    make_keys(&k);
    transport_t *ts = new_transport(0), *tc = new_transport(0);
    transport_sock_t *srv = curve_server(ts, &k);
    transport_sock_t *cli = new_client(tc, srv, &k.client, k.stranger.public_z85);
    transport_sock_t *plain = new_client(tc, srv, NULL, NULL);
    hb_msg_t m;
    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 1)), 0);
    assert_int_equal(transport_send(plain, NULL, 0, heartbeat(&m, "w2", 1)), 0);
    double t0 = now_s();
    assert_true(wait_flag(tc, ts, NULL, &transport_sock_stats(cli)->handshake_failed, 2.0));
    assert_true(now_s() - t0 < 2.0);
    assert_true(transport_client_handshake_failed(cli));
    const char *e = transport_sock_stats(cli)->last_error;
    assert_non_null(strstr(e, "CURVE handshake with tcp://127.0.0.1:"));
    assert_non_null(strstr(e, "failed"));
    assert_true(wait_flag(tc, ts, NULL, &transport_sock_stats(plain)->handshake_failed, 2.0));
    transport_from_t from;
    Rlhf__Envelope *env = NULL;
    assert_int_equal(wait_recv(ts, tc, srv, 0.3, &from, &env), -1);
    assert_true(transport_sock_stats(srv)->handshakes_failed >= 1);
    transport_destroy(&tc);
    transport_destroy(&ts);
}

/* A message over the server's limit never reaches the application: libzmq
 * cuts the connection and the monitor reports it. The client reconnects
 * and its next message arrives. A sender refuses what is over its own
 * limit before sending. */
static void test_oversized(void **state) {
    (void)state;
    const size_t limit = 64 << 10;
    transport_t *ts = new_transport(limit), *tc = new_transport(0);
    transport_sock_t *srv = new_server(ts, NULL);
    transport_sock_t *cli = new_client(tc, srv, NULL, NULL);
    hb_msg_t m;
    /* Connect first, so the disconnect below is the oversized one. */
    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 1)), 0);
    transport_from_t from;
    Rlhf__Envelope *env = NULL;
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), 0);
    wire_free(&env);
    assert_int_equal(transport_sock_stats(srv)->disconnects, 0);

    Rlhf__Envelope *big = big_batch(1000); /* ~150 KB */
    assert_int_equal(transport_send(cli, NULL, 0, big), 0);
    assert_true(wait_flag(ts, tc, &transport_sock_stats(srv)->disconnects, NULL, 3.0));
    assert_non_null(strstr(transport_sock_stats(srv)->last_error, "disconnected"));
    assert_int_equal(wait_recv(ts, tc, srv, 0.3, &from, &env), -1);

    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 2)), 0);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), 0);
    assert_int_equal(env->seq, 2);
    wire_free(&env);
    assert_int_equal(transport_sock_stats(srv)->received, 2);
    assert_int_equal(transport_sock_stats(srv)->dropped, 0);

    /* The server's own limit applies to what it sends, too. */
    errno = 0;
    assert_int_equal(transport_send(srv, from.identity, from.identity_len, big), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_non_null(strstr(transport_sock_stats(srv)->last_error, "over the 65536-byte message limit"));

    /* ZMQ_MAXMSGSIZE does not apply to inproc: there transport_recv's own
     * size check is what refuses the frame, before decoding it. */
    char err[256];
    transport_sock_t *isrv = transport_server_new(ts, "inproc://oversized", NULL, err, sizeof err);
    transport_sock_t *icli = transport_client_new(ts, "inproc://oversized", NULL, NULL, err, sizeof err);
    assert_non_null(isrv);
    assert_non_null(icli);
    char *blob = calloc(1, limit + 1);
    assert_int_equal(zmq_send(transport_sock_zmq(icli), blob, limit + 1, 0), (int)limit + 1);
    free(blob);
    assert_int_equal(wait_recv(ts, NULL, isrv, 3.0, &from, &env), -2);
    assert_non_null(strstr(transport_sock_stats(isrv)->last_error, "frame 2 is 65537 bytes, over the 65536-byte limit"));
    free_batch(big);
    transport_destroy(&tc);
    transport_destroy(&ts);
}

/* Garbage, wrong frame counts, empty frames and envelopes that decode but
 * do not validate are dropped with a reason; the next valid one arrives. */
static void test_garbage_dropped(void **state) {
    (void)state;
    transport_t *ts = new_transport(0), *tc = new_transport(0);
    transport_sock_t *srv = new_server(ts, NULL);
    transport_sock_t *cli = new_client(tc, srv, NULL, NULL);
    void *raw = transport_sock_zmq(cli);
    transport_from_t from;
    Rlhf__Envelope *env = NULL;

    const char junk[] = "\x0a\xff\xff\xff\xff\x0f not protobuf";
    assert_int_equal(zmq_send(raw, junk, sizeof junk - 1, 0), (int)sizeof junk - 1);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), -2);
    assert_null(env);
    const char *e = transport_sock_stats(srv)->last_error;
    assert_non_null(strstr(e, "dropped a message from 0x"));
    assert_non_null(strstr(e, "127.0.0.1"));
    assert_non_null(strstr(e, "bad envelope"));

    zmq_send(raw, "a", 1, ZMQ_SNDMORE);
    zmq_send(raw, "b", 1, ZMQ_SNDMORE);
    zmq_send(raw, "c", 1, 0);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), -2);
    assert_non_null(strstr(transport_sock_stats(srv)->last_error, "4 frames, expected 2"));

    assert_int_equal(zmq_send(raw, "", 0, 0), 0);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), -2);

    /* Well-formed protobuf from another schema version. */
    hb_msg_t m;
    heartbeat(&m, "w1", 5);
    m.env.schema_version = 99;
    uint8_t buf[256];
    size_t n = rlhf__envelope__pack(&m.env, buf);
    assert_int_equal(zmq_send(raw, buf, n, 0), (int)n);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), -2);
    assert_non_null(strstr(transport_sock_stats(srv)->last_error, "schema_version"));

    assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", 6)), 0);
    assert_int_equal(wait_recv(ts, tc, srv, 3.0, &from, &env), 0);
    assert_int_equal(env->seq, 6);
    wire_free(&env);
    assert_int_equal(transport_sock_stats(srv)->dropped, 4);
    assert_int_equal(transport_sock_stats(srv)->received, 1);

    /* The client side drops bad input from the server just the same. */
    void *rsrv = transport_sock_zmq(srv);
    zmq_send(rsrv, from.identity, from.identity_len, ZMQ_SNDMORE);
    zmq_send(rsrv, junk, sizeof junk - 1, 0);
    assert_int_equal(wait_recv(tc, ts, cli, 3.0, &from, &env), -2);
    assert_int_equal(transport_sock_stats(cli)->dropped, 1);
    assert_non_null(strstr(transport_sock_stats(cli)->last_error, "from the server"));
    transport_destroy(&tc);
    transport_destroy(&ts);
}

static void expect_key_error(const char *dir, const char *name, const char *needle) {
    transport_keypair_t kp;
    char err[512] = "";
    assert_int_equal(transport_keypair_load(&kp, dir, name, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
    assert_int_equal(kp.secret_z85[0], 0);
}

static void test_key_files(void **state) {
    (void)state;
    char dir[600], path[700], err[512];
    snprintf(dir, sizeof dir, "%s/keys/sub", tmp_root);
    /* keygen makes the folder and prints an allow-list line. */
    char printed[256] = "";
    FILE *out = fmemopen(printed, sizeof printed, "w");
    assert_int_equal(transport_keygen_cmd(dir, "w1", out, err, sizeof err), 0);
    fclose(out);
    assert_int_equal(strlen(printed), 40 + 2 + 2 + 1);
    assert_string_equal(printed + 40, "  w1\n");
    transport_keypair_t kp;
    assert_int_equal(transport_keypair_load(&kp, dir, "w1", err, sizeof err), 0);
    assert_memory_equal(kp.public_z85, printed, 40);
    struct stat st;
    snprintf(path, sizeof path, "%s/w1.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char pub[41];
    snprintf(path, sizeof path, "%s/w1.pub", dir);
    assert_int_equal(transport_key_load(path, pub, err, sizeof err), 0);
    assert_string_equal(pub, kp.public_z85);

    /* Never overwrites an identity; bad names are refused. */
    assert_int_equal(transport_keygen_cmd(dir, "w1", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "w1.key exists"));
    assert_int_equal(transport_keygen_cmd(dir, "../evil", NULL, err, sizeof err), -1);
    assert_int_equal(transport_keygen_cmd(dir, "", NULL, err, sizeof err), -1);

    /* Each error names the file (and line). */
    expect_key_error(dir, "nobody", "nobody.key: cannot open: No such file");
    snprintf(path, sizeof path, "%s/short.key", dir);
    write_text(path, "# a comment\nabcdefghij\n", 0600);
    expect_key_error(dir, "short", "short.key:2: key is 10 characters, expected 40");
    snprintf(path, sizeof path, "%s/notz85.key", dir);
    char bad[64];
    snprintf(bad, sizeof bad, "%.19s~%.20s\n", kp.secret_z85, kp.secret_z85 + 20);
    write_text(path, bad, 0600);
    expect_key_error(dir, "notz85", "notz85.key:1: character 20 ('~') is not Z85");
    snprintf(path, sizeof path, "%s/empty.key", dir);
    write_text(path, "# nothing\n\n", 0600);
    expect_key_error(dir, "empty", "empty.key: no key");
    snprintf(path, sizeof path, "%s/two.key", dir);
    char two[128];
    snprintf(two, sizeof two, "%s\n%s\n", kp.secret_z85, kp.secret_z85);
    write_text(path, two, 0600);
    expect_key_error(dir, "two", "two.key:2: a second key line");
    snprintf(path, sizeof path, "%s/open.key", dir);
    char one[64];
    snprintf(one, sizeof one, "%s\n", kp.secret_z85);
    write_text(path, one, 0644);
    expect_key_error(dir, "open", "accessible by others (mode 0644)");
    /* A .pub that is not the secret key's half. */
    snprintf(path, sizeof path, "%s/mism.key", dir);
    write_text(path, one, 0600);
    snprintf(path, sizeof path, "%s/mism.pub", dir);
    transport_keypair_t other;
    assert_int_equal(transport_keypair_generate(&other, err, sizeof err), 0);
    char opub[64];
    snprintf(opub, sizeof opub, "%s\n", other.public_z85);
    write_text(path, opub, 0644);
    expect_key_error(dir, "mism", "mism.pub: not the public key of");
    /* Without a .pub the public key is derived. */
    unlink(path);
    assert_int_equal(transport_keypair_load(&kp, dir, "mism", err, sizeof err), 0);

    /* Z85 decoding on its own. */
    assert_int_equal(transport_key_decode(kp.public_z85, NULL, err, sizeof err), 0);
    assert_int_equal(transport_key_decode("", NULL, err, sizeof err), -1);
    assert_int_equal(transport_key_decode(NULL, NULL, err, sizeof err), -1);
}

static void expect_allow_error(const char *path, const char *text, const char *needle) {
    write_text(path, text, 0644);
    char err[512] = "";
    transport_allow_t *a = transport_allow_load(path, err, sizeof err);
    assert_null(a);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_allow_list(void **state) {
    (void)state;
    char dir[600], path[700], err[512], text[1024];
    make_dir(dir, sizeof dir, "allow");
    keys_t k;
    make_keys(&k);
    snprintf(path, sizeof path, "%s/allow.txt", dir);
    snprintf(text, sizeof text,
             "# clients of the coordinator\n\n%s  worker-1   # the first\n  %s\t# no name\n%s labeler.alice\n",
             k.client.public_z85, k.stranger.public_z85, k.server.public_z85);
    write_text(path, text, 0644);
    transport_allow_t *a = transport_allow_load(path, err, sizeof err);
    if (!a) fail_msg("%s", err);
    assert_int_equal(transport_allow_count(a), 3);
    uint8_t bin[32];
    assert_int_equal(transport_key_decode(k.client.public_z85, bin, err, sizeof err), 0);
    assert_string_equal(transport_allow_find(a, bin), "worker-1");
    assert_int_equal(transport_key_decode(k.stranger.public_z85, bin, err, sizeof err), 0);
    assert_string_equal(transport_allow_find(a, bin), k.stranger.public_z85);
    assert_int_equal(transport_key_decode(k.server.public_z85, bin, err, sizeof err), 0);
    assert_string_equal(transport_allow_find(a, bin), "labeler.alice");
    memset(bin, 0, sizeof bin);
    assert_null(transport_allow_find(a, bin));
    transport_allow_destroy(&a);
    assert_null(a);
    transport_allow_destroy(&a);

    assert_null(transport_allow_load("/nonexistent/allow.txt", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/allow.txt: cannot open"));
    snprintf(text, sizeof text, "# ok\n%s w1\nshortkey w2\n", k.client.public_z85);
    expect_allow_error(path, text, "allow.txt:3: key is 8 characters, expected 40");
    snprintf(text, sizeof text, "%s w1\n%s w1-again\n", k.client.public_z85, k.client.public_z85);
    expect_allow_error(path, text, "allow.txt:2: key ");
    expect_allow_error(path, text, "already listed (as 'w1')");
    snprintf(text, sizeof text, "%s w1 extra\n", k.client.public_z85);
    expect_allow_error(path, text, "allow.txt:1: unexpected 'extra'");
    snprintf(text, sizeof text, "%.39s\" w1\n", k.client.public_z85);
    expect_allow_error(path, text, "allow.txt:1: character 40 ('\"') is not Z85");
}

/* Undelivered messages (no server ever answers) do not hold up
 * zmq_ctx_term beyond the linger. */
static void test_ctx_term_prompt(void **state) {
    (void)state;
    transport_t *ts = new_transport(0);
    transport_sock_t *srv = new_server(ts, NULL);
    char ep[256];
    snprintf(ep, sizeof ep, "%s", transport_sock_endpoint(srv));
    transport_sock_destroy(&srv);
    assert_null(srv);
    transport_destroy(&ts);

    transport_t *tc = new_transport(0);
    char err[256];
    transport_sock_t *cli = transport_client_new(tc, ep, NULL, NULL, err, sizeof err);
    assert_non_null(cli);
    hb_msg_t m;
    for (int i = 1; i <= 100; i++) assert_int_equal(transport_send(cli, NULL, 0, heartbeat(&m, "w1", (uint64_t)i)), 0);
    /* Bad arguments fail cleanly. */
    assert_null(transport_client_new(tc, "tcp://", NULL, NULL, err, sizeof err));
    assert_null(transport_client_new(tc, ep, NULL, "x", err, sizeof err));
    assert_null(transport_server_new(tc, "tcp://256.1.1.1:1", NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot bind"));
    double t0 = now_s();
    transport_destroy(&tc); /* closes cli too */
    double dt = now_s() - t0;
    assert_true(dt < 1.0);
    transport_options_t o;
    transport_options_default(&o);
    o.linger_ms = -1;
    assert_null(transport_new(&o));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int main(void) {
    /* A hang anywhere fails the program instead of the whole test run. */
    alarm(60);
    log_set_name("test_transport");
    const char *base = getenv("RLHF_TEST_TMP") ? getenv("RLHF_TEST_TMP") : "/tmp";
    snprintf(tmp_root, sizeof tmp_root, "%s/transport-%d", base, (int)getpid());
    if (mkdir_p(tmp_root) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_round_trip),  cmocka_unit_test(test_curve_allowed),
        cmocka_unit_test(test_curve_refused),     cmocka_unit_test(test_curve_wrong_server_key),
        cmocka_unit_test(test_oversized),         cmocka_unit_test(test_garbage_dropped),
        cmocka_unit_test(test_key_files),         cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_ctx_term_prompt),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

/* bench_transport.c - DEALER -> ROUTER throughput over tcp://127.0.0.1, at
 * message sizes doubling from 64 B to 256 KiB, four ways:
 *   raw        zmq_send of a frame of that size / zmq_msg_recv (the limit)
 *   envelope   transport_send/transport_recv of a TrajectoryBatch envelope
 *              packed to the same size: wire_pack + copy-free send, then
 *              wire_decode (decode + validate) + wire_free on receipt
 *   raw+CURVE  the raw frame through a CURVE connection (ZAP allow-list on)
 *   env+CURVE  the envelope through CURVE
 * Ratios are against raw at the same size. The sender runs in its own
 * thread (its own context: a separate process would have one), the
 * receiver in main; each run sends a warm-up share that is not timed, then
 * the timed messages (about 32 MiB or 100 000 messages, whichever is
 * fewer). Prints one row per size; a few seconds in all. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"
#include "util.h"
#include "wire.h"

#define MIN_SIZE 64
#define MAX_SIZE (256 << 10)
#define BYTES_PER_RUN ((size_t)32 << 20)
#define MAX_MSGS 100000
#define MIN_MSGS 200

typedef struct {
    transport_sock_t *cli;
    int envelope;                /* 0: raw frames, 1: transport_send */
    size_t size;                 /* raw frame size */
    const Rlhf__Envelope *env;
    long count;
} sender_t;

static void *sender_main(void *arg) {
    sender_t *s = arg;
    void *sock = transport_sock_zmq(s->cli);
    char *frame = s->envelope ? NULL : calloc(1, s->size);
    for (long i = 0; i < s->count; i++) {
        if (!s->envelope) {
            /* Blocks at the high-water mark: backpressure, no spinning. */
            if (zmq_send(sock, frame, s->size, 0) < 0) break;
            continue;
        }
        while (transport_send(s->cli, NULL, 0, s->env) != 0) {
            if (errno != EAGAIN) {
                fprintf(stderr, "bench_transport: send failed: %s\n", zmq_strerror(errno));
                free(frame);
                return NULL;
            }
            zmq_pollitem_t it = {sock, 0, ZMQ_POLLOUT, 0};
            zmq_poll(&it, 1, 100);
        }
    }
    free(frame);
    return NULL;
}

/* Receives `count` messages, timing those after the first `warm`. Returns
 * messages per second over the timed part, or -1 on a stall. */
static double receive(transport_t *ts, transport_sock_t *srv, int envelope, long warm, long count) {
    void *sock = transport_sock_zmq(srv);
    long got = 0;
    double t0 = 0, last = now_s();
    while (got < count) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        transport_poll(ts, &it, 1, 100);
        for (;;) {
            if (envelope) {
                Rlhf__Envelope *env = NULL;
                int rc = transport_recv(srv, NULL, &env);
                if (rc == -1) break;
                if (rc == -2) return -1;
                wire_free(&env);
            } else {
                zmq_msg_t id, body;
                zmq_msg_init(&id);
                if (zmq_msg_recv(&id, sock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&id);
                    break;
                }
                zmq_msg_init(&body);
                zmq_msg_recv(&body, sock, 0);
                zmq_msg_close(&body);
                zmq_msg_close(&id);
            }
            if (++got == warm) t0 = now_s();
            if (got == count) break;
        }
        double now = now_s();
        if (now - last > 5.0) return -1;
        if (got > 0) last = now;
    }
    return (double)(count - warm) / (now_s() - t0);
}

/* A valid TrajectoryBatch (1 step, 1 env, obs_dim floats) whose packed
 * envelope is `target` bytes, or the smallest one when target is below
 * that. The bytes are almost all packed floats, as in real batches. */
static Rlhf__Envelope *batch_of_size(size_t target, size_t *packed) {
    Rlhf__Envelope *e = calloc(1, sizeof *e);
    Rlhf__TrajectoryBatch *b = calloc(1, sizeof *b);
    static float one[1];
    static uint8_t no_end[1];
    wire_envelope_init(e, "rollout-1", 1);
    rlhf__trajectory_batch__init(b);
    b->worker_id = "rollout-1";
    b->has_batch_seq = 1, b->batch_seq = 1;
    b->has_policy_version = 1, b->policy_version = 1;
    b->env_id = "CartPole-v1";
    b->has_n_envs = 1, b->n_envs = 1;
    b->has_steps = 1, b->steps = 1;
    b->has_obs_dim = 1;
    b->has_act_dim = 1, b->act_dim = 1;
    b->n_actions = 1, b->actions = one;
    b->n_logp = 1, b->logp = one;
    b->n_values = 1, b->values = one;
    b->n_true_rewards = 1, b->true_rewards = one;
    b->has_ends = 1, b->ends.len = 1, b->ends.data = no_end;
    e->body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH;
    e->trajectory_batch = b;
    size_t dim = 1;
    for (;;) {
        b->obs_dim = (uint32_t)dim;
        b->n_obs = dim;
        size_t sz = rlhf__envelope__get_packed_size(e);
        if (sz >= target) break;
        size_t step = (target - sz) / 4;
        dim += step ? step : 1;
    }
    b->obs = calloc(dim, sizeof(float));
    for (size_t i = 0; i < dim; i++) b->obs[i] = (float)i * 0.25f;
    *packed = rlhf__envelope__get_packed_size(e);
    return e;
}

static void free_batch(Rlhf__Envelope *e) {
    free(e->trajectory_batch->obs);
    free(e->trajectory_batch);
    free(e);
}

typedef struct {
    transport_sock_t *srv, *cli;
} pair_t;

/* One run: returns messages per second. */
static double run(transport_t *ts, pair_t *p, int envelope, size_t size, const Rlhf__Envelope *env) {
    long timed = (long)(BYTES_PER_RUN / size);
    if (timed > MAX_MSGS) timed = MAX_MSGS;
    if (timed < MIN_MSGS) timed = MIN_MSGS;
    long warm = timed / 10 + 10;
    sender_t s = {p->cli, envelope, size, env, warm + timed};
    pthread_t th;
    pthread_create(&th, NULL, sender_main, &s);
    double rate = receive(ts, p->srv, envelope, warm, warm + timed);
    pthread_join(th, NULL);
    return rate;
}

int main(void) {
    double start = now_s();
    log_set_name("bench_transport");
    log_set_level(LOG_WARN);
    transport_options_t o;
    transport_options_default(&o);
    o.linger_ms = 0;
    transport_t *ts = transport_new(&o), *tc = transport_new(&o);
    char err[256];
    transport_keypair_t server_keys, client_keys;
    if (!ts || !tc || transport_keypair_generate(&server_keys, err, sizeof err) ||
        transport_keypair_generate(&client_keys, err, sizeof err)) {
        fprintf(stderr, "bench_transport: setup failed %s\n", err);
        return 1;
    }
    transport_allow_t *allow = transport_allow_new();
    transport_allow_add(allow, client_keys.public_z85, "bench", err, sizeof err);
    if (transport_zap_start(ts, &allow, err, sizeof err) != 0) {
        fprintf(stderr, "bench_transport: %s\n", err);
        return 1;
    }
    pair_t plain, curve;
    plain.srv = transport_server_new(ts, "tcp://127.0.0.1:*", NULL, err, sizeof err);
    curve.srv = transport_server_new(ts, "tcp://127.0.0.1:*", &server_keys, err, sizeof err);
    if (!plain.srv || !curve.srv) {
        fprintf(stderr, "bench_transport: %s\n", err);
        return 1;
    }
    plain.cli = transport_client_new(tc, transport_sock_endpoint(plain.srv), NULL, NULL, err, sizeof err);
    curve.cli = transport_client_new(tc, transport_sock_endpoint(curve.srv), &client_keys, server_keys.public_z85,
                                     err, sizeof err);
    if (!plain.cli || !curve.cli) {
        fprintf(stderr, "bench_transport: %s\n", err);
        return 1;
    }

    printf("DEALER -> ROUTER over tcp://127.0.0.1, sender thread -> receiver thread; x = ratio to raw\n");
    printf("%8s %11s %9s | %8s %11s %6s | %11s %6s | %11s %6s\n", "size", "raw msg/s", "raw MB/s", "env B",
           "env msg/s", "x", "CURVE msg/s", "x", "env+CURVE/s", "x");
    for (size_t size = MIN_SIZE; size <= MAX_SIZE; size *= 2) {
        size_t packed;
        Rlhf__Envelope *env = batch_of_size(size, &packed);
        double raw = run(ts, &plain, 0, size, NULL);
        double envr = run(ts, &plain, 1, packed, env);
        double raw_c = run(ts, &curve, 0, size, NULL);
        double env_c = run(ts, &curve, 1, packed, env);
        printf("%8zu %11.0f %9.1f | %8zu %11.0f %6.2f | %11.0f %6.2f | %11.0f %6.2f\n", size, raw,
               raw * (double)size / 1e6, packed, envr, envr / raw, raw_c, raw_c / raw, env_c, env_c / raw);
        fflush(stdout);
        free_batch(env);
    }
    const transport_stats_t *st = transport_sock_stats(plain.srv);
    const transport_stats_t *sc = transport_sock_stats(curve.srv);
    if (st->dropped || sc->dropped) printf("warning: %llu messages dropped\n", (unsigned long long)(st->dropped + sc->dropped));
    transport_destroy(&tc);
    transport_destroy(&ts);
    printf("total %.1f s\n", now_s() - start);
    return 0;
}

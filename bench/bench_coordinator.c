/* bench_coordinator.c - trajectory throughput through the coordinator
 * against raw ZeroMQ at the same message size, in the same run.
 *
 *   raw          zmq_send of frames of the batch's size DEALER -> ROUTER,
 *                zmq_msg_recv on the other side: what ZeroMQ alone does.
 *   raw relay    the same frames through a third party that only passes
 *                them on (ROUTER in, DEALER out, zero copy, its own thread
 *                and context): two hops and no protocol, the bound any relay
 *                has on the same cores.
 *   relay        a fake rollout worker (its own thread and context, as a
 *                process would have) sends rollout-sized TrajectoryBatch
 *                envelopes (acted once by a real actor, packed once) within
 *                its credit; a real rlhf-coordinator (child process)
 *                receives, decodes and validates each, checks its policy
 *                lag, follows its episodes, queues it and forwards it; a
 *                registered learner DEALER (main thread) receives the
 *                frames and returns credit. The same work at both ends as
 *                raw: the difference is the coordinator.
 *   learner      the same, but the learner side is learnerlink: decode,
 *                validate and copy into a traj_t, as rank 0 does.
 *
 * The coordinator runs with coordinator.rollout_credit = 32 and the learner
 * with a window of 64, so the figure is throughput, not round trips.
 * Two sizes: CartPole with 8 environments x 128 steps, and 64 x 128. Each
 * figure is the median of REPEATS runs, the modes interleaved (the machine
 * is shared and noisy). Prints batches per second and the ratios
 * relay / raw (the aim: >= 0.8) and relay / raw relay (the coordinator's
 * own cost: what is left once both pay for two hops).
 *
 *   bench_coordinator [BUILD]   (BUILD/bin/rlhf-coordinator; default: the
 *                                folder above this program's) */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor.h"
#include "codec.h"
#include "job.h"
#include "learnerlink.h"
#include "peer.h"
#include "transport.h"
#include "util.h"
#include "weights.h"
#include "wire.h"

#define CREDIT 32
#define REPEATS 5

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}
#define WINDOW 64

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("bench_coordinator: bind");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* One real batch of the job, packed as an envelope from `sender`. */
static uint8_t *make_batch(const job_t *job, const char *sender, size_t *len) {
    char err[512];
    actor_t *a = actor_new(job->env.id, job->env.n_envs, 1, err, sizeof err);
    policy_t *p = weights_policy_new(job, err, sizeof err);
    if (!a || !p) {
        fprintf(stderr, "bench_coordinator: %s\n", err);
        exit(1);
    }
    const env_class_t *cls = actor_env_class(a);
    traj_t *b = traj_new(job->ppo.n_steps, job->env.n_envs, cls->obs_dim, cls->act.discrete ? 1 : cls->act.n);
    rng_t rng;
    rng_seed(&rng, 1);
    actor_run(a, p, &rng, b);
    codec_batch_t cb = {0};
    codec_batch_from_traj(&cb, b, sender, 1, job->env.id);
    Rlhf__Envelope env;
    wire_envelope_init(&env, sender, 1);
    env.body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH;
    env.trajectory_batch = &cb.msg;
    uint8_t *buf = wire_pack(&env, len, err, sizeof err);
    if (!buf) {
        fprintf(stderr, "bench_coordinator: %s\n", err);
        exit(1);
    }
    codec_batch_free(&cb);
    traj_destroy(&b);
    policy_destroy(&p);
    actor_destroy(&a);
    return buf;
}

/* ---- the fake rollout worker (its own thread and context) ---------------------- */

typedef struct {
    const char *endpoint;
    const uint8_t *batch;
    size_t len;
    long count;
    volatile int stop;
    int failed;
} rollout_t;

static void *rollout_main(void *arg) {
    rollout_t *r = arg;
    char err[512];
    peer_options_t po = {.endpoint = r->endpoint, .kind = RLHF__PEER_KIND__PEER_ROLLOUT, .peer_id = "bench-rollout"};
    peer_t *p = peer_new(&po, err, sizeof err);
    if (!p) {
        fprintf(stderr, "bench_coordinator: %s\n", err);
        r->failed = 1;
        return NULL;
    }
    long sent = 0;
    int credit = 0;
    uint64_t welcomes = 0;
    while (!r->stop) {
        Rlhf__Envelope *env = NULL;
        int got = peer_poll(p, credit > 0 && sent < r->count ? 0 : 1, &env);
        if (got < 0) break;
        if (got == 1) {
            if (env->body_case == RLHF__ENVELOPE__BODY_ACK) credit++;
            wire_free(&env);
        }
        if (peer_welcomes(p) != welcomes) {
            welcomes = peer_welcomes(p);
            credit = CREDIT;
        }
        /* The packed bytes as they are: the same envelope (and seq) each
         * time, which the coordinator takes as a new batch every time. */
        while (credit > 0 && sent < r->count && peer_registered(p)) {
            if (zmq_send(transport_sock_zmq(peer_socket(p)), r->batch, r->len, ZMQ_DONTWAIT) < 0) break;
            credit--;
            sent++;
        }
    }
    peer_destroy(&p);
    return NULL;
}

static void learner_register(Rlhf__Register *r, void *arg) {
    (void)arg;
    r->caps->has_n_ranks = 1, r->caps->n_ranks = 1;
    r->caps->has_max_inflight = 1, r->caps->max_inflight = WINDOW;
}

/* The relay's learner: registers, then reads frames as they come (no
 * decoding) and returns one credit per batch. */
static double relay_learner(const char *endpoint, long warm, long count) {
    char err[512];
    peer_options_t po = {.endpoint = endpoint, .kind = RLHF__PEER_KIND__PEER_LEARNER, .peer_id = "bench-learner",
                         .on_register = learner_register};
    peer_t *p = peer_new(&po, err, sizeof err);
    double end = now_s() + 10, rate = -1;
    while (p && !peer_registered(p) && now_s() < end) {
        Rlhf__Envelope *env = NULL;
        peer_poll(p, 50, &env);
        wire_free(&env);
    }
    if (!p || !peer_registered(p)) {
        peer_destroy(&p);
        return -1;
    }
    void *sock = transport_sock_zmq(peer_socket(p));
    long got = 0;
    double t0 = 0, last = now_s();
    while (got < warm + count && now_s() - last < 5) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0 && zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
            if (zmq_msg_size(&m) > 4096) { /* a batch (heartbeats are small) */
                peer_ack(p, 0, 1);
                if (++got == warm) t0 = now_s();
                last = now_s();
            }
        }
        zmq_msg_close(&m);
    }
    if (got == warm + count) rate = (double)count / (now_s() - t0);
    /* Back to the protocol for the shutdown. */
    Rlhf__Envelope env;
    Rlhf__Shutdown sd;
    peer_envelope(p, &env);
    rlhf__shutdown__init(&sd);
    sd.reason = "benchmark done";
    env.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &sd;
    peer_send(p, &env);
    peer_destroy(&p);
    return rate;
}

/* Batches per second through the coordinator; full: to learnerlink. */
static double through_coordinator(const char *coord_bin, const char *dir, const job_t *job, const uint8_t *batch,
                                  size_t len, long warm, long count, int full) {
    char jobpath[600], logpath[600], endpoint[64];
    snprintf(jobpath, sizeof jobpath, "%s/job.ini", dir);
    snprintf(logpath, sizeof logpath, "%s/coordinator.log", dir);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", free_port());
    char *text = job_write_text(job);
    FILE *f = fopen(jobpath, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    char credit[64], queue[64];
    snprintf(credit, sizeof credit, "coordinator.rollout_credit=%d", CREDIT);
    snprintf(queue, sizeof queue, "coordinator.learner_queue=%d", 4 * CREDIT);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(coord_bin, coord_bin, jobpath, "--bind", endpoint, "--set", credit, "--set", queue, (char *)NULL);
        _exit(127);
    }
    double rate = -1;
    char err[512];
    rollout_t r = {.endpoint = endpoint, .batch = batch, .len = len, .count = warm + count};
    pthread_t th;
    pthread_create(&th, NULL, rollout_main, &r);
    if (!full) {
        rate = relay_learner(endpoint, warm, count);
        r.stop = 1;
        pthread_join(th, NULL);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return rate;
    }
    learnerlink_options_t lo = {.endpoint = endpoint, .n_ranks = 1, .window = WINDOW};
    learnerlink_t *ll = learnerlink_new(&lo, err, sizeof err);
    double end = now_s() + 10;
    while (ll && !learnerlink_job(ll) && now_s() < end) learnerlink_poll(ll, 50);
    if (ll && learnerlink_job(ll)) {
        const env_class_t *cls = env_find(job->env.id);
        traj_t *b = traj_new(job->ppo.n_steps, job->env.n_envs, cls->obs_dim, cls->act.discrete ? 1 : cls->act.n);
        long got = 0;
        double t0 = 0, last = now_s();
        while (got < warm + count) {
            if (learnerlink_poll(ll, 5) < 0) break;
            while (got < warm + count && learnerlink_next_batch(ll, b) == 1)
                if (++got == warm) t0 = now_s();
            if (got > 0 && now_s() - last > 5) break; /* stalled */
            if (got) last = now_s();
        }
        if (got == warm + count) rate = (double)count / (now_s() - t0);
        traj_destroy(&b);
        learnerlink_shutdown(ll, "benchmark done", 3000);
    } else {
        fprintf(stderr, "bench_coordinator: no Welcome from the coordinator (see %s)\n", logpath);
    }
    r.stop = 1;
    pthread_join(th, NULL);
    learnerlink_destroy(&ll);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rate;
}

/* ---- raw ZeroMQ ------------------------------------------------------------------- */

typedef struct {
    transport_sock_t *cli;
    size_t len;
    long count;
} raw_sender_t;

static void *raw_main(void *arg) {
    raw_sender_t *s = arg;
    char *frame = calloc(1, s->len);
    for (long i = 0; i < s->count; i++)
        if (zmq_send(transport_sock_zmq(s->cli), frame, s->len, 0) < 0) break;
    free(frame);
    return NULL;
}

/* The raw relay's middle: ROUTER in, DEALER out, frames passed on as they are. */
typedef struct {
    transport_sock_t *in, *out;
    volatile int stop;
} raw_relay_t;

static void *raw_relay_main(void *arg) {
    raw_relay_t *r = arg;
    void *in = transport_sock_zmq(r->in), *out = transport_sock_zmq(r->out);
    while (!r->stop) {
        zmq_pollitem_t it = {in, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0) continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, in, 0) >= 0 && zmq_msg_recv(&body, in, 0) >= 0) zmq_msg_send(&body, out, 0);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    return NULL;
}

/* Frames per second sender -> receiver, directly or through a raw relay. */
static double raw_zmq(size_t len, long warm, long count, int relay) {
    transport_options_t o;
    transport_options_default(&o);
    o.linger_ms = 0;
    transport_t *ts = transport_new(&o), *tc = transport_new(&o), *tr = transport_new(&o);
    char err[256];
    transport_sock_t *srv = transport_server_new(ts, "tcp://127.0.0.1:*", NULL, err, sizeof err);
    raw_relay_t rr = {0};
    pthread_t relay_th;
    const char *to = transport_sock_endpoint(srv);
    if (relay) {
        rr.in = transport_server_new(tr, "tcp://127.0.0.1:*", NULL, err, sizeof err);
        rr.out = transport_client_new(tr, transport_sock_endpoint(srv), NULL, NULL, err, sizeof err);
        to = transport_sock_endpoint(rr.in);
        pthread_create(&relay_th, NULL, raw_relay_main, &rr);
    }
    transport_sock_t *cli = transport_client_new(tc, to, NULL, NULL, err, sizeof err);
    raw_sender_t s = {cli, len, warm + count};
    pthread_t th;
    pthread_create(&th, NULL, raw_main, &s);
    void *sock = transport_sock_zmq(srv);
    long got = 0;
    double t0 = 0;
    while (got < warm + count) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&body, sock, 0) < 0) break;
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        if (++got == warm) t0 = now_s();
    }
    double rate = got == warm + count ? (double)count / (now_s() - t0) : -1;
    pthread_join(th, NULL);
    if (relay) {
        rr.stop = 1;
        pthread_join(relay_th, NULL);
    }
    transport_destroy(&tc);
    transport_destroy(&tr);
    transport_destroy(&ts);
    return rate;
}

int main(int argc, char **argv) {
    log_set_name("bench_coordinator");
    log_set_level(LOG_WARN);
    char build[512], coord_bin[700], dir[512];
    if (argc > 1) {
        snprintf(build, sizeof build, "%s", argv[1]);
    } else {
        char self[512];
        snprintf(self, sizeof self, "%s", argv[0]);
        snprintf(build, sizeof build, "%s/..", dirname(self));
    }
    snprintf(coord_bin, sizeof coord_bin, "%s/bin/rlhf-coordinator", build);
    if (access(coord_bin, X_OK) != 0) {
        fprintf(stderr, "bench_coordinator: %s not found (build it first)\n", coord_bin);
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bench-coordinator-%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir_p(dir);
    signal(SIGPIPE, SIG_IGN);
    static const struct {
        int n_envs, n_steps;
        long count;
    } sizes[] = {{8, 128, 3000}, {64, 128, 500}};
    printf("%-28s %8s %9s %10s %9s %10s %10s %8s %10s\n", "batch", "bytes", "raw/s", "rawrelay/s", "relay/s",
           "learner/s", "relay MB/s", "relay/raw", "relay/rawr");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        job_t job;
        char err[512];
        job_defaults(&job);
        job.env.n_envs = sizes[i].n_envs;
        job.ppo.n_steps = sizes[i].n_steps;
        job.ppo.minibatch = 64;
        job.feedback.mode = FEEDBACK_TRUE_REWARD; /* throughput only: no queries */
        job.run.total_steps = (long long)1 << 40;
        if (job_validate(&job, err, sizeof err) != 0) {
            fprintf(stderr, "bench_coordinator: %s\n", err);
            return 1;
        }
        size_t len;
        uint8_t *batch = make_batch(&job, "bench-rollout", &len);
        long count = sizes[i].count, warm = count / 10;
        double m[4][REPEATS];
        for (int k = 0; k < REPEATS; k++) {
            m[0][k] = raw_zmq(len, warm, count, 0);
            m[1][k] = raw_zmq(len, warm, count, 1);
            m[2][k] = through_coordinator(coord_bin, dir, &job, batch, len, warm, count, 0);
            m[3][k] = through_coordinator(coord_bin, dir, &job, batch, len, warm, count, 1);
        }
        double raw = median(m[0], REPEATS), rawr = median(m[1], REPEATS), relay = median(m[2], REPEATS),
               full = median(m[3], REPEATS);
        char name[64];
        snprintf(name, sizeof name, "CartPole %d envs x %d steps", sizes[i].n_envs, sizes[i].n_steps);
        printf("%-28s %8zu %9.0f %10.0f %9.0f %10.0f %10.1f %8.2f %10.2f\n", name, len, raw, rawr, relay, full,
               relay * (double)len / 1e6, raw > 0 ? relay / raw : 0.0, rawr > 0 ? relay / rawr : 0.0);
        fflush(stdout);
        free(batch);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/job.ini", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/coordinator.log", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

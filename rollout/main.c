/* rollout/main.c - rlhf-rollout: a rollout worker.
 *
 *   rlhf-rollout --coordinator tcp://HOST:PORT [--id NAME]
 *                [--curve-secret PATH.key --curve-server COORDINATOR.pub]
 *                [--max-steps-per-s N]
 *
 * Registers with the coordinator (peer.h), builds the job it is handed (the
 * environments with the Welcome's seed, the policy as version 0), then
 * loops: act one batch (actor_run: ppo.n_steps steps of env.n_envs
 * environments), send it as a TrajectoryBatch, repeat while it has credit
 * (coordinator.rollout_credit batches in flight; the coordinator acknowledges
 * each one when it moves on to the learner). Policy Weights are applied as
 * they arrive, which is always between batches: the loop is single-threaded
 * and a batch is acted in one go.
 *
 * --max-steps-per-s N caps this worker's pace (env steps, all its
 * environments together): a batch starts no sooner than batch steps / N
 * seconds after the previous one started, and time lost waiting for credit
 * is not made up in a burst. For a worker sharing a node with others, or a
 * test that must make rollouts the bottleneck on a small machine
 * (tests/test_slurm.c's elastic case).
 *
 * Version 0 needs no Weights: weights_policy_new() builds exactly the
 * learner's initial policy from run.seed (weights.h), so a worker acts from
 * its first Welcome.
 *
 * Exit status: 0 after the coordinator's Shutdown (acknowledged) or SIGTERM /
 * SIGINT; 1 on an error (e.g. a job it cannot run); 2 on bad arguments; 3
 * when the coordinator refuses its CURVE key. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
#include "blas.h"
#include "codec.h"
#include "job.h"
#include "peer.h"
#include "util.h"
#include "weights.h"

#define MAX_CREDIT 1000 /* coordinator.rollout_credit's upper bound */

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

typedef struct {
    peer_t *peer;
    job_t job;
    int have_job;
    uint64_t job_hash;
    actor_t *actor;
    policy_t *policy;
    rng_t rng;
    traj_t *traj;
    codec_batch_t cb;
    uint64_t policy_version;
    weights_rx_t rx;
    weights_t w;
    uint64_t batch_seq;
    uint64_t unacked[MAX_CREDIT]; /* envelope seqs of batches sent, not yet acknowledged */
    int n_unacked;
    int pending;                  /* a batch acted but not sent yet (the queue was full) */
    double retry_at;              /* when to try sending the pending batch again */
    uint64_t batches_sent, weights_applied;
    float *render;                /* (T, N, render_dim) render states of the batch, or NULL */
    int render_dim;
} rollout_t;

static void on_heartbeat(Rlhf__Heartbeat *h, void *arg) {
    rollout_t *r = arg;
    h->has_policy_version = 1, h->policy_version = r->policy_version;
    h->has_inflight = 1, h->inflight = (uint32_t)r->n_unacked;
}

/* Credit whose Ack was lost (a connection that dropped and came back):
 * batches up to peer_seq have all reached the coordinator, which holds
 * `inflight` of them, the newest (it forwards in order); the older ones
 * moved on. Seqs in unacked[] are in sending order. */
static void on_coordinator_heartbeat(const Rlhf__Heartbeat *h, void *arg) {
    rollout_t *r = arg;
    if (!h->has_peer_seq || !h->has_inflight) return;
    int arrived = 0;
    while (arrived < r->n_unacked && r->unacked[arrived] <= h->peer_seq) arrived++;
    int drop = arrived - (int)h->inflight;
    if (drop <= 0) return;
    log_info("%d batch acknowledgements lost: credit recovered", drop);
    memmove(r->unacked, r->unacked + drop, sizeof r->unacked[0] * (size_t)(r->n_unacked - drop));
    r->n_unacked -= drop;
}

static void on_register(Rlhf__Register *reg, void *arg) {
    rollout_t *r = arg;
    static char *envs[1];
    if (r->have_job) {
        reg->caps->has_n_envs = 1, reg->caps->n_envs = (uint32_t)r->job.env.n_envs;
        envs[0] = r->job.env.id;
        reg->caps->n_env_ids = 1, reg->caps->env_ids = envs;
    }
}

static void free_job(rollout_t *r) {
    actor_destroy(&r->actor);
    policy_destroy(&r->policy);
    traj_destroy(&r->traj);
    free(r->render);
    r->render = NULL;
    r->render_dim = 0;
    r->have_job = 0;
}

/* (Re)builds everything from the Welcome's job. Keeps the running
 * environments and policy when the job is the one already running (a
 * re-registration after a coordinator restart). */
static int on_welcome(rollout_t *r, const Rlhf__Welcome *w) {
    r->n_unacked = 0; /* a new registration: the old window is void */
    r->pending = 0;
    if (r->have_job && w->job->hash == r->job_hash) return 0;
    free_job(r);
    char err[1024];
    job_defaults(&r->job);
    if (job_load_text(&r->job, w->job->ini, "JobConfig", err, sizeof err) != 0 ||
        job_validate(&r->job, err, sizeof err) != 0) {
        log_error("the coordinator's job does not load: %s", err);
        return -1;
    }
    r->actor = actor_new(r->job.env.id, r->job.env.n_envs, w->seed, err, sizeof err);
    r->policy = r->actor ? weights_policy_new(&r->job, err, sizeof err) : NULL;
    if (!r->policy) {
        log_error("cannot run the job: %s", err);
        actor_destroy(&r->actor);
        return -1;
    }
    const env_class_t *cls = actor_env_class(r->actor);
    r->traj = traj_new(r->job.ppo.n_steps, r->job.env.n_envs, cls->obs_dim, cls->act.discrete ? 1 : cls->act.n);
    /* Render states go with every batch: what a labeler's page draws of the
     * segments the coordinator cuts from them. */
    r->render_dim = cls->render_dim > 0 ? cls->render_dim : 0;
    if (r->render_dim) {
        r->render = mallocCheck(sizeof(float) * (size_t)r->job.ppo.n_steps * r->job.env.n_envs * r->render_dim);
        actor_set_render(r->actor, r->render);
    }
    rng_seed(&r->rng, w->seed);
    r->policy_version = 0;
    r->job_hash = w->job->hash;
    r->have_job = 1;
    log_info("running %s: %d environments x %d steps per batch, seed %" PRIu64, r->job.env.id, r->job.env.n_envs,
             r->job.ppo.n_steps, w->seed);
    return 0;
}

static void on_weights(rollout_t *r, const Rlhf__Weights *m) {
    if (m->model != RLHF__MODEL_KIND__MODEL_POLICY || !r->have_job) return;
    char err[512];
    int rc = weights_rx_add(&r->rx, m, &r->w, err, sizeof err);
    if (rc < 0) log_warn("policy weights dropped: %s", err);
    if (rc != 1) return;
    if (r->w.version <= r->policy_version) return; /* an old one resent */
    if (weights_unpack_policy(&r->w, &r->job, r->policy, err, sizeof err) != 0) {
        log_error("policy weights version %" PRIu64 " not applied: %s", r->w.version, err);
        return;
    }
    r->policy_version = r->w.version;
    r->weights_applied++;
    log_debug("policy version %" PRIu64, r->policy_version);
}

static void on_ack(rollout_t *r, const Rlhf__Ack *a) {
    for (int i = 0; i < r->n_unacked; i++)
        if (r->unacked[i] == a->seq) {
            /* Keep sending order (on_coordinator_heartbeat relies on it). */
            memmove(r->unacked + i, r->unacked + i + 1, sizeof r->unacked[0] * (size_t)(r->n_unacked - i - 1));
            r->n_unacked--;
            return;
        }
    /* An Ack for a batch of an earlier registration: its window is void. */
}

/* Sends the acted batch; 0, or -1 when it has to wait (queue full). */
static int send_batch(rollout_t *r) {
    Rlhf__Envelope env;
    peer_envelope(r->peer, &env);
    env.body_case = RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH;
    env.trajectory_batch = &r->cb.msg;
    if (peer_send(r->peer, &env) != 0) return -1;
    r->unacked[r->n_unacked++] = env.seq;
    r->batches_sent++;
    r->pending = 0;
    return 0;
}

static int usage(FILE *f) {
    fprintf(f, "usage: rlhf-rollout --coordinator tcp://HOST:PORT [--id NAME]\n"
               "                    [--curve-secret PATH.key --curve-server COORDINATOR.pub] [--max-steps-per-s N]\n");
    return 2;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    log_set_name("rlhf-rollout");
    const char *endpoint = NULL, *id = NULL, *secret = NULL, *server = NULL;
    double max_rate = 0;   /* env steps per second; 0: as fast as it can */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage(stdout), 0;
        if (!v) return fprintf(stderr, "rlhf-rollout: %s needs a value\n", a), usage(stderr);
        if (strcmp(a, "--coordinator") == 0) endpoint = v;
        else if (strcmp(a, "--id") == 0) id = v;
        else if (strcmp(a, "--curve-secret") == 0) secret = v;
        else if (strcmp(a, "--curve-server") == 0) server = v;
        else if (strcmp(a, "--max-steps-per-s") == 0) {
            char *end;
            max_rate = strtod(v, &end);
            if (end == v || *end || !(max_rate > 0) || max_rate > 1e9)
                return fprintf(stderr, "rlhf-rollout: --max-steps-per-s: expected a number > 0, got '%s'\n", v), 2;
        } else return fprintf(stderr, "rlhf-rollout: unknown option '%s'\n", a), usage(stderr);
        i++;
    }
    if (!endpoint) return fprintf(stderr, "rlhf-rollout: --coordinator is required\n"), usage(stderr);
    if (!secret != !server)
        return fprintf(stderr, "rlhf-rollout: CURVE needs both --curve-secret and --curve-server\n"), 2;
    char idbuf[WIRE_MAX_NAME + 1], host[64] = "";
    if (!id) {
        gethostname(host, sizeof host - 1);
        snprintf(idbuf, sizeof idbuf, "rollout-%s-%d", host[0] ? host : "host", (int)getpid());
        id = idbuf;
    }
    static char logname[WIRE_MAX_NAME + 16];
    snprintf(logname, sizeof logname, "rlhf-rollout %s", id);
    log_set_name(logname);

    char err[1200];
    transport_keypair_t keys;
    char server_pub[TRANSPORT_Z85_LEN + 1];
    if (secret && peer_load_keys(secret, server, &keys, server_pub, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf-rollout: %s\n", err);
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static rollout_t r;
    weights_rx_init(&r.rx);
    peer_options_t po = {.endpoint = endpoint,
                         .kind = RLHF__PEER_KIND__PEER_ROLLOUT,
                         .peer_id = id,
                         .keys = secret ? &keys : NULL,
                         .server_public_z85 = secret ? server_pub : NULL,
                         .on_register = on_register,
                         .on_heartbeat = on_heartbeat,
                         .on_coordinator_heartbeat = on_coordinator_heartbeat,
                         .arg = &r};
    r.peer = peer_new(&po, err, sizeof err);
    if (!r.peer) {
        fprintf(stderr, "rlhf-rollout: %s\n", err);
        return 1;
    }
    int rc = 0;
    double last_report = now_s(), next_act = 0;   /* --max-steps-per-s: not before next_act */
    while (!stop) {
        double t = now_s();
        int paced = !r.pending && t < next_act;
        int can_act = r.have_job && peer_registered(r.peer) && !paced &&
                      (r.pending ? t >= r.retry_at : r.n_unacked < r.job.coordinator.rollout_credit);
        int wait_ms = can_act ? 0 : r.pending ? 10 : paced ? (int)fmin(100, 1000 * (next_act - t) + 1) : 100;
        Rlhf__Envelope *env = NULL;
        int got = peer_poll(r.peer, wait_ms, &env);
        if (got < 0) {
            log_error("%s", peer_error(r.peer));
            rc = 3;
            break;
        }
        if (got == 1) {
            switch (env->body_case) {
            case RLHF__ENVELOPE__BODY_WELCOME:
                if (on_welcome(&r, env->welcome) != 0) rc = 1;
                break;
            case RLHF__ENVELOPE__BODY_WEIGHTS: on_weights(&r, env->weights); break;
            case RLHF__ENVELOPE__BODY_ACK: on_ack(&r, env->ack); break;
            case RLHF__ENVELOPE__BODY_SHUTDOWN:
                log_info("shutdown: %s (%" PRIu64 " batches sent, policy version %" PRIu64 ")", env->shutdown->reason,
                         r.batches_sent, r.policy_version);
                peer_ack(r.peer, env->seq, 0);
                stop = 1;
                break;
            default:
                log_debug("ignoring a %s", wire_body_name(env->body_case));
                break;
            }
            wire_free(&env);
            if (rc) break;
            continue; /* drain what has arrived before acting */
        }
        if (!can_act || stop) continue;
        if (!r.pending) {
            if (max_rate > 0)
                next_act = fmax(next_act, now_s()) + (double)r.job.ppo.n_steps * r.job.env.n_envs / max_rate;
            actor_run(r.actor, r.policy, &r.rng, r.traj);
            r.traj->policy_version = r.policy_version;
            codec_batch_from_traj(&r.cb, r.traj, peer_id(r.peer), ++r.batch_seq, r.job.env.id);
            if (r.render) {
                r.cb.msg.has_render_dim = 1, r.cb.msg.render_dim = (uint32_t)r.render_dim;
                r.cb.msg.n_render_states = (size_t)r.traj->T * r.traj->N * r.render_dim;
                r.cb.msg.render_states = r.render;
            }
            r.pending = 1;
        }
        if (send_batch(&r) != 0) {
            if (errno == EAGAIN || errno == ENOTCONN)
                r.retry_at = now_s() + 0.01; /* the queue to the coordinator is full: wait, keep the batch */
            else
                r.pending = 0; /* cannot be sent at all (logged by the transport) */
        }
        double now = now_s();
        if (now - last_report > 30) {
            last_report = now;
            log_info("%" PRIu64 " batches sent, policy version %" PRIu64, r.batches_sent, r.policy_version);
        }
    }
    codec_batch_free(&r.cb);
    weights_free(&r.w);
    weights_rx_free(&r.rx);
    free_job(&r);
    peer_destroy(&r.peer);
    return rc;
}

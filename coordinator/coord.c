/* coord.c - see coord.h. One loop:
 *
 *   poll the ROUTER (and the transport's ZAP/monitor sockets) for at most
 *   the time to the next timer, then
 *     receive: every waiting message, each handled to completion;
 *     timers:  heartbeats to every peer, the peers' liveness, query leases,
 *              the label schedule, handing queries to idle labelers,
 *              pumping batches and labels to the learner, status.json,
 *              the end of a shutdown.
 *
 * The handlers are plain functions of (coordinator, peer, message); none
 * blocks, and every send is non-blocking (a full queue towards one peer
 * stalls only what goes to that peer). */
#include "coord.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor.h"
#include "codec.h"
#include "env.h"
#include "episodes.h"
#include "http.h"
#include "json.h"
#include "query.h"
#include "reward.h"
#include "store.h"
#include "util.h"
#include "weights.h"

#define RECENT_EPISODES 64      /* the local feed's ring size (feed_local.c) */
#define LAG_BINS 9              /* lag.0 .. lag.7, lag.8+ */
#define PUMP_MAX 64             /* labels sent to the learner per loop turn: heartbeats go on */
#define MAX_WINDOW 64           /* a learner's or labeler's window, at most */
#define SHUTDOWN_GRACE_MS 3000  /* how long peers get to acknowledge Shutdown */
#define STATUS_EVERY_S 2.0

/* ---- counters ------------------------------------------------------------ */

#define COUNTERS(X)                                     \
    X(peers_registered, "peers.registered")             \
    X(peers_reconnected, "peers.reconnected")           \
    X(peers_replaced, "peers.replaced")                 \
    X(peers_dead, "peers.dead")                         \
    X(batches_received, "batches.received")             \
    X(batches_accepted, "batches.accepted")             \
    X(batches_dropped_lag, "batches.dropped_lag")       \
    X(batches_dropped_bad, "batches.dropped_bad")       \
    X(batches_dropped_full, "batches.dropped_full")     \
    X(batches_forwarded, "batches.forwarded")           \
    X(batches_lost, "batches.lost")                     \
    X(queries_made, "queries.made")                     \
    X(queries_leased, "queries.leased")                 \
    X(queries_expired, "queries.expired")               \
    X(queries_returned, "queries.returned")             \
    X(labels_stored, "labels.stored")                   \
    X(labels_duplicate, "labels.duplicate")             \
    X(labels_rejected, "labels.rejected")               \
    X(labels_unknown, "labels.unknown_query")           \
    X(labels_cant_tell, "labels.cant_tell")             \
    X(labels_forwarded, "labels.forwarded")             \
    X(labels_undone, "labels.undone")                   \
    X(queries_skipped, "queries.skipped")               \
    X(queries_waited, "queries.waited")                 \
    X(store_failed, "store.failed")                     \
    X(weights_policy, "weights.policy")                 \
    X(weights_reward, "weights.reward")                 \
    X(weights_bad, "weights.bad")                       \
    X(messages_unregistered, "messages.unregistered")   \
    X(messages_forbidden, "messages.forbidden")

typedef struct {
#define FIELD(f, name) uint64_t f;
    COUNTERS(FIELD)
#undef FIELD
} counters_t;

/* ---- state ---------------------------------------------------------------- */

typedef struct {
    char id[WIRE_MAX_NAME + 1];
    Rlhf__PeerKind kind;
    uint64_t incarnation;
    uint8_t identity[256];
    size_t identity_len;
    char user_id[WIRE_MAX_NAME + 1];   /* the CURVE key's name at registration ("" without CURVE) */
    char address[64];
    char host[WIRE_MAX_NAME + 1];
    uint32_t pid;
    uint32_t index;                    /* dense among its kind: the episodes' source for a rollout worker */
    double last_seen, registered_at;
    uint64_t last_seq;                 /* the envelope seq of its latest message */
    int unreachable;                   /* a send found its connection gone: none until it speaks again */
    /* rollout */
    int held;                          /* its batches in our queue */
    uint64_t lag_dropped, lag_unlogged;
    double lag_logged_at;
    /* labeler */
    int max_inflight, inflight, kinds;
    /* learner */
    int window;
    int n_fwd;                         /* batches sent to it and not acknowledged (its Acks carry credit) */
    uint64_t label_cursor;
    /* shutdown */
    uint64_t shutdown_seq;
    int shutdown_acked;
} cpeer_t;

typedef struct {
    zmq_msg_t frame;                   /* the worker's envelope as it came: forwarded unchanged */
    char worker[WIRE_MAX_NAME + 1];
    uint64_t incarnation, seq;         /* acknowledged to that worker when the batch moves on */
} qbatch_t;

/* A labeler's hold on a query: a ZeroMQ peer (its incarnation) or an HTTP
 * labeler (by name); incarnation 0 for a lease recovered from the store. */
typedef struct {
    char who[STORE_NAME_MAX];
    uint64_t incarnation;
    int http;
    double deadline;                   /* now_s() clock */
    uint64_t deadline_us;              /* wall clock, as stored */
} lease_t;

/* A query's live state; what is durable (answers, done) is in the store. */
typedef struct {
    uint64_t id;
    int round;
    lease_t leases[LABEL_MAX_K];
    int n_leases;
    char (*excl)[STORE_NAME_MAX];      /* labelers who answered or skipped it: not offered to them again */
    int n_excl, cap_excl;
} cquery_t;

#define HISTORY_MAX 4096                /* /api/stats curve points kept (halved when full) */
#define CURVES 5
static const char *const curve_names[CURVES] = {"env_steps", "labels", "true_return", "learned_return",
                                                "reward_model_accuracy"};

struct coord {
    job_t job;
    char *job_text;
    uint64_t job_hash;
    char run_id[WIRE_MAX_NAME + 1];
    const env_class_t *cls;
    int obs_dim, act_dim;
    double hb_s, dead_s, learner_dead_s, lease_s;

    transport_t *t;
    transport_sock_t *srv;
    int curve;
    char out_dir[1024];
    uint64_t seq, hb_seq, labeled_seq;

    cpeer_t **peers;
    int n_peers, cap_peers;
    uint64_t registrations;

    qbatch_t *queue;                   /* a ring of learner_queue entries */
    int q_head, q_len;
    traj_t view;                       /* the batch being accepted, pointing into its message */
    uint8_t *done, *terminated;        /* (T*N) the view's flags */
    episodes_t *eps;
    long long env_steps;               /* of batches accepted since this coordinator started */
    long long steps_base;              /* the learner's count when it first registered with us */

    int learner_seen;                  /* a learner has registered since we started: the schedule may run */
    size_t label_pos;                  /* the next stored label to send to the learner */

    store_t *store;
    reward_model_t *rm;
    rng_t rng_feedback, rng_seeds;
    int next_kind;
    segstore_t *asked;
    query_t *qbuf;
    int qbuf_cap;
    cquery_t *cq;                      /* every query made, in id order */
    int n_cq, cap_cq;
    uint64_t first_qid;
    int *open;                         /* indices into cq of queries not answered yet */
    int n_open, cap_open;
    int *round_left;                   /* per round: its queries not answered yet */
    int n_rounds, cap_rounds;
    long long answered, answered_base; /* answered queries: since we started, and before (the learner's count) */
    int outstanding;                   /* asked, not answered */

    weights_rx_t rx_policy, rx_reward;
    weights_t policy;
    uint64_t policy_version, reward_version;
    char policy_arch[WEIGHTS_ARCH_MAX];

    Rlhf__Envelope *learner_status;    /* the learner's latest Status, owned */
    double steps_rate, rate_t;         /* env steps per second over the last status interval */
    long long rate_steps;
    double (*history)[CURVES];         /* a point per learner Status (NAN: metric absent) */
    int n_history;

    http_t *http;                      /* NULL without coordinator.http_port */
    struct web_labeler {               /* people labeling over HTTP: when each was last heard */
        char name[STORE_NAME_MAX];
        double last;                   /* now_s() of their last /api/ call */
    } *web;
    int n_web, cap_web;
    double undo_s;
    int render_dim;
    int queue_full;                    /* schedule_labels found the queue full (logged once per episode) */
    int fault_labels;                  /* tests: this many label commits fail (RLHF_FAULT_LABEL_COMMITS) */

    counters_t n;
    uint64_t lag_hist[LAG_BINS];
    double unregistered_logged_at;

    int shutting_down;
    double shutdown_deadline;
    char shutdown_reason[256];
    double next_hb, next_status;
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *kind_name(Rlhf__PeerKind k) {
    const char *n = wire_peer_kind_name(k);
    return n ? n : "?";
}

static cpeer_t *find_peer(const coord_t *c, const char *id) {
    for (int i = 0; i < c->n_peers; i++)
        if (strcmp(c->peers[i]->id, id) == 0) return c->peers[i];
    return NULL;
}

static cpeer_t *the_learner(const coord_t *c) {
    for (int i = 0; i < c->n_peers; i++)
        if (c->peers[i]->kind == RLHF__PEER_KIND__PEER_LEARNER) return c->peers[i];
    return NULL;
}

static void envelope(coord_t *c, Rlhf__Envelope *env) { wire_envelope_init(env, "coordinator", ++c->seq); }

/* Sends to a peer's latest route. Once a send finds the connection gone
 * (EHOSTUNREACH, logged once), nothing more goes to it until it speaks
 * again: a dead worker is not sent every weights update until its
 * liveness runs out. */
static int send_to(coord_t *c, cpeer_t *p, const Rlhf__Envelope *env) {
    if (p->unreachable) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int rc = transport_send(c->srv, p->identity, p->identity_len, env);
    if (rc != 0 && errno == EHOSTUNREACH) p->unreachable = 1;
    return rc;
}

static int send_ack(coord_t *c, cpeer_t *p, uint64_t seq, uint32_t credit) {
    Rlhf__Envelope env;
    Rlhf__Ack ack;
    envelope(c, &env);
    rlhf__ack__init(&ack);
    ack.has_seq = 1, ack.seq = seq;
    if (credit) ack.has_credit = 1, ack.credit = credit;
    env.body_case = RLHF__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    return send_to(c, p, &env);
}

static void send_error(coord_t *c, const transport_from_t *from, uint64_t in_reply_to, Rlhf__ErrorCode code,
                       const char *text) {
    Rlhf__Envelope env;
    Rlhf__Error e;
    envelope(c, &env);
    env.has_in_reply_to = 1, env.in_reply_to = in_reply_to;
    rlhf__error__init(&e);
    e.has_code = 1, e.code = code;
    e.text = (char *)text;
    env.body_case = RLHF__ENVELOPE__BODY_ERROR;
    env.error = &e;
    transport_send(c->srv, from->identity, from->identity_len, &env);
}

/* ---- weights -------------------------------------------------------------- */

static void send_policy(coord_t *c, cpeer_t *p) {
    if (c->policy_version == 0 || !c->policy.data) return;
    uint64_t sum = weights_checksum(&c->policy);
    size_t n = weights_chunk_count(&c->policy, 0);
    for (size_t i = 0; i < n; i++) {
        Rlhf__Envelope env;
        Rlhf__Weights w;
        envelope(c, &env);
        weights_chunk(&c->policy, 0, i, sum, &w);
        env.body_case = RLHF__ENVELOPE__BODY_WEIGHTS;
        env.weights = &w;
        /* A worker whose queue is full misses this version and takes the next. */
        if (send_to(c, p, &env) != 0) return;
    }
}

static void on_weights(coord_t *c, const Rlhf__Weights *m) {
    int policy = m->model == RLHF__MODEL_KIND__MODEL_POLICY;
    weights_t w = {0};
    char err[512];
    int rc = weights_rx_add(policy ? &c->rx_policy : &c->rx_reward, m, &w, err, sizeof err);
    if (rc < 0) {
        c->n.weights_bad++;
        log_warn("weights from the learner dropped: %s", err);
    }
    if (rc != 1) return;
    if (policy) {
        if (strcmp(w.arch, c->policy_arch) != 0) {
            c->n.weights_bad++;
            log_error("policy weights version %" PRIu64 " have arch '%s'; the job's is '%s': not forwarded", w.version,
                      w.arch, c->policy_arch);
            weights_free(&w);
            return;
        }
        weights_free(&c->policy);
        c->policy = w;
        c->policy_version = w.version;
        c->n.weights_policy++;
        for (int i = 0; i < c->n_peers; i++)
            if (c->peers[i]->kind == RLHF__PEER_KIND__PEER_ROLLOUT) send_policy(c, c->peers[i]);
        return;
    }
    if (weights_unpack_reward(&w, &c->job, c->rm, err, sizeof err) != 0) {
        c->n.weights_bad++;
        log_error("reward weights version %" PRIu64 " not loaded: %s", w.version, err);
    } else {
        c->reward_version = w.version;
        c->n.weights_reward++;
    }
    weights_free(&w);
}

static void recover_queries(coord_t *c);
static int api_call(void *arg, const char *method, const char *path, const char *who, const json_t *body, FILE *out,
                    char *err, size_t errlen);
static void write_metrics(void *arg, FILE *f);
static void record_history(coord_t *c, const Rlhf__Status *s);

/* ---- queries ---------------------------------------------------------------- */

static cquery_t *cquery(coord_t *c, uint64_t id) {
    if (c->n_cq == 0 || id < c->first_qid || id - c->first_qid >= (uint64_t)c->n_cq) return NULL;
    return &c->cq[id - c->first_qid];
}

static void open_remove(coord_t *c, int idx) {
    for (int i = 0; i < c->n_open; i++)
        if (c->open[i] == idx) {
            c->open[i] = c->open[--c->n_open];
            return;
        }
}

static void open_add(coord_t *c, int idx) {
    for (int i = 0; i < c->n_open; i++)
        if (c->open[i] == idx) return;
    if (c->n_open == c->cap_open) {
        c->cap_open = c->cap_open ? 2 * c->cap_open : 256;
        c->open = reallocCheck(c->open, sizeof *c->open * c->cap_open);
    }
    c->open[c->n_open++] = idx;
}

/* A new in-memory query (after it is stored), open. */
static cquery_t *cq_add(coord_t *c, uint64_t id, int round) {
    if (c->n_cq == 0) c->first_qid = id;
    if (c->n_cq == c->cap_cq) {
        c->cap_cq = c->cap_cq ? 2 * c->cap_cq : 256;
        c->cq = reallocCheck(c->cq, sizeof *c->cq * c->cap_cq);
    }
    cquery_t *cq = &c->cq[c->n_cq];
    memset(cq, 0, sizeof *cq);
    cq->id = id;
    cq->round = round;
    c->n_cq++;
    return cq;
}

static int excluded(const cquery_t *cq, const char *who) {
    for (int i = 0; i < cq->n_excl; i++)
        if (strcmp(cq->excl[i], who) == 0) return 1;
    return 0;
}

static void exclude(cquery_t *cq, const char *who) {
    if (excluded(cq, who)) return;
    if (cq->n_excl == cq->cap_excl) {
        cq->cap_excl = cq->cap_excl ? 2 * cq->cap_excl : 4;
        cq->excl = reallocCheck(cq->excl, sizeof *cq->excl * cq->cap_excl);
    }
    snprintf(cq->excl[cq->n_excl++], STORE_NAME_MAX, "%s", who);
}

static void unexclude(cquery_t *cq, const char *who) {
    for (int i = 0; i < cq->n_excl; i++)
        if (strcmp(cq->excl[i], who) == 0) {
            memmove(cq->excl[i], cq->excl[cq->n_excl - 1], STORE_NAME_MAX);
            cq->n_excl--;
            return;
        }
}

static lease_t *lease_of(cquery_t *cq, const char *who) {
    for (int i = 0; i < cq->n_leases; i++)
        if (strcmp(cq->leases[i].who, who) == 0) return &cq->leases[i];
    return NULL;
}

/* Drops a lease in memory (the holder's window gets room again). */
static void lease_drop(coord_t *c, cquery_t *cq, int i) {
    lease_t *ls = &cq->leases[i];
    if (!ls->http) {
        cpeer_t *h = find_peer(c, ls->who);
        if (h && h->incarnation == ls->incarnation && h->inflight > 0) h->inflight--;
    }
    cq->leases[i] = cq->leases[--cq->n_leases];
}

static void lease_release(coord_t *c, cquery_t *cq, const char *who, int persist) {
    for (int i = 0; i < cq->n_leases; i++)
        if (strcmp(cq->leases[i].who, who) == 0) {
            lease_drop(c, cq, i);
            if (persist) store_del_lease(c->store, cq->id, who);
            return;
        }
}

/* Whether the query can take another labeler now. */
static int wants_labeler(coord_t *c, const cquery_t *cq, const store_query_t *qd) {
    (void)c;
    return !qd->done && qd->answers + cq->n_leases < qd->answers_wanted;
}

/* Leases cq to who until now + lease_s; persisted (in the caller's
 * transaction when one is open). 0, or -1 (nothing changed). */
static int lease_add(coord_t *c, cquery_t *cq, const char *who, uint64_t incarnation, int http, double *deadline) {
    if (cq->n_leases >= LABEL_MAX_K) return -1;
    uint64_t dl_us = wall_us() + (uint64_t)(c->lease_s * 1e6);
    char err[256];
    if (store_put_lease(c->store, cq->id, who, dl_us, err, sizeof err) != 0) {
        log_warn("query %" PRIu64 ": lease to %s not recorded: %s", cq->id, who, err);
        return -1;
    }
    lease_t *ls = &cq->leases[cq->n_leases++];
    memset(ls, 0, sizeof *ls);
    snprintf(ls->who, sizeof ls->who, "%s", who);
    ls->incarnation = incarnation;
    ls->http = http;
    ls->deadline = now_s() + c->lease_s;
    ls->deadline_us = dl_us;
    if (deadline) *deadline = ls->deadline;
    c->n.queries_leased++;
    return 0;
}

/* The wire form of a stored query; segments (k views) only when segs != NULL. */
static void query_msg(coord_t *c, const store_query_t *qd, Rlhf__Query *q, uint64_t *ids, Rlhf__Segment *segs,
                      Rlhf__Segment **seg_ptrs) {
    rlhf__query__init(q);
    q->has_id = 1, q->id = qd->id;
    q->has_kind = 1, q->kind = qd->kind;
    for (uint32_t j = 0; j < qd->k; j++) ids[j] = qd->seg_ids[j];
    q->n_segment_ids = qd->k, q->segment_ids = ids;
    if (qd->kind == RLHF__QUERY_KIND__QUERY_RANKING) q->has_k = 1, q->k = qd->k;
    q->has_selection_score = 1, q->selection_score = qd->score;
    if (segs) {
        for (uint32_t j = 0; j < qd->k; j++) {
            store_segment(c->store, qd->seg_ids[j], &segs[j]);
            seg_ptrs[j] = &segs[j];
        }
        q->n_segments = qd->k, q->segments = seg_ptrs;
    }
}

/* The answer the segments' true rewards give (the scripted oracle's, for
 * the agreement figures): pairs and rankings; "" for ratings (their scale
 * is the labeler's). */
static void teacher_answer(const segstore_t *s, const query_t *q, char *out, size_t outlen) {
    out[0] = '\0';
    double ret[LABEL_MAX_K];
    for (int j = 0; j < q->k; j++) {
        ret[j] = 0;
        const float *r = segstore_true_r(s, q->seg[j]);
        for (int t = 0; t < s->T; t++) ret[j] += r[t];
    }
    if (q->kind == QUERY_PAIR) {
        snprintf(out, outlen, "%s", ret[0] > ret[1] ? "left" : ret[0] < ret[1] ? "right" : "equal");
    } else if (q->kind == QUERY_RANKING) {
        int order[LABEL_MAX_K];
        for (int j = 0; j < q->k; j++) order[j] = j;
        for (int a = 1; a < q->k; a++) /* stable insertion sort, best first */
            for (int b = a; b > 0 && ret[order[b]] > ret[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        size_t n = 0;
        for (int j = 0; j < q->k && n < outlen; j++) n += (size_t)snprintf(out + n, outlen - n, "%s%d", j ? "," : "", order[j]);
    }
}

/* Asks a round of queries when the label schedule says so (query_due() in
 * query.h, the schedule the local feed follows, over the env steps of
 * accepted batches, counting the queries asked and not answered yet as
 * asked). Runs only once a learner has told us where the run is. The
 * queue is bounded (coordinator.queue_max open queries): when full, the
 * round waits (counted), nothing is dropped. The round's segments and
 * queries are committed together before any is served. */
static void schedule_labels(coord_t *c) {
    const job_t *job = &c->job;
    if (job->feedback.mode == FEEDBACK_TRUE_REWARD || !c->learner_seen || c->shutting_down) return;
    long long steps = c->steps_base + c->env_steps;
    int due = query_due(job, steps, c->answered_base + c->answered + c->outstanding);
    if (due <= 0) return;
    int room = job->coordinator.queue_max - c->n_open;
    if (due > room) {
        /* What does not fit waits for answers (the schedule asks it again
         * later, counted once per wait). */
        if (!c->queue_full) {
            c->queue_full = 1;
            c->n.queries_waited++;
            log_info("the query queue is full (%d open of coordinator.queue_max %d): %d of %d due queries wait for "
                     "answers", c->n_open, job->coordinator.queue_max, due - (room > 0 ? room : 0), due);
        }
        if (room <= 0) return;
        /* Bound by the queue, not the schedule: refill in batches of a
         * sixteenth of the queue rather than one query (one fsync'd round)
         * per answer; the queue holds the other fifteen sixteenths
         * meanwhile. */
        if (room < job->coordinator.queue_max / 16) return;
        due = room;
    } else {
        c->queue_full = 0;
    }
    if (due > 1024) due = 1024; /* one transaction's worth; the rest is due again next turn */
    if (due > c->qbuf_cap) {
        c->qbuf_cap = due;
        c->qbuf = reallocCheck(c->qbuf, sizeof *c->qbuf * due);
    }
    c->asked->n = 0;
    /* Version 0 of the reward model knows nothing: random selection. */
    int made = query_make(job, c->eps, c->reward_version > 0 ? c->rm : NULL, due, &c->next_kind, &c->rng_feedback,
                          c->asked, c->qbuf);
    if (made <= 0) return;
    char err[512];
    uint64_t ids[1024];
    if (store_begin(c->store, err, sizeof err) != 0) {
        c->n.store_failed++;
        log_error("feedback store: %s; the round waits", err);
        return;
    }
    int rd = c->render_dim;
    float *render = rd ? mallocCheck(sizeof(float) * (size_t)job->feedback.segment_len * rd) : NULL;
    int ok = 1;
    for (int i = 0; i < made && ok; i++) {
        const query_t *q = &c->qbuf[i];
        store_query_t sq = {0};
        sq.kind = codec_wire_query_kind(q->kind);
        sq.k = (uint32_t)q->k;
        sq.score = (float)q->score;
        sq.answers_wanted = job->feedback.redundancy;
        teacher_answer(c->asked, q, sq.teacher, sizeof sq.teacher);
        /* The segments first: a query is served only once they are stored. */
        for (int j = 0; j < q->k && ok; j++) {
            const float *obs = segstore_obs(c->asked, q->seg[j]);
            int has_render = render && episodes_render_of(c->eps, obs, job->feedback.segment_len,
                                                          segstore_absorbing(c->asked, q->seg[j]), render) == 0;
            sq.seg_ids[j] = store_put_segment(c->store, obs, segstore_act(c->asked, q->seg[j]),
                                              segstore_true_r(c->asked, q->seg[j]),
                                              segstore_absorbing(c->asked, q->seg[j]), has_render ? render : NULL,
                                              "", c->policy_version, err, sizeof err);
            ok = sq.seg_ids[j] != 0;
        }
        if (ok) ok = (ids[i] = store_put_query(c->store, &sq, err, sizeof err)) != 0;
    }
    free(render);
    if (!ok || store_commit(c->store, err, sizeof err) != 0) {
        if (ok == 0) store_rollback(c->store);
        c->n.store_failed++;
        log_error("feedback store: a round of %d queries not stored: %s; it is asked again later", made, err);
        return;
    }
    if (c->n_rounds == c->cap_rounds) {
        c->cap_rounds = c->cap_rounds ? 2 * c->cap_rounds : 64;
        c->round_left = reallocCheck(c->round_left, sizeof *c->round_left * c->cap_rounds);
    }
    int r = c->n_rounds++;
    c->round_left[r] = made;
    for (int i = 0; i < made; i++) {
        cq_add(c, ids[i], r);
        open_add(c, c->n_cq - 1);
    }
    c->outstanding += made;
    c->n.queries_made += (uint64_t)made;
    log_info("round %d: %d queries at %lld env steps (%lld answered, %s selection)", r, made, steps,
             c->answered_base + c->answered, c->reward_version > 0 && job->feedback.select == SELECT_DISAGREEMENT
                                                  ? "disagreement" : "random");
}

/* The best open query for labeler who (kinds: QUERY_* bits; 0 = any): highest
 * score, then oldest; not one it answered or skipped. -1 when none. */
static int best_query(coord_t *c, const char *who, int kinds) {
    int best = -1;
    float best_score = 0;
    for (int o = 0; o < c->n_open; o++) {
        cquery_t *cq = &c->cq[c->open[o]];
        const store_query_t *qd = store_query(c->store, cq->id);
        if (!wants_labeler(c, cq, qd) || excluded(cq, who) || lease_of(cq, who)) continue;
        if (kinds && !(kinds & codec_query_kind(qd->kind))) continue;
        if (best < 0 || qd->score > best_score || (qd->score == best_score && cq->id < c->cq[best].id)) {
            best = c->open[o];
            best_score = qd->score;
        }
    }
    return best;
}

/* Hands queued queries to ZeroMQ labelers with room, best score first. The
 * leases of one turn are committed together. */
static void assign_queries(coord_t *c) {
    if (c->shutting_down || c->n_open == 0) return;
    int in_txn = 0;
    char err[256];
    for (int i = 0; i < c->n_peers; i++) {
        cpeer_t *p = c->peers[i];
        if (p->kind != RLHF__PEER_KIND__PEER_LABELER) continue;
        while (p->inflight < p->max_inflight) {
            int best = best_query(c, p->id, p->kinds);
            if (best < 0) break;
            if (!in_txn) {
                if (store_begin_lazy(c->store, err, sizeof err) != 0) return;
                in_txn = 1;
            }
            cquery_t *cq = &c->cq[best];
            const store_query_t *qd = store_query(c->store, cq->id);
            double deadline;
            if (lease_add(c, cq, p->id, p->incarnation, 0, &deadline) != 0) break;
            Rlhf__Envelope env;
            Rlhf__Query q;
            uint64_t ids[LABEL_MAX_K];
            Rlhf__Segment segs[LABEL_MAX_K], *ptrs[LABEL_MAX_K];
            envelope(c, &env);
            query_msg(c, qd, &q, ids, segs, ptrs);
            q.has_lease_deadline_us = 1, q.lease_deadline_us = cq->leases[cq->n_leases - 1].deadline_us;
            env.body_case = RLHF__ENVELOPE__BODY_QUERY;
            env.query = &q;
            p->inflight++;
            if (send_to(c, p, &env) != 0) {
                lease_release(c, cq, p->id, 1);
                c->n.queries_leased--;
                break;
            }
        }
    }
    /* The lease records only say who holds what after a restart: a failed
     * commit costs nothing but that (logged). */
    if (in_txn && store_commit(c->store, err, sizeof err) != 0) log_warn("feedback store: leases not recorded: %s", err);
}

static void check_leases(coord_t *c, double now) {
    int in_txn = 0;
    char err[256];
    for (int o = 0; o < c->n_open; o++) {
        cquery_t *cq = &c->cq[c->open[o]];
        for (int i = 0; i < cq->n_leases; i++) {
            if (now < cq->leases[i].deadline) continue;
            if (!in_txn) in_txn = store_begin_lazy(c->store, err, sizeof err) == 0;
            log_info("query %" PRIu64 ": lease of %s expired unanswered; back on the queue", cq->id, cq->leases[i].who);
            store_del_lease(c->store, cq->id, cq->leases[i].who);
            lease_drop(c, cq, i--);
            c->n.queries_expired++;
        }
    }
    if (in_txn && store_commit(c->store, err, sizeof err) != 0) log_warn("feedback store: expired leases: %s", err);
}

/* ---- labels ------------------------------------------------------------------ */

static void label_ack(coord_t *c, cpeer_t *p, const Rlhf__Label *l, Rlhf__AckStatus status, uint64_t id,
                      const char *detail) {
    Rlhf__Envelope env;
    Rlhf__LabelAck a;
    envelope(c, &env);
    rlhf__label_ack__init(&a);
    a.has_query_id = 1, a.query_id = l->query_id;
    a.idempotency_id = l->idempotency_id;
    a.has_status = 1, a.status = status;
    if (id) a.has_label_id = 1, a.label_id = id;
    a.detail = (char *)detail;
    env.body_case = RLHF__ENVELOPE__BODY_LABEL_ACK;
    env.label_ack = &a;
    send_to(c, p, &env);
}

enum { ACCEPT_STORED, ACCEPT_DUPLICATE, ACCEPT_UNKNOWN, ACCEPT_REJECTED, ACCEPT_FAILED };

/* Stores an answer from labeler who (over HTTP: held for the undo window).
 * Returns ACCEPT_*; *id the label id (stored, duplicate); err says why not. */
static int accept_label(coord_t *c, const char *who, int http, const Rlhf__Label *l, uint64_t *id, char *err,
                        size_t errlen) {
    *id = 0;
    /* A resend of a stored label: the same answer, acknowledged again. */
    const Rlhf__Label *dup = store_find_label(c->store, l->idempotency_id);
    if (dup) {
        c->n.labels_duplicate++;
        *id = dup->id;
        return ACCEPT_DUPLICATE;
    }
    const store_query_t *qd = store_query(c->store, l->query_id);
    cquery_t *cq = cquery(c, l->query_id);
    if (!qd || !cq) {
        c->n.labels_unknown++;
        err_set(err, errlen, "no such query %" PRIu64, l->query_id);
        return ACCEPT_UNKNOWN;
    }
    if (qd->done) {
        c->n.labels_rejected++;
        err_set(err, errlen, "query %" PRIu64 " was answered already", l->query_id);
        return ACCEPT_REJECTED;
    }
    if (excluded(cq, who) && !lease_of(cq, who)) {
        /* Answered (or skipped) by this labeler: redundancy wants distinct people. */
        int answered_it = 0;
        for (size_t i = store_label_count(c->store); i-- > 0 && !answered_it;) {
            store_label_t sl = store_label_at(c->store, i);
            answered_it = !sl.retracted && sl.label->query_id == l->query_id && sl.label->labeler_id &&
                          strcmp(sl.label->labeler_id, who) == 0;
        }
        if (answered_it) {
            c->n.labels_rejected++;
            err_set(err, errlen, "query %" PRIu64 " was answered by %s already", l->query_id, who);
            return ACCEPT_REJECTED;
        }
    }
    Rlhf__Query q;
    uint64_t ids[LABEL_MAX_K];
    query_msg(c, qd, &q, ids, NULL, NULL);
    int seg_index[LABEL_MAX_K];
    for (int j = 0; j < LABEL_MAX_K; j++) seg_index[j] = j;
    label_t scratch;
    int rc = codec_label(&q, l, seg_index, &scratch, err, errlen);
    if (rc < 0) {
        c->n.labels_rejected++;
        return ACCEPT_REJECTED;
    }
    int done = qd->answers + 1 >= qd->answers_wanted;
    /* A query recovered done and reopened by an undo has no round (-1). */
    int in_round = cq->round >= 0 && cq->round < c->n_rounds;
    int round_done = done && in_round && c->round_left[cq->round] == 1;
    long long answered = c->answered_base + c->answered + done;
    uint64_t hold = http && c->undo_s > 0 ? wall_us() + (uint64_t)(c->undo_s * 1e6) : 0;
    if (c->fault_labels > 0) {
        c->fault_labels--;
        store_fail_commits(c->store, 1);
    }
    int st = store_put_label(c->store, l, who, round_done, (uint64_t)answered, hold, id, err, errlen);
    if (st == STORE_FAILED) {
        c->n.store_failed++;
        log_error("feedback store: label from %s for query %" PRIu64 " not stored: %s", who, l->query_id, err);
        return ACCEPT_FAILED;
    }
    c->n.labels_stored++;
    if (rc == 1) c->n.labels_cant_tell++;
    exclude(cq, who);
    if (done) {
        if (in_round) c->round_left[cq->round]--;
        c->answered++;
        c->outstanding--;
        while (cq->n_leases) lease_drop(c, cq, 0); /* the store ended them all */
        open_remove(c, (int)(cq - c->cq));
        if (round_done) log_info("round %d answered (%lld answered in all)", cq->round, c->answered_base + c->answered);
    } else {
        lease_release(c, cq, who, 0); /* the store ended it */
    }
    return ACCEPT_STORED;
}

static void on_label(coord_t *c, cpeer_t *p, const Rlhf__Label *l) {
    uint64_t id;
    char err[512] = "";
    switch (accept_label(c, p->id, 0, l, &id, err, sizeof err)) {
    case ACCEPT_STORED: label_ack(c, p, l, RLHF__ACK_STATUS__ACK_STORED, id, NULL); break;
    case ACCEPT_DUPLICATE: label_ack(c, p, l, RLHF__ACK_STATUS__ACK_DUPLICATE, id, NULL); break;
    case ACCEPT_UNKNOWN:
        log_info("label from %s for unknown query %" PRIu64 ": not stored", p->id, l->query_id);
        label_ack(c, p, l, RLHF__ACK_STATUS__ACK_UNKNOWN_QUERY, 0, "no such query");
        break;
    case ACCEPT_REJECTED:
        log_warn("label from %s rejected: %s", p->id, err);
        label_ack(c, p, l, RLHF__ACK_STATUS__ACK_REJECTED, 0, err);
        break;
    default: break; /* not stored: no ack, the labeler sends it again */
    }
}

/* Stored labels the learner does not have yet, one LabeledBatch each, in id
 * order: a retracted label is skipped, and one still inside its undo window
 * stops the pump until it is over (so the learner's cursor stays a suffix). */
static void pump_labels(coord_t *c) {
    cpeer_t *L = the_learner(c);
    if (!L) return;
    size_t n = store_label_count(c->store);
    uint64_t now = wall_us();
    for (int sent = 0; c->label_pos < n && sent < PUMP_MAX;) {
        store_label_t sl = store_label_at(c->store, c->label_pos);
        if (sl.retracted) {
            c->label_pos++;
            continue;
        }
        if (sl.hold_until_us > now) return;
        const store_query_t *qd = store_query(c->store, sl.label->query_id);
        if (!qd) {
            c->label_pos++;
            continue;
        }
        Rlhf__Query q;
        uint64_t ids[LABEL_MAX_K];
        Rlhf__Segment segs[LABEL_MAX_K], *ptrs[LABEL_MAX_K];
        query_msg(c, qd, &q, ids, segs, ptrs);
        /* The batch lists the segments; the query inside only names them. */
        q.n_segments = 0, q.segments = NULL;
        Rlhf__LabeledItem item, *items[1] = {&item};
        rlhf__labeled_item__init(&item);
        item.query = &q;
        item.label = (Rlhf__Label *)sl.label;
        if (sl.round_done) item.has_round_done = 1, item.round_done = 1;
        Rlhf__LabeledBatch b;
        rlhf__labeled_batch__init(&b);
        b.has_batch_seq = 1, b.batch_seq = ++c->labeled_seq;
        b.n_items = 1, b.items = items;
        b.n_segments = qd->k, b.segments = ptrs;
        b.has_total_labels = 1, b.total_labels = sl.answered;
        Rlhf__Envelope env;
        envelope(c, &env);
        env.body_case = RLHF__ENVELOPE__BODY_LABELED_BATCH;
        env.labeled_batch = &b;
        if (send_to(c, L, &env) != 0) return;
        c->label_pos++;
        c->n.labels_forwarded++;
        sent++;
    }
}

/* ---- batches -------------------------------------------------------------------- */

static void pump_batches(coord_t *c) {
    cpeer_t *L = the_learner(c);
    while (L && c->q_len > 0 && L->n_fwd < L->window) {
        qbatch_t *qb = &c->queue[c->q_head];
        /* The worker's bytes unchanged (validated when they came): no
         * re-encoding, no copy. The learner sees the worker as the sender. */
        if (L->unreachable) return;
        if (transport_forward(c->srv, L->identity, L->identity_len, &qb->frame) != 0) {
            if (errno == EHOSTUNREACH) L->unreachable = 1;
            return; /* logged; the learner's queue is full or it reconnected */
        }
        L->n_fwd++;
        c->n.batches_forwarded++;
        /* The batch moved on: its worker may send another. */
        cpeer_t *w = find_peer(c, qb->worker);
        if (w && w->incarnation == qb->incarnation) {
            w->held--;
            send_ack(c, w, qb->seq, 1);
        }
        zmq_msg_close(&qb->frame);
        c->q_head = (c->q_head + 1) % c->job.coordinator.learner_queue;
        c->q_len--;
    }
}

/* Takes the frame (moves it into the queue) when it accepts the batch. */
static void on_batch(coord_t *c, cpeer_t *p, const Rlhf__Envelope *env, zmq_msg_t *frame) {
    const Rlhf__TrajectoryBatch *m = env->trajectory_batch;
    c->n.batches_received++;
    char err[512];
    const char *why = NULL;
    if (c->shutting_down) why = "the run is ending";
    else if (strcmp(m->worker_id, p->id) != 0) why = "worker_id is not the sender";
    else if (m->n_obs_norm == 0) why = "no obs_norm (a learner trains on the normalised observations)";
    else if (codec_batch_view(m, c->job.env.id, c->job.ppo.n_steps, c->job.env.n_envs, c->obs_dim, c->act_dim,
                              c->done, c->terminated, &c->view, err, sizeof err) != 0)
        why = err;
    if (why) {
        if (!c->shutting_down) {
            c->n.batches_dropped_bad++;
            log_warn("trajectory batch %" PRIu64 " from %s dropped: %s", m->batch_seq, p->id, why);
        }
        send_ack(c, p, env->seq, 1);
        return;
    }
    uint64_t lag = c->policy_version > m->policy_version ? c->policy_version - m->policy_version : 0;
    c->lag_hist[lag < LAG_BINS - 1 ? lag : LAG_BINS - 1]++;
    if (lag > (uint64_t)c->job.coordinator.max_policy_lag) {
        c->n.batches_dropped_lag++;
        p->lag_dropped++;
        p->lag_unlogged++;
        double now = now_s();
        if (now - p->lag_logged_at >= 60 || p->lag_logged_at == 0) {
            log_warn("dropped %" PRIu64 " trajectory batches from %s (policy lag %" PRIu64 " > max_policy_lag %d; %" PRIu64
                     " so far)", p->lag_unlogged, p->id, lag, c->job.coordinator.max_policy_lag, p->lag_dropped);
            p->lag_logged_at = now;
            p->lag_unlogged = 0;
        }
        send_ack(c, p, env->seq, 1);
        return;
    }
    if (c->q_len >= c->job.coordinator.learner_queue) {
        /* Only when workers together hold more credit than the queue has room
         * (more than learner_queue / rollout_credit of them). */
        c->n.batches_dropped_full++;
        log_warn("trajectory batch %" PRIu64 " from %s dropped: the learner queue is full (%d)", m->batch_seq, p->id,
                 c->q_len);
        send_ack(c, p, env->seq, 1);
        return;
    }
    /* Render states travel with the batch when the worker sends them (what
     * the labelers' page draws); a batch without them still trains. */
    const float *render = NULL;
    if (c->render_dim && m->render_dim == (uint32_t)c->render_dim &&
        m->n_render_states == (size_t)c->view.T * c->view.N * c->render_dim)
        render = m->render_states;
    episodes_add_render(c->eps, p->index, &c->view, render);
    c->env_steps += (long long)m->steps * m->n_envs;
    c->n.batches_accepted++;
    qbatch_t *qb = &c->queue[(c->q_head + c->q_len++) % c->job.coordinator.learner_queue];
    zmq_msg_init(&qb->frame);
    zmq_msg_move(&qb->frame, frame);
    snprintf(qb->worker, sizeof qb->worker, "%s", p->id);
    qb->incarnation = p->incarnation;
    qb->seq = env->seq;
    p->held++;
}

/* ---- status ---------------------------------------------------------------------- */

typedef struct {
    Rlhf__Counter *c;
    Rlhf__Counter **cp;
    char (*names)[WIRE_MAX_NAME + 1];
    size_t n, cap;
} counter_list_t;

static void add_counter(counter_list_t *l, const char *name, uint64_t v) {
    if (l->n == l->cap) return;
    snprintf(l->names[l->n], WIRE_MAX_NAME + 1, "%s", name);
    rlhf__counter__init(&l->c[l->n]);
    l->c[l->n].name = l->names[l->n];
    l->c[l->n].has_value = 1, l->c[l->n].value = v;
    l->cp[l->n] = &l->c[l->n];
    l->n++;
}

#define MAX_COUNTERS 96

static void collect_counters(coord_t *c, counter_list_t *l) {
#define ADD(f, name) add_counter(l, name, c->n.f);
    COUNTERS(ADD)
#undef ADD
    int kinds[4] = {0};
    for (int i = 0; i < c->n_peers; i++) kinds[c->peers[i]->kind & 3]++;
    add_counter(l, "peers.rollout", (uint64_t)kinds[RLHF__PEER_KIND__PEER_ROLLOUT]);
    add_counter(l, "peers.labeler", (uint64_t)kinds[RLHF__PEER_KIND__PEER_LABELER]);
    add_counter(l, "peers.learner", (uint64_t)kinds[RLHF__PEER_KIND__PEER_LEARNER]);
    add_counter(l, "env_steps", (uint64_t)(c->steps_base + c->env_steps));
    add_counter(l, "labels.answered", (uint64_t)(c->answered_base + c->answered));
    add_counter(l, "queries.open", (uint64_t)c->n_open);
    add_counter(l, "queue.batches", (uint64_t)c->q_len);
    add_counter(l, "policy_version", c->policy_version);
    add_counter(l, "reward_version", c->reward_version);
    const transport_stats_t *ts = transport_sock_stats(c->srv);
    add_counter(l, "messages.received", ts->received);
    add_counter(l, "messages.dropped", ts->dropped);
    add_counter(l, "messages.send_failed", ts->send_failed);
    add_counter(l, "connections.disconnects", ts->disconnects);
    add_counter(l, "connections.handshakes_failed", ts->handshakes_failed);
    const transport_zap_stats_t *z = transport_zap_stats(c->t);
    add_counter(l, "zap.refused", z ? z->refused : 0);
    char name[32];
    for (int b = 0; b < LAG_BINS; b++) {
        snprintf(name, sizeof name, b == LAG_BINS - 1 ? "lag.%d+" : "lag.%d", b);
        add_counter(l, name, c->lag_hist[b]);
    }
}

static void send_status(coord_t *c, const uint8_t *id, size_t id_len, uint64_t in_reply_to) {
    Rlhf__Counter cs[MAX_COUNTERS], *cps[MAX_COUNTERS];
    char names[MAX_COUNTERS][WIRE_MAX_NAME + 1];
    counter_list_t l = {cs, cps, names, 0, MAX_COUNTERS};
    collect_counters(c, &l);
    Rlhf__Status st;
    rlhf__status__init(&st);
    st.phase = c->shutting_down ? "done" : "running";
    st.has_policy_version = 1, st.policy_version = c->policy_version;
    st.has_reward_version = 1, st.reward_version = c->reward_version;
    st.n_counters = l.n, st.counters = cps;
    /* The learner's own metrics, relayed as they came. */
    if (c->learner_status) {
        st.n_metrics = c->learner_status->status->n_metrics;
        st.metrics = c->learner_status->status->metrics;
    }
    Rlhf__Envelope env;
    envelope(c, &env);
    env.has_in_reply_to = 1, env.in_reply_to = in_reply_to;
    env.body_case = RLHF__ENVELOPE__BODY_STATUS;
    env.status = &st;
    transport_send(c->srv, id, id_len, &env);
}

static void write_status(coord_t *c) {
    if (!c->out_dir[0]) return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    Rlhf__Counter cs[MAX_COUNTERS], *cps[MAX_COUNTERS];
    char names[MAX_COUNTERS][WIRE_MAX_NAME + 1];
    counter_list_t l = {cs, cps, names, 0, MAX_COUNTERS};
    collect_counters(c, &l);
    fprintf(f, "{\"run_id\":");
    json_write_string(f, c->run_id, strlen(c->run_id));
    fprintf(f, ",\"phase\":\"%s\",\"counters\":{", c->shutting_down ? "done" : "running");
    for (size_t i = 0; i < l.n; i++) {
        fprintf(f, "%s", i ? "," : "");
        json_write_string(f, cs[i].name, strlen(cs[i].name));
        fprintf(f, ":%" PRIu64, cs[i].value);
    }
    fprintf(f, "},\"learner\":{");
    if (c->learner_status) {
        const Rlhf__Status *s = c->learner_status->status;
        for (size_t i = 0; i < s->n_metrics; i++) {
            char num[40];
            if (isfinite(s->metrics[i]->value))
                json_format_number(num, sizeof num, s->metrics[i]->value);
            else
                snprintf(num, sizeof num, "null");
            fprintf(f, "%s", i ? "," : "");
            json_write_string(f, s->metrics[i]->name, strlen(s->metrics[i]->name));
            fprintf(f, ":%s", num);
        }
    }
    fprintf(f, "},\"peers\":[");
    double now = now_s();
    for (int i = 0; i < c->n_peers; i++) {
        const cpeer_t *p = c->peers[i];
        fprintf(f, "%s{\"id\":", i ? "," : "");
        json_write_string(f, p->id, strlen(p->id));
        fprintf(f, ",\"kind\":\"%s\",\"index\":%" PRIu32 ",\"host\":", kind_name(p->kind), p->index);
        json_write_string(f, p->host, strlen(p->host));
        fprintf(f, ",\"pid\":%" PRIu32 ",\"silent_s\":%.3f}", p->pid, now - p->last_seen);
    }
    fprintf(f, "]}\n");
    fclose(f);
    char path[1200];
    snprintf(path, sizeof path, "%s/status.json", c->out_dir);
    write_file_atomic(path, text, len);
    free(text);
}

/* ---- peers ------------------------------------------------------------------------ */

/* Forgets a peer: its leases go back on the queue, its episodes in progress
 * are dropped, batches sent to it (a learner) are lost. */
static void remove_peer(coord_t *c, cpeer_t *p) {
    switch (p->kind) {
    case RLHF__PEER_KIND__PEER_ROLLOUT: episodes_drop_source(c->eps, p->index); break;
    case RLHF__PEER_KIND__PEER_LABELER:
        for (int o = 0; o < c->n_open; o++) {
            cquery_t *cq = &c->cq[c->open[o]];
            for (int i = 0; i < cq->n_leases; i++)
                if (!cq->leases[i].http && strcmp(cq->leases[i].who, p->id) == 0 &&
                    cq->leases[i].incarnation == p->incarnation) {
                    store_del_lease(c->store, cq->id, p->id);
                    lease_drop(c, cq, i--);
                    c->n.queries_returned++;
                }
        }
        break;
    case RLHF__PEER_KIND__PEER_LEARNER:
        c->n.batches_lost += (uint64_t)p->n_fwd;
        if (p->n_fwd) log_warn("%d trajectory batches sent to the learner %s are lost", p->n_fwd, p->id);
        break;
    default: break;
    }
    for (int i = 0; i < c->n_peers; i++)
        if (c->peers[i] == p) {
            c->peers[i] = c->peers[--c->n_peers];
            break;
        }
    free(p);
}

static uint32_t free_index(const coord_t *c, Rlhf__PeerKind kind) {
    for (uint32_t idx = 0;; idx++) {
        int used = 0;
        for (int i = 0; i < c->n_peers && !used; i++)
            used = c->peers[i]->kind == kind && c->peers[i]->index == idx;
        if (!used) return idx;
    }
}

static void set_route(cpeer_t *p, const transport_from_t *from) {
    p->unreachable = 0;
    memcpy(p->identity, from->identity, from->identity_len);
    p->identity_len = from->identity_len;
    snprintf(p->address, sizeof p->address, "%s", from->peer_address);
}

/* A learner whose connection changed lost what was in flight to it: resend
 * labels after its cursor, count the batches as lost. */
static void learner_rewind(coord_t *c, cpeer_t *p) {
    c->n.batches_lost += (uint64_t)p->n_fwd;
    p->n_fwd = 0;
    c->label_pos = store_label_after(c->store, p->label_cursor);
}

static void on_register(coord_t *c, const transport_from_t *from, const Rlhf__Envelope *env) {
    const Rlhf__Register *r = env->register_;
    double now = now_s();
    if (c->shutting_down) {
        /* Too late to join: tell it to stop right away. */
        Rlhf__Envelope out;
        Rlhf__Shutdown s;
        envelope(c, &out);
        rlhf__shutdown__init(&s);
        s.reason = c->shutdown_reason;
        out.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN;
        out.shutdown = &s;
        transport_send(c->srv, from->identity, from->identity_len, &out);
        return;
    }
    cpeer_t *p = find_peer(c, r->peer_id);
    if (p && p->kind == r->kind && p->incarnation == r->incarnation) {
        /* The same process again (it lost us, or we restarted and it found
         * us already registered): keep its state, take the new route. */
        if (c->curve && strcmp(p->user_id, from->user_id) != 0) {
            log_warn("Register of %s from key '%s' refused: it registered with key '%s'", p->id, from->user_id,
                     p->user_id);
            c->n.messages_forbidden++;
            return;
        }
        set_route(p, from);
        c->n.peers_reconnected++;
        log_info("%s %s (#%" PRIu32 ") registered again from %s", kind_name(p->kind), p->id, p->index, p->address);
        if (p->kind == RLHF__PEER_KIND__PEER_LEARNER) {
            if (r->has_label_cursor) p->label_cursor = r->label_cursor;
            learner_rewind(c, p);
        }
    } else {
        if (p) {
            log_warn("%s %s restarted (incarnation %016" PRIx64 " -> %016" PRIx64 "): its old state is released",
                     kind_name(p->kind), p->id, p->incarnation, r->incarnation);
            c->n.peers_replaced++;
            remove_peer(c, p);
        }
        if (r->kind == RLHF__PEER_KIND__PEER_LEARNER) {
            cpeer_t *old = the_learner(c);
            if (old) {
                log_warn("learner %s replaces learner %s", r->peer_id, old->id);
                c->n.peers_replaced++;
                remove_peer(c, old);
            }
        }
        p = callocCheck(1, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", r->peer_id);
        p->kind = r->kind;
        p->incarnation = r->incarnation;
        snprintf(p->user_id, sizeof p->user_id, "%s", from->user_id);
        snprintf(p->host, sizeof p->host, "%s", r->host ? r->host : "");
        p->pid = r->has_pid ? r->pid : 0;
        p->index = free_index(c, p->kind);
        p->registered_at = now;
        set_route(p, from);
        const Rlhf__Capabilities *caps = r->caps;
        if (p->kind == RLHF__PEER_KIND__PEER_LABELER) {
            p->max_inflight = caps->has_max_inflight && caps->max_inflight ? (int)caps->max_inflight : 1;
            if (p->max_inflight > MAX_WINDOW) p->max_inflight = MAX_WINDOW;
            for (size_t i = 0; i < caps->n_query_kinds; i++) p->kinds |= codec_query_kind(caps->query_kinds[i]);
        }
        if (p->kind == RLHF__PEER_KIND__PEER_LEARNER) {
            p->window = caps->has_max_inflight && caps->max_inflight ? (int)caps->max_inflight : 2;
            if (p->window > MAX_WINDOW) p->window = MAX_WINDOW;
            p->label_cursor = r->has_label_cursor ? r->label_cursor : 0;
            if (!c->learner_seen) {
                /* The first learner since we started says where the run is:
                 * after a restart of ours, what we forgot. */
                c->learner_seen = 1;
                c->steps_base = r->has_env_steps ? (long long)r->env_steps : 0;
                /* A store that kept labels knows the answered count itself
                 * (coord_new recovered it); a fresh one takes the learner's. */
                if (store_label_count(c->store) == 0) {
                    c->answered_base = r->has_labels_answered ? (long long)r->labels_answered : 0;
                    store_set_label_base(c->store, p->label_cursor);
                }
                if (c->steps_base || c->answered_base || p->label_cursor)
                    log_info("resuming the run at %lld env steps, %lld answered queries, label %" PRIu64,
                             c->steps_base, c->answered_base, p->label_cursor);
            }
            c->label_pos = store_label_after(c->store, p->label_cursor);
        }
        if (c->n_peers == c->cap_peers) {
            c->cap_peers = c->cap_peers ? 2 * c->cap_peers : 16;
            c->peers = reallocCheck(c->peers, sizeof *c->peers * c->cap_peers);
        }
        c->peers[c->n_peers++] = p;
        c->n.peers_registered++;
        log_info("registered %s %s #%" PRIu32 " from %s (pid %" PRIu32 " on %s)%s%s", kind_name(p->kind), p->id,
                 p->index, p->address, p->pid, p->host, p->user_id[0] ? ", key " : "", p->user_id);
    }
    p->last_seen = now;
    p->last_seq = env->seq;
    if (r->has_config_hash && r->config_hash && r->config_hash != c->job_hash)
        log_warn("%s %s held another job (hash %016" PRIx64 "); it gets this one (%016" PRIx64 ")", kind_name(p->kind),
                 p->id, r->config_hash, c->job_hash);

    Rlhf__Envelope out;
    Rlhf__Welcome w;
    Rlhf__JobConfig jc;
    envelope(c, &out);
    out.has_in_reply_to = 1, out.in_reply_to = env->seq;
    rlhf__welcome__init(&w);
    rlhf__job_config__init(&jc);
    jc.ini = c->job_text;
    jc.has_hash = 1, jc.hash = c->job_hash;
    w.peer_id = p->id;
    w.has_incarnation = 1, w.incarnation = p->incarnation;
    w.run_id = c->run_id;
    w.job = &jc;
    w.has_heartbeat_interval_ms = 1, w.heartbeat_interval_ms = (uint32_t)c->job.coordinator.heartbeat_ms;
    w.has_heartbeat_liveness = 1, w.heartbeat_liveness = (uint32_t)c->job.coordinator.liveness;
    /* Distinct per registration (not per index: a replacement must not
     * replay the environments of the worker it replaces). */
    w.has_seed = 1, w.seed = splitmix64(c->job.run.seed ^ ((uint64_t)p->kind << 56) ^ splitmix64(++c->registrations));
    w.has_worker_index = 1, w.worker_index = p->index;
    w.has_policy_version = 1, w.policy_version = c->policy_version;
    w.has_reward_version = 1, w.reward_version = c->reward_version;
    out.body_case = RLHF__ENVELOPE__BODY_WELCOME;
    out.welcome = &w;
    send_to(c, p, &out);
    if (p->kind == RLHF__PEER_KIND__PEER_ROLLOUT) send_policy(c, p);
}

static void declare_dead(coord_t *c, cpeer_t *p, double silent) {
    log_warn("%s %s (#%" PRIu32 ") silent for %.1f s: declared dead", kind_name(p->kind), p->id, p->index, silent);
    c->n.peers_dead++;
    remove_peer(c, p);
}

static void check_liveness(coord_t *c, double now) {
    for (int i = 0; i < c->n_peers; i++) {
        cpeer_t *p = c->peers[i];
        double limit = p->kind == RLHF__PEER_KIND__PEER_LEARNER ? c->learner_dead_s : c->dead_s;
        if (now - p->last_seen > limit) {
            declare_dead(c, p, now - p->last_seen);
            i--; /* remove_peer moved the last peer here */
        }
    }
}

static void send_heartbeats(coord_t *c) {
    for (int i = 0; i < c->n_peers; i++) {
        Rlhf__Envelope env;
        Rlhf__Heartbeat hb;
        envelope(c, &env);
        rlhf__heartbeat__init(&hb);
        hb.has_seq = 1, hb.seq = ++c->hb_seq;
        hb.has_policy_version = 1, hb.policy_version = c->policy_version;
        hb.has_reward_version = 1, hb.reward_version = c->reward_version;
        cpeer_t *p = c->peers[i];
        hb.has_peer_seq = 1, hb.peer_seq = p->last_seq;
        if (p->kind == RLHF__PEER_KIND__PEER_ROLLOUT) hb.has_inflight = 1, hb.inflight = (uint32_t)p->held;
        if (p->kind == RLHF__PEER_KIND__PEER_LABELER) hb.has_inflight = 1, hb.inflight = (uint32_t)p->inflight;
        env.body_case = RLHF__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        send_to(c, p, &env);
    }
}

/* ---- shutdown ---------------------------------------------------------------------- */

static void begin_shutdown(coord_t *c, const char *reason) {
    if (c->shutting_down) return;
    c->shutting_down = 1;
    snprintf(c->shutdown_reason, sizeof c->shutdown_reason, "%s", reason);
    c->shutdown_deadline = now_s() + SHUTDOWN_GRACE_MS / 1000.0;
    log_info("shutting down: %s; telling %d peers", reason, c->n_peers);
    for (int i = 0; i < c->n_peers; i++) {
        cpeer_t *p = c->peers[i];
        Rlhf__Envelope env;
        Rlhf__Shutdown s;
        envelope(c, &env);
        rlhf__shutdown__init(&s);
        s.reason = c->shutdown_reason;
        s.has_grace_ms = 1, s.grace_ms = SHUTDOWN_GRACE_MS;
        env.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN;
        env.shutdown = &s;
        p->shutdown_seq = env.seq;
        if (send_to(c, p, &env) != 0) p->shutdown_acked = 1; /* gone: nothing to wait for */
    }
}

static int shutdown_complete(coord_t *c, double now) {
    if (!c->shutting_down) return 0;
    int waiting = 0;
    for (int i = 0; i < c->n_peers; i++) waiting += !c->peers[i]->shutdown_acked;
    if (waiting == 0) {
        log_info("every peer acknowledged the shutdown");
        return 1;
    }
    if (now >= c->shutdown_deadline) {
        log_warn("%d peers did not acknowledge the shutdown within %d ms", waiting, SHUTDOWN_GRACE_MS);
        return 1;
    }
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void on_ack(coord_t *c, cpeer_t *p, const Rlhf__Ack *a) {
    if (c->shutting_down && a->seq == p->shutdown_seq) {
        p->shutdown_acked = 1;
        return;
    }
    /* The learner's credit: one per batch it took. Acks for batches sent
     * before a reconnection may come after the count was reset: never
     * below zero. */
    if (p->kind == RLHF__PEER_KIND__PEER_LEARNER && a->has_credit) {
        p->n_fwd -= (int)a->credit;
        if (p->n_fwd < 0) p->n_fwd = 0;
    }
}

static int allowed(const cpeer_t *p, Rlhf__Envelope__BodyCase body) {
    switch (body) {
    case RLHF__ENVELOPE__BODY_HEARTBEAT:
    case RLHF__ENVELOPE__BODY_ACK:
    case RLHF__ENVELOPE__BODY_STATUS: return 1;
    case RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH: return p->kind == RLHF__PEER_KIND__PEER_ROLLOUT;
    case RLHF__ENVELOPE__BODY_LABEL: return p->kind == RLHF__PEER_KIND__PEER_LABELER;
    case RLHF__ENVELOPE__BODY_WEIGHTS:
    case RLHF__ENVELOPE__BODY_SHUTDOWN: return p->kind == RLHF__PEER_KIND__PEER_LEARNER;
    case RLHF__ENVELOPE__BODY_ERROR: return 1;
    default: return 0;
    }
}

/* frame: the envelope's bytes (transport_recv_keep), for a batch to forward. */
static void handle(coord_t *c, const transport_from_t *from, Rlhf__Envelope **env_p, zmq_msg_t *frame) {
    Rlhf__Envelope *env = *env_p;
    if (env->body_case == RLHF__ENVELOPE__BODY_REGISTER) {
        on_register(c, from, env);
        return;
    }
    /* Anyone may ask for the status (a monitoring tool need not register). */
    if (env->body_case == RLHF__ENVELOPE__BODY_STATUS && env->status->has_request && env->status->request) {
        send_status(c, from->identity, from->identity_len, env->seq);
        return;
    }
    cpeer_t *p = find_peer(c, env->sender);
    char who[600];
    if (!p) {
        c->n.messages_unregistered++;
        double now = now_s();
        if (now - c->unregistered_logged_at >= 1.0) {
            transport_identity_str(from->identity, from->identity_len, who, sizeof who);
            log_info("%s from unregistered sender '%s' (%s, %s): told to register", wire_body_name(env->body_case),
                     env->sender, who, from->peer_address);
            c->unregistered_logged_at = now;
        }
        send_error(c, from, env->seq, RLHF__ERROR_CODE__ERR_NOT_REGISTERED, "register first");
        return;
    }
    if (c->curve && strcmp(p->user_id, from->user_id) != 0) {
        c->n.messages_forbidden++;
        log_warn("%s claiming to be %s from key '%s' dropped: %s registered with key '%s'",
                 wire_body_name(env->body_case), p->id, from->user_id, p->id, p->user_id);
        return;
    }
    if (from->identity_len != p->identity_len || memcmp(from->identity, p->identity, p->identity_len) != 0) {
        /* The same process over a new connection (libzmq reconnected). */
        set_route(p, from);
        if (p->kind == RLHF__PEER_KIND__PEER_LEARNER) learner_rewind(c, p);
    }
    p->last_seen = now_s();
    p->last_seq = env->seq;
    p->unreachable = 0; /* it spoke: its route works */
    if (!allowed(p, env->body_case)) {
        c->n.messages_forbidden++;
        log_warn("%s from %s %s dropped: not allowed for its kind", wire_body_name(env->body_case), kind_name(p->kind),
                 p->id);
        send_error(c, from, env->seq, RLHF__ERROR_CODE__ERR_FORBIDDEN, "not allowed for this peer kind");
        return;
    }
    switch (env->body_case) {
    case RLHF__ENVELOPE__BODY_HEARTBEAT:
        if (p->kind == RLHF__PEER_KIND__PEER_LEARNER && env->heartbeat->has_label_cursor)
            p->label_cursor = env->heartbeat->label_cursor;
        break;
    case RLHF__ENVELOPE__BODY_ACK: on_ack(c, p, env->ack); break;
    case RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH: on_batch(c, p, env, frame); break;
    case RLHF__ENVELOPE__BODY_LABEL: on_label(c, p, env->label); break;
    case RLHF__ENVELOPE__BODY_WEIGHTS: on_weights(c, env->weights); break;
    case RLHF__ENVELOPE__BODY_STATUS:
        if (p->kind == RLHF__PEER_KIND__PEER_LEARNER) {
            record_history(c, env->status);
            wire_free(&c->learner_status);
            c->learner_status = env;
            *env_p = NULL;
        }
        break;
    case RLHF__ENVELOPE__BODY_SHUTDOWN:
        log_info("the learner %s ends the run: %s", p->id, env->shutdown->reason);
        send_ack(c, p, env->seq, 0);
        begin_shutdown(c, env->shutdown->reason);
        p->shutdown_acked = 1; /* it asked */
        break;
    case RLHF__ENVELOPE__BODY_ERROR:
        log_warn("%s %s reports: %s: %s", kind_name(p->kind), p->id, wire_error_code_name(env->error->code),
                 env->error->text);
        break;
    default: break;
    }
}

/* ---- recovery ------------------------------------------------------------------------- */

/* Rebuilds the queue from the store after a restart: every query (done or
 * open; the open ones form one round, so the label that answers the last
 * of them ends it), who answered each, and the leases still running. */
static void recover_queries(coord_t *c) {
    size_t nq = store_query_count(c->store);
    if (nq == 0 && store_label_count(c->store) == 0) return;
    int r = -1, n_open = 0;
    for (size_t i = 0; i < nq; i++) {
        const store_query_t *qd = store_query_at(c->store, i);
        if (!qd->done && r < 0) {
            c->cap_rounds = 64;
            c->round_left = reallocCheck(c->round_left, sizeof *c->round_left * c->cap_rounds);
            r = c->n_rounds++;
            c->round_left[r] = 0;
        }
        cq_add(c, qd->id, qd->done ? -1 : r);
        if (!qd->done) {
            c->round_left[r]++;
            open_add(c, c->n_cq - 1);
            n_open++;
        }
    }
    size_t nl = store_label_count(c->store);
    for (size_t i = 0; i < nl; i++) {
        store_label_t sl = store_label_at(c->store, i);
        cquery_t *cq = cquery(c, sl.label->query_id);
        if (cq && !sl.retracted && sl.label->labeler_id) exclude(cq, sl.label->labeler_id);
    }
    /* Skipped queries are not offered to who skipped them, after a restart too. */
    size_t nskip = 0;
    store_lease_t *sk = store_skips(c->store, &nskip);
    for (size_t i = 0; i < nskip; i++) {
        cquery_t *cq = cquery(c, sk[i].query_id);
        if (cq) exclude(cq, sk[i].labeler);
    }
    free(sk);
    if (nl) c->answered_base = (long long)store_label_at(c->store, nl - 1).answered;
    c->outstanding = n_open;
    size_t nlease = 0;
    store_lease_t *ls = store_leases(c->store, &nlease);
    double now = now_s();
    uint64_t wnow = wall_us();
    int kept = 0;
    for (size_t i = 0; i < nlease; i++) {
        cquery_t *cq = cquery(c, ls[i].query_id);
        const store_query_t *qd = cq ? store_query(c->store, cq->id) : NULL;
        if (!qd || qd->done || cq->n_leases >= LABEL_MAX_K || lease_of(cq, ls[i].labeler)) continue;
        lease_t *l = &cq->leases[cq->n_leases++];
        memset(l, 0, sizeof *l);
        snprintf(l->who, sizeof l->who, "%s", ls[i].labeler);
        l->http = 1; /* matched by name: the same person (or peer id) asking again */
        l->deadline_us = ls[i].deadline_us;
        l->deadline = now + (ls[i].deadline_us > wnow ? (double)(ls[i].deadline_us - wnow) / 1e6 : 0);
        kept++;
    }
    free(ls);
    log_info("recovered the queue: %zu queries (%d open, %d leased), %zu labels, %lld answered", nq, n_open, kept, nl,
             c->answered_base);
}

/* ---- the labelers' HTTP API (http.h; docs/http-api.md) ------------------------------- */

static const char *kind_text(Rlhf__QueryKind k) {
    return k == RLHF__QUERY_KIND__QUERY_PAIR ? "pair" : k == RLHF__QUERY_KIND__QUERY_RATING ? "rating" : "ranking";
}

static int labels_of(coord_t *c, const char *who) {
    int n = 0;
    size_t nl = store_label_count(c->store);
    for (size_t i = 0; i < nl; i++) {
        store_label_t sl = store_label_at(c->store, i);
        n += !sl.retracted && sl.label->labeler_id && strcmp(sl.label->labeler_id, who) == 0;
    }
    return n;
}

static void write_num(FILE *f, double v) {
    char num[40];
    json_format_number(num, sizeof num, v);
    fputs(num, f);
}

static void write_str(FILE *f, const char *s) { json_write_string(f, s, strlen(s)); }

/* Frames per second a segment plays at: Gymnasium's render_fps of the
 * classic environments (their time steps); 50 otherwise. */
static int render_fps(const char *kind) {
    static const struct {
        const char *kind;
        int fps;
    } t[] = {{"cartpole", 50}, {"pendulum", 30}, {"mountaincar", 30}, {"acrobot", 15}};
    for (size_t i = 0; kind && i < sizeof t / sizeof t[0]; i++)
        if (strcmp(kind, t[i].kind) == 0) return t[i].fps;
    return 50;
}

static void write_query_json(coord_t *c, FILE *f, const cquery_t *cq, const lease_t *ls) {
    const store_query_t *qd = store_query(c->store, cq->id);
    fprintf(f, "{\"id\":\"%" PRIu64 "\",\"kind\":\"%s\",\"k\":%" PRIu32 ",\"lease_deadline_ms\":%" PRIu64
               ",\"env_id\":", qd->id, kind_text(qd->kind), qd->k, ls ? ls->deadline_us / 1000 : 0);
    write_str(f, c->job.env.id);
    fputs(",\"render_kind\":", f);
    write_str(f, c->cls->render_kind ? c->cls->render_kind : "");
    fprintf(f, ",\"render_dim\":%d,\"fps\":%d,\"segments\":[", c->render_dim, render_fps(c->cls->render_kind));
    int T = c->job.feedback.segment_len;
    for (uint32_t j = 0; j < qd->k; j++) {
        fprintf(f, "%s{\"id\":\"%" PRIu64 "\",\"length\":%d,\"render_states\":", j ? "," : "", qd->seg_ids[j], T);
        const float *rs = store_segment_render(c->store, qd->seg_ids[j]);
        if (!rs) {
            fputs("null", f);
        } else {
            fputc('[', f);
            for (int t = 0; t < T; t++) {
                fputs(t ? ",[" : "[", f);
                for (int d = 0; d < c->render_dim; d++) {
                    if (d) fputc(',', f);
                    write_num(f, rs[(size_t)t * c->render_dim + d]);
                }
                fputc(']', f);
            }
            fputc(']', f);
        }
        Rlhf__Segment seg;
        store_segment(c->store, qd->seg_ids[j], &seg);
        fputs(",\"absorbing\":[", f);
        for (int t = 0; t < T; t++) fprintf(f, "%s%d", t ? "," : "", seg.absorbing[t] ? 1 : 0);
        fputs("]}", f);
    }
    fputs("]}", f);
}

static int api_next(coord_t *c, const char *who, FILE *f, char *err, size_t errlen) {
    cquery_t *held = NULL;
    lease_t *ls = NULL;
    /* The same labeler asking again while holding a lease gets the same query. */
    for (int o = 0; o < c->n_open && !held; o++) {
        cquery_t *cq = &c->cq[c->open[o]];
        lease_t *l = lease_of(cq, who);
        if (l) held = cq, ls = l;
    }
    if (!held && !c->shutting_down) {
        int best = best_query(c, who, 0);
        if (best >= 0) {
            if (lease_add(c, &c->cq[best], who, 0, 1, NULL) != 0) {
                err_set(err, errlen, "the lease could not be recorded; try again");
                return 503;
            }
            held = &c->cq[best];
            ls = &held->leases[held->n_leases - 1];
        }
    }
    fputs("{\"query\":", f);
    if (held) write_query_json(c, f, held, ls);
    else fputs("null", f);
    fprintf(f, ",\"queue_depth\":%d,\"labeler\":", c->n_open);
    write_str(f, who);
    fprintf(f, ",\"my_labels\":%d}\n", labels_of(c, who));
    return 200;
}

/* A uint64 id given as a JSON string of digits (or a whole number). */
static int json_id(const json_t *v, uint64_t *out) {
    const char *s = json_string(v);
    if (s) {
        if (!*s || strlen(s) > 20) return -1;
        for (const char *p = s; *p; p++)
            if (*p < '0' || *p > '9') return -1;
        errno = 0;
        *out = strtoull(s, NULL, 10);
        return errno ? -1 : 0;
    }
    long long n;
    if (json_int(v, &n) == 0 && n >= 0) {
        *out = (uint64_t)n;
        return 0;
    }
    return -1;
}

static int api_label(coord_t *c, const char *who, const json_t *body, FILE *f, char *err, size_t errlen) {
    uint64_t qid;
    if (json_id(json_get(body, "query_id"), &qid) != 0) {
        err_set(err, errlen, "query_id: expected the query's id as a string of digits");
        return 400;
    }
    const char *idem = json_string(json_get(body, "idempotency_id"));
    if (!idem || !*idem || strlen(idem) > 128 || strlen(idem) != json_string_len(json_get(body, "idempotency_id"))) {
        err_set(err, errlen, "idempotency_id: expected a string of 1 to 128 characters (e.g. a UUID)");
        return 400;
    }
    Rlhf__Label l;
    rlhf__label__init(&l);
    l.has_query_id = 1, l.query_id = qid;
    l.idempotency_id = (char *)idem;
    l.labeler_id = (char *)who;
    /* A resend of a stored label is answered before anything else: the
     * query may be done (or forgotten) by now. */
    const Rlhf__Label *dup = store_find_label(c->store, idem);
    const store_query_t *qd = store_query(c->store, qid);
    if (!dup && !qd) {
        err_set(err, errlen, "query_id: no such query %" PRIu64, qid);
        return 404;
    }
    const json_t *pref = json_get(body, "preference"), *rating = json_get(body, "rating"),
                 *ranking = json_get(body, "ranking"), *cant = json_get(body, "cant_tell");
    int given = (pref != NULL) + (rating != NULL) + (ranking != NULL);
    int ct = 0;
    if (cant && json_bool(cant, &ct) != 0) {
        err_set(err, errlen, "cant_tell: expected true or false");
        return 400;
    }
    if (given > 1) {
        err_set(err, errlen, "give one answer: preference, rating or ranking (not several)");
        return 400;
    }
    if (given == 0 && !ct) {
        err_set(err, errlen, "no answer: give one of preference, rating, ranking, or \"cant_tell\": true");
        return 400;
    }
    Rlhf__QueryKind kind = qd ? qd->kind : dup->kind;
    l.has_kind = 1, l.kind = kind;
    uint32_t rk[LABEL_MAX_K];
    if (pref) {
        const char *p = json_string(pref);
        if (kind != RLHF__QUERY_KIND__QUERY_PAIR) {
            err_set(err, errlen, "preference: query %" PRIu64 " is a %s query", qid, kind_text(kind));
            return 400;
        }
        Rlhf__Preference v = !p ? RLHF__PREFERENCE__PREF_UNSPECIFIED
                             : strcmp(p, "left") == 0 ? RLHF__PREFERENCE__PREF_LEFT
                             : strcmp(p, "right") == 0 ? RLHF__PREFERENCE__PREF_RIGHT
                             : strcmp(p, "equal") == 0 ? RLHF__PREFERENCE__PREF_EQUAL
                             : strcmp(p, "cant_tell") == 0 ? RLHF__PREFERENCE__PREF_CANT_TELL
                                                           : RLHF__PREFERENCE__PREF_UNSPECIFIED;
        if (v == RLHF__PREFERENCE__PREF_UNSPECIFIED) {
            err_set(err, errlen, "preference: expected \"left\", \"right\", \"equal\" or \"cant_tell\"");
            return 400;
        }
        l.has_preference = 1, l.preference = v;
    } else if (rating) {
        long long v;
        if (kind != RLHF__QUERY_KIND__QUERY_RATING) {
            err_set(err, errlen, "rating: query %" PRIu64 " is a %s query", qid, kind_text(kind));
            return 400;
        }
        if (json_int(rating, &v) != 0 || v < 1 || v > 7) {
            err_set(err, errlen, "rating: expected a whole number from 1 to 7");
            return 400;
        }
        l.has_rating = 1, l.rating = (uint32_t)v;
    } else if (ranking) {
        if (kind != RLHF__QUERY_KIND__QUERY_RANKING) {
            err_set(err, errlen, "ranking: query %" PRIu64 " is a %s query", qid, kind_text(kind));
            return 400;
        }
        size_t n = json_size(ranking);
        if (json_type(ranking) != JSON_ARRAY || n < 2 || n > LABEL_MAX_K) {
            err_set(err, errlen, "ranking: expected an array of the %u segment positions, best first",
                    qd ? qd->k : 0);
            return 400;
        }
        for (size_t j = 0; j < n; j++) {
            long long v;
            if (json_int(json_at(ranking, j), &v) != 0 || v < 0 || v >= LABEL_MAX_K) {
                err_set(err, errlen, "ranking[%zu]: expected a segment position 0..%u", j, qd ? qd->k - 1 : 0);
                return 400;
            }
            rk[j] = (uint32_t)v;
        }
        l.n_ranking = n, l.ranking = rk;
    }
    if (ct) l.has_cant_tell = 1, l.cant_tell = 1;
    const json_t *shown = json_get(body, "shown_at_ms"), *spent = json_get(body, "time_spent_ms");
    double v;
    if (shown) {
        if (json_number(shown, &v) != 0 || v < 0 || v > 1e15) {
            err_set(err, errlen, "shown_at_ms: expected milliseconds since 1970");
            return 400;
        }
        l.has_shown_at_us = 1, l.shown_at_us = (uint64_t)(v * 1000.0);
    }
    if (spent) {
        if (json_number(spent, &v) != 0 || v < 0 || v > 4e9) {
            err_set(err, errlen, "time_spent_ms: expected a number of milliseconds");
            return 400;
        }
        l.has_time_spent_ms = 1, l.time_spent_ms = (uint32_t)v;
    }
    l.has_answered_at_us = 1, l.answered_at_us = wall_us();
    uint64_t id;
    char why[512] = "";
    switch (accept_label(c, who, 1, &l, &id, why, sizeof why)) {
    case ACCEPT_STORED: fprintf(f, "{\"status\":\"stored\",\"label_id\":\"%" PRIu64 "\"}\n", id); return 200;
    case ACCEPT_DUPLICATE: fprintf(f, "{\"status\":\"duplicate\",\"label_id\":\"%" PRIu64 "\"}\n", id); return 200;
    case ACCEPT_UNKNOWN: err_set(err, errlen, "query_id: %s", why); return 404;
    case ACCEPT_REJECTED: err_set(err, errlen, "%s", why); return strstr(why, "already") ? 409 : 400;
    default: err_set(err, errlen, "the label could not be stored (%s); send it again", why); return 503;
    }
}

static int api_skip(coord_t *c, const char *who, const json_t *body, FILE *f, char *err, size_t errlen) {
    uint64_t qid;
    if (json_id(json_get(body, "query_id"), &qid) != 0) {
        err_set(err, errlen, "query_id: expected the query's id as a string of digits");
        return 400;
    }
    cquery_t *cq = cquery(c, qid);
    if (!cq) {
        err_set(err, errlen, "query_id: no such query %" PRIu64, qid);
        return 404;
    }
    /* The lease's end and the skip in one lazy commit (store.h): a skip
     * lost to a power failure only offers the query again. */
    char why[256] = "";
    int ok = store_begin_lazy(c->store, why, sizeof why) == 0;
    if (ok && lease_of(cq, who)) ok = store_del_lease(c->store, qid, who) == 0;
    if (ok) ok = store_put_skip(c->store, qid, who, why, sizeof why) == 0;
    if (!ok || store_commit(c->store, why, sizeof why) != 0) {
        if (!ok) store_rollback(c->store);
        c->n.store_failed++;
        err_set(err, errlen, "the skip could not be recorded (%s); try again", why[0] ? why : "store error");
        return 503;
    }
    if (lease_of(cq, who)) lease_release(c, cq, who, 0);
    exclude(cq, who);
    c->n.queries_skipped++;
    fputs("{\"status\":\"skipped\"}\n", f);
    return 200;
}

static int api_undo(coord_t *c, const char *who, const json_t *body, FILE *f, char *err, size_t errlen) {
    uint64_t lid;
    if (json_id(json_get(body, "label_id"), &lid) != 0) {
        err_set(err, errlen, "label_id: expected the label's id as a string of digits");
        return 400;
    }
    long i = store_label_index(c->store, lid);
    store_label_t sl;
    if (i < 0 || !(sl = store_label_at(c->store, (size_t)i)).label->labeler_id ||
        strcmp(sl.label->labeler_id, who) != 0) {
        err_set(err, errlen, "label_id: no label %" PRIu64 " of yours", lid);
        return 404;
    }
    if (sl.retracted) {
        err_set(err, errlen, "label %" PRIu64 " was undone already", lid);
        return 409;
    }
    if (sl.hold_until_us <= wall_us()) {
        err_set(err, errlen, "the undo window (%g s) of label %" PRIu64 " is over: the learner has it", c->undo_s, lid);
        return 409;
    }
    uint64_t qid = sl.label->query_id;
    cquery_t *cq = cquery(c, qid);
    const store_query_t *qd = store_query(c->store, qid);
    if (!cq || !qd) {
        err_set(err, errlen, "label %" PRIu64 " answers an unknown query", lid);
        return 404;
    }
    int was_done = qd->done;
    char why[256];
    if (store_retract_label(c->store, lid, why, sizeof why) != 0) {
        err_set(err, errlen, "the label could not be undone (%s); try again", why);
        return 503;
    }
    c->n.labels_undone++;
    if (was_done) {
        if (cq->round >= 0 && cq->round < c->n_rounds) c->round_left[cq->round]++;
        c->answered--;
        c->outstanding++;
        open_add(c, (int)(cq - c->cq));
    }
    unexclude(cq, who);
    /* Leased again to the same labeler: the next /api/next shows it. */
    if (!lease_of(cq, who)) lease_add(c, cq, who, 0, 1, NULL);
    fprintf(f, "{\"status\":\"undone\",\"query_id\":\"%" PRIu64 "\"}\n", qid);
    return 200;
}

static int api_recent(coord_t *c, const char *who, FILE *f) {
    fputs("{\"labels\":[", f);
    int n = 0;
    uint64_t now = wall_us();
    for (size_t i = store_label_count(c->store); i-- > 0 && n < 20;) {
        store_label_t sl = store_label_at(c->store, i);
        if (sl.retracted || !sl.label->labeler_id || strcmp(sl.label->labeler_id, who) != 0) continue;
        fprintf(f, "%s{\"label_id\":\"%" PRIu64 "\",\"query_id\":\"%" PRIu64 "\",\"kind\":\"%s\",\"answer\":",
                n++ ? "," : "", sl.label->id, sl.label->query_id, kind_text(sl.label->kind));
        write_str(f, sl.answer);
        fprintf(f, ",\"at_ms\":%" PRIu64 ",\"undoable\":%s}", sl.created_us / 1000,
                sl.hold_until_us > now ? "true" : "false");
    }
    fputs("]}\n", f);
    return 200;
}

typedef struct {
    char name[STORE_NAME_MAX];
    int labels, maj_n, maj_ok, tea_n, tea_ok;
} lstat_t;

static lstat_t *lstat_for(lstat_t **v, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, name) == 0) return &(*v)[i];
    *v = reallocCheck(*v, sizeof **v * (size_t)(*n + 1));
    lstat_t *s = &(*v)[(*n)++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static const store_t *g_store; /* for by_query (qsort has no context argument) */
static int by_query(const void *a, const void *b) {
    uint64_t x = store_label_at(g_store, *(const size_t *)a).label->query_id;
    uint64_t y = store_label_at(g_store, *(const size_t *)b).label->query_id;
    return x < y ? -1 : x > y;
}

/* Per labeler: labels, agreement with the majority of a query's answers
 * (queries with >= 2 answers other than "can't tell", a strict majority)
 * and with the answer the true rewards give. */
static int labeler_stats(coord_t *c, lstat_t **out) {
    lstat_t *v = NULL;
    int n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_db(c->store), "SELECT name FROM labelers WHERE disabled=0 ORDER BY name", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) lstat_for(&v, &n, (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    size_t nl = store_label_count(c->store);
    for (size_t i = 0; i < nl; i++) {
        store_label_t sl = store_label_at(c->store, i);
        if (sl.retracted || !sl.label->labeler_id) continue;
        lstat_t *s = lstat_for(&v, &n, sl.label->labeler_id);
        s->labels++;
        if (strcmp(sl.answer, "cant_tell") == 0) continue;
        const store_query_t *qd = store_query(c->store, sl.label->query_id);
        if (!qd) continue;
        if (qd->teacher[0]) {
            s->tea_n++;
            s->tea_ok += strcmp(qd->teacher, sl.answer) == 0;
        }
    }
    /* Majority: labels grouped by query (sorted), each compared with the
     * others of its group. */
    size_t *idx = mallocCheck(sizeof *idx * (nl ? nl : 1)), m = 0;
    for (size_t i = 0; i < nl; i++) {
        store_label_t sl = store_label_at(c->store, i);
        const store_query_t *qd = store_query(c->store, sl.label->query_id);
        if (!sl.retracted && sl.label->labeler_id && qd && qd->answers_wanted >= 2 && strcmp(sl.answer, "cant_tell") != 0)
            idx[m++] = i;
    }
    g_store = c->store;
    qsort(idx, m, sizeof *idx, by_query);
    for (size_t a = 0; a < m;) {
        uint64_t q = store_label_at(c->store, idx[a]).label->query_id;
        size_t b = a;
        while (b < m && store_label_at(c->store, idx[b]).label->query_id == q) b++;
        if (b - a >= 2)
            for (size_t i = a; i < b; i++) {
                store_label_t sl = store_label_at(c->store, idx[i]);
                int same = 0;
                for (size_t j = a; j < b; j++) same += strcmp(store_label_at(c->store, idx[j]).answer, sl.answer) == 0;
                lstat_t *s = lstat_for(&v, &n, sl.label->labeler_id);
                s->maj_n++;
                s->maj_ok += 2 * same > (int)(b - a);
            }
        a = b;
    }
    free(idx);
    *out = v;
    return n;
}

static void write_ratio(FILE *f, int ok, int n) {
    if (n) write_num(f, (double)ok / n);
    else fputs("null", f);
}

static int labels_last_minute(coord_t *c) {
    uint64_t since = wall_us() - 60000000u;
    int n = 0;
    for (size_t i = store_label_count(c->store); i-- > 0;) {
        store_label_t sl = store_label_at(c->store, i);
        if (sl.created_us < since) break;
        n += !sl.retracted;
    }
    return n;
}

static int leased_count(const coord_t *c) {
    int n = 0;
    for (int o = 0; o < c->n_open; o++) n += c->cq[c->open[o]].n_leases;
    return n;
}

/* A person's authenticated /api/ call: they count as a labeler (workers) for
 * WEB_ACTIVE_S after it. */
#define WEB_ACTIVE_S 60.0
static void web_seen(coord_t *c, const char *who) {
    double now = now_s();
    for (int i = 0; i < c->n_web; i++)
        if (strcmp(c->web[i].name, who) == 0) {
            c->web[i].last = now;
            return;
        }
    if (c->n_web == c->cap_web) {
        c->cap_web = c->cap_web ? 2 * c->cap_web : 16;
        c->web = reallocCheck(c->web, sizeof *c->web * c->cap_web);
    }
    snprintf(c->web[c->n_web].name, sizeof c->web[0].name, "%s", who);
    c->web[c->n_web++].last = now;
}

static int web_active(const coord_t *c) {
    double since = now_s() - WEB_ACTIVE_S;
    int n = 0;
    for (int i = 0; i < c->n_web; i++) n += c->web[i].last >= since;
    return n;
}

static int api_stats(coord_t *c, const char *who, FILE *f) {
    int kinds[4] = {0};
    for (int i = 0; i < c->n_peers; i++) kinds[c->peers[i]->kind & 3]++;
    int web = web_active(c);
    size_t total = 0, nl = store_label_count(c->store);
    for (size_t i = 0; i < nl; i++) total += !store_label_at(c->store, i).retracted;
    fprintf(f,
            "{\"queue_depth\":%d,\"leased\":%d,\"labels_total\":%zu,\"labels_per_minute\":%d,\"my_labels\":%d,"
            "\"workers\":{\"rollout\":%d,\"labeler\":%d,\"web_labeler\":%d,\"learner\":%d},\"env_steps\":%lld,"
            "\"env_steps_per_s\":",
            c->n_open, leased_count(c), total, labels_last_minute(c), labels_of(c, who),
            kinds[RLHF__PEER_KIND__PEER_ROLLOUT], kinds[RLHF__PEER_KIND__PEER_LABELER] + web, web,
            kinds[RLHF__PEER_KIND__PEER_LEARNER], c->steps_base + c->env_steps);
    write_num(f, c->steps_rate);
    fprintf(f, ",\"policy_version\":%" PRIu64 ",\"labelers\":[", c->policy_version);
    lstat_t *ls = NULL;
    int n = labeler_stats(c, &ls);
    for (int i = 0; i < n; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        write_str(f, ls[i].name);
        fprintf(f, ",\"labels\":%d,\"agreement_majority\":", ls[i].labels);
        write_ratio(f, ls[i].maj_ok, ls[i].maj_n);
        fputs(",\"agreement_teacher\":", f);
        write_ratio(f, ls[i].tea_ok, ls[i].tea_n);
        fputc('}', f);
    }
    free(ls);
    fputs("],\"curves\":{", f);
    for (int k = 0; k < CURVES; k++) {
        fprintf(f, "%s\"%s\":[", k ? "," : "", curve_names[k]);
        for (int i = 0; i < c->n_history; i++) {
            if (i) fputc(',', f);
            if (isfinite(c->history[i][k])) write_num(f, c->history[i][k]);
            else fputs("null", f);
        }
        fputc(']', f);
    }
    fputs("}}\n", f);
    return 200;
}

static int api_call(void *arg, const char *method, const char *path, const char *who, const json_t *body, FILE *out,
                    char *err, size_t errlen) {
    coord_t *c = arg;
    web_seen(c, who);
    int get = strcmp(method, "GET") == 0;
    struct {
        const char *path;
        int post;
    } routes[] = {{"/api/next", 0}, {"/api/labels", 1}, {"/api/skip", 1}, {"/api/undo", 1},
                  {"/api/recent", 0}, {"/api/stats", 0}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) != 0) continue;
        if (routes[i].post == get) {
            err_set(err, errlen, "%s takes %s", path, routes[i].post ? "POST" : "GET");
            return 405;
        }
        switch (i) {
        case 0: return api_next(c, who, out, err, errlen);
        case 1: return api_label(c, who, body, out, err, errlen);
        case 2: return api_skip(c, who, body, out, err, errlen);
        case 3: return api_undo(c, who, body, out, err, errlen);
        case 4: return api_recent(c, who, out);
        default: return api_stats(c, who, out);
        }
    }
    err_set(err, errlen, "no such API call: %s", path);
    return 404;
}

/* The learner's Status, as curve points for /api/stats. */
static void record_history(coord_t *c, const Rlhf__Status *s) {
    if (!c->history) c->history = mallocCheck(sizeof *c->history * HISTORY_MAX);
    if (c->n_history == HISTORY_MAX) {
        /* Keep every other point: the whole run at half the resolution. */
        for (int i = 0; i < HISTORY_MAX / 2; i++) memcpy(c->history[i], c->history[2 * i + 1], sizeof c->history[0]);
        c->n_history = HISTORY_MAX / 2;
    }
    double *row = c->history[c->n_history];
    int any = 0;
    for (int k = 0; k < CURVES; k++) {
        row[k] = NAN;
        for (size_t i = 0; i < s->n_metrics; i++)
            if (s->metrics[i]->name && strcmp(s->metrics[i]->name, curve_names[k]) == 0 && s->metrics[i]->has_value) {
                row[k] = s->metrics[i]->value;
                any = 1;
            }
    }
    if (any) c->n_history++;
}

/* Prometheus names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static void metric_name(const char *in, char *out, size_t outlen) {
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < outlen; p++)
        out[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ? *p : '_';
    out[n] = '\0';
}

static void write_metrics(void *arg, FILE *f) {
    coord_t *c = arg;
    int kinds[4] = {0};
    for (int i = 0; i < c->n_peers; i++) kinds[c->peers[i]->kind & 3]++;
    size_t total = 0, nl = store_label_count(c->store);
    for (size_t i = 0; i < nl; i++) total += !store_label_at(c->store, i).retracted;
    fprintf(f, "# TYPE rlhf_workers gauge\n");
    /* labeler: ZeroMQ labelers and the people active over HTTP in the last
     * minute (also alone in rlhf_web_labelers). */
    int web = web_active(c);
    fprintf(f, "rlhf_workers{kind=\"rollout\"} %d\nrlhf_workers{kind=\"labeler\"} %d\nrlhf_workers{kind=\"learner\"} %d\n",
            kinds[RLHF__PEER_KIND__PEER_ROLLOUT], kinds[RLHF__PEER_KIND__PEER_LABELER] + web,
            kinds[RLHF__PEER_KIND__PEER_LEARNER]);
    fprintf(f, "# TYPE rlhf_web_labelers gauge\nrlhf_web_labelers %d\n", web);
    fprintf(f, "# TYPE rlhf_queue_depth gauge\nrlhf_queue_depth %d\n", c->n_open);
    fprintf(f, "# TYPE rlhf_queries_leased gauge\nrlhf_queries_leased %d\n", leased_count(c));
    fprintf(f, "# TYPE rlhf_labels_total counter\nrlhf_labels_total %zu\n", total);
    fprintf(f, "# TYPE rlhf_env_steps_total counter\nrlhf_env_steps_total %lld\n", c->steps_base + c->env_steps);
    fprintf(f, "# TYPE rlhf_env_steps_per_second gauge\nrlhf_env_steps_per_second ");
    write_num(f, c->steps_rate);
    fprintf(f, "\n# TYPE rlhf_policy_version gauge\nrlhf_policy_version %" PRIu64 "\n", c->policy_version);
    fprintf(f, "# TYPE rlhf_batches_dropped_total counter\nrlhf_batches_dropped_total %" PRIu64 "\n",
            c->n.batches_dropped_lag + c->n.batches_dropped_bad + c->n.batches_dropped_full);
    fprintf(f, "# TYPE rlhf_policy_lag histogram\n");
    uint64_t cum = 0, sum = 0;
    for (int b = 0; b < LAG_BINS - 1; b++) {
        cum += c->lag_hist[b];
        sum += (uint64_t)b * c->lag_hist[b];
        fprintf(f, "rlhf_policy_lag_bucket{le=\"%d\"} %" PRIu64 "\n", b, cum);
    }
    cum += c->lag_hist[LAG_BINS - 1];
    sum += (uint64_t)(LAG_BINS - 1) * c->lag_hist[LAG_BINS - 1]; /* the last bin counts as its lower bound */
    fprintf(f, "rlhf_policy_lag_bucket{le=\"+Inf\"} %" PRIu64 "\nrlhf_policy_lag_sum %" PRIu64
               "\nrlhf_policy_lag_count %" PRIu64 "\n", cum, sum, cum);
#define PROM(fld, name)                                                                  \
    {                                                                                    \
        char pn[96];                                                                     \
        metric_name(name, pn, sizeof pn);                                                \
        fprintf(f, "# TYPE rlhf_coord_%s counter\nrlhf_coord_%s %" PRIu64 "\n", pn, pn, c->n.fld); \
    }
    COUNTERS(PROM)
#undef PROM
    if (c->learner_status) {
        const Rlhf__Status *s = c->learner_status->status;
        for (size_t i = 0; i < s->n_metrics; i++) {
            if (!s->metrics[i]->name || !isfinite(s->metrics[i]->value)) continue;
            char pn[96];
            metric_name(s->metrics[i]->name, pn, sizeof pn);
            fprintf(f, "# TYPE rlhf_%s gauge\nrlhf_%s ", pn, pn);
            write_num(f, s->metrics[i]->value);
            fputc('\n', f);
        }
    }
}

/* ---- life cycle ------------------------------------------------------------------------ */

coord_t *coord_new(const job_t *job, coord_options_t *o, char *err, size_t errlen) {
    const env_class_t *cls = env_find(job->env.id);
    if (!cls) {
        snprintf(err, errlen, "unknown environment '%s' (rlhf env list)", job->env.id);
        transport_allow_destroy(&o->allow);
        return NULL;
    }
    coord_t *c = callocCheck(1, sizeof *c);
    c->job = *job;
    c->cls = cls;
    c->obs_dim = cls->obs_dim;
    c->act_dim = cls->act.discrete ? 1 : cls->act.n;
    c->job_text = job_write_text(&c->job);
    c->job_hash = wire_hash64(c->job_text, strlen(c->job_text));
    snprintf(c->run_id, sizeof c->run_id, "%.100s-s%" PRIu64, job->env.id, job->run.seed);
    c->hb_s = job->coordinator.heartbeat_ms / 1000.0;
    c->dead_s = c->hb_s * job->coordinator.liveness;
    c->learner_dead_s = job->coordinator.learner_timeout_ms / 1000.0;
    c->lease_s = job->coordinator.lease_ms / 1000.0;
    if (o->out_dir) snprintf(c->out_dir, sizeof c->out_dir, "%s", o->out_dir);
    weights_policy_arch(&c->job, c->policy_arch, sizeof c->policy_arch, NULL, 0);

    transport_options_t to;
    transport_options_default(&to);
    if (o->max_message) to.max_message = o->max_message;
    c->t = transport_new(&to);
    if (!c->t) {
        snprintf(err, errlen, "cannot make a ZeroMQ context");
        transport_allow_destroy(&o->allow);
        coord_destroy(&c);
        return NULL;
    }
    /* Two I/O threads: batches in from the workers and out to the learner
     * are both bulk; one thread would serialise them. */
    zmq_ctx_set(transport_ctx(c->t), ZMQ_IO_THREADS, 2);
    if (o->keys) {
        c->curve = 1;
        if (transport_zap_start(c->t, &o->allow, err, errlen) != 0) {
            coord_destroy(&c);
            return NULL;
        }
    }
    transport_allow_destroy(&o->allow);
    c->srv = transport_server_new(c->t, o->bind, o->keys, err, errlen);
    if (!c->srv) {
        coord_destroy(&c);
        return NULL;
    }
    c->queue = callocCheck((size_t)job->coordinator.learner_queue, sizeof *c->queue);
    c->done = callocCheck((size_t)job->ppo.n_steps * job->env.n_envs, 1);
    c->terminated = callocCheck((size_t)job->ppo.n_steps * job->env.n_envs, 1);
    c->eps = episodes_new(c->obs_dim, c->act_dim, cls->max_steps, RECENT_EPISODES);
    c->rm = weights_reward_new(&c->job, err, errlen);
    c->asked = segstore_new(job->feedback.segment_len, c->obs_dim, c->act_dim);
    rng_t root;
    rng_seed(&root, job->run.seed);
    rng_split(&root, 4, &c->rng_feedback); /* the local feed's feedback stream (feed_local.c) */
    weights_rx_init(&c->rx_policy);
    weights_rx_init(&c->rx_reward);
    if (c->out_dir[0]) {
        if (mkdir_p(c->out_dir) != 0) {
            snprintf(err, errlen, "cannot create %s: %s", c->out_dir, strerror(errno));
            coord_destroy(&c);
            return NULL;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/endpoint", c->out_dir);
        char line[600];
        int n = snprintf(line, sizeof line, "%s\n", transport_sock_endpoint(c->srv));
        write_file_atomic(path, line, (size_t)n);
        snprintf(path, sizeof path, "%s/config.ini", c->out_dir);
        write_file_atomic(path, c->job_text, strlen(c->job_text));
    }
    /* The feedback store: durable in OUT/feedback.db; without --out only in
     * memory, and then no HTTP labelers (their work could not be kept). */
    c->render_dim = cls->render_dim > 0 ? cls->render_dim : 0;
    episodes_set_render_dim(c->eps, c->render_dim);
    c->undo_s = job->feedback.undo_s;
    char db_path[1200];
    snprintf(db_path, sizeof db_path, "%s/feedback.db", c->out_dir);
    if (!c->out_dir[0]) {
        if (job->coordinator.http_port) {
            snprintf(err, errlen,
                     "coordinator.http_port is set but there is no --out: human labels need a durable store "
                     "(OUT/feedback.db)");
            coord_destroy(&c);
            return NULL;
        }
        log_warn("no --out: the feedback store is in memory only (a crash loses labels the learner has not received)");
    }
    c->store = store_open(c->out_dir[0] ? db_path : NULL, job->env.id, job->feedback.segment_len, c->obs_dim,
                          c->act_dim, c->render_dim, cls->render_kind, err, errlen);
    if (!c->store) {
        coord_destroy(&c);
        return NULL;
    }
    recover_queries(c);
    /* Fault injection for tests (SQLite-style): the first N label commits
     * fail, so a test can see that no acknowledgement goes out and the
     * resend is stored once. */
    const char *fault = getenv("RLHF_FAULT_LABEL_COMMITS");
    if (fault && *fault) {
        c->fault_labels = atoi(fault);
        log_warn("RLHF_FAULT_LABEL_COMMITS: the first %d label commits will fail", c->fault_labels);
    }
    if (job->coordinator.http_port) {
        http_options_t ho = {.bind = job->coordinator.http_bind, .port = job->coordinator.http_port,
                             .db = store_db(c->store), .api = api_call, .metrics = write_metrics, .arg = c};
        c->http = http_new(&ho, err, errlen);
        if (!c->http) {
            coord_destroy(&c);
            return NULL;
        }
        log_info("labelers' HTTP API and pages on http://%s:%d/", job->coordinator.http_bind,
                 job->coordinator.http_port);
    }
    log_info("coordinator of %s on %s%s: job %016" PRIx64 ", heartbeat %d ms x %d", c->run_id,
             transport_sock_endpoint(c->srv), c->curve ? " (CURVE)" : "", c->job_hash, job->coordinator.heartbeat_ms,
             job->coordinator.liveness);
    return c;
}

void coord_destroy(coord_t **self_p) {
    coord_t *c = *self_p;
    if (!c) return;
    for (int i = 0; i < c->n_peers; i++) free(c->peers[i]);
    free(c->peers);
    if (c->queue)
        for (int i = 0; i < c->q_len; i++) zmq_msg_close(&c->queue[(c->q_head + i) % c->job.coordinator.learner_queue].frame);
    free(c->queue);
    free(c->done);
    free(c->terminated);
    episodes_destroy(&c->eps);
    store_destroy(&c->store);
    reward_destroy(&c->rm);
    segstore_destroy(&c->asked);
    free(c->qbuf);
    http_destroy(&c->http);
    free(c->web);
    for (int i = 0; i < c->n_cq; i++) free(c->cq[i].excl);
    free(c->cq);
    free(c->history);
    free(c->open);
    free(c->round_left);
    weights_rx_free(&c->rx_policy);
    weights_rx_free(&c->rx_reward);
    weights_free(&c->policy);
    wire_free(&c->learner_status);
    free(c->job_text);
    transport_destroy(&c->t);
    free(c);
    *self_p = NULL;
}

const char *coord_endpoint(const coord_t *c) { return transport_sock_endpoint(c->srv); }

int coord_run(coord_t *c, volatile sig_atomic_t *stop) {
    double now = now_s();
    c->next_hb = now + c->hb_s;
    c->next_status = now;
    while (!*stop) {
        now = now_s();
        double next = fmin(c->next_hb, c->next_status);
        long wait = (long)((next - now) * 1000.0) + 1;
        if (wait < 0) wait = 0;
        if (wait > 50) wait = 50; /* liveness and leases are checked at least every 50 ms */
        zmq_pollitem_t items[2] = {{transport_sock_zmq(c->srv), 0, ZMQ_POLLIN, 0},
                                   {NULL, c->http ? http_fd(c->http) : -1, ZMQ_POLLIN, 0}};
        int rc = transport_poll(c->t, items, c->http ? 2 : 1, wait);
        if (rc < 0 && errno != EINTR) {
            log_error("zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (rc > 0 && items[0].revents) {
            /* Bounded, so timers (heartbeats above all) run under a flood. */
            for (int k = 0; k < 1024; k++) {
                transport_from_t from;
                Rlhf__Envelope *env = NULL;
                zmq_msg_t frame;
                int r = transport_recv_keep(c->srv, &from, &env, &frame);
                if (r == 0) handle(c, &from, &env, &frame);
                zmq_msg_close(&frame);
                wire_free(&env);
                if (r == -1) break; /* r == -2: dropped and logged by the transport */
            }
        }
        /* Every turn: libmicrohttpd's own timeouts need it too. */
        if (c->http) http_run(c->http);
        now = now_s();
        if (now >= c->next_hb) {
            send_heartbeats(c);
            c->next_hb = fmax(c->next_hb + c->hb_s, now);
        }
        check_liveness(c, now);
        check_leases(c, now);
        schedule_labels(c);
        assign_queries(c);
        pump_batches(c);
        pump_labels(c);
        if (now >= c->next_status) {
            long long steps = c->steps_base + c->env_steps;
            if (c->rate_t > 0 && now > c->rate_t) c->steps_rate = (double)(steps - c->rate_steps) / (now - c->rate_t);
            c->rate_t = now, c->rate_steps = steps;
            write_status(c);
            c->next_status = now + STATUS_EVERY_S;
        }
        if (shutdown_complete(c, now)) break;
    }
    write_status(c);
    if (*stop) log_info("stopped by a signal (peers were not told: they reconnect when a coordinator is back)");
    return 0;
}

/* learnerlink.c - see learnerlink.h. */
#include "learnerlink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "peer.h"
#include "util.h"
#include "weights.h"

#define MAX_WINDOW 64

typedef struct {
    Rlhf__Envelope **v;
    int head, n, cap;
} fifo_t;

static void fifo_push(fifo_t *f, Rlhf__Envelope *env) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 16;
        Rlhf__Envelope **v = mallocCheck(sizeof *v * cap);
        for (int i = 0; i < f->n; i++) v[i] = f->v[(f->head + i) % f->cap];
        free(f->v);
        f->v = v;
        f->head = 0;
        f->cap = cap;
    }
    f->v[(f->head + f->n++) % f->cap] = env;
}

static Rlhf__Envelope *fifo_front(const fifo_t *f) { return f->n ? f->v[f->head] : NULL; }

static Rlhf__Envelope *fifo_pop(fifo_t *f) {
    if (!f->n) return NULL;
    Rlhf__Envelope *e = f->v[f->head];
    f->head = (f->head + 1) % f->cap;
    f->n--;
    return e;
}

static void fifo_free(fifo_t *f) {
    Rlhf__Envelope *e;
    while ((e = fifo_pop(f))) wire_free(&e);
    free(f->v);
    memset(f, 0, sizeof *f);
}

struct learnerlink {
    peer_t *peer;
    int n_ranks, window;
    job_t job;
    int have_job;
    char *job_text;
    uint64_t job_hash;
    fifo_t batches, labels;
    size_t item_pos;                 /* the next item of the front LabeledBatch */
    segstore_t *segs;
    weights_t policy, reward;        /* the latest sent, for a re-registration */
    uint64_t policy_version, reward_version;
    uint64_t label_cursor, env_steps, labels_answered;
    uint64_t batches_dropped;
    char batch_worker[WIRE_MAX_NAME + 1];
    Rlhf__Envelope *status;
    uint64_t statuses;
    int coordinator_shutdown;
    uint64_t shutdown_seq;
    int shutdown_acked;
    uint64_t welcomes_seen;
    char error[1400];
};

static void on_register(Rlhf__Register *r, void *arg) {
    learnerlink_t *l = arg;
    r->caps->has_n_ranks = 1, r->caps->n_ranks = (uint32_t)l->n_ranks;
    r->caps->has_max_inflight = 1, r->caps->max_inflight = (uint32_t)l->window;
    r->has_label_cursor = 1, r->label_cursor = l->label_cursor;
    r->has_env_steps = 1, r->env_steps = l->env_steps;
    r->has_labels_answered = 1, r->labels_answered = l->labels_answered;
}

static void on_heartbeat(Rlhf__Heartbeat *h, void *arg) {
    learnerlink_t *l = arg;
    h->has_policy_version = 1, h->policy_version = l->policy_version;
    h->has_reward_version = 1, h->reward_version = l->reward_version;
    h->has_label_cursor = 1, h->label_cursor = l->label_cursor;
    h->has_inflight = 1, h->inflight = (uint32_t)l->batches.n;
}

learnerlink_t *learnerlink_new(const learnerlink_options_t *o, char *err, size_t errlen) {
    learnerlink_t *l = callocCheck(1, sizeof *l);
    l->n_ranks = o->n_ranks > 0 ? o->n_ranks : 1;
    l->window = o->window > 0 ? (o->window < MAX_WINDOW ? o->window : MAX_WINDOW) : 2;
    l->label_cursor = o->label_cursor;
    l->env_steps = o->env_steps;
    l->labels_answered = o->labels_answered;
    peer_options_t po = {.endpoint = o->endpoint,
                         .kind = RLHF__PEER_KIND__PEER_LEARNER,
                         .peer_id = o->peer_id ? o->peer_id : "learner",
                         .keys = o->keys,
                         .server_public_z85 = o->server_public_z85,
                         .on_register = on_register,
                         .on_heartbeat = on_heartbeat,
                         .arg = l};
    l->peer = peer_new(&po, err, errlen);
    if (!l->peer) {
        free(l);
        return NULL;
    }
    return l;
}

void learnerlink_destroy(learnerlink_t **self_p) {
    learnerlink_t *l = *self_p;
    if (!l) return;
    peer_destroy(&l->peer);
    fifo_free(&l->batches);
    fifo_free(&l->labels);
    segstore_destroy(&l->segs);
    weights_free(&l->policy);
    weights_free(&l->reward);
    wire_free(&l->status);
    free(l->job_text);
    free(l);
    *self_p = NULL;
}

/* Sends w in chunks; -1 when a chunk could not go (the rest is not sent). */
static int send_weights(learnerlink_t *l, const weights_t *w) {
    if (!w->data || !peer_registered(l->peer)) return -1;
    uint64_t sum = weights_checksum(w);
    size_t n = weights_chunk_count(w, 0);
    for (size_t i = 0; i < n; i++) {
        Rlhf__Envelope env;
        Rlhf__Weights m;
        peer_envelope(l->peer, &env);
        weights_chunk(w, 0, i, sum, &m);
        env.body_case = RLHF__ENVELOPE__BODY_WEIGHTS;
        env.weights = &m;
        if (peer_send(l->peer, &env) != 0) return -1;
    }
    return 0;
}

/* Returns -1 on a fatal error. */
static int on_welcome(learnerlink_t *l, const Rlhf__Welcome *w) {
    if (l->have_job) {
        if (w->job->hash != l->job_hash) {
            snprintf(l->error, sizeof l->error,
                     "the coordinator's job changed (hash %016" PRIx64 " -> %016" PRIx64
                     "): a running learner cannot switch jobs",
                     l->job_hash, w->job->hash);
            return -1;
        }
    } else {
        char err[1024];
        job_defaults(&l->job);
        if (job_load_text(&l->job, w->job->ini, "JobConfig", err, sizeof err) != 0 ||
            job_validate(&l->job, err, sizeof err) != 0) {
            snprintf(l->error, sizeof l->error, "the coordinator's job does not load: %s", err);
            return -1;
        }
        const env_class_t *cls = env_find(l->job.env.id);
        if (!cls) {
            snprintf(l->error, sizeof l->error, "the coordinator's job runs an unknown environment '%s'", l->job.env.id);
            return -1;
        }
        l->job_text = strdupCheck(w->job->ini);
        l->job_hash = w->job->hash;
        l->segs = segstore_new(l->job.feedback.segment_len, cls->obs_dim, cls->act.discrete ? 1 : cls->act.n);
        l->have_job = 1;
    }
    /* A (restarted) coordinator gets the latest weights we have. */
    send_weights(l, &l->policy);
    send_weights(l, &l->reward);
    return 0;
}

/* Takes env (or frees it). Returns -1 on a fatal error. */
static int handle(learnerlink_t *l, Rlhf__Envelope *env) {
    int rc = 0;
    switch (env->body_case) {
    case RLHF__ENVELOPE__BODY_WELCOME: rc = on_welcome(l, env->welcome); break;
    case RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH:
        if (l->have_job) {
            fifo_push(&l->batches, env);
            return 0;
        }
        peer_ack(l->peer, env->seq, 1); /* cannot happen (Welcome comes first); the credit still goes back */
        break;
    case RLHF__ENVELOPE__BODY_LABELED_BATCH:
        if (l->have_job) {
            fifo_push(&l->labels, env);
            return 0;
        }
        break;
    case RLHF__ENVELOPE__BODY_SHUTDOWN:
        log_info("the coordinator says stop: %s", env->shutdown->reason);
        l->coordinator_shutdown = 1;
        peer_ack(l->peer, env->seq, 0);
        break;
    case RLHF__ENVELOPE__BODY_STATUS:
        wire_free(&l->status);
        l->status = env;
        l->statuses++;
        return 0;
    case RLHF__ENVELOPE__BODY_ACK:
        if (l->shutdown_seq && env->ack->seq == l->shutdown_seq) l->shutdown_acked = 1;
        break;
    default: break;
    }
    wire_free(&env);
    return rc;
}

static int ready(const learnerlink_t *l) {
    int r = 0;
    if (l->batches.n) r |= LL_BATCH;
    if (l->labels.n) r |= LL_LABEL;
    if (l->coordinator_shutdown) r |= LL_SHUTDOWN;
    return r;
}

int learnerlink_poll(learnerlink_t *l, long timeout_ms) {
    double deadline = now_s() + (timeout_ms > 0 ? timeout_ms / 1000.0 : 0);
    for (;;) {
        double left = deadline - now_s();
        long wait = ready(l) || left <= 0 ? 0 : (long)(left * 1000.0) + 1;
        Rlhf__Envelope *env = NULL;
        int rc = peer_poll(l->peer, wait, &env);
        if (rc < 0) {
            snprintf(l->error, sizeof l->error, "%s", peer_error(l->peer));
            return -1;
        }
        if (rc == 0) break;
        if (handle(l, env) != 0) return -1;
    }
    int r = ready(l);
    if (peer_welcomes(l->peer) != l->welcomes_seen) {
        l->welcomes_seen = peer_welcomes(l->peer);
        r |= LL_WELCOME;
    }
    return r;
}

const job_t *learnerlink_job(const learnerlink_t *l) { return l->have_job ? &l->job : NULL; }
const char *learnerlink_job_text(const learnerlink_t *l) { return l->job_text; }

int learnerlink_next_batch(learnerlink_t *l, traj_t *b) {
    Rlhf__Envelope *env;
    while ((env = fifo_pop(&l->batches))) {
        /* Credit back to the coordinator whatever happens to it. */
        peer_ack(l->peer, env->seq, 1);
        char err[512];
        const Rlhf__TrajectoryBatch *m = env->trajectory_batch;
        if (codec_batch_to_traj(m, l->job.env.id, b, 1, err, sizeof err) != 0) {
            l->batches_dropped++;
            log_error("trajectory batch %" PRIu64 " of %s dropped: %s", m->batch_seq, m->worker_id, err);
            wire_free(&env);
            continue;
        }
        l->env_steps += (uint64_t)m->steps * m->n_envs;
        snprintf(l->batch_worker, sizeof l->batch_worker, "%s", m->worker_id);
        wire_free(&env);
        return 1;
    }
    return 0;
}

const char *learnerlink_batch_worker(const learnerlink_t *l) { return l->batch_worker; }

int learnerlink_next_label(learnerlink_t *l, learnerlink_label_t *out) {
    Rlhf__Envelope *env;
    while ((env = fifo_front(&l->labels))) {
        const Rlhf__LabeledBatch *b = env->labeled_batch;
        if (l->item_pos >= b->n_items) {
            fifo_pop(&l->labels);
            wire_free(&env);
            l->item_pos = 0;
            continue;
        }
        const Rlhf__LabeledItem *it = b->items[l->item_pos++];
        const Rlhf__Label *lab = it->label;
        /* Labels come in id order; after a reconnection some come again. */
        if (lab->has_id && lab->id && lab->id <= l->label_cursor) continue;
        if (lab->has_id && lab->id) l->label_cursor = lab->id;
        if (b->has_total_labels && b->total_labels > l->labels_answered) l->labels_answered = b->total_labels;
        memset(out, 0, sizeof *out);
        out->label_id = lab->id;
        out->round_done = it->has_round_done && it->round_done;
        out->segs = l->segs;
        l->segs->n = 0;
        const Rlhf__Query *q = it->query;
        int seg_index[LABEL_MAX_K];
        char err[512] = "";
        int ok = q->n_segment_ids <= LABEL_MAX_K;
        for (size_t j = 0; ok && j < q->n_segment_ids; j++) {
            const Rlhf__Segment *s = NULL;
            for (size_t k = 0; k < b->n_segments && !s; k++)
                if (b->segments[k]->id == q->segment_ids[j]) s = b->segments[k];
            /* wire_validate() checked every segment a query names is in the batch. */
            seg_index[j] = s ? codec_segment_add(l->segs, s, err, sizeof err) : -1;
            ok = seg_index[j] >= 0;
        }
        int rc = ok ? codec_label(q, lab, seg_index, &out->label, err, sizeof err) : -1;
        if (rc < 0) log_error("label %" PRIu64 " cannot be learned from: %s", lab->id, err);
        out->has_label = rc == 0;
        return 1;
    }
    return 0;
}

int learnerlink_send_policy(learnerlink_t *l, const policy_t *p, uint64_t version) {
    if (!l->have_job) return -1;
    weights_pack_policy(&l->policy, &l->job, p, version);
    l->policy_version = version;
    return send_weights(l, &l->policy);
}

int learnerlink_send_reward(learnerlink_t *l, const reward_model_t *rm, uint64_t version) {
    if (!l->have_job) return -1;
    weights_pack_reward(&l->reward, &l->job, rm, version);
    l->reward_version = version;
    return send_weights(l, &l->reward);
}

int learnerlink_send_status(learnerlink_t *l, const char *phase, uint64_t policy_version, uint64_t reward_version,
                            const char *const *names, const double *values, size_t n) {
    Rlhf__Metric *m = callocCheck(n ? n : 1, sizeof *m);
    Rlhf__Metric **mp = callocCheck(n ? n : 1, sizeof *mp);
    for (size_t i = 0; i < n; i++) {
        rlhf__metric__init(&m[i]);
        m[i].name = (char *)names[i];
        m[i].has_value = 1, m[i].value = values[i];
        mp[i] = &m[i];
    }
    Rlhf__Status st;
    rlhf__status__init(&st);
    st.phase = (char *)phase;
    st.has_policy_version = 1, st.policy_version = policy_version;
    st.has_reward_version = 1, st.reward_version = reward_version;
    st.n_metrics = n, st.metrics = mp;
    Rlhf__Envelope env;
    peer_envelope(l->peer, &env);
    env.body_case = RLHF__ENVELOPE__BODY_STATUS;
    env.status = &st;
    int rc = peer_send(l->peer, &env);
    free(m);
    free(mp);
    return rc;
}

int learnerlink_request_status(learnerlink_t *l) {
    Rlhf__Status st;
    rlhf__status__init(&st);
    st.has_request = 1, st.request = 1;
    Rlhf__Envelope env;
    peer_envelope(l->peer, &env);
    env.body_case = RLHF__ENVELOPE__BODY_STATUS;
    env.status = &st;
    return peer_send(l->peer, &env);
}

int learnerlink_counter(const learnerlink_t *l, const char *name, uint64_t *out) {
    if (!l->status) return -1;
    const Rlhf__Status *s = l->status->status;
    for (size_t i = 0; i < s->n_counters; i++)
        if (strcmp(s->counters[i]->name, name) == 0) {
            *out = s->counters[i]->value;
            return 0;
        }
    return -1;
}

uint64_t learnerlink_status_count(const learnerlink_t *l) { return l->statuses; }

int learnerlink_shutdown(learnerlink_t *l, const char *reason, long timeout_ms) {
    double deadline = now_s() + timeout_ms / 1000.0;
    l->shutdown_seq = 0;
    l->shutdown_acked = 0;
    while (now_s() < deadline) {
        if (!l->shutdown_seq && peer_registered(l->peer)) {
            Rlhf__Envelope env;
            Rlhf__Shutdown s;
            peer_envelope(l->peer, &env);
            rlhf__shutdown__init(&s);
            s.reason = (char *)reason;
            env.body_case = RLHF__ENVELOPE__BODY_SHUTDOWN;
            env.shutdown = &s;
            if (peer_send(l->peer, &env) == 0) l->shutdown_seq = env.seq;
        }
        if (learnerlink_poll(l, 20) < 0) return -1;
        if (l->shutdown_acked) return 0;
        /* Re-registered meanwhile (the coordinator restarted): ask again. */
        if (!peer_registered(l->peer)) l->shutdown_seq = 0;
    }
    return -1;
}

void learnerlink_progress(const learnerlink_t *l, uint64_t *label_cursor, uint64_t *env_steps,
                          uint64_t *labels_answered) {
    if (label_cursor) *label_cursor = l->label_cursor;
    if (env_steps) *env_steps = l->env_steps;
    if (labels_answered) *labels_answered = l->labels_answered;
}

int learnerlink_registered(const learnerlink_t *l) { return peer_registered(l->peer); }
uint64_t learnerlink_welcomes(const learnerlink_t *l) { return peer_welcomes(l->peer); }
const char *learnerlink_error(const learnerlink_t *l) { return l->error; }

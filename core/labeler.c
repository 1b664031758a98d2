/* labeler.c - see labeler.h. */
#include "labeler.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "job.h"
#include "peer.h"
#include "teacher.h"
#include "util.h"

#define MAX_PENDING 256

/* A label sent and not acknowledged yet; msg points into the struct. */
typedef struct {
    Rlhf__Label msg;
    char idempotency_id[WIRE_MAX_NAME + 1];
    uint32_t ranking[WIRE_MAX_RANK_K];
    double resend_at;
    int sends;
} pending_t;

typedef struct {
    peer_t *peer;
    const char *spec;
    teacher_t teacher;
    int have_job;
    uint64_t job_hash;
    job_t job;
    double resend_s;
    rng_t rng;
    pending_t *pending[MAX_PENDING];
    int n_pending;
    int max_inflight;
    uint64_t answers, stored, duplicates, refused;
} labeler_t;

static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_register(Rlhf__Register *r, void *arg) {
    labeler_t *lb = arg;
    static Rlhf__QueryKind kinds[] = {RLHF__QUERY_KIND__QUERY_PAIR, RLHF__QUERY_KIND__QUERY_RATING,
                                      RLHF__QUERY_KIND__QUERY_RANKING};
    r->caps->n_query_kinds = 3, r->caps->query_kinds = kinds;
    r->caps->has_max_inflight = 1, r->caps->max_inflight = (uint32_t)lb->max_inflight;
    static char *features[] = {"scripted-teacher"};
    r->caps->n_features = 1, r->caps->features = features;
}

static void on_heartbeat(Rlhf__Heartbeat *h, void *arg) {
    labeler_t *lb = arg;
    h->has_inflight = 1, h->inflight = (uint32_t)lb->n_pending;
}

static int on_welcome(labeler_t *lb, const Rlhf__Welcome *w, char *err, size_t errlen) {
    if (lb->have_job && w->job->hash == lb->job_hash) return 0;
    job_defaults(&lb->job);
    if (job_load_text(&lb->job, w->job->ini, "JobConfig", err, errlen) != 0) return -1;
    const env_class_t *cls = env_find(lb->job.env.id);
    if (!cls) {
        snprintf(err, errlen, "the job runs an unknown environment '%s'", lb->job.env.id);
        return -1;
    }
    if (teacher_parse(lb->spec, &lb->teacher, err, errlen) != 0) return -1;
    /* The local feed's rating range (feed_local.c): the per-step reward
     * bounds over a segment. */
    int seg_len = lb->job.feedback.segment_len;
    if (!strstr(lb->spec, "lo=")) lb->teacher.rating_lo = cls->reward_lo * seg_len;
    if (!strstr(lb->spec, "hi=")) lb->teacher.rating_hi = cls->reward_hi * seg_len;
    lb->resend_s = lb->job.coordinator.label_resend_ms / 1000.0;
    rng_seed(&lb->rng, w->seed);
    lb->job_hash = w->job->hash;
    lb->have_job = 1;
    return 0;
}

static void send_label(labeler_t *lb, pending_t *p) {
    Rlhf__Envelope env;
    peer_envelope(lb->peer, &env);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = &p->msg;
    p->sends++;
    p->resend_at = now_s() + lb->resend_s;
    /* Not sent now (no coordinator, or a full queue): the resend timer tries again. */
    peer_send(lb->peer, &env);
}

static void on_query(labeler_t *lb, const Rlhf__Query *q) {
    uint64_t shown = wall_us();
    if (!lb->have_job) return;
    if (q->n_segments != q->n_segment_ids) {
        log_warn("query %" PRIu64 " came without its segments: cannot answer it", q->id);
        return;
    }
    if (lb->n_pending == MAX_PENDING) {
        log_warn("query %" PRIu64 " not answered: %d labels still wait for an acknowledgement", q->id, MAX_PENDING);
        return;
    }
    int T = (int)q->segments[0]->length;
    for (size_t j = 0; j < q->n_segments; j++)
        if ((int)q->segments[j]->length != T) {
            log_warn("query %" PRIu64 ": segments of different lengths: not answered", q->id);
            return;
        }
    pending_t *p = callocCheck(1, sizeof *p);
    Rlhf__Label *l = &p->msg;
    rlhf__label__init(l);
    l->has_query_id = 1, l->query_id = q->id;
    l->labeler_id = (char *)peer_id(lb->peer);
    snprintf(p->idempotency_id, sizeof p->idempotency_id, "%.80s-%016" PRIx64 "-%" PRIu64, peer_id(lb->peer),
             peer_incarnation(lb->peer), ++lb->answers);
    l->idempotency_id = p->idempotency_id;
    l->has_kind = 1, l->kind = q->kind;
    const float *rewards[WIRE_MAX_RANK_K];
    for (size_t j = 0; j < q->n_segments; j++) rewards[j] = q->segments[j]->true_rewards;
    int cant = 0;
    switch (q->kind) {
    case RLHF__QUERY_KIND__QUERY_PAIR: {
        pref_t pr = teacher_pair(&lb->teacher, rewards[0], rewards[1], T, &lb->rng);
        l->has_preference = 1;
        l->preference = pr == PREF_LEFT    ? RLHF__PREFERENCE__PREF_LEFT
                        : pr == PREF_RIGHT ? RLHF__PREFERENCE__PREF_RIGHT
                        : pr == PREF_EQUAL ? RLHF__PREFERENCE__PREF_EQUAL
                                           : RLHF__PREFERENCE__PREF_CANT_TELL;
        cant = pr == PREF_CANT_TELL;
        break;
    }
    case RLHF__QUERY_KIND__QUERY_RATING: {
        int r = teacher_rating(&lb->teacher, rewards[0], T, &lb->rng);
        if (r == 0) cant = 1;
        else l->has_rating = 1, l->rating = (uint32_t)r;
        break;
    }
    case RLHF__QUERY_KIND__QUERY_RANKING: {
        int order[WIRE_MAX_RANK_K];
        if (teacher_ranking(&lb->teacher, rewards, (int)q->n_segments, T, &lb->rng, order) != 0) {
            cant = 1;
        } else {
            for (size_t j = 0; j < q->n_segments; j++) p->ranking[j] = (uint32_t)order[j];
            l->n_ranking = q->n_segments, l->ranking = p->ranking;
        }
        break;
    }
    default: free(p); return;
    }
    if (cant) l->has_cant_tell = 1, l->cant_tell = 1;
    l->has_shown_at_us = 1, l->shown_at_us = shown;
    l->has_answered_at_us = 1, l->answered_at_us = wall_us();
    lb->pending[lb->n_pending++] = p;
    send_label(lb, p);
}

static void on_ack(labeler_t *lb, const Rlhf__LabelAck *a) {
    for (int i = 0; i < lb->n_pending; i++) {
        pending_t *p = lb->pending[i];
        if (strcmp(p->idempotency_id, a->idempotency_id) != 0) continue;
        switch (a->status) {
        case RLHF__ACK_STATUS__ACK_STORED: lb->stored++; break;
        case RLHF__ACK_STATUS__ACK_DUPLICATE: lb->duplicates++; break;
        default:
            lb->refused++;
            log_warn("label for query %" PRIu64 " not stored: %s%s%s", a->query_id, wire_ack_status_name(a->status),
                     a->detail ? ": " : "", a->detail ? a->detail : "");
            break;
        }
        free(p);
        lb->pending[i] = lb->pending[--lb->n_pending];
        return;
    }
}

static void resend_due(labeler_t *lb) {
    double now = now_s();
    for (int i = 0; i < lb->n_pending; i++) {
        pending_t *p = lb->pending[i];
        if (now < p->resend_at || !peer_registered(lb->peer)) continue;
        log_info("no acknowledgement for the label of query %" PRIu64 " after %.1f s: sending it again (%s)",
                 p->msg.query_id, lb->resend_s, p->idempotency_id);
        send_label(lb, p);
    }
}

int labeler_run(const labeler_options_t *o, char *err, size_t errlen) {
    static volatile sig_atomic_t never;
    volatile sig_atomic_t *stop = o->stop ? o->stop : &never;
    labeler_t lb = {0};
    lb.spec = o->teacher ? o->teacher : "oracle";
    lb.max_inflight = o->max_inflight > 0 ? o->max_inflight : 1;
    lb.resend_s = 2.0;
    /* The spec is checked now, before the coordinator is involved. */
    if (teacher_parse(lb.spec, &lb.teacher, err, errlen) != 0) return 1;
    char idbuf[WIRE_MAX_NAME + 1], host[64] = "";
    const char *id = o->peer_id;
    if (!id) {
        gethostname(host, sizeof host - 1);
        snprintf(idbuf, sizeof idbuf, "labeler-%s-%d", host[0] ? host : "host", (int)getpid());
        id = idbuf;
    }
    peer_options_t po = {.endpoint = o->endpoint,
                         .kind = RLHF__PEER_KIND__PEER_LABELER,
                         .peer_id = id,
                         .keys = o->keys,
                         .server_public_z85 = o->server_public_z85,
                         .on_register = on_register,
                         .on_heartbeat = on_heartbeat,
                         .arg = &lb};
    lb.peer = peer_new(&po, err, errlen);
    if (!lb.peer) return 1;
    int rc = 0;
    while (!*stop) {
        Rlhf__Envelope *env = NULL;
        int got = peer_poll(lb.peer, 50, &env);
        if (got < 0) {
            snprintf(err, errlen, "%s", peer_error(lb.peer));
            rc = 3;
            break;
        }
        if (got == 1) {
            int done = 0;
            switch (env->body_case) {
            case RLHF__ENVELOPE__BODY_WELCOME:
                if (on_welcome(&lb, env->welcome, err, errlen) != 0) rc = 1, done = 1;
                break;
            case RLHF__ENVELOPE__BODY_QUERY: on_query(&lb, env->query); break;
            case RLHF__ENVELOPE__BODY_LABEL_ACK: on_ack(&lb, env->label_ack); break;
            case RLHF__ENVELOPE__BODY_SHUTDOWN:
                log_info("shutdown: %s (%" PRIu64 " answers, %" PRIu64 " stored, %" PRIu64 " duplicates)",
                         env->shutdown->reason, lb.answers, lb.stored, lb.duplicates);
                peer_ack(lb.peer, env->seq, 0);
                done = 1;
                break;
            default: break;
            }
            wire_free(&env);
            if (done) break;
        }
        resend_due(&lb);
    }
    for (int i = 0; i < lb.n_pending; i++) free(lb.pending[i]);
    peer_destroy(&lb.peer);
    return rc;
}

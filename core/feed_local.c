/* feed_local.c - the local feed (see feed.h): acts, keeps the recent
 * episodes, selects queries and lets the scripted teacher answer them, all
 * in this process, with the random streams split 2, 4 and 5 of the job's
 * seed. `rlhf train` and `rlhf-worker --local` both read it, so that one
 * rank learns what the single process learns, bit for bit.
 *
 * Owns the actor, the episode ring, the teacher and the query scratch.
 *
 * Checkpointed state: the counters and random streams (checkpoint_loop_t),
 * and as the opaque extra blob the actor's environments and the episode
 * ring, so a resumed run acts exactly as the uninterrupted one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "episodes.h"
#include "feed.h"
#include "query.h"
#include "teacher.h"
#include "util.h"

#define RECENT_EPISODES 64
#define EXTRA_VERSION 1

typedef struct {
    feed_t base;
    const job_t *job;
    teacher_t teacher;
    actor_t *actor;
    episodes_t *eps;
    traj_t *batch;
    segstore_t *asked_segs;     /* segments of this iteration's queries */
    query_t *queries;
    label_t *labels;            /* this iteration's labels */
    int cap;
    rng_t rng_act, rng_feedback, rng_teacher;
    int answered, next_kind;
    long long env_steps;
} local_t;

/* The teacher answers one query: 0 with the label filled, or -1 for a
 * "can't tell" (no label, but the query was answered). */
static int teacher_answer(const teacher_t *t, const query_t *q, const segstore_t *segs, rng_t *rng, label_t *lb) {
    int T = segs->T;
    const float *rewards[LABEL_MAX_K];
    for (int j = 0; j < q->k; j++) rewards[j] = segstore_true_r(segs, q->seg[j]);
    memset(lb, 0, sizeof *lb);
    lb->kind = q->kind;
    lb->k = q->k;
    if (q->kind == QUERY_PAIR) {
        pref_t p = teacher_pair(t, rewards[0], rewards[1], T, rng);
        if (p == PREF_CANT_TELL) return -1;
        lb->seg[0] = q->seg[0];
        lb->seg[1] = q->seg[1];
        lb->pref = p == PREF_LEFT ? 1.0f : p == PREF_RIGHT ? 0.0f : 0.5f;
    } else if (q->kind == QUERY_RATING) {
        lb->rating = teacher_rating(t, rewards[0], T, rng);
        if (lb->rating == 0) return -1;
        lb->seg[0] = q->seg[0];
    } else {
        int order[LABEL_MAX_K];
        if (teacher_ranking(t, rewards, q->k, T, rng, order) != 0) return -1;
        for (int j = 0; j < q->k; j++) lb->seg[j] = q->seg[order[j]];
    }
    return 0;
}

static int local_next(feed_t *f, learner_t *l, long long it, feed_batch_t *out, char *err, size_t errlen) {
    (void)it;
    (void)err;
    (void)errlen;
    local_t *s = (local_t *)f;
    const job_t *job = s->job;
    memset(out, 0, sizeof *out);
    double ts = now_s();
    actor_run(s->actor, l->policy, &s->rng_act, s->batch);
    episodes_add(s->eps, 0, s->batch);
    s->env_steps += (long long)job->ppo.n_steps * job->env.n_envs;
    out->t_rollout = now_s() - ts;

    ts = now_s();
    s->asked_segs->n = 0;
    int due = l->rm ? query_due(job, s->env_steps, s->answered) : 0;
    if (due > 0) {
        if (due > s->cap) {
            s->cap = due;
            s->queries = reallocCheck(s->queries, sizeof(query_t) * s->cap);
            s->labels = reallocCheck(s->labels, sizeof(label_t) * s->cap);
        }
        out->asked = query_make(job, s->eps, l->rm, due, &s->next_kind, &s->rng_feedback, s->asked_segs, s->queries);
        for (int q = 0; q < out->asked; q++) {
            s->answered++;
            if (teacher_answer(&s->teacher, &s->queries[q], s->asked_segs, &s->rng_teacher,
                               &s->labels[out->n_labels]) == 0)
                out->n_labels++;
        }
        out->refit = out->asked > 0;
    }
    out->t_query = now_s() - ts;
    out->batch = s->batch;
    out->segs = s->asked_segs;
    out->labels = s->labels;
    out->answered = s->answered;
    out->env_steps = s->env_steps;
    return 0;
}

/* extra: u32 version, u32 0, then u64 length + bytes of the actor's state,
 * u64 length + bytes of the episode ring's. */
static void local_save(feed_t *f, checkpoint_loop_t *loop) {
    local_t *s = (local_t *)f;
    loop->env_steps = s->env_steps;
    loop->answered = s->answered;
    loop->next_kind = s->next_kind;
    loop->rng_act = s->rng_act;
    loop->rng_feedback = s->rng_feedback;
    loop->rng_teacher = s->rng_teacher;
    uint64_t na = actor_state_size(s->actor), ne = episodes_state_size(s->eps);
    size_t n = 8 + 8 + na + 8 + ne;
    unsigned char *p = mallocCheck(n);
    uint32_t head[2] = {EXTRA_VERSION, 0};
    memcpy(p, head, 8);
    memcpy(p + 8, &na, 8);
    actor_save(s->actor, p + 16);
    memcpy(p + 16 + na, &ne, 8);
    episodes_save(s->eps, p + 24 + na);
    loop->extra = p;
    loop->extra_len = n;
}

static int local_restore(feed_t *f, const checkpoint_loop_t *loop, char *err, size_t errlen) {
    local_t *s = (local_t *)f;
    const unsigned char *p = loop->extra;
    size_t n = loop->extra_len;
    uint32_t head[2];
    uint64_t na = 0, ne = 0;
    int ok = n >= 24;
    if (ok) {
        memcpy(head, p, 8);
        memcpy(&na, p + 8, 8);
        ok = head[0] == EXTRA_VERSION && na <= n - 24;
    }
    if (ok) {
        memcpy(&ne, p + 16 + na, 8);
        ok = ne == n - 24 - na;
    }
    if (!ok) {
        snprintf(err, errlen, "the checkpoint's local-feed state is malformed");
        return -1;
    }
    if (actor_load(s->actor, p + 16, na, err, errlen) != 0) return -1;
    if (episodes_load(s->eps, p + 24 + na, ne, err, errlen) != 0) return -1;
    s->env_steps = loop->env_steps;
    s->answered = loop->answered;
    s->next_kind = loop->next_kind;
    s->rng_act = loop->rng_act;
    s->rng_feedback = loop->rng_feedback;
    s->rng_teacher = loop->rng_teacher;
    return 0;
}

static void local_destroy(feed_t **self_p) {
    local_t *s = (local_t *)*self_p;
    if (!s) return;
    actor_destroy(&s->actor);
    episodes_destroy(&s->eps);
    traj_destroy(&s->batch);
    segstore_destroy(&s->asked_segs);
    free(s->queries);
    free(s->labels);
    free(s);
    *self_p = NULL;
}

feed_t *feed_local_new(const job_t *job, char *err, size_t errlen) {
    teacher_t teacher;
    teacher_oracle(&teacher);
    if (job->feedback.mode == FEEDBACK_HUMAN) {
        snprintf(err, errlen, "feedback.mode = human needs people answering queries, which a run without the "
                              "coordinator has none of; use teacher or true-reward");
        return NULL;
    }
    if (job->feedback.mode == FEEDBACK_TEACHER && teacher_parse(job->feedback.teacher, &teacher, err, errlen) != 0)
        return NULL;
    actor_t *actor = actor_new(job->env.id, job->env.n_envs, job->run.seed, err, errlen);
    if (!actor) return NULL;
    const env_class_t *cls = actor_env_class(actor);
    int seg_len = job->feedback.segment_len, od = cls->obs_dim, ad = cls->act.discrete ? 1 : cls->act.n;
    /* Ratings need a return range: unless the spec names one, the
     * environment's per-step reward bounds over a whole segment. */
    if (!strstr(job->feedback.teacher, "lo=")) teacher.rating_lo = cls->reward_lo * seg_len;
    if (!strstr(job->feedback.teacher, "hi=")) teacher.rating_hi = cls->reward_hi * seg_len;

    local_t *s = callocCheck(1, sizeof *s);
    s->base.name = "local";
    s->base.next = local_next;
    s->base.publish = NULL;     // the actor acts with the caller's learner itself
    s->base.save = local_save;
    s->base.restore = local_restore;
    s->base.destroy = local_destroy;
    s->job = job;
    s->teacher = teacher;
    s->actor = actor;
    s->eps = episodes_new(od, ad, cls->max_steps, RECENT_EPISODES);
    s->batch = traj_new(job->ppo.n_steps, job->env.n_envs, od, ad);
    s->asked_segs = segstore_new(seg_len, od, ad);
    rng_t root;
    rng_seed(&root, job->run.seed);
    rng_split(&root, 2, &s->rng_act);
    rng_split(&root, 4, &s->rng_feedback);
    rng_split(&root, 5, &s->rng_teacher);
    return &s->base;
}

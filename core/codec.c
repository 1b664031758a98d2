/* codec.c - see codec.h. */
#include "codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "util.h"

/* ---- trajectory batches ------------------------------------------------ */

void codec_batch_from_traj(codec_batch_t *c, const traj_t *b, const char *worker_id, uint64_t batch_seq,
                           const char *env_id) {
    size_t tn = (size_t)b->T * b->N, od = (size_t)b->obs_dim;
    if (tn > c->cap_tn) {
        c->ends = reallocCheck(c->ends, tn);
        c->cap_tn = tn;
    }
    size_t n_trunc = 0;
    for (size_t k = 0; k < tn; k++) {
        uint8_t e = !b->done[k] ? WIRE_END_RUNNING : b->terminated[k] ? WIRE_END_TERMINATED : WIRE_END_TRUNCATED;
        c->ends[k] = e;
        n_trunc += e == WIRE_END_TRUNCATED;
    }
    if (n_trunc * od > c->cap_final) {
        c->final_rows = reallocCheck(c->final_rows, sizeof(float) * n_trunc * od);
        c->cap_final = n_trunc * od;
    }
    for (size_t k = 0, r = 0; k < tn; k++)
        if (c->ends[k] == WIRE_END_TRUNCATED)
            memcpy(c->final_rows + od * r++, b->final_obsn + k * od, sizeof(float) * od);

    Rlhf__TrajectoryBatch *m = &c->msg;
    rlhf__trajectory_batch__init(m);
    m->worker_id = (char *)worker_id;
    m->has_batch_seq = 1, m->batch_seq = batch_seq;
    m->has_policy_version = 1, m->policy_version = b->policy_version;
    m->env_id = (char *)env_id;
    m->has_n_envs = 1, m->n_envs = (uint32_t)b->N;
    m->has_steps = 1, m->steps = (uint32_t)b->T;
    m->has_obs_dim = 1, m->obs_dim = (uint32_t)b->obs_dim;
    m->has_act_dim = 1, m->act_dim = (uint32_t)b->act_dim;
    m->n_obs = tn * od, m->obs = b->obs;
    m->n_actions = tn * b->act_dim, m->actions = b->act;
    m->n_logp = tn, m->logp = b->logp;
    m->n_true_rewards = tn, m->true_rewards = b->true_r;
    m->has_ends = 1, m->ends.len = tn, m->ends.data = c->ends;
    m->n_obs_norm = tn * od, m->obs_norm = b->obsn;
    m->n_final_obs_norm = n_trunc * od, m->final_obs_norm = c->final_rows;
    m->n_last_obs_norm = (size_t)b->N * od, m->last_obs_norm = b->last_obsn;
    m->has_episodes = 1, m->episodes = (uint32_t)b->episodes;
    m->has_return_sum = 1, m->return_sum = b->return_sum;
}

void codec_batch_free(codec_batch_t *c) {
    free(c->ends);
    free(c->final_rows);
    memset(c, 0, sizeof *c);
}

int codec_batch_to_traj(const Rlhf__TrajectoryBatch *m, const char *env_id, traj_t *b, int need_norm, char *err,
                        size_t errlen) {
    if (env_id && strcmp(m->env_id, env_id) != 0) {
        err_set(err, errlen, "trajectory batch of %s, the job runs %s", m->env_id, env_id);
        return -1;
    }
    if ((int)m->steps != b->T || (int)m->n_envs != b->N || (int)m->obs_dim != b->obs_dim ||
        (int)m->act_dim != b->act_dim) {
        err_set(err, errlen,
                "trajectory batch of steps %" PRIu32 " x n_envs %" PRIu32 " x obs_dim %" PRIu32 ", act_dim %" PRIu32
                "; the job's is %d x %d x %d, act_dim %d",
                m->steps, m->n_envs, m->obs_dim, m->act_dim, b->T, b->N, b->obs_dim, b->act_dim);
        return -1;
    }
    if (need_norm && m->n_obs_norm == 0) {
        err_set(err, errlen, "trajectory batch without obs_norm: a learner trains on the normalised observations");
        return -1;
    }
    /* wire_validate() checked every length against the dimensions above. */
    size_t tn = (size_t)b->T * b->N, od = (size_t)b->obs_dim;
    memcpy(b->obs, m->obs, sizeof(float) * tn * od);
    memcpy(b->act, m->actions, sizeof(float) * tn * b->act_dim);
    memcpy(b->logp, m->logp, sizeof(float) * tn);
    memcpy(b->true_r, m->true_rewards, sizeof(float) * tn);
    const uint8_t *ends = m->ends.data;
    for (size_t k = 0; k < tn; k++) {
        b->done[k] = ends[k] != WIRE_END_RUNNING;
        b->terminated[k] = ends[k] == WIRE_END_TERMINATED;
    }
    if (need_norm) {
        memcpy(b->obsn, m->obs_norm, sizeof(float) * tn * od);
        memcpy(b->last_obsn, m->last_obs_norm, sizeof(float) * b->N * od);
        memset(b->final_obsn, 0, sizeof(float) * tn * od);
        for (size_t k = 0, r = 0; k < tn; k++)
            if (ends[k] == WIRE_END_TRUNCATED) memcpy(b->final_obsn + k * od, m->final_obs_norm + od * r++, sizeof(float) * od);
    }
    b->policy_version = m->policy_version;
    b->episodes = m->has_episodes ? (int)m->episodes : 0;
    b->return_sum = m->has_return_sum ? m->return_sum : 0;
    return 0;
}

int codec_batch_view(const Rlhf__TrajectoryBatch *m, const char *env_id, int T, int N, int obs_dim, int act_dim,
                     uint8_t *done, uint8_t *terminated, traj_t *view, char *err, size_t errlen) {
    memset(view, 0, sizeof *view);
    view->T = T, view->N = N, view->obs_dim = obs_dim, view->act_dim = act_dim;
    if (env_id && strcmp(m->env_id, env_id) != 0) {
        err_set(err, errlen, "trajectory batch of %s, the job runs %s", m->env_id, env_id);
        return -1;
    }
    if ((int)m->steps != T || (int)m->n_envs != N || (int)m->obs_dim != obs_dim || (int)m->act_dim != act_dim) {
        err_set(err, errlen,
                "trajectory batch of steps %" PRIu32 " x n_envs %" PRIu32 " x obs_dim %" PRIu32 ", act_dim %" PRIu32
                "; the job's is %d x %d x %d, act_dim %d",
                m->steps, m->n_envs, m->obs_dim, m->act_dim, T, N, obs_dim, act_dim);
        return -1;
    }
    size_t tn = (size_t)T * N;
    const uint8_t *ends = m->ends.data;
    for (size_t k = 0; k < tn; k++) {
        done[k] = ends[k] != WIRE_END_RUNNING;
        terminated[k] = ends[k] == WIRE_END_TERMINATED;
    }
    view->obs = m->obs;
    view->act = m->actions;
    view->logp = m->logp;
    view->true_r = m->true_rewards;
    view->done = done;
    view->terminated = terminated;
    view->policy_version = m->policy_version;
    view->episodes = m->has_episodes ? (int)m->episodes : 0;
    view->return_sum = m->has_return_sum ? m->return_sum : 0;
    return 0;
}

/* ---- segments ------------------------------------------------------------ */

void codec_segment_view(Rlhf__Segment *m, uint64_t id, const char *env_id, int T, int obs_dim, int act_dim,
                        const float *obs, const float *act, const float *true_r, const protobuf_c_boolean *absorbing) {
    rlhf__segment__init(m);
    m->has_id = 1, m->id = id;
    m->env_id = (char *)env_id;
    /* Episodes do not remember which policy version acted (yet): 0 is
     * "unknown", which the schema allows. */
    m->has_source_policy_version = 1, m->source_policy_version = 0;
    m->has_length = 1, m->length = (uint32_t)T;
    m->has_obs_dim = 1, m->obs_dim = (uint32_t)obs_dim;
    m->has_act_dim = 1, m->act_dim = (uint32_t)act_dim;
    m->n_obs = (size_t)T * obs_dim, m->obs = (float *)obs;
    m->n_actions = (size_t)T * act_dim, m->actions = (float *)act;
    m->n_true_rewards = (size_t)T, m->true_rewards = (float *)true_r;
    m->n_absorbing = (size_t)T, m->absorbing = (protobuf_c_boolean *)absorbing;
}

int codec_segment_add(segstore_t *s, const Rlhf__Segment *m, char *err, size_t errlen) {
    if ((int)m->length != s->T || (int)m->obs_dim != s->obs_dim || (int)m->act_dim != s->act_dim) {
        err_set(err, errlen,
                "segment %" PRIu64 " of length %" PRIu32 ", obs_dim %" PRIu32 ", act_dim %" PRIu32
                "; the job's segments are %d, %d, %d",
                m->id, m->length, m->obs_dim, m->act_dim, s->T, s->obs_dim, s->act_dim);
        return -1;
    }
    uint8_t ab[1000]; /* feedback.segment_len <= 1000 (job.c) */
    if (s->T > (int)sizeof ab) {
        err_set(err, errlen, "segment length %d over %zu", s->T, sizeof ab);
        return -1;
    }
    for (int t = 0; t < s->T; t++) ab[t] = m->absorbing[t] != 0;
    return segstore_add(s, m->obs, m->actions, m->true_rewards, ab);
}

/* ---- answers ------------------------------------------------------------- */

int codec_query_kind(Rlhf__QueryKind k) {
    return k == RLHF__QUERY_KIND__QUERY_PAIR      ? QUERY_PAIR
           : k == RLHF__QUERY_KIND__QUERY_RATING  ? QUERY_RATING
           : k == RLHF__QUERY_KIND__QUERY_RANKING ? QUERY_RANKING
                                                  : 0;
}

Rlhf__QueryKind codec_wire_query_kind(int kind) {
    return kind == QUERY_PAIR      ? RLHF__QUERY_KIND__QUERY_PAIR
           : kind == QUERY_RATING  ? RLHF__QUERY_KIND__QUERY_RATING
           : kind == QUERY_RANKING ? RLHF__QUERY_KIND__QUERY_RANKING
                                   : RLHF__QUERY_KIND__QUERY_UNSPECIFIED;
}

int codec_label_is_cant_tell(const Rlhf__Label *l) {
    if (l->has_cant_tell && l->cant_tell) return 1;
    return l->kind == RLHF__QUERY_KIND__QUERY_PAIR && l->has_preference &&
           l->preference == RLHF__PREFERENCE__PREF_CANT_TELL;
}

int codec_label(const Rlhf__Query *q, const Rlhf__Label *l, const int *seg_index, label_t *out, char *err,
                size_t errlen) {
    if (l->kind != q->kind) {
        err_set(err, errlen, "a %s label for %s query %" PRIu64, wire_query_kind_name(l->kind),
                wire_query_kind_name(q->kind), q->id);
        return -1;
    }
    size_t k = q->n_segment_ids;
    if (k > LABEL_MAX_K) {
        err_set(err, errlen, "query %" PRIu64 " shows %zu segments; at most %d can be learned from", q->id, k,
                LABEL_MAX_K);
        return -1;
    }
    if (codec_label_is_cant_tell(l)) return 1;
    memset(out, 0, sizeof *out);
    out->kind = codec_query_kind(q->kind);
    out->k = (int)k;
    switch (q->kind) {
    case RLHF__QUERY_KIND__QUERY_PAIR:
        out->seg[0] = seg_index[0];
        out->seg[1] = seg_index[1];
        out->pref = l->preference == RLHF__PREFERENCE__PREF_LEFT    ? 1.0f
                    : l->preference == RLHF__PREFERENCE__PREF_RIGHT ? 0.0f
                                                                    : 0.5f;
        return 0;
    case RLHF__QUERY_KIND__QUERY_RATING:
        out->seg[0] = seg_index[0];
        out->rating = (int)l->rating;
        return 0;
    case RLHF__QUERY_KIND__QUERY_RANKING: {
        if (l->n_ranking != k) {
            err_set(err, errlen, "ranking of %zu positions for query %" PRIu64 " of k = %zu", l->n_ranking, q->id, k);
            return -1;
        }
        unsigned seen = 0;
        for (size_t j = 0; j < k; j++) {
            uint32_t p = l->ranking[j];
            if (p >= k || (seen & (1u << p))) {
                err_set(err, errlen, "ranking of query %" PRIu64 " is not a permutation of 0..%zu", q->id, k - 1);
                return -1;
            }
            seen |= 1u << p;
            out->seg[j] = seg_index[p];
        }
        return 0;
    }
    default:
        err_set(err, errlen, "query %" PRIu64 " has no known kind", q->id);
        return -1;
    }
}

/* codec.h - the core's structs as wire messages and back: a trajectory batch
 * (traj_t <-> rlhf.TrajectoryBatch), segments (segstore rows <->
 * rlhf.Segment) and answered queries (rlhf.Query + rlhf.Label -> label_t).
 *
 * Messages made here point into the struct they describe (no copies of the
 * big arrays) plus scratch the codec_batch_t owns (the ends bytes); they
 * stay valid while both do. Decoding copies into the caller's struct after
 * checking every dimension against it: a message has been validated
 * (wire.h) but not checked against this job.
 *
 * The batch format (proto/rlhf.proto, TrajectoryBatch):
 *   ends[k]    = WIRE_END_RUNNING     if !traj.done[k]
 *                WIRE_END_TERMINATED  if traj.done[k] && traj.terminated[k]
 *                WIRE_END_TRUNCATED   if traj.done[k] && !traj.terminated[k]
 *                                     (the time limit ended it)
 *   obs_norm   = traj.obsn; last_obs_norm = traj.last_obsn;
 *   final_obs_norm = the rows of traj.final_obsn at truncated steps, in
 *                    (t, env) order (every other row of it is zero).
 * values and last_obs are not sent (the learner computes values itself). */
#ifndef RLHF_CODEC_H
#define RLHF_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "feedback.h"
#include "wire.h"

/* ---- trajectory batches ------------------------------------------------ */

typedef struct {
    Rlhf__TrajectoryBatch msg;
    uint8_t *ends;                          /* owned scratch, (T*N) */
    float *final_rows;                      /* owned scratch */
    size_t cap_tn, cap_final;
} codec_batch_t;

/* Fills c->msg from b. worker_id and env_id must outlive c->msg. */
void codec_batch_from_traj(codec_batch_t *c, const traj_t *b, const char *worker_id, uint64_t batch_seq,
                           const char *env_id);
void codec_batch_free(codec_batch_t *c);

/* Copies m into b after checking env_id, steps, n_envs, obs_dim and act_dim
 * against b and env_id. With need_norm the normalised views must be there
 * and are copied too (a learner trains on them); without, only what the
 * episode ring needs (obs, act, true_r, done, terminated). Sets
 * b->policy_version, episodes and return_sum. 0, or -1 with err. */
int codec_batch_to_traj(const Rlhf__TrajectoryBatch *m, const char *env_id, traj_t *b, int need_norm, char *err,
                        size_t errlen);

/* A traj_t pointing into m (obs, act, logp, true_r: no copies), for code
 * that only reads a batch (episodes_add at the coordinator). done and
 * terminated go into the caller's buffers (T*N bytes each); the normalised
 * views are NULL. Valid while m is; never traj_destroy() it. The same
 * checks as codec_batch_to_traj() against (T, N, obs_dim, act_dim). */
int codec_batch_view(const Rlhf__TrajectoryBatch *m, const char *env_id, int T, int N, int obs_dim, int act_dim,
                     uint8_t *done, uint8_t *terminated, traj_t *view, char *err, size_t errlen);

/* ---- segments ------------------------------------------------------------ */

/* A Segment message pointing at one segment's arrays (absorbing as ints). */
void codec_segment_view(Rlhf__Segment *m, uint64_t id, const char *env_id, int T, int obs_dim, int act_dim,
                        const float *obs, const float *act, const float *true_r, const protobuf_c_boolean *absorbing);

/* Appends m to s after checking length, obs_dim and act_dim against s;
 * returns its index, or -1 with err. */
int codec_segment_add(segstore_t *s, const Rlhf__Segment *m, char *err, size_t errlen);

/* ---- answers ------------------------------------------------------------- */

/* Converts an answered query into a label_t: seg_index[i] is the segstore
 * index of the query's segment_ids[i]. A pair's preference becomes pref
 * (LEFT 1, RIGHT 0, EQUAL 0.5); a ranking's positions become segment
 * indices best first. Returns 0 with *out filled, 1 for a "can't tell"
 * (nothing to learn), -1 (err) for a label that does not fit its query
 * (kind, k over LABEL_MAX_K, ranking not a permutation of the query's
 * positions). */
int codec_label(const Rlhf__Query *q, const Rlhf__Label *l, const int *seg_index, label_t *out, char *err,
                size_t errlen);

/* 1 when the label is a "can't tell" (cant_tell set, or a pair answered
 * PREF_CANT_TELL). */
int codec_label_is_cant_tell(const Rlhf__Label *l);

/* The job's query-kind bit (QUERY_PAIR, ...) for a wire kind, and back. */
int codec_query_kind(Rlhf__QueryKind k);
Rlhf__QueryKind codec_wire_query_kind(int kind);

#endif

/* checkpoint.h - a learner's whole state in one file, written atomically
 * (write_file_atomic: temp file, fsync, rename, fsync of the folder), so a
 * run resumes where it stopped.
 *
 * Owns the file format. A checkpoint holds:
 *   - a header: magic "RLHFCKPT", format version, the job's hash (FNV-1a of
 *     job_write's text with run.out left out, so a run directory may move),
 *     the environment id and the sizes (dimensions, parameter counts);
 *   - sections, each a tag, a length and its bytes: the job's text (to name
 *     what differs when a job does not match), policy parameters, the
 *     policy's Adam (m, v, t), the observation statistics and
 *     policy_version, the learner's scalars (reward normalisation r_zero,
 *     r_scale, abs_n; fit statistics; fits; rng_ppo, rng_reward; the learned
 *     returns of episodes in progress), the reward model's parameters, Adam
 *     and input statistics, the labelled segments and the labels, the loop
 *     state (checkpoint_loop_t) and the feed's opaque state;
 *   - a trailer: FNV-1a 64 over every byte before it (any single flipped
 *     byte changes it).
 * Numbers are stored in the host's byte order, field by field (no struct
 * padding); a file from a machine of the other byte order is refused.
 *
 * Invariant: checkpoint_decode() checks everything (magic, checksum,
 * version, job, sizes, every section's length and every label's segment
 * indices) before it writes anything: on error the learner and the loop
 * state are untouched. */
#ifndef RLHF_CHECKPOINT_H
#define RLHF_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "learner.h"
#include "rng.h"

#define CHECKPOINT_MAGIC "RLHFCKPT"
#define CHECKPOINT_VERSION 1

/* What the loop around the learner needs to go on exactly where it stopped:
 * counters, the random streams of acting, query selection and the teacher,
 * and the feed's own state as an opaque blob (the local feed: the actor's
 * environments and the ring of recent episodes). */
typedef struct {
    long long iteration;            /* iterations completed: the next one to run */
    long long env_steps;            /* environment steps so far */
    int answered;                   /* queries answered (the label budget's count) */
    int next_kind;                  /* query-kind rotation (query_make) */
    rng_t rng_act, rng_feedback, rng_teacher;
    double wall_s;                  /* wall time spent before the checkpoint */
    /* Encode reads extra_len bytes from extra (may be NULL when 0); decode
     * sets extra to a malloc'd copy (NULL when empty) the caller frees. */
    unsigned char *extra;
    size_t extra_len;
} checkpoint_loop_t;

/* FNV-1a 64 of the job's text (job_write) with run.out blanked. */
uint64_t checkpoint_job_hash(const job_t *job);

/* Encodes l and loop into a malloc'd buffer (*out, *len); the caller frees
 * it. */
void checkpoint_encode(const learner_t *l, const checkpoint_loop_t *loop, unsigned char **out, size_t *len);

/* Restores a checkpoint into l, a learner built by learner_new() from the
 * same job, and loop (may be NULL). Returns 0, or -1 with err saying what
 * is wrong ("checksum mismatch ...", "a different job: [ppo] lr is 0.001 in
 * the checkpoint, 0.0003 now", ...) and l and loop untouched. */
int checkpoint_decode(learner_t *l, const void *buf, size_t len, checkpoint_loop_t *loop, char *err,
                      size_t errlen);

/* encode + write_file_atomic. Returns 0, or -1 with err. */
int checkpoint_save(const char *path, const learner_t *l, const checkpoint_loop_t *loop, char *err,
                    size_t errlen);

/* Reads a whole file into a malloc'd buffer. Returns 0, or -1 with err. */
int checkpoint_read_file(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen);

/* read_file + decode; err is prefixed with the path. Returns 0 or -1. */
int checkpoint_load(const char *path, learner_t *l, checkpoint_loop_t *loop, char *err, size_t errlen);

#endif

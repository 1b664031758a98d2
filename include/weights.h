/* weights.h - a model's weights as one flat float32 tensor, that tensor as
 * chunked rlhf.Weights messages, and the initial (version 0) models.
 *
 * The learner sends weights; the coordinator keeps and forwards them; the
 * rollout workers (policy) and the coordinator's query selection (reward
 * model) load them. All of them build their networks from the same job, so
 * the tensor is just the parameters and the statistics next to them:
 *
 *   policy: [ policy params (policy->n_params) | obs mean (obs_dim) |
 *             obs var (obs_dim) | obs count (1) ]
 *   reward: [ reward params (rm->n_params)     | input mean (obs_dim) |
 *             input var (obs_dim) | input count (1) ]
 *
 * The statistics travel as float32 (the learner keeps doubles): a rollout
 * worker's normalised observation may differ from the learner's in the last
 * bits, which does not matter because the batch carries the observations the
 * policy actually saw (TrajectoryBatch.obs_norm) and PPO trains on those.
 *
 * Every tensor carries an arch string derived from the job and the
 * environment ("policy CartPole-v1 obs 4 discrete 2 mlp 64,64 tanh norm 1
 * params 8963"); unpacking refuses a tensor whose arch is not exactly the one
 * the receiver's job gives, so a worker running another job's network fails
 * loudly instead of loading garbage.
 *
 * Version 0: weights_policy_new() builds the policy exactly as learner_new()
 * does (the same rng: rng_split(seed(run.seed), 1)), so every process holds
 * bitwise identical version 0 weights without sending them
 * (tests/test_codec.c checks it against learner_new()). A rollout worker
 * therefore acts before it has received any Weights.
 *
 * Chunks: a tensor of n floats goes as ceil(n / chunk) messages of at most
 * chunk floats (WIRE_WEIGHTS_CHUNK_FLOATS unless a test asks for less),
 * sent in order on one connection; ZeroMQ keeps them in order, so the
 * receiver (weights_rx_t) takes chunk 0 as "start over" and then exactly
 * the next index. The checksum (wire_hash64 over the whole tensor) is
 * checked after reassembly.
 *
 * Owns: weights_t owns its data (weights_free). A Weights message made by
 * weights_chunk() points into the weights_t: send it before freeing that.
 */
#ifndef RLHF_WEIGHTS_H
#define RLHF_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "policy.h"
#include "reward.h"
#include "wire.h"

#define WEIGHTS_ARCH_MAX 256

typedef struct {
    Rlhf__ModelKind model;      /* RLHF__MODEL_KIND__MODEL_POLICY or _REWARD; 0 = empty */
    uint64_t version;
    char arch[WEIGHTS_ARCH_MAX];
    float *data;                /* owned, n floats */
    size_t n;
} weights_t;

/* The arch strings for this job's networks. 0, or -1 (err) when the job's
 * environment is unknown. */
int weights_policy_arch(const job_t *job, char *out, size_t n, char *err, size_t errlen);
int weights_reward_arch(const job_t *job, char *out, size_t n, char *err, size_t errlen);

/* The version 0 policy / reward model of the job: bitwise what learner_new()
 * starts from. NULL (err) on an unknown environment. */
policy_t *weights_policy_new(const job_t *job, char *err, size_t errlen);
reward_model_t *weights_reward_new(const job_t *job, char *err, size_t errlen);

/* Packs into w (which it (re)allocates; w zeroed or from an earlier pack). */
void weights_pack_policy(weights_t *w, const job_t *job, const policy_t *p, uint64_t version);
void weights_pack_reward(weights_t *w, const job_t *job, const reward_model_t *rm, uint64_t version);

/* Loads w into the network; checks the model kind, the arch and the length
 * first and leaves the network alone on error. */
int weights_unpack_policy(const weights_t *w, const job_t *job, policy_t *p, char *err, size_t errlen);
int weights_unpack_reward(const weights_t *w, const job_t *job, reward_model_t *rm, char *err, size_t errlen);

/* A deep copy (dst freed first). */
void weights_copy(weights_t *dst, const weights_t *src);
void weights_free(weights_t *w);

/* ---- chunks -------------------------------------------------------------- */

/* chunk_floats 0 = WIRE_WEIGHTS_CHUNK_FLOATS. */
size_t weights_chunk_count(const weights_t *w, size_t chunk_floats);
/* Chunk i as a Weights message pointing into w (data and arch); checksum is
 * weights_checksum(w), computed once by the caller for all chunks. */
void weights_chunk(const weights_t *w, size_t chunk_floats, size_t i, uint64_t checksum, Rlhf__Weights *msg);
uint64_t weights_checksum(const weights_t *w);

/* Reassembles one model's chunks. */
typedef struct {
    weights_t w;                /* being assembled */
    uint32_t chunk_count, next; /* next: the index expected; 0 = idle */
    uint64_t filled;            /* floats received: the next chunk's offset */
    uint64_t checksum;
} weights_rx_t;

void weights_rx_init(weights_rx_t *rx);
void weights_rx_free(weights_rx_t *rx);
/* Adds one (validated) chunk. Returns 1 when the tensor is complete and its
 * checksum right: *out (freed first) takes it over; 0 when more chunks are
 * due; -1 (err) for a chunk out of order, a header that differs from its
 * predecessors' or a bad checksum: the partial tensor is dropped. */
int weights_rx_add(weights_rx_t *rx, const Rlhf__Weights *m, weights_t *out, char *err, size_t errlen);

#endif

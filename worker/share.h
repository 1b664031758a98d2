/* share.h - what rank 0 shares with every rank each iteration: a fixed
 * header, then one payload holding the trajectory batch, the new labels'
 * segments and the labels. Two MPI_Bcasts per iteration.
 *
 * Every rank, rank 0 included, learns from the unpacked copy, so all
 * replicas see the same bytes. The encoding is the host's memory layout:
 * the ranks of one job run the same binary on machines of one byte order. */
#ifndef RLHF_WORKER_SHARE_H
#define RLHF_WORKER_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "feed.h"
#include "feedback.h"

enum { SHARE_DATA = 0, SHARE_END = 1, SHARE_ERROR = 2 };

typedef struct {
    int32_t status;             /* SHARE_DATA: a payload follows; SHARE_END, SHARE_ERROR: stop */
    int32_t n_segs, n_labels;
    int32_t asked, answered, refit;
    int32_t episodes;           /* of the batch */
    int32_t reserved;
    int64_t env_steps;
    uint64_t policy_version;    /* of the batch */
    uint64_t payload;           /* bytes */
    double return_sum;          /* of the batch */
    double t_rollout, t_query;  /* rank 0's, for the metrics */
} share_hdr_t;

/* What the ranks receive: owned buffers, reused every iteration. */
typedef struct {
    traj_t *batch;
    segstore_t *segs;
    label_t *labels;
    int n_labels, cap_labels;
    unsigned char *buf;         /* the payload */
    size_t cap;
} share_t;

share_t *share_new(int T, int N, int obs_dim, int act_dim, int seg_len);
void share_destroy(share_t **self_p);

/* Rank 0: fills hdr from fb and packs the payload into s->buf. */
void share_pack(share_t *s, const feed_batch_t *fb, share_hdr_t *hdr);
/* Every rank: makes room for hdr->payload bytes in s->buf. */
void share_reserve(share_t *s, const share_hdr_t *hdr);
/* Every rank: unpacks s->buf into s->batch, s->segs and s->labels. Returns
 * 0, or -1 when the payload does not match the header. */
int share_unpack(share_t *s, const share_hdr_t *hdr);

#endif

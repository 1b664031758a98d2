/* feed.h - where the learner's data comes from: each iteration, the next
 * trajectory batch and the labels answered since the last one, with the
 * segments they show. `rlhf train` calls its feed every iteration; in the
 * MPI learner only rank 0 does, and shares what it returned with every rank
 * (worker/share.h), so every replica learns from the same bytes in the same
 * order.
 *
 * Feeds:
 *   local        (feed_local.c) the actor, recent episodes, query selection
 *                and scripted teacher, all in the calling process: `rlhf
 *                train`, and `rlhf-worker --local`.
 *   coordinator  (feed_coord.c) batches and labels from the coordinator
 *                over ZeroMQ (learnerlink.h); publish() sends the new
 *                weights back: `rlhf-worker --coordinator`.
 *
 * Invariant: what next() returns stays valid, unchanged, until the next
 * call of next() or destroy(). */
#ifndef RLHF_FEED_H
#define RLHF_FEED_H

#include <signal.h>
#include <stddef.h>

#include "actor.h"
#include "checkpoint.h"
#include "feedback.h"
#include "job.h"
#include "learner.h"
#include "learnerlink.h"

typedef struct {
    const traj_t *batch;            /* the iteration's trajectory batch */
    const segstore_t *segs;         /* segments the new labels show (may be NULL when none) */
    const label_t *labels;          /* the new labels; indices into segs */
    int n_labels;
    int asked;                      /* queries answered this iteration, "can't tell" included */
    int refit;                      /* refit the reward model before this iteration's update */
    int answered;                   /* queries answered so far: the label budget's count */
    long long env_steps;            /* environment steps so far */
    double t_rollout, t_query;      /* seconds spent acting, and choosing and answering queries */
} feed_batch_t;

typedef struct feed feed_t;
struct feed {
    const char *name;
    /* The data of iteration it. l is the caller's learner (in the MPI
     * learner, rank 0's replica), before the iteration's labels and update (the local feed acts with its policy and
     * selects queries with its reward model). Returns 0, 1 when the feed has
     * no more data (the run ends), or -1 with err. */
    int (*next)(feed_t *f, learner_t *l, long long it, feed_batch_t *out, char *err, size_t errlen);
    /* After the iteration's update: the new weights are ready (the
     * coordinator feed sends them to the rollout workers). NULL: nothing. */
    int (*publish)(feed_t *f, const learner_t *l, char *err, size_t errlen);
    /* Its state for a checkpoint: env_steps, answered, next_kind and the
     * random streams into loop, everything else as loop->extra (malloc'd;
     * the caller frees it). */
    void (*save)(feed_t *f, checkpoint_loop_t *loop);
    /* Continues from what save() wrote. Returns 0, or -1 with err. */
    int (*restore)(feed_t *f, const checkpoint_loop_t *loop, char *err, size_t errlen);
    void (*destroy)(feed_t **self_p);
};

/* The local feed. Returns NULL with err when the job cannot run without
 * people (feedback.mode = human), names a bad teacher, or an unknown
 * environment. */
feed_t *feed_local_new(const job_t *job, char *err, size_t errlen);

/* The coordinator feed. */
typedef struct {
    learnerlink_options_t link;     /* endpoint, id, CURVE; progress zero for a new run */
    /* Checked while waiting: when it becomes nonzero, next() returns 1 (and
     * feed_coord_new() gives up). May be NULL. */
    volatile sig_atomic_t *stop;
    long welcome_timeout_ms;        /* 0 = 60 s */
} feed_coord_options_t;

/* Connects and waits for the coordinator's Welcome (its job). Returns NULL
 * with err when none comes, the job does not load, or *stop was set. The
 * run ends (next() returns 1) with the coordinator's Shutdown; publish()
 * sends the Shutdown itself once the job's run.total_steps are reached. */
feed_t *feed_coord_new(const feed_coord_options_t *o, char *err, size_t errlen);
/* The Welcome's job, as INI text (what rank 0 broadcasts; job_load_text). */
const char *feed_coord_job_text(const feed_t *f);
/* The coordinator feed's link (to send Status), or NULL for another feed. */
learnerlink_t *feed_coord_link(feed_t *f);
/* The link's progress (env steps, answered queries, label cursor) from a
 * checkpoint the coordinator feed saved, into link: a resumed learner
 * registers with it from the start, so a coordinator that started fresh
 * takes the run's place from its first Register (restore() then keeps that
 * link). Returns 0, or -1 with err (not a coordinator feed's state). */
int feed_coord_progress(const checkpoint_loop_t *loop, learnerlink_options_t *link, char *err, size_t errlen);

#endif

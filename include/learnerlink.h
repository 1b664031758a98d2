/* learnerlink.h - the learner's side of the coordinator protocol, for the
 * gateway (rank 0 of the MPI learner, or a single-process learner loop in a
 * test). No MPI in here: the caller shares what it takes with its ranks.
 *
 * What it does (docs/protocol.md):
 *  - registers as PEER_LEARNER (peer.h: heartbeats, reconnects, a
 *    restarted coordinator), reporting its progress (label cursor, env steps,
 *    answered queries) so a restarted coordinator resumes the label schedule
 *    and resends exactly the labels after the cursor;
 *  - receives TrajectoryBatch and LabeledBatch messages into small queues;
 *    the caller takes them one at a time with learnerlink_next_batch() and
 *    learnerlink_next_label(), which convert them to what learner.h takes;
 *  - flow control: it tells the coordinator its window (options.window
 *    batches); a batch is acknowledged (credit returned) when the caller
 *    takes it, so at most window batches wait here;
 *  - sends policy and reward Weights (chunked), Status and, at the end,
 *    Shutdown; the latest weights of each model are kept and sent again
 *    after every re-registration, so a restarted coordinator has them.
 *
 * Usable from a loop that also does MPI work: learnerlink_poll() with
 * timeout 0 never blocks, and a long computation between polls is fine (the
 * coordinator allows a learner coordinator.learner_timeout_ms of silence;
 * on return, what queued up meanwhile is read before any liveness check).
 *
 * The loop a learner runs (tests/test_cluster.c has it in full):
 *
 *     learnerlink_t *ll = learnerlink_new(&opt, err, sizeof err);
 *     while (!learnerlink_job(ll)) learnerlink_poll(ll, 100);      // the Welcome
 *     const job_t *job = learnerlink_job(ll);   // (rank 0 broadcasts learnerlink_job_text())
 *     learner_t *l = learner_new(job, ...);
 *     traj_t *b = traj_new(job->ppo.n_steps, job->env.n_envs, l->obs_dim, l->act_dim);
 *     while (env steps < job->run.total_steps) {
 *         int ev = learnerlink_poll(ll, 50);
 *         if (ev < 0 || (ev & LL_SHUTDOWN)) break;
 *         learnerlink_label_t lb;
 *         while (learnerlink_next_label(ll, &lb) == 1) {
 *             if (lb.has_label) learner_add_label(l, &lb.label, lb.segs);
 *             if (lb.round_done) refit = 1;
 *         }
 *         if (refit) { learner_fit_reward(l); learnerlink_send_reward(ll, l->rm, ++rv); refit = 0; }
 *         if (no labels yet and feedback needs them) continue;  // RL starts after the first round
 *         if (learnerlink_next_batch(ll, b) == 1) {
 *             learner_update(l, b, lr, &st);
 *             learnerlink_send_policy(ll, l->policy, l->policy_version);
 *         }
 *     }
 *     learnerlink_shutdown(ll, "run finished", 5000);
 *     learnerlink_destroy(&ll);
 *
 * Owns: the peer, the queues (decoded envelopes), the job, a segstore for
 * the segments of the label being taken, and copies of the latest weights. */
#ifndef RLHF_LEARNERLINK_H
#define RLHF_LEARNERLINK_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "feedback.h"
#include "job.h"
#include "policy.h"
#include "reward.h"
#include "transport.h"

typedef struct learnerlink learnerlink_t;

typedef struct {
    const char *endpoint;               /* the coordinator, tcp://HOST:PORT */
    const char *peer_id;                /* NULL = "learner" */
    const transport_keypair_t *keys;    /* CURVE: both, or both NULL */
    const char *server_public_z85;
    int n_ranks;                        /* reported in the Register (>= 1) */
    int window;                         /* trajectory batches in flight to us; 0 = 2 */
    /* Progress to resume from (from a checkpoint); zeros for a new run. */
    uint64_t label_cursor;              /* the highest label id the learner holds */
    uint64_t env_steps;                 /* env steps of the batches it took */
    uint64_t labels_answered;           /* answered queries it was told of */
} learnerlink_options_t;

/* What learnerlink_poll() found ready (a bit set). */
enum {
    LL_BATCH = 1,       /* a trajectory batch is waiting */
    LL_LABEL = 2,       /* a label (or a round's end) is waiting */
    LL_SHUTDOWN = 4,    /* the coordinator said stop */
    LL_WELCOME = 8,     /* (re)registered since the last poll */
};

learnerlink_t *learnerlink_new(const learnerlink_options_t *o, char *err, size_t errlen);
void learnerlink_destroy(learnerlink_t **self_p);

/* Runs the protocol for up to timeout_ms (0: only what is there), returning
 * early once something is ready. Returns the LL_* bits of what is ready
 * (0 if nothing), or -1 on a fatal error (learnerlink_error()): the
 * coordinator refused our CURVE key, or its job changed under a running
 * learner. */
int learnerlink_poll(learnerlink_t *self, long timeout_ms);

/* The job from the coordinator's Welcome (NULL before it); its INI text
 * (what a gateway broadcasts to its ranks, job_load_text() reads it). */
const job_t *learnerlink_job(const learnerlink_t *self);
const char *learnerlink_job_text(const learnerlink_t *self);

/* Takes the next trajectory batch into b (allocated for the job's ppo.n_steps
 * x env.n_envs) and acknowledges it. 1 when one was taken, 0 when none is
 * waiting. A batch that does not fit b (another job's) is dropped, logged
 * and counted, never returned. */
int learnerlink_next_batch(learnerlink_t *self, traj_t *b);

/* The worker id of the batch the last learnerlink_next_batch() took ("" before). */
const char *learnerlink_batch_worker(const learnerlink_t *self);

typedef struct {
    int has_label;              /* 0 for a "can't tell" answer: nothing to learn */
    label_t label;              /* indices into segs */
    const segstore_t *segs;     /* owned by the link; valid until the next call */
    uint64_t label_id;
    int round_done;             /* this answer completed a labelling round: refit */
} learnerlink_label_t;

/* Takes the next answered query (in label id order; each once, also across
 * reconnections). 1 with *out filled (has_label 1: exactly what
 * learner_add_label(l, &out->label, out->segs) takes), 0 when none. */
int learnerlink_next_label(learnerlink_t *self, learnerlink_label_t *out);

/* Sends the weights (and keeps them to send again after a re-registration).
 * 0, or -1 when they could not be sent now (they go after the next
 * Welcome). */
int learnerlink_send_policy(learnerlink_t *self, const policy_t *p, uint64_t version);
int learnerlink_send_reward(learnerlink_t *self, const reward_model_t *rm, uint64_t version);

/* Sends a Status with n named metrics (the coordinator relays them). */
int learnerlink_send_status(learnerlink_t *self, const char *phase, uint64_t policy_version, uint64_t reward_version,
                            const char *const *names, const double *values, size_t n);

/* Asks the coordinator for its Status; the answer is kept (below). */
int learnerlink_request_status(learnerlink_t *self);
/* A counter of the coordinator's latest Status (e.g. "peers.dead"): 0 with
 * *out, or -1 when there is no such counter (or no Status yet). */
int learnerlink_counter(const learnerlink_t *self, const char *name, uint64_t *out);
/* How many Status answers arrived so far. */
uint64_t learnerlink_status_count(const learnerlink_t *self);

/* Ends the run: sends Shutdown and waits up to timeout_ms for the
 * coordinator's acknowledgement. 0 when acknowledged, -1 on timeout. */
int learnerlink_shutdown(learnerlink_t *self, const char *reason, long timeout_ms);

/* Progress, for a checkpoint (and learnerlink_options_t on resume). */
void learnerlink_progress(const learnerlink_t *self, uint64_t *label_cursor, uint64_t *env_steps,
                          uint64_t *labels_answered);
int learnerlink_registered(const learnerlink_t *self);
uint64_t learnerlink_welcomes(const learnerlink_t *self);
const char *learnerlink_error(const learnerlink_t *self);

#endif

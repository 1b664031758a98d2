/* coord.h - the coordinator: one ZeroMQ ROUTER and one single-threaded event
 * loop with timers (redis/czmq style). docs/protocol.md is the protocol it
 * speaks; this header says what it owns.
 *
 * Owns:
 *  - the registry of live peers (rollout workers, labelers, one learner),
 *    keyed by peer id, each with its incarnation, routing identity, dense
 *    index among its kind and the time it was last heard from;
 *  - the trajectory queue towards the learner (at most
 *    coordinator.learner_queue batches) and the credit both ways: a rollout
 *    worker's batch is acknowledged when it moves on to the learner (or is
 *    dropped, counted), so a worker never has more than
 *    coordinator.rollout_credit batches in flight and a slow or absent
 *    learner stalls the workers instead of losing data; the learner is sent
 *    at most its own window (its Register's caps.max_inflight);
 *  - the recent episodes (episodes.h) of the accepted batches, with their
 *    render states, the label schedule (query_due() in query.h, the one the
 *    local feed follows, over the env steps of accepted batches), the
 *    queries it makes from them (query.h, with its copy of the reward model
 *    for disagreement selection) in a bounded queue
 *    (coordinator.queue_max), their leases on labelers (ZeroMQ peers and
 *    HTTP labelers; feedback.redundancy distinct labelers per query), the
 *    undo window of HTTP labels (feedback.undo_s), and the feedback store
 *    (store.h: OUT/feedback.db, durable; in memory only without an out
 *    directory, and then HTTP is refused);
 *  - the labelers' HTTP server (http.h; coordinator.http_port), run from
 *    the same loop: its epoll fd is in the zmq_poll set;
 *  - the latest policy weights (forwarded to every rollout worker and to
 *    each new one) and reward weights (loaded into its reward model);
 *  - counters, a lag histogram and the learner's latest Status, which it
 *    answers Status requests with and writes to OUT/status.json.
 *
 * Invariants:
 *  - every message is received through transport_recv (size-checked,
 *    validated); anything else from a peer is checked against the sender's
 *    registration (kind, CURVE key name) before it is used;
 *  - nothing is dropped silently: every dropped batch, refused label or
 *    unexpected message is counted and logged (rate-limited where a peer
 *    could flood the log);
 *  - a query is served only after it and its segments are committed; a
 *    label is acknowledged (LabelAck, HTTP 200) only after it is committed,
 *    and a label whose commit failed is not acknowledged at all;
 *  - labels reach the learner in id order, each once per learner cursor,
 *    never a retracted (undone) one, never one inside its undo window;
 *  - a coordinator started on the out directory of a dead one recovers the
 *    queue, the leases, the labels and their numbering from feedback.db. */
#ifndef RLHF_COORD_H
#define RLHF_COORD_H

#include <signal.h>
#include <stddef.h>

#include "job.h"
#include "transport.h"

typedef struct coord coord_t;

typedef struct {
    const char *bind;                  /* "tcp://127.0.0.1:5555" ("...:*" picks a port) */
    const char *out_dir;               /* status.json, endpoint and feedback.db go here; NULL = none */
    const transport_keypair_t *keys;   /* CURVE server keys, or NULL */
    transport_allow_t *allow;          /* CURVE allow-list (taken over; NULL without CURVE) */
    size_t max_message;                /* receive limit; 0 = WIRE_MAX_MESSAGE_DEFAULT */
} coord_options_t;

/* Binds and gets ready. job is copied. NULL with err. */
coord_t *coord_new(const job_t *job, coord_options_t *o, char *err, size_t errlen);
void coord_destroy(coord_t **self_p);

/* The bound endpoint, with the real port. */
const char *coord_endpoint(const coord_t *self);

/* Runs the event loop until the run ends (the learner's Shutdown, passed on
 * to every peer and acknowledged, or a short timeout) or *stop is set (a
 * signal: then it returns without telling the peers, which keep trying to
 * reconnect, as after a crash). Returns 0. */
int coord_run(coord_t *self, volatile sig_atomic_t *stop);

#endif

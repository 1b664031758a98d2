/* labeler.h - a ZeroMQ labeler: the scripted teacher (teacher.h) answering
 * the coordinator's queries, as `rlhf label --teacher SPEC --coordinator
 * tcp://...` runs it. Several may run at once.
 *
 * It registers as PEER_LABELER (peer.h) for every query kind, holds at most
 * max_inflight queries, and answers each one from the true rewards of the
 * segments the query embeds, like the local feed's teacher (feed_local.c;
 * the same rating range: the environment's per-step reward bounds times the
 * segment length unless the spec gives lo=/hi=). Every answer gets a fresh idempotency id
 * "<id>-<incarnation>-<n>"; a label without a LabelAck within
 * coordinator.label_resend_ms is sent again, the same id, so it is stored
 * once however often it travels. A STORED or DUPLICATE ack ends it;
 * UNKNOWN_QUERY (a coordinator that restarted and forgot the query) and
 * REJECTED end it too, logged.
 *
 * Owns: its peer and the labels awaiting an acknowledgement. */
#ifndef RLHF_LABELER_H
#define RLHF_LABELER_H

#include <signal.h>
#include <stddef.h>

#include "transport.h"

typedef struct {
    const char *endpoint;               /* the coordinator */
    const char *peer_id;                /* NULL: "labeler-<host>-<pid>" */
    const char *teacher;                /* teacher spec (teacher_parse) */
    const transport_keypair_t *keys;    /* CURVE: both, or both NULL */
    const char *server_public_z85;
    int max_inflight;                   /* queries held at once; 0 = 1 */
    volatile sig_atomic_t *stop;        /* set by a signal handler: leave the loop */
} labeler_options_t;

/* Runs until the coordinator's Shutdown (acknowledged) or *stop. Returns 0
 * then, 1 on an error (err says which: a bad teacher spec, a job it cannot
 * read), 3 when the coordinator refuses our CURVE key. */
int labeler_run(const labeler_options_t *o, char *err, size_t errlen);

#endif

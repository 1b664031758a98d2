/* peer.h - the client side of the coordinator protocol that every peer
 * (rollout worker, labeler, learner gateway) shares: one DEALER to the
 * coordinator's ROUTER, Register -> Welcome, heartbeats both ways, and
 * recovery from a lost or restarted coordinator (the ZeroMQ guide's
 * Paranoid Pirate). docs/protocol.md describes the whole protocol.
 *
 * Owns: its transport_t (a context of its own), the DEALER, the latest
 * Welcome (job text, seed, heartbeat settings) and the envelope sequence.
 *
 * States:
 *   REGISTERING  Register sent; waiting for a Welcome. No heartbeats.
 *                Without a Welcome within liveness * interval the socket is
 *                closed, a new one connects and Register goes again.
 *   REGISTERED   heartbeats every interval. Any message from the coordinator
 *                proves it alive; silence for liveness * interval means it
 *                is gone: a new socket and REGISTERING again. An Error
 *                NOT_REGISTERED (a coordinator that restarted and does not
 *                know us) re-registers at once.
 * A new socket rather than libzmq's own reconnect: messages queued for the
 * old coordinator are stale, and the new connection starts clean. The
 * incarnation stays the same across re-registrations of one process, so the
 * coordinator can tell "reconnected" (keep its state) from "restarted"
 * (new incarnation: give back its leases).
 *
 * CURVE: when the coordinator refuses our key (or we hold the wrong server
 * key) the handshake fails and nothing arrives; peer_poll() then fails with
 * a clear error after PEER_REFUSED_S seconds of failed handshakes without a
 * Welcome, rather than retrying forever in silence.
 *
 * Usage (single thread; see rollout/main.c):
 *     peer_t *p = peer_new(&opt, err, sizeof err);
 *     for (;;) {
 *         Rlhf__Envelope *env;
 *         int rc = peer_poll(p, 100, &env);
 *         if (rc < 0) fail(peer_error(p));
 *         if (rc == 1) { handle(env); wire_free(&env); }
 *         ... peer_send(p, &my_envelope) when registered ...
 *     }
 * Heartbeats, Registers and the coordinator's Heartbeats and NOT_REGISTERED
 * errors are handled inside; every other message (the Welcome included, so
 * the caller can (re)build from the job) is returned to the caller. */
#ifndef RLHF_PEER_H
#define RLHF_PEER_H

#include <stdint.h>

#include "transport.h"
#include "wire.h"

#define PEER_REFUSED_S 3.0

typedef struct peer peer_t;

typedef struct {
    const char *endpoint;               /* tcp://HOST:PORT of the coordinator */
    Rlhf__PeerKind kind;
    const char *peer_id;                /* printable, <= WIRE_MAX_NAME; copied */
    const transport_keypair_t *keys;    /* CURVE: our keys and ... */
    const char *server_public_z85;      /* ... the coordinator's public key; both or neither */
    int heartbeat_ms, liveness;         /* until the first Welcome sets them (1000, 3) */
    size_t max_message;                 /* receive limit; 0 = WIRE_MAX_MESSAGE_DEFAULT */
    /* Called to complete every Register (caps, learner progress) and every
     * Heartbeat (versions, inflight) before it is sent; may be NULL. The
     * message points at the callee's data only for the duration of the send. */
    void (*on_register)(Rlhf__Register *r, void *arg);
    void (*on_heartbeat)(Rlhf__Heartbeat *h, void *arg);
    /* Called with every Heartbeat from the coordinator; may be NULL. */
    void (*on_coordinator_heartbeat)(const Rlhf__Heartbeat *h, void *arg);
    void *arg;
} peer_options_t;

/* Connects and sends Register. NULL (err) on bad options. */
peer_t *peer_new(const peer_options_t *o, char *err, size_t errlen);
void peer_destroy(peer_t **self_p);

/* Waits up to timeout_ms (0: only what is there) for a message for the
 * caller, running the timers meanwhile. Returns 1 with *env (free with
 * wire_free), 0 when the time ran out, -1 on a fatal error (peer_error()):
 * the coordinator refused our CURVE key. */
int peer_poll(peer_t *self, long timeout_ms, Rlhf__Envelope **env);

/* Initialises env with our id and the next sequence number; set the body,
 * then peer_send(). */
void peer_envelope(peer_t *self, Rlhf__Envelope *env);
/* Sends without blocking: 0, or -1 with errno (transport_send; EAGAIN when
 * the queue to the coordinator is full). Refused (ENOTCONN) while not
 * registered, except for the peer's own protocol messages. */
int peer_send(peer_t *self, const Rlhf__Envelope *env);
/* Acknowledges the coordinator's message with envelope seq `seq`. */
int peer_ack(peer_t *self, uint64_t seq, uint32_t credit);

/* Loads the CURVE options every peer program takes: --curve-secret
 * PATH.key (our key pair; PATH.pub beside it is checked when present) and
 * --curve-server FILE (the coordinator's public key). 0, or -1 with err. */
int peer_load_keys(const char *secret_path, const char *server_pub_path, transport_keypair_t *keys,
                   char server_pub[TRANSPORT_Z85_LEN + 1], char *err, size_t errlen);

int peer_registered(const peer_t *self);
/* The latest Welcome (NULL before the first); valid until the next
 * peer_poll() that returns a Welcome. */
const Rlhf__Welcome *peer_welcome(const peer_t *self);
/* How many Welcomes so far: a change means the caller re-registered. */
uint64_t peer_welcomes(const peer_t *self);
uint64_t peer_incarnation(const peer_t *self);
const char *peer_id(const peer_t *self);
const char *peer_error(const peer_t *self);
transport_t *peer_transport(peer_t *self);
/* The current DEALER (replaced on every reconnect): for raw sends in
 * benchmarks and tests. */
transport_sock_t *peer_socket(peer_t *self);

#endif

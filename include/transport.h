/* transport.h - the ZeroMQ transport every process uses: CURVE key files and
 * allow-lists, a ROUTER server socket and DEALER client sockets with the
 * options this system needs, the ZAP handler that enforces the allow-list,
 * socket monitors turned into log lines and status, and sending/receiving
 * one rlhf.Envelope per ZeroMQ message (wire.h).
 *
 * Owns:
 *  - transport_t: the process's ZeroMQ context, the ZAP handler (a REP
 *    socket on inproc://zeromq.zap.01, at most one per context) with its
 *    allow-list, and every socket made from it. transport_destroy() closes
 *    what is left and terminates the context; because every socket has a
 *    short ZMQ_LINGER, that never hangs on undelivered messages.
 *  - transport_sock_t: one ROUTER (server) or DEALER (client) socket, its
 *    monitor (a PAIR socket connected to zmq_socket_monitor's inproc
 *    endpoint) and its counters.
 *  - transport_allow_t: the allow-list of client public keys.
 *
 * Single-threaded event loop, no hidden threads. libzmq's I/O thread asks
 * the ZAP handler about every CURVE handshake and pushes monitor events
 * into inproc pipes; both are answered by the owner's own loop:
 *
 *     zmq_pollitem_t items[1] = {{transport_sock_zmq(server), 0, ZMQ_POLLIN, 0}};
 *     transport_from_t from;
 *     Rlhf__Envelope *env;
 *     for (;;) {
 *         // waits on the caller's items AND the ZAP/monitor sockets, then
 *         // answers ZAP requests and logs monitor events before returning
 *         if (transport_poll(t, items, 1, 100) > 0 && (items[0].revents & ZMQ_POLLIN)) {
 *             int rc;
 *             while ((rc = transport_recv(server, &from, &env)) != -1)
 *                 if (rc == 0) { handle(&from, env); wire_free(&env); }  // -2: dropped, logged
 *         }
 *         ... timers, heartbeats ...
 *     }
 *
 * or, with a loop that polls other things too, add transport_pollitems()
 * to its poll set and call transport_process_events() after each poll.
 * This works without a thread because a handshake waiting on ZAP does not
 * block anything: the I/O thread parks that one connection until the reply
 * arrives. The price: while the owner does not poll (a long computation),
 * new CURVE clients wait, and after handshake_ivl_ms they are dropped and
 * retry. Established connections are unaffected. That is why the loop of a
 * process with a CURVE server must come back to poll often; a client-only
 * process needs no ZAP, and its monitor only feeds logs and status.
 *
 * Security invariants:
 *  - A CURVE server cannot be made without an allow-list (transport_zap_start
 *    first): CURVE without ZAP accepts any client key (PLATFORM.md).
 *  - The ZAP handler accepts only CURVE requests whose key is on the list;
 *    every refusal is logged with the key (z85) and the peer's address.
 *    Its reply's user id is the key's name on the list (or its z85), which
 *    transport_recv() reports in from->user_id for every message.
 *  - Secret key files are written mode 0600 and refused when group- or
 *    world-accessible (as ssh does).
 *
 * Message invariants: one ZeroMQ message is [identity frame] + one frame
 * holding a packed Envelope. transport_recv() checks the frame count and
 * every frame's size against the socket's limit before decoding, decodes
 * with wire_decode() (size-bounded, validated), and drops anything else
 * with one log line naming the sender; it never aborts on any input.
 * libzmq's own ZMQ_MAXMSGSIZE is set to the same limit, so an over-limit
 * message is normally cut off by libzmq: the connection is closed and the
 * monitor logs the disconnect (the only trace it leaves). (libzmq does not
 * apply ZMQ_MAXMSGSIZE to inproc; there the own check is what refuses.)
 *
 * Logs: a failed handshake is logged on its first occurrence and then at
 * most once per 10 s per kind with a count (a misconfigured peer retries
 * every reconnect interval, forever); the stats keep every one. ZAP
 * refusals are each logged.
 *
 * Peer identities: a DEALER gets a random routing id from the ROUTER per
 * connection, so it changes when the client reconnects. Route replies to
 * the identity of the latest message from a peer (its envelope's sender
 * says who it is); a send to a vanished identity fails with EHOSTUNREACH
 * (ZMQ_ROUTER_MANDATORY) instead of being dropped silently.
 *
 * Not thread-safe: one transport_t and its sockets belong to one thread
 * (two threads each with their own transport_t is fine).
 *
 * Errors: functions that can fail return 0/-1 (or NULL) and write one line
 * into (char *err, size_t errlen) when given; err may be NULL. */
#ifndef RLHF_TRANSPORT_H
#define RLHF_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <zmq.h>

#include "wire.h"

/* A CURVE key as ZeroMQ's Z85 text: 40 characters + NUL. */
#define TRANSPORT_Z85_LEN 40
#define TRANSPORT_KEY_BYTES 32

/* ---- keys ------------------------------------------------------------- */

typedef struct {
    char public_z85[TRANSPORT_Z85_LEN + 1];
    char secret_z85[TRANSPORT_Z85_LEN + 1];
} transport_keypair_t;

/* A fresh key pair (zmq_curve_keypair). Fails when libzmq lacks CURVE. */
int transport_keypair_generate(transport_keypair_t *kp, char *err, size_t errlen);

/* Writes DIR/NAME.key (the secret key, mode 0600) and DIR/NAME.pub (the
 * public key). Each file is a '#' comment line and the key on one line.
 * Never overwrites: fails when either file exists (a lost secret key is a
 * lost identity), and leaves neither file behind on failure. DIR must
 * exist. NAME is letters, digits, '-', '_', '.' (not leading). */
int transport_keypair_save(const transport_keypair_t *kp, const char *dir, const char *name, char *err,
                           size_t errlen);

/* Loads DIR/NAME.key and, when DIR/NAME.pub exists, checks it is the public
 * half of that secret key; the public key is derived from the secret one
 * either way. Errors name the file (and line), e.g.
 *   "keys/w1.key:2: key is 39 characters, expected 40 (Z85)" */
int transport_keypair_load(transport_keypair_t *kp, const char *dir, const char *name, char *err, size_t errlen);

/* Reads one key file (a .pub, or the server's public key a client is given):
 * blank lines and '#' comments allowed, exactly one key line of 40 Z85
 * characters. out gets the key as Z85. */
int transport_key_load(const char *path, char out[TRANSPORT_Z85_LEN + 1], char *err, size_t errlen);

/* 0 when s is exactly 40 valid Z85 characters (then bin, if not NULL, gets
 * the 32 bytes); -1 with err saying what is wrong. */
int transport_key_decode(const char *s, uint8_t bin[TRANSPORT_KEY_BYTES], char *err, size_t errlen);

/* The `rlhf keygen` command: makes DIR (mkdir -p), writes the pair as
 * transport_keypair_save() does, and prints to out
 *   "<public z85>  <name>\n"
 * which is a ready allow-list line. 0, or -1 with err. */
int transport_keygen_cmd(const char *dir, const char *name, FILE *out, char *err, size_t errlen);

/* ---- allow-list --------------------------------------------------------- */

/* Client public keys the ZAP handler accepts. File format, one per line:
 *     <40 Z85 characters> [name]     # comment
 * blank lines and '#' comments ignored; the name (default: the key itself)
 * is printable, at most WIRE_MAX_NAME bytes, does not start with '#', and
 * becomes the connection's ZAP user id. A key listed twice is an error.
 * ('#' is a Z85 digit but never a key's first one, so a word starting with
 * '#' always starts a comment.) */
typedef struct transport_allow_t transport_allow_t;

transport_allow_t *transport_allow_new(void);
/* Loads a file; errors are "path:line: what". NULL on error. */
transport_allow_t *transport_allow_load(const char *path, char *err, size_t errlen);
void transport_allow_destroy(transport_allow_t **self_p);
/* Adds a key (Z85) with an optional name (NULL: the key). */
int transport_allow_add(transport_allow_t *self, const char *key_z85, const char *name, char *err, size_t errlen);
/* The name of a listed key (32 bytes), or NULL when it is not listed. */
const char *transport_allow_find(const transport_allow_t *self, const uint8_t key[TRANSPORT_KEY_BYTES]);
size_t transport_allow_count(const transport_allow_t *self);

/* ---- options and the context --------------------------------------------- */

typedef struct {
    int linger_ms;            /* ZMQ_LINGER: how long close/term may wait for unsent messages (200) */
    size_t max_message;       /* receive limit per frame, and ZMQ_MAXMSGSIZE (WIRE_MAX_MESSAGE_DEFAULT);
                               * sends over it are refused locally too */
    int reconnect_ivl_ms;     /* ZMQ_RECONNECT_IVL (100) */
    int reconnect_ivl_max_ms; /* ZMQ_RECONNECT_IVL_MAX: exponential backoff up to this (2000) */
    int heartbeat_ivl_ms;     /* ZMTP PINGs (ZMQ_HEARTBEAT_IVL); 0 = off (1000) */
    int heartbeat_timeout_ms; /* no traffic for this long closes the connection (10000) */
    int handshake_ivl_ms;     /* ZMQ_HANDSHAKE_IVL, incl. waiting for ZAP (10000) */
    int sndhwm, rcvhwm;       /* messages queued per peer; 0 = libzmq's default (1000) */
} transport_options_t;

void transport_options_default(transport_options_t *o);

typedef struct transport_t transport_t;

/* A new context. opt NULL = defaults; it is copied. NULL (logged) if the
 * options are out of range or zmq_ctx_new fails. */
transport_t *transport_new(const transport_options_t *opt);
/* Closes every socket still open (and the ZAP handler), terminates the
 * context, sets *self_p to NULL. Safe on NULL. */
void transport_destroy(transport_t **self_p);
/* The raw context, for the owner's own inproc sockets. */
void *transport_ctx(transport_t *self);
const transport_options_t *transport_options(const transport_t *self);

/* Binds the ZAP handler and takes the allow-list (*allow_p becomes NULL,
 * also on failure). Call before making CURVE server sockets. */
int transport_zap_start(transport_t *self, transport_allow_t **allow_p, char *err, size_t errlen);

typedef struct {
    uint64_t accepted;        /* ZAP requests answered 200 */
    uint64_t refused;         /* answered 400 (key not on the list, not CURVE) */
    char last_refusal[320];   /* the log line of the latest refusal */
} transport_zap_stats_t;
/* NULL when ZAP is not started. */
const transport_zap_stats_t *transport_zap_stats(const transport_t *self);

/* ---- sockets ------------------------------------------------------------ */

typedef struct transport_sock_t transport_sock_t;

/* A ROUTER bound to endpoint ("tcp://0.0.0.0:5555"; "tcp://127.0.0.1:<star>" picks a
 * free port: read it back with transport_sock_endpoint()). keys NULL =
 * plain; else CURVE server with keys' secret key, which needs ZAP started.
 * ZMQ_ROUTER_MANDATORY is on. */
transport_sock_t *transport_server_new(transport_t *t, const char *endpoint, const transport_keypair_t *keys,
                                       char *err, size_t errlen);
/* A DEALER connecting to endpoint (it retries until the server is there).
 * keys and server_public_z85 both NULL = plain, or both given = CURVE. */
transport_sock_t *transport_client_new(transport_t *t, const char *endpoint, const transport_keypair_t *keys,
                                       const char *server_public_z85, char *err, size_t errlen);
/* Stops the monitor and closes the socket (linger applies); *self_p = NULL. */
void transport_sock_destroy(transport_sock_t **self_p);

/* The libzmq socket, for zmq_poll (POLLIN) and raw use. */
void *transport_sock_zmq(transport_sock_t *self);
/* The bound endpoint with the real port (server) or the one connected to. */
const char *transport_sock_endpoint(const transport_sock_t *self);
int transport_sock_is_server(const transport_sock_t *self);

typedef struct {
    uint64_t sent, received;  /* envelopes */
    uint64_t dropped;         /* received messages refused by transport_recv() */
    uint64_t send_failed;     /* transport_send() failures */
    uint64_t connects;        /* TCP connections made (client) or accepted (server) */
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;
    uint64_t disconnects;     /* connections closed, incl. over-limit messages and failed handshakes */
    int up;                   /* client: a handshake succeeded and no disconnect since */
    int handshake_failed;     /* client: the latest handshake failed (cleared by a success) */
    char last_error[320];     /* the latest problem, as logged */
} transport_stats_t;

const transport_stats_t *transport_sock_stats(const transport_sock_t *self);
/* 1 when this client's latest handshake failed: with CURVE, a wrong server
 * key or a key the server does not list. Callers check it (e.g. after a
 * few seconds without a Welcome) to fail with a clear message. */
int transport_client_handshake_failed(const transport_sock_t *self);
/* 1 when this client has a connection with a completed handshake. */
int transport_client_up(const transport_sock_t *self);

/* ---- the event loop ------------------------------------------------------ */

/* Writes up to max poll items (ZMQ_POLLIN) for the ZAP handler and every
 * monitor; returns how many there are (call again with more room if that
 * exceeds max). */
int transport_pollitems(transport_t *self, zmq_pollitem_t *items, int max);
/* Answers every pending ZAP request and reads every pending monitor event
 * (logging them, updating the stats); never blocks. Returns the number of
 * events handled. */
int transport_process_events(transport_t *self);
/* zmq_poll over the caller's n items plus the transport's own, for at most
 * timeout_ms (-1: no limit), then transport_process_events(). Returns how
 * many of the caller's items are ready (0 on timeout), or -1 (errno; EINTR
 * included). items may be NULL when n == 0. */
int transport_poll(transport_t *self, zmq_pollitem_t *items, int n, long timeout_ms);

/* ---- envelopes ----------------------------------------------------------- */

/* Packs env (wire_pack validates it) and sends it without blocking: on a
 * server, identity (1..255 bytes) is the peer's routing id; on a client it
 * must be NULL. Returns 0, or -1 with errno and a log line:
 *   EINVAL    env invalid / identity misuse
 *   EMSGSIZE  packed size over max_message (not sent)
 *   EHOSTUNREACH  server: no peer with that identity (gone)
 *   EAGAIN    the peer's queue is full (or a client has no peer yet): retry later */
int transport_send(transport_sock_t *s, const uint8_t *identity, size_t identity_len, const Rlhf__Envelope *env);

/* Who sent a received message. */
typedef struct {
    uint8_t identity[256];    /* server: the routing id to reply to */
    size_t identity_len;      /* 0 on a client */
    char peer_address[64];    /* the peer's IP ("Peer-Address"), "" if unknown */
    char user_id[WIRE_MAX_NAME + 1]; /* CURVE: the key's allow-list name; "" otherwise */
    size_t bytes;             /* size of the envelope frame */
} transport_from_t;

/* Receives one message without blocking. Returns
 *    0  *env_out is a decoded, validated envelope (free with wire_free());
 *       from (may be NULL) says who sent it
 *   -1  nothing to read (errno EAGAIN) or a socket error (logged)
 *   -2  a message arrived and was dropped: wrong frame count, a frame over
 *       the limit, or not a valid Envelope; logged with the sender's
 *       identity (hex), address and the reason, counted in stats.dropped.
 *       The caller simply goes on (e.g. `while (rc != -1)`).
 * On -1/-2 *env_out is NULL. */
int transport_recv(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out);

/* transport_recv() that also hands back the envelope's frame, for passing
 * the message on unchanged with transport_forward() (no re-encoding, no
 * copy: a router relaying bulk data). On 0, *frame holds the frame and the
 * caller closes it (zmq_msg_close) unless transport_forward() took it;
 * otherwise *frame is empty (closing it is harmless). */
int transport_recv_keep(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out, zmq_msg_t *frame);

/* Sends a frame from transport_recv_keep() as it is: it was size-checked,
 * decoded and validated when it arrived. Takes the frame on success (it is
 * left to the caller on failure). 0, or -1 with errno as transport_send(). */
int transport_forward(transport_sock_t *s, const uint8_t *identity, size_t identity_len, zmq_msg_t *frame);

/* Formats an identity for logs: hex, "0x00a1..."; printable ids as text. */
void transport_identity_str(const uint8_t *id, size_t len, char *out, size_t outlen);

#endif

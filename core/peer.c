/* peer.c - see peer.h. */
#include "peer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct peer {
    char id[WIRE_MAX_NAME + 1];
    char endpoint[256];
    char host[256];
    Rlhf__PeerKind kind;
    int curve;
    transport_keypair_t keys;
    char server_pub[TRANSPORT_Z85_LEN + 1];
    void (*on_register)(Rlhf__Register *r, void *arg);
    void (*on_heartbeat)(Rlhf__Heartbeat *h, void *arg);
    void (*on_coordinator_heartbeat)(const Rlhf__Heartbeat *h, void *arg);
    void *arg;

    transport_t *t;
    transport_sock_t *sock;
    int registered;
    uint64_t incarnation, seq, hb_seq;
    int hb_ms, liveness;
    double last_heard;      /* any message from the coordinator */
    double last_register;   /* when Register was last sent */
    double connected_at;    /* when the current socket was made */
    double next_hb;
    double refused_since;   /* first failed handshake without a Welcome since; 0 = none */
    double no_welcome_logged;
    Rlhf__Envelope *welcome;
    uint64_t welcomes;
    char error[1200];
};

static uint64_t random_nonzero(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return x ? x : 1;
}

static void send_register(peer_t *p) {
    Rlhf__Envelope env;
    Rlhf__Register r;
    Rlhf__Capabilities caps;
    peer_envelope(p, &env);
    rlhf__register__init(&r);
    rlhf__capabilities__init(&caps);
    r.has_kind = 1, r.kind = p->kind;
    r.peer_id = p->id;
    r.has_incarnation = 1, r.incarnation = p->incarnation;
    r.host = p->host;
    r.has_pid = 1, r.pid = (uint32_t)getpid();
    r.caps = &caps;
    if (p->welcome) r.has_config_hash = 1, r.config_hash = p->welcome->welcome->job->hash;
    if (p->on_register) p->on_register(&r, p->arg);
    env.body_case = RLHF__ENVELOPE__BODY_REGISTER;
    env.register_ = &r;
    p->last_register = now_s();
    /* A failure is logged by the transport; the register timer retries. */
    transport_send(p->sock, NULL, 0, &env);
}

/* A fresh socket: what was queued for the old connection is dropped. */
static int reconnect(peer_t *p, char *err, size_t errlen) {
    transport_sock_destroy(&p->sock);
    p->sock = transport_client_new(p->t, p->endpoint, p->curve ? &p->keys : NULL, p->curve ? p->server_pub : NULL,
                                   err, errlen);
    if (!p->sock) return -1;
    p->registered = 0;
    p->connected_at = now_s();
    p->last_heard = p->connected_at;
    send_register(p);
    return 0;
}

peer_t *peer_new(const peer_options_t *o, char *err, size_t errlen) {
    if (!o->endpoint || strlen(o->endpoint) >= sizeof ((peer_t *)0)->endpoint || !o->peer_id || !*o->peer_id ||
        strlen(o->peer_id) > WIRE_MAX_NAME) {
        snprintf(err, errlen, "peer: an endpoint (< 256 bytes) and a peer id of 1..%d bytes are needed",
                 WIRE_MAX_NAME);
        return NULL;
    }
    for (const char *c = o->peer_id; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            snprintf(err, errlen, "peer id '%s': control characters are not allowed", o->peer_id);
            return NULL;
        }
    if (!o->keys != !o->server_public_z85) {
        snprintf(err, errlen, "CURVE needs both our key pair and the coordinator's public key");
        return NULL;
    }
    peer_t *p = callocCheck(1, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", o->peer_id);
    snprintf(p->endpoint, sizeof p->endpoint, "%s", o->endpoint);
    if (gethostname(p->host, sizeof p->host - 1) != 0 || !p->host[0]) snprintf(p->host, sizeof p->host, "unknown");
    p->kind = o->kind;
    if (o->keys) {
        p->curve = 1;
        p->keys = *o->keys;
        snprintf(p->server_pub, sizeof p->server_pub, "%s", o->server_public_z85);
    }
    p->on_register = o->on_register;
    p->on_heartbeat = o->on_heartbeat;
    p->on_coordinator_heartbeat = o->on_coordinator_heartbeat;
    p->arg = o->arg;
    p->hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 1000;
    p->liveness = o->liveness > 0 ? o->liveness : 3;
    p->incarnation = random_nonzero();
    transport_options_t to;
    transport_options_default(&to);
    to.reconnect_ivl_max_ms = 1000; /* a restarted coordinator is found within a second */
    if (o->max_message) to.max_message = o->max_message;
    p->t = transport_new(&to);
    if (!p->t) {
        snprintf(err, errlen, "cannot make a ZeroMQ context");
        free(p);
        return NULL;
    }
    if (reconnect(p, err, errlen) != 0) {
        transport_destroy(&p->t);
        free(p);
        return NULL;
    }
    return p;
}

void peer_destroy(peer_t **self_p) {
    peer_t *p = *self_p;
    if (!p) return;
    wire_free(&p->welcome);
    transport_destroy(&p->t); /* closes the socket too */
    memset(&p->keys, 0, sizeof p->keys);
    free(p);
    *self_p = NULL;
}

void peer_envelope(peer_t *p, Rlhf__Envelope *env) { wire_envelope_init(env, p->id, ++p->seq); }

int peer_send(peer_t *p, const Rlhf__Envelope *env) {
    if (!p->registered) {
        errno = ENOTCONN;
        return -1;
    }
    return transport_send(p->sock, NULL, 0, env);
}

int peer_ack(peer_t *p, uint64_t seq, uint32_t credit) {
    Rlhf__Envelope env;
    Rlhf__Ack ack;
    peer_envelope(p, &env);
    rlhf__ack__init(&ack);
    ack.has_seq = 1, ack.seq = seq;
    if (credit) ack.has_credit = 1, ack.credit = credit;
    env.body_case = RLHF__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    return transport_send(p->sock, NULL, 0, &env);
}

static void send_heartbeat(peer_t *p) {
    Rlhf__Envelope env;
    Rlhf__Heartbeat hb;
    peer_envelope(p, &env);
    rlhf__heartbeat__init(&hb);
    hb.has_seq = 1, hb.seq = ++p->hb_seq;
    if (p->on_heartbeat) p->on_heartbeat(&hb, p->arg);
    env.body_case = RLHF__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    transport_send(p->sock, NULL, 0, &env);
}

/* Heartbeats, the coordinator's liveness, the Register retry and the CURVE
 * refusal check. Returns -1 on a fatal error. */
static int run_timers(peer_t *p) {
    double now = now_s(), dead_after = p->liveness * p->hb_ms / 1000.0;
    char err[256];
    if (p->registered) {
        if (now >= p->next_hb) {
            send_heartbeat(p);
            p->next_hb = fmax(p->next_hb + p->hb_ms / 1000.0, now);
        }
        if (now - p->last_heard > dead_after) {
            log_warn("coordinator %s silent for %.1f s: reconnecting and registering again", p->endpoint,
                     now - p->last_heard);
            if (reconnect(p, err, sizeof err) != 0) {
                snprintf(p->error, sizeof p->error, "reconnecting to %s: %s", p->endpoint, err);
                return -1;
            }
        }
        return 0;
    }
    if (p->curve && transport_client_handshake_failed(p->sock)) {
        if (p->refused_since == 0) p->refused_since = now;
        if (now - p->refused_since >= PEER_REFUSED_S) {
            snprintf(p->error, sizeof p->error,
                     "the CURVE handshake with %s keeps failing: the coordinator refuses our key (is it on its "
                     "allow-list?) or we hold the wrong server key (%s)",
                     p->endpoint, transport_sock_stats(p->sock)->last_error);
            return -1;
        }
    } else if (p->curve && transport_client_up(p->sock)) {
        p->refused_since = 0;
    }
    if (now - p->last_register > dead_after) {
        /* While the coordinator is away this repeats every few seconds:
         * say it once a minute. */
        if (now - p->no_welcome_logged > 60) {
            log_info("no Welcome from %s after %.1f s: reconnecting and registering again (repeating until one "
                     "comes)", p->endpoint, now - p->last_register);
            p->no_welcome_logged = now;
        }
        if (reconnect(p, err, sizeof err) != 0) {
            snprintf(p->error, sizeof p->error, "reconnecting to %s: %s", p->endpoint, err);
            return -1;
        }
    }
    return 0;
}

/* A deep copy through the wire format (the caller and the peer each own one). */
static Rlhf__Envelope *copy_envelope(const Rlhf__Envelope *env) {
    size_t n = 0;
    uint8_t *buf = wire_pack(env, &n, NULL, 0);
    Rlhf__Envelope *c = buf ? wire_unpack(buf, n, n + 1, NULL, 0) : NULL;
    free(buf);
    return c;
}

/* Handles what the peer itself deals with. Returns 1 when env is for the
 * caller (possibly replaced by a copy), 0 when consumed (and freed). */
static int handle(peer_t *p, Rlhf__Envelope **env_p) {
    Rlhf__Envelope *env = *env_p;
    switch (env->body_case) {
    case RLHF__ENVELOPE__BODY_HEARTBEAT:
        if (p->on_coordinator_heartbeat) p->on_coordinator_heartbeat(env->heartbeat, p->arg);
        wire_free(env_p);
        return 0;
    case RLHF__ENVELOPE__BODY_ERROR:
        if (env->error->code != RLHF__ERROR_CODE__ERR_NOT_REGISTERED) {
            log_warn("coordinator says: %s: %s", wire_error_code_name(env->error->code), env->error->text);
            return 1;
        }
        if (p->registered) {
            log_warn("the coordinator does not know us (it restarted, or declared us dead): registering again");
            p->registered = 0;
            send_register(p);
        } else if (now_s() - p->last_register > 0.5) {
            send_register(p);
        }
        wire_free(env_p);
        return 0;
    case RLHF__ENVELOPE__BODY_WELCOME: {
        const Rlhf__Welcome *w = env->welcome;
        if (strcmp(w->peer_id, p->id) != 0 || w->incarnation != p->incarnation) {
            log_debug("ignoring a Welcome for %s incarnation %" PRIx64, w->peer_id, w->incarnation);
            wire_free(env_p);
            return 0;
        }
        Rlhf__Envelope *copy = copy_envelope(env);
        if (!copy) {
            wire_free(env_p);
            return 0;
        }
        wire_free(&p->welcome);
        p->welcome = copy;
        p->welcomes++;
        p->registered = 1;
        p->refused_since = 0;
        p->no_welcome_logged = 0;
        p->hb_ms = (int)w->heartbeat_interval_ms;
        p->liveness = (int)w->heartbeat_liveness;
        p->next_hb = now_s() + p->hb_ms / 1000.0;
        log_info("registered with %s as %s #%" PRIu32 " (run %s, policy version %" PRIu64 ")", p->endpoint, p->id,
                 w->worker_index, w->run_id, w->policy_version);
        return 1;
    }
    default:
        return 1;
    }
}

int peer_poll(peer_t *p, long timeout_ms, Rlhf__Envelope **env_out) {
    *env_out = NULL;
    double deadline = now_s() + (timeout_ms > 0 ? timeout_ms / 1000.0 : 0);
    for (;;) {
        Rlhf__Envelope *env = NULL;
        int rc = transport_recv(p->sock, NULL, &env);
        if (rc == 0) {
            p->last_heard = now_s();
            if (handle(p, &env)) {
                if (run_timers(p) != 0) {
                    wire_free(&env);
                    return -1;
                }
                *env_out = env;
                return 1;
            }
        }
        if (run_timers(p) != 0) return -1;
        if (rc != -1) continue; /* something arrived: look again before waiting */
        double now = now_s();
        if (now >= deadline) return 0;
        double until = deadline;
        if (p->registered && p->next_hb < until) until = p->next_hb;
        long wait = (long)((until - now) * 1000.0) + 1;
        if (wait > 100) wait = 100; /* the liveness and CURVE checks run at least every 100 ms */
        zmq_pollitem_t item = {transport_sock_zmq(p->sock), 0, ZMQ_POLLIN, 0};
        if (transport_poll(p->t, &item, 1, wait) < 0) {
            if (errno == EINTR) return 0; /* a signal: let the caller look at its flags */
            snprintf(p->error, sizeof p->error, "zmq_poll: %s", zmq_strerror(errno));
            return -1;
        }
    }
}

int peer_load_keys(const char *secret_path, const char *server_pub_path, transport_keypair_t *keys,
                   char server_pub[TRANSPORT_Z85_LEN + 1], char *err, size_t errlen) {
    /* transport_keypair_load() takes DIR and NAME of DIR/NAME.key. */
    char dir[1024], name[256];
    const char *slash = strrchr(secret_path, '/');
    const char *base = slash ? slash + 1 : secret_path;
    size_t blen = strlen(base);
    if (blen < 5 || strcmp(base + blen - 4, ".key") != 0 || blen - 4 >= sizeof name) {
        snprintf(err, errlen, "%s: expected the path of a secret key file NAME.key (rlhf keygen writes them)",
                 secret_path);
        return -1;
    }
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - secret_path), secret_path);
    else
        snprintf(dir, sizeof dir, ".");
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    snprintf(name, sizeof name, "%.*s", (int)(blen - 4), base);
    if (transport_keypair_load(keys, dir, name, err, errlen) != 0) return -1;
    return transport_key_load(server_pub_path, server_pub, err, errlen);
}

int peer_registered(const peer_t *p) { return p->registered; }
const Rlhf__Welcome *peer_welcome(const peer_t *p) { return p->welcome ? p->welcome->welcome : NULL; }
uint64_t peer_welcomes(const peer_t *p) { return p->welcomes; }
uint64_t peer_incarnation(const peer_t *p) { return p->incarnation; }
const char *peer_id(const peer_t *p) { return p->id; }
const char *peer_error(const peer_t *p) { return p->error; }
transport_t *peer_transport(peer_t *p) { return p->t; }
transport_sock_t *peer_socket(peer_t *p) { return p->sock; }

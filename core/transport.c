/* transport.c - see transport.h. Three parts: key files and the allow-list,
 * sockets with their monitors and the ZAP handler (all read from the
 * owner's loop), and envelopes on the wire. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* The ZAP domain of our CURVE servers. RFC 27 wants a nonempty domain, and
 * newer libzmq versions only consult ZAP for sockets that set one. */
#define ZAP_DOMAIN "rlhf"
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* Events a monitor reports; CONNECT_DELAYED/RETRIED are routine retries,
 * noise in logs. */
#define MONITOR_EVENTS                                                                                          \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_BIND_FAILED |               \
     ZMQ_EVENT_ACCEPT_FAILED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |          \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* A client failing handshake after handshake (it reconnects every
 * reconnect_ivl) logs the first failure, then at most one line per
 * interval with the count: loud, but not a flood. */
#define FAIL_LOG_INTERVAL_S 10.0

/* Events read per monitor (and ZAP requests answered) per call, so a flood
 * of connections cannot keep transport_process_events() from returning. */
#define EVENTS_PER_CALL 256

static const char z85_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* ======================================================================
 * Keys
 * ====================================================================== */

int transport_key_decode(const char *s, uint8_t bin[TRANSPORT_KEY_BYTES], char *err, size_t errlen) {
    if (!s) {
        err_set(err, errlen, "no key");
        return -1;
    }
    size_t n = strlen(s);
    if (n != TRANSPORT_Z85_LEN) {
        err_set(err, errlen, "key is %zu characters, expected %d (Z85)", n, TRANSPORT_Z85_LEN);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || !strchr(z85_alphabet, c)) {
            if (c >= 0x21 && c < 0x7f)
                err_set(err, errlen, "character %zu ('%c') is not Z85", i + 1, c);
            else
                err_set(err, errlen, "character %zu (byte 0x%02x) is not Z85", i + 1, c);
            return -1;
        }
    }
    uint8_t tmp[TRANSPORT_KEY_BYTES];
    if (!zmq_z85_decode(tmp, s)) {
        err_set(err, errlen, "not a valid Z85 key (a 4-byte group overflows)");
        return -1;
    }
    if (bin) memcpy(bin, tmp, sizeof tmp);
    return 0;
}

/* A key name becomes a file name and an allow-list name: keep it plain. */
static int check_key_name(const char *name, char *err, size_t errlen) {
    if (!name || !*name) {
        err_set(err, errlen, "key name is empty");
        return -1;
    }
    size_t n = strlen(name);
    if (n > WIRE_MAX_NAME) {
        err_set(err, errlen, "key name is %zu bytes, longer than %d", n, WIRE_MAX_NAME);
        return -1;
    }
    if (name[0] == '.' || name[0] == '-') {
        err_set(err, errlen, "key name '%s' starts with '%c'", name, name[0]);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || c == '.';
        if (!ok) {
            err_set(err, errlen, "key name '%s': only letters, digits, '-', '_' and '.' are allowed", name);
            return -1;
        }
    }
    return 0;
}

static int key_path(char *out, size_t outlen, const char *dir, const char *name, const char *ext, char *err,
                    size_t errlen) {
    if (snprintf(out, outlen, "%s/%s.%s", dir, name, ext) >= (int)outlen) {
        err_set(err, errlen, "path too long: %s/%s.%s", dir, name, ext);
        return -1;
    }
    return 0;
}

/* '#' is a Z85 digit, but never the first of a key: the first digit of a
 * 4-byte group is at most 82 (85^4 * 83 > 2^32), and '#' is digit 84. So a
 * token starting with '#' is always a comment. */
static int is_comment(const char *tok) { return tok[0] == '#'; }

/* Reads the one key line of a key file into out. A secret key file must not
 * be readable by group or others: such a key may already be copied. */
static int read_key_file(const char *path, int secret, char out[TRANSPORT_Z85_LEN + 1], char *err,
                         size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (secret && (st.st_mode & 077)) {
        err_set(err, errlen, "%s: secret key is accessible by others (mode %04o): chmod 600 %s", path,
                (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    if (st.st_size > 65536) {
        err_set(err, errlen, "%s: %lld bytes, too large for a key file", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        err_set(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, key_line = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strlen(p);
        while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = 0;
        if (n == 0 || is_comment(p)) continue;
        if (key_line) {
            err_set(err, errlen, "%s:%d: a second key line (the key is on line %d; one key per file)", path,
                    lineno, key_line);
            rc = -1;
            break;
        }
        char why[128];
        if (transport_key_decode(p, NULL, why, sizeof why) != 0) {
            err_set(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        memcpy(out, p, TRANSPORT_Z85_LEN + 1);
        key_line = lineno;
    }
    if (rc == 0 && ferror(f)) {
        err_set(err, errlen, "%s: read error", path);
        rc = -1;
    }
    if (rc == 0 && !key_line) {
        err_set(err, errlen, "%s: no key in the file (empty or only comments)", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0) memset(out, 0, TRANSPORT_Z85_LEN + 1);
    return rc;
}

int transport_key_load(const char *path, char out[TRANSPORT_Z85_LEN + 1], char *err, size_t errlen) {
    return read_key_file(path, 0, out, err, errlen);
}

int transport_keypair_generate(transport_keypair_t *kp, char *err, size_t errlen) {
    memset(kp, 0, sizeof *kp);
    if (!zmq_has("curve") || zmq_curve_keypair(kp->public_z85, kp->secret_z85) != 0) {
        err_set(err, errlen, "cannot generate a CURVE key pair: libzmq was built without CURVE (libsodium)");
        return -1;
    }
    return 0;
}

/* Creates path with mode and text, never replacing an existing file: the
 * text goes to a temporary file which is then hard-linked into place, and
 * link() fails atomically if path exists. */
static int write_new_file(const char *path, const char *text, mode_t mode, char *err, size_t errlen) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        err_set(err, errlen, "path too long: %s", path);
        return -1;
    }
    unlink(tmp); /* a leftover of a crashed earlier run of this pid */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        err_set(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    /* The umask may have cleared bits we want, never added any: fchmod
     * makes the mode exact. */
    size_t n = strlen(text);
    int ok = fchmod(fd, mode) == 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0) ok = 0;
    if (!ok) {
        err_set(err, errlen, "%s: cannot write: %s", tmp, strerror(saved));
        unlink(tmp);
        return -1;
    }
    if (link(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        if (saved == EEXIST)
            err_set(err, errlen, "%s exists: remove it first to make a new key (it is an identity)", path);
        else
            err_set(err, errlen, "%s: cannot create: %s", path, strerror(saved));
        return -1;
    }
    unlink(tmp);
    return 0;
}

int transport_keypair_save(const transport_keypair_t *kp, const char *dir, const char *name, char *err,
                           size_t errlen) {
    if (check_key_name(name, err, errlen) != 0) return -1;
    if (transport_key_decode(kp->public_z85, NULL, err, errlen) != 0 ||
        transport_key_decode(kp->secret_z85, NULL, err, errlen) != 0)
        return -1;
    char sec_path[4096], pub_path[4096];
    if (key_path(sec_path, sizeof sec_path, dir, name, "key", err, errlen) ||
        key_path(pub_path, sizeof pub_path, dir, name, "pub", err, errlen))
        return -1;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        err_set(err, errlen, "%s: not a folder", dir);
        return -1;
    }
    /* Check both before writing either, so a refusal leaves nothing. */
    if (access(sec_path, F_OK) == 0 || access(pub_path, F_OK) == 0) {
        err_set(err, errlen, "%s exists: remove it first to make a new key (it is an identity)",
                access(sec_path, F_OK) == 0 ? sec_path : pub_path);
        return -1;
    }
    char text[256];
    snprintf(text, sizeof text, "# rlhf CURVE secret key of '%s': keep it private (mode 0600)\n%s\n", name,
             kp->secret_z85);
    if (write_new_file(sec_path, text, 0600, err, errlen) != 0) return -1;
    snprintf(text, sizeof text, "# rlhf CURVE public key of '%s'\n%s\n", name, kp->public_z85);
    if (write_new_file(pub_path, text, 0644, err, errlen) != 0) {
        unlink(sec_path);
        return -1;
    }
    return 0;
}

int transport_keypair_load(transport_keypair_t *kp, const char *dir, const char *name, char *err, size_t errlen) {
    memset(kp, 0, sizeof *kp);
    if (check_key_name(name, err, errlen) != 0) return -1;
    char sec_path[4096], pub_path[4096];
    if (key_path(sec_path, sizeof sec_path, dir, name, "key", err, errlen) ||
        key_path(pub_path, sizeof pub_path, dir, name, "pub", err, errlen))
        return -1;
    if (read_key_file(sec_path, 1, kp->secret_z85, err, errlen) != 0) return -1;
    if (zmq_curve_public(kp->public_z85, kp->secret_z85) != 0) {
        err_set(err, errlen, "%s: cannot derive the public key: %s", sec_path, zmq_strerror(errno));
        memset(kp, 0, sizeof *kp);
        return -1;
    }
    if (access(pub_path, F_OK) == 0) {
        char pub[TRANSPORT_Z85_LEN + 1];
        if (read_key_file(pub_path, 0, pub, err, errlen) != 0) {
            memset(kp, 0, sizeof *kp);
            return -1;
        }
        if (strcmp(pub, kp->public_z85) != 0) {
            err_set(err, errlen, "%s: not the public key of %s (that is %s)", pub_path, sec_path, kp->public_z85);
            memset(kp, 0, sizeof *kp);
            return -1;
        }
    }
    return 0;
}

int transport_keygen_cmd(const char *dir, const char *name, FILE *out, char *err, size_t errlen) {
    if (check_key_name(name, err, errlen) != 0) return -1;
    if (mkdir_p(dir) != 0) {
        err_set(err, errlen, "%s: cannot create the folder: %s", dir, strerror(errno));
        return -1;
    }
    transport_keypair_t kp;
    if (transport_keypair_generate(&kp, err, errlen) != 0) return -1;
    int rc = transport_keypair_save(&kp, dir, name, err, errlen);
    if (rc == 0 && out) {
        fprintf(out, "%s  %s\n", kp.public_z85, name);
        fflush(out);
    }
    memset(kp.secret_z85, 0, sizeof kp.secret_z85);
    return rc;
}

/* ======================================================================
 * Allow-list
 * ====================================================================== */

typedef struct {
    uint8_t key[TRANSPORT_KEY_BYTES];
    char z85[TRANSPORT_Z85_LEN + 1];
    char *name;
} allow_entry_t;

struct transport_allow_t {
    allow_entry_t *v;
    size_t n, cap;
};

transport_allow_t *transport_allow_new(void) { return callocCheck(1, sizeof(transport_allow_t)); }

void transport_allow_destroy(transport_allow_t **self_p) {
    if (!self_p || !*self_p) return;
    transport_allow_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) free(self->v[i].name);
    free(self->v);
    free(self);
    *self_p = NULL;
}

/* Lists are tens of keys: a linear search per handshake is nothing. */
static const allow_entry_t *allow_lookup(const transport_allow_t *self, const uint8_t key[TRANSPORT_KEY_BYTES]) {
    for (size_t i = 0; i < self->n; i++)
        if (memcmp(self->v[i].key, key, TRANSPORT_KEY_BYTES) == 0) return &self->v[i];
    return NULL;
}

const char *transport_allow_find(const transport_allow_t *self, const uint8_t key[TRANSPORT_KEY_BYTES]) {
    const allow_entry_t *e = self ? allow_lookup(self, key) : NULL;
    return e ? e->name : NULL;
}

size_t transport_allow_count(const transport_allow_t *self) { return self ? self->n : 0; }

int transport_allow_add(transport_allow_t *self, const char *key_z85, const char *name, char *err, size_t errlen) {
    uint8_t key[TRANSPORT_KEY_BYTES];
    if (transport_key_decode(key_z85, key, err, errlen) != 0) return -1;
    if (!name) name = key_z85;
    size_t n = strlen(name);
    if (n == 0 || n > WIRE_MAX_NAME) {
        err_set(err, errlen, "name is %zu bytes, expected 1..%d", n, WIRE_MAX_NAME);
        return -1;
    }
    /* The name is logged and becomes the ZAP user id: no control bytes. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) {
            err_set(err, errlen, "name has control byte 0x%02x", c);
            return -1;
        }
    }
    const allow_entry_t *dup = allow_lookup(self, key);
    if (dup) {
        err_set(err, errlen, "key %s is already listed (as '%s')", key_z85, dup->name);
        return -1;
    }
    if (self->n == self->cap) {
        self->cap = self->cap ? 2 * self->cap : 8;
        self->v = reallocCheck(self->v, self->cap * sizeof *self->v);
    }
    allow_entry_t *e = &self->v[self->n++];
    memcpy(e->key, key, sizeof key);
    memcpy(e->z85, key_z85, sizeof e->z85);
    e->name = strdupCheck(name);
    return 0;
}

transport_allow_t *transport_allow_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    transport_allow_t *self = transport_allow_new();
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        /* Tokens split on blanks. A Z85 key may contain '#' but never
         * starts with it, so a comment starts where a token does. */
        char *tok[3];
        int nt = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " \t\r\n", &save); t && nt < 3; t = strtok_r(NULL, " \t\r\n", &save)) {
            if (is_comment(t)) break; /* the rest of the line */
            tok[nt++] = t;
        }
        if (nt == 0) continue;
        if (nt == 3) {
            err_set(err, errlen, "%s:%d: unexpected '%s' after the name (expected: key [name] [# comment])", path,
                    lineno, tok[2]);
            rc = -1;
            break;
        }
        char why[256];
        if (transport_allow_add(self, tok[0], nt > 1 ? tok[1] : NULL, why, sizeof why) != 0) {
            err_set(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc != 0) transport_allow_destroy(&self);
    return self;
}

/* ======================================================================
 * Context, sockets, monitors, ZAP
 * ====================================================================== */

struct transport_sock_t {
    transport_t *t;
    void *sock;                 /* ROUTER or DEALER */
    void *mon;                  /* PAIR reading zmq_socket_monitor's events */
    int server, curve;
    char endpoint[256];
    transport_stats_t stats;
    /* Server: handshake failures not yet matched by their DISCONNECTED
     * event, so that disconnect is not logged a second time. */
    uint64_t fail_pending;
    /* Failure-log throttling, per kind of failure (event and value), so a
     * flood of one kind cannot hide the first report of another. */
    struct {
        uint16_t event;
        uint32_t value;
        double logged_at;       /* 0: never */
        uint64_t unlogged;
    } fail_kinds[8];
};

struct transport_t {
    void *ctx;
    transport_options_t opt;
    void *zap;                  /* REP on ZAP_ENDPOINT, NULL until started */
    transport_allow_t *allow;
    transport_zap_stats_t zap_stats;
    transport_sock_t **socks;
    size_t n_socks, cap_socks;
    unsigned next_monitor;
    zmq_pollitem_t *scratch;    /* transport_poll's merged poll set */
    size_t cap_scratch;
};

void transport_options_default(transport_options_t *o) {
    memset(o, 0, sizeof *o);
    o->linger_ms = 200;
    o->max_message = WIRE_MAX_MESSAGE_DEFAULT;
    o->reconnect_ivl_ms = 100;
    o->reconnect_ivl_max_ms = 2000;
    o->heartbeat_ivl_ms = 1000;
    o->heartbeat_timeout_ms = 10000;
    o->handshake_ivl_ms = 10000;
}

transport_t *transport_new(const transport_options_t *opt) {
    transport_options_t o;
    if (opt)
        o = *opt;
    else
        transport_options_default(&o);
    /* Infinite linger (-1) is exactly what makes zmq_ctx_term hang. */
    if (o.linger_ms < 0 || o.linger_ms > 60000) {
        log_error("transport: linger_ms %d outside 0..60000", o.linger_ms);
        return NULL;
    }
    if (o.max_message < 64 || o.max_message > WIRE_MAX_PACKED) {
        log_error("transport: max_message %zu outside 64..%zu", o.max_message, (size_t)WIRE_MAX_PACKED);
        return NULL;
    }
    if (o.reconnect_ivl_ms < 1 || o.reconnect_ivl_max_ms < 0 || o.heartbeat_ivl_ms < 0 ||
        o.heartbeat_timeout_ms < 0 || o.heartbeat_timeout_ms > 6553500 || o.handshake_ivl_ms < 0 ||
        o.sndhwm < 0 || o.rcvhwm < 0) {
        log_error("transport: an interval or high-water mark is out of range");
        return NULL;
    }
    void *ctx = zmq_ctx_new();
    if (!ctx) {
        log_error("transport: zmq_ctx_new: %s", zmq_strerror(errno));
        return NULL;
    }
    transport_t *self = callocCheck(1, sizeof *self);
    self->ctx = ctx;
    self->opt = o;
    return self;
}

void *transport_ctx(transport_t *self) { return self->ctx; }
const transport_options_t *transport_options(const transport_t *self) { return &self->opt; }

void transport_destroy(transport_t **self_p) {
    if (!self_p || !*self_p) return;
    transport_t *self = *self_p;
    while (self->n_socks > 0) {
        transport_sock_t *s = self->socks[self->n_socks - 1];
        transport_sock_destroy(&s);
    }
    if (self->zap) {
        int zero = 0;
        zmq_setsockopt(self->zap, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->zap);
    }
    /* Every socket has a finite linger, so this returns within it. */
    while (zmq_ctx_term(self->ctx) != 0 && errno == EINTR) {
    }
    transport_allow_destroy(&self->allow);
    free(self->socks);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

/* ---- ZAP -------------------------------------------------------------- */

int transport_zap_start(transport_t *self, transport_allow_t **allow_p, char *err, size_t errlen) {
    transport_allow_t *allow = allow_p ? *allow_p : NULL;
    if (allow_p) *allow_p = NULL;
    if (!allow) {
        err_set(err, errlen, "ZAP needs an allow-list");
        return -1;
    }
    if (self->zap) {
        transport_allow_destroy(&allow);
        err_set(err, errlen, "ZAP is already started for this context");
        return -1;
    }
    void *zap = zmq_socket(self->ctx, ZMQ_REP);
    if (!zap) {
        transport_allow_destroy(&allow);
        err_set(err, errlen, "ZAP: zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    int zero = 0;
    zmq_setsockopt(zap, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(zap, ZAP_ENDPOINT) != 0) {
        err_set(err, errlen, "ZAP: cannot bind %s: %s", ZAP_ENDPOINT, zmq_strerror(errno));
        zmq_close(zap);
        transport_allow_destroy(&allow);
        return -1;
    }
    self->zap = zap;
    self->allow = allow;
    log_info("ZAP: allow-list of %zu client key(s) in force", allow->n);
    return 0;
}

const transport_zap_stats_t *transport_zap_stats(const transport_t *self) {
    return self->zap ? &self->zap_stats : NULL;
}

/* Copies a frame into a NUL-terminated string, replacing unprintable bytes
 * (a frame is data, and it ends up in a log line). */
static void frame_text(zmq_msg_t *m, char *out, size_t outlen) {
    size_t n = zmq_msg_size(m);
    const unsigned char *p = zmq_msg_data(m);
    if (n >= outlen) n = outlen - 1;
    for (size_t i = 0; i < n; i++) out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    out[n] = 0;
}

static int frame_is(zmq_msg_t *m, const char *s) {
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* Answers one ZAP request (RFC 27): frames version, request id, domain,
 * address, identity, mechanism, credentials. Returns 1 when one was
 * answered, 0 when none was pending. */
static int zap_handle_one(transport_t *t) {
    enum { MAXF = 8 };
    zmq_msg_t f[MAXF];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, t->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            if (n == 0) return 0;
            break; /* cannot happen: a multipart message arrives whole */
        }
        more = zmq_msg_more(&m);
        if (n < MAXF) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n++], &m);
        }
        zmq_msg_close(&m);
    }
    const char *status = "400", *text = "key not on the allow-list";
    char user[WIRE_MAX_NAME + 1] = "";
    char address[64] = "?", domain[64] = "", mech[16] = "";
    if (n >= 3) frame_text(&f[2], domain, sizeof domain);
    if (n >= 4) frame_text(&f[3], address, sizeof address);
    if (n >= 6) frame_text(&f[5], mech, sizeof mech);
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        status = "500", text = "malformed ZAP request";
        log_error("ZAP: malformed request (%d frames) from libzmq", n);
    } else if (frame_is(&f[5], "CURVE")) {
        if (n != 7 || zmq_msg_size(&f[6]) != TRANSPORT_KEY_BYTES) {
            text = "malformed CURVE credentials";
        } else {
            const uint8_t *key = zmq_msg_data(&f[6]);
            const allow_entry_t *e = allow_lookup(t->allow, key);
            if (e) {
                status = "200", text = "OK";
                snprintf(user, sizeof user, "%s", e->name);
            }
        }
    } else if (frame_is(&f[5], "NULL")) {
        /* A plain socket of this same process: its owner chose no security. */
        status = "200", text = "OK";
    } else {
        text = "mechanism not allowed (CURVE only)";
    }
    if (status[0] == '2') {
        t->zap_stats.accepted++;
        if (user[0]) log_info("ZAP: accepted client '%s' from %s", user, address);
    } else {
        char key[TRANSPORT_Z85_LEN + 1] = "(none)";
        if (n == 7 && zmq_msg_size(&f[6]) == TRANSPORT_KEY_BYTES) zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        t->zap_stats.refused++;
        snprintf(t->zap_stats.last_refusal, sizeof t->zap_stats.last_refusal,
                 "ZAP: refused %s client key %s from %s (domain '%s'): %s", mech[0] ? mech : "?", key, address,
                 domain, text);
        log_warn("%s", t->zap_stats.last_refusal);
    }
    /* Reply: version, request id, status code, status text, user id,
     * metadata. REP must answer every request to accept the next one. */
    zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(t->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(t->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(t->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(t->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(t->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(t->zap, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    return 1;
}

/* ---- monitors --------------------------------------------------------- */

static const char *protocol_error_name(uint32_t v) {
    switch (v) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNSPECIFIED: return "ZMTP error";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND: return "unexpected ZMTP command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE: return "invalid ZMTP sequence";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE: return "key exchange failed";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED: return "malformed ZMTP command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_MESSAGE: return "malformed MESSAGE command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO: return "malformed HELLO command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_INITIATE: return "malformed INITIATE command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_ERROR: return "malformed ERROR command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_READY: return "malformed READY command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME: return "malformed WELCOME command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA: return "invalid metadata";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic error (the client may hold a wrong server public key)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: return "security mechanism mismatch (CURVE on one side only)";
    case ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED: return "ZAP error";
    case ZMQ_PROTOCOL_ERROR_ZAP_MALFORMED_REPLY: return "malformed ZAP reply";
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID: return "ZAP reply with a wrong request id";
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION: return "ZAP reply with a wrong version";
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE: return "ZAP reply with an invalid status code";
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA: return "ZAP reply with invalid metadata";
    default: return "protocol error";
    }
}

/* Records the socket's latest problem (as it is logged). */
static void set_last(transport_sock_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_last(transport_sock_t *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->stats.last_error, sizeof s->stats.last_error, fmt, ap);
    va_end(ap);
}

/* Logs a failed handshake: the first of its kind, then at most one line
 * per FAIL_LOG_INTERVAL_S with a count. A misconfigured peer retries every
 * reconnect interval, forever; one line per retry would bury everything
 * else. The latest reason is always in stats.last_error. */
static void report_failure(transport_sock_t *s, uint16_t event, uint32_t value, const char *why, int quiet) {
    set_last(s, "%shandshake %s %s failed: %s", s->curve ? "CURVE " : "", s->server ? "on" : "with", s->endpoint,
             why);
    if (quiet) {
        log_debug("%s", s->stats.last_error);
        return;
    }
    const size_t nk = sizeof s->fail_kinds / sizeof s->fail_kinds[0];
    size_t k = 0;
    for (size_t i = 0; i < nk; i++) {
        if (s->fail_kinds[i].event == event && s->fail_kinds[i].value == value) {
            k = i;
            break;
        }
        if (s->fail_kinds[i].logged_at < s->fail_kinds[k].logged_at) k = i; /* else reuse the stalest */
    }
    if (s->fail_kinds[k].event != event || s->fail_kinds[k].value != value) {
        s->fail_kinds[k].event = event, s->fail_kinds[k].value = value;
        s->fail_kinds[k].logged_at = 0, s->fail_kinds[k].unlogged = 0;
    }
    double now = now_s();
    if (s->fail_kinds[k].logged_at == 0 || now - s->fail_kinds[k].logged_at >= FAIL_LOG_INTERVAL_S) {
        log_level_t level = s->server ? LOG_WARN : LOG_ERROR;
        if (s->fail_kinds[k].unlogged)
            log_msg(level, "%s (%" PRIu64 " more like it since the last report)", s->stats.last_error,
                    s->fail_kinds[k].unlogged);
        else
            log_msg(level, "%s", s->stats.last_error);
        s->fail_kinds[k].logged_at = now;
        s->fail_kinds[k].unlogged = 0;
    } else {
        s->fail_kinds[k].unlogged++;
    }
}

static void client_failed(transport_sock_t *s, uint16_t event, uint32_t value, const char *why) {
    s->stats.handshake_failed = 1;
    s->stats.up = 0;
    report_failure(s, event, value, why, 0);
}

static void handle_event(transport_sock_t *s, uint16_t event, uint32_t value, const char *addr) {
    transport_stats_t *st = &s->stats;
    char why[200];
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
    case ZMQ_EVENT_ACCEPTED:
        st->connects++;
        log_debug("%s %s", event == ZMQ_EVENT_CONNECTED ? "TCP connected to" : "accepted a connection on", addr);
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        st->handshakes_ok++;
        if (!s->server) {
            if (st->handshake_failed || !st->up)
                log_info("connected to %s%s", s->endpoint, s->curve ? " (CURVE)" : "");
            st->handshake_failed = 0;
            st->up = 1;
            /* After a success, the next failure is news again. */
            memset(s->fail_kinds, 0, sizeof s->fail_kinds);
        }
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        st->handshakes_failed++;
        if (!s->server) {
            if (s->curve)
                snprintf(why, sizeof why,
                         "the server closed the connection during the handshake (a wrong server public key?)%s%s",
                         value ? ": " : "", value ? strerror((int)value) : "");
            else
                snprintf(why, sizeof why, "the connection closed during the handshake%s%s", value ? ": " : "",
                         value ? strerror((int)value) : "");
            client_failed(s, event, value, why);
        } else {
            s->fail_pending++;
            snprintf(why, sizeof why, "the client went away or timed out%s%s", value ? ": " : "",
                     value ? strerror((int)value) : "");
            report_failure(s, event, value, why, 0);
        }
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        st->handshakes_failed++;
        snprintf(why, sizeof why, "%s (0x%08" PRIx32 ")", protocol_error_name(value), value);
        if (!s->server) {
            client_failed(s, event, value, why);
        } else {
            s->fail_pending++;
            report_failure(s, event, value, why, 0);
        }
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        st->handshakes_failed++;
        if (!s->server) {
            snprintf(why, sizeof why, "the server refused our key (ZAP status %" PRIu32 ": not on its allow-list?)",
                     value);
            client_failed(s, event, value, why);
        } else {
            /* The ZAP handler has logged the key and the address already. */
            s->fail_pending++;
            snprintf(why, sizeof why, "refused by ZAP (status %" PRIu32 ")", value);
            report_failure(s, event, value, why, 1);
        }
        break;
    case ZMQ_EVENT_DISCONNECTED:
        st->disconnects++;
        if (!s->server) {
            if (st->up) {
                set_last(s, "lost the connection to %s", s->endpoint);
                log_warn("%s; reconnecting", st->last_error);
            }
            st->up = 0;
        } else if (s->fail_pending > 0) {
            s->fail_pending--; /* its failed handshake was logged */
        } else {
            /* libzmq cuts a connection whose peer sent a frame over
             * ZMQ_MAXMSGSIZE; this line is the only trace of it. */
            set_last(s,
                     "a peer disconnected from %s (closed, dead, or sent a message over the %zu-byte limit)",
                     s->endpoint, s->t->opt.max_message);
            log_info("%s", st->last_error);
        }
        break;
    case ZMQ_EVENT_BIND_FAILED:
    case ZMQ_EVENT_ACCEPT_FAILED:
        set_last(s, "%s failed on %s: %s",
                 event == ZMQ_EVENT_BIND_FAILED ? "bind" : "accept", addr, strerror((int)value));
        log_warn("%s", st->last_error);
        break;
    default: break;
    }
}

/* Reads one monitor event: frame 1 is uint16 event + uint32 value (host
 * order), frame 2 the endpoint. Returns 1 when one was read, else 0. */
static int monitor_handle_one(transport_sock_t *s) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    int ok = zmq_msg_size(&m) == 6;
    if (ok) {
        memcpy(&event, zmq_msg_data(&m), 2);
        memcpy(&value, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
    }
    char addr[256] = "";
    int part = 0;
    while (zmq_msg_more(&m)) {
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->mon, 0) < 0) break;
        if (part++ == 0) frame_text(&m, addr, sizeof addr);
    }
    zmq_msg_close(&m);
    if (ok) handle_event(s, event, value, addr);
    return 1;
}

int transport_process_events(transport_t *self) {
    int n = 0;
    if (self->zap)
        for (int i = 0; i < EVENTS_PER_CALL && zap_handle_one(self); i++) n++;
    for (size_t k = 0; k < self->n_socks; k++)
        for (int i = 0; i < EVENTS_PER_CALL && monitor_handle_one(self->socks[k]); i++) n++;
    return n;
}

int transport_pollitems(transport_t *self, zmq_pollitem_t *items, int max) {
    int n = 0;
    if (self->zap) {
        if (n < max) items[n] = (zmq_pollitem_t){self->zap, 0, ZMQ_POLLIN, 0};
        n++;
    }
    for (size_t k = 0; k < self->n_socks; k++) {
        if (n < max) items[n] = (zmq_pollitem_t){self->socks[k]->mon, 0, ZMQ_POLLIN, 0};
        n++;
    }
    return n;
}

int transport_poll(transport_t *self, zmq_pollitem_t *items, int n, long timeout_ms) {
    int own = transport_pollitems(self, NULL, 0);
    size_t need = (size_t)n + (size_t)own;
    if (need > self->cap_scratch) {
        self->cap_scratch = need + 8;
        self->scratch = reallocCheck(self->scratch, self->cap_scratch * sizeof *self->scratch);
    }
    if (n > 0) memcpy(self->scratch, items, (size_t)n * sizeof *items);
    transport_pollitems(self, self->scratch + n, own);
    int rc = zmq_poll(self->scratch, (int)need, timeout_ms);
    if (rc < 0) return -1;
    int ready = 0;
    for (int i = 0; i < n; i++) {
        items[i].revents = self->scratch[i].revents;
        if (items[i].revents) ready++;
    }
    transport_process_events(self);
    return ready;
}

/* ---- sockets ---------------------------------------------------------- */

static int setopt_int(void *sock, int opt, int v) { return zmq_setsockopt(sock, opt, &v, sizeof v); }

static transport_sock_t *sock_new(transport_t *t, int type, char *err, size_t errlen) {
    void *sock = zmq_socket(t->ctx, type);
    if (!sock) {
        err_set(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    const transport_options_t *o = &t->opt;
    int64_t maxsz = (int64_t)o->max_message;
    int rc = setopt_int(sock, ZMQ_LINGER, o->linger_ms);
    rc |= zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz);
    rc |= setopt_int(sock, ZMQ_RECONNECT_IVL, o->reconnect_ivl_ms);
    rc |= setopt_int(sock, ZMQ_RECONNECT_IVL_MAX, o->reconnect_ivl_max_ms);
    rc |= setopt_int(sock, ZMQ_HANDSHAKE_IVL, o->handshake_ivl_ms);
    if (o->heartbeat_ivl_ms > 0) {
        /* PINGs detect a dead peer behind a half-open TCP connection (a
         * crashed host sends no FIN); TTL tells the peer the same timeout. */
        rc |= setopt_int(sock, ZMQ_HEARTBEAT_IVL, o->heartbeat_ivl_ms);
        rc |= setopt_int(sock, ZMQ_HEARTBEAT_TIMEOUT, o->heartbeat_timeout_ms);
        rc |= setopt_int(sock, ZMQ_HEARTBEAT_TTL, o->heartbeat_timeout_ms);
    }
    if (o->sndhwm > 0) rc |= setopt_int(sock, ZMQ_SNDHWM, o->sndhwm);
    if (o->rcvhwm > 0) rc |= setopt_int(sock, ZMQ_RCVHWM, o->rcvhwm);
    if (rc != 0) {
        err_set(err, errlen, "zmq_setsockopt: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    /* The monitor starts before bind/connect so no event is missed. */
    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://transport-monitor-%u", ++t->next_monitor);
    void *mon = NULL;
    if (zmq_socket_monitor(sock, mon_ep, MONITOR_EVENTS) != 0 || !(mon = zmq_socket(t->ctx, ZMQ_PAIR)) ||
        setopt_int(mon, ZMQ_LINGER, 0) != 0 || zmq_connect(mon, mon_ep) != 0) {
        err_set(err, errlen, "socket monitor: %s", zmq_strerror(errno));
        if (mon) zmq_close(mon);
        zmq_close(sock);
        return NULL;
    }
    transport_sock_t *s = callocCheck(1, sizeof *s);
    s->t = t;
    s->sock = sock;
    s->mon = mon;
    if (t->n_socks == t->cap_socks) {
        t->cap_socks = t->cap_socks ? 2 * t->cap_socks : 8;
        t->socks = reallocCheck(t->socks, t->cap_socks * sizeof *t->socks);
    }
    t->socks[t->n_socks++] = s;
    return s;
}

void transport_sock_destroy(transport_sock_t **self_p) {
    if (!self_p || !*self_p) return;
    transport_sock_t *s = *self_p;
    transport_t *t = s->t;
    for (size_t k = 0; k < t->n_socks; k++) {
        if (t->socks[k] != s) continue;
        memmove(&t->socks[k], &t->socks[k + 1], (t->n_socks - k - 1) * sizeof *t->socks);
        t->n_socks--;
        break;
    }
    zmq_socket_monitor(s->sock, NULL, 0);
    zmq_close(s->mon);
    zmq_close(s->sock);
    free(s);
    *self_p = NULL;
}

static int set_key(void *sock, int opt, const char *z85, const char *what, char *err, size_t errlen) {
    uint8_t bin[TRANSPORT_KEY_BYTES];
    char why[128];
    if (transport_key_decode(z85, bin, why, sizeof why) != 0) {
        err_set(err, errlen, "%s: %s", what, why);
        return -1;
    }
    int rc = zmq_setsockopt(sock, opt, bin, sizeof bin);
    memset(bin, 0, sizeof bin);
    if (rc != 0) {
        err_set(err, errlen, "%s: %s", what, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

transport_sock_t *transport_server_new(transport_t *t, const char *endpoint, const transport_keypair_t *keys,
                                       char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (keys && !t->zap) {
        err_set(err, errlen, "a CURVE server needs the allow-list first (transport_zap_start): without ZAP "
                             "libzmq accepts any client key");
        return NULL;
    }
    if (keys && !zmq_has("curve")) {
        err_set(err, errlen, "libzmq was built without CURVE");
        return NULL;
    }
    transport_sock_t *s = sock_new(t, ZMQ_ROUTER, err, errlen);
    if (!s) return NULL;
    s->server = 1;
    s->curve = keys != NULL;
    int rc = setopt_int(s->sock, ZMQ_ROUTER_MANDATORY, 1);
    if (rc == 0 && keys) {
        rc = setopt_int(s->sock, ZMQ_CURVE_SERVER, 1);
        if (rc == 0) rc = set_key(s->sock, ZMQ_CURVE_SECRETKEY, keys->secret_z85, "server secret key", err, errlen);
        if (rc == 0) rc = zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    }
    if (rc == 0 && zmq_bind(s->sock, endpoint) != 0) {
        err_set(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
        rc = -1;
    }
    size_t len = sizeof s->endpoint;
    if (rc == 0 && zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0)
        snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    if (rc != 0) {
        if (err && errlen && !err[0]) err_set(err, errlen, "server socket: %s", zmq_strerror(errno));
        transport_sock_destroy(&s);
        return NULL;
    }
    log_debug("listening on %s%s", s->endpoint, s->curve ? " (CURVE)" : "");
    return s;
}

transport_sock_t *transport_client_new(transport_t *t, const char *endpoint, const transport_keypair_t *keys,
                                       const char *server_public_z85, char *err, size_t errlen) {
    if ((keys == NULL) != (server_public_z85 == NULL)) {
        err_set(err, errlen, "a CURVE client needs both its key pair and the server's public key");
        return NULL;
    }
    if (keys && !zmq_has("curve")) {
        err_set(err, errlen, "libzmq was built without CURVE");
        return NULL;
    }
    if (err && errlen) err[0] = 0;
    transport_sock_t *s = sock_new(t, ZMQ_DEALER, err, errlen);
    if (!s) return NULL;
    s->curve = keys != NULL;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    int rc = 0;
    if (keys) {
        rc = set_key(s->sock, ZMQ_CURVE_SERVERKEY, server_public_z85, "server public key", err, errlen);
        if (rc == 0) rc = set_key(s->sock, ZMQ_CURVE_PUBLICKEY, keys->public_z85, "client public key", err, errlen);
        if (rc == 0) rc = set_key(s->sock, ZMQ_CURVE_SECRETKEY, keys->secret_z85, "client secret key", err, errlen);
    }
    if (rc == 0 && zmq_connect(s->sock, endpoint) != 0) {
        err_set(err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        transport_sock_destroy(&s);
        return NULL;
    }
    return s;
}

void *transport_sock_zmq(transport_sock_t *self) { return self->sock; }
const char *transport_sock_endpoint(const transport_sock_t *self) { return self->endpoint; }
int transport_sock_is_server(const transport_sock_t *self) { return self->server; }
const transport_stats_t *transport_sock_stats(const transport_sock_t *self) { return &self->stats; }
int transport_client_handshake_failed(const transport_sock_t *self) { return self->stats.handshake_failed; }
int transport_client_up(const transport_sock_t *self) { return self->stats.up; }

/* ======================================================================
 * Envelopes
 * ====================================================================== */

void transport_identity_str(const uint8_t *id, size_t len, char *out, size_t outlen) {
    if (outlen == 0) return;
    out[0] = 0;
    if (!id || len == 0) {
        snprintf(out, outlen, "(none)");
        return;
    }
    int printable = 1;
    for (size_t i = 0; i < len; i++)
        if (id[i] < 0x21 || id[i] > 0x7e) printable = 0;
    if (printable) {
        snprintf(out, outlen, "'%.*s'", (int)len, (const char *)id);
        return;
    }
    size_t w = (size_t)snprintf(out, outlen, "0x");
    for (size_t i = 0; i < len && w + 3 <= outlen; i++) w += (size_t)snprintf(out + w, outlen - w, "%02x", id[i]);
}

static void free_packed(void *data, void *hint) {
    (void)hint;
    free(data);
}

static int send_failed(transport_sock_t *s, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int send_failed(transport_sock_t *s, int e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->stats.last_error, sizeof s->stats.last_error, fmt, ap);
    va_end(ap);
    s->stats.send_failed++;
    /* A full queue is flow control, not a fault: the caller retries. */
    if (e == EAGAIN)
        log_debug("%s", s->stats.last_error);
    else
        log_warn("%s", s->stats.last_error);
    errno = e;
    return -1;
}

int transport_send(transport_sock_t *s, const uint8_t *identity, size_t identity_len, const Rlhf__Envelope *env) {
    if (s->server && (!identity || identity_len == 0 || identity_len > 255))
        return send_failed(s, EINVAL, "send on %s: a server send needs the peer's identity", s->endpoint);
    if (!s->server && identity)
        return send_failed(s, EINVAL, "send to %s: a client send takes no identity", s->endpoint);
    char err[256];
    size_t len = 0;
    uint8_t *buf = env ? wire_pack(env, &len, err, sizeof err) : NULL;
    if (!buf) return send_failed(s, EINVAL, "not sent: invalid envelope: %s", env ? err : "NULL");
    const char *body = wire_body_name(env->body_case);
    if (len > s->t->opt.max_message) {
        free(buf);
        return send_failed(s, EMSGSIZE, "not sent: %s envelope of %zu bytes is over the %zu-byte message limit",
                           body ? body : "?", len, s->t->opt.max_message);
    }
    char who[600];
    if (s->server) {
        if (zmq_send(s->sock, identity, identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            int e = errno;
            free(buf);
            transport_identity_str(identity, identity_len, who, sizeof who);
            if (e == EHOSTUNREACH)
                return send_failed(s, e, "%s to peer %s not sent: no such peer (disconnected)", body, who);
            return send_failed(s, e, "%s to peer %s not sent: %s", body, who, zmq_strerror(e));
        }
    }
    /* Zero copy: libzmq frees the packed buffer once it is written out. */
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, buf, len, free_packed, NULL) != 0) {
        free(buf);
        return send_failed(s, errno, "not sent: zmq_msg_init_data: %s", zmq_strerror(errno));
    }
    if (zmq_msg_send(&m, s->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        return send_failed(s, e, "%s to %s not sent: %s", body, s->endpoint, zmq_strerror(e));
    }
    s->stats.sent++;
    return 0;
}

/* Copies the connection's metadata from a received frame, once. */
static void read_metadata(zmq_msg_t *m, transport_from_t *from) {
    if (!from->peer_address[0]) {
        const char *a = zmq_msg_gets(m, "Peer-Address");
        if (a) snprintf(from->peer_address, sizeof from->peer_address, "%s", a);
    }
    if (!from->user_id[0]) {
        const char *u = zmq_msg_gets(m, "User-Id");
        if (u) snprintf(from->user_id, sizeof from->user_id, "%s", u);
    }
}

int transport_forward(transport_sock_t *s, const uint8_t *identity, size_t identity_len, zmq_msg_t *frame) {
    if (s->server && (!identity || identity_len == 0 || identity_len > 255))
        return send_failed(s, EINVAL, "forward on %s: a server send needs the peer's identity", s->endpoint);
    if (!s->server && identity)
        return send_failed(s, EINVAL, "forward to %s: a client send takes no identity", s->endpoint);
    size_t len = zmq_msg_size(frame);
    if (len > s->t->opt.max_message)
        return send_failed(s, EMSGSIZE, "not forwarded: an envelope of %zu bytes is over the %zu-byte message limit",
                           len, s->t->opt.max_message);
    char who[600];
    if (s->server && zmq_send(s->sock, identity, identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int e = errno;
        transport_identity_str(identity, identity_len, who, sizeof who);
        if (e == EHOSTUNREACH)
            return send_failed(s, e, "forward to peer %s not sent: no such peer (disconnected)", who);
        return send_failed(s, e, "forward to peer %s not sent: %s", who, zmq_strerror(e));
    }
    /* A multipart message goes whole or not at all: after the identity
     * frame was accepted, the body is queued too (same pipe). */
    if (zmq_msg_send(frame, s->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        return send_failed(s, e, "forward to %s not sent: %s", s->endpoint, zmq_strerror(e));
    }
    s->stats.sent++;
    return 0;
}

static int recv_impl(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out, zmq_msg_t *keep);

int transport_recv(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out) {
    return recv_impl(s, from, env_out, NULL);
}

int transport_recv_keep(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out, zmq_msg_t *frame) {
    zmq_msg_init(frame);
    return recv_impl(s, from, env_out, frame);
}

static int recv_impl(transport_sock_t *s, transport_from_t *from, Rlhf__Envelope **env_out, zmq_msg_t *keep) {
    *env_out = NULL;
    transport_from_t local;
    if (!from) from = &local;
    memset(from, 0, sizeof *from);
    const size_t max = s->t->opt.max_message;
    const size_t expect = s->server ? 2 : 1; /* [identity] envelope */
    zmq_msg_t m, body;
    zmq_msg_init(&body);
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        zmq_msg_close(&body);
        if (e != EAGAIN && e != EINTR) {
            set_last(s, "receive on %s: %s", s->endpoint,
                     zmq_strerror(e));
            log_error("%s", s->stats.last_error);
        }
        errno = e;
        return -1;
    }
    /* Read every frame of the message, even of a bad one: the next call
     * must start at a message boundary. Sizes are checked before anything
     * looks inside a frame. */
    char reason[300] = "";
    size_t nframes = 0, body_bytes = 0;
    for (;;) {
        size_t idx = nframes++;
        size_t sz = zmq_msg_size(&m);
        read_metadata(&m, from);
        if (s->server && idx == 0 && sz >= 1 && sz <= sizeof from->identity) {
            memcpy(from->identity, zmq_msg_data(&m), sz);
            from->identity_len = sz;
        }
        if (!reason[0] && sz > max)
            snprintf(reason, sizeof reason, "frame %zu is %zu bytes, over the %zu-byte limit", idx + 1, sz, max);
        int more = zmq_msg_more(&m);
        if (idx == expect - 1) {
            body_bytes = sz;
            zmq_msg_move(&body, &m);
        }
        zmq_msg_close(&m);
        if (!more) break;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, ZMQ_DONTWAIT) < 0) {
            /* libzmq delivers a multipart message whole; never seen. */
            zmq_msg_close(&m);
            if (!reason[0]) snprintf(reason, sizeof reason, "message ended early: %s", zmq_strerror(errno));
            break;
        }
    }
    from->bytes = body_bytes;
    Rlhf__Envelope *env = NULL;
    if (!reason[0] && nframes != expect)
        snprintf(reason, sizeof reason, "%zu frames, expected %s", nframes,
                 s->server ? "2 (identity, envelope)" : "1 (envelope)");
    if (!reason[0]) {
        char err[256];
        env = wire_decode(zmq_msg_data(&body), body_bytes, max, err, sizeof err);
        if (!env) snprintf(reason, sizeof reason, "bad envelope (%zu bytes): %s", body_bytes, err);
    }
    if (env && keep)
        zmq_msg_move(keep, &body);
    zmq_msg_close(&body);
    if (!env) {
        char who[600];
        transport_identity_str(from->identity, from->identity_len, who, sizeof who);
        s->stats.dropped++;
        set_last(s, "dropped a message from %s%s%s%s%s on %s: %s",
                 s->server ? who : "the server", from->peer_address[0] ? " at " : "", from->peer_address,
                 from->user_id[0] ? " key " : "", from->user_id, s->endpoint, reason);
        log_warn("%s", s->stats.last_error);
        return -2;
    }
    s->stats.received++;
    *env_out = env;
    return 0;
}

/* wire.c - see wire.h. Validation walks the message the way the schema nests
 * it and carries the path ("labeled_batch.items[2].label") so the first fault
 * is reported with the field's full name. */
#include "wire.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* Longest path a validator builds: nesting is at most four deep. */
#define PATH_MAX_LEN 160

/* ---- validation context ---------------------------------------------- */

typedef struct {
    char *err;
    size_t errlen;
} vctx_t;

/* Reports "<path>.<field>: <what>" (or "<field>: ..." at the top level) and
 * returns -1, so checks read `if (bad) return fail(...)`. */
static int fail(vctx_t *v, const char *path, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(vctx_t *v, const char *path, const char *field, const char *fmt, ...) {
    if (!v->err || v->errlen == 0) return -1;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(v->err, v->errlen, "%s%s%s: %s", path, *path && *field ? "." : "", field, what);
    return -1;
}

/* Builds "<path>.<field>" or "<path>.<field>[i]" (i < 0: no index) in a
 * PATH_MAX_LEN buffer; a path too long to fit ends in "...". */
static void subpath(char *out, const char *path, const char *field, long i) {
    int w;
    if (i < 0)
        w = snprintf(out, PATH_MAX_LEN, "%s%s%s", path, *path ? "." : "", field);
    else
        w = snprintf(out, PATH_MAX_LEN, "%s%s%s[%ld]", path, *path ? "." : "", field, i);
    if (w >= PATH_MAX_LEN) memcpy(out + PATH_MAX_LEN - 4, "...", 4);
}

static int need_has(vctx_t *v, const char *path, const char *field, protobuf_c_boolean has) {
    return has ? 0 : fail(v, path, field, "missing");
}

/* An id the coordinator assigned: present and nonzero (SQLite rowids). */
static int need_id(vctx_t *v, const char *path, const char *field, protobuf_c_boolean has, uint64_t id) {
    if (!has) return fail(v, path, field, "missing");
    if (id == 0) return fail(v, path, field, "must be > 0");
    return 0;
}

static int need_pos(vctx_t *v, const char *path, const char *field, protobuf_c_boolean has, uint64_t x) {
    if (!has) return fail(v, path, field, "missing");
    if (x == 0) return fail(v, path, field, "must be >= 1");
    return 0;
}

/* A name (peer id, env id, metric name): printed in logs and used as a key,
 * so it must be nonempty, short and free of control characters (a newline
 * in a peer id would forge log lines). Bytes >= 0x80 (UTF-8) are allowed:
 * labelers are people with names. */
static int check_name(vctx_t *v, const char *path, const char *field, const char *s, int required) {
    if (!s) return required ? fail(v, path, field, "missing") : 0;
    size_t n = strlen(s);
    if (n == 0) return fail(v, path, field, "empty");
    if (n > WIRE_MAX_NAME) return fail(v, path, field, "%zu bytes, longer than %d", n, WIRE_MAX_NAME);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return fail(v, path, field, "control character 0x%02x at byte %zu", c, i);
    }
    return 0;
}

/* Text (INI, reasons, details): only nonempty when required. */
static int check_text(vctx_t *v, const char *path, const char *field, const char *s, int required) {
    if (!required) return 0;
    if (!s) return fail(v, path, field, "missing");
    if (!*s) return fail(v, path, field, "empty");
    return 0;
}

/* expected = a * b * c, or -1 with an error naming the expression when it
 * overflows (hostile dimensions must not wrap into a matching length). */
static int product(vctx_t *v, const char *path, const char *field, const char *expr,
                   uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
    uint64_t ab;
    if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, out))
        return fail(v, path, field, "%s overflows", expr);
    return 0;
}

static int check_len(vctx_t *v, const char *path, const char *field, size_t n, const char *expr,
                     uint64_t expected) {
    if ((uint64_t)n != expected)
        return fail(v, path, field, "length %zu, expected %s = %" PRIu64, n, expr, expected);
    return 0;
}

/* A length that is either 0 (not sent) or exactly expected. */
static int check_len_opt(vctx_t *v, const char *path, const char *field, size_t n, const char *expr,
                         uint64_t expected) {
    if (n != 0 && (uint64_t)n != expected)
        return fail(v, path, field, "length %zu, expected 0 or %s = %" PRIu64, n, expr, expected);
    return 0;
}

/* ---- enum names ------------------------------------------------------- */

typedef struct {
    int value;
    const char *name;
} wire_name_t;

static const wire_name_t peer_kind_names[] = {
    {RLHF__PEER_KIND__PEER_ROLLOUT, "rollout"},
    {RLHF__PEER_KIND__PEER_LEARNER, "learner"},
    {RLHF__PEER_KIND__PEER_LABELER, "labeler"},
    {0, NULL}};
static const wire_name_t query_kind_names[] = {
    {RLHF__QUERY_KIND__QUERY_PAIR, "pair"},
    {RLHF__QUERY_KIND__QUERY_RATING, "rating"},
    {RLHF__QUERY_KIND__QUERY_RANKING, "ranking"},
    {0, NULL}};
static const wire_name_t preference_names[] = {
    {RLHF__PREFERENCE__PREF_LEFT, "left"},
    {RLHF__PREFERENCE__PREF_RIGHT, "right"},
    {RLHF__PREFERENCE__PREF_EQUAL, "equal"},
    {RLHF__PREFERENCE__PREF_CANT_TELL, "cant_tell"},
    {0, NULL}};
static const wire_name_t model_kind_names[] = {
    {RLHF__MODEL_KIND__MODEL_POLICY, "policy"},
    {RLHF__MODEL_KIND__MODEL_REWARD, "reward"},
    {0, NULL}};
static const wire_name_t ack_status_names[] = {
    {RLHF__ACK_STATUS__ACK_STORED, "stored"},
    {RLHF__ACK_STATUS__ACK_DUPLICATE, "duplicate"},
    {RLHF__ACK_STATUS__ACK_UNKNOWN_QUERY, "unknown_query"},
    {RLHF__ACK_STATUS__ACK_REJECTED, "rejected"},
    {0, NULL}};
static const wire_name_t error_code_names[] = {
    {RLHF__ERROR_CODE__ERR_BAD_MESSAGE, "bad_message"},
    {RLHF__ERROR_CODE__ERR_VERSION, "version"},
    {RLHF__ERROR_CODE__ERR_NOT_REGISTERED, "not_registered"},
    {RLHF__ERROR_CODE__ERR_CONFIG_MISMATCH, "config_mismatch"},
    {RLHF__ERROR_CODE__ERR_UNKNOWN_ID, "unknown_id"},
    {RLHF__ERROR_CODE__ERR_FORBIDDEN, "forbidden"},
    {RLHF__ERROR_CODE__ERR_OVERLOADED, "overloaded"},
    {RLHF__ERROR_CODE__ERR_TOO_LARGE, "too_large"},
    {RLHF__ERROR_CODE__ERR_INTERNAL, "internal"},
    {0, NULL}};

static const char *name_of(const wire_name_t *t, int value) {
    for (; t->name; t++)
        if (t->value == value) return t->name;
    return NULL;
}

static int parse_name(const wire_name_t *t, const char *what, const char *name, int *out, char *err,
                      size_t errlen) {
    for (const wire_name_t *p = t; p->name; p++) {
        if (name && strcmp(p->name, name) == 0) {
            *out = p->value;
            return 0;
        }
    }
    char list[256] = "";
    size_t used = 0;
    for (const wire_name_t *p = t; p->name && used < sizeof list; p++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", p == t ? "" : ", ", p->name);
        if (w < 0) break;
        used += (size_t)w;
    }
    err_set(err, errlen, "unknown %s '%s' (expected one of: %s)", what, name ? name : "(null)", list);
    return -1;
}

#define NAME_FUNCS(prefix, type, table, what)                                                   \
    const char *wire_##prefix##_name(type v) { return name_of(table, (int)v); }                \
    int wire_##prefix##_parse(const char *name, type *out, char *err, size_t errlen) {         \
        int x;                                                                                  \
        if (parse_name(table, what, name, &x, err, errlen) != 0) return -1;                     \
        *out = (type)x;                                                                         \
        return 0;                                                                               \
    }

NAME_FUNCS(peer_kind, Rlhf__PeerKind, peer_kind_names, "peer kind")
NAME_FUNCS(query_kind, Rlhf__QueryKind, query_kind_names, "query kind")
NAME_FUNCS(preference, Rlhf__Preference, preference_names, "preference")
NAME_FUNCS(model_kind, Rlhf__ModelKind, model_kind_names, "model kind")
NAME_FUNCS(ack_status, Rlhf__AckStatus, ack_status_names, "ack status")
NAME_FUNCS(error_code, Rlhf__ErrorCode, error_code_names, "error code")

/* An enum field: present and a value the schema names (protobuf-c stores
 * unknown values as they came). */
static int check_enum(vctx_t *v, const char *path, const char *field, protobuf_c_boolean has, int value,
                      const wire_name_t *table) {
    if (!has) return fail(v, path, field, "missing");
    if (!name_of(table, value)) return fail(v, path, field, "invalid value %d", value);
    return 0;
}

const char *wire_body_name(Rlhf__Envelope__BodyCase body) {
    if (body == RLHF__ENVELOPE__BODY__NOT_SET) return NULL;
    /* The oneof members' field numbers are the case values, and their names
     * are the schema's: one source of truth. */
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&rlhf__envelope__descriptor, (unsigned)body);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return NULL;
    return f->name;
}

/* ---- hash ------------------------------------------------------------- */

uint64_t wire_hash64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- per-message validators ------------------------------------------- */

static int check_job_config(vctx_t *v, const char *path, const Rlhf__JobConfig *m) {
    if (check_text(v, path, "ini", m->ini, 1)) return -1;
    if (!m->has_hash) return fail(v, path, "hash", "missing");
    uint64_t h = wire_hash64(m->ini, strlen(m->ini));
    if (m->hash != h)
        return fail(v, path, "hash", "0x%016" PRIx64 " does not match the ini text (0x%016" PRIx64 ")", m->hash,
                    h);
    return 0;
}

static int check_register(vctx_t *v, const char *path, const Rlhf__Register *m, const char *sender) {
    if (check_enum(v, path, "kind", m->has_kind, (int)m->kind, peer_kind_names)) return -1;
    if (check_name(v, path, "peer_id", m->peer_id, 1)) return -1;
    /* One peer cannot register another: the ROUTER routes replies by the
     * connection, and the registry keys it by this id. */
    if (strcmp(m->peer_id, sender) != 0)
        return fail(v, path, "peer_id", "'%s' differs from the envelope's sender '%s'", m->peer_id, sender);
    if (need_id(v, path, "incarnation", m->has_incarnation, m->incarnation)) return -1;
    if (check_name(v, path, "host", m->host, 0)) return -1;
    if (!m->caps) return fail(v, path, "caps", "missing");
    char cp[PATH_MAX_LEN], ip[PATH_MAX_LEN];
    subpath(cp, path, "caps", -1);
    const Rlhf__Capabilities *c = m->caps;
    for (size_t i = 0; i < c->n_env_ids; i++) {
        subpath(ip, cp, "env_ids", (long)i);
        if (check_name(v, ip, "", c->env_ids[i], 1)) return -1;
    }
    for (size_t i = 0; i < c->n_features; i++) {
        subpath(ip, cp, "features", (long)i);
        if (check_name(v, ip, "", c->features[i], 1)) return -1;
    }
    for (size_t i = 0; i < c->n_query_kinds; i++) {
        if (!name_of(query_kind_names, (int)c->query_kinds[i])) {
            subpath(ip, cp, "query_kinds", (long)i);
            return fail(v, ip, "", "invalid value %d", (int)c->query_kinds[i]);
        }
    }
    switch (m->kind) {
    case RLHF__PEER_KIND__PEER_ROLLOUT:
        /* Absent: the worker runs what the job says (it learns the job from
         * the Welcome this Register asks for). */
        if (c->has_n_envs && c->n_envs == 0) return fail(v, cp, "n_envs", "must be >= 1");
        return 0;
    case RLHF__PEER_KIND__PEER_LEARNER:
        return need_pos(v, cp, "n_ranks", c->has_n_ranks, c->n_ranks);
    case RLHF__PEER_KIND__PEER_LABELER:
        if (c->n_query_kinds == 0) return fail(v, cp, "query_kinds", "empty for a labeler");
        return 0;
    default:
        return 0;
    }
}

static int check_welcome(vctx_t *v, const char *path, const Rlhf__Welcome *m) {
    if (check_name(v, path, "peer_id", m->peer_id, 1)) return -1;
    if (need_id(v, path, "incarnation", m->has_incarnation, m->incarnation)) return -1;
    if (check_name(v, path, "run_id", m->run_id, 1)) return -1;
    if (!m->job) return fail(v, path, "job", "missing");
    char jp[PATH_MAX_LEN];
    subpath(jp, path, "job", -1);
    if (check_job_config(v, jp, m->job)) return -1;
    if (need_pos(v, path, "heartbeat_interval_ms", m->has_heartbeat_interval_ms, m->heartbeat_interval_ms))
        return -1;
    if (need_pos(v, path, "heartbeat_liveness", m->has_heartbeat_liveness, m->heartbeat_liveness)) return -1;
    if (need_has(v, path, "seed", m->has_seed)) return -1;
    return 0;
}

static int check_heartbeat(vctx_t *v, const char *path, const Rlhf__Heartbeat *m) {
    if (need_has(v, path, "seq", m->has_seq)) return -1;
    if (m->has_load && !(isfinite(m->load) && m->load >= 0))
        return fail(v, path, "load", "%g, expected a finite value >= 0", (double)m->load);
    return 0;
}

static int check_weights(vctx_t *v, const char *path, const Rlhf__Weights *m) {
    if (check_enum(v, path, "model", m->has_model, (int)m->model, model_kind_names)) return -1;
    if (need_has(v, path, "version", m->has_version)) return -1;
    if (need_pos(v, path, "total_len", m->has_total_len, m->total_len)) return -1;
    if (need_pos(v, path, "chunk_count", m->has_chunk_count, m->chunk_count)) return -1;
    if (!m->has_chunk_index) return fail(v, path, "chunk_index", "missing");
    if (m->chunk_index >= m->chunk_count)
        return fail(v, path, "chunk_index", "%" PRIu32 ", expected < chunk_count = %" PRIu32, m->chunk_index,
                    m->chunk_count);
    if (!m->has_offset) return fail(v, path, "offset", "missing");
    if (!m->has_checksum) return fail(v, path, "checksum", "missing");
    if (m->n_data == 0) return fail(v, path, "data", "empty");
    if (m->offset > m->total_len || m->n_data > m->total_len - m->offset)
        return fail(v, path, "data", "offset %" PRIu64 " + length %zu exceeds total_len = %" PRIu64, m->offset,
                    m->n_data, m->total_len);
    if (m->chunk_index == 0 && m->offset != 0)
        return fail(v, path, "offset", "%" PRIu64 " in chunk 0, expected 0", m->offset);
    if (m->chunk_index + 1 == m->chunk_count && m->offset + m->n_data != m->total_len)
        return fail(v, path, "data", "last chunk ends at %" PRIu64 ", expected total_len = %" PRIu64,
                    m->offset + (uint64_t)m->n_data, m->total_len);
    /* With one chunk the whole tensor is here: check it now. Chunked tensors
     * are checked by whoever reassembles them. */
    if (m->chunk_count == 1) {
        uint64_t h = wire_hash64(m->data, m->n_data * sizeof(float));
        if (h != m->checksum)
            return fail(v, path, "checksum", "0x%016" PRIx64 " does not match the data (0x%016" PRIx64 ")",
                        m->checksum, h);
    }
    return 0;
}

static int check_trajectory_batch(vctx_t *v, const char *path, const Rlhf__TrajectoryBatch *m) {
    if (check_name(v, path, "worker_id", m->worker_id, 1)) return -1;
    if (need_has(v, path, "batch_seq", m->has_batch_seq)) return -1;
    if (need_has(v, path, "policy_version", m->has_policy_version)) return -1;
    if (check_name(v, path, "env_id", m->env_id, 1)) return -1;
    if (need_pos(v, path, "n_envs", m->has_n_envs, m->n_envs)) return -1;
    if (need_pos(v, path, "steps", m->has_steps, m->steps)) return -1;
    if (need_pos(v, path, "obs_dim", m->has_obs_dim, m->obs_dim)) return -1;
    if (need_pos(v, path, "act_dim", m->has_act_dim, m->act_dim)) return -1;
    uint64_t e;
    if (product(v, path, "obs", "steps*n_envs*obs_dim", m->steps, m->n_envs, m->obs_dim, &e) ||
        check_len(v, path, "obs", m->n_obs, "steps*n_envs*obs_dim", e))
        return -1;
    if (product(v, path, "actions", "steps*n_envs*act_dim", m->steps, m->n_envs, m->act_dim, &e) ||
        check_len(v, path, "actions", m->n_actions, "steps*n_envs*act_dim", e))
        return -1;
    uint64_t tn = (uint64_t)m->steps * m->n_envs; /* two uint32: cannot overflow */
    if (check_len(v, path, "logp", m->n_logp, "steps*n_envs", tn)) return -1;
    if (check_len_opt(v, path, "values", m->n_values, "steps*n_envs", tn)) return -1;
    if (check_len(v, path, "true_rewards", m->n_true_rewards, "steps*n_envs", tn)) return -1;
    if (check_len(v, path, "ends", m->has_ends ? m->ends.len : 0, "steps*n_envs", tn)) return -1;
    /* One byte per step: running, terminated or truncated (a time-limit
     * end). Branch-free over the whole array; the first bad byte is looked
     * for only when there is one. */
    uint64_t n_trunc = 0;
    unsigned bad = 0;
    for (size_t i = 0; i < m->ends.len; i++) {
        uint8_t e = m->ends.data[i];
        bad |= e > WIRE_END_TRUNCATED;
        n_trunc += e == WIRE_END_TRUNCATED;
    }
    if (bad)
        for (size_t i = 0; i < m->ends.len; i++)
            if (m->ends.data[i] > WIRE_END_TRUNCATED) {
                char ip[PATH_MAX_LEN];
                subpath(ip, path, "ends", (long)i);
                return fail(v, ip, "", "%u, expected 0 (running), 1 (terminated) or 2 (truncated)",
                            (unsigned)m->ends.data[i]);
            }
    uint32_t rd = m->has_render_dim ? m->render_dim : 0;
    if (product(v, path, "render_states", "steps*n_envs*render_dim", m->steps, m->n_envs, rd, &e)) return -1;
    if (rd == 0 && m->n_render_states != 0)
        return fail(v, path, "render_states", "length %zu, expected 0 with render_dim = 0", m->n_render_states);
    if (check_len(v, path, "render_states", m->n_render_states, "steps*n_envs*render_dim", e)) return -1;
    if (check_len_opt(v, path, "last_obs", m->n_last_obs, "n_envs*obs_dim", (uint64_t)m->n_envs * m->obs_dim))
        return -1;
    if (check_len_opt(v, path, "last_values", m->n_last_values, "n_envs", m->n_envs)) return -1;
    /* The normalised views: all present (a learner trains on them) or all
     * absent. n_trunc <= steps*n_envs, so its product cannot overflow when
     * the obs product did not. */
    if (product(v, path, "obs_norm", "steps*n_envs*obs_dim", m->steps, m->n_envs, m->obs_dim, &e)) return -1;
    if (m->n_obs_norm != 0) {
        if (check_len(v, path, "obs_norm", m->n_obs_norm, "steps*n_envs*obs_dim", e)) return -1;
        if (check_len(v, path, "final_obs_norm", m->n_final_obs_norm, "(steps with ends = 2)*obs_dim",
                      n_trunc * m->obs_dim))
            return -1;
        if (check_len(v, path, "last_obs_norm", m->n_last_obs_norm, "n_envs*obs_dim", (uint64_t)m->n_envs * m->obs_dim))
            return -1;
    } else {
        if (m->n_final_obs_norm) return fail(v, path, "final_obs_norm", "set without obs_norm");
        if (m->n_last_obs_norm) return fail(v, path, "last_obs_norm", "set without obs_norm");
    }
    if (m->has_episodes && m->episodes > tn)
        return fail(v, path, "episodes", "%" PRIu32 " is more than steps*n_envs = %" PRIu64, m->episodes, tn);
    if (m->has_return_sum && !isfinite(m->return_sum)) return fail(v, path, "return_sum", "not finite");
    return 0;
}

static int check_segment(vctx_t *v, const char *path, const Rlhf__Segment *m) {
    if (need_id(v, path, "id", m->has_id, m->id)) return -1;
    if (check_name(v, path, "env_id", m->env_id, 1)) return -1;
    if (need_has(v, path, "source_policy_version", m->has_source_policy_version)) return -1;
    if (check_name(v, path, "source_worker", m->source_worker, 0)) return -1;
    if (need_pos(v, path, "length", m->has_length, m->length)) return -1;
    if (need_pos(v, path, "obs_dim", m->has_obs_dim, m->obs_dim)) return -1;
    if (need_pos(v, path, "act_dim", m->has_act_dim, m->act_dim)) return -1;
    uint64_t len = m->length;
    if (check_len(v, path, "obs", m->n_obs, "length*obs_dim", len * m->obs_dim)) return -1;
    if (check_len(v, path, "actions", m->n_actions, "length*act_dim", len * m->act_dim)) return -1;
    if (check_len(v, path, "true_rewards", m->n_true_rewards, "length", len)) return -1;
    if (check_len(v, path, "absorbing", m->n_absorbing, "length", len)) return -1;
    uint32_t rd = m->has_render_dim ? m->render_dim : 0;
    if (rd == 0 && m->n_render_states != 0)
        return fail(v, path, "render_states", "length %zu, expected 0 with render_dim = 0", m->n_render_states);
    if (check_len(v, path, "render_states", m->n_render_states, "length*render_dim", len * rd)) return -1;
    return 0;
}

/* The number of segments a query of this kind shows, or 0 for a ranking
 * (whose count is its k). */
static size_t segments_for(Rlhf__QueryKind kind) {
    return kind == RLHF__QUERY_KIND__QUERY_PAIR ? 2 : kind == RLHF__QUERY_KIND__QUERY_RATING ? 1 : 0;
}

static int check_query(vctx_t *v, const char *path, const Rlhf__Query *m) {
    if (need_id(v, path, "id", m->has_id, m->id)) return -1;
    if (check_enum(v, path, "kind", m->has_kind, (int)m->kind, query_kind_names)) return -1;
    size_t want = segments_for(m->kind);
    if (want == 0) {
        if (!m->has_k) return fail(v, path, "k", "missing for a ranking");
        if (m->k < 2 || m->k > WIRE_MAX_RANK_K)
            return fail(v, path, "k", "%" PRIu32 " is outside 2..%d", m->k, WIRE_MAX_RANK_K);
        if (check_len(v, path, "segment_ids", m->n_segment_ids, "k", m->k)) return -1;
    } else {
        const char *what = want == 2 ? "2 for a pair" : "1 for a rating";
        if (m->n_segment_ids != want)
            return fail(v, path, "segment_ids", "length %zu, expected %s", m->n_segment_ids, what);
        if (m->has_k && m->k != want) return fail(v, path, "k", "%" PRIu32 ", expected %s", m->k, what);
    }
    char ip[PATH_MAX_LEN];
    for (size_t i = 0; i < m->n_segment_ids; i++) {
        subpath(ip, path, "segment_ids", (long)i);
        if (m->segment_ids[i] == 0) return fail(v, ip, "", "must be > 0");
        for (size_t j = 0; j < i; j++)
            if (m->segment_ids[j] == m->segment_ids[i])
                return fail(v, ip, "", "%" PRIu64 " repeats segment_ids[%zu]", m->segment_ids[i], j);
    }
    if (m->has_selection_score && !isfinite(m->selection_score))
        return fail(v, path, "selection_score", "not finite");
    if (m->n_segments != 0 && m->n_segments != m->n_segment_ids)
        return fail(v, path, "segments", "length %zu, expected 0 or the number of segment_ids = %zu",
                    m->n_segments, m->n_segment_ids);
    for (size_t i = 0; i < m->n_segments; i++) {
        subpath(ip, path, "segments", (long)i);
        if (!m->segments[i]) return fail(v, ip, "", "missing");
        if (check_segment(v, ip, m->segments[i])) return -1;
        if (m->segments[i]->id != m->segment_ids[i])
            return fail(v, ip, "id", "%" PRIu64 ", expected segment_ids[%zu] = %" PRIu64, m->segments[i]->id, i,
                        m->segment_ids[i]);
    }
    return 0;
}

static int check_label(vctx_t *v, const char *path, const Rlhf__Label *m) {
    if (need_id(v, path, "query_id", m->has_query_id, m->query_id)) return -1;
    if (check_name(v, path, "labeler_id", m->labeler_id, 1)) return -1;
    if (check_name(v, path, "idempotency_id", m->idempotency_id, 1)) return -1;
    if (check_enum(v, path, "kind", m->has_kind, (int)m->kind, query_kind_names)) return -1;
    const char *kind = wire_query_kind_name(m->kind);
    /* Exactly the answer for the kind: a label carrying two answers is a
     * labeler's bug, and guessing which one it meant would corrupt data. */
    int pair = m->kind == RLHF__QUERY_KIND__QUERY_PAIR;
    int rating = m->kind == RLHF__QUERY_KIND__QUERY_RATING;
    int ranking = m->kind == RLHF__QUERY_KIND__QUERY_RANKING;
    if (!pair && m->has_preference) return fail(v, path, "preference", "set on a %s label", kind);
    if (!rating && m->has_rating) return fail(v, path, "rating", "set on a %s label", kind);
    if (!ranking && m->n_ranking) return fail(v, path, "ranking", "set on a %s label", kind);
    if (m->has_cant_tell && m->cant_tell) {
        /* "Can't tell" carries no answer: one with an answer is ambiguous. */
        if (m->has_rating) return fail(v, path, "rating", "set on a can't-tell label");
        if (m->n_ranking) return fail(v, path, "ranking", "set on a can't-tell label");
        if (m->has_preference && m->preference != RLHF__PREFERENCE__PREF_CANT_TELL)
            return fail(v, path, "preference", "%s on a can't-tell label", wire_preference_name(m->preference)
                                                                                 ? wire_preference_name(m->preference)
                                                                                 : "invalid");
        pair = rating = ranking = 0;
    }
    if (pair && check_enum(v, path, "preference", m->has_preference, (int)m->preference, preference_names))
        return -1;
    if (rating) {
        if (!m->has_rating) return fail(v, path, "rating", "missing");
        if (m->rating < WIRE_RATING_MIN || m->rating > WIRE_RATING_MAX)
            return fail(v, path, "rating", "%" PRIu32 " is outside %d..%d", m->rating, WIRE_RATING_MIN,
                        WIRE_RATING_MAX);
    }
    if (ranking) {
        size_t n = m->n_ranking;
        if (n < 2 || n > WIRE_MAX_RANK_K)
            return fail(v, path, "ranking", "length %zu is outside 2..%d", n, WIRE_MAX_RANK_K);
        unsigned seen = 0; /* WIRE_MAX_RANK_K <= 32 bits */
        char ip[PATH_MAX_LEN];
        for (size_t i = 0; i < n; i++) {
            subpath(ip, path, "ranking", (long)i);
            if (m->ranking[i] >= n)
                return fail(v, ip, "", "%" PRIu32 " is outside 0..%zu (positions in the query)", m->ranking[i],
                            n - 1);
            if (seen & (1u << m->ranking[i]))
                return fail(v, ip, "", "%" PRIu32 " appears twice: not a permutation", m->ranking[i]);
            seen |= 1u << m->ranking[i];
        }
    }
    if (m->has_shown_at_us && m->has_answered_at_us && m->answered_at_us < m->shown_at_us)
        return fail(v, path, "answered_at_us", "%" PRIu64 " is before shown_at_us = %" PRIu64, m->answered_at_us,
                    m->shown_at_us);
    return 0;
}

static int check_label_ack(vctx_t *v, const char *path, const Rlhf__LabelAck *m) {
    if (need_id(v, path, "query_id", m->has_query_id, m->query_id)) return -1;
    if (check_name(v, path, "idempotency_id", m->idempotency_id, 1)) return -1;
    if (check_enum(v, path, "status", m->has_status, (int)m->status, ack_status_names)) return -1;
    if (m->status == RLHF__ACK_STATUS__ACK_STORED || m->status == RLHF__ACK_STATUS__ACK_DUPLICATE)
        return need_id(v, path, "label_id", m->has_label_id, m->label_id);
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int check_labeled_batch(vctx_t *v, const char *path, const Rlhf__LabeledBatch *m) {
    if (need_has(v, path, "batch_seq", m->has_batch_seq)) return -1;
    if (m->n_items == 0) return fail(v, path, "items", "empty");
    char ip[PATH_MAX_LEN], fp[PATH_MAX_LEN];
    for (size_t i = 0; i < m->n_segments; i++) {
        subpath(ip, path, "segments", (long)i);
        if (!m->segments[i]) return fail(v, ip, "", "missing");
        if (check_segment(v, ip, m->segments[i])) return -1;
    }
    /* Sorted ids: duplicates side by side, and lookups in O(log n) (a hostile
     * batch may hold many segments). */
    uint64_t *ids = mallocCheck((m->n_segments ? m->n_segments : 1) * sizeof *ids);
    for (size_t i = 0; i < m->n_segments; i++) ids[i] = m->segments[i]->id;
    qsort(ids, m->n_segments, sizeof *ids, cmp_u64);
    int rc = 0;
    for (size_t i = 1; i < m->n_segments && rc == 0; i++)
        if (ids[i] == ids[i - 1]) rc = fail(v, path, "segments", "segment %" PRIu64 " appears twice", ids[i]);
    for (size_t i = 0; i < m->n_items && rc == 0; i++) {
        const Rlhf__LabeledItem *it = m->items[i];
        subpath(ip, path, "items", (long)i);
        if (!it) {
            rc = fail(v, ip, "", "missing");
            break;
        }
        if (!it->query) rc = fail(v, ip, "query", "missing");
        else if (!it->label) rc = fail(v, ip, "label", "missing");
        if (rc) break;
        subpath(fp, ip, "query", -1);
        if ((rc = check_query(v, fp, it->query))) break;
        subpath(fp, ip, "label", -1);
        if ((rc = check_label(v, fp, it->label))) break;
        const Rlhf__Query *q = it->query;
        const Rlhf__Label *l = it->label;
        if (l->query_id != q->id) {
            rc = fail(v, fp, "query_id", "%" PRIu64 ", expected query.id = %" PRIu64, l->query_id, q->id);
        } else if (l->kind != q->kind) {
            rc = fail(v, fp, "kind", "%s, expected query.kind = %s", wire_query_kind_name(l->kind),
                      wire_query_kind_name(q->kind));
        } else if (l->kind == RLHF__QUERY_KIND__QUERY_RANKING && !(l->has_cant_tell && l->cant_tell) &&
                   l->n_ranking != q->k) {
            rc = check_len(v, fp, "ranking", l->n_ranking, "query.k", q->k);
        }
        if (rc) break;
        subpath(fp, ip, "query", -1);
        for (size_t j = 0; j < q->n_segment_ids && rc == 0; j++) {
            if (!bsearch(&q->segment_ids[j], ids, m->n_segments, sizeof *ids, cmp_u64)) {
                char sp[PATH_MAX_LEN];
                subpath(sp, fp, "segment_ids", (long)j);
                rc = fail(v, sp, "", "segment %" PRIu64 " is not in the batch", q->segment_ids[j]);
            }
        }
    }
    free(ids);
    return rc;
}

static int check_status(vctx_t *v, const char *path, const Rlhf__Status *m) {
    if (check_name(v, path, "phase", m->phase, 0)) return -1;
    char ip[PATH_MAX_LEN];
    for (size_t i = 0; i < m->n_metrics; i++) {
        subpath(ip, path, "metrics", (long)i);
        if (!m->metrics[i]) return fail(v, ip, "", "missing");
        if (check_name(v, ip, "name", m->metrics[i]->name, 1)) return -1;
        if (!m->metrics[i]->has_value) return fail(v, ip, "value", "missing");
    }
    for (size_t i = 0; i < m->n_counters; i++) {
        subpath(ip, path, "counters", (long)i);
        if (!m->counters[i]) return fail(v, ip, "", "missing");
        if (check_name(v, ip, "name", m->counters[i]->name, 1)) return -1;
        if (!m->counters[i]->has_value) return fail(v, ip, "value", "missing");
    }
    return 0;
}

int wire_validate(const Rlhf__Envelope *env, char *err, size_t errlen) {
    vctx_t vc = {err, errlen}, *v = &vc;
    if (err && errlen) err[0] = '\0';
    if (!env) return fail(v, "", "envelope", "missing");
    if (!env->has_schema_version) return fail(v, "", "schema_version", "missing");
    if (env->schema_version != WIRE_SCHEMA_VERSION)
        return fail(v, "", "schema_version", "%" PRIu32 ", this build speaks %" PRIu32, env->schema_version,
                    WIRE_SCHEMA_VERSION);
    if (check_name(v, "", "sender", env->sender, 1)) return -1;
    if (need_has(v, "", "seq", env->has_seq)) return -1;
    if (env->body_case == RLHF__ENVELOPE__BODY__NOT_SET) return fail(v, "", "body", "missing (no message set)");
    const char *path = wire_body_name(env->body_case);
    if (!path) return fail(v, "", "body", "unknown case %d", (int)env->body_case);
    /* Every body member is a pointer in the same union; a case without its
     * message only happens in a hand-built envelope. */
    if (!env->register_) return fail(v, "", path, "missing (body case set, message NULL)");
    switch (env->body_case) {
    case RLHF__ENVELOPE__BODY_REGISTER: return check_register(v, path, env->register_, env->sender);
    case RLHF__ENVELOPE__BODY_WELCOME: return check_welcome(v, path, env->welcome);
    case RLHF__ENVELOPE__BODY_HEARTBEAT: return check_heartbeat(v, path, env->heartbeat);
    case RLHF__ENVELOPE__BODY_JOB_CONFIG: return check_job_config(v, path, env->job_config);
    case RLHF__ENVELOPE__BODY_WEIGHTS: return check_weights(v, path, env->weights);
    case RLHF__ENVELOPE__BODY_TRAJECTORY_BATCH: return check_trajectory_batch(v, path, env->trajectory_batch);
    case RLHF__ENVELOPE__BODY_SEGMENT: return check_segment(v, path, env->segment);
    case RLHF__ENVELOPE__BODY_QUERY: return check_query(v, path, env->query);
    case RLHF__ENVELOPE__BODY_LABEL: return check_label(v, path, env->label);
    case RLHF__ENVELOPE__BODY_LABEL_ACK: return check_label_ack(v, path, env->label_ack);
    case RLHF__ENVELOPE__BODY_LABELED_BATCH: return check_labeled_batch(v, path, env->labeled_batch);
    case RLHF__ENVELOPE__BODY_STATUS: return check_status(v, path, env->status);
    case RLHF__ENVELOPE__BODY_SHUTDOWN: return check_text(v, path, "reason", env->shutdown->reason, 1);
    case RLHF__ENVELOPE__BODY_ERROR:
        if (check_enum(v, path, "code", env->error->has_code, (int)env->error->code, error_code_names)) return -1;
        return check_text(v, path, "text", env->error->text, 1);
    case RLHF__ENVELOPE__BODY_ACK: return need_has(v, path, "seq", env->ack->has_seq);
    default: return fail(v, "", "body", "unknown case %d", (int)env->body_case);
    }
}

/* ---- pack / unpack ---------------------------------------------------- */

void wire_envelope_init(Rlhf__Envelope *env, const char *sender, uint64_t seq) {
    rlhf__envelope__init(env);
    env->has_schema_version = 1;
    env->schema_version = WIRE_SCHEMA_VERSION;
    env->sender = (char *)sender; /* packing only reads it */
    env->has_seq = 1;
    env->seq = seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    env->has_sent_at_us = 1;
    env->sent_at_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint8_t *wire_pack(const Rlhf__Envelope *env, size_t *len, char *err, size_t errlen) {
    *len = 0;
    if (wire_validate(env, err, errlen) != 0) return NULL;
    size_t n = rlhf__envelope__get_packed_size(env);
    /* protobuf-c writes lengths as 32-bit varints: past 2 GiB it would emit
     * bytes no peer can decode. */
    if (n > WIRE_MAX_PACKED) {
        err_set(err, errlen, "%s message of %zu bytes exceeds the protobuf limit of %zu bytes (send weights in chunks)",
                wire_body_name(env->body_case), n, WIRE_MAX_PACKED);
        return NULL;
    }
    uint8_t *buf = mallocCheck(n);
    size_t w = rlhf__envelope__pack(env, buf);
    if (w != n) { /* cannot happen with a consistent message; guards the buffer */
        free(buf);
        err_set(err, errlen, "packing produced %zu bytes, expected %zu", w, n);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Finds an unknown field whose number protobuf forbids (0, or above
 * 2^29 - 1) in m or any message inside it; returns that message's name.
 * protobuf-c accepts field number 0 when the tag is an over-long varint
 * (0x82 0x00), keeps it as an unknown field, and packs it back in the short
 * form (0x02) that it then refuses to decode: what a process accepts, it
 * could not forward. Found by tests/fuzz/fuzz_wire.c. */
static const char *bad_field_number(const ProtobufCMessage *m, uint32_t *tag) {
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        uint32_t t = m->unknown_fields[i].tag;
        if (t == 0 || t > 536870911u) {
            *tag = t;
            return m->descriptor->name;
        }
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *member = (const char *)m + f->offset;
        const char *bad = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *sub = *(ProtobufCMessage *const *const *)member;
            for (size_t j = 0; j < n && !bad; j++)
                if (sub[j]) bad = bad_field_number(sub[j], tag);
        } else {
            /* Oneof members share one pointer: only the set case is this type. */
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
                continue;
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)member;
            if (sub) bad = bad_field_number(sub, tag);
        }
        if (bad) return bad;
    }
    return NULL;
}

/* protobuf-c's allocator hook, with a budget (wire.h: WIRE_DECODE_FACTOR).
 * Blocks come from malloc, so wire_free() releases them with protobuf-c's
 * default allocator. Freed scratch blocks are not credited back: the count
 * is an upper bound, which is what a budget needs. */
typedef struct {
    size_t used, budget;
    int exhausted;
} budget_t;

static void *budget_alloc(void *data, size_t size) {
    budget_t *b = data;
    if (size > b->budget - b->used) {
        b->exhausted = 1;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p) b->used += size;
    return p;
}

static void budget_free(void *data, void *p) {
    (void)data;
    free(p);
}

Rlhf__Envelope *wire_unpack(const void *buf, size_t len, size_t max, char *err, size_t errlen) {
    if (max == 0) max = WIRE_MAX_MESSAGE_DEFAULT;
    /* Before decoding: protobuf-c allocates for what the bytes claim, so an
     * oversized message must cost nothing. */
    if (len > max) {
        err_set(err, errlen, "message of %zu bytes exceeds the limit of %zu bytes", len, max);
        return NULL;
    }
    if (!buf && len > 0) {
        err_set(err, errlen, "message buffer is NULL");
        return NULL;
    }
    static const uint8_t empty[1];
    budget_t budget = {0, WIRE_DECODE_SLACK, 0};
    if (len > (SIZE_MAX - WIRE_DECODE_SLACK) / WIRE_DECODE_FACTOR)
        budget.budget = SIZE_MAX;
    else
        budget.budget += len * WIRE_DECODE_FACTOR;
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &budget};
    Rlhf__Envelope *env = rlhf__envelope__unpack(&alloc, len, buf ? buf : empty);
    if (!env && budget.exhausted) {
        err_set(err, errlen,
                "cannot decode a %zu-byte message as rlhf.Envelope: it would take more than %zu bytes of memory "
                "(%dx its size + %zu KiB): refused",
                len, budget.budget, WIRE_DECODE_FACTOR, WIRE_DECODE_SLACK >> 10);
        return NULL;
    }
    if (!env) {
        /* protobuf-c says nothing about why; these are the only causes. */
        err_set(err, errlen,
                "cannot decode a %zu-byte message as rlhf.Envelope: malformed protobuf (truncated, a bad tag "
                "or wire type, an over-long varint, or a field over 2 GiB) or out of memory",
                len);
        return NULL;
    }
    uint32_t tag = 0;
    const char *where = bad_field_number(&env->base, &tag);
    if (where) {
        err_set(err, errlen,
                "cannot decode a %zu-byte message as rlhf.Envelope: malformed protobuf (field number %" PRIu32
                " in a %s is outside 1..536870911)",
                len, tag, where);
        wire_free(&env);
        return NULL;
    }
    return env;
}

Rlhf__Envelope *wire_decode(const void *buf, size_t len, size_t max, char *err, size_t errlen) {
    Rlhf__Envelope *env = wire_unpack(buf, len, max, err, errlen);
    if (!env) return NULL;
    if (wire_validate(env, err, errlen) != 0) {
        wire_free(&env);
        return NULL;
    }
    return env;
}

void wire_free(Rlhf__Envelope **env_p) {
    if (!env_p || !*env_p) return;
    rlhf__envelope__free_unpacked(*env_p, NULL);
    *env_p = NULL;
}

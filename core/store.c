/* store.c - see store.h. SQLite underneath; in memory, arrays indexed by
 * (id - first id) and an open-addressing hash table from idempotency id to
 * label, rebuilt from the database at store_open(). Every SQL write happens
 * before the in-memory copy changes, so a failed commit leaves both as they
 * were. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "util.h"

typedef struct {
    float *obs, *act, *r, *render;
    protobuf_c_boolean *absorbing;
} seg_t;

typedef struct {
    Rlhf__Envelope *env;    /* owns the label copy */
    int round_done, retracted;
    uint64_t answered, hold_until_us, created_us;
    char answer[STORE_ANSWER_MAX];
} label_rec_t;

/* What a transaction may undo in the in-memory copy. */
typedef struct {
    size_t n_segs, n_queries;
    int active;
    int lazy;                       /* store_begin_lazy(): only lease and skip writes */
} txn_t;

/* PRAGMA synchronous levels (SQLite's numbers). */
enum { SYNC_NORMAL = 1, SYNC_FULL = 2 };

struct store {
    sqlite3 *db;
    int persistent;
    char env_id[WIRE_MAX_NAME + 1];
    char render_kind[64];
    int T, obs_dim, act_dim, render_dim;
    uint64_t seg_base, query_base;  /* ids base + 1 + index */
    seg_t *segs;
    size_t n_segs, cap_segs;
    store_query_t *queries;
    size_t n_queries, cap_queries;
    uint64_t label_base;
    label_rec_t *labels;
    size_t n_labels, cap_labels;
    size_t *slots;                  /* hash table: label index + 1; 0 = empty */
    size_t n_slots;                 /* a power of two, at most half full */
    txn_t txn;
    int sync;                       /* the connection's PRAGMA synchronous now */
    int fail_commits;
    /* Prepared statements. */
    sqlite3_stmt *ins_seg, *ins_query, *ins_label, *upd_query, *ins_lease, *del_lease, *del_leases_q, *retract,
        *ins_skip;
};

static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS segments(id INTEGER PRIMARY KEY, env_id TEXT, length INT, obs_dim INT,"
    " act_dim INT, render_dim INT, obs BLOB, actions BLOB, true_rewards BLOB, absorbing BLOB,"
    " render_states BLOB, source_worker TEXT, source_policy_version INT, created_us INT);"
    "CREATE TABLE IF NOT EXISTS queries(id INTEGER PRIMARY KEY, kind INT, k INT, seg_ids TEXT, score REAL,"
    " created_us INT, answers_wanted INT, answers INT, state TEXT, teacher TEXT);"
    "CREATE TABLE IF NOT EXISTS leases(query_id INT, labeler TEXT, deadline_us INT,"
    " PRIMARY KEY(query_id, labeler));"
    "CREATE TABLE IF NOT EXISTS labels(id INTEGER PRIMARY KEY, idempotency_id TEXT UNIQUE, query_id INT,"
    " labeler TEXT, kind INT, preference INT, rating INT, ranking TEXT, cant_tell INT, shown_at_us INT,"
    " answered_at_us INT, time_spent_ms INT, retracted INT DEFAULT 0, created_us INT, answer TEXT,"
    " round_done INT, answered_total INT, hold_until_us INT);"
    "CREATE TABLE IF NOT EXISTS labelers(name TEXT PRIMARY KEY, token_hash TEXT, created_us INT,"
    " disabled INT DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS skips(query_id INT, labeler TEXT, created_us INT, PRIMARY KEY(query_id, labeler));"
    "CREATE INDEX IF NOT EXISTS labels_query ON labels(query_id);"
    "CREATE INDEX IF NOT EXISTS queries_state ON queries(state);";

static int exec(store_t *s, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, errlen, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Sets the connection's PRAGMA synchronous for the next commits (SQLite
 * refuses to change it inside a transaction, so callers set it before
 * BEGIN or an autocommit statement). In WAL mode, FULL syncs the WAL at
 * every commit (it survives a power failure); NORMAL syncs it only at
 * checkpoints: a commit survives a crash of the process (the OS has the
 * write) but may be lost with the machine's power. Run once per change. */
static int set_sync(store_t *s, int level, char *err, size_t errlen) {
    if (s->sync == level) return 0;
    if (exec(s, level == SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err, errlen) != 0)
        return -1;
    s->sync = level;
    return 0;
}

/* Before a write: outside a transaction, its autocommit gets level; inside
 * one, a durable write (level FULL) in a lazy transaction is refused. */
static int write_level(store_t *s, int level, char *err, size_t errlen) {
    if (!s->txn.active) return set_sync(s, level, err, errlen);
    if (level == SYNC_FULL && s->txn.lazy) {
        err_set(err, errlen, "a durable write inside a lazy transaction (store_begin_lazy)");
        return -1;
    }
    return 0;
}

static int commit_hook(void *arg) {
    store_t *s = arg;
    if (s->fail_commits > 0) {
        s->fail_commits--;
        return 1; /* the commit becomes a rollback */
    }
    return 0;
}

void store_fail_commits(store_t *s, int n) { s->fail_commits = n; }

/* ---- in-memory copy ------------------------------------------------------------ */

static void *dup_floats(const float *x, size_t n) {
    float *p = mallocCheck(sizeof(float) * (n ? n : 1));
    if (n) memcpy(p, x, sizeof(float) * n);
    return p;
}

static void seg_free(seg_t *g) {
    free(g->obs);
    free(g->act);
    free(g->r);
    free(g->render);
    free(g->absorbing);
    memset(g, 0, sizeof *g);
}

static void mem_add_segment(store_t *s, const float *obs, const float *act, const float *r, const uint8_t *ab,
                            const float *render) {
    if (s->n_segs == s->cap_segs) {
        s->cap_segs = s->cap_segs ? 2 * s->cap_segs : 256;
        s->segs = reallocCheck(s->segs, sizeof *s->segs * s->cap_segs);
    }
    seg_t *g = &s->segs[s->n_segs++];
    g->obs = dup_floats(obs, (size_t)s->T * s->obs_dim);
    g->act = dup_floats(act, (size_t)s->T * s->act_dim);
    g->r = dup_floats(r, (size_t)s->T);
    g->render = render && s->render_dim ? dup_floats(render, (size_t)s->T * s->render_dim) : NULL;
    g->absorbing = mallocCheck(sizeof *g->absorbing * s->T);
    for (int t = 0; t < s->T; t++) g->absorbing[t] = ab[t] != 0;
}

static void mem_add_query(store_t *s, const store_query_t *q) {
    if (s->n_queries == s->cap_queries) {
        s->cap_queries = s->cap_queries ? 2 * s->cap_queries : 256;
        s->queries = reallocCheck(s->queries, sizeof *s->queries * s->cap_queries);
    }
    s->queries[s->n_queries++] = *q;
}

static size_t slot_of(const store_t *s, const char *key) {
    return (size_t)wire_hash64(key, strlen(key)) & (s->n_slots - 1);
}

static const char *key_at(const store_t *s, size_t label_index) {
    return s->labels[label_index].env->label->idempotency_id;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const store_t *s, const char *key) {
    size_t i = slot_of(s, key);
    while (s->slots[i] && strcmp(key_at(s, s->slots[i] - 1), key) != 0) i = (i + 1) & (s->n_slots - 1);
    return i;
}

static void grow_table(store_t *s) {
    size_t old_n = s->n_slots, *old = s->slots;
    s->n_slots *= 2;
    s->slots = callocCheck(s->n_slots, sizeof *s->slots);
    for (size_t i = 0; i < old_n; i++)
        if (old[i]) s->slots[find_slot(s, key_at(s, old[i] - 1))] = old[i];
    free(old);
}

/* A deep copy of the label, owned through an envelope (wire_free frees it). */
static Rlhf__Envelope *copy_label(const Rlhf__Label *l) {
    Rlhf__Envelope env;
    wire_envelope_init(&env, "store", 1);
    env.body_case = RLHF__ENVELOPE__BODY_LABEL;
    env.label = (Rlhf__Label *)l;
    size_t n = rlhf__envelope__get_packed_size(&env);
    uint8_t *buf = mallocCheck(n);
    rlhf__envelope__pack(&env, buf);
    Rlhf__Envelope *c = rlhf__envelope__unpack(NULL, n, buf);
    free(buf);
    if (!c) {
        log_error("store: cannot copy a label (out of memory)");
        exit(1);
    }
    return c;
}

static label_rec_t *mem_add_label(store_t *s, const Rlhf__Label *l, uint64_t id) {
    if (s->n_labels == s->cap_labels) {
        s->cap_labels = s->cap_labels ? 2 * s->cap_labels : 256;
        s->labels = reallocCheck(s->labels, sizeof *s->labels * s->cap_labels);
    }
    label_rec_t *rec = &s->labels[s->n_labels];
    memset(rec, 0, sizeof *rec);
    rec->env = copy_label(l);
    rec->env->label->has_id = 1;
    rec->env->label->id = id;
    size_t slot = find_slot(s, l->idempotency_id);
    s->slots[slot] = ++s->n_labels;
    if (2 * s->n_labels > s->n_slots) grow_table(s);
    return rec;
}

/* ---- meta ---------------------------------------------------------------------- */

static int meta_get(store_t *s, const char *key, char *out, size_t outlen) {
    sqlite3_stmt *st;
    out[0] = '\0';
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", v ? (const char *)v : "");
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

static int meta_set(store_t *s, const char *key, const char *value) {
    sqlite3_stmt *st;
    if (write_level(s, SYNC_FULL, NULL, 0) != 0) return -1;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

/* ---- open / recover ------------------------------------------------------------- */

static int blob_floats(sqlite3_stmt *st, int col, size_t n, float *out) {
    if (n == 0) return 0;
    const void *b = sqlite3_column_blob(st, col);
    if (!b || (size_t)sqlite3_column_bytes(st, col) != n * sizeof(float)) return -1;
    memcpy(out, b, n * sizeof(float));
    return 0;
}

static int load_segments(store_t *s, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, obs, actions, true_rewards, absorbing, render_states, render_dim FROM segments "
                           "ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        err_set(err, errlen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    size_t T = (size_t)s->T;
    float *obs = mallocCheck(sizeof(float) * T * s->obs_dim + 1), *act = mallocCheck(sizeof(float) * T * s->act_dim + 1);
    float *r = mallocCheck(sizeof(float) * T), *ren = mallocCheck(sizeof(float) * T * (s->render_dim + 1));
    uint8_t *ab = mallocCheck(T);
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        if (s->n_segs == 0) s->seg_base = id - 1;
        if (id != s->seg_base + 1 + s->n_segs) {
            err_set(err, errlen, "segment ids are not contiguous at %" PRIu64, id);
            rc = -1;
            break;
        }
        const void *abb = sqlite3_column_blob(st, 4);
        int has_render = sqlite3_column_int(st, 6) == s->render_dim && s->render_dim > 0 &&
                         sqlite3_column_bytes(st, 5) > 0;
        if (blob_floats(st, 1, T * s->obs_dim, obs) || blob_floats(st, 2, T * s->act_dim, act) ||
            blob_floats(st, 3, T, r) || !abb || (size_t)sqlite3_column_bytes(st, 4) != T ||
            (has_render && blob_floats(st, 5, T * s->render_dim, ren))) {
            err_set(err, errlen, "segment %" PRIu64 " has arrays of the wrong size", id);
            rc = -1;
            break;
        }
        memcpy(ab, abb, T);
        mem_add_segment(s, obs, act, r, ab, has_render ? ren : NULL);
    }
    free(obs), free(act), free(r), free(ren), free(ab);
    sqlite3_finalize(st);
    return rc;
}

static int parse_ids(const char *text, uint64_t *ids, int max) {
    int n = 0;
    const char *p = text;
    while (p && *p && n < max) {
        char *end;
        ids[n++] = strtoull(p, &end, 10);
        if (end == p) return -1;
        p = *end == ',' ? end + 1 : NULL;
    }
    return n;
}

static int load_queries(store_t *s, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, kind, k, seg_ids, score, created_us, answers_wanted, answers, state, teacher "
                           "FROM queries ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        err_set(err, errlen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        store_query_t q = {0};
        q.id = (uint64_t)sqlite3_column_int64(st, 0);
        if (s->n_queries == 0) s->query_base = q.id - 1;
        q.kind = (Rlhf__QueryKind)sqlite3_column_int(st, 1);
        int k = sqlite3_column_int(st, 2);
        const char *ids = (const char *)sqlite3_column_text(st, 3);
        if (q.id != s->query_base + 1 + s->n_queries || k < 1 || k > LABEL_MAX_K ||
            parse_ids(ids, q.seg_ids, LABEL_MAX_K) != k) {
            err_set(err, errlen, "query %" PRIu64 " is malformed (id order, k or seg_ids)", q.id);
            rc = -1;
            break;
        }
        q.k = (uint32_t)k;
        q.score = (float)sqlite3_column_double(st, 4);
        q.created_us = (uint64_t)sqlite3_column_int64(st, 5);
        q.answers_wanted = sqlite3_column_int(st, 6);
        q.answers = sqlite3_column_int(st, 7);
        const char *state = (const char *)sqlite3_column_text(st, 8);
        q.done = state && strcmp(state, "done") == 0;
        const char *teacher = (const char *)sqlite3_column_text(st, 9);
        snprintf(q.teacher, sizeof q.teacher, "%s", teacher ? teacher : "");
        for (int j = 0; j < k; j++)
            if (q.seg_ids[j] <= s->seg_base || q.seg_ids[j] - s->seg_base > s->n_segs) {
                err_set(err, errlen, "query %" PRIu64 " shows segment %" PRIu64 ", which is not stored", q.id,
                        q.seg_ids[j]);
                rc = -1;
            }
        if (rc) break;
        mem_add_query(s, &q);
    }
    sqlite3_finalize(st);
    return rc;
}

static int load_labels(store_t *s, char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, idempotency_id, query_id, labeler, kind, preference, rating, ranking, "
                           "cant_tell, shown_at_us, answered_at_us, time_spent_ms, retracted, created_us, answer, "
                           "round_done, answered_total, hold_until_us FROM labels ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK) {
        err_set(err, errlen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        if (s->n_labels == 0) s->label_base = id - 1;
        if (id != s->label_base + 1 + s->n_labels) {
            err_set(err, errlen, "label ids are not contiguous at %" PRIu64, id);
            rc = -1;
            break;
        }
        Rlhf__Label l;
        rlhf__label__init(&l);
        l.idempotency_id = (char *)sqlite3_column_text(st, 1);
        l.has_query_id = 1, l.query_id = (uint64_t)sqlite3_column_int64(st, 2);
        l.labeler_id = (char *)sqlite3_column_text(st, 3);
        l.has_kind = 1, l.kind = (Rlhf__QueryKind)sqlite3_column_int(st, 4);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL)
            l.has_preference = 1, l.preference = (Rlhf__Preference)sqlite3_column_int(st, 5);
        if (sqlite3_column_type(st, 6) != SQLITE_NULL) l.has_rating = 1, l.rating = (uint32_t)sqlite3_column_int(st, 6);
        uint64_t rk[LABEL_MAX_K];
        uint32_t rk32[LABEL_MAX_K];
        const char *ranking = (const char *)sqlite3_column_text(st, 7);
        int nr = ranking && *ranking ? parse_ids(ranking, rk, LABEL_MAX_K) : 0;
        for (int j = 0; j < nr; j++) rk32[j] = (uint32_t)rk[j];
        if (nr > 0) l.n_ranking = (size_t)nr, l.ranking = rk32;
        if (sqlite3_column_int(st, 8)) l.has_cant_tell = 1, l.cant_tell = 1;
        if (sqlite3_column_type(st, 9) != SQLITE_NULL)
            l.has_shown_at_us = 1, l.shown_at_us = (uint64_t)sqlite3_column_int64(st, 9);
        if (sqlite3_column_type(st, 10) != SQLITE_NULL)
            l.has_answered_at_us = 1, l.answered_at_us = (uint64_t)sqlite3_column_int64(st, 10);
        if (sqlite3_column_type(st, 11) != SQLITE_NULL)
            l.has_time_spent_ms = 1, l.time_spent_ms = (uint32_t)sqlite3_column_int64(st, 11);
        if (!l.idempotency_id) {
            err_set(err, errlen, "label %" PRIu64 " has no idempotency id", id);
            rc = -1;
            break;
        }
        label_rec_t *rec = mem_add_label(s, &l, id);
        rec->retracted = sqlite3_column_int(st, 12);
        rec->created_us = (uint64_t)sqlite3_column_int64(st, 13);
        const char *ans = (const char *)sqlite3_column_text(st, 14);
        snprintf(rec->answer, sizeof rec->answer, "%s", ans ? ans : "");
        rec->round_done = sqlite3_column_int(st, 15);
        rec->answered = (uint64_t)sqlite3_column_int64(st, 16);
        rec->hold_until_us = (uint64_t)sqlite3_column_int64(st, 17);
    }
    sqlite3_finalize(st);
    return rc;
}

static int prepare(store_t *s, sqlite3_stmt **st, const char *sql, char *err, size_t errlen) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        err_set(err, errlen, "%s: %s", sql, sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

store_t *store_open(const char *path, const char *env_id, int T, int obs_dim, int act_dim, int render_dim,
                    const char *render_kind, char *err, size_t errlen) {
    store_t *s = callocCheck(1, sizeof *s);
    snprintf(s->env_id, sizeof s->env_id, "%s", env_id);
    snprintf(s->render_kind, sizeof s->render_kind, "%s", render_kind ? render_kind : "");
    s->T = T, s->obs_dim = obs_dim, s->act_dim = act_dim, s->render_dim = render_dim > 0 ? render_dim : 0;
    s->n_slots = 1024;
    s->slots = callocCheck(s->n_slots, sizeof *s->slots);
    s->persistent = path != NULL;
    const char *where = path ? path : ":memory:";
    if (sqlite3_open_v2(where, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        err_set(err, errlen, "%s: %s", where, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        store_destroy(&s);
        return NULL;
    }
    /* Other processes (rlhf labelers add, rlhf labels export) use the file
     * meanwhile: wait for their locks rather than fail. */
    sqlite3_busy_timeout(s->db, 5000);
    char e2[512];
    if (exec(s, path ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" : "PRAGMA synchronous=FULL;", e2,
             sizeof e2) != 0 ||
        exec(s, SCHEMA, e2, sizeof e2) != 0) {
        err_set(err, errlen, "%s: %s", where, e2);
        store_destroy(&s);
        return NULL;
    }
    s->sync = SYNC_FULL;
    /* The file belongs to one run: its environment and shapes. */
    char v[256], want[256];
    struct {
        const char *key;
        char value[96];
    } m[] = {{"schema", "1"}, {"env_id", ""}, {"segment_len", ""}, {"obs_dim", ""}, {"act_dim", ""},
             {"render_dim", ""}, {"render_kind", ""}};
    snprintf(m[1].value, sizeof m[1].value, "%s", env_id);
    snprintf(m[2].value, sizeof m[2].value, "%d", T);
    snprintf(m[3].value, sizeof m[3].value, "%d", obs_dim);
    snprintf(m[4].value, sizeof m[4].value, "%d", act_dim);
    snprintf(m[5].value, sizeof m[5].value, "%d", s->render_dim);
    snprintf(m[6].value, sizeof m[6].value, "%s", s->render_kind);
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(want, sizeof want, "%s", m[i].value);
        int found = meta_get(s, m[i].key, v, sizeof v);
        if (found < 0) {
            err_set(err, errlen, "%s: cannot read meta: %s", where, sqlite3_errmsg(s->db));
            store_destroy(&s);
            return NULL;
        }
        if (found && strcmp(v, want) != 0 && strcmp(m[i].key, "render_kind") != 0 &&
            strcmp(m[i].key, "render_dim") != 0) {
            err_set(err, errlen, "%s holds another run's feedback: meta %s is '%s', this job's is '%s'", where,
                    m[i].key, v, want);
            store_destroy(&s);
            return NULL;
        }
        if (!found && meta_set(s, m[i].key, want) != 0) {
            err_set(err, errlen, "%s: cannot write meta: %s", where, sqlite3_errmsg(s->db));
            store_destroy(&s);
            return NULL;
        }
    }
    if (meta_get(s, "label_base", v, sizeof v) == 1) s->label_base = strtoull(v, NULL, 10);
    if (load_segments(s, e2, sizeof e2) != 0 || load_queries(s, e2, sizeof e2) != 0 ||
        load_labels(s, e2, sizeof e2) != 0) {
        err_set(err, errlen, "%s: %s", where, e2);
        store_destroy(&s);
        return NULL;
    }
    uint64_t now = wall_us();
    if (s->n_segs == 0) s->seg_base = now;
    if (s->n_queries == 0) s->query_base = now;
    if (prepare(s, &s->ins_seg,
                "INSERT INTO segments(id, env_id, length, obs_dim, act_dim, render_dim, obs, actions, true_rewards,"
                " absorbing, render_states, source_worker, source_policy_version, created_us)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", err, errlen) ||
        prepare(s, &s->ins_query,
                "INSERT INTO queries(id, kind, k, seg_ids, score, created_us, answers_wanted, answers, state, teacher)"
                " VALUES(?,?,?,?,?,?,?,0,'open',?)", err, errlen) ||
        prepare(s, &s->ins_label,
                "INSERT INTO labels(id, idempotency_id, query_id, labeler, kind, preference, rating, ranking,"
                " cant_tell, shown_at_us, answered_at_us, time_spent_ms, retracted, created_us, answer, round_done,"
                " answered_total, hold_until_us) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?)", err, errlen) ||
        prepare(s, &s->upd_query, "UPDATE queries SET answers=?, state=? WHERE id=?", err, errlen) ||
        prepare(s, &s->ins_lease, "INSERT OR REPLACE INTO leases(query_id, labeler, deadline_us) VALUES(?,?,?)", err,
                errlen) ||
        prepare(s, &s->del_lease, "DELETE FROM leases WHERE query_id=? AND labeler=?", err, errlen) ||
        prepare(s, &s->del_leases_q, "DELETE FROM leases WHERE query_id=?", err, errlen) ||
        prepare(s, &s->retract, "UPDATE labels SET retracted=1 WHERE id=? AND retracted=0", err, errlen) ||
        prepare(s, &s->ins_skip, "INSERT OR IGNORE INTO skips(query_id, labeler, created_us) VALUES(?,?,?)", err,
                errlen)) {
        store_destroy(&s);
        return NULL;
    }
    sqlite3_commit_hook(s->db, commit_hook, s);
    if (s->n_segs || s->n_labels)
        log_info("feedback store %s: recovered %zu segments, %zu queries, %zu labels", where, s->n_segs, s->n_queries,
                 s->n_labels);
    return s;
}

void store_destroy(store_t **self_p) {
    store_t *s = *self_p;
    if (!s) return;
    sqlite3_stmt *sts[] = {s->ins_seg, s->ins_query, s->ins_label, s->upd_query,
                           s->ins_lease, s->del_lease, s->del_leases_q, s->retract, s->ins_skip};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) sqlite3_finalize(sts[i]);
    if (s->db) sqlite3_close(s->db);
    for (size_t i = 0; i < s->n_segs; i++) seg_free(&s->segs[i]);
    free(s->segs);
    free(s->queries);
    for (size_t i = 0; i < s->n_labels; i++) wire_free(&s->labels[i].env);
    free(s->labels);
    free(s->slots);
    free(s);
    *self_p = NULL;
}

sqlite3 *store_db(store_t *s) { return s->db; }
int store_persistent(const store_t *s) { return s->persistent; }
int store_render_dim(const store_t *s) { return s->render_dim; }
const char *store_render_kind(const store_t *s) { return s->render_kind; }
int store_segment_len(const store_t *s) { return s->T; }
const char *store_env_id(const store_t *s) { return s->env_id; }

/* ---- transactions ------------------------------------------------------------------- */

static int begin(store_t *s, int level, char *err, size_t errlen) {
    if (s->txn.active) {
        err_set(err, errlen, "a transaction is open already");
        return -1;
    }
    if (set_sync(s, level, err, errlen) != 0 || exec(s, "BEGIN IMMEDIATE", err, errlen) != 0) return -1;
    s->txn.active = 1;
    s->txn.lazy = level != SYNC_FULL;
    s->txn.n_segs = s->n_segs;
    s->txn.n_queries = s->n_queries;
    return 0;
}

int store_begin(store_t *s, char *err, size_t errlen) { return begin(s, SYNC_FULL, err, errlen); }
int store_begin_lazy(store_t *s, char *err, size_t errlen) { return begin(s, SYNC_NORMAL, err, errlen); }

static void mem_undo(store_t *s) {
    while (s->n_segs > s->txn.n_segs) seg_free(&s->segs[--s->n_segs]);
    s->n_queries = s->txn.n_queries;
}

void store_rollback(store_t *s) {
    if (!s->txn.active) return;
    exec(s, "ROLLBACK", NULL, 0);
    mem_undo(s);
    s->txn.active = 0;
}

int store_commit(store_t *s, char *err, size_t errlen) {
    if (!s->txn.active) return 0;
    if (exec(s, "COMMIT", err, errlen) != 0) {
        /* A failed COMMIT may leave the transaction open: end it. */
        if (!sqlite3_get_autocommit(s->db)) exec(s, "ROLLBACK", NULL, 0);
        mem_undo(s);
        s->txn.active = 0;
        return -1;
    }
    s->txn.active = 0;
    return 0;
}

/* Runs one prepared write; a statement outside a transaction commits on its
 * own (autocommit). */
static int step_done(store_t *s, sqlite3_stmt *st, char *err, size_t errlen) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        err_set(err, errlen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

/* ---- segments ------------------------------------------------------------------------ */

uint64_t store_put_segment(store_t *s, const float *obs, const float *act, const float *true_r,
                           const uint8_t *absorbing, const float *render, const char *source_worker,
                           uint64_t source_policy_version, char *err, size_t errlen) {
    if (write_level(s, SYNC_FULL, err, errlen) != 0) return 0;
    uint64_t id = s->seg_base + 1 + s->n_segs;
    size_t T = (size_t)s->T;
    sqlite3_stmt *st = s->ins_seg;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_text(st, 2, s->env_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, s->T);
    sqlite3_bind_int(st, 4, s->obs_dim);
    sqlite3_bind_int(st, 5, s->act_dim);
    sqlite3_bind_int(st, 6, render ? s->render_dim : 0);
    sqlite3_bind_blob(st, 7, obs, (int)(sizeof(float) * T * s->obs_dim), SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, act, (int)(sizeof(float) * T * s->act_dim), SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, true_r, (int)(sizeof(float) * T), SQLITE_STATIC);
    sqlite3_bind_blob(st, 10, absorbing, (int)T, SQLITE_STATIC);
    if (render && s->render_dim) sqlite3_bind_blob(st, 11, render, (int)(sizeof(float) * T * s->render_dim), SQLITE_STATIC);
    else sqlite3_bind_null(st, 11);
    sqlite3_bind_text(st, 12, source_worker ? source_worker : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)source_policy_version);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)wall_us());
    if (step_done(s, st, err, errlen) != 0) return 0;
    mem_add_segment(s, obs, act, true_r, absorbing, render);
    return id;
}

static const seg_t *seg_of(const store_t *s, uint64_t id) {
    if (id <= s->seg_base || id - s->seg_base > s->n_segs) return NULL;
    return &s->segs[id - s->seg_base - 1];
}

int store_segment(const store_t *s, uint64_t id, Rlhf__Segment *out) {
    const seg_t *g = seg_of(s, id);
    if (!g) return -1;
    codec_segment_view(out, id, s->env_id, s->T, s->obs_dim, s->act_dim, g->obs, g->act, g->r, g->absorbing);
    if (g->render) {
        out->has_render_dim = 1, out->render_dim = (uint32_t)s->render_dim;
        out->n_render_states = (size_t)s->T * s->render_dim, out->render_states = g->render;
    }
    return 0;
}

const float *store_segment_render(const store_t *s, uint64_t id) {
    const seg_t *g = seg_of(s, id);
    return g ? g->render : NULL;
}

/* ---- queries -------------------------------------------------------------------------- */

uint64_t store_put_query(store_t *s, const store_query_t *q, char *err, size_t errlen) {
    if (write_level(s, SYNC_FULL, err, errlen) != 0) return 0;
    store_query_t c = *q;
    c.id = s->query_base + 1 + s->n_queries;
    c.answers = 0, c.done = 0;
    if (c.answers_wanted < 1) c.answers_wanted = 1;
    c.created_us = wall_us();
    char ids[LABEL_MAX_K * 24] = "";
    size_t n = 0;
    for (uint32_t j = 0; j < c.k && j < LABEL_MAX_K; j++)
        n += (size_t)snprintf(ids + n, sizeof ids - n, "%s%" PRIu64, j ? "," : "", c.seg_ids[j]);
    sqlite3_stmt *st = s->ins_query;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)c.id);
    sqlite3_bind_int(st, 2, (int)c.kind);
    sqlite3_bind_int(st, 3, (int)c.k);
    sqlite3_bind_text(st, 4, ids, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, c.score);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)c.created_us);
    sqlite3_bind_int(st, 7, c.answers_wanted);
    sqlite3_bind_text(st, 8, c.teacher, -1, SQLITE_STATIC);
    if (step_done(s, st, err, errlen) != 0) return 0;
    mem_add_query(s, &c);
    return c.id;
}

static store_query_t *query_mut(const store_t *s, uint64_t id) {
    if (id <= s->query_base || id - s->query_base > s->n_queries) return NULL;
    return &s->queries[id - s->query_base - 1];
}

const store_query_t *store_query(const store_t *s, uint64_t id) { return query_mut(s, id); }
size_t store_query_count(const store_t *s) { return s->n_queries; }
const store_query_t *store_query_at(const store_t *s, size_t i) { return i < s->n_queries ? &s->queries[i] : NULL; }

/* ---- labels ----------------------------------------------------------------------------- */

const Rlhf__Label *store_find_label(const store_t *s, const char *idempotency_id) {
    size_t i = find_slot(s, idempotency_id);
    return s->slots[i] ? s->labels[s->slots[i] - 1].env->label : NULL;
}

void store_answer_text(const Rlhf__Label *l, char *out, size_t outlen) {
    if (codec_label_is_cant_tell(l)) {
        snprintf(out, outlen, "cant_tell");
        return;
    }
    switch (l->kind) {
    case RLHF__QUERY_KIND__QUERY_PAIR:
        snprintf(out, outlen, "%s", l->preference == RLHF__PREFERENCE__PREF_LEFT    ? "left"
                                    : l->preference == RLHF__PREFERENCE__PREF_RIGHT ? "right"
                                    : l->preference == RLHF__PREFERENCE__PREF_EQUAL ? "equal"
                                                                                    : "?");
        break;
    case RLHF__QUERY_KIND__QUERY_RATING: snprintf(out, outlen, "%" PRIu32, l->rating); break;
    case RLHF__QUERY_KIND__QUERY_RANKING: {
        size_t n = 0;
        out[0] = '\0';
        for (size_t j = 0; j < l->n_ranking && n < outlen; j++)
            n += (size_t)snprintf(out + n, outlen - n, "%s%" PRIu32, j ? "," : "", l->ranking[j]);
        break;
    }
    default: snprintf(out, outlen, "?");
    }
}

int store_put_label(store_t *s, const Rlhf__Label *l, const char *labeler, int round_done, uint64_t answered,
                    uint64_t hold_until_us, uint64_t *label_id, char *err, size_t errlen) {
    const Rlhf__Label *dup = store_find_label(s, l->idempotency_id);
    if (dup) {
        *label_id = dup->id;
        return STORE_DUPLICATE;
    }
    store_query_t *q = query_mut(s, l->query_id);
    if (!q) {
        err_set(err, errlen, "no such query %" PRIu64, l->query_id);
        return STORE_FAILED;
    }
    uint64_t id = s->label_base + 1 + s->n_labels;
    uint64_t now = wall_us();
    char answer[STORE_ANSWER_MAX], ranking[LABEL_MAX_K * 12] = "";
    store_answer_text(l, answer, sizeof answer);
    size_t n = 0;
    for (size_t j = 0; j < l->n_ranking && j < LABEL_MAX_K; j++)
        n += (size_t)snprintf(ranking + n, sizeof ranking - n, "%s%" PRIu32, j ? "," : "", l->ranking[j]);
    int answers = q->answers + 1, done = answers >= q->answers_wanted;
    int own_txn = !s->txn.active;
    if (!own_txn && write_level(s, SYNC_FULL, err, errlen) != 0) return STORE_FAILED;
    if (own_txn && store_begin(s, err, errlen) != 0) return STORE_FAILED;
    sqlite3_stmt *st = s->ins_label;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_text(st, 2, l->idempotency_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)l->query_id);
    sqlite3_bind_text(st, 4, labeler, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)l->kind);
    if (l->has_preference) sqlite3_bind_int(st, 6, (int)l->preference);
    if (l->has_rating) sqlite3_bind_int(st, 7, (int)l->rating);
    if (l->n_ranking) sqlite3_bind_text(st, 8, ranking, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, codec_label_is_cant_tell(l));
    if (l->has_shown_at_us) sqlite3_bind_int64(st, 10, (sqlite3_int64)l->shown_at_us);
    if (l->has_answered_at_us) sqlite3_bind_int64(st, 11, (sqlite3_int64)l->answered_at_us);
    if (l->has_time_spent_ms) sqlite3_bind_int64(st, 12, (sqlite3_int64)l->time_spent_ms);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)now);
    sqlite3_bind_text(st, 14, answer, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 15, round_done);
    sqlite3_bind_int64(st, 16, (sqlite3_int64)answered);
    sqlite3_bind_int64(st, 17, (sqlite3_int64)hold_until_us);
    int rc = step_done(s, st, err, errlen);
    if (rc == 0) {
        sqlite3_bind_int(s->upd_query, 1, answers);
        sqlite3_bind_text(s->upd_query, 2, done ? "done" : "open", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->upd_query, 3, (sqlite3_int64)q->id);
        rc = step_done(s, s->upd_query, err, errlen);
    }
    if (rc == 0) {
        if (done) {
            sqlite3_bind_int64(s->del_leases_q, 1, (sqlite3_int64)q->id);
            rc = step_done(s, s->del_leases_q, err, errlen);
        } else {
            sqlite3_bind_int64(s->del_lease, 1, (sqlite3_int64)q->id);
            sqlite3_bind_text(s->del_lease, 2, labeler, -1, SQLITE_STATIC);
            rc = step_done(s, s->del_lease, err, errlen);
        }
    }
    if (own_txn) {
        if (rc != 0) store_rollback(s);
        else rc = store_commit(s, err, errlen);
    }
    if (rc != 0) return STORE_FAILED;
    q->answers = answers;
    q->done = done;
    label_rec_t *rec = mem_add_label(s, l, id);
    if (labeler && (!l->labeler_id || strcmp(l->labeler_id, labeler) != 0)) {
        /* The label records who gave it (the token's name over HTTP). */
        free(rec->env->label->labeler_id != protobuf_c_empty_string ? rec->env->label->labeler_id : NULL);
        rec->env->label->labeler_id = strdupCheck(labeler);
    }
    rec->round_done = round_done;
    rec->answered = answered;
    rec->hold_until_us = hold_until_us;
    rec->created_us = now;
    snprintf(rec->answer, sizeof rec->answer, "%s", answer);
    *label_id = id;
    return STORE_STORED;
}

long store_label_index(const store_t *s, uint64_t label_id) {
    if (label_id <= s->label_base || label_id - s->label_base > s->n_labels) return -1;
    return (long)(label_id - s->label_base - 1);
}

int store_retract_label(store_t *s, uint64_t label_id, char *err, size_t errlen) {
    long i = store_label_index(s, label_id);
    if (i < 0) {
        err_set(err, errlen, "no such label %" PRIu64, label_id);
        return -1;
    }
    label_rec_t *rec = &s->labels[i];
    if (rec->retracted) {
        err_set(err, errlen, "label %" PRIu64 " was undone already", label_id);
        return -1;
    }
    store_query_t *q = query_mut(s, rec->env->label->query_id);
    if (!q) {
        err_set(err, errlen, "label %" PRIu64 " answers an unknown query", label_id);
        return -1;
    }
    if (store_begin(s, err, errlen) != 0) return -1;
    sqlite3_bind_int64(s->retract, 1, (sqlite3_int64)label_id);
    int rc = step_done(s, s->retract, err, errlen);
    if (rc == 0) {
        sqlite3_bind_int(s->upd_query, 1, q->answers - 1);
        sqlite3_bind_text(s->upd_query, 2, "open", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->upd_query, 3, (sqlite3_int64)q->id);
        rc = step_done(s, s->upd_query, err, errlen);
    }
    if (rc != 0) {
        store_rollback(s);
        return -1;
    }
    if (store_commit(s, err, errlen) != 0) return -1;
    rec->retracted = 1;
    q->answers--;
    q->done = 0;
    return 0;
}

void store_set_label_base(store_t *s, uint64_t base) {
    if (s->n_labels || s->label_base == base) return;
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64, base);
    if (meta_set(s, "label_base", v) != 0) log_warn("feedback store: cannot record label_base: %s", sqlite3_errmsg(s->db));
    s->label_base = base;
}

size_t store_label_count(const store_t *s) { return s->n_labels; }

store_label_t store_label_at(const store_t *s, size_t i) {
    const label_rec_t *r = &s->labels[i];
    store_label_t out = {r->env->label, r->round_done, r->answered, r->retracted, r->hold_until_us, r->created_us,
                         r->answer};
    return out;
}

size_t store_label_after(const store_t *s, uint64_t cursor) {
    if (cursor <= s->label_base) return 0;
    uint64_t i = cursor - s->label_base;
    return i > s->n_labels ? s->n_labels : (size_t)i;
}

/* ---- leases --------------------------------------------------------------------------------- */

/* Lease and skip records are lazy (synchronous=NORMAL, store.h): losing
 * one to a power failure only ends a lease early or offers a skipped
 * query again. */
int store_put_lease(store_t *s, uint64_t query_id, const char *labeler, uint64_t deadline_us, char *err,
                    size_t errlen) {
    if (write_level(s, SYNC_NORMAL, err, errlen) != 0) return -1;
    sqlite3_bind_int64(s->ins_lease, 1, (sqlite3_int64)query_id);
    sqlite3_bind_text(s->ins_lease, 2, labeler, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->ins_lease, 3, (sqlite3_int64)deadline_us);
    return step_done(s, s->ins_lease, err, errlen);
}

int store_del_lease(store_t *s, uint64_t query_id, const char *labeler) {
    if (write_level(s, SYNC_NORMAL, NULL, 0) != 0) return -1;
    sqlite3_bind_int64(s->del_lease, 1, (sqlite3_int64)query_id);
    sqlite3_bind_text(s->del_lease, 2, labeler, -1, SQLITE_STATIC);
    return step_done(s, s->del_lease, NULL, 0);
}

/* (query_id, labeler[, deadline_us]) rows of sql, in a malloc'd array. */
static store_lease_t *read_query_labelers(store_t *s, const char *sql, size_t *n) {
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
    int has_deadline = sqlite3_column_count(st) > 2;
    size_t cap = 0;
    store_lease_t *out = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            out = reallocCheck(out, sizeof *out * cap);
        }
        store_lease_t *l = &out[(*n)++];
        l->query_id = (uint64_t)sqlite3_column_int64(st, 0);
        const char *who = (const char *)sqlite3_column_text(st, 1);
        snprintf(l->labeler, sizeof l->labeler, "%s", who ? who : "");
        l->deadline_us = has_deadline ? (uint64_t)sqlite3_column_int64(st, 2) : 0;
    }
    sqlite3_finalize(st);
    return out;
}

store_lease_t *store_leases(store_t *s, size_t *n) {
    return read_query_labelers(s, "SELECT query_id, labeler, deadline_us FROM leases ORDER BY query_id", n);
}

/* ---- skips ---------------------------------------------------------------------------------- */

int store_put_skip(store_t *s, uint64_t query_id, const char *labeler, char *err, size_t errlen) {
    if (write_level(s, SYNC_NORMAL, err, errlen) != 0) return -1;
    sqlite3_bind_int64(s->ins_skip, 1, (sqlite3_int64)query_id);
    sqlite3_bind_text(s->ins_skip, 2, labeler, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->ins_skip, 3, (sqlite3_int64)wall_us());
    return step_done(s, s->ins_skip, err, errlen);
}

store_lease_t *store_skips(store_t *s, size_t *n) {
    return read_query_labelers(s, "SELECT query_id, labeler FROM skips ORDER BY query_id", n);
}

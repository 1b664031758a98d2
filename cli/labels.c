/* labels.c - `rlhf labels export` and `rlhf labels import`: a run's human
 * labels out as JSON Lines, and into a new run (docs/labeling.md).
 *
 *   rlhf labels export RUN_DIR [-o FILE]
 *   rlhf labels import FILE --out NEW_RUN_DIR [JOB.ini] [--set section.key=value]...
 *
 * Export reads RUN_DIR/feedback.db with plain SQL (the schema is in
 * docs/labeling.md) and writes one line per label that was not retracted:
 * the query kind, the answer, the labeler, the timestamps and every segment
 * the query showed (observations, actions, absorbing flags, true rewards and
 * render states where stored). A pair answered left or right is also given
 * as "chosen" / "rejected" segments, the shape preference datasets share.
 * Floats are printed with 9 significant digits, which reads back to the
 * same float32, so an import of an export stores the same numbers.
 *
 * Import checks every line against the new run's job (its env id, segment
 * length and the env's dimensions; the job is JOB.ini, or NEW_RUN_DIR's
 * config.ini) and refuses a feedback.db that already holds feedback; then,
 * in one transaction, stores them through the feedback store (store.h):
 * segments and queries (answered, so never asked again) numbered the
 * store's way, the labels 1, 2, ... in file order, keeping their
 * idempotency ids, labelers, answers and timestamps. The coordinator of
 * that run recovers them from feedback.db at start and gives them to the
 * learner before any new label (its first Register asks from label 0). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "env.h"
#include "feedback.h"
#include "job.h"
#include "json.h"
#include "store.h"
#include "util.h"

/* Rlhf__QueryKind and Rlhf__Preference values (proto/rlhf.proto), as stored. */
enum { K_PAIR = 1, K_RATING = 2, K_RANKING = 3 };
enum { P_LEFT = 1, P_RIGHT = 2, P_EQUAL = 3, P_CANT_TELL = 4 };

static const char *kind_name(int k) {
    return k == K_PAIR ? "pair" : k == K_RATING ? "rating" : k == K_RANKING ? "ranking" : NULL;
}
static const char *pref_name(int p) {
    return p == P_LEFT ? "left" : p == P_RIGHT ? "right" : p == P_EQUAL ? "equal" : p == P_CANT_TELL ? "cant_tell"
                                                                                                         : NULL;
}

static int labels_usage(void) {
    fprintf(stderr,
            "usage: rlhf labels export RUN_DIR [-o FILE]\n"
            "           every label of RUN_DIR/feedback.db with its segments, as JSON Lines (stdout by default)\n"
            "       rlhf labels import FILE --out NEW_RUN_DIR [JOB.ini] [--set section.key=value]...\n"
            "           seed NEW_RUN_DIR/feedback.db with those labels; checked against JOB.ini\n"
            "           (or NEW_RUN_DIR/config.ini), then `rlhf run JOB.ini --out NEW_RUN_DIR`\n");
    return 2;
}

/* ---- export ---------------------------------------------------------------- */

static void put_float(FILE *f, float x) {
    if (!isfinite(x)) {
        fputs("null", f);   /* JSON has no NaN; import reads null back as NaN */
        return;
    }
    fprintf(f, "%.9g", (double)x);
}

/* A BLOB of n float32 as rows of dim ([[..],[..]]), or flat when dim == 0. */
static void put_floats(FILE *f, const void *blob, int bytes, int n, int dim) {
    const unsigned char *b = blob;
    fputc('[', f);
    for (int i = 0; i < n && (i + 1) * 4 <= bytes; i++) {
        if (dim && i % dim == 0) fputs(i ? ",[" : "[", f);
        else if (i) fputc(',', f);
        float x;
        memcpy(&x, b + 4 * i, 4);   /* little-endian on every platform we build for */
        put_float(f, x);
        if (dim && i % dim == dim - 1) fputc(']', f);
    }
    fputc(']', f);
}

static void put_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    json_write_string(f, s, strlen(s));
}

/* One segment object; -1 with err when it is missing or malformed. */
static int put_segment(FILE *f, sqlite3 *db, sqlite3_stmt *st, int64_t id, char *err, size_t errlen) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, errlen, "segment %" PRId64 " is not in the database%s%s", id, sqlite3_errcode(db) == SQLITE_DONE ? "" : ": ",
                sqlite3_errcode(db) == SQLITE_DONE ? "" : sqlite3_errmsg(db));
        return -1;
    }
    int T = sqlite3_column_int(st, 1), od = sqlite3_column_int(st, 2), ad = sqlite3_column_int(st, 3),
        rd = sqlite3_column_int(st, 4);
    if (T < 1 || od < 1 || ad < 1 || rd < 0) {
        err_set(err, errlen, "segment %" PRId64 ": bad shape (length %d, obs_dim %d, act_dim %d, render_dim %d)", id, T,
                od, ad, rd);
        return -1;
    }
    struct {
        int col, n;
        const char *name;
    } need[] = {{5, T * od, "obs"}, {6, T * ad, "actions"}};
    for (int i = 0; i < 2; i++)
        if (sqlite3_column_bytes(st, need[i].col) != 4 * need[i].n) {
            err_set(err, errlen, "segment %" PRId64 ": %s holds %d bytes, expected %d", id, need[i].name,
                    sqlite3_column_bytes(st, need[i].col), 4 * need[i].n);
            return -1;
        }
    fprintf(f, "{\"id\":\"%" PRId64 "\",\"env_id\":", id);
    put_str(f, (const char *)sqlite3_column_text(st, 0));
    fprintf(f, ",\"length\":%d,\"obs_dim\":%d,\"act_dim\":%d,\"render_dim\":%d,\"obs\":", T, od, ad, rd);
    put_floats(f, sqlite3_column_blob(st, 5), sqlite3_column_bytes(st, 5), T * od, od);
    fputs(",\"actions\":", f);
    put_floats(f, sqlite3_column_blob(st, 6), sqlite3_column_bytes(st, 6), T * ad, ad);
    if (sqlite3_column_bytes(st, 7) == 4 * T) {
        fputs(",\"true_rewards\":", f);
        put_floats(f, sqlite3_column_blob(st, 7), sqlite3_column_bytes(st, 7), T, 0);
    }
    if (sqlite3_column_bytes(st, 8) == T) {
        const unsigned char *a = sqlite3_column_blob(st, 8);
        fputs(",\"absorbing\":[", f);
        for (int t = 0; t < T; t++) fprintf(f, "%s%d", t ? "," : "", a[t] ? 1 : 0);
        fputc(']', f);
    }
    if (rd > 0 && sqlite3_column_bytes(st, 9) == 4 * T * rd) {
        fputs(",\"render_states\":", f);
        put_floats(f, sqlite3_column_blob(st, 9), sqlite3_column_bytes(st, 9), T * rd, rd);
    }
    if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
        fputs(",\"source_worker\":", f);
        put_str(f, (const char *)sqlite3_column_text(st, 10));
    }
    if (sqlite3_column_type(st, 11) != SQLITE_NULL)
        fprintf(f, ",\"source_policy_version\":%lld", (long long)sqlite3_column_int64(st, 11));
    if (sqlite3_column_type(st, 12) != SQLITE_NULL)
        fprintf(f, ",\"created_us\":%lld", (long long)sqlite3_column_int64(st, 12));
    fputc('}', f);
    return 0;
}

/* Splits "id1,id2,..." into ids; returns how many (at most max), -1 if malformed. */
static int parse_ids(const char *s, int64_t *ids, int max) {
    int n = 0;
    if (!s || !*s) return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || n == max) return -1;
        ids[n++] = v;
        if (*end == '\0') return n;
        if (*end != ',') return -1;
        s = end + 1;
    }
}

static int export_labels(const char *dir, FILE *f, long *count, char *err, size_t errlen) {
    char db_path[4200];
    snprintf(db_path, sizeof db_path, "%s/feedback.db", dir);
    if (access(db_path, F_OK) != 0) {
        err_set(err, errlen, "%s: no feedback database (%s)", db_path, strerror(errno));
        return -1;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        err_set(err, errlen, "cannot open %s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    int rc = -1;
    sqlite3_stmt *ls = NULL, *ss = NULL, *ms = NULL;
    char render_kind[128] = "";
    /* One read transaction: a consistent snapshot even beside a live run. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) goto db_error;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'render_kind'", -1, &ms, NULL) == SQLITE_OK &&
        sqlite3_step(ms) == SQLITE_ROW && sqlite3_column_text(ms, 0))
        snprintf(render_kind, sizeof render_kind, "%s", (const char *)sqlite3_column_text(ms, 0));
    if (sqlite3_prepare_v2(db,
                           "SELECT l.id, l.idempotency_id, l.query_id, l.labeler, l.kind, l.preference, l.rating,"
                           " l.ranking, l.cant_tell, l.shown_at_us, l.answered_at_us, l.time_spent_ms, l.created_us,"
                           " q.id, q.k, q.seg_ids, q.kind FROM labels l LEFT JOIN queries q ON q.id = l.query_id"
                           " WHERE COALESCE(l.retracted, 0) = 0 ORDER BY l.id",
                           -1, &ls, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT env_id, length, obs_dim, act_dim, render_dim, obs, actions, true_rewards,"
                           " absorbing, render_states, source_worker, source_policy_version, created_us"
                           " FROM segments WHERE id = ?",
                           -1, &ss, NULL) != SQLITE_OK)
        goto db_error;
    int step;
    *count = 0;
    while ((step = sqlite3_step(ls)) == SQLITE_ROW) {
        int64_t lid = sqlite3_column_int64(ls, 0), qid = sqlite3_column_int64(ls, 2);
        if (sqlite3_column_type(ls, 13) == SQLITE_NULL) {
            err_set(err, errlen, "label %" PRId64 " answers query %" PRId64 ", which is not in the database", lid, qid);
            goto done;
        }
        int kind = sqlite3_column_int(ls, 4);
        if (!kind) kind = sqlite3_column_int(ls, 16);
        const char *kname = kind_name(kind);
        int64_t seg[LABEL_MAX_K];
        int k = parse_ids((const char *)sqlite3_column_text(ls, 15), seg, LABEL_MAX_K);
        if (!kname || k < 1) {
            err_set(err, errlen, "label %" PRId64 ": query %" PRId64 " has kind %d and segments '%s'", lid, qid, kind,
                    sqlite3_column_text(ls, 15) ? (const char *)sqlite3_column_text(ls, 15) : "");
            goto done;
        }
        int cant = sqlite3_column_int(ls, 8) != 0, pref = sqlite3_column_int(ls, 5);
        if (kind == K_PAIR && pref == P_CANT_TELL) cant = 1;
        if (kind == K_PAIR && !cant && pref != P_LEFT && pref != P_RIGHT && pref != P_EQUAL) {
            err_set(err, errlen, "label %" PRId64 ": a pair answer with preference %d", lid, pref);
            goto done;
        }
        fprintf(f, "{\"label_id\":\"%" PRId64 "\",\"idempotency_id\":", lid);
        put_str(f, (const char *)sqlite3_column_text(ls, 1));
        fprintf(f, ",\"query_id\":\"%" PRId64 "\",\"kind\":\"%s\",\"k\":%d,\"labeler\":", qid, kname, k);
        put_str(f, (const char *)sqlite3_column_text(ls, 3));
        /* "answer" in one field whatever the kind, and the kind's own field
         * as the HTTP API names it. */
        fputs(",\"answer\":", f);
        const char *ranking = (const char *)sqlite3_column_text(ls, 7);
        if (kind == K_PAIR) {
            const char *pn = pref_name(cant ? P_CANT_TELL : pref);
            fprintf(f, "\"%s\",\"preference\":\"%s\"", pn ? pn : "?", pn ? pn : "?");
        } else if (cant) {
            fputs("\"cant_tell\"", f);
        } else if (kind == K_RATING) {
            int r = sqlite3_column_int(ls, 6);
            fprintf(f, "%d,\"rating\":%d", r, r);
        } else {
            int64_t pos[LABEL_MAX_K];
            int m = parse_ids(ranking, pos, LABEL_MAX_K);
            if (m != k) {
                err_set(err, errlen, "label %" PRId64 ": ranking '%s' does not order the query's %d segments", lid,
                        ranking ? ranking : "", k);
                goto done;
            }
            for (int pass = 0; pass < 2; pass++) {
                if (pass) fputs(",\"ranking\":", f);
                fputc('[', f);
                for (int i = 0; i < m; i++) fprintf(f, "%s%" PRId64, i ? "," : "", pos[i]);
                fputc(']', f);
            }
        }
        fprintf(f, ",\"cant_tell\":%s", cant ? "true" : "false");
        static const char *times[] = {"shown_at_us", "answered_at_us", "time_spent_ms", "created_us"};
        for (int i = 0; i < 4; i++)
            if (sqlite3_column_type(ls, 9 + i) != SQLITE_NULL)
                fprintf(f, ",\"%s\":%lld", times[i], (long long)sqlite3_column_int64(ls, 9 + i));
        fputs(",\"env_id\":", f);
        sqlite3_reset(ss);
        sqlite3_bind_int64(ss, 1, seg[0]);
        put_str(f, sqlite3_step(ss) == SQLITE_ROW ? (const char *)sqlite3_column_text(ss, 0) : NULL);
        if (render_kind[0]) {
            fputs(",\"render_kind\":", f);
            put_str(f, render_kind);
        }
        fputs(",\"segments\":[", f);
        for (int i = 0; i < k; i++) {
            if (i) fputc(',', f);
            if (put_segment(f, db, ss, seg[i], err, errlen) != 0) goto done;
        }
        fputc(']', f);
        if (kind == K_PAIR && !cant && pref != P_EQUAL) {
            int chosen = pref == P_LEFT ? 0 : 1;
            fputs(",\"chosen\":", f);
            if (put_segment(f, db, ss, seg[chosen], err, errlen) != 0) goto done;
            fputs(",\"rejected\":", f);
            if (put_segment(f, db, ss, seg[1 - chosen], err, errlen) != 0) goto done;
        }
        fputs("}\n", f);
        (*count)++;
    }
    if (step != SQLITE_DONE) goto db_error;
    rc = 0;
    goto done;
db_error:
    err_set(err, errlen, "%s: %s", db_path, sqlite3_errmsg(db));
done:
    sqlite3_finalize(ls);
    sqlite3_finalize(ss);
    sqlite3_finalize(ms);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static int cmd_export(int argc, char **argv) {
    const char *dir = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rlhf labels export: -o needs a file name\n");
                return 2;
            }
            file = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf labels export: unknown option '%s'\n", argv[i]);
            return labels_usage();
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "rlhf labels export: more than one run directory ('%s', '%s')\n", dir, argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "rlhf labels export: which run? (RUN_DIR)\n");
        return labels_usage();
    }
    char tmp[4200], err[9000];
    FILE *f = stdout;
    if (file) {
        /* Written aside and renamed: a failed export leaves no half file. */
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", file, (int)getpid());
        f = fopen(tmp, "w");
        if (!f) {
            fprintf(stderr, "rlhf labels export: cannot write %s: %s\n", tmp, strerror(errno));
            return 1;
        }
    }
    long n = 0;
    int rc = export_labels(dir, f, &n, err, sizeof err);
    if (file) {
        if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
            if (rc == 0) snprintf(err, sizeof err, "cannot write %s: %s", tmp, strerror(errno));
            rc = -1;
        }
        fclose(f);
        if (rc == 0 && rename(tmp, file) != 0) {
            snprintf(err, sizeof err, "cannot rename %s to %s: %s", tmp, file, strerror(errno));
            rc = -1;
        }
        if (rc != 0) unlink(tmp);
    } else if (fflush(stdout) != 0) {
        snprintf(err, sizeof err, "cannot write the output: %s", strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "rlhf labels export: %s\n", err);
        return 1;
    }
    fprintf(stderr, "rlhf labels export: %ld label%s from %s/feedback.db%s%s\n", n, n == 1 ? "" : "s", dir,
            file ? " to " : "", file ? file : "");
    return 0;
}

/* ---- import ---------------------------------------------------------------- */

typedef struct {
    const char *env_id, *render_kind;
    int T, obs_dim, act_dim, render_dim;
} shape_t;

/* Reads an array of n numbers (or of rows of dim numbers when dim > 0) into
 * out[n] as float32; null reads as NaN. 0, or -1 with err. */
static int get_floats(const json_t *v, float *out, int n, int dim, const char *what, char *err, size_t errlen) {
    int rows = dim ? n / dim : n;
    if (json_type(v) != JSON_ARRAY || (int)json_size(v) != rows) {
        err_set(err, errlen, "%s: expected an array of %d %s", what, rows, dim ? "rows" : "numbers");
        return -1;
    }
    for (int r = 0; r < rows; r++) {
        const json_t *row = json_at(v, (size_t)r);
        int cols = dim ? dim : 1;
        if (dim && (json_type(row) != JSON_ARRAY || (int)json_size(row) != dim)) {
            err_set(err, errlen, "%s: row %d: expected %d numbers", what, r, dim);
            return -1;
        }
        for (int c = 0; c < cols; c++) {
            const json_t *x = dim ? json_at(row, (size_t)c) : row;
            double d;
            if (json_type(x) == JSON_NULL) {
                d = NAN;
            } else if (json_number(x, &d) != 0) {
                err_set(err, errlen, "%s: element %d: expected a number", what, r * cols + c);
                return -1;
            }
            out[r * cols + c] = (float)d;
        }
    }
    return 0;
}

static int get_id(const json_t *obj, const char *key, int64_t *out) {
    const char *s = json_string(json_get(obj, key));
    long long v;
    if (s) {
        char *end;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (end == s || *end || errno || v <= 0) return -1;
    } else if (json_int(json_get(obj, key), &v) != 0 || v <= 0) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Original id -> new id (and a fingerprint of what the id stood for), an
 * open-addressing table: an export names each segment and query by its id
 * in the old run, and the new store numbers them its own way. */
typedef struct {
    uint64_t key, val, check;
    double ret;             /* a segment's true return (sum of its true rewards) */
    int has_ret;            /* ... when the file gave its true rewards */
} slot_t;
typedef struct {
    slot_t *v;
    size_t cap, n;      /* cap a power of two, at most half full */
} idmap_t;

static slot_t *idmap_find(idmap_t *m, uint64_t key, int insert) {
    if (insert && 2 * (m->n + 1) > m->cap) {
        idmap_t g = {callocCheck(m->cap ? 2 * m->cap : 256, sizeof(slot_t)), m->cap ? 2 * m->cap : 256, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->v[i].key) *idmap_find(&g, m->v[i].key, 1) = m->v[i];
        free(m->v);
        *m = g;
    }
    if (!m->cap) return NULL;
    for (size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->v[i].key == key) return &m->v[i];
        if (!m->v[i].key) {
            if (!insert) return NULL;
            m->v[i].key = key;
            m->n++;
            return &m->v[i];
        }
    }
}

typedef struct {
    store_t *store;
    shape_t sh;
    idmap_t segs;       /* old segment id -> new id; check: fingerprint of its data */
    idmap_t queries;    /* old query id -> new id; check: fingerprint of kind and segments */
    idmap_t wanted;     /* old query id -> labels answering it in the file */
} importer_t;

/* Stores one segment object of a line (once: a later line showing the same
 * id must carry the same data). 0 with *id_out its new id, or -1 with err. */
static int import_segment(importer_t *im, const json_t *s, uint64_t *id_out, double *ret, int *has_ret, char *err,
                          size_t errlen) {
    const shape_t *sh = &im->sh;
    int64_t id;
    long long T, od, ad, rd = 0, pv = 0, created = 0;
    if (get_id(s, "id", &id) != 0) {
        err_set(err, errlen, "a segment without a valid \"id\"");
        return -1;
    }
    const char *env = json_string(json_get(s, "env_id"));
    if (env && strcmp(env, sh->env_id) != 0) {
        err_set(err, errlen, "segment %" PRId64 " is from %s, the job's env is %s", id, env, sh->env_id);
        return -1;
    }
    if (json_int(json_get(s, "length"), &T) != 0 || json_int(json_get(s, "obs_dim"), &od) != 0 ||
        json_int(json_get(s, "act_dim"), &ad) != 0) {
        err_set(err, errlen, "segment %" PRId64 ": \"length\", \"obs_dim\" and \"act_dim\" must be integers", id);
        return -1;
    }
    json_int(json_get(s, "render_dim"), &rd);
    if (T != sh->T) {
        err_set(err, errlen, "segment %" PRId64 " has %lld steps, the job's feedback.segment_len is %d", id, T, sh->T);
        return -1;
    }
    if (od != sh->obs_dim || ad != sh->act_dim) {
        err_set(err, errlen, "segment %" PRId64 " has obs_dim %lld and act_dim %lld, %s has %d and %d", id, od, ad,
                sh->env_id, sh->obs_dim, sh->act_dim);
        return -1;
    }
    int n_obs = (int)(T * od), n_act = (int)(T * ad), n_rs = (int)(T * sh->render_dim);
    float *obs = mallocCheck(sizeof(float) * (size_t)n_obs), *act = mallocCheck(sizeof(float) * (size_t)n_act),
          *r = callocCheck((size_t)T, sizeof(float)), *rs = mallocCheck(sizeof(float) * (size_t)(n_rs + 1));
    uint8_t *abs = callocCheck((size_t)T, 1);
    int rc = -1, has_rs = json_get(s, "render_states") != NULL;
    char what[96];
    snprintf(what, sizeof what, "segment %" PRId64 " obs", id);
    if (get_floats(json_get(s, "obs"), obs, n_obs, (int)od, what, err, errlen) != 0) goto out;
    snprintf(what, sizeof what, "segment %" PRId64 " actions", id);
    if (get_floats(json_get(s, "actions"), act, n_act, (int)ad, what, err, errlen) != 0) goto out;
    /* The store keeps a true reward per step; a segment without them (an
     * environment without one) gets zeros. */
    snprintf(what, sizeof what, "segment %" PRId64 " true_rewards", id);
    if (json_get(s, "true_rewards") && get_floats(json_get(s, "true_rewards"), r, (int)T, 0, what, err, errlen) != 0)
        goto out;
    if (has_rs && rd != sh->render_dim) {
        err_set(err, errlen, "segment %" PRId64 " has render_dim %lld, %s draws %d numbers a frame", id, rd,
                sh->env_id, sh->render_dim);
        goto out;
    }
    snprintf(what, sizeof what, "segment %" PRId64 " render_states", id);
    if (has_rs && get_floats(json_get(s, "render_states"), rs, n_rs, sh->render_dim, what, err, errlen) != 0)
        goto out;
    const json_t *a = json_get(s, "absorbing");
    if (a) {
        if (json_type(a) != JSON_ARRAY || (long long)json_size(a) != T) {
            err_set(err, errlen, "segment %" PRId64 " absorbing: expected %lld flags", id, T);
            goto out;
        }
        for (long long t = 0; t < T; t++) {
            long long x;
            if (json_int(json_at(a, (size_t)t), &x) != 0 || (x != 0 && x != 1)) {
                err_set(err, errlen, "segment %" PRId64 " absorbing: element %lld: expected 0 or 1", id, t);
                goto out;
            }
            abs[t] = (uint8_t)x;
        }
    }
    uint64_t fp = fnv1a(fnv1a(fnv1a(FNV_OFFSET, obs, 4 * (size_t)n_obs), act, 4 * (size_t)n_act), abs, (size_t)T);
    slot_t *seen = idmap_find(&im->segs, (uint64_t)id, 0);
    if (seen) {
        if (seen->check != fp) {
            err_set(err, errlen, "segment %" PRId64 " appears twice with different observations or actions", id);
            goto out;
        }
        *id_out = seen->val;
        *ret = seen->ret;
        *has_ret = seen->has_ret;
        rc = 0;
        goto out;
    }
    int has_pv = json_int(json_get(s, "source_policy_version"), &pv) == 0,
        has_created = json_int(json_get(s, "created_us"), &created) == 0;
    char serr[512];
    uint64_t nid = store_put_segment(im->store, obs, act, r, abs, has_rs && n_rs > 0 ? rs : NULL,
                                     json_string(json_get(s, "source_worker")), has_pv ? (uint64_t)pv : 0, serr,
                                     sizeof serr);
    if (!nid) {
        err_set(err, errlen, "cannot store segment %" PRId64 ": %s", id, serr);
        goto out;
    }
    /* Keep when it was cut, not when it was imported. */
    if (has_created) {
        sqlite3_stmt *st = NULL;
        sqlite3 *db = store_db(im->store);
        int ok = sqlite3_prepare_v2(db, "UPDATE segments SET created_us = ? WHERE id = ?", -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(st, 1, created);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)nid);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        sqlite3_finalize(st);
        if (!ok) {
            err_set(err, errlen, "segment %" PRId64 ": %s", id, sqlite3_errmsg(db));
            goto out;
        }
    }
    slot_t *slot = idmap_find(&im->segs, (uint64_t)id, 1);
    slot->val = nid;
    slot->check = fp;
    slot->has_ret = json_get(s, "true_rewards") != NULL;
    slot->ret = 0;
    for (long long t = 0; t < T; t++) slot->ret += r[t];
    *id_out = nid;
    *ret = slot->ret;
    *has_ret = slot->has_ret;
    rc = 0;
out:
    free(obs);
    free(act);
    free(r);
    free(rs);
    free(abs);
    return rc;
}

static int line_kind(const json_t *doc) {
    const char *k = json_string(json_get(doc, "kind"));
    return !k ? 0 : !strcmp(k, "pair") ? K_PAIR : !strcmp(k, "rating") ? K_RATING : !strcmp(k, "ranking") ? K_RANKING : 0;
}

/* One line: its segments, its query (made by the first line answering it),
 * its label. last: the file's last label, which completes the round (so the
 * learner fits its reward model on everything imported at once). */
static int import_line(importer_t *im, const json_t *doc, long index, int last, char *err, size_t errlen) {
    const char *env = json_string(json_get(doc, "env_id"));
    if (env && strcmp(env, im->sh.env_id) != 0) {
        err_set(err, errlen, "the label is for %s, the job's env is %s", env, im->sh.env_id);
        return -1;
    }
    int kind = line_kind(doc);
    if (!kind) {
        err_set(err, errlen, "\"kind\" must be \"pair\", \"rating\" or \"ranking\"");
        return -1;
    }
    const char *kname = kind_name(kind);
    int64_t qid;
    if (get_id(doc, "query_id", &qid) != 0) {
        err_set(err, errlen, "no valid \"query_id\"");
        return -1;
    }
    const char *idem = json_string(json_get(doc, "idempotency_id"));
    if (!idem || !*idem) {
        err_set(err, errlen, "no \"idempotency_id\"");
        return -1;
    }
    const json_t *segs = json_get(doc, "segments");
    int k = (int)json_size(segs);
    if (json_type(segs) != JSON_ARRAY || k < 1 || k > LABEL_MAX_K || (kind == K_PAIR && k != 2) ||
        (kind == K_RATING && k != 1) || (kind == K_RANKING && k < 2)) {
        err_set(err, errlen, "a %s query with %d segments", kname, k);
        return -1;
    }
    store_query_t q = {0};
    q.kind = (Rlhf__QueryKind)kind;
    q.k = (uint32_t)k;
    double ret[LABEL_MAX_K];
    int all_ret = 1;
    for (int i = 0; i < k; i++) {
        int has_ret;
        if (import_segment(im, json_at(segs, (size_t)i), &q.seg_ids[i], &ret[i], &has_ret, err, errlen) != 0)
            return -1;
        all_ret &= has_ret;
    }
    /* The scripted teacher's answer from the true returns, as the
     * coordinator records it for its agreement figures. */
    if (all_ret && kind == K_PAIR) {
        snprintf(q.teacher, sizeof q.teacher, "%s", ret[0] > ret[1] ? "left" : ret[0] < ret[1] ? "right" : "equal");
    } else if (all_ret && kind == K_RANKING) {
        int order[LABEL_MAX_K];
        for (int j = 0; j < k; j++) order[j] = j;
        for (int a = 1; a < k; a++) /* stable insertion sort, best first */
            for (int b = a; b > 0 && ret[order[b]] > ret[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        size_t used = 0;
        for (int j = 0; j < k && used < sizeof q.teacher; j++)
            used += (size_t)snprintf(q.teacher + used, sizeof q.teacher - used, "%s%d", j ? "," : "", order[j]);
    }
    /* The answer. */
    Rlhf__Label l;
    rlhf__label__init(&l);
    uint32_t ranking[LABEL_MAX_K];
    int cant = 0;
    json_bool(json_get(doc, "cant_tell"), &cant);
    if (kind == K_PAIR) {
        const char *p = json_string(json_get(doc, "preference"));
        int pref = !p                          ? 0
                   : !strcmp(p, "left")        ? P_LEFT
                   : !strcmp(p, "right")       ? P_RIGHT
                   : !strcmp(p, "equal")       ? P_EQUAL
                   : !strcmp(p, "cant_tell")   ? P_CANT_TELL
                                               : 0;
        if (!pref) {
            err_set(err, errlen, "a pair label needs \"preference\": \"left\", \"right\", \"equal\" or \"cant_tell\"");
            return -1;
        }
        if (cant) pref = P_CANT_TELL;
        l.has_preference = 1, l.preference = (Rlhf__Preference)pref;
        if (pref == P_CANT_TELL) l.has_cant_tell = 1, l.cant_tell = 1;
    } else if (cant) {
        l.has_cant_tell = 1, l.cant_tell = 1;
    } else if (kind == K_RATING) {
        long long r;
        if (json_int(json_get(doc, "rating"), &r) != 0 || r < 1 || r > 7) {
            err_set(err, errlen, "a rating label needs \"rating\": 1..7");
            return -1;
        }
        l.has_rating = 1, l.rating = (uint32_t)r;
    } else {
        const json_t *rk = json_get(doc, "ranking");
        int seen = 0;
        if (json_type(rk) != JSON_ARRAY || (int)json_size(rk) != k) {
            err_set(err, errlen, "a ranking label needs \"ranking\": %d positions, best first", k);
            return -1;
        }
        for (int i = 0; i < k; i++) {
            long long p;
            if (json_int(json_at(rk, (size_t)i), &p) != 0 || p < 0 || p >= k || (seen & (1 << p))) {
                err_set(err, errlen, "\"ranking\" must order positions 0..%d, each once", k - 1);
                return -1;
            }
            seen |= 1 << p;
            ranking[i] = (uint32_t)p;
        }
        l.n_ranking = (size_t)k, l.ranking = ranking;
    }
    long long t[4] = {0};
    int has_t[4];
    static const char *times[] = {"shown_at_us", "answered_at_us", "time_spent_ms", "created_us"};
    for (int i = 0; i < 4; i++) has_t[i] = json_int(json_get(doc, times[i]), &t[i]) == 0 && t[i] >= 0;
    if (has_t[0]) l.has_shown_at_us = 1, l.shown_at_us = (uint64_t)t[0];
    if (has_t[1]) l.has_answered_at_us = 1, l.answered_at_us = (uint64_t)t[1];
    if (has_t[2]) l.has_time_spent_ms = 1, l.time_spent_ms = (uint32_t)t[2];
    /* The query: made by the first line that answers it, wanting as many
     * answers as the file has for it (so it is done once they are in). */
    uint64_t qfp = fnv1a(FNV_OFFSET, &q.kind, sizeof q.kind);
    qfp = fnv1a(qfp, q.seg_ids, sizeof q.seg_ids[0] * (size_t)k);
    slot_t *qs = idmap_find(&im->queries, (uint64_t)qid, 0);
    char serr[512];
    if (qs && qs->check != qfp) {
        err_set(err, errlen, "query %" PRId64 " appears twice with different kinds or segments", qid);
        return -1;
    }
    if (!qs) {
        slot_t *w = idmap_find(&im->wanted, (uint64_t)qid, 0);
        q.answers_wanted = w ? (int)w->val : 1;
        uint64_t nq = store_put_query(im->store, &q, serr, sizeof serr);
        if (!nq) {
            err_set(err, errlen, "cannot store query %" PRId64 ": %s", qid, serr);
            return -1;
        }
        qs = idmap_find(&im->queries, (uint64_t)qid, 1);
        qs->val = nq;
        qs->check = qfp;
    }
    /* The label. */
    l.idempotency_id = (char *)idem;
    l.has_query_id = 1, l.query_id = qs->val;
    l.has_kind = 1, l.kind = (Rlhf__QueryKind)kind;
    const char *who = json_string(json_get(doc, "labeler"));
    l.labeler_id = (char *)(who ? who : "");
    uint64_t lid;
    int st = store_put_label(im->store, &l, who ? who : "", last, (uint64_t)index + 1, 0, &lid, serr, sizeof serr);
    if (st == STORE_DUPLICATE) {
        err_set(err, errlen, "idempotency id '%s' appears twice", idem);
        return -1;
    }
    if (st != STORE_STORED) {
        err_set(err, errlen, "cannot store the label: %s", serr);
        return -1;
    }
    if (has_t[3]) {
        sqlite3_stmt *u = NULL;
        sqlite3 *db = store_db(im->store);
        int ok = sqlite3_prepare_v2(db, "UPDATE labels SET created_us = ? WHERE id = ?", -1, &u, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(u, 1, t[3]);
            sqlite3_bind_int64(u, 2, (sqlite3_int64)lid);
            ok = sqlite3_step(u) == SQLITE_DONE;
        }
        sqlite3_finalize(u);
        if (!ok) {
            err_set(err, errlen, "label: %s", sqlite3_errmsg(db));
            return -1;
        }
    }
    return 0;
}

static int import_file(const char *file, const char *dir, const shape_t *sh, long *count, char *err, size_t errlen) {
    FILE *in = fopen(file, "rb");
    if (!in) {
        err_set(err, errlen, "cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    /* The whole file first: every line parsed and each query's answers
     * counted before anything is stored. */
    json_t **docs = NULL;
    long *linenos = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = -1, made_db = 0;
    importer_t im = {.sh = *sh};
    while ((got = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        char perr[256];
        json_t *doc = json_parse(line, (size_t)got, perr, sizeof perr);
        if (!doc || json_type(doc) != JSON_OBJECT) {
            err_set(err, errlen, "%s:%ld: %s", file, lineno, doc ? "expected a JSON object" : perr);
            json_destroy(&doc);
            goto done;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            docs = reallocCheck(docs, cap * sizeof *docs);
            linenos = reallocCheck(linenos, cap * sizeof *linenos);
        }
        docs[n] = doc;
        linenos[n++] = lineno;
        int64_t qid;
        if (get_id(doc, "query_id", &qid) == 0) idmap_find(&im.wanted, (uint64_t)qid, 1)->val++;
    }
    if (ferror(in)) {
        err_set(err, errlen, "cannot read %s: %s", file, strerror(errno));
        goto done;
    }
    if (n == 0) {
        err_set(err, errlen, "%s holds no labels", file);
        goto done;
    }
    if (mkdir_p(dir) != 0) {
        err_set(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto done;
    }
    char db_path[4200], serr[1024];
    snprintf(db_path, sizeof db_path, "%s/feedback.db", dir);
    made_db = access(db_path, F_OK) != 0;
    /* store_open refuses a database of another environment or shape. */
    im.store = store_open(db_path, sh->env_id, sh->T, sh->obs_dim, sh->act_dim, sh->render_dim, sh->render_kind, serr,
                          sizeof serr);
    if (!im.store) {
        err_set(err, errlen, "%s", serr);
        goto done;
    }
    if (store_label_count(im.store) || store_query_count(im.store)) {
        err_set(err, errlen, "%s already holds %zu queries and %zu labels: import into a new run directory", db_path,
                store_query_count(im.store), store_label_count(im.store));
        goto done;
    }
    /* One transaction: all the file or nothing. */
    if (store_begin(im.store, serr, sizeof serr) != 0) {
        err_set(err, errlen, "%s: %s", db_path, serr);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char lerr[768];
        if (import_line(&im, docs[i], (long)i, i + 1 == n, lerr, sizeof lerr) != 0) {
            err_set(err, errlen, "%s:%ld: %s (nothing imported)", file, linenos[i], lerr);
            store_rollback(im.store);
            goto done;
        }
    }
    if (store_commit(im.store, serr, sizeof serr) != 0) {
        err_set(err, errlen, "%s: commit: %s (nothing imported)", db_path, serr);
        goto done;
    }
    *count = (long)n;
    rc = 0;
done:
    store_destroy(&im.store);
    if (rc != 0 && made_db) {
        /* Nothing imported: leave no database behind either (its meta would
         * tie the directory to this job). */
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        for (int i = 0; i < 4; i++) {
            char p[4300];
            snprintf(p, sizeof p, "%s/feedback.db%s", dir, suffix[i]);
            unlink(p);
        }
    }
    for (size_t i = 0; i < n; i++) json_destroy(&docs[i]);
    free(docs);
    free(linenos);
    free(line);
    free(im.segs.v);
    free(im.queries.v);
    free(im.wanted.v);
    fclose(in);
    return rc;
}

static int cmd_import(int argc, char **argv) {
    const char *file = NULL, *job_path = NULL, *dir = NULL;
    /* The job's own options (--set, --seed, ...) go to cli_load_job. */
    char **jargv = mallocCheck(sizeof(char *) * (size_t)(argc + 4));
    int jn = 0;
    jargv[jn++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            if (i + 1 >= argc) {
                fprintf(stderr, "rlhf labels import: %s needs a value\n", argv[i]);
                free(jargv);
                return 2;
            }
            if (strcmp(argv[i], "--out") == 0) dir = argv[i + 1];
            jargv[jn++] = argv[i];
            jargv[jn++] = argv[++i];
        } else if (!file) {
            file = argv[i];
        } else if (!job_path) {
            job_path = argv[i];
        } else {
            fprintf(stderr, "rlhf labels import: unexpected '%s'\n", argv[i]);
            free(jargv);
            return labels_usage();
        }
    }
    if (!file || !dir || !*dir) {
        fprintf(stderr, "rlhf labels import: %s\n", !file ? "which file? (FILE.jsonl)" : "--out NEW_RUN_DIR is required");
        free(jargv);
        return labels_usage();
    }
    char config[4200];
    if (!job_path) {
        snprintf(config, sizeof config, "%s/config.ini", dir);
        if (access(config, F_OK) != 0) {
            fprintf(stderr,
                    "rlhf labels import: no job to check the labels against: give JOB.ini (the job you will run with "
                    "--out %s), or import into a run directory with a config.ini\n",
                    dir);
            free(jargv);
            return 2;
        }
        job_path = config;
    }
    jargv[jn++] = (char *)job_path;
    jargv[jn] = NULL;
    static job_t job;
    const char *out;
    int rc = cli_load_job(jn, jargv, "labels import", &job, &out);
    free(jargv);
    if (rc) return rc;
    char err[1400];
    const env_class_t *cls = env_find(job.env.id);
    if (!cls) {
        fprintf(stderr, "rlhf labels import: %s: unknown env '%s'\n", job_path, job.env.id);
        return 2;
    }
    shape_t sh = {.env_id = job.env.id,
                  .render_kind = cls->render_kind ? cls->render_kind : "",
                  .T = job.feedback.segment_len,
                  .obs_dim = cls->obs_dim,
                  .act_dim = cls->act.discrete ? 1 : cls->act.n,
                  .render_dim = cls->render_dim};
    long n = 0;
    if (import_file(file, dir, &sh, &n, err, sizeof err) != 0) {
        fprintf(stderr, "rlhf labels import: %s\n", err);
        return 1;
    }
    printf("imported %ld label%s for %s into %s/feedback.db; the run's learner gets them first:\n"
           "  rlhf run %s --out %s\n",
           n, n == 1 ? "" : "s", job.env.id, dir, job_path == config ? "JOB.ini" : job_path, dir);
    return 0;
}

int cmd_labels(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return cmd_export(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "import") == 0) return cmd_import(argc - 1, argv + 1);
    if (argc >= 2) fprintf(stderr, "rlhf labels: unknown subcommand '%s'\n", argv[1]);
    return labels_usage();
}

/* labelers.c - see labelers.h. */
#include "labelers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define HASH_BYTES crypto_generichash_BYTES /* 32 */

static const char *CREATE_SQL =
    "CREATE TABLE IF NOT EXISTS labelers(name TEXT PRIMARY KEY, token_hash TEXT,"
    " created_us INT, disabled INT DEFAULT 0)";

int labelers_name_ok(const char *name) {
    if (!name) return 0;
    size_t n = strlen(name);
    if (n < 1 || n > LABELER_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* libsodium must be initialised once per process; sodium_init() is
 * idempotent and thread-safe, and returns 1 when it already was. */
static int sodium_ready(char *err, size_t errlen) {
    if (sodium_init() < 0) {
        err_set(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    return 0;
}

/* hex of crypto_generichash(token), 64 characters + NUL. */
static void token_hash_hex(const char *token, size_t len, char out[2 * HASH_BYTES + 1]) {
    unsigned char h[HASH_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, len, NULL, 0);
    sodium_bin2hex(out, 2 * HASH_BYTES + 1, h, sizeof h);
}

sqlite3 *labelers_open_db(const char *db_path, int create, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(db_path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        err_set(err, errlen, "cannot open %s: %s", db_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    /* A live coordinator may hold the write lock for a moment. */
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, errlen, "%s: %s", db_path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

int labelers_ensure_table(sqlite3 *db, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, CREATE_SQL, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, errlen, "cannot create the labelers table: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int labelers_add_db(sqlite3 *db, const char *name, char token_out[65], char *err, size_t errlen) {
    token_out[0] = '\0';
    if (!labelers_name_ok(name)) {
        err_set(err, errlen, "bad labeler name '%s': use 1 to %d of A-Z a-z 0-9 _ . -", name ? name : "",
                LABELER_NAME_MAX);
        return -1;
    }
    if (sodium_ready(err, errlen) < 0 || labelers_ensure_table(db, err, errlen) < 0) return -1;
    unsigned char raw[32];
    char token[LABELER_TOKEN_LEN + 1], hash[2 * HASH_BYTES + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, sizeof token, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    token_hash_hex(token, LABELER_TOKEN_LEN, hash);

    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO labelers(name, token_hash, created_us, disabled) VALUES(?,?,?,0)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, wall_us());
        rc = sqlite3_step(st);
    }
    int ext = sqlite3_extended_errcode(db);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
            err_set(err, errlen, "a labeler named '%s' already exists (disable it or choose another name)", name);
        else
            err_set(err, errlen, "cannot add labeler '%s': %s", name, sqlite3_errmsg(db));
        sodium_memzero(token, sizeof token);
        return -1;
    }
    memcpy(token_out, token, sizeof token);
    sodium_memzero(token, sizeof token);
    return 0;
}

int labelers_add(const char *db_path, const char *name, char token_out[65], char *err, size_t errlen) {
    token_out[0] = '\0';
    if (!labelers_name_ok(name)) {
        err_set(err, errlen, "bad labeler name '%s': use 1 to %d of A-Z a-z 0-9 _ . -", name ? name : "",
                LABELER_NAME_MAX);
        return -1;
    }
    sqlite3 *db = labelers_open_db(db_path, 1, err, errlen);
    if (!db) return -1;
    int rc = labelers_add_db(db, name, token_out, err, errlen);
    sqlite3_close(db);
    return rc;
}

static int is_hex_token(const char *t) {
    if (strlen(t) != LABELER_TOKEN_LEN) return 0;
    for (int i = 0; i < LABELER_TOKEN_LEN; i++) {
        char c = t[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return 0;
    }
    return 1;
}

int labelers_check(sqlite3 *db, const char *token, char *name_out, size_t name_len) {
    if (name_out && name_len) name_out[0] = '\0';
    if (!db) return -1;
    if (!token || !is_hex_token(token)) return 0;
    if (sodium_init() < 0) return -1;
    /* Tokens are made lowercase; accept one typed in capitals all the same. */
    char lower[LABELER_TOKEN_LEN + 1];
    for (int i = 0; i < LABELER_TOKEN_LEN; i++) {
        char c = token[i];
        lower[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    lower[LABELER_TOKEN_LEN] = '\0';
    char want[2 * HASH_BYTES + 1];
    token_hash_hex(lower, LABELER_TOKEN_LEN, want);
    sodium_memzero(lower, sizeof lower);

    /* Scan every row and compare each hash in constant time: no index
     * lookup whose timing depends on the hash, no early exit on a match.
     * Labelers are people, a handful of rows. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT name, token_hash, disabled FROM labelers", -1, &st, NULL) != SQLITE_OK) {
        /* No table yet means no labeler yet. */
        const char *m = sqlite3_errmsg(db);
        return (m && strstr(m, "no such table")) ? 0 : -1;
    }
    int found = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (!h || n != 2 * HASH_BYTES) continue;
        if (sodium_memcmp(h, want, 2 * HASH_BYTES) == 0 && !found) {
            found = sqlite3_column_int(st, 2) ? 2 : 1; /* 2: the token of a disabled labeler */
            if (found == 1 && name_out && name_len) {
                const char *nm = (const char *)sqlite3_column_text(st, 0);
                snprintf(name_out, name_len, "%s", nm ? nm : "");
            }
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    return found == 1 ? 1 : 0;
}

int labelers_list(const char *db_path, labeler_info_t **out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    sqlite3 *db = labelers_open_db(db_path, 0, err, errlen);
    if (!db) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT name, created_us, disabled FROM labelers ORDER BY name", -1, &st, NULL) !=
        SQLITE_OK) {
        const char *m = sqlite3_errmsg(db);
        int none = m && strstr(m, "no such table");
        if (!none) err_set(err, errlen, "%s: %s", db_path, m);
        sqlite3_close(db);
        return none ? 0 : -1;
    }
    size_t cap = 0;
    labeler_info_t *v = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            v = reallocCheck(v, cap * sizeof *v);
        }
        labeler_info_t *li = &v[(*n)++];
        const char *nm = (const char *)sqlite3_column_text(st, 0);
        snprintf(li->name, sizeof li->name, "%s", nm ? nm : "");
        li->created_us = sqlite3_column_int64(st, 1);
        li->disabled = sqlite3_column_int(st, 2) != 0;
    }
    if (rc != SQLITE_DONE) {
        err_set(err, errlen, "%s: %s", db_path, sqlite3_errmsg(db));
        free(v);
        *n = 0;
        sqlite3_finalize(st);
        sqlite3_close(db);
        return -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    *out = v;
    return 0;
}

int labelers_disable(const char *db_path, const char *name, char *err, size_t errlen) {
    sqlite3 *db = labelers_open_db(db_path, 0, err, errlen);
    if (!db) return -1;
    if (labelers_ensure_table(db, err, errlen) < 0) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "UPDATE labelers SET disabled = 1 WHERE name = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    int ret = 0;
    if (rc != SQLITE_DONE) {
        err_set(err, errlen, "cannot disable labeler '%s': %s", name, sqlite3_errmsg(db));
        ret = -1;
    } else if (sqlite3_changes(db) == 0) {
        err_set(err, errlen, "no labeler named '%s' in %s", name, db_path);
        ret = -1;
    }
    sqlite3_close(db);
    return ret;
}

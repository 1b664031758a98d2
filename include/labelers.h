/* labelers.h - the people allowed to label a run, and their tokens.
 *
 * The labelers table of RUN_DIR/feedback.db (docs/labeling.md):
 *     labelers(name TEXT PRIMARY KEY, token_hash TEXT, created_us INT,
 *              disabled INT DEFAULT 0)
 * A token is 32 random bytes (libsodium randombytes_buf) written as 64
 * lowercase hex characters. Only the hash is stored: token_hash is the hex
 * of crypto_generichash (32 bytes, no key) of the token's 64 ASCII
 * characters, so a copy of feedback.db does not let anyone label. The token
 * itself is returned once, by labelers_add(), and never again.
 *
 * Invariants: a name is [A-Za-z0-9_.-]{1,64} and unique; a labeler is never
 * deleted (labels name their labeler), only disabled, and a disabled
 * labeler's token is refused. labelers_check() compares hashes in constant
 * time (sodium_memcmp) against every row, so its timing does not depend on
 * how much of a guessed token's hash matches.
 *
 * The functions taking a path open the database (WAL, synchronous=FULL, a
 * busy timeout so they can run beside a live coordinator) and close it
 * again; labelers_add() creates the file and the table when missing, list
 * and disable need the file to exist. The coordinator checks tokens on its
 * own connection with labelers_check(), on every request, so a labeler
 * added or disabled meanwhile counts at once. */
#ifndef RLHF_LABELERS_H
#define RLHF_LABELERS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define LABELER_NAME_MAX 64
#define LABELER_TOKEN_LEN 64    /* hex characters */

typedef struct {
    char name[LABELER_NAME_MAX + 1];
    int64_t created_us;         /* wall clock, microseconds since 1970 */
    int disabled;
} labeler_info_t;

/* 1 when name is a valid labeler name ([A-Za-z0-9_.-]{1,64}), else 0. */
int labelers_name_ok(const char *name);

/* Creates the labelers table in an open database if it is missing. 0/-1. */
int labelers_ensure_table(sqlite3 *db, char *err, size_t errlen);

/* Adds a labeler with a fresh token, written to token_out (64 hex + NUL).
 * 0, or -1 with err set: bad name, a name already present, or a database
 * error. */
int labelers_add(const char *db_path, const char *name, char token_out[65], char *err, size_t errlen);
/* The same on an open database. */
int labelers_add_db(sqlite3 *db, const char *name, char token_out[65], char *err, size_t errlen);

/* 1 when token belongs to an enabled labeler (its name copied to
 * name_out[name_len] when name_out is not NULL), 0 when it is unknown,
 * malformed or its labeler is disabled, -1 on a database error. */
int labelers_check(sqlite3 *db, const char *token, char *name_out, size_t name_len);

/* Every labeler, by name, in a new array (*out, free() it) of *n. 0/-1;
 * a database without a labelers table has none. */
int labelers_list(const char *db_path, labeler_info_t **out, size_t *n, char *err, size_t errlen);

/* Disables a labeler: its token is refused from then on. 0, or -1 with err
 * set (unknown name, database error). Disabling twice is not an error. */
int labelers_disable(const char *db_path, const char *name, char *err, size_t errlen);

/* Opens (creating when missing) a feedback database the way this module
 * does: WAL, synchronous=FULL, busy timeout 10 s. NULL with err set. */
sqlite3 *labelers_open_db(const char *db_path, int create, char *err, size_t errlen);

#endif

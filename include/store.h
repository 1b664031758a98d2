/* store.h - the coordinator's feedback store: the segments queries show, the
 * queries, their leases, skips and the labels, in SQLite (OUT/feedback.db,
 * WAL, synchronous FULL or NORMAL by what is written, below; the schema is
 * in docs/http-api.md and the notes), with an in-memory copy of everything
 * for the event loop to read without I/O.
 *
 * The contract the rest of the coordinator relies on:
 *  - a write returns success only once it is committed (fsync'd): a segment
 *    before any query that shows it is served, a query before it is leased,
 *    a label before its LabelAck or HTTP 200. Writes can be grouped in one
 *    transaction with store_begin() / store_commit() (a labelling round, the
 *    leases of one loop turn); store_rollback() (or a failed commit) undoes
 *    the group in the database and in the in-memory copy alike;
 *  - two durabilities, set per commit (PRAGMA synchronous): segments,
 *    queries, labels, retractions and meta are committed with
 *    synchronous=FULL (the WAL fsync'd: they survive a power failure);
 *    leases and skips with synchronous=NORMAL (in WAL mode: they survive a
 *    crash of the process, as the OS has the write, but a power failure
 *    may lose the last of them, which only ends a lease early or offers a
 *    skipped query again). A FULL commit also makes every NORMAL one before
 *    it durable. Lease and skip writes are grouped with store_begin_lazy();
 *    a durable write inside such a transaction is refused;
 *  - a label is stored at most once per idempotency id (UNIQUE in SQL);
 *  - labels are numbered label_base + 1, + 2, ... in the order they are
 *    stored, so "the labels after id N" is a suffix; the numbering survives
 *    a restart (meta 'label_base' and the labels themselves);
 *  - store_open() on an existing file recovers everything: segments,
 *    queries (open or done, with their answer counts), leases, labels
 *    (retracted ones included, flagged).
 *
 * Ids of segments and queries in a new database start at the wall clock in
 * microseconds, and go on from the largest stored id in an existing one: an
 * answer to an old query is never mistaken for an answer to a new one, even
 * by a coordinator that starts on a fresh database.
 *
 * path NULL keeps the database in memory (":memory:"): nothing survives the
 * process (the coordinator does this only without --out, and then refuses
 * HTTP labelers; see coord.h).
 *
 * Owns copies of everything put in, and the SQLite connection. Not
 * thread-safe (one event loop). */
#ifndef RLHF_STORE_H
#define RLHF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "feedback.h"
#include "wire.h"

typedef struct store store_t;

#define STORE_NAME_MAX 64               /* labeler names */
#define STORE_ANSWER_MAX 40             /* "left", "5", "2,0,1", "cant_tell" */

typedef struct {
    uint64_t id;
    Rlhf__QueryKind kind;
    uint32_t k;                         /* segments shown */
    uint64_t seg_ids[LABEL_MAX_K];
    float score;                        /* selection score */
    int answers_wanted;                 /* distinct labelers to ask (redundancy); >= 1 */
    int answers;                        /* stored, not retracted */
    int done;                           /* answers == answers_wanted */
    uint64_t created_us;
    char teacher[STORE_ANSWER_MAX];     /* the answer the true rewards give ("" when none) */
} store_query_t;

typedef struct {
    const Rlhf__Label *label;           /* its id field is the label id; labeler_id the labeler */
    int round_done;                     /* it completed a labelling round */
    uint64_t answered;                  /* answered queries in the run once it was stored */
    int retracted;                      /* undone: never forwarded */
    uint64_t hold_until_us;             /* not forwarded before (the undo window) */
    uint64_t created_us;
    const char *answer;                 /* canonical answer text (store_answer_text) */
} store_label_t;

typedef struct {
    uint64_t query_id;
    char labeler[STORE_NAME_MAX];
    uint64_t deadline_us;               /* wall clock */
} store_lease_t;

enum { STORE_STORED = 1, STORE_DUPLICATE = 0, STORE_FAILED = -1 };

/* Opens (creating when needed) the store at path, or in memory with path
 * NULL. env_id, T, obs_dim, act_dim, render_dim and render_kind describe
 * the segments; an existing database of another environment or shape is
 * refused. NULL with err on failure. */
store_t *store_open(const char *path, const char *env_id, int T, int obs_dim, int act_dim, int render_dim,
                    const char *render_kind, char *err, size_t errlen);
void store_destroy(store_t **self_p);
sqlite3 *store_db(store_t *s);
int store_persistent(const store_t *s);          /* 1 when on disk */

/* Transactions (not nested). 0, or -1 with err; a failed commit rolls back.
 * store_begin: committed with synchronous=FULL; store_begin_lazy: NORMAL,
 * for lease and skip writes only. */
int store_begin(store_t *s, char *err, size_t errlen);
int store_begin_lazy(store_t *s, char *err, size_t errlen);
int store_commit(store_t *s, char *err, size_t errlen);
void store_rollback(store_t *s);

/* Stores one segment (render: T * render_dim floats, or NULL); returns its
 * id (> 0), or 0 with err. Committed at once unless in a transaction. */
uint64_t store_put_segment(store_t *s, const float *obs, const float *act, const float *true_r,
                           const uint8_t *absorbing, const float *render, const char *source_worker,
                           uint64_t source_policy_version, char *err, size_t errlen);
/* A Segment message pointing into the store (valid until the store changes
 * size or is destroyed). 0, or -1 for an unknown id. */
int store_segment(const store_t *s, uint64_t id, Rlhf__Segment *out);
/* The segment's render states (T * render_dim floats), or NULL. */
const float *store_segment_render(const store_t *s, uint64_t id);
int store_render_dim(const store_t *s);
const char *store_render_kind(const store_t *s);
int store_segment_len(const store_t *s);
const char *store_env_id(const store_t *s);

/* Stores a query (q->id, answers, done, created_us ignored); returns its id
 * (> 0), or 0 with err. */
uint64_t store_put_query(store_t *s, const store_query_t *q, char *err, size_t errlen);
const store_query_t *store_query(const store_t *s, uint64_t id);
size_t store_query_count(const store_t *s);
const store_query_t *store_query_at(const store_t *s, size_t i);   /* in id order */

/* Stores a label (a copy; its id set) unless its idempotency id was stored
 * before, and in the same transaction counts it on its query (done once it
 * has answers_wanted answers) and ends labeler's lease on it. Returns
 * STORE_STORED with *label_id the new id, STORE_DUPLICATE with *label_id the
 * first one's, or STORE_FAILED with err (nothing stored: no ack may go). */
int store_put_label(store_t *s, const Rlhf__Label *l, const char *labeler, int round_done, uint64_t answered,
                    uint64_t hold_until_us, uint64_t *label_id, char *err, size_t errlen);
/* The label stored under this idempotency id, or NULL. */
const Rlhf__Label *store_find_label(const store_t *s, const char *idempotency_id);
/* Marks a label retracted and reopens its query (one answer fewer). 0, or -1
 * with err (unknown id, retracted already, commit failed). */
int store_retract_label(store_t *s, uint64_t label_id, char *err, size_t errlen);
/* The canonical answer of a label: "left" | "right" | "equal" | "cant_tell"
 * for a pair, "1".."7" or "cant_tell" for a rating, "2,0,1" or "cant_tell"
 * for a ranking. */
void store_answer_text(const Rlhf__Label *l, char *out, size_t outlen);

/* Labels are numbered from base + 1: set before the first label (e.g. past
 * the learner's copy after a restart on a fresh database); ignored once the
 * store holds labels. */
void store_set_label_base(store_t *s, uint64_t base);
size_t store_label_count(const store_t *s);
/* The i-th label stored (0-based); its label->id is base + 1 + i. */
store_label_t store_label_at(const store_t *s, size_t i);
/* The index of the first label with id > cursor. */
size_t store_label_after(const store_t *s, uint64_t cursor);
/* The label with this id, or -1. */
long store_label_index(const store_t *s, uint64_t label_id);

/* Leases (persisted so a restarted coordinator knows who holds what;
 * lazy: synchronous=NORMAL). */
int store_put_lease(store_t *s, uint64_t query_id, const char *labeler, uint64_t deadline_us, char *err,
                    size_t errlen);
int store_del_lease(store_t *s, uint64_t query_id, const char *labeler);
/* The leases in the database (a malloc'd array the caller frees; *n its
 * length): what store_open() recovered, then kept up to date. */
store_lease_t *store_leases(store_t *s, size_t *n);

/* Skips: labeler passed on the query (not offered to them again, also
 * after a restart). Lazy, like leases. 0, or -1 with err. */
int store_put_skip(store_t *s, uint64_t query_id, const char *labeler, char *err, size_t errlen);
/* The skips in the database (a malloc'd array the caller frees; *n its
 * length; deadline_us 0). */
store_lease_t *store_skips(store_t *s, size_t *n);

/* Fault injection for tests: the next n commits fail (SQLite's commit hook
 * turns them into rollbacks). */
void store_fail_commits(store_t *s, int n);

#endif

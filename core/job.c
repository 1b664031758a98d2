/* job.c - the job table: every key of job_t with its type, range, default
 * and doc, in ONE table (keys[] below) that drives job_defaults(), INI
 * parsing (inih), --set overrides, job_validate(), job_write() and
 * job_each_key().
 *
 * Adding a key: the field in job_t (job.h), one line in keys[], one row in
 * docs/config.md (tests/test_job.c fails until the doc names the key).
 * Sections are whatever keys[] names; a new section needs no other code.
 *
 * Errors are "<where>: [section] key: expected <what>, got '<value>'", where
 * <where> is "file:line" or "--set section.key=value".
 */
#include "job.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

typedef enum { T_INT, T_LLONG, T_U64, T_DOUBLE, T_BOOL, T_STRING, T_ENUM, T_LIST, T_QUERY } key_type_t;

/* Range bounds are inclusive unless flagged open; an infinite bound is none. */
enum { LO_OPEN = 1, HI_OPEN = 2 };

typedef struct {
    const char *section;
    const char *key;
    key_type_t type;
    size_t off;               /* the field in job_t */
    size_t size;              /* T_STRING: the field's capacity, NUL included */
    size_t count_off;         /* T_LIST: the entry count's field */
    double lo, hi;            /* numbers and list entries: the allowed range */
    int flags;                /* LO_OPEN, HI_OPEN */
    const char *const *names; /* T_ENUM: by value; T_QUERY: by bit; NULL-terminated */
    const char *def;          /* the default as text, parsed like a file's value */
    const char *doc;          /* one line: job_write() comments, job_each_key() */
} job_key_t;

/* The offset of job->s.k, which must have type T: _Generic has no default,
 * so an entry whose macro does not match the field's type fails to build
 * rather than writing the wrong width at run time. */
#define AT(s, k, T) _Generic(((job_t *)0)->s.k, T: offsetof(job_t, s.k))
#define SIZE(s, k) sizeof(((job_t *)0)->s.k)

#define INT(s, k, lo, hi, def, doc) {#s, #k, T_INT, AT(s, k, int), 0, 0, lo, hi, 0, NULL, def, doc}
#define LLONG(s, k, lo, hi, def, doc) {#s, #k, T_LLONG, AT(s, k, long long), 0, 0, lo, hi, 0, NULL, def, doc}
#define U64(s, k, def, doc) {#s, #k, T_U64, AT(s, k, uint64_t), 0, 0, 0, 0, 0, NULL, def, doc}
#define DBL(s, k, lo, hi, fl, def, doc) {#s, #k, T_DOUBLE, AT(s, k, double), 0, 0, lo, hi, fl, NULL, def, doc}
#define BOOL(s, k, def, doc) {#s, #k, T_BOOL, AT(s, k, int), 0, 0, 0, 1, 0, NULL, def, doc}
#define STR(s, k, def, doc) {#s, #k, T_STRING, AT(s, k, char *), SIZE(s, k), 0, 0, 0, 0, NULL, def, doc}
#define ENUM(s, k, T, names, def, doc) {#s, #k, T_ENUM, AT(s, k, T), 0, 0, 0, 0, 0, names, def, doc}
/* A list of 1..JOB_MAX_LAYERS ints in [lo, hi] at s.k, its length at s.n. */
#define LIST(s, k, n, lo, hi, def, doc) \
    {#s, #k, T_LIST, AT(s, k, int *), 0, AT(s, n, int), lo, hi, 0, NULL, def, doc}
/* A '+'-joined set of names[i], stored as bits 1 << i in the int s.f. */
#define SET(s, k, f, names, def, doc) {#s, #k, T_QUERY, AT(s, f, int), 0, 0, 0, 0, 0, names, def, doc}

#define INF HUGE_VAL

static const char *const act_names[] = {"tanh", "relu", NULL};
static const char *const feedback_names[] = {"teacher", "true-reward", "human", NULL};
static const char *const select_names[] = {"random", "disagreement", NULL};
/* Bit i is 1 << i: matches QUERY_PAIR, QUERY_RATING, QUERY_RANKING. */
static const char *const query_names[] = {"pair", "rating", "ranking", NULL};

/* Ranges are there to catch typos and nonsense early, not to forbid
 * experiments: the bounds are loose. n_envs * n_steps stays below 2^28 so
 * code that multiplies them in an int cannot overflow. */
static const job_key_t keys[] = {
    STR(env, id, "CartPole-v1", "environment id (rlhf env list); must not be empty"),
    INT(env, n_envs, 1, 4096, "8", "environments per rollout process"),

    LIST(policy, hidden, n_hidden, 1, 65536, "64,64", "hidden layer widths, ','-separated"),
    ENUM(policy, activation, job_act_t, act_names, "tanh", "activation of the hidden layers"),
    DBL(policy, log_std_init, -20, 20, 0, "0", "initial log standard deviation of Gaussian heads"),

    INT(ppo, n_steps, 1, 65536, "128", "steps per environment per iteration"),
    INT(ppo, epochs, 1, 1000, "10", "passes over each iteration's samples"),
    INT(ppo, minibatch, 1, 1 << 28, "256", "samples per minibatch; at most env.n_envs * ppo.n_steps"),
    DBL(ppo, lr, 0, INF, LO_OPEN, "3e-4", "Adam learning rate"),
    BOOL(ppo, anneal_lr, "true", "anneal the learning rate linearly to 0 over the run"),
    DBL(ppo, gamma, 0, 1, 0, "0.99", "discount factor"),
    DBL(ppo, lambda, 0, 1, 0, "0.95", "GAE lambda"),
    DBL(ppo, clip, 0, INF, LO_OPEN, "0.2", "clip range of the probability ratio"),
    DBL(ppo, ent_coef, 0, INF, 0, "0", "entropy bonus coefficient"),
    DBL(ppo, vf_coef, 0, INF, 0, "0.5", "value loss coefficient"),
    DBL(ppo, max_grad_norm, 0, INF, LO_OPEN, "0.5", "clip the global gradient norm to this"),
    BOOL(ppo, norm_obs, "true", "normalise observations by running mean and variance"),
    BOOL(ppo, norm_reward, "false", "true-reward feedback: divide rewards by a running std of the discounted return"),
    BOOL(ppo, norm_learned_reward, "false", "learned reward: the same scaling after the reward model's own normalisation"),
    DBL(ppo, target_kl, 0, INF, 0, "0", "stop the epochs early past this approximate KL; 0 = never"),

    INT(reward, members, 1, 64, "3", "reward model ensemble size"),
    LIST(reward, hidden, n_hidden, 1, 65536, "64,64", "hidden layer widths, ','-separated"),
    ENUM(reward, activation, job_act_t, act_names, "relu", "activation of the hidden layers"),
    DBL(reward, lr, 0, INF, LO_OPEN, "1e-3", "Adam learning rate"),
    INT(reward, epochs, 1, 10000, "20", "passes over the labels per reward model update"),
    INT(reward, batch, 1, 1 << 20, "32", "queries per minibatch"),
    DBL(reward, weight_decay, 0, INF, 0, "1e-4", "L2 penalty"),
    DBL(reward, noise, 0, 1, HI_OPEN, "0.1", "probability that a label is a uniformly random answer"),
    BOOL(reward, bootstrap, "true", "train each member on its own resample of the labels"),

    ENUM(feedback, mode, job_feedback_t, feedback_names, "teacher", "who answers: the scripted teacher, nobody (true reward), people"),
    INT(feedback, labels, 0, 10000000, "500", "label budget; >= 1 unless feedback.mode is true-reward"),
    DBL(feedback, initial_frac, 0, 1, 0, "0.25", "fraction of the budget asked before RL starts"),
    DBL(feedback, label_until, 0, 1, LO_OPEN, "0.5", "fraction of run.total_steps by which every label is asked"),
    INT(feedback, segment_len, 1, 1000, "25", "steps per segment"),
    SET(feedback, query, query_kinds, query_names, "pair", "query kinds: pair, rating, ranking; '+' mixes them"),
    INT(feedback, rank_k, 2, 8, "3", "segments per ranking query"),
    ENUM(feedback, select, job_select_t, select_names, "disagreement", "query selection: random, or by ensemble disagreement"),
    INT(feedback, pool_factor, 1, 100, "4", "candidates per query when selecting by disagreement"),
    INT(feedback, rounds, 1, 100000, "16", "labelling rounds after the initial one (the reward model is refit after each)"),
    STR(feedback, teacher, "oracle", "teacher spec (teacher.h); needed when feedback.mode is teacher"),
    INT(feedback, redundancy, 1, 8, "1", "distinct labelers who answer each query"),
    DBL(feedback, undo_s, 0, 86400, 0, "10", "seconds a label over HTTP may be undone; it reaches the learner after that"),

    INT(coordinator, heartbeat_ms, 10, 3600000, "1000", "heartbeat interval between the coordinator and every peer, ms"),
    INT(coordinator, liveness, 2, 1000, "3", "heartbeat intervals of silence after which a peer is declared dead"),
    INT(coordinator, learner_timeout_ms, 100, 86400000, "60000", "silence after which the learner is declared dead, ms (its updates are long)"),
    INT(coordinator, max_policy_lag, 0, 1000000, "4", "trajectory batches more policy versions behind than this are dropped"),
    INT(coordinator, lease_ms, 100, 86400000, "30000", "how long a labeler holds a query before it goes back on the queue, ms"),
    INT(coordinator, learner_queue, 1, 100000, "64", "trajectory batches the coordinator holds for the learner"),
    INT(coordinator, rollout_credit, 1, 1000, "2", "trajectory batches a rollout worker may have in flight"),
    INT(coordinator, label_resend_ms, 10, 3600000, "2000", "a labeler resends a label not acknowledged within this, ms"),
    INT(coordinator, http_port, 0, 65535, "0", "port of the labelers' HTTP API and pages; 0 = no HTTP"),
    STR(coordinator, http_bind, "127.0.0.1", "address the HTTP API listens on"),
    INT(coordinator, queue_max, 1, 10000000, "1000", "open queries at most; query creation waits when full"),

    LLONG(run, total_steps, 1, 1e15, "100000", "environment steps in the whole run"),
    U64(run, seed, "1", "seed of every random stream"),
    STR(run, out, "", "run directory; empty: runs/<env>-<seed>-<time>"),
    INT(run, eval_episodes, 0, 1000000, "100", "deterministic evaluation episodes at the end"),

    BOOL(security, curve, "false", "rlhf run: make CURVE keys and an allow-list, and encrypt and authenticate every link"),
    STR(security, keys_dir, "", "rlhf run: where the CURVE keys and allow-list go; empty: <run directory>/keys"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* ---- small helpers ------------------------------------------------------ */

/* snprintf that appends to buf; never overflows, truncates quietly. */
__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t n, const char *fmt, ...) {
    size_t len = strnlen(buf, n);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

static void *field(const job_key_t *k, job_t *job) { return (char *)job + k->off; }
static const void *cfield(const job_key_t *k, const job_t *job) { return (const char *)job + k->off; }

static const job_key_t *find_key(const char *section, const char *key) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

static int section_known(const char *section) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0) return 1;
    return 0;
}

/* "env, policy, ppo, ..." in table order, each once. */
static void list_sections(char *buf, size_t n) {
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t j = 0;
        while (j < i && strcmp(keys[j].section, keys[i].section) != 0) j++;
        if (j == i) append(buf, n, "%s%s", buf[0] ? ", " : "", keys[i].section);
    }
}

static void list_keys(const char *section, char *buf, size_t n) {
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0) append(buf, n, "%s%s", buf[0] ? ", " : "", keys[i].key);
}

/* What a key accepts, for "expected <this>, got ...". */
static void describe(const job_key_t *k, char *buf, size_t n) {
    buf[0] = '\0';
    switch (k->type) {
    case T_INT:
    case T_LLONG:
    case T_DOUBLE:
    case T_LIST: {
        const char *what = k->type == T_DOUBLE ? "a number" : "an integer";
        if (k->type == T_LIST)
            append(buf, n, "1 to %d integers joined by ',' (like 64,64), each", JOB_MAX_LAYERS);
        else
            append(buf, n, "%s", what);
        int lo = isfinite(k->lo), hi = isfinite(k->hi);
        if (lo && hi)
            append(buf, n, " in %c%.15g, %.15g%c", k->flags & LO_OPEN ? '(' : '[', k->lo, k->hi,
                   k->flags & HI_OPEN ? ')' : ']');
        else if (lo)
            append(buf, n, " %s %.15g", k->flags & LO_OPEN ? ">" : ">=", k->lo);
        else if (hi)
            append(buf, n, " %s %.15g", k->flags & HI_OPEN ? "<" : "<=", k->hi);
        break;
    }
    case T_U64: append(buf, n, "an integer in [0, %" PRIu64 "]", UINT64_MAX); break;
    case T_BOOL: append(buf, n, "true or false (or yes/no, 1/0)"); break;
    case T_STRING: append(buf, n, "a string of at most %zu bytes without control characters", k->size - 1); break;
    case T_ENUM:
    case T_QUERY:
        append(buf, n, "%s", k->type == T_ENUM ? "one of " : "one or more of ");
        for (int i = 0; k->names[i]; i++) append(buf, n, "%s%s", i ? "|" : "", k->names[i]);
        if (k->type == T_QUERY) append(buf, n, " joined by '+'");
        break;
    }
}

static int in_range(const job_key_t *k, double v) {
    if (v < k->lo || (v == k->lo && (k->flags & LO_OPEN))) return 0;
    if (v > k->hi || (v == k->hi && (k->flags & HI_OPEN))) return 0;
    return 1;
}

/* Base-10 integer. "1e6" is accepted too when it is a whole number, since
 * step counts are naturally written that way; hex and the like are not. */
static int parse_ll(const char *s, long long *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0) {
        *out = v;
        return 0;
    }
    if (s[strspn(s, "0123456789+-.eE")] != '\0') return -1;
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d) || d != floor(d) || fabs(d) > 9e18) return -1;
    *out = (long long)d;
    return 0;
}

static int parse_double(const char *s, double *out) {
    if (!*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int name_index(const char *const *names, const char *s, size_t len) {
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], s, len) == 0) return i;
    return -1;
}

/* Splits s at sep into trimmed parts; calls part() on each. Returns the
 * number of parts, or -1 if part() failed or a part was empty. */
static int split(const char *s, char sep, int (*part)(const char *p, size_t len, void *arg), void *arg) {
    int count = 0;
    for (;;) {
        const char *end = strchr(s, sep);
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *p = s;
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len == 0 || part(p, len, arg) < 0) return -1;
        count++;
        if (!end) return count;
        s = end + 1;
    }
}

typedef struct {
    const job_key_t *k;
    int v[JOB_MAX_LAYERS];
    int n;
} list_parse_t;

static int list_part(const char *p, size_t len, void *arg) {
    list_parse_t *lp = arg;
    char tmp[32];
    long long v;
    if (lp->n == JOB_MAX_LAYERS || len >= sizeof tmp) return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (parse_ll(tmp, &v) < 0 || v < INT32_MIN || v > INT32_MAX || !in_range(lp->k, (double)v)) return -1;
    lp->v[lp->n++] = (int)v;
    return 0;
}

static int set_part(const char *p, size_t len, void *arg) {
    int *bits = arg;
    int i = name_index(query_names, p, len);
    if (i < 0) return -1;
    *bits |= 1 << i;
    return 0;
}

/* Parses v into k's field of job. On error the field is untouched and msg
 * says "[section] key: expected ..., got '...'". */
static int parse_value(const job_key_t *k, job_t *job, const char *v, char *msg, size_t n) {
    void *f = field(k, job);
    switch (k->type) {
    case T_INT:
    case T_LLONG: {
        long long x;
        if (parse_ll(v, &x) < 0 || !in_range(k, (double)x)) break;
        if (k->type == T_LLONG) {
            *(long long *)f = x;
            return 0;
        }
        if (x < INT32_MIN || x > INT32_MAX) break;
        *(int *)f = (int)x;
        return 0;
    }
    case T_U64: {
        /* Digits only: strtoull would take "-1" as 2^64-1. */
        if (!*v || v[strspn(v, "0123456789")] != '\0') break;
        errno = 0;
        unsigned long long x = strtoull(v, NULL, 10);
        if (errno != 0) break;
        *(uint64_t *)f = x;
        return 0;
    }
    case T_DOUBLE: {
        double x;
        if (parse_double(v, &x) < 0 || !in_range(k, x)) break;
        *(double *)f = x;
        return 0;
    }
    case T_BOOL: {
        int x;
        if (parse_bool(v, &x) < 0) break;
        *(int *)f = x;
        return 0;
    }
    case T_ENUM: {
        int i = name_index(k->names, v, strlen(v));
        if (i < 0) break;
        *(int *)f = i;
        return 0;
    }
    case T_QUERY: {
        int bits = 0;
        if (split(v, '+', set_part, &bits) < 0) break;
        *(int *)f = bits;
        return 0;
    }
    case T_LIST: {
        list_parse_t lp = {.k = k};
        if (split(v, ',', list_part, &lp) < 0) break;
        /* Zero the unused tail so equal jobs are equal bytes (job_write's
         * round trip is checked with memcmp). */
        memset(f, 0, sizeof lp.v);
        memcpy(f, lp.v, (size_t)lp.n * sizeof(int));
        *(int *)((char *)job + k->count_off) = lp.n;
        return 0;
    }
    case T_STRING: {
        size_t len = strlen(v);
        int ok = len < k->size;
        /* Control characters and " ;" would not survive job_write() ->
         * job_load(): inih ends a line at '\n' and starts a comment at " ;". */
        for (size_t i = 0; ok && i < len; i++)
            if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || (v[i] == ';' && i && (v[i - 1] == ' ' || v[i - 1] == '\t')))
                ok = 0;
        if (!ok) break;
        memset(f, 0, k->size);
        memcpy(f, v, len);
        return 0;
    }
    }
    char want[256];
    describe(k, want, sizeof want);
    if (k->type == T_STRING && strlen(v) >= k->size)
        err_set(msg, n, "[%s] %s: expected %s, got %zu bytes", k->section, k->key, want, strlen(v));
    else
        err_set(msg, n, "[%s] %s: expected %s, got '%.80s%s'", k->section, k->key, want, v, strlen(v) > 80 ? "..." : "");
    return -1;
}

/* Looks up section/key and parses value; msg as for parse_value(), or names
 * the unknown section or key and what there is instead. */
static int set_key(job_t *job, const char *section, const char *key, const char *value, char *msg, size_t n) {
    char known[512];
    if (!section[0]) {
        err_set(msg, n, "'%s' is outside any section; put it under [section]", key);
        return -1;
    }
    if (!section_known(section)) {
        list_sections(known, sizeof known);
        err_set(msg, n, "unknown section [%s] (known: %s)", section, known);
        return -1;
    }
    const job_key_t *k = find_key(section, key);
    if (!k) {
        list_keys(section, known, sizeof known);
        err_set(msg, n, "[%s] %s: unknown key ([%s] has %s)", section, key, section, known);
        return -1;
    }
    return parse_value(k, job, value ? value : "", msg, n);
}

/* Writes k's value as job_load() reads it back. Doubles get the shortest
 * %g that parses back to the same bits, so 3e-4 prints as 0.0003 rather than
 * %.17g's 0.00029999999999999997; both are exact. */
static void format_value(const job_key_t *k, const job_t *job, char *buf, size_t n) {
    const void *f = cfield(k, job);
    buf[0] = '\0';
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)f); break;
    case T_LLONG: snprintf(buf, n, "%lld", *(const long long *)f); break;
    case T_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)f); break;
    case T_DOUBLE: {
        double v = *(const double *)f;
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
        break;
    }
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)f ? "true" : "false"); break;
    case T_ENUM: {
        int v = *(const int *)f, count = 0;
        while (k->names[count]) count++;
        /* An out-of-range value prints as its number: job_validate() then
         * reports it rather than reading past names[]. */
        if (v >= 0 && v < count)
            snprintf(buf, n, "%s", k->names[v]);
        else
            snprintf(buf, n, "%d", v);
        break;
    }
    case T_QUERY: {
        int v = *(const int *)f, all = 0;
        for (int i = 0; k->names[i]; i++) {
            all |= 1 << i;
            if (v & (1 << i)) append(buf, n, "%s%s", buf[0] ? "+" : "", k->names[i]);
        }
        if (v & ~all) snprintf(buf, n, "%d", v);
        break;
    }
    case T_LIST: {
        const int *v = f;
        int count = *(const int *)((const char *)job + k->count_off);
        if (count < 0 || count > JOB_MAX_LAYERS) count = 0; /* "": job_validate() says why */
        for (int i = 0; i < count; i++) append(buf, n, "%s%d", i ? "," : "", v[i]);
        break;
    }
    case T_STRING: snprintf(buf, n, "%.*s", (int)strnlen(f, k->size), (const char *)f); break;
    }
}

/* ---- API ----------------------------------------------------------------- */

void job_defaults(job_t *job) {
    /* Zeroed first so padding and unused list/string bytes compare equal. */
    memset(job, 0, sizeof *job);
    for (size_t i = 0; i < N_KEYS; i++) {
        char msg[512];
        if (parse_value(&keys[i], job, keys[i].def, msg, sizeof msg) < 0) {
            /* A bad default is a bug in keys[], caught by any test run. */
            fprintf(stderr, "job_defaults: bad default: %s\n", msg);
            abort();
        }
    }
}

/* inih state for one job_load(): the file, the line being parsed, and the
 * first error. We feed inih lines ourselves (ini_parse_stream) because the
 * distribution's inih passes no line number to the handler, and so that an
 * over-long line is an error instead of being split into two lines. */
typedef struct {
    job_t job; /* parsed into a copy: a failed load leaves the caller's job alone */
    const char *path;
    FILE *f;
    int line;     /* lines read so far: the one inih is handling now */
    int err_line; /* the line of our first error; 0: none */
    char *err;
    size_t errlen;
    char *buf;
    size_t cap;
} load_t;

static char *load_reader(char *str, int num, void *stream) {
    load_t *L = stream;
    if (L->err_line) return NULL; /* stop at the first error */
    ssize_t got = getline(&L->buf, &L->cap, L->f);
    if (got < 0) return NULL;
    L->line++;
    /* Leading whitespace dropped: inih would take an indented line for the
     * continuation of the previous value, so an indented "epochs = 10" under
     * "lr = 3e-4" would become lr's value. Indenting keys is common. */
    char *s = L->buf;
    while (*s == ' ' || *s == '\t') s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r')) len--;
    s[len] = '\0';
    if (s[0] == '[') {
        /* Checked here because inih calls the handler only for keys: an
         * unknown section with no keys under it would pass unnoticed. */
        char *close = strchr(s, ']');
        if (close) {
            *close = '\0';
            int known = section_known(s + 1);
            if (!known) {
                char list[256];
                list_sections(list, sizeof list);
                err_set(L->err, L->errlen, "%s:%d: unknown section [%s] (known: %s)", L->path, L->line, s + 1, list);
                L->err_line = L->line;
                return NULL;
            }
            *close = ']';
        }
    }
    if (len + 1 > (size_t)num) {
        if (s[0] == ';' || s[0] == '#') {
            len = (size_t)num - 1; /* still a comment: the rest does not matter */
        } else {
            err_set(L->err, L->errlen, "%s:%d: line is %zu bytes long; inih reads at most %d (use --set for a longer value)",
                   L->path, L->line, len, num - 1);
            L->err_line = L->line;
            return NULL;
        }
    }
    memcpy(str, s, len);
    str[len] = '\0';
    return str;
}

static int load_handler(void *user, const char *section, const char *name, const char *value) {
    load_t *L = user;
    if (L->err_line) return 0;
    char msg[768];
    if (set_key(&L->job, section, name, value, msg, sizeof msg) == 0) return 1;
    err_set(L->err, L->errlen, "%s:%d: %s", L->path, L->line, msg);
    L->err_line = L->line;
    return 0;
}

/* Line lineno of path, for the message about a line inih could not parse. */
static void read_line(const char *path, int lineno, char *out, size_t n) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *buf = NULL;
    size_t cap = 0;
    for (int i = 1; getline(&buf, &cap, f) >= 0; i++) {
        if (i < lineno) continue;
        buf[strcspn(buf, "\r\n")] = '\0';
        char *s = buf;
        while (*s == ' ' || *s == '\t') s++;
        snprintf(out, n, "%s", s);
        break;
    }
    free(buf);
    fclose(f);
}

static int load_stream(job_t *job, FILE *f, const char *path, char *err, size_t errlen);

int job_load(job_t *job, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(err, errlen, "%s: cannot open job file: %s", path, strerror(errno));
        return -1;
    }
    return load_stream(job, f, path, err, errlen);
}

int job_load_text(job_t *job, const char *text, const char *name, char *err, size_t errlen) {
    /* fmemopen over the text: the same reader, line numbers and errors as a
     * file (an empty text is an empty file, which fmemopen refuses). */
    static const char empty[] = "\n";
    size_t n = strlen(text);
    FILE *f = fmemopen((void *)(n ? text : empty), n ? n : 1, "r");
    if (!f) {
        err_set(err, errlen, "%s: cannot read job text: %s", name, strerror(errno));
        return -1;
    }
    return load_stream(job, f, name, err, errlen);
}

char *job_write_text(const job_t *job) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f) {
        fprintf(stderr, "job_write_text: open_memstream: %s\n", strerror(errno));
        abort();
    }
    job_write(job, f);
    fclose(f);
    return text;
}

/* Closes f. */
static int load_stream(job_t *job, FILE *f, const char *path, char *err, size_t errlen) {
    load_t L = {.job = *job, .path = path, .err = err, .errlen = errlen};
    L.f = f;
    int rc = ini_parse_stream(load_reader, &L, load_handler, &L);
    int read_failed = ferror(L.f);
    int read_errno = errno;
    free(L.buf);
    fclose(L.f);
    if (rc == -2) {
        err_set(err, errlen, "%s: out of memory parsing the job file", path);
        return -1;
    }
    /* inih returns the first line it failed on, ours or its own; a line
     * before ours is one inih could not parse. */
    if (rc > 0 && (L.err_line == 0 || rc < L.err_line)) {
        char text[96];
        read_line(path, rc, text, sizeof text);
        err_set(err, errlen, "%s:%d: malformed line: expected '[section]' or 'key = value', got '%s'", path, rc, text);
        return -1;
    }
    if (L.err_line) return -1;
    if (read_failed) {
        err_set(err, errlen, "%s: cannot read job file: %s", path, strerror(read_errno));
        return -1;
    }
    *job = L.job;
    return 0;
}

/* Copies s[0..len) trimmed of blanks into out (truncating to n). */
static void trim_copy(char *out, size_t n, const char *s, size_t len) {
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    snprintf(out, n, "%.*s", (int)len, s);
}

int job_set(job_t *job, const char *assignment, char *err, size_t errlen) {
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    if (!eq || !dot) {
        err_set(err, errlen, "--set %s: expected section.key=value", assignment);
        return -1;
    }
    /* Trimmed like an INI line, so "ppo.lr = 1e-4" means what it says. */
    char section[128], key[128], value[JOB_STR * 8];
    trim_copy(section, sizeof section, assignment, (size_t)(dot - assignment));
    trim_copy(key, sizeof key, dot + 1, (size_t)(eq - dot - 1));
    size_t vlen = strlen(eq + 1);
    if (vlen >= sizeof value) {
        err_set(err, errlen, "--set %s.%s=...: value of %zu bytes is too long", section, key, vlen);
        return -1;
    }
    trim_copy(value, sizeof value, eq + 1, vlen);
    char msg[768];
    if (set_key(job, section, key, value, msg, sizeof msg) < 0) {
        err_set(err, errlen, "--set %.200s: %s", assignment, msg);
        return -1;
    }
    return 0;
}

int job_validate(const job_t *job, char *err, size_t errlen) {
    /* Every key in range: format it and parse it back into a scratch job, so
     * the checks are exactly the parser's (a job built in code gets the same
     * messages as one read from a file). */
    job_t scratch;
    for (size_t i = 0; i < N_KEYS; i++) {
        const job_key_t *k = &keys[i];
        char text[JOB_STR * 8], msg[768];
        if (k->type == T_STRING && strnlen(cfield(k, job), k->size) == k->size) {
            err_set(err, errlen, "[%s] %s: not NUL-terminated within %zu bytes", k->section, k->key, k->size);
            return -1;
        }
        if (k->type == T_LIST) {
            int count = *(const int *)((const char *)job + k->count_off);
            if (count < 1 || count > JOB_MAX_LAYERS) {
                err_set(err, errlen, "[%s] %s: has %d entries; expected 1 to %d", k->section, k->key, count, JOB_MAX_LAYERS);
                return -1;
            }
        }
        format_value(k, job, text, sizeof text);
        if (parse_value(k, &scratch, text, msg, sizeof msg) < 0) {
            err_set(err, errlen, "%s", msg);
            return -1;
        }
    }
    if (!job->env.id[0]) {
        err_set(err, errlen, "[env] id: must not be empty (rlhf env list shows the ids)");
        return -1;
    }
    long long per_iter = (long long)job->env.n_envs * job->ppo.n_steps;
    if (job->ppo.minibatch > per_iter) {
        err_set(err, errlen,
               "[ppo] minibatch: %d is more than the samples per iteration, env.n_envs * ppo.n_steps = %d * %d = %lld",
               job->ppo.minibatch, job->env.n_envs, job->ppo.n_steps, per_iter);
        return -1;
    }
    if (job->run.total_steps < per_iter) {
        err_set(err, errlen,
               "[run] total_steps: %lld is less than one iteration, env.n_envs * ppo.n_steps = %d * %d = %lld",
               job->run.total_steps, job->env.n_envs, job->ppo.n_steps, per_iter);
        return -1;
    }
    if (job->feedback.mode != FEEDBACK_TRUE_REWARD && job->feedback.labels < 1) {
        err_set(err, errlen, "[feedback] labels: must be >= 1 when feedback.mode is %s (only true-reward needs none)",
               feedback_names[job->feedback.mode]);
        return -1;
    }
    if (job->feedback.mode == FEEDBACK_TEACHER && !job->feedback.teacher[0]) {
        err_set(err, errlen, "[feedback] teacher: must not be empty when feedback.mode is teacher (e.g. oracle)");
        return -1;
    }
    return 0;
}

void job_write(const job_t *job, FILE *f) {
    fprintf(f, "# rlhf job, resolved: every key (docs/config.md describes them).\n");
    const char *section = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const job_key_t *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f, "\n[%s]\n", section);
        }
        char text[JOB_STR * 8];
        format_value(k, job, text, sizeof text);
        fprintf(f, "# %s\n%s =%s%s\n", k->doc, k->key, text[0] ? " " : "", text);
    }
}

void job_each_key(void (*fn)(const char *section, const char *key, const char *doc, void *arg), void *arg) {
    for (size_t i = 0; i < N_KEYS; i++) fn(keys[i].section, keys[i].key, keys[i].doc, arg);
}

int job_option(job_t *job, const char *opt, const char *val, char *err, size_t errlen) {
    static const struct {
        const char *opt, *key;  /* key NULL: the value is the whole assignment */
    } options[] = {{"--seed", "run.seed"}, {"--out", "run.out"}, {"--feedback", "feedback.mode"}, {"--set", NULL}};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (strcmp(opt, options[i].opt) != 0) continue;
        char assign[1200], why[1024];
        if (options[i].key)
            snprintf(assign, sizeof assign, "%s=%s", options[i].key, val);
        else
            snprintf(assign, sizeof assign, "%s", val);
        if (job_set(job, assign, why, sizeof why) == 0) return 1;
        if (options[i].key)
            err_set(err, errlen, "%s %s: %s", opt, val, why);
        else
            err_set(err, errlen, "%s", why);   // job_set names the override
        return -1;
    }
    return 0;
}

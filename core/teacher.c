/* teacher.c - see teacher.h.
 *
 * The scripted teacher answers from the true reward, so its answers are only
 * as good as its arithmetic: every path here is written so that extreme or
 * broken returns (huge, infinite, NaN) give a defined answer rather than a
 * NaN probability or an undefined comparison. A NaN return (a NaN reward in
 * the segment) is treated as "cannot tell": a label that carries nothing is
 * safer than a label drawn from garbage.
 *
 * Randomness: every draw comes from the caller's rng, and a draw is made only
 * where the model is stochastic (beta > 0 or eps > 0), so the oracle consumes
 * no random numbers at all.
 */
#include "teacher.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The rating range the oracle starts with. Returns have no natural scale, so
 * a caller that asks for ratings should set the range from the environment's
 * per-step reward bounds times the segment length (or the spec's lo/hi). */
#define TEACHER_DEFAULT_LO 0.0
#define TEACHER_DEFAULT_HI 1.0

void teacher_oracle(teacher_t *t) {
    t->beta = 0.0;
    t->gamma = 1.0;
    t->eps = 0.0;
    t->skip_threshold = -INFINITY;
    t->equal_margin = 0.0;
    t->rating_lo = TEACHER_DEFAULT_LO;
    t->rating_hi = TEACHER_DEFAULT_HI;
}

/* --- numerics ----------------------------------------------------------- */

/* beta <= 0 and beta = inf both mean "perfectly rational"; NaN is treated the
 * same, since the only other choice would be a NaN probability. */
static int is_rational(const teacher_t *t) { return !(t->beta > 0.0) || isinf(t->beta); }

/* 1 / (1 + e^-x) without overflow: exp() is only ever taken of a value <= 0,
 * so it lies in [0, 1] and the result never becomes inf/inf. */
static double sigmoid(double x) {
    if (isnan(x)) return 0.5;
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* A uniform draw strictly inside (0, 1), for the logs of the noise models. */
static double uniform_open(rng_t *rng) {
    double u;
    do u = rng_uniform(rng); while (u <= 0.0);
    return u;
}

/* Standard logistic: the difference of two standard Gumbels, so rating noise
 * has the same shape as the noise behind Bradley-Terry choices. */
static double logistic(rng_t *rng) {
    double u = uniform_open(rng);
    return log(u) - log1p(-u);
}

/* R_a - R_b, with two equal infinities counted as a tie (inf - inf is NaN). */
static double return_diff(double ra, double rb) { return ra == rb ? 0.0 : ra - rb; }

double teacher_return(const teacher_t *t, const float *reward, int T) {
    /* Horner's rule gives sum_t gamma^(T-1-t) r_t with one multiply per step
     * and no pow(): the last step gets weight 1, the first gamma^(T-1). */
    double g = t->gamma, R = 0.0;
    for (int i = 0; i < T; i++) R = R * g + (double)reward[i];
    return R;
}

/* --- queries ------------------------------------------------------------ */

static pref_t pair_from_returns(const teacher_t *t, double ra, double rb, rng_t *rng) {
    if (isnan(ra) || isnan(rb)) return PREF_CANT_TELL;
    /* The comparisons are false for a NaN threshold or margin, which turns
     * the rule off, as the header promises for the threshold. */
    if (fmax(ra, rb) < t->skip_threshold) return PREF_CANT_TELL;
    double d = return_diff(ra, rb);
    if (fabs(d) < t->equal_margin) return PREF_EQUAL;

    pref_t p;
    if (is_rational(t))
        p = d > 0.0 ? PREF_LEFT : d < 0.0 ? PREF_RIGHT : PREF_EQUAL;
    else
        p = rng_uniform(rng) < sigmoid(t->beta * d) ? PREF_LEFT : PREF_RIGHT;

    /* A mistake swaps which segment is better; a tie has no side to swap. */
    if (t->eps > 0.0 && p != PREF_EQUAL && rng_uniform(rng) < t->eps)
        p = p == PREF_LEFT ? PREF_RIGHT : PREF_LEFT;
    return p;
}

pref_t teacher_pair(const teacher_t *t, const float *ra, const float *rb, int T, rng_t *rng) {
    return pair_from_returns(t, teacher_return(t, ra, T), teacher_return(t, rb, T), rng);
}

int teacher_rating(const teacher_t *t, const float *r, int T, rng_t *rng) {
    double R = teacher_return(t, r, T);
    if (isnan(R) || R < t->skip_threshold) return 0;
    if (!is_rational(t)) R += logistic(rng) / t->beta;

    double lo = t->rating_lo, hi = t->rating_hi, x;
    if (hi > lo)
        /* Halved operands: hi - lo and R - lo cannot overflow to inf for
         * finite values, so a wide range still maps linearly. */
        x = (0.5 * R - 0.5 * lo) / (0.5 * hi - 0.5 * lo);
    else
        x = R >= lo ? 1.0 : 0.0; /* a degenerate range: a step at lo */
    if (!(x > 0.0)) x = 0.0;     /* also catches a NaN from a NaN range */
    if (x > 1.0) x = 1.0;
    int rating = (int)lround(1.0 + 6.0 * x);

    if (t->eps > 0.0 && rng_uniform(rng) < t->eps) rating = 1 + rng_int(rng, 7);
    return rating;
}

int teacher_ranking(const teacher_t *t, const float *const *rewards, int k, int T,
                    rng_t *rng, int *order) {
    if (k <= 0) return -1; /* nothing to rank: no label */
    /* Rankings are small (a labeler compares a handful of clips), so a stack
     * buffer covers the usual case and the heap the rest. */
    double stack_keys[32];
    double *key = k <= 32 ? stack_keys : mallocCheck((size_t)k * sizeof *key);
    int skip = 1, bad = 0;
    for (int i = 0; i < k; i++) {
        double R = teacher_return(t, rewards[i], T);
        if (isnan(R)) bad = 1;
        if (!(R < t->skip_threshold)) skip = 0;
        /* Plackett-Luce by the Gumbel-max trick: sorting beta*R + Gumbel
         * makes P(i first) = softmax(beta R)_i, and for two items it is
         * exactly Bradley-Terry, so pairs and rankings agree. Scaling R
         * rather than the noise keeps a tiny beta from dividing to inf. */
        key[i] = is_rational(t) ? R : t->beta * R + rng_gumbel(rng);
        order[i] = i;
    }
    int rc = -1;
    if (!bad && !skip) {
        /* Insertion sort, best first: stable, so the oracle breaks exact ties
         * by position, and fast for the small k this is used with. */
        for (int i = 1; i < k; i++) {
            int o = order[i];
            int j = i - 1;
            while (j >= 0 && key[order[j]] < key[o]) {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = o;
        }
        if (k >= 2 && t->eps > 0.0 && rng_uniform(rng) < t->eps) {
            int i = rng_int(rng, k - 1);
            int tmp = order[i];
            order[i] = order[i + 1];
            order[i + 1] = tmp;
        }
        rc = 0;
    }
    if (key != stack_keys) free(key);
    return rc;
}

/* --- spec parsing ------------------------------------------------------- */

enum { K_BETA, K_GAMMA, K_EPS, K_SKIP, K_EQUAL, K_LO, K_HI, K_COUNT };
#define KEY_BIT(k) (1u << (k))

static const char *const key_names[K_COUNT] = {"beta", "gamma", "eps", "skip", "equal", "lo", "hi"};

/* What each kind accepts. A kind must be given its own parameter: there is no
 * silent default, so "mistake" alone cannot mean an eps nobody chose. The
 * rating range is not a noise model, so every kind accepts lo and hi. */
typedef struct {
    const char *name;
    int key;            /* its own parameter, or -1 (oracle) */
    const char *alias;  /* the parameter's name under this kind */
} kind_t;

static const kind_t kinds[] = {
    {"oracle", -1, NULL},
    {"stochastic", K_BETA, "beta"},
    {"mistake", K_EPS, "eps"},
    {"skip", K_SKIP, "threshold"},
    {"equal", K_EQUAL, "margin"},
    {"myopic", K_GAMMA, "gamma"},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

typedef struct {
    const char *spec;
    char *err;
    size_t errlen;
} parse_ctx_t;

static int fail(parse_ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parse_ctx_t *c, const char *fmt, ...) {
    if (!c->err || c->errlen == 0) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "teacher spec '%s': %s", c->spec, msg);
    return -1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *e = '\0';
    return s;
}

/* Checks and stores one value. name is what the user wrote, for the error. */
static int set_key(parse_ctx_t *c, teacher_t *t, int key, const char *name, const char *text) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || isnan(v))
        return fail(c, "%s '%s' is not a number", name, text);
    if (errno == ERANGE && isinf(v)) return fail(c, "%s '%s' is out of range", name, text);
    switch (key) {
    case K_BETA:
        if (!(v >= 0.0)) return fail(c, "beta must be >= 0 (0: perfectly rational), got %s", text);
        t->beta = isinf(v) ? 0.0 : v; /* infinitely rational is the oracle */
        break;
    case K_GAMMA:
        if (!(v > 0.0 && v <= 1.0)) return fail(c, "gamma must be in (0,1], got %s", text);
        t->gamma = v;
        break;
    case K_EPS:
        if (!(v >= 0.0 && v <= 1.0)) return fail(c, "eps must be in [0,1], got %s", text);
        t->eps = v;
        break;
    case K_SKIP:
        t->skip_threshold = v; /* any return level; -inf: never skip */
        break;
    case K_EQUAL:
        if (!(v >= 0.0 && isfinite(v))) return fail(c, "%s must be finite and >= 0, got %s", name, text);
        t->equal_margin = v;
        break;
    case K_LO:
    case K_HI:
        if (!isfinite(v)) return fail(c, "%s must be finite, got %s", name, text);
        if (key == K_LO) t->rating_lo = v;
        else t->rating_hi = v;
        break;
    }
    return 0;
}

/* Parses "k=v,k=v" for one kind (NULL: a plain list, every key by its own
 * name). seen collects keys over the whole spec, so conflicting values are an
 * error instead of last-one-wins. */
static int parse_list(parse_ctx_t *c, teacher_t *t, const kind_t *kind, char *list, unsigned *seen,
                      const char *part) {
    int have_own = 0;
    /* Split by hand: strtok would merge ",," and hide the empty item. */
    for (char *item = list, *next; item; item = next) {
        next = strchr(item, ',');
        if (next) *next++ = '\0';
        item = trim(item);
        if (*item == '\0') return fail(c, "empty key=value in '%s'", part);
        char *eq = strchr(item, '=');
        if (!eq) return fail(c, "'%s' is not key=value", item);
        *eq = '\0';
        char *name = trim(item), *value = trim(eq + 1);
        int key = -1;
        if (kind && kind->alias && strcmp(name, kind->alias) == 0) key = kind->key;
        for (int k = K_LO; key < 0 && k <= K_HI; k++)
            if (strcmp(name, key_names[k]) == 0) key = k;
        for (int k = 0; !kind && key < 0 && k < K_COUNT; k++)
            if (strcmp(name, key_names[k]) == 0) key = k;
        if (key < 0) {
            if (kind && kind->alias)
                return fail(c, "unknown key '%s' in '%s' (%s takes %s, lo, hi)", name, part,
                            kind->name, kind->alias);
            if (kind)
                return fail(c, "unknown key '%s' in '%s' (%s takes lo, hi)", name, part, kind->name);
            return fail(c, "unknown key '%s' (keys: beta, gamma, eps, skip, equal, lo, hi)", name);
        }
        if (*seen & KEY_BIT(key)) return fail(c, "%s given twice", key_names[key]);
        *seen |= KEY_BIT(key);
        if (set_key(c, t, key, name, value) < 0) return -1;
        if (kind && key == kind->key) have_own = 1;
    }
    if (kind && kind->key >= 0 && !have_own)
        return fail(c, "%s needs %s (e.g. '%s:%s=...')", kind->name, kind->alias, kind->name,
                    kind->alias);
    return 0;
}

static int parse_part(parse_ctx_t *c, teacher_t *t, char *part, unsigned *seen) {
    /* Kept whole for messages: parsing cuts the buffer at ':' ',' '='. */
    char shown[256];
    snprintf(shown, sizeof shown, "%s", part);
    char *colon = strchr(part, ':');
    if (!colon && strchr(part, '=')) return parse_list(c, t, NULL, part, seen, shown);
    char *list = NULL;
    if (colon) {
        *colon = '\0';
        list = colon + 1;
    }
    char *name = trim(part);
    const kind_t *kind = NULL;
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(name, kinds[i].name) == 0) kind = &kinds[i];
    if (!kind)
        return fail(c, "unknown kind '%s' (kinds: oracle, stochastic, mistake, skip, equal, myopic)",
                    name);
    if (!list || *trim(list) == '\0') {
        if (kind->key < 0) return 0; /* "oracle" or "oracle:" */
        return fail(c, "%s needs %s (e.g. '%s:%s=...')", kind->name, kind->alias, kind->name,
                    kind->alias);
    }
    return parse_list(c, t, kind, list, seen, shown);
}

int teacher_parse(const char *spec, teacher_t *t, char *err, size_t errlen) {
    parse_ctx_t c = {spec ? spec : "", err, errlen};
    if (!spec) return fail(&c, "no spec");
    /* Work on a copy so a bad spec leaves *t as it was. */
    teacher_t out;
    teacher_oracle(&out);
    char *buf = strdupCheck(spec);
    unsigned seen = 0;
    int rc = 0;
    if (*trim(buf) == '\0') rc = fail(&c, "empty (try 'oracle')");
    for (char *part = buf, *next; rc == 0 && part; part = next) {
        next = strchr(part, '+');
        if (next) *next++ = '\0';
        char *p = trim(part);
        if (*p == '\0') {
            rc = fail(&c, "empty part between '+'");
            break;
        }
        rc = parse_part(&c, &out, p, &seen);
    }
    free(buf);
    if (rc == 0 && !(out.rating_lo < out.rating_hi))
        rc = fail(&c, "rating range needs lo < hi, got lo=%g hi=%g", out.rating_lo, out.rating_hi);
    if (rc == 0) *t = out;
    return rc;
}

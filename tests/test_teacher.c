/* test_teacher.c - the scripted teacher's noise models, checked by their
 * statistics: each behaviour is drawn many times from a fixed seed and its
 * frequencies compared with the model's probabilities.
 *
 * Tolerances are about 5 binomial standard deviations (sd <= 0.5/sqrt(n)), so
 * a correct teacher fails by chance less than once in a million runs, while a
 * wrong formula (a factor of beta, a flipped sign, a missing rule) misses by
 * far more. The seed is fixed anyway, so a run is reproducible. Measured
 * values are printed ("# ...") for the record. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rng.h"
#include "teacher.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* A binomial frequency within tol of p, printed for the record. */
static void check_rate(const char *what, int hits, int n, double p, double tol) {
    double f = (double)hits / n;
    printf("# %-44s measured %.4f expected %.4f (n=%d, tol %.3f)\n", what, f, p, n, tol);
    if (fabs(f - p) > tol) fail_msg("%s: measured %.4f, expected %.4f +- %.3f", what, f, p, tol);
}

static teacher_t parsed(const char *spec) {
    teacher_t t;
    char err[256] = "";
    if (teacher_parse(spec, &t, err, sizeof err) != 0) fail_msg("parse '%s': %s", spec, err);
    return t;
}

/* --- returns ------------------------------------------------------------ */

static void test_return_formula(void **state) {
    (void)state;
    teacher_t t;
    teacher_oracle(&t);
    const float r[3] = {1, 2, 3};
    assert_true(teacher_return(&t, r, 3) == 6.0);
    assert_true(teacher_return(&t, r, 0) == 0.0);
    /* By hand: 1 * 0.5^2 + 2 * 0.5^1 + 3 * 0.5^0 = 0.25 + 1 + 3. */
    t.gamma = 0.5;
    assert_true(fabs(teacher_return(&t, r, 3) - 4.25) < 1e-12);
    /* Absorbing steps after an episode's end carry r = 0 and change nothing
     * but the discounting of what came before. */
    const float padded[5] = {1, 2, 3, 0, 0};
    assert_true(fabs(teacher_return(&t, padded, 5) - 4.25 * 0.25) < 1e-12);
}

static void test_myopic(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 11);
    const float late[4] = {0, 0, 0, 1}, early[4] = {1, 0, 0, 0};
    teacher_t t = parsed("myopic:gamma=0.9");
    assert_true(fabs(teacher_return(&t, late, 4) - 1.0) < 1e-12);
    assert_true(fabs(teacher_return(&t, early, 4) - 0.729) < 1e-6);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(teacher_pair(&t, late, early, 4, &rng), PREF_LEFT);
        assert_int_equal(teacher_pair(&t, early, late, 4, &rng), PREF_RIGHT);
    }
    /* Without myopia the two are the same return: an exact tie. */
    teacher_t o = parsed("oracle");
    assert_int_equal(teacher_pair(&o, late, early, 4, &rng), PREF_EQUAL);
    /* Myopia can reverse a preference: 2 early loses to 1.5 late at 0.5. */
    const float big_early[3] = {2, 0, 0}, small_late[3] = {0, 0, 1.5f};
    t.gamma = 0.5;
    assert_int_equal(teacher_pair(&o, big_early, small_late, 3, &rng), PREF_LEFT);
    assert_int_equal(teacher_pair(&t, big_early, small_late, 3, &rng), PREF_RIGHT);
}

/* --- pairs -------------------------------------------------------------- */

static void test_oracle_pair(void **state) {
    (void)state;
    rng_t rng, data;
    rng_seed(&rng, 1);
    rng_seed(&data, 2);
    teacher_t t;
    teacher_oracle(&t);
    enum { T = 5 };
    for (int i = 0; i < 20000; i++) {
        float a[T], b[T];
        for (int s = 0; s < T; s++) {
            a[s] = (float)rng_range(&data, -1, 1);
            b[s] = (float)rng_range(&data, -1, 1);
        }
        if (i % 10 == 0) memcpy(b, a, sizeof a); /* exact ties too */
        double ra = teacher_return(&t, a, T), rb = teacher_return(&t, b, T);
        pref_t want = ra > rb ? PREF_LEFT : ra < rb ? PREF_RIGHT : PREF_EQUAL;
        assert_int_equal(teacher_pair(&t, a, b, T, &rng), want);
    }
    /* The oracle is deterministic: it draws no random numbers. */
    rng_t before = rng;
    const float x = 1, y = 2;
    teacher_pair(&t, &x, &y, 1, &rng);
    assert_memory_equal(&before, &rng, sizeof rng);
}

static void test_stochastic_pair(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 3);
    const double betas[] = {0.3, 1.0, 4.0};
    const float drs[] = {-3.0f, -0.5f, 0.0f, 0.25f, 0.7f, 2.0f};
    const int n = 20000;
    for (size_t bi = 0; bi < sizeof betas / sizeof betas[0]; bi++) {
        teacher_t t;
        teacher_oracle(&t);
        t.beta = betas[bi];
        for (size_t di = 0; di < sizeof drs / sizeof drs[0]; di++) {
            const float a = 10.0f + drs[di], b = 10.0f;
            double p = sigmoid(t.beta * (teacher_return(&t, &a, 1) - teacher_return(&t, &b, 1)));
            int left = 0;
            for (int i = 0; i < n; i++) {
                pref_t q = teacher_pair(&t, &a, &b, 1, &rng);
                assert_true(q == PREF_LEFT || q == PREF_RIGHT); /* no EQUAL without a margin */
                left += q == PREF_LEFT;
            }
            char what[64];
            snprintf(what, sizeof what, "stochastic beta=%.1f dR=%+.2f P(left)", t.beta, drs[di]);
            check_rate(what, left, n, p, 0.018);
        }
    }
}

static void test_mistake(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 4);
    const float hi = 5, lo = 1;
    const double epss[] = {0.0, 0.1, 0.3, 1.0};
    const int n = 20000;
    for (size_t ei = 0; ei < sizeof epss / sizeof epss[0]; ei++) {
        teacher_t t;
        teacher_oracle(&t);
        t.eps = epss[ei];
        int flips = 0;
        for (int i = 0; i < n; i++) {
            /* Alternate sides so a flip cannot hide behind a side bias. */
            pref_t q = i & 1 ? teacher_pair(&t, &hi, &lo, 1, &rng) : teacher_pair(&t, &lo, &hi, 1, &rng);
            pref_t right = i & 1 ? PREF_LEFT : PREF_RIGHT;
            assert_true(q == PREF_LEFT || q == PREF_RIGHT);
            flips += q != right;
        }
        char what[64];
        snprintf(what, sizeof what, "mistake eps=%.1f flip rate", t.eps);
        check_rate(what, flips, n, t.eps, 0.018);
        /* A tie has no side to flip: it stays EQUAL. */
        for (int i = 0; i < 200; i++) assert_int_equal(teacher_pair(&t, &hi, &hi, 1, &rng), PREF_EQUAL);
    }
    /* On top of a stochastic teacher: P(left) = (1-eps) s + eps (1-s). */
    teacher_t t = parsed("stochastic:beta=1+mistake:eps=0.2");
    double s = sigmoid(4.0), p = 0.8 * s + 0.2 * (1 - s);
    int left = 0;
    for (int i = 0; i < n; i++) left += teacher_pair(&t, &hi, &lo, 1, &rng) == PREF_LEFT;
    check_rate("stochastic beta=1 + mistake eps=0.2 P(left)", left, n, p, 0.018);
}

static void test_skip(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 5);
    /* Checked on a noisy teacher too: skip comes first, before any draw. */
    const char *specs[] = {"skip:threshold=2", "skip=2,beta=1,eps=0.2,equal=0.5"};
    for (int si = 0; si < 2; si++) {
        teacher_t t = parsed(specs[si]);
        for (int i = 0; i <= 16; i++) {
            for (int j = 0; j <= 16; j++) {
                const float a = (float)(i * 0.25), b = (float)(j * 0.25);
                int both_below = a < 2.0f && b < 2.0f;
                for (int rep = 0; rep < 20; rep++) {
                    pref_t q = teacher_pair(&t, &a, &b, 1, &rng);
                    assert_int_equal(q == PREF_CANT_TELL, both_below);
                }
            }
        }
    }
    /* -inf and NaN thresholds never skip. */
    teacher_t t;
    teacher_oracle(&t);
    const float m = -1e30f, z = -2e30f;
    assert_int_equal(teacher_pair(&t, &m, &z, 1, &rng), PREF_LEFT);
    t.skip_threshold = NAN;
    assert_int_equal(teacher_pair(&t, &m, &z, 1, &rng), PREF_LEFT);
}

static void test_equal(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 6);
    const char *specs[] = {"equal:margin=1", "equal=1,beta=2,eps=0.3"};
    for (int si = 0; si < 2; si++) {
        teacher_t t = parsed(specs[si]);
        for (int i = -12; i <= 12; i++) {
            /* dR in quarters, exact in float: the margin edge 1.0 included. */
            const float a = (float)(i * 0.25), b = 0.0f;
            int inside = fabsf(a - b) < 1.0f;
            for (int rep = 0; rep < 50; rep++) {
                pref_t q = teacher_pair(&t, &a, &b, 1, &rng);
                assert_int_equal(q == PREF_EQUAL, inside);
                assert_true(q != PREF_CANT_TELL);
            }
        }
    }
    /* Skip is checked before equal. */
    teacher_t t = parsed("skip:threshold=5+equal:margin=1");
    const float a = 1, b = 1.5f, c = 7, d = 7.5f;
    assert_int_equal(teacher_pair(&t, &a, &b, 1, &rng), PREF_CANT_TELL);
    assert_int_equal(teacher_pair(&t, &c, &d, 1, &rng), PREF_EQUAL);
}

static void test_extreme_returns(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 7);
    teacher_t t = parsed("beta=1000");
    const float big = 3e38f, inf = INFINITY, ninf = -INFINITY, nan = NAN, zero = 0;
    const float many[4] = {3e38f, 3e38f, 3e38f, 3e38f}; /* sums past float */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(teacher_pair(&t, &big, &zero, 1, &rng), PREF_LEFT);
        assert_int_equal(teacher_pair(&t, &ninf, &big, 1, &rng), PREF_RIGHT);
        assert_int_equal(teacher_pair(&t, &inf, &ninf, 1, &rng), PREF_LEFT);
        assert_int_equal(teacher_pair(&t, many, many, 4, &rng) <= PREF_RIGHT, 1);
        assert_int_equal(teacher_pair(&t, &nan, &zero, 1, &rng), PREF_CANT_TELL);
    }
    /* Two equal infinities: a tie, not a NaN coin. */
    teacher_t o;
    teacher_oracle(&o);
    assert_int_equal(teacher_pair(&o, &inf, &inf, 1, &rng), PREF_EQUAL);
    int left = 0;
    for (int i = 0; i < 2000; i++) left += teacher_pair(&t, &inf, &inf, 1, &rng) == PREF_LEFT;
    check_rate("stochastic +inf vs +inf P(left)", left, 2000, 0.5, 0.06);
    /* Huge finite difference at tiny beta: still a clean probability. */
    t.beta = 1e-300;
    for (int i = 0; i < 100; i++) {
        pref_t q = teacher_pair(&t, &big, &zero, 1, &rng);
        assert_true(q == PREF_LEFT || q == PREF_RIGHT);
    }
    assert_int_equal(teacher_rating(&o, &nan, 1, &rng), 0);
    assert_int_equal(teacher_rating(&o, &inf, 1, &rng), 7);
    assert_int_equal(teacher_rating(&o, &ninf, 1, &rng), 1);
    int order[2];
    const float *nanpair[2] = {&zero, &nan};
    assert_int_equal(teacher_ranking(&o, nanpair, 2, 1, &rng, order), -1);
}

/* --- ratings ------------------------------------------------------------ */

static void test_rating_oracle(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 8);
    teacher_t t = parsed("lo=0,hi=6");
    /* Returns 0..6 map onto 1..7 exactly; outside the range they clamp. */
    for (int i = 0; i <= 6; i++) {
        const float r = (float)i;
        assert_int_equal(teacher_rating(&t, &r, 1, &rng), i + 1);
    }
    const float below = -100, above = 100;
    assert_int_equal(teacher_rating(&t, &below, 1, &rng), 1);
    assert_int_equal(teacher_rating(&t, &above, 1, &rng), 7);
    /* Monotone over a fine sweep, with every rating reached. */
    int prev = 0, seen = 0;
    for (int i = -20; i <= 80; i++) {
        const float r = (float)(i * 0.1);
        int k = teacher_rating(&t, &r, 1, &rng);
        assert_true(k >= 1 && k <= 7 && k >= prev);
        seen |= 1 << k;
        prev = k;
    }
    assert_int_equal(seen, 0xfe);
    /* A segment of several steps is rated on its return. */
    teacher_t w = parsed("lo=-10,hi=10");
    const float seg[4] = {2, 2, 3, 3};
    assert_int_equal(teacher_rating(&w, seg, 4, &rng), 7);
    /* Skip: below the threshold is no rating. */
    teacher_t s = parsed("skip=2,lo=0,hi=6");
    const float one = 1, three = 3;
    assert_int_equal(teacher_rating(&s, &one, 1, &rng), 0);
    assert_int_equal(teacher_rating(&s, &three, 1, &rng), 4);
}

static void test_rating_noise(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 9);
    /* With lo=0, hi=6 a rating is round(1 + R + noise) clamped, so for R = 3
     * and logistic noise of scale 1/beta, P(k) = F(k-3.5) - F(k-4.5) with
     * F(x) = sigmoid(beta x), the ends taking the tails. */
    const double betas[] = {1.0, 3.0};
    const int n = 30000;
    for (int bi = 0; bi < 2; bi++) {
        teacher_t t = parsed("lo=0,hi=6");
        t.beta = betas[bi];
        const float r = 3;
        int count[8] = {0};
        double sum = 0;
        for (int i = 0; i < n; i++) {
            int k = teacher_rating(&t, &r, 1, &rng);
            assert_true(k >= 1 && k <= 7);
            count[k]++;
            sum += k;
        }
        for (int k = 1; k <= 7; k++) {
            double up = k == 7 ? 1.0 : sigmoid(t.beta * (k - 3.5));
            double down = k == 1 ? 0.0 : sigmoid(t.beta * (k - 4.5));
            char what[64];
            snprintf(what, sizeof what, "rating beta=%.0f R=3 P(%d)", t.beta, k);
            check_rate(what, count[k], n, up - down, 0.015);
        }
        /* Symmetric noise around the middle: mean 4. */
        printf("# rating beta=%.0f R=3 mean %.4f expected 4\n", t.beta, sum / n);
        assert_true(fabs(sum / n - 4.0) < 0.05);
    }
    /* Noisy ratings stay monotone in the mean. */
    teacher_t t = parsed("beta=1,lo=0,hi=6");
    double prev = 0;
    for (int i = 0; i <= 12; i++) {
        const float r = (float)(i * 0.5);
        double sum = 0;
        for (int j = 0; j < 2000; j++) sum += teacher_rating(&t, &r, 1, &rng);
        assert_true(sum / 2000 > prev);
        prev = sum / 2000;
    }
    /* A mistake replaces the rating by a uniform one: with eps = 0.3 the
     * oracle's 4 stays 4 with 0.7 + 0.3/7, every other value 0.3/7. */
    teacher_t m = parsed("mistake:eps=0.3,lo=0,hi=6");
    const float r = 3;
    int count[8] = {0};
    for (int i = 0; i < n; i++) count[teacher_rating(&m, &r, 1, &rng)]++;
    assert_int_equal(count[0], 0);
    check_rate("rating mistake eps=0.3 P(4)", count[4], n, 0.7 + 0.3 / 7, 0.015);
    check_rate("rating mistake eps=0.3 P(1)", count[1], n, 0.3 / 7, 0.01);
    check_rate("rating mistake eps=0.3 P(7)", count[7], n, 0.3 / 7, 0.01);
}

/* --- rankings ----------------------------------------------------------- */

static void test_ranking_oracle(void **state) {
    (void)state;
    rng_t rng, data;
    rng_seed(&rng, 10);
    rng_seed(&data, 12);
    teacher_t t;
    teacher_oracle(&t);
    enum { K = 6, T = 3 };
    float seg[K][T];
    const float *rows[K];
    for (int i = 0; i < K; i++) rows[i] = seg[i];
    for (int trial = 0; trial < 2000; trial++) {
        for (int i = 0; i < K; i++)
            for (int s = 0; s < T; s++) seg[i][s] = (float)rng_range(&data, -1, 1);
        int order[K];
        assert_int_equal(teacher_ranking(&t, rows, K, T, &rng, order), 0);
        int used = 0;
        for (int i = 0; i < K; i++) used |= 1 << order[i];
        assert_int_equal(used, (1 << K) - 1); /* a permutation */
        for (int i = 1; i < K; i++)
            assert_true(teacher_return(&t, rows[order[i - 1]], T) >= teacher_return(&t, rows[order[i]], T));
    }
    /* Exact ties keep their positions. */
    const float a = 1, b = 2;
    const float *tied[4] = {&a, &b, &a, &b};
    int order[4];
    assert_int_equal(teacher_ranking(&t, tied, 4, 1, &rng, order), 0);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 0);
    assert_int_equal(order[3], 2);
    /* Skip: only when every return is below the threshold. */
    teacher_t s = parsed("skip:threshold=1.5");
    const float *low[2] = {&a, &a}, *mixed[2] = {&a, &b};
    assert_int_equal(teacher_ranking(&s, low, 2, 1, &rng, order), -1);
    assert_int_equal(teacher_ranking(&s, mixed, 2, 1, &rng, order), 0);
    assert_int_equal(order[0], 1);
    /* A mistake swaps one random pair of neighbours. */
    teacher_t m = parsed("mistake:eps=1");
    const float v[5] = {5, 4, 3, 2, 1};
    const float *five[5] = {&v[0], &v[1], &v[2], &v[3], &v[4]};
    int where[4] = {0};
    for (int trial = 0; trial < 4000; trial++) {
        int o[5];
        assert_int_equal(teacher_ranking(&m, five, 5, 1, &rng, o), 0);
        int swapped = -1, moved = 0;
        for (int i = 0; i < 5; i++) moved += o[i] != i;
        for (int i = 0; i < 4; i++)
            if (o[i] == i + 1 && o[i + 1] == i) swapped = i;
        assert_int_equal(moved, 2);
        assert_true(swapped >= 0);
        where[swapped]++;
    }
    for (int i = 0; i < 4; i++) check_rate("ranking mistake: swap position", where[i], 4000, 0.25, 0.04);
}

static void test_ranking_plackett_luce(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 13);
    enum { K = 4 };
    const float r[K] = {0.0f, 0.5f, 1.0f, 2.0f};
    const float *rows[K] = {&r[0], &r[1], &r[2], &r[3]};
    const double betas[] = {0.5, 1.0, 2.0};
    const int n = 20000;
    for (int bi = 0; bi < 3; bi++) {
        teacher_t t;
        teacher_oracle(&t);
        t.beta = betas[bi];
        double z = 0, w[K];
        for (int i = 0; i < K; i++) z += w[i] = exp(t.beta * r[i]);
        int top[K] = {0}, full = 0;
        for (int i = 0; i < n; i++) {
            int o[K];
            assert_int_equal(teacher_ranking(&t, rows, K, 1, &rng, o), 0);
            top[o[0]]++;
            full += o[0] == 3 && o[1] == 2 && o[2] == 1 && o[3] == 0;
        }
        for (int i = 0; i < K; i++) {
            char what[64];
            snprintf(what, sizeof what, "ranking beta=%.1f P(top = R %.1f)", t.beta, r[i]);
            check_rate(what, top[i], n, w[i] / z, 0.018);
        }
        /* The whole order, by the Plackett-Luce product. */
        double p = w[3] / z * w[2] / (z - w[3]) * w[1] / (w[1] + w[0]);
        char what[64];
        snprintf(what, sizeof what, "ranking beta=%.1f P(exact order)", t.beta);
        check_rate(what, full, n, p, 0.018);
    }
    /* k = 2 is Bradley-Terry: a ranking agrees with a pair query. */
    teacher_t t = parsed("stochastic:beta=1");
    const float *two[2] = {&r[2], &r[0]};
    int first = 0;
    for (int i = 0; i < n; i++) {
        int o[2];
        teacher_ranking(&t, two, 2, 1, &rng, o);
        first += o[0] == 0;
    }
    check_rate("ranking k=2 beta=1 dR=1 P(first on top)", first, n, sigmoid(1.0), 0.018);
}

/* --- parsing ------------------------------------------------------------ */

static void test_parse_good(void **state) {
    (void)state;
    teacher_t t = parsed("oracle");
    assert_true(t.beta == 0 && t.gamma == 1 && t.eps == 0 && t.equal_margin == 0);
    assert_true(isinf(t.skip_threshold) && t.skip_threshold < 0);
    assert_true(t.rating_lo < t.rating_hi);

    t = parsed("stochastic:beta=1");
    assert_true(t.beta == 1);
    t = parsed("mistake:eps=0.1");
    assert_true(t.eps == 0.1);
    t = parsed("skip:threshold=10");
    assert_true(t.skip_threshold == 10);
    t = parsed("equal:margin=2");
    assert_true(t.equal_margin == 2);
    t = parsed("myopic:gamma=0.9");
    assert_true(t.gamma == 0.9);

    t = parsed("beta=1,eps=0.1,gamma=0.99,skip=10,equal=2");
    assert_true(t.beta == 1 && t.eps == 0.1 && t.gamma == 0.99 && t.skip_threshold == 10 &&
                t.equal_margin == 2);

    t = parsed("stochastic:beta=2+mistake:eps=0.05");
    assert_true(t.beta == 2 && t.eps == 0.05 && t.gamma == 1);
    t = parsed(" stochastic : beta = 2 , lo=-5, hi=50 + myopic:gamma=1 + oracle ");
    assert_true(t.beta == 2 && t.rating_lo == -5 && t.rating_hi == 50);
    t = parsed("oracle+skip=-inf,lo=0,hi=500");
    assert_true(isinf(t.skip_threshold) && t.rating_hi == 500);
    t = parsed("stochastic:beta=inf"); /* infinitely rational: the oracle */
    assert_true(t.beta == 0);
    t = parsed("beta=0,eps=1,gamma=1e-3");
    assert_true(t.eps == 1 && t.gamma == 1e-3);
}

static void expect_error(const char *spec, const char *needle) {
    teacher_t t;
    teacher_oracle(&t);
    t.beta = 42; /* a failed parse leaves the struct alone */
    char err[256] = "";
    if (teacher_parse(spec, &t, err, sizeof err) != -1) fail_msg("'%s' parsed", spec);
    if (!strstr(err, needle)) fail_msg("'%s': error '%s' lacks '%s'", spec, err, needle);
    if (strncmp(err, "teacher spec '", 14) != 0) fail_msg("'%s': error '%s' lacks the prefix", spec, err);
    assert_true(t.beta == 42);
}

static void test_parse_errors(void **state) {
    (void)state;
    char err[128];
    teacher_t t;
    assert_int_equal(teacher_parse("mistake:eps=2", &t, err, sizeof err), -1);
    assert_string_equal(err, "teacher spec 'mistake:eps=2': eps must be in [0,1], got 2");

    expect_error("mistake:eps=-0.1", "eps must be in [0,1]");
    expect_error("myopic:gamma=0", "gamma must be in (0,1]");
    expect_error("myopic:gamma=1.5", "gamma must be in (0,1]");
    expect_error("stochastic:beta=-1", "beta must be >= 0");
    expect_error("equal:margin=-1", "margin must be finite and >= 0");
    expect_error("equal=inf", "equal must be finite and >= 0");
    expect_error("lo=5,hi=1", "lo < hi");
    expect_error("hi=-1", "lo < hi");
    expect_error("lo=inf", "lo must be finite");
    expect_error("stochastic:beta=abc", "beta 'abc' is not a number");
    expect_error("stochastic:beta=", "beta '' is not a number");
    expect_error("stochastic:beta=nan", "beta 'nan' is not a number");
    expect_error("stochastic:beta=1e999", "out of range");
    expect_error("stochastic:beta=1x", "beta '1x' is not a number");
    expect_error("gaussian:sigma=1", "unknown kind 'gaussian'");
    expect_error("orcale", "unknown kind 'orcale'");
    expect_error("mistake:beta=1", "unknown key 'beta' in 'mistake:beta=1' (mistake takes eps, lo, hi)");
    expect_error("skip:margin=1", "unknown key 'margin'");
    expect_error("oracle:beta=1", "unknown key 'beta'");
    expect_error("beta=1,temperature=2", "unknown key 'temperature'");
    expect_error("threshold=3", "unknown key 'threshold'"); /* only under skip: */
    expect_error("stochastic", "stochastic needs beta");
    expect_error("mistake:", "mistake needs eps");
    expect_error("skip:lo=0,hi=1", "skip needs threshold");
    expect_error("stochastic:beta", "'beta' is not key=value");
    expect_error("stochastic:beta=1,,lo=0", "empty key=value in 'stochastic:beta=1,,lo=0'");
    expect_error("stochastic:beta=1+", "empty part");
    expect_error("stochastic:beta=1+beta=2", "beta given twice");
    expect_error("", "empty");
    expect_error("   ", "empty");
    /* No error buffer: still just -1. */
    assert_int_equal(teacher_parse("bogus", &t, NULL, 0), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_return_formula),
        cmocka_unit_test(test_myopic),
        cmocka_unit_test(test_oracle_pair),
        cmocka_unit_test(test_stochastic_pair),
        cmocka_unit_test(test_mistake),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_extreme_returns),
        cmocka_unit_test(test_rating_oracle),
        cmocka_unit_test(test_rating_noise),
        cmocka_unit_test(test_ranking_oracle),
        cmocka_unit_test(test_ranking_plackett_luce),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* teacher.h - the scripted teacher: a stand-in for people that answers
 * queries from the environment's true reward, with the noise models of B-Pref
 * (Lee et al. 2021).
 *
 * A segment's (myopic) return is R = sum_t gamma^(T-1-t) r_t (gamma = 1: the
 * plain sum; steps in the absorbing state after an episode's end have r = 0).
 * For a pair (a, b), in this order:
 *   skip     : max(R_a, R_b) < skip_threshold          -> PREF_CANT_TELL
 *   equal    : |R_a - R_b| < equal_margin              -> PREF_EQUAL
 *   stochastic: P(a > b) = sigmoid(beta (R_a - R_b)); beta <= 0 means
 *              infinite (the oracle: the larger return wins, exact ties equal)
 *   mistake  : the answer is flipped with probability eps.
 * The oracle is beta = 0, gamma = 1, eps = 0, no skip, no equal.
 *
 * Ratings: the return is mapped linearly from [rating_lo, rating_hi] to
 * [1, 7] (clamped), with Gumbel-free logistic noise of scale 1/beta when
 * beta > 0, rounded; mistake replaces it by a uniform rating with prob eps.
 * Rankings of k: sort by R + Gumbel(0, 1/beta) (Plackett-Luce, consistent
 * with Bradley-Terry); mistake swaps two random neighbours with prob eps.
 * Skip applies to both (all returns below the threshold: skipped).
 */
#ifndef RLHF_TEACHER_H
#define RLHF_TEACHER_H

#include <stddef.h>

#include "rng.h"

typedef enum {
    PREF_LEFT = 0,      /* the first segment is better */
    PREF_RIGHT = 1,     /* the second segment is better */
    PREF_EQUAL = 2,     /* a tie: both as good */
    PREF_CANT_TELL = 3, /* the labeler could not decide: carries no label */
} pref_t;

typedef struct {
    double beta;            /* rationality; <= 0: perfectly rational */
    double gamma;           /* myopia; 1: none */
    double eps;             /* mistake probability */
    double skip_threshold;  /* -inf (or NAN): never skip */
    double equal_margin;    /* 0: none (the oracle still calls exact ties equal) */
    double rating_lo, rating_hi; /* returns mapped to ratings 1 and 7 */
} teacher_t;

/* The oracle: perfectly rational, no noise. */
void teacher_oracle(teacher_t *t);

/* Parses a spec such as "oracle", "stochastic:beta=1", "mistake:eps=0.1",
 * "skip:threshold=10", "equal:margin=2", "myopic:gamma=0.9", or a plain
 * comma list "beta=1,eps=0.1,gamma=0.99,skip=10,equal=2" (kinds may be joined
 * with '+': "stochastic:beta=2+mistake:eps=0.05"). Starts from the oracle.
 * Returns 0, or -1 with err naming the bad part. */
int teacher_parse(const char *spec, teacher_t *t, char *err, size_t errlen);

/* The (myopic) return of one segment of T steps. */
double teacher_return(const teacher_t *t, const float *reward, int T);

pref_t teacher_pair(const teacher_t *t, const float *ra, const float *rb, int T, rng_t *rng);

/* 1..7, or 0 for a skip. */
int teacher_rating(const teacher_t *t, const float *r, int T, rng_t *rng);

/* rewards[i] is segment i's (T) true rewards. Writes order[0..k-1], best
 * first. Returns 0, or -1 for a skip. */
int teacher_ranking(const teacher_t *t, const float *const *rewards, int k, int T,
                    rng_t *rng, int *order);

#endif

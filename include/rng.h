/* rng.h - deterministic random numbers (xoshiro256**, seeded by splitmix64).
 *
 * Every stochastic choice in the system draws from an rng_t that was seeded
 * from the job's seed, so a run is reproducible for a seed. The state is a
 * plain struct: copy it to checkpoint it. */
#ifndef RLHF_RNG_H
#define RLHF_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
    int has_spare;    /* normal(): Box-Muller makes two at a time */
    double spare;
} rng_t;

void rng_seed(rng_t *rng, uint64_t seed);
/* Derives an independent stream: same parent and index give the same child. */
void rng_split(const rng_t *parent, uint64_t index, rng_t *child);
uint64_t rng_u64(rng_t *rng);
double rng_uniform(rng_t *rng);                 /* [0, 1) */
double rng_range(rng_t *rng, double lo, double hi); /* [lo, hi) */
int rng_int(rng_t *rng, int n);                  /* [0, n) */
double rng_normal(rng_t *rng);                   /* N(0, 1) */
double rng_gumbel(rng_t *rng);                   /* standard Gumbel */

#endif

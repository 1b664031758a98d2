/* rng.c - see rng.h. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
    rng->has_spare = 0;
    rng->spare = 0.0;
}

void rng_split(const rng_t *parent, uint64_t index, rng_t *child) {
    uint64_t x = parent->s[0] ^ (parent->s[2] << 1) ^ (index * 0xd1342543de82ef95ULL);
    rng_seed(child, splitmix64(&x) ^ index);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rng_t *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_t *rng) { return (double)(rng_u64(rng) >> 11) * 0x1.0p-53; }

double rng_range(rng_t *rng, double lo, double hi) { return lo + (hi - lo) * rng_uniform(rng); }

int rng_int(rng_t *rng, int n) { return n <= 1 ? 0 : (int)(rng_uniform(rng) * n); }

double rng_normal(rng_t *rng) {
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u1, u2;
    do u1 = rng_uniform(rng); while (u1 <= 0.0);
    u2 = rng_uniform(rng);
    double r = sqrt(-2.0 * log(u1));
    rng->spare = r * sin(2.0 * M_PI * u2);
    rng->has_spare = 1;
    return r * cos(2.0 * M_PI * u2);
}

double rng_gumbel(rng_t *rng) {
    double u;
    do u = rng_uniform(rng); while (u <= 0.0);
    return -log(-log(u));
}

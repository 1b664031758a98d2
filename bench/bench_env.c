/* bench_env.c - environment steps per second, one core, random actions and
 * no policy: the cost of the simulators alone, which bounds how fast a
 * rollout worker can go. Each environment runs for about half a second
 * (after a short warm-up), resetting whenever an episode ends, as a rollout
 * does. Prints one row per environment: steps/s and ns/step. */
#include <stdio.h>

#include "env.h"
#include "rng.h"
#include "util.h"

/* Steps env for about seconds; returns steps per second. */
static double steps_per_second(env_t *env, rng_t *rng, double seconds, long *steps_out) {
    const env_class_t *cls = env_class(env);
    float obs[ENV_MAX_DIM], action[ENV_MAX_DIM];
    double sink = 0;
    long steps = 0;
    env_reset(env, obs);
    double start = now_s(), elapsed = 0;
    while (elapsed < seconds) {
        /* Time in batches so the clock is not what gets measured. */
        for (int i = 0; i < 4096; i++) {
            if (cls->act.discrete) action[0] = (float)rng_int(rng, cls->act.n);
            else
                for (int d = 0; d < cls->act.n; d++)
                    action[d] = (float)rng_range(rng, cls->act.low[d], cls->act.high[d]);
            int term, trunc;
            sink += env_step(env, action, obs, &term, &trunc);
            if (term || trunc) env_reset(env, obs);
        }
        steps += 4096;
        elapsed = now_s() - start;
    }
    if (sink == 12345.678) printf(" ");     /* keeps the loop from being optimised away */
    *steps_out = steps;
    return steps / elapsed;
}

int main(void) {
    printf("%-26s %14s %10s %12s\n", "env", "steps/s", "ns/step", "steps timed");
    for (const char *const *id = env_ids(); *id; id++) {
        char err[256];
        env_t *env = env_new(*id, 1, err, sizeof err);
        if (!env) {
            fprintf(stderr, "bench_env: %s\n", err);
            return 1;
        }
        rng_t rng;
        rng_seed(&rng, 2);
        long steps;
        steps_per_second(env, &rng, 0.05, &steps);    /* warm-up */
        double rate = steps_per_second(env, &rng, 0.5, &steps);
        printf("%-26s %14.0f %10.1f %12ld\n", *id, rate, 1e9 / rate, steps);
        env_destroy(&env);
    }
    return 0;
}

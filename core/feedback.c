/* feedback.c - see feedback.h. */
#include "feedback.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

segstore_t *segstore_new(int T, int obs_dim, int act_dim) {
    segstore_t *s = callocCheck(1, sizeof *s);
    s->T = T;
    s->obs_dim = obs_dim;
    s->act_dim = act_dim;
    return s;
}

void segstore_destroy(segstore_t **self_p) {
    segstore_t *s = *self_p;
    if (!s) return;
    free(s->obs);
    free(s->act);
    free(s->true_r);
    free(s->absorbing);
    free(s);
    *self_p = NULL;
}

int segstore_add(segstore_t *s, const float *obs, const float *act, const float *true_r,
                 const uint8_t *absorbing) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        size_t T = s->T;
        s->obs = reallocCheck(s->obs, sizeof(float) * s->cap * T * s->obs_dim);
        s->act = reallocCheck(s->act, sizeof(float) * s->cap * T * s->act_dim);
        s->true_r = reallocCheck(s->true_r, sizeof(float) * s->cap * T);
        s->absorbing = reallocCheck(s->absorbing, (size_t)s->cap * T);
    }
    size_t i = s->n, T = s->T;
    memcpy(s->obs + i * T * s->obs_dim, obs, sizeof(float) * T * s->obs_dim);
    memcpy(s->act + i * T * s->act_dim, act, sizeof(float) * T * s->act_dim);
    memcpy(s->true_r + i * T, true_r, sizeof(float) * T);
    memcpy(s->absorbing + i * T, absorbing, T);
    return s->n++;
}

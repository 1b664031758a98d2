/* share.c - see share.h.
 *
 * Payload layout (sizes from the job and the header):
 *   batch: obs, obsn (T*N*od), act (T*N*ad), logp, true_r (T*N),
 *          final_obsn (T*N*od), last_obsn (N*od) floats; done, terminated
 *          (T*N) bytes
 *   segs:  obs (S*L*od), act (S*L*ad), true_r (S*L) floats; absorbing (S*L)
 *   labels: n_labels label_t
 * All memcpy'd, so no alignment is assumed. */
#include "share.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    unsigned char *p;
    int unpack;
} cursor_t;

/* Copies n bytes between the payload cursor and x, in the cursor's direction. */
static void move(cursor_t *c, void *x, size_t n) {
    if (n == 0) return;
    if (c->unpack)
        memcpy(x, c->p, n);
    else
        memcpy(c->p, x, n);
    c->p += n;
}

static size_t batch_bytes(const traj_t *b) {
    size_t tn = (size_t)b->T * b->N, od = b->obs_dim, ad = b->act_dim;
    return sizeof(float) * (tn * (3 * od + ad + 2) + (size_t)b->N * od) + 2 * tn;
}

static size_t segs_bytes(const segstore_t *s, int n) {
    size_t sl = (size_t)n * s->T;
    return sizeof(float) * sl * (s->obs_dim + s->act_dim + 1) + sl;
}

/* The batch's arrays in payload order. */
static void move_batch(cursor_t *c, traj_t *b) {
    size_t tn = (size_t)b->T * b->N, od = b->obs_dim, ad = b->act_dim, f = sizeof(float);
    move(c, b->obs, f * tn * od);
    move(c, b->obsn, f * tn * od);
    move(c, b->act, f * tn * ad);
    move(c, b->logp, f * tn);
    move(c, b->true_r, f * tn);
    move(c, b->final_obsn, f * tn * od);
    move(c, b->last_obsn, f * (size_t)b->N * od);
    move(c, b->done, tn);
    move(c, b->terminated, tn);
}

share_t *share_new(int T, int N, int obs_dim, int act_dim, int seg_len) {
    share_t *s = callocCheck(1, sizeof *s);
    s->batch = traj_new(T, N, obs_dim, act_dim);
    s->segs = segstore_new(seg_len, obs_dim, act_dim);
    return s;
}

void share_destroy(share_t **self_p) {
    share_t *s = *self_p;
    if (!s) return;
    traj_destroy(&s->batch);
    segstore_destroy(&s->segs);
    free(s->labels);
    free(s->buf);
    free(s);
    *self_p = NULL;
}

void share_reserve(share_t *s, const share_hdr_t *hdr) {
    if (hdr->payload > s->cap) {
        s->cap = hdr->payload;
        s->buf = reallocCheck(s->buf, s->cap);
    }
}

void share_pack(share_t *s, const feed_batch_t *fb, share_hdr_t *hdr) {
    const traj_t *b = fb->batch;
    const segstore_t *segs = fb->segs;
    int n_segs = segs && fb->n_labels > 0 ? segs->n : 0;   // segments travel only with labels
    memset(hdr, 0, sizeof *hdr);
    hdr->status = SHARE_DATA;
    hdr->n_segs = n_segs;
    hdr->n_labels = fb->n_labels;
    hdr->asked = fb->asked;
    hdr->answered = fb->answered;
    hdr->refit = fb->refit;
    hdr->episodes = b->episodes;
    hdr->env_steps = fb->env_steps;
    hdr->policy_version = b->policy_version;
    hdr->return_sum = b->return_sum;
    hdr->t_rollout = fb->t_rollout;
    hdr->t_query = fb->t_query;
    hdr->payload = batch_bytes(b) + (n_segs ? segs_bytes(segs, n_segs) : 0) + sizeof(label_t) * fb->n_labels;
    share_reserve(s, hdr);
    cursor_t c = {s->buf, 0};
    move_batch(&c, (traj_t *)b);    // packing only reads
    if (n_segs) {
        size_t sl = (size_t)n_segs * segs->T, f = sizeof(float);
        move(&c, segs->obs, f * sl * segs->obs_dim);
        move(&c, segs->act, f * sl * segs->act_dim);
        move(&c, segs->true_r, f * sl);
        move(&c, segs->absorbing, sl);
    }
    move(&c, (label_t *)fb->labels, sizeof(label_t) * fb->n_labels);
}

int share_unpack(share_t *s, const share_hdr_t *hdr) {
    traj_t *b = s->batch;
    segstore_t *segs = s->segs;
    if (hdr->n_segs < 0 || hdr->n_labels < 0 ||
        hdr->payload != batch_bytes(b) + segs_bytes(segs, hdr->n_segs) + sizeof(label_t) * hdr->n_labels)
        return -1;
    cursor_t c = {s->buf, 1};
    move_batch(&c, b);
    b->episodes = hdr->episodes;
    b->return_sum = hdr->return_sum;
    b->policy_version = hdr->policy_version;
    /* Segments: each through segstore_add, which owns the store's growth. */
    segs->n = 0;
    size_t L = segs->T, od = segs->obs_dim, ad = segs->act_dim, sl = (size_t)hdr->n_segs * L, f = sizeof(float);
    const unsigned char *obs = c.p, *act = obs + f * sl * od, *r = act + f * sl * ad, *abs_ = r + f * sl;
    float *t_obs = mallocCheck(f * L * od + 1), *t_act = mallocCheck(f * L * ad + 1), *t_r = mallocCheck(f * L);
    for (int i = 0; i < hdr->n_segs; i++) {
        memcpy(t_obs, obs + f * L * od * i, f * L * od);
        memcpy(t_act, act + f * L * ad * i, f * L * ad);
        memcpy(t_r, r + f * L * i, f * L);
        segstore_add(segs, t_obs, t_act, t_r, abs_ + L * i);
    }
    free(t_obs);
    free(t_act);
    free(t_r);
    c.p = (unsigned char *)abs_ + sl;
    if (hdr->n_labels > s->cap_labels) {
        s->cap_labels = hdr->n_labels;
        s->labels = reallocCheck(s->labels, sizeof(label_t) * s->cap_labels);
    }
    s->n_labels = hdr->n_labels;
    move(&c, s->labels, sizeof(label_t) * hdr->n_labels);
    for (int i = 0; i < s->n_labels; i++) {
        const label_t *lb = &s->labels[i];
        if (lb->k < 1 || lb->k > LABEL_MAX_K) return -1;
        for (int j = 0; j < lb->k; j++)
            if (lb->seg[j] < 0 || lb->seg[j] >= segs->n) return -1;
    }
    return 0;
}

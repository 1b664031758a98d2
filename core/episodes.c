/* episodes.c - see episodes.h. */
#include "episodes.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    int len, terminated;
    float *obs, *act, *r;   /* (len, obs_dim), (len, act_dim), (len) */
    float *rs;              /* (len, render_dim) when render_dim > 0 */
    int render_ok;          /* every step came with its render state */
} episode_t;

typedef struct {
    uint64_t source;
    int N;
    episode_t *cur;         /* (N) in progress */
} stream_t;

struct episodes {
    int obs_dim, act_dim, max_len, cap, render_dim;
    episode_t *ring;
    int n, head;
    stream_t *streams;
    int n_streams;
};

static void episode_alloc(episode_t *ep, const episodes_t *e) {
    memset(ep, 0, sizeof *ep);
    ep->obs = mallocCheck(sizeof(float) * (size_t)e->max_len * e->obs_dim);
    ep->act = mallocCheck(sizeof(float) * (size_t)e->max_len * e->act_dim);
    ep->r = mallocCheck(sizeof(float) * (size_t)e->max_len);
    if (e->render_dim) ep->rs = mallocCheck(sizeof(float) * (size_t)e->max_len * e->render_dim);
}

static void episode_free(episode_t *ep) {
    free(ep->obs);
    free(ep->act);
    free(ep->r);
    free(ep->rs);
    memset(ep, 0, sizeof *ep);
}

episodes_t *episodes_new(int obs_dim, int act_dim, int max_len, int capacity) {
    episodes_t *e = callocCheck(1, sizeof *e);
    e->obs_dim = obs_dim;
    e->act_dim = act_dim;
    e->max_len = max_len > 0 ? max_len : 1;
    e->cap = capacity > 0 ? capacity : 1;
    e->ring = callocCheck(e->cap, sizeof(episode_t));
    return e;
}

void episodes_destroy(episodes_t **self_p) {
    episodes_t *e = *self_p;
    if (!e) return;
    for (int i = 0; i < e->cap; i++) episode_free(&e->ring[i]);
    for (int s = 0; s < e->n_streams; s++) {
        for (int n = 0; n < e->streams[s].N; n++) episode_free(&e->streams[s].cur[n]);
        free(e->streams[s].cur);
    }
    free(e->streams);
    free(e->ring);
    free(e);
    *self_p = NULL;
}

static stream_t *stream_for(episodes_t *e, uint64_t source, int N) {
    for (int s = 0; s < e->n_streams; s++)
        if (e->streams[s].source == source && e->streams[s].N == N) return &e->streams[s];
    episodes_drop_source(e, source);    // a source that changed shape starts over
    e->streams = reallocCheck(e->streams, sizeof(stream_t) * (e->n_streams + 1));
    stream_t *st = &e->streams[e->n_streams++];
    st->source = source;
    st->N = N;
    st->cur = callocCheck(N, sizeof(episode_t));
    for (int n = 0; n < N; n++) episode_alloc(&st->cur[n], e);
    return st;
}

void episodes_drop_source(episodes_t *e, uint64_t source) {
    for (int s = 0; s < e->n_streams; s++) {
        if (e->streams[s].source != source) continue;
        for (int n = 0; n < e->streams[s].N; n++) episode_free(&e->streams[s].cur[n]);
        free(e->streams[s].cur);
        e->streams[s] = e->streams[--e->n_streams];
        return;
    }
}

int episodes_count(const episodes_t *e) { return e->n; }

void episodes_add(episodes_t *e, uint64_t source, const traj_t *b) { episodes_add_render(e, source, b, NULL); }

void episodes_set_render_dim(episodes_t *e, int render_dim) {
    if (e->n == 0 && e->n_streams == 0) e->render_dim = render_dim > 0 ? render_dim : 0;
}

void episodes_add_render(episodes_t *e, uint64_t source, const traj_t *b, const float *render) {
    stream_t *st = stream_for(e, source, b->N);
    int od = e->obs_dim, ad = e->act_dim, rd = e->render_dim;
    for (int t = 0; t < b->T; t++)
        for (int n = 0; n < b->N; n++) {
            size_t k = (size_t)t * b->N + n;
            episode_t *ep = &st->cur[n];
            if (ep->len == 0) ep->render_ok = render != NULL && rd > 0;
            if (ep->len < e->max_len) {     // a longer episode than the limit keeps its start
                memcpy(ep->obs + (size_t)ep->len * od, b->obs + k * od, sizeof(float) * od);
                memcpy(ep->act + (size_t)ep->len * ad, b->act + k * ad, sizeof(float) * ad);
                if (ep->render_ok && render) memcpy(ep->rs + (size_t)ep->len * rd, render + k * rd, sizeof(float) * rd);
                else ep->render_ok = 0;
                ep->r[ep->len++] = b->true_r[k];
            }
            if (!b->done[k]) continue;
            /* The finished episode moves into the ring; the stream gets the
             * slot's old buffers back for its next episode. */
            episode_t old = e->ring[e->head];
            ep->terminated = b->terminated[k];
            e->ring[e->head] = *ep;
            e->head = (e->head + 1) % e->cap;
            if (e->n < e->cap) e->n++;
            if (old.obs) {
                *ep = old;
                ep->len = 0;
                ep->terminated = 0;     /* in progress (episodes_cut reads it) */
            } else {
                episode_alloc(ep, e);
            }
        }
}

/* Episode i of the ring (i < n), then of the episodes in progress, stream by
 * stream. */
static const episode_t *nth_episode(const episodes_t *e, int i) {
    if (i < e->n) return &e->ring[i];
    i -= e->n;
    for (int k = 0; k < e->n_streams; k++) {
        if (i < e->streams[k].N) return &e->streams[k].cur[i];
        i -= e->streams[k].N;
    }
    return NULL;
}

int episodes_render_of(const episodes_t *e, const float *obs, int T, const uint8_t *absorbing, float *out) {
    int od = e->obs_dim, rd = e->render_dim;
    if (!rd) return -1;
    int n_in_progress = 0;
    for (int k = 0; k < e->n_streams; k++) n_in_progress += e->streams[k].N;
    for (int i = 0; i < e->n + n_in_progress; i++) {
        const episode_t *ep = nth_episode(e, i);
        if (!ep->render_ok || !ep->rs) continue;
        for (int s = 0; s < ep->len; s++) {
            if (memcmp(ep->obs + (size_t)s * od, obs, sizeof(float) * od) != 0) continue;
            int t = 1;
            for (; t < T && !absorbing[t]; t++)
                if (s + t >= ep->len || memcmp(ep->obs + (size_t)(s + t) * od, obs + (size_t)t * od, sizeof(float) * od))
                    break;
            if (t < T && !absorbing[t]) continue;
            /* Past the episode's end (the absorbing state) the last frame stays. */
            for (t = 0; t < T; t++) {
                int k = s + t < ep->len ? s + t : ep->len - 1;
                memcpy(out + (size_t)t * rd, ep->rs + (size_t)k * rd, sizeof(float) * rd);
            }
            return 0;
        }
    }
    return -1;
}

/* Steps a segment of T may start at in an episode. */
static int starts(const episode_t *ep, int T) {
    if (ep->terminated) return ep->len;
    return ep->len >= T ? ep->len - T + 1 : 0;
}

/* Segments come from the ring of ended episodes. While no ended episode
 * holds one, they come from the episodes in progress instead, cut like
 * truncated ones (never past the last step seen). Without that fallback a
 * long-horizon task deadlocks in a distributed run: the learner waits for its
 * first labels before taking more batches, and the first episodes (500 steps
 * of Acrobot, 1000 of HalfCheetah) never end. CartPole's episodes end long
 * before the first labels are due, so its segments are unchanged. */
int episodes_cut(episodes_t *e, int T, rng_t *rng, float *obs, float *act, float *r, uint8_t *absorbing) {
    int first = 0, count = e->n;
    long long total = 0;
    for (int i = 0; i < e->n; i++) total += starts(&e->ring[i], T);
    if (total == 0) {
        first = e->n, count = 0;
        for (int k = 0; k < e->n_streams; k++) count += e->streams[k].N;
        for (int i = first; i < first + count; i++) total += starts(nth_episode(e, i), T);
    }
    if (total == 0) return -1;
    long long pick = (long long)(rng_uniform(rng) * (double)total);
    const episode_t *ep = NULL;
    int start = 0;
    for (int i = first; i < first + count; i++) {
        ep = nth_episode(e, i);
        long long c = starts(ep, T);
        if (pick < c) {
            start = (int)pick;
            break;
        }
        pick -= c;
    }
    int od = e->obs_dim, ad = e->act_dim;
    for (int t = 0; t < T; t++) {
        int k = start + t;
        if (k < ep->len) {
            memcpy(obs + (size_t)t * od, ep->obs + (size_t)k * od, sizeof(float) * od);
            memcpy(act + (size_t)t * ad, ep->act + (size_t)k * ad, sizeof(float) * ad);
            r[t] = ep->r[k];
            absorbing[t] = 0;
        } else {
            memset(obs + (size_t)t * od, 0, sizeof(float) * od);
            memset(act + (size_t)t * ad, 0, sizeof(float) * ad);
            r[t] = 0;
            absorbing[t] = 1;
        }
    }
    return 0;
}
/* ---- proposed for core/episodes.c ---- */

/* The ring and the episodes in progress as bytes (see episodes.h):
 *   u32 obs_dim, act_dim, max_len, cap, n, head, n_streams, 0
 *   ring slots 0..n-1: an episode each
 *   per stream: u64 source, u32 N, u32 0, then N episodes in progress
 * an episode: u32 len, u32 terminated, obs (len * obs_dim f32),
 *             act (len * act_dim f32), r (len f32) */
static size_t episode_bytes(const episodes_t *e, const episode_t *ep) {
    return 8 + sizeof(float) * (size_t)ep->len * (e->obs_dim + e->act_dim + 1);
}

size_t episodes_state_size(const episodes_t *e) {
    size_t n = 32;
    for (int i = 0; i < e->n; i++) n += episode_bytes(e, &e->ring[i]);
    for (int s = 0; s < e->n_streams; s++) {
        n += 16;
        for (int k = 0; k < e->streams[s].N; k++) n += episode_bytes(e, &e->streams[s].cur[k]);
    }
    return n;
}

static unsigned char *episode_put(const episodes_t *e, const episode_t *ep, unsigned char *p) {
    uint32_t h[2] = {(uint32_t)ep->len, (uint32_t)ep->terminated};
    size_t len = ep->len;
    memcpy(p, h, 8);
    p += 8;
    memcpy(p, ep->obs, sizeof(float) * len * e->obs_dim);
    p += sizeof(float) * len * e->obs_dim;
    memcpy(p, ep->act, sizeof(float) * len * e->act_dim);
    p += sizeof(float) * len * e->act_dim;
    memcpy(p, ep->r, sizeof(float) * len);
    return p + sizeof(float) * len;
}

void episodes_save(const episodes_t *e, void *buf) {
    unsigned char *p = buf;
    uint32_t h[8] = {(uint32_t)e->obs_dim, (uint32_t)e->act_dim, (uint32_t)e->max_len, (uint32_t)e->cap,
                     (uint32_t)e->n, (uint32_t)e->head, (uint32_t)e->n_streams, 0};
    memcpy(p, h, 32);
    p += 32;
    for (int i = 0; i < e->n; i++) p = episode_put(e, &e->ring[i], p);
    for (int s = 0; s < e->n_streams; s++) {
        const stream_t *st = &e->streams[s];
        uint32_t n[2] = {(uint32_t)st->N, 0};
        memcpy(p, &st->source, 8);
        memcpy(p + 8, n, 8);
        p += 16;
        for (int k = 0; k < st->N; k++) p = episode_put(e, &st->cur[k], p);
    }
}

/* Reads one episode into ep (allocated when empty); NULL when it does not fit. */
static const unsigned char *episode_get(const episodes_t *e, episode_t *ep, const unsigned char *p,
                                        const unsigned char *end) {
    uint32_t h[2];
    if (end - p < 8) return NULL;
    memcpy(h, p, 8);
    p += 8;
    size_t len = h[0], bytes = sizeof(float) * len * (e->obs_dim + e->act_dim + 1);
    if (len > (size_t)e->max_len || (size_t)(end - p) < bytes) return NULL;
    if (!ep->obs) episode_alloc(ep, e);
    ep->len = (int)len;
    ep->terminated = (int)h[1];
    memcpy(ep->obs, p, sizeof(float) * len * e->obs_dim);
    p += sizeof(float) * len * e->obs_dim;
    memcpy(ep->act, p, sizeof(float) * len * e->act_dim);
    p += sizeof(float) * len * e->act_dim;
    memcpy(ep->r, p, sizeof(float) * len);
    return p + sizeof(float) * len;
}

int episodes_load(episodes_t *e, const void *buf, size_t n, char *err, size_t errlen) {
    const unsigned char *p = buf, *end = p + n;
    uint32_t h[8] = {0};
    if (n >= 32) memcpy(h, p, 32);
    if (n < 32 || h[0] != (uint32_t)e->obs_dim || h[1] != (uint32_t)e->act_dim || h[2] != (uint32_t)e->max_len ||
        h[3] != (uint32_t)e->cap || h[4] > h[3] || h[5] >= h[3] || h[6] > 4096) {
        snprintf(err, errlen, "episode ring state does not fit this ring (dimensions %u/%u, length %u, capacity %u)",
                 h[0], h[1], h[2], h[3]);
        return -1;
    }
    p += 32;
    /* Start over: no streams, every ring slot empty (buffers kept). */
    while (e->n_streams > 0) episodes_drop_source(e, e->streams[0].source);
    for (int i = 0; i < e->cap; i++) e->ring[i].len = 0;
    e->n = (int)h[4];
    e->head = (int)h[5];
    for (int i = 0; i < e->n && p; i++) p = episode_get(e, &e->ring[i], p, end);
    for (uint32_t s = 0; s < h[6] && p; s++) {
        uint64_t source;
        uint32_t m[2];
        if (end - p < 16) {
            p = NULL;
            break;
        }
        memcpy(&source, p, 8);
        memcpy(m, p + 8, 8);
        p += 16;
        if (m[0] == 0 || m[0] > 1u << 20) {
            p = NULL;
            break;
        }
        stream_t *st = stream_for(e, source, (int)m[0]);
        for (int k = 0; k < st->N && p; k++) p = episode_get(e, &st->cur[k], p, end);
    }
    if (!p || p != end) {
        snprintf(err, errlen, "episode ring state is malformed");
        e->n = 0;
        e->head = 0;
        while (e->n_streams > 0) episodes_drop_source(e, e->streams[0].source);
        return -1;
    }
    return 0;
}

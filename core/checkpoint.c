/* checkpoint.c - see checkpoint.h.
 *
 * Writing appends to a growable byte buffer; reading first parses the whole
 * file into a staging struct (spans of the buffer and scalars), checks it,
 * and only then copies into the learner, so a bad file changes nothing. */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* learner_t's layout when this file last learned every field it saves. A
 * new field is state a checkpoint may have to carry: save it below (and
 * in learner_hash() if replicas must agree on it), then update the size. */
_Static_assert(sizeof(learner_t) == 384, "learner_t changed: save its new state in core/checkpoint.c, then update this size");

#define HEADER_BYTES (80 + JOB_STR)
#define BYTE_ORDER_MARK 0x01020304u
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

enum {
    SEC_JOB = TAG('J', 'O', 'B', 'T'),
    SEC_POLICY = TAG('P', 'O', 'L', 'I'),
    SEC_POLICY_ADAM = TAG('P', 'A', 'D', 'M'),
    SEC_OBS_STAT = TAG('O', 'B', 'S', 'T'),
    SEC_LEARNER = TAG('L', 'R', 'N', 'R'),
    SEC_REWARD = TAG('R', 'W', 'R', 'D'),
    SEC_SEGMENTS = TAG('S', 'E', 'G', 'S'),
    SEC_LABELS = TAG('L', 'A', 'B', 'L'),
    SEC_LOOP = TAG('L', 'O', 'O', 'P'),
    SEC_FEED = TAG('F', 'E', 'E', 'D'),
    SEC_RET_NORM = TAG('R', 'N', 'R', 'M'),   /* ppo.norm_reward / norm_learned_reward only */
};

/* The job's text with run.out blanked (malloc'd, NUL-terminated). */
static char *job_text(const job_t *job, size_t *len) {
    job_t *copy = mallocCheck(sizeof *copy);
    *copy = *job;
    copy->run.out[0] = '\0';
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f) {
        log_error("%s:%d: open_memstream: %s", __FILE__, __LINE__, strerror(errno));
        exit(1);
    }
    job_write(copy, f);
    fclose(f);
    free(copy);
    *len = n;
    return text;
}

uint64_t checkpoint_job_hash(const job_t *job) {
    size_t n;
    char *text = job_text(job, &n);
    uint64_t h = fnv1a(FNV_OFFSET, text, n);
    free(text);
    return h;
}

/* ---- writing ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    size_t section;     /* offset of the open section's length field */
    uint32_t sections;  /* sections written */
} wbuf_t;

static void put(wbuf_t *w, const void *data, size_t n) {
    if (w->n + n > w->cap) {
        while (w->n + n > w->cap) w->cap = w->cap ? 2 * w->cap : 1 << 16;
        w->p = reallocCheck(w->p, w->cap);
    }
    if (n) memcpy(w->p + w->n, data, n);
    w->n += n;
}
static void put_u32(wbuf_t *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(wbuf_t *w, uint64_t v) { put(w, &v, 8); }
static void put_i64(wbuf_t *w, int64_t v) { put(w, &v, 8); }
static void put_f64(wbuf_t *w, double v) { put(w, &v, 8); }
static void put_floats(wbuf_t *w, const float *x, size_t n) { put(w, x, sizeof(float) * n); }

static void put_rng(wbuf_t *w, const rng_t *r) {
    for (int i = 0; i < 4; i++) put_u64(w, r->s[i]);
    put_i64(w, r->has_spare);
    put_f64(w, r->spare);
}

static void put_runstat(wbuf_t *w, const runstat_t *s) {
    put_u32(w, (uint32_t)s->dim);
    put_u32(w, 0);
    put_f64(w, s->count);
    put(w, s->mean, sizeof(double) * s->dim);
    put(w, s->var, sizeof(double) * s->dim);
}

static void section_begin(wbuf_t *w, uint32_t tag) {
    put_u32(w, tag);
    put_u32(w, 0);
    w->section = w->n;
    put_u64(w, 0);
}

static void section_end(wbuf_t *w) {
    uint64_t len = w->n - w->section - 8;
    memcpy(w->p + w->section, &len, 8);
    static const unsigned char zeros[8];
    put(w, zeros, (8 - len % 8) % 8);    // sections start 8-aligned
    w->sections++;
}

void checkpoint_encode(const learner_t *l, const checkpoint_loop_t *loop, unsigned char **out, size_t *len) {
    const job_t *job = l->job;
    wbuf_t w = {0};
    size_t jlen;
    char *jtext = job_text(job, &jlen);

    /* Header. */
    put(&w, CHECKPOINT_MAGIC, 8);
    put_u32(&w, CHECKPOINT_VERSION);
    put_u32(&w, BYTE_ORDER_MARK);
    put_u64(&w, 0);     // total length, patched below
    put_u64(&w, fnv1a(FNV_OFFSET, jtext, jlen));
    char env_id[JOB_STR] = {0};
    memcpy(env_id, job->env.id, strnlen(job->env.id, JOB_STR - 1));
    put(&w, env_id, sizeof env_id);
    put_u32(&w, (uint32_t)l->obs_dim);
    put_u32(&w, (uint32_t)l->act_dim);
    put_u32(&w, (uint32_t)job->env.n_envs);
    put_u32(&w, (uint32_t)job->ppo.n_steps);
    put_u32(&w, l->segs ? (uint32_t)l->segs->T : 0);
    put_u32(&w, l->rm ? (uint32_t)l->rm->K : 0);
    put_u64(&w, l->policy->n_params);
    put_u64(&w, l->rm ? l->rm->n_params : 0);
    size_t n_sections_at = w.n;
    put_u32(&w, 0);     // sections, patched below
    put_u32(&w, 0);
    if (w.n != HEADER_BYTES) {
        log_error("%s:%d: checkpoint header is %zu bytes, expected %d", __FILE__, __LINE__, w.n, HEADER_BYTES);
        exit(1);
    }

    section_begin(&w, SEC_JOB);
    put(&w, jtext, jlen);
    section_end(&w);
    free(jtext);

    const policy_t *p = l->policy;
    section_begin(&w, SEC_POLICY);
    put_floats(&w, p->params, p->n_params);
    section_end(&w);

    section_begin(&w, SEC_POLICY_ADAM);
    put_i64(&w, l->opt.t);
    put_floats(&w, l->opt.m, l->opt.n);
    put_floats(&w, l->opt.v, l->opt.n);
    section_end(&w);

    section_begin(&w, SEC_OBS_STAT);
    put_runstat(&w, &p->obs_stat);
    section_end(&w);

    section_begin(&w, SEC_LEARNER);
    put_u64(&w, l->policy_version);
    put_f64(&w, l->r_zero);
    put_f64(&w, l->r_scale);
    put_f64(&w, l->abs_n);
    put_f64(&w, l->reward_corr);
    put_f64(&w, l->learned_return);
    put_i64(&w, l->fits);
    put_f64(&w, l->fit.loss);
    put_f64(&w, l->fit.val_acc);
    put_i64(&w, l->fit.val_n);
    put_f64(&w, l->fit.train_acc);
    put_rng(&w, &l->rng_ppo);
    put_rng(&w, &l->rng_reward);
    put_u32(&w, (uint32_t)job->env.n_envs);
    put_u32(&w, 0);
    put(&w, l->ep_learned, sizeof(double) * job->env.n_envs);
    section_end(&w);

    if (l->rm) {
        const reward_model_t *rm = l->rm;
        section_begin(&w, SEC_REWARD);
        put_floats(&w, rm->params, rm->n_params);
        put_i64(&w, rm->adam.t);
        put_floats(&w, rm->adam.m, rm->adam.n);
        put_floats(&w, rm->adam.v, rm->adam.n);
        put_runstat(&w, &rm->obs_stat);
        section_end(&w);

        const segstore_t *s = l->segs;
        size_t nt = (size_t)s->n * s->T;
        section_begin(&w, SEC_SEGMENTS);
        put_u32(&w, (uint32_t)s->T);
        put_u32(&w, (uint32_t)s->obs_dim);
        put_u32(&w, (uint32_t)s->act_dim);
        put_u32(&w, (uint32_t)s->n);
        put_floats(&w, s->obs, nt * s->obs_dim);
        put_floats(&w, s->act, nt * s->act_dim);
        put_floats(&w, s->true_r, nt);
        put(&w, s->absorbing, nt);
        section_end(&w);

        section_begin(&w, SEC_LABELS);
        put_u32(&w, (uint32_t)l->n_labels);
        put_u32(&w, 0);
        for (int i = 0; i < l->n_labels; i++) {
            const label_t *lb = &l->labels[i];
            int32_t f[2 + LABEL_MAX_K + 1];
            f[0] = lb->kind;
            f[1] = lb->k;
            for (int j = 0; j < LABEL_MAX_K; j++) f[2 + j] = lb->seg[j];
            f[2 + LABEL_MAX_K] = lb->rating;
            put(&w, f, sizeof f);
            put(&w, &lb->pref, 4);
        }
        section_end(&w);
    }

    if (l->ret_norm) {
        section_begin(&w, SEC_RET_NORM);
        put_runstat(&w, &l->ret_norm->stat);
        put(&w, l->ret_norm->ret, sizeof(double) * job->env.n_envs);
        section_end(&w);
    }

    checkpoint_loop_t none = {0};
    if (!loop) loop = &none;
    section_begin(&w, SEC_LOOP);
    put_i64(&w, loop->iteration);
    put_i64(&w, loop->env_steps);
    put_i64(&w, loop->answered);
    put_i64(&w, loop->next_kind);
    put_rng(&w, &loop->rng_act);
    put_rng(&w, &loop->rng_feedback);
    put_rng(&w, &loop->rng_teacher);
    put_f64(&w, loop->wall_s);
    section_end(&w);

    section_begin(&w, SEC_FEED);
    put(&w, loop->extra, loop->extra ? loop->extra_len : 0);
    section_end(&w);

    memcpy(w.p + n_sections_at, &w.sections, 4);
    uint64_t total = w.n + 8;
    memcpy(w.p + 16, &total, 8);
    put_u64(&w, fnv1a(FNV_OFFSET, w.p, w.n));
    *out = w.p;
    *len = w.n;
}

/* ---- reading ---- */

typedef struct {
    const unsigned char *p;
    size_t n, off;
    int bad;            /* read past the end */
} rbuf_t;

static const void *get(rbuf_t *r, size_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const void *at = r->p + r->off;
    r->off += n;
    return at;
}
static uint32_t get_u32(rbuf_t *r) {
    uint32_t v = 0;
    const void *p = get(r, 4);
    if (p) memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(rbuf_t *r) {
    uint64_t v = 0;
    const void *p = get(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}
static int64_t get_i64(rbuf_t *r) { return (int64_t)get_u64(r); }
static double get_f64(rbuf_t *r) {
    double v = 0;
    const void *p = get(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}
static void get_copy(rbuf_t *r, void *dst, size_t n) {
    const void *p = get(r, n);
    if (p && n) memcpy(dst, p, n);
}
static void get_rng(rbuf_t *r, rng_t *rng) {
    for (int i = 0; i < 4; i++) rng->s[i] = get_u64(r);
    rng->has_spare = (int)get_i64(r);
    rng->spare = get_f64(r);
}
/* Reads a runstat into *s; fails (r->bad) unless its dim is want_dim. */
static void get_runstat(rbuf_t *r, runstat_t *s, int want_dim) {
    uint32_t dim = get_u32(r);
    get_u32(r);
    if (dim != (uint32_t)want_dim || dim > RUNSTAT_MAX) {
        r->bad = 1;
        return;
    }
    memset(s, 0, sizeof *s);
    s->dim = (int)dim;
    s->count = get_f64(r);
    get_copy(r, s->mean, sizeof(double) * dim);
    get_copy(r, s->var, sizeof(double) * dim);
}

typedef struct {
    const unsigned char *p;
    size_t n;
    int present;
} span_t;

/* Everything a checkpoint holds, parsed but not yet applied. Large arrays
 * stay spans of the file's buffer. */
typedef struct {
    span_t job, policy, padam, obst, lrnr, rwrd, segs, labl, lopp, feed, rnrm;
    /* parsed sections */
    runstat_t ret_stat;
    const unsigned char *ret;
    int64_t adam_t, rm_adam_t;
    const unsigned char *adam_m, *adam_v, *rm_params, *rm_m, *rm_v;
    runstat_t obs_stat, rm_obs_stat;
    uint64_t policy_version;
    double r_zero, r_scale, abs_n, reward_corr, learned_return;
    int64_t fits;
    reward_fit_stats_t fit;
    rng_t rng_ppo, rng_reward;
    const unsigned char *ep_learned;
    int seg_n;
    const unsigned char *seg_obs, *seg_act, *seg_r, *seg_abs;
    int n_labels;
    label_t *labels;    /* malloc'd */
    checkpoint_loop_t loop;
} staged_t;

/* Names the first differences between two job texts, key by key. */
static void job_diff(const char *saved, size_t saved_len, const char *now, char *out, size_t outlen) {
    /* Collect "section.key" -> value lines of both texts. */
    typedef struct {
        char key[160], value[JOB_STR * 4 + 200];
    } kv_t;
    kv_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    const char *texts[2] = {saved, now};
    size_t lens[2] = {saved_len, strlen(now)};
    for (int which = 0; which < 2; which++) {
        kv_t **list = which ? &b : &a;
        int *count = which ? &nb : &na;
        char section[64] = "";
        const char *p = texts[which], *end = p + lens[which];
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char line[JOB_STR * 4 + 200];
            if (n >= sizeof line) n = sizeof line - 1;
            memcpy(line, p, n);
            line[n] = '\0';
            p += n + (nl ? 1 : 0);
            if (line[0] == '[') {
                char *close = strchr(line, ']');
                if (close) *close = '\0';
                snprintf(section, sizeof section, "%.63s", line + 1);
                continue;
            }
            char *eq = strstr(line, " = ");
            if (line[0] == '#' || line[0] == ';' || !eq) continue;
            *eq = '\0';
            *list = reallocCheck(*list, sizeof(kv_t) * (*count + 1));
            snprintf((*list)[*count].key, sizeof(*list)[*count].key, "[%.63s] %.90s", section, line);
            snprintf((*list)[*count].value, sizeof(*list)[*count].value, "%s", eq + 3);
            (*count)++;
        }
    }
    size_t used = 0;
    int shown = 0, more = 0;
    out[0] = '\0';
    for (int i = 0; i < nb; i++) {
        const char *was = NULL;
        for (int j = 0; j < na; j++)
            if (strcmp(a[j].key, b[i].key) == 0) was = a[j].value;
        if (was && strcmp(was, b[i].value) == 0) continue;
        if (shown == 3) {
            more++;
            continue;
        }
        int w = snprintf(out + used, outlen - used, "%s%s is %s%s%s in the checkpoint, '%s' now", shown ? "; " : "",
                         b[i].key, was ? "'" : "", was ? was : "absent", was ? "'" : "", b[i].value);
        if (w > 0) used += (size_t)w < outlen - used ? (size_t)w : outlen - used - 1;
        shown++;
    }
    if (more && used < outlen) snprintf(out + used, outlen - used, " (and %d more)", more);
    if (shown == 0) snprintf(out, outlen, "the job texts differ outside their key = value lines");
    free(a);
    free(b);
}

static const char *tag_name(uint32_t tag, char buf[5]) {
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(tag >> (8 * i));
        buf[i] = c >= 32 && c < 127 ? (char)c : '?';
    }
    buf[4] = '\0';
    return buf;
}

/* Parses and checks the whole file into st. Returns 0 or -1 with err. */
static int stage(const learner_t *l, const unsigned char *buf, size_t len, staged_t *st, char *err, size_t errlen) {
    const job_t *job = l->job;
    memset(st, 0, sizeof *st);
    if (len < 8 || memcmp(buf, CHECKPOINT_MAGIC, 8) != 0) {
        err_set(err, errlen, "not a checkpoint (no %s magic at the start)", CHECKPOINT_MAGIC);
        return -1;
    }
    if (len < HEADER_BYTES + 8) {
        err_set(err, errlen, "truncated: %zu bytes, shorter than a checkpoint's header", len);
        return -1;
    }
    rbuf_t r = {buf, len - 8, 8, 0};
    uint32_t version = get_u32(&r), bom = get_u32(&r);
    uint64_t total = get_u64(&r);
    if (bom != BYTE_ORDER_MARK) {
        err_set(err, errlen, "written on a machine of the other byte order (or corrupt)");
        return -1;
    }
    if (total != len) {
        err_set(err, errlen, "truncated or extended: %zu bytes, the header says %llu", len, (unsigned long long)total);
        return -1;
    }
    uint64_t stored, computed = fnv1a(FNV_OFFSET, buf, len - 8);
    memcpy(&stored, buf + len - 8, 8);
    if (stored != computed) {
        err_set(err, errlen, "checksum mismatch (stored %016llx, computed %016llx): the file is corrupt",
             (unsigned long long)stored, (unsigned long long)computed);
        return -1;
    }
    if (version != CHECKPOINT_VERSION) {
        err_set(err, errlen, "format version %u; this build reads version %d", version, CHECKPOINT_VERSION);
        return -1;
    }
    uint64_t job_hash = get_u64(&r);
    char env_id[JOB_STR + 1] = {0};
    get_copy(&r, env_id, JOB_STR);
    uint32_t obs_dim = get_u32(&r), act_dim = get_u32(&r), n_envs = get_u32(&r), n_steps = get_u32(&r);
    uint32_t seg_T = get_u32(&r), rm_K = get_u32(&r);
    uint64_t policy_n = get_u64(&r), rm_n = get_u64(&r);
    uint32_t n_sections = get_u32(&r);
    get_u32(&r);

    /* Sections: find each by its tag. */
    for (uint32_t i = 0; i < n_sections; i++) {
        uint32_t tag = get_u32(&r);
        get_u32(&r);
        uint64_t slen = get_u64(&r);
        const unsigned char *at = get(&r, slen);
        get(&r, (8 - slen % 8) % 8);
        if (r.bad || !at) {
            err_set(err, errlen, "section %u of %u runs past the end of the file", i + 1, n_sections);
            return -1;
        }
        span_t *sp = tag == SEC_JOB           ? &st->job
                     : tag == SEC_POLICY      ? &st->policy
                     : tag == SEC_POLICY_ADAM ? &st->padam
                     : tag == SEC_OBS_STAT    ? &st->obst
                     : tag == SEC_LEARNER     ? &st->lrnr
                     : tag == SEC_REWARD      ? &st->rwrd
                     : tag == SEC_SEGMENTS    ? &st->segs
                     : tag == SEC_LABELS      ? &st->labl
                     : tag == SEC_LOOP        ? &st->lopp
                     : tag == SEC_FEED        ? &st->feed
                     : tag == SEC_RET_NORM    ? &st->rnrm
                                              : NULL;
        char tn[5];
        if (!sp) {
            err_set(err, errlen, "unknown section '%s'", tag_name(tag, tn));
            return -1;
        }
        if (sp->present) {
            err_set(err, errlen, "section '%s' appears twice", tag_name(tag, tn));
            return -1;
        }
        *sp = (span_t){at, (size_t)slen, 1};
    }
    if (r.off != r.n) {
        err_set(err, errlen, "%zu unexpected bytes after the last section", r.n - r.off);
        return -1;
    }

    /* The job first: every other difference follows from it. */
    if (!st->job.present) {
        err_set(err, errlen, "no job section");
        return -1;
    }
    size_t now_len;
    char *now = job_text(job, &now_len);
    uint64_t now_hash = fnv1a(FNV_OFFSET, now, now_len);
    if (job_hash != now_hash || fnv1a(FNV_OFFSET, st->job.p, st->job.n) != job_hash) {
        char diff[1024];
        job_diff((const char *)st->job.p, st->job.n, now, diff, sizeof diff);
        err_set(err, errlen, "written for a different job: %s", diff);
        free(now);
        return -1;
    }
    free(now);

    /* Sizes: the same job under a different build can still differ. */
    const char *what = NULL;
    unsigned long long have = 0, want = 0;
#define SIZE_CHECK(name, saved, current)                   \
    if (!what && (unsigned long long)(saved) != (unsigned long long)(current)) { \
        what = name;                                       \
        have = (unsigned long long)(saved);                \
        want = (unsigned long long)(current);              \
    }
    SIZE_CHECK("observation dimension", obs_dim, l->obs_dim);
    SIZE_CHECK("action dimension", act_dim, l->act_dim);
    SIZE_CHECK("environments", n_envs, job->env.n_envs);
    SIZE_CHECK("steps per iteration", n_steps, job->ppo.n_steps);
    SIZE_CHECK("segment length", seg_T, l->segs ? l->segs->T : 0);
    SIZE_CHECK("reward-model members", rm_K, l->rm ? l->rm->K : 0);
    SIZE_CHECK("policy parameters", policy_n, l->policy->n_params);
    SIZE_CHECK("reward-model parameters", rm_n, l->rm ? l->rm->n_params : 0);
#undef SIZE_CHECK
    if (!what && strcmp(env_id, job->env.id) != 0) {
        err_set(err, errlen, "environment is %s in the checkpoint, %s now", env_id, job->env.id);
        return -1;
    }
    if (what) {
        err_set(err, errlen, "%s: %llu in the checkpoint, %llu in this build", what, have, want);
        return -1;
    }

    /* Each section: exact lengths, parsed into st. */
    size_t np = l->policy->n_params, sf = sizeof(float);
    const char *bad = NULL;
    if (!st->policy.present || st->policy.n != np * sf) bad = "policy";
    if (!bad) {
        rbuf_t s = {st->padam.p, st->padam.n, 0, 0};
        st->adam_t = get_i64(&s);
        st->adam_m = get(&s, np * sf);
        st->adam_v = get(&s, np * sf);
        if (!st->padam.present || s.bad || s.off != s.n) bad = "policy Adam";
    }
    if (!bad) {
        rbuf_t s = {st->obst.p, st->obst.n, 0, 0};
        get_runstat(&s, &st->obs_stat, l->policy->obs_stat.dim);
        if (!st->obst.present || s.bad || s.off != s.n) bad = "observation statistics";
    }
    if (!bad) {
        rbuf_t s = {st->lrnr.p, st->lrnr.n, 0, 0};
        st->policy_version = get_u64(&s);
        st->r_zero = get_f64(&s);
        st->r_scale = get_f64(&s);
        st->abs_n = get_f64(&s);
        st->reward_corr = get_f64(&s);
        st->learned_return = get_f64(&s);
        st->fits = get_i64(&s);
        st->fit.loss = get_f64(&s);
        st->fit.val_acc = get_f64(&s);
        st->fit.val_n = (int)get_i64(&s);
        st->fit.train_acc = get_f64(&s);
        get_rng(&s, &st->rng_ppo);
        get_rng(&s, &st->rng_reward);
        uint32_t n = get_u32(&s);
        get_u32(&s);
        st->ep_learned = get(&s, sizeof(double) * n);
        if (!st->lrnr.present || s.bad || s.off != s.n || n != (uint32_t)job->env.n_envs) bad = "learner";
    }
    if (!bad && l->rm) {
        const reward_model_t *rm = l->rm;
        rbuf_t s = {st->rwrd.p, st->rwrd.n, 0, 0};
        st->rm_params = get(&s, rm->n_params * sf);
        st->rm_adam_t = get_i64(&s);
        st->rm_m = get(&s, rm->adam.n * sf);
        st->rm_v = get(&s, rm->adam.n * sf);
        get_runstat(&s, &st->rm_obs_stat, rm->obs_stat.dim);
        if (!st->rwrd.present || s.bad || s.off != s.n) bad = "reward model";
    } else if (!bad && (st->rwrd.present || st->segs.present || st->labl.present)) {
        bad = "reward model (present, but this job has none)";
    }
    if (!bad && l->rm) {
        const segstore_t *segs = l->segs;
        rbuf_t s = {st->segs.p, st->segs.n, 0, 0};
        uint32_t T = get_u32(&s), od = get_u32(&s), ad = get_u32(&s), n = get_u32(&s);
        size_t nt = (size_t)n * T;
        if (T != (uint32_t)segs->T || od != (uint32_t)segs->obs_dim || ad != (uint32_t)segs->act_dim || n > (1u << 30))
            s.bad = 1;
        st->seg_n = (int)n;
        st->seg_obs = get(&s, nt * od * sf);
        st->seg_act = get(&s, nt * ad * sf);
        st->seg_r = get(&s, nt * sf);
        st->seg_abs = get(&s, nt);
        if (!st->segs.present || s.bad || s.off != s.n) bad = "segments";
    }
    if (!bad && l->rm) {
        rbuf_t s = {st->labl.p, st->labl.n, 0, 0};
        uint32_t n = get_u32(&s);
        get_u32(&s);
        size_t each = sizeof(int32_t) * (2 + LABEL_MAX_K + 1) + 4;
        if (!st->labl.present || s.bad || n > (1u << 30) || s.n - s.off != (size_t)n * each) {
            bad = "labels";
        } else {
            st->n_labels = (int)n;
            st->labels = callocCheck(n ? n : 1, sizeof(label_t));
            for (uint32_t i = 0; i < n && !bad; i++) {
                int32_t f[2 + LABEL_MAX_K + 1];
                get_copy(&s, f, sizeof f);
                label_t *lb = &st->labels[i];
                lb->kind = f[0];
                lb->k = f[1];
                for (int j = 0; j < LABEL_MAX_K; j++) lb->seg[j] = f[2 + j];
                lb->rating = f[2 + LABEL_MAX_K];
                get_copy(&s, &lb->pref, 4);
                int ok = (lb->kind == QUERY_PAIR || lb->kind == QUERY_RATING || lb->kind == QUERY_RANKING) &&
                         lb->k >= 1 && lb->k <= LABEL_MAX_K;
                for (int j = 0; ok && j < lb->k; j++) ok = lb->seg[j] >= 0 && lb->seg[j] < st->seg_n;
                if (!ok) bad = "labels (a label refers to a segment that is not there)";
            }
        }
    }
    if (!bad) {
        rbuf_t s = {st->lopp.p, st->lopp.n, 0, 0};
        checkpoint_loop_t *lp = &st->loop;
        lp->iteration = get_i64(&s);
        lp->env_steps = get_i64(&s);
        lp->answered = (int)get_i64(&s);
        lp->next_kind = (int)get_i64(&s);
        get_rng(&s, &lp->rng_act);
        get_rng(&s, &lp->rng_feedback);
        get_rng(&s, &lp->rng_teacher);
        lp->wall_s = get_f64(&s);
        if (!st->lopp.present || s.bad || s.off != s.n || lp->iteration < 0 || lp->env_steps < 0) bad = "loop state";
    }
    if (!bad && !st->feed.present) bad = "feed state";
    /* The reward scaling's state: present exactly when this job scales. */
    if (!bad && !!st->rnrm.present != !!l->ret_norm) bad = "reward scaling (ppo.norm_reward) state";
    if (!bad && l->ret_norm) {
        rbuf_t s = {st->rnrm.p, st->rnrm.n, 0, 0};
        get_runstat(&s, &st->ret_stat, 1);
        st->ret = get(&s, sizeof(double) * l->job->env.n_envs);
        if (s.bad || s.off != s.n) bad = "reward scaling (ppo.norm_reward) state";
    }
    if (bad) {
        err_set(err, errlen, "malformed %s section", bad);
        free(st->labels);
        st->labels = NULL;
        return -1;
    }
    return 0;
}

int checkpoint_decode(learner_t *l, const void *buf, size_t len, checkpoint_loop_t *loop, char *err,
                      size_t errlen) {
    staged_t st;
    if (stage(l, buf, len, &st, err, errlen) != 0) return -1;
    size_t sf = sizeof(float);
    policy_t *p = l->policy;
    memcpy(p->params, st.policy.p, p->n_params * sf);
    l->opt.t = st.adam_t;
    memcpy(l->opt.m, st.adam_m, l->opt.n * sf);
    memcpy(l->opt.v, st.adam_v, l->opt.n * sf);
    p->obs_stat = st.obs_stat;
    l->policy_version = st.policy_version;
    l->r_zero = st.r_zero;
    l->r_scale = st.r_scale;
    l->abs_n = st.abs_n;
    l->reward_corr = st.reward_corr;
    l->learned_return = st.learned_return;
    l->fits = (int)st.fits;
    l->fit = st.fit;
    l->rng_ppo = st.rng_ppo;
    l->rng_reward = st.rng_reward;
    memcpy(l->ep_learned, st.ep_learned, sizeof(double) * l->job->env.n_envs);
    if (l->ret_norm) {
        l->ret_norm->stat = st.ret_stat;
        memcpy(l->ret_norm->ret, st.ret, sizeof(double) * l->job->env.n_envs);
    }
    if (l->rm) {
        reward_model_t *rm = l->rm;
        memcpy(rm->params, st.rm_params, rm->n_params * sf);
        rm->adam.t = st.rm_adam_t;
        memcpy(rm->adam.m, st.rm_m, rm->adam.n * sf);
        memcpy(rm->adam.v, st.rm_v, rm->adam.n * sf);
        rm->obs_stat = st.rm_obs_stat;
        /* The segments, through segstore_add (it owns the growth). */
        segstore_t *s = l->segs;
        s->n = 0;
        size_t T = s->T, od = s->obs_dim, ad = s->act_dim;
        float *obs = mallocCheck(sf * T * (od ? od : 1)), *act = mallocCheck(sf * T * (ad ? ad : 1));
        float *r = mallocCheck(sf * T);
        for (int i = 0; i < st.seg_n; i++) {
            memcpy(obs, st.seg_obs + (size_t)i * T * od * sf, T * od * sf);
            memcpy(act, st.seg_act + (size_t)i * T * ad * sf, T * ad * sf);
            memcpy(r, st.seg_r + (size_t)i * T * sf, T * sf);
            segstore_add(s, obs, act, r, st.seg_abs + (size_t)i * T);
        }
        free(obs);
        free(act);
        free(r);
        if (st.n_labels > l->cap_labels) {
            l->cap_labels = st.n_labels;
            l->labels = reallocCheck(l->labels, sizeof(label_t) * l->cap_labels);
        }
        if (st.n_labels) memcpy(l->labels, st.labels, sizeof(label_t) * st.n_labels);
        l->n_labels = st.n_labels;
    }
    free(st.labels);
    if (loop) {
        *loop = st.loop;
        loop->extra = NULL;
        loop->extra_len = st.feed.n;
        if (st.feed.n) {
            loop->extra = mallocCheck(st.feed.n);
            memcpy(loop->extra, st.feed.p, st.feed.n);
        }
    }
    return 0;
}

int checkpoint_save(const char *path, const learner_t *l, const checkpoint_loop_t *loop, char *err,
                    size_t errlen) {
    unsigned char *buf;
    size_t len;
    checkpoint_encode(l, loop, &buf, &len);
    int rc = write_file_atomic(path, buf, len);
    if (rc != 0) err_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
    free(buf);
    return rc;
}

int checkpoint_read_file(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        err_set(err, errlen, "%s is not a regular file", path);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *p = mallocCheck(n ? n : 1);
    size_t got = fread(p, 1, n, f);
    int failed = ferror(f);
    fclose(f);
    if (got != n || failed) {
        err_set(err, errlen, "cannot read %s: %s", path, failed ? strerror(errno) : "short read");
        free(p);
        return -1;
    }
    *buf = p;
    *len = n;
    return 0;
}

int checkpoint_load(const char *path, learner_t *l, checkpoint_loop_t *loop, char *err, size_t errlen) {
    unsigned char *buf;
    size_t len;
    if (checkpoint_read_file(path, &buf, &len, err, errlen) != 0) return -1;
    char why[1536];
    int rc = checkpoint_decode(l, buf, len, loop, why, sizeof why);
    if (rc != 0) err_set(err, errlen, "%s: %s", path, why);
    free(buf);
    return rc;
}

/* weights.c - see weights.h. */
#include "weights.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "util.h"

static const env_class_t *job_env(const job_t *job, char *err, size_t errlen) {
    const env_class_t *cls = env_find(job->env.id);
    if (!cls) err_set(err, errlen, "unknown environment '%s' (rlhf env list)", job->env.id);
    return cls;
}

static void hidden_str(const int *h, int n, char *out, size_t len) {
    out[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < n && used < len; i++) {
        int w = snprintf(out + used, len - used, "%s%d", i ? "," : "", h[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

static int layer_sizes(int in, const int *hidden, int n_hidden, int out, int *sizes) {
    sizes[0] = in;
    for (int i = 0; i < n_hidden; i++) sizes[i + 1] = hidden[i];
    sizes[n_hidden + 1] = out;
    return n_hidden + 1;
}

/* The parameter counts are part of the arch: what the receiver's network
 * has, counted as policy_new() and reward_new() lay them out. */
static size_t policy_params(const job_t *job, const env_class_t *cls) {
    int sizes[NN_MAX_LAYERS + 1];
    int L = layer_sizes(cls->obs_dim, job->policy.hidden, job->policy.n_hidden, cls->act.n, sizes);
    size_t n = mlp_count(sizes, L);
    L = layer_sizes(cls->obs_dim, job->policy.hidden, job->policy.n_hidden, 1, sizes);
    n += mlp_count(sizes, L);
    return n + (cls->act.discrete ? 0 : (size_t)cls->act.n);
}

static int reward_members(const job_t *job) {
    return job->reward.members > REWARD_MAX_MEMBERS ? REWARD_MAX_MEMBERS : job->reward.members;
}

static size_t reward_params(const job_t *job, const env_class_t *cls) {
    int sizes[NN_MAX_LAYERS + 1];
    int L = layer_sizes(cls->obs_dim + cls->act.n + 1, job->reward.hidden, job->reward.n_hidden, 1, sizes);
    return mlp_count(sizes, L) * (size_t)reward_members(job);
}

int weights_policy_arch(const job_t *job, char *out, size_t n, char *err, size_t errlen) {
    const env_class_t *cls = job_env(job, err, errlen);
    if (!cls) return -1;
    char h[128];
    hidden_str(job->policy.hidden, job->policy.n_hidden, h, sizeof h);
    snprintf(out, n, "policy %s obs %d %s %d mlp %s %s norm %d params %zu", cls->id, cls->obs_dim,
             cls->act.discrete ? "discrete" : "box", cls->act.n, h,
             job->policy.activation == ACT_RELU ? "relu" : "tanh", job->ppo.norm_obs, policy_params(job, cls));
    return 0;
}

int weights_reward_arch(const job_t *job, char *out, size_t n, char *err, size_t errlen) {
    const env_class_t *cls = job_env(job, err, errlen);
    if (!cls) return -1;
    char h[128];
    hidden_str(job->reward.hidden, job->reward.n_hidden, h, sizeof h);
    snprintf(out, n, "reward %s obs %d %s %d members %d mlp %s %s params %zu", cls->id, cls->obs_dim,
             cls->act.discrete ? "discrete" : "box", cls->act.n, reward_members(job), h,
             job->reward.activation == ACT_RELU ? "relu" : "tanh", reward_params(job, cls));
    return 0;
}

/* learner_new()'s construction order: the policy, then the reward model, both
 * from the stream rng_split(seed(run.seed), 1). Changing one changes both. */
static policy_t *initial_policy(const job_t *job, const env_class_t *cls, rng_t *init) {
    rng_t root;
    rng_seed(&root, job->run.seed);
    rng_split(&root, 1, init);
    return policy_new(cls->obs_dim, &cls->act, job->policy.hidden, job->policy.n_hidden,
                      job->policy.activation == ACT_RELU ? NN_RELU : NN_TANH, job->policy.log_std_init,
                      job->ppo.norm_obs, init);
}

policy_t *weights_policy_new(const job_t *job, char *err, size_t errlen) {
    const env_class_t *cls = job_env(job, err, errlen);
    if (!cls) return NULL;
    rng_t init;
    return initial_policy(job, cls, &init);
}

reward_model_t *weights_reward_new(const job_t *job, char *err, size_t errlen) {
    const env_class_t *cls = job_env(job, err, errlen);
    if (!cls) return NULL;
    rng_t init;
    policy_t *p = initial_policy(job, cls, &init);
    policy_destroy(&p);
    return reward_new(cls->obs_dim, &cls->act, job, &init);
}

static void pack(weights_t *w, Rlhf__ModelKind model, uint64_t version, const char *arch, const float *params,
                 size_t n_params, const runstat_t *st, int obs_dim) {
    size_t n = n_params + 2 * (size_t)obs_dim + 1;
    if (w->n != n || !w->data) {
        free(w->data);
        w->data = mallocCheck(sizeof(float) * n);
    }
    w->n = n;
    w->model = model;
    w->version = version;
    snprintf(w->arch, sizeof w->arch, "%s", arch);
    memcpy(w->data, params, sizeof(float) * n_params);
    float *s = w->data + n_params;
    for (int j = 0; j < obs_dim; j++) {
        s[j] = (float)st->mean[j];
        s[obs_dim + j] = (float)st->var[j];
    }
    s[2 * obs_dim] = (float)st->count;
}

/* Checks kind, arch and length; then copies params and statistics. */
static int unpack(const weights_t *w, Rlhf__ModelKind model, const char *arch, float *params, size_t n_params,
                  runstat_t *st, int obs_dim, char *err, size_t errlen) {
    if (w->model != model) {
        err_set(err, errlen, "weights are for the %s, expected the %s", wire_model_kind_name(w->model) ? wire_model_kind_name(w->model) : "(none)",
                wire_model_kind_name(model));
        return -1;
    }
    if (strcmp(w->arch, arch) != 0) {
        err_set(err, errlen, "%s weights have arch '%s', this job's network is '%s'", wire_model_kind_name(model),
                w->arch, arch);
        return -1;
    }
    size_t n = n_params + 2 * (size_t)obs_dim + 1;
    if (w->n != n) {
        err_set(err, errlen, "%s weights have %zu floats, expected %zu", wire_model_kind_name(model), w->n, n);
        return -1;
    }
    memcpy(params, w->data, sizeof(float) * n_params);
    const float *s = w->data + n_params;
    for (int j = 0; j < obs_dim; j++) {
        st->mean[j] = s[j];
        st->var[j] = s[obs_dim + j];
    }
    st->count = s[2 * obs_dim];
    return 0;
}

void weights_pack_policy(weights_t *w, const job_t *job, const policy_t *p, uint64_t version) {
    char arch[WEIGHTS_ARCH_MAX] = "";
    weights_policy_arch(job, arch, sizeof arch, NULL, 0);
    pack(w, RLHF__MODEL_KIND__MODEL_POLICY, version, arch, p->params, p->n_params, &p->obs_stat, p->obs_dim);
}

void weights_pack_reward(weights_t *w, const job_t *job, const reward_model_t *rm, uint64_t version) {
    char arch[WEIGHTS_ARCH_MAX] = "";
    weights_reward_arch(job, arch, sizeof arch, NULL, 0);
    pack(w, RLHF__MODEL_KIND__MODEL_REWARD, version, arch, rm->params, rm->n_params, &rm->obs_stat, rm->obs_dim);
}

int weights_unpack_policy(const weights_t *w, const job_t *job, policy_t *p, char *err, size_t errlen) {
    char arch[WEIGHTS_ARCH_MAX];
    if (weights_policy_arch(job, arch, sizeof arch, err, errlen) != 0) return -1;
    return unpack(w, RLHF__MODEL_KIND__MODEL_POLICY, arch, p->params, p->n_params, &p->obs_stat, p->obs_dim, err,
                  errlen);
}

int weights_unpack_reward(const weights_t *w, const job_t *job, reward_model_t *rm, char *err, size_t errlen) {
    char arch[WEIGHTS_ARCH_MAX];
    if (weights_reward_arch(job, arch, sizeof arch, err, errlen) != 0) return -1;
    return unpack(w, RLHF__MODEL_KIND__MODEL_REWARD, arch, rm->params, rm->n_params, &rm->obs_stat, rm->obs_dim,
                  err, errlen);
}

void weights_copy(weights_t *dst, const weights_t *src) {
    weights_free(dst);
    *dst = *src;
    dst->data = mallocCheck(sizeof(float) * (src->n ? src->n : 1));
    if (src->n) memcpy(dst->data, src->data, sizeof(float) * src->n);
}

void weights_free(weights_t *w) {
    if (!w) return;
    free(w->data);
    memset(w, 0, sizeof *w);
}

/* ---- chunks -------------------------------------------------------------- */

static size_t chunk_size(size_t chunk_floats) { return chunk_floats ? chunk_floats : WIRE_WEIGHTS_CHUNK_FLOATS; }

size_t weights_chunk_count(const weights_t *w, size_t chunk_floats) {
    size_t c = chunk_size(chunk_floats);
    return (w->n + c - 1) / c;
}

uint64_t weights_checksum(const weights_t *w) { return wire_hash64(w->data, sizeof(float) * w->n); }

void weights_chunk(const weights_t *w, size_t chunk_floats, size_t i, uint64_t checksum, Rlhf__Weights *msg) {
    size_t c = chunk_size(chunk_floats), off = i * c;
    rlhf__weights__init(msg);
    msg->has_model = 1, msg->model = w->model;
    msg->has_version = 1, msg->version = w->version;
    msg->arch = (char *)w->arch;
    msg->has_total_len = 1, msg->total_len = w->n;
    msg->has_chunk_index = 1, msg->chunk_index = (uint32_t)i;
    msg->has_chunk_count = 1, msg->chunk_count = (uint32_t)weights_chunk_count(w, chunk_floats);
    msg->has_offset = 1, msg->offset = off;
    msg->has_checksum = 1, msg->checksum = checksum;
    msg->n_data = off + c <= w->n ? c : w->n - off;
    msg->data = w->data + off;
}

void weights_rx_init(weights_rx_t *rx) { memset(rx, 0, sizeof *rx); }

void weights_rx_free(weights_rx_t *rx) {
    weights_free(&rx->w);
    memset(rx, 0, sizeof *rx);
}

int weights_rx_add(weights_rx_t *rx, const Rlhf__Weights *m, weights_t *out, char *err, size_t errlen) {
    if (m->chunk_index == 0) {
        /* A new tensor: whatever was partial is abandoned (its sender moved on). */
        rx->next = 0;
        rx->filled = 0;
        rx->chunk_count = m->chunk_count;
        rx->checksum = m->checksum;
        if (rx->w.n != m->total_len || !rx->w.data) {
            free(rx->w.data);
            rx->w.data = mallocCheck(sizeof(float) * m->total_len);
        }
        rx->w.n = m->total_len;
        rx->w.model = m->model;
        rx->w.version = m->version;
        snprintf(rx->w.arch, sizeof rx->w.arch, "%s", m->arch ? m->arch : "");
    } else if (rx->next == 0 || m->chunk_index != rx->next) {
        err_set(err, errlen, "weights chunk %" PRIu32 " of %" PRIu32 " arrived, expected chunk %" PRIu32,
                m->chunk_index, m->chunk_count, rx->next);
        rx->next = 0;
        return -1;
    } else if (m->chunk_count != rx->chunk_count || m->total_len != rx->w.n || m->version != rx->w.version ||
               m->model != rx->w.model || m->checksum != rx->checksum || m->offset != rx->filled) {
        err_set(err, errlen, "weights chunk %" PRIu32 " does not belong to the tensor in progress (version %" PRIu64
                ", %zu floats)", m->chunk_index, rx->w.version, rx->w.n);
        rx->next = 0;
        return -1;
    }
    /* wire_validate checked offset + n_data <= total_len. */
    memcpy(rx->w.data + m->offset, m->data, sizeof(float) * m->n_data);
    rx->filled = m->offset + m->n_data;
    rx->next = m->chunk_index + 1;
    if (rx->next < rx->chunk_count) return 0;
    rx->next = 0;
    uint64_t h = weights_checksum(&rx->w);
    if (h != rx->checksum) {
        err_set(err, errlen, "reassembled %s weights version %" PRIu64 ": checksum 0x%016" PRIx64
                " does not match the data (0x%016" PRIx64 ")", wire_model_kind_name(rx->w.model), rx->w.version,
                rx->checksum, h);
        return -1;
    }
    weights_free(out);
    *out = rx->w;
    memset(&rx->w, 0, sizeof rx->w);
    return 1;
}

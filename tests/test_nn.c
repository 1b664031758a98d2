/* test_nn.c - every hand-written backward pass against central finite
 * differences: the MLP (tanh and relu), the categorical and Gaussian policy
 * heads with the value net, the PPO minibatch loss, and the reward model's
 * three losses (Bradley-Terry with ties and noise, Plackett-Luce, rating
 * regression). Plus Adam, gradient clipping and orthogonal init. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "feedback.h"
#include "job.h"
#include "nn.h"
#include "policy.h"
#include "ppo.h"
#include "reward.h"
#include "rng.h"

/* Compares the analytic gradient g (n) of f at params (n) with central
 * differences at up to `samples` coordinates. f must not change params. */
typedef double (*loss_fn)(void *ctx);

static void gradcheck(const char *what, float *params, const float *g, size_t n, loss_fn f, void *ctx,
                      int samples, rng_t *rng) {
    const double h = 1e-2;
    double worst = 0;
    int checked = 0;
    for (int s = 0; s < samples && (size_t)s < n * 4; s++) {
        size_t i = n <= (size_t)samples ? (size_t)s % n : (size_t)rng_int(rng, (int)n);
        float old = params[i];
        params[i] = old + (float)h;
        double fp = f(ctx);
        params[i] = old - (float)h;
        double fm = f(ctx);
        params[i] = old;
        double num = (fp - fm) / (2 * h);
        double err = fabs(num - g[i]) / fmax(fmax(fabs(num), fabs(g[i])), 1e-2);
        if (err > worst) worst = err;
        if (err > 3e-2) fail_msg("%s: d/dparam[%zu] analytic %.6g numeric %.6g (rel err %.3g)", what, i, g[i], num, err);
        checked++;
    }
    print_message("# %s: %d coordinates, worst relative error %.2e\n", what, checked, worst);
}

/* ---- MLP */

typedef struct {
    mlp_t *m;
    const float *x, *c;
    int B;
} mlp_ctx;

static double mlp_loss(void *p) {
    mlp_ctx *k = p;
    const float *out = mlp_forward(k->m, k->x, k->B);
    double s = 0;
    for (int i = 0; i < k->B * k->m->sizes[k->m->n_layers]; i++) s += (double)k->c[i] * out[i];
    return s;
}

static void check_mlp(nn_act_t act) {
    rng_t rng;
    rng_seed(&rng, 3);
    int sizes[] = {5, 16, 12, 3}, B = 7;
    size_t n = mlp_count(sizes, 3);
    assert_int_equal(n, 5 * 16 + 16 + 16 * 12 + 12 + 12 * 3 + 3);
    float *params = calloc(n, sizeof(float)), *grads = calloc(n, sizeof(float));
    mlp_t m;
    mlp_bind(&m, sizes, 3, act, params, grads);
    mlp_init_orthogonal(&m, &rng, 1.3f, 1.0f);
    for (size_t i = 0; i < n; i++) params[i] += 0.1f * (float)rng_normal(&rng);   // non-zero biases too
    float x[7 * 5], c[7 * 3], dx[7 * 5];
    for (int i = 0; i < B * 5; i++) x[i] = (float)rng_normal(&rng);
    for (int i = 0; i < B * 3; i++) c[i] = (float)rng_normal(&rng);
    mlp_ctx ctx = {&m, x, c, B};
    mlp_loss(&ctx);
    nn_zero(grads, n);
    mlp_backward(&m, c, dx);
    gradcheck(act == NN_TANH ? "mlp tanh params" : "mlp relu params", params, grads, n, mlp_loss, &ctx, 200, &rng);
    /* The input gradient too: perturb x. */
    float *xp = x;
    mlp_loss(&ctx);
    mlp_backward(&m, c, dx);
    gradcheck("mlp input", xp, dx, (size_t)B * 5, mlp_loss, &ctx, 35, &rng);
    mlp_free(&m);
    free(params);
    free(grads);
}

static void test_mlp_tanh(void **state) {
    (void)state;
    check_mlp(NN_TANH);
}

static void test_mlp_relu(void **state) {
    (void)state;
    check_mlp(NN_RELU);
}

/* ---- policy heads */

typedef struct {
    policy_t *p;
    const float *obs, *act, *a, *b, *c;
    int B;
} pol_ctx;

static double pol_loss(void *v) {
    pol_ctx *k = v;
    float logp[16], ent[16], val[16];
    policy_evaluate(k->p, k->obs, k->act, k->B, logp, ent, val);
    double s = 0;
    for (int i = 0; i < k->B; i++) s += k->a[i] * logp[i] + k->b[i] * ent[i] + k->c[i] * val[i];
    return s;
}

static void check_policy(int discrete) {
    rng_t rng;
    rng_seed(&rng, 11);
    env_space_t space = {.discrete = discrete, .n = 3};
    for (int j = 0; j < 3; j++) {
        space.low[j] = -2;
        space.high[j] = 2;
    }
    int hidden[] = {8, 8}, B = 6;
    policy_t *p = policy_new(4, &space, hidden, 2, NN_TANH, -0.3, 0, &rng);
    for (size_t i = 0; i < p->n_params; i++) p->params[i] += 0.3f * (float)rng_normal(&rng);
    float obs[6 * 4], act[6 * 3], a[6], b[6], c[6], lp[6], v[6];
    for (int i = 0; i < B * 4; i++) obs[i] = (float)rng_normal(&rng);
    policy_act(p, obs, B, &rng, 0, act, lp, v);
    if (discrete)
        for (int i = 0; i < B; i++) assert_true(act[i] >= 0 && act[i] < 3 && act[i] == floorf(act[i]));
    for (int i = 0; i < B; i++) {
        a[i] = (float)rng_normal(&rng);
        b[i] = (float)rng_normal(&rng);
        c[i] = (float)rng_normal(&rng);
    }
    /* policy_act's log-probs are the ones policy_evaluate computes. */
    float logp[6], ent[6], val[6];
    policy_evaluate(p, obs, act, B, logp, ent, val);
    for (int i = 0; i < B; i++) {
        assert_true(fabsf(logp[i] - lp[i]) < 1e-4f);
        assert_true(fabsf(val[i] - v[i]) < 1e-5f);
    }
    pol_ctx ctx = {p, obs, act, a, b, c, B};
    pol_loss(&ctx);
    nn_zero(p->grads, p->n_params);
    policy_backward(p, a, b, c);
    gradcheck(discrete ? "categorical policy + value" : "gaussian policy + value + log_std", p->params, p->grads,
              p->n_params, pol_loss, &ctx, 300, &rng);
    if (!discrete) {
        /* log_std is the last block: check every coordinate of it. */
        size_t off = p->n_params - 3;
        gradcheck("gaussian log_std", p->params + off, p->grads + off, 3, pol_loss, &ctx, 3, &rng);
        /* Entropy of a diagonal Gaussian: sum(log_std) + d/2 log(2 pi e). */
        double expect = 0;
        for (int j = 0; j < 3; j++) expect += p->log_std[j] + 0.5 * (log(2 * M_PI) + 1);
        assert_true(fabs(ent[0] - expect) < 1e-4);
    }
    policy_destroy(&p);
    assert_null(p);
}

static void test_policy_categorical(void **state) {
    (void)state;
    check_policy(1);
}

static void test_policy_gaussian(void **state) {
    (void)state;
    check_policy(0);
}

/* Sampling matches the distribution: categorical frequencies follow the
 * softmax, Gaussian samples have the head's mean and std. */
static void test_policy_sampling(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 5);
    env_space_t cat = {.discrete = 1, .n = 3};
    int hidden[] = {4};
    policy_t *p = policy_new(2, &cat, hidden, 1, NN_TANH, 0, 0, &rng);
    for (size_t i = 0; i < p->n_params; i++) p->params[i] = 0.5f * (float)rng_normal(&rng);
    float obs[2] = {0.3f, -0.7f}, a, lp;
    int counts[3] = {0};
    const int n = 30000;
    for (int i = 0; i < n; i++) {
        policy_act(p, obs, 1, &rng, 0, &a, &lp, NULL);
        counts[(int)a]++;
    }
    float act[3] = {0, 1, 2}, obs3[6], logp[3], ent[3], val[3];
    for (int i = 0; i < 3; i++) memcpy(obs3 + 2 * i, obs, sizeof obs);
    policy_evaluate(p, obs3, act, 3, logp, ent, val);
    for (int j = 0; j < 3; j++) assert_true(fabs(counts[j] / (double)n - exp(logp[j])) < 0.015);
    policy_destroy(&p);

    env_space_t box = {.discrete = 0, .n = 1, .low = {-1}, .high = {1}};
    p = policy_new(2, &box, hidden, 1, NN_TANH, log(0.5), 0, &rng);
    double s = 0, s2 = 0, mean;
    float det;
    policy_act(p, obs, 1, &rng, 1, &det, NULL, NULL);
    mean = det;
    for (int i = 0; i < n; i++) {
        policy_act(p, obs, 1, &rng, 0, &a, NULL, NULL);
        s += a;
        s2 += (a - mean) * (a - mean);
    }
    assert_true(fabs(s / n - mean) < 0.01);
    assert_true(fabs(sqrt(s2 / n) - 0.5) < 0.01);
    policy_destroy(&p);
}

/* ---- PPO */

typedef struct {
    policy_t *p;
    const float *obs, *act, *old, *adv, *ret;
    int M;
} ppo_ctx;

static double ppo_loss(void *v) {
    ppo_ctx *k = v;
    return ppo_minibatch_loss(k->p, k->obs, k->act, k->old, k->adv, k->ret, k->M, 0, k->M, 0.2, 0.01, 0.5, 0, NULL);
}

static void test_ppo_loss_gradient(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 17);
    for (int discrete = 0; discrete <= 1; discrete++) {
        env_space_t space = {.discrete = discrete, .n = 2, .low = {-1, -1}, .high = {1, 1}};
        int hidden[] = {8};
        policy_t *p = policy_new(3, &space, hidden, 1, NN_TANH, 0, 0, &rng);
        for (size_t i = 0; i < p->n_params; i++) p->params[i] += 0.2f * (float)rng_normal(&rng);
        enum { M = 16 };
        float obs[M * 3], act[M * 2], old[M], adv[M], ret[M], val[M];
        for (int i = 0; i < M * 3; i++) obs[i] = (float)rng_normal(&rng);
        policy_act(p, obs, M, &rng, 0, act, old, val);
        for (int i = 0; i < M; i++) {
            /* Old log-probs a little off so some ratios are clipped, but not
             * within finite-difference reach of the clip edges. */
            old[i] += (i % 4 == 0) ? 0.5f : (i % 4 == 1 ? -0.5f : 0.03f);
            adv[i] = (float)rng_normal(&rng);
            ret[i] = (float)rng_normal(&rng);
        }
        ppo_ctx ctx = {p, obs, act, old, adv, ret, M};
        nn_zero(p->grads, p->n_params);
        ppo_minibatch_loss(p, obs, act, old, adv, ret, M, 0, M, 0.2, 0.01, 0.5, 1, NULL);
        gradcheck(discrete ? "ppo loss, categorical" : "ppo loss, gaussian", p->params, p->grads, p->n_params,
                  ppo_loss, &ctx, 200, &rng);
        /* Three replicas' shards add up to the whole minibatch's gradient. */
        float *full = malloc(sizeof(float) * p->n_params), *sum = calloc(p->n_params, sizeof(float));
        memcpy(full, p->grads, sizeof(float) * p->n_params);
        for (int r = 0; r < 3; r++) {
            dist_t d = {.rank = r, .size = 3};
            int lo, hi;
            dist_shard(&d, M, &lo, &hi);
            nn_zero(p->grads, p->n_params);
            ppo_minibatch_loss(p, obs, act, old, adv, ret, M, lo, hi, 0.2, 0.01, 0.5, 1, NULL);
            for (size_t i = 0; i < p->n_params; i++) sum[i] += p->grads[i];
        }
        for (size_t i = 0; i < p->n_params; i++) assert_true(fabsf(sum[i] - full[i]) <= 1e-5f + 1e-4f * fabsf(full[i]));
        free(full);
        free(sum);
        policy_destroy(&p);
    }
}

/* GAE by hand on a tiny buffer: one env, a truncation with bootstrap and
 * a termination. */
static void test_gae(void **state) {
    (void)state;
    ppo_buffer_t *b = ppo_buffer_new(4, 1, 1, 1);
    float r[4] = {1, 2, 3, 4}, v[4] = {0.5f, 0.25f, 1, 2};
    memcpy(b->reward, r, sizeof r);
    memcpy(b->value, v, sizeof v);
    b->done[1] = 1;
    b->boot[1] = 0.9f * 10;   // truncated: gamma * V(final)
    b->last_value[0] = 3;
    double g = 0.9, l = 0.8;
    ppo_compute_gae(b, g, l);
    double d3 = 4 + g * 3 - 2, d2 = 3 + g * 2 - 1, d1 = 2 + 9 - 0.25, d0 = 1 + g * 0.25 - 0.5;
    double a3 = d3, a2 = d2 + g * l * a3, a1 = d1, a0 = d0 + g * l * a1;
    assert_true(fabs(b->adv[3] - a3) < 1e-5 && fabs(b->adv[2] - a2) < 1e-5);
    assert_true(fabs(b->adv[1] - a1) < 1e-5 && fabs(b->adv[0] - a0) < 1e-5);
    assert_true(fabs(b->ret[0] - (a0 + 0.5)) < 1e-5);
    ppo_buffer_destroy(&b);
    assert_null(b);
}

/* ---- reward model */

typedef struct {
    reward_model_t *rm;
    segstore_t *s;
    label_t *labels;
    int *idx, n;
} rm_ctx;

static double rm_loss(void *v) {
    rm_ctx *k = v;
    return reward_member_loss(k->rm, 1, k->s, k->labels, k->idx, k->n, k->n, 0);
}

static void test_reward_loss_gradients(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 23);
    job_t job;
    job_defaults(&job);
    job.reward.members = 3;
    job.reward.hidden[0] = 12;
    job.reward.hidden[1] = 10;
    job.reward.n_hidden = 2;
    job.reward.activation = ACT_TANH;
    env_space_t space = {.discrete = 1, .n = 2};
    reward_model_t *rm = reward_new(4, &space, &job, &rng);
    int T = 5;
    segstore_t *s = segstore_new(T, 4, 1);
    for (int i = 0; i < 8; i++) {
        float obs[5 * 4], act[5], r[5] = {0};
        uint8_t ab[5] = {0};
        for (int j = 0; j < 20; j++) obs[j] = (float)rng_normal(&rng);
        for (int t = 0; t < T; t++) act[t] = (float)rng_int(&rng, 2);
        if (i % 3 == 0) ab[3] = ab[4] = 1;    // some segments end in the absorbing state
        segstore_add(s, obs, act, r, ab);
    }
    label_t labels[] = {
        {.kind = QUERY_PAIR, .k = 2, .seg = {0, 1}, .pref = 1.0f},
        {.kind = QUERY_PAIR, .k = 2, .seg = {2, 3}, .pref = 0.5f},
        {.kind = QUERY_PAIR, .k = 2, .seg = {4, 5}, .pref = 0.0f},
        {.kind = QUERY_RANKING, .k = 4, .seg = {6, 1, 7, 2}},
        {.kind = QUERY_RATING, .k = 1, .seg = {3}, .rating = 6},
    };
    int idx[] = {0, 1, 2, 3, 4};
    for (size_t i = 0; i < rm->n_params; i++) rm->params[i] += 0.2f * (float)rng_normal(&rng);
    rm_ctx ctx = {rm, s, labels, idx, 5};
    nn_zero(rm->grads, rm->n_params);
    reward_member_loss(rm, 1, s, labels, idx, 5, 5, 1);
    /* Only member 1's block has a gradient. */
    for (size_t i = 0; i < rm->per_member; i++) assert_true(rm->grads[i] == 0.0f);
    float *p1 = rm->params + rm->per_member, *g1 = rm->grads + rm->per_member;
    gradcheck("reward model: pair (incl. tie) + ranking + rating", p1, g1, rm->per_member, rm_loss, &ctx, 300, &rng);
    segstore_destroy(&s);
    reward_destroy(&rm);
}

/* ---- optimiser */

static void test_adam_and_clip(void **state) {
    (void)state;
    /* Adam minimises a quadratic. */
    float x[3] = {3, -2, 1}, g[3];
    adam_t a;
    adam_init(&a, 3);
    for (int it = 0; it < 2000; it++) {
        for (int i = 0; i < 3; i++) g[i] = 2 * (x[i] - (float)i);
        adam_step(&a, x, g, 0.05, 0.0);
    }
    for (int i = 0; i < 3; i++) assert_true(fabsf(x[i] - (float)i) < 1e-2f);
    /* First step of Adam moves each coordinate by lr (bias corrected). */
    adam_reset(&a);
    float y[3] = {0, 0, 0}, gy[3] = {5, -0.1f, 2};
    adam_step(&a, y, gy, 0.01, 0.0);
    for (int i = 0; i < 3; i++) assert_true(fabsf(fabsf(y[i]) - 0.01f) < 1e-5f);
    adam_free(&a);
    float v[4] = {3, 4, 0, 0};
    double norm = nn_clip_grad_norm(v, 4, 1.0);
    assert_true(fabs(norm - 5) < 1e-6);
    assert_true(fabsf(v[0] - 0.6f) < 1e-4f && fabsf(v[1] - 0.8f) < 1e-4f);
    float w[2] = {0.3f, 0.4f};
    nn_clip_grad_norm(w, 2, 1.0);
    assert_true(w[0] == 0.3f && w[1] == 0.4f);
}

static void test_orthogonal_init(void **state) {
    (void)state;
    rng_t rng;
    rng_seed(&rng, 1);
    int sizes[] = {6, 4};
    float params[6 * 4 + 4], grads[6 * 4 + 4];
    mlp_t m;
    mlp_bind(&m, sizes, 1, NN_TANH, params, grads);
    mlp_init_orthogonal(&m, &rng, 2.0f, 2.0f);
    /* Rows of W (4 x 6) are orthogonal with norm 2. */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double d = 0;
            for (int k = 0; k < 6; k++) d += m.W[0][i * 6 + k] * m.W[0][j * 6 + k];
            assert_true(fabs(d - (i == j ? 4.0 : 0.0)) < 1e-4);
        }
    mlp_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_tanh),
        cmocka_unit_test(test_mlp_relu),
        cmocka_unit_test(test_policy_categorical),
        cmocka_unit_test(test_policy_gaussian),
        cmocka_unit_test(test_policy_sampling),
        cmocka_unit_test(test_ppo_loss_gradient),
        cmocka_unit_test(test_gae),
        cmocka_unit_test(test_reward_loss_gradients),
        cmocka_unit_test(test_adam_and_clip),
        cmocka_unit_test(test_orthogonal_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

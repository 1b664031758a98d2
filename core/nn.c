/* nn.c - see nn.h. The reference path is the obvious one: one sgemm per
 * layer forward, two per layer backward (weights and inputs). */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

size_t mlp_count(const int *sizes, int n_layers) {
    size_t n = 0;
    for (int l = 0; l < n_layers; l++) n += (size_t)sizes[l] * sizes[l + 1] + sizes[l + 1];
    return n;
}

void mlp_bind(mlp_t *m, const int *sizes, int n_layers, nn_act_t act, float *params, float *grads) {
    memset(m, 0, sizeof *m);
    if (n_layers < 1 || n_layers > NN_MAX_LAYERS) {
        log_error("mlp_bind: %d layers (1..%d)", n_layers, NN_MAX_LAYERS);
        abort();
    }
    m->n_layers = n_layers;
    m->act = act;
    for (int l = 0; l <= n_layers; l++) m->sizes[l] = sizes[l];
    size_t off = 0;
    for (int l = 0; l < n_layers; l++) {
        size_t w = (size_t)sizes[l] * sizes[l + 1];
        m->W[l] = params + off;
        m->b[l] = params + off + w;
        if (grads) {
            m->dW[l] = grads + off;
            m->db[l] = grads + off + w;
        }
        off += w + sizes[l + 1];
    }
    m->n_params = off;
}

void mlp_free(mlp_t *m) {
    for (int l = 0; l < m->n_layers; l++) {
        free(m->h[l]);
        m->h[l] = NULL;
    }
    free(m->d0);
    free(m->d1);
    m->d0 = m->d1 = NULL;
    m->cap = 0;
}

static void ensure_workspace(mlp_t *m, int B) {
    if (B <= m->cap) return;
    int cap = m->cap ? m->cap : 64;
    while (cap < B) cap *= 2;
    int widest = 0;
    for (int l = 0; l <= m->n_layers; l++)
        if (m->sizes[l] > widest) widest = m->sizes[l];
    for (int l = 0; l < m->n_layers; l++)
        m->h[l] = reallocCheck(m->h[l], sizeof(float) * (size_t)cap * m->sizes[l + 1]);
    m->d0 = reallocCheck(m->d0, sizeof(float) * (size_t)cap * widest);
    m->d1 = reallocCheck(m->d1, sizeof(float) * (size_t)cap * widest);
    m->cap = cap;
}

/* Fills W (rows, cols) with a scaled orthogonal matrix: Gaussian, then
 * modified Gram-Schmidt over the shorter dimension. */
static void orthogonal(float *W, int rows, int cols, float gain, rng_t *rng) {
    int by_rows = rows <= cols;
    int nvec = by_rows ? rows : cols, len = by_rows ? cols : rows;
    double *v = mallocCheck(sizeof(double) * (size_t)nvec * len);
    for (size_t i = 0; i < (size_t)nvec * len; i++) v[i] = rng_normal(rng);
    for (int i = 0; i < nvec; i++) {
        double *vi = v + (size_t)i * len;
        for (int j = 0; j < i; j++) {
            double *vj = v + (size_t)j * len, dot = 0;
            for (int k = 0; k < len; k++) dot += vi[k] * vj[k];
            for (int k = 0; k < len; k++) vi[k] -= dot * vj[k];
        }
        double norm = 0;
        for (int k = 0; k < len; k++) norm += vi[k] * vi[k];
        norm = sqrt(norm) + 1e-12;
        for (int k = 0; k < len; k++) vi[k] /= norm;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            W[(size_t)r * cols + c] = gain * (float)(by_rows ? v[(size_t)r * len + c] : v[(size_t)c * len + r]);
    free(v);
}

void mlp_init_orthogonal(mlp_t *m, rng_t *rng, float gain, float out_gain) {
    for (int l = 0; l < m->n_layers; l++) {
        float g = l == m->n_layers - 1 ? out_gain : gain;
        orthogonal(m->W[l], m->sizes[l + 1], m->sizes[l], g, rng);
        memset(m->b[l], 0, sizeof(float) * m->sizes[l + 1]);
    }
}

/* tanh as a rational function (Eigen's float approximation, about 1 ulp on
 * the clamped range): libm's tanhf is scalar and costs more than the sgemms
 * of a 64-wide layer; this form vectorises. The clamp is written with fabs
 * because gcc in -std=c11 mode keeps a ternary or fminf clamp as a branch,
 * which stops the loop from vectorising (3x slower); the price is an
 * absolute error of about 2.4e-7 (half an ulp of the bound) in x. */
static inline float fast_tanh(float x) {
    const float clamp = 7.90531110763549805f;
    x = 0.5f * (fabsf(x + clamp) - fabsf(x - clamp));
    float x2 = x * x;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    p = x * p;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    return p / q;
}

static void tanh_bias_row(float *restrict o, const float *restrict bias, int n) {
    for (int j = 0; j < n; j++) o[j] = fast_tanh(o[j] + bias[j]);
}

float *mlp_forward(mlp_t *m, const float *x, int B) {
    ensure_workspace(m, B);
    m->batch = B;
    m->x = x;
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        int nin = m->sizes[l], nout = m->sizes[l + 1];
        float *out = m->h[l];   // out is (B, nout)
        // out = in (B, nin) @ W^T (nin, nout), then bias and activation in one pass
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, nout, nin, 1.0f, in, nin, m->W[l], nin,
                    0.0f, out, nout);
        const float *bias = m->b[l];
        int hidden = l < m->n_layers - 1;
        for (int i = 0; i < B; i++) {
            float *o = out + (size_t)i * nout;
            if (!hidden)
                for (int j = 0; j < nout; j++) o[j] += bias[j];
            else if (m->act == NN_TANH)
                tanh_bias_row(o, bias, nout);
            else
                for (int j = 0; j < nout; j++) {
                    float v = o[j] + bias[j];
                    o[j] = v > 0 ? v : 0;
                }
        }
        in = out;
    }
    return m->h[m->n_layers - 1];
}

void mlp_backward(mlp_t *m, const float *dout, float *dx) {
    int B = m->batch;
    const float *d = dout;      // d is (B, nout) gradient w.r.t. layer l's pre-activation
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int nin = m->sizes[l], nout = m->sizes[l + 1];
        const float *in = l == 0 ? m->x : m->h[l - 1];
        // dW (nout, nin) += d^T (nout, B) @ in (B, nin)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, B, 1.0f, d, nout, in, nin, 1.0f,
                    m->dW[l], nin);
        for (int i = 0; i < B; i++) {
            const float *di = d + (size_t)i * nout;
            for (int j = 0; j < nout; j++) m->db[l][j] += di[j];
        }
        if (l == 0 && !dx) break;
        float *dinp = l == 0 ? dx : (d == m->d0 ? m->d1 : m->d0);   // (B, nin)
        // dinp = d (B, nout) @ W (nout, nin)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, nin, nout, 1.0f, d, nout, m->W[l], nin,
                    0.0f, dinp, nin);
        if (l > 0) {
            // through the activation of layer l-1, whose output is h[l-1]
            const float *h = m->h[l - 1];
            size_t n = (size_t)B * nin;
            if (m->act == NN_TANH)
                for (size_t i = 0; i < n; i++) dinp[i] *= 1.0f - h[i] * h[i];
            else
                for (size_t i = 0; i < n; i++) dinp[i] = h[i] > 0 ? dinp[i] : 0;
        }
        d = dinp;
    }
}

void adam_init(adam_t *a, size_t n) {
    a->n = n;
    a->m = callocCheck(n, sizeof(float));
    a->v = callocCheck(n, sizeof(float));
    a->t = 0;
    a->beta1 = 0.9;
    a->beta2 = 0.999;
    a->eps = 1e-8;
}

void adam_free(adam_t *a) {
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
    a->n = 0;
}

void adam_reset(adam_t *a) {
    nn_zero(a->m, a->n);
    nn_zero(a->v, a->n);
    a->t = 0;
}

void adam_step(adam_t *a, float *params, const float *grads, double lr, double weight_decay) {
    a->t++;
    float b1 = (float)a->beta1, b2 = (float)a->beta2, wd = (float)weight_decay;
    double c1 = 1.0 - pow(a->beta1, (double)a->t), c2 = 1.0 - pow(a->beta2, (double)a->t);
    float step = (float)(lr * sqrt(c2) / c1), eps = (float)(a->eps * sqrt(c2));
    for (size_t i = 0; i < a->n; i++) {
        float g = grads[i] + wd * params[i];
        a->m[i] = b1 * a->m[i] + (1 - b1) * g;
        a->v[i] = b2 * a->v[i] + (1 - b2) * g * g;
        params[i] -= step * a->m[i] / (sqrtf(a->v[i]) + eps);
    }
}

double nn_clip_grad_norm(float *grads, size_t n, double max_norm) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    }
    return norm;
}

void nn_zero(float *x, size_t n) { memset(x, 0, sizeof(float) * n); }

void dist_shard(const dist_t *d, int n, int *lo, int *hi) {
    if (!d || d->size <= 1) {
        *lo = 0;
        *hi = n;
        return;
    }
    *lo = (int)((long long)n * d->rank / d->size);
    *hi = (int)((long long)n * (d->rank + 1) / d->size);
}

void dist_sum(const dist_t *d, float *buf, size_t n) {
    if (d && d->size > 1 && d->sum) d->sum(buf, n, d->arg);
}

/* bench_mlp.c - MLP forward+backward throughput as a fraction of sgemm peak
 * measured in the same run (one core, OPENBLAS_NUM_THREADS=1).
 *
 * Peak: a square sgemm of 1024 (best of a few). Then, for the shapes the
 * learner uses (PPO policy/value nets, reward-model members) and batch sizes
 * doubling from 64 to 4096, forward + backward of one MLP: GFLOP/s counting
 * 2*B*in*out per layer forward and 4*B*in*out backward (weights + inputs).
 * Warm-up iterations are not timed; each figure is the best of 5 repeats. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "blas.h"
#include "nn.h"
#include "rng.h"
#include "util.h"

static double sgemm_peak(void) {
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (i % 1000);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);   // warm-up
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (now_s() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static double mlp_gflops(const int *sizes, int layers, int B, double *samples_per_s) {
    size_t np = mlp_count(sizes, layers);
    float *params = calloc(np, sizeof(float)), *grads = calloc(np, sizeof(float));
    mlp_t m;
    rng_t rng;
    rng_seed(&rng, 1);
    mlp_bind(&m, sizes, layers, NN_TANH, params, grads);
    mlp_init_orthogonal(&m, &rng, 1.4f, 1.0f);
    float *x = malloc(sizeof(float) * B * sizes[0]), *dout = malloc(sizeof(float) * B * sizes[layers]);
    for (int i = 0; i < B * sizes[0]; i++) x[i] = (float)rng_normal(&rng);
    for (int i = 0; i < B * sizes[layers]; i++) dout[i] = (float)rng_normal(&rng);
    double flops = 0;
    for (int l = 0; l < layers; l++) flops += 6.0 * B * sizes[l] * sizes[l + 1];
    int iters = (int)(2e8 / flops) + 1;
    for (int i = 0; i < 3; i++) {   // warm-up
        mlp_forward(&m, x, B);
        mlp_backward(&m, dout, NULL);
    }
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = now_s();
        for (int i = 0; i < iters; i++) {
            mlp_forward(&m, x, B);
            mlp_backward(&m, dout, NULL);
        }
        double dt = (now_s() - t) / iters;
        if (dt < best) best = dt;
    }
    *samples_per_s = B / best;
    mlp_free(&m);
    free(params);
    free(grads);
    free(x);
    free(dout);
    return flops / best / 1e9;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    double peak = sgemm_peak();
    printf("OpenBLAS kernel %s; sgemm 1024^3 peak %.1f GFLOP/s (one core)\n\n", blas_corename(), peak);
    struct {
        const char *name;
        int sizes[4], layers;
    } nets[] = {
        {"policy 4-64-64-2 (CartPole)", {4, 64, 64, 2}, 3},
        {"value 3-64-64-1 (Pendulum)", {3, 64, 64, 1}, 3},
        {"reward 7-64-64-1 (CartPole)", {7, 64, 64, 1}, 3},
        {"wide 64-256-256-8", {64, 256, 256, 8}, 3},
    };
    printf("%-30s %6s %10s %14s %8s\n", "net", "batch", "GFLOP/s", "samples/s", "of peak");
    for (size_t n = 0; n < sizeof nets / sizeof nets[0]; n++)
        for (int B = 64; B <= 4096; B *= 4) {
            double sps, g = mlp_gflops(nets[n].sizes, nets[n].layers, B, &sps);
            printf("%-30s %6d %10.1f %14.0f %7.1f%%\n", nets[n].name, B, g, sps, 100 * g / peak);
        }
    return 0;
}

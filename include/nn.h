/* nn.h - dense layers, MLPs and Adam on OpenBLAS sgemm, float32.
 *
 * Memory model (llm.c's): a model never allocates its own parameters. The
 * owner counts them with mlp_count(), allocates ONE buffer for all the
 * parameters of everything it owns (and one for the gradients), and carves
 * each MLP out of it with mlp_bind(). So the gradients are one buffer: one
 * clip, one Adam step, one MPI_Allreduce, one checkpoint write.
 *
 * Layout of one layer inside the buffer: W is (out, in) row-major, then b
 * is (out). Hidden layers apply the activation; the last layer is linear.
 *
 * Batches are row-major (B, features). mlp_forward() keeps pointers to the
 * input and its own activations for the next mlp_backward(), so the input
 * must stay alive and unchanged in between. Backward ACCUMULATES into the
 * gradient buffer (zero it with nn_zero before a step). */
#ifndef RLHF_NN_H
#define RLHF_NN_H

#include <stddef.h>

#include "rng.h"

#define NN_MAX_LAYERS 9

typedef enum { NN_TANH = 0, NN_RELU = 1 } nn_act_t;

typedef struct {
    int n_layers;                   /* linear layers */
    int sizes[NN_MAX_LAYERS + 1];   /* sizes[0] = in, sizes[n_layers] = out */
    nn_act_t act;
    size_t n_params;
    float *W[NN_MAX_LAYERS], *b[NN_MAX_LAYERS];   /* into the owner's params */
    float *dW[NN_MAX_LAYERS], *db[NN_MAX_LAYERS]; /* into the owner's grads */
    /* Workspace, owned: activations of the last forward pass. */
    int cap;                        /* batch capacity of the workspace */
    int batch;                      /* B of the last forward */
    const float *x;                 /* input of the last forward (not owned) */
    float *h[NN_MAX_LAYERS];        /* h[l] is (B, sizes[l+1]): output of layer l */
    float *d0, *d1;                 /* (cap, widest): backward scratch */
} mlp_t;

/* Parameters of an MLP with these layer sizes (n_layers + 1 entries). */
size_t mlp_count(const int *sizes, int n_layers);

/* Sets the shape and carves W/b from params and dW/db from grads (both at
 * least mlp_count() floats). grads may be NULL for inference-only copies. */
void mlp_bind(mlp_t *m, const int *sizes, int n_layers, nn_act_t act, float *params, float *grads);
void mlp_free(mlp_t *m);    /* frees the workspace only */

/* Orthogonal initialisation (Saxe et al.), gain for hidden layers and
 * out_gain for the last; biases zero. */
void mlp_init_orthogonal(mlp_t *m, rng_t *rng, float gain, float out_gain);

/* x is (B, in). Returns the output (B, out), owned by m, valid until the
 * next forward. */
float *mlp_forward(mlp_t *m, const float *x, int B);

/* dout is (B, out) for the batch of the last forward. Accumulates the
 * parameter gradients; writes dx (B, in) when dx is not NULL. */
void mlp_backward(mlp_t *m, const float *dout, float *dx);

/* Adam (Kingma & Ba) with decoupled-free L2 (added to the gradient). */
typedef struct {
    size_t n;
    float *m, *v;               /* owned, n each */
    long long t;                /* steps taken */
    double beta1, beta2, eps;
} adam_t;

void adam_init(adam_t *a, size_t n);
void adam_free(adam_t *a);
void adam_reset(adam_t *a);
void adam_step(adam_t *a, float *params, const float *grads, double lr, double weight_decay);

/* Scales grads so their global L2 norm is at most max_norm (max_norm <= 0:
 * no clipping). Returns the norm before clipping. */
/* Data parallelism: this process is `rank` of `size` replicas, and sum()
 * adds a buffer element-wise over all of them, in place (the MPI learner's
 * MPI_Allreduce). A NULL dist_t, or sum NULL, means alone. Each replica
 * computes the gradient of its shard of every minibatch, scaled by the
 * whole minibatch's size, so the sum is the full gradient and every replica
 * takes the same optimiser step. */
typedef struct {
    int rank, size;
    void (*sum)(float *buf, size_t n, void *arg);
    void *arg;
} dist_t;

/* [lo, hi) of n items for this replica (everything when alone). */
void dist_shard(const dist_t *d, int n, int *lo, int *hi);
/* Sums buf over replicas; a no-op when alone. */
void dist_sum(const dist_t *d, float *buf, size_t n);

/* Gradient buffers carry this many spare floats after the parameters' n: a
 * step's statistics ride along in the same reduction, so one step is one
 * MPI_Allreduce. */
#define NN_STAT_SLOTS 8

double nn_clip_grad_norm(float *grads, size_t n, double max_norm);
void nn_zero(float *x, size_t n);

#endif

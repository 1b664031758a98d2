/* bench_rollout.c - rollout throughput with policy inference: env steps/s
 * of actor_run (N environments, one batched policy forward per step) in one
 * process, and the total over 1, 2 and 4 processes running at once, beside
 * the bare environment stepping (no policy) measured in the same run: the
 * ratio says what inference costs. CartPole-v1 and Pendulum-v1 with the
 * shipped jobs' networks; warm-up not timed; each process runs ~1.5 s.
 * The machine has 2 cores: 4 processes share them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor.h"
#include "blas.h"
#include "job.h"
#include "policy.h"
#include "util.h"

static const double SECONDS = 1.5;

/* Env steps/s of one actor with the job's policy. */
static double rollout_rate(const job_t *job, uint64_t seed) {
    char err[256];
    actor_t *a = actor_new(job->env.id, job->env.n_envs, seed, err, sizeof err);
    if (!a) {
        fprintf(stderr, "bench_rollout: %s\n", err);
        exit(1);
    }
    const env_class_t *cls = actor_env_class(a);
    rng_t rng;
    rng_seed(&rng, seed);
    policy_t *p = policy_new(cls->obs_dim, &cls->act, job->policy.hidden, job->policy.n_hidden,
                             job->policy.activation == ACT_RELU ? NN_RELU : NN_TANH, job->policy.log_std_init,
                             job->ppo.norm_obs, &rng);
    traj_t *b = traj_new(job->ppo.n_steps, job->env.n_envs, cls->obs_dim, cls->act.discrete ? 1 : cls->act.n);
    actor_run(a, p, &rng, b);   // warm-up
    long long steps = 0;
    double t0 = now_s();
    while (now_s() - t0 < SECONDS) {
        actor_run(a, p, &rng, b);
        steps += (long long)b->T * b->N;
    }
    double rate = steps / (now_s() - t0);
    traj_destroy(&b);
    policy_destroy(&p);
    actor_destroy(&a);
    return rate;
}

/* Env steps/s of the bare environments with random actions. */
static double env_rate(const char *id) {
    char err[256];
    env_t *e = env_new(id, 1, err, sizeof err);
    const env_class_t *cls = env_class(e);
    float obs[ENV_MAX_DIM], act[ENV_MAX_DIM];
    rng_t rng;
    rng_seed(&rng, 1);
    env_reset(e, obs);
    long long steps = 0;
    double t0 = now_s();
    while (now_s() - t0 < SECONDS) {
        for (int i = 0; i < 4096; i++) {
            if (cls->act.discrete)
                act[0] = (float)rng_int(&rng, cls->act.n);
            else
                for (int j = 0; j < cls->act.n; j++) act[j] = (float)rng_range(&rng, cls->act.low[j], cls->act.high[j]);
            int term, trunc;
            env_step(e, act, obs, &term, &trunc);
            if (term || trunc) env_reset(e, obs);
        }
        steps += 4096;
    }
    double rate = steps / (now_s() - t0);
    env_destroy(&e);
    return rate;
}

/* Total steps/s of P processes at once: each writes its rate to a pipe. */
static double parallel_rate(const job_t *job, int P) {
    int fd[2];
    if (pipe(fd) != 0) exit(1);
    for (int i = 0; i < P; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(fd[0]);
            double r = rollout_rate(job, 100 + i);
            if (write(fd[1], &r, sizeof r) != sizeof r) _exit(1);
            _exit(0);
        }
    }
    close(fd[1]);
    double total = 0, r;
    for (int i = 0; i < P; i++)
        if (read(fd[0], &r, sizeof r) == sizeof r) total += r;
    close(fd[0]);
    while (wait(NULL) > 0) {}
    return total;
}

int main(int argc, char **argv) {
    blas_setup(argc, argv);
    const char *jobs[] = {"jobs/cartpole.ini", "jobs/pendulum.ini"};
    printf("rollout with policy inference (OpenBLAS %s), %.1f s per measurement\n", blas_corename(), SECONDS);
    printf("%-14s %8s %14s %12s %14s %14s %14s\n", "env", "n_envs", "bare env st/s", "1 proc st/s", "of bare",
           "2 procs total", "4 procs total");
    for (int j = 0; j < 2; j++) {
        static job_t job;
        char err[512];
        job_defaults(&job);
        if (job_load(&job, jobs[j], err, sizeof err) != 0) {
            fprintf(stderr, "bench_rollout: %s (run from the repository root)\n", err);
            return 1;
        }
        double bare = env_rate(job.env.id), one = rollout_rate(&job, 1);
        double two = parallel_rate(&job, 2), four = parallel_rate(&job, 4);
        printf("%-14s %8d %14.0f %12.0f %13.1f%% %14.0f %14.0f\n", job.env.id, job.env.n_envs, bare, one,
               100 * one / bare, two, four);
    }
    return 0;
}

/* test_util.c - rng determinism and distribution, atomic file writes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "blas.h"
#include "rng.h"
#include "runstat.h"
#include "util.h"

static void test_rng_deterministic(void **state) {
    (void)state;
    rng_t a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) assert_true(rng_u64(&a) == rng_u64(&b));
    rng_seed(&b, 43);
    assert_false(rng_u64(&a) == rng_u64(&b));
}

static void test_rng_moments(void **state) {
    (void)state;
    rng_t r;
    rng_seed(&r, 7);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        su += u;
        double z = rng_normal(&r);
        sn += z;
        sn2 += z * z;
    }
    assert_true(fabs(su / n - 0.5) < 0.005);
    assert_true(fabs(sn / n) < 0.01);
    assert_true(fabs(sn2 / n - 1.0) < 0.02);
    int counts[5] = {0};
    for (int i = 0; i < 50000; i++) counts[rng_int(&r, 5)]++;
    for (int i = 0; i < 5; i++) assert_true(abs(counts[i] - 10000) < 500);
}

static void test_atomic_write(void **state) {
    (void)state;
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/util-%d/a/b", getenv("RLHF_TEST_TMP") ? getenv("RLHF_TEST_TMP") : "/tmp", (int)getpid());
    assert_int_equal(mkdir_p(dir), 0);
    snprintf(path, sizeof path, "%s/file", dir);
    assert_int_equal(write_file_atomic(path, "hello", 5), 0);
    assert_int_equal(write_file_atomic(path, "world!", 6), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[16] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, f), 6);
    fclose(f);
    assert_string_equal(buf, "world!");
    /* A folder that does not exist is an error, not a crash. */
    assert_int_equal(write_file_atomic("/nonexistent-dir/x/file", "x", 1), -1);
}

/* Running statistics merged batch by batch equal the statistics of all the
 * data at once; applying them normalises and clips. */
static void test_runstat(void **state) {
    (void)state;
    rng_t r;
    rng_seed(&r, 3);
    enum { N = 3000 };
    static float x[N * 2];
    for (int i = 0; i < N; i++) {
        x[2 * i] = (float)(5 + 2 * rng_normal(&r));
        x[2 * i + 1] = (float)(-1 + 0.5 * rng_normal(&r));
    }
    runstat_t s;
    runstat_init(&s, 2);
    for (int i = 0; i < N; i += 250) runstat_update(&s, x + 2 * i, 250);
    double m[2] = {0}, v[2] = {0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2; j++) m[j] += x[2 * i + j] / N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2; j++) v[j] += (x[2 * i + j] - m[j]) * (x[2 * i + j] - m[j]) / N;
    for (int j = 0; j < 2; j++) {
        assert_true(fabs(s.mean[j] - m[j]) < 1e-3);
        assert_true(fabs(s.var[j] - v[j]) / v[j] < 1e-3);
    }
    float in[4] = {(float)m[0], (float)m[1], 1e6f, -1e6f}, out[4];
    runstat_apply(&s, in, 2, 10.0f, out);
    assert_true(fabsf(out[0]) < 1e-3f && fabsf(out[1]) < 1e-3f);
    assert_true(out[2] == 10.0f && out[3] == -10.0f);    // clipped
}

/* The kernel choice follows the CPU's features and the library reports
 * the kernel it runs; tests run under blas_setup's environment. */
static void test_blas_kernel(void **state) {
    (void)state;
    const char *best = blas_best_coretype();
    const char *name = blas_corename();
    assert_non_null(name);
    assert_true(strlen(name) > 0);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        assert_string_equal(best, "SkylakeX");
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_string_equal(best, "Haswell");
    else
        assert_null(best);
    /* When this process was started through blas_setup (main below), the
     * library runs the chosen kernel, unless the user had set one. */
    const char *forced = getenv("RLHF_TEST_USER_CORETYPE");
    if (best && !forced) assert_string_equal(name, best);
}

int main(int argc, char **argv) {
    /* A kernel the user chose is kept: remember that across the re-exec. */
    if (getenv("OPENBLAS_CORETYPE") && !getenv("RLHF_BLAS_REEXEC")) setenv("RLHF_TEST_USER_CORETYPE", "1", 1);
    blas_setup(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_rng_moments),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_runstat),
        cmocka_unit_test(test_blas_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

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

#include "rng.h"
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_rng_moments),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

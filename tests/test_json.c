/* test_json.c - the JSON reader and writers: what valid text turns into,
 * what invalid text is refused with (and at which byte), limits (depth,
 * number range), and that no input at all - random bytes, mutated and cut
 * documents - makes the reader crash or misbehave (run it under SAN=1). */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"
#include "rng.h"

static json_t *parse_ok(const char *text) {
    char err[256];
    json_t *doc = json_parse(text, strlen(text), err, sizeof err);
    if (!doc) fail_msg("parse of '%s' failed: %s", text, err);
    return doc;
}

/* Parses text that must be refused; err must contain expect. */
static void parse_bad(const char *text, size_t len, const char *expect) {
    char err[256];
    json_t *doc = json_parse(text, len, err, sizeof err);
    if (doc) fail_msg("'%.*s' parsed, expected an error containing \"%s\"", (int)len, text, expect);
    if (!strstr(err, expect)) fail_msg("'%.*s': error \"%s\" lacks \"%s\"", (int)len, text, err, expect);
}

static void test_scalars(void **unused) {
    (void)unused;
    double d;
    long long k;
    int b;
    json_t *doc = parse_ok(" 42 ");
    assert_int_equal(json_type(doc), JSON_NUMBER);
    assert_int_equal(json_number(doc, &d), 0);
    assert_true(d == 42);
    assert_int_equal(json_int(doc, &k), 0);
    assert_int_equal(k, 42);
    assert_int_equal(json_bool(doc, &b), -1);
    assert_null(json_string(doc));
    json_destroy(&doc);
    assert_null(doc);

    const struct {
        const char *text;
        double value;
    } numbers[] = {
        {"0", 0},          {"-0", -0.0},     {"3.25", 3.25},       {"-12.5e-1", -1.25},
        {"1E3", 1000},     {"1e+2", 100},    {"0.1", 0.1},         {"2.2250738585072014e-308", 2.2250738585072014e-308},
        {"5e-324", 5e-324}, {"1e-400", 0.0}, {"-0.0000", -0.0},    {"0.30000000000000004", 0.30000000000000004},
        {"123456789012345678901234567890", 123456789012345678901234567890.0},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        doc = parse_ok(numbers[i].text);
        assert_int_equal(json_number(doc, &d), 0);
        if (d != numbers[i].value || signbit(d) != signbit(numbers[i].value))
            fail_msg("%s read as %.17g", numbers[i].text, d);
        json_destroy(&doc);
    }
    doc = parse_ok("2.5");
    assert_int_equal(json_int(doc, &k), -1);      /* not a whole number */
    json_destroy(&doc);
    doc = parse_ok("1e300");
    assert_int_equal(json_int(doc, &k), -1);      /* past 2^53 */
    json_destroy(&doc);

    doc = parse_ok("true");
    assert_int_equal(json_bool(doc, &b), 0);
    assert_true(b);
    json_destroy(&doc);
    doc = parse_ok("\tfalse\r\n");
    assert_int_equal(json_bool(doc, &b), 0);
    assert_false(b);
    json_destroy(&doc);
    doc = parse_ok("null");
    assert_int_equal(json_type(doc), JSON_NULL);
    assert_int_equal(json_number(doc, &d), -1);
    json_destroy(&doc);
}

static void test_strings(void **unused) {
    (void)unused;
    json_t *doc = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    assert_string_equal(json_string(doc), "a\"b\\c/d\b\f\n\r\t");
    json_destroy(&doc);
    /* \u escapes become UTF-8, surrogate pairs one 4-byte character. */
    doc = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    assert_string_equal(json_string(doc), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    json_destroy(&doc);
    /* Raw UTF-8 passes through. */
    doc = parse_ok("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    assert_string_equal(json_string(doc), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    json_destroy(&doc);
    /* \u0000 is kept: the length says so. */
    doc = parse_ok("\"a\\u0000b\"");
    assert_int_equal(json_string_len(doc), 3);
    assert_memory_equal(json_string(doc), "a\0b", 3);
    json_destroy(&doc);
    doc = parse_ok("\"\"");
    assert_string_equal(json_string(doc), "");
    assert_int_equal(json_string_len(doc), 0);
    json_destroy(&doc);
}

static void test_containers(void **unused) {
    (void)unused;
    json_t *doc = parse_ok("{\"env\": \"CartPole-v1\", \"obs\": [1, 2.5, -3], \"nested\": {\"a\": [[], {}]},"
                           " \"dup\": 1, \"dup\": 2, \"flag\": true}");
    assert_int_equal(json_type(doc), JSON_OBJECT);
    assert_int_equal(json_size(doc), 6);
    assert_string_equal(json_string(json_get(doc, "env")), "CartPole-v1");
    const json_t *obs = json_get(doc, "obs");
    assert_int_equal(json_size(obs), 3);
    double d;
    assert_int_equal(json_number(json_at(obs, 1), &d), 0);
    assert_true(d == 2.5);
    assert_null(json_at(obs, 3));
    /* Lookups through missing links end in NULL, not a crash. */
    assert_null(json_get(json_get(doc, "missing"), "x"));
    assert_null(json_get(obs, "x"));
    assert_null(json_at(json_get(doc, "env"), 0));
    assert_int_equal(json_size(NULL), 0);
    assert_int_equal(json_type(NULL), JSON_NONE);
    assert_null(json_get(doc, NULL));
    const json_t *a = json_get(json_get(doc, "nested"), "a");
    assert_int_equal(json_size(a), 2);
    assert_int_equal(json_type(json_at(a, 0)), JSON_ARRAY);
    assert_int_equal(json_size(json_at(a, 0)), 0);
    assert_int_equal(json_type(json_at(a, 1)), JSON_OBJECT);
    /* A repeated key: the last one counts, as in JavaScript and Python. */
    long long k;
    assert_int_equal(json_int(json_get(doc, "dup"), &k), 0);
    assert_int_equal(k, 2);
    /* Members in order, by index. */
    assert_string_equal(json_key_at(doc, 0), "env");
    assert_string_equal(json_key_at(doc, 5), "flag");
    assert_null(json_key_at(doc, 6));
    assert_null(json_key_at(obs, 0));
    assert_int_equal(json_type(json_at(doc, 5)), JSON_BOOL);
    /* Offsets point at the value's first byte. */
    assert_int_equal(json_offset(json_get(doc, "env")), 8);
    /* Only the root frees the tree. */
    json_t *inner = (json_t *)json_get(doc, "obs");
    json_destroy(&inner);
    assert_null(inner);
    json_destroy(&doc);
    json_destroy(&doc);     /* a second destroy of NULL is harmless */
    json_destroy(NULL);
}

static void test_malformed(void **unused) {
    (void)unused;
    const struct {
        const char *text, *expect;
    } cases[] = {
        {"", "byte 0: unexpected end of input, expected a value"},
        {"   ", "byte 3: unexpected end of input"},
        {"{\"a\":1,}", "byte 7: unexpected '}', expected a string key"},
        {"[1,2,]", "byte 5: unexpected ']', expected a value"},
        {"[1 2]", "byte 3: unexpected '2', expected ',' or ']'"},
        {"{\"a\" 1}", "byte 5: unexpected '1', expected ':'"},
        {"{a:1}", "byte 1: unexpected 'a', expected a string key"},
        {"[1,2", "byte 4: unexpected end of input, expected ',' or ']'"},
        {"01", "byte 1: unexpected '1', expected end of input"},
        {"1.", "byte 2: unexpected end of input, expected a digit after the decimal point"},
        {".5", "byte 0: unexpected '.', expected a value"},
        {"-", "byte 1: unexpected end of input, expected a digit"},
        {"+1", "byte 0: unexpected '+'"},
        {"1e", "expected a digit in the exponent"},
        {"1e400", "byte 0: number out of range"},
        {"-1e400", "number out of range"},
        {"NaN", "byte 0: unexpected 'N'"},
        {"Infinity", "unexpected 'I'"},
        {"tru", "byte 0: unexpected 't'"},
        {"nul", "unexpected 'n'"},
        {"truex", "byte 4: unexpected 'x', expected end of input"},
        {"\"abc", "byte 0: unterminated string"},
        {"\"a\\", "unterminated string"},
        {"\"a\nb\"", "byte 2: control character 0x0a in string"},
        {"\"\\x\"", "byte 1: invalid escape"},
        {"\"\\u12\"", "byte 1: \\u needs four hex digits"},
        {"\"\\ud800\"", "high surrogate"},
        {"\"\\ud800\\u0041\"", "high surrogate"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\xff\"", "byte 1: invalid UTF-8"},
        {"\"\xc0\xaf\"", "invalid UTF-8"},          /* overlong '/' */
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},      /* an encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},  /* past U+10FFFF */
        {"\"\xe2\x82\"", "invalid UTF-8"},          /* cut short */
        {"[1]]", "byte 3: unexpected ']', expected end of input"},
        {"{\"a\":1}{", "expected end of input"},
        {"\xef\xbb\xbf{}", "byte 0: unexpected byte 0xef"},   /* no BOM */
        {"/* c */ 1", "unexpected '/'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_bad(cases[i].text, strlen(cases[i].text), cases[i].expect);
    /* A NUL byte inside the given length is just a bad byte. */
    parse_bad("[1,\0 2]", 7, "byte 3: unexpected byte 0x00");
    /* The length is respected: the text need not be NUL-terminated. */
    char err[128];
    json_t *doc = json_parse("[1,2]garbage", 5, err, sizeof err);
    assert_non_null(doc);
    assert_int_equal(json_size(doc), 2);
    json_destroy(&doc);
    assert_null(json_parse(NULL, 0, err, sizeof err));
    assert_null(json_parse("{", 1, NULL, 0));    /* no error buffer: still fine */
    char tiny[8];
    assert_null(json_parse("[1,", 3, tiny, sizeof tiny));
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_nonfinite_flag(void **unused) {
    (void)unused;
    char err[128];
    const char *text = "[NaN, Infinity, -Infinity, 1e400, -5]";
    assert_null(json_parse(text, strlen(text), err, sizeof err));
    json_t *doc = json_parse_flags(text, strlen(text), JSON_ALLOW_NONFINITE, err, sizeof err);
    assert_non_null(doc);
    double d[5];
    for (int i = 0; i < 5; i++) assert_int_equal(json_number(json_at(doc, (size_t)i), &d[i]), 0);
    assert_true(isnan(d[0]));
    assert_true(isinf(d[1]) && d[1] > 0);
    assert_true(isinf(d[2]) && d[2] < 0);
    assert_true(isinf(d[3]));
    assert_true(d[4] == -5);
    json_destroy(&doc);
    assert_null(json_parse_flags("-Inf", 4, JSON_ALLOW_NONFINITE, err, sizeof err));
}

static void test_depth_limit(void **unused) {
    (void)unused;
    char err[128];
    size_t n = 100000;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    /* JSON_MAX_DEPTH levels are fine, one more is refused, and a very deep
     * text is refused without running the stack out. */
    size_t ok = JSON_MAX_DEPTH;
    json_t *doc = json_parse(deep + n - ok, 2 * ok, err, sizeof err);
    assert_non_null(doc);
    json_destroy(&doc);
    assert_null(json_parse(deep + n - ok - 1, 2 * ok + 2, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper than"));
    assert_null(json_parse(deep, 2 * n, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper than"));
    memset(deep, '{', n);
    assert_null(json_parse(deep, n, err, sizeof err));
    free(deep);
}

static void test_large_document(void **unused) {
    (void)unused;
    /* Many values, long strings and long numbers: the arena and the scratch
     * stack grow as needed. */
    size_t n = 200000;
    char *text = malloc(n * 24 + 100000), *p = text;
    p += sprintf(p, "{\"long\":\"");
    for (int i = 0; i < 90000; i++) *p++ = (char)('a' + i % 26);
    p += sprintf(p, "\",\"values\":[");
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%.17g", i ? "," : "", (double)i * 0.1);
    p += sprintf(p, "],\"num\":0.");
    for (int i = 0; i < 500; i++) *p++ = '5';
    p += sprintf(p, "}");
    char err[128];
    json_t *doc = json_parse(text, (size_t)(p - text), err, sizeof err);
    assert_non_null(doc);
    assert_int_equal(json_string_len(json_get(doc, "long")), 90000);
    const json_t *values = json_get(doc, "values");
    assert_int_equal(json_size(values), n);
    double d;
    assert_int_equal(json_number(json_at(values, n - 1), &d), 0);
    assert_true(d == (double)(n - 1) * 0.1);
    assert_int_equal(json_number(json_get(doc, "num"), &d), 0);
    assert_true(d == 5.0 / 9.0 || fabs(d - 0.5555555555555556) < 1e-16);
    json_destroy(&doc);
    free(text);
}

static void test_escape_and_numbers_out(void **unused) {
    (void)unused;
    char buf[64];
    size_t n = json_escape(buf, sizeof buf, "a\"b\\c\n\x01\x7f", 8);
    assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\u0001\\u007f\"");
    assert_int_equal(n, strlen(buf));
    /* Invalid UTF-8 comes out as U+FFFD; valid multibyte passes. */
    json_escape(buf, sizeof buf, "\xff\xc3\xa9", 3);
    assert_string_equal(buf, "\"\xef\xbf\xbd\xc3\xa9\"");
    /* snprintf semantics: the needed length, truncated output. */
    char small[5];
    n = json_escape(small, sizeof small, "hello world", 11);
    assert_int_equal(n, 13);
    assert_string_equal(small, "\"hel");
    assert_int_equal(json_escape(NULL, 0, "ab", 2), 4);

    const struct {
        double v;
        const char *text;
    } nums[] = {{0.1, "0.1"}, {1, "1"}, {-0.0, "-0"}, {1e21, "1e+21"}, {0.30000000000000004, "0.30000000000000004"},
                {NAN, "null"}, {INFINITY, "null"}, {5e-324, "5e-324"}, {-2.5, "-2.5"}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        json_format_number(buf, sizeof buf, nums[i].v);
        assert_string_equal(buf, nums[i].text);
    }
    /* Every double reads back exactly. */
    rng_t r;
    rng_seed(&r, 9);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rng_u64(&r);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        json_format_number(buf, sizeof buf, v);
        json_t *doc = json_parse(buf, strlen(buf), NULL, 0);
        double back;
        assert_non_null(doc);
        assert_int_equal(json_number(doc, &back), 0);
        if (memcmp(&back, &v, sizeof v) != 0) fail_msg("%.17g printed as %s", v, buf);
        json_destroy(&doc);
    }
    /* A locale with a decimal comma changes nothing (when it is installed). */
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
        json_format_number(buf, sizeof buf, 0.5);
        assert_string_equal(buf, "0.5");
        json_t *doc = parse_ok("0.25");
        double d;
        json_number(doc, &d);
        assert_true(d == 0.25);
        json_destroy(&doc);
        setlocale(LC_NUMERIC, "C");
    }
}

static void test_serialize_round_trip(void **unused) {
    (void)unused;
    const char *text = "{ \"a\" : [1, 2.5, -0, true, false, null, \"x\\ny\\u00e9\"], \"b\": {}, \"c\": [] }";
    json_t *doc = parse_ok(text);
    size_t len;
    char *out = json_serialize(doc, &len);
    assert_string_equal(out, "{\"a\":[1,2.5,-0,true,false,null,\"x\\ny\xc3\xa9\"],\"b\":{},\"c\":[]}");
    assert_int_equal(len, strlen(out));
    json_t *again = parse_ok(out);
    char *out2 = json_serialize(again, NULL);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    json_destroy(&doc);
    json_destroy(&again);
    out = json_serialize(NULL, NULL);
    assert_string_equal(out, "null");
    free(out);
}

/* Whatever the bytes, the reader answers (a tree or an error) and what it
 * accepts serializes to text it accepts again. */
static void check_any_input(const char *text, size_t len, int flags) {
    char err[256];
    json_t *doc = json_parse_flags(text, len, flags, err, sizeof err);
    if (!doc) {
        assert_true(strncmp(err, "byte ", 5) == 0);
        return;
    }
    char *out = json_serialize(doc, NULL);
    json_t *again = json_parse_flags(out, strlen(out), flags, err, sizeof err);
    assert_non_null(again);
    char *out2 = json_serialize(again, NULL);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    json_destroy(&again);
    json_destroy(&doc);
}

static void test_random_bytes(void **unused) {
    (void)unused;
    rng_t r;
    rng_seed(&r, 2024);
    static const char alphabet[] = "{}[],:\"\\ \t\n0123456789.eE+-truefalsenulNaIfiy";
    char buf[512];
    int parsed = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = (size_t)rng_int(&r, (int)sizeof buf);
        int mode = rng_int(&r, 3);
        for (size_t k = 0; k < len; k++) {
            if (mode == 0) buf[k] = (char)rng_int(&r, 256);                            /* raw bytes */
            else buf[k] = alphabet[rng_int(&r, (int)sizeof alphabet - 1)];              /* JSON-ish */
        }
        /* Heap copy of exactly len bytes, so ASan catches any overread. */
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        char err[256];
        json_t *doc = json_parse_flags(exact, len, i & 1 ? JSON_ALLOW_NONFINITE : 0, err, sizeof err);
        parsed += doc != NULL;
        json_destroy(&doc);
        if (i % 50 == 0) check_any_input(exact, len, JSON_ALLOW_NONFINITE);
        free(exact);
    }
    printf("# random inputs accepted: %d of 200000\n", parsed);
}

static void test_mutated_documents(void **unused) {
    (void)unused;
    const char *seed = "{\"env\":\"Pendulum-v1\",\"init_state\":[-3.0457151095853843,0.17273109120262853],"
                       "\"steps\":[{\"action\":[-0.09969966858625412],\"obs\":[-0.99498653411865234,"
                       "-0.10000897943973541,0.085978098213672638],\"reward\":-9.2793740717674318,"
                       "\"terminated\":false,\"truncated\":false,\"s\":\"\\u00e9\\ud83d\\ude00\"}],\"episode\":0}";
    size_t n = strlen(seed);
    rng_t r;
    rng_seed(&r, 77);
    char *buf = malloc(n + 8);
    for (int i = 0; i < 100000; i++) {
        memcpy(buf, seed, n);
        size_t len = n;
        int edits = 1 + rng_int(&r, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rng_int(&r, (int)len);
            switch (rng_int(&r, 3)) {
            case 0: buf[at] = (char)rng_int(&r, 256); break;                       /* flip a byte */
            case 1: len = at; break;                                                /* cut */
            default: memmove(buf + at, buf + at + 1, len - at - 1), len--; break;   /* delete */
            }
            if (len == 0) break;
        }
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        check_any_input(exact, len, i & 1 ? JSON_ALLOW_NONFINITE : 0);
        free(exact);
    }
    free(buf);
    /* Every prefix of a valid document is an error, never a crash. */
    for (size_t len = 0; len < n; len++) {
        char err[128];
        char *exact = malloc(len ? len : 1);
        memcpy(exact, seed, len);
        json_t *doc = json_parse(exact, len, err, sizeof err);
        assert_null(doc);
        free(exact);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_nonfinite_flag),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_large_document),
        cmocka_unit_test(test_escape_and_numbers_out),
        cmocka_unit_test(test_serialize_round_trip),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutated_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

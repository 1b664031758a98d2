/* json.c - the JSON reader and writer helpers (see json.h).
 *
 * Owns: the recursive-descent parser, the arena every tree lives in, and the
 * text writers. A tree is one arena: json_destroy() frees it in one sweep,
 * and the parser never has to undo partial allocations on an error.
 *
 * Containers are built on a scratch stack shared by every nesting level:
 * children are pushed while their container is open, then copied into the
 * arena as one contiguous block when it closes, so a tree costs one block per
 * container rather than a growing array per container. */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    char *chars;
    size_t len;
} json_str_t;

struct json {
    json_type_t type;
    int is_root;                /* only the root may be passed to json_destroy */
    size_t offset;
    union {
        int boolean;
        double number;
        json_str_t string;
        struct {
            json_t *items;      /* count values */
            json_str_t *keys;   /* count keys (objects only) */
            size_t count;
        } container;
    } u;
};

/* ---- arena ---------------------------------------------------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk_t;

/* The root node heads the allocation that owns the chunk list. */
typedef struct {
    json_t root;
    arena_chunk_t *chunks;
} json_doc_t;

static void *arena_alloc(arena_chunk_t **chunks, size_t n) {
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0) n = align;
    arena_chunk_t *c = *chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : 4096;
        if (cap > (1u << 20)) cap = 1u << 20;
        if (cap < n) cap = n;
        arena_chunk_t *fresh = mallocCheck(sizeof(arena_chunk_t) + cap);
        fresh->used = 0;
        fresh->cap = cap;
        /* A chunk made for one oversized request goes behind the current
         * one, so the current chunk's free space stays in use. */
        if (c && cap == n && c->cap - c->used >= 256) {
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            *chunks = fresh;
        }
        c = fresh;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* ---- parser --------------------------------------------------------------- */

typedef struct {
    const unsigned char *text;
    size_t len, pos;
    int flags;
    arena_chunk_t **chunks;
    json_t *stack;              /* children of the open containers */
    size_t stack_len, stack_cap;
    json_str_t *keys;           /* their keys, in step with stack for objects */
    size_t keys_len, keys_cap;
    char *err;
    size_t errlen;
    int failed;
} parser_t;

static void fail_at(parser_t *p, size_t offset, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(parser_t *p, size_t offset, const char *fmt, ...) {
    if (p->failed) return;      /* the first error is the one worth reading */
    p->failed = 1;
    if (!p->err || p->errlen == 0) return;
    int n = snprintf(p->err, p->errlen, "byte %zu: ", offset);
    if (n < 0 || (size_t)n >= p->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Names the byte at pos for an error message. */
static void describe_byte(const parser_t *p, size_t pos, char *buf, size_t n) {
    if (pos >= p->len) {
        snprintf(buf, n, "end of input");
        return;
    }
    unsigned char c = p->text[pos];
    if (c >= 0x21 && c < 0x7f) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02x", c);
}

static void fail_unexpected(parser_t *p, const char *expected) {
    char what[32];
    describe_byte(p, p->pos, what, sizeof what);
    if (p->pos >= p->len) fail_at(p, p->pos, "unexpected end of input, expected %s", expected);
    else fail_at(p, p->pos, "unexpected %s, expected %s", what, expected);
}

static void skip_space(parser_t *p) {
    while (p->pos < p->len) {
        unsigned char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int match_literal(parser_t *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return 0;
    /* "nullx" is not null followed by garbage we report later: say so here. */
    p->pos += n;
    return 1;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits after "\u" at pos. Returns the code unit or -1. */
static long read_hex4(const parser_t *p, size_t pos) {
    if (p->len - pos < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p->text[pos + (size_t)i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned long cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (avail bytes), or 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned long cp, min;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* Parses the string whose opening quote is at p->pos into *out. */
static int parse_string(parser_t *p, json_str_t *out) {
    size_t start = p->pos;
    p->pos++;   /* the opening quote */
    /* The decoded text is never longer than the raw text, so one pass finds
     * the closing quote and sizes the buffer, the second decodes. */
    size_t end = p->pos;
    while (end < p->len && p->text[end] != '"') end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        fail_at(p, start, "unterminated string");
        return -1;
    }
    char *buf = arena_alloc(p->chunks, end - p->pos + 1);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = p->text[p->pos];
        if (c == '\\') {
            size_t esc = p->pos;
            unsigned char e = p->text[p->pos + 1];
            p->pos += 2;
            switch (e) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u': {
                long unit = read_hex4(p, p->pos);
                if (unit < 0) {
                    fail_at(p, esc, "\\u needs four hex digits");
                    return -1;
                }
                p->pos += 4;
                unsigned long cp = (unsigned long)unit;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    fail_at(p, esc, "lone low surrogate \\u%04lx", cp);
                    return -1;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    long low = -1;
                    if (p->len - p->pos >= 6 && p->text[p->pos] == '\\' && p->text[p->pos + 1] == 'u')
                        low = read_hex4(p, p->pos + 2);
                    if (low < 0xdc00 || low > 0xdfff) {
                        fail_at(p, esc, "high surrogate \\u%04lx without its low half", cp);
                        return -1;
                    }
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned long)low - 0xdc00);
                }
                n += put_utf8(buf + n, cp);
                break;
            }
            default:
                fail_at(p, esc, "invalid escape in string");
                return -1;
            }
        } else if (c < 0x20) {
            fail_at(p, p->pos, "control character 0x%02x in string (must be escaped)", c);
            return -1;
        } else {
            size_t k = utf8_sequence_len(p->text + p->pos, end - p->pos);
            if (k == 0) {
                fail_at(p, p->pos, "invalid UTF-8 in string");
                return -1;
            }
            memcpy(buf + n, p->text + p->pos, k);
            n += k;
            p->pos += k;
        }
    }
    p->pos = end + 1;
    buf[n] = '\0';
    out->chars = buf;
    out->len = n;
    return 0;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* strtod in the "C" locale whatever the process's locale says, so "0.5" is
 * read the same under a locale whose decimal point is a comma. */
static double strtod_c(const char *s) {
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale) return strtod_l(s, NULL, c_locale);
    return strtod(s, NULL);
}

static int parse_number(parser_t *p, double *out) {
    size_t start = p->pos, i = p->pos;
    const unsigned char *t = p->text;
    if (i < p->len && t[i] == '-') i++;
    if (i < p->len && t[i] == '0') {
        i++;
    } else if (i < p->len && t[i] >= '1' && t[i] <= '9') {
        while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    } else {
        p->pos = i;
        fail_unexpected(p, "a digit");
        return -1;
    }
    if (i < p->len && t[i] == '.') {
        i++;
        if (i >= p->len || t[i] < '0' || t[i] > '9') {
            p->pos = i;
            fail_unexpected(p, "a digit after the decimal point");
            return -1;
        }
        while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    }
    if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < p->len && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= p->len || t[i] < '0' || t[i] > '9') {
            p->pos = i;
            fail_unexpected(p, "a digit in the exponent");
            return -1;
        }
        while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    }
    /* The text need not be NUL-terminated: strtod reads a copy. */
    size_t n = i - start;
    char small[64];
    char *copy = n < sizeof small ? small : mallocCheck(n + 1);
    memcpy(copy, t + start, n);
    copy[n] = '\0';
    double v = strtod_c(copy);
    if (copy != small) free(copy);
    if (isinf(v) && !(p->flags & JSON_ALLOW_NONFINITE)) {
        fail_at(p, start, "number out of range of a double");
        return -1;
    }
    p->pos = i;
    *out = v;
    return 0;
}

static void push_child(parser_t *p, const json_t *node, const json_str_t *key) {
    if (p->stack_len == p->stack_cap) {
        p->stack_cap = p->stack_cap ? p->stack_cap * 2 : 64;
        p->stack = reallocCheck(p->stack, p->stack_cap * sizeof *p->stack);
    }
    p->stack[p->stack_len++] = *node;
    if (key) {
        if (p->keys_len == p->keys_cap) {
            p->keys_cap = p->keys_cap ? p->keys_cap * 2 : 64;
            p->keys = reallocCheck(p->keys, p->keys_cap * sizeof *p->keys);
        }
        p->keys[p->keys_len++] = *key;
    }
}

static int parse_value(parser_t *p, json_t *out, int depth);

/* Moves the children pushed since stack_base (and keys since keys_base)
 * into the arena as out's contents. */
static void close_container(parser_t *p, json_t *out, size_t stack_base, size_t keys_base) {
    size_t count = p->stack_len - stack_base;
    out->u.container.count = count;
    out->u.container.items = NULL;
    out->u.container.keys = NULL;
    if (count > 0) {
        out->u.container.items = arena_alloc(p->chunks, count * sizeof(json_t));
        memcpy(out->u.container.items, p->stack + stack_base, count * sizeof(json_t));
        if (out->type == JSON_OBJECT) {
            out->u.container.keys = arena_alloc(p->chunks, count * sizeof(json_str_t));
            memcpy(out->u.container.keys, p->keys + keys_base, count * sizeof(json_str_t));
        }
    }
    p->stack_len = stack_base;
    p->keys_len = keys_base;
}

static int parse_array(parser_t *p, json_t *out, int depth) {
    size_t base = p->stack_len;
    out->type = JSON_ARRAY;
    p->pos++;   /* '[' */
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == ']') {
        p->pos++;
        close_container(p, out, base, p->keys_len);
        return 0;
    }
    for (;;) {
        json_t child;
        if (parse_value(p, &child, depth + 1) < 0) return -1;
        push_child(p, &child, NULL);
        skip_space(p);
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->text[p->pos] == ']') {
            p->pos++;
            break;
        }
        fail_unexpected(p, "',' or ']' in array");
        return -1;
    }
    close_container(p, out, base, p->keys_len);
    return 0;
}

static int parse_object(parser_t *p, json_t *out, int depth) {
    size_t base = p->stack_len, keys_base = p->keys_len;
    out->type = JSON_OBJECT;
    p->pos++;   /* '{' */
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == '}') {
        p->pos++;
        close_container(p, out, base, keys_base);
        return 0;
    }
    for (;;) {
        skip_space(p);
        if (p->pos >= p->len || p->text[p->pos] != '"') {
            fail_unexpected(p, "a string key in object");
            return -1;
        }
        json_str_t key;
        if (parse_string(p, &key) < 0) return -1;
        skip_space(p);
        if (p->pos >= p->len || p->text[p->pos] != ':') {
            fail_unexpected(p, "':' after object key");
            return -1;
        }
        p->pos++;
        json_t child;
        if (parse_value(p, &child, depth + 1) < 0) return -1;
        push_child(p, &child, &key);
        skip_space(p);
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->text[p->pos] == '}') {
            p->pos++;
            break;
        }
        fail_unexpected(p, "',' or '}' in object");
        return -1;
    }
    close_container(p, out, base, keys_base);
    return 0;
}

static int parse_value(parser_t *p, json_t *out, int depth) {
    skip_space(p);
    memset(out, 0, sizeof *out);
    out->offset = p->pos;
    if (depth > JSON_MAX_DEPTH) {
        fail_at(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        return -1;
    }
    if (p->pos >= p->len) {
        fail_unexpected(p, "a value");
        return -1;
    }
    int nonfinite = p->flags & JSON_ALLOW_NONFINITE;
    switch (p->text[p->pos]) {
    case '{': return parse_object(p, out, depth);
    case '[': return parse_array(p, out, depth);
    case '"':
        out->type = JSON_STRING;
        return parse_string(p, &out->u.string);
    case 't':
        if (!match_literal(p, "true")) break;
        out->type = JSON_BOOL;
        out->u.boolean = 1;
        return 0;
    case 'f':
        if (!match_literal(p, "false")) break;
        out->type = JSON_BOOL;
        out->u.boolean = 0;
        return 0;
    case 'n':
        if (!match_literal(p, "null")) break;
        out->type = JSON_NULL;
        return 0;
    case 'N':
        if (!nonfinite || !match_literal(p, "NaN")) break;
        out->type = JSON_NUMBER;
        out->u.number = NAN;
        return 0;
    case 'I':
        if (!nonfinite || !match_literal(p, "Infinity")) break;
        out->type = JSON_NUMBER;
        out->u.number = INFINITY;
        return 0;
    case '-':
        if (nonfinite && match_literal(p, "-Infinity")) {
            out->type = JSON_NUMBER;
            out->u.number = -INFINITY;
            return 0;
        }
        /* fall through */
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        out->type = JSON_NUMBER;
        return parse_number(p, &out->u.number);
    default:
        break;
    }
    fail_unexpected(p, "a value");
    return -1;
}

json_t *json_parse_flags(const char *text, size_t len, int flags, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!text) len = 0;
    arena_chunk_t *chunks = NULL;
    parser_t p = {
        .text = (const unsigned char *)(text ? text : ""),
        .len = len,
        .flags = flags,
        .chunks = &chunks,
        .err = err,
        .errlen = errlen,
    };
    json_t root;
    int rc = parse_value(&p, &root, 1);
    if (rc == 0) {
        skip_space(&p);
        if (p.pos < p.len) {
            fail_unexpected(&p, "end of input after the value");
            rc = -1;
        }
    }
    free(p.stack);
    free(p.keys);
    if (rc < 0) {
        while (chunks) {
            arena_chunk_t *next = chunks->next;
            free(chunks);
            chunks = next;
        }
        return NULL;
    }
    json_doc_t *doc = mallocCheck(sizeof *doc);
    doc->root = root;
    doc->root.is_root = 1;
    doc->chunks = chunks;
    return &doc->root;
}

json_t *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    return json_parse_flags(text, len, 0, err, errlen);
}

void json_destroy(json_t **self_p) {
    if (!self_p || !*self_p) return;
    json_t *self = *self_p;
    *self_p = NULL;
    if (!self->is_root) return;     /* a node inside a tree: its root owns it */
    json_doc_t *doc = (json_doc_t *)self;
    arena_chunk_t *c = doc->chunks;
    while (c) {
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* ---- lookups -------------------------------------------------------------- */

json_type_t json_type(const json_t *v) { return v ? v->type : JSON_NONE; }

const char *json_type_name(json_type_t type) {
    switch (type) {
    case JSON_NONE: return "nothing";
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "unknown";
}

size_t json_offset(const json_t *v) { return v ? v->offset : 0; }

size_t json_size(const json_t *v) {
    if (!v || (v->type != JSON_ARRAY && v->type != JSON_OBJECT)) return 0;
    return v->u.container.count;
}

const json_t *json_at(const json_t *v, size_t index) {
    if (index >= json_size(v)) return NULL;
    return &v->u.container.items[index];
}

const char *json_key_at(const json_t *obj, size_t index) {
    if (!obj || obj->type != JSON_OBJECT || index >= obj->u.container.count) return NULL;
    return obj->u.container.keys[index].chars;
}

const json_t *json_get(const json_t *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = obj->u.container.count; i-- > 0;) {
        const json_str_t *k = &obj->u.container.keys[i];
        if (k->len == n && memcmp(k->chars, key, n) == 0) return &obj->u.container.items[i];
    }
    return NULL;
}

int json_number(const json_t *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return -1;
    *out = v->u.number;
    return 0;
}

int json_int(const json_t *v, long long *out) {
    if (!v || v->type != JSON_NUMBER) return -1;
    double d = v->u.number;
    const double limit = 9007199254740992.0;   /* 2^53 */
    if (!(d >= -limit && d <= limit) || d != floor(d)) return -1;
    *out = (long long)d;
    return 0;
}

int json_bool(const json_t *v, int *out) {
    if (!v || v->type != JSON_BOOL) return -1;
    *out = v->u.boolean;
    return 0;
}

const char *json_string(const json_t *v) {
    if (!v || v->type != JSON_STRING) return NULL;
    return v->u.string.chars;
}

size_t json_string_len(const json_t *v) {
    if (!v || v->type != JSON_STRING) return 0;
    return v->u.string.len;
}

/* ---- writers -------------------------------------------------------------- */

/* Appends to a snprintf-style destination: counts every byte, stores what fits. */
typedef struct {
    char *dst;
    size_t cap, len;
} sink_t;

static void sink_put(sink_t *s, const char *bytes, size_t n) {
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->dst + s->len, bytes, n < room ? n : room);
    }
    s->len += n;
}

static void escape_into(sink_t *s, const char *str, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)str;
    sink_put(s, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c == '"') sink_put(s, "\\\"", 2), i++;
        else if (c == '\\') sink_put(s, "\\\\", 2), i++;
        else if (c == '\n') sink_put(s, "\\n", 2), i++;
        else if (c == '\r') sink_put(s, "\\r", 2), i++;
        else if (c == '\t') sink_put(s, "\\t", 2), i++;
        else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sink_put(s, e, 6);
            i++;
        } else {
            size_t k = utf8_sequence_len(u + i, len - i);
            if (k == 0) {
                sink_put(s, "\xef\xbf\xbd", 3);     /* U+FFFD for a bad byte */
                i++;
            } else {
                sink_put(s, str + i, k);
                i += k;
            }
        }
    }
    sink_put(s, "\"", 1);
}

size_t json_escape(char *dst, size_t dstlen, const char *s, size_t len) {
    sink_t sink = {dst, dstlen ? dstlen - 1 : 0, 0};
    escape_into(&sink, s ? s : "", s ? len : 0);
    if (dstlen) dst[sink.len < dstlen - 1 ? sink.len : dstlen - 1] = '\0';
    return sink.len;
}

int json_write_string(FILE *out, const char *s, size_t len) {
    char small[256];
    size_t n = json_escape(small, sizeof small, s, len);
    if (n < sizeof small) return fwrite(small, 1, n, out) == n ? 0 : -1;
    char *big = mallocCheck(n + 1);
    json_escape(big, n + 1, s, len);
    int rc = fwrite(big, 1, n, out) == n ? 0 : -1;
    free(big);
    return rc;
}

size_t json_format_number(char *dst, size_t dstlen, double v) {
    char buf[40];
    if (!isfinite(v)) {
        snprintf(buf, sizeof buf, "null");
    } else {
        /* printf follows the thread's locale: switch to "C" so the decimal
         * point is a point whatever the process chose. */
        pthread_once(&c_locale_once, make_c_locale);
        locale_t saved = c_locale ? uselocale(c_locale) : (locale_t)0;
        /* The fewest significant digits that read back exactly; 17 always do. */
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, v);
            if (strtod_c(buf) == v) break;
        }
        if (saved) uselocale(saved);
    }
    size_t n = strlen(buf);
    if (dstlen) {
        size_t k = n < dstlen - 1 ? n : dstlen - 1;
        memcpy(dst, buf, k);
        dst[k] = '\0';
    }
    return n;
}

typedef struct {
    char *data;
    size_t len, cap;
} growbuf_t;

/* Makes room for n more bytes and the NUL. */
static void grow_reserve(growbuf_t *b, size_t n) {
    if (b->len + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = reallocCheck(b->data, cap);
    b->cap = cap;
}

static void grow_put(growbuf_t *b, const char *s, size_t n) {
    grow_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void serialize_string(growbuf_t *b, const char *s, size_t len) {
    size_t n = json_escape(NULL, 0, s, len);
    grow_reserve(b, n);
    json_escape(b->data + b->len, n + 1, s, len);
    b->len += n;
}

static void serialize(growbuf_t *b, const json_t *v) {
    char num[40];
    switch (json_type(v)) {
    case JSON_NONE:
    case JSON_NULL: grow_put(b, "null", 4); break;
    case JSON_BOOL: v->u.boolean ? grow_put(b, "true", 4) : grow_put(b, "false", 5); break;
    case JSON_NUMBER: grow_put(b, num, json_format_number(num, sizeof num, v->u.number)); break;
    case JSON_STRING: serialize_string(b, v->u.string.chars, v->u.string.len); break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        int obj = v->type == JSON_OBJECT;
        grow_put(b, obj ? "{" : "[", 1);
        for (size_t i = 0; i < v->u.container.count; i++) {
            if (i) grow_put(b, ",", 1);
            if (obj) {
                serialize_string(b, v->u.container.keys[i].chars, v->u.container.keys[i].len);
                grow_put(b, ":", 1);
            }
            serialize(b, &v->u.container.items[i]);
        }
        grow_put(b, obj ? "}" : "]", 1);
        break;
    }
    }
}

char *json_serialize(const json_t *v, size_t *len_out) {
    growbuf_t b = {0};
    grow_put(&b, "", 0);
    serialize(&b, v);
    if (len_out) *len_out = b.len;
    return b.data;
}

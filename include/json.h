/* json.h - a small JSON reader, plus helpers to write JSON text.
 *
 * json_parse() turns a text into a read-only tree; the caller owns the tree
 * and frees it with json_destroy(). The reader follows RFC 8259 strictly
 * (UTF-8 input, no comments, no trailing commas), never reads outside the
 * given length, never crashes on any input, and refuses nesting deeper than
 * JSON_MAX_DEPTH. On malformed input it returns NULL and err says what is
 * wrong and at which byte offset ("byte 17: expected ':' after object key").
 *
 * Lookups accept NULL and values of the wrong type (they return NULL, 0 or
 * -1), so a chain such as json_get(json_get(doc, "a"), "b") needs a single
 * check at its end. Numbers are doubles (read with correct rounding); strings
 * are UTF-8, NUL-terminated, and may hold NUL bytes (from \u0000): use
 * json_string_len() when that matters.
 *
 * Writing: json_escape()/json_write_string() quote a string, and
 * json_format_number() prints the shortest text that reads back as the same
 * double; json_serialize() prints a whole tree compactly. */
#ifndef RLHF_JSON_H
#define RLHF_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 256

typedef enum {
    JSON_NONE = 0,   /* no value: what json_type() says of a NULL pointer */
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type_t;

/* json_parse_flags() options. */
enum {
    /* Accept NaN, Infinity and -Infinity, and numbers too large for a double
     * (read as infinities): Python's json module writes these by default. */
    JSON_ALLOW_NONFINITE = 1
};

typedef struct json json_t;

/* Parses len bytes of text (no NUL terminator needed). Returns the tree, or
 * NULL with err filled (when errlen > 0). */
json_t *json_parse(const char *text, size_t len, char *err, size_t errlen);
json_t *json_parse_flags(const char *text, size_t len, int flags, char *err, size_t errlen);
/* Frees a tree json_parse returned and sets *self_p to NULL. Only roots. */
void json_destroy(json_t **self_p);

json_type_t json_type(const json_t *v);
const char *json_type_name(json_type_t type);   /* "number", "object", ... */
/* Byte offset of the value's first character in the parsed text. */
size_t json_offset(const json_t *v);

/* Containers. json_size: elements of an array or members of an object, 0
 * for anything else. json_at: element i of an array or the value of member
 * i of an object. json_get: the value of an object's member with that key
 * (the last one when a key repeats, as JavaScript and Python do). */
size_t json_size(const json_t *v);
const json_t *json_at(const json_t *v, size_t index);
const char *json_key_at(const json_t *obj, size_t index);
const json_t *json_get(const json_t *obj, const char *key);

/* Scalars. The getters return 0 and write *out, or -1 (leaving *out alone)
 * when v is not of that type. json_int also fails unless the number is a
 * whole number within [-2^53, 2^53], where doubles count exactly. */
int json_number(const json_t *v, double *out);
int json_int(const json_t *v, long long *out);
int json_bool(const json_t *v, int *out);
/* The string's bytes, or NULL when v is not a string. */
const char *json_string(const json_t *v);
size_t json_string_len(const json_t *v);

/* Writes s (len bytes of UTF-8) as a quoted JSON string into dst, snprintf
 * style: at most dstlen bytes, NUL-terminated when dstlen > 0. Returns the
 * length of the whole text (without the NUL). Invalid UTF-8 becomes U+FFFD,
 * so the output is always valid JSON. */
size_t json_escape(char *dst, size_t dstlen, const char *s, size_t len);
/* The same, to a stream. Returns 0 or -1 on a write error. */
int json_write_string(FILE *out, const char *s, size_t len);
/* The shortest decimal text that reads back as v, or "null" for NaN and
 * infinities (JSON has no such numbers). snprintf style; 32 bytes always
 * suffice. */
size_t json_format_number(char *dst, size_t dstlen, double v);
/* Compact JSON text of a tree, malloc'd and NUL-terminated; the caller frees
 * it. *len_out (when not NULL) gets its length. */
char *json_serialize(const json_t *v, size_t *len_out);

#endif

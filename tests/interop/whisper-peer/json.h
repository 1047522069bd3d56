/*
 * A small, strict JSON reader and writer for the interop peer, plus
 * canonical base64.
 *
 * Reader: json_parse() turns one text (one request line) into a tree. It
 * accepts exactly RFC 8259 JSON: valid UTF-8, no trailing commas, no
 * comments, no leading zeros, no duplicate keys in an object, nesting at
 * most JSON_MAX_DEPTH arrays/objects deep, only whitespace around the
 * single top-level value. Strings are decoded (all escapes, \uXXXX with
 * surrogate pairs) to UTF-8; they may contain U+0000, so every string
 * comes with its length and is also NUL-terminated. Numbers are kept as
 * their text; json_u32() converts one that is a plain integer in range.
 *
 * Writer: json_out builds one line (objects, arrays, escaped strings,
 * integers, base64 values), putting commas itself.
 *
 * Base64: the standard alphabet, padded. b64_decode() takes only the
 * canonical form: length a multiple of 4, no whitespace or other
 * characters, '=' only as the final padding, unused bits zero.
 */
#ifndef WHISPER_PEER_JSON_H
#define WHISPER_PEER_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum json_type {
  JSON_NULL,
  JSON_BOOL,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT
} json_type;

typedef struct json_value json_value;

typedef struct json_member {
  char *key; /* decoded, NUL-terminated */
  size_t key_len;
  json_value *value;
} json_member;

struct json_value {
  json_type type;
  int boolean;     /* JSON_BOOL */
  char *str;       /* JSON_STRING: decoded; JSON_NUMBER: the literal text */
  size_t str_len;  /* bytes in str, without the terminating NUL */
  json_value **items;   /* JSON_ARRAY */
  json_member *members; /* JSON_OBJECT */
  size_t count;         /* items or members */
};

/* Parses `len` bytes at `text`. On success returns 0 and sets *out (free
 * with json_free). On failure returns -1, sets *out to NULL and, if `err`
 * is not NULL, writes a short message (with the byte offset) to it. */
int json_parse(const char *text, size_t len, json_value **out, char *err, size_t err_len);

/* Frees a tree (wiping its strings). Accepts NULL. */
void json_free(json_value *v);

/* The member `key` of an object; NULL if `obj` is not an object or has no
 * such member. */
const json_value *json_get(const json_value *obj, const char *key);

/* A string's bytes (NUL-terminated) and length; NULL if `v` is not a
 * string. `len` may be NULL. */
const char *json_str(const json_value *v, size_t *len);

/* A number that is a plain integer (no sign, fraction or exponent) in
 * 0..UINT32_MAX. Returns 0 and sets *out, or -1. */
int json_u32(const json_value *v, uint32_t *out);

/* The same in 0..2^53-1 (JSON numbers that every reader, JavaScript's
 * too, holds exactly): timestamps. Returns 0 and sets *out, or -1. */
int json_u53(const json_value *v, uint64_t *out);

/* A boolean. Returns 0 and sets *out to 0/1, or -1 if `v` is not one. */
int json_bool(const json_value *v, int *out);

/* 1 if `v` is JSON null, else 0 (also for NULL). */
int json_is_null(const json_value *v);

/* ---- writer ---- */

typedef struct json_out {
  char *data; /* NUL-terminated while !failed */
  size_t len;
  size_t cap;
  int failed; /* out of memory, or misuse (too deep, key outside object) */
  int depth;
  unsigned char need_comma[JSON_MAX_DEPTH + 1];
  unsigned char in_object[JSON_MAX_DEPTH + 1];
  int after_key;
} json_out;

void json_out_init(json_out *o);
/* Wipes and frees the text. */
void json_out_free(json_out *o);
/* Forgets the text (wiping it) but keeps the memory, to build another. */
void json_out_reset(json_out *o);

void json_out_begin_object(json_out *o);
void json_out_end_object(json_out *o);
void json_out_begin_array(json_out *o);
void json_out_end_array(json_out *o);
/* An object member's key; the next value written is its value. */
void json_out_key(json_out *o, const char *key);
void json_out_string(json_out *o, const char *s, size_t len);
void json_out_cstring(json_out *o, const char *s);
void json_out_u32(json_out *o, uint32_t n);
void json_out_u64(json_out *o, uint64_t n);
void json_out_bool(json_out *o, int b);
void json_out_null(json_out *o);
/* A string holding the base64 of `len` bytes. */
void json_out_b64(json_out *o, const uint8_t *data, size_t len);

/* Escapes `s` (`len` bytes) as a JSON string literal with its quotes into
 * `o` (no comma handling). Invalid UTF-8 bytes become U+FFFD, so the
 * output is always valid JSON. */
void json_out_escape(json_out *o, const char *s, size_t len);

/* ---- base64 ---- */

/* Bytes needed for the padded encoding of `len` bytes, without a NUL. */
size_t b64_encoded_len(size_t len);

/* Writes the encoding of `len` bytes to `out` (b64_encoded_len(len) + 1
 * bytes, NUL-terminated). */
void b64_encode(char *out, const uint8_t *data, size_t len);

/* Decodes canonical padded base64. Returns 0 with a malloc'd buffer in
 * *out (*out_len bytes; for "" a non-NULL buffer of length 0) that the
 * caller frees (b64_free wipes it), or -1 on non-canonical input or out of
 * memory (*out NULL). */
int b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len);

/* Wipes `len` bytes at `p` and frees it. Accepts NULL. */
void b64_free(uint8_t *p, size_t len);

/* Wipes memory (not optimised away). */
void json_wipe(void *p, size_t len);

#endif

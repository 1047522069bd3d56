/*
 * A small, strict JSON reader and writer, and canonical base64, for the
 * interop peer. See json.h.
 */
#include "json.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

void json_wipe(void *p, size_t len) {
  if (p != NULL && len > 0) sodium_memzero(p, len);
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

typedef struct parser {
  const unsigned char *p;
  const unsigned char *end;
  const unsigned char *start;
  char *err;
  size_t err_len;
  int failed;
} parser;

/* A growable byte buffer for decoding strings. */
typedef struct sbuf {
  char *data;
  size_t len;
  size_t cap;
} sbuf;

static void fail(parser *ps, const char *msg) {
  if (ps->failed) return;
  ps->failed = 1;
  if (ps->err != NULL && ps->err_len > 0) {
    snprintf(ps->err, ps->err_len, "%s at byte %zu", msg, (size_t)(ps->p - ps->start));
  }
}

static int sbuf_reserve(sbuf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return -1;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 16;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *n = malloc(cap);
  if (n == NULL) return -1;
  if (b->data != NULL) {
    memcpy(n, b->data, b->len);
    json_wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = n;
  b->cap = cap;
  return 0;
}

static int sbuf_put(sbuf *b, const void *src, size_t n) {
  if (sbuf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, src, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void sbuf_free(sbuf *b) {
  if (b->data != NULL) {
    json_wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = NULL;
  b->len = b->cap = 0;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
    ps->p++;
  }
}

static json_value *new_value(json_type t) {
  json_value *v = calloc(1, sizeof *v);
  if (v != NULL) v->type = t;
  return v;
}

/* Length of the valid UTF-8 sequence at p (at most `avail` bytes), or 0
 * if invalid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq_len(const unsigned char *p, size_t avail) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    if (avail < 2 || (p[1] & 0xC0) != 0x80) return 0;
    return 2;
  }
  if (c < 0xF0) {
    if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
        (p[3] & 0xC0) != 0x80) {
      return 0;
    }
    if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
    return 4;
  }
  return 0;
}

static size_t utf8_encode(unsigned char out[4], uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | (cp >> 6));
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xE0 | (cp >> 12));
    out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | (cp >> 18));
  out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

static int hex4(parser *ps, uint32_t *out) {
  if (ps->end - ps->p < 4) {
    fail(ps, "truncated \\u escape");
    return -1;
  }
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = ps->p[i];
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      fail(ps, "bad hex digit in \\u escape");
      return -1;
    }
    v = (v << 4) | d;
  }
  ps->p += 4;
  *out = v;
  return 0;
}

/* Parses a string literal (ps->p at the opening quote) into b. */
static int parse_string_raw(parser *ps, sbuf *b) {
  ps->p++; /* opening quote */
  if (sbuf_reserve(b, 0) != 0) {
    fail(ps, "out of memory");
    return -1;
  }
  b->data[0] = '\0';
  for (;;) {
    if (ps->p >= ps->end) {
      fail(ps, "unterminated string");
      return -1;
    }
    /* Copy a run of plain characters at once. */
    const unsigned char *run = ps->p;
    while (ps->p < ps->end && *ps->p >= 0x20 && *ps->p < 0x80 && *ps->p != '"' &&
           *ps->p != '\\') {
      ps->p++;
    }
    if (ps->p > run && sbuf_put(b, run, (size_t)(ps->p - run)) != 0) {
      fail(ps, "out of memory");
      return -1;
    }
    if (ps->p >= ps->end) {
      fail(ps, "unterminated string");
      return -1;
    }
    unsigned c = *ps->p;
    if (c == '"') {
      ps->p++;
      return 0;
    }
    if (c < 0x20) {
      fail(ps, "control character in string");
      return -1;
    }
    if (c >= 0x80) {
      size_t n = utf8_seq_len(ps->p, (size_t)(ps->end - ps->p));
      if (n == 0) {
        fail(ps, "invalid UTF-8 in string");
        return -1;
      }
      if (sbuf_put(b, ps->p, n) != 0) {
        fail(ps, "out of memory");
        return -1;
      }
      ps->p += n;
      continue;
    }
    /* backslash */
    ps->p++;
    if (ps->p >= ps->end) {
      fail(ps, "unterminated escape");
      return -1;
    }
    char e = (char)*ps->p++;
    char ch;
    switch (e) {
      case '"': ch = '"'; break;
      case '\\': ch = '\\'; break;
      case '/': ch = '/'; break;
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u': {
        uint32_t cp;
        if (hex4(ps, &cp) != 0) return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail(ps, "lone low surrogate");
          return -1;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
            fail(ps, "lone high surrogate");
            return -1;
          }
          ps->p += 2;
          uint32_t lo;
          if (hex4(ps, &lo) != 0) return -1;
          if (lo < 0xDC00 || lo > 0xDFFF) {
            fail(ps, "high surrogate not followed by a low one");
            return -1;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        unsigned char u[4];
        size_t n = utf8_encode(u, cp);
        if (sbuf_put(b, u, n) != 0) {
          fail(ps, "out of memory");
          return -1;
        }
        continue;
      }
      default:
        ps->p--;
        fail(ps, "bad escape");
        return -1;
    }
    if (sbuf_put(b, &ch, 1) != 0) {
      fail(ps, "out of memory");
      return -1;
    }
  }
}

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static json_value *parse_number(parser *ps) {
  const unsigned char *s = ps->p;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end || !is_digit(*ps->p)) {
    fail(ps, "bad number");
    return NULL;
  }
  if (*ps->p == '0') {
    ps->p++;
    if (ps->p < ps->end && is_digit(*ps->p)) {
      fail(ps, "leading zero in number");
      return NULL;
    }
  } else {
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  }
  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) {
      fail(ps, "bad fraction in number");
      return NULL;
    }
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) {
      fail(ps, "bad exponent in number");
      return NULL;
    }
    while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
  }
  json_value *v = new_value(JSON_NUMBER);
  size_t n = (size_t)(ps->p - s);
  if (v == NULL || (v->str = malloc(n + 1)) == NULL) {
    free(v);
    fail(ps, "out of memory");
    return NULL;
  }
  memcpy(v->str, s, n);
  v->str[n] = '\0';
  v->str_len = n;
  return v;
}

static int match_word(parser *ps, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) {
    fail(ps, "unexpected token");
    return -1;
  }
  ps->p += n;
  return 0;
}

static json_value *parse_value(parser *ps, int depth);

static json_value *parse_array(parser *ps, int depth) {
  json_value *v = new_value(JSON_ARRAY);
  size_t cap = 0;
  if (v == NULL) {
    fail(ps, "out of memory");
    return NULL;
  }
  ps->p++; /* '[' */
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    return v;
  }
  for (;;) {
    json_value *item = parse_value(ps, depth);
    if (item == NULL) goto err;
    if (v->count == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      json_value **n = realloc(v->items, ncap * sizeof *n);
      if (n == NULL) {
        json_free(item);
        fail(ps, "out of memory");
        goto err;
      }
      v->items = n;
      cap = ncap;
    }
    v->items[v->count++] = item;
    skip_ws(ps);
    if (ps->p >= ps->end) {
      fail(ps, "unterminated array");
      goto err;
    }
    if (*ps->p == ',') {
      ps->p++;
      continue;
    }
    if (*ps->p == ']') {
      ps->p++;
      return v;
    }
    fail(ps, "expected ',' or ']'");
    goto err;
  }
err:
  json_free(v);
  return NULL;
}

static json_value *parse_object(parser *ps, int depth) {
  json_value *v = new_value(JSON_OBJECT);
  size_t cap = 0;
  sbuf key = {0};
  if (v == NULL) {
    fail(ps, "out of memory");
    return NULL;
  }
  ps->p++; /* '{' */
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
    return v;
  }
  for (;;) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') {
      fail(ps, "expected a string key");
      goto err;
    }
    key.len = 0;
    if (parse_string_raw(ps, &key) != 0) goto err;
    for (size_t i = 0; i < v->count; i++) {
      if (v->members[i].key_len == key.len &&
          memcmp(v->members[i].key, key.data, key.len) == 0) {
        fail(ps, "duplicate key in object");
        goto err;
      }
    }
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
      fail(ps, "expected ':'");
      goto err;
    }
    ps->p++;
    json_value *val = parse_value(ps, depth);
    if (val == NULL) goto err;
    if (v->count == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      json_member *n = realloc(v->members, ncap * sizeof *n);
      if (n == NULL) {
        json_free(val);
        fail(ps, "out of memory");
        goto err;
      }
      v->members = n;
      cap = ncap;
    }
    char *k = malloc(key.len + 1);
    if (k == NULL) {
      json_free(val);
      fail(ps, "out of memory");
      goto err;
    }
    memcpy(k, key.data, key.len);
    k[key.len] = '\0';
    v->members[v->count].key = k;
    v->members[v->count].key_len = key.len;
    v->members[v->count].value = val;
    v->count++;
    skip_ws(ps);
    if (ps->p >= ps->end) {
      fail(ps, "unterminated object");
      goto err;
    }
    if (*ps->p == ',') {
      ps->p++;
      continue;
    }
    if (*ps->p == '}') {
      ps->p++;
      sbuf_free(&key);
      return v;
    }
    fail(ps, "expected ',' or '}'");
    goto err;
  }
err:
  sbuf_free(&key);
  json_free(v);
  return NULL;
}

static json_value *parse_value(parser *ps, int depth) {
  skip_ws(ps);
  if (ps->p >= ps->end) {
    fail(ps, "unexpected end of input");
    return NULL;
  }
  unsigned c = *ps->p;
  json_value *v;
  switch (c) {
    case '{':
    case '[':
      if (depth >= JSON_MAX_DEPTH) {
        fail(ps, "nesting too deep");
        return NULL;
      }
      return c == '{' ? parse_object(ps, depth + 1) : parse_array(ps, depth + 1);
    case '"': {
      sbuf b = {0};
      if (parse_string_raw(ps, &b) != 0) {
        sbuf_free(&b);
        return NULL;
      }
      v = new_value(JSON_STRING);
      if (v == NULL) {
        sbuf_free(&b);
        fail(ps, "out of memory");
        return NULL;
      }
      v->str = b.data; /* NUL-terminated by parse_string_raw */
      v->str_len = b.len;
      /* json_free wipes str_len + 1 bytes; the rest of the capacity was
       * never written beyond that, except by the growth copies, which
       * sbuf_reserve wiped. */
      return v;
    }
    case 't':
      if (match_word(ps, "true") != 0) return NULL;
      v = new_value(JSON_BOOL);
      if (v == NULL) fail(ps, "out of memory");
      else v->boolean = 1;
      return v;
    case 'f':
      if (match_word(ps, "false") != 0) return NULL;
      v = new_value(JSON_BOOL);
      if (v == NULL) fail(ps, "out of memory");
      return v;
    case 'n':
      if (match_word(ps, "null") != 0) return NULL;
      v = new_value(JSON_NULL);
      if (v == NULL) fail(ps, "out of memory");
      return v;
    default:
      if (c == '-' || is_digit(c)) return parse_number(ps);
      fail(ps, "unexpected character");
      return NULL;
  }
}

int json_parse(const char *text, size_t len, json_value **out, char *err, size_t err_len) {
  parser ps;
  if (out == NULL) return -1;
  *out = NULL;
  if (err != NULL && err_len > 0) err[0] = '\0';
  if (text == NULL && len > 0) return -1;
  ps.start = ps.p = (const unsigned char *)(text ? text : "");
  ps.end = ps.p + len;
  ps.err = err;
  ps.err_len = err_len;
  ps.failed = 0;
  json_value *v = parse_value(&ps, 0);
  if (v == NULL) {
    fail(&ps, "invalid JSON");
    return -1;
  }
  skip_ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters after the value");
    json_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

void json_free(json_value *v) {
  if (v == NULL) return;
  switch (v->type) {
    case JSON_STRING:
    case JSON_NUMBER:
      if (v->str != NULL) {
        json_wipe(v->str, v->str_len);
        free(v->str);
      }
      break;
    case JSON_ARRAY:
      for (size_t i = 0; i < v->count; i++) json_free(v->items[i]);
      free(v->items);
      break;
    case JSON_OBJECT:
      for (size_t i = 0; i < v->count; i++) {
        json_wipe(v->members[i].key, v->members[i].key_len);
        free(v->members[i].key);
        json_free(v->members[i].value);
      }
      free(v->members);
      break;
    default:
      break;
  }
  free(v);
}

const json_value *json_get(const json_value *obj, const char *key) {
  if (obj == NULL || obj->type != JSON_OBJECT || key == NULL) return NULL;
  size_t n = strlen(key);
  for (size_t i = 0; i < obj->count; i++) {
    if (obj->members[i].key_len == n && memcmp(obj->members[i].key, key, n) == 0) {
      return obj->members[i].value;
    }
  }
  return NULL;
}

const char *json_str(const json_value *v, size_t *len) {
  if (v == NULL || v->type != JSON_STRING) return NULL;
  if (len != NULL) *len = v->str_len;
  return v->str;
}

int json_u32(const json_value *v, uint32_t *out) {
  if (v == NULL || v->type != JSON_NUMBER || v->str_len == 0) return -1;
  uint64_t n = 0;
  for (size_t i = 0; i < v->str_len; i++) {
    unsigned c = (unsigned char)v->str[i];
    if (!is_digit(c)) return -1; /* sign, fraction or exponent */
    n = n * 10 + (c - '0');
    if (n > UINT32_MAX) return -1;
  }
  if (out != NULL) *out = (uint32_t)n;
  return 0;
}

int json_u53(const json_value *v, uint64_t *out) {
  if (v == NULL || v->type != JSON_NUMBER || v->str_len == 0) return -1;
  uint64_t n = 0;
  for (size_t i = 0; i < v->str_len; i++) {
    unsigned c = (unsigned char)v->str[i];
    if (!is_digit(c)) return -1; /* sign, fraction or exponent */
    n = n * 10 + (c - '0');
    if (n > (1ULL << 53) - 1) return -1;
  }
  if (out != NULL) *out = n;
  return 0;
}

int json_bool(const json_value *v, int *out) {
  if (v == NULL || v->type != JSON_BOOL) return -1;
  if (out != NULL) *out = v->boolean ? 1 : 0;
  return 0;
}

int json_is_null(const json_value *v) { return v != NULL && v->type == JSON_NULL; }

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

void json_out_init(json_out *o) { memset(o, 0, sizeof *o); }

void json_out_free(json_out *o) {
  if (o->data != NULL) {
    json_wipe(o->data, o->cap);
    free(o->data);
  }
  json_out_init(o);
}

void json_out_reset(json_out *o) {
  if (o->data != NULL) {
    json_wipe(o->data, o->len);
    o->data[0] = '\0';
  }
  o->len = 0;
  o->failed = 0;
  o->depth = 0;
  o->after_key = 0;
  memset(o->need_comma, 0, sizeof o->need_comma);
  memset(o->in_object, 0, sizeof o->in_object);
}

static int out_reserve(json_out *o, size_t extra) {
  if (o->failed) return -1;
  if (extra > SIZE_MAX - o->len - 1) {
    o->failed = 1;
    return -1;
  }
  size_t need = o->len + extra + 1;
  if (need <= o->cap) return 0;
  size_t cap = o->cap ? o->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *n = malloc(cap);
  if (n == NULL) {
    o->failed = 1;
    return -1;
  }
  if (o->data != NULL) {
    memcpy(n, o->data, o->len);
    json_wipe(o->data, o->cap);
    free(o->data);
  }
  o->data = n;
  o->cap = cap;
  o->data[o->len] = '\0';
  return 0;
}

static void out_raw(json_out *o, const char *s, size_t n) {
  if (out_reserve(o, n) != 0) return;
  memcpy(o->data + o->len, s, n);
  o->len += n;
  o->data[o->len] = '\0';
}

/* Called before any value: puts a comma if needed and checks placement. */
static void out_value_prefix(json_out *o) {
  if (o->failed) return;
  if (o->in_object[o->depth]) {
    if (!o->after_key) {
      o->failed = 1; /* a value in an object needs a key first */
      return;
    }
    o->after_key = 0;
    return;
  }
  if (o->need_comma[o->depth]) out_raw(o, ",", 1);
  o->need_comma[o->depth] = 1;
}

static void out_open(json_out *o, char c, int is_object) {
  out_value_prefix(o);
  if (o->failed) return;
  if (o->depth >= JSON_MAX_DEPTH) {
    o->failed = 1;
    return;
  }
  out_raw(o, &c, 1);
  o->depth++;
  o->need_comma[o->depth] = 0;
  o->in_object[o->depth] = (unsigned char)is_object;
}

static void out_close(json_out *o, char c, int is_object) {
  if (o->failed) return;
  if (o->depth == 0 || o->in_object[o->depth] != is_object || o->after_key) {
    o->failed = 1;
    return;
  }
  o->depth--;
  out_raw(o, &c, 1);
}

void json_out_begin_object(json_out *o) { out_open(o, '{', 1); }
void json_out_end_object(json_out *o) { out_close(o, '}', 1); }
void json_out_begin_array(json_out *o) { out_open(o, '[', 0); }
void json_out_end_array(json_out *o) { out_close(o, ']', 0); }

void json_out_key(json_out *o, const char *key) {
  if (o->failed) return;
  if (!o->in_object[o->depth] || o->after_key) {
    o->failed = 1;
    return;
  }
  if (o->need_comma[o->depth]) out_raw(o, ",", 1);
  o->need_comma[o->depth] = 1;
  json_out_escape(o, key, strlen(key));
  out_raw(o, ":", 1);
  o->after_key = 1;
}

void json_out_escape(json_out *o, const char *s, size_t len) {
  static const char hexd[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  out_raw(o, "\"", 1);
  size_t i = 0;
  while (i < len && !o->failed) {
    size_t run = i;
    while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') i++;
    if (i > run) out_raw(o, (const char *)p + run, i - run);
    if (i >= len) break;
    unsigned c = p[i];
    char esc[7];
    switch (c) {
      case '"': out_raw(o, "\\\"", 2); i++; continue;
      case '\\': out_raw(o, "\\\\", 2); i++; continue;
      case '\b': out_raw(o, "\\b", 2); i++; continue;
      case '\f': out_raw(o, "\\f", 2); i++; continue;
      case '\n': out_raw(o, "\\n", 2); i++; continue;
      case '\r': out_raw(o, "\\r", 2); i++; continue;
      case '\t': out_raw(o, "\\t", 2); i++; continue;
      default: break;
    }
    if (c < 0x20) {
      esc[0] = '\\';
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hexd[c >> 4];
      esc[5] = hexd[c & 15];
      out_raw(o, esc, 6);
      i++;
      continue;
    }
    size_t n = utf8_seq_len(p + i, len - i);
    if (n == 0) {
      out_raw(o, "\\ufffd", 6);
      i++;
    } else {
      out_raw(o, (const char *)p + i, n);
      i += n;
    }
  }
  out_raw(o, "\"", 1);
}

void json_out_string(json_out *o, const char *s, size_t len) {
  out_value_prefix(o);
  if (o->failed) return;
  json_out_escape(o, s, len);
}

void json_out_cstring(json_out *o, const char *s) {
  json_out_string(o, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void json_out_u32(json_out *o, uint32_t n) {
  char tmp[16];
  out_value_prefix(o);
  if (o->failed) return;
  int k = snprintf(tmp, sizeof tmp, "%lu", (unsigned long)n);
  if (k > 0) out_raw(o, tmp, (size_t)k);
}

void json_out_u64(json_out *o, uint64_t n) {
  char tmp[24];
  out_value_prefix(o);
  if (o->failed) return;
  int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)n);
  if (k > 0) out_raw(o, tmp, (size_t)k);
}

void json_out_bool(json_out *o, int b) {
  out_value_prefix(o);
  if (o->failed) return;
  if (b) out_raw(o, "true", 4);
  else out_raw(o, "false", 5);
}

void json_out_null(json_out *o) {
  out_value_prefix(o);
  if (o->failed) return;
  out_raw(o, "null", 4);
}

void json_out_b64(json_out *o, const uint8_t *data, size_t len) {
  out_value_prefix(o);
  if (o->failed) return;
  size_t n = b64_encoded_len(len);
  if (n == 0 && len > 0) {
    o->failed = 1;
    return;
  }
  /* Base64 needs no escaping: encode straight into the buffer. */
  if (out_reserve(o, n + 2) != 0) return;
  o->data[o->len++] = '"';
  b64_encode(o->data + o->len, data, len);
  o->len += n;
  o->data[o->len++] = '"';
  o->data[o->len] = '\0';
}

/* ------------------------------------------------------------------ */
/* Base64                                                              */
/* ------------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_len(size_t len) {
  size_t groups = len / 3 + (len % 3 != 0);
  if (groups > (SIZE_MAX - 1) / 4) return 0; /* cannot happen in practice */
  return groups * 4;
}

void b64_encode(char *out, const uint8_t *data, size_t len) {
  size_t i = 0, j = 0;
  while (len - i >= 3) {
    uint32_t v = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2];
    out[j++] = b64_alphabet[(v >> 18) & 63];
    out[j++] = b64_alphabet[(v >> 12) & 63];
    out[j++] = b64_alphabet[(v >> 6) & 63];
    out[j++] = b64_alphabet[v & 63];
    i += 3;
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)data[i] << 16;
    out[j++] = b64_alphabet[(v >> 18) & 63];
    out[j++] = b64_alphabet[(v >> 12) & 63];
    out[j++] = '=';
    out[j++] = '=';
  } else if (len - i == 2) {
    uint32_t v = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8);
    out[j++] = b64_alphabet[(v >> 18) & 63];
    out[j++] = b64_alphabet[(v >> 12) & 63];
    out[j++] = b64_alphabet[(v >> 6) & 63];
    out[j++] = '=';
  }
  out[j] = '\0';
}

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len) {
  const unsigned char *p = (const unsigned char *)s;
  if (out == NULL || out_len == NULL) return -1;
  *out = NULL;
  *out_len = 0;
  if (s == NULL && len > 0) return -1;
  if (len % 4 != 0) return -1;
  size_t pad = 0;
  if (len >= 4) {
    if (p[len - 1] == '=') pad++;
    if (p[len - 2] == '=') {
      if (pad == 0) return -1; /* "xx=x" */
      pad++;
    }
  }
  size_t n = len / 4 * 3 - pad;
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL) return -1;
  size_t j = 0;
  for (size_t i = 0; i < len; i += 4) {
    int last = (i + 4 == len);
    int v[4];
    for (int k = 0; k < 4; k++) {
      if (last && k >= 4 - (int)pad) {
        v[k] = 0; /* '=' checked above */
        continue;
      }
      v[k] = b64_val(p[i + (size_t)k]);
      if (v[k] < 0) goto bad; /* includes '=' in the middle */
    }
    uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                 (uint32_t)v[3];
    if (last && pad == 2) {
      if ((w & 0xFFFF) != 0) goto bad; /* non-zero unused bits */
      buf[j++] = (uint8_t)(w >> 16);
    } else if (last && pad == 1) {
      if ((w & 0xFF) != 0) goto bad;
      buf[j++] = (uint8_t)(w >> 16);
      buf[j++] = (uint8_t)(w >> 8);
    } else {
      buf[j++] = (uint8_t)(w >> 16);
      buf[j++] = (uint8_t)(w >> 8);
      buf[j++] = (uint8_t)w;
    }
  }
  *out = buf;
  *out_len = n;
  return 0;
bad:
  b64_free(buf, n);
  return -1;
}

void b64_free(uint8_t *p, size_t len) {
  if (p == NULL) return;
  json_wipe(p, len);
  free(p);
}

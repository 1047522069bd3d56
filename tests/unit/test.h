/* A tiny test harness: CHECK macros, hex and file helpers, a deterministic
 * RNG with a queue of scripted outputs. Each test program ends with
 * test_done(), which prints "N passed, N failed". */
#ifndef WHISPER_TEST_H
#define WHISPER_TEST_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../interop/whisper-peer/json.h"
#include "whisper/whisper.h"

static int t_pass, t_fail;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) {                                                                      \
      t_pass++;                                                                      \
    } else {                                                                         \
      t_fail++;                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
    }                                                                                \
  } while (0)

#define CHECK_RC(expr, want)                                                         \
  do {                                                                               \
    int rc_ = (expr);                                                                \
    if (rc_ == (want)) {                                                             \
      t_pass++;                                                                      \
    } else {                                                                         \
      t_fail++;                                                                      \
      fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d\n", __FILE__, __LINE__, \
              #expr, rc_, whisper_strerror(rc_), (want));                            \
    }                                                                                \
  } while (0)

static inline int test_done(void) {
  printf("%d passed, %d failed\n", t_pass, t_fail);
  return t_fail ? 1 : 0;
}

/* Decodes hex into a malloc'd buffer. */
static inline uint8_t *unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  uint8_t *b = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    b[i] = (uint8_t)v;
  }
  if (len) *len = n;
  return b;
}

static inline void unhex_to(uint8_t *out, size_t n, const char *hex) {
  size_t got;
  uint8_t *b = unhex(hex, &got);
  memcpy(out, b, got < n ? got : n);
  free(b);
}

static inline json_value *load_vector(const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", WHISPER_VECTORS_DIR, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  if (fread(text, 1, (size_t)n, f) != (size_t)n) exit(2);
  fclose(f);
  json_value *v = NULL;
  char err[128];
  if (json_parse(text, (size_t)n, &v, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", name, err);
    exit(2);
  }
  free(text);
  return v;
}

static inline const char *jstr(const json_value *v, const char *key) {
  const char *s = json_str(json_get(v, key), NULL);
  if (s == NULL) {
    fprintf(stderr, "vector field %s missing\n", key);
    exit(2);
  }
  return s;
}

static inline uint32_t ju32(const json_value *v, const char *key) {
  uint32_t n = 0;
  if (json_u32(json_get(v, key), &n) != 0) {
    fprintf(stderr, "vector field %s missing\n", key);
    exit(2);
  }
  return n;
}

/* A deterministic RNG: scripted outputs first (each consumed whole by one
 * call of exactly its length), then a seeded stream. */
typedef struct test_rng {
  uint8_t script[8][64];
  size_t script_len[8];
  int head, tail;
  uint8_t seed[32];
  uint64_t counter;
  int fail;
} test_rng;

static inline int test_rng_fn(void *user, uint8_t *out, size_t len) {
  test_rng *r = user;
  if (r->fail) return -1;
  if (r->head != r->tail && r->script_len[r->head % 8] == len) {
    memcpy(out, r->script[r->head % 8], len);
    r->head++;
    return 0;
  }
  uint8_t s[32];
  memcpy(s, r->seed, 32);
  for (int i = 0; i < 8; i++) s[i] ^= (uint8_t)(r->counter >> (8 * i));
  r->counter++;
  randombytes_buf_deterministic(out, len, s);
  return 0;
}

static inline void test_rng_push(test_rng *r, const uint8_t *bytes, size_t len) {
  memcpy(r->script[r->tail % 8], bytes, len);
  r->script_len[r->tail % 8] = len;
  r->tail++;
}

static inline void test_rng_push_hex(test_rng *r, const char *hex) {
  size_t n;
  uint8_t *b = unhex(hex, &n);
  test_rng_push(r, b, n);
  free(b);
}

/* A device on a memory store with a deterministic RNG. */
#define TEST_NOW 1700000000000ULL

typedef struct tdev {
  whisper_store *st;
  whisper_ctx *ctx;
  test_rng rng;
} tdev;

static inline void tdev_open(tdev *d, uint8_t seed) {
  memset(d, 0, sizeof *d);
  memset(d->rng.seed, seed, 32);
  whisper_store_memory_new(&d->st);
  whisper_ctx_new(&d->ctx, d->st);
  whisper_ctx_rng_set(d->ctx, test_rng_fn, &d->rng);
}

static inline void tdev_new(tdev *d, const char *name, uint32_t device, uint8_t seed) {
  tdev_open(d, seed);
  CHECK_RC(whisper_identity_generate(d->ctx, name, device, 0, TEST_NOW), WHISPER_OK);
}

static inline void tdev_close(tdev *d) {
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
}

#endif

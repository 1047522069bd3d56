/*
 * Folding and splitting text into search tokens (see fold.h), one code
 * point at a time through the generated table:
 *
 *   record = stage2[stage1[cp >> SHIFT] << SHIFT | cp & MASK] -> recs[]
 *   bits 0-1   the class of the folded code point (SEP, WORD, CLUSTER,
 *              EXTEND; of the first one when it folds to several)
 *   bits 2-6   how many code points it folds to (0: dropped)
 *   bits 7-31  one: the signed difference to it; several: where they
 *              start in the pool
 */
#include "protocol/fold.h"

#include <sodium.h>
#include <string.h>

#include "protocol/fold_table.h"

#define FOLD_MASK ((1u << WH_FOLD_SHIFT) - 1)

static uint32_t fold_rec(uint32_t cp) {
  size_t block = wh_fold_stage1[cp >> WH_FOLD_SHIFT];
  return wh_fold_recs[wh_fold_stage2[block << WH_FOLD_SHIFT | (cp & FOLD_MASK)]];
}

/* Decodes the code point at p (n > 0 bytes left): its length, or 0 if
 * the bytes there are not valid UTF-8. */
static size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp) {
  uint8_t b = p[0];
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
    *cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    *cp = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;      /* overlong */
    else if (b == 0xED) hi = 0x9F; /* surrogates */
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    *cp = b & 0x07;
    if (b == 0xF0) lo = 0x90;      /* overlong */
    else if (b == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    *cp = *cp << 6 | (p[i] & 0x3F);
  }
  return len;
}

static size_t utf8_put(uint8_t out[4], uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

int wh_utf8_valid(const uint8_t *p, size_t n) {
  uint32_t cp;
  while (n > 0) {
    size_t l = utf8_next(p, n, &cp);
    if (l == 0) return 0;
    p += l;
    n -= l;
  }
  return 1;
}

enum { NONE = -1 };

typedef struct splitter {
  uint8_t buf[WH_TOK_MAX];
  size_t len;
  int cur;  /* NONE, WH_FOLD_WORD or WH_FOLD_CLUSTER: the token being built */
  int kind; /* its WH_TOK_* */
  int full; /* a code point did not fit: the rest of the token is cut */
  int run;  /* the token before was a cluster, with nothing between */
  wh_token_fn fn;
  void *arg;
} splitter;

/* Ends the token being built: hands it to fn. */
static int emit(splitter *s) {
  int stop = 0;
  if (s->cur != NONE && s->len > 0) stop = s->fn(s->arg, s->buf, s->len, s->kind);
  s->cur = NONE;
  s->len = 0;
  s->full = 0;
  return stop;
}

static void start(splitter *s, int cls) {
  s->cur = cls;
  if (cls == WH_FOLD_CLUSTER) {
    s->kind = s->run ? WH_TOK_NEXT : WH_TOK_CLUSTER;
    s->run = 1;
  } else {
    s->kind = WH_TOK_WORD;
    s->run = 0;
  }
}

static void append(splitter *s, uint32_t cp) {
  uint8_t u[4];
  size_t n = utf8_put(u, cp);
  if (s->full || s->len + n > WH_TOK_MAX) {
    s->full = 1;
    return;
  }
  memcpy(s->buf + s->len, u, n);
  s->len += n;
}

/* One folded code point of class `cls`. */
static int step(splitter *s, uint32_t cp, int cls) {
  int stop = 0;
  switch (cls) {
    case WH_FOLD_WORD:
      if (s->cur == WH_FOLD_CLUSTER) stop = emit(s);
      if (s->cur == NONE) start(s, WH_FOLD_WORD);
      append(s, cp);
      break;
    case WH_FOLD_CLUSTER:
      stop = emit(s);
      start(s, WH_FOLD_CLUSTER);
      append(s, cp);
      break;
    case WH_FOLD_EXTEND:
      if (s->cur == NONE) start(s, WH_FOLD_WORD);
      append(s, cp);
      break;
    default: /* a separator */
      stop = emit(s);
      s->run = 0;
      break;
  }
  return stop;
}

int wh_fold_tokens(const uint8_t *text, size_t len, wh_token_fn fn, void *arg) {
  splitter s;
  memset(&s, 0, sizeof s);
  s.cur = NONE;
  s.fn = fn;
  s.arg = arg;
  int stop = 0;
  size_t i = 0;
  while (i < len && !stop) {
    uint32_t cp;
    size_t l = utf8_next(text + i, len - i, &cp);
    if (l == 0) { /* an invalid byte separates */
      stop = step(&s, 0, WH_FOLD_SEP);
      i++;
      continue;
    }
    i += l;
    uint32_t rec = fold_rec(cp), n = rec >> 2 & 31, data = rec >> 7;
    if (n == 1) {
      /* data is a 25-bit two's complement difference */
      uint32_t to = (cp + data) & 0x1FFFFFF;
      stop = step(&s, to, (int)(rec & 3));
    } else {
      for (uint32_t k = 0; k < n && !stop; k++) {
        uint32_t to = wh_fold_pool[data + k];
        stop = step(&s, to, (int)(fold_rec(to) & 3));
      }
    }
  }
  if (!stop) stop = emit(&s);
  sodium_memzero(&s, sizeof s);
  return stop;
}

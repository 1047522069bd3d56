/*
 * Full-text search over history (search.h), on the ordered kind SEARCH:
 * an inverted index from keyed word tags to messages, newest first.
 *
 *   search key        = HKDF-SHA256(ikm = the history salt, info = "whisper search v1")
 *   term tag          = HMAC-SHA256(search key, 0x00 || folded token)[0..16)
 *   conversation term = HMAC-SHA256(search key, 0x01 || conversation)[0..16)
 *   SEARCH key        = term tag (16) || timestamp_ms (8, BE) || message tag (16)
 *   SEARCH value      = conversation tag (16) || sort key (8, BE): where history
 *                       kept the message when it was indexed
 *   META search_index = 0x01 once every message of history is indexed
 *
 * A message has one posting per distinct token (fold.h) and one under its
 * conversation's term, so a search in one conversation is one more term
 * of the intersection. The message tag is history's (make_tags), so a hit
 * finds its entry at (conversation tag, sort key, message tag); an
 * outgoing message that whisper_history_sent() moved is found through its
 * message index. Nothing in a key is a word or an unkeyed hash of one; the
 * store seals the values.
 *
 * A search intersects the postings of up to LOOKUP_MAX of the query's
 * terms (their rows are in the same descending order, so a leapfrog join:
 * each term seeks the newest posting at or below the others'), then reads
 * each hit's entry and keeps it only if the entry is there, has the
 * posting's time, and its text, split again, holds every word of the query
 * and every run of clusters as it is. Stale postings (a message deleted or
 * changed without its postings) are so harmless.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/fold.h"
#include "protocol/pb.h"
#include "storage.pb-c.h"
#include "whisper/search.h"

#define TAG_LEN 16
#define SFX_LEN (8 + TAG_LEN)      /* time || message tag: a posting's place */
#define PKEY_LEN (TAG_LEN + SFX_LEN)
#define PVAL_LEN (TAG_LEN + 8)     /* conversation tag || sort key */
#define HKEY_LEN (TAG_LEN + 8 + TAG_LEN)
#define TERMS_MAX 4096             /* distinct tokens indexed per message */
#define LOOKUP_MAX 8               /* query terms intersected (the rest only checked) */
#define BUILD_CHUNK 128            /* history rows read at a time when indexing them all */
#define SEEK_MIN 4                 /* postings read at a time by a seek: it adapts */
#define SEEK_MAX 256

static const char META_INDEX[] = "search_index";
static const char KEY_INFO[] = "whisper search v1";

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static int need_scan(whisper_ctx *ctx) {
  if (ctx->store->ops.version < 2)
    return wh_fail(ctx, WHISPER_EINVAL, "this store cannot keep history (store interface 1)");
  return WHISPER_OK;
}

/* --- tags -------------------------------------------------------------------------------- */

/* HMAC-SHA256 keyed with the search key, ready for a term. */
static int search_mac(whisper_ctx *ctx, crypto_auth_hmacsha256_state *keyed) {
  uint8_t salt[TAG_LEN], key[32];
  int rc = wh_history_salt(ctx, salt);
  if (rc != WHISPER_OK) return rc;
  wh_hkdf(key, sizeof key, NULL, 0, salt, sizeof salt, KEY_INFO);
  crypto_auth_hmacsha256_init(keyed, key, sizeof key);
  wh_wipe(salt, sizeof salt);
  wh_wipe(key, sizeof key);
  return WHISPER_OK;
}

static void term_tag(const crypto_auth_hmacsha256_state *keyed, uint8_t domain, const uint8_t *p,
                     size_t n, uint8_t out[TAG_LEN]) {
  crypto_auth_hmacsha256_state st = *keyed;
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_update(&st, &domain, 1);
  crypto_auth_hmacsha256_update(&st, p, n);
  crypto_auth_hmacsha256_final(&st, mac);
  memcpy(out, mac, TAG_LEN);
  wh_wipe(&st, sizeof st);
  wh_wipe(mac, sizeof mac);
}

/* The distinct term tags of a text. */
typedef struct tagset {
  const crypto_auth_hmacsha256_state *keyed;
  uint8_t (*tags)[TAG_LEN];
  size_t n, cap;
  int rc;
} tagset;

static int tagset_add(tagset *s, const uint8_t tag[TAG_LEN]) {
  if (s->n == s->cap) {
    if (s->cap == TERMS_MAX) return 1; /* the rest of a huge text is not indexed */
    size_t cap = s->cap ? s->cap * 4 : 64;
    if (cap > TERMS_MAX) cap = TERMS_MAX;
    uint8_t(*t)[TAG_LEN] = realloc(s->tags, cap * sizeof *t);
    if (t == NULL) {
      s->rc = WHISPER_ENOMEM;
      return 1;
    }
    s->tags = t;
    s->cap = cap;
  }
  memcpy(s->tags[s->n++], tag, TAG_LEN);
  return 0;
}

static int tagset_token(void *arg, const uint8_t *tok, size_t len, int kind) {
  tagset *s = arg;
  uint8_t tag[TAG_LEN];
  (void)kind;
  term_tag(s->keyed, 0x00, tok, len, tag);
  return tagset_add(s, tag);
}

static int tag_cmp(const void *a, const void *b) { return memcmp(a, b, TAG_LEN); }

/* Sorts the tags and drops repeats. */
static void tagset_unique(tagset *s) {
  if (s->n < 2) return;
  qsort(s->tags, s->n, TAG_LEN, tag_cmp);
  size_t m = 1;
  for (size_t i = 1; i < s->n; i++)
    if (memcmp(s->tags[i], s->tags[m - 1], TAG_LEN) != 0) memcpy(s->tags[m++], s->tags[i], TAG_LEN);
  s->n = m;
}

/* --- postings ---------------------------------------------------------------------------- */

/* Puts (add) or deletes the postings of a text: the message with tag
 * `msg` at (conv_tag, sort_key), time `ts`, in conversation `conv`. */
static int postings(whisper_ctx *ctx, const crypto_auth_hmacsha256_state *keyed,
                    const uint8_t conv_tag[TAG_LEN], const uint8_t msg[TAG_LEN],
                    uint64_t sort_key, uint64_t ts, const char *conv, const uint8_t *text,
                    size_t len, int add) {
  tagset s = {keyed, NULL, 0, 0, WHISPER_OK};
  wh_fold_tokens(text, len, tagset_token, &s);
  if (s.rc != WHISPER_OK) {
    free(s.tags);
    return wh_fail(ctx, s.rc, "out of memory");
  }
  if (s.n == 0) return WHISPER_OK; /* no word: nothing to find it by */
  uint8_t conv_term[TAG_LEN];
  term_tag(keyed, 0x01, (const uint8_t *)conv, strlen(conv), conv_term);
  /* the conversation's term goes in even when a huge text filled the set */
  if (s.n == s.cap && s.cap == TERMS_MAX) memcpy(s.tags[s.n - 1], conv_term, TAG_LEN);
  else tagset_add(&s, conv_term);
  if (s.rc != WHISPER_OK) {
    free(s.tags);
    return wh_fail(ctx, s.rc, "out of memory");
  }
  tagset_unique(&s);
  uint8_t key[PKEY_LEN], val[PVAL_LEN];
  be64(key + TAG_LEN, ts);
  memcpy(key + TAG_LEN + 8, msg, TAG_LEN);
  memcpy(val, conv_tag, TAG_LEN);
  be64(val + TAG_LEN, sort_key);
  int rc = WHISPER_OK;
  for (size_t i = 0; i < s.n && rc == WHISPER_OK; i++) {
    memcpy(key, s.tags[i], TAG_LEN);
    rc = add ? wh_put(ctx, WHISPER_REC_SEARCH, key, sizeof key, val, sizeof val)
             : wh_del(ctx, WHISPER_REC_SEARCH, key, sizeof key);
  }
  free(s.tags);
  return rc;
}

static int check_doc(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text,
                     size_t len) {
  if (m == NULL || m->conversation == NULL || m->conversation[0] == 0 ||
      strlen(m->conversation) > WH_NAME_MAX || m->id == NULL || m->id_len == 0 ||
      m->id_len > WHISPER_MESSAGE_ID_MAX || (text == NULL && len))
    return wh_fail(ctx, WHISPER_EINVAL, "search: a message needs a conversation and an id");
  return WHISPER_OK;
}

static int doc_op(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text, size_t len,
                  int add) {
  uint8_t conv_tag[TAG_LEN], msg[TAG_LEN];
  crypto_auth_hmacsha256_state keyed;
  int rc = check_doc(ctx, m, text, len);
  if (rc == WHISPER_OK) rc = need_scan(ctx);
  if (rc == WHISPER_OK) rc = wh_history_tags(ctx, m->conversation, m->id, m->id_len, conv_tag, msg);
  if (rc == WHISPER_OK) rc = search_mac(ctx, &keyed);
  if (rc != WHISPER_OK) return rc;
  rc = postings(ctx, &keyed, conv_tag, msg, m->sort_key, m->timestamp_ms, m->conversation, text,
                len, add);
  wh_wipe(&keyed, sizeof keyed);
  return rc;
}

int wh_search_add(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text, size_t len) {
  return doc_op(ctx, m, text, len, 1);
}

int wh_search_remove(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text,
                     size_t len) {
  return doc_op(ctx, m, text, len, 0);
}

/* The postings of a stored history row (key, entry bytes): add or remove.
 * An entry that does not decode has none (it could not be found anyway),
 * nor has a hidden one (an operation on another message, never shown). */
static int row_op(whisper_ctx *ctx, const crypto_auth_hmacsha256_state *keyed,
                  const uint8_t hkey[HKEY_LEN], const uint8_t *v, size_t n, int add) {
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(&wh_pb_alloc, n, v);
  int rc = WHISPER_OK;
  uint64_t sort_key = 0; /* where the row is */
  for (int i = 0; i < 8; i++) sort_key = sort_key << 8 | hkey[TAG_LEN + i];
  if (e && e->conversation && e->conversation[0] && !e->hidden)
    rc = postings(ctx, keyed, hkey, hkey + TAG_LEN + 8, sort_key, e->timestamp, e->conversation,
                  e->body.data, e->body.len, add);
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

int wh_search_forget(whisper_ctx *ctx, const uint8_t hkey[HKEY_LEN]) {
  whisper_buf *b = NULL;
  crypto_auth_hmacsha256_state keyed;
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc == WHISPER_OK) rc = search_mac(ctx, &keyed);
  if (rc == WHISPER_OK) {
    rc = row_op(ctx, &keyed, hkey, b->data, b->len, 0);
    wh_wipe(&keyed, sizeof keyed);
  }
  whisper_buf_free(b);
  return rc;
}

/* --- indexing history kept before ---------------------------------------------------------- */

typedef struct row {
  whisper_buf *key, *value;
} row;

typedef struct rows {
  row r[BUILD_CHUNK];
  size_t n;
  int rc;
} rows;

static int rows_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t len) {
  rows *rs = arg;
  row *r = &rs->r[rs->n];
  if (rs->n == BUILD_CHUNK) return 1;
  r->key = whisper_buf_new(key, key_len);
  r->value = r->key ? whisper_buf_new(value, len) : NULL;
  if (r->value == NULL) {
    whisper_buf_free(r->key);
    rs->rc = WHISPER_ENOMEM;
    return 1;
  }
  rs->n++;
  return 0;
}

static void rows_free(rows *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    whisper_buf_free(rs->r[i].key);
    whisper_buf_free(rs->r[i].value);
  }
  rs->n = 0;
}

/* Walks every row of an ordered kind in key order, BUILD_CHUNK at a time
 * (a store may not be written while it scans), calling fn on each chunk. */
static int walk(whisper_ctx *ctx, int kind, rows *rs,
                int (*fn)(whisper_ctx *, rows *, void *), void *arg) {
  whisper_buf *bound = NULL;
  int rc = WHISPER_OK, more = 1;
  while (rc == WHISPER_OK && more) {
    rs->n = 0;
    rs->rc = WHISPER_OK;
    rc = ctx->store->ops.scan(ctx->store->user, kind, NULL, 0, bound ? bound->data : NULL,
                              bound ? bound->len : 0, 0, BUILD_CHUNK, rows_fn, rs);
    if (rc == WHISPER_OK) rc = rs->rc;
    if (rc != WHISPER_OK)
      rc = wh_fail(ctx, rc, "search: reading the store failed (%s)", whisper_strerror(rc));
    more = rc == WHISPER_OK && rs->n == BUILD_CHUNK;
    if (rc == WHISPER_OK && rs->n) rc = fn(ctx, rs, arg);
    if (rc == WHISPER_OK && more) { /* the next chunk starts above the last row */
      whisper_buf_free(bound);
      bound = rs->r[rs->n - 1].key;
      rs->r[rs->n - 1].key = NULL;
    }
    rows_free(rs);
  }
  whisper_buf_free(bound);
  return rc;
}

static int index_rows(whisper_ctx *ctx, rows *rs, void *arg) {
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rs->n && rc == WHISPER_OK; i++)
    if (rs->r[i].key->len == HKEY_LEN) /* (not a key history makes: nothing to index) */
      rc = row_op(ctx, arg, rs->r[i].key->data, rs->r[i].value->data, rs->r[i].value->len, 1);
  return rc;
}

static int drop_rows(whisper_ctx *ctx, rows *rs, void *arg) {
  (void)arg;
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rs->n && rc == WHISPER_OK; i++)
    rc = wh_del(ctx, WHISPER_REC_SEARCH, rs->r[i].key->data, rs->r[i].key->len);
  return rc;
}

/* Indexes every history row, then marks the index complete. */
static int index_all(whisper_ctx *ctx) {
  crypto_auth_hmacsha256_state keyed;
  rows *rs = calloc(1, sizeof *rs);
  if (rs == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  int rc = search_mac(ctx, &keyed);
  if (rc == WHISPER_OK) rc = walk(ctx, WHISPER_REC_HISTORY, rs, index_rows, &keyed);
  static const uint8_t done = 1;
  if (rc == WHISPER_OK)
    rc = wh_put(ctx, WHISPER_REC_META, (const uint8_t *)META_INDEX, strlen(META_INDEX), &done, 1);
  wh_wipe(&keyed, sizeof keyed);
  free(rs);
  return rc;
}

/* 1 if the index is marked complete, 0 if not, else an error. */
static int index_done(whisper_ctx *ctx) {
  whisper_buf *b = NULL;
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)META_INDEX, strlen(META_INDEX), &b);
  whisper_buf_free(b);
  if (rc == WHISPER_ENOTFOUND) return 0;
  return rc == WHISPER_OK ? 1 : rc;
}

int whisper_search_prepare(whisper_ctx *ctx) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = index_done(ctx);
  if (rc == 0) rc = index_all(ctx);
  rc = wh_finish(ctx, rc == 1 ? WHISPER_OK : rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_search_rebuild(whisper_ctx *ctx) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  rows *rs = calloc(1, sizeof *rs);
  if (rs == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  if ((rc = wh_begin(ctx)) != WHISPER_OK) {
    free(rs);
    return rc;
  }
  rc = walk(ctx, WHISPER_REC_SEARCH, rs, drop_rows, NULL);
  free(rs);
  if (rc == WHISPER_OK) rc = index_all(ctx);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* --- queries ------------------------------------------------------------------------------- */

/* A query split into tokens: its words (distinct), its runs of clusters
 * (each a sequence with KMP's failure function over whole clusters), and
 * the distinct tokens to look up. */
typedef struct qtok {
  uint8_t text[WH_TOK_MAX];
  size_t len;
  int kind;
} qtok;

typedef struct query {
  qtok tok[WHISPER_SEARCH_WORDS_MAX];
  size_t n;
  int too_many;
  size_t words[WHISPER_SEARCH_WORDS_MAX], nwords;   /* tok indices of distinct words */
  size_t run_at[WHISPER_SEARCH_WORDS_MAX], nruns;   /* first tok of each run */
  size_t run_len[WHISPER_SEARCH_WORDS_MAX];
  size_t fail[WHISPER_SEARCH_WORDS_MAX];            /* per tok, within its run */
} query;

static int qtok_eq(const qtok *a, const uint8_t *t, size_t n) {
  return a->len == n && memcmp(a->text, t, n) == 0;
}

static int query_token(void *arg, const uint8_t *tok, size_t len, int kind) {
  query *q = arg;
  if (q->n == WHISPER_SEARCH_WORDS_MAX) {
    q->too_many = 1;
    return 1;
  }
  qtok *t = &q->tok[q->n++];
  memcpy(t->text, tok, len);
  t->len = len;
  t->kind = kind;
  return 0;
}

static void query_shape(query *q) {
  for (size_t i = 0; i < q->n; i++) {
    qtok *t = &q->tok[i];
    if (t->kind == WH_TOK_WORD) {
      int seen = 0;
      for (size_t j = 0; j < q->nwords && !seen; j++)
        seen = qtok_eq(&q->tok[q->words[j]], t->text, t->len);
      if (!seen) q->words[q->nwords++] = i;
      continue;
    }
    if (t->kind == WH_TOK_CLUSTER || q->nruns == 0 || i == 0 || q->tok[i - 1].kind == WH_TOK_WORD) {
      q->run_at[q->nruns] = i;
      q->run_len[q->nruns++] = 0;
    }
    q->run_len[q->nruns - 1]++;
  }
  for (size_t r = 0; r < q->nruns; r++) { /* KMP's failure function over clusters */
    const qtok *p = &q->tok[q->run_at[r]];
    size_t *f = &q->fail[q->run_at[r]], k = 0;
    f[0] = 0;
    for (size_t i = 1; i < q->run_len[r]; i++) {
      while (k > 0 && !qtok_eq(&p[k], p[i].text, p[i].len)) k = f[k - 1];
      if (qtok_eq(&p[k], p[i].text, p[i].len)) k++;
      f[i] = k;
    }
  }
}

/* Does a text hold every word and run of the query? */
typedef struct match {
  const query *q;
  uint8_t word_found[WHISPER_SEARCH_WORDS_MAX];
  uint8_t run_found[WHISPER_SEARCH_WORDS_MAX];
  size_t run_state[WHISPER_SEARCH_WORDS_MAX];
  size_t left; /* words and runs not found yet */
} match;

static int match_token(void *arg, const uint8_t *tok, size_t len, int kind) {
  match *m = arg;
  const query *q = m->q;
  if (kind == WH_TOK_WORD) {
    for (size_t i = 0; i < q->nwords; i++)
      if (!m->word_found[i] && qtok_eq(&q->tok[q->words[i]], tok, len)) {
        m->word_found[i] = 1;
        m->left--;
      }
    return m->left == 0;
  }
  for (size_t r = 0; r < q->nruns; r++) {
    if (m->run_found[r]) continue;
    const qtok *p = &q->tok[q->run_at[r]];
    const size_t *f = &q->fail[q->run_at[r]];
    size_t k = kind == WH_TOK_CLUSTER ? 0 : m->run_state[r];
    while (k > 0 && !qtok_eq(&p[k], tok, len)) k = f[k - 1];
    if (qtok_eq(&p[k], tok, len)) k++;
    if (k == q->run_len[r]) {
      m->run_found[r] = 1;
      m->left--;
    }
    m->run_state[r] = k;
  }
  return m->left == 0;
}

static int text_matches(const query *q, const uint8_t *text, size_t len) {
  match *m = calloc(1, sizeof *m);
  if (m == NULL) return -1;
  m->q = q;
  m->left = q->nwords + q->nruns;
  wh_fold_tokens(text, len, match_token, m);
  int ok = m->left == 0;
  free(m);
  return ok;
}

/* One term's postings, read SEEK_MIN..SEEK_MAX at a time, newest first. */
typedef struct cursor {
  uint8_t tag[TAG_LEN];
  uint8_t (*sfx)[SFX_LEN];
  uint8_t (*val)[PVAL_LEN];
  size_t n, pos, cap, chunk;
  int ended;     /* the last read got fewer than it asked: nothing is below */
  int took_last; /* the last posting read was used: read more next time */
  int rc;
} cursor;

static int cursor_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t len) {
  cursor *c = arg;
  if (c->n == c->cap) return 1;
  if (key_len != PKEY_LEN || len != PVAL_LEN) {
    c->rc = WHISPER_ECORRUPT;
    return 1;
  }
  memcpy(c->sfx[c->n], key + TAG_LEN, SFX_LEN);
  memcpy(c->val[c->n], value, PVAL_LEN);
  c->n++;
  return 0;
}

/* The newest posting at or below `target`: 1 (at c->pos), 0 if none, or
 * an error. */
static int seek(whisper_ctx *ctx, cursor *c, const uint8_t target[SFX_LEN]) {
  while (c->pos < c->n && memcmp(c->sfx[c->pos], target, SFX_LEN) > 0) c->pos++;
  if (c->pos < c->n) {
    if (c->pos == c->n - 1) c->took_last = 1;
    return 1;
  }
  if (c->ended) return 0; /* (targets only go down) */
  /* read on from target (inclusive: the bound is target || 0x00) */
  if (c->n) c->chunk = c->took_last ? c->chunk * 2 : c->chunk / 2;
  if (c->chunk < SEEK_MIN) c->chunk = SEEK_MIN;
  if (c->chunk > SEEK_MAX) c->chunk = SEEK_MAX;
  uint8_t bound[PKEY_LEN + 1];
  memcpy(bound, c->tag, TAG_LEN);
  memcpy(bound + TAG_LEN, target, SFX_LEN);
  bound[PKEY_LEN] = 0;
  c->n = c->pos = 0;
  c->took_last = 0;
  c->rc = WHISPER_OK;
  int rc = ctx->store->ops.scan(ctx->store->user, WHISPER_REC_SEARCH, c->tag, TAG_LEN, bound,
                                sizeof bound, 1, c->chunk, cursor_fn, c);
  if (rc == WHISPER_OK) rc = c->rc;
  if (rc != WHISPER_OK)
    return wh_fail(ctx, rc, rc == WHISPER_ECORRUPT ? "search: an index row is corrupt"
                                                   : "search: reading the index failed (%s)",
                   whisper_strerror(rc));
  c->ended = c->n < c->chunk;
  if (c->n == 0) return 0;
  if (c->n == 1) c->took_last = 1;
  return 1;
}

/* One step below: 0 if there is nothing below. */
static int sfx_dec(uint8_t s[SFX_LEN]) {
  for (int i = SFX_LEN - 1; i >= 0; i--)
    if (s[i]--) return 1;
  return 0;
}

/* Reads the hit at `sfx` (its posting value `val`) and adds it to the page
 * if it still holds the query: 1 added, 0 skipped, or an error. */
static int hit(whisper_ctx *ctx, const query *q, const char *conversation,
               const uint8_t sfx[SFX_LEN], const uint8_t val[PVAL_LEN], whisper_page *page) {
  uint8_t hkey[HKEY_LEN];
  whisper_buf *b = NULL;
  memcpy(hkey, val, PVAL_LEN);
  memcpy(hkey + PVAL_LEN, sfx + 8, TAG_LEN);
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) { /* moved (an outgoing message, sent): its index knows */
    rc = wh_get(ctx, WHISPER_REC_MESSAGE_INDEX, sfx + 8, TAG_LEN, &b);
    Whisper__Store__HistoryRef *r = NULL;
    if (rc == WHISPER_OK) r = whisper__store__history_ref__unpack(&wh_pb_alloc, b->len, b->data);
    whisper_buf_free(b);
    b = NULL;
    if (r && r->history_key.len == HKEY_LEN &&
        memcmp(r->history_key.data + PVAL_LEN, sfx + 8, TAG_LEN) == 0)
      rc = wh_get(ctx, WHISPER_REC_HISTORY, r->history_key.data, HKEY_LEN, &b);
    else if (rc == WHISPER_OK)
      rc = WHISPER_ENOTFOUND; /* a ref that does not lead here: not this message */
    if (r) whisper__store__history_ref__free_unpacked(r, &wh_pb_alloc);
  }
  if (rc == WHISPER_ENOTFOUND) return 0; /* gone: a stale posting */
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryEntry *e =
      whisper__store__history_entry__unpack(&wh_pb_alloc, b->len, b->data);
  int keep = 0;
  uint64_t ts = 0;
  for (int i = 0; i < 8; i++) ts = ts << 8 | sfx[i];
  if (e && e->timestamp == ts && e->conversation && !e->hidden &&
      (conversation == NULL || strcmp(e->conversation, conversation) == 0))
    keep = text_matches(q, e->body.data, e->body.len);
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  size_t before = whisper_page_count(page);
  if (e == NULL) rc = wh_fail(ctx, WHISPER_ECORRUPT, "a history entry is corrupt");
  else if (keep < 0) rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  else if (keep) rc = wh_page_add(ctx, page, b->data, b->len);
  whisper_buf_free(b);
  /* (a hit counts only if the page took it: it leaves out what it never shows) */
  return rc == WHISPER_OK ? whisper_page_count(page) > before : rc;
}

/* The leapfrog join of the cursors from `target` down, verifying each
 * message they all hold, until the page has `limit`. */
static int run_query(whisper_ctx *ctx, const query *q, const char *conversation, cursor *cur,
                     size_t nterms, uint8_t target[SFX_LEN], size_t limit, whisper_page *page) {
  size_t found = 0;
  while (found < limit) {
    size_t agree = 0, i = 0;
    while (agree < nterms) {
      int rc = seek(ctx, &cur[i], target);
      if (rc <= 0) return rc;
      const uint8_t *s = cur[i].sfx[cur[i].pos];
      if (memcmp(s, target, SFX_LEN) < 0) {
        memcpy(target, s, SFX_LEN);
        agree = 1;
      } else {
        agree++;
      }
      i = (i + 1) % nterms;
    }
    int rc = hit(ctx, q, conversation, target, cur[0].val[cur[0].pos], page);
    if (rc < 0) return rc;
    found += (size_t)rc;
    if (!sfx_dec(target)) return WHISPER_OK;
  }
  return WHISPER_OK;
}

static int check_query(whisper_ctx *ctx, const char *query_text, const char *conversation,
                       const whisper_message_t *after, size_t limit, query *q) {
  if (query_text == NULL) return wh_fail(ctx, WHISPER_EINVAL, "query is NULL");
  size_t qlen = strlen(query_text);
  if (qlen == 0) return wh_fail(ctx, WHISPER_EINVAL, "the query is empty");
  if (qlen > WHISPER_SEARCH_QUERY_MAX)
    return wh_fail(ctx, WHISPER_EINVAL, "the query is longer than %d bytes",
                   WHISPER_SEARCH_QUERY_MAX);
  if (!wh_utf8_valid((const uint8_t *)query_text, qlen))
    return wh_fail(ctx, WHISPER_EINVAL, "the query is not UTF-8");
  if (limit == 0 || limit > WHISPER_SEARCH_LIMIT_MAX)
    return wh_fail(ctx, WHISPER_EINVAL, "limit must be 1 to %d", WHISPER_SEARCH_LIMIT_MAX);
  if (conversation && (conversation[0] == 0 || strlen(conversation) > WH_NAME_MAX))
    return wh_fail(ctx, WHISPER_EINVAL, "bad conversation");
  if (after && (after->conversation == NULL || after->conversation[0] == 0 ||
                strlen(after->conversation) > WH_NAME_MAX || after->id == NULL ||
                after->id_len == 0 || after->id_len > WHISPER_MESSAGE_ID_MAX))
    return wh_fail(ctx, WHISPER_EINVAL, "bad cursor: pass the last message of the previous page");
  wh_fold_tokens((const uint8_t *)query_text, qlen, query_token, q);
  if (q->too_many)
    return wh_fail(ctx, WHISPER_EINVAL, "the query has more than %d words",
                   WHISPER_SEARCH_WORDS_MAX);
  if (q->n == 0) return wh_fail(ctx, WHISPER_EINVAL, "the query has no word");
  query_shape(q);
  return WHISPER_OK;
}

/* Longer tokens first (rarer, as a rule): the ones looked up. */
static int by_length(const void *a, const void *b) {
  const qtok *x = *(const qtok *const *)a, *y = *(const qtok *const *)b;
  return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static int search_in_txn(whisper_ctx *ctx, const query *q, const char *conversation,
                         const whisper_message_t *after, size_t limit, whisper_page *page) {
  crypto_auth_hmacsha256_state keyed;
  uint8_t target[SFX_LEN], conv_tag[TAG_LEN];
  const qtok *pick[WHISPER_SEARCH_WORDS_MAX];
  size_t np = 0;
  cursor *cur = calloc(LOOKUP_MAX + 1, sizeof *cur);
  if (cur == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  int rc = search_mac(ctx, &keyed);
  memset(target, 0xFF, sizeof target);
  if (rc == WHISPER_OK && after) {
    be64(target, after->timestamp_ms);
    rc = wh_history_tags(ctx, after->conversation, after->id, after->id_len, conv_tag,
                         target + 8);
    if (rc == WHISPER_OK && !sfx_dec(target)) rc = 1; /* nothing is older */
  }
  /* the distinct tokens, longest first; at most LOOKUP_MAX of them */
  for (size_t i = 0; i < q->n; i++) {
    int seen = 0;
    for (size_t j = 0; j < np && !seen; j++) seen = qtok_eq(pick[j], q->tok[i].text, q->tok[i].len);
    if (!seen) pick[np++] = &q->tok[i];
  }
  qsort(pick, np, sizeof *pick, by_length);
  size_t nterms = np < LOOKUP_MAX ? np : LOOKUP_MAX;
  for (size_t i = 0; i < nterms; i++)
    term_tag(&keyed, 0x00, pick[i]->text, pick[i]->len, cur[i].tag);
  if (conversation)
    term_tag(&keyed, 0x01, (const uint8_t *)conversation, strlen(conversation), cur[nterms++].tag);
  for (size_t i = 0; rc == WHISPER_OK && i < nterms; i++) {
    cur[i].cap = SEEK_MAX;
    cur[i].chunk = SEEK_MIN * 2;
    if ((cur[i].sfx = malloc(SEEK_MAX * sizeof *cur[i].sfx)) == NULL ||
        (cur[i].val = malloc(SEEK_MAX * sizeof *cur[i].val)) == NULL)
      rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  if (rc == WHISPER_OK) rc = run_query(ctx, q, conversation, cur, nterms, target, limit, page);
  if (rc == 1) rc = WHISPER_OK;
  for (size_t i = 0; i <= LOOKUP_MAX; i++) {
    free(cur[i].sfx);
    free(cur[i].val);
  }
  free(cur);
  wh_wipe(&keyed, sizeof keyed);
  return rc;
}

int whisper_search(whisper_ctx *ctx, const char *query_text, const char *conversation,
                   const whisper_message_t *after, size_t limit, whisper_page **out) {
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  *out = NULL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  query *q = calloc(1, sizeof *q);
  if (q == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  rc = check_query(ctx, query_text, conversation, after, limit, q);
  if (rc == WHISPER_OK) rc = whisper_search_prepare(ctx);
  whisper_page *page = NULL;
  if (rc == WHISPER_OK && (page = wh_page_new()) == NULL)
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  if (rc == WHISPER_OK && (rc = wh_begin(ctx)) == WHISPER_OK) {
    rc = search_in_txn(ctx, q, conversation, after, limit, page);
    rc = wh_finish(ctx, rc); /* read-only; the salt may have been made */
  }
  wh_wipe(q, sizeof *q);
  free(q);
  if (rc != WHISPER_OK) {
    whisper_page_free(page);
    return rc;
  }
  *out = page;
  return wh_ok(ctx);
}

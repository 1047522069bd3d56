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
 *   waiting row       = a SEARCH row under the reserved term of 16 zero bytes:
 *                       a message stored but not indexed yet (its key and value
 *                       as a posting's, the value where history kept it then)
 *   META search_index = 0x01 once every message of history is indexed
 *
 * Indexing is deferred. Storing a message (wh_search_queue(), in history's
 * transaction) writes one waiting row, appended in time order: nothing is
 * lost on a crash, and a burst of messages pays one row each, not one per
 * word at random places of the b-tree. The index catches up (catch_up())
 * before every search, in whisper_search_prepare() (an app's idle time) and
 * in wh_search_index_some() (the client engine, a few at a time): each
 * waiting message's entry is read from history as it is then (found where
 * the row says, else through the message index: an outgoing message that
 * whisper_history_sent() moved), its postings written, its row deleted; an
 * entry that is gone, hidden (an operation) or deleted is not indexed.
 *
 * A message has one posting per distinct token (fold.h) and one under its
 * conversation's term, so a search in one conversation is one more term
 * of the intersection. The message tag is history's (make_tags), so a hit
 * finds its entry at (conversation tag, sort key, message tag), or through
 * the message index. Nothing in a key is a word or an unkeyed hash of one;
 * the store seals the values.
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
#include <stdint.h>
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
#define CATCHUP_TXN 8192           /* waiting messages indexed per transaction by prepare() */
#define BATCH_MAX 65536            /* postings sorted and written at a time (64 B each) */

static const char META_INDEX[] = "search_index";
static const uint8_t WAIT_TERM[TAG_LEN]; /* the reserved term of waiting rows: zeros */
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
static int search_mac(whisper_ctx *ctx, wh_hmac_ctx *keyed) {
  uint8_t salt[TAG_LEN], key[32];
  int rc = wh_history_salt(ctx, salt);
  if (rc != WHISPER_OK) return rc;
  wh_hkdf(key, sizeof key, NULL, 0, salt, sizeof salt, KEY_INFO);
  if (wh_hmac_init(keyed, key, sizeof key) != 0) rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  wh_wipe(salt, sizeof salt);
  wh_wipe(key, sizeof key);
  return rc;
}

static void term_tag(wh_hmac_ctx *keyed, uint8_t domain, const uint8_t *p, size_t n,
                     uint8_t out[TAG_LEN]) {
  uint8_t mac[32];
  /* (OpenSSL fails here only on a broken context: the tag is then random-looking
   * garbage that matches nothing, never a weaker tag) */
  if (wh_hmac_update(keyed, &domain, 1) != 0 || wh_hmac_update(keyed, p, n) != 0 ||
      wh_hmac_final(keyed, mac) != 0)
    memset(mac, 0, sizeof mac);
  memcpy(out, mac, TAG_LEN);
  wh_wipe(mac, sizeof mac);
}

/* The distinct term tags of a text. */
typedef struct tagset {
  wh_hmac_ctx *keyed;
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

/* Postings on their way in, sorted by key before they are written, so
 * that those that share a term (and, as time goes on, its last page of
 * the store's b-tree) go in together: the index catching up on many
 * messages writes each page it touches once, not once per message. */
typedef struct batch {
  uint8_t (*row)[PKEY_LEN + PVAL_LEN];
  size_t n, cap;
} batch;

static int row_cmp(const void *a, const void *b) { return memcmp(a, b, PKEY_LEN); }

static int batch_flush(whisper_ctx *ctx, batch *b) {
  int rc = WHISPER_OK;
  if (b->n > 1) qsort(b->row, b->n, sizeof *b->row, row_cmp);
  for (size_t i = 0; i < b->n && rc == WHISPER_OK; i++)
    rc = wh_put(ctx, WHISPER_REC_SEARCH, b->row[i], PKEY_LEN, b->row[i] + PKEY_LEN, PVAL_LEN);
  b->n = 0;
  return rc;
}

static int batch_add(whisper_ctx *ctx, batch *b, const uint8_t key[PKEY_LEN],
                     const uint8_t val[PVAL_LEN]) {
  if (b->n == b->cap) {
    if (b->cap == BATCH_MAX) {
      int rc = batch_flush(ctx, b);
      if (rc != WHISPER_OK) return rc;
    } else {
      size_t cap = b->cap ? b->cap * 2 : 1024;
      if (cap > BATCH_MAX) cap = BATCH_MAX;
      uint8_t(*r)[PKEY_LEN + PVAL_LEN] = realloc(b->row, cap * sizeof *r);
      if (r == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
      b->row = r;
      b->cap = cap;
    }
  }
  memcpy(b->row[b->n], key, PKEY_LEN);
  memcpy(b->row[b->n++] + PKEY_LEN, val, PVAL_LEN);
  return WHISPER_OK;
}

static void batch_free(batch *b) {
  free(b->row);
  memset(b, 0, sizeof *b);
}

/* Puts (add) or deletes the postings of a text: the message with tag
 * `msg` at (conv_tag, sort_key), time `ts`, in conversation `conv`. Those
 * added go into `b` if it is not NULL (the caller flushes it). */
static int postings(whisper_ctx *ctx, wh_hmac_ctx *keyed,
                    const uint8_t conv_tag[TAG_LEN], const uint8_t msg[TAG_LEN],
                    uint64_t sort_key, uint64_t ts, const char *conv, const uint8_t *text,
                    size_t len, int add, batch *b) {
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
    rc = !add ? wh_del(ctx, WHISPER_REC_SEARCH, key, sizeof key)
         : b  ? batch_add(ctx, b, key, val)
              : wh_put(ctx, WHISPER_REC_SEARCH, key, sizeof key, val, sizeof val);
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

/* The waiting row's key of the message with tag `msg` and time `ts`. */
static void wait_key(uint8_t key[PKEY_LEN], uint64_t ts, const uint8_t msg[TAG_LEN]) {
  memcpy(key, WAIT_TERM, TAG_LEN);
  be64(key + TAG_LEN, ts);
  memcpy(key + TAG_LEN + 8, msg, TAG_LEN);
}

/* A message with text is stored (or its text changed): one waiting row, so
 * that the index catches up on it. Its text is read from history then. */
int wh_search_queue(whisper_ctx *ctx, const uint8_t hkey[HKEY_LEN], uint64_t ts) {
  uint8_t key[PKEY_LEN];
  wait_key(key, ts, hkey + PVAL_LEN);
  return wh_put(ctx, WHISPER_REC_SEARCH, key, sizeof key, hkey, PVAL_LEN);
}

/* The same from a message's fields; `text` only says whether it has any. */
int wh_search_add(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text, size_t len) {
  uint8_t hkey[HKEY_LEN];
  int rc = check_doc(ctx, m, text, len);
  if (rc == WHISPER_OK) rc = need_scan(ctx);
  if (rc != WHISPER_OK || len == 0) return rc; /* no text: nothing to find it by */
  rc = wh_history_tags(ctx, m->conversation, m->id, m->id_len, hkey, hkey + PVAL_LEN);
  if (rc != WHISPER_OK) return rc;
  be64(hkey + TAG_LEN, m->sort_key);
  return wh_search_queue(ctx, hkey, m->timestamp_ms);
}

/* The postings of `text` out (those that are there: a message not indexed
 * yet has none), and the message's waiting row. */
int wh_search_remove(whisper_ctx *ctx, const whisper_message_t *m, const uint8_t *text,
                     size_t len) {
  uint8_t conv_tag[TAG_LEN], msg[TAG_LEN], key[PKEY_LEN];
  wh_hmac_ctx keyed = {0};
  int rc = check_doc(ctx, m, text, len);
  if (rc == WHISPER_OK) rc = need_scan(ctx);
  if (rc == WHISPER_OK) rc = wh_history_tags(ctx, m->conversation, m->id, m->id_len, conv_tag, msg);
  if (rc != WHISPER_OK) return rc;
  wait_key(key, m->timestamp_ms, msg);
  if ((rc = wh_del(ctx, WHISPER_REC_SEARCH, key, sizeof key)) != WHISPER_OK) return rc;
  if ((rc = search_mac(ctx, &keyed)) != WHISPER_OK) return rc;
  rc = postings(ctx, &keyed, conv_tag, msg, m->sort_key, m->timestamp_ms, m->conversation, text,
                len, 0, NULL);
  wh_hmac_free(&keyed);
  return rc;
}

/* The postings of a stored history entry (at key hkey): add or remove.
 * Added only for a message that shows text: not for an entry that does not
 * decode (it could not be found anyway), nor a hidden one (an operation),
 * nor one deleted for everyone. */
static int entry_op(whisper_ctx *ctx, wh_hmac_ctx *keyed,
                    const uint8_t hkey[HKEY_LEN], const Whisper__Store__HistoryEntry *e, int add,
                    batch *b) {
  uint64_t sort_key = 0; /* where the row is */
  for (int i = 0; i < 8; i++) sort_key = sort_key << 8 | hkey[TAG_LEN + i];
  if (e == NULL || e->conversation == NULL || e->conversation[0] == 0 ||
      (add && (e->hidden || e->deleted)))
    return WHISPER_OK;
  return postings(ctx, keyed, hkey, hkey + TAG_LEN + 8, sort_key, e->timestamp, e->conversation,
                  e->body.data, e->body.len, add, b);
}

/* The postings of the entry bytes (v, n) at hkey into `b`. */
static int row_add(whisper_ctx *ctx, wh_hmac_ctx *keyed,
                   const uint8_t hkey[HKEY_LEN], const uint8_t *v, size_t n, batch *b) {
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(&wh_pb_alloc, n, v);
  int rc = entry_op(ctx, keyed, hkey, e, 1, b);
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

/* The entry at hkey is about to go: its postings out, and its waiting row. */
int wh_search_forget(whisper_ctx *ctx, const uint8_t hkey[HKEY_LEN]) {
  whisper_buf *b = NULL;
  wh_hmac_ctx keyed = {0};
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryEntry *e =
      whisper__store__history_entry__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (e == NULL) return WHISPER_OK; /* nothing known to remove (a waiting row finds it gone) */
  uint8_t key[PKEY_LEN];
  wait_key(key, e->timestamp, hkey + TAG_LEN + 8);
  rc = wh_del(ctx, WHISPER_REC_SEARCH, key, sizeof key);
  if (rc == WHISPER_OK) rc = search_mac(ctx, &keyed);
  if (rc == WHISPER_OK) {
    rc = entry_op(ctx, &keyed, hkey, e, 0, NULL);
    wh_hmac_free(&keyed);
  }
  whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

/* Where the message with tag `msg` is: first at `place` (conversation tag
 * || sort key: where it was when its row was written), else through the
 * message index (an outgoing message that sent() moved). WHISPER_OK (its
 * key in hkey, its entry's bytes in *b), WHISPER_ENOTFOUND (gone), or an
 * error. */
static int locate(whisper_ctx *ctx, const uint8_t place[PVAL_LEN], const uint8_t msg[TAG_LEN],
                  uint8_t hkey[HKEY_LEN], whisper_buf **b) {
  memcpy(hkey, place, PVAL_LEN);
  memcpy(hkey + PVAL_LEN, msg, TAG_LEN);
  *b = NULL;
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, b);
  if (rc != WHISPER_ENOTFOUND) return rc;
  whisper_buf *rb = NULL;
  rc = wh_get(ctx, WHISPER_REC_MESSAGE_INDEX, msg, TAG_LEN, &rb);
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryRef *r =
      whisper__store__history_ref__unpack(&wh_pb_alloc, rb->len, rb->data);
  whisper_buf_free(rb);
  if (r && r->history_key.len == HKEY_LEN &&
      memcmp(r->history_key.data + PVAL_LEN, msg, TAG_LEN) == 0) {
    memcpy(hkey, r->history_key.data, HKEY_LEN);
    rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, b);
  } else {
    rc = WHISPER_ENOTFOUND; /* a ref that does not lead here: not this message */
  }
  if (r) whisper__store__history_ref__free_unpacked(r, &wh_pb_alloc);
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

/* Walks every row of an ordered kind (under `prefix`) in key order,
 * BUILD_CHUNK at a time (a store may not be written while it scans),
 * calling fn on each chunk. */
static int walk(whisper_ctx *ctx, int kind, const uint8_t *prefix, size_t prefix_len, rows *rs,
                int (*fn)(whisper_ctx *, rows *, void *), void *arg) {
  whisper_buf *bound = NULL;
  int rc = WHISPER_OK, more = 1;
  while (rc == WHISPER_OK && more) {
    rs->n = 0;
    rs->rc = WHISPER_OK;
    rc = ctx->store->ops.scan(ctx->store->user, kind, prefix, prefix_len,
                              bound ? bound->data : NULL, bound ? bound->len : 0, 0, BUILD_CHUNK,
                              rows_fn, rs);
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

/* What indexes rows: the search key, and the postings on their way in. */
typedef struct indexer {
  wh_hmac_ctx keyed;
  batch b;
} indexer;

static int index_rows(whisper_ctx *ctx, rows *rs, void *arg) {
  indexer *ix = arg;
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rs->n && rc == WHISPER_OK; i++)
    if (rs->r[i].key->len == HKEY_LEN) /* (not a key history makes: nothing to index) */
      rc = row_add(ctx, &ix->keyed, rs->r[i].key->data, rs->r[i].value->data, rs->r[i].value->len,
                   &ix->b);
  return rc;
}

static int drop_rows(whisper_ctx *ctx, rows *rs, void *arg) {
  (void)arg;
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rs->n && rc == WHISPER_OK; i++)
    rc = wh_del(ctx, WHISPER_REC_SEARCH, rs->r[i].key->data, rs->r[i].key->len);
  return rc;
}

/* Indexes every history row, then marks the index complete: nothing waits
 * any more. */
static int index_all(whisper_ctx *ctx) {
  rows *rs = calloc(1, sizeof *rs);
  indexer *ix = calloc(1, sizeof *ix);
  int rc = rs && ix ? search_mac(ctx, &ix->keyed) : wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  if (rc == WHISPER_OK) rc = walk(ctx, WHISPER_REC_HISTORY, NULL, 0, rs, index_rows, ix);
  if (rc == WHISPER_OK) rc = batch_flush(ctx, &ix->b);
  if (rc == WHISPER_OK) rc = walk(ctx, WHISPER_REC_SEARCH, WAIT_TERM, TAG_LEN, rs, drop_rows, NULL);
  if (rc == WHISPER_OK) rc = wh_search_fresh(ctx); /* (the mark is the same) */
  if (ix) {
    batch_free(&ix->b);
    wh_hmac_free(&ix->keyed);
    wh_wipe(ix, sizeof *ix);
  }
  free(ix);
  free(rs);
  return rc;
}

int wh_search_fresh(whisper_ctx *ctx) {
  static const uint8_t done = 1;
  return wh_put(ctx, WHISPER_REC_META, (const uint8_t *)META_INDEX, strlen(META_INDEX), &done, 1);
}

/* 1 if the index is marked complete, 0 if not, else an error. */
static int index_done(whisper_ctx *ctx) {
  whisper_buf *b = NULL;
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)META_INDEX, strlen(META_INDEX), &b);
  whisper_buf_free(b);
  if (rc == WHISPER_ENOTFOUND) return 0;
  return rc == WHISPER_OK ? 1 : rc;
}

/* --- catching up: the waiting rows ------------------------------------------------------------ */

/* Indexes the message of one waiting row as history keeps it now (its
 * postings into ix's batch), then deletes the row. */
static int wait_one(whisper_ctx *ctx, indexer *ix, const row *w) {
  if (w->key->len != PKEY_LEN || w->value->len != PVAL_LEN)
    return wh_fail(ctx, WHISPER_ECORRUPT, "search: an index row is corrupt");
  uint8_t hkey[HKEY_LEN];
  whisper_buf *b = NULL;
  int rc = locate(ctx, w->value->data, w->key->data + TAG_LEN + 8, hkey, &b);
  if (rc == WHISPER_OK) rc = row_add(ctx, &ix->keyed, hkey, b->data, b->len, &ix->b);
  else if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK; /* gone: nothing to index */
  whisper_buf_free(b);
  if (rc == WHISPER_OK) rc = wh_del(ctx, WHISPER_REC_SEARCH, w->key->data, PKEY_LEN);
  return rc;
}

/* Indexes up to `max` waiting messages, newest first, in the caller's
 * transaction; *more (if not NULL) tells whether any still wait. */
static int catch_up(whisper_ctx *ctx, size_t max, int *more) {
  whisper_buf *bound = NULL;
  int rc = WHISPER_OK, have_key = 0;
  size_t done = 0;
  if (more) *more = 0;
  rows *rs = calloc(1, sizeof *rs);
  indexer *ix = calloc(1, sizeof *ix);
  if (rs == NULL || ix == NULL) rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  while (rc == WHISPER_OK) {
    size_t want = max - done;
    int peek = want == 0; /* all done that may be: does any still wait? */
    if (peek) want = 1;
    else if (want > BUILD_CHUNK) want = BUILD_CHUNK;
    rs->n = 0;
    rs->rc = WHISPER_OK;
    rc = ctx->store->ops.scan(ctx->store->user, WHISPER_REC_SEARCH, WAIT_TERM, TAG_LEN,
                              bound ? bound->data : NULL, bound ? bound->len : 0, 1, want, rows_fn,
                              rs);
    if (rc == WHISPER_OK) rc = rs->rc;
    if (rc != WHISPER_OK) {
      rc = wh_fail(ctx, rc, "search: reading the index failed (%s)", whisper_strerror(rc));
      break;
    }
    if (peek) {
      if (more) *more = rs->n > 0;
      break;
    }
    if (rs->n && !have_key) have_key = (rc = search_mac(ctx, &ix->keyed)) == WHISPER_OK;
    for (size_t i = 0; i < rs->n && rc == WHISPER_OK; i++) rc = wait_one(ctx, ix, &rs->r[i]);
    done += rs->n;
    if (rs->n < want) break; /* none below */
    whisper_buf_free(bound); /* the next chunk starts below the last row */
    bound = rs->r[rs->n - 1].key;
    rs->r[rs->n - 1].key = NULL;
    rows_free(rs);
  }
  if (rc == WHISPER_OK && ix->b.n) rc = batch_flush(ctx, &ix->b);
  if (rs) rows_free(rs);
  free(rs);
  if (ix) {
    batch_free(&ix->b);
    wh_hmac_free(&ix->keyed);
    wh_wipe(ix, sizeof *ix);
  }
  free(ix);
  whisper_buf_free(bound);
  return rc;
}

/* One transaction: older history indexed if it is not yet (`migrate`;
 * else nothing is done until it is), then up to `max` waiting messages. */
static int prepare_step(whisper_ctx *ctx, size_t max, int migrate, int *more) {
  *more = 0;
  int rc = wh_begin(ctx);
  if (rc != WHISPER_OK) return rc;
  int done = index_done(ctx);
  rc = done < 0 ? done : WHISPER_OK;
  if (rc == WHISPER_OK && !done && migrate) {
    rc = index_all(ctx);
    done = 1;
  }
  if (rc == WHISPER_OK && done) rc = catch_up(ctx, max, more);
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) *more = 0;
  return rc;
}

int wh_search_index_some(whisper_ctx *ctx, size_t max, int *more) {
  *more = 0;
  int rc = need_scan(ctx);
  return rc == WHISPER_OK ? prepare_step(ctx, max, 0, more) : rc;
}

int whisper_search_prepare(whisper_ctx *ctx) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = need_scan(ctx), more = 1;
  while (rc == WHISPER_OK && more) rc = prepare_step(ctx, CATCHUP_TXN, 1, &more);
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
  rc = walk(ctx, WHISPER_REC_SEARCH, NULL, 0, rs, drop_rows, NULL);
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
  int rc = locate(ctx, val, sfx + 8, hkey, &b);
  if (rc == WHISPER_ENOTFOUND) return 0; /* gone: a stale posting */
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryEntry *e =
      whisper__store__history_entry__unpack(&wh_pb_alloc, b->len, b->data);
  int keep = 0;
  uint64_t ts = 0;
  for (int i = 0; i < 8; i++) ts = ts << 8 | sfx[i];
  if (e && e->timestamp == ts && e->conversation && !e->hidden && !e->deleted &&
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
  wh_hmac_ctx keyed = {0};
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
  wh_hmac_free(&keyed);
  return rc;
}

int whisper_search(whisper_ctx *ctx, const char *query_text, const char *conversation,
                   const whisper_message_t *in_after, size_t limit, whisper_page **out) {
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  *out = NULL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  /* a versioned struct: the fields both sides have */
  whisper_message_t after_copy, *after = NULL;
  if (in_after) {
    if ((rc = wh_message_in(ctx, in_after, "after", &after_copy)) != WHISPER_OK) return rc;
    after = &after_copy;
  }
  query *q = calloc(1, sizeof *q);
  if (q == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  rc = check_query(ctx, query_text, conversation, after, limit, q);
  int more = 0; /* older history indexed once (its own transaction, kept) */
  if (rc == WHISPER_OK) rc = prepare_step(ctx, 0, 1, &more);
  whisper_page *page = NULL;
  if (rc == WHISPER_OK && (page = wh_page_new()) == NULL)
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  if (rc == WHISPER_OK && (rc = wh_begin(ctx)) == WHISPER_OK) {
    /* what waits is indexed in the search's own transaction: a search
     * that fails changes nothing */
    rc = catch_up(ctx, SIZE_MAX, NULL);
    if (rc == WHISPER_OK) rc = search_in_txn(ctx, q, conversation, after, limit, page);
    rc = wh_finish(ctx, rc); /* the salt may have been made too */
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

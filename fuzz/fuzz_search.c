/*
 * fuzz_search: search's tokeniser and folder on arbitrary bytes, and
 * whisper_search over a fixed history with arbitrary queries, planted
 * index rows and planted history entries.
 *
 * The first byte picks (& 3):
 *  0 TEXT: the rest split by wh_fold_tokens(): every token is 1..WH_TOK_MAX
 *    bytes of valid UTF-8 with a known kind, a run never starts with a
 *    NEXT; the tokens made into text again (the clusters of a run side by
 *    side, the rest apart) split into the same tokens (folding is
 *    idempotent); wh_utf8_valid() agrees with a reference decoder.
 *  1 QUERY: bits 2-4 of the first byte are the page size - 1, bits 5-7 the
 *    conversation (none, bob, grp, carol, nobody; 5-7 none); the rest (up
 *    to a NUL) is a query on alice's history: the code is EINVAL exactly
 *    when the query is empty, too long, not UTF-8, without a word or with
 *    too many, else OK; a page is exactly what a brute-force model finds
 *    (every history entry split and checked: the query's words among its
 *    words, each run of clusters inside one of its runs; newest first by
 *    time then message tag; in the conversation), then the page after its
 *    last message, again the model's; nothing is written.
 *  2 POSTING: byte 1 picks one of alice's index rows, byte 2 & 1 says
 *    whether to replace its key's place (time || message tag) by bytes 3..26;
 *    the rest is the row's value; planted, then a fixed set of queries:
 *    each gives OK or ECORRUPT, and an OK page holds only messages the
 *    model finds, in its order.
 *    With byte 2 & 2, a WAITING row instead (a message stored, not indexed
 *    yet): byte 1 picks a message of the corpus; byte 2 & 4 takes its
 *    postings out first (not indexed yet); its waiting row is planted
 *    (key: 16 zero bytes || time || message tag, the place replaced by
 *    bytes 3..26 if byte 2 & 1; value: where history stored it, or the
 *    rest of the input if byte 2 & 8). The fixed queries: ECORRUPT exactly
 *    when the value is not 24 bytes; with the right row, each page exactly
 *    the model's (the search indexed the message first); else a
 *    subsequence of it.
 *  3 ENTRY: byte 1 picks a message; the rest is planted as its history
 *    entry (with byte 0 & 4, the message also waits to be indexed: its
 *    waiting row planted, and with byte 0 & 8 its postings out); the fixed
 *    queries give OK or ECORRUPT, an OK page only messages that hold the
 *    query (the model, on the entry as read back); then
 *    whisper_search_rebuild() gives OK (an entry that does not decode is
 *    left out) and the queries again OK or ECORRUPT, each page a
 *    subsequence of the model's on the planted history.
 * A search may write only when messages wait (then it indexes them: the
 * only records it changes are the index's, and none waits after it);
 * one that fails writes nothing.
 * Every call is bracketed by fz_call_begin/_end (no transaction left open,
 * a failure changes nothing; everything is put back after), and planted
 * rows are put back by hand. FUZZ_WRITE_SEEDS=DIR writes the seeds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "protocol/fold.h"
#include "protocol/pb.h"
#include "storage.pb-c.h"

#define HKEY_LEN 40
#define PKEY_LEN 40
#define PVAL_LEN 24
#define MAX_MSGS 16
#define MAX_ROWS 512

static fz_dev *alice;

static const struct {
  const char *conv, *id, *body;
  int out, sent;
  uint64_t dt;
} CORPUS[] = {
    {"bob", "m01", "Élan vital and the message", 0, 0, 1},
    {"bob", "m02", "the STRASSE message", 1, 0, 2},
    {"grp", "m03", "東京タワー the 🎉", 0, 0, 3},
    {"grp", "m04", "京東 elan elan", 1, 1, 3},
    {"carol", "m05", "Καλημέρα ΣΟΦΊΑ message 🎉🎂", 0, 0, 5},
    {"carol", "m06", "ภาษาไทย the", 1, 0, 6},
    {"bob", "m07", "broken\xff" "bytes caf\xc3\xa9 \xc3", 0, 0, 7},
    {"bob", "m08", "Straße elan 👍🏽", 1, 1, 8},
    {"grp", "m09", "Привет Ёлка the message", 0, 0, 8},
    {"bob", "m10", "", 0, 0, 10},
    {"carol", "m11", "東京 東京 京", 0, 0, 11},
    {"bob", "m12", "the the the", 1, 1, 12},
};
enum { NCORPUS = sizeof CORPUS / sizeof CORPUS[0] };
static const char *const QUERIES[] = {"elan", "strasse", "東京", "🎉", "the", "message", "京"};
enum { NQUERIES = sizeof QUERIES / sizeof QUERIES[0] };
static const char *const CONVS[] = {NULL, "bob", "grp", "carol", "nobody"};

/* --- tokens --------------------------------------------------------------------------------- */

typedef struct tok {
  uint8_t t[WH_TOK_MAX];
  size_t len;
  int kind;
} tok;

typedef struct toks {
  tok *v;
  size_t n, cap;
  int too_many; /* over max */
  size_t max;
} toks;

static int toks_add(void *arg, const uint8_t *t, size_t len, int kind) {
  toks *k = arg;
  FZ_ASSERT(len >= 1 && len <= WH_TOK_MAX, "a token of %zu bytes", len);
  FZ_ASSERT(kind == WH_TOK_WORD || kind == WH_TOK_CLUSTER || kind == WH_TOK_NEXT, "kind %d", kind);
  FZ_ASSERT(wh_utf8_valid(t, len), "a token that is not UTF-8");
  FZ_ASSERT(kind != WH_TOK_NEXT || (k->n > 0 && k->v[k->n - 1].kind != WH_TOK_WORD),
            "a run that starts with NEXT");
  if (k->max && k->n == k->max) {
    k->too_many = 1;
    return 1;
  }
  if (k->n == k->cap) {
    k->cap = k->cap ? 2 * k->cap : 16;
    k->v = realloc(k->v, k->cap * sizeof *k->v);
    FZ_ASSERT(k->v != NULL, "out of memory");
  }
  memcpy(k->v[k->n].t, t, len);
  k->v[k->n].len = len;
  k->v[k->n++].kind = kind;
  return 0;
}

static void split(toks *k, const uint8_t *p, size_t n, size_t max) {
  memset(k, 0, sizeof *k);
  k->max = max;
  wh_fold_tokens(p, n, toks_add, k);
}

static int tok_eq(const tok *a, const tok *b) {
  return a->len == b->len && memcmp(a->t, b->t, a->len) == 0;
}

/* A reference UTF-8 check, by the table of well-formed byte sequences. */
static int ref_utf8(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    size_t len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3
                 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (len == 0 || i + len > n) return 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
    if (len > 1 && (p[i + 1] < lo || p[i + 1] > hi)) return 0;
    for (size_t j = 2; j < len; j++)
      if (p[i + j] < 0x80 || p[i + j] > 0xBF) return 0;
    i += len;
  }
  return 1;
}

static void text_case(const uint8_t *p, size_t n) {
  toks a, b;
  split(&a, p, n, 0);
  FZ_ASSERT(wh_utf8_valid(p, n) == ref_utf8(p, n), "wh_utf8_valid disagrees");
  /* the tokens as text again */
  size_t cap = a.n * (WH_TOK_MAX + 1) + 1, len = 0;
  uint8_t *again = malloc(cap);
  FZ_ASSERT(again != NULL, "out of memory");
  for (size_t i = 0; i < a.n; i++) {
    if (i && a.v[i].kind != WH_TOK_NEXT) again[len++] = ' ';
    memcpy(again + len, a.v[i].t, a.v[i].len);
    len += a.v[i].len;
  }
  split(&b, again, len, 0);
  FZ_ASSERT(a.n == b.n, "%zu tokens, split again %zu", a.n, b.n);
  for (size_t i = 0; i < a.n; i++)
    FZ_ASSERT(tok_eq(&a.v[i], &b.v[i]) && a.v[i].kind == b.v[i].kind,
              "token %zu changes when split again", i);
  free(again);
  free(a.v);
  free(b.v);
}

/* --- the model ------------------------------------------------------------------------------ */

typedef struct query_model {
  toks q;
  int ok; /* the query is one whisper_search takes */
} query_model;

static void query_model_make(query_model *m, const char *q) {
  size_t n = strlen(q);
  split(&m->q, (const uint8_t *)q, n, WHISPER_SEARCH_WORDS_MAX);
  m->ok = n > 0 && n <= WHISPER_SEARCH_QUERY_MAX && wh_utf8_valid((const uint8_t *)q, n) &&
          !m->q.too_many && m->q.n > 0;
}

/* Does a body hold every word of the query and each of its runs? */
static int holds(const query_model *m, const uint8_t *body, size_t n) {
  toks b;
  split(&b, body, n, 0);
  int ok = 1;
  for (size_t i = 0; ok && i < m->q.n; i++) {
    const tok *t = &m->q.v[i];
    if (t->kind == WH_TOK_WORD) {
      int found = 0;
      for (size_t j = 0; !found && j < b.n; j++) found = b.v[j].kind == WH_TOK_WORD && tok_eq(t, &b.v[j]);
      ok = found;
    } else if (t->kind == WH_TOK_CLUSTER) { /* a run: i .. end */
      size_t len = 1;
      while (i + len < m->q.n && m->q.v[i + len].kind == WH_TOK_NEXT) len++;
      int found = 0;
      for (size_t k = 0; !found && k + len <= b.n; k++) {
        found = 1;
        for (size_t j = 0; found && j < len; j++)
          found = b.v[k + j].kind != WH_TOK_WORD && (j == 0 || b.v[k + j].kind == WH_TOK_NEXT) &&
                  tok_eq(&m->q.v[i + j], &b.v[k + j]);
      }
      ok = found;
      i += len - 1;
    }
  }
  free(b.v);
  return ok;
}

typedef struct hitm {
  uint64_t ts;
  uint8_t tag[16];
  char conv[256];
  uint8_t id[64];
  size_t id_len;
} hitm;

typedef struct model_run {
  const query_model *m;
  const char *conv;
  hitm *h;
  size_t n;
} model_run;

static int model_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  model_run *r = arg;
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(NULL, n, v);
  if (e && key_len == HKEY_LEN && e->conversation && e->has_id && e->id.len <= 64 &&
      strlen(e->conversation) < 256 && (r->conv == NULL || strcmp(r->conv, e->conversation) == 0) &&
      holds(r->m, e->body.data, e->body.len)) {
    hitm *h = &r->h[r->n++];
    h->ts = e->timestamp;
    memcpy(h->tag, key + 24, 16);
    snprintf(h->conv, sizeof h->conv, "%s", e->conversation);
    if (e->id.len) memcpy(h->id, e->id.data, e->id.len);
    h->id_len = e->id.len;
  }
  if (e) whisper__store__history_entry__free_unpacked(e, NULL);
  return r->n == MAX_ROWS;
}

static int hit_cmp(const void *a, const void *b) { /* newest first, then the larger tag */
  const hitm *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? 1 : -1;
  return -memcmp(x->tag, y->tag, 16);
}

/* Every history entry that holds the query, in the order of a search. */
static size_t model(const query_model *m, const char *conv, hitm *out) {
  model_run r = {m, conv, out, 0};
  whisper_store *s = alice->fs.inner;
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, 0, MAX_ROWS, model_fn, &r) ==
                WHISPER_OK,
            "scan");
  qsort(out, r.n, sizeof *out, hit_cmp);
  return r.n;
}

static int same(const whisper_message_t *m, const hitm *h) {
  return m->timestamp_ms == h->ts && strcmp(m->conversation, h->conv) == 0 &&
         m->id_len == h->id_len && memcmp(m->id, h->id, m->id_len) == 0;
}

/* --- searching ------------------------------------------------------------------------------ */

static int count_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  (void)key, (void)key_len, (void)v, (void)n;
  ++*(size_t *)arg;
  return 0;
}

static const uint8_t WAIT_TERM[16]; /* the waiting rows' term: zeros */

/* Alice's waiting rows: messages stored, not indexed yet. */
static size_t waiting(void) {
  size_t n = 0;
  whisper_store *s = alice->fs.inner;
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_SEARCH, WAIT_TERM, 16, NULL, 0, 0, MAX_ROWS, count_fn,
                        &n) == WHISPER_OK,
            "scan");
  return n;
}

static int search(const char *q, const char *conv, const whisper_message_t *after, size_t limit,
                  whisper_page **p, const char *what) {
  size_t waited = waiting();
  fz_call_begin(alice);
  *p = NULL;
  int rc = whisper_search(alice->ctx, q, conv, after, limit, p);
  if (fz_verbose())
    fprintf(stderr, "%s \"%.40s\" in %s: %d %s (%zu; %zu waited)\n", what, q, conv ? conv : "all",
            rc, whisper_ctx_last_error(alice->ctx), whisper_page_count(*p), waited);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVAL || rc == WHISPER_ECORRUPT, "%s: %d", what, rc);
  FZ_ASSERT((rc == WHISPER_OK) == (*p != NULL), "%s: page and code disagree", what);
  if (rc == WHISPER_OK) { /* what waited is indexed: the index, and only it, changed */
    FZ_ASSERT(waited || alice->fs.committed_writes == 0, "%s wrote", what);
    FZ_ASSERT(waiting() == 0, "%s left %zu messages waiting", what, waiting());
    for (size_t i = 0; i < alice->fs.ntouched; i++)
      FZ_ASSERT(alice->fs.touched[i].kind == WHISPER_REC_SEARCH, "%s wrote a record of kind %d",
                what, alice->fs.touched[i].kind);
  }
  fz_call_end(alice, rc, what);
  return rc;
}

static void query_case(const uint8_t *data, size_t size) {
  size_t limit = 1 + (data[0] >> 2 & 7);
  const char *conv = CONVS[(data[0] >> 5) < 5 ? data[0] >> 5 : 0];
  char *q = malloc(size);
  FZ_ASSERT(q != NULL, "out of memory");
  memcpy(q, data + 1, size - 1);
  q[size - 1] = 0;
  query_model m;
  query_model_make(&m, q);
  static hitm want[MAX_ROWS];
  size_t nwant = m.ok ? model(&m, conv, want) : 0;
  whisper_page *p = NULL, *p2 = NULL;
  int rc = search(q, conv, NULL, limit, &p, "search");
  FZ_ASSERT(rc == (m.ok ? WHISPER_OK : WHISPER_EINVAL), "search gave %d for a query the model %s",
            rc, m.ok ? "takes" : "refuses");
  if (rc == WHISPER_OK) {
    size_t n = whisper_page_count(p), expect = nwant < limit ? nwant : limit;
    FZ_ASSERT(n == expect, "a page of %zu, the model finds %zu", n, expect);
    for (size_t i = 0; i < n; i++)
      FZ_ASSERT(same(whisper_page_get(p, i), &want[i]), "hit %zu is not the model's", i);
    if (n == limit) { /* the next page */
      rc = search(q, conv, whisper_page_get(p, n - 1), limit, &p2, "search after");
      FZ_ASSERT(rc == WHISPER_OK, "the next page: %d", rc);
      size_t n2 = whisper_page_count(p2), rest = nwant - n;
      FZ_ASSERT(n2 == (rest < limit ? rest : limit), "a next page of %zu, the model %zu", n2, rest);
      for (size_t i = 0; i < n2; i++)
        FZ_ASSERT(same(whisper_page_get(p2, i), &want[n + i]), "next hit %zu is not the model's", i);
    }
  }
  whisper_page_free(p);
  whisper_page_free(p2);
  free(m.q.v);
  free(q);
}

/* The fixed queries: OK or ECORRUPT; an OK page only holds messages that
 * hold the query, in the model's order (`strict`: a subsequence of the
 * model's list; else each checked on its own body). `want_rc` (if not 0
 * or 1): the code each must give; 1: OK and each page exactly the model's. */
static void fixed_queries(int strict, int want_rc) {
  static hitm want[MAX_ROWS];
  for (size_t k = 0; k < NQUERIES; k++) {
    query_model m;
    query_model_make(&m, QUERIES[k]);
    size_t nwant = model(&m, NULL, want), at = 0;
    whisper_page *p = NULL;
    int rc = search(QUERIES[k], NULL, NULL, 8, &p, "fixed search");
    FZ_ASSERT(want_rc == 0 || rc == (want_rc == 1 ? WHISPER_OK : want_rc),
              "fixed search \"%s\" gave %d, wanted %d", QUERIES[k], rc, want_rc);
    if (rc == WHISPER_OK && want_rc == 1) {
      size_t n = whisper_page_count(p);
      FZ_ASSERT(n == (nwant < 8 ? nwant : 8), "\"%s\": a page of %zu, the model finds %zu",
                QUERIES[k], n, nwant);
      for (size_t i = 0; i < n; i++)
        FZ_ASSERT(same(whisper_page_get(p, i), &want[i]), "\"%s\": hit %zu is not the model's",
                  QUERIES[k], i);
    }
    if (rc == WHISPER_OK) {
      for (size_t i = 0; i < whisper_page_count(p); i++) {
        const whisper_message_t *h = whisper_page_get(p, i);
        FZ_ASSERT(holds(&m, h->body, h->body_len), "hit %zu does not hold \"%s\"", i, QUERIES[k]);
        if (!strict) continue;
        while (at < nwant && !same(h, &want[at])) at++;
        FZ_ASSERT(at < nwant, "hit %zu of \"%s\" is not in the model's order", i, QUERIES[k]);
        at++;
      }
    }
    whisper_page_free(p);
    free(m.q.v);
  }
}

/* --- planting ------------------------------------------------------------------------------- */

typedef struct keys {
  uint8_t k[MAX_ROWS][PKEY_LEN];
  size_t n;
} keys;

static int keys_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  keys *ks = arg;
  (void)v, (void)n;
  if (key_len == PKEY_LEN && ks->n < MAX_ROWS) memcpy(ks->k[ks->n++], key, PKEY_LEN);
  return 0;
}

static keys index_rows, history_rows;

static void waiting_case(const uint8_t *data, size_t size);

static void posting_case(const uint8_t *data, size_t size) {
  if (size < 3 + 24) return;
  if (data[2] & 2) {
    waiting_case(data, size);
    return;
  }
  const uint8_t *key = index_rows.k[data[1] % index_rows.n];
  uint8_t k[PKEY_LEN];
  memcpy(k, key, PKEY_LEN);
  if (data[2] & 1) memcpy(k + 16, data + 3, 24);
  whisper_buf *orig = fz_get(alice, WHISPER_REC_SEARCH, k, PKEY_LEN);
  fz_put_raw(alice, WHISPER_REC_SEARCH, k, PKEY_LEN, data + 27, size - 27);
  fixed_queries(1, 0);
  if (orig) {
    fz_put_raw(alice, WHISPER_REC_SEARCH, k, PKEY_LEN, orig->data, orig->len);
  } else {
    whisper_store *s = alice->fs.inner;
    FZ_ASSERT(s->ops.del(s->user, WHISPER_REC_SEARCH, k, PKEY_LEN) == WHISPER_OK, "del");
  }
  whisper_buf_free(orig);
}

/* --- waiting rows ------------------------------------------------------------------------- */

typedef struct rowset {
  uint8_t k[MAX_ROWS][PKEY_LEN];
  whisper_buf *v[MAX_ROWS];
  size_t n;
} rowset;

typedef struct take {
  const uint8_t *msg;
  rowset *out;
} take;

static int take_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  take *t = arg;
  if (key_len == PKEY_LEN && memcmp(key, WAIT_TERM, 16) != 0 && memcmp(key + 24, t->msg, 16) == 0 &&
      t->out->n < MAX_ROWS) {
    memcpy(t->out->k[t->out->n], key, PKEY_LEN);
    t->out->v[t->out->n++] = whisper_buf_new(v, n);
  }
  return 0;
}

/* Takes the postings of the message with tag `msg` out of the index (kept
 * in `saved` to be put back): as if it was not indexed yet. */
static void take_postings(const uint8_t msg[16], rowset *saved) {
  take t = {msg, saved};
  saved->n = 0;
  whisper_store *s = alice->fs.inner;
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_SEARCH, NULL, 0, NULL, 0, 0, SIZE_MAX, take_fn, &t) ==
                WHISPER_OK,
            "scan");
  for (size_t i = 0; i < saved->n; i++)
    FZ_ASSERT(s->ops.del(s->user, WHISPER_REC_SEARCH, saved->k[i], PKEY_LEN) == WHISPER_OK, "del");
}

static void put_back(rowset *saved) {
  for (size_t i = 0; i < saved->n; i++) {
    fz_put_raw(alice, WHISPER_REC_SEARCH, saved->k[i], PKEY_LEN, saved->v[i]->data, saved->v[i]->len);
    whisper_buf_free(saved->v[i]);
  }
  saved->n = 0;
}

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

/* Plants the waiting row `key` = value (remembering what was there). */
static whisper_buf *plant_waiting(const uint8_t key[PKEY_LEN], const uint8_t *v, size_t n) {
  whisper_buf *orig = fz_get(alice, WHISPER_REC_SEARCH, key, PKEY_LEN);
  fz_put_raw(alice, WHISPER_REC_SEARCH, key, PKEY_LEN, v, n);
  return orig;
}

static void unplant(const uint8_t key[PKEY_LEN], whisper_buf *orig) {
  if (orig) {
    fz_put_raw(alice, WHISPER_REC_SEARCH, key, PKEY_LEN, orig->data, orig->len);
  } else {
    whisper_store *s = alice->fs.inner;
    FZ_ASSERT(s->ops.del(s->user, WHISPER_REC_SEARCH, key, PKEY_LEN) == WHISPER_OK, "del");
  }
  whisper_buf_free(orig);
}

static void waiting_case(const uint8_t *data, size_t size) {
  static rowset saved;
  size_t i = data[1] % NCORPUS;
  uint8_t mode = data[2], key[PKEY_LEN], val[PVAL_LEN];
  FZ_ASSERT(wh_history_tags(alice->ctx, CORPUS[i].conv, (const uint8_t *)CORPUS[i].id,
                            strlen(CORPUS[i].id), val, key + 24) == WHISPER_OK,
            "tags");
  memset(key, 0, 16);
  be64(key + 16, FZ_NOW + CORPUS[i].dt);
  be64(val + 16, 100 + i); /* where history stored it (sent() may have moved it since) */
  if (mode & 4) take_postings(key + 24, &saved);
  if (mode & 1) memcpy(key + 16, data + 3, 24);
  const uint8_t *v = mode & 8 ? data + 27 : val;
  size_t vn = mode & 8 ? size - 27 : PVAL_LEN;
  whisper_buf *orig = plant_waiting(key, v, vn);
  FZ_ASSERT(waiting() == 1, "one waiting row");
  int exact = !(mode & (1 | 8));
  fixed_queries(1, vn != PVAL_LEN ? WHISPER_ECORRUPT : exact ? 1 : WHISPER_OK);
  unplant(key, orig);
  put_back(&saved);
}

static void entry_case(const uint8_t *data, size_t size) {
  static rowset saved;
  if (size < 2) return;
  const uint8_t *k = history_rows.k[data[1] % history_rows.n];
  whisper_buf *orig = fz_get(alice, WHISPER_REC_HISTORY, k, HKEY_LEN);
  FZ_ASSERT(orig != NULL, "the history row to plant over is missing");
  uint8_t wkey[PKEY_LEN];
  whisper_buf *wait_orig = NULL;
  if (data[0] & 4) { /* the message also waits to be indexed (with its postings, or not) */
    Whisper__Store__HistoryEntry *e =
        whisper__store__history_entry__unpack(NULL, orig->len, orig->data);
    FZ_ASSERT(e != NULL, "entry");
    memset(wkey, 0, 16);
    be64(wkey + 16, e->timestamp);
    memcpy(wkey + 24, k + 24, 16);
    whisper__store__history_entry__free_unpacked(e, NULL);
    if (data[0] & 8) take_postings(k + 24, &saved);
    wait_orig = plant_waiting(wkey, k, PVAL_LEN);
  }
  fz_put_raw(alice, WHISPER_REC_HISTORY, k, HKEY_LEN, data + 2, size - 2);
  fixed_queries(0, 0);
  /* the rebuild is watched, and kept until the queries after it ran */
  fz_journal_begin(&alice->fs);
  fz_watch_begin(&alice->fs);
  int rc = whisper_search_rebuild(alice->ctx);
  if (fz_verbose()) fprintf(stderr, "rebuild: %d %s\n", rc, whisper_ctx_last_error(alice->ctx));
  FZ_ASSERT(!alice->fs.outer->depth, "rebuild left a transaction open");
  FZ_ASSERT(rc == WHISPER_OK, "rebuild: %d (%s)", rc, whisper_ctx_last_error(alice->ctx));
  fz_watch_end(&alice->fs);
  FZ_ASSERT(waiting() == 0, "the rebuild left messages waiting");
  fixed_queries(1, 0);
  fz_journal_restore(&alice->fs);
  fz_put_raw(alice, WHISPER_REC_HISTORY, k, HKEY_LEN, orig->data, orig->len);
  whisper_buf_free(orig);
  if (data[0] & 4) {
    unplant(wkey, wait_orig);
    put_back(&saved);
  }
}

/* --- the scenario and the seeds -------------------------------------------------------------- */

static void setup_once(void) {
  if (alice) return;
  alice = fz_dev_new("alice", 1, 71);
  FZ_ASSERT(whisper_search_prepare(alice->ctx) == WHISPER_OK, "prepare");
  for (size_t i = 0; i < NCORPUS; i++) {
    whisper_message_t m = {.size = sizeof(whisper_message_t),
                           .conversation = CORPUS[i].conv, .id = (const uint8_t *)CORPUS[i].id,
                           .id_len = strlen(CORPUS[i].id), .sort_key = 100 + i,
                           .timestamp_ms = FZ_NOW + CORPUS[i].dt, .body = (const uint8_t *)CORPUS[i].body,
                           .body_len = strlen(CORPUS[i].body)};
    if (CORPUS[i].out) {
      whisper_device_t to = {"bob", 1};
      FZ_ASSERT(whisper_history_add_outgoing(alice->ctx, &m, &to, 1) == WHISPER_OK, "outgoing");
      /* indexed where it was stored: once sent, a hit finds it through its index */
      FZ_ASSERT(whisper_search_prepare(alice->ctx) == WHISPER_OK, "prepare");
      if (CORPUS[i].sent)
        FZ_ASSERT(whisper_history_sent(alice->ctx, m.conversation, m.id, m.id_len, 1000 + i) ==
                      WHISPER_OK,
                  "sent");
    } else {
      FZ_ASSERT(wh_begin(alice->ctx) == WHISPER_OK, "begin");
      FZ_ASSERT(wh_history_incoming_put(alice->ctx, &m, "bob", 1, m.body, m.body_len) == WHISPER_OK,
                "incoming");
      FZ_ASSERT(wh_finish(alice->ctx, WHISPER_OK) == WHISPER_OK, "commit");
    }
  }
  FZ_ASSERT(whisper_search_prepare(alice->ctx) == WHISPER_OK && waiting() == 0, "prepare");
  whisper_store *s = alice->fs.inner;
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_SEARCH, NULL, 0, NULL, 0, 0, MAX_ROWS, keys_fn,
                        &index_rows) == WHISPER_OK && index_rows.n > 0,
            "index rows");
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, 0, MAX_ROWS, keys_fn,
                        &history_rows) == WHISPER_OK && history_rows.n == NCORPUS,
            "history rows");
}

static void seed(const char *dir, const char *name, uint8_t sel, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  FZ_ASSERT(f != NULL && fwrite(&sel, 1, 1, f) == 1 && (n == 0 || fwrite(p, 1, n, f) == n) &&
                fclose(f) == 0,
            "cannot write %s", path);
}

static void write_seeds(const char *dir) {
  static const char *const texts[] = {
      "Élan ELAN élan E\xcc\x81LAN Straße STRAẞE ΣΊΣΥΦΟΣ Ёлка",
      "東京タワーへ行きました。2024年 ภาษาไทย 한국어 हिन्दी",
      "Party🎉🎂 👍🏽 👨\xe2\x80\x8d👩 ガｶﾞ ﬁne ① ½ ℀",
      "a\xc0\xaf" "b\xed\xa0\x80" "c\xf4\x90\x80\x80" "d\xe2\x82" "e\x80" "f\xff"};
  char name[64];
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    snprintf(name, sizeof name, "text_%zu", i);
    seed(dir, name, 0, texts[i], strlen(texts[i]));
  }
  static const struct {
    const char *name, *q;
    uint8_t sel;
  } qs[] = {
      {"query_elan", "ÉLAN", 1 | 7 << 2},         {"query_the_pages", "the", 1 | 1 << 2},
      {"query_tokyo", "東京", 1 | 7 << 2},        {"query_reversed_run", "京東", 1 | 7 << 2},
      {"query_emoji_run", "🎉🎂", 1 | 7 << 2},     {"query_and", "message THE", 1 | 0 << 2},
      {"query_in_grp", "the", 1 | 1 << 2 | 2 << 5}, {"query_invalid", "elan\xff", 1 | 7 << 2},
      {"query_no_word", " ,.;", 1 | 7 << 2},     {"query_thai", "ไทย", 1 | 7 << 2},
      {"query_broken", "cafe bytes", 1 | 3 << 2 | 1 << 5}};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
    seed(dir, qs[i].name, qs[i].sel, qs[i].q, strlen(qs[i].q));
  /* index rows as they are, one with its place moved, one with a short value */
  uint8_t buf[512];
  for (int i = 0; i < 3; i++) {
    whisper_buf *v = fz_get(alice, WHISPER_REC_SEARCH, index_rows.k[i * 7 % index_rows.n], PKEY_LEN);
    buf[0] = (uint8_t)(i * 7 % index_rows.n);
    buf[1] = i == 1;
    memcpy(buf + 2, index_rows.k[(i * 7 + 3) % index_rows.n] + 16, 24);
    memcpy(buf + 26, v->data, v->len);
    snprintf(name, sizeof name, "posting_%d", i);
    seed(dir, name, 2, buf, 26 + (i == 2 ? 5 : v->len));
    whisper_buf_free(v);
  }
  /* waiting rows: the right one (a message received, one sent since: found
   * through its index), without its postings, moved to another place, a
   * short value, the right value given as bytes */
  static const struct {
    const char *name;
    uint8_t msg, mode;
  } ws[] = {{"waiting_right", 0, 2},       {"waiting_sent", 3, 2 | 4},
            {"waiting_unindexed", 4, 2 | 4}, {"waiting_moved", 1, 2 | 1},
            {"waiting_short", 2, 2 | 8},   {"waiting_bytes", 7, 2 | 4 | 8}};
  for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
    size_t m = ws[i].msg, n = 26;
    buf[0] = ws[i].msg;
    buf[1] = ws[i].mode;
    memcpy(buf + 2, index_rows.k[(i * 5) % index_rows.n] + 16, 24);
    if (ws[i].mode & 8) {
      if (i == 4) {
        memcpy(buf + 26, "bad", 3);
        n += 3;
      } else {
        FZ_ASSERT(wh_history_tags(alice->ctx, CORPUS[m].conv, (const uint8_t *)CORPUS[m].id,
                                  strlen(CORPUS[m].id), buf + 26, buf + 60) == WHISPER_OK,
                  "tags");
        be64(buf + 42, 100 + m);
        n += 24;
      }
    }
    seed(dir, ws[i].name, 2, buf, n);
  }
  /* history entries as they are, and one with another body */
  for (size_t i = 0; i < history_rows.n; i += 3) {
    whisper_buf *v = fz_get(alice, WHISPER_REC_HISTORY, history_rows.k[i], HKEY_LEN);
    buf[0] = (uint8_t)i;
    memcpy(buf + 1, v->data, v->len);
    snprintf(name, sizeof name, "entry_%zu", i);
    seed(dir, name, 3, buf, 1 + v->len);
    if (i == 6) { /* and waiting to be indexed, with and without its postings */
      snprintf(name, sizeof name, "entry_%zu_waiting", i);
      seed(dir, name, 3 | 4, buf, 1 + v->len);
      snprintf(name, sizeof name, "entry_%zu_unindexed", i);
      seed(dir, name, 3 | 4 | 8, buf, 1 + v->len);
    }
    if (i == 3) {
      Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(NULL, v->len, v->data);
      FZ_ASSERT(e != NULL, "entry");
      ProtobufCBinaryData body = e->body;
      e->body = (ProtobufCBinaryData){12, (uint8_t *)"the new elan"};
      size_t n = whisper__store__history_entry__pack(e, buf + 1);
      e->body = body;
      seed(dir, "entry_new_body", 3, buf, 1 + n);
      whisper__store__history_entry__free_unpacked(e, NULL);
    }
    whisper_buf_free(v);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int seeded;
  setup_once();
  if (!seeded && getenv("FUZZ_WRITE_SEEDS")) write_seeds(getenv("FUZZ_WRITE_SEEDS"));
  seeded = 1;
  if (size == 0) return 0;
  switch (data[0] & 3) {
    case 0: text_case(data + 1, size - 1); break;
    case 1: query_case(data, size); break;
    case 2: posting_case(data, size); break;
    default: entry_case(data, size); break;
  }
  return 0;
}

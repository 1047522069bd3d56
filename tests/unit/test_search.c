/* Full-text search (search.h): folding and splitting in several scripts,
 * AND of words, newest first, paging, the conversation filter, outgoing
 * messages before and after the server takes them, postings removed,
 * forgotten and left stale, a corrupt index and its rebuild, history kept
 * before the index (the schema-2 fixtures), bad input, and a store file
 * that shows no word nor an unkeyed hash of one. On the memory store and
 * the SQLite store, each behind a store that counts writes. */
#include <ctype.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "protocol/fold.h"
#include "storage.pb-c.h"
#include "test.h"

#define NOW 1700000000000ULL

static char dir[128];
static const uint8_t KEY[32] = "search test store key ..........";
static const uint8_t DIST[WHISPER_DISTRIBUTION_ID_LEN] = "search-group-id";

/* --- a store that counts writes ------------------------------------------------------------ */

typedef struct counted {
  whisper_store *inner;
  unsigned writes;
  int fail_kind; /* nonzero: writes of that kind fail (WHISPER_ESTORE) */
} counted;

static int c_begin(void *u) { return ((counted *)u)->inner->ops.begin(((counted *)u)->inner->user); }
static int c_commit(void *u) { return ((counted *)u)->inner->ops.commit(((counted *)u)->inner->user); }
static void c_rollback(void *u) { ((counted *)u)->inner->ops.rollback(((counted *)u)->inner->user); }
static int c_get(void *u, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  counted *c = u;
  return c->inner->ops.get(c->inner->user, kind, k, n, out);
}
static int c_put(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  counted *c = u;
  c->writes++;
  if (kind == c->fail_kind) return WHISPER_ESTORE;
  return c->inner->ops.put(c->inner->user, kind, k, n, v, vn);
}
static int c_del(void *u, int kind, const uint8_t *k, size_t n) {
  counted *c = u;
  c->writes++;
  return c->inner->ops.del(c->inner->user, kind, k, n);
}
static int c_add(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  counted *c = u;
  c->writes++;
  if (kind == c->fail_kind) return WHISPER_ESTORE;
  return wh_store_add(c->inner, kind, k, n, v, vn);
}
static int c_scan(void *u, int kind, const uint8_t *p, size_t pn, const uint8_t *b, size_t bn,
                  int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  counted *c = u;
  return c->inner->ops.scan(c->inner->user, kind, p, pn, b, bn, desc, limit, fn, arg);
}
static void c_destroy(void *u) { whisper_store_free(((counted *)u)->inner); }

typedef struct dev {
  counted cnt;
  whisper_store *st;
  whisper_ctx *ctx;
  char path[256];
} dev;

static void dev_wrap(dev *d, whisper_store *inner, unsigned version) {
  whisper_store_ops ops = {WHISPER_STORE_OPS_VERSION, c_begin, c_commit, c_rollback, c_get,
                           c_put, c_del, c_destroy, c_scan, c_add, NULL, NULL, NULL, NULL};
  ops.version = version;
  d->cnt.inner = inner;
  d->cnt.writes = 0;
  d->cnt.fail_kind = 0;
  CHECK_RC(whisper_store_new(&d->st, &ops, &d->cnt), WHISPER_OK);
  CHECK_RC(whisper_ctx_new(&d->ctx, d->st), WHISPER_OK);
}

static int sqlite_open(whisper_store **st, const char *path, const uint8_t *key) {
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  return whisper_store_sqlite_open(st, path, &o, NULL);
}

/* A device on the memory store (file NULL) or on the SQLite file `file`;
 * with a name, a new one: its (empty) history marked indexed at once, so
 * that what the tests store is found through the index kept on write, not
 * through the indexing of older history that a first search does. */
static void dev_open(dev *d, const char *file, const char *name) {
  whisper_store *inner = NULL;
  memset(d, 0, sizeof *d);
  if (file) {
    snprintf(d->path, sizeof d->path, "%s/%s", dir, file);
    CHECK_RC(sqlite_open(&inner, d->path, KEY), WHISPER_OK);
  } else {
    CHECK_RC(whisper_store_memory_new(&inner), WHISPER_OK);
  }
  dev_wrap(d, inner, WHISPER_STORE_OPS_VERSION);
  if (name) CHECK_RC(whisper_identity_generate(d->ctx, name, 1, 0, NOW), WHISPER_OK);
  if (name) CHECK_RC(whisper_search_prepare(d->ctx), WHISPER_OK);
}

static void dev_close(dev *d) {
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
}

/* --- messages -------------------------------------------------------------------------------- */

static void outgoing(dev *d, const char *conv, const char *id, uint64_t ts, const char *body,
                     size_t body_len) {
  whisper_device_t to = {strcmp(conv, "grp") == 0 ? "carol" : conv, 1};
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = conv, .id = (const uint8_t *)id, .id_len = strlen(id),
                         .sort_key = ts - NOW, .timestamp_ms = ts, .body = (const uint8_t *)body,
                         .body_len = body_len};
  CHECK_RC(whisper_history_add_outgoing(d->ctx, &m, &to, 1), WHISPER_OK);
}

/* From alice (1:1, decrypt-and-store) or from alice's sender key (conv "grp"). */
static void incoming(dev *alice, dev *bob, const char *conv, const char *id, uint64_t ts,
                     const char *body, size_t body_len) {
  whisper_buf *m = NULL, *pt = NULL;
  int type = 0;
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = conv, .id = (const uint8_t *)id, .id_len = strlen(id),
                            .sort_key = ts - NOW, .timestamp_ms = ts};
  if (strcmp(conv, "grp") == 0) {
    CHECK_RC(whisper_sender_key_encrypt(alice->ctx, DIST, (const uint8_t *)body, body_len, &m), WHISPER_OK);
    CHECK_RC(whisper_sender_key_decrypt_store(bob->ctx, "alice", 1, m->data, m->len, &meta, &pt), WHISPER_OK);
  } else {
    CHECK_RC(whisper_session_encrypt(alice->ctx, "bob", 1, (const uint8_t *)body, body_len, NOW,
                                     &type, &m), WHISPER_OK);
    CHECK_RC(whisper_session_decrypt_store(bob->ctx, "alice", 1, type, m->data, m->len, &meta, &pt),
             WHISPER_OK);
  }
  CHECK(pt && pt->len == body_len && memcmp(pt->data, body, body_len) == 0);
  whisper_buf_free(m);
  whisper_buf_free(pt);
}

/* alice and bob with a 1:1 session and alice's sender key at bob. */
static void pair(dev *alice, dev *bob) {
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *skdm = NULL;
  CHECK_RC(whisper_bundle_generate(bob->ctx, 1, &bundle), WHISPER_OK);
  CHECK_RC(whisper_session_start(alice->ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
  CHECK_RC(whisper_sender_key_generate(alice->ctx, DIST, &skdm), WHISPER_OK);
  CHECK_RC(whisper_sender_key_process(bob->ctx, "alice", 1, skdm->data, skdm->len), WHISPER_OK);
  whisper_buf_free(skdm);
}

/* The ids a search finds, newest first, joined by ','; "!CODE" on failure. */
static const char *found(dev *d, const char *q, const char *conv) {
  static char out[2048];
  whisper_page *p = NULL;
  int rc = whisper_search(d->ctx, q, conv, NULL, 100, &p);
  if (rc != WHISPER_OK) {
    snprintf(out, sizeof out, "!%d", rc);
    return out;
  }
  out[0] = 0;
  uint64_t last = UINT64_MAX;
  for (size_t i = 0; i < whisper_page_count(p); i++) {
    const whisper_message_t *m = whisper_page_get(p, i);
    CHECK(m->timestamp_ms <= last); /* newest first */
    last = m->timestamp_ms;
    size_t n = strlen(out);
    snprintf(out + n, sizeof out - n, "%s%.*s", i ? "," : "", (int)m->id_len, (const char *)m->id);
  }
  whisper_page_free(p);
  return out;
}

#define EXPECT(d, q, conv, want)                                                          \
  do {                                                                                    \
    const char *got_ = found(d, q, conv);                                                 \
    if (strcmp(got_, want) == 0) {                                                        \
      t_pass++;                                                                           \
    } else {                                                                              \
      t_fail++;                                                                           \
      fprintf(stderr, "%s:%d: search \"%s\" in %s found \"%s\", wanted \"%s\"\n", __FILE__, \
              __LINE__, q, conv ? conv : "all", got_, want);                              \
    }                                                                                     \
  } while (0)

/* --- the tokeniser ---------------------------------------------------------------------------- */

/* The tokens of a text: s shows them (a space between tokens, a '+'
 * between the clusters of a run), raw is the text they make again (the
 * clusters of a run side by side). */
typedef struct toks {
  char s[4096], raw[4096];
} toks;

static int tok_cat(void *arg, const uint8_t *t, size_t len, int kind) {
  toks *k = arg;
  size_t at = strlen(k->s), rat = strlen(k->raw);
  snprintf(k->s + at, sizeof k->s - at, "%s%.*s", at ? (kind == WH_TOK_NEXT ? "+" : " ") : "",
           (int)len, (const char *)t);
  snprintf(k->raw + rat, sizeof k->raw - rat, "%s%.*s", rat && kind != WH_TOK_NEXT ? " " : "",
           (int)len, (const char *)t);
  return 0;
}

static toks last_toks;

static const char *tokens(const char *text, size_t len) {
  memset(&last_toks, 0, sizeof last_toks);
  wh_fold_tokens((const uint8_t *)text, len, tok_cat, &last_toks);
  return last_toks.s;
}

#define TOKENS(text, want) CHECK(strcmp(tokens(text, sizeof text - 1), want) == 0 || \
                                 (fprintf(stderr, "  tokens: \"%s\"\n", tokens(text, sizeof text - 1)), 0))

static size_t utf8(uint8_t out[4], uint32_t cp) {
  if (cp < 0x80) return out[0] = (uint8_t)cp, 1;
  if (cp < 0x800) return out[0] = (uint8_t)(0xC0 | cp >> 6), out[1] = (uint8_t)(0x80 | (cp & 63)), 2;
  if (cp < 0x10000)
    return out[0] = (uint8_t)(0xE0 | cp >> 12), out[1] = (uint8_t)(0x80 | (cp >> 6 & 63)),
           out[2] = (uint8_t)(0x80 | (cp & 63)), 3;
  return out[0] = (uint8_t)(0xF0 | cp >> 18), out[1] = (uint8_t)(0x80 | (cp >> 12 & 63)),
         out[2] = (uint8_t)(0x80 | (cp >> 6 & 63)), out[3] = (uint8_t)(0x80 | (cp & 63)), 4;
}

static void test_tokens(void) {
  TOKENS("Élan ELAN élan E\xcc\x81LAN", "elan elan elan elan");
  TOKENS("Straße STRASSE STRAẞE", "strasse strasse strasse");
  TOKENS("ΣΊΣΥΦΟΣ σίσυφος", "σισυφοσ σισυφοσ");
  TOKENS("Ёлка ЁЛКА йогурт", "елка елка иогурт");
  TOKENS("İstanbul ıspanak", "istanbul ispanak");
  TOKENS("Ｆｕｌｌ ﬁne ①", "full fine 1");
  TOKENS("Fjøs Łódź Æble", "fjos lodz aeble");
  TOKENS("東京タワーへ 2024年", "東+京+タ+ワ+ー+へ 2024 年");
  /* the voicing mark stays (decomposed) on its kana; kana are not folded */
  TOKENS("ガｶﾞが", "\xe3\x82\xab\xe3\x82\x99+\xe3\x82\xab\xe3\x82\x99+\xe3\x81\x8b\xe3\x82\x99");
  TOKENS("Party🎉🎂 👍🏽 👨\xe2\x80\x8d👩", "party 🎉+🎂 👍 👨+👩");
  TOKENS("ภาษาไทย ok", "ภ+า+ษ+า+ไ+ท+ย ok");
  TOKENS("한국어 텍스트", "한국어 텍스트");
  TOKENS("हिन्दी", "हिन्दी");
  TOKENS("co-operate don't e-mail@x.org", "co operate don t e mail x org");
  TOKENS("soft\xc2\xadhyphen zero\xe2\x80\x8bspace", "softhyphen zero space");
  /* invalid UTF-8 separates: overlong, surrogate, above U+10FFFF, cut, stray */
  TOKENS("a\xc0\xaf" "b\xed\xa0\x80" "c\xf4\x90\x80\x80" "d\xe2\x82" "e\x80" "f\xff", "a b c d e f");
  TOKENS("caf\xc3\xa9\xc3", "cafe");
  TOKENS("", "");
  TOKENS(" ,.;!?", "");
  /* a word is cut at 128 bytes, on a code point */
  char longw[400];
  memset(longw, 'a', 300);
  longw[300] = 0;
  CHECK(strlen(tokens(longw, 300)) == WH_TOK_MAX);
  for (int i = 0; i < 100; i++) memcpy(longw + 3 * i, "é", 2), longw[3 * i + 2] = 'b';
  const char *cut = tokens(longw, 300);
  CHECK(strlen(cut) <= WH_TOK_MAX && wh_utf8_valid((const uint8_t *)cut, strlen(cut)));

  /* every code point: folding it again changes nothing, and what comes out is UTF-8 */
  int stable = 1;
  for (uint32_t cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    uint8_t u[4];
    size_t n = utf8(u, cp);
    char once[4096], raw[4096];
    snprintf(once, sizeof once, "%s", tokens((const char *)u, n));
    snprintf(raw, sizeof raw, "%s", last_toks.raw);
    const char *twice = tokens(raw, strlen(raw));
    if (strcmp(once, twice) != 0 || !wh_utf8_valid((const uint8_t *)once, strlen(once))) {
      if (stable) fprintf(stderr, "U+%04X folds to \"%s\", then \"%s\"\n", cp, once, twice);
      stable = 0;
    }
  }
  CHECK(stable);
  CHECK(wh_utf8_valid((const uint8_t *)"\xf0\x9f\x8e\x89", 4));
  CHECK(!wh_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
  CHECK(!wh_utf8_valid((const uint8_t *)"\xc0\xaf", 2));
  CHECK(!wh_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
}

/* --- the corpus ------------------------------------------------------------------------------- */

#define BROKEN "broken\xff\xfe" "bytes caf\xc3\xa9 \xc3"

static void corpus(dev *alice, dev *bob) {
  pair(alice, bob);
  incoming(alice, bob, "alice", "f1", NOW + 1, "Élan vital, c'est la vie", 25);
  incoming(alice, bob, "alice", "g1", NOW + 2, "Die Straße ist lang", 20);
  incoming(alice, bob, "grp", "g2", NOW + 3, "STRASSE und Weg", 15);
  incoming(alice, bob, "alice", "k1", NOW + 4, "Καλημέρα κόσμε, ΣΟΦΊΑ", strlen("Καλημέρα κόσμε, ΣΟΦΊΑ"));
  outgoing(bob, "alice", "r1", NOW + 5, "Привет, Ёлка и ЙОГУРТ", strlen("Привет, Ёлка и ЙОГУРТ"));
  incoming(alice, bob, "grp", "j1", NOW + 6, "東京タワーへ行きました", strlen("東京タワーへ行きました"));
  outgoing(bob, "alice", "c1", NOW + 7, "我们在北京见面", strlen("我们在北京见面"));
  outgoing(bob, "grp", "e1", NOW + 8, "Party time 🎉🎂 👍🏽", strlen("Party time 🎉🎂 👍🏽"));
  incoming(alice, bob, "alice", "e2", NOW + 9, "ELAN meeting at noon", 20);
  incoming(alice, bob, "grp", "e3", NOW + 10, "elan again", 10);
  incoming(alice, bob, "alice", "b1", NOW + 11, BROKEN, sizeof BROKEN - 1);
  outgoing(bob, "alice", "t1", NOW + 12, "ภาษาไทย", strlen("ภาษาไทย"));
  outgoing(bob, "alice", "n1", NOW + 13, "", 0); /* no body */
}

static void queries(dev *bob) {
  EXPECT(bob, "elan", NULL, "e3,e2,f1");
  EXPECT(bob, "ÉLAN", NULL, "e3,e2,f1");
  EXPECT(bob, "E\xcc\x81lan", NULL, "e3,e2,f1");
  EXPECT(bob, "strasse", NULL, "g2,g1");
  EXPECT(bob, "Straße", NULL, "g2,g1");
  EXPECT(bob, "STRAẞE", NULL, "g2,g1");
  EXPECT(bob, "σοφια", NULL, "k1");
  EXPECT(bob, "ΚΑΛΗΜΕΡΑ", NULL, "k1");
  EXPECT(bob, "σοφιας", NULL, "");
  EXPECT(bob, "елка", NULL, "r1");
  EXPECT(bob, "ЁЛКА", NULL, "r1");
  EXPECT(bob, "йогурт привет", NULL, "r1");
  EXPECT(bob, "東京", NULL, "j1");
  EXPECT(bob, "京東", NULL, "");
  EXPECT(bob, "タワー", NULL, "j1");
  EXPECT(bob, "北京", NULL, "c1");
  EXPECT(bob, "京", NULL, "c1,j1");
  EXPECT(bob, "東京 北京", NULL, "");
  EXPECT(bob, "🎉", NULL, "e1");
  EXPECT(bob, "👍", NULL, "e1");
  EXPECT(bob, "👍🏻", NULL, "e1");
  EXPECT(bob, "🎂🎉", NULL, "");
  EXPECT(bob, "🎉🎂", NULL, "e1");
  EXPECT(bob, "party 🎂", NULL, "e1");
  EXPECT(bob, "elan meeting", NULL, "e2");
  EXPECT(bob, "MEETING, élan!", NULL, "e2");
  EXPECT(bob, "elan nothere", NULL, "");
  EXPECT(bob, "cafe", NULL, "b1");
  EXPECT(bob, "CAFÉ broken bytes", NULL, "b1");
  EXPECT(bob, "ไทย", NULL, "t1");
  EXPECT(bob, "ภาษาไทย", NULL, "t1");
  EXPECT(bob, "zzz", NULL, "");
  /* the conversation filter */
  EXPECT(bob, "elan", "grp", "e3");
  EXPECT(bob, "elan", "alice", "e2,f1");
  EXPECT(bob, "elan", "nobody", "");
  EXPECT(bob, "strasse", "grp", "g2");
}

static void test_corpus(const char *file) {
  dev alice, bob;
  dev_open(&alice, NULL, "alice");
  dev_open(&bob, file, "bob");
  corpus(&alice, &bob);
  queries(&bob);
  dev_close(&alice);
  dev_close(&bob);
  if (file == NULL) return;
  /* and after a restart, and after a rekey (every index row sealed again) */
  dev_open(&bob, file, NULL);
  queries(&bob);
  static const uint8_t KEY2[32] = "search test store key, the 2nd.";
  CHECK_RC(whisper_store_rekey(bob.cnt.inner, KEY2, 32, NULL), WHISPER_OK);
  char path[256];
  snprintf(path, sizeof path, "%s", bob.path);
  dev_close(&bob);
  whisper_store *inner = NULL;
  memset(&bob, 0, sizeof bob);
  CHECK_RC(sqlite_open(&inner, path, KEY2), WHISPER_OK);
  dev_wrap(&bob, inner, WHISPER_STORE_OPS_VERSION);
  queries(&bob);
  CHECK(bob.cnt.writes == 0);
  dev_close(&bob);
}

/* --- paging ------------------------------------------------------------------------------------ */

/* The number in an id "pNN" (-1 if it is not one). */
static int id_number(const whisper_message_t *m) {
  char s[8];
  if (m->id_len != 3 || m->id[0] != 'p') return -1;
  memcpy(s, m->id + 1, 2);
  s[2] = 0;
  return atoi(s);
}

static void test_paging(const char *file) {
  dev d;
  dev_open(&d, file, "bob");
  char id[16], body[64];
  /* 25 messages, three of them in the same millisecond, in two conversations */
  for (int i = 0; i < 25; i++) {
    snprintf(id, sizeof id, "p%02d", i);
    snprintf(body, sizeof body, "paging message number %d", i);
    uint64_t ts = NOW + 1000 + (uint64_t)(i >= 10 && i <= 12 ? 10 : i);
    outgoing(&d, i % 3 ? "alice" : "carol", id, ts, body, strlen(body));
  }
  int seen[25] = {0}, total = 0, pages = 0;
  const whisper_message_t *after = NULL;
  whisper_page *p = NULL, *prev = NULL;
  uint64_t last = UINT64_MAX;
  for (;;) {
    CHECK_RC(whisper_search(d.ctx, "Paging number", NULL, after, 10, &p), WHISPER_OK);
    size_t n = whisper_page_count(p);
    for (size_t i = 0; i < n; i++) {
      const whisper_message_t *m = whisper_page_get(p, i);
      int k = id_number(m);
      CHECK(m->id_len == 3 && k >= 0 && k < 25 && !seen[k]);
      if (k >= 0 && k < 25) seen[k] = 1;
      CHECK(m->timestamp_ms <= last);
      last = m->timestamp_ms;
      snprintf(body, sizeof body, "paging message number %d", k);
      CHECK(m->body_len == strlen(body) && memcmp(m->body, body, m->body_len) == 0);
      CHECK(m->sender == NULL && m->status == WHISPER_STATUS_PENDING);
      total++;
    }
    whisper_page_free(prev);
    prev = p;
    pages++;
    if (n < 10) break;
    after = whisper_page_get(p, n - 1);
  }
  whisper_page_free(prev);
  CHECK(total == 25 && pages == 3);
  /* one conversation: 9 in carol's (0, 3, ..., 24), paged 4 at a time */
  total = 0;
  after = NULL;
  prev = NULL;
  for (;;) {
    CHECK_RC(whisper_search(d.ctx, "paging", "carol", after, 4, &p), WHISPER_OK);
    size_t n = whisper_page_count(p);
    for (size_t i = 0; i < n; i++) {
      const whisper_message_t *m = whisper_page_get(p, i);
      CHECK(strcmp(m->conversation, "carol") == 0 && id_number(m) % 3 == 0);
      total++;
    }
    whisper_page_free(prev);
    prev = p;
    if (n < 4) break;
    after = whisper_page_get(p, n - 1);
  }
  whisper_page_free(prev);
  CHECK(total == 9);
  /* a run is matched inside one run of the text, never across a break */
  outgoing(&d, "alice", "k1", NOW + 5, "京 東, 京\n東 東京", strlen("京 東, 京\n東 東京"));
  EXPECT(&d, "京東", NULL, "");
  EXPECT(&d, "東京", NULL, "k1");
  EXPECT(&d, "京 東", NULL, "k1");
  /* a cursor of its own making: the newest first, then after it */
  CHECK(strcmp(found(&d, "number 24", NULL), "p24") == 0);
  whisper_message_t cur = {.size = sizeof(whisper_message_t),
                           .conversation = "carol", .id = (const uint8_t *)"p24", .id_len = 3,
                           .timestamp_ms = NOW + 1024};
  CHECK_RC(whisper_search(d.ctx, "paging", NULL, &cur, 1, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1 && memcmp(whisper_page_get(p, 0)->id, "p23", 3) == 0);
  whisper_page_free(p);
  /* the oldest possible cursor: nothing after it */
  cur.timestamp_ms = 0;
  CHECK_RC(whisper_search(d.ctx, "paging", NULL, &cur, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  dev_close(&d);
}

/* --- outgoing messages the server takes, postings removed, forgotten, stale -------------------- */

static int count_fn(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  (void)k, (void)kn, (void)v, (void)vn;
  ++*(size_t *)arg;
  return 0;
}

static size_t count_kind(dev *d, int kind) {
  size_t n = 0;
  whisper_store *s = d->cnt.inner;
  CHECK_RC(s->ops.scan(s->user, kind, NULL, 0, NULL, 0, 0, SIZE_MAX, count_fn, &n), WHISPER_OK);
  return n;
}

/* The waiting rows: messages stored, not indexed yet (under 16 zero bytes). */
static size_t count_waiting(dev *d) {
  static const uint8_t zeros[16];
  size_t n = 0;
  whisper_store *s = d->cnt.inner;
  CHECK_RC(s->ops.scan(s->user, WHISPER_REC_SEARCH, zeros, 16, NULL, 0, 0, SIZE_MAX, count_fn, &n),
           WHISPER_OK);
  return n;
}

static void put_be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

/* Plants a posting of `word` (a folded token) for message m (at its sort
 * key) under time ts, made as docs/search.md says ("The keys"). */
static void plant(dev *d, const char *word, const whisper_message_t *m, uint64_t ts) {
  uint8_t salt[16], key[32], mac[32], k[40], v[24];
  static const uint8_t domain = 0x00;
  CHECK_RC(wh_begin(d->ctx), WHISPER_OK);
  CHECK_RC(wh_history_salt(d->ctx, salt), WHISPER_OK);
  wh_hkdf(key, sizeof key, NULL, 0, salt, sizeof salt, "whisper search v1");
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, sizeof key);
  crypto_auth_hmacsha256_update(&st, &domain, 1);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)word, strlen(word));
  crypto_auth_hmacsha256_final(&st, mac);
  memcpy(k, mac, 16);
  put_be64(k + 16, ts);
  CHECK_RC(wh_history_tags(d->ctx, m->conversation, m->id, m->id_len, v, k + 24), WHISPER_OK);
  put_be64(v + 16, m->sort_key);
  CHECK_RC(wh_put(d->ctx, WHISPER_REC_SEARCH, k, sizeof k, v, sizeof v), WHISPER_OK);
  CHECK_RC(wh_finish(d->ctx, WHISPER_OK), WHISPER_OK);
}

static const whisper_message_t *first(whisper_page **p, dev *d, const char *q) {
  whisper_page_free(*p);
  *p = NULL;
  CHECK_RC(whisper_search(d->ctx, q, NULL, NULL, 10, p), WHISPER_OK);
  return whisper_page_count(*p) == 1 ? whisper_page_get(*p, 0) : NULL;
}

static void test_sent_and_removed(const char *file) {
  dev d;
  whisper_page *p = NULL;
  dev_open(&d, file, "bob");
  outgoing(&d, "alice", "o1", NOW + 200, "rocket launch at dawn", 21);
  outgoing(&d, "alice", "o2", NOW + 201, "another rocket", 14);
  const whisper_message_t *m = first(&p, &d, "launch rocket");
  CHECK(m && m->id_len == 2 && memcmp(m->id, "o1", 2) == 0 && m->sort_key == 200 &&
        m->status == WHISPER_STATUS_PENDING);
  /* the server takes it: a new sort key, a new history key; still found */
  CHECK_RC(whisper_history_sent(d.ctx, "alice", (const uint8_t *)"o1", 2, 9999), WHISPER_OK);
  m = first(&p, &d, "launch rocket");
  CHECK(m && m->id_len == 2 && memcmp(m->id, "o1", 2) == 0 && m->sort_key == 9999 &&
        m->status == WHISPER_STATUS_SENT && m->body_len == 21 &&
        memcmp(m->body, "rocket launch at dawn", 21) == 0);
  CHECK_RC(whisper_history_sent(d.ctx, "alice", (const uint8_t *)"o1", 2, 9999), WHISPER_OK);
  EXPECT(&d, "rocket", NULL, "o2,o1");
  EXPECT(&d, "rocket", "alice", "o2,o1");

  /* an edit: the old words out, the new ones in (what history will call) */
  size_t rows = count_kind(&d, WHISPER_REC_SEARCH);
  CHECK(count_waiting(&d) == 0);
  whisper_message_t o1 = {.size = sizeof(whisper_message_t),
                          .conversation = "alice", .id = (const uint8_t *)"o1", .id_len = 2,
                          .sort_key = 9999, .timestamp_ms = NOW + 200};
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_search_remove(d.ctx, &o1, (const uint8_t *)"rocket launch at dawn", 21), WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows - 5); /* 4 words and the conversation */
  EXPECT(&d, "rocket", NULL, "o2");
  EXPECT(&d, "dawn", NULL, "");
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_search_add(d.ctx, &o1, (const uint8_t *)"rocket launch at dawn", 21), WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  /* one waiting row; the search indexes it first */
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows - 4 && count_waiting(&d) == 1);
  EXPECT(&d, "dawn", NULL, "o1");
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows && count_waiting(&d) == 0);
  /* what is indexed is the entry's text as history keeps it, not what add was given */
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_search_add(d.ctx, &o1, (const uint8_t *)"sunset", 6), WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  EXPECT(&d, "sunset", NULL, "");
  EXPECT(&d, "dawn", NULL, "o1");
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows);
  /* words its text no longer holds are not found, though their postings are there */
  plant(&d, "sunset", &o1, o1.timestamp_ms);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows + 1);
  EXPECT(&d, "sunset", NULL, "");
  EXPECT(&d, "dawn", NULL, "o1");
  /* postings under another time (an edit that kept its old postings): found once, at its time */
  plant(&d, "rocket", &o1, NOW + 150);
  plant(&d, "dawn", &o1, NOW + 150);
  EXPECT(&d, "dawn", NULL, "o1");
  EXPECT(&d, "rocket", NULL, "o2,o1");
  CHECK(wh_search_add(d.ctx, NULL, NULL, 0) == WHISPER_EINVAL);
  CHECK(wh_search_remove(d.ctx, NULL, NULL, 0) == WHISPER_EINVAL);

  /* an incoming placeholder the engine deletes: its words go with it */
  rows = count_kind(&d, WHISPER_REC_SEARCH);
  whisper_message_t w = {.size = sizeof(whisper_message_t),
                         .conversation = "alice", .id = (const uint8_t *)"w1", .id_len = 2,
                         .sort_key = 300, .timestamp_ms = NOW + 300};
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_history_incoming_put(d.ctx, &w, "alice", 1, (const uint8_t *)"message-waiting", 15),
           WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows + 1 && count_waiting(&d) == 1);
  EXPECT(&d, "waiting", NULL, "w1");
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows + 3 && count_waiting(&d) == 0);
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_history_incoming_del(d.ctx, "alice", (const uint8_t *)"w1", 2, 300), WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows);
  EXPECT(&d, "waiting", NULL, "");
  /* and one deleted before the index caught up on it: its waiting row goes with it */
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_history_incoming_put(d.ctx, &w, "alice", 1, (const uint8_t *)"message-waiting", 15),
           WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  CHECK(count_waiting(&d) == 1);
  CHECK_RC(wh_begin(d.ctx), WHISPER_OK);
  CHECK_RC(wh_history_incoming_del(d.ctx, "alice", (const uint8_t *)"w1", 2, 300), WHISPER_OK);
  CHECK_RC(wh_finish(d.ctx, WHISPER_OK), WHISPER_OK);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == rows && count_waiting(&d) == 0);
  EXPECT(&d, "waiting", NULL, "");

  /* a history row deleted behind the index's back: its postings are skipped */
  uint8_t hkey[40];
  CHECK_RC(wh_history_tags(d.ctx, "alice", (const uint8_t *)"o2", 2, hkey, hkey + 24), WHISPER_OK);
  for (int i = 0; i < 8; i++) hkey[16 + i] = (uint8_t)((uint64_t)201 >> (8 * (7 - i)));
  CHECK_RC(d.cnt.inner->ops.del(d.cnt.inner->user, WHISPER_REC_HISTORY, hkey, 40), WHISPER_OK);
  EXPECT(&d, "rocket", NULL, "o1");
  whisper_page_free(p);
  dev_close(&d);
}

/* --- hidden entries (operations on another message): never found -------------------------- */

static void test_hidden(const char *file) {
  dev d;
  dev_open(&d, file, "bob");
  whisper_device_t to = {"alice", 1};
  outgoing(&d, "alice", "t1", NOW + 1, "alpha beta", 10);
  /* an edit this device sent: kept hidden, its body holds words too */
  wh_entry_extra x = {.kind = WHISPER_KIND_TEXT, .hidden = 1};
  whisper_message_t op = {.size = sizeof(whisper_message_t),
                          .conversation = "alice", .id = (const uint8_t *)"h1", .id_len = 2,
                          .sort_key = 2, .timestamp_ms = NOW + 2,
                          .body = (const uint8_t *)"alpha gamma", .body_len = 11};
  CHECK_RC(wh_history_outgoing_put(d.ctx, &op, &to, 1, &x), WHISPER_OK);
  EXPECT(&d, "alpha", NULL, "t1");
  EXPECT(&d, "gamma", NULL, "");
  /* indexed again from history (as a store from before the index is): the same */
  CHECK_RC(whisper_search_rebuild(d.ctx), WHISPER_OK);
  EXPECT(&d, "alpha", NULL, "t1");
  EXPECT(&d, "gamma", NULL, "");
  /* a page of one is the newest message that holds the word, not an empty page */
  whisper_page *p = NULL;
  CHECK_RC(whisper_search(d.ctx, "alpha", NULL, NULL, 1, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1);
  whisper_page_free(p);
  dev_close(&d);
}

typedef struct keys {
  uint8_t k[256][40];
  size_t n;
} keys;

static int keys_fn(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  keys *ks = arg;
  (void)v, (void)vn;
  if (kn == 40 && ks->n < 256) memcpy(ks->k[ks->n++], k, 40);
  return 0;
}

/* --- deferred indexing: waiting rows, the catch-up ------------------------------------------ */

/* Edits or deletes this account's message `id` (text NULL: deletes), as
 * the engine does, in a transaction of its own. */
static void change(dev *d, const char *conv, const char *id, const char *text, uint64_t at) {
  wh_history_op op = {text ? WH_OP_EDIT : WH_OP_DELETE, "bob", at, (const uint8_t *)text,
                      text ? strlen(text) : 0, 0};
  int pending = 1;
  CHECK_RC(wh_begin(d->ctx), WHISPER_OK);
  CHECK_RC(wh_history_apply(d->ctx, conv, NULL, (const uint8_t *)id, strlen(id), &op, &pending),
           WHISPER_OK);
  CHECK_RC(wh_finish(d->ctx, WHISPER_OK), WHISPER_OK);
  CHECK(pending == 0);
}

/* Queues message (conv, id) for the index as history's hooks do. */
static void queue(dev *d, const char *conv, const char *id, uint64_t ts, uint64_t sort_key) {
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = conv, .id = (const uint8_t *)id, .id_len = strlen(id),
                         .sort_key = sort_key, .timestamp_ms = ts};
  CHECK_RC(wh_begin(d->ctx), WHISPER_OK);
  CHECK_RC(wh_search_add(d->ctx, &m, (const uint8_t *)"x", 1), WHISPER_OK);
  CHECK_RC(wh_finish(d->ctx, WHISPER_OK), WHISPER_OK);
}

typedef struct rowlist {
  uint8_t k[64][40], v[64][24];
  size_t n;
} rowlist;

static int rowlist_fn(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  rowlist *l = arg;
  if (kn == 40 && vn == 24 && l->n < 64) {
    memcpy(l->k[l->n], k, 40);
    memcpy(l->v[l->n++], v, 24);
  }
  return 0;
}

/* The index rows (waiting or postings) of message (conv, id). */
static size_t rows_of(dev *d, const char *conv, const char *id, int waiting, rowlist *l) {
  static rowlist all;
  uint8_t ctag[16], mtag[16];
  all.n = 0;
  l->n = 0;
  CHECK_RC(wh_history_tags(d->ctx, conv, (const uint8_t *)id, strlen(id), ctag, mtag), WHISPER_OK);
  whisper_store *s = d->cnt.inner;
  CHECK_RC(s->ops.scan(s->user, WHISPER_REC_SEARCH, NULL, 0, NULL, 0, 0, SIZE_MAX, rowlist_fn, &all),
           WHISPER_OK);
  static const uint8_t zeros[16];
  for (size_t i = 0; i < all.n; i++)
    if (memcmp(all.k[i] + 24, mtag, 16) == 0 && (memcmp(all.k[i], zeros, 16) == 0) == waiting) {
      memcpy(l->k[l->n], all.k[i], 40);
      memcpy(l->v[l->n++], all.v[i], 24);
    }
  return l->n;
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void test_deferred(const char *file) {
  dev alice, bob;
  rowlist l;
  dev_open(&alice, NULL, "alice");
  dev_open(&bob, file, "bob");
  pair(&alice, &bob);
  /* stored: one waiting row each (decrypt-and-store, a group's, an outgoing one), no posting */
  incoming(&alice, &bob, "alice", "d1", NOW + 1, "first deferred words", 20);
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == 1 && count_waiting(&bob) == 1);
  incoming(&alice, &bob, "grp", "d2", NOW + 2, "second deferred words", 21);
  outgoing(&bob, "alice", "d3", NOW + 3, "third deferred words", 20);
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == 3 && count_waiting(&bob) == 3);
  CHECK(rows_of(&bob, "alice", "d1", 1, &l) == 1 && get_be64(l.k[0] + 16) == NOW + 1 &&
        get_be64(l.v[0] + 16) == 1);
  /* a search indexes them first: 3 words and the conversation each */
  EXPECT(&bob, "deferred", NULL, "d3,d2,d1");
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == 12 && count_waiting(&bob) == 0);
  EXPECT(&bob, "SECOND words", "grp", "d2");
  size_t base = count_kind(&bob, WHISPER_REC_SEARCH);

  /* an edit before the catch-up: the new words only */
  outgoing(&bob, "alice", "e1", NOW + 10, "teh typo here", 13);
  change(&bob, "alice", "e1", "the fixed text", NOW + 11);
  CHECK(count_waiting(&bob) == 1 && rows_of(&bob, "alice", "e1", 0, &l) == 0);
  EXPECT(&bob, "teh", NULL, "");
  EXPECT(&bob, "typo", NULL, "");
  EXPECT(&bob, "fixed", NULL, "e1");
  CHECK(rows_of(&bob, "alice", "e1", 0, &l) == 4 && count_waiting(&bob) == 0);
  /* and after it: the old postings out, the new ones in after the next catch-up */
  change(&bob, "alice", "e1", "brand new words", NOW + 12);
  CHECK(rows_of(&bob, "alice", "e1", 0, &l) == 0 && count_waiting(&bob) == 1);
  EXPECT(&bob, "fixed", NULL, "");
  EXPECT(&bob, "brand new", NULL, "e1");
  EXPECT(&bob, "words", NULL, "e1,d3,d2,d1");
  CHECK(rows_of(&bob, "alice", "e1", 0, &l) == 4);
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == base + 4);
  base += 4;

  /* a delete before the catch-up: never indexed, its waiting row gone */
  outgoing(&bob, "alice", "x1", NOW + 20, "delete me soon", 14);
  CHECK(count_waiting(&bob) == 1);
  change(&bob, "alice", "x1", NULL, NOW + 21);
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base);
  EXPECT(&bob, "soon", NULL, "");
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == base);
  /* a waiting row left for it anyway: the catch-up does not index a deleted message */
  queue(&bob, "alice", "x1", NOW + 20, 20);
  EXPECT(&bob, "delete", NULL, "");
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base);
  /* (nor one marked deleted that still holds text: a row written so by hand) */
  outgoing(&bob, "alice", "z1", NOW + 25, "tombstone with words", 20);
  CHECK(rows_of(&bob, "alice", "z1", 1, &l) == 1);
  uint8_t zkey[40];
  CHECK_RC(wh_history_tags(bob.ctx, "alice", (const uint8_t *)"z1", 2, zkey, zkey + 24), WHISPER_OK);
  put_be64(zkey + 16, 25);
  whisper_store *zs = bob.cnt.inner;
  whisper_buf *zb = NULL;
  CHECK_RC(zs->ops.get(zs->user, WHISPER_REC_HISTORY, zkey, 40, &zb), WHISPER_OK);
  Whisper__Store__HistoryEntry *ze = whisper__store__history_entry__unpack(NULL, zb->len, zb->data);
  CHECK(ze != NULL && ze->body.len == 20);
  ze->has_deleted = ze->deleted = 1;
  uint8_t zpacked[512];
  size_t zn = whisper__store__history_entry__pack(ze, zpacked);
  whisper__store__history_entry__free_unpacked(ze, NULL);
  whisper_buf_free(zb);
  CHECK_RC(zs->ops.put(zs->user, WHISPER_REC_HISTORY, zkey, 40, zpacked, zn), WHISPER_OK);
  EXPECT(&bob, "tombstone", NULL, "");
  CHECK(count_waiting(&bob) == 0 && rows_of(&bob, "alice", "z1", 0, &l) == 0);
  /* nor a hidden one (an operation), nor one that is gone */
  whisper_device_t to = {"alice", 1};
  whisper_message_t h = {.size = sizeof(whisper_message_t),
                         .conversation = "alice", .id = (const uint8_t *)"h1", .id_len = 2,
                         .sort_key = 30, .timestamp_ms = NOW + 30,
                         .body = (const uint8_t *)"hidden words", .body_len = 12};
  wh_entry_extra hx = {.hidden = 1};
  CHECK_RC(wh_history_outgoing_put(bob.ctx, &h, &to, 1, &hx), WHISPER_OK);
  CHECK(count_waiting(&bob) == 0); /* (history does not queue it) */
  queue(&bob, "alice", "h1", NOW + 30, 30);
  queue(&bob, "alice", "nowhere", NOW + 31, 31);
  CHECK(count_waiting(&bob) == 2);
  EXPECT(&bob, "hidden", NULL, "");
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base);

  /* sent before the catch-up: found where history keeps it now, and indexed there */
  outgoing(&bob, "alice", "s1", NOW + 40, "moved before indexed", 20);
  CHECK_RC(whisper_history_sent(bob.ctx, "alice", (const uint8_t *)"s1", 2, 77777), WHISPER_OK);
  CHECK(rows_of(&bob, "alice", "s1", 1, &l) == 1 && get_be64(l.v[0] + 16) == 40);
  whisper_page *p = NULL;
  const whisper_message_t *m = first(&p, &bob, "indexed moved");
  CHECK(m && m->id_len == 2 && memcmp(m->id, "s1", 2) == 0 && m->sort_key == 77777);
  CHECK(rows_of(&bob, "alice", "s1", 0, &l) == 4);
  for (size_t i = 0; i < l.n; i++) CHECK(get_be64(l.v[i] + 16) == 77777);
  base += 4;

  /* the catch-up fails (the index cannot be written): the search fails, nothing changes */
  outgoing(&bob, "alice", "f1", NOW + 50, "failing catch up", 16);
  bob.cnt.fail_kind = WHISPER_REC_SEARCH;
  whisper_page_free(p);
  p = (whisper_page *)1;
  CHECK_RC(whisper_search(bob.ctx, "failing", NULL, NULL, 10, &p), WHISPER_ESTORE);
  CHECK(p == NULL);
  CHECK_RC(whisper_search_prepare(bob.ctx), WHISPER_ESTORE);
  bob.cnt.fail_kind = 0;
  CHECK(count_waiting(&bob) == 1 && count_kind(&bob, WHISPER_REC_SEARCH) == base + 1);
  EXPECT(&bob, "failing", NULL, "f1");
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base + 4);
  base += 4;
  /* a search that fails after the catch-up (a posting it reads is corrupt):
   * the catch-up is rolled back with it */
  outgoing(&bob, "alice", "g1", NOW + 60, "good words", 10);
  CHECK(rows_of(&bob, "alice", "f1", 0, &l) == 4);
  for (size_t i = 0; i < l.n; i++)
    CHECK_RC(bob.cnt.inner->ops.put(bob.cnt.inner->user, WHISPER_REC_SEARCH, l.k[i], 40,
                                    (const uint8_t *)"bad", 3), WHISPER_OK);
  p = (whisper_page *)1;
  CHECK_RC(whisper_search(bob.ctx, "failing", NULL, NULL, 10, &p), WHISPER_ECORRUPT);
  CHECK(p == NULL && count_waiting(&bob) == 1);
  EXPECT(&bob, "good", NULL, "g1");
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base + 3);
  base += 3;

  /* a waiting row that is not one (a value of 3 bytes): ECORRUPT, until the rebuild */
  static const uint8_t zeros[40];
  whisper_store *s = bob.cnt.inner;
  CHECK_RC(s->ops.put(s->user, WHISPER_REC_SEARCH, zeros, 40, (const uint8_t *)"bad", 3), WHISPER_OK);
  p = (whisper_page *)1;
  CHECK_RC(whisper_search(bob.ctx, "deferred", NULL, NULL, 10, &p), WHISPER_ECORRUPT);
  CHECK(p == NULL && strstr(whisper_ctx_last_error(bob.ctx), "corrupt") != NULL);
  CHECK_RC(whisper_search_prepare(bob.ctx), WHISPER_ECORRUPT);
  int more = 0;
  CHECK_RC(wh_search_index_some(bob.ctx, 10, &more), WHISPER_ECORRUPT);
  CHECK(more == 0 && count_waiting(&bob) == 1);
  CHECK_RC(whisper_search_rebuild(bob.ctx), WHISPER_OK);
  CHECK(count_waiting(&bob) == 0 && count_kind(&bob, WHISPER_REC_SEARCH) == base);
  EXPECT(&bob, "deferred", NULL, "d3,d2,d1");
  EXPECT(&bob, "brand", NULL, "e1");
  EXPECT(&bob, "indexed", NULL, "s1");
  EXPECT(&bob, "failing", NULL, "f1");
  dev_close(&alice);
  dev_close(&bob);
}

/* A few at a time (the client engine's ticks), the newest first. */
static void test_index_some(const char *file) {
  dev d;
  dev_open(&d, file, "bob");
  char id[16], body[64];
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "q%d", i);
    snprintf(body, sizeof body, "queued message %d", i);
    outgoing(&d, "alice", id, NOW + 100 + (uint64_t)i, body, strlen(body));
  }
  CHECK(count_waiting(&d) == 10);
  int more = 0;
  unsigned writes = d.cnt.writes;
  CHECK_RC(wh_search_index_some(d.ctx, 3, &more), WHISPER_OK);
  CHECK(more == 1 && count_waiting(&d) == 7 && d.cnt.writes > writes);
  rowlist l;
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "q%d", i);
    CHECK(rows_of(&d, "alice", id, 1, &l) == (i < 7)); /* the 3 newest are indexed */
    CHECK(rows_of(&d, "alice", id, 0, &l) == (i < 7 ? 0 : 4));
  }
  CHECK_RC(wh_search_index_some(d.ctx, 7, &more), WHISPER_OK);
  CHECK(more == 0 && count_waiting(&d) == 0 && count_kind(&d, WHISPER_REC_SEARCH) == 10 * 4);
  writes = d.cnt.writes;
  CHECK_RC(wh_search_index_some(d.ctx, 7, &more), WHISPER_OK);
  CHECK(more == 0 && d.cnt.writes == writes);
  EXPECT(&d, "queued", NULL, "q9,q8,q7,q6,q5,q4,q3,q2,q1,q0");
  dev_close(&d);

  /* a new history is marked indexed with its first message (nothing is older) */
  whisper_store *inner = NULL;
  CHECK_RC(whisper_store_memory_new(&inner), WHISPER_OK);
  memset(&d, 0, sizeof d);
  dev_wrap(&d, inner, WHISPER_STORE_OPS_VERSION);
  CHECK_RC(whisper_identity_generate(d.ctx, "bob", 1, 0, NOW), WHISPER_OK);
  whisper_buf *mark = NULL;
  CHECK_RC(d.cnt.inner->ops.get(d.cnt.inner->user, WHISPER_REC_META, (const uint8_t *)"search_index",
                                12, &mark), WHISPER_ENOTFOUND);
  outgoing(&d, "alice", "o0", NOW, "first message", 13);
  CHECK_RC(d.cnt.inner->ops.get(d.cnt.inner->user, WHISPER_REC_META, (const uint8_t *)"search_index",
                                12, &mark), WHISPER_OK);
  CHECK(mark && mark->len == 1 && mark->data[0] == 1);
  whisper_buf_free(mark);
  CHECK_RC(wh_search_index_some(d.ctx, 7, &more), WHISPER_OK);
  CHECK(more == 0 && count_waiting(&d) == 0 && count_kind(&d, WHISPER_REC_SEARCH) == 3);
  /* a store whose older history is not indexed yet (as an older libwhisper
   * left it: no mark): left to whisper_search_prepare() */
  CHECK_RC(d.cnt.inner->ops.del(d.cnt.inner->user, WHISPER_REC_META, (const uint8_t *)"search_index",
                                12), WHISPER_OK);
  static keys ks;
  ks.n = 0;
  whisper_store *s = d.cnt.inner;
  CHECK_RC(s->ops.scan(s->user, WHISPER_REC_SEARCH, NULL, 0, NULL, 0, 0, 256, keys_fn, &ks), WHISPER_OK);
  for (size_t i = 0; i < ks.n; i++) CHECK_RC(s->ops.del(s->user, WHISPER_REC_SEARCH, ks.k[i], 40), WHISPER_OK);
  CHECK(count_kind(&d, WHISPER_REC_SEARCH) == 0);
  outgoing(&d, "alice", "o1", NOW + 1, "older history", 13);
  CHECK(count_waiting(&d) == 1);
  CHECK_RC(wh_search_index_some(d.ctx, 7, &more), WHISPER_OK);
  CHECK(more == 0 && count_waiting(&d) == 1 && count_kind(&d, WHISPER_REC_SEARCH) == 1);
  writes = d.cnt.writes;
  CHECK_RC(whisper_search_prepare(d.ctx), WHISPER_OK); /* indexes it all, then nothing waits */
  CHECK(count_waiting(&d) == 0 && count_kind(&d, WHISPER_REC_SEARCH) == 6);
  CHECK(d.cnt.writes - writes == 8); /* 6 postings, the mark, the waiting row out: once */
  EXPECT(&d, "older", NULL, "o1");
  EXPECT(&d, "first", NULL, "o0");
  dev_close(&d);
}

/* A crash between storing messages and the catch-up: the waiting rows
 * were committed with the messages, so a search after the restart finds
 * them. The child stores and dies without closing anything. */
static void test_crash(void) {
  dev d;
  dev_open(&d, "crash.db", "bob");
  outgoing(&d, "alice", "c0", NOW + 1, "before the crash", 16);
  EXPECT(&d, "crash", NULL, "c0");
  char path[256];
  snprintf(path, sizeof path, "%s", d.path);
  dev_close(&d);
  fflush(NULL);
  int fails = t_fail;
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dev c;
    memset(&c, 0, sizeof c);
    whisper_store *inner = NULL;
    if (sqlite_open(&inner, path, KEY) != WHISPER_OK) _exit(2);
    dev_wrap(&c, inner, WHISPER_STORE_OPS_VERSION);
    char id[16], body[64];
    for (int i = 1; i <= 40; i++) {
      snprintf(id, sizeof id, "c%d", i);
      snprintf(body, sizeof body, "stored then crashed %d", i);
      outgoing(&c, i % 2 ? "alice" : "carol", id, NOW + 1 + (uint64_t)i, body, strlen(body));
    }
    _exit(t_fail != fails); /* no close, no checkpoint, no catch-up */
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  whisper_store *inner = NULL;
  memset(&d, 0, sizeof d);
  snprintf(d.path, sizeof d.path, "%s", path);
  CHECK_RC(sqlite_open(&inner, path, KEY), WHISPER_OK);
  dev_wrap(&d, inner, WHISPER_STORE_OPS_VERSION);
  CHECK(count_waiting(&d) == 40);
  whisper_page *p = NULL;
  CHECK_RC(whisper_search(d.ctx, "crashed", NULL, NULL, 100, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 40);
  whisper_page_free(p);
  CHECK(count_waiting(&d) == 0);
  EXPECT(&d, "crashed 17", "alice", "c17");
  EXPECT(&d, "crash", NULL, "c0");
  dev_close(&d);
}

/* --- indexing fails: the message is not kept either ----------------------------------------- */

static void test_index_fails(const char *file) {
  dev alice, bob;
  dev_open(&alice, NULL, "alice");
  dev_open(&bob, file, "bob");
  pair(&alice, &bob);
  bob.cnt.fail_kind = WHISPER_REC_SEARCH;
  whisper_device_t to = {"alice", 1};
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = "alice", .id = (const uint8_t *)"o1", .id_len = 2,
                         .sort_key = 1, .timestamp_ms = NOW + 1, .body = (const uint8_t *)"hello",
                         .body_len = 5};
  CHECK_RC(whisper_history_add_outgoing(bob.ctx, &m, &to, 1), WHISPER_ESTORE);
  whisper_buf *c = NULL, *pt = NULL;
  int type = 0;
  CHECK_RC(whisper_session_encrypt(alice.ctx, "bob", 1, (const uint8_t *)"kept together", 13, NOW,
                                   &type, &c), WHISPER_OK);
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = "alice", .id = (const uint8_t *)"i1", .id_len = 2,
                            .sort_key = 2, .timestamp_ms = NOW + 2};
  CHECK_RC(whisper_session_decrypt_store(bob.ctx, "alice", 1, type, c->data, c->len, &meta, &pt),
           WHISPER_ESTORE);
  CHECK(pt == NULL);
  whisper_page *p = NULL;
  CHECK_RC(whisper_history_page(bob.ctx, "alice", 0, NULL, 0, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  CHECK_RC(whisper_outbox_page(bob.ctx, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  /* the session did not move on: the same message decrypts once the store works */
  bob.cnt.fail_kind = 0;
  CHECK_RC(whisper_session_decrypt_store(bob.ctx, "alice", 1, type, c->data, c->len, &meta, &pt),
           WHISPER_OK);
  CHECK(pt && pt->len == 13);
  CHECK_RC(whisper_history_add_outgoing(bob.ctx, &m, &to, 1), WHISPER_OK);
  EXPECT(&bob, "kept", NULL, "i1");
  EXPECT(&bob, "hello", NULL, "o1");
  whisper_buf_free(c);
  whisper_buf_free(pt);
  dev_close(&alice);
  dev_close(&bob);
}

/* --- a corrupt index, and its rebuild -------------------------------------------------------- */

static void test_corrupt_and_rebuild(const char *file) {
  dev alice, bob;
  dev_open(&alice, NULL, "alice");
  dev_open(&bob, file, "bob");
  corpus(&alice, &bob);
  EXPECT(&bob, "elan", NULL, "e3,e2,f1");
  size_t rows = count_kind(&bob, WHISPER_REC_SEARCH);
  CHECK(rows > 30);
  static keys ks;
  ks.n = 0;
  whisper_store *s = bob.cnt.inner;
  CHECK_RC(s->ops.scan(s->user, WHISPER_REC_SEARCH, NULL, 0, NULL, 0, 0, 256, keys_fn, &ks), WHISPER_OK);
  CHECK(ks.n == rows);
  for (size_t i = 0; i < ks.n; i++)
    CHECK_RC(s->ops.put(s->user, WHISPER_REC_SEARCH, ks.k[i], 40, (const uint8_t *)"bad", 3), WHISPER_OK);
  whisper_page *p = (whisper_page *)1;
  CHECK_RC(whisper_search(bob.ctx, "elan", NULL, NULL, 10, &p), WHISPER_ECORRUPT);
  CHECK(p == NULL && strstr(whisper_ctx_last_error(bob.ctx), "corrupt") != NULL);
  /* a row under a word's tag with a key of another length */
  CHECK_RC(s->ops.put(s->user, WHISPER_REC_SEARCH, ks.k[0], 30, (const uint8_t *)"x", 1), WHISPER_OK);
  CHECK_RC(whisper_search_rebuild(bob.ctx), WHISPER_OK);
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) == rows);
  queries(&bob);
  dev_close(&alice);
  dev_close(&bob);
}

/* --- history kept before the index: the schema-2 fixtures ------------------------------------ */

static void copy_fixture(char *out, size_t n, const char *name) {
  char src[512], cmd[1200];
  snprintf(src, sizeof src, "%s/%s", WHISPER_VECTORS_DIR, name);
  snprintf(out, n, "%s/%s", dir, name);
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, out);
  CHECK(system(cmd) == 0);
}

static void test_migration(void) {
  char pa[300], pb[300];
  uint8_t key[32] = "store-v2 fixture key";
  copy_fixture(pa, sizeof pa, "store-v2-alice.db");
  copy_fixture(pb, sizeof pb, "store-v2-bob.db");
  whisper_store *sa, *sb;
  dev a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  CHECK_RC(sqlite_open(&sa, pa, key), WHISPER_OK);
  CHECK_RC(sqlite_open(&sb, pb, key), WHISPER_OK);
  dev_wrap(&a, sa, WHISPER_STORE_OPS_VERSION);
  dev_wrap(&b, sb, WHISPER_STORE_OPS_VERSION);
  CHECK(count_kind(&b, WHISPER_REC_SEARCH) == 0 && count_kind(&b, WHISPER_REC_HISTORY) == 300);
  /* the first search indexes the 300 messages kept before, once */
  EXPECT(&b, "second", NULL, "in-2");
  size_t rows = count_kind(&b, WHISPER_REC_SEARCH);
  CHECK(rows > 600);
  unsigned writes = b.cnt.writes;
  EXPECT(&b, "THIRD", "alice", "in-3");
  EXPECT(&b, "message 17 bulk", NULL, "bulk-17");
  EXPECT(&b, "bulk 296", "bulk", "bulk-296");
  CHECK_RC(whisper_search_prepare(b.ctx), WHISPER_OK);
  CHECK(b.cnt.writes == writes && count_kind(&b, WHISPER_REC_SEARCH) == rows);
  int total = 0;
  const whisper_message_t *after = NULL;
  whisper_page *p = NULL, *prev = NULL;
  for (;;) {
    CHECK_RC(whisper_search(b.ctx, "bulk message", NULL, after, 100, &p), WHISPER_OK);
    size_t n = whisper_page_count(p);
    total += (int)n;
    whisper_page_free(prev);
    prev = p;
    if (n < 100) break;
    after = whisper_page_get(p, n - 1);
  }
  whisper_page_free(prev);
  CHECK(total == 297);
  /* alice's: one sent (sort key 15), one still in the outbox */
  CHECK_RC(whisper_search_prepare(a.ctx), WHISPER_OK);
  EXPECT(&a, "hello BOB", NULL, "out-1");
  EXPECT(&a, "pending", "bob", "out-2");
  CHECK_RC(whisper_history_sent(a.ctx, "bob", (const uint8_t *)"out-2", 5, 45), WHISPER_OK);
  EXPECT(&a, "still pending", NULL, "out-2");
  /* and a new message goes in at once */
  outgoing(&a, "bob", "out-3", NOW + 5, "after the index", 15);
  EXPECT(&a, "index", NULL, "out-3");
  dev_close(&a);
  dev_close(&b);
  /* reopened: the index is there, marked complete */
  CHECK_RC(sqlite_open(&sb, pb, key), WHISPER_OK);
  dev_wrap(&b, sb, WHISPER_STORE_OPS_VERSION);
  EXPECT(&b, "first", NULL, "in-1");
  CHECK(b.cnt.writes == 0 && count_kind(&b, WHISPER_REC_SEARCH) == rows);
  dev_close(&b);
}

/* --- bad input ------------------------------------------------------------------------------- */

static void bad(dev *d, int want, const char *q, const char *conv, const whisper_message_t *after,
                size_t limit, int line) {
  whisper_page *p = (whisper_page *)1;
  unsigned writes = d->cnt.writes;
  int rc = whisper_search(d->ctx, q, conv, after, limit, &p);
  if (rc == want && p == NULL && d->cnt.writes == writes && whisper_ctx_last_error(d->ctx)[0]) {
    t_pass++;
  } else {
    t_fail++;
    fprintf(stderr, "%s:%d: bad input gave %d (wanted %d), page %p, %u writes, \"%s\"\n", __FILE__,
            line, rc, want, (void *)p, d->cnt.writes - writes, whisper_ctx_last_error(d->ctx));
  }
}
#define BAD(d, q, conv, after, limit) bad(d, WHISPER_EINVAL, q, conv, after, limit, __LINE__)

static void test_bad_input(const char *file) {
  dev d;
  dev_open(&d, file, "bob");
  outgoing(&d, "alice", "x1", NOW + 1, "some words here", 15);
  EXPECT(&d, "words", NULL, "x1");
  whisper_page *p = NULL;
  CHECK_RC(whisper_search(NULL, "words", NULL, NULL, 10, &p), WHISPER_EINVAL);
  CHECK_RC(whisper_search(d.ctx, "words", NULL, NULL, 10, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_search_prepare(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_search_rebuild(NULL), WHISPER_EINVAL);
  BAD(&d, NULL, NULL, NULL, 10);
  BAD(&d, "", NULL, NULL, 10);
  BAD(&d, "   ", NULL, NULL, 10);
  BAD(&d, ",.;!? -- ...", NULL, NULL, 10);
  BAD(&d, "\xff\xfe", NULL, NULL, 10);
  BAD(&d, "words\xc3", NULL, NULL, 10);
  BAD(&d, "w\xed\xa0\x80rds", NULL, NULL, 10);
  BAD(&d, "words", NULL, NULL, 0);
  BAD(&d, "words", NULL, NULL, WHISPER_SEARCH_LIMIT_MAX + 1);
  BAD(&d, "words", "", NULL, 10);
  char longq[WHISPER_SEARCH_QUERY_MAX + 2];
  memset(longq, 'a', sizeof longq - 1);
  longq[WHISPER_SEARCH_QUERY_MAX + 1] = 0;
  BAD(&d, longq, NULL, NULL, 10);
  longq[WHISPER_SEARCH_QUERY_MAX] = 0; /* the longest: fine */
  EXPECT(&d, longq, NULL, "");
  BAD(&d, "words", longq + WHISPER_SEARCH_QUERY_MAX - 256, NULL, 10);
  char many[400] = "";
  for (int i = 0; i < WHISPER_SEARCH_WORDS_MAX; i++) strcat(many, i ? " w" : "w");
  EXPECT(&d, many, NULL, ""); /* 64 words: fine */
  strcat(many, " w");
  BAD(&d, many, NULL, NULL, 10);
  whisper_message_t after = {.size = sizeof(whisper_message_t),
                             .conversation = "alice", .id = (const uint8_t *)"x1", .id_len = 2,
                             .timestamp_ms = NOW + 1};
  after.conversation = NULL;
  BAD(&d, "words", NULL, &after, 10);
  after.conversation = "";
  BAD(&d, "words", NULL, &after, 10);
  after.conversation = "alice";
  after.id = NULL;
  BAD(&d, "words", NULL, &after, 10);
  after.id = (const uint8_t *)"x1";
  after.id_len = 0;
  BAD(&d, "words", NULL, &after, 10);
  after.id_len = WHISPER_MESSAGE_ID_MAX + 1;
  BAD(&d, "words", NULL, &after, 10);
  /* `after` is versioned (docs/api.md): a size below 1.0's is refused */
  after.id_len = 2;
  after.size = 0;
  BAD(&d, "words", NULL, &after, 10);
  CHECK(strstr(whisper_ctx_last_error(d.ctx), "WHISPER_MESSAGE_INIT") != NULL);
  after.size = WHISPER_MESSAGE_SIZE_1_0 - 1;
  BAD(&d, "words", NULL, &after, 10);
  /* a group message's meta likewise, before anything is decrypted */
  {
    whisper_message_t gm = {.size = 0, .conversation = "grp", .id = (const uint8_t *)"g0",
                            .id_len = 2, .sort_key = 1, .timestamp_ms = NOW};
    CHECK_RC(whisper_sender_key_decrypt_store(d.ctx, "alice", 1, (const uint8_t *)"x", 1, &gm, NULL),
             WHISPER_EINVAL);
    CHECK(strstr(whisper_ctx_last_error(d.ctx), "WHISPER_MESSAGE_INIT") != NULL);
  }
  /* and a search that is fine writes nothing */
  unsigned writes = d.cnt.writes;
  EXPECT(&d, "WORDS here", "alice", "x1");
  CHECK(d.cnt.writes == writes);
  dev_close(&d);

  /* a store without scan (interface 1) */
  whisper_store *inner = NULL;
  CHECK_RC(whisper_store_memory_new(&inner), WHISPER_OK);
  memset(&d, 0, sizeof d);
  dev_wrap(&d, inner, 1);
  BAD(&d, "words", NULL, NULL, 10);
  CHECK_RC(whisper_search_prepare(d.ctx), WHISPER_EINVAL);
  CHECK_RC(whisper_search_rebuild(d.ctx), WHISPER_EINVAL);
  CHECK(d.cnt.writes == 0);
  dev_close(&d);
}

/* --- encryption at rest: no word, no unkeyed hash of one, in the file ---------------------------- */

static uint8_t *slurp(const char *path, size_t *n) {
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

typedef struct file_bytes {
  uint8_t *b[3];
  size_t n[3];
} file_bytes;

static int in_file(const file_bytes *f, const uint8_t *needle, size_t m) {
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; f->b[k] && i + m <= f->n[k]; i++)
      if (memcmp(f->b[k] + i, needle, m) == 0) return 1;
  return 0;
}

static int leaks; /* needles found */

static void needle(const file_bytes *f, const uint8_t *p, size_t n, const char *what, const char *word) {
  if (n && in_file(f, p, n)) {
    leaks++;
    fprintf(stderr, "the store file holds %s of \"%s\"\n", what, word);
  }
}

static void hex(char *out, const uint8_t *p, size_t n, int upper) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, upper ? "%02X" : "%02x", p[i]);
}

/* The word's bytes, and its digests raw (the first 16 bytes: a truncated
 * tag would be a prefix) and in hex (lower and upper, the first 32 digits). */
static void needles(const file_bytes *f, const uint8_t *w, size_t n, const char *word) {
  static const char *const mds[] = {"SHA256", "SHA1", "MD5", "SHA512"};
  uint8_t d[64], pre[WH_TOK_MAX + 1];
  char h[129];
  needle(f, w, n, "the bytes", word);
  pre[0] = 0; /* also as the index's tag input, unkeyed */
  memcpy(pre + 1, w, n);
  for (int withpre = 0; withpre < 2; withpre++) {
    const uint8_t *in = withpre ? pre : w;
    size_t in_n = withpre ? n + 1 : n;
    for (size_t k = 0; k < sizeof mds / sizeof mds[0]; k++) {
      unsigned dn = 0;
      CHECK(EVP_Digest(in, in_n, d, &dn, EVP_get_digestbyname(mds[k]), NULL) == 1);
      needle(f, d, 16, mds[k], word);
      hex(h, d, 16, 0);
      needle(f, (const uint8_t *)h, 32, "a hex digest", word);
      hex(h, d, 16, 1);
      needle(f, (const uint8_t *)h, 32, "a hex digest", word);
    }
    crypto_generichash(d, 16, in, in_n, NULL, 0);
    needle(f, d, 16, "BLAKE2b-128", word);
    crypto_generichash(d, 32, in, in_n, NULL, 0);
    needle(f, d, 16, "BLAKE2b-256", word);
  }
}

typedef struct word_toks {
  uint8_t t[16][WH_TOK_MAX];
  size_t n[16], count;
} word_toks;

static int word_tok(void *arg, const uint8_t *t, size_t n, int kind) {
  word_toks *w = arg;
  (void)kind;
  if (w->count < 16) memcpy(w->t[w->count], t, n), w->n[w->count++] = n;
  return 0;
}

static void test_at_rest(void) {
  static const char *const words[] = {"Xylophonist", "Quagmirezz", "Überschwänglichkeit",
                                      "Ωκεανός", "Щедрость", "蜃気楼", "Fjøsnisse", "🦄🌈"};
  enum { NW = sizeof words / sizeof words[0] };
  char body[512] = "";
  for (int i = 0; i < NW; i++) strcat(strcat(body, words[i]), i % 2 ? ", " : " ");
  dev alice, bob;
  dev_open(&alice, NULL, "alice");
  dev_open(&bob, "rest.db", "bob");
  pair(&alice, &bob);
  outgoing(&bob, "alice", "r1", NOW + 1, body, strlen(body));
  incoming(&alice, &bob, "alice", "r2", NOW + 2, body, strlen(body));
  incoming(&alice, &bob, "grp", "r3", NOW + 3, body, strlen(body));
  CHECK_RC(whisper_history_sent(bob.ctx, "alice", (const uint8_t *)"r1", 2, 77), WHISPER_OK);
  EXPECT(&bob, "xylophonist ueberschwanglichkeit", NULL, "");
  EXPECT(&bob, "xylophonist uberschwanglichkeit", NULL, "r3,r2,r1");
  CHECK(count_kind(&bob, WHISPER_REC_SEARCH) >= 3 * (NW + 3));
  dev_close(&alice);
  dev_close(&bob);

  char p[300];
  file_bytes f;
  memset(&f, 0, sizeof f);
  f.b[0] = slurp(bob.path, &f.n[0]);
  snprintf(p, sizeof p, "%s-wal", bob.path);
  f.b[1] = slurp(p, &f.n[1]);
  snprintf(p, sizeof p, "%s-shm", bob.path);
  f.b[2] = slurp(p, &f.n[2]);
  CHECK(f.b[0] != NULL && f.n[0] > 4096);
  /* the scanner sees what is in the clear: the meta table's names */
  CHECK(in_file(&f, (const uint8_t *)"key_check", 9));
  leaks = 0;
  for (int i = 0; i < NW; i++) {
    const uint8_t *w = (const uint8_t *)words[i];
    size_t n = strlen(words[i]);
    needles(&f, w, n, words[i]);
    char low[64], up[64];
    for (size_t k = 0; k <= n; k++) low[k] = (char)tolower(w[k]), up[k] = (char)toupper(w[k]);
    needles(&f, (const uint8_t *)low, n, words[i]);
    needles(&f, (const uint8_t *)up, n, words[i]);
    word_toks t; /* folded: the word, or its clusters and their run */
    memset(&t, 0, sizeof t);
    wh_fold_tokens(w, n, word_tok, &t);
    CHECK(t.count >= 1);
    uint8_t run[WH_TOK_MAX * 4];
    size_t rn = 0;
    for (size_t k = 0; k < t.count; k++) {
      if (t.n[k] >= 5) needles(&f, t.t[k], t.n[k], words[i]);
      else needles(&f, t.t[k], 0, words[i]); /* (too short to grep: hashes only) */
      if (t.n[k] < 5) {
        uint8_t d[32];
        crypto_hash_sha256(d, t.t[k], t.n[k]);
        needle(&f, d, 16, "SHA256", words[i]);
      }
      memcpy(run + rn, t.t[k], t.n[k]);
      rn += t.n[k];
    }
    needles(&f, run, rn, words[i]);
  }
  CHECK(leaks == 0);
  for (int k = 0; k < 3; k++) free(f.b[k]);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/whisper-test-search-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  test_tokens();
  test_corpus(NULL);
  test_corpus("corpus.db");
  test_paging(NULL);
  test_paging("paging.db");
  test_sent_and_removed(NULL);
  test_sent_and_removed("sent.db");
  test_hidden(NULL);
  test_hidden("hidden.db");
  test_deferred(NULL);
  test_deferred("deferred.db");
  test_index_some(NULL);
  test_index_some("some.db");
  test_crash();
  test_index_fails(NULL);
  test_index_fails("fails.db");
  test_corrupt_and_rebuild(NULL);
  test_corrupt_and_rebuild("corrupt.db");
  test_migration();
  test_bad_input(NULL);
  test_bad_input("bad.db");
  test_at_rest();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  return test_done();
}

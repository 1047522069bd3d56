/* The store contract: real rollback in the memory store, failures injected
 * into every store call of every operation (the operation fails cleanly and
 * a retry succeeds as if nothing happened), and refused messages leaving
 * the stored bytes untouched. */
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define NOW 1700000000000ULL

/* A store that forwards to a memory store and fails call number `fail_at`
 * (counting begin, commit, get, put, add and del) once. */
typedef struct faulty {
  whisper_store *inner;
  long calls, fail_at;
  int failed;
  char why[64]; /* its last_error (ops version 5) */
} faulty;

static int tick(faulty *f) {
  if (f->fail_at >= 0 && f->calls++ == f->fail_at) {
    f->failed = 1;
    snprintf(f->why, sizeof f->why, "faulty: call %ld failed", f->fail_at);
    return 1;
  }
  return 0;
}

static const char *f_last_error(void *u) {
  faulty *f = u;
  return f->why;
}

static int f_begin(void *u) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.begin(f->inner->user);
}
static int f_commit(void *u) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.commit(f->inner->user);
}
static void f_rollback(void *u) {
  faulty *f = u;
  f->inner->ops.rollback(f->inner->user);
}
static int f_get(void *u, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.get(f->inner->user, kind, k, n, out);
}
static int f_put(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.put(f->inner->user, kind, k, n, v, vn);
}
static int f_del(void *u, int kind, const uint8_t *k, size_t n) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.del(f->inner->user, kind, k, n);
}

static int f_scan(void *u, int kind, const uint8_t *p, size_t pn, const uint8_t *b, size_t bn,
                  int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE
                 : f->inner->ops.scan(f->inner->user, kind, p, pn, b, bn, desc, limit, fn, arg);
}

static int f_add(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  faulty *f = u;
  return tick(f) ? WHISPER_ESTORE : f->inner->ops.add(f->inner->user, kind, k, n, v, vn);
}

static const whisper_store_ops faulty_ops = {WHISPER_STORE_OPS_VERSION, f_begin, f_commit,
                                             f_rollback, f_get, f_put, f_del, NULL, f_scan,
                                             f_add, NULL, NULL, NULL, f_last_error};

/* Reads the raw session record for an address (NULL if none). */
static whisper_buf *raw_record(whisper_store *st, const char *name, uint32_t dev) {
  uint8_t key[300];
  size_t n = strlen(name);
  memcpy(key, name, n);
  key[n] = 0;
  wh_be32(key + n + 1, dev);
  whisper_buf *b = NULL;
  if (st->ops.get(st->user, WHISPER_REC_SESSION, key, n + 5, &b) != WHISPER_OK) return NULL;
  return b;
}

static int same_buf(const whisper_buf *a, const whisper_buf *b) {
  if (a == NULL || b == NULL) return a == b;
  return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_memory_rollback(void) {
  whisper_store *st;
  whisper_buf *b;
  CHECK_RC(whisper_store_memory_new(&st), WHISPER_OK);
  const uint8_t k1[] = "one", k2[] = "two";
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(st->ops.put(st->user, 1, k1, 3, (const uint8_t *)"a", 1), WHISPER_OK);
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(st->ops.begin(st->user), WHISPER_ESTATE); /* no nesting */
  CHECK_RC(st->ops.put(st->user, 1, k1, 3, (const uint8_t *)"b", 1), WHISPER_OK);
  CHECK_RC(st->ops.put(st->user, 1, k2, 3, (const uint8_t *)"c", 1), WHISPER_OK);
  CHECK_RC(st->ops.del(st->user, 1, k1, 3), WHISPER_OK);
  CHECK_RC(st->ops.get(st->user, 1, k1, 3, &b), WHISPER_ENOTFOUND);
  st->ops.rollback(st->user);
  CHECK_RC(st->ops.get(st->user, 1, k1, 3, &b), WHISPER_OK);
  CHECK(b->len == 1 && b->data[0] == 'a');
  whisper_buf_free(b);
  CHECK_RC(st->ops.get(st->user, 1, k2, 3, &b), WHISPER_ENOTFOUND);
  /* kinds are separate name spaces; many keys grow the table */
  CHECK_RC(st->ops.get(st->user, 2, k1, 3, &b), WHISPER_ENOTFOUND);
  for (uint32_t i = 0; i < 5000; i++) {
    uint8_t k[4];
    wh_be32(k, i);
    st->ops.put(st->user, 3, k, 4, k, 4);
  }
  int found = 0;
  for (uint32_t i = 0; i < 5000; i++) {
    uint8_t k[4];
    wh_be32(k, i);
    if (st->ops.get(st->user, 3, k, 4, &b) == WHISPER_OK) {
      found += b->len == 4 && memcmp(b->data, k, 4) == 0;
      whisper_buf_free(b);
    }
  }
  CHECK(found == 5000);
  whisper_store_free(st);
  /* a store table of version 2 (no add) is still taken; one of 3 may leave add out */
  whisper_store_ops v2 = faulty_ops;
  v2.version = 2;
  CHECK_RC(whisper_store_new(&st, &v2, NULL), WHISPER_OK);
  CHECK(st->ops.add == NULL);
  whisper_store_free(st);
  v2.version = 3;
  v2.add = NULL;
  CHECK_RC(whisper_store_new(&st, &v2, NULL), WHISPER_OK);
  whisper_store_free(st);
  /* an incomplete ops table is refused */
  whisper_store_ops bad = faulty_ops;
  bad.get = NULL;
  CHECK_RC(whisper_store_new(&st, &bad, NULL), WHISPER_EINVAL);
  bad = faulty_ops;
  bad.version = 99;
  CHECK_RC(whisper_store_new(&st, &bad, NULL), WHISPER_EINVAL);
}

/* The memory store against a model: random puts and deletes of a few keys
 * (short ones and ones longer than the journal keeps inline), each
 * transaction committed or rolled back, the same key written, removed and
 * written again within one; after each, every key reads as the model says,
 * through get and through the store's view. */
#define MODEL_KEYS 12
static void test_memory_model(void) {
  whisper_store *st;
  uint8_t keys[MODEL_KEYS][80];
  size_t key_len[MODEL_KEYS];
  int have[MODEL_KEYS] = {0}, was[MODEL_KEYS];
  uint32_t val[MODEL_KEYS] = {0}, old[MODEL_KEYS];
  uint32_t seed = 12345, next = 1;
  int bad = 0, rollbacks = 0, journaled = 0;
  CHECK_RC(whisper_store_memory_new(&st), WHISPER_OK);
  CHECK(st->view != NULL);
  for (int i = 0; i < MODEL_KEYS; i++) {
    key_len[i] = i % 3 == 0 ? 49 + (size_t)i : 1 + (size_t)i; /* 49+: on the heap */
    memset(keys[i], 'k', key_len[i]);
    keys[i][0] = (uint8_t)i;
  }
  for (int round = 0; round < 3000; round++) {
    int txn = round % 5 != 0;
    if (txn) CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
    memcpy(was, have, sizeof have);
    memcpy(old, val, sizeof val);
    int ops = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
    for (int o = 0; o < ops; o++) {
      seed = seed * 1103515245u + 12345u;
      int k = (int)(seed >> 16) % MODEL_KEYS, del = (seed >> 8) % 4 == 0;
      if (del) {
        CHECK_RC(st->ops.del(st->user, 5, keys[k], key_len[k]), WHISPER_OK);
        have[k] = 0;
      } else {
        uint32_t v = next++;
        uint8_t bytes[64]; /* the value's length varies with it */
        size_t n = 4 + v % 50;
        memset(bytes, (int)(v & 0xFF), n);
        memcpy(bytes, &v, 4);
        CHECK_RC(st->ops.put(st->user, 5, keys[k], key_len[k], bytes, n), WHISPER_OK);
        have[k] = 1, val[k] = v;
      }
      journaled++;
    }
    if (txn && (seed >> 20) % 3 == 0) {
      st->ops.rollback(st->user);
      memcpy(have, was, sizeof have);
      memcpy(val, old, sizeof val);
      rollbacks++;
    } else if (txn) {
      CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
    }
    for (int k = 0; k < MODEL_KEYS; k++) {
      whisper_buf *b = NULL;
      const uint8_t *v = NULL;
      size_t vn = 0;
      int rc = st->ops.get(st->user, 5, keys[k], key_len[k], &b);
      int rv = st->view(st->user, 5, keys[k], key_len[k], &v, &vn);
      if (!have[k]) {
        bad += rc != WHISPER_ENOTFOUND || rv != WHISPER_ENOTFOUND;
      } else {
        uint32_t got = 0;
        if (rc == WHISPER_OK && b->len == 4 + val[k] % 50) memcpy(&got, b->data, 4);
        bad += rc != WHISPER_OK || got != val[k];
        bad += rv != WHISPER_OK || vn != b->len || memcmp(v, b->data, vn) != 0;
      }
      whisper_buf_free(b);
    }
  }
  CHECK(bad == 0);
  CHECK(rollbacks > 300 && journaled > 10000);
  /* closed in the middle of a transaction: rolled back, nothing leaks (asan) */
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(st->ops.put(st->user, 5, keys[0], key_len[0], (const uint8_t *)"x", 1), WHISPER_OK);
  CHECK_RC(st->ops.del(st->user, 5, keys[1], key_len[1]), WHISPER_OK);
  whisper_store_free(st);
}

/* add(): inserts a free key, refuses a taken one without writing, and
 * rolls back like put; on the memory store and the SQLite store, for a
 * plain kind and an ordered one. */
static void test_add(void) {
  char dir[] = "/tmp/whisper-test-add-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/add.db", dir);
  static const uint8_t key[32] = "store add test key .............";
  for (int sqlite = 0; sqlite <= 1; sqlite++) {
    whisper_store *st;
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = key;
    o.key_len = sizeof key;
    CHECK_RC(sqlite ? whisper_store_sqlite_open(&st, path, &o, NULL) : whisper_store_memory_new(&st),
             WHISPER_OK);
    CHECK(st->ops.version == WHISPER_STORE_OPS_VERSION && st->ops.add != NULL);
    static const int kinds[] = {WHISPER_REC_META, WHISPER_REC_HISTORY};
    for (size_t i = 0; i < 2; i++) {
      int kind = kinds[i];
      const uint8_t k[] = "some key", k2[] = "other key";
      whisper_buf *b = NULL;
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.add(st->user, kind, k, 8, (const uint8_t *)"first", 5), WHISPER_OK);
      CHECK_RC(st->ops.add(st->user, kind, k, 8, (const uint8_t *)"second", 6), WHISPER_EDUPLICATE);
      CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
      CHECK_RC(st->ops.get(st->user, kind, k, 8, &b), WHISPER_OK);
      CHECK(b && b->len == 5 && memcmp(b->data, "first", 5) == 0);
      whisper_buf_free(b);
      /* a refused add after a put in the same transaction keeps the put */
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.put(st->user, kind, k, 8, (const uint8_t *)"third", 5), WHISPER_OK);
      CHECK_RC(st->ops.add(st->user, kind, k, 8, (const uint8_t *)"fourth", 6), WHISPER_EDUPLICATE);
      CHECK_RC(st->ops.add(st->user, kind, k2, 9, (const uint8_t *)"fifth", 5), WHISPER_OK);
      st->ops.rollback(st->user);
      CHECK_RC(st->ops.get(st->user, kind, k, 8, &b), WHISPER_OK);
      CHECK(b && b->len == 5 && memcmp(b->data, "first", 5) == 0);
      whisper_buf_free(b);
      CHECK_RC(st->ops.get(st->user, kind, k2, 9, &b), WHISPER_ENOTFOUND);
      /* a deleted key is free again */
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.del(st->user, kind, k, 8), WHISPER_OK);
      CHECK_RC(st->ops.add(st->user, kind, k, 8, (const uint8_t *)"sixth", 5), WHISPER_OK);
      CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
      CHECK_RC(st->ops.get(st->user, kind, k, 8, &b), WHISPER_OK);
      CHECK(b && b->len == 5 && memcmp(b->data, "sixth", 5) == 0);
      whisper_buf_free(b);
    }
    whisper_store_free(st);
  }
  CHECK_RC(whisper_store_sqlite_delete(path), WHISPER_OK);
  rmdir(dir);
}

typedef struct side {
  faulty f;
  whisper_store *mem, *st;
  whisper_ctx *ctx;
  test_rng rng;
} side;

static void side_open(side *s, const char *name, uint8_t seed) {
  memset(s, 0, sizeof *s);
  memset(s->rng.seed, seed, 32);
  whisper_store_memory_new(&s->mem);
  s->f.inner = s->mem;
  s->f.fail_at = -1;
  whisper_store_new(&s->st, &faulty_ops, &s->f);
  whisper_ctx_new(&s->ctx, s->st);
  whisper_ctx_rng_set(s->ctx, test_rng_fn, &s->rng);
  whisper_identity_generate(s->ctx, name, 1, 0, NOW);
}

static void side_close(side *s) {
  whisper_ctx_free(s->ctx);
  whisper_store_free(s->st);
  whisper_store_free(s->mem);
}

/* Runs `op` with a failure injected at every store call in turn: each
 * failed attempt must return an error and leave the session record as it
 * was; the first attempt with no failure left must succeed. */
#define EVERY_FAULT(s, peer, op)                                                  \
  do {                                                                            \
    for (long at = 0;; at++) {                                                    \
      whisper_buf *before = raw_record((s)->mem, peer, 1);                        \
      test_rng saved = (s)->rng;                                                  \
      (s)->f.calls = 0, (s)->f.fail_at = at, (s)->f.failed = 0;                   \
      int op_rc = (op);                                                             \
      int injected = (s)->f.failed;                                               \
      (s)->f.fail_at = -1;                                                        \
      if (!injected) {                                                            \
        CHECK_RC(op_rc, WHISPER_OK);                                              \
        whisper_buf_free(before);                                                 \
        break;                                                                    \
      }                                                                           \
      CHECK(op_rc != WHISPER_OK);                                                 \
      whisper_buf *after = raw_record((s)->mem, peer, 1);                         \
      CHECK(same_buf(before, after));                                             \
      whisper_buf_free(before);                                                   \
      whisper_buf_free(after);                                                    \
      (s)->rng = saved; /* the retry draws the same randomness */                 \
      faults++;                                                                   \
    }                                                                             \
  } while (0)

/* A caller's store's own text (ops.last_error, version 5) ends the
 * context's sentence after a failure; a version-4 table has none. */
static void test_store_error_text(void) {
  for (unsigned version = 5; version >= 4; version--) {
    faulty f = {0};
    whisper_store *mem, *st;
    whisper_ctx *c;
    whisper_store_ops ops = faulty_ops;
    ops.version = version;
    CHECK_RC(whisper_store_memory_new(&mem), WHISPER_OK);
    f.inner = mem;
    f.fail_at = 1; /* begin, then the first get */
    CHECK_RC(whisper_store_new(&st, &ops, &f), WHISPER_OK);
    CHECK_RC(whisper_ctx_new(&c, st), WHISPER_OK);
    int rc = whisper_identity_generate(c, "fay", 1, 0, NOW);
    CHECK_RC(rc, WHISPER_ESTORE);
    CHECK(f.failed);
    const char *e = whisper_ctx_last_error(c);
    if (version == 5) {
      CHECK(strcmp(e, "store: read failed (store failure): faulty: call 1 failed") == 0);
      CHECK(strcmp(whisper_store_last_error(st), "faulty: call 1 failed") == 0);
    } else {
      CHECK(strcmp(e, "store: read failed (store failure)") == 0);
      CHECK(strcmp(whisper_store_last_error(st), "") == 0);
    }
    if (f.failed && strncmp(e, "store: read failed", 18) != 0) fprintf(stderr, "v%u: %s\n", version, e);
    CHECK(!whisper_err_is_fatal(rc));
    whisper_ctx_free(c);
    whisper_store_free(st);
    whisper_store_free(mem);
  }
}

/* The error ranges of core.h: every code is in its group, has its own
 * text, and only the fatal range is fatal. */
static void test_error_codes(void) {
  static const struct {
    int code, group;
  } codes[] = {
      {WHISPER_EINVAL, WHISPER_ERRGROUP_USAGE},      {WHISPER_EINVALIDKEY, WHISPER_ERRGROUP_USAGE},
      {WHISPER_ETOOBIG, WHISPER_ERRGROUP_USAGE},     {WHISPER_EINVALIDMSG, WHISPER_ERRGROUP_INPUT},
      {WHISPER_EINVALIDSIG, WHISPER_ERRGROUP_INPUT}, {WHISPER_ETOOFAR, WHISPER_ERRGROUP_INPUT},
      {WHISPER_EVERSION, WHISPER_ERRGROUP_INPUT},    {WHISPER_EKEY, WHISPER_ERRGROUP_INPUT},
      {WHISPER_ETRUNCATED, WHISPER_ERRGROUP_INPUT},  {WHISPER_EINTEGRITY, WHISPER_ERRGROUP_INPUT},
      {WHISPER_ESIZE, WHISPER_ERRGROUP_INPUT},       {WHISPER_EUNTRUSTED, WHISPER_ERRGROUP_TRUST},
      {WHISPER_EFORGED, WHISPER_ERRGROUP_TRUST},     {WHISPER_EDENIED, WHISPER_ERRGROUP_TRUST},
      {WHISPER_EBLOCKED, WHISPER_ERRGROUP_TRUST},    {WHISPER_ENOSESSION, WHISPER_ERRGROUP_STATE},
      {WHISPER_EDUPLICATE, WHISPER_ERRGROUP_STATE},  {WHISPER_ENOTFOUND, WHISPER_ERRGROUP_STATE},
      {WHISPER_ESTATE, WHISPER_ERRGROUP_STATE},      {WHISPER_EROLLEDBACK, WHISPER_ERRGROUP_STATE},
      {WHISPER_ENOMEM, WHISPER_ERRGROUP_SYSTEM},     {WHISPER_ESTORE, WHISPER_ERRGROUP_SYSTEM},
      {WHISPER_EBUSY, WHISPER_ERRGROUP_SYSTEM},      {WHISPER_ERANDOM, WHISPER_ERRGROUP_SYSTEM},
      {WHISPER_ECORRUPT, WHISPER_ERRGROUP_FATAL},    {WHISPER_EINTERNAL, WHISPER_ERRGROUP_FATAL}};
  size_t n = sizeof codes / sizeof *codes;
  int known = 0;
  for (int v = -200; v <= 0; v++)
    if (strcmp(whisper_strerror(v), "unknown error") != 0) known++;
  CHECK(known == (int)n + 1); /* the table lists every code, and WHISPER_OK */
  for (size_t i = 0; i < n; i++) {
    CHECK(WHISPER_ERR_GROUP(codes[i].code) == codes[i].group);
    CHECK(whisper_err_is_fatal(codes[i].code) == (codes[i].group == WHISPER_ERRGROUP_FATAL));
    CHECK(strcmp(whisper_strerror(codes[i].code), "unknown error") != 0);
    for (size_t j = 0; j < i; j++) {
      CHECK(codes[i].code != codes[j].code);
      CHECK(strcmp(whisper_strerror(codes[i].code), whisper_strerror(codes[j].code)) != 0);
    }
  }
  CHECK(WHISPER_ERR_GROUP(WHISPER_OK) == WHISPER_ERRGROUP_OK);
  CHECK(!whisper_err_is_fatal(WHISPER_OK) && !whisper_err_is_fatal(-119) &&
        !whisper_err_is_fatal(1));
}

static void test_fault_injection(void) {
  side a, b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m = NULL, *pt = NULL;
  int type, faults = 0;
  side_open(&a, "alice", 1);
  side_open(&b, "bob", 2);
  EVERY_FAULT(&b, "alice", whisper_bundle_generate(b.ctx, 1, &bundle));
  EVERY_FAULT(&a, "bob", whisper_session_start(a.ctx, "bob", 1, &bundle, NOW));
  for (int i = 0; i < 6; i++) {
    side *from = i % 2 ? &b : &a, *to = i % 2 ? &a : &b;
    const char *from_name = i % 2 ? "bob" : "alice", *to_name = i % 2 ? "alice" : "bob";
    EVERY_FAULT(from, to_name,
                (whisper_buf_free(m), m = NULL,
                 whisper_session_encrypt(from->ctx, to_name, 1, (const uint8_t *)"hello", 5, NOW,
                                         &type, &m)));
    EVERY_FAULT(to, from_name,
                (whisper_buf_free(pt), pt = NULL,
                 whisper_session_decrypt(to->ctx, from_name, 1, type, m->data, m->len, &pt)));
    CHECK(pt && pt->len == 5 && memcmp(pt->data, "hello", 5) == 0);
  }
  CHECK(faults > 30);
  whisper_buf_free(m);
  whisper_buf_free(pt);
  side_close(&a);
  side_close(&b);
}

/* Refused messages leave the stored record and the prekeys byte for byte. */
static void test_refusals_change_nothing(void) {
  side a, b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m1, *m2, *pt = NULL;
  int t1, t2;
  side_open(&a, "alice", 3);
  side_open(&b, "bob", 4);
  whisper_bundle_generate(b.ctx, 1, &bundle);
  whisper_session_start(a.ctx, "bob", 1, &bundle, NOW);
  whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)"m1", 2, NOW, &t1, &m1);
  whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)"m2", 2, NOW, &t2, &m2);
  /* a tampered first PreKey message: no session made, prekey kept */
  whisper_buf *bad = whisper_buf_new(m1->data, m1->len);
  bad->data[bad->len - 12] ^= 1;
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, t1, bad->data, bad->len, &pt),
           WHISPER_EINVALIDMSG);
  CHECK(raw_record(b.mem, "alice", 1) == NULL);
  uint8_t idkey[4];
  wh_be32(idkey, bundle.prekey_id);
  whisper_buf *pk = NULL;
  CHECK_RC(b.mem->ops.get(b.mem->user, WHISPER_REC_PREKEY, idkey, 4, &pk), WHISPER_OK);
  whisper_buf_free(pk);
  uint8_t remote[33];
  CHECK_RC(whisper_identity_remote(b.ctx, "alice", 1, remote), WHISPER_ENOTFOUND);
  whisper_buf_free(bad);
  /* the real one works and consumes the prekey */
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, t2, m2->data, m2->len, &pt), WHISPER_OK);
  whisper_buf_free(pt);
  CHECK_RC(b.mem->ops.get(b.mem->user, WHISPER_REC_PREKEY, idkey, 4, &pk), WHISPER_ENOTFOUND);
  /* now every kind of refusal leaves the record's bytes as they were */
  whisper_buf *before = raw_record(b.mem, "alice", 1);
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, t2, m2->data, m2->len, &pt),
           WHISPER_EDUPLICATE);
  for (size_t i = 0; i < m1->len; i += 7) {
    bad = whisper_buf_new(m1->data, m1->len);
    bad->data[i] ^= 0x20;
    int rc = whisper_session_decrypt(b.ctx, "alice", 1, t1, bad->data, bad->len, &pt);
    if (rc == WHISPER_OK) whisper_buf_free(pt); /* a flip in an ignored field */
    else {
      whisper_buf *after = raw_record(b.mem, "alice", 1);
      CHECK(same_buf(before, after));
      whisper_buf_free(after);
    }
    whisper_buf_free(bad);
    if (rc == WHISPER_OK) break; /* state moved on legitimately */
  }
  whisper_buf_free(before);
  whisper_buf_free(m1);
  whisper_buf_free(m2);
  side_close(&a);
  side_close(&b);
}

static int enc(whisper_ctx *c, const char *to, int *type, whisper_buf **m) {
  return whisper_session_encrypt(c, to, 1, (const uint8_t *)"hi", 2, NOW, type, m);
}

/* Decrypts, and frees the plaintext. */
static int dec(whisper_ctx *c, const char *from, int type, const whisper_buf *m) {
  whisper_buf *pt = NULL;
  int rc = whisper_session_decrypt(c, from, 1, type, m->data, m->len, &pt);
  whisper_buf_free(pt);
  return rc;
}

/* The counter of a SignalMessage (below 128: one byte after the ratchet key). */
static int msg_counter(const whisper_buf *m) {
  return m && m->len > 38 && m->data[1] == 0x0A && m->data[36] == 0x10 ? m->data[37] : -1;
}

/* Each context keeps the session records it used decoded (the session
 * memo), and the trust and send-mark rows it saw: none of it may stand in
 * for what the store holds now. Two contexts on one store take turns (each
 * finds the rows the other wrote); a write whose transaction fails leaves
 * the store as it was and the next call starts from the store; a session
 * row put back from a copy is caught by the send mark; a trust decision
 * made through the other context counts at once. */
static void test_memo_follows_store(void) {
  for (int faulty_store = 0; faulty_store <= 1; faulty_store++) {
    side a, b;
    whisper_ctx *a2, *b2;
    whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
    whisper_buf *m[12];
    int type;
    side_open(&a, "alice", 5);
    side_open(&b, "bob", 6);
    /* the second context of each: straight on the memory store (its view),
     * or through the faulty store like the first */
    CHECK_RC(whisper_ctx_new(&a2, faulty_store ? a.st : a.mem), WHISPER_OK);
    CHECK_RC(whisper_ctx_new(&b2, faulty_store ? b.st : b.mem), WHISPER_OK);
    CHECK_RC(whisper_bundle_generate(b.ctx, 1, &bundle), WHISPER_OK);
    CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
    CHECK_RC(enc(a.ctx, "bob", &type, &m[0]), WHISPER_OK);
    CHECK_RC(dec(b.ctx, "alice", type, m[0]), WHISPER_OK);
    whisper_buf_free(m[0]);
    CHECK_RC(enc(b.ctx, "alice", &type, &m[0]), WHISPER_OK);
    CHECK_RC(dec(a.ctx, "bob", type, m[0]), WHISPER_OK);
    whisper_buf_free(m[0]);
    /* alice's two contexts take turns: every message has the next counter */
    for (int i = 0; i < 12; i++) {
      whisper_ctx *c = i % 2 ? a2 : a.ctx;
      CHECK_RC(enc(c, "bob", &type, &m[i]), WHISPER_OK);
      CHECK(type == WHISPER_MSG_WHISPER && msg_counter(m[i]) == i); /* a new chain: from 0 */
    }
    /* bob's two contexts take turns decrypting them: each decrypts once */
    for (int i = 0; i < 12; i++) {
      whisper_ctx *c = i % 3 ? b2 : b.ctx;
      CHECK_RC(dec(c, "alice", type, m[i]), WHISPER_OK);
    }
    for (int i = 0; i < 12; i++) {
      CHECK_RC(dec(b.ctx, "alice", type, m[i]), WHISPER_EDUPLICATE);
      CHECK_RC(dec(b2, "alice", type, m[i]), WHISPER_EDUPLICATE);
      whisper_buf_free(m[i]);
    }
    if (faulty_store) {
      /* a commit that fails: the store keeps the record before it, and the
       * next encrypt uses the counter the failed one used */
      whisper_buf *before = raw_record(a.mem, "bob", 1), *failed = NULL, *again = NULL;
      a.f.calls = 0;
      a.f.fail_at = 0;
      for (;; a.f.fail_at++) { /* the last store call of the encrypt: its commit */
        a.f.calls = 0;
        a.f.failed = 0;
        whisper_buf_free(failed);
        failed = NULL;
        int rc = enc(a.ctx, "bob", &type, &failed);
        if (!a.f.failed) {
          CHECK_RC(rc, WHISPER_OK);
          break;
        }
        whisper_buf *after = raw_record(a.mem, "bob", 1);
        CHECK(same_buf(before, after));
        whisper_buf_free(after);
      }
      CHECK(msg_counter(failed) == 12);
      whisper_buf_free(before);
      whisper_buf_free(failed);
      a.f.fail_at = -1;
      CHECK_RC(enc(a.ctx, "bob", &type, &again), WHISPER_OK);
      CHECK(msg_counter(again) == 13);
      whisper_buf_free(again);
    }
    /* a session row put back from a copy: refused by the send mark, in
     * both contexts, though each kept the newer record */
    whisper_buf *old = raw_record(a.mem, "bob", 1), *x = NULL;
    CHECK_RC(enc(a.ctx, "bob", &type, &x), WHISPER_OK);
    whisper_buf_free(x);
    x = NULL;
    uint8_t key[8] = {'b', 'o', 'b', 0, 0, 0, 0, 1};
    CHECK_RC(a.mem->ops.put(a.mem->user, WHISPER_REC_SESSION, key, sizeof key, old->data, old->len),
             WHISPER_OK);
    CHECK_RC(enc(a.ctx, "bob", &type, &x), WHISPER_EROLLEDBACK);
    CHECK_RC(enc(a2, "bob", &type, &x), WHISPER_EROLLEDBACK);
    CHECK(x == NULL);
    whisper_buf_free(old);
    /* a new key trusted for bob through a2: alice's first context refuses
     * to decrypt from the old one at once */
    uint8_t other[33];
    other[0] = 5;
    memset(other + 1, 0x42, 32);
    CHECK_RC(enc(b.ctx, "alice", &type, &x), WHISPER_OK);
    CHECK_RC(whisper_identity_trust(a2, "bob", 1, other, sizeof other), WHISPER_OK);
    CHECK_RC(dec(a.ctx, "bob", type, x), WHISPER_EUNTRUSTED);
    whisper_buf_free(x);
    whisper_ctx_free(a2);
    whisper_ctx_free(b2);
    side_close(&a);
    side_close(&b);
  }
}

/* The value of (kind, k) as a NUL-terminated string ("" if none). */
static const char *val(whisper_store *st, int kind, const char *k) {
  static char out[32];
  whisper_buf *b = NULL;
  out[0] = 0;
  if (st->ops.get(st->user, kind, (const uint8_t *)k, strlen(k), &b) == WHISPER_OK && b->len < 32) {
    memcpy(out, b->data, b->len);
    out[b->len] = 0;
  }
  whisper_buf_free(b);
  return out;
}

static int put(whisper_store *st, int kind, const char *k, const char *v) {
  return st->ops.put(st->user, kind, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v));
}

/* Savepoints (ops version 4): rollback_to undoes the writes since the
 * newest savepoint and no others, release keeps them for the enclosing
 * savepoint or transaction to keep or undo; on the memory store and the
 * SQLite store, for a plain kind and an ordered one. */
static void test_savepoints(void) {
  char dir[] = "/tmp/whisper-test-sp-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/sp.db", dir);
  static const uint8_t key[32] = "store savepoint test key .......";
  for (int sqlite = 0; sqlite <= 1; sqlite++) {
    whisper_store *st;
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = key;
    o.key_len = sizeof key;
    CHECK_RC(sqlite ? whisper_store_sqlite_open(&st, path, &o, NULL) : whisper_store_memory_new(&st),
             WHISPER_OK);
    CHECK(st->ops.savepoint && st->ops.release && st->ops.rollback_to);
    static const int kinds[] = {WHISPER_REC_META, WHISPER_REC_HISTORY};
    for (size_t i = 0; i < 2; i++) {
      int kind = kinds[i];
      /* none outside a transaction, nothing to close without one */
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_ESTATE);
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.release(st->user), WHISPER_ESTATE);
      CHECK_RC(st->ops.rollback_to(st->user), WHISPER_ESTATE);
      CHECK_RC(put(st, kind, "k", "a"), WHISPER_OK);
      CHECK_RC(put(st, kind, "gone", "z"), WHISPER_OK);
      /* one frame refused: its writes go, the transaction's stay */
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "b"), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "b2"), WHISPER_OK);
      CHECK_RC(put(st, kind, "new", "x"), WHISPER_OK);
      CHECK_RC(st->ops.del(st->user, kind, (const uint8_t *)"gone", 4), WHISPER_OK);
      CHECK(strcmp(val(st, kind, "k"), "b2") == 0 && strcmp(val(st, kind, "gone"), "") == 0);
      CHECK_RC(st->ops.rollback_to(st->user), WHISPER_OK);
      CHECK(strcmp(val(st, kind, "k"), "a") == 0 && strcmp(val(st, kind, "new"), "") == 0 &&
            strcmp(val(st, kind, "gone"), "z") == 0);
      /* the next one kept */
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "c"), WHISPER_OK);
      CHECK_RC(st->ops.release(st->user), WHISPER_OK);
      CHECK_RC(st->ops.release(st->user), WHISPER_ESTATE);
      CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
      CHECK(strcmp(val(st, kind, "k"), "c") == 0 && strcmp(val(st, kind, "gone"), "z") == 0);
      /* nested: a released inner savepoint is undone with its outer one */
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "d"), WHISPER_OK);
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "e"), WHISPER_OK);
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "f"), WHISPER_OK);
      CHECK_RC(put(st, kind, "inner", "i"), WHISPER_OK);
      CHECK_RC(st->ops.release(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "g"), WHISPER_OK); /* journaled already, by the inner one */
      CHECK(strcmp(val(st, kind, "k"), "g") == 0 && strcmp(val(st, kind, "inner"), "i") == 0);
      CHECK_RC(st->ops.rollback_to(st->user), WHISPER_OK);
      CHECK(strcmp(val(st, kind, "k"), "d") == 0 && strcmp(val(st, kind, "inner"), "") == 0);
      /* an inner rollback keeps the outer savepoint's writes; a rollback of
       * the transaction undoes everything */
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "h"), WHISPER_OK);
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(put(st, kind, "k", "j"), WHISPER_OK);
      CHECK_RC(st->ops.rollback_to(st->user), WHISPER_OK);
      CHECK(strcmp(val(st, kind, "k"), "h") == 0);
      st->ops.rollback(st->user);
      CHECK(strcmp(val(st, kind, "k"), "c") == 0);
      /* a rollback closed the savepoint it left open */
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.release(st->user), WHISPER_ESTATE);
      CHECK_RC(st->ops.savepoint(st->user), WHISPER_OK);
      CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
      CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
      CHECK_RC(st->ops.rollback_to(st->user), WHISPER_ESTATE);
      st->ops.rollback(st->user);
    }
    whisper_store_free(st);
  }
  CHECK_RC(whisper_store_sqlite_delete(path), WHISPER_OK);
  rmdir(dir);
  /* a table of version 3 ends before the savepoints: nothing past it is read */
  size_t v3_size = offsetof(whisper_store_ops, savepoint);
  whisper_store_ops head = faulty_ops;
  head.version = 3;
  void *v3 = malloc(v3_size);
  memcpy(v3, &head, v3_size);
  whisper_store *st;
  CHECK_RC(whisper_store_new(&st, (const whisper_store_ops *)v3, NULL), WHISPER_OK);
  CHECK(st->ops.savepoint == NULL && st->ops.release == NULL && st->ops.rollback_to == NULL);
  whisper_store_free(st);
  free(v3);
  /* version 4: all three, or none */
  whisper_store_ops v4 = faulty_ops;
  v4.savepoint = f_begin;
  CHECK_RC(whisper_store_new(&st, &v4, NULL), WHISPER_EINVAL);
  v4.release = f_commit;
  CHECK_RC(whisper_store_new(&st, &v4, NULL), WHISPER_EINVAL);
  v4.rollback_to = f_begin;
  CHECK_RC(whisper_store_new(&st, &v4, NULL), WHISPER_OK);
  whisper_store_free(st);
}

int main(void) {
  if (wh_crypto_init() != 0) return 2;
  test_memo_follows_store();
  test_memory_rollback();
  test_memory_model();
  test_add();
  test_savepoints();
  test_fault_injection();
  test_store_error_text();
  test_error_codes();
  test_refusals_change_nothing();
  return test_done();
}

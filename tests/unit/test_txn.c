/* Transactions that nest (common/txn.c, whisper_store_begin/commit/
 * rollback): depth, an inner failure undone alone with savepoints, failing
 * the whole without them, a failed transaction never committed, and an
 * app's transaction that library calls join; on the SQLite store, the
 * memory store and a caller's store of ops version 3 (no savepoints). */
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define NOW TEST_NOW

/* A caller's store of ops version 3 over a memory store: no savepoints. */
static whisper_store *g_inner;
static int v3_begin(void *u) { return g_inner->ops.begin(((whisper_store *)u)->user); }
static int v3_commit(void *u) { return g_inner->ops.commit(((whisper_store *)u)->user); }
static void v3_rollback(void *u) { g_inner->ops.rollback(((whisper_store *)u)->user); }
static int v3_get(void *u, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  return g_inner->ops.get(((whisper_store *)u)->user, kind, k, n, out);
}
static int v3_put(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  return g_inner->ops.put(((whisper_store *)u)->user, kind, k, n, v, vn);
}
static int v3_del(void *u, int kind, const uint8_t *k, size_t n) {
  return g_inner->ops.del(((whisper_store *)u)->user, kind, k, n);
}
static int v3_scan(void *u, int kind, const uint8_t *p, size_t pn, const uint8_t *b, size_t bn,
                   int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  return g_inner->ops.scan(((whisper_store *)u)->user, kind, p, pn, b, bn, desc, limit, fn, arg);
}

enum { MEMORY, SQLITE, V3 };
static const char *const kind_name[] = {"memory", "sqlite", "v3"};
static char g_dir[] = "/tmp/whisper-test-txn-XXXXXX";

static whisper_store *open_store(int which, int n) {
  whisper_store *st = NULL;
  if (which == SQLITE) {
    static const uint8_t key[32] = "transaction test key ...........";
    char path[96];
    snprintf(path, sizeof path, "%s/t%d.db", g_dir, n);
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = key;
    o.key_len = sizeof key;
    CHECK_RC(whisper_store_sqlite_open(&st, path, &o, NULL), WHISPER_OK);
  } else if (which == V3) {
    CHECK(g_inner == NULL);
    CHECK_RC(whisper_store_memory_new(&g_inner), WHISPER_OK);
    whisper_store_ops ops = {0};
    ops.version = 3;
    ops.begin = v3_begin;
    ops.commit = v3_commit;
    ops.rollback = v3_rollback;
    ops.get = v3_get;
    ops.put = v3_put;
    ops.del = v3_del;
    ops.scan = v3_scan;
    CHECK_RC(whisper_store_new(&st, &ops, g_inner), WHISPER_OK);
  } else {
    CHECK_RC(whisper_store_memory_new(&st), WHISPER_OK);
  }
  return st;
}

static void close_store(int which, whisper_store *st) {
  whisper_store_free(st);
  if (which == V3) {
    whisper_store_free(g_inner);
    g_inner = NULL;
  }
}

static int put(whisper_ctx *ctx, const char *k, const char *v) {
  return wh_put(ctx, WHISPER_REC_META, (const uint8_t *)k, strlen(k), (const uint8_t *)v,
                strlen(v));
}

/* 1 if k holds v; 0 if k is absent (v NULL) */
static int has(whisper_ctx *ctx, const char *k, const char *v) {
  whisper_buf *b = NULL;
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)k, strlen(k), &b);
  int ok = v ? rc == WHISPER_OK && b->len == strlen(v) && memcmp(b->data, v, b->len) == 0
             : rc == WHISPER_ENOTFOUND;
  whisper_buf_free(b);
  return ok;
}

/* Depth, and begin/commit/rollback's codes. */
static void test_depth(int which) {
  whisper_store *st = open_store(which, 1);
  whisper_ctx *ctx;
  CHECK_RC(whisper_ctx_new(&ctx, st), WHISPER_OK);
  CHECK_RC(whisper_store_begin(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_store_commit(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_store_rollback(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_store_commit(st), WHISPER_ESTATE);
  CHECK(strstr(whisper_store_last_error(st), "no store transaction is open") != NULL);
  CHECK_RC(whisper_store_rollback(st), WHISPER_ESTATE);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK(st->depth == 1);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK(st->depth == 2);
  CHECK(((st->sp >> 1) & 1) == (which != V3)); /* a savepoint when the store has them */
  CHECK_RC(wh_begin(ctx), WHISPER_OK);
  CHECK(st->depth == 3);
  CHECK_RC(put(ctx, "k", "1"), WHISPER_OK);
  CHECK_RC(wh_commit(ctx), WHISPER_OK);
  CHECK_RC(whisper_store_commit(st), WHISPER_OK);
  CHECK(st->depth == 1);
  CHECK_RC(whisper_store_commit(st), WHISPER_OK);
  CHECK(st->depth == 0 && !st->failed);
  CHECK(has(ctx, "k", "1"));
  /* 64 deep at most */
  for (int i = 0; i < WH_TXN_MAX_DEPTH; i++) CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(whisper_store_begin(st), WHISPER_ESTATE);
  CHECK(st->depth == WH_TXN_MAX_DEPTH && !st->failed);
  for (int i = 0; i < WH_TXN_MAX_DEPTH; i++) CHECK_RC(whisper_store_rollback(st), WHISPER_OK);
  CHECK(st->depth == 0);
  /* closing with one open rolls it back (the memory store would refuse a
   * second begin: nothing is left open) */
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(put(ctx, "k", "2"), WHISPER_OK);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  whisper_ctx_free(ctx);
  close_store(which, st);
}

/* An inner level that fails: with savepoints its writes alone go and the
 * transaction goes on; without, the transaction fails: every later call
 * fails at once, and the outer commit rolls back and says so. */
static void test_inner_failure(int which) {
  whisper_store *st = open_store(which, 2);
  whisper_ctx *ctx;
  CHECK_RC(whisper_ctx_new(&ctx, st), WHISPER_OK);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(put(ctx, "a", "1"), WHISPER_OK);
  CHECK_RC(wh_begin(ctx), WHISPER_OK); /* a library call joining */
  CHECK_RC(put(ctx, "a", "2"), WHISPER_OK);
  CHECK_RC(put(ctx, "b", "2"), WHISPER_OK);
  CHECK(wh_finish(ctx, WHISPER_EINVALIDMSG) == WHISPER_EINVALIDMSG); /* it fails */
  CHECK(st->depth == 1);
  if (which != V3) {
    CHECK(!st->failed);
    CHECK(has(ctx, "a", "1") && has(ctx, "b", NULL)); /* its writes alone are undone */
    CHECK_RC(put(ctx, "c", "3"), WHISPER_OK);
    CHECK_RC(whisper_store_commit(st), WHISPER_OK);
    CHECK(has(ctx, "a", "1") && has(ctx, "b", NULL) && has(ctx, "c", "3"));
  } else {
    CHECK(st->failed);
    CHECK_RC(put(ctx, "c", "3"), WHISPER_ESTORE); /* fails at once */
    CHECK(strstr(whisper_ctx_last_error(ctx), "has failed") != NULL);
    CHECK_RC(wh_begin(ctx), WHISPER_ESTORE);
    CHECK_RC(whisper_store_begin(st), WHISPER_ESTORE);
    CHECK(st->depth == 1);
    /* the commit of a failed transaction never commits */
    CHECK_RC(whisper_store_commit(st), WHISPER_ESTATE);
    CHECK(strstr(whisper_store_last_error(st), "rolled back") != NULL);
    CHECK(st->depth == 0 && !st->failed);
    CHECK(has(ctx, "a", NULL) && has(ctx, "b", NULL) && has(ctx, "c", NULL));
  }
  /* a level whose joined calls take no savepoint (WH_TXN_PLAIN): one
   * failing fails it, and its commit rolls it back instead (undone alone
   * with a savepoint of its own; else the outer fails too) */
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(put(ctx, "d", "4"), WHISPER_OK);
  CHECK_RC(wh_begin_flags(ctx, WH_TXN_PLAIN), WHISPER_OK);
  CHECK_RC(put(ctx, "e", "5"), WHISPER_OK);
  CHECK_RC(wh_begin(ctx), WHISPER_OK);
  CHECK(((st->sp >> 2) & 1) == 0); /* joined plain */
  CHECK_RC(put(ctx, "f", "6"), WHISPER_OK);
  wh_rollback(ctx);
  CHECK(st->failed);
  CHECK_RC(put(ctx, "g", "7"), WHISPER_ESTORE);
  CHECK_RC(wh_commit(ctx), WHISPER_ESTATE);
  CHECK(st->depth == 1);
  CHECK(st->failed == (which == V3));
  if (which != V3) {
    CHECK(has(ctx, "d", "4") && has(ctx, "e", NULL) && has(ctx, "f", NULL));
    CHECK_RC(whisper_store_commit(st), WHISPER_OK);
    CHECK(has(ctx, "d", "4") && has(ctx, "e", NULL) && has(ctx, "f", NULL));
  } else {
    CHECK_RC(whisper_store_commit(st), WHISPER_ESTATE);
    CHECK(has(ctx, "d", NULL));
  }
  /* a savepoint asked for inside a plain level (the engine's entry) */
  CHECK_RC(wh_begin_flags(ctx, WH_TXN_PLAIN), WHISPER_OK);
  int rc = wh_begin_flags(ctx, WH_TXN_SAVEPOINT | WH_TXN_PLAIN);
  CHECK_RC(rc, which == V3 ? WHISPER_ESTATE : WHISPER_OK);
  if (rc == WHISPER_OK) {
    CHECK_RC(put(ctx, "h", "8"), WHISPER_OK);
    CHECK_RC(wh_begin(ctx), WHISPER_OK); /* a library call inside: plain */
    wh_rollback(ctx);
    CHECK(st->failed);
    wh_rollback(ctx); /* the entry undone: the transaction goes on */
    CHECK(!st->failed && st->depth == 1);
    CHECK_RC(put(ctx, "i", "9"), WHISPER_OK);
  }
  CHECK_RC(wh_commit(ctx), WHISPER_OK);
  CHECK(has(ctx, "h", NULL));
  CHECK(has(ctx, "i", which == V3 ? NULL : "9"));
  whisper_ctx_free(ctx);
  close_store(which, st);
}

/* Library calls joining an app's transaction: two session calls rolled
 * back together, or committed together; a library call that fails inside
 * one. */
static void test_app_transaction(int which) {
  tdev bob;
  tdev_new(&bob, "bob", 1, 2);
  whisper_store *st = open_store(which, 3);
  whisper_ctx *ctx;
  CHECK_RC(whisper_ctx_new(&ctx, st), WHISPER_OK);
  test_rng rng;
  memset(&rng, 0, sizeof rng);
  memset(rng.seed, 1, 32);
  whisper_ctx_rng_set(ctx, test_rng_fn, &rng);
  CHECK_RC(whisper_identity_generate(ctx, "alice", 1, 0, NOW), WHISPER_OK);
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(bob.ctx, 1, &bundle), WHISPER_OK);
  int exists = -1, type = 0;
  whisper_buf *ct = NULL;
  /* rolled back: neither the session nor the message's step is kept */
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(whisper_session_start(ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
  CHECK_RC(whisper_session_encrypt(ctx, "bob", 1, (const uint8_t *)"hi", 2, NOW, &type, &ct),
           WHISPER_OK);
  whisper_buf_free(ct);
  ct = NULL;
  CHECK_RC(whisper_session_exists(ctx, "bob", 1, NOW, &exists), WHISPER_OK);
  CHECK(exists == 1);
  CHECK_RC(whisper_store_rollback(st), WHISPER_OK);
  CHECK_RC(whisper_session_exists(ctx, "bob", 1, NOW, &exists), WHISPER_OK);
  CHECK(exists == 0);
  /* a call that fails inside (no session with carol): with savepoints the
   * transaction goes on; without, it fails and its commit refuses */
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(whisper_session_start(ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
  CHECK_RC(whisper_session_encrypt(ctx, "carol", 1, (const uint8_t *)"x", 1, NOW, &type, &ct),
           WHISPER_ENOSESSION);
  if (which == V3) {
    CHECK_RC(whisper_session_encrypt(ctx, "bob", 1, (const uint8_t *)"hi", 2, NOW, &type, &ct),
             WHISPER_ESTORE);
    CHECK(strstr(whisper_ctx_last_error(ctx), "has failed") != NULL);
    CHECK_RC(whisper_store_commit(st), WHISPER_ESTATE);
    CHECK_RC(whisper_session_exists(ctx, "bob", 1, NOW, &exists), WHISPER_OK);
    CHECK(exists == 0);
    CHECK_RC(whisper_store_begin(st), WHISPER_OK); /* again, without the failing call */
    CHECK_RC(whisper_session_start(ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
  }
  CHECK_RC(whisper_session_encrypt(ctx, "bob", 1, (const uint8_t *)"hi", 2, NOW, &type, &ct),
           WHISPER_OK);
  CHECK_RC(whisper_store_commit(st), WHISPER_OK);
  CHECK_RC(whisper_session_exists(ctx, "bob", 1, NOW, &exists), WHISPER_OK);
  CHECK(exists == 1);
  /* committed together: bob reads the message */
  whisper_buf *pt = NULL;
  CHECK_RC(whisper_session_decrypt(bob.ctx, "alice", 1, type, ct->data, ct->len, &pt), WHISPER_OK);
  CHECK(pt && pt->len == 2 && memcmp(pt->data, "hi", 2) == 0);
  whisper_buf_free(pt);
  whisper_buf_free(ct);
  whisper_ctx_free(ctx);
  close_store(which, st);
  tdev_close(&bob);
}

/* The client engine never joins an app's transaction: its calls that
 * write (here a conversation's flags) refuse while the app holds one, and
 * work again once it is committed or rolled back. */
static void test_engine_refuses(int which) {
  whisper_store *st = open_store(which, 4);
  whisper_ctx *ctx;
  CHECK_RC(whisper_ctx_new(&ctx, st), WHISPER_OK);
  CHECK_RC(whisper_identity_generate(ctx, "alice", 1, 0, NOW), WHISPER_OK);
  whisper_client *cl = NULL;
  CHECK_RC(whisper_client_new(&cl, ctx, NULL), WHISPER_OK);
  whisper_conversation_flags_t f = WHISPER_CONVERSATION_FLAGS_INIT, got = f;
  f.pinned = 1;
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(whisper_client_conversation_flags_set(cl, "bob", &f, NOW), WHISPER_ESTATE);
  CHECK(strstr(whisper_ctx_last_error(ctx), "never joins") != NULL);
  CHECK_RC(whisper_store_rollback(st), WHISPER_OK);
  CHECK_RC(whisper_client_conversation_flags_set(cl, "bob", &f, NOW), WHISPER_OK);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK);
  CHECK_RC(whisper_store_begin(st), WHISPER_OK); /* nested: both are the app's */
  CHECK_RC(whisper_store_commit(st), WHISPER_OK);
  CHECK_RC(whisper_client_conversation_flags_get(cl, "bob", &got), WHISPER_ESTATE);
  CHECK_RC(whisper_store_commit(st), WHISPER_OK);
  CHECK_RC(whisper_client_conversation_flags_get(cl, "bob", &got), WHISPER_OK);
  CHECK(got.pinned == 1);
  whisper_client_free(cl);
  whisper_ctx_free(ctx);
  close_store(which, st);
}

int main(void) {
  if (wh_crypto_init() != 0) return 2;
  CHECK(mkdtemp(g_dir) != NULL);
  for (int which = MEMORY; which <= V3; which++) {
    fprintf(stderr, "store: %s\n", kind_name[which]);
    test_depth(which);
    test_inner_failure(which);
    test_app_transaction(which);
    test_engine_refuses(which);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
  return test_done();
}

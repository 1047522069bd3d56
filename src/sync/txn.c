/*
 * Library calls inside the engine's own transaction.
 *
 * The engine must keep what a library call changes (a decrypted message
 * and its session, a sender key) together with its own progress (the
 * mailbox position), in one store transaction. Library calls open and
 * commit their own transactions, which do not nest; so while the engine
 * holds a transaction, the context points to a "joined" store whose begin
 * and commit do nothing and whose reads and writes go to the real store
 * inside the engine's transaction. A library call that fails rolls back,
 * which rolls back the whole transaction: nothing of it is kept, and the
 * engine sees sy_txn_alive() == 0 (later calls in it fail with
 * WHISPER_ESTORE until sy_txn_end()).
 */
#include "sync/sync_internal.h"

static int j_begin(void *u) {
  sy_join *j = u;
  return j->aborted ? WHISPER_ESTORE : WHISPER_OK;
}

static int j_commit(void *u) {
  sy_join *j = u;
  return j->aborted ? WHISPER_ESTORE : WHISPER_OK;
}

static void j_rollback(void *u) {
  sy_join *j = u;
  if (j->aborted) return;
  j->real->ops.rollback(j->real->user);
  j->real->in_txn = 0;
  j->aborted = 1;
}

static int j_get(void *u, int kind, const uint8_t *key, size_t key_len, whisper_buf **out) {
  sy_join *j = u;
  *out = NULL;
  if (j->aborted) return WHISPER_ESTORE;
  return j->real->ops.get(j->real->user, kind, key, key_len, out);
}

static int j_put(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  return j->real->ops.put(j->real->user, kind, key, key_len, v, n);
}

static int j_add(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  return wh_store_add(j->real, kind, key, key_len, v, n);
}

static int j_del(void *u, int kind, const uint8_t *key, size_t key_len) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  return j->real->ops.del(j->real->user, kind, key, key_len);
}

static int j_scan(void *u, int kind, const uint8_t *prefix, size_t prefix_len,
                  const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                  whisper_scan_fn fn, void *arg) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  return j->real->ops.scan(j->real->user, kind, prefix, prefix_len, bound, bound_len, descending,
                           limit, fn, arg);
}

void sy_join_init(whisper_client *c) {
  memset(&c->shim, 0, sizeof c->shim);
  c->shim.ops.version = WHISPER_STORE_OPS_VERSION;
  c->shim.ops.begin = j_begin;
  c->shim.ops.commit = j_commit;
  c->shim.ops.rollback = j_rollback;
  c->shim.ops.get = j_get;
  c->shim.ops.put = j_put;
  c->shim.ops.del = j_del;
  c->shim.ops.scan = j_scan;
  c->shim.ops.add = j_add;
  c->shim.user = &c->join;
  c->join.real = c->ctx->store;
  c->join.aborted = 0;
}

int sy_txn_begin(whisper_client *c) {
  c->ctx->store = c->join.real;
  int rc = wh_begin(c->ctx);
  if (rc != WHISPER_OK) return rc;
  c->join.aborted = 0;
  c->shim.in_txn = 0;
  c->ctx->store = &c->shim;
  return WHISPER_OK;
}

int sy_txn_alive(const whisper_client *c) { return !c->join.aborted; }

int sy_txn_end(whisper_client *c, int rc) {
  c->ctx->store = c->join.real;
  if (c->join.aborted) {
    c->join.aborted = 0;
    return rc != WHISPER_OK ? rc : WHISPER_ESTORE;
  }
  return wh_finish(c->ctx, rc);
}

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
 *
 * A batch of entries (inbox.c) also keeps the engine's own records in
 * memory through its transaction (sy_txn_cache()): each is read from the
 * store once and written once, just before the commit.
 *
 * The send pump's transaction (sy_txn_begin_steps(), outbox.c) is the
 * other kind: there a library call that fails (a recipient's changed
 * identity, no session) must not undo what the calls before it encrypted,
 * so each call gets a savepoint (its begin, release and rollback_to), and
 * only a failure of the store itself ends the whole.
 */
#include "sync/sync_internal.h"

/* --- the engine's records, kept through a batch ------------------------------------------------- */

struct sy_kv {
  uint8_t *key;
  size_t key_len;
  whisper_buf *val; /* NULL: none (deleted, or not in the store) */
  int dirty;        /* to be written at the commit */
  struct sy_kv *next;
};

static size_t kv_hash(const uint8_t *key, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ key[i]) * 1099511628211ULL;
  return (size_t)(h % SY_KV_BUCKETS);
}

static sy_kv *kv_find(sy_join *j, const uint8_t *key, size_t n) {
  for (sy_kv *e = j->kv[kv_hash(key, n)]; e; e = e->next)
    if (e->key_len == n && memcmp(e->key, key, n) == 0) return e;
  return NULL;
}

static sy_kv *kv_add(sy_join *j, const uint8_t *key, size_t n) {
  sy_kv *e = calloc(1, sizeof *e);
  if (e == NULL || (e->key = malloc(n ? n : 1)) == NULL) {
    free(e);
    return NULL;
  }
  memcpy(e->key, key, n);
  e->key_len = n;
  size_t h = kv_hash(key, n);
  e->next = j->kv[h];
  j->kv[h] = e;
  return e;
}

static void kv_drop(sy_join *j) {
  if (j->kv)
    for (size_t i = 0; i < SY_KV_BUCKETS; i++)
      while (j->kv[i]) {
        sy_kv *e = j->kv[i];
        j->kv[i] = e->next;
        whisper_buf_free(e->val);
        free(e->key);
        free(e);
      }
  free(j->kv);
  j->kv = NULL;
  j->caching = 0;
}

/* Writes what changed, in the transaction. */
static int kv_flush(sy_join *j) {
  int rc = WHISPER_OK;
  for (size_t i = 0; j->kv && i < SY_KV_BUCKETS && rc == WHISPER_OK; i++)
    for (sy_kv *e = j->kv[i]; e && rc == WHISPER_OK; e = e->next) {
      if (!e->dirty) continue;
      rc = e->val ? j->real->ops.put(j->real->user, WHISPER_REC_SYNC_STATE, e->key, e->key_len,
                                     e->val->data, e->val->len)
                  : j->real->ops.del(j->real->user, WHISPER_REC_SYNC_STATE, e->key, e->key_len);
      e->dirty = 0;
    }
  return rc;
}

static whisper_buf *buf_copy(const uint8_t *v, size_t n) { return whisper_buf_new(v, n); }

static int j_begin(void *u) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  if (!j->steps) return WHISPER_OK;
  int rc = j->real->ops.savepoint(j->real->user);
  if (rc == WHISPER_OK) j->depth++;
  return rc;
}

static int j_commit(void *u) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  if (!j->steps || j->depth == 0) return WHISPER_OK;
  int rc = j->real->ops.release(j->real->user);
  if (rc == WHISPER_OK) j->depth--;
  return rc; /* (the caller rolls back: j_rollback) */
}

static void j_rollback(void *u) {
  sy_join *j = u;
  if (!j->aborted && j->steps && j->depth > 0) { /* the call's own writes only */
    j->depth--;
    if (j->real->ops.rollback_to(j->real->user) == WHISPER_OK) return;
  }
  kv_drop(j);
  if (j->aborted) return;
  j->real->ops.rollback(j->real->user);
  j->real->in_txn = 0;
  j->aborted = 1;
}

static int j_get(void *u, int kind, const uint8_t *key, size_t key_len, whisper_buf **out) {
  sy_join *j = u;
  *out = NULL;
  if (j->aborted) return WHISPER_ESTORE;
  if (!j->caching || kind != WHISPER_REC_SYNC_STATE)
    return j->real->ops.get(j->real->user, kind, key, key_len, out);
  sy_kv *e = kv_find(j, key, key_len);
  if (e == NULL) {
    whisper_buf *b = NULL;
    int rc = j->real->ops.get(j->real->user, kind, key, key_len, &b);
    if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
    if ((e = kv_add(j, key, key_len)) == NULL) {
      whisper_buf_free(b);
      return WHISPER_ENOMEM;
    }
    e->val = rc == WHISPER_OK ? b : NULL;
  }
  if (e->val == NULL) return WHISPER_ENOTFOUND;
  return (*out = buf_copy(e->val->data, e->val->len)) ? WHISPER_OK : WHISPER_ENOMEM;
}

/* A write of an engine record while caching: kept, written at the commit. */
static int kv_set(sy_join *j, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n,
                  int present) {
  sy_kv *e = kv_find(j, key, key_len);
  if (e == NULL && (e = kv_add(j, key, key_len)) == NULL) return WHISPER_ENOMEM;
  whisper_buf *b = present ? buf_copy(v, n) : NULL;
  if (present && b == NULL) return WHISPER_ENOMEM;
  whisper_buf_free(e->val);
  e->val = b;
  e->dirty = 1;
  return WHISPER_OK;
}

static int j_put(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  j->writes++;
  if (kind == WHISPER_REC_SEARCH) j->searched = 1;
  if (j->caching && kind == WHISPER_REC_SYNC_STATE) return kv_set(j, key, key_len, v, n, 1);
  return j->real->ops.put(j->real->user, kind, key, key_len, v, n);
}

static int j_add(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  j->writes++;
  if (kind == WHISPER_REC_SEARCH) j->searched = 1;
  if (j->caching && kind == WHISPER_REC_SYNC_STATE) { /* (not used on these; as a get and a put) */
    whisper_buf *b = NULL;
    int rc = j_get(u, kind, key, key_len, &b);
    whisper_buf_free(b);
    if (rc == WHISPER_OK) return WHISPER_EDUPLICATE;
    return rc == WHISPER_ENOTFOUND ? kv_set(j, key, key_len, v, n, 1) : rc;
  }
  return wh_store_add(j->real, kind, key, key_len, v, n);
}

static int j_del(void *u, int kind, const uint8_t *key, size_t key_len) {
  sy_join *j = u;
  if (j->aborted) return WHISPER_ESTORE;
  j->writes++;
  if (j->caching && kind == WHISPER_REC_SYNC_STATE) return kv_set(j, key, key_len, NULL, 0, 0);
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

static const char *j_last_error(void *u) {
  sy_join *j = u;
  return j->aborted ? "the joined transaction was aborted" : wh_store_error(j->real);
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
  c->shim.ops.last_error = j_last_error;
  c->shim.user = &c->join;
  c->join.real = c->ctx->store;
  c->join.aborted = 0;
}

int sy_txn_begin(whisper_client *c) {
  c->ctx->store = c->join.real;
  kv_drop(&c->join);
  c->join.steps = 0;
  c->join.depth = 0;
  int rc = wh_begin(c->ctx);
  if (rc != WHISPER_OK) return rc;
  c->join.aborted = 0;
  c->shim.in_txn = 0;
  c->ctx->store = &c->shim;
  return WHISPER_OK;
}

int sy_txn_begin_steps(whisper_client *c) {
  const whisper_store *r = c->join.real;
  if (c->ctx->store != r || r->in_txn || r->ops.version < 4 || r->ops.savepoint == NULL)
    return WHISPER_ESTATE;
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) c->join.steps = 1;
  return rc;
}

int sy_txn_alive(const whisper_client *c) { return !c->join.aborted; }

int sy_txn_cache(whisper_client *c) {
  if (c->join.aborted) return WHISPER_ESTORE;
  if (c->join.kv == NULL && (c->join.kv = calloc(SY_KV_BUCKETS, sizeof *c->join.kv)) == NULL)
    return WHISPER_ENOMEM;
  c->join.caching = 1;
  return WHISPER_OK;
}

int sy_txn_end(whisper_client *c, int rc) {
  c->ctx->store = c->join.real;
  c->join.steps = 0;
  c->join.depth = 0;
  if (c->join.aborted) {
    c->join.aborted = 0;
    kv_drop(&c->join);
    return rc != WHISPER_OK ? rc : WHISPER_ESTORE;
  }
  if (rc == WHISPER_OK && c->join.caching) rc = kv_flush(&c->join);
  kv_drop(&c->join);
  return wh_finish(c->ctx, rc);
}

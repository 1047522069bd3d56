/*
 * The engine's transactions, and its records through a batch.
 *
 * The engine keeps what a library call changes (a decrypted message and
 * its session, a sender key) together with its own progress (the mailbox
 * position) in one store transaction: it opens the transaction, and the
 * library calls inside join it (the library's nesting, common/txn.c).
 * sy_txn_begin() asks for "plain" joins (no savepoint per call: a call that
 * fails fails the transaction, sy_txn_alive() == 0, and later calls in it
 * fail until sy_txn_end()); sy_txn_begin_steps() (the send pump) lets each
 * call take a savepoint, so that one failing undoes itself alone. A step
 * of the engine that must be undone alone (one mailbox entry) takes a
 * savepoint of its own (wh_begin_flags() inside, inbox.c).
 *
 * The engine never joins a transaction it did not open (an app's,
 * whisper_store_begin()): its acknowledgements and frames leave after its
 * commit, which must then be durable.
 *
 * A batch of entries (inbox.c) also keeps the engine's own records
 * (WHISPER_REC_SYNC_STATE, read and written only through sy_rec_*) in
 * memory through its transaction (sy_txn_cache()): each is read from the
 * store once and written once, just before the commit.
 */
#include "sync/sync_internal.h"

#include "protocol/pb.h"

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

static sy_kv *kv_find(whisper_client *c, const uint8_t *key, size_t n) {
  for (sy_kv *e = c->kv[kv_hash(key, n)]; e; e = e->next)
    if (e->key_len == n && memcmp(e->key, key, n) == 0) return e;
  return NULL;
}

static sy_kv *kv_add(whisper_client *c, const uint8_t *key, size_t n) {
  sy_kv *e = calloc(1, sizeof *e);
  if (e == NULL || (e->key = malloc(n ? n : 1)) == NULL) {
    free(e);
    return NULL;
  }
  memcpy(e->key, key, n);
  e->key_len = n;
  size_t h = kv_hash(key, n);
  e->next = c->kv[h];
  c->kv[h] = e;
  return e;
}

static void kv_drop(whisper_client *c) {
  if (c->kv)
    for (size_t i = 0; i < SY_KV_BUCKETS; i++)
      while (c->kv[i]) {
        sy_kv *e = c->kv[i];
        c->kv[i] = e->next;
        whisper_buf_free(e->val);
        free(e->key);
        free(e);
      }
  free(c->kv);
  c->kv = NULL;
  c->caching = 0;
}

/* Writes what changed, in the transaction. */
static int kv_flush(whisper_client *c) {
  int rc = WHISPER_OK;
  for (size_t i = 0; c->kv && i < SY_KV_BUCKETS && rc == WHISPER_OK; i++)
    for (sy_kv *e = c->kv[i]; e && rc == WHISPER_OK; e = e->next) {
      if (!e->dirty) continue;
      rc = e->val ? wh_put(c->ctx, WHISPER_REC_SYNC_STATE, e->key, e->key_len, e->val->data,
                           e->val->len)
                  : wh_del(c->ctx, WHISPER_REC_SYNC_STATE, e->key, e->key_len);
      e->dirty = 0;
    }
  return rc;
}

static int lost(whisper_client *c) {
  return wh_fail(c->ctx, WHISPER_ESTORE, "the engine's transaction has failed: roll it back");
}

int sy_rec_get(whisper_client *c, const uint8_t *key, size_t key_len, whisper_buf **out) {
  *out = NULL;
  if (!c->caching) return wh_get(c->ctx, WHISPER_REC_SYNC_STATE, key, key_len, out);
  if (c->ctx->store->failed) return lost(c);
  sy_kv *e = kv_find(c, key, key_len);
  if (e == NULL) {
    whisper_buf *b = NULL;
    int rc = wh_get(c->ctx, WHISPER_REC_SYNC_STATE, key, key_len, &b);
    if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
    if ((e = kv_add(c, key, key_len)) == NULL) {
      whisper_buf_free(b);
      return wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
    }
    e->val = rc == WHISPER_OK ? b : NULL;
  }
  if (e->val == NULL) return WHISPER_ENOTFOUND;
  *out = whisper_buf_new(e->val->data, e->val->len);
  return *out ? WHISPER_OK : wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
}

/* A write while caching: kept, written at the commit. */
static int kv_set(whisper_client *c, const uint8_t *key, size_t key_len, const uint8_t *v,
                  size_t n, int present) {
  if (c->ctx->store->failed) return lost(c);
  c->ctx->writes++;
  sy_kv *e = kv_find(c, key, key_len);
  if (e == NULL && (e = kv_add(c, key, key_len)) == NULL)
    return wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
  whisper_buf *b = present ? whisper_buf_new(v, n) : NULL;
  if (present && b == NULL) return wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
  whisper_buf_free(e->val);
  e->val = b;
  e->dirty = 1;
  return WHISPER_OK;
}

int sy_rec_put(whisper_client *c, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  if (!c->caching) return wh_put(c->ctx, WHISPER_REC_SYNC_STATE, key, key_len, v, n);
  return kv_set(c, key, key_len, v, n, 1);
}

int sy_rec_put_msg(whisper_client *c, const uint8_t *key, size_t key_len,
                   const ProtobufCMessage *m) {
  if (!c->caching) return wh_put_msg(c->ctx, WHISPER_REC_SYNC_STATE, key, key_len, m);
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) return wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
  protobuf_c_message_pack(m, buf);
  int rc = kv_set(c, key, key_len, buf, n, 1);
  wh_wipe(buf, n);
  free(buf);
  return rc;
}

int sy_rec_del(whisper_client *c, const uint8_t *key, size_t key_len) {
  if (!c->caching) return wh_del(c->ctx, WHISPER_REC_SYNC_STATE, key, key_len);
  return kv_set(c, key, key_len, NULL, 0, 0);
}

/* --- transactions ------------------------------------------------------------------------------- */

static int begin(whisper_client *c, unsigned flags) {
  if (c->ctx->store->depth)
    return wh_fail(c->ctx, WHISPER_ESTATE,
                   "a store transaction is open (the client engine never joins the app's: its "
                   "progress must be durable before its frames leave)");
  kv_drop(c);
  int rc = wh_begin_flags(c->ctx, flags);
  if (rc == WHISPER_OK) {
    c->txn_open = 1;
    c->search0 = c->ctx->search_puts;
  }
  return rc;
}

int sy_txn_begin(whisper_client *c) { return begin(c, WH_TXN_PLAIN); }

int sy_begin(whisper_client *c) {
  if (c->ctx->store->app_levels)
    return wh_fail(c->ctx, WHISPER_ESTATE,
                   "the app holds a transaction on the store (the client engine never joins "
                   "the app's: its progress must be durable before its frames leave)");
  return wh_begin(c->ctx);
}

int sy_txn_begin_steps(whisper_client *c) {
  if (c->ctx->store->depth || !wh_txn_has_savepoints(c->ctx->store)) return WHISPER_ESTATE;
  return begin(c, 0);
}

int sy_txn_alive(const whisper_client *c) { return !c->ctx->store->failed; }

int sy_txn_cache(whisper_client *c) {
  if (c->ctx->store->failed) return WHISPER_ESTORE;
  if (c->kv == NULL && (c->kv = calloc(SY_KV_BUCKETS, sizeof *c->kv)) == NULL) return WHISPER_ENOMEM;
  c->caching = 1;
  return WHISPER_OK;
}

int sy_txn_end(whisper_client *c, int rc) {
  whisper_store *s = c->ctx->store;
  if (!c->txn_open) return rc; /* (its begin failed: nothing is open, or not the engine's) */
  c->txn_open = 0;
  if (c->ctx->search_puts != c->search0) c->searched = 1;
  c->search0 = c->ctx->search_puts;
  while (s->depth > 1) wh_rollback(c->ctx); /* (a step of its own left open: not kept) */
  if (s->failed) {
    kv_drop(c);
    wh_finish(c->ctx, WHISPER_ESTORE);
    return rc != WHISPER_OK ? rc : WHISPER_ESTORE;
  }
  if (rc == WHISPER_OK && c->caching) rc = kv_flush(c);
  kv_drop(c);
  return wh_finish(c->ctx, rc);
}

/* The context, error text, buffers and the store wrapper. */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

const char *whisper_strerror(int code) {
  switch (code) {
    case WHISPER_OK: return "success";
    /* usage */
    case WHISPER_EINVAL: return "invalid argument";
    case WHISPER_EINVALIDKEY: return "invalid key";
    case WHISPER_ETOOBIG: return "too large";
    /* input verdicts */
    case WHISPER_EINVALIDMSG: return "invalid message";
    case WHISPER_EINVALIDSIG: return "invalid signature";
    case WHISPER_ETOOFAR: return "message too far ahead";
    case WHISPER_EVERSION: return "version mismatch";
    case WHISPER_EKEY: return "wrong key (the store's, or an attachment's)";
    case WHISPER_ETRUNCATED: return "data cut short";
    case WHISPER_EINTEGRITY: return "data altered (a MAC or digest does not verify)";
    case WHISPER_ESIZE: return "the stated size is not the data's";
    /* trust */
    case WHISPER_EUNTRUSTED: return "untrusted identity";
    case WHISPER_EFORGED: return "refused: not made by anyone entitled to";
    case WHISPER_EDENIED: return "not allowed (not the sender's, or too late)";
    case WHISPER_EBLOCKED: return "the account is blocked (unblock it first)";
    /* state */
    case WHISPER_ENOSESSION: return "no session";
    case WHISPER_EDUPLICATE: return "duplicate message";
    case WHISPER_ENOTFOUND: return "not found";
    case WHISPER_ESTATE: return "operation not valid in this state";
    case WHISPER_EROLLEDBACK: return "state older than keys already used (restored from a copy)";
    /* storage and system */
    case WHISPER_ENOMEM: return "out of memory";
    case WHISPER_ESTORE: return "store failure";
    case WHISPER_EBUSY: return "store busy";
    case WHISPER_ERANDOM: return "random number generator failure";
    /* fatal */
    case WHISPER_ECORRUPT: return "corrupt record";
    case WHISPER_EINTERNAL: return "internal error";
    default: return "unknown error";
  }
}

int whisper_err_is_fatal(int code) {
  return code == WHISPER_ECORRUPT || code == WHISPER_EINTERNAL;
}

unsigned whisper_version(void) { return WHISPER_VERSION_NUMBER; }
size_t whisper_public_key_len(void) { return WHISPER_PUBLIC_KEY_LEN; }
size_t whisper_signature_len(void) { return WHISPER_SIGNATURE_LEN; }
size_t whisper_private_key_len(void) { return WHISPER_PRIVATE_KEY_LEN; }

/* A buffer is one block: the struct, then its bytes (data points just past
 * the struct; whisper_buf_free() also takes a buffer whose data is a block
 * of its own). One allocation instead of two: every message makes some. */
static whisper_buf *buf_block(size_t len) {
  if (len > SIZE_MAX - sizeof(whisper_buf) - 1) return NULL;
  whisper_buf *b = malloc(sizeof *b + (len ? len : 1));
  if (b == NULL) return NULL;
  b->data = (uint8_t *)(b + 1);
  b->len = len;
  return b;
}

whisper_buf *whisper_buf_new(const uint8_t *data, size_t len) {
  whisper_buf *b = buf_block(len);
  if (b == NULL) return NULL;
  if (data && len)
    memcpy(b->data, data, len);
  else
    memset(b->data, 0, len ? len : 1);
  return b;
}

whisper_buf *wh_buf_alloc(size_t len) {
  return buf_block(len); /* not zeroed: the caller writes every byte it keeps */
}

void whisper_buf_free(whisper_buf *buf) {
  if (buf == NULL) return;
  if (buf->data) {
    wh_wipe(buf->data, buf->len);
    if (buf->data != (uint8_t *)(buf + 1)) free(buf->data);
  }
  free(buf);
}

int wh_fail(whisper_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wh_error_setv(ctx ? ctx->last_error : NULL, code, fmt, ap);
  va_end(ap);
  return code;
}

int wh_size_check(whisper_ctx *ctx, const char *arg, size_t size, size_t min, const char *type,
                  const char *init) {
  if (size >= min) return WHISPER_OK;
  return wh_fail(ctx, WHISPER_EINVAL,
                 "the size of %s is %zu, smaller than any %s (%zu): initialize it with %s", arg,
                 size, type, min, init);
}

int wh_ok(whisper_ctx *ctx) {
  ctx->last_error[0] = '\0';
  return WHISPER_OK;
}

int whisper_ctx_new(whisper_ctx **out, whisper_store *store) {
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (store == NULL) return WHISPER_EINVAL;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  whisper_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return WHISPER_ENOMEM;
  ctx->store = store;
  *out = ctx;
  return WHISPER_OK;
}

void whisper_ctx_free(whisper_ctx *ctx) {
  if (ctx == NULL) return;
  wh_session_memo_free(ctx);
  wh_trust_memo_free(ctx);
  whisper_buf_free(ctx->view_buf);
  wh_wipe(ctx, sizeof *ctx);
  free(ctx);
}

int whisper_ctx_rng_set(whisper_ctx *ctx, whisper_rng_fn fn, void *user) {
  if (ctx == NULL) return WHISPER_EINVAL;
  ctx->rng.fn = fn;
  ctx->rng.user = fn ? user : NULL;
  return wh_ok(ctx);
}

const char *whisper_ctx_last_error(const whisper_ctx *ctx) {
  return ctx ? ctx->last_error : "no context";
}

int wh_addr_make(whisper_ctx *ctx, wh_addr *a, const char *name, uint32_t device_id) {
  if (name == NULL) return wh_fail(ctx, WHISPER_EINVAL, "name is NULL");
  size_t n = strlen(name);
  if (n == 0 || n > WH_NAME_MAX)
    return wh_fail(ctx, WHISPER_EINVAL, "name must be 1 to %d bytes", WH_NAME_MAX);
  if (device_id == WHISPER_ALL_DEVICES)
    return wh_fail(ctx, WHISPER_EINVAL, "device id %u is reserved", device_id);
  memcpy(a->key, name, n);
  a->key[n] = 0;
  wh_be32(a->key + n + 1, device_id);
  a->len = n + 5;
  return WHISPER_OK;
}

/* --- the store wrapper ---------------------------------------------------- */

int whisper_store_new(whisper_store **out, const whisper_store_ops *ops, void *user) {
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (ops == NULL || ops->version < 1 || ops->version > WHISPER_STORE_OPS_VERSION || !ops->begin ||
      !ops->commit || !ops->rollback || !ops->get || !ops->put || !ops->del ||
      (ops->version >= 2 && !ops->scan) ||
      (ops->version >= 4 && (!ops->savepoint != !ops->release || !ops->release != !ops->rollback_to)))
    return WHISPER_EINVAL;
  whisper_store *s = calloc(1, sizeof *s);
  if (s == NULL) return WHISPER_ENOMEM;
  /* copy only the fields the caller's version has */
  memcpy(&s->ops, ops,
         ops->version >= 5   ? sizeof *ops
         : ops->version == 4 ? offsetof(whisper_store_ops, last_error)
         : ops->version == 3 ? offsetof(whisper_store_ops, savepoint)
         : ops->version == 2 ? offsetof(whisper_store_ops, add)
                             : offsetof(whisper_store_ops, scan));
  s->ops.version = ops->version;
  s->user = user;
  *out = s;
  return WHISPER_OK;
}

void whisper_store_free(whisper_store *store) {
  if (store == NULL) return;
  while (store->depth > 0) wh_txn_rollback(store); /* an app's transaction left open */
  if (store->ops.destroy) store->ops.destroy(store->user);
  free(store);
}

const char *whisper_store_last_error(const whisper_store *store) {
  if (store == NULL) return "no store";
  return store->txn_error ? store->txn_error : wh_store_error(store);
}

/* A store call failed with `rc`: the context's sentence is `what`, the
 * code's text, then the store's own (e.g. SQLite's code and message). */
static int store_fail(whisper_ctx *ctx, int rc, const char *what) {
  const char *detail = wh_store_error(ctx->store);
  return wh_fail(ctx, rc, "%s (%s)%s%.160s", what, whisper_strerror(rc), detail[0] ? ": " : "",
                 detail);
}

/* A transaction call failed: the context's sentence (the store's own text
 * appended when a store call failed). */
static int txn_fail(whisper_ctx *ctx, int rc, const wh_txn_err *e) {
  if (e->from_store) return store_fail(ctx, rc, e->why);
  return wh_fail(ctx, rc, "%s", e->why);
}

int wh_begin_flags(whisper_ctx *ctx, unsigned flags) {
  wh_txn_err e;
  int rc = wh_txn_begin(ctx->store, flags, &e);
  return rc == WHISPER_OK ? rc : txn_fail(ctx, rc, &e);
}

int wh_begin(whisper_ctx *ctx) { return wh_begin_flags(ctx, 0); }

int wh_commit(whisper_ctx *ctx) {
  wh_txn_err e;
  int rc = wh_txn_commit(ctx->store, &e);
  return rc == WHISPER_OK ? rc : txn_fail(ctx, rc, &e);
}

void wh_rollback(whisper_ctx *ctx) { wh_txn_rollback(ctx->store); }

/* --- the app's transactions (store.h) ---------------------------------------------------------- */

int whisper_store_begin(whisper_store *store) {
  if (store == NULL) return WHISPER_EINVAL;
  wh_txn_err e;
  int rc = wh_txn_begin(store, 0, &e);
  store->txn_error = rc == WHISPER_OK || e.from_store ? NULL : e.why;
  if (rc == WHISPER_OK) store->app_levels++;
  return rc;
}

int whisper_store_commit(whisper_store *store) {
  if (store == NULL) return WHISPER_EINVAL;
  wh_txn_err e;
  unsigned depth = store->depth;
  int rc = wh_txn_commit(store, &e);
  store->txn_error = rc == WHISPER_OK || e.from_store ? NULL : e.why;
  if (store->depth < depth && store->app_levels) store->app_levels--; /* (ended, kept or not) */
  return rc;
}

int whisper_store_rollback(whisper_store *store) {
  if (store == NULL) return WHISPER_EINVAL;
  if (store->depth == 0) {
    store->txn_error = "no store transaction is open";
    return WHISPER_ESTATE;
  }
  store->txn_error = NULL;
  wh_txn_rollback(store);
  if (store->app_levels) store->app_levels--;
  return WHISPER_OK;
}

int wh_finish(whisper_ctx *ctx, int rc) {
  whisper_buf_free(ctx->view_buf); /* no copy of a record outlives the call */
  ctx->view_buf = NULL;
  if (rc == WHISPER_OK) return wh_commit(ctx);
  wh_rollback(ctx);
  return rc;
}

int wh_finish_out(whisper_ctx *ctx, int rc, whisper_buf **out) {
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) {
    whisper_buf_free(*out);
    *out = NULL;
    return rc;
  }
  return wh_ok(ctx);
}

/* A record call inside a transaction that has failed. */
static int failed_txn(whisper_ctx *ctx) {
  return wh_fail(ctx, WHISPER_ESTORE,
                 "the store's transaction has failed (a call inside it failed and could not be "
                 "undone alone): roll it back");
}

int wh_get(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, whisper_buf **out) {
  whisper_store *s = ctx->store;
  *out = NULL;
  if (s->failed) return failed_txn(ctx);
  s->last_error[0] = '\0';
  int rc = s->ops.get(s->user, kind, key, key_len, out);
  if (rc == WHISPER_OK && *out == NULL) rc = WHISPER_ESTORE;
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return store_fail(ctx, rc, "store: read failed");
  return rc;
}

int wh_get_view(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                const uint8_t **val, size_t *val_len) {
  whisper_store *s = ctx->store;
  whisper_buf_free(ctx->view_buf); /* the last view ends here */
  ctx->view_buf = NULL;
  *val = NULL;
  *val_len = 0;
  if (s->failed) return failed_txn(ctx);
  if (s->view) {
    s->last_error[0] = '\0';
    int rc = s->view(s->user, kind, key, key_len, val, val_len);
    if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return store_fail(ctx, rc, "store: read failed");
    return rc;
  }
  int rc = wh_get(ctx, kind, key, key_len, &ctx->view_buf);
  if (rc == WHISPER_OK) {
    *val = ctx->view_buf->data;
    *val_len = ctx->view_buf->len;
  }
  return rc;
}

int wh_put(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
           size_t val_len) {
  whisper_store *s = ctx->store;
  if (s->failed) return failed_txn(ctx);
  ctx->writes++;
  if (kind == WHISPER_REC_SEARCH) ctx->search_puts++;
  s->last_error[0] = '\0';
  int rc = s->ops.put(s->user, kind, key, key_len, val, val_len);
  if (rc != WHISPER_OK) return store_fail(ctx, rc, "store: write failed");
  return WHISPER_OK;
}

int wh_store_add(whisper_store *s, int kind, const uint8_t *key, size_t key_len,
                 const uint8_t *val, size_t val_len) {
  if (s->ops.add) return s->ops.add(s->user, kind, key, key_len, val, val_len);
  whisper_buf *old = NULL; /* a store without add: read, then put */
  int rc = s->ops.get(s->user, kind, key, key_len, &old);
  whisper_buf_free(old);
  if (rc == WHISPER_OK) return WHISPER_EDUPLICATE;
  return rc == WHISPER_ENOTFOUND ? s->ops.put(s->user, kind, key, key_len, val, val_len) : rc;
}

int wh_add(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
           size_t val_len) {
  if (ctx->store->failed) return failed_txn(ctx);
  ctx->writes++;
  ctx->store->last_error[0] = '\0';
  int rc = wh_store_add(ctx->store, kind, key, key_len, val, val_len);
  if (rc == WHISPER_OK || rc == WHISPER_EDUPLICATE) return rc;
  return store_fail(ctx, rc, "store: write failed");
}

int wh_del(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len) {
  whisper_store *s = ctx->store;
  if (s->failed) return failed_txn(ctx);
  ctx->writes++;
  s->last_error[0] = '\0';
  int rc = s->ops.del(s->user, kind, key, key_len);
  if (rc != WHISPER_OK) return store_fail(ctx, rc, "store: delete failed");
  return WHISPER_OK;
}

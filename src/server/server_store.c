/*
 * The server's records in its store.
 *
 *   ACCOUNT  name                         -> Account (devices, link codes, privacy)
 *   DEVICE   name || 0 || device id (BE4) -> Device (keys, mailbox counters)
 *   GROUP    group id (16)                -> Group (members, admins)
 *   SENT_AT  period (BE4) || device tag (16) || client id (16) -> sync Sent
 *                                         (the idempotent answer, pruned by period)
 *   SHARE    device tag (16) || sender tag (16) -> Share (a busy mailbox's senders)
 *   META     "salt" / "server_seq" / "mailbox_depth" / "upload_secret"
 *   MAILBOX  device tag (16) || seq (BE8) -> sync Deliver
 *   PREKEY   device tag (16) || id (BE4)  -> the 33-byte one-time prekey
 *
 * The device tag is BLAKE2b-128 keyed with a random salt kept in META, so
 * the ordered keys, which a store keeps in the clear, name nobody.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char META_SALT[] = "salt";
static const char META_SEQ[] = "server_seq";
static const char META_DEPTH[] = "mailbox_depth";

void wsrv_addr_make(wsrv_addr *a, const char *name, uint32_t device_id) {
  size_t n = strlen(name);
  if (n > WSRV_NAME_MAX) n = WSRV_NAME_MAX; /* names are checked before; never cut in practice */
  memcpy(a->key, name, n);
  a->key[n] = 0;
  wh_be32(a->key + n + 1, device_id);
  a->len = n + 5;
}

void wsrv_tag(const whisper_server *srv, const wsrv_addr *a, uint8_t tag[WSRV_TAG_LEN]) {
  crypto_generichash(tag, WSRV_TAG_LEN, a->key, a->len, srv->salt, sizeof srv->salt);
}

/* --- transactions and raw access ----------------------------------------- */

/* The server's transactions are common/txn.c's, as the client library's:
 * one frame's transaction, or the batch's with a savepoint per frame. The
 * server never joins a transaction it did not open (its commits are the
 * points where its output may leave). */
int wsrv_begin(whisper_server *srv) {
  whisper_store *s = srv->store;
  if (srv->batch) return wsrv_batch_savepoint(srv);
  if (srv->cache.count) wsrv_cache_drop(srv); /* a write outside a batch: the records kept
                                                 from the last one may go stale */
  if (s->depth) return wsrv_fail(srv, WHISPER_ESTATE, "a store transaction is already open");
  wh_txn_err e;
  int rc = wh_txn_begin(s, 0, &e);
  if (rc != WHISPER_OK) return wsrv_fail(srv, rc, "%s", e.why);
  return WHISPER_OK;
}

static void rollback(whisper_server *srv) {
  whisper_store *s = srv->store;
  while (s->depth) wh_txn_rollback(s);
}

static int commit(whisper_server *srv) {
  wh_txn_err e;
  int rc = wh_txn_commit(srv->store, &e);
  if (rc != WHISPER_OK) return wsrv_fail(srv, rc, "%s (%s)", e.why, whisper_strerror(rc));
  return WHISPER_OK;
}

/* The total mailbox depth is a counter in the store, kept with the
 * mailboxes it counts, so it survives restarts and failed frames. */
static int depth_write(whisper_server *srv, int64_t delta) {
  if (delta == 0 || srv->cluster.node) return WHISPER_OK; /* cluster mode: per node (server.h) */
  uint64_t depth;
  int rc = wsrv_meta_u64(srv, META_DEPTH, &depth);
  if (rc != WHISPER_OK) return rc;
  if (delta < 0 && (uint64_t)-delta > depth)
    depth = 0;
  else
    depth += (uint64_t)delta;
  return wsrv_meta_put_u64(srv, META_DEPTH, depth);
}

/* Inside a batch: the frame's savepoint is released (its depth change
 * waits for the commit) or rolled back. A savepoint that cannot be
 * closed leaves the transaction in doubt: the batch is broken. */
static int batch_end_frame(whisper_server *srv, wsrv_fx *fx, int rc) {
  whisper_store *s = srv->store;
  int r = WHISPER_OK;
  if (rc == 0) {
    r = wh_txn_commit(s, NULL); /* (release) */
  } else {
    wh_txn_rollback(s); /* (rollback_to) */
    if (s->failed) r = WHISPER_ESTORE;
  }
  wsrv_cache_frame_end(srv, rc == 0 && r == WHISPER_OK);
  if (r != WHISPER_OK) {
    srv->batch_broken = 1;
    return wsrv_fail(srv, r, "store: cannot close a savepoint (%s): the batch fails",
                     whisper_strerror(r));
  }
  if (rc == 0 && fx) srv->batch_depth += fx->depth_delta;
  return rc;
}

int wsrv_end(whisper_server *srv, wsrv_fx *fx, int rc) {
  if (srv->batch) return batch_end_frame(srv, fx, rc);
  if (rc == 0) rc = wsrv_shares_rebuild(srv);
  if (rc == 0) rc = depth_write(srv, fx ? fx->depth_delta : 0);
  if (rc == 0) return commit(srv);
  rollback(srv);
  if (srv->n_rebuild) { /* asked by the frame that failed: in a transaction of its own */
    char why[sizeof srv->last_error];
    memcpy(why, srv->last_error, sizeof why);
    if (wsrv_begin(srv) == WHISPER_OK) {
      if (wsrv_shares_rebuild(srv) == WHISPER_OK)
        commit(srv);
      else
        rollback(srv);
    }
    srv->n_rebuild = 0;
    memcpy(srv->last_error, why, sizeof why);
  }
  return rc;
}

/* --- the batch's transaction ------------------------------------------------ */

int wsrv_batch_savepoint(whisper_server *srv) {
  whisper_store *s = srv->store;
  if (srv->batch_broken) return wsrv_fail(srv, WHISPER_ESTORE, "the batch's transaction is lost");
  wh_txn_err e;
  if (!srv->batch_txn) {
    if (s->depth) return wsrv_fail(srv, WHISPER_ESTATE, "a store transaction is already open");
    int rc = wh_txn_begin(s, 0, &e);
    if (rc != WHISPER_OK) return wsrv_fail(srv, rc, "%s", e.why);
    srv->batch_txn = 1;
  }
  /* the frame's level: a savepoint (the batch checked the store has them) */
  int rc = wh_txn_begin(s, 0, &e);
  if (rc != WHISPER_OK) {
    srv->batch_broken = 1;
    return wsrv_fail(srv, rc, "store: cannot open a savepoint (%s): the batch fails",
                     whisper_strerror(rc));
  }
  wsrv_cache_frame_begin(srv);
  return WHISPER_OK;
}

/* The depth counter and the cached records are written last (through
 * the cache while it is on), then the commit; the cache goes either way. */
int wsrv_batch_commit(whisper_server *srv) {
  int rc = WHISPER_OK;
  if (srv->batch_txn) {
    srv->batch_txn = 0;
    rc = wsrv_shares_rebuild(srv); /* the mailboxes its frames brought to half a share */
    if (rc == WHISPER_OK) rc = depth_write(srv, srv->batch_depth);
    if (rc == WHISPER_OK) rc = wsrv_cache_flush(srv);
    if (rc == WHISPER_OK)
      rc = commit(srv);
    else
      rollback(srv);
  }
  srv->batch_depth = 0;
  srv->n_rebuild = 0;
  if (rc == WHISPER_OK)
    wsrv_cache_settle(srv);
  else
    wsrv_cache_drop(srv);
  return rc;
}

void wsrv_batch_rollback(whisper_server *srv) {
  if (srv->batch_txn) rollback(srv);
  srv->batch_txn = 0;
  srv->batch_depth = 0;
  srv->n_rebuild = 0;
  srv->batch_broken = 0;
  wsrv_cache_drop(srv);
}

int wsrv_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out) {
  if (wsrv_cache_usable(srv, kind, n)) return wsrv_cache_get(srv, kind, key, n, out);
  return wsrv_store_get(srv, kind, key, n, out);
}

int wsrv_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
             size_t vn) {
  if (wsrv_cache_usable(srv, kind, n)) return wsrv_cache_put(srv, kind, key, n, v, vn);
  return wsrv_store_put(srv, kind, key, n, v, vn);
}

int wsrv_del(whisper_server *srv, int kind, const uint8_t *key, size_t n) {
  if (wsrv_cache_usable(srv, kind, n)) return wsrv_cache_del(srv, kind, key, n);
  return wsrv_store_del(srv, kind, key, n);
}

/* A store call failed with `rc`: the server's sentence is `what`, the
 * code's text, then the store's own (SQLite's or PostgreSQL's code and
 * message), as the library's contexts report it. */
static int store_fail(whisper_server *srv, int rc, const char *what) {
  const char *detail = wh_store_error(srv->store);
  return wsrv_fail(srv, rc, "%s (%s)%s%.160s", what, whisper_strerror(rc), detail[0] ? ": " : "",
                   detail);
}

int wsrv_store_get(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                   whisper_buf **out) {
  whisper_store *s = srv->store;
  *out = NULL;
  s->last_error[0] = '\0';
  int rc = s->ops.get(s->user, kind, key, n, out);
  if (rc == WHISPER_OK && *out == NULL) rc = WHISPER_ESTORE;
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return store_fail(srv, rc, "store: read failed");
  return rc;
}

int wsrv_store_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                   size_t vn) {
  whisper_store *s = srv->store;
  s->last_error[0] = '\0';
  int rc = s->ops.put(s->user, kind, key, n, v, vn);
  if (rc != WHISPER_OK) return store_fail(srv, rc, "store: write failed");
  return WHISPER_OK;
}

int wsrv_store_del(whisper_server *srv, int kind, const uint8_t *key, size_t n) {
  whisper_store *s = srv->store;
  s->last_error[0] = '\0';
  int rc = s->ops.del(s->user, kind, key, n);
  if (rc != WHISPER_OK) return store_fail(srv, rc, "store: delete failed");
  return WHISPER_OK;
}

int wsrv_put_msg(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                 const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  protobuf_c_message_pack(m, buf);
  if (wsrv_cache_usable(srv, kind, n)) /* the cache keeps the packed bytes */
    return wsrv_cache_put_owned(srv, kind, key, n, buf, len);
  int rc = wsrv_put(srv, kind, key, n, buf, len);
  wh_wipe(buf, len);
  free(buf);
  return rc;
}

int wsrv_get_msg(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                 const ProtobufCMessageDescriptor *d, ProtobufCMessage **out) {
  whisper_buf *b;
  *out = NULL;
  if (wsrv_cache_usable(srv, kind, n)) { /* unpacked from the cached bytes in place */
    const uint8_t *v;
    size_t vn;
    int rc = wsrv_cache_peek(srv, kind, key, n, &v, &vn);
    if (rc != WHISPER_OK) return rc;
    *out = protobuf_c_message_unpack(d, &wh_pb_alloc, vn, v);
    if (*out == NULL) return wsrv_fail(srv, WHISPER_ECORRUPT, "a stored %s is corrupt", d->short_name);
    return WHISPER_OK;
  }
  int rc = wsrv_get(srv, kind, key, n, &b);
  if (rc != WHISPER_OK) return rc;
  *out = protobuf_c_message_unpack(d, &wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (*out == NULL) return wsrv_fail(srv, WHISPER_ECORRUPT, "a stored %s is corrupt", d->short_name);
  return WHISPER_OK;
}

void wsrv_msg_free(void *m) {
  if (m) protobuf_c_message_free_unpacked(m, &wh_pb_alloc);
}

/* --- scans ---------------------------------------------------------------- */

typedef struct scan_acc {
  wsrv_rec *recs;
  size_t n, cap;
  int failed;
} scan_acc;

/* Copies each record: the store's buffers live only during the callback,
 * and the caller may write to the store once the scan is over. */
static int scan_copy(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
                     size_t val_len) {
  scan_acc *acc = arg;
  if (acc->n == acc->cap) {
    size_t cap = acc->cap ? acc->cap * 2 : 16;
    wsrv_rec *r = realloc(acc->recs, cap * sizeof *r);
    if (r == NULL) return acc->failed = 1;
    acc->recs = r;
    acc->cap = cap;
  }
  wsrv_rec *r = &acc->recs[acc->n];
  r->key = malloc(key_len ? key_len : 1);
  r->val = malloc(val_len ? val_len : 1);
  if (r->key == NULL || r->val == NULL) {
    free(r->key);
    free(r->val);
    return acc->failed = 1;
  }
  memcpy(r->key, key, key_len);
  if (val_len) memcpy(r->val, val, val_len);
  r->key_len = key_len;
  r->val_len = val_len;
  acc->n++;
  return 0;
}

int wsrv_scan(whisper_server *srv, int kind, const uint8_t *prefix, size_t prefix_len,
              const uint8_t *bound, size_t bound_len, size_t limit, wsrv_rec **out, size_t *n) {
  whisper_store *s = srv->store;
  scan_acc acc = {0};
  *out = NULL;
  *n = 0;
  if (s->ops.version < 2 || s->ops.scan == NULL)
    return wsrv_fail(srv, WHISPER_EINVAL, "the server needs a store with scan()");
  /* an ordered kind the batch's cache holds (shares): the store first */
  if (srv->cache.count && wsrv_cache_usable(srv, kind, 0)) {
    int frc = wsrv_cache_flush_kind(srv, kind);
    if (frc != WHISPER_OK) return frc;
  }
  s->last_error[0] = '\0';
  int rc = s->ops.scan(s->user, kind, prefix, prefix_len, bound, bound_len, 0, limit, scan_copy,
                       &acc);
  if (rc == WHISPER_OK && acc.failed) rc = WHISPER_ENOMEM;
  if (rc != WHISPER_OK) {
    wsrv_recs_free(acc.recs, acc.n);
    return store_fail(srv, rc, "store: scan failed");
  }
  *out = acc.recs;
  *n = acc.n;
  return WHISPER_OK;
}

void wsrv_recs_free(wsrv_rec *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    wh_wipe(r[i].val, r[i].val_len);
    free(r[i].key);
    free(r[i].val);
  }
  free(r);
}

/* --- counters ------------------------------------------------------------- */

int wsrv_meta_u64(whisper_server *srv, const char *name, uint64_t *v) {
  whisper_buf *b;
  *v = 0;
  int rc = wsrv_get(srv, WHISPER_REC_SERVER_META, (const uint8_t *)name, strlen(name), &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  if (b->len == 8)
    *v = wh_rd64(b->data);
  else
    rc = wsrv_fail(srv, WHISPER_ECORRUPT, "the counter %s is corrupt", name);
  whisper_buf_free(b);
  return rc;
}

int wsrv_meta_put_u64(whisper_server *srv, const char *name, uint64_t v) {
  uint8_t be[8];
  wh_be64(be, v);
  return wsrv_put(srv, WHISPER_REC_SERVER_META, (const uint8_t *)name, strlen(name), be, 8);
}

int wsrv_next_server_seq(whisper_server *srv, uint64_t *seq) {
  if (srv->cluster.node) { /* a clock, not a shared counter (server.h) */
    *seq = wsrv_cluster_seq(srv);
    return WHISPER_OK;
  }
  int rc = wsrv_meta_u64(srv, META_SEQ, seq);
  if (rc != WHISPER_OK) return rc;
  if (*seq == UINT64_MAX) return wsrv_fail(srv, WHISPER_ECORRUPT, "server_seq is exhausted");
  return wsrv_meta_put_u64(srv, META_SEQ, ++*seq);
}

/* The salt and the upload token secret are made once, in their own
 * transaction; the total depth is read back for the stats. */
int wsrv_store_init(whisper_server *srv) {
  whisper_buf *b;
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_get(srv, WHISPER_REC_SERVER_META, (const uint8_t *)META_SALT, strlen(META_SALT), &b);
  if (rc == WHISPER_OK) {
    if (b->len == WSRV_TAG_LEN)
      memcpy(srv->salt, b->data, WSRV_TAG_LEN);
    else
      rc = wsrv_fail(srv, WHISPER_ECORRUPT, "the server salt is corrupt");
    whisper_buf_free(b);
  } else if (rc == WHISPER_ENOTFOUND) {
    rc = wh_random(&srv->rng, srv->salt, sizeof srv->salt) == 0
             ? wsrv_put(srv, WHISPER_REC_SERVER_META, (const uint8_t *)META_SALT,
                        strlen(META_SALT), srv->salt, sizeof srv->salt)
             : wsrv_fail(srv, WHISPER_ERANDOM, "the random number generator failed");
  }
  if (rc == WHISPER_OK) rc = wsrv_upload_secret_init(srv);
  if (rc == WHISPER_OK) rc = wsrv_meta_u64(srv, META_DEPTH, &srv->stats.mailbox_depth);
  return wsrv_end(srv, NULL, rc);
}

/* --- records -------------------------------------------------------------- */

int wsrv_account_get(whisper_server *srv, const char *name, Whisper__Server__Account **out) {
  return wsrv_get_msg(srv, WHISPER_REC_SERVER_ACCOUNT, (const uint8_t *)name, strlen(name),
                      &whisper__server__account__descriptor, (ProtobufCMessage **)out);
}

int wsrv_account_put(whisper_server *srv, const char *name, const Whisper__Server__Account *a) {
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_ACCOUNT, (const uint8_t *)name, strlen(name),
                      &a->base);
}

/* A device record must hold well-formed keys: everything read later
 * (bundles, signature checks) relies on it. */
static int device_sane(const Whisper__Server__Device *d) {
  return wsrv_key_ok(d->has_identity_key, d->identity_key) &&
         wsrv_key_ok(d->has_signed_prekey, d->signed_prekey) &&
         wsrv_bytes_ok(d->has_signed_prekey_signature, d->signed_prekey_signature,
                       WHISPER_SIGNATURE_LEN);
}

int wsrv_device_get(whisper_server *srv, const char *name, uint32_t id,
                    Whisper__Server__Device **out) {
  wsrv_addr a;
  wsrv_addr_make(&a, name, id);
  int rc = wsrv_get_msg(srv, WHISPER_REC_SERVER_DEVICE, a.key, a.len,
                        &whisper__server__device__descriptor, (ProtobufCMessage **)out);
  if (rc == WHISPER_OK && !device_sane(*out)) {
    wsrv_msg_free(*out);
    *out = NULL;
    rc = wsrv_fail(srv, WHISPER_ECORRUPT, "a stored device is corrupt");
  }
  return rc;
}

int wsrv_device_put(whisper_server *srv, const char *name, uint32_t id,
                    const Whisper__Server__Device *d) {
  wsrv_addr a;
  wsrv_addr_make(&a, name, id);
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_DEVICE, a.key, a.len, &d->base);
}

int wsrv_account_has(const Whisper__Server__Account *a, uint32_t device_id) {
  for (size_t i = 0; i < a->n_devices; i++)
    if (a->devices[i]->device_id == device_id) return 1;
  return 0;
}

int wsrv_group_get(whisper_server *srv, const uint8_t id[WSRV_ID_LEN],
                   Whisper__Server__Group **out) {
  return wsrv_get_msg(srv, WHISPER_REC_SERVER_GROUP, id, WSRV_ID_LEN,
                      &whisper__server__group__descriptor, (ProtobufCMessage **)out);
}

int wsrv_group_has(char *const *names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return 1;
  return 0;
}

/*
 * The prekey directory: UploadPrekeys, FetchBundles (a one-time prekey is
 * handed out once: deleted in the transaction that hands it out) and
 * ListDevices. Bundles and Devices carry the account's signed device list
 * when it has one.
 *
 * One-time prekeys are rationed so that nobody drains a device's supply:
 * a device takes at most cfg.prekeys_per_requester of them per hour, and
 * a device's are handed out at most cfg.prekeys_per_target per hour
 * (token buckets, in memory). Past either, a bundle carries the signed
 * prekey alone (X3DH without a one-time prekey, as Signal falls back to
 * when a supply runs out); the fetch itself is not refused.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define PKEY_LEN (WSRV_TAG_LEN + 4)
#define HOUR_MS (60ULL * 60 * 1000)
#define FETCH_MAX 1024 /* device ids asked for in one FetchBundles */

int wsrv_prekeys_check(whisper_server *srv, Whisper__Sync__OneTimePrekey *const *pk, size_t n) {
  if (n > srv->cfg.max_prekeys) return wsrv_refuse(srv, ERR_LIMIT, "too many one-time prekeys");
  for (size_t i = 0; i < n; i++) {
    if (!pk[i]->has_id || !wsrv_key_ok(pk[i]->has_key, pk[i]->key))
      return wsrv_refuse(srv, ERR_MALFORMED, "a one-time prekey needs an id and a 33-byte key");
    for (size_t j = 0; j < i; j++)
      if (pk[j]->id == pk[i]->id) return wsrv_refuse(srv, ERR_MALFORMED, "a prekey id repeats");
  }
  return 0;
}

static void device_tag(const whisper_server *srv, const char *name, uint32_t device_id,
                       uint8_t tag[WSRV_TAG_LEN]) {
  wsrv_addr a;
  wsrv_addr_make(&a, name, device_id);
  wsrv_tag(srv, &a, tag);
}

/* Stores the prekeys (replacing those with the same id); `have` is the
 * device's count before, *count the count after. */
int wsrv_prekeys_put(whisper_server *srv, const char *name, uint32_t device_id,
                     Whisper__Sync__OneTimePrekey *const *pk, size_t n, uint32_t have,
                     uint32_t *count) {
  uint8_t key[PKEY_LEN];
  uint64_t total = have;
  int rc = WHISPER_OK;
  device_tag(srv, name, device_id, key);
  for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
    whisper_buf *old = NULL;
    wh_be32(key + WSRV_TAG_LEN, pk[i]->id);
    rc = have ? wsrv_get(srv, WHISPER_REC_SERVER_PREKEY, key, sizeof key, &old) : WHISPER_ENOTFOUND;
    if (rc == WHISPER_ENOTFOUND) total++;
    if (rc == WHISPER_OK || rc == WHISPER_ENOTFOUND)
      rc = wsrv_put(srv, WHISPER_REC_SERVER_PREKEY, key, sizeof key, pk[i]->key.data,
                    WHISPER_PUBLIC_KEY_LEN);
    whisper_buf_free(old);
  }
  if (rc == WHISPER_OK && total > srv->cfg.max_prekeys)
    rc = wsrv_refuse(srv, ERR_LIMIT, "the server keeps no more one-time prekeys for this device");
  *count = (uint32_t)total;
  return rc;
}

/* --- UploadPrekeys -------------------------------------------------------- */

static int signed_check(whisper_server *srv, const Whisper__Sync__DeviceKeys *k,
                        const Whisper__Server__Device *d) {
  if ((k->has_identity_key && (k->identity_key.len != d->identity_key.len ||
                               memcmp(k->identity_key.data, d->identity_key.data,
                                      d->identity_key.len) != 0)))
    return wsrv_refuse(srv, ERR_AUTH, "the identity key is not this device's");
  if (!k->has_signed_prekey_id || !wsrv_key_ok(k->has_signed_prekey, k->signed_prekey) ||
      !wsrv_bytes_ok(k->has_signed_prekey_signature, k->signed_prekey_signature,
                     WHISPER_SIGNATURE_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "a signed prekey needs an id, a key and a signature");
  if (whisper_verify(d->identity_key.data, d->identity_key.len, k->signed_prekey.data,
                     WHISPER_PUBLIC_KEY_LEN, k->signed_prekey_signature.data,
                     WHISPER_SIGNATURE_LEN) != WHISPER_OK)
    return wsrv_refuse(srv, ERR_AUTH, "the signed prekey's signature does not verify");
  return 0;
}

/* The device record is written as a copy with the new signed prekey (its
 * bytes belong to m, the unpacked record's to the record). */
static int upload_store(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__UploadPrekeys *m,
                        uint32_t *count, uint32_t *spk_id) {
  Whisper__Server__Device *d;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &d);
  if (rc != WHISPER_OK) return rc;
  Whisper__Server__Device out = *d;
  if (m->signed_ && (rc = signed_check(srv, m->signed_, d)) == 0) {
    out.signed_prekey_id = m->signed_->signed_prekey_id;
    out.signed_prekey = m->signed_->signed_prekey;
    out.signed_prekey_signature = m->signed_->signed_prekey_signature;
  }
  if (rc == WHISPER_OK)
    rc = wsrv_prekeys_put(srv, c->account, c->device_id, m->prekeys, m->n_prekeys, d->prekeys, count);
  if (rc == WHISPER_OK) {
    out.has_prekeys = 1;
    out.prekeys = *count;
    *spk_id = out.signed_prekey_id;
    rc = wsrv_device_put(srv, c->account, c->device_id, &out);
  }
  wsrv_msg_free(d);
  return rc;
}

int wsrv_handle_upload(whisper_server *srv, wsrv_conn *c, uint64_t id,
                       const Whisper__Sync__UploadPrekeys *m) {
  uint32_t count = 0, spk_id = 0;
  int r = wsrv_prekeys_check(srv, m->prekeys, m->n_prekeys);
  if (r) return r;
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, upload_store(srv, c, m, &count, &spk_id));
  if (rc != WHISPER_OK) return rc;
  c->prekeys_left = count;
  c->spk_id = spk_id;
  return wsrv_send_ok(srv, c, id);
}

/* --- FetchBundles --------------------------------------------------------- */

typedef struct fetched {
  uint32_t device_id;
  Whisper__Server__Device *dev;
  int has_pk;
  uint32_t pk_id;
  uint8_t pk[WHISPER_PUBLIC_KEY_LEN];
} fetched;

/* Whether `requester` may take one of `target`'s one-time prekeys now:
 * both buckets have a token (then both pay one). With no memory for the
 * buckets, no. */
static int ration(whisper_server *srv, const wsrv_conn *requester, const char *name,
                  uint32_t device_id, uint64_t now_ms) {
  wsrv_addr a;
  wsrv_bucket probe;
  wsrv_addr_make(&a, name, device_id);
  wsrv_dev *from = wsrv_dev_get(srv, &requester->addr), *to = wsrv_dev_get(srv, &a);
  if (from == NULL || to == NULL) return 0;
  /* the target's bucket is tried on a copy, so that a refusal costs the
   * requester nothing, and the requester's taken only when both agree */
  probe = to->pk_given;
  if (!wsrv_bucket_take(&probe, srv->cfg.prekeys_per_target, HOUR_MS, now_ms, NULL)) {
    to->pk_given = probe;
    return 0;
  }
  if (!wsrv_bucket_take(&from->pk_taken, srv->cfg.prekeys_per_requester, HOUR_MS, now_ms, NULL))
    return 0;
  to->pk_given = probe;
  return 1;
}

/* Takes the device's lowest one-time prekey, if it has one. */
static int take_prekey(whisper_server *srv, const char *name, fetched *f) {
  uint8_t tag[WSRV_TAG_LEN];
  wsrv_rec *recs;
  size_t n;
  device_tag(srv, name, f->device_id, tag);
  int rc = wsrv_scan(srv, WHISPER_REC_SERVER_PREKEY, tag, sizeof tag, NULL, 0, 1, &recs, &n);
  if (rc != WHISPER_OK || n == 0) return rc;
  if (recs[0].key_len == PKEY_LEN && recs[0].val_len == WHISPER_PUBLIC_KEY_LEN) {
    f->has_pk = 1;
    f->pk_id = wh_rd32(recs[0].key + WSRV_TAG_LEN);
    memcpy(f->pk, recs[0].val, WHISPER_PUBLIC_KEY_LEN);
  }
  rc = wsrv_del(srv, WHISPER_REC_SERVER_PREKEY, recs[0].key, recs[0].key_len);
  if (rc == WHISPER_OK) {
    f->dev->has_prekeys = 1;
    f->dev->prekeys = f->dev->prekeys ? f->dev->prekeys - 1 : 0;
    rc = wsrv_device_put(srv, name, f->device_id, f->dev);
  }
  wsrv_recs_free(recs, n);
  return rc;
}

static int wanted(const Whisper__Sync__FetchBundles *m, uint32_t device_id) {
  if (m->n_device_ids == 0) return 1;
  for (size_t i = 0; i < m->n_device_ids; i++)
    if (m->device_ids[i] == device_id) return 1;
  return 0;
}

/* Devices the account does not have are left out of the answer. *acct
 * (its signed list) is kept for the answer. */
static int fetch_store(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__FetchBundles *m,
                       fetched **out, size_t *n, Whisper__Server__Account **acct, uint64_t now_ms) {
  Whisper__Server__Account *a;
  *n = 0;
  int rc = wsrv_account_get(srv, m->account, &a);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
  if (rc != WHISPER_OK) return rc;
  if ((*out = calloc(a->n_devices ? a->n_devices : 1, sizeof **out)) == NULL)
    rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (size_t i = 0; i < a->n_devices && rc == WHISPER_OK; i++) {
    uint32_t dev = a->devices[i]->device_id;
    if (!wanted(m, dev)) continue;
    fetched *f = &(*out)[*n];
    f->device_id = dev;
    rc = wsrv_device_get(srv, m->account, dev, &f->dev);
    if (rc != WHISPER_OK) break;
    (*n)++;
    /* a device with none left costs no token */
    if ((!f->dev->has_prekeys || f->dev->prekeys > 0) && ration(srv, c, m->account, dev, now_ms))
      rc = take_prekey(srv, m->account, f);
  }
  *acct = a;
  return rc;
}

static int send_bundles(whisper_server *srv, wsrv_conn *c, uint64_t id, const char *account,
                        const Whisper__Server__Account *a, const fetched *fs, size_t n) {
  Whisper__Sync__Bundle *b = calloc(n ? n : 1, sizeof *b);
  Whisper__Sync__Bundle **bp = calloc(n ? n : 1, sizeof *bp);
  Whisper__Sync__DeviceKeys *k = calloc(n ? n : 1, sizeof *k);
  Whisper__Sync__OneTimePrekey *p = calloc(n ? n : 1, sizeof *p);
  int rc = WHISPER_ENOMEM;
  if (b && bp && k && p) {
    for (size_t i = 0; i < n; i++) {
      const Whisper__Server__Device *d = fs[i].dev;
      whisper__sync__bundle__init(&b[i]);
      whisper__sync__device_keys__init(&k[i]);
      whisper__sync__one_time_prekey__init(&p[i]);
      k[i].has_device_id = k[i].has_registration_id = k[i].has_identity_key = 1;
      k[i].has_signed_prekey_id = k[i].has_signed_prekey = k[i].has_signed_prekey_signature = 1;
      k[i].device_id = fs[i].device_id;
      k[i].registration_id = d->registration_id;
      k[i].identity_key = d->identity_key;
      k[i].signed_prekey_id = d->signed_prekey_id;
      k[i].signed_prekey = d->signed_prekey;
      k[i].signed_prekey_signature = d->signed_prekey_signature;
      b[i].keys = &k[i];
      if (fs[i].has_pk) {
        p[i].has_id = p[i].has_key = 1;
        p[i].id = fs[i].pk_id;
        p[i].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)fs[i].pk};
        b[i].prekey = &p[i];
      }
      bp[i] = &b[i];
    }
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    Whisper__Sync__Bundles bs = WHISPER__SYNC__BUNDLES__INIT;
    bs.account = (char *)account;
    bs.n_bundles = n;
    bs.bundles = bp;
    bs.has_signed_list = a->has_signed_list;
    bs.signed_list = a->signed_list;
    f.has_id = 1;
    f.id = id;
    f.body_case = WHISPER__SYNC__FRAME__BODY_BUNDLES;
    f.bundles = &bs;
    rc = wsrv_send(srv, c->id, &f);
  }
  free(b);
  free(bp);
  free(k);
  free(p);
  return rc;
}

/* The owners' connections learn their new prekey counts (for their Oks). */
static void counts_update(whisper_server *srv, const char *account, const fetched *fs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    wsrv_addr a;
    wsrv_addr_make(&a, account, fs[i].device_id);
    wsrv_dev *d = wsrv_map_get(&srv->devs, a.key, a.len);
    wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
    if (c) c->prekeys_left = fs[i].dev->prekeys;
    if (c) wsrv_batch_conn(srv, c); /* a failed batch closes it: the count was not kept */
  }
}

int wsrv_handle_fetch(whisper_server *srv, wsrv_conn *c, uint64_t id,
                      const Whisper__Sync__FetchBundles *m, uint64_t now_ms) {
  if (!wh_account_ok(m->account)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  if (m->n_device_ids > FETCH_MAX) return wsrv_refuse(srv, ERR_LIMIT, "too many device ids");
  for (size_t i = 0; i < m->n_device_ids; i++)
    if (!wsrv_device_ok(1, m->device_ids[i])) return wsrv_refuse(srv, ERR_MALFORMED, "bad device id");
  fetched *fs = NULL;
  size_t n = 0;
  Whisper__Server__Account *a = NULL;
  int rc = wsrv_begin(srv);
  if (rc == WHISPER_OK) rc = wsrv_end(srv, NULL, fetch_store(srv, c, m, &fs, &n, &a, now_ms));
  if (rc == WHISPER_OK) {
    counts_update(srv, m->account, fs, n);
    rc = send_bundles(srv, c, id, m->account, a, fs, n);
  }
  for (size_t i = 0; i < n; i++) wsrv_msg_free(fs[i].dev);
  free(fs);
  wsrv_msg_free(a);
  return rc;
}

/* --- ListDevices ---------------------------------------------------------- */

int wsrv_handle_list_devices(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__ListDevices *m) {
  if (!wh_account_ok(m->account)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  Whisper__Server__Account *a;
  int rc = wsrv_account_get(srv, m->account, &a);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
  if (rc != WHISPER_OK) return rc;
  uint32_t *ids = calloc(a->n_devices ? a->n_devices : 1, sizeof *ids);
  if (ids == NULL) {
    wsrv_msg_free(a);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < a->n_devices; i++) ids[i] = a->devices[i]->device_id;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Devices d = WHISPER__SYNC__DEVICES__INIT;
  d.account = m->account;
  d.n_device_ids = a->n_devices;
  d.device_ids = ids;
  d.has_signed_list = a->has_signed_list;
  d.signed_list = a->signed_list;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DEVICES;
  f.devices = &d;
  rc = wsrv_send(srv, c->id, &f);
  free(ids);
  wsrv_msg_free(a);
  return rc;
}

/*
 * Signed device lists (e2e.SignedDeviceList): their checks, PublishDevices
 * and the removal of the devices a list leaves out.
 *
 * Clients verify the lists; the server cannot make one. It checks a list
 * as far as it can (the account, device 1 with the key device 1
 * registered, device 1's XEdDSA signature over "whisper-devices-v1" ||
 * body, a version above the stored one), keeps the latest per account
 * (the exact bytes) and keeps its own routing to what the list names: a
 * registered device is listed when the list has its id with the identity
 * key it registered; the others are removed with their keys, one-time
 * prekeys and mailbox, in the transaction that stores the list.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char LIST_CONTEXT[] = "whisper-devices-v1";

#define DELETE_BATCH 256

/* --- parsing and checking ------------------------------------------------- */

void wsrv_dlist_free(wsrv_dlist *l) {
  if (l->body) whisper__e2e__device_list_body__free_unpacked(l->body, &wh_pb_alloc);
  if (l->signed_) whisper__e2e__signed_device_list__free_unpacked(l->signed_, &wh_pb_alloc);
  memset(l, 0, sizeof *l);
}

/* The entries: valid ids and keys, no id twice, at most the device limit. */
static int entries_check(whisper_server *srv, const Whisper__E2e__DeviceListBody *b) {
  if (b->n_devices > srv->cfg.max_devices)
    return wsrv_refuse(srv, ERR_LIMIT, "the device list has too many devices");
  for (size_t i = 0; i < b->n_devices; i++) {
    const Whisper__E2e__ListedDevice *d = b->devices[i];
    if (!wsrv_device_ok(d->has_device_id, d->device_id) ||
        !wsrv_key_ok(d->has_identity_key, d->identity_key))
      return wsrv_refuse(srv, ERR_MALFORMED, "a listed device needs an id and a 33-byte key");
    for (size_t j = 0; j < i; j++)
      if (b->devices[j]->device_id == d->device_id)
        return wsrv_refuse(srv, ERR_MALFORMED, "the device list names a device twice");
  }
  return 0;
}

/* The bytes parse as a SignedDeviceList of `account` whose body has a
 * version and well-formed entries. */
static int dlist_parse(whisper_server *srv, const char *account, ProtobufCBinaryData raw,
                       wsrv_dlist *out) {
  out->signed_ = whisper__e2e__signed_device_list__unpack(&wh_pb_alloc, raw.len, raw.data);
  if (out->signed_ == NULL || !out->signed_->has_body ||
      !wsrv_bytes_ok(out->signed_->has_signature, out->signed_->signature, WHISPER_SIGNATURE_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "the device list does not parse");
  out->body = whisper__e2e__device_list_body__unpack(&wh_pb_alloc, out->signed_->body.len,
                                                     out->signed_->body.data);
  if (out->body == NULL || !out->body->has_version || out->body->account == NULL)
    return wsrv_refuse(srv, ERR_MALFORMED, "the device list's body does not parse");
  if (strcmp(out->body->account, account) != 0)
    return wsrv_refuse(srv, ERR_MALFORMED, "the device list is another account's");
  return entries_check(srv, out->body);
}

/* The signature by `key` over "whisper-devices-v1" || body. */
static int dlist_signed(whisper_server *srv, const wsrv_dlist *l, const uint8_t *key, int *ok) {
  const ProtobufCBinaryData *body = &l->signed_->body;
  size_t n = sizeof LIST_CONTEXT - 1 + body->len;
  uint8_t *msg = malloc(n);
  if (msg == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  memcpy(msg, LIST_CONTEXT, sizeof LIST_CONTEXT - 1);
  if (body->len) memcpy(msg + sizeof LIST_CONTEXT - 1, body->data, body->len);
  *ok = whisper_verify(key, WHISPER_PUBLIC_KEY_LEN, msg, n, l->signed_->signature.data,
                       l->signed_->signature.len) == WHISPER_OK;
  free(msg);
  return WHISPER_OK;
}

int wsrv_dlist_lists(const wsrv_dlist *l, uint32_t device_id, const uint8_t *identity_key) {
  for (size_t i = 0; i < l->body->n_devices; i++) {
    const Whisper__E2e__ListedDevice *d = l->body->devices[i];
    if (d->device_id == device_id)
      return memcmp(d->identity_key.data, identity_key, WHISPER_PUBLIC_KEY_LEN) == 0;
  }
  return 0;
}

int wsrv_dlist_check(whisper_server *srv, const char *account, ProtobufCBinaryData raw,
                     uint64_t stored_version, wsrv_dlist *out) {
  Whisper__Server__Device *d1;
  int ok = 0, rc = dlist_parse(srv, account, raw, out);
  if (rc) return rc;
  rc = wsrv_device_get(srv, account, 1, &d1);
  if (rc == WHISPER_ENOTFOUND) return wsrv_fail(srv, WHISPER_ECORRUPT, "an account has no device 1");
  if (rc != WHISPER_OK) return rc;
  if (!wsrv_dlist_lists(out, 1, d1->identity_key.data))
    rc = wsrv_refuse(srv, ERR_MALFORMED, "the device list does not name device 1 with its key");
  if (rc == 0) rc = dlist_signed(srv, out, d1->identity_key.data, &ok);
  if (rc == 0 && !ok) rc = wsrv_refuse(srv, ERR_AUTH, "the device list's signature does not verify");
  if (rc == 0 && out->body->version <= stored_version)
    rc = wsrv_refuse(srv, ERR_STATE, "the device list's version is not above the stored one");
  wsrv_msg_free(d1);
  return rc;
}

/* --- removing a device ---------------------------------------------------- */

int wsrv_delete_under(whisper_server *srv, int kind, const uint8_t tag[WSRV_TAG_LEN],
                      uint64_t *n) {
  int rc = WHISPER_OK, more = 1;
  *n = 0;
  while (rc == WHISPER_OK && more) {
    wsrv_rec *recs;
    size_t got;
    rc = wsrv_scan(srv, kind, tag, WSRV_TAG_LEN, NULL, 0, DELETE_BATCH, &recs, &got);
    if (rc != WHISPER_OK) break;
    more = got == DELETE_BATCH;
    for (size_t i = 0; i < got && rc == WHISPER_OK; i++) {
      rc = wsrv_del(srv, kind, recs[i].key, recs[i].key_len);
      if (rc == WHISPER_OK) (*n)++;
    }
    wsrv_recs_free(recs, got);
  }
  return rc;
}

/* The device's keys, one-time prekeys, mailbox and its share records go
 * (fx counts the entries). Its idempotency records stay until they lapse
 * (cfg.sent_ttl_ms): they are kept by period, not by device. */
static int device_remove(whisper_server *srv, wsrv_fx *fx, const char *name, uint32_t device_id) {
  wsrv_addr a;
  uint8_t tag[WSRV_TAG_LEN];
  uint64_t n = 0;
  wsrv_addr_make(&a, name, device_id);
  wsrv_tag(srv, &a, tag);
  uint64_t shares = 0;
  int rc = wsrv_delete_under(srv, WHISPER_REC_SERVER_PREKEY, tag, &n);
  if (rc == WHISPER_OK) rc = wsrv_delete_under(srv, WHISPER_REC_SERVER_SHARE, tag, &shares);
  if (rc == WHISPER_OK) rc = wsrv_delete_under(srv, WHISPER_REC_SERVER_MAILBOX, tag, &n);
  if (rc == WHISPER_OK) {
    fx->depth_delta -= (int64_t)n;
    rc = wsrv_del(srv, WHISPER_REC_SERVER_DEVICE, a.key, a.len);
  }
  return rc;
}

/* 1 if the registered device is in the list (its id with its key). */
static int registered_listed(whisper_server *srv, const char *name, uint32_t device_id,
                             const wsrv_dlist *l, int *listed) {
  Whisper__Server__Device *d;
  *listed = 0;
  int rc = wsrv_device_get(srv, name, device_id, &d);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK; /* nothing to keep: dropped from the account */
  if (rc != WHISPER_OK) return rc;
  *listed = wsrv_dlist_lists(l, device_id, d->identity_key.data);
  wsrv_msg_free(d);
  return WHISPER_OK;
}

void wsrv_gone_free(wsrv_gone *g) {
  free(g->ids);
  memset(g, 0, sizeof *g);
}

int wsrv_dlist_install(whisper_server *srv, wsrv_fx *fx, const char *name,
                       const Whisper__Server__Account *a, const wsrv_dlist *l,
                       ProtobufCBinaryData raw, wsrv_gone *gone) {
  size_t cap = a->n_devices ? a->n_devices : 1;
  Whisper__Server__AccountDevice **keep = malloc(cap * sizeof *keep);
  gone->ids = malloc(cap * sizeof *gone->ids);
  gone->n = 0;
  if (keep == NULL || gone->ids == NULL) {
    free(keep);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  snprintf(gone->account, sizeof gone->account, "%s", name);
  Whisper__Server__Account out = *a;
  int listed, rc = WHISPER_OK;
  out.n_devices = 0;
  for (size_t i = 0; i < a->n_devices && rc == WHISPER_OK; i++) {
    uint32_t id = a->devices[i]->device_id;
    rc = registered_listed(srv, name, id, l, &listed);
    if (rc == WHISPER_OK && listed) {
      keep[out.n_devices++] = a->devices[i];
    } else if (rc == WHISPER_OK) {
      rc = device_remove(srv, fx, name, id);
      gone->ids[gone->n++] = id;
    }
  }
  out.devices = keep;
  out.has_signed_list = out.has_list_version = 1;
  out.signed_list = raw;
  out.list_version = l->body->version;
  if (rc == WHISPER_OK) rc = wsrv_account_put(srv, name, &out);
  free(keep);
  return rc;
}

void wsrv_devices_gone(whisper_server *srv, const wsrv_gone *g, uint64_t now_ms) {
  for (size_t i = 0; i < g->n; i++) {
    wsrv_addr a;
    wsrv_addr_make(&a, g->account, g->ids[i]);
    wsrv_dev *d = wsrv_map_get(&srv->devs, a.key, a.len);
    wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
    if (c) wsrv_conn_drop(srv, c, 1, now_ms);
    free(wsrv_map_take(&srv->devs, a.key, a.len)); /* its rate bucket and push flag */
  }
}

/* --- PublishDevices ------------------------------------------------------- */

static int publish_store(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx,
                         const Whisper__Sync__PublishDevices *m, wsrv_gone *gone) {
  Whisper__Server__Account *a;
  wsrv_dlist l = {0};
  int rc = wsrv_account_get(srv, c->account, &a);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_dlist_check(srv, c->account, m->signed_list, a->list_version, &l);
  if (rc == 0) rc = wsrv_dlist_install(srv, fx, c->account, a, &l, m->signed_list, gone);
  wsrv_dlist_free(&l);
  wsrv_msg_free(a);
  return rc;
}

/* Only device 1 holds the account key. The removed devices' connections
 * are closed after the commit. */
int wsrv_handle_publish(whisper_server *srv, wsrv_conn *c, uint64_t id,
                        const Whisper__Sync__PublishDevices *m, uint64_t now_ms) {
  if (c->device_id != 1) return wsrv_refuse(srv, ERR_FORBIDDEN, "only device 1 publishes the device list");
  if (!m->has_signed_list) return wsrv_refuse(srv, ERR_MALFORMED, "PublishDevices needs a signed_list");
  wsrv_fx fx = {0};
  wsrv_gone gone = {0};
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_end(srv, &fx, publish_store(srv, c, &fx, m, &gone));
  if (rc == WHISPER_OK) {
    wsrv_send_ok(srv, c, id);
    wsrv_fx_apply(srv, &fx, now_ms);
    wsrv_devices_gone(srv, &gone, now_ms);
  }
  wsrv_fx_free(&fx);
  wsrv_gone_free(&gone);
  return rc;
}

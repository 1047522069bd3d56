/*
 * Accounts and devices: Register (a new account's device 1, or a further
 * device through an approved link code), login (Hello, then Auth signed
 * over the connection's challenge) and linking (LinkRequest,
 * LinkApprove, with or without a signed device list: server_devices.c
 * checks the lists).
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char REGISTER_CONTEXT[] = "whisper-register-v1";
static const char LOGIN_CONTEXT[] = "whisper-login-v1";

/* A registration is held (not answered yet) until its code is approved. */
#define HELD 1000

/* --- checks --------------------------------------------------------------- */

static int keys_ok(const Whisper__Sync__DeviceKeys *k) {
  return k && wsrv_device_ok(k->has_device_id, k->device_id) && k->has_registration_id &&
         wsrv_key_ok(k->has_identity_key, k->identity_key) && k->has_signed_prekey_id &&
         wsrv_key_ok(k->has_signed_prekey, k->signed_prekey) &&
         wsrv_bytes_ok(k->has_signed_prekey_signature, k->signed_prekey_signature,
                       WHISPER_SIGNATURE_LEN);
}

/* The signature over "whisper-register-v1" || account || 0x00 ||
 * device_id (4, BE) || identity_key (33), and the signed prekey's own. */
static int register_signed(const Whisper__Sync__Register *m) {
  const Whisper__Sync__DeviceKeys *k = m->keys;
  size_t an = strlen(m->account), n = sizeof REGISTER_CONTEXT - 1 + an + 1 + 4 + WHISPER_PUBLIC_KEY_LEN;
  uint8_t msg[sizeof REGISTER_CONTEXT + WSRV_NAME_MAX + 5 + WHISPER_PUBLIC_KEY_LEN], *p = msg;
  memcpy(p, REGISTER_CONTEXT, sizeof REGISTER_CONTEXT - 1);
  p += sizeof REGISTER_CONTEXT - 1;
  memcpy(p, m->account, an);
  p += an;
  *p++ = 0;
  wh_be32(p, k->device_id);
  memcpy(p + 4, k->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
  return whisper_verify(k->identity_key.data, WHISPER_PUBLIC_KEY_LEN, msg, n, m->signature.data,
                        m->signature.len) == WHISPER_OK &&
         whisper_verify(k->identity_key.data, WHISPER_PUBLIC_KEY_LEN, k->signed_prekey.data,
                        WHISPER_PUBLIC_KEY_LEN, k->signed_prekey_signature.data,
                        WHISPER_SIGNATURE_LEN) == WHISPER_OK;
}

static int register_check(whisper_server *srv, const Whisper__Sync__Register *m) {
  if (!wh_account_ok(m->account)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  if (!keys_ok(m->keys)) return wsrv_refuse(srv, ERR_MALFORMED, "bad or missing device keys");
  if (!wsrv_bytes_ok(m->has_signature, m->signature, WHISPER_SIGNATURE_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "Register needs a 64-byte signature");
  if (m->has_link_code && m->link_code.len != WSRV_ID_LEN)
    return wsrv_refuse(srv, ERR_MALFORMED, "a link code is 16 bytes");
  int r = wsrv_prekeys_check(srv, m->prekeys, m->n_prekeys);
  if (r) return r;
  if (!register_signed(m)) return wsrv_refuse(srv, ERR_AUTH, "the signature does not verify");
  return 0;
}

/* --- the store side of Register ------------------------------------------- */

static int device_create(whisper_server *srv, const Whisper__Sync__Register *m) {
  const Whisper__Sync__DeviceKeys *k = m->keys;
  Whisper__Server__Device d = WHISPER__SERVER__DEVICE__INIT;
  d.has_registration_id = d.has_identity_key = d.has_signed_prekey_id = 1;
  d.has_signed_prekey = d.has_signed_prekey_signature = 1;
  d.registration_id = k->registration_id;
  d.identity_key = k->identity_key;
  d.signed_prekey_id = k->signed_prekey_id;
  d.signed_prekey = k->signed_prekey;
  d.signed_prekey_signature = k->signed_prekey_signature;
  d.has_prekeys = 1;
  int rc = wsrv_prekeys_put(srv, m->account, k->device_id, m->prekeys, m->n_prekeys, 0, &d.prekeys);
  if (rc == WHISPER_OK) rc = wsrv_device_put(srv, m->account, k->device_id, &d);
  return rc;
}

/* The account with the new device added and link code `used` (-1: none)
 * taken out. */
static int account_add(whisper_server *srv, const char *name, const Whisper__Server__Account *a,
                       const Whisper__Sync__DeviceKeys *k, long used) {
  Whisper__Server__Account out = WHISPER__SERVER__ACCOUNT__INIT;
  Whisper__Server__AccountDevice nd = WHISPER__SERVER__ACCOUNT_DEVICE__INIT;
  size_t nd_count = a ? a->n_devices : 0, nl = a ? a->n_link_codes : 0;
  Whisper__Server__AccountDevice **devs = malloc((nd_count + 1) * sizeof *devs);
  Whisper__Server__LinkCode **links = malloc((nl ? nl : 1) * sizeof *links);
  if (devs == NULL || links == NULL) {
    free(devs);
    free(links);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  if (a) out = *a;
  for (size_t i = 0; i < nd_count; i++) devs[i] = a->devices[i];
  nd.has_device_id = nd.has_registration_id = 1;
  nd.device_id = k->device_id;
  nd.registration_id = k->registration_id;
  devs[nd_count] = &nd;
  out.devices = devs;
  out.n_devices = nd_count + 1;
  out.n_link_codes = 0;
  for (size_t i = 0; i < nl; i++)
    if ((long)i != used) links[out.n_link_codes++] = a->link_codes[i];
  out.link_codes = links;
  int rc = wsrv_account_put(srv, name, &out);
  free(devs);
  free(links);
  return rc;
}

/* A Register sent again after a lost answer finds its own device: Ok. */
static int same_device(whisper_server *srv, const Whisper__Sync__Register *m, int *same) {
  Whisper__Server__Device *d;
  *same = 0;
  int rc = wsrv_device_get(srv, m->account, m->keys->device_id, &d);
  if (rc != WHISPER_OK) return rc;
  *same = d->registration_id == m->keys->registration_id &&
          memcmp(d->identity_key.data, m->keys->identity_key.data, WHISPER_PUBLIC_KEY_LEN) == 0;
  wsrv_msg_free(d);
  return WHISPER_OK;
}

static long link_find(const Whisper__Server__Account *a, const uint8_t *code, uint64_t now_ms) {
  for (size_t i = 0; i < a->n_link_codes; i++) {
    const Whisper__Server__LinkCode *l = a->link_codes[i];
    if (l->code.len == WSRV_ID_LEN && wh_ct_eq(l->code.data, code, WSRV_ID_LEN) &&
        l->expires_ms > now_ms)
      return (long)i;
  }
  return -1;
}

/* A device joining through an approved code. A code approved with a
 * signed list (LinkApprove{signed_list}) admits only a device the list
 * names with this identity key (ERR_AUTH), and only while the list is
 * still above the account's (ERR_STATE: a newer list came since); the
 * list becomes the account's with the device, which removes the
 * registered devices it leaves out (gone). */
static int link_join(whisper_server *srv, wsrv_fx *fx, const Whisper__Sync__Register *m,
                     const Whisper__Server__Account *a, long i, wsrv_gone *gone) {
  const Whisper__Sync__DeviceKeys *k = m->keys;
  const Whisper__Server__LinkCode *l = a->link_codes[i];
  wsrv_dlist dl = {0};
  Whisper__Server__Account *after = NULL;
  int rc = 0;
  if (l->has_signed_list) {
    rc = wsrv_dlist_check(srv, m->account, l->signed_list, a->list_version, &dl);
    if (rc == 0 && !wsrv_dlist_lists(&dl, k->device_id, k->identity_key.data))
      rc = wsrv_refuse(srv, ERR_AUTH, "the approved device list does not name this device's key");
  }
  /* a list names at most cfg.max_devices, and the account keeps only
   * those: the limit holds with it */
  if (rc == 0 && !l->has_signed_list && a->n_devices >= srv->cfg.max_devices)
    rc = wsrv_refuse(srv, ERR_LIMIT, "the account has too many devices");
  if (rc == 0) rc = device_create(srv, m);
  if (rc == 0) rc = account_add(srv, m->account, a, k, i);
  if (rc == 0 && l->has_signed_list) rc = wsrv_account_get(srv, m->account, &after);
  if (rc == 0 && after) rc = wsrv_dlist_install(srv, fx, m->account, after, &dl, l->signed_list, gone);
  wsrv_msg_free(after);
  wsrv_dlist_free(&dl);
  return rc;
}

/* Inside the transaction: the account exists (or not), then the device. */
static int register_store(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx,
                          const Whisper__Sync__Register *m, uint64_t now_ms, uint64_t *held_until,
                          wsrv_gone *gone) {
  Whisper__Server__Account *a = NULL;
  const Whisper__Sync__DeviceKeys *k = m->keys;
  int same, rc = wsrv_account_get(srv, m->account, &a);
  if (rc == WHISPER_ENOTFOUND) {
    if (m->has_link_code) return wsrv_refuse(srv, ERR_AUTH, "no such link code");
    if (k->device_id != 1)
      return wsrv_refuse(srv, ERR_AUTH, "a device other than 1 joins through a link code");
    /* a new account: its source's registration bucket pays for it */
    if ((rc = wsrv_src_register_take(srv, c, now_ms)) != 0) return rc;
    rc = device_create(srv, m);
    return rc == WHISPER_OK ? account_add(srv, m->account, NULL, k, -1) : rc;
  }
  if (rc != WHISPER_OK) return rc;
  if (wsrv_account_has(a, k->device_id)) {
    rc = same_device(srv, m, &same);
    if (rc == WHISPER_OK && !same) rc = wsrv_refuse(srv, ERR_EXISTS, "that device is registered");
  } else if (!m->has_link_code) {
    rc = wsrv_refuse(srv, ERR_EXISTS, "that account is registered");
  } else {
    long i = link_find(a, m->link_code.data, now_ms);
    if (i < 0) {
      rc = wsrv_refuse(srv, ERR_AUTH, "no such link code, or it expired");
    } else if (!a->link_codes[i]->approved) {
      *held_until = a->link_codes[i]->expires_ms;
      rc = HELD;
    } else {
      rc = link_join(srv, fx, m, a, i, gone);
    }
  }
  wsrv_msg_free(a);
  return rc;
}

/* Keeps the Register on the connection until its code is approved or
 * expires: the frame's bytes as received, not the decoded Register packed
 * again (protobuf-c reads an unknown field numbered 0 from `80 00` but
 * writes it back as `00`, which it cannot read: a re-packed Register would
 * never be answered). Until the code expires the connection stays past
 * the auth timeout, as if it had asked for the code itself: the device
 * can log in on it once registered, and the expiry is answered before the
 * auth timeout closes it. */
static int hold(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Register *m,
                const uint8_t *frame, size_t len, uint64_t until) {
  if (c->held) return wsrv_refuse(srv, ERR_STATE, "a registration is already waiting");
  if ((c->held = malloc(len ? len : 1)) == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (len) memcpy(c->held, frame, len);
  c->held_len = len;
  snprintf(c->held_account, sizeof c->held_account, "%s", m->account);
  memcpy(c->held_code, m->link_code.data, WSRV_ID_LEN);
  c->held_id = id;
  c->held_until = until;
  if (until > c->link_until) c->link_until = until;
  wsrv_conn_rearm(srv, c); /* (also when it is another connection's frame that held it again) */
  return 0;
}

static int register_run(whisper_server *srv, wsrv_conn *c, uint64_t id,
                        const Whisper__Sync__Register *m, const uint8_t *frame, size_t len,
                        uint64_t now_ms) {
  uint64_t until = 0;
  wsrv_fx fx = {0};
  wsrv_gone gone = {0};
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  /* a held registration wrote nothing: rolled back like a refusal */
  rc = wsrv_end(srv, &fx, register_store(srv, c, &fx, m, now_ms, &until, &gone));
  if (rc == HELD) {
    rc = hold(srv, c, id, m, frame, len, until);
  } else if (rc == WHISPER_OK) {
    wsrv_send_ok(srv, c, id);
    wsrv_fx_apply(srv, &fx, now_ms);
    /* may close `c` too (a device the new list removed): its last use */
    wsrv_devices_gone(srv, &gone, now_ms);
  }
  wsrv_fx_free(&fx);
  wsrv_gone_free(&gone);
  return rc;
}

int wsrv_handle_register(whisper_server *srv, wsrv_conn *c, uint64_t id,
                         const Whisper__Sync__Register *m, const uint8_t *frame, size_t len,
                         uint64_t now_ms) {
  int r = register_check(srv, m);
  return r ? r : register_run(srv, c, id, m, frame, len, now_ms);
}

/* --- held registrations --------------------------------------------------- */

static void held_clear(wsrv_conn *c) {
  wh_wipe(c->held, c->held_len);
  free(c->held);
  c->held = NULL;
  c->held_len = 0;
  memset(c->held_account, 0, sizeof c->held_account);
  memset(c->held_code, 0, sizeof c->held_code);
}

void wsrv_link_expire(whisper_server *srv, wsrv_conn *c) {
  wsrv_send_error(srv, c->id, c->held_id, ERR_AUTH, "the link code expired", 0);
  held_clear(c);
}

/* Runs the registration a connection holds, now that its code is
 * approved, and answers it (Ok or an Error): the hold ends either way.
 * The bytes unpacked once when they arrived, so only a lack of memory
 * stops them now: that is answered ERR_INTERNAL (send it again). */
static void held_retry(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  uint64_t id = c->held_id;
  uint8_t *frame = c->held;
  size_t len = c->held_len;
  /* taken off the connection: the run may hold it again (with these bytes) */
  c->held = NULL;
  c->held_len = 0;
  held_clear(c);
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(&wh_pb_alloc, len, frame);
  if (f == NULL || f->body_case != WHISPER__SYNC__FRAME__BODY_REGISTER) {
    wsrv_fail(srv, WHISPER_ENOMEM, "cannot unpack a held registration");
    wsrv_send_error(srv, c->id, id, ERR_INTERNAL,
                    "the server could not run the registration; send it again", 0);
  } else {
    int r = register_run(srv, c, id, f->register_, frame, len, now_ms);
    if (r > 0 && r != HELD)
      wsrv_send_error(srv, c->id, id, r, srv->refusal, r == ERR_RATE ? srv->refusal_retry_ms : 0);
    else if (r < 0)
      wsrv_send_error(srv, c->id, id, ERR_INTERNAL, "the server's store failed; retry", 0);
  }
  wsrv_msg_free(f);
  wh_wipe(frame, len);
  free(frame);
}

/* The connections holding a Register for `code` of `account` get it run.
 * A run can close other connections (the devices a signed list removed),
 * so each is looked up again by id before it is used. */
static void held_run_all(whisper_server *srv, const char *account, const uint8_t *code,
                         uint64_t now_ms) {
  size_t n;
  void **conns = wsrv_map_values(&srv->conns, &n);
  uint64_t *ids = n ? malloc(n * sizeof *ids) : NULL;
  if (ids == NULL) n = 0; /* out of memory: the Registers stay held until they expire */
  for (size_t i = 0; i < n; i++) ids[i] = ((wsrv_conn *)conns[i])->id;
  free(conns);
  for (size_t i = 0; i < n; i++) {
    wsrv_conn *c = wsrv_conn_find(srv, ids[i]);
    if (c && c->held && strcmp(c->held_account, account) == 0 &&
        memcmp(c->held_code, code, WSRV_ID_LEN) == 0)
      held_retry(srv, c, now_ms);
  }
  free(ids);
}

/* --- linking -------------------------------------------------------------- */

/* The codes kept when a new one is added: not the expired ones, and not
 * the pending (unapproved) code the same source asked for before. A code
 * is never pushed out by others: anyone may ask for one, so with
 * WSRV_LINK_CODES_MAX pending a new request waits (ERR_RATE) until the
 * first of them lapses, and a person's code stays until it is used or
 * lapses. *retry_ms says when the first one lapses. */
static size_t links_keep(const Whisper__Server__Account *a, uint64_t now_ms, const uint8_t *src,
                         Whisper__Server__LinkCode **keep, uint64_t *retry_ms) {
  size_t n = 0;
  *retry_ms = UINT64_MAX;
  for (size_t i = 0; i < a->n_link_codes; i++) {
    Whisper__Server__LinkCode *l = a->link_codes[i];
    if (l->expires_ms <= now_ms) continue;
    if (src && !l->approved && l->has_source && l->source.len == WSRV_SRC_TAG_LEN &&
        memcmp(l->source.data, src, WSRV_SRC_TAG_LEN) == 0)
      continue;
    keep[n++] = l;
    if (l->expires_ms - now_ms < *retry_ms) *retry_ms = l->expires_ms - now_ms;
  }
  return n;
}

static int link_add(whisper_server *srv, wsrv_conn *c, const char *name,
                    const uint8_t code[WSRV_ID_LEN], uint64_t now_ms) {
  Whisper__Server__Account *a;
  uint8_t src[WSRV_SRC_TAG_LEN];
  uint64_t retry_ms;
  int rc = wsrv_account_get(srv, name, &a);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
  if (rc != WHISPER_OK) return rc;
  Whisper__Server__LinkCode **keep = malloc((a->n_link_codes + 1) * sizeof *keep);
  if (keep == NULL) {
    wsrv_msg_free(a);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  int has_src = wsrv_src_tag(srv, c, src);
  Whisper__Server__LinkCode l = WHISPER__SERVER__LINK_CODE__INIT;
  l.has_code = l.has_expires_ms = l.has_approved = 1;
  l.code = (ProtobufCBinaryData){WSRV_ID_LEN, (uint8_t *)code};
  l.expires_ms = wsrv_after(now_ms, WSRV_LINK_TTL_MS);
  l.has_source = has_src;
  l.source = (ProtobufCBinaryData){WSRV_SRC_TAG_LEN, src};
  size_t n = links_keep(a, now_ms, has_src ? src : NULL, keep, &retry_ms);
  if (n >= WSRV_LINK_CODES_MAX) {
    rc = wsrv_refuse_rate(srv, retry_ms, "too many link codes wait for this account; try later");
  } else {
    keep[n++] = &l;
    Whisper__Server__Account out = *a;
    out.link_codes = keep;
    out.n_link_codes = n;
    rc = wsrv_account_put(srv, name, &out);
  }
  free(keep);
  wsrv_msg_free(a);
  return rc;
}

int wsrv_handle_link_request(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__LinkRequest *m, uint64_t now_ms) {
  uint8_t code[WSRV_ID_LEN];
  if (!wh_account_ok(m->account)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  int rc = wsrv_src_link_take(srv, c, now_ms);
  if (rc != 0) return rc;
  if (wh_random(&srv->rng, code, sizeof code) != 0)
    return wsrv_fail(srv, WHISPER_ERANDOM, "the random number generator failed");
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, link_add(srv, c, m->account, code, now_ms));
  if (rc != WHISPER_OK) return rc;
  c->link_until = wsrv_after(now_ms, WSRV_LINK_TTL_MS);
  wsrv_conn_rearm(srv, c);
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__LinkCode lc = WHISPER__SYNC__LINK_CODE__INIT;
  lc.has_link_code = 1;
  lc.link_code = (ProtobufCBinaryData){WSRV_ID_LEN, code};
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_CODE;
  f.link_code = &lc;
  return wsrv_send(srv, c->id, &f);
}

/* With a signed list (only from device 1), the list is checked against
 * the account as it is now and kept with the approval; the Register it
 * admits checks its entry (link_join). */
static int link_mark_approved(whisper_server *srv, const char *name, const uint8_t *code,
                              const Whisper__Sync__LinkApprove *m, uint64_t now_ms) {
  Whisper__Server__Account *a;
  wsrv_dlist dl = {0};
  int rc = wsrv_account_get(srv, name, &a);
  if (rc != WHISPER_OK) return rc;
  long i = link_find(a, code, now_ms);
  if (i < 0) {
    rc = wsrv_refuse(srv, ERR_NOT_FOUND, "no such link code, or it expired");
  } else if (m->has_signed_list) {
    rc = wsrv_dlist_check(srv, name, m->signed_list, a->list_version, &dl);
  }
  if (rc == 0) {
    Whisper__Server__LinkCode *l = a->link_codes[i];
    ProtobufCBinaryData had = l->signed_list;
    protobuf_c_boolean had_list = l->has_signed_list;
    l->has_approved = l->approved = 1;
    if (m->has_signed_list) {
      l->has_signed_list = 1;
      l->signed_list = m->signed_list; /* the frame's bytes: given back before the free */
    }
    rc = wsrv_account_put(srv, name, a);
    l->has_signed_list = had_list;
    l->signed_list = had;
  }
  wsrv_dlist_free(&dl);
  wsrv_msg_free(a);
  return rc;
}

int wsrv_handle_link_approve(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__LinkApprove *m, uint64_t now_ms) {
  uint8_t code[WSRV_ID_LEN];
  char account[WSRV_NAME_MAX + 1];
  if (!wsrv_bytes_ok(m->has_link_code, m->link_code, WSRV_ID_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "a link code is 16 bytes");
  if (m->has_signed_list && c->device_id != 1)
    return wsrv_refuse(srv, ERR_FORBIDDEN, "only device 1 approves with a device list");
  memcpy(code, m->link_code.data, WSRV_ID_LEN);
  memcpy(account, c->account, sizeof account);
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, link_mark_approved(srv, c->account, code, m, now_ms));
  if (rc != WHISPER_OK) return rc;
  wsrv_send_ok(srv, c, id);
  held_run_all(srv, account, code, now_ms);
  wsrv_cluster_linked(srv, account, code); /* the new device may wait on another node */
  return 0;
}

void wsrv_link_approved_elsewhere(whisper_server *srv, const char *account,
                                  const uint8_t code[WSRV_ID_LEN], uint64_t now_ms) {
  held_run_all(srv, account, code, now_ms);
}

/* --- login ---------------------------------------------------------------- */

/* Hello names the device; Auth proves it. Hello is answered with Ok so
 * that every request has an answer. */
int wsrv_handle_hello(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Hello *m) {
  if (c->state == WSRV_AUTHED) return wsrv_refuse(srv, ERR_STATE, "already logged in");
  if (!wh_account_ok(m->account) || !wsrv_device_ok(m->has_device_id, m->device_id) ||
      !m->has_protocol)
    return wsrv_refuse(srv, ERR_MALFORMED, "Hello needs an account, a device id and a protocol");
  if (m->protocol != WH_SYNC_PROTOCOL)
    return wsrv_refuse(srv, ERR_VERSION, "this server speaks protocol 1");
  snprintf(c->account, sizeof c->account, "%s", m->account);
  c->device_id = m->device_id;
  c->state = WSRV_HELLO;
  return wsrv_send_ok(srv, c, id);
}

static int refuse_and_close(whisper_server *srv, wsrv_conn *c, uint64_t id, const char *msg,
                            uint64_t now_ms) {
  wsrv_send_error(srv, c->id, id, ERR_AUTH, msg, 0);
  wsrv_conn_drop(srv, c, 1, now_ms);
  return 0;
}

/* `key`: the device's identity key (33 bytes). */
static int login_signed(const wsrv_conn *c, const uint8_t *key, const Whisper__Sync__Auth *m) {
  uint8_t msg[sizeof LOGIN_CONTEXT - 1 + WSRV_NONCE_LEN];
  memcpy(msg, LOGIN_CONTEXT, sizeof LOGIN_CONTEXT - 1);
  memcpy(msg + sizeof LOGIN_CONTEXT - 1, c->nonce, WSRV_NONCE_LEN);
  return whisper_verify(key, WHISPER_PUBLIC_KEY_LEN, msg, sizeof msg, m->signature.data,
                        m->signature.len) == WHISPER_OK;
}

/* The device is logged in on `c`: an older connection of it is closed. */
static void login(whisper_server *srv, wsrv_conn *c, const Whisper__Server__Device *d,
                  uint64_t resume_after, int hidden, uint64_t now_ms) {
  wsrv_addr_make(&c->addr, c->account, c->device_id);
  wsrv_tag(srv, &c->addr, c->tag);
  wsrv_src_release(srv, c, now_ms);
  c->state = WSRV_AUTHED;
  c->prekeys_left = d->prekeys;
  c->spk_id = d->signed_prekey_id;
  /* a device cannot have stored more than was ever handed out */
  c->resume_after = c->sent_upto = resume_after < d->mailbox_last ? resume_after : d->mailbox_last;
  wsrv_dev *dev = wsrv_dev_get(srv, &c->addr);
  if (dev && dev->conn && dev->conn != c->id) {
    wsrv_conn *old = wsrv_conn_find(srv, dev->conn);
    if (old) wsrv_conn_drop(srv, old, 1, now_ms);
  }
  if (dev) {
    dev->conn = c->id;
    dev->pushed = 0;
  }
  srv->stats.authenticated++;
  wsrv_presence_login(srv, c, hidden);
  wsrv_cluster_online(srv, c, hidden);
}

int wsrv_handle_auth(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Auth *m,
                     uint64_t now_ms) {
  if (c->state != WSRV_HELLO)
    return wsrv_refuse(srv, ERR_STATE, c->state == WSRV_AUTHED ? "already logged in" : "Hello first");
  if (!wsrv_bytes_ok(m->has_signature, m->signature, WHISPER_SIGNATURE_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "Auth needs a 64-byte signature");
  Whisper__Server__Device *d;
  Whisper__Server__Account *a;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &d);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  /* An unknown device and a wrong signature get the same answer, after
   * the same work (a signature checked, against a key nobody holds for an
   * unknown device), so that logins do not tell which accounts and
   * devices exist. */
  int signed_ok = login_signed(c, rc == WHISPER_OK ? d->identity_key.data : srv->decoy_key, m);
  if (rc == WHISPER_ENOTFOUND || !signed_ok) {
    if (rc == WHISPER_OK) wsrv_msg_free(d);
    return refuse_and_close(srv, c, id, "login refused: unknown device or bad signature", now_ms);
  }
  if ((rc = wsrv_account_get(srv, c->account, &a)) != WHISPER_OK) {
    wsrv_msg_free(d);
    return rc == WHISPER_ENOTFOUND ? wsrv_fail(srv, WHISPER_ECORRUPT, "a device has no account") : rc;
  }
  login(srv, c, d, m->resume_after, a->hidden, now_ms);
  /* Ok (wsrv_send_ok's fields), with what a device may pipeline and how much waits for it */
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Ok ok = WHISPER__SYNC__OK__INIT;
  ok.has_prekeys_left = ok.has_send_window = ok.has_waiting = ok.has_deliver_window = 1;
  ok.deliver_window = srv->cfg.deliver_window;
  ok.prekeys_left = c->prekeys_left;
  ok.has_signed_prekey_id = 1; /* as every Ok after login (wsrv_send_ok) */
  ok.signed_prekey_id = c->spk_id;
  ok.send_window = WSRV_SEND_WINDOW;
  uint64_t past = d->mailbox_last - c->resume_after; /* (resume_after <= mailbox_last) */
  ok.waiting = past < d->mailbox_count ? past : d->mailbox_count;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_OK;
  f.ok = &ok;
  wsrv_msg_free(a);
  wsrv_msg_free(d);
  wsrv_send(srv, c->id, &f);
  wsrv_pump(srv, c, now_ms);
  return 0;
}

/*
 * What the engine authenticates end to end (e2e.proto), so that the server
 * cannot decide who is in a conversation or which conversation a message
 * belongs to:
 *
 *   device lists   an account's devices, signed by its account key (the
 *                  primary device's identity key), with a version that
 *                  never goes back. The engine encrypts to, and accepts
 *                  messages from, only the devices of the last list it
 *                  accepted, each with the identity key the list names.
 *   group changes  a group's membership after each change, signed by the
 *                  author device (which its account's list must name) and
 *                  chained by the hash of the change before it.
 *   payloads       the body of a message with its conversation (the
 *                  recipient account, or the group), inside the Signal
 *                  encryption: a message cannot be moved elsewhere.
 *   link tokens    what a new device shows the primary: the server's link
 *                  code bound to the new device's id and identity key.
 *
 * The checks here are structural and cryptographic; what follows from them
 * (holding, refusing, events) is in inbox.c, outbox.c and ops.c.
 */
#include <openssl/sha.h>

#include "sync/sync_internal.h"

static const char LIST_CTX[] = "whisper-devices-v1";
static const char GROUP_CTX[] = "whisper-group-v1";
static const char LINK_CTX[] = "whisper-link-v1";

#define TOKEN_VERSION 1
#define TOKEN_HEAD (1 + 4 + WHISPER_PUBLIC_KEY_LEN)

void sy_sha256(uint8_t out[32], const uint8_t *data, size_t len) {
  SHA256(data, len, out);
}

void sy_evq_add(sy_evq *q, sy_event *e) {
  if (e == NULL) return;
  if (q->tail) q->tail->next = e;
  else q->head = e;
  q->tail = e;
}

/* Pushes an event now, or queues it with the entry's events. */
static void emit(whisper_client *c, sy_evq *q, sy_event *e) {
  if (q) sy_evq_add(q, e);
  else sy_event_push(c, e);
}

/* --- signatures over a context string and a body ------------------------------------------- */

static int ctx_verify(const uint8_t key[WHISPER_PUBLIC_KEY_LEN], const char *ctxs,
                      const ProtobufCBinaryData *body, const ProtobufCBinaryData *sig) {
  size_t cl = strlen(ctxs);
  uint8_t *msg = malloc(cl + body->len + 1);
  if (msg == NULL) return WHISPER_ENOMEM;
  memcpy(msg, ctxs, cl);
  if (body->len) memcpy(msg + cl, body->data, body->len);
  int rc = whisper_verify(key, WHISPER_PUBLIC_KEY_LEN, msg, cl + body->len, sig->data, sig->len);
  free(msg);
  return rc;
}

/* Signs ctxs || body with this device's identity key into a Signed* message
 * packed by `pack` (SignedDeviceList and SignedGroupChange share a shape). */
static int ctx_sign(whisper_client *c, const char *ctxs, const uint8_t *body, size_t n,
                    whisper_buf **out) {
  size_t cl = strlen(ctxs);
  uint8_t sig[WHISPER_SIGNATURE_LEN];
  uint8_t *msg = malloc(cl + n + 1);
  if (msg == NULL) return WHISPER_ENOMEM;
  memcpy(msg, ctxs, cl);
  if (n) memcpy(msg + cl, body, n);
  int rc = whisper_sign(c->ctx, c->ctx->identity.priv, msg, cl + n, sig);
  free(msg);
  if (rc != WHISPER_OK) return rc;
  Whisper__E2e__SignedDeviceList s = WHISPER__E2E__SIGNED_DEVICE_LIST__INIT;
  s.has_body = s.has_signature = 1;
  s.body = (ProtobufCBinaryData){n, (uint8_t *)body};
  s.signature = (ProtobufCBinaryData){sizeof sig, sig};
  size_t len = whisper__e2e__signed_device_list__get_packed_size(&s);
  if ((*out = whisper_buf_new(NULL, len)) == NULL) return WHISPER_ENOMEM;
  whisper__e2e__signed_device_list__pack(&s, (*out)->data);
  return WHISPER_OK;
}

/* --- device lists ------------------------------------------------------------------------------ */

typedef struct list_view {
  Whisper__E2e__SignedDeviceList *s;
  Whisper__E2e__DeviceListBody *b;
  const uint8_t *account_key;
} list_view;

static void list_view_free(list_view *v) {
  if (v->b) whisper__e2e__device_list_body__free_unpacked(v->b, &wh_pb_alloc);
  if (v->s) whisper__e2e__signed_device_list__free_unpacked(v->s, &wh_pb_alloc);
  memset(v, 0, sizeof *v);
}

/* Parses and verifies a signed list of `account`; a failure's sentence is
 * set on the context. */
static int list_parse(whisper_client *c, const char *account, const uint8_t *bytes, size_t len,
                      list_view *v) {
  memset(v, 0, sizeof *v);
  v->s = whisper__e2e__signed_device_list__unpack(&wh_pb_alloc, len, bytes);
  if (v->s == NULL || !v->s->has_body || !v->s->has_signature ||
      v->s->signature.len != WHISPER_SIGNATURE_LEN)
    goto bad;
  v->b = whisper__e2e__device_list_body__unpack(&wh_pb_alloc, v->s->body.len, v->s->body.data);
  if (v->b == NULL || v->b->account == NULL || strcmp(v->b->account, account) != 0 ||
      !v->b->has_version || v->b->version == 0 || v->b->n_devices == 0 ||
      v->b->n_devices > SY_MAX_LIST)
    goto bad;
  for (size_t i = 0; i < v->b->n_devices; i++) {
    const Whisper__E2e__ListedDevice *d = v->b->devices[i];
    if (!d->has_device_id || !wh_device_id_ok(d->device_id) ||
        d->identity_key.len != WHISPER_PUBLIC_KEY_LEN ||
        whisper_public_key_check(d->identity_key.data, d->identity_key.len) != WHISPER_OK)
      goto bad;
    for (size_t k = 0; k < i; k++)
      if (v->b->devices[k]->device_id == d->device_id) goto bad;
    if (d->device_id == 1) v->account_key = d->identity_key.data;
  }
  if (v->account_key == NULL) goto bad;
  int rc = ctx_verify(v->account_key, LIST_CTX, &v->s->body, &v->s->signature);
  if (rc == WHISPER_ENOMEM) {
    list_view_free(v);
    return WHISPER_ENOMEM;
  }
  if (rc == WHISPER_OK) return WHISPER_OK;
bad:
  list_view_free(v);
  return wh_fail(c->ctx, WHISPER_EFORGED, "a device list of %s that is malformed or not signed by its account key",
                 account);
}

static int same_devices(const sy_devlist *l, const Whisper__E2e__DeviceListBody *b) {
  if (l->n != b->n_devices) return 0;
  for (size_t i = 0; i < b->n_devices; i++)
    if (!sy_list_has(l, b->devices[i]->device_id, b->devices[i]->identity_key.data)) return 0;
  return 1;
}

/* A notice in the conversation with `account`: an incoming entry from
 * device 0, after the newest entry there, whose body says what happened
 * ("device-added 2", "device-removed 2", "account-key-changed"). */
int sy_notice(whisper_client *c, const char *account, const char *body) {
  /* after the newest entry the server ordered (messages still in the
   * outbox sort above 2^63, below their server sequence once sent) */
  whisper_page *p = NULL;
  uint64_t sort_key = 0;
  int rc = whisper_history_page(c->ctx, account, 1ULL << 63, (const uint8_t *)"-", 1, 1, &p);
  if (rc == WHISPER_OK && whisper_page_count(p) == 1) sort_key = whisper_page_get(p, 0)->sort_key;
  whisper_page_free(p);
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  if (rc == WHISPER_OK && wh_random(&c->ctx->rng, id, sizeof id) != 0) rc = WHISPER_ERANDOM;
  if (rc != WHISPER_OK) return rc;
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = account, .id = id, .id_len = sizeof id,
                         .sort_key = sort_key, .timestamp_ms = c->now};
  return wh_history_incoming_put(c->ctx, &m, account, 0, (const uint8_t *)body, strlen(body));
}

static void devices_event(whisper_client *c, sy_evq *q, const char *account, uint32_t device,
                          int status) {
  sy_event *e = sy_event_new(c, WHISPER_EV_DEVICES);
  if (e == NULL) return;
  if (sy_event_set(e, account, account, NULL, 0, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = device;
  e->ev.status = status;
  emit(c, q, e);
}

static void identity_event(whisper_client *c, sy_evq *q, const char *account, const uint8_t *key) {
  sy_event *e = sy_event_new(c, WHISPER_EV_IDENTITY);
  if (e == NULL) return;
  if (sy_event_set(e, account, account, NULL, 0, key, WHISPER_PUBLIC_KEY_LEN) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = 1;
  emit(c, q, e);
}

int sy_list_has(const sy_devlist *l, uint32_t device, const uint8_t *key) {
  if (!l->authed) return l->legacy && l->known;
  for (size_t i = 0; i < l->n; i++)
    if (l->d[i].id == device)
      return key == NULL || (l->d[i].has_key && memcmp(l->d[i].key, key, WHISPER_PUBLIC_KEY_LEN) == 0);
  return 0;
}

int sy_list_accept(whisper_client *c, const char *account, const uint8_t *bytes, size_t len,
                   sy_devlist *l, sy_evq *evs) {
  list_view v;
  int rc = list_parse(c, account, bytes, len, &v);
  if (rc != WHISPER_OK) return rc;
  int own = strcmp(account, c->account) == 0;
  /* the primary's identity key is its account key: no other key signs its lists */
  if (own && c->device_id == 1 &&
      memcmp(v.account_key, c->ctx->identity.pub, WHISPER_PUBLIC_KEY_LEN) != 0) {
    list_view_free(&v);
    return wh_fail(c->ctx, WHISPER_EFORGED, "a device list of this account under another account key");
  }
  int changed = 0;
  if (l->authed) {
    if (memcmp(v.account_key, l->account_key, WHISPER_PUBLIC_KEY_LEN) == 0) {
      if (v.b->version < l->version)
        rc = wh_fail(c->ctx, WHISPER_EFORGED, "an older device list of %s (version %llu, holding %llu)",
                     account, (unsigned long long)v.b->version, (unsigned long long)l->version);
      else if (v.b->version == l->version)
        rc = same_devices(l, v.b) ? 1
                                  : wh_fail(c->ctx, WHISPER_EFORGED,
                                            "two different device lists of %s with version %llu",
                                            account, (unsigned long long)l->version);
    } else if (l->trust == WHISPER_TRUST_VERIFIED) {
      identity_event(c, evs, account, v.account_key);
      rc = wh_fail(c->ctx, WHISPER_EUNTRUSTED,
                   "the verified account key of %s changed: not followed until the app decides",
                   account);
    } else {
      changed = 1;
    }
  }
  if (rc != WHISPER_OK) {
    list_view_free(&v);
    return rc == 1 ? WHISPER_OK : rc;
  }
  sy_devlist n;
  memset(&n, 0, sizeof n);
  n.known = n.authed = 1;
  n.version = v.b->version;
  memcpy(n.account_key, v.account_key, WHISPER_PUBLIC_KEY_LEN);
  n.trust = changed ? WHISPER_TRUST_CHANGED : l->authed ? l->trust : WHISPER_TRUST_UNVERIFIED;
  if ((n.signed_list = whisper_buf_new(bytes, len)) == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < v.b->n_devices; i++) {
    const Whisper__E2e__ListedDevice *d = v.b->devices[i];
    sy_dev *old = sy_devs_find(l, d->device_id);
    int same_key = old && old->has_key && memcmp(old->key, d->identity_key.data, WHISPER_PUBLIC_KEY_LEN) == 0;
    if ((rc = sy_devs_add(&n, d->device_id, same_key || (old && !old->has_key) ? old->regid : 0)) != WHISPER_OK) break;
    sy_dev *nd = sy_devs_find(&n, d->device_id);
    nd->has_key = 1;
    memcpy(nd->key, d->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
    nd->refetch = old ? old->refetch || (old->has_key && !same_key) : 0;
    if (own && d->device_id == c->device_id) continue;
    rc = whisper_identity_trust_at(c->ctx, account, d->device_id, d->identity_key.data,
                                   WHISPER_PUBLIC_KEY_LEN, c->now);
  }
  /* what changed: events, and notices in the conversation (not for this account) */
  char note[48];
  if (rc == WHISPER_OK && changed) {
    identity_event(c, evs, account, v.account_key);
    if (!own) rc = sy_notice(c, account, "account-key-changed");
  }
  for (size_t i = 0; rc == WHISPER_OK && l->authed && i < n.n + l->n; i++) {
    int added = i < n.n;
    const sy_dev *d = added ? &n.d[i] : &l->d[i - n.n];
    if (sy_list_has(added ? l : &n, d->id, d->key)) continue;
    devices_event(c, evs, account, d->id, added ? 1 : 2);
    snprintf(note, sizeof note, "device-%s %u", added ? "added" : "removed", d->id);
    if (!own) rc = sy_notice(c, account, note);
  }
  if (rc == WHISPER_OK) {
    sy_devs_free(l);
    *l = n;
  } else {
    sy_devs_free(&n);
  }
  list_view_free(&v);
  return rc;
}

int sy_list_sign(whisper_client *c, uint64_t version, const sy_dev *devs, size_t n,
                 whisper_buf **out) {
  *out = NULL;
  if (n == 0 || n > SY_MAX_LIST) return wh_fail(c->ctx, WHISPER_EINVAL, "a device list has 1 to %d devices", SY_MAX_LIST);
  Whisper__E2e__ListedDevice *d = calloc(n, sizeof *d);
  Whisper__E2e__ListedDevice **dp = calloc(n, sizeof *dp);
  int rc = WHISPER_ENOMEM;
  if (d && dp) {
    for (size_t i = 0; i < n; i++) {
      whisper__e2e__listed_device__init(&d[i]);
      d[i].has_device_id = d[i].has_identity_key = 1;
      d[i].device_id = devs[i].id;
      d[i].identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)devs[i].key};
      dp[i] = &d[i];
    }
    Whisper__E2e__DeviceListBody b = WHISPER__E2E__DEVICE_LIST_BODY__INIT;
    b.account = c->account;
    b.has_version = 1;
    b.version = version;
    b.n_devices = n;
    b.devices = dp;
    size_t len = whisper__e2e__device_list_body__get_packed_size(&b);
    uint8_t *body = malloc(len ? len : 1);
    if (body) {
      whisper__e2e__device_list_body__pack(&b, body);
      rc = ctx_sign(c, LIST_CTX, body, len, out);
      free(body);
    }
  }
  free(d);
  free(dp);
  return rc;
}

/* --- group changes ------------------------------------------------------------------------------ */

void sy_change_free(sy_change *ch) {
  if (ch->b) whisper__e2e__group_change_body__free_unpacked(ch->b, &wh_pb_alloc);
  if (ch->s) whisper__e2e__signed_group_change__free_unpacked(ch->s, &wh_pb_alloc);
  memset(ch, 0, sizeof *ch);
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Valid account names, none twice (sorted copy: groups may be large). -1:
 * out of memory. */
static int names_ok(char **names, size_t n) {
  if (n > WHISPER_GROUP_MEMBERS_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!wh_account_ok(names[i])) return 0;
  if (n < 2) return 1;
  char **v = malloc(n * sizeof *v);
  if (v == NULL) return -1;
  memcpy(v, names, n * sizeof *v);
  qsort(v, n, sizeof *v, name_cmp);
  int ok = 1;
  for (size_t i = 1; i < n && ok; i++) ok = strcmp(v[i - 1], v[i]) != 0;
  free(v);
  return ok;
}

static int listed(char **names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return 1;
  return 0;
}

int sy_change_parse(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const uint8_t *bytes,
                    size_t len, sy_change *ch) {
  memset(ch, 0, sizeof *ch);
  ch->s = whisper__e2e__signed_group_change__unpack(&wh_pb_alloc, len, bytes);
  if (ch->s == NULL || !ch->s->has_body || !ch->s->has_signature ||
      ch->s->signature.len != WHISPER_SIGNATURE_LEN)
    goto bad;
  ch->b = whisper__e2e__group_change_body__unpack(&wh_pb_alloc, ch->s->body.len, ch->s->body.data);
  const Whisper__E2e__GroupChangeBody *b = ch->b;
  if (b == NULL || !b->has_group_id || b->group_id.len != WHISPER_GROUP_ID_LEN ||
      memcmp(b->group_id.data, gid, WHISPER_GROUP_ID_LEN) != 0 || !b->has_version ||
      b->version == 0 || (b->version > 1) != (b->has_prev && b->prev.len == 32) ||
      (b->version == 1 && b->has_prev) || !wh_account_ok(b->author) || !b->has_author_device ||
      !wh_device_id_ok(b->author_device) || !sy_group_body_ok(ch->s, b))
    goto bad;
  int ok = names_ok(b->members, b->n_members);
  if (ok == 1) ok = names_ok(b->admins, b->n_admins);
  if (ok < 0) {
    sy_change_free(ch);
    return WHISPER_ENOMEM;
  }
  if (!ok) goto bad;
  if (b->n_admins > 64 && b->n_members > 64) { /* large: a sorted member list to look up */
    char **v = malloc(b->n_members * sizeof *v);
    if (v == NULL) {
      sy_change_free(ch);
      return WHISPER_ENOMEM;
    }
    memcpy(v, b->members, b->n_members * sizeof *v);
    qsort(v, b->n_members, sizeof *v, name_cmp);
    for (size_t i = 0; i < b->n_admins && ok; i++)
      ok = bsearch(&b->admins[i], v, b->n_members, sizeof *v, name_cmp) != NULL;
    free(v);
    if (!ok) goto bad;
  } else {
    for (size_t i = 0; i < b->n_admins; i++)
      if (!listed(b->members, b->n_members, b->admins[i])) goto bad;
  }
  sy_sha256(ch->hash, ch->s->body.data, ch->s->body.len);
  return WHISPER_OK;
bad:
  sy_change_free(ch);
  return wh_fail(c->ctx, WHISPER_EFORGED, "a malformed group change");
}

int sy_change_verify(whisper_client *c, const sy_change *ch, const sy_devlist *author) {
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  if (!author->authed && author->legacy &&
      whisper_identity_remote(c->ctx, ch->b->author, ch->b->author_device, key) == WHISPER_OK) {
    /* an author from before signed lists: the key its session knows */
    int rc = ctx_verify(key, GROUP_CTX, &ch->s->body, &ch->s->signature);
    if (rc == WHISPER_OK || rc == WHISPER_ENOMEM) return rc;
  }
  for (size_t i = 0; author->authed && i < author->n; i++)
    if (author->d[i].id == ch->b->author_device && author->d[i].has_key) {
      int rc = ctx_verify(author->d[i].key, GROUP_CTX, &ch->s->body, &ch->s->signature);
      if (rc == WHISPER_ENOMEM) return rc;
      if (rc == WHISPER_OK) return WHISPER_OK;
      break;
    }
  return wh_fail(c->ctx, WHISPER_EFORGED, "a group change not signed by a device of %s",
                 ch->b->author);
}

int sy_change_make(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const sy_group *g,
                   const sy_group *n, const uint8_t *invite_priv, whisper_buf **out) {
  *out = NULL;
  Whisper__E2e__GroupChangeBody b = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  b.has_group_id = b.has_version = b.has_author_device = 1;
  b.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)gid};
  b.version = g->version + 1;
  if (g->version) {
    b.has_prev = 1;
    b.prev = (ProtobufCBinaryData){32, (uint8_t *)g->hash};
  }
  b.n_members = n->n_members;
  b.members = n->members;
  b.n_admins = n->n_admins;
  b.admins = n->admins;
  b.author = c->account;
  b.author_device = c->device_id;
  if (n->name) b.has_name = 1, b.name = (ProtobufCBinaryData){n->name->len, n->name->data};
  if (n->description)
    b.has_description = 1, b.description = (ProtobufCBinaryData){n->description->len, n->description->data};
  if (n->picture) b.has_picture = 1, b.picture = (ProtobufCBinaryData){n->picture->len, n->picture->data};
  if (n->admins_edit_info) b.has_admins_edit_info = b.admins_edit_info = 1;
  if (n->admins_send) b.has_admins_send = b.admins_send = 1;
  if (n->approval) b.has_approval_required = b.approval_required = 1;
  if (n->has_invite)
    b.has_invite_key = 1, b.invite_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)n->invite_key};
  size_t len = whisper__e2e__group_change_body__get_packed_size(&b);
  uint8_t *body = malloc(len ? len : 1);
  if (body == NULL) return WHISPER_ENOMEM;
  whisper__e2e__group_change_body__pack(&b, body);
  int rc = ctx_sign(c, GROUP_CTX, body, len, out);
  if (rc == WHISPER_OK && invite_priv) {
    /* a join: the link's key signs the same body */
    static const char JOIN_CTX[] = "whisper-group-join-v1";
    uint8_t sig[WHISPER_SIGNATURE_LEN];
    uint8_t *msg = malloc(sizeof JOIN_CTX - 1 + len + 1);
    Whisper__E2e__SignedGroupChange *s = NULL;
    rc = msg ? WHISPER_OK : WHISPER_ENOMEM;
    if (rc == WHISPER_OK) {
      memcpy(msg, JOIN_CTX, sizeof JOIN_CTX - 1);
      if (len) memcpy(msg + sizeof JOIN_CTX - 1, body, len);
      rc = whisper_sign(c->ctx, invite_priv, msg, sizeof JOIN_CTX - 1 + len, sig);
    }
    free(msg);
    if (rc == WHISPER_OK &&
        (s = whisper__e2e__signed_group_change__unpack(&wh_pb_alloc, (*out)->len, (*out)->data)) == NULL)
      rc = WHISPER_ENOMEM;
    if (rc == WHISPER_OK) {
      s->has_invite_signature = 1;
      s->invite_signature = (ProtobufCBinaryData){sizeof sig, sig};
      whisper_buf *b2 = whisper_buf_new(NULL, whisper__e2e__signed_group_change__get_packed_size(s));
      if (b2 == NULL) rc = WHISPER_ENOMEM;
      else {
        whisper__e2e__signed_group_change__pack(s, b2->data);
        whisper_buf_free(*out);
        *out = b2;
      }
      s->invite_signature = (ProtobufCBinaryData){0, NULL};
      s->has_invite_signature = 0;
    }
    if (s) whisper__e2e__signed_group_change__free_unpacked(s, &wh_pb_alloc);
    if (rc != WHISPER_OK) {
      whisper_buf_free(*out);
      *out = NULL;
    }
  }
  free(body);
  return rc;
}

/* --- payloads ---------------------------------------------------------------------------------- */

int sy_payload_make(const char *to, const uint8_t *gid, const sy_body *b, uint64_t counter,
                    uint64_t sent_at, int resend, whisper_buf **out) {
  Whisper__E2e__Payload p = WHISPER__E2E__PAYLOAD__INIT;
  p.has_body = p.has_sent_at_ms = p.has_id = 1;
  if (counter) p.has_counter = 1, p.counter = counter;
  if (resend) p.has_resend = p.resend = 1; /* a receiver that did not ask takes nothing */
  p.id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)b->id};
  if (b->content) { /* the content says it all */
    p.has_content = 1;
    p.content = (ProtobufCBinaryData){b->content_len, (uint8_t *)b->content};
    p.body = (ProtobufCBinaryData){0, NULL};
  } else {
    p.body = (ProtobufCBinaryData){b->len, (uint8_t *)b->body};
  }
  p.sent_at_ms = sent_at;
  if (gid) {
    p.has_group_id = 1;
    p.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)gid};
  } else {
    p.to = (char *)to;
  }
  size_t n = whisper__e2e__payload__get_packed_size(&p);
  if ((*out = whisper_buf_new(NULL, n)) == NULL) return WHISPER_ENOMEM;
  whisper__e2e__payload__pack(&p, (*out)->data);
  return WHISPER_OK;
}

int sy_payload_receipt(whisper_client *c, const char *to, int status,
                       const uint8_t (*ids)[WHISPER_CLIENT_ID_LEN], size_t n, whisper_buf **out) {
  ProtobufCBinaryData *b = calloc(n ? n : 1, sizeof *b);
  if (b == NULL) return WHISPER_ENOMEM;
  for (size_t i = 0; i < n; i++) b[i] = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)ids[i]};
  Whisper__E2e__Receipt r = WHISPER__E2E__RECEIPT__INIT;
  r.has_status = 1;
  r.status = (uint32_t)status;
  r.n_ids = n;
  r.ids = b;
  Whisper__E2e__Payload p = WHISPER__E2E__PAYLOAD__INIT;
  p.to = (char *)to;
  p.has_sent_at_ms = 1;
  p.sent_at_ms = c->now;
  p.receipt = &r;
  size_t len = whisper__e2e__payload__get_packed_size(&p);
  int rc = (*out = whisper_buf_new(NULL, len)) ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) whisper__e2e__payload__pack(&p, (*out)->data);
  free(b);
  return rc;
}

Whisper__E2e__Payload *sy_payload_parse(const uint8_t *pt, size_t len) {
  Whisper__E2e__Payload *p = whisper__e2e__payload__unpack(&wh_pb_alloc, len, pt);
  if (p && (p->has_body != (p->receipt != NULL)) && ((p->to != NULL) != (p->has_group_id != 0)) &&
      (p->receipt == NULL || p->to != NULL) &&
      (!p->has_group_id || p->group_id.len == WHISPER_GROUP_ID_LEN) &&
      (p->to == NULL || wh_account_ok(p->to)))
    return p;
  if (p) whisper__e2e__payload__free_unpacked(p, &wh_pb_alloc);
  return NULL;
}

/* --- link tokens: version (1) || device id (4, BE) || identity key (33) ||
 *     account length (1) || account || the server's code --------------------------------- */

int sy_token_make(whisper_client *c, const uint8_t *code, size_t len, whisper_buf **out) {
  uint8_t pub[WHISPER_PUBLIC_KEY_LEN];
  int rc = whisper_identity_get(c->ctx, pub, NULL, NULL, NULL);
  if (rc != WHISPER_OK) return rc;
  size_t al = strlen(c->account);
  if ((*out = whisper_buf_new(NULL, TOKEN_HEAD + 1 + al + len)) == NULL) return WHISPER_ENOMEM;
  uint8_t *t = (*out)->data;
  t[0] = TOKEN_VERSION;
  wh_be32(t + 1, c->device_id);
  memcpy(t + 5, pub, WHISPER_PUBLIC_KEY_LEN);
  t[TOKEN_HEAD] = (uint8_t)al;
  memcpy(t + TOKEN_HEAD + 1, c->account, al);
  if (len) memcpy(t + TOKEN_HEAD + 1 + al, code, len);
  return WHISPER_OK;
}

int sy_token_parse(const uint8_t *t, size_t len, sy_token *out) {
  if (t == NULL || len <= TOKEN_HEAD + 1 || t[0] != TOKEN_VERSION) return WHISPER_EINVAL;
  size_t al = t[TOKEN_HEAD];
  if (al == 0 || al > 64 || len <= TOKEN_HEAD + 1 + al || len > TOKEN_HEAD + 1 + al + 64)
    return WHISPER_EINVAL;
  memcpy(out->account, t + TOKEN_HEAD + 1, al);
  out->account[al] = '\0';
  out->device = wh_rd32(t + 1);
  out->key = t + 5;
  out->code = t + TOKEN_HEAD + 1 + al;
  out->code_len = len - TOKEN_HEAD - 1 - al;
  if (strlen(out->account) != al || !wh_account_ok(out->account) || out->device <= 1 ||
      out->device > INT32_MAX ||
      whisper_public_key_check(out->key, WHISPER_PUBLIC_KEY_LEN) != WHISPER_OK)
    return WHISPER_EINVAL;
  return WHISPER_OK;
}

int whisper_client_link_digits(const uint8_t *token, size_t len, char out[WHISPER_LINK_DIGITS + 1]) {
  sy_token tk;
  if (out == NULL || sy_token_parse(token, len, &tk) != WHISPER_OK) return WHISPER_EINVAL;
  /* what the approval binds: the account, the device id and its key */
  uint8_t msg[sizeof LINK_CTX - 1 + 1 + 64 + 4 + WHISPER_PUBLIC_KEY_LEN], h[32];
  size_t n = 0, al = strlen(tk.account);
  memcpy(msg, LINK_CTX, sizeof LINK_CTX - 1);
  n += sizeof LINK_CTX - 1;
  msg[n++] = (uint8_t)al;
  memcpy(msg + n, tk.account, al);
  n += al;
  wh_be32(msg + n, tk.device);
  n += 4;
  memcpy(msg + n, tk.key, WHISPER_PUBLIC_KEY_LEN);
  n += WHISPER_PUBLIC_KEY_LEN;
  sy_sha256(h, msg, n);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | h[i];
  snprintf(out, WHISPER_LINK_DIGITS + 1, "%08llu", (unsigned long long)(v % 100000000ULL));
  return WHISPER_OK;
}

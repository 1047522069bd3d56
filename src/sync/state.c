/*
 * What the engine keeps in the store, under WHISPER_REC_SYNC_STATE
 * (client.proto): its progress, the device lists it learnt from the
 * server, group membership and who has this device's sender key, the
 * conversation of each outgoing message, and pending receipts and group
 * operations. Every write runs inside a transaction the caller holds
 * unless the function says otherwise.
 */
#include "sync/sync_internal.h"

#define KEY_MAX (1 + WH_NAME_MAX + 1)

static size_t key_make(uint8_t *k, char prefix, const void *data, size_t len) {
  k[0] = (uint8_t)prefix;
  if (len) memcpy(k + 1, data, len);
  return 1 + len;
}

static int put_msg(whisper_client *c, char prefix, const void *data, size_t len,
                   const ProtobufCMessage *m) {
  uint8_t k[KEY_MAX];
  size_t n = key_make(k, prefix, data, len);
  return sy_rec_put_msg(c, k, n, m);
}

static int get_raw(whisper_client *c, char prefix, const void *data, size_t len, whisper_buf **b) {
  uint8_t k[KEY_MAX];
  size_t n = key_make(k, prefix, data, len);
  return sy_rec_get(c, k, n, b);
}

static int corrupt(whisper_client *c, const char *what) {
  return wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored %s is corrupt", what);
}

/* --- progress ---------------------------------------------------------------------- */

int sy_state_load(whisper_client *c) {
  whisper_buf *b;
  int rc = get_raw(c, 's', NULL, 0, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__ClientState *s = whisper__client__client_state__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (s == NULL || s->format > SY_STATE_FORMAT || s->n_held > 100000 || s->n_above > SY_MAX_ABOVE) {
    if (s) whisper__client__client_state__free_unpacked(s, &wh_pb_alloc);
    return corrupt(c, "progress");
  }
  c->registered = s->registered;
  c->last_seq = s->last_seq;
  c->upload_first = s->upload_first;
  c->upload_count = s->upload_count;
  if (s->has_store_id && s->store_id.len == sizeof c->store_id)
    memcpy(c->store_id, s->store_id.data, sizeof c->store_id);
  c->epoch = s->epoch;
  c->sent_since = s->sent_since;
  free(c->above);
  c->above = NULL;
  c->n_above = 0;
  if (s->n_above) {
    c->above = malloc(s->n_above * sizeof *c->above);
    if (c->above == NULL) rc = WHISPER_ENOMEM;
    else memcpy(c->above, s->above, s->n_above * sizeof *c->above), c->n_above = s->n_above;
  }
  free(c->held);
  c->held = NULL;
  c->n_held = 0;
  if (s->n_held) {
    c->held = malloc(s->n_held * sizeof *c->held);
    if (c->held == NULL) rc = WHISPER_ENOMEM;
    else memcpy(c->held, s->held, s->n_held * sizeof *c->held), c->n_held = s->n_held;
  }
  whisper__client__client_state__free_unpacked(s, &wh_pb_alloc);
  return rc;
}

int sy_state_put(whisper_client *c, int registered, uint64_t last_seq, const uint64_t *above,
                 size_t n_above, const uint64_t *held, size_t n_held, uint32_t upload_first,
                 uint32_t upload_count) {
  Whisper__Client__ClientState s = WHISPER__CLIENT__CLIENT_STATE__INIT;
  s.has_format = s.has_registered = s.has_last_seq = 1;
  s.format = SY_STATE_FORMAT;
  s.registered = registered != 0;
  s.last_seq = last_seq;
  s.n_above = n_above;
  s.above = (uint64_t *)above;
  s.has_store_id = s.has_epoch = s.has_sent_since = 1;
  s.store_id = (ProtobufCBinaryData){sizeof c->store_id, c->store_id};
  s.epoch = c->epoch;
  s.sent_since = c->sent_since;
  s.n_held = n_held;
  s.held = (uint64_t *)held;
  if (upload_count) {
    s.has_upload_first = s.has_upload_count = 1;
    s.upload_first = upload_first;
    s.upload_count = upload_count;
  }
  return put_msg(c, 's', NULL, 0, &s.base);
}

int sy_state_save(whisper_client *c) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = sy_state_put(c, c->registered, c->last_seq, c->above, c->n_above, c->held, c->n_held, c->upload_first,
                    c->upload_count);
  return wh_finish(c->ctx, rc);
}

/* --- device lists -------------------------------------------------------------------- */

void sy_devs_free(sy_devlist *l) {
  whisper_buf_free(l->signed_list);
  free(l->d);
  memset(l, 0, sizeof *l);
}

sy_dev *sy_devs_find(sy_devlist *l, uint32_t id) {
  for (size_t i = 0; i < l->n; i++)
    if (l->d[i].id == id) return &l->d[i];
  return NULL;
}

int sy_devs_add(sy_devlist *l, uint32_t id, uint32_t regid) {
  sy_dev *d = sy_devs_find(l, id);
  if (d) {
    if (regid) d->regid = regid;
    return WHISPER_OK;
  }
  sy_dev *n = realloc(l->d, (l->n + 1) * sizeof *n);
  if (n == NULL) return WHISPER_ENOMEM;
  l->d = n;
  l->d[l->n].id = id;
  l->d[l->n].regid = regid;
  l->d[l->n].refetch = 0;
  l->d[l->n].has_key = 0;
  l->n++;
  /* kept in order of device id */
  for (size_t i = l->n - 1; i > 0 && l->d[i - 1].id > l->d[i].id; i--) {
    sy_dev t = l->d[i];
    l->d[i] = l->d[i - 1];
    l->d[i - 1] = t;
  }
  return WHISPER_OK;
}

void sy_devs_del(sy_devlist *l, uint32_t id) {
  for (size_t i = 0; i < l->n; i++)
    if (l->d[i].id == id) {
      memmove(&l->d[i], &l->d[i + 1], (l->n - i - 1) * sizeof *l->d);
      l->n--;
      return;
    }
}

int sy_devs_load(whisper_client *c, const char *account, sy_devlist *l) {
  whisper_buf *b;
  memset(l, 0, sizeof *l);
  int rc = get_raw(c, 'd', account, strlen(account), &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__DeviceList *m = whisper__client__device_list__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->n_devices > 100000) {
    if (m) whisper__client__device_list__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c, "device list");
  }
  l->known = 1;
  l->legacy = !m->e2e;
  if (m->has_account_key && m->account_key.len == WHISPER_PUBLIC_KEY_LEN) {
    l->authed = 1;
    memcpy(l->account_key, m->account_key.data, WHISPER_PUBLIC_KEY_LEN);
    l->version = m->version;
    l->trust = (int)m->trust;
    if (m->has_signed_list && (l->signed_list = whisper_buf_new(m->signed_list.data, m->signed_list.len)) == NULL)
      rc = WHISPER_ENOMEM;
  }
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_devices; i++) {
    const Whisper__Client__KnownDevice *d = m->devices[i];
    if (!wh_device_id_ok(d->device_id)) continue;
    rc = sy_devs_add(l, d->device_id, d->registration_id);
    if (rc != WHISPER_OK) break;
    sy_dev *x = sy_devs_find(l, d->device_id);
    x->refetch = d->refetch;
    if (d->has_identity_key && d->identity_key.len == WHISPER_PUBLIC_KEY_LEN) {
      x->has_key = 1;
      memcpy(x->key, d->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
    }
  }
  whisper__client__device_list__free_unpacked(m, &wh_pb_alloc);
  if (rc != WHISPER_OK) sy_devs_free(l);
  return rc;
}

int sy_devs_save(whisper_client *c, const char *account, const sy_devlist *l) {
  c->devs_gen++; /* (outbox.c: kept Sends are made anew) */
  Whisper__Client__DeviceList m = WHISPER__CLIENT__DEVICE_LIST__INIT;
  Whisper__Client__KnownDevice *d = calloc(l->n ? l->n : 1, sizeof *d);
  Whisper__Client__KnownDevice **dp = calloc(l->n ? l->n : 1, sizeof *dp);
  int rc = WHISPER_ENOMEM;
  if (d && dp) {
    for (size_t i = 0; i < l->n; i++) {
      whisper__client__known_device__init(&d[i]);
      d[i].has_device_id = d[i].has_registration_id = 1;
      d[i].device_id = l->d[i].id;
      d[i].registration_id = l->d[i].regid;
      if (l->d[i].refetch) d[i].has_refetch = d[i].refetch = 1;
      if (l->d[i].has_key) {
        d[i].has_identity_key = 1;
        d[i].identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)l->d[i].key};
      }
      dp[i] = &d[i];
    }
    m.n_devices = l->n;
    m.devices = dp;
    m.has_e2e = 1;
    m.e2e = !l->legacy;
    if (l->authed) {
      m.has_account_key = m.has_version = m.has_trust = 1;
      m.account_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)l->account_key};
      m.version = l->version;
      m.trust = (uint32_t)l->trust;
      if (l->signed_list) {
        m.has_signed_list = 1;
        m.signed_list = (ProtobufCBinaryData){l->signed_list->len, l->signed_list->data};
      }
    }
    rc = put_msg(c, 'd', account, strlen(account), &m.base);
  }
  free(d);
  free(dp);
  return rc;
}

/* --- groups ---------------------------------------------------------------------------- */

void sy_group_free(sy_group *g) {
  for (size_t i = 0; i < g->n_members; i++) free(g->members[i]);
  free(g->members);
  for (size_t i = 0; i < g->n_have; i++) free(g->have[i].account);
  free(g->have);
  for (size_t i = 0; i < g->n_admins; i++) free(g->admins[i]);
  free(g->admins);
  for (size_t i = 0; i < g->n_requests; i++) free(g->requests[i]);
  free(g->requests);
  whisper_buf_free(g->name);
  whisper_buf_free(g->description);
  whisper_buf_free(g->picture);
  memset(g, 0, sizeof *g);
}

int sy_group_is_member(const sy_group *g, const char *account) {
  for (size_t i = 0; i < g->n_members; i++)
    if (strcmp(g->members[i], account) == 0) return 1;
  return 0;
}

int sy_group_has_key(const sy_group *g, const char *account, uint32_t device) {
  for (size_t i = 0; i < g->n_have; i++)
    if (g->have[i].device == device && strcmp(g->have[i].account, account) == 0) return 1;
  return 0;
}

int sy_group_load(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], sy_group *g) {
  whisper_buf *b;
  memset(g, 0, sizeof *g);
  int rc = get_raw(c, 'g', gid, WHISPER_GROUP_ID_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__GroupState *m = whisper__client__group_state__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->n_members > 100000 || m->n_have_key > 1000000) {
    if (m) whisper__client__group_state__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c, "group");
  }
  g->known = 1;
  g->left = m->left;
  g->key_gen = m->key_gen;
  g->legacy = !m->e2e;
  g->version = m->version;
  if (m->has_hash && m->hash.len == sizeof g->hash) memcpy(g->hash, m->hash.data, sizeof g->hash);
  /* info, settings and link (a record from before them has none) */
  g->admins_edit_info = m->admins_edit_info;
  g->admins_send = m->admins_send;
  g->approval = m->approval_required;
  g->changed = m->changed;
  if (m->has_invite_key && m->invite_key.len == WHISPER_PUBLIC_KEY_LEN) {
    g->has_invite = 1;
    memcpy(g->invite_key, m->invite_key.data, WHISPER_PUBLIC_KEY_LEN);
  }
  g->members = calloc(m->n_members ? m->n_members : 1, sizeof *g->members);
  g->have = calloc(m->n_have_key ? m->n_have_key : 1, sizeof *g->have);
  g->admins = calloc(m->n_admins ? m->n_admins : 1, sizeof *g->admins);
  g->requests = calloc(m->n_requests ? m->n_requests : 1, sizeof *g->requests);
  rc = g->members && g->have && g->admins && g->requests ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK && m->has_name && (g->name = whisper_buf_new(m->name.data, m->name.len)) == NULL)
    rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK && m->has_description &&
      (g->description = whisper_buf_new(m->description.data, m->description.len)) == NULL)
    rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK && m->has_picture &&
      (g->picture = whisper_buf_new(m->picture.data, m->picture.len)) == NULL)
    rc = WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_requests && i < SY_MAX_REQUESTS; i++) {
    if (!wh_account_ok(m->requests[i])) continue;
    if ((g->requests[g->n_requests] = sy_strdup(m->requests[i])) == NULL) rc = WHISPER_ENOMEM;
    else g->n_requests++;
  }
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_admins; i++) {
    if (!wh_account_ok(m->admins[i])) continue;
    if ((g->admins[g->n_admins] = sy_strdup(m->admins[i])) == NULL) rc = WHISPER_ENOMEM;
    else g->n_admins++;
  }
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_members; i++) {
    if (!wh_account_ok(m->members[i])) continue;
    if ((g->members[g->n_members] = sy_strdup(m->members[i])) == NULL) rc = WHISPER_ENOMEM;
    else g->n_members++;
  }
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_have_key; i++) {
    const Whisper__Client__DeviceRef *d = m->have_key[i];
    if (!wh_account_ok(d->account)) continue;
    if ((g->have[g->n_have].account = sy_strdup(d->account)) == NULL) rc = WHISPER_ENOMEM;
    else g->have[g->n_have++].device = d->device;
  }
  whisper__client__group_state__free_unpacked(m, &wh_pb_alloc);
  if (rc != WHISPER_OK) sy_group_free(g);
  return rc;
}

int sy_group_save(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const sy_group *g) {
  Whisper__Client__GroupState m = WHISPER__CLIENT__GROUP_STATE__INIT;
  Whisper__Client__DeviceRef *d = calloc(g->n_have ? g->n_have : 1, sizeof *d);
  Whisper__Client__DeviceRef **dp = calloc(g->n_have ? g->n_have : 1, sizeof *dp);
  int rc = WHISPER_ENOMEM;
  if (d && dp) {
    for (size_t i = 0; i < g->n_have; i++) {
      whisper__client__device_ref__init(&d[i]);
      d[i].account = g->have[i].account;
      d[i].has_device = 1;
      d[i].device = g->have[i].device;
      dp[i] = &d[i];
    }
    m.n_members = g->n_members;
    m.members = g->members;
    m.n_have_key = g->n_have;
    m.have_key = dp;
    if (g->left) m.has_left = m.left = 1;
    if (g->key_gen) m.has_key_gen = 1, m.key_gen = g->key_gen;
    m.has_e2e = 1;
    m.e2e = !g->legacy;
    m.n_admins = g->n_admins;
    m.admins = g->admins;
    if (g->version) {
      m.has_version = m.has_hash = 1;
      m.version = g->version;
      m.hash = (ProtobufCBinaryData){sizeof g->hash, (uint8_t *)g->hash};
    }
    if (g->name) m.has_name = 1, m.name = (ProtobufCBinaryData){g->name->len, g->name->data};
    if (g->description)
      m.has_description = 1,
      m.description = (ProtobufCBinaryData){g->description->len, g->description->data};
    if (g->picture) m.has_picture = 1, m.picture = (ProtobufCBinaryData){g->picture->len, g->picture->data};
    if (g->admins_edit_info) m.has_admins_edit_info = m.admins_edit_info = 1;
    if (g->admins_send) m.has_admins_send = m.admins_send = 1;
    if (g->approval) m.has_approval_required = m.approval_required = 1;
    if (g->has_invite)
      m.has_invite_key = 1,
      m.invite_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)g->invite_key};
    if (g->changed) m.has_changed = 1, m.changed = g->changed;
    m.n_requests = g->n_requests;
    m.requests = g->requests;
    rc = put_msg(c, 'g', gid, WHISPER_GROUP_ID_LEN, &m.base);
  }
  free(d);
  free(dp);
  if (rc == WHISPER_OK && g->known && !g->left) rc = sy_profile_group_noted(c, gid); /* profile.c */
  return rc;
}

int sy_group_is_admin(const sy_group *g, const char *account) {
  for (size_t i = 0; i < g->n_admins; i++)
    if (strcmp(g->admins[i], account) == 0) return 1;
  return 0;
}

/* --- entries that wait ---------------------------------------------------------------------- */

int sy_held_read(whisper_client *c, sy_heldset *h) {
  whisper_buf *b;
  memset(h, 0, sizeof *h);
  int rc = get_raw(c, 'h', NULL, 0, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__Held *m = whisper__client__held__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->n_deliver > SY_MAX_HELD) {
    if (m) whisper__client__held__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c, "waiting entries");
  }
  h->e = calloc(m->n_deliver + 1, sizeof *h->e);
  rc = h->e ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_deliver; i++)
    if ((h->e[h->n] = whisper_buf_new(m->deliver[i].data, m->deliver[i].len)) == NULL) rc = WHISPER_ENOMEM;
    else h->n++;
  whisper__client__held__free_unpacked(m, &wh_pb_alloc);
  if (rc != WHISPER_OK) sy_heldset_free(h);
  return rc;
}

int sy_held_write(whisper_client *c, const sy_heldset *h) {
  uint8_t k = 'h';
  if (h->n == 0) {
    int rc = sy_rec_del(c, &k, 1);
    return rc == WHISPER_ENOTFOUND ? WHISPER_OK : rc;
  }
  Whisper__Client__Held m = WHISPER__CLIENT__HELD__INIT;
  ProtobufCBinaryData *d = calloc(h->n, sizeof *d);
  if (d == NULL) return WHISPER_ENOMEM;
  for (size_t i = 0; i < h->n; i++) d[i] = (ProtobufCBinaryData){h->e[i]->len, h->e[i]->data};
  m.n_deliver = h->n;
  m.deliver = d;
  int rc = put_msg(c, 'h', NULL, 0, &m.base);
  free(d);
  return rc;
}

void sy_heldset_free(sy_heldset *h) {
  for (size_t i = 0; i < h->n; i++) whisper_buf_free(h->e[i]);
  free(h->e);
  memset(h, 0, sizeof *h);
}

/* --- outgoing messages' conversations --------------------------------------------------- */

int sy_outref_put(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN], const char *conv,
                  uint64_t counter) {
  Whisper__Client__OutRef m = WHISPER__CLIENT__OUT_REF__INIT;
  m.conversation = (char *)conv;
  if (counter) m.has_counter = 1, m.counter = counter;
  return put_msg(c, 'm', id, WHISPER_CLIENT_ID_LEN, &m.base);
}

uint64_t sy_outref_counter(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN]) {
  whisper_buf *b;
  if (get_raw(c, 'm', id, WHISPER_CLIENT_ID_LEN, &b) != WHISPER_OK) return 0;
  Whisper__Client__OutRef *m = whisper__client__out_ref__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  uint64_t n = m && m->has_counter ? m->counter : 0;
  if (m) whisper__client__out_ref__free_unpacked(m, &wh_pb_alloc);
  return n;
}

int sy_counter_next(whisper_client *c, const char *conv, uint64_t *out) {
  whisper_buf *b;
  uint64_t next = 1;
  int rc = get_raw(c, 'k', conv, strlen(conv), &b);
  if (rc == WHISPER_OK) {
    Whisper__Client__SendCounter *m = whisper__client__send_counter__unpack(&wh_pb_alloc, b->len, b->data);
    whisper_buf_free(b);
    if (m == NULL) return corrupt(c, "message counter");
    next = m->next ? m->next : 1;
    whisper__client__send_counter__free_unpacked(m, &wh_pb_alloc);
  } else if (rc != WHISPER_ENOTFOUND) {
    return rc;
  }
  Whisper__Client__SendCounter m = WHISPER__CLIENT__SEND_COUNTER__INIT;
  m.has_next = 1;
  m.next = next + 1;
  *out = next;
  return put_msg(c, 'k', conv, strlen(conv), &m.base);
}

static size_t seen_key(uint8_t *k, const char *sender, uint32_t device, const char *conv) {
  size_t n = 0, sl = strlen(sender), cl = strlen(conv);
  k[n++] = 'q';
  memcpy(k + n, sender, sl);
  n += sl;
  k[n++] = 0;
  wh_be32(k + n, device);
  n += 4;
  memcpy(k + n, conv, cl);
  return n + cl;
}

Whisper__Client__SeenCounter *sy_seen_load(whisper_client *c, const char *sender, uint32_t device,
                                           const char *conv, int *rc) {
  uint8_t k[1 + 2 * WH_NAME_MAX + 6];
  whisper_buf *b;
  *rc = sy_rec_get(c, k, seen_key(k, sender, device, conv), &b);
  if (*rc == WHISPER_ENOTFOUND) {
    *rc = WHISPER_OK;
    return NULL;
  }
  if (*rc != WHISPER_OK) return NULL;
  Whisper__Client__SeenCounter *m = whisper__client__seen_counter__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL) *rc = corrupt(c, "seen counters");
  return m;
}

int sy_seen_save(whisper_client *c, const char *sender, uint32_t device, const char *conv,
                 const Whisper__Client__SeenCounter *m) {
  uint8_t k[1 + 2 * WH_NAME_MAX + 6];
  return sy_rec_put_msg(c, k, seen_key(k, sender, device, conv), &m->base);
}

int sy_seen_del(whisper_client *c, const char *sender, uint32_t device, const char *conv) {
  uint8_t k[1 + 2 * WH_NAME_MAX + 6];
  return sy_rec_del(c, k, seen_key(k, sender, device, conv));
}

int sy_outref_get(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN],
                  char conv[WH_NAME_MAX + 1]) {
  whisper_buf *b;
  int rc = get_raw(c, 'm', id, WHISPER_CLIENT_ID_LEN, &b);
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__OutRef *m = whisper__client__out_ref__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->conversation == NULL || strlen(m->conversation) == 0 ||
      strlen(m->conversation) > WH_NAME_MAX) {
    if (m) whisper__client__out_ref__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c, "message reference");
  }
  strcpy(conv, m->conversation);
  whisper__client__out_ref__free_unpacked(m, &wh_pb_alloc);
  return WHISPER_OK;
}

/* --- pending receipts and group operations ----------------------------------------------- */

static void op_clear(sy_op *o) {
  sy_edit_clear(&o->edit);
  whisper_buf_free(o->change);
  free(o->to);
  free(o->ids);
  for (size_t i = 0; i < o->n_members; i++) free(o->members[i]);
  free(o->members);
  memset(o, 0, sizeof *o);
}

void sy_ops_free(whisper_client *c) {
  for (size_t i = 0; i < c->n_ops; i++) op_clear(&c->ops[i]);
  free(c->ops);
  c->ops = NULL;
  c->n_ops = 0;
}

static int op_from(sy_op *o, const Whisper__Client__PendingOp *p) {
  memset(o, 0, sizeof *o);
  if (p->receipt) {
    const Whisper__Sync__Receipt *r = p->receipt;
    if (!wh_account_ok(r->to)) return WHISPER_EINVAL;
    o->kind = OP_RECEIPT;
    o->code = r->status;
    if (r->has_group_id && r->group_id.len == WHISPER_GROUP_ID_LEN) {
      o->has_group = 1;
      memcpy(o->group_id, r->group_id.data, WHISPER_GROUP_ID_LEN);
    }
    if ((o->to = sy_strdup(r->to)) == NULL) return WHISPER_ENOMEM;
    if (p->has_client_id && p->client_id.len == WHISPER_CLIENT_ID_LEN)
      memcpy(o->cid, p->client_id.data, WHISPER_CLIENT_ID_LEN);
    else
      memset(o->cid, 0xa5, WHISPER_CLIENT_ID_LEN); /* an op from before end-to-end receipts */
    o->ids = malloc((r->n_client_ids ? r->n_client_ids : 1) * sizeof *o->ids);
    if (o->ids == NULL) return WHISPER_ENOMEM;
    for (size_t i = 0; i < r->n_client_ids; i++)
      if (r->client_ids[i].len == WHISPER_CLIENT_ID_LEN)
        memcpy(o->ids[o->n_ids++], r->client_ids[i].data, WHISPER_CLIENT_ID_LEN);
    return WHISPER_OK;
  }
  if (p->group) {
    const Whisper__Sync__GroupOp *g = p->group;
    if (!g->has_group_id || g->group_id.len != WHISPER_GROUP_ID_LEN) return WHISPER_EINVAL;
    o->kind = OP_GROUP;
    o->code = (uint32_t)g->op;
    o->has_group = 1;
    memcpy(o->group_id, g->group_id.data, WHISPER_GROUP_ID_LEN);
    if (g->has_change && (o->change = whisper_buf_new(g->change.data, g->change.len)) == NULL)
      return WHISPER_ENOMEM;
    const Whisper__Client__GroupEdit *e = p->edit;
    if (e) {
      struct sy_edit *x = &o->edit;
      if (e->what > SY_EDIT_JOIN) return WHISPER_EINVAL; /* from a newer engine: dropped */
      x->what = e->what;
      x->field = e->field;
      x->on = e->on;
      x->tries = e->tries;
      if (e->has_value && (x->value = whisper_buf_new(e->value.data, e->value.len)) == NULL)
        return WHISPER_ENOMEM;
      if (e->has_key && e->key.len == WHISPER_PUBLIC_KEY_LEN) {
        x->has_key = 1;
        memcpy(x->key, e->key.data, WHISPER_PUBLIC_KEY_LEN);
      }
      if (e->has_secret && e->secret.len == sizeof x->secret) {
        x->has_secret = 1;
        memcpy(x->secret, e->secret.data, sizeof x->secret);
      }
    }
    o->members = calloc(g->n_members ? g->n_members : 1, sizeof *o->members);
    if (o->members == NULL) return WHISPER_ENOMEM;
    for (size_t i = 0; i < g->n_members; i++)
      if (wh_account_ok(g->members[i])) {
        if ((o->members[o->n_members] = sy_strdup(g->members[i])) == NULL) return WHISPER_ENOMEM;
        o->n_members++;
      }
    return WHISPER_OK;
  }
  return WHISPER_EINVAL;
}

int sy_ops_load(whisper_client *c) {
  whisper_buf *b;
  int rc = get_raw(c, 'p', NULL, 0, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__Pending *m = whisper__client__pending__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->n_ops > SY_MAX_OPS) {
    if (m) whisper__client__pending__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c, "pending operations");
  }
  sy_ops_free(c);
  c->ops = calloc(m->n_ops ? m->n_ops : 1, sizeof *c->ops);
  rc = c->ops ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_ops; i++) {
    int r = op_from(&c->ops[c->n_ops], m->ops[i]);
    if (r == WHISPER_OK) c->n_ops++;
    else op_clear(&c->ops[c->n_ops]);
    if (r == WHISPER_ENOMEM) rc = r;
  }
  whisper__client__pending__free_unpacked(m, &wh_pb_alloc);
  return rc;
}

int sy_ops_save(whisper_client *c) {
  size_t n = c->n_ops;
  Whisper__Client__Pending m = WHISPER__CLIENT__PENDING__INIT;
  Whisper__Client__PendingOp *po = calloc(n ? n : 1, sizeof *po);
  Whisper__Client__PendingOp **pp = calloc(n ? n : 1, sizeof *pp);
  Whisper__Sync__Receipt *rc_ = calloc(n ? n : 1, sizeof *rc_);
  Whisper__Sync__GroupOp *go = calloc(n ? n : 1, sizeof *go);
  Whisper__Client__GroupEdit *ge = calloc(n ? n : 1, sizeof *ge);
  ProtobufCBinaryData **ids = calloc(n ? n : 1, sizeof *ids);
  int rc = po && pp && rc_ && go && ge && ids ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    const sy_op *o = &c->ops[i];
    whisper__client__pending_op__init(&po[i]);
    pp[i] = &po[i];
    if (o->kind == OP_RECEIPT) {
      whisper__sync__receipt__init(&rc_[i]);
      rc_[i].to = o->to;
      rc_[i].has_status = 1;
      rc_[i].status = o->code;
      if (o->has_group) {
        rc_[i].has_group_id = 1;
        rc_[i].group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)o->group_id};
      }
      ids[i] = calloc(o->n_ids ? o->n_ids : 1, sizeof *ids[i]);
      if (ids[i] == NULL) {
        rc = WHISPER_ENOMEM;
        break;
      }
      for (size_t j = 0; j < o->n_ids; j++)
        ids[i][j] = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)o->ids[j]};
      rc_[i].n_client_ids = o->n_ids;
      rc_[i].client_ids = ids[i];
      po[i].receipt = &rc_[i];
      po[i].has_client_id = 1;
      po[i].client_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)o->cid};
    } else {
      whisper__sync__group_op__init(&go[i]);
      go[i].has_op = go[i].has_group_id = 1;
      go[i].op = (Whisper__Sync__GroupOp__Op)o->code;
      go[i].group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)o->group_id};
      go[i].n_members = o->n_members;
      go[i].members = o->members;
      if (o->change) {
        go[i].has_change = 1;
        go[i].change = (ProtobufCBinaryData){o->change->len, o->change->data};
      }
      po[i].group = &go[i];
      const struct sy_edit *x = &o->edit;
      if (x->what) {
        whisper__client__group_edit__init(&ge[i]);
        ge[i].has_what = 1;
        ge[i].what = x->what;
        if (x->field) ge[i].has_field = 1, ge[i].field = x->field;
        if (x->on) ge[i].has_on = ge[i].on = 1;
        if (x->tries) ge[i].has_tries = 1, ge[i].tries = x->tries;
        if (x->value)
          ge[i].has_value = 1, ge[i].value = (ProtobufCBinaryData){x->value->len, x->value->data};
        if (x->has_key)
          ge[i].has_key = 1,
          ge[i].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)x->key};
        if (x->has_secret)
          ge[i].has_secret = 1,
          ge[i].secret = (ProtobufCBinaryData){sizeof x->secret, (uint8_t *)x->secret};
        po[i].edit = &ge[i];
      }
    }
  }
  if (rc == WHISPER_OK) {
    m.n_ops = n;
    m.ops = pp;
    rc = put_msg(c, 'p', NULL, 0, &m.base);
  }
  for (size_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
  free(po);
  free(pp);
  free(rc_);
  free(go);
  free(ge);
  return rc;
}

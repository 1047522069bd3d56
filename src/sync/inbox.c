/*
 * Mailbox entries, exactly once.
 *
 * Each entry is handled in one store transaction together with the
 * engine's progress ("s": last_seq and the held seqs), then acknowledged:
 * a redelivered entry (seq <= last_seq and not held) is only acked, so a
 * restart or a lost Ack never gives a second event. Ack{up_to} and
 * Auth.resume_after are the watermark: last_seq, or just below the oldest
 * held entry (an Ack up to a seq deletes every entry below it).
 *
 * Outcomes:
 *  - stored (or a duplicate): done, acked;
 *  - WHISPER_EUNTRUSTED (the sender's identity key changed): EV_IDENTITY,
 *    held and not acked: it comes again on the next login, or with
 *    whisper_client_retry() once the app trusted the key. Entries after it
 *    are handled meanwhile; the server stops pushing once its window of
 *    unacknowledged entries is full;
 *  - any other failure to decrypt (malformed, bad signature, no session or
 *    sender key, too far ahead): EV_ERROR, and acked like a stored entry:
 *    the same bytes can never decrypt later, and keeping them would block
 *    the mailbox for good;
 *  - a store failure: nothing is kept, no ack; the engine asks for the
 *    connection to be closed so that the entry comes again.
 *
 * Own-device copies of this account's messages (sender = this account)
 * are stored as outgoing messages, SENT, with their recipients, so that
 * every device of the account follows their delivery and read status.
 * Receipts update history outside the entry's transaction: they are
 * idempotent (a status only moves forward, and an event is raised only
 * when it moves).
 */
#include "sync/sync_internal.h"
#include "wire.pb-c.h"

enum { OUT_DONE = 1, OUT_HOLD = 2 };

/* --- the watermark and acks ------------------------------------------------------------------- */

uint64_t sy_watermark(const whisper_client *c) {
  uint64_t w = c->last_seq;
  for (size_t i = 0; i < c->n_held; i++)
    if (c->held[i] - 1 < w) w = c->held[i] - 1;
  return w;
}

static int is_held(const whisper_client *c, uint64_t seq) {
  for (size_t i = 0; i < c->n_held; i++)
    if (c->held[i] == seq) return 1;
  return 0;
}

void sy_ack_flush(whisper_client *c) {
  if (!c->logged_in || c->close_wanted) return;
  uint64_t w = sy_watermark(c);
  if (w <= c->acked) return;
  Whisper__Sync__Ack a = WHISPER__SYNC__ACK__INIT;
  a.has_up_to = 1;
  a.up_to = w;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_ACK;
  f.ack = &a;
  if (sy_queue(c, &f, RQ_ACK, 1, NULL) == WHISPER_OK) c->acked = w;
}

void sy_held_free(whisper_client *c) {
  while (c->held_frames) {
    sy_held *h = c->held_frames;
    c->held_frames = h->next;
    whisper_buf_free(h->frame);
    free(h);
  }
}

static void held_keep(whisper_client *c, const Whisper__Sync__Deliver *d) {
  size_t n = 0;
  for (sy_held *h = c->held_frames; h; h = h->next, n++)
    if (h->seq == d->seq) return;
  if (n >= SY_HELD_FRAMES) return;
  sy_held *h = calloc(1, sizeof *h);
  if (h == NULL) return;
  size_t len = whisper__sync__deliver__get_packed_size(d);
  if ((h->frame = whisper_buf_new(NULL, len)) == NULL) {
    free(h);
    return;
  }
  whisper__sync__deliver__pack(d, h->frame->data);
  h->seq = d->seq;
  h->next = c->held_frames;
  c->held_frames = h;
}

void sy_retry_held(whisper_client *c) {
  sy_held *list = c->held_frames;
  c->held_frames = NULL;
  while (list) {
    sy_held *h = list;
    list = h->next;
    Whisper__Sync__Deliver *d =
        whisper__sync__deliver__unpack(&wh_pb_alloc, h->frame->len, h->frame->data);
    if (d) {
      if (c->logged_in) sy_deliver(c, d, 1);
      whisper__sync__deliver__free_unpacked(d, &wh_pb_alloc);
    }
    whisper_buf_free(h->frame);
    free(h);
  }
}

/* --- events of one entry ------------------------------------------------------------------------ */

typedef struct evlist {
  sy_event *head, *tail;
} evlist;

static void ev_add(evlist *l, sy_event *e) {
  if (e == NULL) return;
  if (l->tail) l->tail->next = e;
  else l->head = e;
  l->tail = e;
}

static void ev_drop(evlist *l) {
  while (l->head) {
    sy_event *e = l->head;
    l->head = e->next;
    sy_event_free(e);
  }
  l->tail = NULL;
}

static void ev_commit(whisper_client *c, evlist *l) {
  while (l->head) {
    sy_event *e = l->head;
    l->head = e->next;
    sy_event_push(c, e);
  }
  l->tail = NULL;
}

static sy_event *ev_of(whisper_client *c, int type, const Whisper__Sync__Deliver *d,
                       const char *conv, const whisper_buf *body) {
  sy_event *e = sy_event_new(c, type);
  if (e == NULL) return NULL;
  if (sy_event_set(e, conv, d->sender, d->has_client_id ? d->client_id.data : NULL,
                   d->has_client_id ? d->client_id.len : 0, body ? body->data : NULL,
                   body ? body->len : 0) != WHISPER_OK) {
    sy_event_free(e);
    return NULL;
  }
  e->ev.from_device = d->sender_device;
  e->ev.server_seq = d->server_seq;
  e->ev.server_ts = d->server_ts;
  return e;
}

static int store_failure(int rc) {
  return rc == WHISPER_ESTORE || rc == WHISPER_ENOMEM || rc == WHISPER_EBUSY ||
         rc == WHISPER_ECORRUPT || rc == WHISPER_ERANDOM || rc == WHISPER_EINTERNAL ||
         rc == WHISPER_EKEY;
}

/* The identity key a PreKey message carries (for EV_IDENTITY), if any. */
static int prekey_identity(const Whisper__Sync__Deliver *d, uint8_t key[WHISPER_PUBLIC_KEY_LEN]) {
  if (d->type != 3 || d->body.len < 2) return 0;
  Whisper__Wire__PreKeySignalMessage *m =
      whisper__wire__pre_key_signal_message__unpack(&wh_pb_alloc, d->body.len - 1, d->body.data + 1);
  int ok = m && m->has_identity_key && m->identity_key.len >= WHISPER_PUBLIC_KEY_LEN;
  if (ok) memcpy(key, m->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
  if (m) whisper__wire__pre_key_signal_message__free_unpacked(m, &wh_pb_alloc);
  return ok;
}

/* Turns a library result into the entry's outcome and events. */
static int classify(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv, int rc,
                    whisper_buf *pt, evlist *evs, int with_message_event) {
  if (rc == WHISPER_OK) {
    if (with_message_event) ev_add(evs, ev_of(c, WHISPER_EV_MESSAGE, d, conv, pt));
    return OUT_DONE;
  }
  if (rc == WHISPER_EDUPLICATE) return OUT_DONE;
  if (rc == WHISPER_EUNTRUSTED) {
    uint8_t key[WHISPER_PUBLIC_KEY_LEN];
    sy_event *e = ev_of(c, WHISPER_EV_IDENTITY, d, conv, NULL);
    if (e && prekey_identity(d, key)) {
      e->body = malloc(WHISPER_PUBLIC_KEY_LEN);
      if (e->body) memcpy(e->body, key, WHISPER_PUBLIC_KEY_LEN), e->body_len = WHISPER_PUBLIC_KEY_LEN;
    }
    ev_add(evs, e);
    return OUT_HOLD;
  }
  if (store_failure(rc)) return rc;
  sy_event *e = ev_of(c, WHISPER_EV_ERROR, d, conv, NULL);
  if (e) {
    e->ev.code = rc;
    e->message = sy_strdup(whisper_ctx_last_error(c->ctx));
  }
  ev_add(evs, e);
  return OUT_DONE;
}

static void bad_entry(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                      const char *why) {
  sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
  if (e == NULL) return;
  e->ev.code = WHISPER_EINVALIDMSG;
  e->ev.server_seq = d->server_seq;
  e->message = sy_strdup(why);
  ev_add(evs, e);
}

/* --- messages ---------------------------------------------------------------------------------- */

/* The recipients an own-device copy went to, as far as this device knows. */
typedef struct recips {
  whisper_device_t *devs;
  size_t n;
  char **names;
  size_t n_names;
} recips;

static void recips_free(recips *r) {
  for (size_t i = 0; i < r->n_names; i++) free(r->names[i]);
  free(r->names);
  free(r->devs);
  memset(r, 0, sizeof *r);
}

static int recips_add(whisper_client *c, recips *r, const char *account, uint32_t skip) {
  sy_devlist l;
  int rc = sy_devs_load(c, account, &l);
  if (rc != WHISPER_OK) return rc;
  char **nn = realloc(r->names, (r->n_names + 1) * sizeof *nn);
  if (nn) r->names = nn;
  whisper_device_t *nd = nn ? realloc(r->devs, (r->n + l.n + 1) * sizeof *nd) : NULL;
  if (nd) r->devs = nd;
  char *name = nd ? sy_strdup(account) : NULL;
  if (name == NULL) {
    sy_devs_free(&l);
    return WHISPER_ENOMEM;
  }
  r->names[r->n_names++] = name;
  for (size_t i = 0; i < l.n; i++)
    if (l.d[i].id != skip) r->devs[r->n++] = (whisper_device_t){name, l.d[i].id};
  sy_devs_free(&l);
  return WHISPER_OK;
}

/* (Own devices are not recipients: the server sends no DELIVERED for
 * copies to the sending account.) */
static int own_copy_recipients(whisper_client *c, const char *conv, const uint8_t *gid,
                               recips *r) {
  memset(r, 0, sizeof *r);
  int rc = WHISPER_OK;
  if (gid) {
    sy_group g;
    if ((rc = sy_group_load(c, gid, &g)) != WHISPER_OK) return rc;
    for (size_t i = 0; rc == WHISPER_OK && i < g.n_members; i++)
      if (strcmp(g.members[i], c->account) != 0) rc = recips_add(c, r, g.members[i], 0);
    sy_group_free(&g);
  } else {
    rc = recips_add(c, r, conv, 0);
  }
  if (rc != WHISPER_OK) recips_free(r);
  return rc;
}

/* This account's message from another of its devices: kept as outgoing. */
static int own_copy(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv,
                    const uint8_t *gid, whisper_buf **pt) {
  int rc = gid ? whisper_group_decrypt(c->ctx, d->sender, d->sender_device, d->body.data,
                                       d->body.len, pt)
               : whisper_session_decrypt(c->ctx, d->sender, d->sender_device, (int)d->type,
                                         d->body.data, d->body.len, pt);
  if (rc != WHISPER_OK) return rc;
  recips r;
  rc = own_copy_recipients(c, conv, gid, &r);
  if (rc != WHISPER_OK) return rc;
  whisper_message_t m = {.conversation = conv, .id = d->client_id.data,
                         .id_len = d->client_id.len, .sort_key = d->server_seq,
                         .timestamp_ms = d->server_ts ? d->server_ts : c->now,
                         .body = (*pt)->data, .body_len = (*pt)->len};
  rc = whisper_history_add_outgoing(c->ctx, &m, r.devs, r.n);
  recips_free(&r);
  if (rc == WHISPER_OK)
    rc = whisper_history_sent(c->ctx, conv, d->client_id.data, d->client_id.len, d->server_seq);
  if (rc == WHISPER_OK) rc = sy_outref_put(c, d->client_id.data, conv);
  return rc;
}

static int on_message(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs) {
  char conv[WH_NAME_MAX + 1];
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  whisper_buf *pt = NULL;
  uint32_t content = d->has_content ? d->content : WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  if (!sy_valid_account(d->sender) || d->sender_device == 0 || d->sender_device > INT32_MAX ||
      !d->has_body || !d->has_type || (d->type != 2 && d->type != 3 && d->type != 7) ||
      (content != WHISPER__SYNC__CONTENT__CONTENT_TEXT &&
       content != WHISPER__SYNC__CONTENT__CONTENT_SKDM)) {
    bad_entry(c, d, evs, "a malformed message entry");
    return OUT_DONE;
  }
  int own = strcmp(d->sender, c->account) == 0;
  if (own && d->sender_device == c->device_id) {
    bad_entry(c, d, evs, "a message entry from this very device");
    return OUT_DONE;
  }
  if (content == WHISPER__SYNC__CONTENT__CONTENT_SKDM && d->type != 7) {
    int rc = whisper_group_receive_distribution(c->ctx, d->sender, d->sender_device, (int)d->type,
                                                d->body.data, d->body.len);
    return classify(c, d, d->sender, rc, NULL, evs, 0);
  }
  if (!d->has_client_id || d->client_id.len != WHISPER_CLIENT_ID_LEN) {
    bad_entry(c, d, evs, "a message entry without a client id");
    return OUT_DONE;
  }
  const uint8_t *g = NULL;
  if (d->type == 7) {
    if (!d->has_group_id || d->group_id.len != WHISPER_GROUP_ID_LEN) {
      bad_entry(c, d, evs, "a group message without a group id");
      return OUT_DONE;
    }
    memcpy(gid, d->group_id.data, WHISPER_GROUP_ID_LEN);
    g = gid;
    whisper_client_group_conversation(conv, gid);
  } else if (own) {
    if (!sy_valid_account(d->conversation_to) || strcmp(d->conversation_to, c->account) == 0) {
      bad_entry(c, d, evs, "an own-device copy without its conversation");
      return OUT_DONE;
    }
    strcpy(conv, d->conversation_to);
  } else {
    strcpy(conv, d->sender);
  }
  int rc;
  if (own) {
    rc = own_copy(c, d, conv, g, &pt);
  } else {
    whisper_message_t m = {.conversation = conv, .id = d->client_id.data,
                           .id_len = d->client_id.len, .sort_key = d->server_seq,
                           .timestamp_ms = d->server_ts ? d->server_ts : c->now};
    rc = g ? whisper_group_decrypt_store(c->ctx, d->sender, d->sender_device, d->body.data,
                                         d->body.len, &m, &pt)
           : whisper_session_decrypt_store(c->ctx, d->sender, d->sender_device, (int)d->type,
                                           d->body.data, d->body.len, &m, &pt);
  }
  int out = classify(c, d, conv, rc, pt, evs, 1);
  whisper_buf_free(pt);
  return out;
}

/* --- receipts ------------------------------------------------------------------------------------ */

static int on_receipt(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs) {
  char conv[WH_NAME_MAX + 1];
  if (!sy_valid_account(d->sender) || d->sender_device == 0 || d->sender_device > INT32_MAX ||
      !d->has_status || d->status < WHISPER_STATUS_DELIVERED || d->status > WHISPER_STATUS_READ) {
    bad_entry(c, d, evs, "a malformed receipt entry");
    return OUT_DONE;
  }
  int status = (int)d->status;
  for (size_t i = 0; i < d->n_client_ids; i++) {
    const ProtobufCBinaryData *id = &d->client_ids[i];
    if (id->len != WHISPER_CLIENT_ID_LEN) continue;
    int rc = wh_begin(c->ctx);
    if (rc == WHISPER_OK) rc = wh_finish(c->ctx, sy_outref_get(c, id->data, conv));
    if (rc == WHISPER_ENOTFOUND) continue; /* not a message of this account, or forgotten */
    if (rc != WHISPER_OK) return rc;
    int old = -1;
    rc = whisper_history_status_get(c->ctx, conv, id->data, id->len, d->sender, d->sender_device, &old);
    if (rc == WHISPER_ENOTFOUND) {
      whisper_device_t dev = {d->sender, d->sender_device};
      rc = wh_history_recipients(c->ctx, conv, id->data, id->len, &dev, 1, 0);
      old = -1;
    }
    if (rc == WHISPER_ENOTFOUND) continue;
    if (rc != WHISPER_OK) return rc;
    if (status <= old) continue;
    rc = whisper_history_status(c->ctx, conv, id->data, id->len, d->sender, d->sender_device, status);
    if (rc == WHISPER_ENOTFOUND) continue;
    if (rc != WHISPER_OK) return rc;
    sy_event *e = sy_event_new(c, WHISPER_EV_STATUS);
    if (e && sy_event_set(e, conv, d->sender, id->data, id->len, NULL, 0) == WHISPER_OK) {
      e->ev.from_device = d->sender_device;
      e->ev.status = status;
      e->ev.server_seq = d->server_seq;
      e->ev.server_ts = d->server_ts;
      ev_add(evs, e);
    } else {
      sy_event_free(e);
    }
  }
  return OUT_DONE;
}

/* --- group changes ------------------------------------------------------------------------------- */

static int on_group(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  if (!d->has_group_id || d->group_id.len != WHISPER_GROUP_ID_LEN) {
    bad_entry(c, d, evs, "a group entry without a group id");
    return OUT_DONE;
  }
  const uint8_t *gid = d->group_id.data;
  sy_group g;
  int rc = sy_group_load(c, gid, &g);
  if (rc != WHISPER_OK) return rc;
  char **members = calloc(d->n_members + 1, sizeof *members);
  size_t nm = 0;
  if (members == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < d->n_members; i++) {
    if (!sy_valid_account(d->members[i])) continue;
    int dup = 0;
    for (size_t k = 0; k < nm && !dup; k++) dup = strcmp(members[k], d->members[i]) == 0;
    if (dup) continue;
    if ((members[nm] = sy_strdup(d->members[i])) == NULL) rc = WHISPER_ENOMEM;
    else nm++;
  }
  if (rc != WHISPER_OK) {
    for (size_t k = 0; k < nm; k++) free(members[k]);
    free(members);
    sy_group_free(&g);
    return rc;
  }
  for (size_t i = 0; i < g.n_members; i++) free(g.members[i]);
  free(g.members);
  g.members = members;
  g.n_members = nm;
  g.known = 1;
  g.left = !sy_group_is_member(&g, c->account);
  if (!g.left && d->n_removed > 0) {
    /* someone left: a new sender key, for the members who stay */
    whisper_buf *skdm = NULL;
    rc = whisper_group_rotate(c->ctx, gid, &skdm);
    whisper_buf_free(skdm);
    g.key_gen++;
    for (size_t i = 0; i < g.n_have; i++) free(g.have[i].account);
    g.n_have = 0;
  } else {
    /* only keep the devices of members */
    size_t w = 0;
    for (size_t i = 0; i < g.n_have; i++) {
      if (sy_group_is_member(&g, g.have[i].account)) g.have[w++] = g.have[i];
      else free(g.have[i].account);
    }
    g.n_have = w;
  }
  if (rc == WHISPER_OK) rc = sy_group_save(c, gid, &g);
  sy_group_free(&g);
  if (store_failure(rc)) return rc;
  if (rc != WHISPER_OK) return classify(c, d, NULL, rc, NULL, evs, 0);
  whisper_client_group_conversation(conv, gid);
  ev_add(evs, ev_of(c, WHISPER_EV_GROUP, d, conv, NULL));
  return OUT_DONE;
}

/* --- one entry ----------------------------------------------------------------------------------- */

static int held_next(const whisper_client *c, uint64_t seq, int hold, uint64_t **out, size_t *n) {
  *out = malloc((c->n_held + 1) * sizeof **out);
  if (*out == NULL) return WHISPER_ENOMEM;
  *n = 0;
  for (size_t i = 0; i < c->n_held; i++)
    if (c->held[i] != seq) (*out)[(*n)++] = c->held[i];
  if (hold) (*out)[(*n)++] = seq;
  return WHISPER_OK;
}

int sy_deliver(whisper_client *c, const Whisper__Sync__Deliver *d, int from_memory) {
  (void)from_memory;
  if (c->close_wanted) return WHISPER_OK; /* after a failure: the entries come again */
  uint64_t seq = d->seq;
  if (!is_held(c, seq) && seq <= c->last_seq) return WHISPER_OK; /* done before: acked */
  evlist evs = {NULL, NULL};
  int out = OUT_DONE;
  int rc = WHISPER_OK;
  if (d->kind == WHISPER__SYNC__ENTRY_KIND__ENTRY_RECEIPT) {
    out = on_receipt(c, d, &evs); /* idempotent, in transactions of its own */
    if (out < 0) rc = out;
    if (rc == WHISPER_OK) rc = sy_txn_begin(c);
  } else {
    rc = sy_txn_begin(c);
    if (rc == WHISPER_OK) {
      if (d->kind == WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE) out = on_message(c, d, &evs);
      else if (d->kind == WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP) out = on_group(c, d, &evs);
      else out = OUT_DONE; /* a kind this engine does not know: skipped */
      if (out < 0) {
        rc = sy_txn_end(c, out);
      } else if (!sy_txn_alive(c)) {
        /* the library call failed and rolled back: the progress alone */
        sy_txn_end(c, WHISPER_EINTERNAL);
        rc = sy_txn_begin(c);
      }
    }
  }
  uint64_t *held = NULL;
  size_t n_held = 0;
  uint64_t last = seq > c->last_seq ? seq : c->last_seq;
  if (rc == WHISPER_OK) {
    rc = held_next(c, seq, out == OUT_HOLD, &held, &n_held);
    if (rc == WHISPER_OK)
      rc = sy_state_put(c, c->registered, last, held, n_held, c->upload_first, c->upload_count);
    rc = sy_txn_end(c, rc);
  }
  if (rc != WHISPER_OK) {
    free(held);
    ev_drop(&evs);
    sy_error_event(c, rc, 0, "a mailbox entry could not be stored; it will come again");
    c->close_wanted = 1;
    return rc;
  }
  free(c->held);
  c->held = held;
  c->n_held = n_held;
  c->last_seq = last;
  if (out == OUT_HOLD) held_keep(c, d);
  ev_commit(c, &evs);
  return WHISPER_OK;
}

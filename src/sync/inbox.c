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
 * Nothing the engine decides from is the server's word (trust.c):
 *  - a message is accepted only from a device that its account's signed
 *    list names, with the identity key the list names; from an unknown
 *    device the entry waits while the list is fetched, then is refused;
 *  - its conversation is the one inside the encryption (the Payload): a
 *    group message filed under another group, or a 1:1 message or
 *    own-device copy re-addressed, is refused and filed nowhere;
 *  - a group message only from a member of the engine's own membership;
 *  - membership changes only by a signed change that follows the one held,
 *    by an admin (or a member leaving).
 * A refusal rolls back everything the entry did, raises EV_REFUSED and is
 * acked: the same bytes can never become valid.
 *
 * Outcomes:
 *  - stored (or a duplicate): done, acked;
 *  - waiting (a legacy contact's changed identity key: EV_IDENTITY; or a
 *    device list to fetch first): kept in the store ("h") and acked, so
 *    one untrusted contact never stalls the mailbox; tried again when the
 *    list arrives, on whisper_client_retry() and after each login;
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

enum { OUT_DONE = 1, OUT_HOLD = 2, OUT_REFUSED = 3 };

/* What handling one entry produced. */
typedef struct entry_ctx {
  char fetch[WH_NAME_MAX + 1]; /* OUT_HOLD: the account whose list to fetch ("" none) */
  int retry;                   /* it could not be decrypted: ask its sender again (retry.c) */
  char conv[WH_NAME_MAX + 1];  /* ... filed there */
} entry_ctx;

/* --- the watermark and acks ------------------------------------------------------------------- */

uint64_t sy_watermark(const whisper_client *c) {
  uint64_t w = c->last_seq;
  for (size_t i = 0; i < c->n_held; i++)
    if (c->held[i] - 1 < w) w = c->held[i] - 1;
  return w;
}

/* Handled before: at or below the watermark, or among those above it. */
static int seen(const whisper_client *c, uint64_t seq) {
  if (seq <= c->last_seq) return 1;
  for (size_t i = 0; i < c->n_above; i++)
    if (c->above[i] == seq) return 1;
  return 0;
}

/* The handled set with `seq` added: the watermark moves up over every seq
 * now handled without a gap below it. */
static int handled_next(const whisper_client *c, uint64_t seq, uint64_t *last, uint64_t **above,
                        size_t *n) {
  *last = c->last_seq;
  *n = 0;
  if ((*above = malloc((c->n_above + 1) * sizeof **above)) == NULL) return WHISPER_ENOMEM;
  for (size_t i = 0; i < c->n_above; i++) (*above)[(*n)++] = c->above[i];
  if (seq > *last) (*above)[(*n)++] = seq;
  for (int moved = 1; moved;) {
    moved = 0;
    for (size_t i = 0; i < *n; i++)
      if ((*above)[i] == *last + 1) {
        (*last)++;
        (*above)[i] = (*above)[--*n];
        moved = 1;
        break;
      }
  }
  return WHISPER_OK;
}

static int is_held(const whisper_client *c, uint64_t seq) {
  for (size_t i = 0; i < c->n_held; i++)
    if (c->held[i] == seq) return 1;
  return 0;
}

void sy_ack_flush(whisper_client *c) {
  if (!c->logged_in || c->close_wanted) return;
  if (c->ack_retry_at) {
    if (c->now < c->ack_retry_at) return;
    c->ack_retry_at = 0;
  }
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

/* --- events of one entry ------------------------------------------------------------------------ */

typedef sy_evq evlist; /* the events of one entry, raised once it is committed */

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

/* An error or refusal event with the context's last sentence. */
static sy_event *ev_failed(whisper_client *c, int type, const Whisper__Sync__Deliver *d,
                           const char *conv, int code) {
  sy_event *e = ev_of(c, type, d, conv, NULL);
  if (e) {
    e->ev.code = code;
    e->message = sy_strdup(whisper_ctx_last_error(c->ctx));
  }
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
  ev_add(evs, ev_failed(c, WHISPER_EV_ERROR, d, conv, rc));
  return OUT_DONE;
}

/* Refuses the entry: everything it did is rolled back (sy_deliver). */
static int refuse(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                  const char *conv, int code) {
  ev_add(evs, ev_failed(c, WHISPER_EV_REFUSED, d, conv, code));
  return OUT_REFUSED;
}

static int refuse_why(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                      const char *conv, const char *why) {
  wh_fail(c->ctx, WHISPER_EFORGED, "%s", why);
  return refuse(c, d, evs, conv, WHISPER_EFORGED);
}

/* Whether (account, device) may have sent this: 0 yes; else the outcome
 * (the list is fetched once per connection before a device is refused). */
static int sender_check(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                        entry_ctx *x, const char *account, uint32_t device, const sy_devlist *l) {
  if (sy_list_has(l, device, NULL)) return 0;
  if (!sy_name_has(c->refreshed, account)) {
    snprintf(x->fetch, sizeof x->fetch, "%s", account);
    return OUT_HOLD;
  }
  wh_fail(c->ctx, WHISPER_EFORGED, "device %u of %s is not on the device list its account signed",
          device, account);
  return refuse(c, d, evs, account, WHISPER_EFORGED);
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
                    const uint8_t *gid, const uint8_t *body, size_t len, uint64_t ts,
                    const wh_entry_extra *x) {
  recips r;
  int rc = own_copy_recipients(c, conv, gid, &r);
  if (rc != WHISPER_OK) return rc;
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = conv, .id = d->client_id.data,
                         .id_len = d->client_id.len, .sort_key = d->server_seq,
                         .timestamp_ms = ts, .body = body, .body_len = len};
  rc = wh_history_outgoing_put(c->ctx, &m, r.devs, r.n, x);
  recips_free(&r);
  if (rc == WHISPER_OK)
    rc = whisper_history_sent(c->ctx, conv, d->client_id.data, d->client_id.len, d->server_seq);
  if (rc == WHISPER_OK) rc = sy_outref_put(c, d->client_id.data, conv, 0);
  return rc;
}

static int on_receipt(whisper_client *c, const Whisper__Sync__Deliver *d,
                      const Whisper__E2e__Receipt *r, evlist *evs);

/* The pending receipts, stored with the entry; in a batch, once before
 * its commit. */
static int ops_save(whisper_client *c) {
  if (c->in_batch) {
    c->ops_dirty = 1;
    return WHISPER_OK;
  }
  return sy_ops_save(c);
}

/* --- gaps -------------------------------------------------------------------------------------------- */

#define SY_MAX_MISSING 1000 /* missing numbers remembered per sender device and conversation */

/* A placeholder's id: 'g', the device (4, BE), the number (8, BE). */
static void gap_id(uint8_t id[13], uint32_t device, uint64_t counter) {
  id[0] = 'g';
  wh_be32(id + 1, device);
  for (int i = 0; i < 8; i++) id[5 + i] = (uint8_t)(counter >> (56 - 8 * i));
}

/* Message number `counter` from (sender, device) in `conv`: the first one
 * seen sets where counting starts; one past the last seen + 1 leaves the
 * numbers between missing, each a placeholder in history (EV_GAP); one
 * that was missing takes its placeholder's place. Inside the entry's
 * transaction. */
static int gap_check(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv,
                     uint64_t counter, evlist *evs) {
  int rc;
  Whisper__Client__SeenCounter *seen = sy_seen_load(c, d->sender, d->sender_device, conv, &rc);
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__SeenCounter fresh = WHISPER__CLIENT__SEEN_COUNTER__INIT;
  uint64_t last = seen ? seen->last : 0;
  size_t nm = seen ? seen->n_missing : 0, nn = 0;
  Whisper__Client__Missing *add = NULL, **miss = NULL;
  uint64_t gap = counter > last + 1 && seen ? counter - last - 1 : 0;
  if (gap) { /* those it could not decrypt show already ("message-waiting") */
    size_t waiting = sy_waiting_count(c, d->sender, d->sender_device, conv);
    last += waiting < gap ? waiting : gap;
    gap -= waiting < gap ? waiting : gap;
  }
  size_t n_add = gap > SY_MAX_MISSING ? SY_MAX_MISSING : (size_t)gap;
  if ((miss = calloc(nm + n_add + 1, sizeof *miss)) == NULL ||
      (add = calloc(n_add + 1, sizeof *add)) == NULL)
    rc = WHISPER_ENOMEM;
  uint8_t id[13];
  for (size_t i = 0; rc == WHISPER_OK && i < nm; i++) {
    if (seen->missing[i]->counter == counter) { /* it came after all */
      gap_id(id, d->sender_device, counter);
      rc = wh_history_incoming_del(c->ctx, conv, id, sizeof id, seen->missing[i]->sort_key);
    } else {
      miss[nn++] = seen->missing[i];
    }
  }
  uint64_t at = d->server_seq ? d->server_seq - 1 : 0; /* just before the message that shows it */
  for (size_t i = 0; rc == WHISPER_OK && i < n_add; i++) {
    uint64_t k = counter - n_add + i;
    whisper__client__missing__init(&add[i]);
    add[i].has_counter = add[i].has_sort_key = 1;
    add[i].counter = k;
    add[i].sort_key = at;
    miss[nn++] = &add[i];
    gap_id(id, d->sender_device, k);
    whisper_message_t m = {.size = sizeof(whisper_message_t),
                           .conversation = conv, .id = id, .id_len = sizeof id, .sort_key = at,
                           .timestamp_ms = c->now};
    rc = wh_history_incoming_put(c->ctx, &m, d->sender, d->sender_device,
                                 (const uint8_t *)"message-missing", 15);
  }
  if (nn > SY_MAX_MISSING) { /* the oldest are forgotten (their placeholders stay) */
    memmove(miss, miss + (nn - SY_MAX_MISSING), SY_MAX_MISSING * sizeof *miss);
    nn = SY_MAX_MISSING;
  }
  if (rc == WHISPER_OK) {
    fresh.has_last = 1;
    fresh.last = counter > last ? counter : last;
    fresh.n_missing = nn;
    fresh.missing = miss;
    rc = sy_seen_save(c, d->sender, d->sender_device, conv, &fresh);
  }
  if (rc == WHISPER_OK && gap) {
    sy_event *e = ev_of(c, WHISPER_EV_GAP, d, conv, NULL);
    if (e) e->ev.status = gap > INT32_MAX ? INT32_MAX : (int)gap; /* id: the message that showed it */
    ev_add(evs, e);
  }
  free(add);
  free(miss);
  if (seen) whisper__client__seen_counter__free_unpacked(seen, &wh_pb_alloc);
  return rc;
}

/* The library's answer for the sender's session or sender key. */
static int decrypt_failed(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                          entry_ctx *x, const char *conv, const sy_devlist *l, int rc) {
  if (rc == WHISPER_EUNTRUSTED && l->authed) {
    /* not the key the signed list names: a newer list, or a forgery */
    if (!sy_name_has(c->refreshed, d->sender)) {
      snprintf(x->fetch, sizeof x->fetch, "%s", d->sender);
      return OUT_HOLD;
    }
    return refuse(c, d, evs, conv, WHISPER_EFORGED);
  }
  /* a message that cannot be decrypted: asked for again (after the
   * rollback of what the failed call did, handle()) */
  int content = d->has_content ? (int)d->content : WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  /* (a key the session used already, for a message id history has not
   * seen: the sender reused it, from a restored store; asked for again) */
  if ((rc == WHISPER_EINVALIDMSG || rc == WHISPER_ENOSESSION || rc == WHISPER_ETOOFAR ||
       rc == WHISPER_EINVALIDSIG || rc == WHISPER_EDUPLICATE) &&
      (content == WHISPER__SYNC__CONTENT__CONTENT_MESSAGE || content == WHISPER__SYNC__CONTENT__CONTENT_TEXT) &&
      d->has_client_id && d->client_id.len == WHISPER_CLIENT_ID_LEN &&
      strcmp(conv, c->account) != 0) { /* (this account's settings: no placeholder for them) */
    x->retry = 1;
    snprintf(x->conv, sizeof x->conv, "%s", conv);
    return OUT_DONE;
  }
  return classify(c, d, conv, rc, NULL, evs, 0);
}

/* --- content ------------------------------------------------------------------------------------------ */

static int set_target(sy_event *e, const uint8_t *id, size_t len, const char *sender) {
  if (e == NULL) return WHISPER_ENOMEM;
  if ((e->target_id = malloc(len ? len : 1)) == NULL) return WHISPER_ENOMEM;
  if (len) memcpy(e->target_id, id, len);
  e->ev.target_id_len = len;
  if (sender && (e->target_sender = sy_strdup(sender)) == NULL) return WHISPER_ENOMEM;
  return WHISPER_OK;
}

/* A message whose Payload carries content (content.c): a text, kept and
 * shown; an operation on a message of the conversation, applied (or kept
 * until its message comes); call signalling, an event; a kind of a newer
 * version, kept as unsupported. The sender is the one the session
 * authenticated: an edit or delete names its target by id among the
 * sender's own messages only. */
static int on_content(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv,
                      const uint8_t *g, int own, whisper_message_t *m, const Whisper__E2e__Payload *p,
                      evlist *evs) {
  Whisper__E2e__Content *ct = sy_content_parse(p->content.data, p->content.len);
  if (ct == NULL) {
    bad_entry(c, d, evs, "a message with malformed content");
    return OUT_DONE;
  }
  int rc = WHISPER_OK, out = OUT_DONE;
  if (strcmp(conv, c->account) == 0 && ct->kind != WHISPER__E2E__CONTENT__KIND__SETTINGS &&
      ct->kind != WHISPER__E2E__CONTENT__KIND__PROFILE_KEY &&
      ct->kind != WHISPER__E2E__CONTENT__KIND__BLOCK && ct->kind != WHISPER__E2E__CONTENT__KIND__OPENED) {
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    return refuse_why(c, d, evs, conv, "only settings, the profile key, the block list and view-once "
                                       "openings go to oneself");
  }
  /* when its author made it: an edit made offline goes out later */
  uint64_t at = ct->at_ms ? ct->at_ms : p->sent_at_ms ? p->sent_at_ms : m->timestamp_ms;
  sy_event *e = NULL;
  switch (ct->kind) {
  case WHISPER__E2E__CONTENT__KIND__REACTION:
  case WHISPER__E2E__CONTENT__KIND__EDIT:
  case WHISPER__E2E__CONTENT__KIND__DELETE: {
    const char *ts = ct->target->sender ? ct->target->sender : d->sender;
    if (ct->kind != WHISPER__E2E__CONTENT__KIND__REACTION && strcmp(ts, d->sender) != 0) {
      out = refuse_why(c, d, evs, conv, "an edit or delete of another account's message");
      break;
    }
    int edit = ct->kind == WHISPER__E2E__CONTENT__KIND__EDIT;
    int react = ct->kind == WHISPER__E2E__CONTENT__KIND__REACTION;
    const char *text = edit ? ct->text : react ? ct->emoji : "";
    wh_history_op op = {edit ? WH_OP_EDIT : react ? WH_OP_REACT : WH_OP_DELETE, d->sender, at,
                        (const uint8_t *)text, strlen(text),
                        edit ? WHISPER_EDIT_WINDOW_MS : react ? 0 : c->cfg.delete_window_ms};
    int pending = 0;
    rc = wh_history_apply(c->ctx, conv, sy_local_sender(c, ts), ct->target->id.data, ct->target->id.len, &op,
                          &pending);
    if (rc == WHISPER_EDENIED) {
      out = refuse(c, d, evs, conv, rc);
      rc = WHISPER_OK;
      break;
    }
    if (rc != WHISPER_OK || pending) break; /* applied when its message comes */
    whisper_buf shown = {.data = (uint8_t *)text, .len = strlen(text)};
    e = ev_of(c, edit ? WHISPER_EV_EDITED : react ? WHISPER_EV_REACTION : WHISPER_EV_DELETED, d, conv,
              &shown);
    if (set_target(e, ct->target->id.data, ct->target->id.len, sy_local_sender(c, ts)) != WHISPER_OK) {
      sy_event_free(e);
      e = NULL;
    }
    ev_add(evs, e);
    break;
  }
  case WHISPER__E2E__CONTENT__KIND__CALL: {
    whisper_buf data = {.data = ct->call->data.data, .len = ct->call->data.len};
    e = ev_of(c, WHISPER_EV_CALL, d, conv, &data);
    if (e) {
      e->ev.status = (int)ct->call->type;
      memcpy(e->id, ct->call->call_id.data, WHISPER_CALL_ID_LEN); /* client ids are as long */
    }
    ev_add(evs, e);
    break;
  }
  case WHISPER__E2E__CONTENT__KIND__SETTINGS: {
    /* only from another device of this account, to itself */
    if (!own || strcmp(conv, c->account) != 0 || ct->settings == NULL) {
      out = refuse_why(c, d, evs, conv, "conversation settings from another account");
      break;
    }
    int took = sy_settings_receive(c, ct->settings);
    if (took == WHISPER_EINVAL) {
      bad_entry(c, d, evs, "malformed conversation settings");
      break;
    }
    if (took < 0) {
      rc = took;
      break;
    }
    if (took) ev_add(evs, ev_of(c, WHISPER_EV_SETTINGS, d, ct->settings->conversation, NULL));
    break;
  }
  case WHISPER__E2E__CONTENT__KIND__PROFILE_KEY: { /* profile.c */
    int took = sy_profile_key_receive(c, d->sender, conv, g != NULL, own, ct);
    if (took == WHISPER_EFORGED) out = refuse(c, d, evs, conv, took);
    else if (took == WHISPER_EINVALIDMSG) bad_entry(c, d, evs, "a malformed profile key");
    else if (took < 0) rc = took;
    break;
  }
  case WHISPER__E2E__CONTENT__KIND__OPENED: /* a view-once attachment opened (media.c) */
    if (!own || strcmp(conv, c->account) != 0) {
      out = refuse_why(c, d, evs, conv, "a view-once opening from another account");
      break;
    }
    rc = sy_media_opened_receive(c, ct);
    if (rc == WHISPER_EINVAL) {
      bad_entry(c, d, evs, "a malformed view-once opening");
      rc = WHISPER_OK;
    }
    break;
  case WHISPER__E2E__CONTENT__KIND__BLOCK: /* the block list, as settings (block.c) */
    if (!own || strcmp(conv, c->account) != 0) {
      out = refuse_why(c, d, evs, conv, "a block list from another account");
      break;
    }
    rc = sy_block_receive(c, ct->block, evs);
    break;
  default: { /* a text, or a kind of a newer version: kept as it came */
    int text = ct->kind == WHISPER__E2E__CONTENT__KIND__TEXT;
    int att = ct->kind == WHISPER__E2E__CONTENT__KIND__ATTACHMENT; /* media.c reads its pointer */
    wh_entry_extra x = {.kind = text  ? WHISPER_KIND_TEXT
                                : att ? WHISPER_KIND_ATTACHMENT
                                      : WHISPER_KIND_UNSUPPORTED,
                        .forwarded = text || att ? ct->forwarded : 0};
    const char *qs = NULL;
    if (!text) {
      x.content = p->content.data;
      x.content_len = p->content.len;
    } else if (ct->quote) {
      qs = sy_local_sender(c, ct->quote->sender ? ct->quote->sender : d->sender);
      x.quote_id = ct->quote->id.data;
      x.quote_id_len = ct->quote->id.len;
      x.quote_sender = qs;
      x.quote_excerpt = ct->quote->excerpt ? ct->quote->excerpt : "";
    }
    const char *caption = att && ct->attachment->caption ? ct->attachment->caption : "";
    const uint8_t *body = text ? (const uint8_t *)ct->text : att ? (const uint8_t *)caption : NULL;
    size_t len = text ? strlen(ct->text) : att ? strlen(caption) : 0;
    rc = own ? own_copy(c, d, conv, g, body, len, m->timestamp_ms, &x)
             : wh_history_incoming_put_ex(c->ctx, m, d->sender, d->sender_device, body, len, &x);
    if (rc == WHISPER_OK && own && att) rc = sy_media_seen_put(c, ct->attachment); /* the account's */
    if (rc == WHISPER_OK && !own && c->cfg.delivery_receipts &&
        (rc = sy_receipt_add(c, d->sender, WHISPER_STATUS_DELIVERED,
                             (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])d->client_id.data, 1)) == WHISPER_OK)
      rc = ops_save(c);
    if (rc != WHISPER_OK) break;
    whisper_buf shown = {.data = (uint8_t *)body, .len = len};
    e = ev_of(c, WHISPER_EV_MESSAGE, d, conv, &shown);
    if (e) {
      e->ev.kind = x.kind;
      e->ev.forwarded = x.forwarded;
      if (x.quote_id && set_target(e, x.quote_id, x.quote_id_len, qs) != WHISPER_OK) {
        sy_event_free(e);
        e = NULL;
      }
    }
    ev_add(evs, e);
    break;
  }
  }
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  return rc == WHISPER_OK ? out : classify(c, d, conv, rc, NULL, evs, 0);
}

static int on_message(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                      entry_ctx *x) {
  char conv[WH_NAME_MAX + 1];
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  uint32_t content = d->has_content ? d->content : WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  if (!wh_account_ok(d->sender) || !wh_device_id_ok(d->sender_device) ||
      !d->has_body || !d->has_type || (d->type != 2 && d->type != 3 && d->type != 7 && d->type != 8) ||
      content < WHISPER__SYNC__CONTENT__CONTENT_TEXT || content > WHISPER__SYNC__CONTENT__CONTENT_RETRY ||
      (content == WHISPER__SYNC__CONTENT__CONTENT_RECEIPT && d->type == 7) ||
      ((content == WHISPER__SYNC__CONTENT__CONTENT_RETRY) != (d->type == 8))) {
    bad_entry(c, d, evs, "a malformed message entry");
    return OUT_DONE;
  }
  int receipt = content == WHISPER__SYNC__CONTENT__CONTENT_RECEIPT;
  int own = strcmp(d->sender, c->account) == 0;
  if (own && d->sender_device == c->device_id) {
    bad_entry(c, d, evs, "a message entry from this very device");
    return OUT_DONE;
  }
  /* a blocked account's messages and receipts: dropped unread, acked (block.c) */
  if (sy_block_drops(c, d)) return OUT_DONE;
  sy_devlist sl;
  int rc = sy_devs_load(c, d->sender, &sl);
  if (rc != WHISPER_OK) return rc;
  /* Migration: a member of a group from before signed changes whose devices
   * this device never listed (the old engine listed only whom it sent to,
   * so a member it only received from has no stored list) is a contact
   * from before too: the server's word for its devices until its signed
   * list comes, as for the others. Without this, its group messages sent
   * by the old code and still on the server (no e2e.Payload), and those it
   * sends before it signs a list, were refused (tests/unit/
   * test_migration_sync.c, "carol in flight"). Kept with the entry's
   * transaction: a refused entry leaves no trace of it. */
  if (!sl.known && !own && d->type == 7 && d->has_group_id && d->group_id.len == WHISPER_GROUP_ID_LEN) {
    sy_group lg;
    if ((rc = sy_group_load(c, d->group_id.data, &lg)) != WHISPER_OK) return rc;
    if (lg.known && lg.legacy && lg.version == 0 && !lg.left && sy_group_is_member(&lg, d->sender)) {
      sl.known = sl.legacy = 1;
      rc = sy_devs_save(c, d->sender, &sl);
    }
    sy_group_free(&lg);
    if (rc != WHISPER_OK) {
      sy_devs_free(&sl);
      return rc;
    }
  }
  int out = sender_check(c, d, evs, x, d->sender, d->sender_device, &sl);
  if (out) goto done;
  if (content == WHISPER__SYNC__CONTENT__CONTENT_RETRY) { /* plaintext: checked, not decrypted */
    rc = sy_retry_answer(c, d, evs);
    out = rc == WHISPER_OK ? OUT_DONE : rc;
    goto done;
  }
  if (content == WHISPER__SYNC__CONTENT__CONTENT_SKDM && d->type != 7) {
    rc = whisper_sender_key_receive_distribution(c->ctx, d->sender, d->sender_device, (int)d->type,
                                            d->body.data, d->body.len);
    out = rc == WHISPER_OK ? OUT_DONE : decrypt_failed(c, d, evs, x, d->sender, &sl, rc);
    goto done;
  }
  if (!d->has_client_id || d->client_id.len != WHISPER_CLIENT_ID_LEN) {
    bad_entry(c, d, evs, "a message entry without a client id");
    out = OUT_DONE;
    goto done;
  }
  const uint8_t *g = NULL;
  if (d->type == 7) {
    if (!d->has_group_id || d->group_id.len != WHISPER_GROUP_ID_LEN) {
      bad_entry(c, d, evs, "a group message without a group id");
      out = OUT_DONE;
      goto done;
    }
    memcpy(gid, d->group_id.data, WHISPER_GROUP_ID_LEN);
    g = gid;
    whisper_client_group_conversation(gid, conv);
  } else if (own) {
    if (!wh_account_ok(d->conversation_to)) {
      bad_entry(c, d, evs, "an own-device copy without its conversation");
      out = OUT_DONE;
      goto done;
    }
    strcpy(conv, d->conversation_to);
  } else {
    strcpy(conv, d->sender);
  }
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = conv, .id = d->client_id.data, .id_len = d->client_id.len,
                         .sort_key = d->server_seq, .timestamp_ms = d->server_ts ? d->server_ts : c->now};
  if (!own && !receipt && (rc = wh_history_incoming_check(c->ctx, &m)) != WHISPER_OK) {
    out = classify(c, d, conv, rc, NULL, evs, 0);
    goto done;
  }
  whisper_buf *pt = NULL;
  rc = g ? whisper_sender_key_decrypt(c->ctx, d->sender, d->sender_device, d->body.data, d->body.len, &pt)
         : whisper_session_decrypt(c->ctx, d->sender, d->sender_device, (int)d->type, d->body.data,
                                   d->body.len, &pt);
  if (rc != WHISPER_OK) {
    out = decrypt_failed(c, d, evs, x, conv, &sl, rc);
    goto done;
  }
  /* the conversation as the sender encrypted it */
  Whisper__E2e__Payload *p = sy_payload_parse(pt->data, pt->len);
  const uint8_t *body = pt->data;
  size_t body_len = pt->len;
  if (p) {
    body = p->body.data;
    body_len = p->body.len;
    if (p->sent_at_ms) m.timestamp_ms = p->sent_at_ms;
  }
  /* a message this device asked for again: in its placeholder's place
   * (a group message comes back through the 1:1 session) */
  Whisper__Client__Waiting *w = NULL;
  if (!receipt && rc == WHISPER_OK) w = sy_waiting_get(c, d->client_id.data, &rc);
  if ((w && w->has_device && w->device == 0) || (w == NULL && p && p->resend)) {
    /* a second copy of one that took its place, or one this device never
     * asked for (a retry request the server made up): nothing to show */
    whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
    if (p) whisper__e2e__payload__free_unpacked(p, &wh_pb_alloc);
    whisper_buf_free(pt);
    out = OUT_DONE;
    goto done;
  }
  if (w && !g && p && p->has_group_id && p->group_id.len == WHISPER_GROUP_ID_LEN) {
    char gconv[WHISPER_GROUP_CONVERSATION_LEN + 1];
    whisper_client_group_conversation(p->group_id.data, gconv);
    if (strcmp(gconv, w->conversation) == 0) {
      memcpy(gid, p->group_id.data, WHISPER_GROUP_ID_LEN);
      g = gid;
      strcpy(conv, gconv);
    }
  }
  if (w && strcmp(w->conversation, conv) == 0) {
    m.conversation = conv;
    m.sort_key = w->sort_key;
    rc = sy_waiting_done(c, d->client_id.data, w);
  }
  if (w) whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
  const char *why = NULL;
  if (receipt && (p == NULL || p->receipt == NULL))
    why = "a receipt without its receipt inside the encryption";
  else if (!receipt && p && p->receipt)
    why = "a receipt delivered as a message";
  else if (p == NULL && !(sl.legacy && !sl.authed))
    why = "a message without its conversation inside the encryption";
  else if (p && g && (!p->has_group_id || memcmp(p->group_id.data, g, WHISPER_GROUP_ID_LEN) != 0))
    why = "a group message delivered under another conversation";
  else if (p && !g && (p->to == NULL || strcmp(p->to, own ? conv : c->account) != 0))
    why = "a message delivered under another conversation";
  else if (p && p->has_id &&
           (p->id.len != d->client_id.len || memcmp(p->id.data, d->client_id.data, p->id.len) != 0))
    why = "a message delivered under another id than its sender gave it";
  else if (own && !g && strcmp(conv, c->account) == 0 && !(p && p->has_content))
    why = "a message to oneself that is not content"; /* (settings, from another device) */
  if (why == NULL && g) {
    sy_group gs;
    if ((rc = sy_group_load(c, g, &gs)) == WHISPER_OK) {
      why = sy_group_sender_why(&gs, d->sender); /* a member; an admin where only admins send */
      sy_group_free(&gs);
    }
  }
  if (rc == WHISPER_OK && why) {
    out = refuse_why(c, d, evs, conv, why);
  } else if (rc == WHISPER_OK && receipt) {
    out = on_receipt(c, d, p->receipt, evs);
  } else if (rc == WHISPER_OK && p && p->has_content) {
    if (p->has_counter && p->counter) rc = gap_check(c, d, conv, p->counter, evs);
    out = rc == WHISPER_OK ? on_content(c, d, conv, g, own, &m, p, evs) : classify(c, d, conv, rc, NULL, evs, 0);
  } else if (rc == WHISPER_OK) {
    if (p && p->has_counter && p->counter) rc = gap_check(c, d, conv, p->counter, evs);
    if (rc == WHISPER_OK)
      rc = own ? own_copy(c, d, conv, g, body, body_len, m.timestamp_ms, NULL)
               : wh_history_incoming_put_ex(c->ctx, &m, d->sender, d->sender_device, body, body_len,
                                            &(wh_entry_extra){.kind = WHISPER_KIND_TEXT});
    /* DELIVERED, end to end, stored with the message */
    if (rc == WHISPER_OK && !own && c->cfg.delivery_receipts &&
        (rc = sy_receipt_add(c, d->sender, WHISPER_STATUS_DELIVERED,
                             (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])d->client_id.data, 1)) == WHISPER_OK)
      rc = ops_save(c);
    if (rc == WHISPER_OK) {
      whisper_buf shown = {.data = (uint8_t *)body, .len = body_len};
      out = classify(c, d, conv, rc, &shown, evs, 1);
    } else {
      out = classify(c, d, conv, rc, NULL, evs, 0);
    }
  } else {
    out = rc;
  }
  if (p) whisper__e2e__payload__free_unpacked(p, &wh_pb_alloc);
  whisper_buf_free(pt);
done:
  sy_devs_free(&sl);
  return out;
}

/* --- receipts ------------------------------------------------------------------------------------ */

/* Whether `account` takes part in conversation `conv` (its peer, or a
 * member of the group as this device holds it). */
int sy_may_receive(whisper_client *c, const char *conv, const char *account) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (!wh_group_conv_parse(conv, gid)) return strcmp(conv, account) == 0;
  sy_group g;
  if (sy_group_load(c, gid, &g) != WHISPER_OK) return 0;
  int yes = g.known && sy_group_is_member(&g, account);
  sy_group_free(&g);
  return yes;
}

/* An end-to-end receipt from (sender, device), a device its account's
 * signed list names (checked before): ticks move only for messages of this
 * account in a conversation with that account. Inside the entry's
 * transaction. */
static int on_receipt(whisper_client *c, const Whisper__Sync__Deliver *d,
                      const Whisper__E2e__Receipt *r, evlist *evs) {
  char conv[WH_NAME_MAX + 1];
  if (!r->has_status || r->status < WHISPER_STATUS_DELIVERED ||
      (r->status > WHISPER_STATUS_READ && r->status != WHISPER_STATUS_OPENED)) {
    bad_entry(c, d, evs, "a malformed receipt");
    return OUT_DONE;
  }
  if (strcmp(d->sender, c->account) == 0) return OUT_DONE; /* another of this account's devices */
  int status = (int)r->status, strangers = 0;
  for (size_t i = 0; i < r->n_ids; i++) {
    const ProtobufCBinaryData *id = &r->ids[i];
    if (id->len != WHISPER_CLIENT_ID_LEN) continue;
    int rc = sy_outref_get(c, id->data, conv);
    if (rc == WHISPER_ENOTFOUND) continue; /* not a message of this account, or forgotten */
    int old = -1;
    if (rc == WHISPER_OK)
      rc = whisper_history_status_get(c->ctx, conv, id->data, id->len, d->sender, d->sender_device, &old);
    if (rc == WHISPER_ENOTFOUND) {
      /* not recorded as a recipient (an own-device copy, or a device this
       * one did not know of): a device of the conversation's peer, or of
       * a member of the group, could have been one */
      if (!sy_may_receive(c, conv, d->sender)) {
        strangers++;
        continue;
      }
      whisper_device_t dev = {d->sender, d->sender_device};
      rc = wh_history_recipients(c->ctx, conv, id->data, id->len, &dev, 1, 0);
      old = -1;
    }
    if (rc != WHISPER_OK) return rc;
    if (status <= old && old != WHISPER_STATUS_FAILED) continue; /* DELIVERED replaces FAILED */
    rc = whisper_history_status_set(c->ctx, conv, id->data, id->len, d->sender, d->sender_device, status);
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
  if (strangers) {
    wh_fail(c->ctx, WHISPER_EFORGED, "a receipt from %s.%u for %d message%s it was not a recipient of",
            d->sender, d->sender_device, strangers, strangers == 1 ? "" : "s");
    ev_add(evs, ev_failed(c, WHISPER_EV_REFUSED, d, d->sender, WHISPER_EFORGED));
  }
  return OUT_DONE;
}

/* --- group changes ------------------------------------------------------------------------------- */

static int same_names(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++) {
    int found = 0;
    for (size_t k = 0; k < nb && !found; k++) found = strcmp(a[i], b[k]) == 0;
    if (!found) return 0;
  }
  return 1;
}

/* EV_GROUP for a change: from its author (signed, not the server's
 * sender), status what it changed. */
static sy_event *group_ev(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv,
                          const char *author, uint32_t device, int status) {
  sy_event *e = ev_of(c, WHISPER_EV_GROUP, d, conv, NULL);
  if (e == NULL) return NULL;
  char *a = sy_strdup(author);
  if (a == NULL) {
    sy_event_free(e);
    return NULL;
  }
  free(e->from);
  e->from = a;
  e->ev.from_device = device;
  e->ev.status = status;
  return e;
}

/* A request to join by invite link, for a group that needs an admin's
 * approval (Deliver.join_request): kept for the app if an admin of the
 * group holds it and the requester's device and the link's key signed it. */
static int on_join_request(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs,
                           entry_ctx *x, const uint8_t *gid, const char *conv) {
  sy_change ch;
  int rc = sy_change_parse(c, gid, d->join_request.data, d->join_request.len, &ch);
  if (rc != WHISPER_OK) return rc == WHISPER_ENOMEM ? rc : refuse(c, d, evs, conv, rc);
  sy_group g;
  sy_devlist al;
  memset(&al, 0, sizeof al);
  int out = OUT_DONE, ignore = 0;
  if ((rc = sy_group_load(c, gid, &g)) != WHISPER_OK) {
    sy_change_free(&ch);
    return rc;
  }
  const char *why = sy_group_request_why(c, &g, &ch, &ignore);
  if (ignore) goto out;
  if (why) {
    out = refuse_why(c, d, evs, conv, why);
    goto out;
  }
  if ((rc = sy_devs_load(c, ch.b->author, &al)) != WHISPER_OK) goto out;
  if ((out = sender_check(c, d, evs, x, ch.b->author, ch.b->author_device, &al)) != 0) goto out;
  if ((rc = sy_change_verify(c, &ch, &al)) != WHISPER_OK) {
    out = rc == WHISPER_ENOMEM ? rc : refuse(c, d, evs, conv, rc);
    rc = WHISPER_OK;
    goto out;
  }
  out = OUT_DONE;
  if ((rc = sy_group_request_add(&g, ch.b->author)) == WHISPER_OK) rc = sy_group_save(c, gid, &g);
  if (rc == WHISPER_OK)
    ev_add(evs, group_ev(c, d, conv, ch.b->author, ch.b->author_device, WHISPER_GROUP_JOIN_REQUEST));
out:
  sy_devs_free(&al);
  sy_group_free(&g);
  sy_change_free(&ch);
  return rc != WHISPER_OK ? rc : out;
}

static int on_group(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs, entry_ctx *x) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  if (!d->has_group_id || d->group_id.len != WHISPER_GROUP_ID_LEN) {
    bad_entry(c, d, evs, "a group entry without a group id");
    return OUT_DONE;
  }
  const uint8_t *gid = d->group_id.data;
  whisper_client_group_conversation(gid, conv);
  if (!d->has_group_change && d->has_join_request) return on_join_request(c, d, evs, x, gid, conv);
  if (!d->has_group_change)
    return refuse_why(c, d, evs, conv, "a membership change that no member signed");
  sy_change ch;
  int rc = sy_change_parse(c, gid, d->group_change.data, d->group_change.len, &ch);
  if (rc != WHISPER_OK) return refuse(c, d, evs, conv, rc);
  sy_group g;
  sy_devlist al;
  memset(&al, 0, sizeof al);
  int out = OUT_DONE;
  if ((rc = sy_group_load(c, gid, &g)) != WHISPER_OK) {
    sy_change_free(&ch);
    return rc;
  }
  if (g.version && memcmp(g.hash, ch.hash, 32) == 0) { /* the one applied already (our own) */
    ev_add(evs, group_ev(c, d, conv, ch.b->author, ch.b->author_device, (int)g.changed));
    goto out;
  }
  /* who may make which change: groups.c */
  const char *why = NULL;
  if ((rc = sy_group_change_why(c, &g, &ch, &why)) != WHISPER_OK) goto out;
  if (why) {
    out = refuse_why(c, d, evs, conv, why);
    goto out;
  }
  if ((rc = sy_devs_load(c, ch.b->author, &al)) != WHISPER_OK) goto out;
  if ((out = sender_check(c, d, evs, x, ch.b->author, ch.b->author_device, &al)) != 0) goto out;
  if ((rc = sy_change_verify(c, &ch, &al)) != WHISPER_OK) {
    out = rc == WHISPER_ENOMEM ? rc : refuse(c, d, evs, conv, rc);
    goto out;
  }
  /* apply: who left, then the new membership */
  int removed = sy_group_removes(&g, ch.b);
  if (removed < 0) {
    rc = removed;
    goto out;
  }
  int bits = sy_group_take(c, &g, ch.b); /* members, admins, info, settings, link */
  if (bits < 0) {
    rc = bits;
    goto out;
  }
  g.known = 1;
  g.legacy = 0;
  g.version = ch.b->version;
  memcpy(g.hash, ch.hash, 32);
  g.left = !sy_group_is_member(&g, c->account);
  if (!g.left && removed) {
    /* someone left: a new sender key, for the members who stay */
    whisper_buf *skdm = NULL;
    rc = whisper_sender_key_rotate(c->ctx, gid, &skdm);
    whisper_buf_free(skdm);
    g.key_gen++;
    for (size_t i = 0; i < g.n_have; i++) free(g.have[i].account);
    g.n_have = 0;
  } else {
    size_t w = 0; /* only keep the devices of members */
    for (size_t i = 0; i < g.n_have; i++) {
      if (sy_group_is_member(&g, g.have[i].account)) g.have[w++] = g.have[i];
      else free(g.have[i].account);
    }
    g.n_have = w;
  }
  if (rc == WHISPER_OK) rc = sy_group_save(c, gid, &g);
  if (rc == WHISPER_OK) ev_add(evs, group_ev(c, d, conv, ch.b->author, ch.b->author_device, bits));
  if (rc == WHISPER_OK && d->n_members && !same_names(d->members, d->n_members, g.members, g.n_members)) {
    /* the server routes by its own list: said, and not used */
    wh_fail(c->ctx, WHISPER_EFORGED, "the server's member list of the group is not its signed membership");
    ev_add(evs, ev_failed(c, WHISPER_EV_REFUSED, d, conv, WHISPER_EFORGED));
  }
  else if (!store_failure(rc)) out = classify(c, d, NULL, rc, NULL, evs, 0), rc = WHISPER_OK;
out:
  sy_devs_free(&al);
  sy_group_free(&g);
  sy_change_free(&ch);
  return rc != WHISPER_OK && store_failure(rc) ? rc : out;
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

/* Handles one entry inside a transaction it begins; on return with
 * WHISPER_OK the transaction is open (and holds what the entry did, unless
 * it was refused or failed: then only what follows). */
/* What one entry does, inside the caller's transaction: its outcome or a
 * store error. */
static int entry_work(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs, entry_ctx *x) {
  x->fetch[0] = '\0';
  x->retry = 0;
  /* ENTRY_RECEIPT is the server's word: ticks come only end to end */
  if (d->kind == WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE) return on_message(c, d, evs, x);
  if (d->kind == WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP) return on_group(c, d, evs, x);
  return OUT_DONE; /* a kind this engine does not know: skipped */
}

static int handle(whisper_client *c, const Whisper__Sync__Deliver *d, evlist *evs, entry_ctx *x,
                  int *out) {
  int rc = WHISPER_OK;
  *out = OUT_DONE;
  if ((rc = sy_txn_begin(c)) != WHISPER_OK) return rc;
  /* the entry's work in a level of its own (a savepoint, the library's
   * calls joined to it plain), so that it can be undone alone */
  int alone = wh_txn_has_savepoints(c->ctx->store);
  if (alone && (rc = wh_begin_flags(c->ctx, WH_TXN_SAVEPOINT | WH_TXN_PLAIN)) != WHISPER_OK) {
    sy_txn_end(c, rc);
    return rc;
  }
  *out = entry_work(c, d, evs, x);
  if (*out < 0) return sy_txn_end(c, *out);
  if (*out == OUT_REFUSED || *out == OUT_HOLD || !sy_txn_alive(c)) {
    /* nothing of it is kept (a refused or waiting entry, or a library
     * call that failed): the progress alone, in the same transaction
     * (without savepoints: in a new one) */
    if (alone) {
      wh_rollback(c->ctx);
    } else {
      sy_txn_end(c, WHISPER_EFORGED);
      if ((rc = sy_txn_begin(c)) != WHISPER_OK) return rc;
    }
  } else if (alone && (rc = wh_commit(c->ctx)) != WHISPER_OK) {
    sy_txn_end(c, rc);
    return rc;
  }
  /* it could not be decrypted: its placeholder, and its sender asked */
  if (x->retry && (rc = sy_retry_ask(c, d, x->conv, evs)) != WHISPER_OK) {
    sy_txn_end(c, rc);
    return rc;
  }
  return WHISPER_OK;
}

/* Asks for an account's device list so that waiting entries can go on. */
static void fetch_list(whisper_client *c, const char *account) {
  if (!c->logged_in || sy_name_has(c->fetching, account)) return;
  if (sy_list_request(c, account) == NULL) return;
  sy_name_add(&c->fetching, account);
}

/* Adds a packed entry to the waiting set, inside the transaction. */
static int hold(whisper_client *c, const Whisper__Sync__Deliver *d) {
  sy_heldset h;
  int rc = sy_held_read(c, &h);
  if (rc != WHISPER_OK) return rc;
  whisper_buf **n = realloc(h.e, (h.n + 1) * sizeof *n);
  if (n == NULL) rc = WHISPER_ENOMEM;
  else h.e = n;
  size_t len = whisper__sync__deliver__get_packed_size(d);
  if (rc == WHISPER_OK && (h.e[h.n] = whisper_buf_new(NULL, len)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) {
    whisper__sync__deliver__pack(d, h.e[h.n++]->data);
    rc = sy_held_write(c, &h);
  }
  sy_heldset_free(&h);
  return rc;
}

static int held_count(whisper_client *c, size_t *n) {
  sy_heldset h;
  int rc = sy_held_read(c, &h);
  *n = h.n;
  sy_heldset_free(&h);
  return rc;
}

/* A seq no mailbox can hold: the entry is refused (not handled, not
 * acknowledged), with its event. */
static sy_event *absurd(const whisper_client *c, const Whisper__Sync__Deliver *d) {
  uint64_t seq = d->seq;
  if (!(seq == 0 || (seq > c->last_seq && seq - c->last_seq > SY_MAX_SEQ_JUMP) ||
        (seq > c->last_seq + 1 && c->n_above >= SY_MAX_ABOVE)))
    return NULL;
  sy_event *e = sy_event_new((whisper_client *)c, WHISPER_EV_REFUSED);
  if (e) {
    e->ev.code = WHISPER_EFORGED;
    e->ev.server_seq = d->server_seq;
    e->message = sy_strdup("a mailbox entry with an absurd sequence number");
  }
  return e;
}

int sy_deliver(whisper_client *c, const Whisper__Sync__Deliver *d, int from_memory) {
  (void)from_memory;
  if (c->close_wanted) return WHISPER_OK; /* after a failure: the entries come again */
  uint64_t seq = d->seq;
  if (!is_held(c, seq) && seen(c, seq)) return WHISPER_OK; /* done before: acked */
  sy_event *bad = absurd(c, d);
  if (bad) {
    sy_event_push(c, bad);
    return WHISPER_OK;
  }
  evlist evs = {NULL, NULL};
  entry_ctx x;
  int out;
  int rc = handle(c, d, &evs, &x, &out);
  uint64_t *held = NULL, *above = NULL, last = 0;
  size_t n_held = 0, n_waiting = 0, n_above = 0;
  int keep_seq = 0; /* the store's waiting set is full: not acked, as before */
  if (rc == WHISPER_OK && out == OUT_HOLD) {
    rc = held_count(c, &n_waiting);
    if (rc == WHISPER_OK && n_waiting >= SY_MAX_HELD) keep_seq = 1;
    else if (rc == WHISPER_OK) rc = hold(c, d);
  }
  if (rc == WHISPER_OK) {
    rc = held_next(c, seq, keep_seq, &held, &n_held);
    if (rc == WHISPER_OK) rc = handled_next(c, seq, &last, &above, &n_above);
    if (rc == WHISPER_OK)
      rc = sy_state_put(c, c->registered, last, above, n_above, held, n_held, c->upload_first,
                        c->upload_count);
    rc = sy_txn_end(c, rc);
  } else if (sy_txn_alive(c)) {
    sy_txn_end(c, rc);
  }
  if (rc != WHISPER_OK) {
    free(held);
    free(above);
    ev_drop(&evs);
    sy_error_event(c, rc, 0, "a mailbox entry could not be stored; it will come again");
    c->close_wanted = 1;
    return rc;
  }
  free(c->held);
  c->held = held;
  c->n_held = n_held;
  free(c->above);
  c->above = above;
  c->n_above = n_above;
  c->last_seq = last;
  if (out == OUT_HOLD && x.fetch[0]) fetch_list(c, x.fetch);
  ev_commit(c, &evs);
  if (c->receipts_due) sy_ops_flush(c);
  return WHISPER_OK;
}

/* --- batches ------------------------------------------------------------------------------------ */

/* What a batch may have to give back: the progress and the pending ops as
 * they were before it (entries only append ops, or ids to ops). */
typedef struct batch_snap {
  uint64_t last_seq;
  uint64_t *above, *held;
  size_t n_above, n_held;
  size_t n_ops;
  size_t *n_ids;
} batch_snap;

static int snap_take(const whisper_client *c, batch_snap *s) {
  memset(s, 0, sizeof *s);
  s->last_seq = c->last_seq;
  s->n_above = c->n_above;
  s->n_held = c->n_held;
  s->n_ops = c->n_ops;
  s->above = malloc((c->n_above + 1) * sizeof *s->above);
  s->held = malloc((c->n_held + 1) * sizeof *s->held);
  s->n_ids = malloc((c->n_ops + 1) * sizeof *s->n_ids);
  if (!s->above || !s->held || !s->n_ids) return WHISPER_ENOMEM;
  if (c->n_above) memcpy(s->above, c->above, c->n_above * sizeof *s->above);
  if (c->n_held) memcpy(s->held, c->held, c->n_held * sizeof *s->held);
  for (size_t i = 0; i < c->n_ops; i++) s->n_ids[i] = c->ops[i].n_ids;
  return WHISPER_OK;
}

static void snap_free(batch_snap *s) {
  free(s->above);
  free(s->held);
  free(s->n_ids);
  memset(s, 0, sizeof *s);
}

/* Back to the snapshot (its arrays are taken over). */
static void snap_restore(whisper_client *c, batch_snap *s) {
  free(c->above);
  free(c->held);
  c->last_seq = s->last_seq;
  c->above = s->above;
  c->n_above = s->n_above;
  c->held = s->held;
  c->n_held = s->n_held;
  s->above = s->held = NULL;
  while (c->n_ops > s->n_ops) sy_op_drop(c, c->n_ops - 1);
  for (size_t i = 0; i < c->n_ops; i++)
    if (c->ops[i].n_ids > s->n_ids[i]) c->ops[i].n_ids = s->n_ids[i];
  snap_free(s);
}

/* Handles entries [from, to) in one transaction (one durable commit): the
 * progress ("s") and the pending receipts are written once, before it, and
 * the events are raised after it. An entry that needs what the batch
 * cannot give it, a rollback of its own (refused, waiting, failed, asked
 * for again), ends the batch: everything is rolled back and the entries
 * before it are handled again as a batch of their own. Returns the index
 * of the first entry not handled (to: all were, or a store failure closed
 * the connection; `from`: the first one needs an entry of its own). */
static size_t batch_run(whisper_client *c, Whisper__Sync__Frame *const *q, size_t from, size_t to) {
  batch_snap snap;
  evlist evs = {NULL, NULL};
  int rc = snap_take(c, &snap);
  if (rc == WHISPER_OK) rc = sy_txn_begin(c);
  /* the engine's records, and the sessions' (the library's), each read and
   * written once per batch */
  if (rc == WHISPER_OK) {
    if ((rc = sy_txn_cache(c)) == WHISPER_OK) rc = wh_record_cache_begin(c->ctx);
    if (rc != WHISPER_OK) sy_txn_end(c, rc);
  }
  if (rc != WHISPER_OK) {
    snap_free(&snap);
    sy_error_event(c, rc, 0, "mailbox entries could not be stored; they will come again");
    c->close_wanted = 1;
    return to;
  }
  c->in_batch = 1;
  c->ops_dirty = 0;
  size_t k = from, n = 0;
  for (; k < to && rc == WHISPER_OK; k++) {
    const Whisper__Sync__Deliver *d = q[k]->deliver;
    if (!is_held(c, d->seq) && seen(c, d->seq)) continue; /* done before: acked */
    sy_event *bad = absurd(c, d);
    if (bad) {
      ev_add(&evs, bad);
      continue;
    }
    evlist one = {NULL, NULL};
    entry_ctx x;
    unsigned long w0 = c->ctx->writes;
    int out = entry_work(c, d, &one, &x);
    /* an entry that waits (its sender's list first) having written nothing
     * waits from within the batch */
    int hold_here = out == OUT_HOLD && !x.retry && sy_txn_alive(c) && c->ctx->writes == w0;
    if (out < 0 || out == OUT_REFUSED || (out == OUT_HOLD && !hold_here) || x.retry ||
        !sy_txn_alive(c)) {
      ev_drop(&one);
      break; /* an entry of its own */
    }
    if (hold_here) {
      size_t n_waiting = 0;
      rc = held_count(c, &n_waiting);
      if (rc == WHISPER_OK && n_waiting >= SY_MAX_HELD) { /* full: alone (it is not acked) */
        ev_drop(&one);
        break;
      }
      if (rc == WHISPER_OK) rc = hold(c, d);
      if (rc != WHISPER_OK) {
        ev_drop(&one);
        break;
      }
      if (x.fetch[0]) fetch_list(c, x.fetch); /* (asked when the batch's frames go) */
    }
    uint64_t *held = NULL, *above = NULL, last = 0;
    size_t n_held = 0, n_above = 0;
    rc = held_next(c, d->seq, 0, &held, &n_held);
    if (rc == WHISPER_OK) rc = handled_next(c, d->seq, &last, &above, &n_above);
    if (rc != WHISPER_OK) {
      free(held);
      free(above);
      ev_drop(&one);
      break;
    }
    free(c->held);
    c->held = held;
    c->n_held = n_held;
    free(c->above);
    c->above = above;
    c->n_above = n_above;
    c->last_seq = last;
    while (one.head) { /* (ev_commit's order, into the batch's list) */
      sy_event *e = one.head;
      one.head = e->next;
      ev_add(&evs, e);
    }
    n++;
  }
  if (n == 0 && rc == WHISPER_OK) { /* nothing taken (done before, or absurd): nothing to commit */
    c->in_batch = 0;
    wh_record_cache_end(c->ctx, 0);
    sy_txn_end(c, sy_txn_alive(c) ? WHISPER_EFORGED : WHISPER_ESTORE);
    snap_restore(c, &snap);
    ev_commit(c, &evs);
    return k;
  }
  if (k < to || rc != WHISPER_OK) { /* given back: the entries before k again, then k alone */
    c->in_batch = 0;
    wh_record_cache_end(c->ctx, 0);
    if (sy_txn_alive(c)) sy_txn_end(c, WHISPER_EFORGED);
    else sy_txn_end(c, WHISPER_ESTORE);
    snap_restore(c, &snap);
    ev_drop(&evs);
    if (rc != WHISPER_OK) k = from; /* out of memory: each alone */
    return k == from ? from : batch_run(c, q, from, k);
  }
  rc = wh_record_cache_end(c->ctx, 1);
  if (rc == WHISPER_OK && c->ops_dirty) rc = sy_ops_save(c);
  c->in_batch = 0;
  if (rc == WHISPER_OK)
    rc = sy_state_put(c, c->registered, c->last_seq, c->above, c->n_above, c->held, c->n_held,
                      c->upload_first, c->upload_count);
  /* The receipts (DELIVERED) of what it stored, encrypted under the same
   * commit (one per batch, not a second for them): their Sends leave after
   * it, as its Ack does, or not at all. A library call that fails in them
   * undoes only itself (a savepoint each). */
  wh_out *mark = c->out.tail;
  if (rc == WHISPER_OK && c->receipts_due && sy_txn_alive(c)) {
    wh_txn_plain(c->ctx->store, 0);
    sy_ops_flush(c);
    wh_txn_plain(c->ctx->store, 1);
  }
  rc = sy_txn_end(c, rc);
  if (rc != WHISPER_OK) {
    sy_out_truncate(c, mark);
    snap_restore(c, &snap);
    ev_drop(&evs);
    sy_error_event(c, rc, 0, "mailbox entries could not be stored; they will come again");
    c->close_wanted = 1;
    return to;
  }
  snap_free(&snap);
  ev_commit(c, &evs);
  return to;
}

void sy_deliver_many(whisper_client *c, Whisper__Sync__Frame *const *q, size_t n) {
  size_t i = 0;
  while (i < n && !c->close_wanted) {
    size_t stop = batch_run(c, q, i, n);
    if (stop == i) { /* this one alone, as it always was */
      if (sy_deliver(c, q[i]->deliver, 0) != WHISPER_OK) break;
      stop = i + 1;
    }
    i = stop;
  }
  if (c->catching && !c->close_wanted) { /* the backlog's progress, for the app to show */
    c->catch_done += n;
    sy_event *e = sy_event_new(c, WHISPER_EV_CATCHING_UP);
    if (e) {
      e->ev.done_bytes = c->catch_done;
      e->ev.total_bytes = c->catch_total > c->catch_done ? c->catch_total : c->catch_done;
    }
    sy_event_push(c, e);
  }
  if (c->receipts_due) sy_ops_flush(c);
}

/* The waiting entries tried again in one transaction (with the batch's
 * caches): those that still wait stay, the others leave the set, which is
 * written once. Returns 1 when done (or the store failed: said), 0 when an
 * entry needs a rollback of its own: nothing was kept, `h` is changed. */
static int retry_batch(whisper_client *c, sy_heldset *h) {
  batch_snap snap;
  evlist evs = {NULL, NULL};
  int rc = snap_take(c, &snap);
  if (rc == WHISPER_OK && (rc = sy_txn_begin(c)) == WHISPER_OK) {
    if ((rc = sy_txn_cache(c)) == WHISPER_OK) rc = wh_record_cache_begin(c->ctx);
    if (rc != WHISPER_OK) sy_txn_end(c, rc);
  }
  if (rc != WHISPER_OK) {
    snap_free(&snap);
    return 0;
  }
  c->in_batch = 1;
  c->ops_dirty = 0;
  int given_back = 0;
  for (size_t i = 0; i < h->n;) {
    Whisper__Sync__Deliver *d =
        whisper__sync__deliver__unpack(&wh_pb_alloc, h->e[i]->len, h->e[i]->data);
    evlist one = {NULL, NULL};
    entry_ctx x;
    memset(&x, 0, sizeof x);
    int out = OUT_DONE;
    unsigned long w0 = c->ctx->writes;
    if (d) out = entry_work(c, d, &one, &x);
    if (d) whisper__sync__deliver__free_unpacked(d, &wh_pb_alloc);
    int hold_here = out == OUT_HOLD && !x.retry && sy_txn_alive(c) && c->ctx->writes == w0;
    if (out < 0 || out == OUT_REFUSED || (out == OUT_HOLD && !hold_here) || x.retry ||
        !sy_txn_alive(c)) {
      ev_drop(&one);
      given_back = 1;
      break;
    }
    if (out == OUT_HOLD) { /* still waiting: said when it first came */
      if (x.fetch[0]) fetch_list(c, x.fetch);
      ev_drop(&one);
      i++;
      continue;
    }
    whisper_buf_free(h->e[i]);
    memmove(&h->e[i], &h->e[i + 1], (h->n - i - 1) * sizeof *h->e);
    h->n--;
    while (one.head) {
      sy_event *e = one.head;
      one.head = e->next;
      ev_add(&evs, e);
    }
  }
  c->in_batch = 0;
  if (given_back) {
    wh_record_cache_end(c->ctx, 0);
    sy_txn_end(c, sy_txn_alive(c) ? WHISPER_EFORGED : WHISPER_ESTORE);
    snap_restore(c, &snap);
    ev_drop(&evs);
    return 0;
  }
  rc = wh_record_cache_end(c->ctx, 1);
  if (rc == WHISPER_OK && c->ops_dirty) rc = sy_ops_save(c);
  if (rc == WHISPER_OK) rc = sy_held_write(c, h);
  rc = sy_txn_end(c, rc);
  if (rc != WHISPER_OK) {
    snap_restore(c, &snap);
    ev_drop(&evs);
    sy_error_event(c, rc, 0, "the waiting entries could not be handled; they stay");
    return 1;
  }
  snap_free(&snap);
  ev_commit(c, &evs);
  return 1;
}

void sy_retry_held(whisper_client *c) {
  c->retry_due = 0;
  sy_heldset h;
  if (c->close_wanted || sy_begin(c) != WHISPER_OK) return;
  int rc = wh_finish(c->ctx, sy_held_read(c, &h));
  if (rc != WHISPER_OK) {
    sy_error_event(c, rc, 0, "cannot read the waiting entries");
    return;
  }
  if (h.n == 0) {
    sy_heldset_free(&h);
    return;
  }
  if (retry_batch(c, &h)) {
    sy_heldset_free(&h);
    if (c->receipts_due) sy_ops_flush(c);
    return;
  }
  /* one of them needs a transaction of its own: each alone, as read again */
  sy_heldset_free(&h);
  if (sy_begin(c) != WHISPER_OK) return;
  if ((rc = wh_finish(c->ctx, sy_held_read(c, &h))) != WHISPER_OK) {
    sy_error_event(c, rc, 0, "cannot read the waiting entries");
    return;
  }
  /* each entry in a transaction of its own: handled ones leave the set */
  for (size_t i = 0; i < h.n && !c->close_wanted;) {
    Whisper__Sync__Deliver *d = whisper__sync__deliver__unpack(&wh_pb_alloc, h.e[i]->len, h.e[i]->data);
    evlist evs = {NULL, NULL};
    entry_ctx x;
    memset(&x, 0, sizeof x);
    int out = OUT_DONE;
    rc = d ? handle(c, d, &evs, &x, &out) : sy_txn_begin(c);
    if (rc == WHISPER_OK) {
      if (out == OUT_HOLD) {
        i++;
      } else {
        whisper_buf_free(h.e[i]);
        memmove(&h.e[i], &h.e[i + 1], (h.n - i - 1) * sizeof *h.e);
        h.n--;
      }
      rc = sy_txn_end(c, sy_held_write(c, &h));
    } else if (sy_txn_alive(c)) {
      sy_txn_end(c, rc);
    }
    if (d) whisper__sync__deliver__free_unpacked(d, &wh_pb_alloc);
    if (rc != WHISPER_OK) {
      ev_drop(&evs);
      sy_error_event(c, rc, 0, "a waiting entry could not be handled; it stays");
      break;
    }
    if (out == OUT_HOLD && x.fetch[0]) fetch_list(c, x.fetch);
    if (out == OUT_HOLD) ev_drop(&evs); /* still waiting: said when it first came */
    else ev_commit(c, &evs);
  }
  sy_heldset_free(&h);
  if (c->receipts_due) sy_ops_flush(c);
}

int sy_group_own_change(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN],
                        const whisper_buf *change) {
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_group_id = d.has_group_change = d.has_sender_device = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP;
  d.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)gid};
  d.group_change = (ProtobufCBinaryData){change->len, change->data};
  d.sender = c->account;
  d.sender_device = c->device_id;
  evlist evs = {NULL, NULL};
  entry_ctx x;
  int out;
  int rc = handle(c, &d, &evs, &x, &out);
  if (rc == WHISPER_OK) rc = sy_txn_end(c, WHISPER_OK);
  else if (sy_txn_alive(c)) sy_txn_end(c, rc);
  ev_drop(&evs); /* the server's echo raises EV_GROUP */
  return rc;
}

/*
 * Sessions that heal: a message this device cannot decrypt is asked for
 * again, and a message it sent is sent again when a recipient asks.
 *
 *   receiver  an entry that cannot be decrypted (a damaged ciphertext, a
 *             session gone or out of step, a sender key never received)
 *             leaves a placeholder ("message-waiting") where it belongs in
 *             history and a Waiting record ("w" || client id), is acked,
 *             and a retry request goes to the sender: plaintext (type 8,
 *             CONTENT_RETRY), as libsignal's: e2e.RetryRequest with the
 *             message's client id and a PlaintextContent holding a
 *             DecryptionErrorMessage. At most SY_RETRY_ASKS per message,
 *             SY_RETRY_GAP_MS apart, and SY_RETRY_RATE per peer device a
 *             minute; waiting messages are asked for again after each login.
 *   sender    a retry request is believed only as far as it can be
 *             checked: the asking device must be on its account's signed
 *             list (inbox.c checks that first), its account must take part
 *             in the message's conversation, and this device must be the
 *             one that sent it (it numbered it). Then the session with that
 *             device is started afresh (a new bundle), and the message goes
 *             again from history, the copy kept encrypted at rest, to that
 *             device only (Send.resend_of). For a group message the device
 *             also loses its mark of having this device's sender key, so the
 *             next group message distributes it again. A message older
 *             than SY_RESEND_MAX_AGE_MS, or asked for too often, is given up:
 *             its status for that device is FAILED, never DELIVERED.
 *   receiver  the message that comes again takes its placeholder's place,
 *             once (inbox.c).
 *
 * A forged retry request (the server can make them: they are plaintext)
 * gets at most a bounded number of resends, each to a device the list
 * names, under a fresh session: it can cost traffic, not content.
 */
#include "sync/sync_internal.h"
#include "wire.pb-c.h"

#define SY_RETRY_ASKS 3          /* retry requests per message */
#define SY_RETRY_GAP_MS 30000    /* between two of them */
#define SY_RETRY_RATE 20         /* retry requests, or resends, per peer device and minute */
#define SY_RESENDS_PER_MESSAGE 3 /* resends of one message to one device */
#define SY_RESEND_MAX_AGE_MS (7ULL * 24 * 3600 * 1000)

/* --- rate limits (in memory) ------------------------------------------------------------------ */

struct sy_rate {
  char key[WH_NAME_MAX + 64];
  uint64_t since;
  unsigned n;
  struct sy_rate *next;
};

/* 1 if one more under `key` fits `limit` per window (then counted). */
static int rate_take(whisper_client *c, const char *key, unsigned limit, uint64_t window_ms) {
  sy_rate *r = c->rates;
  while (r && strcmp(r->key, key) != 0) r = r->next;
  if (r == NULL) {
    if ((r = calloc(1, sizeof *r)) == NULL) return 0;
    snprintf(r->key, sizeof r->key, "%s", key);
    r->since = c->now;
    r->next = c->rates;
    c->rates = r;
  }
  if (window_ms && c->now - r->since >= window_ms) {
    r->since = c->now;
    r->n = 0;
  }
  if (r->n >= limit) return 0;
  r->n++;
  return 1;
}

void sy_rates_free(whisper_client *c) {
  while (c->rates) {
    sy_rate *r = c->rates;
    c->rates = r->next;
    free(r);
  }
}

static void retry_event(whisper_client *c, sy_evq *evs, const char *conv, const char *who,
                        uint32_t device, const uint8_t *id, int status) {
  sy_event *e = sy_event_new(c, WHISPER_EV_RETRY);
  if (e == NULL) return;
  if (sy_event_set(e, conv, who, id, WHISPER_CLIENT_ID_LEN, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = device;
  e->ev.status = status;
  if (evs) sy_evq_add(evs, e);
  else sy_event_push(c, e);
}

/* --- the request --------------------------------------------------------------------------------- */

/* libsignal's PlaintextContent: 0xC0 || Content{decryption_error_message} || 0x80. */
whisper_buf *sy_decryption_error_make(const uint8_t *ratchet_key, uint64_t timestamp, uint32_t device_id) {
  Whisper__Wire__DecryptionErrorMessage m = WHISPER__WIRE__DECRYPTION_ERROR_MESSAGE__INIT;
  if (ratchet_key) {
    m.has_ratchet_key = 1;
    m.ratchet_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)ratchet_key};
  }
  m.has_timestamp = m.has_device_id = 1;
  m.timestamp = timestamp;
  m.device_id = device_id;
  size_t ml = whisper__wire__decryption_error_message__get_packed_size(&m);
  uint8_t *mb = malloc(ml ? ml : 1);
  whisper_buf *out = NULL;
  if (mb) {
    whisper__wire__decryption_error_message__pack(&m, mb);
    Whisper__Wire__Content ct = WHISPER__WIRE__CONTENT__INIT;
    ct.has_decryption_error_message = 1;
    ct.decryption_error_message = (ProtobufCBinaryData){ml, mb};
    size_t cl = whisper__wire__content__get_packed_size(&ct);
    if ((out = whisper_buf_new(NULL, cl + 2)) != NULL) {
      out->data[0] = 0xC0;
      whisper__wire__content__pack(&ct, out->data + 1);
      out->data[cl + 1] = 0x80;
    }
    free(mb);
  }
  return out;
}

/* The sender's ratchet key of a SignalMessage (version || protobuf || 8-byte
 * MAC) into `key`; 0 when it has no well-formed one. */
static int signal_ratchet_key(const uint8_t *b, size_t n, uint8_t key[WHISPER_PUBLIC_KEY_LEN]) {
  if (n <= 1 + 8) return 0;
  Whisper__Wire__SignalMessage *sm = whisper__wire__signal_message__unpack(&wh_pb_alloc, n - 1 - 8, b + 1);
  int ok = sm && sm->has_ratchet_key && sm->ratchet_key.len == WHISPER_PUBLIC_KEY_LEN &&
           sm->ratchet_key.data[0] == 0x05;
  if (ok) memcpy(key, sm->ratchet_key.data, WHISPER_PUBLIC_KEY_LEN);
  if (sm) whisper__wire__signal_message__free_unpacked(sm, &wh_pb_alloc);
  return ok;
}

/* As libsignal's DecryptionErrorMessage::for_original: the ratchet key of a
 * SignalMessage, or of the one inside a PreKeySignalMessage; none for other
 * types (a SenderKeyMessage). A message too damaged to have a well-formed
 * key is still asked for, without one (libsignal would refuse to make the
 * request; a key that is not a public key would make libsignal refuse to
 * read it). */
whisper_buf *sy_decryption_error_for(int type, const uint8_t *body, size_t len, uint64_t timestamp,
                                     uint32_t device_id) {
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  int has_key = 0;
  if (type == WHISPER_MSG_WHISPER) {
    has_key = signal_ratchet_key(body, len, key);
  } else if (type == WHISPER_MSG_PREKEY && len > 1) {
    Whisper__Wire__PreKeySignalMessage *pm =
        whisper__wire__pre_key_signal_message__unpack(&wh_pb_alloc, len - 1, body + 1);
    if (pm && pm->has_message) has_key = signal_ratchet_key(pm->message.data, pm->message.len, key);
    if (pm) whisper__wire__pre_key_signal_message__free_unpacked(pm, &wh_pb_alloc);
  }
  return sy_decryption_error_make(has_key ? key : NULL, timestamp, device_id);
}

static whisper_buf *decryption_error(const Whisper__Sync__Deliver *d) {
  /* as libsignal: the device of the message's sender, which is to answer */
  return sy_decryption_error_for(d->has_body ? (int)d->type : 0, d->body.data, d->body.len, d->server_ts,
                                 d->sender_device);
}

/* The DecryptionErrorMessage inside a PlaintextContent (NULL: not one). As
 * libsignal reads one: a timestamp, and a ratchet key only if it is a public
 * key; a missing device id is left to the caller. */
Whisper__Wire__DecryptionErrorMessage *sy_decryption_error_parse(const uint8_t *p, size_t n) {
  if (n < 2 || p[0] != 0xC0) return NULL;
  /* the padding: 0x80, then zeros */
  size_t end = n;
  while (end > 1 && p[end - 1] == 0) end--;
  if (end <= 1 || p[end - 1] != 0x80) return NULL;
  Whisper__Wire__Content *ct = whisper__wire__content__unpack(&wh_pb_alloc, end - 2, p + 1);
  Whisper__Wire__DecryptionErrorMessage *m = NULL;
  if (ct && ct->has_decryption_error_message)
    m = whisper__wire__decryption_error_message__unpack(&wh_pb_alloc, ct->decryption_error_message.len,
                                                        ct->decryption_error_message.data);
  if (ct) whisper__wire__content__free_unpacked(ct, &wh_pb_alloc);
  if (m && (!m->has_timestamp ||
            (m->has_ratchet_key && whisper_public_key_check(m->ratchet_key.data, m->ratchet_key.len) != WHISPER_OK))) {
    whisper__wire__decryption_error_message__free_unpacked(m, &wh_pb_alloc);
    m = NULL;
  }
  return m;
}

static int waiting_key(uint8_t k[1 + WHISPER_CLIENT_ID_LEN], const uint8_t *id) {
  k[0] = 'w';
  memcpy(k + 1, id, WHISPER_CLIENT_ID_LEN);
  return 1 + WHISPER_CLIENT_ID_LEN;
}

Whisper__Client__Waiting *sy_waiting_get(whisper_client *c, const uint8_t *id, int *rc) {
  uint8_t k[1 + WHISPER_CLIENT_ID_LEN];
  whisper_buf *b;
  *rc = sy_rec_get(c, k, (size_t)waiting_key(k, id), &b);
  if (*rc == WHISPER_ENOTFOUND) {
    *rc = WHISPER_OK;
    return NULL;
  }
  if (*rc != WHISPER_OK) return NULL;
  Whisper__Client__Waiting *w = whisper__client__waiting__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (w == NULL || !wh_account_ok(w->sender) || w->conversation == NULL) {
    if (w) whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
    *rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored waiting message is corrupt");
  }
  return w;
}

static int waiting_put(whisper_client *c, const uint8_t *id, const Whisper__Client__Waiting *w) {
  uint8_t k[1 + WHISPER_CLIENT_ID_LEN];
  return sy_rec_put_msg(c, k, (size_t)waiting_key(k, id), &w->base);
}

/* The list of waiting ids ("W", a Held record of client ids). */
static int waiting_list(whisper_client *c, const uint8_t *id, int add) {
  uint8_t k = 'W';
  whisper_buf *b;
  Whisper__Client__Held *h = NULL;
  int rc = sy_rec_get(c, &k, 1, &b);
  if (rc == WHISPER_OK) {
    h = whisper__client__held__unpack(&wh_pb_alloc, b->len, b->data);
    whisper_buf_free(b);
    if (h == NULL) return wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's waiting list is corrupt");
  } else if (rc != WHISPER_ENOTFOUND) {
    return rc;
  }
  size_t n = h ? h->n_deliver : 0, m = 0;
  ProtobufCBinaryData *ids = calloc(n + 1, sizeof *ids);
  if (ids == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; ids && i < n; i++)
    if (h->deliver[i].len == WHISPER_CLIENT_ID_LEN && memcmp(h->deliver[i].data, id, WHISPER_CLIENT_ID_LEN) != 0)
      ids[m++] = h->deliver[i];
  if (ids && add && m < SY_MAX_HELD) ids[m++] = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)id};
  if (ids) {
    Whisper__Client__Held out = WHISPER__CLIENT__HELD__INIT;
    out.n_deliver = m;
    out.deliver = ids;
    rc = m ? sy_rec_put_msg(c, &k, 1, &out.base)
           : sy_rec_del(c, &k, 1);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  free(ids);
  if (h) whisper__client__held__free_unpacked(h, &wh_pb_alloc);
  return rc;
}

int sy_waiting_done(whisper_client *c, const uint8_t *id, const Whisper__Client__Waiting *w) {
  int rc = wh_history_incoming_del(c->ctx, w->conversation, id, WHISPER_CLIENT_ID_LEN, w->sort_key);
  /* kept with device 0: a second copy of it is recognised */
  Whisper__Client__Waiting done = *w;
  done.has_device = 1;
  done.device = 0;
  if (rc == WHISPER_OK) rc = waiting_put(c, id, &done);
  if (rc == WHISPER_OK) rc = waiting_list(c, id, 0);
  return rc;
}

/* Queues the request for `id` to `sender` (its account's devices). */
static int ask(whisper_client *c, const Whisper__Sync__Deliver *d, const char *sender, const uint8_t *id) {
  whisper_buf *dem = decryption_error(d);
  if (dem == NULL) return WHISPER_ENOMEM;
  Whisper__E2e__RetryRequest r = WHISPER__E2E__RETRY_REQUEST__INIT;
  r.has_message_id = r.has_decryption_error = 1;
  r.message_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)id};
  r.decryption_error = (ProtobufCBinaryData){dem->len, dem->data};
  size_t len = whisper__e2e__retry_request__get_packed_size(&r);
  whisper_buf *body = whisper_buf_new(NULL, len);
  uint8_t jid[WHISPER_CLIENT_ID_LEN];
  int rc = body ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) whisper__e2e__retry_request__pack(&r, body->data);
  if (rc == WHISPER_OK && wh_random(&c->ctx->rng, jid, sizeof jid) != 0) rc = WHISPER_ERANDOM;
  if (rc == WHISPER_OK) rc = sy_job_add(c, sender, jid, body->data, body->len);
  if (rc == WHISPER_OK)
    for (sy_job *j = c->jobs; j; j = j->next)
      if (memcmp(j->id, jid, sizeof jid) == 0) j->kind = JOB_RETRY;
  whisper_buf_free(body);
  whisper_buf_free(dem);
  return rc;
}

int sy_retry_ask(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv, sy_evq *evs) {
  if (!d->has_client_id || d->client_id.len != WHISPER_CLIENT_ID_LEN) return WHISPER_OK;
  const uint8_t *id = d->client_id.data;
  int rc;
  Whisper__Client__Waiting *w = sy_waiting_get(c, id, &rc);
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__Waiting fresh = WHISPER__CLIENT__WAITING__INIT;
  if (w && w->device == 0) { /* it came already */
    whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
    return WHISPER_OK;
  }
  if (w == NULL) { /* first time: the placeholder, where it belongs */
    fresh.conversation = (char *)conv;
    fresh.sender = d->sender;
    fresh.has_device = fresh.has_sort_key = 1;
    fresh.device = d->sender_device;
    fresh.sort_key = d->server_seq;
    whisper_message_t m = {.size = sizeof(whisper_message_t),
                           .conversation = conv, .id = id, .id_len = WHISPER_CLIENT_ID_LEN,
                           .sort_key = d->server_seq, .timestamp_ms = c->now};
    rc = wh_history_incoming_put(c->ctx, &m, d->sender, d->sender_device,
                                 (const uint8_t *)"message-waiting", 15);
    if (rc == WHISPER_OK) rc = waiting_list(c, id, 1);
  } else {
    fresh = *w;
  }
  char key[WH_NAME_MAX + 16];
  snprintf(key, sizeof key, "ask %s.%u", d->sender, d->sender_device);
  int go = rc == WHISPER_OK && fresh.asked < SY_RETRY_ASKS &&
           (fresh.asked == 0 || c->now - fresh.asked_at >= SY_RETRY_GAP_MS) &&
           rate_take(c, key, SY_RETRY_RATE, 60000);
  if (go) {
    fresh.has_asked = fresh.has_asked_at = 1;
    fresh.asked++;
    fresh.asked_at = c->now;
  }
  if (rc == WHISPER_OK) rc = waiting_put(c, id, &fresh);
  if (rc == WHISPER_OK && go) {
    rc = ask(c, d, d->sender, id);
    if (rc == WHISPER_OK) retry_event(c, evs, conv, d->sender, d->sender_device, id, WHISPER_RETRY_ASKED);
  }
  if (w) whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
  return rc;
}

size_t sy_waiting_count(whisper_client *c, const char *sender, uint32_t device, const char *conv) {
  uint8_t k = 'W';
  whisper_buf *b;
  size_t n = 0;
  if (sy_rec_get(c, &k, 1, &b) != WHISPER_OK) return 0;
  Whisper__Client__Held *h = whisper__client__held__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  for (size_t i = 0; h && i < h->n_deliver; i++) {
    int rc;
    if (h->deliver[i].len != WHISPER_CLIENT_ID_LEN) continue;
    Whisper__Client__Waiting *w = sy_waiting_get(c, h->deliver[i].data, &rc);
    if (w == NULL) continue;
    n += w->device == device && strcmp(w->sender, sender) == 0 && strcmp(w->conversation, conv) == 0;
    whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
  }
  if (h) whisper__client__held__free_unpacked(h, &wh_pb_alloc);
  return n;
}

/* After a login: the waiting messages whose time has come are asked for again. */
void sy_retry_again(whisper_client *c) {
  uint8_t k = 'W';
  whisper_buf *b;
  if (sy_rec_get(c, &k, 1, &b) != WHISPER_OK) return;
  Whisper__Client__Held *h = whisper__client__held__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  for (size_t i = 0; h && i < h->n_deliver; i++) {
    if (h->deliver[i].len != WHISPER_CLIENT_ID_LEN) continue;
    int rc;
    Whisper__Client__Waiting *w = sy_waiting_get(c, h->deliver[i].data, &rc);
    if (w == NULL) continue;
    if (w->device == 0) {
      whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
      continue;
    }
    /* the request names the message; its ciphertext is not kept */
    Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
    d.has_client_id = d.has_sender_device = 1;
    d.client_id = h->deliver[i];
    d.sender = w->sender;
    d.sender_device = w->device;
    if (sy_txn_begin(c) == WHISPER_OK) sy_txn_end(c, sy_retry_ask(c, &d, w->conversation, NULL));
    whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
  }
  if (h) whisper__client__held__free_unpacked(h, &wh_pb_alloc);
}

/* --- the answer --------------------------------------------------------------------------------- */

int sy_retry_answer(whisper_client *c, const Whisper__Sync__Deliver *d, sy_evq *evs) {
  Whisper__E2e__RetryRequest *r =
      whisper__e2e__retry_request__unpack(&wh_pb_alloc, d->body.len, d->body.data);
  Whisper__Wire__DecryptionErrorMessage *dem = NULL;
  char conv[WH_NAME_MAX + 1];
  const char *why = NULL;
  int rc = WHISPER_OK;
  if (r == NULL || !r->has_message_id || r->message_id.len != WHISPER_CLIENT_ID_LEN ||
      !r->has_decryption_error ||
      (dem = sy_decryption_error_parse(r->decryption_error.data, r->decryption_error.len)) == NULL ||
      !dem->has_device_id)
    why = "a malformed retry request";
  if (why == NULL && dem->device_id != c->device_id) {
    /* for another device of this account (each gets the request) */
    whisper__wire__decryption_error_message__free_unpacked(dem, &wh_pb_alloc);
    whisper__e2e__retry_request__free_unpacked(r, &wh_pb_alloc);
    return WHISPER_OK;
  }
  const uint8_t *id = why ? NULL : r->message_id.data;
  /* this device sent it (it numbered it), to someone of the asking account */
  if (why == NULL) {
    rc = sy_outref_get(c, id, conv);
    if (rc == WHISPER_ENOTFOUND || (rc == WHISPER_OK && sy_outref_counter(c, id) == 0)) {
      rc = WHISPER_OK;
      why = "a retry request for a message this device did not send";
    } else if (rc == WHISPER_OK && !sy_may_receive(c, conv, d->sender)) {
      why = "a retry request from an account the message did not go to";
    }
  }
  char key[WH_NAME_MAX + 64];
  if (rc == WHISPER_OK && why == NULL) {
    snprintf(key, sizeof key, "resend %s.%u", d->sender, d->sender_device);
    char mkey[WH_NAME_MAX + 64];
    snprintf(mkey, sizeof mkey, "msg %02x%02x%02x%02x%02x%02x%02x%02x %s.%u", id[0], id[1], id[2],
             id[3], id[4], id[5], id[6], id[7], d->sender, d->sender_device);
    whisper_buf *body = NULL, *content = NULL;
    uint64_t ts = 0;
    rc = wh_history_outgoing_get_ex(c->ctx, conv, id, WHISPER_CLIENT_ID_LEN, &body, &content, &ts);
    if (rc == WHISPER_OK && (c->now > ts + SY_RESEND_MAX_AGE_MS || !rate_take(c, mkey, SY_RESENDS_PER_MESSAGE, 0) ||
                             !rate_take(c, key, SY_RETRY_RATE, 60000))) {
      /* given up: the tick says so */
      rc = whisper_history_status_set(c->ctx, conv, id, WHISPER_CLIENT_ID_LEN, d->sender, d->sender_device,
                                  WHISPER_STATUS_FAILED);
      if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
      retry_event(c, evs, conv, d->sender, d->sender_device, id, WHISPER_RETRY_FAILED);
    } else if (rc == WHISPER_OK) {
      sy_body b = {id, body->data, body->len, content ? content->data : NULL, content ? content->len : 0};
      rc = sy_resend_job(c, conv, d->sender, d->sender_device, &b, ts);
      if (rc == WHISPER_OK) retry_event(c, evs, conv, d->sender, d->sender_device, id, WHISPER_RETRY_RESENT);
    } else if (rc == WHISPER_ENOTFOUND) {
      rc = WHISPER_OK;
      why = "a retry request for a message no longer in history";
    }
    whisper_buf_free(body);
    whisper_buf_free(content);
  }
  if (rc == WHISPER_OK && why) {
    wh_fail(c->ctx, WHISPER_EFORGED, "%s", why);
    sy_event *e = sy_event_new(c, WHISPER_EV_REFUSED);
    if (e && sy_event_set(e, d->sender, d->sender, NULL, 0, NULL, 0) == WHISPER_OK) {
      e->ev.code = WHISPER_EFORGED;
      e->ev.from_device = d->sender_device;
      e->message = sy_strdup(why);
      sy_evq_add(evs, e);
    } else {
      sy_event_free(e);
    }
  }
  if (dem) whisper__wire__decryption_error_message__free_unpacked(dem, &wh_pb_alloc);
  if (r) whisper__e2e__retry_request__free_unpacked(r, &wh_pb_alloc);
  return rc;
}

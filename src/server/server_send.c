/*
 * Send (1:1 with exact device lists, or to a group) and Receipt.
 *
 * A Send runs in one transaction: the idempotency record is looked up
 * first (a known client id gets its recorded Sent and queues nothing),
 * then the one of the Send it comes `after` (pipelining: a device's Sends
 * in flight are taken in the order it sent them, or the rest are refused
 * with ERR_STATE), then the device lists are checked, a server_seq is taken, one entry is
 * appended to every recipient device's mailbox and the Sent is recorded.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define SENT_KEY_LEN (4 + WSRV_TAG_LEN + WSRV_ID_LEN)
#define TYPE_SENDER_KEY 7 /* a SenderKeyMessage */
#define STALE 2000        /* internal: answered with StaleDevices */

/* --- checks --------------------------------------------------------------- */

#define TYPE_PLAINTEXT 8 /* a retry request, unencrypted (CONTENT_RETRY) */

/* `plain`: the bodies are type 8 (a retry request), else Signal messages. */
static int messages_ok(Whisper__Sync__DeviceMessage *const *ms, size_t n, size_t max, int plain) {
  if (n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    const Whisper__Sync__DeviceMessage *d = ms[i];
    int type_ok = plain ? d->type == TYPE_PLAINTEXT
                        : d->type == WHISPER_MSG_WHISPER || d->type == WHISPER_MSG_PREKEY;
    if (!wsrv_device_ok(d->has_device_id, d->device_id) || !d->has_type || !type_ok ||
        !d->has_body || d->body.len == 0)
      return 0;
    for (size_t j = 0; j < i; j++)
      if (ms[j]->device_id == d->device_id) return 0;
  }
  return 1;
}

static int send_check(whisper_server *srv, const Whisper__Sync__Send *m) {
  if (!wsrv_bytes_ok(m->has_client_id, m->client_id, WSRV_ID_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "Send needs a 16-byte client_id");
  if (m->has_after && !wsrv_bytes_ok(1, m->after, WSRV_ID_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "Send.after is a 16-byte client id");
  if (!m->has_content || m->content < CONTENT_TEXT || m->content > CONTENT_RETRY)
    return wsrv_refuse(srv, ERR_MALFORMED, "Send needs content (TEXT, SKDM, RECEIPT, MESSAGE or RETRY)");
  if (m->has_resend_of &&
      (!wsrv_bytes_ok(1, m->resend_of, WSRV_ID_LEN) || m->content != CONTENT_MESSAGE ||
       m->has_group_id || m->n_own || m->n_messages == 0))
    return wsrv_refuse(srv, ERR_MALFORMED, "a resend is a 1:1 MESSAGE to some devices of `to`");
  if ((m->to != NULL) == (m->has_group_id != 0))
    return wsrv_refuse(srv, ERR_MALFORMED, "Send goes either to an account or to a group");
  if (m->has_group_id) {
    if (!wsrv_bytes_ok(1, m->group_id, WSRV_ID_LEN) || !m->has_body || m->body.len == 0 ||
        m->n_messages || m->n_own)
      return wsrv_refuse(srv, ERR_MALFORMED, "a group Send has a 16-byte group_id and a body only");
    return 0;
  }
  if (!wsrv_name_ok(m->to) || m->has_body)
    return wsrv_refuse(srv, ERR_MALFORMED, "a 1:1 Send has an account and per-device messages");
  int plain = m->content == CONTENT_RETRY;
  if (!messages_ok(m->messages, m->n_messages, srv->cfg.max_devices, plain) ||
      !messages_ok(m->own, m->n_own, srv->cfg.max_devices, plain))
    return wsrv_refuse(srv, ERR_MALFORMED, "bad device messages");
  return 0;
}

/* --- idempotency ---------------------------------------------------------- */

/* A Sent is kept under the period of its time (cfg.sent_ttl_ms long) and
 * looked up in the current period and the one before, so it answers a
 * Send sent again for at least one period and at most two; older periods
 * are pruned (server_limits.c). Records of the older layout (kind SENT,
 * keyed by address) are neither read nor pruned. */
static void sent_key(uint8_t out[SENT_KEY_LEN], uint32_t period, const wsrv_conn *c,
                     const uint8_t *client_id) {
  wh_be32(out, period);
  memcpy(out + 4, c->tag, WSRV_TAG_LEN);
  memcpy(out + 4 + WSRV_TAG_LEN, client_id, WSRV_ID_LEN);
}

static int sent_find(whisper_server *srv, const wsrv_conn *c, const uint8_t *client_id,
                     uint64_t now_ms, Whisper__Sync__Sent **out) {
  uint8_t key[SENT_KEY_LEN];
  uint32_t p = wsrv_sent_period(srv, now_ms);
  sent_key(key, p, c, client_id);
  int rc = wsrv_get_msg(srv, WHISPER_REC_SERVER_SENT_AT, key, sizeof key,
                        &whisper__sync__sent__descriptor, (ProtobufCMessage **)out);
  if (rc != WHISPER_ENOTFOUND || p == 0) return rc;
  sent_key(key, p - 1, c, client_id);
  return wsrv_get_msg(srv, WHISPER_REC_SERVER_SENT_AT, key, sizeof key,
                      &whisper__sync__sent__descriptor, (ProtobufCMessage **)out);
}

static int sent_record(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__Sent *s,
                       uint32_t *period) {
  uint8_t key[SENT_KEY_LEN];
  *period = wsrv_sent_period(srv, s->server_ts);
  sent_key(key, *period, c, s->client_id.data);
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_SENT_AT, key, sizeof key, &s->base);
}

static int answer_sent(whisper_server *srv, wsrv_conn *c, uint64_t id, Whisper__Sync__Sent *s) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SENT;
  f.sent = s;
  return wsrv_send(srv, c->id, &f);
}

/* --- device lists --------------------------------------------------------- */

typedef struct stale_lists {
  char account[WSRV_NAME_MAX + 1];
  uint32_t *missing, *extra, *stale;
  size_t n_missing, n_extra, n_stale;
} stale_lists;

static void stale_free(stale_lists *s) {
  free(s->missing);
  free(s->extra);
  free(s->stale);
  memset(s, 0, sizeof *s);
}

static const Whisper__Sync__DeviceMessage *message_for(Whisper__Sync__DeviceMessage *const *ms,
                                                       size_t n, uint32_t device_id) {
  for (size_t i = 0; i < n; i++)
    if (ms[i]->device_id == device_id) return ms[i];
  return NULL;
}

/* Compares the ciphertexts with the account's devices (but `skip`, the
 * sending device): STALE with the lists filled when they differ. */
static int devices_match(whisper_server *srv, const char *name, const Whisper__Server__Account *a,
                         uint32_t skip, Whisper__Sync__DeviceMessage *const *ms, size_t n,
                         stale_lists *s) {
  size_t cap = a->n_devices + n + 1;
  s->missing = malloc(cap * sizeof *s->missing);
  s->extra = malloc(cap * sizeof *s->extra);
  s->stale = malloc(cap * sizeof *s->stale);
  if (!s->missing || !s->extra || !s->stale) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (size_t i = 0; i < a->n_devices; i++) {
    const Whisper__Server__AccountDevice *d = a->devices[i];
    if (d->device_id == skip) continue;
    const Whisper__Sync__DeviceMessage *msg = message_for(ms, n, d->device_id);
    if (msg == NULL)
      s->missing[s->n_missing++] = d->device_id;
    else if (msg->has_registration_id && msg->registration_id != d->registration_id)
      s->stale[s->n_stale++] = d->device_id;
  }
  for (size_t i = 0; i < n; i++)
    if (ms[i]->device_id == skip || !wsrv_account_has(a, ms[i]->device_id))
      s->extra[s->n_extra++] = ms[i]->device_id;
  if (s->n_missing + s->n_extra + s->n_stale == 0) {
    stale_free(s);
    return 0;
  }
  snprintf(s->account, sizeof s->account, "%s", name);
  return STALE;
}

static int answer_stale(whisper_server *srv, wsrv_conn *c, uint64_t id, const stale_lists *s) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__StaleDevices sd = WHISPER__SYNC__STALE_DEVICES__INIT;
  sd.account = (char *)s->account;
  sd.missing = s->missing;
  sd.n_missing = s->n_missing;
  sd.extra = s->extra;
  sd.n_extra = s->n_extra;
  sd.stale = s->stale;
  sd.n_stale = s->n_stale;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_STALE;
  f.stale = &sd;
  srv->stats.frames_refused++;
  return wsrv_send(srv, c->id, &f);
}

/* --- fan-out -------------------------------------------------------------- */

static void entry_init(Whisper__Sync__Deliver *d, const wsrv_conn *c, const Whisper__Sync__Send *m,
                       const Whisper__Sync__Sent *s) {
  whisper__sync__deliver__init(d);
  d->has_kind = d->has_sender_device = d->has_server_ts = d->has_server_seq = 1;
  d->has_client_id = d->has_type = d->has_body = d->has_content = 1;
  d->kind = ENTRY_MESSAGE;
  d->sender = (char *)c->account;
  d->sender_device = c->device_id;
  d->server_ts = s->server_ts;
  d->server_seq = s->server_seq;
  d->client_id = m->has_resend_of ? m->resend_of : m->client_id; /* a resend: the message's id */
  d->content = m->content;
}

static int append_each(whisper_server *srv, wsrv_fx *fx, const char *name,
                       Whisper__Sync__DeviceMessage *const *ms, size_t n, Whisper__Sync__Deliver *d) {
  int rc = WHISPER_OK;
  for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
    d->type = ms[i]->type;
    d->body = ms[i]->body;
    rc = wsrv_mailbox_append(srv, fx, name, ms[i]->device_id, d);
  }
  return rc;
}

/* A message to oneself (notes, other devices) has no `own` part: its
 * `messages` go to the account's other devices. */
static int send_direct(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx, const Whisper__Sync__Send *m,
                       const Whisper__Sync__Sent *s, stale_lists *st) {
  Whisper__Server__Account *to = NULL, *own = NULL;
  int self = strcmp(m->to, c->account) == 0;
  if (self && m->n_own) return wsrv_refuse(srv, ERR_MALFORMED, "a Send to oneself has no `own` part");
  int rc = wsrv_account_get(srv, m->to, &to);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
  if (rc == WHISPER_OK)
    rc = devices_match(srv, m->to, to, self ? c->device_id : 0, m->messages, m->n_messages, st);
  if (rc == STALE && m->has_resend_of && st->n_extra + st->n_stale == 0) {
    stale_free(st); /* a resend goes to the devices that asked: some of them */
    rc = WHISPER_OK;
  }
  if (rc == WHISPER_OK && !self && !m->has_resend_of) rc = wsrv_account_get(srv, c->account, &own);
  if (rc == WHISPER_OK && !self && !m->has_resend_of)
    rc = devices_match(srv, c->account, own, c->device_id, m->own, m->n_own, st);
  Whisper__Sync__Deliver d;
  entry_init(&d, c, m, s);
  d.conversation_to = self ? m->to : NULL;
  /* a conversation the recipient muted wakes none of its devices */
  fx->silent = !self && wsrv_muted(to, c->account, s->server_ts);
  /* `to` blocked the sender: taken, and put in none of its mailboxes (server_block.c) */
  int dropped = 0;
  if (rc == WHISPER_OK) rc = wsrv_block_drops(srv, m->to, c->account, m->content, &dropped);
  if (rc == WHISPER_OK && !dropped) rc = append_each(srv, fx, m->to, m->messages, m->n_messages, &d);
  fx->silent = 0;
  d.conversation_to = m->to;
  if (rc == WHISPER_OK) rc = append_each(srv, fx, c->account, m->own, m->n_own, &d);
  wsrv_msg_free(to);
  wsrv_msg_free(own);
  return rc;
}

/* The one SenderKeyMessage goes to every device of every member but the
 * sending device. A device whose mailbox takes no more (full, or full of
 * this sender: server_mailbox.c) misses it, as it would a receipt, rather
 * than one member's mailbox stopping the group's messages for everyone;
 * its engine shows the gap. */
static int send_group(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx, const Whisper__Sync__Send *m,
                      const Whisper__Sync__Sent *s) {
  Whisper__Server__Group *g;
  int rc = wsrv_group_get(srv, m->group_id.data, &g);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such group");
  if (rc != WHISPER_OK) return rc;
  if (!wsrv_group_has(g->members, g->n_members, c->account)) {
    wsrv_msg_free(g);
    return wsrv_refuse(srv, ERR_FORBIDDEN, "not a member of the group");
  }
  Whisper__Sync__Deliver d;
  entry_init(&d, c, m, s);
  d.type = TYPE_SENDER_KEY;
  d.body = m->body;
  d.has_group_id = 1;
  d.group_id = m->group_id;
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(m->group_id.data, conv);
  fx->mute_conv = conv; /* members that muted the group are not woken */
  fx->now_ms = s->server_ts;
  for (size_t i = 0; i < g->n_members && rc == WHISPER_OK; i++) {
    int me = strcmp(g->members[i], c->account) == 0;
    rc = wsrv_mailbox_append_account(srv, fx, g->members[i], me ? c->device_id : 0, &d, 1);
    if (rc == WHISPER_ENOTFOUND) rc = wsrv_fail(srv, WHISPER_ECORRUPT, "a group member has no account");
  }
  fx->mute_conv = NULL;
  wsrv_msg_free(g);
  return rc;
}

static int send_store(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx, const Whisper__Sync__Send *m,
                      uint64_t now_ms, Whisper__Sync__Sent *s, Whisper__Sync__Sent **known,
                      stale_lists *st, uint32_t *period) {
  int rc = sent_find(srv, c, m->client_id.data, now_ms, known);
  if (rc != WHISPER_ENOTFOUND) return rc; /* known (0), or a store error */
  /* pipelined: only after the Send it follows was taken. The one taken
   * last on this connection was (its frame committed with the batch, or
   * the batch failed and closed the connection): no lookup for it. */
  if (m->has_after &&
      !(c->has_last_sent && memcmp(c->last_sent, m->after.data, WSRV_ID_LEN) == 0)) {
    Whisper__Sync__Sent *prev = NULL;
    rc = sent_find(srv, c, m->after.data, now_ms, &prev);
    wsrv_msg_free(prev);
    if (rc == WHISPER_ENOTFOUND)
      return wsrv_refuse(srv, ERR_STATE,
                         "the Send this one comes after was not taken: send it first");
    if (rc != WHISPER_OK) return rc;
  }
  s->has_client_id = s->has_server_ts = s->has_server_seq = 1;
  s->client_id = m->client_id;
  s->server_ts = now_ms;
  rc = wsrv_next_server_seq(srv, &s->server_seq);
  if (rc == WHISPER_OK)
    rc = m->has_group_id ? send_group(srv, c, fx, m, s) : send_direct(srv, c, fx, m, s, st);
  if (rc == WHISPER_OK) rc = sent_record(srv, c, s, period);
  return rc;
}

int wsrv_handle_send(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Send *m,
                     uint64_t now_ms) {
  int rc = send_check(srv, m);
  if (rc) return rc;
  Whisper__Sync__Sent s = WHISPER__SYNC__SENT__INIT, *known = NULL;
  stale_lists st = {0};
  wsrv_fx fx = {0};
  uint32_t period = 0;
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) return rc;
  rc = wsrv_end(srv, &fx, send_store(srv, c, &fx, m, now_ms, &s, &known, &st, &period));
  if (rc == WHISPER_OK) { /* taken now, or before (known) */
    memcpy(c->last_sent, m->client_id.data, WSRV_ID_LEN);
    c->has_last_sent = 1;
  }
  if (rc == STALE) {
    rc = answer_stale(srv, c, id, &st);
  } else if (rc == WHISPER_OK && known) {
    rc = answer_sent(srv, c, id, known);
  } else if (rc == WHISPER_OK) {
    srv->stats.messages_sent++;
    wsrv_sent_written(srv, period);
    answer_sent(srv, c, id, &s);
    wsrv_fx_apply(srv, &fx, now_ms);
  }
  wsrv_fx_free(&fx);
  stale_free(&st);
  wsrv_msg_free(known);
  return rc;
}

/* --- Receipt -------------------------------------------------------------- */

static int receipt_check(whisper_server *srv, const Whisper__Sync__Receipt *m) {
  if (!wsrv_name_ok(m->to)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  if (!m->has_status || (m->status != STATUS_DELIVERED && m->status != STATUS_READ))
    return wsrv_refuse(srv, ERR_MALFORMED, "a receipt's status is 2 or 3");
  if (m->n_client_ids == 0 || m->n_client_ids > WSRV_LIST_MAX)
    return wsrv_refuse(srv, ERR_MALFORMED, "a receipt has 1 to 1024 client ids");
  for (size_t i = 0; i < m->n_client_ids; i++)
    if (!wsrv_bytes_ok(1, m->client_ids[i], WSRV_ID_LEN))
      return wsrv_refuse(srv, ERR_MALFORMED, "a client id is 16 bytes");
  if (m->has_group_id && m->group_id.len != WSRV_ID_LEN)
    return wsrv_refuse(srv, ERR_MALFORMED, "a group id is 16 bytes");
  return 0;
}

/* A reader who turned read receipts off sends none: the server drops them
 * (and answers Ok, so the reader's engine need not know). */
static int receipt_store(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx,
                         const Whisper__Sync__Receipt *m, uint64_t now_ms) {
  Whisper__Server__Device *me;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &me);
  if (rc != WHISPER_OK) return rc;
  int dropped = m->status == STATUS_READ && me->no_read_receipts;
  wsrv_msg_free(me);
  if (dropped) return WHISPER_OK;
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_status = 1;
  d.kind = ENTRY_RECEIPT;
  d.sender = c->account;
  d.sender_device = c->device_id;
  d.server_ts = now_ms;
  d.status = m->status;
  d.n_client_ids = m->n_client_ids;
  d.client_ids = m->client_ids;
  d.has_group_id = m->has_group_id;
  d.group_id = m->group_id;
  uint32_t skip = strcmp(m->to, c->account) == 0 ? c->device_id : 0;
  rc = wsrv_mailbox_append_account(srv, fx, m->to, skip, &d, 1);
  if (rc == WHISPER_ENOTFOUND) rc = wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
  return rc;
}

int wsrv_handle_receipt(whisper_server *srv, wsrv_conn *c, uint64_t id,
                        const Whisper__Sync__Receipt *m, uint64_t now_ms) {
  int rc = receipt_check(srv, m);
  if (rc) return rc;
  wsrv_fx fx = {0};
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) return rc;
  rc = wsrv_end(srv, &fx, receipt_store(srv, c, &fx, m, now_ms));
  if (rc == WHISPER_OK) {
    wsrv_send_ok(srv, c, id);
    wsrv_fx_apply(srv, &fx, now_ms);
  }
  wsrv_fx_free(&fx);
  return rc;
}

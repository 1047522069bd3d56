/*
 * Mailboxes: one per device, entries keyed by the device tag and a
 * sequence that only grows (the device record keeps the last one handed
 * out and the count). Entries are appended inside the caller's
 * transaction; after its commit they are pushed to the device's
 * connection, at most cfg.deliver_window unacknowledged at a time, and an
 * Ack deletes them and tells the senders DELIVERED.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define MKEY_LEN (WSRV_TAG_LEN + 8)
#define ACK_BATCH 256

static const uint64_t latency_bounds[12] = {1,   2,   5,   10,   25,   50,
                                            100, 250, 500, 1000, 5000, UINT64_MAX};

const uint64_t *whisper_server_latency_bounds(void) { return latency_bounds; }

static void mailbox_key(uint8_t out[MKEY_LEN], const uint8_t tag[WSRV_TAG_LEN], uint64_t seq) {
  memcpy(out, tag, WSRV_TAG_LEN);
  wsrv_be64(out + WSRV_TAG_LEN, seq);
}

/* --- effects -------------------------------------------------------------- */

int wsrv_muted(const Whisper__Server__Account *a, const char *conv, uint64_t now_ms) {
  for (size_t i = 0; a && conv && i < a->n_mutes; i++)
    if (a->mutes[i]->conversation && strcmp(a->mutes[i]->conversation, conv) == 0)
      return a->mutes[i]->until_ms > now_ms;
  return 0;
}

static int fx_touch(whisper_server *srv, wsrv_fx *fx, const wsrv_addr *a, uint64_t count) {
  for (size_t i = 0; i < fx->n; i++) {
    if (fx->touched[i].addr.len == a->len && memcmp(fx->touched[i].addr.key, a->key, a->len) == 0) {
      fx->touched[i].count = count;
      fx->touched[i].loud |= !fx->silent;
      return WHISPER_OK;
    }
  }
  if (fx->n == fx->cap) {
    size_t cap = fx->cap ? fx->cap * 2 : 8;
    wsrv_touched *t = realloc(fx->touched, cap * sizeof *t);
    if (t == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    fx->touched = t;
    fx->cap = cap;
  }
  fx->touched[fx->n].addr = *a;
  fx->touched[fx->n].count = count;
  fx->touched[fx->n].loud = !fx->silent;
  fx->n++;
  return WHISPER_OK;
}

void wsrv_fx_free(wsrv_fx *fx) {
  free(fx->touched);
  memset(fx, 0, sizeof *fx);
}

/* An offline device is woken once per offline period: the flag is
 * cleared when it logs in. */
static void wake(whisper_server *srv, const wsrv_touched *t) {
  if (!t->loud) return; /* only muted conversations brought something */
  wsrv_dev *d = wsrv_dev_get(srv, &t->addr);
  if (d == NULL || d->pushed) return;
  d->pushed = 1;
  wsrv_queue_push(srv, (const char *)t->addr.key, wsrv_rd32(t->addr.key + t->addr.len - 4),
                  t->count);
}

void wsrv_fx_apply(whisper_server *srv, wsrv_fx *fx, uint64_t now_ms) {
  if (fx->depth_delta < 0 && (uint64_t)-fx->depth_delta > srv->stats.mailbox_depth)
    srv->stats.mailbox_depth = 0;
  else
    srv->stats.mailbox_depth += (uint64_t)fx->depth_delta;
  for (size_t i = 0; i < fx->n; i++) {
    wsrv_dev *d = wsrv_map_get(&srv->devs, fx->touched[i].addr.key, fx->touched[i].addr.len);
    wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
    if (c && c->state == WSRV_AUTHED)
      wsrv_pump(srv, c, now_ms);
    else
      wake(srv, &fx->touched[i]);
  }
  wsrv_fx_free(fx);
}

/* --- appending ------------------------------------------------------------ */

int wsrv_mailbox_append(whisper_server *srv, wsrv_fx *fx, const char *name, uint32_t device_id,
                        Whisper__Sync__Deliver *d) {
  Whisper__Server__Device *dev;
  int rc = wsrv_device_get(srv, name, device_id, &dev);
  if (rc == WHISPER_ENOTFOUND) return wsrv_fail(srv, WHISPER_ECORRUPT, "a listed device is not stored");
  if (rc != WHISPER_OK) return rc;
  if (dev->mailbox_count >= srv->cfg.max_mailbox || dev->mailbox_last == UINT64_MAX) {
    wsrv_msg_free(dev);
    return wsrv_refuse(srv, ERR_LIMIT, "a recipient's mailbox is full");
  }
  wsrv_addr a;
  uint8_t tag[WSRV_TAG_LEN], key[MKEY_LEN];
  wsrv_addr_make(&a, name, device_id);
  wsrv_tag(srv, &a, tag);
  d->has_seq = 1;
  d->seq = dev->mailbox_last + 1;
  mailbox_key(key, tag, d->seq);
  rc = wsrv_put_msg(srv, WHISPER_REC_SERVER_MAILBOX, key, sizeof key, &d->base);
  if (rc == WHISPER_OK) {
    dev->has_mailbox_last = dev->has_mailbox_count = 1;
    dev->mailbox_last = d->seq;
    dev->mailbox_count++;
    rc = wsrv_device_put(srv, name, device_id, dev);
  }
  if (rc == WHISPER_OK) rc = fx_touch(srv, fx, &a, dev->mailbox_count);
  if (rc == WHISPER_OK) fx->depth_delta++;
  wsrv_msg_free(dev);
  return rc;
}

int wsrv_mailbox_append_account(whisper_server *srv, wsrv_fx *fx, const char *name,
                                uint32_t skip_device, Whisper__Sync__Deliver *d, int lossy) {
  Whisper__Server__Account *acc;
  int rc = wsrv_account_get(srv, name, &acc);
  if (rc != WHISPER_OK) return rc;
  int was = fx->silent;
  if (wsrv_muted(acc, fx->mute_conv, fx->now_ms)) fx->silent = 1;
  for (size_t i = 0; i < acc->n_devices && rc == WHISPER_OK; i++) {
    if (acc->devices[i]->device_id == skip_device) continue;
    rc = wsrv_mailbox_append(srv, fx, name, acc->devices[i]->device_id, d);
    if (rc == ERR_LIMIT && lossy) rc = WHISPER_OK;
  }
  fx->silent = was;
  wsrv_msg_free(acc);
  return rc;
}

/* --- pushing -------------------------------------------------------------- */

/* Makes the ring hold `n` more seqs (it grows by doubling, from 16 up to
 * the window: an idle connection has none, a quiet one a small one).
 * WHISPER_OK or WHISPER_ENOMEM. */
static int inflight_room(whisper_server *srv, wsrv_conn *c, uint32_t n) {
  uint32_t need = c->in_len + n;
  if (need <= c->in_cap) return WHISPER_OK;
  uint32_t cap = c->in_cap ? c->in_cap : 16;
  while (cap < need) cap *= 2;
  if (cap > srv->cfg.deliver_window) cap = srv->cfg.deliver_window;
  uint64_t *v = malloc((size_t)cap * sizeof *v);
  if (v == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < c->in_len; i++) v[i] = c->inflight[(c->in_head + i) % c->in_cap];
  free(c->inflight);
  c->inflight = v;
  c->in_cap = cap;
  c->in_head = 0;
  return WHISPER_OK;
}

static void inflight_push(wsrv_conn *c, uint64_t seq) {
  c->inflight[(c->in_head + c->in_len) % c->in_cap] = seq;
  c->in_len++;
}

/* Forgets the pushed entries an Ack covered: the window opens again. */
static void inflight_ack(wsrv_conn *c, uint64_t up_to) {
  while (c->in_len && c->inflight[c->in_head] <= up_to) {
    c->in_head = (c->in_head + 1) % c->in_cap;
    c->in_len--;
  }
}

static int push_entry(whisper_server *srv, wsrv_conn *c, const wsrv_rec *r) {
  Whisper__Sync__Deliver *d =
      whisper__sync__deliver__unpack(&wh_pb_alloc, r->val_len, r->val);
  if (d == NULL) return wsrv_fail(srv, WHISPER_ECORRUPT, "a mailbox entry is corrupt");
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  d->has_seq = 1;
  d->seq = wsrv_rd64(r->key + WSRV_TAG_LEN);
  f.body_case = WHISPER__SYNC__FRAME__BODY_DELIVER;
  f.deliver = d;
  int rc = wsrv_send(srv, c->id, &f);
  wsrv_msg_free(d);
  return rc;
}

static void queue_empty(whisper_server *srv, wsrv_conn *c) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__QueueEmpty q = WHISPER__SYNC__QUEUE_EMPTY__INIT;
  q.has_last_seq = 1;
  q.last_seq = c->sent_upto;
  f.body_case = WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY;
  f.queue_empty = &q;
  if (wsrv_send(srv, c->id, &f) == WHISPER_OK) c->backlog_done = 1;
}

/* A connection whose mailbox cannot be read is closed (the device
 * reconnects and resumes): `c` is freed then, so callers use it no more. */
void wsrv_pump(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  if (c->state != WSRV_AUTHED) return;
  uint32_t room = srv->cfg.deliver_window - c->in_len;
  if (room == 0) return;
  uint8_t bound[MKEY_LEN];
  wsrv_rec *recs;
  size_t n;
  mailbox_key(bound, c->tag, c->sent_upto);
  int rc = wsrv_scan(srv, WHISPER_REC_SERVER_MAILBOX, c->tag, WSRV_TAG_LEN, bound, sizeof bound,
                     room, &recs, &n);
  if (rc == WHISPER_OK) rc = inflight_room(srv, c, (uint32_t)n); /* n <= room */
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    if (recs[i].key_len != MKEY_LEN) continue;
    uint64_t seq = wsrv_rd64(recs[i].key + WSRV_TAG_LEN);
    rc = push_entry(srv, c, &recs[i]);
    if (rc == WHISPER_OK) inflight_push(c, seq);
    /* an entry that cannot be read is passed over; an Ack past it deletes it */
    if (rc == WHISPER_ECORRUPT) rc = WHISPER_OK;
    if (rc == WHISPER_OK) c->sent_upto = seq;
  }
  wsrv_recs_free(recs, n);
  if (rc != WHISPER_OK) {
    wsrv_conn_drop(srv, c, 1, now_ms);
    return;
  }
  if (n < room && !c->backlog_done) queue_empty(srv, c);
}

/* --- acknowledging -------------------------------------------------------- */

/* DELIVERED receipts being gathered: one per (sender, group), at most
 * WSRV_RECEIPT_IDS_MAX client ids each. */
typedef struct receipt {
  char sender[WSRV_NAME_MAX + 1];
  int has_group;
  uint8_t group[WSRV_ID_LEN];
  uint8_t (*ids)[WSRV_ID_LEN];
  size_t n;
} receipt;

typedef struct ack_state {
  receipt *r;
  size_t n, cap;
  uint64_t deleted;
  uint64_t le[12], lat_count, lat_sum;
} ack_state;

static receipt *receipt_for(ack_state *st, const char *sender, const Whisper__Sync__Deliver *d) {
  int has_group = wsrv_bytes_ok(d->has_group_id, d->group_id, WSRV_ID_LEN);
  for (size_t i = 0; i < st->n; i++) {
    receipt *r = &st->r[i];
    if (r->n < WSRV_RECEIPT_IDS_MAX && strcmp(r->sender, sender) == 0 &&
        r->has_group == has_group && (!has_group || memcmp(r->group, d->group_id.data, WSRV_ID_LEN) == 0))
      return r;
  }
  if (st->n == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 4;
    receipt *r = realloc(st->r, cap * sizeof *r);
    if (r == NULL) return NULL;
    st->r = r;
    st->cap = cap;
  }
  receipt *r = &st->r[st->n];
  memset(r, 0, sizeof *r);
  if ((r->ids = malloc(WSRV_RECEIPT_IDS_MAX * sizeof *r->ids)) == NULL) return NULL;
  snprintf(r->sender, sizeof r->sender, "%s", sender);
  r->has_group = has_group;
  if (has_group) memcpy(r->group, d->group_id.data, WSRV_ID_LEN);
  st->n++;
  return r;
}

static void latency_add(ack_state *st, uint64_t ms) {
  for (int i = 0; i < 12; i++)
    if (ms <= latency_bounds[i]) st->le[i]++;
  st->lat_count++;
  st->lat_sum += ms;
}

/* One acknowledged entry: a text message from another account earns its
 * sender a DELIVERED receipt (own-device copies do not: the account sent
 * them) and a latency sample. */
static int note_acked(whisper_server *srv, wsrv_conn *c, ack_state *st, const wsrv_rec *rec,
                      uint64_t now_ms) {
  Whisper__Sync__Deliver *d = whisper__sync__deliver__unpack(&wh_pb_alloc, rec->val_len, rec->val);
  if (d == NULL) return WHISPER_OK; /* a corrupt entry is deleted all the same */
  int rc = WHISPER_OK;
  if (d->kind == ENTRY_MESSAGE) {
    latency_add(st, now_ms > d->server_ts ? now_ms - d->server_ts : 0);
    if (d->content == CONTENT_TEXT && wsrv_name_ok(d->sender) &&
        strcmp(d->sender, c->account) != 0 &&
        wsrv_bytes_ok(d->has_client_id, d->client_id, WSRV_ID_LEN)) {
      receipt *r = receipt_for(st, d->sender, d);
      if (r == NULL)
        rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
      else
        memcpy(r->ids[r->n++], d->client_id.data, WSRV_ID_LEN);
    }
  }
  wsrv_msg_free(d);
  return rc;
}

/* Deletes the entries of c's mailbox up to `limit`, in batches (a scan
 * is over before its records are deleted). */
static int delete_upto(whisper_server *srv, wsrv_conn *c, ack_state *st, uint64_t limit,
                       uint64_t now_ms) {
  uint8_t bound[MKEY_LEN];
  int have_bound = 0, rc = WHISPER_OK, more = 1;
  while (rc == WHISPER_OK && more) {
    wsrv_rec *recs;
    size_t n;
    rc = wsrv_scan(srv, WHISPER_REC_SERVER_MAILBOX, c->tag, WSRV_TAG_LEN, have_bound ? bound : NULL,
                   sizeof bound, ACK_BATCH, &recs, &n);
    if (rc != WHISPER_OK) break;
    more = n == ACK_BATCH;
    for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
      if (recs[i].key_len != MKEY_LEN) continue;
      if (wsrv_rd64(recs[i].key + WSRV_TAG_LEN) > limit) {
        more = 0;
        break;
      }
      rc = note_acked(srv, c, st, &recs[i], now_ms);
      if (rc == WHISPER_OK) rc = wsrv_del(srv, WHISPER_REC_SERVER_MAILBOX, recs[i].key, MKEY_LEN);
      if (rc == WHISPER_OK) st->deleted++;
      memcpy(bound, recs[i].key, MKEY_LEN);
      have_bound = 1;
    }
    wsrv_recs_free(recs, n);
  }
  return rc;
}

static int count_down(whisper_server *srv, wsrv_conn *c, uint64_t deleted) {
  Whisper__Server__Device *dev;
  if (deleted == 0) return WHISPER_OK;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &dev);
  if (rc != WHISPER_OK) return rc;
  dev->has_mailbox_count = 1;
  dev->mailbox_count = dev->mailbox_count > deleted ? dev->mailbox_count - deleted : 0;
  rc = wsrv_device_put(srv, c->account, c->device_id, dev);
  wsrv_msg_free(dev);
  return rc;
}

/* Receipts go to every device of the sender's account; a full mailbox
 * loses its receipt rather than failing the Ack. */
static int send_receipts(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx, ack_state *st,
                         uint64_t now_ms) {
  int rc = WHISPER_OK;
  for (size_t i = 0; i < st->n && rc == WHISPER_OK; i++) {
    receipt *r = &st->r[i];
    ProtobufCBinaryData ids[WSRV_RECEIPT_IDS_MAX];
    for (size_t j = 0; j < r->n; j++) ids[j] = (ProtobufCBinaryData){WSRV_ID_LEN, r->ids[j]};
    Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
    d.has_kind = d.has_sender_device = d.has_server_ts = d.has_status = 1;
    d.kind = ENTRY_RECEIPT;
    d.sender = c->account;
    d.sender_device = c->device_id;
    d.server_ts = now_ms;
    d.status = STATUS_DELIVERED;
    d.n_client_ids = r->n;
    d.client_ids = ids;
    if (r->has_group) {
      d.has_group_id = 1;
      d.group_id = (ProtobufCBinaryData){WSRV_ID_LEN, r->group};
    }
    rc = wsrv_mailbox_append_account(srv, fx, r->sender, 0, &d, 1);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  return rc;
}

static void ack_state_free(ack_state *st) {
  for (size_t i = 0; i < st->n; i++) free(st->r[i].ids);
  free(st->r);
}

static void stats_add(whisper_server *srv, const ack_state *st) {
  srv->stats.entries_delivered += st->deleted;
  for (int i = 0; i < 12; i++) srv->stats.latency_le_ms[i] += st->le[i];
  srv->stats.latency_count += st->lat_count;
  srv->stats.latency_sum_ms += st->lat_sum;
}

/* Only entries pushed on this connection (or stored before it, up to
 * resume_after) can be acknowledged: an Ack past them would delete
 * entries the device never saw. */
int wsrv_handle_ack(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Ack *m,
                    uint64_t now_ms) {
  if (!m->has_up_to) return wsrv_refuse(srv, ERR_MALFORMED, "Ack needs up_to");
  uint64_t limit = m->up_to < c->sent_upto ? m->up_to : c->sent_upto;
  ack_state st = {0};
  wsrv_fx fx = {0};
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = delete_upto(srv, c, &st, limit, now_ms);
  if (rc == WHISPER_OK) rc = count_down(srv, c, st.deleted);
  fx.depth_delta = -(int64_t)st.deleted;
  if (rc == WHISPER_OK) rc = send_receipts(srv, c, &fx, &st, now_ms);
  rc = wsrv_end(srv, &fx, rc);
  if (rc == WHISPER_OK) {
    stats_add(srv, &st);
    inflight_ack(c, limit);
    wsrv_send_ok(srv, c, id);
    wsrv_pump(srv, c, now_ms); /* may drop c: the last use of it */
    wsrv_fx_apply(srv, &fx, now_ms);
  }
  wsrv_fx_free(&fx);
  ack_state_free(&st);
  return rc;
}

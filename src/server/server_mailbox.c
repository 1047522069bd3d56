/*
 * Mailboxes: one per device, entries keyed by the device tag and a
 * sequence that only grows (the device record keeps the last one handed
 * out, the count and the bytes). Entries are appended inside the caller's
 * transaction; after its commit they are pushed to the device's
 * connection, at most cfg.deliver_window unacknowledged at a time, and an
 * Ack deletes them and tells the senders DELIVERED.
 *
 * Quotas: a mailbox holds at most cfg.max_mailbox entries and
 * cfg.max_mailbox_bytes, and of them at most cfg.sender_max_entries and
 * cfg.sender_max_bytes from any one other account, so that no account
 * fills another's mailbox and blocks the mail of everyone else. What each
 * other account holds in a mailbox is a share record, written with each
 * entry it appends and lowered by the Ack that deletes them (an entry of
 * the account's own devices has none).
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define MKEY_LEN (WSRV_TAG_LEN + 8)
#define SKEY_LEN (2 * WSRV_TAG_LEN)
#define ACK_BATCH 256

static const uint64_t latency_bounds[12] = {1,   2,   5,   10,   25,   50,
                                            100, 250, 500, 1000, 5000, UINT64_MAX};

const uint64_t *whisper_server_latency_bounds(void) { return latency_bounds; }

static void mailbox_key(uint8_t out[MKEY_LEN], const uint8_t tag[WSRV_TAG_LEN], uint64_t seq) {
  memcpy(out, tag, WSRV_TAG_LEN);
  wh_be64(out + WSRV_TAG_LEN, seq);
}

/* --- effects -------------------------------------------------------------- */

int wsrv_muted(const Whisper__Server__Account *a, const char *conv, uint64_t now_ms) {
  for (size_t i = 0; a && conv && i < a->n_mutes; i++)
    if (a->mutes[i]->conversation && strcmp(a->mutes[i]->conversation, conv) == 0)
      return a->mutes[i]->until_ms > now_ms;
  return 0;
}

static wsrv_touched *fx_touch(whisper_server *srv, wsrv_fx *fx, const wsrv_addr *a,
                              uint64_t count) {
  for (size_t i = 0; i < fx->n; i++) {
    if (fx->touched[i].addr.len == a->len && memcmp(fx->touched[i].addr.key, a->key, a->len) == 0) {
      fx->touched[i].count = count;
      fx->touched[i].loud |= !fx->silent;
      return &fx->touched[i];
    }
  }
  if (fx->n == fx->cap) {
    size_t cap = fx->cap ? fx->cap * 2 : 8;
    wsrv_touched *t = realloc(fx->touched, cap * sizeof *t);
    if (t == NULL) {
      wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
      return NULL;
    }
    fx->touched = t;
    fx->cap = cap;
  }
  wsrv_touched *t = &fx->touched[fx->n++];
  memset(t, 0, sizeof *t);
  t->addr = *a;
  t->count = count;
  t->loud = !fx->silent;
  return t;
}

/* Keeps an appended entry (its key and packed bytes, taken over, and what
 * its push notes) for the push after the commit, if the device is
 * online; else frees it. */
static void fx_keep(whisper_server *srv, wsrv_touched *t, const uint8_t *key, uint8_t *val,
                    size_t len, const wsrv_inflight *e) {
  wsrv_dev *d = wsrv_map_get(&srv->devs, t->addr.key, t->addr.len);
  if (d && d->conn && !t->pre_lost) {
    if (t->n_pre == t->cap_pre) {
      size_t cap = t->cap_pre ? t->cap_pre * 2 : 2;
      wsrv_rec *r = realloc(t->pre, cap * sizeof *r);
      if (r) t->pre = r;
      wsrv_inflight *m = r ? realloc(t->pre_e, cap * sizeof *m) : NULL;
      if (m) {
        t->pre_e = m;
        t->cap_pre = cap;
      }
    }
    uint8_t *k = t->n_pre < t->cap_pre ? malloc(MKEY_LEN) : NULL;
    if (k) {
      memcpy(k, key, MKEY_LEN);
      t->pre_e[t->n_pre] = *e;
      t->pre[t->n_pre++] = (wsrv_rec){k, val, MKEY_LEN, len};
      return;
    }
    t->pre_lost = 1; /* out of memory: the push reads the mailbox instead */
  }
  wh_wipe(val, len);
  free(val);
}

void wsrv_fx_free(wsrv_fx *fx) {
  for (size_t i = 0; i < fx->n; i++) {
    wsrv_recs_free(fx->touched[i].pre, fx->touched[i].n_pre);
    free(fx->touched[i].pre_e);
  }
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
  wsrv_queue_push(srv, (const char *)t->addr.key, wh_rd32(t->addr.key + t->addr.len - 4),
                  t->count);
}

static void pump_new(whisper_server *srv, wsrv_conn *c, const wsrv_touched *t, uint64_t now_ms);

void wsrv_fx_apply(whisper_server *srv, wsrv_fx *fx, uint64_t now_ms) {
  if (fx->depth_delta < 0 && (uint64_t)-fx->depth_delta > srv->stats.mailbox_depth)
    srv->stats.mailbox_depth = 0;
  else
    srv->stats.mailbox_depth += (uint64_t)fx->depth_delta;
  for (size_t i = 0; i < fx->n; i++) {
    wsrv_touched *t = &fx->touched[i];
    wsrv_dev *d = wsrv_map_get(&srv->devs, t->addr.key, t->addr.len);
    wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
    if (c && c->state == WSRV_AUTHED)
      pump_new(srv, c, t, now_ms);
    else if (!wsrv_cluster_wake(srv, &t->addr)) /* online on another node? */
      wake(srv, t);
  }
  wsrv_fx_free(fx);
}

/* --- what each sender holds ---------------------------------------------- */

/* Per sender (the tag of (sender, 0), as in its SHARE key): the entries
 * and bytes an Ack deletes. */
typedef struct tally {
  uint8_t sender[WSRV_TAG_LEN];
  uint64_t entries, bytes;
} tally;

typedef struct tallies {
  tally *t;
  size_t n, cap;
} tallies;

static int tally_add(tallies *ts, const uint8_t sender[WSRV_TAG_LEN], uint64_t bytes) {
  for (size_t i = 0; i < ts->n; i++)
    if (memcmp(ts->t[i].sender, sender, WSRV_TAG_LEN) == 0) {
      ts->t[i].entries++;
      ts->t[i].bytes += bytes;
      return WHISPER_OK;
    }
  if (ts->n == ts->cap) {
    size_t cap = ts->cap ? ts->cap * 2 : 8;
    tally *t = realloc(ts->t, cap * sizeof *t);
    if (t == NULL) return WHISPER_ENOMEM;
    ts->t = t;
    ts->cap = cap;
  }
  tally *t = &ts->t[ts->n++];
  memcpy(t->sender, sender, WSRV_TAG_LEN);
  t->entries = 1;
  t->bytes = bytes;
  return WHISPER_OK;
}

static void tallies_free(tallies *ts) {
  free(ts->t);
  memset(ts, 0, sizeof *ts);
}

/* An entry of mailbox `owner` from another account: its sender, else NULL. */
static const char *other_sender(const Whisper__Sync__Deliver *d, const char *owner) {
  return d->sender && wh_account_ok(d->sender) && strcmp(d->sender, owner) != 0 ? d->sender : NULL;
}

/* The tag of `sender` in SHARE keys: of (sender, 0), the account as a whole. */
static void sender_tag(const whisper_server *srv, const char *sender, uint8_t out[WSRV_TAG_LEN]) {
  wsrv_addr a;
  wsrv_addr_make(&a, sender, 0);
  wsrv_tag(srv, &a, out);
}

static int share_get(whisper_server *srv, const uint8_t key[SKEY_LEN], uint64_t *entries,
                     uint64_t *bytes) {
  Whisper__Server__Share *sh;
  *entries = *bytes = 0;
  int rc = wsrv_get_msg(srv, WHISPER_REC_SERVER_SHARE, key, SKEY_LEN,
                        &whisper__server__share__descriptor, (ProtobufCMessage **)&sh);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  *entries = sh->entries;
  *bytes = sh->bytes;
  wsrv_msg_free(sh);
  return WHISPER_OK;
}

/* Nothing held: no record. */
static int share_put(whisper_server *srv, const uint8_t key[SKEY_LEN], uint64_t entries,
                     uint64_t bytes) {
  if (entries == 0) return wsrv_del(srv, WHISPER_REC_SERVER_SHARE, key, SKEY_LEN);
  Whisper__Server__Share sh = WHISPER__SERVER__SHARE__INIT;
  sh.has_entries = sh.has_bytes = 1;
  sh.entries = entries;
  sh.bytes = bytes;
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_SHARE, key, SKEY_LEN, &sh.base);
}

/* An entry of `size` bytes from `sender` (another account) is to join the
 * mailbox under `tag`: 0 with its share counted, or ERR_LIMIT. */
static int share_take(whisper_server *srv, const uint8_t tag[WSRV_TAG_LEN],
                      const uint8_t sender[WSRV_TAG_LEN], uint64_t size) {
  const whisper_server_config_t *cfg = &srv->cfg;
  uint8_t key[SKEY_LEN];
  uint64_t entries, bytes;
  memcpy(key, tag, WSRV_TAG_LEN);
  memcpy(key + WSRV_TAG_LEN, sender, WSRV_TAG_LEN);
  int rc = share_get(srv, key, &entries, &bytes);
  if (rc != WHISPER_OK) return rc;
  if (entries >= cfg->sender_max_entries || size > cfg->sender_max_bytes ||
      bytes > cfg->sender_max_bytes - size)
    return wsrv_refuse(srv, ERR_LIMIT, "a recipient's mailbox holds all it takes from this account");
  return share_put(srv, key, entries + 1, bytes + size);
}

/* --- shares: counted while a mailbox is busy ----------------------------- */

/* A small mailbox keeps no share records (Device.shares_lazy): while it
 * holds less than half of a sender's share (sender_max_entries,
 * sender_max_bytes), no account can come near its share, so appending and
 * acknowledging count nothing. When an append brings it to half, its
 * shares are counted from its entries (shares_count) before the
 * transaction commits (wsrv_shares_rebuild: a frame refused after the
 * append does not undo the count, so no sender can make the server count
 * again and again) and kept exactly from then on, until the mailbox is
 * empty again. An append that needs them before that (half a share
 * appended in one transaction) counts them at once. A device record from
 * before this (no shares_lazy) has its shares kept; it turns lazy once its
 * mailbox is empty. */

static int lazy_room(const whisper_server *srv, const Whisper__Server__Device *dev,
                     uint64_t size) {
  const whisper_server_config_t *cfg = &srv->cfg;
  return dev->mailbox_count < cfg->sender_max_entries && size <= cfg->sender_max_bytes &&
         dev->mailbox_bytes <= cfg->sender_max_bytes - size;
}

static int half_full(const whisper_server *srv, const Whisper__Server__Device *dev) {
  const whisper_server_config_t *cfg = &srv->cfg;
  return dev->mailbox_count >= cfg->sender_max_entries / 2 + cfg->sender_max_entries % 2 ||
         dev->mailbox_bytes >= cfg->sender_max_bytes / 2 + cfg->sender_max_bytes % 2;
}

static int rebuild_request(whisper_server *srv, const char *name, uint32_t device_id) {
  wsrv_addr a;
  wsrv_addr_make(&a, name, device_id);
  for (size_t i = 0; i < srv->n_rebuild; i++)
    if (srv->rebuild[i].len == a.len && memcmp(srv->rebuild[i].key, a.key, a.len) == 0)
      return WHISPER_OK;
  if (srv->n_rebuild == srv->cap_rebuild) {
    size_t cap = srv->cap_rebuild ? srv->cap_rebuild * 2 : 8;
    wsrv_addr *r = realloc(srv->rebuild, cap * sizeof *r);
    if (r == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    srv->rebuild = r;
    srv->cap_rebuild = cap;
  }
  srv->rebuild[srv->n_rebuild++] = a;
  return WHISPER_OK;
}

/* Counts the shares of the mailbox under `tag` (of `name`) from its
 * entries, replacing whatever share records it had, and marks `dev` (the
 * caller writes it) as keeping them. */
static int shares_count(whisper_server *srv, const char *name, const uint8_t tag[WSRV_TAG_LEN],
                        Whisper__Server__Device *dev) {
  uint64_t gone;
  tallies ts = {0};
  uint8_t bound[MKEY_LEN];
  int have_bound = 0, more = 1;
  int rc = wsrv_delete_under(srv, WHISPER_REC_SERVER_SHARE, tag, &gone);
  while (rc == WHISPER_OK && more) {
    wsrv_rec *recs;
    size_t n;
    rc = wsrv_scan(srv, WHISPER_REC_SERVER_MAILBOX, tag, WSRV_TAG_LEN, have_bound ? bound : NULL,
                   sizeof bound, ACK_BATCH, &recs, &n);
    if (rc != WHISPER_OK) break;
    more = n == ACK_BATCH;
    for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
      if (recs[i].key_len != MKEY_LEN) continue;
      memcpy(bound, recs[i].key, MKEY_LEN);
      have_bound = 1;
      Whisper__Sync__Deliver *d =
          whisper__sync__deliver__unpack(&wh_pb_alloc, recs[i].val_len, recs[i].val);
      const char *other = d ? other_sender(d, name) : NULL; /* (unreadable: counts for nobody) */
      if (other) {
        uint8_t st[WSRV_TAG_LEN];
        sender_tag(srv, other, st);
        if (tally_add(&ts, st, recs[i].val_len) != WHISPER_OK)
          rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
      }
      wsrv_msg_free(d);
    }
    wsrv_recs_free(recs, n);
  }
  for (size_t i = 0; rc == WHISPER_OK && i < ts.n; i++) {
    uint8_t key[SKEY_LEN];
    memcpy(key, tag, WSRV_TAG_LEN);
    memcpy(key + WSRV_TAG_LEN, ts.t[i].sender, WSRV_TAG_LEN);
    rc = share_put(srv, key, ts.t[i].entries, ts.t[i].bytes);
  }
  tallies_free(&ts);
  if (rc == WHISPER_OK) {
    dev->has_shares_lazy = 1;
    dev->shares_lazy = 0;
  }
  return rc;
}

int wsrv_shares_rebuild(whisper_server *srv) {
  int rc = WHISPER_OK;
  for (size_t i = 0; rc == WHISPER_OK && i < srv->n_rebuild; i++) {
    const wsrv_addr *a = &srv->rebuild[i];
    const char *name = (const char *)a->key;
    uint32_t device_id = wh_rd32(a->key + a->len - 4);
    Whisper__Server__Device *dev;
    rc = wsrv_device_get(srv, name, device_id, &dev);
    if (rc == WHISPER_ENOTFOUND) { /* gone since (removed by its account) */
      rc = WHISPER_OK;
      continue;
    }
    if (rc != WHISPER_OK) break;
    if (dev->shares_lazy && half_full(srv, dev)) { /* (still: the append may have been undone) */
      uint8_t tag[WSRV_TAG_LEN];
      wsrv_tag(srv, a, tag);
      rc = shares_count(srv, name, tag, dev);
      if (rc == WHISPER_OK) rc = wsrv_device_put(srv, name, device_id, dev);
    }
    wsrv_msg_free(dev);
  }
  srv->n_rebuild = 0;
  return rc;
}

/* --- appending ------------------------------------------------------------ */

/* Whether acknowledging entry `d` of `owner`'s mailbox earns its sender a
 * DELIVERED receipt: a text message from another account (own-device
 * copies do not: the account sent them). */
static int earns_receipt_in(const char *owner, const Whisper__Sync__Deliver *d) {
  return d->kind == ENTRY_MESSAGE && d->content == CONTENT_TEXT && wh_account_ok(d->sender) &&
         strcmp(d->sender, owner) != 0 &&
         wsrv_bytes_ok(d->has_client_id, d->client_id, WSRV_ID_LEN);
}

int wsrv_mailbox_append(whisper_server *srv, wsrv_fx *fx, const char *name, uint32_t device_id,
                        Whisper__Sync__Deliver *d) {
  Whisper__Server__Device *dev;
  int rc = wsrv_device_get(srv, name, device_id, &dev);
  if (rc == WHISPER_ENOTFOUND) return wsrv_fail(srv, WHISPER_ECORRUPT, "a listed device is not stored");
  if (rc != WHISPER_OK) return rc;
  d->has_seq = 1;
  d->seq = dev->mailbox_last + 1;
  uint64_t size = protobuf_c_message_get_packed_size(&d->base);
  if (dev->mailbox_count >= srv->cfg.max_mailbox || dev->mailbox_last == UINT64_MAX ||
      size > srv->cfg.max_mailbox_bytes || dev->mailbox_bytes > srv->cfg.max_mailbox_bytes - size) {
    wsrv_msg_free(dev);
    return wsrv_refuse(srv, ERR_LIMIT, "a recipient's mailbox is full");
  }
  wsrv_addr a;
  uint8_t tag[WSRV_TAG_LEN], key[MKEY_LEN];
  wsrv_addr_make(&a, name, device_id);
  wsrv_tag(srv, &a, tag);
  const char *sender = other_sender(d, name);
  /* what its push notes (push_entry reads the same from the entry) */
  wsrv_inflight e = {.seq = d->seq, .server_ts = d->server_ts,
                     .len = (uint32_t)(size < UINT32_MAX ? size : UINT32_MAX),
                     .message = d->kind == ENTRY_MESSAGE,
                     .slow = (uint8_t)earns_receipt_in(name, d), .other = sender != NULL};
  int lazy = dev->shares_lazy;
  if (!lazy && dev->mailbox_count == 0) { /* nothing held: nothing to count */
    lazy = 1;
    dev->has_shares_lazy = dev->shares_lazy = 1;
  }
  if (sender) {
    sender_tag(srv, sender, e.sender);
    if (lazy && !lazy_room(srv, dev, size)) { /* (see "shares" above) */
      rc = shares_count(srv, name, tag, dev);
      lazy = 0;
    }
    if (rc == WHISPER_OK && !lazy) rc = share_take(srv, tag, e.sender, size);
  }
  mailbox_key(key, tag, d->seq);
  size_t len = (size_t)size;
  uint8_t *buf = NULL;
  if (rc == WHISPER_OK && (buf = malloc(len ? len : 1)) == NULL)
    rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (rc == WHISPER_OK) {
    whisper__sync__deliver__pack(d, buf);
    rc = wsrv_put(srv, WHISPER_REC_SERVER_MAILBOX, key, sizeof key, buf, len);
  }
  if (rc == WHISPER_OK) {
    dev->has_mailbox_last = dev->has_mailbox_count = dev->has_mailbox_bytes = 1;
    dev->mailbox_last = d->seq;
    dev->mailbox_count++;
    dev->mailbox_bytes += size;
    rc = wsrv_device_put(srv, name, device_id, dev);
    if (rc == WHISPER_OK && lazy && half_full(srv, dev)) rc = rebuild_request(srv, name, device_id);
  }
  wsrv_touched *t = rc == WHISPER_OK ? fx_touch(srv, fx, &a, dev->mailbox_count) : NULL;
  if (t) {
    fx->depth_delta++;
    fx_keep(srv, t, key, buf, len, &e); /* takes buf */
  } else {
    if (rc == WHISPER_OK) rc = WHISPER_ENOMEM;
    if (buf) {
      wh_wipe(buf, len);
      free(buf);
    }
  }
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

static wsrv_inflight *inflight_at(const wsrv_conn *c, uint32_t i) {
  return &c->inflight[(c->in_head + i) % c->in_cap];
}

/* Room for one more in the ring (at most the window: callers check),
 * which grows from 8 as needed: an idle connection holds none. */
static int inflight_room(whisper_server *srv, wsrv_conn *c) {
  if (c->in_len < c->in_cap) return WHISPER_OK;
  uint32_t cap = c->in_cap ? c->in_cap * 2 : 8;
  if (cap > srv->cfg.deliver_window) cap = srv->cfg.deliver_window;
  wsrv_inflight *r = malloc((size_t)cap * sizeof *r);
  if (r == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < c->in_len; i++) r[i] = *inflight_at(c, i);
  free(c->inflight);
  c->inflight = r;
  c->in_cap = cap;
  c->in_head = 0;
  return WHISPER_OK;
}

static void inflight_push(wsrv_conn *c, const wsrv_inflight *e) {
  *inflight_at(c, c->in_len) = *e;
  c->in_len++;
  c->in_bytes += e->len;
}

/* Forgets the pushed entries an Ack covered: the window opens again. */
static void inflight_ack(wsrv_conn *c, uint64_t up_to) {
  while (c->in_len && c->inflight[c->in_head].seq <= up_to) {
    uint32_t len = c->inflight[c->in_head].len;
    c->in_bytes = c->in_bytes > len ? c->in_bytes - len : 0;
    c->in_head = (c->in_head + 1) % c->in_cap;
    c->in_len--;
  }
}

/* Whether an entry of `len` stored bytes may be pushed now: the window has
 * room for one more, and its bytes stay within WSRV_INFLIGHT_BYTES (an
 * entry always goes when nothing is in flight, whatever its size). */
static int window_open(const whisper_server *srv, const wsrv_conn *c, size_t len) {
  return c->in_len < srv->cfg.deliver_window &&
         (c->in_len == 0 || c->in_bytes + len <= WSRV_INFLIGHT_BYTES);
}

static int earns_receipt(const wsrv_conn *c, const Whisper__Sync__Deliver *d) {
  return earns_receipt_in(c->account, d);
}

/* Pushes one entry and notes it in flight (an entry that does not read is
 * passed over, noted as one its Ack must read: the Ack deletes it). */
static int push_entry(whisper_server *srv, wsrv_conn *c, const wsrv_rec *r) {
  wsrv_inflight e = {.seq = wh_rd64(r->key + WSRV_TAG_LEN), .slow = 1};
  if (inflight_room(srv, c) != WHISPER_OK) return WHISPER_ENOMEM;
  Whisper__Sync__Deliver *d =
      whisper__sync__deliver__unpack(&wh_pb_alloc, r->val_len, r->val);
  if (d == NULL) {
    inflight_push(c, &e);
    return wsrv_fail(srv, WHISPER_ECORRUPT, "a mailbox entry is corrupt");
  }
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  d->has_seq = 1;
  d->seq = e.seq;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DELIVER;
  f.deliver = d;
  int rc = wsrv_send(srv, c->id, &f);
  if (rc == WHISPER_OK) {
    e.message = d->kind == ENTRY_MESSAGE;
    e.server_ts = d->server_ts;
    e.slow = (uint8_t)earns_receipt(c, d);
    const char *other = other_sender(d, c->account);
    if (other) { /* its Ack lowers this sender's share without reading it */
      e.other = 1;
      sender_tag(srv, other, e.sender);
    }
    e.len = (uint32_t)(r->val_len < UINT32_MAX ? r->val_len : UINT32_MAX);
    inflight_push(c, &e);
  }
  wsrv_msg_free(d);
  return rc;
}

/* An entry appended by this server (fx_keep: its seq in its bytes, what
 * its push notes made with it): pushed around its bytes, not read back. */
static int push_kept(whisper_server *srv, wsrv_conn *c, const wsrv_rec *r, const wsrv_inflight *e) {
  if (inflight_room(srv, c) != WHISPER_OK) return WHISPER_ENOMEM;
  int rc = wsrv_send_deliver(srv, c->id, r->val, r->val_len);
  if (rc == WHISPER_OK) inflight_push(c, e);
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

/* Pushes records (entries in seq order) while the window has room (in
 * entries and in bytes); how many went (an error stops it). */
static int push_recs(whisper_server *srv, wsrv_conn *c, const wsrv_rec *recs,
                     const wsrv_inflight *meta, size_t n, size_t *done) {
  int rc = WHISPER_OK;
  *done = 0;
  for (size_t i = 0; rc == WHISPER_OK && i < n && window_open(srv, c, recs[i].val_len); i++) {
    *done = i + 1;
    if (recs[i].key_len != MKEY_LEN) continue;
    uint64_t seq = wh_rd64(recs[i].key + WSRV_TAG_LEN);
    rc = meta ? push_kept(srv, c, &recs[i], &meta[i]) : push_entry(srv, c, &recs[i]);
    /* an entry that cannot be read is passed over; an Ack past it deletes it */
    if (rc == WHISPER_ECORRUPT) rc = WHISPER_OK;
    if (rc == WHISPER_OK) c->sent_upto = seq;
  }
  return rc;
}

/* A connection whose mailbox cannot be read is closed (the device
 * reconnects and resumes): `c` is freed then, so callers use it no more.
 * The mailbox is read only when something may wait in it: not when the
 * last read found the end and every entry since was handed over by
 * pump_new (c->idle). */
/* How many entries a pump reads next: what the window has room for, at
 * most WSRV_PUMP_CHUNK, and, when its bytes are the limit, about as many
 * as fit in them at the size of the entries in flight (so that a backlog
 * of large entries is not read a window at a time to push a few). */
static uint32_t pump_want(const whisper_server *srv, const wsrv_conn *c) {
  uint32_t want = srv->cfg.deliver_window - c->in_len;
  if (want > WSRV_PUMP_CHUNK) want = WSRV_PUMP_CHUNK;
  if (c->in_len && c->in_bytes) {
    uint64_t avg = c->in_bytes / c->in_len + 1;
    uint64_t left = c->in_bytes < WSRV_INFLIGHT_BYTES ? WSRV_INFLIGHT_BYTES - c->in_bytes : 0;
    uint64_t fit = left / avg + 1;
    if (fit < want) want = (uint32_t)fit;
  }
  return want;
}

void wsrv_pump(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  if (c->state != WSRV_AUTHED) return;
  wsrv_batch_conn(srv, c); /* its window may move past entries of the batch */
  if (c->idle && c->backlog_done && c->in_len < srv->cfg.deliver_window) return;
  for (;;) {
    if (c->in_len >= srv->cfg.deliver_window || (c->in_len && c->in_bytes >= WSRV_INFLIGHT_BYTES)) {
      c->idle = 0; /* entries may come while it is full: read them when it opens */
      return;
    }
    uint32_t want = pump_want(srv, c);
    uint8_t bound[MKEY_LEN];
    wsrv_rec *recs;
    size_t n, done = 0;
    mailbox_key(bound, c->tag, c->sent_upto);
    int rc = wsrv_scan(srv, WHISPER_REC_SERVER_MAILBOX, c->tag, WSRV_TAG_LEN, bound, sizeof bound,
                       want, &recs, &n);
    if (rc == WHISPER_OK) rc = push_recs(srv, c, recs, NULL, n, &done);
    wsrv_recs_free(recs, n);
    if (rc != WHISPER_OK) {
      wsrv_conn_drop(srv, c, 1, now_ms);
      return;
    }
    if (done < n) { /* the window filled (its bytes): the rest when it opens */
      c->idle = 0;
      return;
    }
    if (n < want) { /* the end of the mailbox */
      c->idle = 1;
      if (!c->backlog_done) queue_empty(srv, c);
      return;
    }
  }
}

/* After a transaction that appended entries for c's device (in t->pre, in
 * seq order, when they could be kept): if c had everything before them,
 * they are pushed from memory; else the mailbox is read. */
static void pump_new(whisper_server *srv, wsrv_conn *c, const wsrv_touched *t, uint64_t now_ms) {
  int direct = c->idle && c->backlog_done && !t->pre_lost && t->n_pre > 0 &&
               wh_rd64(t->pre[0].key + WSRV_TAG_LEN) == c->sent_upto + 1;
  for (size_t i = 1; direct && i < t->n_pre; i++)
    direct = wh_rd64(t->pre[i].key + WSRV_TAG_LEN) == wh_rd64(t->pre[i - 1].key + WSRV_TAG_LEN) + 1;
  if (!direct) {
    c->idle = 0;
    wsrv_pump(srv, c, now_ms);
    return;
  }
  wsrv_batch_conn(srv, c);
  size_t done;
  int rc = push_recs(srv, c, t->pre, t->pre_e, t->n_pre, &done);
  if (rc != WHISPER_OK) {
    wsrv_conn_drop(srv, c, 1, now_ms);
    return;
  }
  if (done < t->n_pre) c->idle = 0; /* the window filled: the rest is read when it opens */
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
  uint64_t bytes;     /* of the entries deleted */
  tallies senders;    /* what each other account had in them */
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
  st->bytes += rec->val_len;
  Whisper__Sync__Deliver *d = whisper__sync__deliver__unpack(&wh_pb_alloc, rec->val_len, rec->val);
  if (d == NULL) return WHISPER_OK; /* a corrupt entry is deleted all the same */
  int rc = WHISPER_OK;
  const char *other = other_sender(d, c->account);
  if (other) {
    uint8_t tag[WSRV_TAG_LEN];
    sender_tag(srv, other, tag);
    if (tally_add(&st->senders, tag, rec->val_len) != WHISPER_OK) {
      wsrv_msg_free(d);
      return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    }
  }
  if (d->kind == ENTRY_MESSAGE) {
    latency_add(st, now_ms > d->server_ts ? now_ms - d->server_ts : 0);
    if (earns_receipt(c, d)) {
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
      if (wh_rd64(recs[i].key + WSRV_TAG_LEN) > limit) {
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

/* The senders' shares lose what was deleted. */
static int shares_down(whisper_server *srv, wsrv_conn *c, const tallies *ts) {
  uint8_t key[SKEY_LEN];
  uint64_t entries, bytes;
  int rc = WHISPER_OK;
  for (size_t i = 0; rc == WHISPER_OK && i < ts->n; i++) {
    memcpy(key, c->tag, WSRV_TAG_LEN);
    memcpy(key + WSRV_TAG_LEN, ts->t[i].sender, WSRV_TAG_LEN);
    rc = share_get(srv, key, &entries, &bytes);
    if (rc != WHISPER_OK) break;
    entries = entries > ts->t[i].entries ? entries - ts->t[i].entries : 0;
    bytes = bytes > ts->t[i].bytes ? bytes - ts->t[i].bytes : 0;
    rc = share_put(srv, key, entries, bytes);
  }
  return rc;
}

/* The fast way, once an Ack went through on this connection and nothing
 * it did not push is left (resume_after is behind): the entries up to
 * `limit` are exactly those in flight, deleted by their keys without
 * reading them (the senders' shares lowered from what the push noted),
 * unless one must be read (a receipt to make, or it did not read). 1 if
 * it applies. */
static int fast_ack_applies(whisper_server *srv, const wsrv_conn *c, uint64_t limit) {
  if (!c->acked_known || c->acked_upto < c->resume_after) return 0;
  (void)srv;
  for (uint32_t i = 0; i < c->in_len; i++) {
    const wsrv_inflight *e = inflight_at(c, i);
    if (e->seq > limit) break;
    if (e->slow) return 0;
  }
  return 1;
}

static int delete_inflight(whisper_server *srv, wsrv_conn *c, ack_state *st, uint64_t limit,
                           uint64_t now_ms) {
  int rc = WHISPER_OK;
  for (uint32_t i = 0; rc == WHISPER_OK && i < c->in_len; i++) {
    const wsrv_inflight *e = inflight_at(c, i);
    if (e->seq > limit) break;
    uint8_t key[MKEY_LEN];
    mailbox_key(key, c->tag, e->seq);
    rc = wsrv_del(srv, WHISPER_REC_SERVER_MAILBOX, key, MKEY_LEN);
    if (rc == WHISPER_OK && e->other && tally_add(&st->senders, e->sender, e->len) != WHISPER_OK)
      rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    if (rc != WHISPER_OK) break;
    st->deleted++;
    st->bytes += e->len;
    if (e->message) latency_add(st, now_ms > e->server_ts ? now_ms - e->server_ts : 0);
  }
  return rc;
}

/* The device record and the senders' shares count the deletion. */
static int count_down(whisper_server *srv, wsrv_conn *c, const ack_state *st) {
  Whisper__Server__Device *dev;
  if (st->deleted == 0) return WHISPER_OK;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &dev);
  if (rc != WHISPER_OK) return rc;
  dev->has_mailbox_count = dev->has_mailbox_bytes = 1;
  dev->mailbox_count = dev->mailbox_count > st->deleted ? dev->mailbox_count - st->deleted : 0;
  dev->mailbox_bytes = dev->mailbox_bytes > st->bytes ? dev->mailbox_bytes - st->bytes : 0;
  if (!dev->shares_lazy) rc = shares_down(srv, c, &st->senders);
  if (dev->mailbox_count == 0) dev->has_shares_lazy = dev->shares_lazy = 1; /* all back to 0 */
  if (rc == WHISPER_OK) rc = wsrv_device_put(srv, c->account, c->device_id, dev);
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
  tallies_free(&st->senders);
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
  rc = fast_ack_applies(srv, c, limit) ? delete_inflight(srv, c, &st, limit, now_ms)
                                       : delete_upto(srv, c, &st, limit, now_ms);
  if (rc == WHISPER_OK) rc = count_down(srv, c, &st);
  fx.depth_delta = -(int64_t)st.deleted;
  if (rc == WHISPER_OK) rc = send_receipts(srv, c, &fx, &st, now_ms);
  rc = wsrv_end(srv, &fx, rc);
  if (rc == WHISPER_OK) {
    stats_add(srv, &st);
    inflight_ack(c, limit);
    if (!c->acked_known || limit > c->acked_upto) c->acked_upto = limit;
    c->acked_known = 1;
    wsrv_send_ok(srv, c, id);
    wsrv_pump(srv, c, now_ms); /* may drop c: the last use of it */
    wsrv_fx_apply(srv, &fx, now_ms);
  }
  wsrv_fx_free(&fx);
  ack_state_free(&st);
  return rc;
}

/*
 * The server core's public API: the connection table, frame intake
 * (size, parse, version, rate limit, login gate, dispatch), output
 * polling, stats and timers. The protocol itself is in the other
 * server_*.c files (server_internal.h lists them).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"
#include "versioned.h"

/* --- connections and in-memory devices ------------------------------------ */

static void conn_key(uint8_t out[8], uint64_t id) { wh_be64(out, id); }

wsrv_conn *wsrv_conn_find(const whisper_server *srv, uint64_t id) {
  uint8_t k[8];
  conn_key(k, id);
  return wsrv_map_get(&srv->conns, k, sizeof k);
}

wsrv_dev *wsrv_dev_get(whisper_server *srv, const wsrv_addr *a) {
  wsrv_dev *d = wsrv_map_get(&srv->devs, a->key, a->len);
  if (d) return d;
  if ((d = calloc(1, sizeof *d)) == NULL) return NULL;
  if (wsrv_map_put(&srv->devs, a->key, a->len, d) != WHISPER_OK) {
    free(d);
    return NULL;
  }
  return d;
}

static void conn_free(void *p) {
  wsrv_conn *c = p;
  if (c == NULL) return;
  for (size_t i = 0; i < c->n_subs; i++) free(c->subs[i]);
  free(c->subs);
  if (c->held) {
    wh_wipe(c->held, c->held_len);
    free(c->held);
  }
  free(c->inflight);
  wh_wipe(c, sizeof *c);
  free(c);
}

void wsrv_conn_drop(whisper_server *srv, wsrv_conn *c, int close_it, uint64_t now_ms) {
  uint8_t k[8];
  conn_key(k, c->id);
  wsrv_map_take(&srv->conns, k, sizeof k);
  wsrv_heap_del(&srv->conn_timers, &c->timer);
  wsrv_src_release(srv, c, now_ms);
  if (c->state == WSRV_AUTHED) {
    wsrv_dev *d = wsrv_map_get(&srv->devs, c->addr.key, c->addr.len);
    if (d && d->conn == c->id) d->conn = 0;
    wsrv_presence_logout(srv, c, now_ms);
    wsrv_cluster_offline(srv, c, now_ms);
    srv->stats.authenticated--;
  }
  wsrv_presence_unsubscribe(srv, c);
  if (close_it) wsrv_queue_close(srv, c->id);
  srv->stats.connections--;
  conn_free(c);
}

/* --- lifecycle ------------------------------------------------------------ */

static int config_ok(const whisper_server_config_t *c) {
  return c->version >= 1 && c->version <= WHISPER_SERVER_CONFIG_VERSION && c->max_frame >= 64 && c->max_group_members >= 1 &&
         c->max_devices >= 1 && c->rate_per_sec >= 1 && c->rate_burst >= 1 &&
         c->heartbeat_ms >= 1 && c->deliver_window >= 1 && c->deliver_window <= 65536 &&
         c->max_mailbox >= 1 && (c->version < 2 || c->max_reports >= 1) &&
         (c->version < 3 || (c->upload_token_ttl_ms >= 1 && c->blob_max_size >= 1 &&
                             c->blob_quota >= 1 && c->blob_ttl_ms >= 1)) &&
         (c->version < 4 ||
          (c->max_mailbox_bytes >= 1 && c->sender_max_entries >= 1 && c->sender_max_bytes >= 1 &&
           c->prekeys_per_requester >= 1 && c->prekeys_per_target >= 1 &&
           c->register_per_source >= 1 && c->link_per_source >= 1 &&
           c->prelogin_per_source >= 1 && c->sent_ttl_ms >= 1000));
}

/* How much of a caller's config struct there is: an older caller's ends
 * before the fields of later versions (they keep their defaults). */
static size_t config_size(unsigned version) {
  if (version >= 4) return sizeof(whisper_server_config_t);
  if (version == 3) return offsetof(whisper_server_config_t, max_mailbox_bytes);
  if (version == 2) return offsetof(whisper_server_config_t, upload_token_ttl_ms);
  return offsetof(whisper_server_config_t, max_reports);
}

int whisper_server_new(whisper_server **out, whisper_store *store,
                       const whisper_server_config_t *cfg) {
  static const whisper_server_config_t defaults = WHISPER_SERVER_CONFIG_INIT;
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  /* libwhisper-server reads libwhisper's store handles: the same version only. */
  if (whisper_version() != WHISPER_VERSION_NUMBER) return WHISPER_EVERSION;
  if (store == NULL || store->ops.version < 2 || (cfg && !config_ok(cfg))) return WHISPER_EINVAL;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  whisper_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL) return WHISPER_ENOMEM;
  srv->store = store;
  srv->cfg = defaults;
  if (cfg) memcpy(&srv->cfg, cfg, config_size(cfg->version));
  srv->cfg.version = WHISPER_SERVER_CONFIG_VERSION;
  int rc = wsrv_store_init(srv);
  if (rc == WHISPER_OK) rc = wsrv_limits_init(srv);
  if (rc != WHISPER_OK) {
    whisper_server_free(srv);
    return rc;
  }
  *out = srv;
  return WHISPER_OK;
}

static void free_value(void *p) { free(p); }

void whisper_server_free(whisper_server *srv) {
  if (srv == NULL) return;
  wsrv_map_clear(&srv->conns, conn_free);
  wsrv_map_clear(&srv->devs, free_value);
  wsrv_map_clear(&srv->accts, wsrv_acct_free);
  wsrv_map_clear(&srv->typing, free_value);
  wsrv_heap_free(&srv->conn_timers);
  wsrv_heap_free(&srv->acct_timers);
  wsrv_cluster_free(srv);
  wsrv_map_clear(&srv->srcs, free_value);
  wh_outq_clear(&srv->out, wsrv_out_item_free);
  wh_outq_clear(&srv->held, wsrv_out_item_free);
  if (srv->batch) wsrv_batch_rollback(srv); /* a batch never ended keeps nothing */
  wsrv_cache_free(srv);
  free(srv->rebuild);
  wsrv_out_free(srv->polled);
  wh_wipe(srv, sizeof *srv);
  free(srv);
}

int whisper_server_rng_set(whisper_server *srv, whisper_rng_fn fn, void *user) {
  if (srv == NULL) return WHISPER_EINVAL;
  srv->rng.fn = fn;
  srv->rng.user = fn ? user : NULL;
  return WHISPER_OK;
}

const char *whisper_server_last_error(const whisper_server *srv) {
  return srv ? srv->last_error : "no server";
}

/* --- opening and closing -------------------------------------------------- */

static int send_challenge(whisper_server *srv, wsrv_conn *c) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Challenge ch = WHISPER__SYNC__CHALLENGE__INIT;
  ch.has_nonce = 1;
  ch.nonce = (ProtobufCBinaryData){WSRV_NONCE_LEN, c->nonce};
  f.body_case = WHISPER__SYNC__FRAME__BODY_CHALLENGE;
  f.challenge = &ch;
  return wsrv_send(srv, c->id, &f);
}

static uint64_t conn_deadline(const whisper_server *srv, const wsrv_conn *c);

void wsrv_conn_rearm(whisper_server *srv, wsrv_conn *c) {
  wsrv_heap_set(&srv->conn_timers, &c->timer, conn_deadline(srv, c));
}

int whisper_server_connected(whisper_server *srv, uint64_t conn, uint64_t now_ms) {
  uint8_t k[8];
  if (srv == NULL || conn == 0 || wsrv_conn_find(srv, conn)) return WHISPER_EINVAL;
  /* (the delivery window's ring is made when the first entry is pushed:
   * an idle connection does not carry it) */
  wsrv_conn *c = calloc(1, sizeof *c);
  if (c == NULL || wsrv_heap_reserve(&srv->conn_timers, srv->conns.count + 1) != WHISPER_OK) {
    free(c);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  c->id = conn;
  c->opened_ms = c->last_rx_ms = now_ms;
  if (wh_random(&srv->rng, c->nonce, sizeof c->nonce) != 0) {
    conn_free(c);
    return wsrv_fail(srv, WHISPER_ERANDOM, "the random number generator failed");
  }
  conn_key(k, conn);
  int rc = wsrv_map_put(&srv->conns, k, sizeof k, c);
  if (rc == WHISPER_OK && (rc = send_challenge(srv, c)) != WHISPER_OK)
    wsrv_map_take(&srv->conns, k, sizeof k);
  if (rc != WHISPER_OK) {
    conn_free(c);
    return wsrv_fail(srv, rc, "out of memory");
  }
  wsrv_conn_rearm(srv, c);
  srv->stats.connections++;
  return WHISPER_OK;
}

void whisper_server_disconnected(whisper_server *srv, uint64_t conn, uint64_t now_ms) {
  if (srv == NULL) return;
  /* output queued for it goes too, also when the server had already
   * dropped the connection itself (its id may be reused) */
  wsrv_drop_output(srv, conn);
  wsrv_conn *c = wsrv_conn_find(srv, conn);
  if (c == NULL) return;
  wsrv_conn_drop(srv, c, 0, now_ms);
}

int whisper_server_conn_authenticated(const whisper_server *srv, uint64_t conn) {
  if (srv == NULL) return 0;
  const wsrv_conn *c = wsrv_conn_find(srv, conn);
  return c != NULL && c->state == WSRV_AUTHED;
}

/* --- intake --------------------------------------------------------------- */

/* Takes one frame's token; *retry_ms says when one is back. The bucket is
 * the device's once logged in (it outlives reconnects), else the
 * connection's. */
static int rate_take(whisper_server *srv, wsrv_conn *c, uint64_t now_ms, uint64_t *retry_ms) {
  wsrv_bucket *b = &c->bucket;
  if (c->state == WSRV_AUTHED) {
    wsrv_dev *d = wsrv_dev_get(srv, &c->addr);
    if (d) b = &d->bucket;
  }
  uint64_t cap = (uint64_t)srv->cfg.rate_burst * 1000, rate = srv->cfg.rate_per_sec;
  if (!b->init) {
    b->init = 1;
    b->milli = cap;
    b->at_ms = now_ms;
  }
  if (now_ms > b->at_ms) {
    uint64_t dt = now_ms - b->at_ms;
    b->milli = dt >= cap / rate + 1 ? cap : b->milli + dt * rate;
    if (b->milli > cap) b->milli = cap;
    b->at_ms = now_ms;
  }
  if (b->milli >= 1000) {
    b->milli -= 1000;
    return 1;
  }
  *retry_ms = (1000 - b->milli + rate - 1) / rate;
  return 0;
}

static int handle_ping(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Ping *m) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Pong p = WHISPER__SYNC__PONG__INIT;
  p.has_nonce = m->has_nonce;
  p.nonce = m->nonce;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PONG;
  f.pong = &p;
  return wsrv_send(srv, c->id, &f);
}

/* Frames allowed before login; `frame` holds f's bytes as received. */
static int dispatch_open(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__Frame *f,
                         const uint8_t *frame, size_t len, uint64_t now_ms, int *done) {
  *done = 1;
  switch (f->body_case) {
    case WHISPER__SYNC__FRAME__BODY_REGISTER:
      return wsrv_handle_register(srv, c, f->id, f->register_, frame, len, now_ms);
    case WHISPER__SYNC__FRAME__BODY_HELLO:
      return wsrv_handle_hello(srv, c, f->id, f->hello);
    case WHISPER__SYNC__FRAME__BODY_AUTH:
      return wsrv_handle_auth(srv, c, f->id, f->auth, now_ms);
    case WHISPER__SYNC__FRAME__BODY_LINK_REQUEST:
      return wsrv_handle_link_request(srv, c, f->id, f->link_request, now_ms);
    case WHISPER__SYNC__FRAME__BODY_PING:
      return handle_ping(srv, c, f->id, f->ping);
    default:
      *done = 0;
      return 0;
  }
}

/* Frames of a logged-in device. */
static int dispatch_authed(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__Frame *f,
                           uint64_t now_ms) {
  switch (f->body_case) {
    case WHISPER__SYNC__FRAME__BODY_UPLOAD:
      return wsrv_handle_upload(srv, c, f->id, f->upload);
    case WHISPER__SYNC__FRAME__BODY_FETCH:
      return wsrv_handle_fetch(srv, c, f->id, f->fetch, now_ms);
    case WHISPER__SYNC__FRAME__BODY_LIST_DEVICES:
      return wsrv_handle_list_devices(srv, c, f->id, f->list_devices);
    case WHISPER__SYNC__FRAME__BODY_SEND:
      return wsrv_handle_send(srv, c, f->id, f->send, now_ms);
    case WHISPER__SYNC__FRAME__BODY_ACK:
      return wsrv_handle_ack(srv, c, f->id, f->ack, now_ms);
    case WHISPER__SYNC__FRAME__BODY_RECEIPT:
      return wsrv_handle_receipt(srv, c, f->id, f->receipt, now_ms);
    case WHISPER__SYNC__FRAME__BODY_TYPING:
      return wsrv_handle_typing(srv, c, f->id, f->typing, now_ms);
    case WHISPER__SYNC__FRAME__BODY_PRESENCE_SET:
      return wsrv_handle_presence_set(srv, c, f->id, f->presence_set);
    case WHISPER__SYNC__FRAME__BODY_SUBSCRIBE:
      return wsrv_handle_subscribe(srv, c, f->id, f->subscribe);
    case WHISPER__SYNC__FRAME__BODY_GROUP:
      return wsrv_handle_group(srv, c, f->id, f->group, now_ms);
    case WHISPER__SYNC__FRAME__BODY_LINK_APPROVE:
      return wsrv_handle_link_approve(srv, c, f->id, f->link_approve, now_ms);
    case WHISPER__SYNC__FRAME__BODY_PUBLISH:
      return wsrv_handle_publish(srv, c, f->id, f->publish, now_ms);
    case WHISPER__SYNC__FRAME__BODY_PROFILE_SET:
      return wsrv_handle_profile_set(srv, c, f->id, f->profile_set);
    case WHISPER__SYNC__FRAME__BODY_PROFILE_GET:
      return wsrv_handle_profile_get(srv, c, f->id, f->profile_get);
    case WHISPER__SYNC__FRAME__BODY_BLOCK_SET:
      return wsrv_handle_block_set(srv, c, f->id, f->block_set, now_ms);
    case WHISPER__SYNC__FRAME__BODY_REPORT:
      return wsrv_handle_report(srv, c, f->id, f->report, now_ms);
    case WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH:
      return wsrv_handle_upload_auth(srv, c, f->id, f->upload_auth, now_ms);
    default:
      return wsrv_refuse(srv, ERR_MALFORMED, "not a request");
  }
}

static int dispatch(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__Frame *f,
                    const uint8_t *frame, size_t len, uint64_t now_ms) {
  if (!f->has_id || f->id == 0) return wsrv_refuse(srv, ERR_MALFORMED, "a request needs an id");
  int done, r = dispatch_open(srv, c, f, frame, len, now_ms, &done);
  if (done) return r;
  if ((f->body_case < WHISPER__SYNC__FRAME__BODY_REGISTER ||
       f->body_case > WHISPER__SYNC__FRAME__BODY_PUBLISH) &&
      !wsrv_is_profile_request(f->body_case) && f->body_case != WHISPER__SYNC__FRAME__BODY_BLOCK_SET &&
      f->body_case != WHISPER__SYNC__FRAME__BODY_REPORT &&
      f->body_case != WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH)
    return wsrv_refuse(srv, ERR_MALFORMED, "not a request");
  if (c->state != WSRV_AUTHED) return wsrv_refuse(srv, ERR_AUTH, "log in first");
  return dispatch_authed(srv, c, f, now_ms);
}

/* Answers a handler's result. `conn` is looked up again: a handler may
 * have closed it. */
static int answer(whisper_server *srv, uint64_t conn, uint64_t id, int r, uint64_t now_ms) {
  wsrv_conn *c = wsrv_conn_find(srv, conn);
  if (c == NULL) return r < 0 ? r : WHISPER_OK;
  if (r < 0) {
    wsrv_send_error(srv, conn, id, ERR_INTERNAL, "the server's store failed; retry", 0);
  } else if (r > 0) {
    wsrv_send_error(srv, conn, id, r, srv->refusal, r == ERR_RATE ? srv->refusal_retry_ms : 0);
  }
  c->malformed = r == ERR_MALFORMED ? c->malformed + 1 : 0;
  if (c->malformed >= WSRV_MALFORMED_MAX) wsrv_conn_drop(srv, c, 1, now_ms);
  return r < 0 ? r : WHISPER_OK;
}

int whisper_server_receive(whisper_server *srv, uint64_t conn, const uint8_t *frame, size_t len,
                           uint64_t now_ms) {
  if (srv == NULL || (frame == NULL && len)) return WHISPER_EINVAL;
  wsrv_conn *c = wsrv_conn_find(srv, conn);
  if (c == NULL) return WHISPER_ENOTFOUND;
  srv->stats.frames_in++;
  c->last_rx_ms = now_ms;
  srv->cluster.now_ms = now_ms;
  wsrv_batch_conn(srv, c);
  srv->refusal[0] = 0;
  if (len > srv->cfg.max_frame) {
    wsrv_send_error(srv, conn, 0, ERR_TOO_BIG, "the frame is over the size limit", 0);
    return WHISPER_OK;
  }
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(&wh_pb_alloc, len, frame);
  if (f == NULL) return answer(srv, conn, 0, wsrv_refuse(srv, ERR_MALFORMED, "the frame does not parse"), now_ms);
  uint64_t id = f->has_id ? f->id : 0, retry_ms = 0;
  int r;
  if (!f->has_version || f->version != WH_SYNC_PROTOCOL) {
    wsrv_send_error(srv, conn, id, ERR_VERSION, "this server speaks version 1", 0);
    wsrv_conn_drop(srv, c, 1, now_ms);
    r = WHISPER_OK;
  } else if (!rate_take(srv, c, now_ms, &retry_ms)) {
    wsrv_send_error(srv, conn, id, ERR_RATE, "over the rate limit", retry_ms);
    r = WHISPER_OK;
  } else {
    r = dispatch(srv, c, f, frame, len, now_ms);
    /* a lock conflict in a batch: the frames before it commit, it runs
     * alone (server_batch.c) and the batch goes on after it */
    if (r == WHISPER_EBUSY && wsrv_batch_split(srv, now_ms)) {
      for (int attempt = 1; attempt <= WSRV_BUSY_TRIES && r == WHISPER_EBUSY; attempt++) {
        if ((c = wsrv_conn_find(srv, conn)) == NULL) break;
        wsrv_busy_backoff(srv, attempt);
        srv->refusal[0] = 0;
        r = dispatch(srv, c, f, frame, len, now_ms);
      }
      wsrv_batch_resume(srv);
    }
    r = answer(srv, conn, id, r, now_ms);
  }
  wsrv_msg_free(f);
  wsrv_batch_settle(srv, now_ms);
  /* its deadline moved (the frame, a login, a held Register); the frame
   * may have closed it */
  if ((c = wsrv_conn_find(srv, conn)) != NULL) wsrv_conn_rearm(srv, c);
  return r;
}

/* --- output and stats ----------------------------------------------------- */

int whisper_server_take_output(whisper_server *srv, whisper_server_output_t *caller) {
  if (srv == NULL || caller == NULL) return 0;
  if (caller->size < WHISPER_SERVER_OUTPUT_SIZE_1_0) {
    snprintf(srv->last_error, sizeof srv->last_error,
             "out->size is %zu, smaller than any whisper_server_output_t (%zu): initialize it "
             "with WHISPER_SERVER_OUTPUT_INIT",
             caller->size, (size_t)WHISPER_SERVER_OUTPUT_SIZE_1_0);
    return WHISPER_EINVAL;
  }
  /* filled here, then the fields both sides have copied out */
  whisper_server_output_t output, *out = &output;
  wsrv_out_free(srv->polled);
  srv->polled = NULL;
  wsrv_out *o = (wsrv_out *)wh_outq_pop(&srv->out);
  if (o == NULL) return 0;
  srv->polled = o;
  memset(out, 0, sizeof *out);
  out->action = o->action;
  out->conn = o->conn;
  out->frame = o->frame;
  out->frame_len = o->len;
  out->account = o->action == WHISPER_SERVER_PUSH ? o->account : NULL;
  out->device_id = o->device_id;
  out->mailbox_depth = o->depth;
  if (o->action == WHISPER_SERVER_SEND) srv->stats.frames_out++;
  wh_versioned_out(caller, out, sizeof *out);
  return 1;
}

int whisper_server_stats(const whisper_server *srv, whisper_server_stats_t *out) {
  if (out == NULL || out->size < WHISPER_SERVER_STATS_SIZE_1_0) return WHISPER_EINVAL;
  whisper_server_stats_t zero;
  memset(&zero, 0, sizeof zero);
  /* the fields both sides have; the caller's size and newer fields kept */
  wh_versioned_out(out, srv ? &srv->stats : &zero, sizeof zero);
  return srv ? WHISPER_OK : WHISPER_EINVAL;
}

/* --- timers --------------------------------------------------------------- */

/* A connection not logged in must be by the auth timeout, unless it waits
 * for a link code to be approved (a person has to do that): link_until is
 * the expiry of the code it asked for or holds a Register on (hold() in
 * server_account.c), which is also when a held Register is answered. */
static uint64_t auth_deadline(const whisper_server *srv, const wsrv_conn *c) {
  uint64_t d = wsrv_after(c->opened_ms, srv->cfg.auth_timeout_ms);
  return c->link_until > d ? c->link_until : d;
}

static uint64_t conn_deadline(const whisper_server *srv, const wsrv_conn *c) {
  uint64_t d = wsrv_after(c->last_rx_ms, srv->cfg.heartbeat_ms);
  if (c->state != WSRV_AUTHED && auth_deadline(srv, c) < d) d = auth_deadline(srv, c);
  if (c->held && c->held_until < d) d = c->held_until;
  return d;
}

/* O(1): the earliest of the two heaps (every connection is in
 * conn_timers, at its deadline or, if the deadline moved away since,
 * earlier). */
uint64_t whisper_server_next_deadline(const whisper_server *srv) {
  if (srv == NULL) return UINT64_MAX;
  uint64_t d = wsrv_presence_deadline(srv), cluster = wsrv_cluster_deadline(srv);
  if (cluster < d) d = cluster;
  if (wsrv_limits_deadline(srv) < d) d = wsrv_limits_deadline(srv);
  const wsrv_timer *t = wsrv_heap_top(&srv->conn_timers);
  if (t && t->at < d) d = t->at;
  return d;
}

/* A lapsed link code is answered before the connection it kept open is
 * closed by the auth timeout (its Error is queued before the CLOSE).
 * Returns 1 if the connection was dropped (freed). */
static int conn_tick(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  if (c->held && now_ms >= c->held_until) wsrv_link_expire(srv, c);
  if (now_ms >= wsrv_after(c->last_rx_ms, srv->cfg.heartbeat_ms) ||
      (c->state != WSRV_AUTHED && now_ms >= auth_deadline(srv, c))) {
    wsrv_conn_drop(srv, c, 1, now_ms);
    return 1;
  }
  return 0;
}

#define conn_of(t) ((wsrv_conn *)(void *)((char *)(t) - offsetof(wsrv_conn, timer)))

static int typing_stale(void *value, void *arg) {
  const wsrv_typing *t = value;
  const uint64_t *cutoff = arg;
  return t->at_ms < *cutoff;
}

/* Only the connections whose timer is due: each is ticked, or, when its
 * deadline moved away since its timer was set (frames came in), set
 * again. O(due x log connections). */
void whisper_server_tick(whisper_server *srv, uint64_t now_ms) {
  if (srv == NULL) return;
  wsrv_timer *t;
  while ((t = wsrv_heap_top(&srv->conn_timers)) != NULL && t->at <= now_ms) {
    wsrv_conn *c = conn_of(t);
    if (conn_deadline(srv, c) <= now_ms && conn_tick(srv, c, now_ms)) continue;
    uint64_t d = conn_deadline(srv, c);
    wsrv_heap_set(&srv->conn_timers, t, d);
    if (d <= now_ms) break; /* cannot be put past now (a deadline at the end of time) */
  }
  wsrv_presence_tick(srv, now_ms);
  wsrv_cluster_tick(srv, now_ms);
  /* typing throttles older than the throttle period do nothing any more */
  if (now_ms >= wsrv_after(srv->typing_pruned_ms, 60000)) {
    uint64_t cutoff = now_ms > srv->cfg.typing_min_ms ? now_ms - srv->cfg.typing_min_ms : 0;
    wsrv_map_prune(&srv->typing, typing_stale, &cutoff, free);
    srv->typing_pruned_ms = now_ms;
  }
  wsrv_limits_tick(srv, now_ms);
}

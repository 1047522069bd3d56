/*
 * Cluster mode (server.h): several nodes over one shared store. The store
 * is the truth for everything durable; what lives only in a node's memory
 * (which devices are logged in where, typing) is told to the other nodes
 * as relays (server.proto Relay), broadcast by the caller.
 *
 * Each node keeps a view of the devices logged in on other nodes (`remote`:
 * address -> node), built from their ONLINE and OFFLINE relays, refreshed
 * by a HELLO (every node announces its devices again) and aged by
 * heartbeats: a node silent for WHISPER_SERVER_NODE_TIMEOUT_MS is taken
 * for gone, and its devices for offline.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define KIND(k) WHISPER__SERVER__RELAY__KIND__##k

/* --- sending ---------------------------------------------------------------- */

static void relay_queue(whisper_server *srv, Whisper__Server__Relay *r) {
  r->has_node = r->has_kind = 1;
  r->node = srv->cluster.node;
  size_t n = whisper__server__relay__get_packed_size(r);
  if (n > WHISPER_SERVER_RELAY_MAX) return; /* a typing notice never is */
  wsrv_out *o = calloc(1, sizeof *o);
  uint8_t *buf = malloc(n ? n : 1);
  if (o == NULL || buf == NULL) {
    free(o);
    free(buf);
    return; /* like a push: lost, and the heartbeat or a login repairs the view */
  }
  whisper__server__relay__pack(r, buf);
  o->action = WHISPER_SERVER_RELAY;
  o->frame = buf;
  o->len = n;
  wsrv_enqueue(srv, o);
}

static void relay_simple(whisper_server *srv, int kind, const char *account, uint32_t device_id) {
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = kind;
  r.account = (char *)account;
  if (device_id) {
    r.has_device_id = 1;
    r.device_id = device_id;
  }
  relay_queue(srv, &r);
}

void wsrv_cluster_online(whisper_server *srv, const wsrv_conn *c, int hidden) {
  if (!srv->cluster.node) return;
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = KIND(ONLINE);
  r.account = (char *)c->account;
  r.has_device_id = r.has_hidden = 1;
  r.device_id = c->device_id;
  r.hidden = hidden != 0;
  relay_queue(srv, &r);
}

void wsrv_cluster_offline(whisper_server *srv, const wsrv_conn *c, uint64_t now_ms) {
  if (!srv->cluster.node) return;
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = KIND(OFFLINE);
  r.account = (char *)c->account;
  r.has_device_id = r.has_at_ms = 1;
  r.device_id = c->device_id;
  r.at_ms = now_ms;
  relay_queue(srv, &r);
}

int wsrv_cluster_wake(whisper_server *srv, const wsrv_addr *a) {
  if (!srv->cluster.node) return 0;
  const char *name = (const char *)a->key;
  relay_simple(srv, KIND(WAKE), name, wh_rd32(a->key + a->len - 4));
  return wsrv_map_get(&srv->cluster.remote, a->key, a->len) != NULL;
}

void wsrv_cluster_frame(whisper_server *srv, const char *account, Whisper__Sync__Frame *f) {
  if (!srv->cluster.node) return;
  const wsrv_acct *a = wsrv_acct_find(srv, account);
  if (a == NULL || a->n_remote == 0) return; /* no device of it elsewhere */
  size_t n = wh_frame_prepare(f);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) return;
  whisper__sync__frame__pack(f, buf);
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = KIND(FRAME);
  r.account = (char *)account;
  r.has_frame = 1;
  r.frame = (ProtobufCBinaryData){n, buf};
  relay_queue(srv, &r);
  free(buf);
}

void wsrv_cluster_hidden(whisper_server *srv, const char *account, int hidden) {
  if (!srv->cluster.node) return;
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = KIND(HIDDEN);
  r.account = (char *)account;
  r.has_hidden = 1;
  r.hidden = hidden != 0;
  relay_queue(srv, &r);
}

void wsrv_cluster_linked(whisper_server *srv, const char *account, const uint8_t code[WSRV_ID_LEN]) {
  if (!srv->cluster.node) return;
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.kind = KIND(LINKED);
  r.account = (char *)account;
  r.has_frame = 1;
  r.frame = (ProtobufCBinaryData){WSRV_ID_LEN, (uint8_t *)code};
  relay_queue(srv, &r);
}

/* --- the clock of server_seq ------------------------------------------------ */

uint64_t wsrv_cluster_seq(whisper_server *srv) {
  wsrv_cluster *cl = &srv->cluster;
  uint64_t now = cl->now_ms < (UINT64_MAX >> 20) ? cl->now_ms : (UINT64_MAX >> 20) - 1;
  uint64_t seq = now << 20 | cl->node;
  if (seq <= cl->hlc) seq = ((cl->hlc >> 8) + 1) << 8 | cl->node; /* the counter bits */
  cl->hlc = seq;
  return seq;
}

/* --- the view of other nodes ------------------------------------------------ */

/* A device of another node goes offline in the view. */
static void remote_drop(whisper_server *srv, const wsrv_addr *a, uint64_t at_ms) {
  wsrv_remote *r = wsrv_map_take(&srv->cluster.remote, a->key, a->len);
  if (r == NULL) return;
  free(r);
  wsrv_presence_remote(srv, (const char *)a->key, 0, 0, at_ms);
}

static int remote_add(whisper_server *srv, const wsrv_addr *a, uint32_t node, int hidden,
                      uint64_t now_ms) {
  wsrv_remote *r = wsrv_map_get(&srv->cluster.remote, a->key, a->len);
  if (r) {
    r->node = node; /* moved between nodes */
    return wsrv_presence_remote(srv, (const char *)a->key, 2, hidden, now_ms);
  }
  if ((r = calloc(1, sizeof *r)) == NULL) return WHISPER_ENOMEM;
  r->node = node;
  if (wsrv_map_put(&srv->cluster.remote, a->key, a->len, r) != WHISPER_OK) {
    free(r);
    return WHISPER_ENOMEM;
  }
  return wsrv_presence_remote(srv, (const char *)a->key, 1, hidden, now_ms);
}

typedef struct node_match {
  uint32_t node;
  wsrv_addr *addrs;
  size_t n, cap;
} node_match;

/* Every device the view has on `node` goes offline. */
static void node_gone(whisper_server *srv, uint32_t node, uint64_t now_ms) {
  node_match m = {node, NULL, 0, 0};
  for (size_t i = 0; i < srv->cluster.remote.nbuckets; i++)
    for (wsrv_map_item *it = srv->cluster.remote.buckets[i]; it; it = it->next) {
      const wsrv_remote *r = it->value;
      if (r->node != node || it->key_len > WSRV_ADDR_MAX) continue;
      if (m.n == m.cap) {
        size_t cap = m.cap ? m.cap * 2 : 16;
        wsrv_addr *na = realloc(m.addrs, cap * sizeof *na);
        if (na == NULL) goto out;
        m.addrs = na;
        m.cap = cap;
      }
      memcpy(m.addrs[m.n].key, it->key, it->key_len);
      m.addrs[m.n++].len = it->key_len;
    }
out:
  for (size_t i = 0; i < m.n; i++) remote_drop(srv, &m.addrs[i], now_ms);
  free(m.addrs);
  srv->cluster.heard[node] = 0;
}

/* A HELLO: every device logged in here is announced again. */
static void announce_all(whisper_server *srv) {
  for (size_t i = 0; i < srv->conns.nbuckets; i++)
    for (wsrv_map_item *it = srv->conns.buckets[i]; it; it = it->next) {
      const wsrv_conn *c = it->value;
      if (c->state != WSRV_AUTHED) continue;
      const wsrv_acct *a = wsrv_acct_find(srv, c->account);
      wsrv_cluster_online(srv, c, a && a->hidden);
    }
}

/* The device logged in elsewhere: its connection here is an older one. */
static void close_local(whisper_server *srv, const wsrv_addr *a, uint64_t now_ms) {
  wsrv_dev *d = wsrv_map_get(&srv->devs, a->key, a->len);
  wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
  if (c) wsrv_conn_drop(srv, c, 1, now_ms);
}

/* A FRAME relay carries a typing notice (typing_to() in server_presence.c,
 * the only frame nodes relay): one with a valid sender and device,
 * started or not, and a 16-byte group id if any. *out gets it decoded. */
static int relay_notice(const Whisper__Server__Relay *r, Whisper__Sync__Frame **out) {
  *out = NULL;
  if (!r->has_frame || r->frame.len == 0) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(&wh_pb_alloc, r->frame.len, r->frame.data);
  if (f == NULL) return 0;
  const Whisper__Sync__TypingNotice *t = f->typing_notice;
  if (f->body_case != WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE || !wh_account_ok(t->from) ||
      !wsrv_device_ok(t->has_from_device, t->from_device) || !t->has_started ||
      (t->has_group_id && t->group_id.len != WSRV_ID_LEN)) {
    wsrv_msg_free(f);
    return 0;
  }
  *out = f;
  return 1;
}

static int relay_ok(const Whisper__Server__Relay *r, Whisper__Sync__Frame **notice) {
  *notice = NULL;
  if (!r->has_node || r->node < 1 || r->node > 255 || !r->has_kind) return 0;
  switch (r->kind) {
    case KIND(HELLO):
    case KIND(HEARTBEAT):
    case KIND(BYE):
      return 1;
    case KIND(ONLINE):
    case KIND(OFFLINE):
    case KIND(WAKE):
      return r->account && wh_account_ok(r->account) && wsrv_device_ok(r->has_device_id, r->device_id);
    case KIND(FRAME):
      return r->account && wh_account_ok(r->account) && relay_notice(r, notice);
    case KIND(HIDDEN):
      return r->account && wh_account_ok(r->account) && r->has_hidden;
    case KIND(LINKED):
      return r->account && wh_account_ok(r->account) && r->has_frame && r->frame.len == WSRV_ID_LEN;
    default:
      return 0;
  }
}

/* The typing notice of a FRAME relay goes to the local connections of the
 * account as this node makes it: the fields it checked, nothing else (a
 * relayed frame is never passed on as it came: another body, an id, or
 * unknown fields that protobuf-c would write back in a form the engines
 * cannot read). */
static void relay_typing(whisper_server *srv, const char *account, const Whisper__Sync__Frame *in) {
  const Whisper__Sync__TypingNotice *t = in->typing_notice;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__TypingNotice n = WHISPER__SYNC__TYPING_NOTICE__INIT;
  n.from = t->from;
  n.has_from_device = n.has_started = 1;
  n.from_device = t->from_device;
  n.started = t->started;
  n.has_expires_ms = t->has_expires_ms;
  n.expires_ms = t->expires_ms;
  n.has_group_id = t->has_group_id;
  n.group_id = t->group_id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE;
  f.typing_notice = &n;
  wsrv_presence_frame_local(srv, account, &f);
}

/* Everything is checked before anything changes: a malformed relay (also
 * one whose frame is not a well-formed typing notice) leaves no trace,
 * not even the time its node was last heard from. */
int whisper_server_relay(whisper_server *srv, const uint8_t *relay, size_t len, uint64_t now_ms) {
  if (srv == NULL || !srv->cluster.node || (relay == NULL && len > 0)) return WHISPER_EINVAL;
  Whisper__Sync__Frame *notice = NULL;
  Whisper__Server__Relay *r = whisper__server__relay__unpack(&wh_pb_alloc, len, relay);
  if (r == NULL || !relay_ok(r, &notice)) {
    wsrv_msg_free(r);
    return wsrv_fail(srv, WHISPER_EINVALIDMSG, "a relay from another node is malformed");
  }
  int rc = WHISPER_OK;
  if (r->node == srv->cluster.node) goto done; /* our own, back from the broadcast */
  srv->cluster.now_ms = now_ms;
  int first = srv->cluster.heard[r->node] == 0;
  srv->cluster.heard[r->node] = now_ms ? now_ms : 1;
  wsrv_addr a;
  if (r->account && r->kind != KIND(FRAME) && r->kind != KIND(HIDDEN) && r->kind != KIND(LINKED))
    wsrv_addr_make(&a, r->account, r->device_id);
  switch (r->kind) {
    case KIND(HELLO):
      if (!first) node_gone(srv, r->node, now_ms); /* it restarted: its old devices are gone */
      srv->cluster.heard[r->node] = now_ms ? now_ms : 1;
      announce_all(srv);
      break;
    case KIND(HEARTBEAT):
      break;
    case KIND(BYE):
      node_gone(srv, r->node, now_ms);
      break;
    case KIND(ONLINE): {
      close_local(srv, &a, now_ms);
      /* it logged in there: when it leaves, a new offline period starts,
       * in which this node wakes it again (as after a login here) */
      wsrv_dev *d = wsrv_map_get(&srv->devs, a.key, a.len);
      if (d) d->pushed = 0;
      rc = remote_add(srv, &a, r->node, r->hidden, now_ms);
      break;
    }
    case KIND(OFFLINE): {
      /* its last seen, as the other node's clock has it, but never in the
       * future of this node's: the grace period would run from then */
      uint64_t at = r->has_at_ms && r->at_ms < now_ms ? r->at_ms : now_ms;
      const wsrv_remote *rm = wsrv_map_get(&srv->cluster.remote, a.key, a.len);
      if (rm && rm->node == r->node) remote_drop(srv, &a, at);
      break;
    }
    case KIND(WAKE): {
      wsrv_dev *d = wsrv_map_get(&srv->devs, a.key, a.len);
      wsrv_conn *c = d && d->conn ? wsrv_conn_find(srv, d->conn) : NULL;
      if (c && c->state == WSRV_AUTHED) {
        c->idle = 0; /* entries came through another node: read the mailbox */
        wsrv_pump(srv, c, now_ms);
      }
      break;
    }
    case KIND(FRAME):
      relay_typing(srv, r->account, notice);
      break;
    case KIND(LINKED):
      wsrv_link_approved_elsewhere(srv, r->account, r->frame.data, now_ms);
      break;
    case KIND(HIDDEN): {
      wsrv_acct *ac = wsrv_acct_find(srv, r->account);
      if (ac && ac->hidden != (int)r->hidden) {
        ac->hidden = r->hidden;
        wsrv_presence_refresh(srv, r->account);
      }
      break;
    }
    default:
      break;
  }
done:
  wsrv_msg_free(notice);
  wsrv_msg_free(r);
  return rc;
}

/* --- joining, leaving, timers --------------------------------------------- */

int whisper_server_cluster(whisper_server *srv, uint32_t node, uint64_t now_ms) {
  if (srv == NULL || node < 1 || node > 255 || srv->cluster.node || srv->conns.count > 0)
    return WHISPER_EINVAL;
  srv->cluster.node = node;
  srv->cluster.now_ms = now_ms;
  /* other nodes write the same records: none may be kept between batches */
  srv->cache_keep = 0;
  srv->cluster.heartbeat_at = wsrv_after(now_ms, WHISPER_SERVER_HEARTBEAT_MS);
  relay_simple(srv, KIND(HELLO), NULL, 0);
  return WHISPER_OK;
}

void whisper_server_cluster_resync(whisper_server *srv, uint64_t now_ms) {
  if (srv == NULL || !srv->cluster.node) return;
  srv->cluster.now_ms = now_ms;
  relay_simple(srv, KIND(HELLO), NULL, 0);
  announce_all(srv);
  size_t n;
  void **conns = wsrv_map_values(&srv->conns, &n);
  /* a pump may drop its connection (a store failure), never another */
  for (size_t i = 0; i < n; i++) {
    wsrv_conn *c = conns[i];
    if (c->state == WSRV_AUTHED) {
      c->idle = 0;
      wsrv_pump(srv, c, now_ms);
    }
  }
  free(conns);
}

void whisper_server_cluster_leave(whisper_server *srv, uint64_t now_ms) {
  if (srv == NULL || !srv->cluster.node) return;
  srv->cluster.now_ms = now_ms;
  relay_simple(srv, KIND(BYE), NULL, 0);
}

void wsrv_cluster_tick(whisper_server *srv, uint64_t now_ms) {
  wsrv_cluster *cl = &srv->cluster;
  if (!cl->node) return;
  cl->now_ms = now_ms;
  if (now_ms >= cl->heartbeat_at) {
    relay_simple(srv, KIND(HEARTBEAT), NULL, 0);
    cl->heartbeat_at = wsrv_after(now_ms, WHISPER_SERVER_HEARTBEAT_MS);
  }
  for (uint32_t n = 1; n < 256; n++)
    if (cl->heard[n] && now_ms >= wsrv_after(cl->heard[n], WHISPER_SERVER_NODE_TIMEOUT_MS))
      node_gone(srv, n, now_ms);
}

uint64_t wsrv_cluster_deadline(const whisper_server *srv) {
  const wsrv_cluster *cl = &srv->cluster;
  if (!cl->node) return UINT64_MAX;
  uint64_t d = cl->heartbeat_at;
  for (uint32_t n = 1; n < 256; n++)
    if (cl->heard[n]) {
      uint64_t t = wsrv_after(cl->heard[n], WHISPER_SERVER_NODE_TIMEOUT_MS);
      if (t < d) d = t;
    }
  return d;
}

void wsrv_cluster_free(whisper_server *srv) { wsrv_map_clear(&srv->cluster.remote, free); }

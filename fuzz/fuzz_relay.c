/*
 * fuzz_relay: cluster mode's relays (server.h "cluster mode",
 * src/server/server_cluster.c). whisper_server_relay() decodes what other
 * nodes broadcast; this target drives a server core in cluster mode as
 * node 1 with sequences of relays (arbitrary bytes, or relays built from
 * fuzzed fields so that every kind and every check is reached, or node 1's
 * own last relay fed back as it is or as another node's), clock
 * advances, frames from its local connections, logins, resyncs and leaves.
 *
 * Every input starts from fuzz_sync.c's server world (alice.1, alice.2,
 * bob.1, carol.1 registered; five entries in bob.1's mailbox) on a
 * watching memory store: a new core joins the cluster as node 1 at
 * FZS_T0, alice.1 logs in on slot 0 and subscribes to the presence of
 * bob, carol, dave and erin, bob.1 logs in on slot 1 and subscribes to
 * alice, slot 2 is open, slot 3 closed. A second core (node 2) over the
 * same store takes every relay node 1 emits (what it says back is
 * dropped: a lossy broadcast).
 *
 * The input, operation after operation (a byte op: kind = op & 7,
 * slot = (op >> 3) & 3, flag = op >> 5):
 *   0 RAW     two bytes (big-endian) n, then n bytes: whisper_server_relay;
 *   1 RELAY   a relay made of fields (below), whisper_server_relay;
 *   2 ECHO    one byte m: the last relay node 1 emitted, fed back to it:
 *             as it is when m is 0 (its own), else from node m;
 *   3 TICK    one byte t: the clock moves t * 100 ms (t < 128) or
 *             (t - 127) s, then whisper_server_tick;
 *   4 RECV    two bytes n, then n bytes: a frame on the slot's connection;
 *   5 LOGIN   one byte d: Hello and Auth of device d % FZS_NDEV on the
 *             slot, signed over its challenge;
 *   6 CONN    flag & 1: the slot's connection closes, else it opens;
 *   7 RESYNC  flag & 2: one byte b: carol.1 (logged in on node 2 at the
 *             first such operation) sends a message through node 2 to
 *             alice.1 and alice.2 (b & 1) or to bob.1; node 2's relays
 *             (its ONLINE, the WAKEs of the mail) go to node 1 as relays;
 *             else flag & 1: whisper_server_cluster_leave, else
 *             whisper_server_cluster_resync.
 * A RELAY is six bytes p0..p5 (missing bytes are 0), then for a frame one
 * byte m and, when m >= 0x80, m & 0x7f bytes:
 *   p0  which fields are set: 1 node, 2 kind, 4 account, 8 device_id,
 *       0x10 hidden, 0x20 at_ms, 0x40 frame; 0x80 is the value of hidden;
 *   p1  node (low byte); p2: kind = p2 & 15 (8..15: not a kind), 0x10 adds
 *       256 to node, 0x20 adds 2^31;
 *   p3  account: RELAY_ACCOUNTS[p3 % 10] (five real accounts, an unknown
 *       one, "", a bad name, a name of 64 and one of 65 characters);
 *   p4  device_id: p4, but 0xF8.. are 0, 2^31-1, 2^31, 2^32-1, 1000,
 *       65536, 2^31-2, 3;
 *   p5  at_ms: now - p5 s (p5 < 128), now + (p5 - 128) s, 0 (254),
 *       2^64-1 (255);
 *   m   the frame: m < 0x80 a TypingNotice from RELAY_ACCOUNTS[m & 7],
 *       device {none, 1, 2, 2^31}[(m >> 3) & 3], started (m >> 5) & 1, in
 *       alice's group when (m >> 6) & 1; else the m & 0x7f bytes that
 *       follow.
 *
 * Asserts:
 *  - whisper_server_relay returns WHISPER_OK or WHISPER_EINVALIDMSG only,
 *    and EINVALIDMSG exactly for relays the harness finds malformed: not a
 *    Relay; no node or one outside 1..255; no kind or an unknown one;
 *    ONLINE, OFFLINE, WAKE without a valid account and device id; FRAME
 *    without a valid account or a frame that is not a TypingNotice with a
 *    valid sender and device, started, and a 16-byte group id if any;
 *    HIDDEN without an account or hidden; LINKED without an account or a
 *    16-byte code;
 *  - no relay writes the store (relays move in-memory state only); a
 *    malformed relay and a relay of node 1's own change nothing: no
 *    output, the same stats, deadline and cluster view;
 *  - the cluster view (which devices are online on which node, when each
 *    node was heard from) is exactly the harness's model after every
 *    operation: ONLINE adds or moves a device, OFFLINE drops it if it is
 *    on the sending node, HELLO from a node heard before and BYE drop all
 *    of its devices, a node silent for WHISPER_SERVER_NODE_TIMEOUT_MS is
 *    dropped at a tick; each account's count of remote devices matches;
 *  - per relay kind, the output: HEARTBEAT none; ONLINE closes the local
 *    connection of that device (and says OFFLINE for it), nothing else
 *    but presence notices; OFFLINE, BYE and HIDDEN only presence notices;
 *    WAKE only Deliver / QueueEmpty to that device's connection; FRAME
 *    exactly one TypingNotice to each logged-in connection of the account;
 *    HELLO an ONLINE relay for each logged-in connection;
 *  - every output is well formed: SEND frames decode as version-1 Frames
 *    with a body the server sends, to an open connection (pushes with id
 *    0, Errors with a documented code, never ERR_INTERNAL, presence with
 *    a last seen not in the future, typing notices from a valid device);
 *    CLOSE to an open connection; PUSH of a valid device that is neither
 *    logged in here nor online on another node; RELAY at most
 *    WHISPER_SERVER_RELAY_MAX bytes, a Relay of node 1 with a valid kind
 *    and the fields it needs, taken with WHISPER_OK by node 2;
 *  - a login says ONLINE, a logged-in connection closing says OFFLINE; a
 *    resync says HELLO and ONLINE for each logged-in connection; a leave
 *    says BYE and nothing else;
 *  - pushes: never of a device online anywhere, never twice in one offline
 *    period (which a login here or an ONLINE relay ends), and always for
 *    new mail (a WAKE relay) to a device offline everywhere and not woken
 *    since it last logged in, unless its account mutes something (the
 *    harness does not follow which entries are muted);
 *  - presence: an account with no device logged in anywhere is announced
 *    offline once the presence grace has run from when its last device
 *    left: after a tick, its subscribers' last notice does not say online;
 *    no notice has a last seen in the future;
 *  - after whisper_server_tick(now), whisper_server_next_deadline() > now;
 *  - the stats: connections == open connections, authenticated == the
 *    connections logged in (whisper_server_conn_authenticated agrees);
 *  - at the end, the two nodes' mailbox depths (each counts the change it
 *    made, from the stored depth at the start) add up to the stored
 *    entries (in cluster mode the store does not keep the total).
 * ASan/UBSan/LSan catch the rest.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sync.h"
#include "server.pb-c.h"
#include "server/server_internal.h"

#define NODE 1
#define PEER 2
#define PEER_CONN 1 /* node 2's connection */
#define KIND(k) WHISPER__SERVER__RELAY__KIND__##k

enum { OP_RAW, OP_RELAY, OP_ECHO, OP_TICK, OP_RECV, OP_LOGIN, OP_CONN, OP_RESYNC };
#define OP(kind, slot, flag) ((uint8_t)((kind) | (slot) << 3 | (flag) << 5))

/* p0 bits */
#define F_NODE 0x01
#define F_KIND 0x02
#define F_ACCOUNT 0x04
#define F_DEVICE 0x08
#define F_HIDDEN 0x10
#define F_AT 0x20
#define F_FRAME 0x40
#define F_HIDDEN_VALUE 0x80

#ifndef FZR_SEEDS_ONLY

#define N_ACCOUNTS 10
static const char *const RELAY_ACCOUNTS[N_ACCOUNTS] = {
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "zed",
    "",
    "Bad Name",
    "a123456789b123456789c123456789d123456789e123456789f123456789g123",
    "a123456789b123456789c123456789d123456789e123456789f123456789g1234"};
static const uint32_t DEVICE_SPECIAL[8] = {0,    0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu,
                                           1000, 65536,       0x7FFFFFFEu, 3};
static const uint32_t NOTICE_DEVICE[4] = {0, 1, 2, 0x80000000u};

static uint32_t field_device(uint8_t v) { return v >= 0xF8 ? DEVICE_SPECIAL[v - 0xF8] : v; }

static uint64_t field_at(uint8_t t, uint64_t now) {
  if (t == 254) return 0;
  if (t == 255) return UINT64_MAX;
  if (t < 128) return now >= (uint64_t)t * 1000 ? now - (uint64_t)t * 1000 : 0;
  return now + (uint64_t)(t - 128) * 1000;
}

/* Packs a relay into a new buffer (*len). */
static uint8_t *relay_pack(Whisper__Server__Relay *r, size_t *len) {
  *len = whisper__server__relay__get_packed_size(r);
  uint8_t *b = malloc(*len ? *len : 1);
  FZ_ASSERT(b != NULL, "out of memory");
  FZ_ASSERT(whisper__server__relay__pack(r, b) == *len, "relay pack");
  return b;
}

/* The relay of a RELAY operation's fields; *used: the bytes taken. */
static uint8_t *relay_from_fields(const uint8_t *in, size_t n, uint64_t now,
                                  const uint8_t group_id[16], size_t *len, size_t *used) {
  uint8_t p[6] = {0};
  size_t i = 0;
  for (; i < 6 && i < n; i++) p[i] = in[i];
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  r.has_node = (p[0] & F_NODE) != 0;
  r.node = p[1] | (p[2] & 0x10 ? 256u : 0) | (p[2] & 0x20 ? 0x80000000u : 0);
  r.has_kind = (p[0] & F_KIND) != 0;
  r.kind = (Whisper__Server__Relay__Kind)(p[2] & 15);
  if (p[0] & F_ACCOUNT) r.account = (char *)RELAY_ACCOUNTS[p[3] % N_ACCOUNTS];
  r.has_device_id = (p[0] & F_DEVICE) != 0;
  r.device_id = field_device(p[4]);
  r.has_hidden = (p[0] & F_HIDDEN) != 0;
  r.hidden = (p[0] & F_HIDDEN_VALUE) != 0;
  r.has_at_ms = (p[0] & F_AT) != 0;
  r.at_ms = field_at(p[5], now);
  uint8_t *frame = NULL;
  size_t frame_len = 0;
  if (p[0] & F_FRAME) {
    uint8_t m = i < n ? in[i++] : 0;
    if (m >= 0x80) {
      frame_len = m & 0x7f;
      if (frame_len > n - i) frame_len = n - i;
      frame = malloc(frame_len ? frame_len : 1);
      FZ_ASSERT(frame != NULL, "out of memory");
      if (frame_len) memcpy(frame, in + i, frame_len);
      i += frame_len;
    } else {
      Whisper__Sync__TypingNotice t = WHISPER__SYNC__TYPING_NOTICE__INIT;
      t.from = (char *)RELAY_ACCOUNTS[m & 7];
      t.has_from_device = NOTICE_DEVICE[(m >> 3) & 3] != 0;
      t.from_device = NOTICE_DEVICE[(m >> 3) & 3];
      t.has_started = t.has_expires_ms = 1;
      t.started = (m >> 5) & 1;
      t.expires_ms = now + 6000;
      if ((m >> 6) & 1) {
        t.has_group_id = 1;
        t.group_id = (ProtobufCBinaryData){16, (uint8_t *)group_id};
      }
      fzs_frame f = WHISPER__SYNC__FRAME__INIT;
      f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE;
      f.typing_notice = &t;
      whisper_buf *b = fzs_pack(&f, 0);
      frame_len = b->len;
      frame = malloc(b->len);
      FZ_ASSERT(frame != NULL, "out of memory");
      memcpy(frame, b->data, b->len);
      whisper_buf_free(b);
    }
    r.has_frame = 1;
    r.frame = (ProtobufCBinaryData){frame_len, frame};
  }
  *used = i;
  uint8_t *out = relay_pack(&r, len);
  free(frame);
  return out;
}

static fzs_server_world *W;

typedef struct slot {
  int open;
  int have_nonce;
  uint8_t nonce[32];
  int dev; /* the device logged in on it (index in W->dev), -1: none */
} slot;

/* The cluster view as the harness models it: (account, device) -> node. */
typedef struct vent {
  char account[WSRV_NAME_MAX + 1];
  uint32_t device, node;
} vent;

/* One output of the operation being checked. */
typedef struct outrec {
  int action;
  int slot;                        /* SEND, CLOSE */
  int body;                        /* SEND */
  uint64_t id;                     /* SEND */
  uint32_t code;                   /* SEND of an Error */
  int closed_dev;                  /* CLOSE: the device that was logged in on it (-1: none) */
  int kind;                        /* RELAY */
  char account[WSRV_NAME_MAX + 1]; /* RELAY, PUSH */
  uint32_t device;                 /* RELAY, PUSH */
} outrec;

#define OUT_MAX 256
#define N_WATCHED 5 /* RELAY_ACCOUNTS[0..4]: the world's accounts */

static struct {
  whisper_server *srv, *peer;
  uint64_t now;
  slot slot[FZS_SLOTS];
  uint64_t next_id;
  vent *view;
  size_t n_view, cap_view;
  uint64_t heard[256];
  uint8_t last_relay[WHISPER_SERVER_RELAY_MAX];
  size_t last_relay_len;
  outrec out[OUT_MAX];
  size_t n_out;
  int out_lost; /* more output than out[] holds: the per-operation checks are off */
  /* presence: the subscriptions of the start (slot 0 to bob, carol, dave,
   * erin; slot 1 to alice), until the connection closes; the last notice
   * each got (-1: none, 0 offline, 1 online); since when each account has
   * had no device logged in anywhere (0: it has one) */
  int watch[FZS_SLOTS][N_WATCHED];
  int last_online[FZS_SLOTS][N_WATCHED];
  uint64_t gone_since[N_WATCHED];
  /* pushes: a device is woken once per offline period (until it logs in,
   * here or on another node) */
  int pushed[FZS_NDEV];
  /* node 2's connection (carol.1, logged in at its first PEER operation):
   * 0 none yet, 1 logged in, -1 closed */
  int peer_state;
  uint8_t peer_nonce[32];
  uint64_t peer_sends;
  uint64_t depth0; /* the stored depth when the input started */
} H;

static uint32_t bob_regid;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...) {
  if (!fz_verbose()) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

static const char *kind_name(int k) {
  static const char *names[] = {"HELLO", "HEARTBEAT", "ONLINE", "OFFLINE",
                                "WAKE",  "FRAME",     "HIDDEN", "BYE",  "LINKED"};
  return k >= 0 && k < 9 ? names[k] : "(not a kind)";
}

/* Account names: 1..64 of [a-z0-9._-] (the protocol's rule, written out
 * again rather than taken from the server). */
static int name_ok(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
          s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

static int device_ok(int has, uint32_t id) { return has && id >= 1 && id <= 0x7FFFFFFFu; }

/* The world's device (account, device), or -1. */
static int world_dev(const char *account, uint32_t device) {
  for (int i = 0; i < FZS_NDEV; i++)
    if (W->dev[i]->device_id == device && strcmp(W->dev[i]->name, account) == 0) return i;
  return -1;
}

static int slot_of(uint64_t conn) { return conn >= 1 && conn <= FZS_SLOTS ? (int)conn - 1 : -1; }

static int slot_is(int k, const char *account, uint32_t device) {
  const slot *s = &H.slot[k];
  return s->open && s->dev >= 0 && strcmp(W->dev[s->dev]->name, account) == 0 &&
         W->dev[s->dev]->device_id == device;
}

/* --- the model of the cluster view ------------------------------------------- */

static vent *view_find(const char *account, uint32_t device) {
  for (size_t i = 0; i < H.n_view; i++)
    if (H.view[i].device == device && strcmp(H.view[i].account, account) == 0) return &H.view[i];
  return NULL;
}

static void view_put(const char *account, uint32_t device, uint32_t node) {
  vent *v = view_find(account, device);
  if (v) {
    v->node = node;
    return;
  }
  if (H.n_view == H.cap_view) {
    H.cap_view = H.cap_view ? H.cap_view * 2 : 16;
    H.view = realloc(H.view, H.cap_view * sizeof *H.view);
    FZ_ASSERT(H.view != NULL, "out of memory");
  }
  v = &H.view[H.n_view++];
  snprintf(v->account, sizeof v->account, "%s", account);
  v->device = device;
  v->node = node;
}

static void view_drop(const char *account, uint32_t device) {
  vent *v = view_find(account, device);
  if (v) *v = H.view[--H.n_view];
}

static void view_drop_node(uint32_t node) {
  for (size_t i = 0; i < H.n_view;)
    if (H.view[i].node == node)
      H.view[i] = H.view[--H.n_view];
    else
      i++;
  H.heard[node] = 0;
}

/* The core's view is the model's: the same devices on the same nodes, the
 * same times heard, and each account's count of remote devices. */
static void check_view(void) {
  const wsrv_cluster *cl = &H.srv->cluster;
  for (uint32_t n = 0; n < 256; n++)
    FZ_ASSERT(cl->heard[n] == H.heard[n], "node %u last heard at %llu, the model says %llu", n,
              (unsigned long long)cl->heard[n], (unsigned long long)H.heard[n]);
  FZ_ASSERT(cl->remote.count == H.n_view, "%zu devices online elsewhere, the model says %zu",
            cl->remote.count, H.n_view);
  for (size_t i = 0; i < cl->remote.nbuckets; i++)
    for (wsrv_map_item *it = cl->remote.buckets[i]; it; it = it->next) {
      FZ_ASSERT(it->key_len >= 6 && it->key_len <= WSRV_ADDR_MAX && it->key[it->key_len - 5] == 0,
                "a remote address of %zu bytes", it->key_len);
      const char *name = (const char *)it->key;
      uint32_t dev = wh_rd32(it->key + it->key_len - 4);
      const vent *v = view_find(name, dev);
      const wsrv_remote *r = it->value;
      FZ_ASSERT(v != NULL, "%s.%u is online on node %u, the model has it offline", name, dev,
                r->node);
      FZ_ASSERT(v->node == r->node, "%s.%u is online on node %u, the model says node %u", name, dev,
                r->node, v->node);
    }
  for (size_t i = 0; i < H.n_view; i++)
    FZ_ASSERT(wsrv_acct_find(H.srv, H.view[i].account) != NULL,
              "%s has a device online elsewhere but no presence state", H.view[i].account);
  for (size_t i = 0; i < H.srv->accts.nbuckets; i++)
    for (wsrv_map_item *it = H.srv->accts.buckets[i]; it; it = it->next) {
      const wsrv_acct *a = it->value;
      size_t n = 0;
      for (size_t j = 0; j < H.n_view; j++) n += strcmp(H.view[j].account, a->name) == 0;
      FZ_ASSERT(a->n_remote == n, "%s counts %zu devices elsewhere, the view holds %zu", a->name,
                a->n_remote, n);
    }
}

static void check_conns(void) {
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(H.srv, &st);
  uint64_t open = 0, authed = 0;
  for (int k = 0; k < FZS_SLOTS; k++) {
    open += H.slot[k].open;
    authed += H.slot[k].open && H.slot[k].dev >= 0;
    FZ_ASSERT(whisper_server_conn_authenticated(H.srv, (uint64_t)k + 1) ==
                  (H.slot[k].open && H.slot[k].dev >= 0),
              "connection %d: logged in says %d", k + 1,
              whisper_server_conn_authenticated(H.srv, (uint64_t)k + 1));
  }
  FZ_ASSERT(st.connections == open, "stats: %llu connections, %llu open",
            (unsigned long long)st.connections, (unsigned long long)open);
  FZ_ASSERT(st.authenticated == authed, "stats: %llu logged in, %llu connections logged in",
            (unsigned long long)st.authenticated, (unsigned long long)authed);
}

/* --- output ---------------------------------------------------------------------- */

/* A relay node 1 emitted: well formed, and taken by node 2. */
static void check_out_relay(const whisper_server_output_t *o, outrec *rec) {
  FZ_ASSERT(o->frame != NULL && o->frame_len > 0 && o->frame_len <= WHISPER_SERVER_RELAY_MAX,
            "a relay of %zu bytes", o->frame_len);
  Whisper__Server__Relay *r = whisper__server__relay__unpack(NULL, o->frame_len, o->frame);
  FZ_ASSERT(r != NULL, "node 1 emitted %zu bytes that are not a Relay", o->frame_len);
  FZ_ASSERT(r->has_node && r->node == NODE, "a relay of node %u", r->node);
  FZ_ASSERT(r->has_kind && (int)r->kind >= 0 && r->kind <= KIND(BYE), "a relay of kind %d",
            (int)r->kind);
  switch (r->kind) {
    case KIND(ONLINE):
    case KIND(OFFLINE):
    case KIND(WAKE):
      FZ_ASSERT(name_ok(r->account) && device_ok(r->has_device_id, r->device_id),
                "a %s relay of a bad device", kind_name(r->kind));
      break;
    case KIND(FRAME): {
      FZ_ASSERT(name_ok(r->account) && r->has_frame, "a FRAME relay without account or frame");
      fzs_frame *f = fzs_unpack(r->frame.data, r->frame.len);
      FZ_ASSERT(f && f->body_case == WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE,
                "a FRAME relay that is not a TypingNotice");
      fzs_frame_free(f);
      break;
    }
    case KIND(HIDDEN):
      FZ_ASSERT(name_ok(r->account) && r->has_hidden, "a HIDDEN relay without account or hidden");
      break;
    case KIND(LINKED):
      FZ_ASSERT(name_ok(r->account) && r->has_frame && r->frame.len == 16,
                "a LINKED relay without account or a 16-byte code");
      break;
    default:
      break;
  }
  rec->kind = (int)r->kind;
  snprintf(rec->account, sizeof rec->account, "%s", r->account ? r->account : "");
  rec->device = r->has_device_id ? r->device_id : 0;
  trace("    RELAY %s %s.%u (%zu bytes)\n", kind_name(rec->kind), rec->account, rec->device,
        o->frame_len);
  whisper__server__relay__free_unpacked(r, NULL);
  memcpy(H.last_relay, o->frame, o->frame_len);
  H.last_relay_len = o->frame_len;
  /* the broadcast: node 2 takes it (it has no connections: what it says
   * back is dropped) */
  int rc = whisper_server_relay(H.peer, H.last_relay, H.last_relay_len, H.now);
  FZ_ASSERT(rc == WHISPER_OK, "node 2 refused a relay of node 1: %d (%s)", rc,
            whisper_server_last_error(H.peer));
  whisper_server_output_t po = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(H.peer, &po) > 0) {
    FZ_ASSERT(po.action == WHISPER_SERVER_RELAY || po.action == WHISPER_SERVER_PUSH ||
                  (po.conn == PEER_CONN && H.peer_state == 1),
              "node 2 asked for action %d on connection %llu", po.action,
              (unsigned long long)po.conn);
    if (po.action == WHISPER_SERVER_DISCONNECT) H.peer_state = -1;
  }
}

static int view_has(const char *account, uint32_t device) {
  return view_find(account, device) != NULL;
}

/* Takes and checks all output; records it in H.out. */
static void drain(void) {
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(H.srv, &o) > 0) {
    outrec rec;
    memset(&rec, 0, sizeof rec);
    rec.action = o.action;
    rec.slot = -1;
    rec.kind = -1;
    rec.closed_dev = -1;
    if (o.action == WHISPER_SERVER_RELAY) {
      check_out_relay(&o, &rec);
    } else if (o.action == WHISPER_SERVER_PUSH) {
      trace("    PUSH %s.%u\n", o.account ? o.account : "(null)", o.device_id);
      FZ_ASSERT(o.account != NULL && name_ok(o.account) && device_ok(1, o.device_id),
                "a PUSH of a bad device");
      FZ_ASSERT(!view_has(o.account, o.device_id), "a PUSH of %s.%u, which is online on node %u",
                o.account, o.device_id, view_find(o.account, o.device_id)->node);
      for (int k = 0; k < FZS_SLOTS; k++)
        FZ_ASSERT(!slot_is(k, o.account, o.device_id), "a PUSH of %s.%u, logged in on %d",
                  o.account, o.device_id, k + 1);
      snprintf(rec.account, sizeof rec.account, "%s", o.account);
      rec.device = o.device_id;
      int d = world_dev(o.account, o.device_id);
      if (d >= 0) {
        FZ_ASSERT(!H.pushed[d], "%s.%u pushed twice in one offline period", o.account, o.device_id);
        H.pushed[d] = 1;
      }
    } else {
      int k = slot_of(o.conn);
      FZ_ASSERT(k >= 0 && H.slot[k].open,
                "output (action %d) for connection %llu, which is not open", o.action,
                (unsigned long long)o.conn);
      rec.slot = k;
      if (o.action == WHISPER_SERVER_DISCONNECT) {
        trace("    CLOSE %d\n", k + 1);
        rec.closed_dev = H.slot[k].dev;
        memset(H.watch[k], 0, sizeof H.watch[k]);
        H.slot[k].open = 0;
        H.slot[k].have_nonce = 0;
        H.slot[k].dev = -1;
      } else {
        FZ_ASSERT(o.action == WHISPER_SERVER_SEND, "unknown action %d", o.action);
        fzs_frame *f = fzs_unpack(o.frame, o.frame_len);
        FZ_ASSERT(f != NULL, "the server sent %zu bytes that are not a Frame", o.frame_len);
        FZ_ASSERT(f->has_version && f->version == 1, "a frame of version %u", f->version);
        FZ_ASSERT(fzs_is_server_body(f->body_case), "the server sent a frame with body %d (%s)",
                  f->body_case, fzs_body_name(f->body_case));
        uint64_t id = f->has_id ? f->id : 0;
        trace("    -> %d: %s id %llu\n", k + 1, fzs_body_name(f->body_case),
              (unsigned long long)id);
        if (fzs_is_push(f->body_case))
          FZ_ASSERT(id == 0, "a push with id %llu", (unsigned long long)id);
        rec.body = f->body_case;
        rec.id = id;
        switch (f->body_case) {
          case WHISPER__SYNC__FRAME__BODY_ERROR:
            FZ_ASSERT(f->error->has_code && f->error->code >= 1 && f->error->code <= 12,
                      "an Error with code %u", f->error->code);
            FZ_ASSERT(f->error->code != ERR_INTERNAL, "ERR_INTERNAL (%s)",
                      whisper_server_last_error(H.srv));
            rec.code = f->error->code;
            break;
          case WHISPER__SYNC__FRAME__BODY_CHALLENGE:
            FZ_ASSERT(f->challenge->has_nonce && f->challenge->nonce.len == 32, "a bad challenge");
            memcpy(H.slot[k].nonce, f->challenge->nonce.data, 32);
            H.slot[k].have_nonce = 1;
            break;
          case WHISPER__SYNC__FRAME__BODY_PRESENCE:
            FZ_ASSERT(name_ok(f->presence->account), "a PresenceNotice of a bad account");
            FZ_ASSERT(f->presence->last_seen_ms <= H.now,
                      "%s last seen at %llu, in the future (now %llu)", f->presence->account,
                      (unsigned long long)f->presence->last_seen_ms, (unsigned long long)H.now);
            for (int a = 0; a < N_WATCHED; a++)
              if (strcmp(f->presence->account, RELAY_ACCOUNTS[a]) == 0)
                H.last_online[k][a] = f->presence->online != 0;
            break;
          case WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE: {
            const Whisper__Sync__TypingNotice *t = f->typing_notice;
            FZ_ASSERT(name_ok(t->from) && device_ok(t->has_from_device, t->from_device) &&
                          t->has_started && (!t->has_group_id || t->group_id.len == 16),
                      "a TypingNotice that is not well formed");
            FZ_ASSERT(t->base.n_unknown_fields == 0 && f->base.n_unknown_fields == 0,
                      "a TypingNotice with unknown fields");
            break;
          }
          case WHISPER__SYNC__FRAME__BODY_DELIVER:
            FZ_ASSERT(f->deliver->has_seq && f->deliver->seq > 0, "a Deliver without its seq");
            break;
          default:
            break;
        }
        fzs_frame_free(f);
      }
    }
    if (H.n_out < OUT_MAX)
      H.out[H.n_out++] = rec;
    else
      H.out_lost = 1;
  }
}

/* 1 if a device of RELAY_ACCOUNTS[a] is logged in here or, as the view
 * has it, on another node. */
static int has_devices(int a) {
  for (int k = 0; k < FZS_SLOTS; k++)
    if (H.slot[k].open && H.slot[k].dev >= 0 &&
        strcmp(W->dev[H.slot[k].dev]->name, RELAY_ACCOUNTS[a]) == 0)
      return 1;
  for (size_t i = 0; i < H.n_view; i++)
    if (strcmp(H.view[i].account, RELAY_ACCOUNTS[a]) == 0) return 1;
  return 0;
}

/* An account without devices anywhere is announced offline once the
 * presence grace has run from when its last device left (a tick at or
 * after then): its subscribers' last notice does not say online. */
static void check_presence(int after_tick) {
  for (int a = 0; a < N_WATCHED; a++) {
    if (has_devices(a)) {
      H.gone_since[a] = 0;
      continue;
    }
    if (H.gone_since[a] == 0) H.gone_since[a] = H.now;
    if (!after_tick || H.now < wsrv_after(H.gone_since[a], W->cfg.presence_grace_ms)) continue;
    for (int k = 0; k < FZS_SLOTS; k++)
      FZ_ASSERT(!(H.watch[k][a] && H.last_online[k][a] == 1),
                "%s has had no device online since %llu ms, %llu ms ago, and connection %d still "
                "sees it online",
                RELAY_ACCOUNTS[a], (unsigned long long)(H.gone_since[a] - FZS_T0),
                (unsigned long long)(H.now - H.gone_since[a]), k + 1);
  }
}

static void op_begin(void) {
  H.n_out = 0;
  H.out_lost = 0;
}

/* After every operation. */
static void op_end(int after_tick) {
  check_conns();
  check_view();
  check_presence(after_tick);
}

static size_t count_out(int action, int body) {
  size_t n = 0;
  for (size_t i = 0; i < H.n_out; i++)
    n += H.out[i].action == action && (body < 0 || H.out[i].body == body);
  return n;
}

/* The relays of kind `kind` said in this operation for (account, device). */
static size_t count_relays(int kind, const char *account, uint32_t device) {
  size_t n = 0;
  for (size_t i = 0; i < H.n_out; i++)
    n += H.out[i].action == WHISPER_SERVER_RELAY && H.out[i].kind == kind &&
         (account == NULL || (strcmp(H.out[i].account, account) == 0 && H.out[i].device == device));
  return n;
}

/* A logged-in connection that closed said OFFLINE for its device. */
static void check_offline_said(int dev) {
  if (H.out_lost || dev < 0) return;
  FZ_ASSERT(count_relays(KIND(OFFLINE), W->dev[dev]->name, W->dev[dev]->device_id) >= 1,
            "%s.%u went offline without an OFFLINE relay", W->dev[dev]->name,
            W->dev[dev]->device_id);
}

static void check_closes(void) {
  for (size_t i = 0; i < H.n_out; i++)
    if (H.out[i].action == WHISPER_SERVER_DISCONNECT) check_offline_said(H.out[i].closed_dev);
}

/* Each logged-in connection has exactly one ONLINE relay among the output
 * (a HELLO's answer, a resync), and there is no other. */
static void check_online_all(void) {
  if (H.out_lost) return;
  size_t authed = 0;
  for (int k = 0; k < FZS_SLOTS; k++) {
    if (!H.slot[k].open || H.slot[k].dev < 0) continue;
    authed++;
    fz_dev *d = W->dev[H.slot[k].dev];
    FZ_ASSERT(count_relays(KIND(ONLINE), d->name, d->device_id) == 1,
              "%s.%u, logged in, announced %zu times", d->name, d->device_id,
              count_relays(KIND(ONLINE), d->name, d->device_id));
  }
  FZ_ASSERT(count_relays(KIND(ONLINE), NULL, 0) == authed, "%zu ONLINE relays for %zu devices",
            count_relays(KIND(ONLINE), NULL, 0), authed);
}

/* --- relays -------------------------------------------------------------------- */

/* What the harness makes of a relay: -1 malformed, else its kind; *out
 * (freed by the caller) the decoded relay. */
static int relay_judge(const uint8_t *b, size_t n, Whisper__Server__Relay **out) {
  Whisper__Server__Relay *r = whisper__server__relay__unpack(NULL, n, b);
  *out = r;
  if (r == NULL || !r->has_node || r->node < 1 || r->node > 255 || !r->has_kind) return -1;
  switch (r->kind) {
    case KIND(HELLO):
    case KIND(HEARTBEAT):
    case KIND(BYE):
      return (int)r->kind;
    case KIND(ONLINE):
    case KIND(OFFLINE):
    case KIND(WAKE):
      return name_ok(r->account) && device_ok(r->has_device_id, r->device_id) ? (int)r->kind : -1;
    case KIND(HIDDEN):
      return name_ok(r->account) && r->has_hidden ? (int)r->kind : -1;
    case KIND(LINKED):
      return name_ok(r->account) && r->has_frame && r->frame.len == 16 ? (int)r->kind : -1;
    case KIND(FRAME): {
      if (!name_ok(r->account) || !r->has_frame) return -1;
      fzs_frame *f = fzs_unpack(r->frame.data, r->frame.len);
      int ok = f && f->body_case == WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE &&
               name_ok(f->typing_notice->from) &&
               device_ok(f->typing_notice->has_from_device, f->typing_notice->from_device) &&
               f->typing_notice->has_started &&
               (!f->typing_notice->has_group_id || f->typing_notice->group_id.len == 16);
      fzs_frame_free(f);
      return ok ? (int)r->kind : -1;
    }
    default:
      return -1;
  }
}

typedef struct snapshot {
  whisper_server_stats_t st;
  uint64_t deadline, hlc, heartbeat_at;
  size_t accts;
} snapshot;

static void snap(snapshot *s) {
  memset(s, 0, sizeof *s);
  s->st.size = sizeof s->st;
  whisper_server_stats(H.srv, &s->st);
  s->deadline = whisper_server_next_deadline(H.srv);
  s->hlc = H.srv->cluster.hlc;
  s->heartbeat_at = H.srv->cluster.heartbeat_at;
  s->accts = H.srv->accts.count;
}

static void op_relay_bytes(const uint8_t *b, size_t n) {
  Whisper__Server__Relay *r;
  int kind = relay_judge(b, n, &r);
  int own = kind >= 0 && r->node == NODE;
  uint32_t node = kind >= 0 ? r->node : 0;
  trace("  relay %zu bytes: %s%s from node %u %s.%u\n", n, kind < 0 ? "malformed " : "",
        kind_name(r && r->has_kind ? (int)r->kind : -1), r ? r->node : 0,
        r && r->account ? r->account : "", r ? r->device_id : 0);
  /* before: the local connections of the device it names, the view */
  int local[FZS_SLOTS] = {0};
  for (int k = 0; k < FZS_SLOTS; k++)
    local[k] = kind >= 0 && r->account && slot_is(k, r->account, r->device_id);
  snapshot before, after;
  snap(&before);

  fz_watch_begin(&W->fs);
  int rc = whisper_server_relay(H.srv, b, n, H.now);
  FZ_ASSERT(!W->fs.outer->depth, "a relay left a store transaction open");
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVALIDMSG, "whisper_server_relay returned %d (%s)",
            rc, whisper_server_last_error(H.srv));
  FZ_ASSERT((rc == WHISPER_OK) == (kind >= 0), "a relay the harness finds %s got %d (%s)",
            kind >= 0 ? "well formed" : "malformed", rc, whisper_server_last_error(H.srv));
  FZ_ASSERT(W->fs.committed_writes == 0 && fz_store_changed(&W->fs) == NULL,
            "a relay wrote to the store");
  fz_watch_end(&W->fs);

  op_begin();
  if (kind < 0 || own) {
    /* nothing changes: no output, the same stats, deadline and view */
    snap(&after);
    FZ_ASSERT(memcmp(&before, &after, sizeof before) == 0,
              "a %s relay changed the stats, the deadline or the cluster state",
              own ? "node's own" : "malformed");
    drain();
    FZ_ASSERT(H.n_out == 0, "a %s relay queued %zu outputs", own ? "node's own" : "malformed",
              H.n_out);
    if (r) whisper__server__relay__free_unpacked(r, NULL);
    return;
  }

  /* the model */
  int first = H.heard[node] == 0;
  H.heard[node] = H.now ? H.now : 1;
  switch (kind) {
    case KIND(HELLO):
      if (!first) view_drop_node(node);
      H.heard[node] = H.now ? H.now : 1;
      break;
    case KIND(BYE):
      view_drop_node(node);
      break;
    case KIND(ONLINE): {
      view_put(r->account, r->device_id, node);
      int d = world_dev(r->account, r->device_id);
      if (d >= 0) H.pushed[d] = 0; /* logged in there: its next offline period is woken */
      break;
    }
    case KIND(OFFLINE): {
      const vent *v = view_find(r->account, r->device_id);
      if (v && v->node == node) view_drop(r->account, r->device_id);
      break;
    }
    default:
      break;
  }

  drain();
  if (!H.out_lost) {
    size_t sends = count_out(WHISPER_SERVER_SEND, -1);
    size_t notices = count_out(WHISPER_SERVER_SEND, WHISPER__SYNC__FRAME__BODY_PRESENCE);
    size_t relays = count_out(WHISPER_SERVER_RELAY, -1);
    size_t closes = count_out(WHISPER_SERVER_DISCONNECT, -1);
    size_t pushes = count_out(WHISPER_SERVER_PUSH, -1);
    switch (kind) {
      case KIND(HEARTBEAT):
        FZ_ASSERT(H.n_out == 0, "a HEARTBEAT queued %zu outputs", H.n_out);
        break;
      case KIND(LINKED): /* a Register held here on the code runs: its answer, nothing pushed */
        FZ_ASSERT(pushes == 0, "a LINKED relay queued a push");
        break;
      case KIND(HELLO):
        FZ_ASSERT(sends == notices && closes == 0 && pushes == 0,
                  "a HELLO queued frames other than presence notices, a close or a push");
        FZ_ASSERT(relays == count_relays(KIND(ONLINE), NULL, 0), "a HELLO queued other relays");
        check_online_all();
        break;
      case KIND(BYE):
      case KIND(OFFLINE):
      case KIND(HIDDEN):
        FZ_ASSERT(sends == notices && H.n_out == sends,
                  "a %s relay queued %zu outputs, %zu notices", kind_name(kind), H.n_out, notices);
        break;
      case KIND(ONLINE): {
        /* the device logged in elsewhere: its connection here closes */
        size_t n_local = 0;
        for (int k = 0; k < FZS_SLOTS; k++) {
          if (!local[k]) continue;
          n_local++;
          FZ_ASSERT(!H.slot[k].open, "%s.%u logged in on node %u, its connection %d stays open",
                    r->account, r->device_id, node, k + 1);
        }
        FZ_ASSERT(closes == n_local, "an ONLINE relay closed %zu connections, %zu of the device",
                  closes, n_local);
        FZ_ASSERT(
            relays == count_relays(KIND(OFFLINE), r->account, r->device_id) && relays == n_local,
            "an ONLINE relay queued %zu relays", relays);
        FZ_ASSERT(sends == notices && pushes == 0, "an ONLINE relay queued frames or a push");
        check_closes();
        break;
      }
      case KIND(WAKE):
        for (size_t i = 0; i < H.n_out; i++) {
          const outrec *o = &H.out[i];
          FZ_ASSERT(o->action == WHISPER_SERVER_SEND && local[o->slot] &&
                        (o->body == WHISPER__SYNC__FRAME__BODY_DELIVER ||
                         o->body == WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY),
                    "a WAKE of %s.%u queued action %d (%s) on %d", r->account, r->device_id,
                    o->action, fzs_body_name(o->body), o->slot + 1);
        }
        break;
      case KIND(FRAME): {
        FZ_ASSERT(H.n_out == sends, "a FRAME relay queued other than frames");
        int got[FZS_SLOTS] = {0};
        for (size_t i = 0; i < H.n_out; i++) {
          const outrec *o = &H.out[i];
          FZ_ASSERT(o->body == WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE, "a FRAME relay sent a %s",
                    fzs_body_name(o->body));
          got[o->slot]++;
        }
        for (int k = 0; k < FZS_SLOTS; k++) {
          int of_account = H.slot[k].open && H.slot[k].dev >= 0 &&
                           strcmp(W->dev[H.slot[k].dev]->name, r->account) == 0;
          FZ_ASSERT(got[k] == of_account, "a FRAME relay for %s sent %d notices to connection %d",
                    r->account, got[k], k + 1);
        }
        break;
      }
      default:
        break;
    }
  }
  whisper__server__relay__free_unpacked(r, NULL);
}

static void op_echo(uint8_t m) {
  if (H.last_relay_len == 0) {
    trace("  echo: no relay yet\n");
    op_begin();
    return;
  }
  if (m == 0) {
    trace("  echo (own)\n");
    op_relay_bytes(H.last_relay, H.last_relay_len);
    return;
  }
  Whisper__Server__Relay *r = whisper__server__relay__unpack(NULL, H.last_relay_len, H.last_relay);
  FZ_ASSERT(r != NULL, "the last relay does not decode");
  r->node = m;
  size_t len;
  uint8_t *b = relay_pack(r, &len);
  whisper__server__relay__free_unpacked(r, NULL);
  trace("  echo as node %u\n", m);
  op_relay_bytes(b, len);
  free(b);
}

/* --- the clock and the connections ------------------------------------------ */

static void op_tick(uint8_t t) {
  H.now += t < 128 ? (uint64_t)t * 100 : (uint64_t)(t - 127) * 1000;
  trace("  tick at +%llu ms\n", (unsigned long long)(H.now - FZS_T0));
  whisper_server_tick(H.srv, H.now);
  for (uint32_t n = 1; n < 256; n++)
    if (H.heard[n] && H.now >= wsrv_after(H.heard[n], WHISPER_SERVER_NODE_TIMEOUT_MS))
      view_drop_node(n);
  op_begin();
  drain();
  check_closes();
  uint64_t next = whisper_server_next_deadline(H.srv);
  FZ_ASSERT(next > H.now, "after tick(%llu), a deadline at %llu is still due",
            (unsigned long long)H.now, (unsigned long long)next);
}

static void op_open(int k) {
  int rc = whisper_server_connected(H.srv, (uint64_t)k + 1, H.now);
  trace("  open %d: %d\n", k + 1, rc);
  if (H.slot[k].open) {
    FZ_ASSERT(rc == WHISPER_EINVAL, "open of an open connection: %d", rc);
  } else {
    FZ_ASSERT(rc == WHISPER_OK, "open: %d (%s)", rc, whisper_server_last_error(H.srv));
    H.slot[k].open = 1;
    H.slot[k].dev = -1;
  }
  op_begin();
  drain();
}

static void op_close(int k) {
  int dev = H.slot[k].open ? H.slot[k].dev : -1;
  trace("  close %d\n", k + 1);
  whisper_server_disconnected(H.srv, (uint64_t)k + 1, H.now);
  memset(H.watch[k], 0, sizeof H.watch[k]);
  H.slot[k].open = 0;
  H.slot[k].have_nonce = 0;
  H.slot[k].dev = -1;
  op_begin();
  drain();
  check_offline_said(dev);
}

/* 1 if the stored account `name` mutes any conversation (its devices
 * are then not always woken). */
static int account_mutes(const char *name) {
  whisper_store *in = W->fs.inner;
  whisper_buf *b = NULL;
  if (in->ops.get(in->user, WHISPER_REC_SERVER_ACCOUNT, (const uint8_t *)name, strlen(name), &b) !=
      WHISPER_OK)
    return 0;
  Whisper__Server__Account *a = whisper__server__account__unpack(NULL, b->len, b->data);
  whisper_buf_free(b);
  FZ_ASSERT(a != NULL, "the stored account %s does not decode", name);
  int n = a->n_mutes > 0;
  whisper__server__account__free_unpacked(a, NULL);
  return n;
}

/* New mail for a device with no connection here (its WAKE relay): if it
 * is online on no other node either and was not woken since it last
 * logged in anywhere, it is pushed (unless its account mutes something:
 * the harness does not follow which entries are muted). */
static void check_pushes(const int pushed_before[FZS_NDEV]) {
  if (H.out_lost) return;
  for (size_t i = 0; i < H.n_out; i++) {
    const outrec *o = &H.out[i];
    if (o->action != WHISPER_SERVER_RELAY || o->kind != KIND(WAKE)) continue;
    int d = world_dev(o->account, o->device);
    if (d < 0 || pushed_before[d] || view_has(o->account, o->device) || account_mutes(o->account))
      continue;
    size_t n = 0;
    for (size_t j = 0; j < H.n_out; j++)
      n += H.out[j].action == WHISPER_SERVER_PUSH && H.out[j].device == o->device &&
           strcmp(H.out[j].account, o->account) == 0;
    FZ_ASSERT(n == 1,
              "new mail for %s.%u, offline everywhere and not woken since it last logged "
              "in: %zu pushes",
              o->account, o->device, n);
  }
}

/* A frame on slot k; returns the body of its answer (0: none). */
static int op_recv(int k, const uint8_t *p, size_t n) {
  int was_open = H.slot[k].open;
  fzs_frame *f = fzs_unpack(p, n);
  uint64_t id = f && f->has_id ? f->id : 0;
  trace("  recv %d: %zu bytes, %s id %llu\n", k + 1, n,
        f ? fzs_body_name(f->body_case) : "(not a frame)", (unsigned long long)id);
  fzs_frame_free(f);
  int pushed_before[FZS_NDEV];
  memcpy(pushed_before, H.pushed, sizeof pushed_before);
  int rc = whisper_server_receive(H.srv, (uint64_t)k + 1, p, n, H.now);
  FZ_ASSERT(!W->fs.outer->depth, "receive left a store transaction open");
  if (was_open)
    FZ_ASSERT(rc == WHISPER_OK, "receive returned %d (%s)", rc, whisper_server_last_error(H.srv));
  else
    FZ_ASSERT(rc == WHISPER_ENOTFOUND, "receive on a closed connection returned %d", rc);
  op_begin();
  drain();
  check_closes();
  check_pushes(pushed_before);
  for (size_t i = 0; i < H.n_out; i++)
    if (H.out[i].action == WHISPER_SERVER_SEND && H.out[i].slot == k &&
        !fzs_is_push(H.out[i].body) && H.out[i].id == id)
      return H.out[i].body;
  return 0;
}

static void op_login(int k, uint8_t arg) {
  int di = arg % FZS_NDEV;
  fz_dev *d = W->dev[di];
  trace("  login %s.%u on %d\n", d->name, d->device_id, k + 1);
  if (!H.slot[k].open || !H.slot[k].have_nonce) {
    op_begin();
    return;
  }
  uint8_t nonce[32];
  memcpy(nonce, H.slot[k].nonce, 32);
  whisper_buf *b = fzs_hello(++H.next_id, d->name, d->device_id);
  int body = op_recv(k, b->data, b->len);
  whisper_buf_free(b);
  if (body != WHISPER__SYNC__FRAME__BODY_OK || !H.slot[k].open) return;
  b = fzs_auth(d, ++H.next_id, nonce, 32, arg >> 3);
  body = op_recv(k, b->data, b->len);
  whisper_buf_free(b);
  if (body == WHISPER__SYNC__FRAME__BODY_OK && H.slot[k].open) {
    H.slot[k].dev = di;
    H.pushed[di] = 0;
    if (!H.out_lost)
      FZ_ASSERT(count_relays(KIND(ONLINE), d->name, d->device_id) == 1,
                "%s.%u logged in without an ONLINE relay", d->name, d->device_id);
  }
}

/* Node 2's output: what it says to carol.1 is dropped (the answer to
 * `want_id` is returned, 0: none), its relays are broadcast to node 1
 * once it is all taken. */
static int peer_drain(uint64_t want_id) {
  whisper_server_output_t po = WHISPER_SERVER_OUTPUT_INIT;
  uint8_t(*relays)[WHISPER_SERVER_RELAY_MAX] = NULL;
  size_t *lens = NULL, n = 0;
  int answer = 0;
  while (whisper_server_take_output(H.peer, &po) > 0) {
    if (po.action == WHISPER_SERVER_RELAY) {
      FZ_ASSERT(po.frame_len > 0 && po.frame_len <= WHISPER_SERVER_RELAY_MAX,
                "node 2 made a relay of %zu bytes", po.frame_len);
      relays = realloc(relays, (n + 1) * sizeof *relays);
      lens = realloc(lens, (n + 1) * sizeof *lens);
      FZ_ASSERT(relays != NULL && lens != NULL, "out of memory");
      memcpy(relays[n], po.frame, po.frame_len);
      lens[n++] = po.frame_len;
    } else if (po.action == WHISPER_SERVER_DISCONNECT) {
      H.peer_state = -1;
    } else if (po.action == WHISPER_SERVER_SEND) {
      fzs_frame *f = fzs_unpack(po.frame, po.frame_len);
      FZ_ASSERT(f != NULL, "node 2 sent a frame that does not parse");
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_CHALLENGE && f->challenge->nonce.len == 32)
        memcpy(H.peer_nonce, f->challenge->nonce.data, 32);
      if (want_id && f->has_id && f->id == want_id && !fzs_is_push(f->body_case))
        answer = f->body_case;
      fzs_frame_free(f);
    }
  }
  for (size_t i = 0; i < n; i++) {
    trace("  node 2's relay:\n");
    op_relay_bytes(relays[i], lens[i]);
    op_end(0);
  }
  free(relays);
  free(lens);
  return answer;
}

static int peer_feed(whisper_buf *b, uint64_t id) {
  int rc = whisper_server_receive(H.peer, PEER_CONN, b->data, b->len, H.now);
  whisper_buf_free(b);
  FZ_ASSERT(rc == WHISPER_OK, "node 2 receive: %d (%s)", rc, whisper_server_last_error(H.peer));
  return peer_drain(id);
}

/* carol.1, logged in on node 2 (first time), sends a message to bob.1 or
 * to alice.1 and alice.2 through it: node 2 writes their mailboxes and
 * wakes them with relays. */
static void op_peer(uint8_t arg) {
  fz_dev *carol = W->dev[FZS_CAROL1];
  trace("  node 2: carol.1 sends to %s\n", arg & 1 ? "alice" : "bob");
  if (H.peer_state < 0) return;
  if (H.peer_state == 0) {
    FZ_ASSERT(whisper_server_connected(H.peer, PEER_CONN, H.now) == WHISPER_OK, "node 2 open");
    peer_drain(0);
    uint64_t id = ++H.next_id;
    if (peer_feed(fzs_hello(id, carol->name, carol->device_id), id) !=
        WHISPER__SYNC__FRAME__BODY_OK)
      return;
    id = ++H.next_id;
    H.peer_state = 1;
    if (peer_feed(fzs_auth(carol, id, H.peer_nonce, 32, 0), id) != WHISPER__SYNC__FRAME__BODY_OK) {
      H.peer_state = -1;
      return;
    }
  }
  if (H.peer_state != 1) return;
  uint8_t cid[16];
  memset(cid, 0, sizeof cid);
  memcpy(cid, "fz-peer-", 8);
  wh_be64(cid + 8, ++H.peer_sends);
  const uint32_t alice[] = {1, 2}, bob[] = {1};
  uint64_t id = ++H.next_id;
  whisper_buf *b = arg & 1 ? fzs_send_direct(id, cid, "alice", alice, NULL, 2, NULL, 0, "peer")
                           : fzs_send_direct(id, cid, "bob", bob, &bob_regid, 1, NULL, 0, "peer");
  peer_feed(b, id);
}

static void op_resync(int leave) {
  trace("  %s\n", leave ? "leave" : "resync");
  if (leave)
    whisper_server_cluster_leave(H.srv, H.now);
  else
    whisper_server_cluster_resync(H.srv, H.now);
  op_begin();
  drain();
  if (H.out_lost) return;
  if (leave) {
    FZ_ASSERT(H.n_out == 1 && count_relays(KIND(BYE), NULL, 0) == 1, "a leave queued %zu outputs",
              H.n_out);
    return;
  }
  FZ_ASSERT(count_relays(KIND(HELLO), NULL, 0) == 1, "a resync without a HELLO");
  check_online_all();
  for (size_t i = 0; i < H.n_out; i++) {
    const outrec *o = &H.out[i];
    FZ_ASSERT(
        o->action == WHISPER_SERVER_RELAY || (o->action == WHISPER_SERVER_SEND &&
                                              (o->body == WHISPER__SYNC__FRAME__BODY_DELIVER ||
                                               o->body == WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY) &&
                                              H.slot[o->slot].dev >= 0),
        "a resync queued action %d (%s)", o->action, fzs_body_name(o->body));
  }
}

/* --- inputs ------------------------------------------------------------------------ */

static void start(void) {
  fz_journal_begin(&W->fs);
  W->rng.counter = UINT64_C(1) << 40;
  for (int i = 0; i < FZS_NDEV; i++) W->dev[i]->rng.counter = UINT64_C(1) << 40;
  free(H.view);
  memset(&H, 0, sizeof H);
  for (int k = 0; k < FZS_SLOTS; k++) H.slot[k].dev = -1;
  H.now = FZS_T0;
  H.next_id = UINT64_C(1) << 62;
  int rc = whisper_server_new(&H.srv, W->fs.outer, &W->cfg);
  FZ_ASSERT(rc == WHISPER_OK, "server_new: %d", rc);
  whisper_server_stats_t st0 = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(H.srv, &st0);
  H.depth0 = st0.mailbox_depth;
  whisper_server_rng_set(H.srv, fz_rng_fn, &W->rng);
  rc = whisper_server_new(&H.peer, W->fs.outer, &W->cfg);
  FZ_ASSERT(rc == WHISPER_OK, "server_new (node 2): %d", rc);
  whisper_server_rng_set(H.peer, fz_rng_fn, &W->rng);
  FZ_ASSERT(whisper_server_cluster(H.peer, PEER, H.now) == WHISPER_OK, "cluster (node 2)");
  whisper_server_output_t po = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(H.peer, &po) > 0) {
  }
  FZ_ASSERT(whisper_server_cluster(H.srv, NODE, H.now) == WHISPER_OK, "cluster (node 1)");
  op_begin();
  drain();
  FZ_ASSERT(H.n_out == 1 && count_relays(KIND(HELLO), NULL, 0) == 1, "joining said no HELLO");
  op_open(0);
  op_login(0, FZS_ALICE1);
  op_open(1);
  op_login(1, FZS_BOB1);
  op_open(2);
  FZ_ASSERT(H.slot[0].dev == FZS_ALICE1 && H.slot[1].dev == FZS_BOB1, "the start's logins failed");
  for (int k = 0; k < FZS_SLOTS; k++)
    for (int a = 0; a < N_WATCHED; a++) H.last_online[k][a] = -1;
  for (int a = 1; a < N_WATCHED; a++) H.watch[0][a] = 1;
  H.watch[1][0] = 1;
  const char *watch0[] = {"bob", "carol", "dave", "erin"}, *watch1[] = {"alice"};
  whisper_buf *b = fzs_subscribe(++H.next_id, watch0, 4);
  FZ_ASSERT(op_recv(0, b->data, b->len) == WHISPER__SYNC__FRAME__BODY_OK, "subscribe");
  whisper_buf_free(b);
  b = fzs_subscribe(++H.next_id, watch1, 1);
  FZ_ASSERT(op_recv(1, b->data, b->len) == WHISPER__SYNC__FRAME__BODY_OK, "subscribe");
  whisper_buf_free(b);
  FZ_ASSERT(H.last_online[0][1] == 1 && H.last_online[1][0] == 1 && H.last_online[0][2] == 0,
            "the start's presence notices");
  op_end(0);
}

/* The entries stored against the depth the stats report. */
static int count_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
                    size_t val_len) {
  (void)key, (void)key_len, (void)val, (void)val_len;
  ++*(uint64_t *)arg;
  return 0;
}

static void end(void) {
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT, pst = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(H.srv, &st);
  whisper_server_stats(H.peer, &pst);
  uint64_t n = 0;
  whisper_store *in = W->fs.inner;
  FZ_ASSERT(in->ops.scan(in->user, WHISPER_REC_SERVER_MAILBOX, NULL, 0, NULL, 0, 0, SIZE_MAX,
                         count_fn, &n) == WHISPER_OK,
            "scan");
  /* each node reports the change it made */
  FZ_ASSERT(st.mailbox_depth + pst.mailbox_depth - H.depth0 == n,
            "the stats say %llu entries (node 1) and %llu (node 2) from %llu, %llu are stored",
            (unsigned long long)st.mailbox_depth, (unsigned long long)pst.mailbox_depth,
            (unsigned long long)H.depth0, (unsigned long long)n);
  whisper_server_free(H.srv);
  whisper_server_free(H.peer);
  H.srv = H.peer = NULL;
  fz_journal_restore(&W->fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (W == NULL) {
    W = fzs_server_world_new();
    bob_regid = fzs_regid(W->dev[FZS_BOB1]);
  }
  start();
  size_t i = 0;
  while (i < size) {
    uint8_t op = data[i++];
    int kind = op & 7, k = (op >> 3) & 3, flag = op >> 5;
    switch (kind) {
      case OP_RAW:
      case OP_RECV: {
        size_t n = 0;
        if (i < size) n = (size_t)data[i++] << 8;
        if (i < size) n |= data[i++];
        if (n > size - i) n = size - i;
        if (kind == OP_RAW)
          op_relay_bytes(data + i, n);
        else
          op_recv(k, data + i, n);
        i += n;
        break;
      }
      case OP_RELAY: {
        size_t len, used;
        uint8_t *b = relay_from_fields(data + i, size - i, H.now, W->group_id, &len, &used);
        i += used;
        op_relay_bytes(b, len);
        free(b);
        break;
      }
      case OP_ECHO:
        op_echo(i < size ? data[i++] : 0);
        break;
      case OP_TICK:
        op_tick(i < size ? data[i++] : 0);
        break;
      case OP_LOGIN:
        op_login(k, i < size ? data[i++] : 0);
        break;
      case OP_CONN:
        if (flag & 1)
          op_close(k);
        else
          op_open(k);
        break;
      default:
        if (flag & 2)
          op_peer(i < size ? data[i++] : 0);
        else
          op_resync(flag & 1);
        break;
    }
    op_end(kind == OP_TICK);
  }
  end();
  return 0;
}

#endif /* FZR_SEEDS_ONLY */

/* --- seeds ------------------------------------------------------------------------ */

typedef fzs_script script;

/* A RELAY operation: fields set in `set`, node, kind, account index,
 * device byte, at byte; frame: m (< 0: none), raw bytes after it. */
static void s_relay(script *s, uint8_t set, unsigned node, int kind, int acct, uint8_t dev,
                    uint8_t at) {
  uint8_t p[7] = {OP(OP_RELAY, 0, 0),
                  set,
                  (uint8_t)node,
                  (uint8_t)(kind | (node >= 256 ? 0x10 : 0)),
                  (uint8_t)acct,
                  dev,
                  at};
  fzs_put(s, p, sizeof p);
}

#define S_ADDR (F_NODE | F_KIND | F_ACCOUNT | F_DEVICE)
#define S_BARE (F_NODE | F_KIND)

static void s_simple(script *s, unsigned node, int kind) {
  s_relay(s, S_BARE, node, kind, 0, 0, 0);
}
static void s_dev(script *s, unsigned node, int kind, int acct, uint8_t dev) {
  s_relay(s, S_ADDR, node, kind, acct, dev, 0);
}
/* A FRAME relay to `acct` with a TypingNotice made from m (< 0x80). */
static void s_typing(script *s, unsigned node, int acct, uint8_t m) {
  s_relay(s, S_BARE | F_ACCOUNT | F_FRAME, node, KIND(FRAME), acct, 0, 0);
  fzs_put_byte(s, m);
}
/* A FRAME relay to `acct` carrying `b` as its frame (at most 127 bytes). */
static void s_frame_raw(script *s, unsigned node, int acct, const uint8_t *b, size_t n) {
  FZ_ASSERT(n <= 127, "a raw frame of %zu bytes", n);
  s_relay(s, S_BARE | F_ACCOUNT | F_FRAME, node, KIND(FRAME), acct, 0, 0);
  fzs_put_byte(s, (uint8_t)(0x80 | n));
  fzs_put(s, b, n);
}
static void s_hidden(script *s, unsigned node, int acct, int has, int value) {
  s_relay(s, (uint8_t)(S_BARE | F_ACCOUNT | (has ? F_HIDDEN : 0) | (value ? F_HIDDEN_VALUE : 0)),
          node, KIND(HIDDEN), acct, 0, 0);
}
static void s_tick(script *s, uint8_t t) {
  fzs_put_byte(s, OP(OP_TICK, 0, 0));
  fzs_put_byte(s, t);
}
static void s_recv(script *s, int slot, whisper_buf *b) {
  FZ_ASSERT(b->len <= 0xffff, "a frame too long");
  fzs_put_byte(s, OP(OP_RECV, slot, 0));
  fzs_put_byte(s, (uint8_t)(b->len >> 8));
  fzs_put_byte(s, (uint8_t)b->len);
  fzs_put(s, b->data, b->len);
  whisper_buf_free(b);
}
static void s_raw(script *s, const uint8_t *b, size_t n) {
  fzs_put_byte(s, OP(OP_RAW, 0, 0));
  fzs_put_byte(s, (uint8_t)(n >> 8));
  fzs_put_byte(s, (uint8_t)n);
  fzs_put(s, b, n);
}
static void s_add(fz_seeds *seeds, const char *name, script *s) {
  fz_seeds_add(seeds, name, fzs_take(s), 1);
}

enum { A_ALICE, A_BOB, A_CAROL, A_DAVE, A_ERIN, A_ZED, A_EMPTY, A_BAD, A_LONG64, A_LONG65 };

void fzr_gen_seeds(fz_seeds *seeds);
void fzr_gen_seeds(fz_seeds *seeds) {
  fzs_server_world *w = fzs_server_world_new();
  script s = {0};
  const uint32_t bob1 = 1, alice2 = 2;
  uint32_t bob_reg = fzs_regid(w->dev[FZS_BOB1]);
  uint8_t cid[16];

  /* a node's life: HELLO, HEARTBEAT, a device, HELLO again (it restarted:
   * its devices are gone), BYE */
  s_simple(&s, 2, KIND(HELLO));
  s_simple(&s, 2, KIND(HEARTBEAT));
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_simple(&s, 3, KIND(HELLO));
  s_dev(&s, 3, KIND(ONLINE), A_DAVE, 1);
  s_simple(&s, 2, KIND(HELLO));
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_simple(&s, 2, KIND(BYE));
  s_simple(&s, 3, KIND(BYE));
  s_tick(&s, 60);
  s_add(seeds, "node_life", &s);

  /* presence: carol online on node 2, moves to node 3, an OFFLINE from the
   * node she left (ignored), one from hers, one of a device unknown */
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_dev(&s, 3, KIND(ONLINE), A_CAROL, 1);
  s_dev(&s, 2, KIND(OFFLINE), A_CAROL, 1);
  s_relay(&s, S_ADDR | F_AT, 3, KIND(OFFLINE), A_CAROL, 1, 2);
  s_dev(&s, 2, KIND(OFFLINE), A_ERIN, 7);
  s_tick(&s, 60); /* past the presence grace */
  s_dev(&s, 4, KIND(ONLINE), A_CAROL, 2);
  s_dev(&s, 4, KIND(ONLINE), A_CAROL, 1);
  s_relay(&s, S_ADDR, 4, KIND(OFFLINE), A_CAROL, 2, 0);
  s_relay(&s, S_ADDR | F_AT, 4, KIND(OFFLINE), A_CAROL, 1, 254);
  s_tick(&s, 60);
  s_add(seeds, "online_offline", &s);

  /* a last seen in the future */
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_relay(&s, S_ADDR | F_AT, 2, KIND(OFFLINE), A_CAROL, 1, 200);
  s_tick(&s, 60);
  s_dev(&s, 2, KIND(ONLINE), A_DAVE, 1);
  s_relay(&s, S_ADDR | F_AT, 2, KIND(OFFLINE), A_DAVE, 1, 255);
  s_tick(&s, 60);
  s_tick(&s, 250);
  s_add(seeds, "offline_future", &s);

  /* a device logged in here logs in on another node: its connection here
   * closes; it comes back here */
  s_dev(&s, 2, KIND(ONLINE), A_ALICE, 1);
  fzs_put_byte(&s, OP(OP_LOGIN, 2, 0));
  fzs_put_byte(&s, FZS_ALICE1);
  s_dev(&s, 3, KIND(ONLINE), A_BOB, 1);
  fzs_put_byte(&s, OP(OP_CONN, 1, 0));
  fzs_put_byte(&s, OP(OP_LOGIN, 1, 0));
  fzs_put_byte(&s, FZS_BOB1);
  s_dev(&s, 2, KIND(OFFLINE), A_ALICE, 1);
  s_add(seeds, "online_local", &s);

  /* mail: alice.2 (nowhere) is pushed and woken; online on node 2 she is
   * woken and not pushed; bob.1 here is woken by node 2 */
  memset(cid, 0x31, sizeof cid);
  s_recv(&s, 0, fzs_send_direct(1, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "one"));
  s_dev(&s, 2, KIND(ONLINE), A_ALICE, 2);
  memset(cid, 0x32, sizeof cid);
  s_recv(&s, 0, fzs_send_direct(2, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "two"));
  s_dev(&s, 2, KIND(WAKE), A_BOB, 1);
  s_recv(&s, 1, fzs_ack(3, 3));
  s_dev(&s, 2, KIND(WAKE), A_BOB, 1);
  s_dev(&s, 2, KIND(WAKE), A_ALICE, 2);
  s_dev(&s, 2, KIND(WAKE), A_CAROL, 1);
  s_tick(&s, 127 + 11); /* node 2 times out: alice.2 is offline again */
  memset(cid, 0x33, sizeof cid);
  s_recv(&s, 0, fzs_send_direct(4, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "three"));
  s_add(seeds, "wake_push", &s);

  /* typing across nodes: to alice (slot 0), bob, carol (no one here), from
   * a group; malformed notices and frames of other bodies */
  s_typing(&s, 2, A_ALICE, 1 | 1 << 3 | 1 << 5);
  s_typing(&s, 2, A_BOB, 2 | 2 << 3 | 1 << 5 | 1 << 6);
  s_typing(&s, 2, A_CAROL, 1 | 1 << 3);
  s_typing(&s, 2, A_ALICE, 1 | 0 << 3 | 1 << 5);
  s_typing(&s, 2, A_ALICE, 7 | 1 << 3 | 1 << 5);
  s_typing(&s, 2, A_ALICE, 1 | 3 << 3 | 1 << 5);
  {
    /* a Ping with an id; a TypingNotice with an unknown field numbered 0,
     * one with a 15-byte group id, one without started; not a frame; none */
    Whisper__Sync__Ping pg = WHISPER__SYNC__PING__INIT;
    fzs_frame f = WHISPER__SYNC__FRAME__INIT;
    f.body_case = WHISPER__SYNC__FRAME__BODY_PING;
    f.ping = &pg;
    whisper_buf *b = fzs_pack(&f, 77);
    s_frame_raw(&s, 2, A_ALICE, b->data, b->len);
    whisper_buf_free(b);
    Whisper__Sync__TypingNotice t = WHISPER__SYNC__TYPING_NOTICE__INIT;
    t.from = "bob";
    t.has_from_device = t.has_started = t.has_expires_ms = 1;
    t.from_device = 1;
    t.started = 1;
    t.expires_ms = FZS_T0 + 6000;
    f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE;
    f.typing_notice = &t;
    b = fzs_pack(&f, 0);
    s_frame_raw(&s, 2, A_ALICE, b->data, b->len); /* well formed */
    uint8_t tag0[128];
    memcpy(tag0, b->data, b->len);
    tag0[b->len] = 0x80; /* an unknown field numbered 0, varint 0 */
    tag0[b->len + 1] = 0x00;
    tag0[b->len + 2] = 0x00;
    s_frame_raw(&s, 2, A_ALICE, tag0, b->len + 3);
    whisper_buf_free(b);
    t.has_group_id = 1;
    t.group_id = (ProtobufCBinaryData){15, w->group_id};
    b = fzs_pack(&f, 0);
    s_frame_raw(&s, 2, A_ALICE, b->data, b->len);
    whisper_buf_free(b);
    t.has_group_id = 0;
    t.has_started = 0;
    b = fzs_pack(&f, 0);
    s_frame_raw(&s, 2, A_ALICE, b->data, b->len);
    whisper_buf_free(b);
    static const uint8_t junk[] = {0xff, 0xff, 0x01};
    s_frame_raw(&s, 2, A_ALICE, junk, sizeof junk);
    s_relay(&s, S_BARE | F_ACCOUNT, 2, KIND(FRAME), A_ALICE, 0, 0);
    s_frame_raw(&s, 2, A_ALICE, junk, 0);
  }
  s_add(seeds, "typing_frames", &s);

  /* hiding: alice (bob watches her) hides on another node, shows again;
   * an account not in memory; without the flag */
  s_hidden(&s, 2, A_ALICE, 1, 1);
  s_hidden(&s, 2, A_ALICE, 1, 1);
  s_hidden(&s, 2, A_ALICE, 1, 0);
  s_hidden(&s, 2, A_ZED, 1, 1);
  s_hidden(&s, 2, A_ALICE, 0, 0);
  s_relay(&s, S_ADDR | F_HIDDEN | F_HIDDEN_VALUE, 2, KIND(ONLINE), A_CAROL, 1, 0);
  s_relay(&s, S_ADDR, 2, KIND(ONLINE), A_CAROL, 2, 0);
  s_add(seeds, "hidden", &s);

  /* node 1's own relays of every kind are ignored; its last relay fed back
   * as it is and as node 5's */
  for (int k = 0; k < 8; k++) {
    s_relay(&s, S_ADDR | F_HIDDEN | F_FRAME, 1, k, A_CAROL, 1, 0);
    fzs_put_byte(&s, 0x29); /* a TypingNotice from bob.1, started */
  }
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 0));
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 0);
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 5);
  s_add(seeds, "own_relays", &s);

  /* refusals: no node, node 0, 256, 2^31+2; no kind, kind 9; accounts:
   * none, "", a bad name, 65 characters (64 is fine); devices: none, 0,
   * 2^31, 2^32-1 (2^31-1 is fine); FRAME without a frame; HIDDEN without
   * the flag; bytes that are not a relay; nothing */
  s_relay(&s, F_KIND, 2, KIND(HELLO), 0, 0, 0);
  s_relay(&s, S_BARE, 0, KIND(HELLO), 0, 0, 0);
  s_relay(&s, S_BARE, 256, KIND(HELLO), 0, 0, 0);
  {
    uint8_t p[7] = {OP(OP_RELAY, 0, 0), S_BARE, 2, 0x20, 0, 0, 0};
    fzs_put(&s, p, sizeof p);
  }
  s_relay(&s, F_NODE, 2, KIND(HEARTBEAT), 0, 0, 0);
  s_relay(&s, S_BARE, 2, 9, 0, 0, 0);
  s_relay(&s, S_BARE | F_DEVICE, 2, KIND(ONLINE), 0, 1, 0);
  s_dev(&s, 2, KIND(ONLINE), A_EMPTY, 1);
  s_dev(&s, 2, KIND(WAKE), A_BAD, 1);
  s_dev(&s, 2, KIND(OFFLINE), A_LONG65, 1);
  s_dev(&s, 2, KIND(ONLINE), A_LONG64, 1);
  s_relay(&s, S_BARE | F_ACCOUNT, 2, KIND(ONLINE), A_CAROL, 0, 0);
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 0xF8);
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 0xFA);
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 0xFB);
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 0xF9);
  s_relay(&s, S_BARE | F_ACCOUNT, 2, KIND(FRAME), A_CAROL, 0, 0);
  s_hidden(&s, 2, A_CAROL, 0, 1);
  {
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    s_raw(&s, junk, sizeof junk);
    s_raw(&s, junk, 0);
  }
  s_add(seeds, "refusals", &s);

  /* node 1's own relays out: typing to carol (online on node 2) goes as a
   * FRAME, bob hides (HIDDEN), a resync, a leave, and the echo of each */
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_recv(&s, 0, fzs_typing(1, "carol", NULL, 1));
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 3);
  s_recv(&s, 0, fzs_typing(2, NULL, w->group_id, 1));
  s_recv(&s, 1, fzs_presence_set(3, 0, 1));
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 3);
  s_recv(&s, 1, fzs_presence_set(4, 1, 1));
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 0));
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 1));
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 2);
  fzs_put_byte(&s, OP(OP_CONN, 0, 1));
  fzs_put_byte(&s, OP(OP_ECHO, 0, 0));
  fzs_put_byte(&s, 2);
  s_add(seeds, "local_out", &s);

  /* nodes time out: carol on node 2, dave on node 3 heard later; the
   * heartbeats of node 1 go out; bob's connection is silent past its
   * heartbeat */
  s_dev(&s, 2, KIND(ONLINE), A_CAROL, 1);
  s_tick(&s, 127 + 9); /* node 2 times out before node 1's next heartbeat is due */
  s_dev(&s, 3, KIND(ONLINE), A_DAVE, 1);
  s_tick(&s, 127 + 6);
  s_simple(&s, 3, KIND(HEARTBEAT));
  s_tick(&s, 127 + 6);
  s_tick(&s, 127 + 6);
  memset(cid, 0x34, sizeof cid);
  s_recv(&s, 0, fzs_send_direct(1, cid, "carol", &bob1, NULL, 1, NULL, 0, "to carol"));
  s_tick(&s, 127 + 60);
  s_add(seeds, "timeouts", &s);

  /* mail through node 2: carol.1 logs in there (node 1 hears ONLINE), bob
   * acks his backlog, carol writes to bob (node 2's WAKE: node 1 delivers
   * it) and to alice (alice.1 here, alice.2 nowhere); then carol.1 logs
   * in on node 1 (node 2 closes its connection) */
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 2));
  fzs_put_byte(&s, 0);
  s_recv(&s, 1, fzs_ack(1, 5));
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 2));
  fzs_put_byte(&s, 0);
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 2));
  fzs_put_byte(&s, 1);
  s_recv(&s, 1, fzs_ack(2, UINT64_MAX));
  fzs_put_byte(&s, OP(OP_LOGIN, 2, 0));
  fzs_put_byte(&s, FZS_CAROL1);
  fzs_put_byte(&s, OP(OP_RESYNC, 0, 2));
  fzs_put_byte(&s, 1);
  s_add(seeds, "peer_mail", &s);

  fzs_server_world_free(w);
}

/* The client engine against the real server core, in process: a small
 * network moves frames between engines and the server under a fake clock,
 * with hooks to drop frames, cut connections and crash engines, and to
 * make the server lie (rewrite or invent the frames it sends). Shared by
 * test_sync.c (an honest server) and test_malicious.c. Static functions:
 * include it once per test program. */
#ifndef SYNC_NET_H
#define SYNC_NET_H
#include <sys/stat.h>
#include <unistd.h>

#include "sync.pb-c.h"
#include "test.h"
#include "whisper/server.h"

#define T0 1700000000000ULL
#define MAX_NODES 12
#define MAX_EVENTS 1024

static char dbdir[128];
static char net_media_root[160];  /* set: each new node gets media_dir root/name.device */
static uint32_t net_media_piece;  /* and this media_piece (0: the default) */
struct node;
/* Sees every event an engine raises, whole (record() keeps a summary). */
static void (*net_on_event)(struct node *d, const whisper_client_event_t *e);
static const uint8_t KEY[32] = "sync test store key ............";

/* --- recorded events ------------------------------------------------------------------------ */

typedef struct rec_event {
  int type;
  char conversation[64], from[80], body[256];
  uint32_t from_device;
  uint8_t id[16];
  size_t id_len, body_len;
  int status, started, online, code, server_code;
  uint64_t server_seq, last_seen_ms;
  int kind;
  uint32_t forwarded;
  uint8_t target[64];
  size_t target_len;
  char target_sender[80]; /* "" : none (this account's own) */
  uint64_t done, total;   /* WHISPER_EV_MEDIA */
} rec_event;

typedef struct node {
  char name[64];
  uint32_t device;
  int sqlite;
  char path[256];
  const uint8_t *key; /* the SQLite store's key (NULL: KEY) */
  whisper_store *st;
  whisper_ctx *ctx;
  whisper_client *cl;
  test_rng rng;
  uint64_t conn; /* 0: not connected */
  int offline;   /* 1: stays disconnected */
  int crash_after_delivers; /* >0: crash when this many Delivers went in */
  int crash_hard;           /* node_crash takes no last events: what the engine had received
                             * and not committed yet is lost with it */
  int pushes;               /* PUSH (wake) outputs the server made for it */
  int drop_sent;            /* >0: drop this many Sent answers, then cut the connection */
  int cut_after_sends;      /* >0: cut the connection once this many Send frames reached the
                             * server (what the engine had queued after them is lost) */
  int mute;                 /* the server's frames to it are lost */
  int catch_group;          /* keep the body of the next group Send taken from the engine */
  uint8_t caught[1024];
  size_t caught_len;
  rec_event ev[MAX_EVENTS];
  int n_ev;
  char media_dir[256]; /* "": no media jobs */
  uint32_t media_piece;
} node;

struct net;
/* A lie: called with every frame the server sends to `d` (packed, may be
 * rewritten in place through *frame / *len, which it may replace with a
 * malloc'd buffer the network frees). Returns 0 to pass it on, 1 to drop it. */
typedef int (*net_tamper_fn)(struct net *n, struct node *d, uint8_t **frame, size_t *len,
                             void *arg);

/* Sees every frame an engine sends to the server (to assert who got what). */
typedef void (*net_watch_fn)(struct net *n, struct node *d, const uint8_t *frame, size_t len,
                             void *arg);

/* Performs an engine's HTTP requests (media); returns 1 if it moved any. */
typedef int (*net_http_fn)(struct net *n, struct node *d, void *arg);

typedef struct net {
  whisper_server *srv;
  net_http_fn http;
  void *http_arg;
  net_tamper_fn tamper;
  void *tamper_arg;
  net_watch_fn watch;
  void *watch_arg;
  whisper_store *sst;
  test_rng srng;
  uint64_t now, next_conn;
  node *nodes[MAX_NODES];
  int n;
} net;

__attribute__((unused)) static void record(node *d) {
  whisper_client_event_t e;
  memset(&e, 0, sizeof e); /* fields the library does not write stay 0 (test_groups) */
  while (whisper_client_take_event(d->cl, &e)) {
    if (net_on_event) net_on_event(d, &e);
    if (d->n_ev == MAX_EVENTS) continue;
    rec_event *r = &d->ev[d->n_ev++];
    memset(r, 0, sizeof *r);
    r->type = e.type;
    if (e.conversation) snprintf(r->conversation, sizeof r->conversation, "%s", e.conversation);
    if (e.from) snprintf(r->from, sizeof r->from, "%s", e.from);
    if (e.body && e.body_len < sizeof r->body) memcpy(r->body, e.body, e.body_len);
    r->body_len = e.body_len;
    if (e.id && e.id_len <= 16) memcpy(r->id, e.id, e.id_len), r->id_len = e.id_len;
    r->from_device = e.from_device;
    r->status = e.status;
    r->started = e.started;
    r->online = e.online;
    r->code = e.code;
    r->server_code = e.server_code;
    r->server_seq = e.server_seq;
    r->last_seen_ms = e.last_seen_ms;
    r->kind = e.kind;
    r->forwarded = e.forwarded;
    if (e.target_id && e.target_id_len <= sizeof r->target)
      memcpy(r->target, e.target_id, e.target_id_len), r->target_len = e.target_id_len;
    if (e.target_sender) snprintf(r->target_sender, sizeof r->target_sender, "%s", e.target_sender);
    r->done = e.done_bytes;
    r->total = e.total_bytes;
    if (getenv("SYNC_TRACE"))
      fprintf(stderr, "  [%s.%u] ev %d conv=%s from=%s.%u status=%d code=%d/%d %s\n", d->name,
              d->device, e.type, r->conversation, r->from, r->from_device, r->status, r->code,
              r->server_code, e.type == WHISPER_EV_ERROR && e.message ? e.message : r->body);
  }
}

__attribute__((unused)) static void ev_clear(node *d) { d->n_ev = 0; }

__attribute__((unused)) static int ev_count(const node *d, int type) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++) n += d->ev[i].type == type;
  return n;
}

static const rec_event *ev_find(const node *d, int type, int k) {
  for (int i = 0; i < d->n_ev; i++)
    if (d->ev[i].type == type && k-- == 0) return &d->ev[i];
  return NULL;
}

__attribute__((unused)) static int ev_messages(const node *d, const char *body) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++)
    n += d->ev[i].type == WHISPER_EV_MESSAGE && strcmp(d->ev[i].body, body) == 0;
  return n;
}

__attribute__((unused)) static int ev_status(const node *d, const uint8_t id[16], const char *from, uint32_t dev, int status) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++) {
    const rec_event *e = &d->ev[i];
    n += e->type == WHISPER_EV_STATUS && e->status == status && memcmp(e->id, id, 16) == 0 &&
         (from == NULL || (strcmp(e->from, from) == 0 && e->from_device == dev));
  }
  return n;
}

/* --- nodes --------------------------------------------------------------------------------------- */

__attribute__((unused)) static void node_open(node *d) {
  if (d->sqlite) {
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = d->key ? d->key : KEY;
    o.key_len = 32;
    CHECK_RC(whisper_store_sqlite_open(&d->st, d->path, &o, NULL), WHISPER_OK);
  } else {
    CHECK_RC(whisper_store_memory_new(&d->st), WHISPER_OK);
  }
  whisper_ctx_new(&d->ctx, d->st);
  whisper_ctx_rng_set(d->ctx, test_rng_fn, &d->rng);
}

__attribute__((unused)) static void node_engine(node *d) {
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 10;
  cfg.prekey_low = 5;
  if (d->media_dir[0]) cfg.media_dir = d->media_dir;
  if (d->media_piece) cfg.media_piece = d->media_piece;
  CHECK_RC(whisper_client_new(&d->cl, d->ctx, &cfg), WHISPER_OK);
}

static node *node_new(net *n, const char *name, uint32_t device, int sqlite) {
  node *d = calloc(1, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->device = device;
  d->sqlite = sqlite;
  static int made;
  memset(d->rng.seed, 0, 32);
  snprintf((char *)d->rng.seed, 32, "%s.%u.%d", name, device, ++made);
  if (sqlite) {
    snprintf(d->path, sizeof d->path, "%s/%s.%u.db", dbdir, name, device);
    whisper_store_sqlite_delete(d->path);
  }
  if (net_media_root[0]) {
    snprintf(d->media_dir, sizeof d->media_dir, "%s/%s.%u.media", net_media_root, name, device);
    mkdir(d->media_dir, 0700);
    d->media_piece = net_media_piece;
  }
  node_open(d);
  CHECK_RC(whisper_identity_generate(d->ctx, name, device, 0, T0), WHISPER_OK);
  node_engine(d);
  n->nodes[n->n++] = d;
  return d;
}

/* A device whose SQLite store exists already (written by an older
 * libwhisper, say), opened under `key` with its identity as stored. The
 * file is the node's: node_free destroys it. */
__attribute__((unused)) static node *node_attach(net *n, const char *name, uint32_t device,
                                                 const char *path, const uint8_t key[32]) {
  node *d = calloc(1, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->device = device;
  d->sqlite = 1;
  d->key = key;
  snprintf(d->path, sizeof d->path, "%s", path);
  memset(d->rng.seed, 0, 32);
  snprintf((char *)d->rng.seed, 32, "attach %s.%u", name, device);
  node_open(d);
  node_engine(d);
  n->nodes[n->n++] = d;
  return d;
}

static node *node_by_conn(net *n, uint64_t conn) {
  for (int i = 0; i < n->n; i++)
    if (n->nodes[i]->cl && n->nodes[i]->conn == conn) return n->nodes[i];
  return NULL;
}

__attribute__((unused)) static void node_cut(net *n, node *d) {
  if (!d->conn) return;
  whisper_server_disconnected(n->srv, d->conn, n->now);
  if (d->cl) whisper_client_disconnected(d->cl, n->now);
  d->conn = 0;
}

/* The process dies: the engine and the store go without a word. */
__attribute__((unused)) static void node_crash(net *n, node *d) {
  if (d->conn) whisper_server_disconnected(n->srv, d->conn, n->now);
  d->conn = 0;
  if (!d->crash_hard) record(d);
  whisper_client_free(d->cl);
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
  d->cl = NULL;
  d->ctx = NULL;
  d->st = NULL;
}

__attribute__((unused)) static void node_restart(node *d) {
  node_open(d);
  node_engine(d);
}

__attribute__((unused)) static void node_free(node *d) {
  if (d->cl) {
    whisper_client_free(d->cl);
    whisper_ctx_free(d->ctx);
    whisper_store_free(d->st);
  }
  if (d->sqlite) whisper_store_sqlite_delete(d->path);
  free(d);
}

/* --- the network --------------------------------------------------------------------------------- */

__attribute__((unused)) static void net_open(net *n) {
  memset(n, 0, sizeof *n);
  memset(n->srng.seed, 0x5e, 32);
  n->now = T0;
  CHECK_RC(whisper_store_memory_new(&n->sst), WHISPER_OK);
  CHECK_RC(whisper_server_new(&n->srv, n->sst, NULL), WHISPER_OK);
  whisper_server_rng_set(n->srv, test_rng_fn, &n->srng);
}

/* The same over an existing SQLite store at `path` (the server's, under
 * `key`), with the clock at `now`. */
__attribute__((unused)) static void net_open_sqlite(net *n, const char *path, const uint8_t key[32],
                                                    uint64_t now) {
  memset(n, 0, sizeof *n);
  memset(n->srng.seed, 0x5e, 32);
  n->now = now;
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  CHECK_RC(whisper_store_sqlite_open(&n->sst, path, &o, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_new(&n->srv, n->sst, NULL), WHISPER_OK);
  whisper_server_rng_set(n->srv, test_rng_fn, &n->srng);
}

__attribute__((unused)) static void net_close(net *n) {
  for (int i = 0; i < n->n; i++) node_free(n->nodes[i]);
  whisper_server_free(n->srv);
  whisper_store_free(n->sst);
}

__attribute__((unused)) static int body_case(const uint8_t *f, size_t len) {
  Whisper__Sync__Frame *fr = whisper__sync__frame__unpack(NULL, len, f);
  int bc = fr ? (int)fr->body_case : -1;
  if (fr) whisper__sync__frame__free_unpacked(fr, NULL);
  return bc;
}

/* Moves frames until nothing moves. */
__attribute__((unused)) static void net_run(net *n) {
  for (int round = 0; round < 100000; round++) {
    int moved = 0;
    for (int i = 0; i < n->n; i++) {
      node *d = n->nodes[i];
      if (d->cl == NULL) continue;
      if (!d->conn && !d->offline && whisper_client_want_connect(d->cl, n->now)) {
        d->conn = ++n->next_conn;
        CHECK_RC(whisper_server_connected(n->srv, d->conn, n->now), WHISPER_OK);
        CHECK_RC(whisper_client_connected(d->cl, n->now), WHISPER_OK);
        moved = 1;
      }
      whisper_buf *b;
      while (d->conn && whisper_client_take_frame(d->cl, &b)) {
        if (d->catch_group) {
          Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, b->len, b->data);
          if (f && f->body_case == WHISPER__SYNC__FRAME__BODY_SEND && f->send->has_group_id &&
              f->send->body.len <= sizeof d->caught) {
            memcpy(d->caught, f->send->body.data, f->send->body.len);
            d->caught_len = f->send->body.len;
            d->catch_group = 0;
          }
          if (f) whisper__sync__frame__free_unpacked(f, NULL);
        }
        if (n->watch) n->watch(n, d, b->data, b->len, n->watch_arg);
        whisper_server_receive(n->srv, d->conn, b->data, b->len, n->now);
        int cut = d->cut_after_sends > 0 && body_case(b->data, b->len) == WHISPER__SYNC__FRAME__BODY_SEND &&
                  --d->cut_after_sends == 0;
        whisper_buf_free(b);
        moved = 1;
        if (cut) node_cut(n, d);
      }
      if (d->conn && whisper_client_want_disconnect(d->cl)) {
        node_cut(n, d);
        moved = 1;
      }
      if (n->http && d->cl && n->http(n, d, n->http_arg)) moved = 1;
      if (d->cl) record(d);
    }
    whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
    while (whisper_server_take_output(n->srv, &o) > 0) {
      moved = 1;
      node *d = node_by_conn(n, o.conn);
      if (o.action == WHISPER_SERVER_SEND && d && d->mute) continue;
      if (o.action == WHISPER_SERVER_SEND && d) {
        uint8_t *fr = (uint8_t *)o.frame, *orig = fr;
        size_t fl = o.frame_len;
        if (n->tamper && n->tamper(n, d, &fr, &fl, n->tamper_arg)) continue;
        int bc = body_case(fr, fl);
        if (bc == WHISPER__SYNC__FRAME__BODY_SENT && d->drop_sent > 0) {
          d->drop_sent--;
          node_cut(n, d); /* the answer is lost with the connection */
          continue;
        }
        int rc = whisper_client_receive(d->cl, fr, fl, n->now);
        if (fr != orig) free(fr);
        CHECK(rc == WHISPER_OK);
        if (bc == WHISPER__SYNC__FRAME__BODY_DELIVER && d->crash_after_delivers > 0 &&
            --d->crash_after_delivers == 0)
          node_crash(n, d);
      } else if (o.action == WHISPER_SERVER_PUSH) {
        for (int i = 0; i < n->n; i++)
          if (strcmp(n->nodes[i]->name, o.account) == 0 && n->nodes[i]->device == o.device_id)
            n->nodes[i]->pushes++;
      } else if (o.action == WHISPER_SERVER_DISCONNECT && d) {
        whisper_server_disconnected(n->srv, d->conn, n->now);
        whisper_client_disconnected(d->cl, n->now);
        d->conn = 0;
      }
    }
    if (!moved) return;
  }
  CHECK(!"the network did not settle");
}

/* Lets time pass in steps, running timers and the network. */
__attribute__((unused)) static void net_advance(net *n, uint64_t ms) {
  uint64_t end = n->now + ms;
  while (n->now < end) {
    uint64_t next = end;
    uint64_t sd = whisper_server_next_deadline(n->srv);
    if (sd > n->now && sd < next) next = sd;
    for (int i = 0; i < n->n; i++)
      if (n->nodes[i]->cl) {
        uint64_t cd = whisper_client_next_deadline(n->nodes[i]->cl);
        if (cd > n->now && cd < next) next = cd;
      }
    n->now = next;
    whisper_server_tick(n->srv, n->now);
    for (int i = 0; i < n->n; i++)
      if (n->nodes[i]->cl) whisper_client_tick(n->nodes[i]->cl, n->now);
    net_run(n);
  }
}

/* A first device, registered and online. */
__attribute__((unused)) static node *account_new(net *n, const char *name, int sqlite) {
  node *d = node_new(n, name, 1, sqlite);
  net_run(n);
  CHECK(ev_count(d, WHISPER_EV_REGISTERED) == 1);
  CHECK(ev_count(d, WHISPER_EV_ONLINE) == 1);
  return d;
}

/* A further device, linked through `by`. */
__attribute__((unused)) static node *device_link(net *n, node *by, uint32_t device, int sqlite) {
  node *d = node_new(n, by->name, device, sqlite);
  net_run(n);
  const rec_event *code = ev_find(d, WHISPER_EV_LINK_CODE, 0);
  CHECK(code != NULL && code->body_len == 1 + 4 + 33 + 1 + strlen(by->name) + 16); /* a link token */
  CHECK(ev_count(d, WHISPER_EV_REGISTERED) == 0);
  if (code) CHECK_RC(whisper_client_link_approve(by->cl, (const uint8_t *)code->body, code->body_len), WHISPER_OK);
  net_run(n);
  CHECK(ev_count(d, WHISPER_EV_REGISTERED) == 1);
  CHECK(ev_count(d, WHISPER_EV_ONLINE) == 1);
  return d;
}

__attribute__((unused)) static int history_count(node *d, const char *conv) {
  whisper_page *p = NULL;
  if (whisper_history_page(d->ctx, conv, 0, NULL, 0, 1000, &p) != WHISPER_OK) return -1;
  int n = (int)whisper_page_count(p);
  whisper_page_free(p);
  return n;
}

__attribute__((unused)) static int status_of(node *d, const char *conv, const uint8_t id[16], const char *who, uint32_t dev) {
  int st = -1;
  if (whisper_history_status_get(d->ctx, conv, id, 16, who, dev, &st) != WHISPER_OK) return -1;
  return st;
}

__attribute__((unused)) static void send_text(net *n, node *from, const char *to, const char *text, uint8_t id[16]) {
  uint8_t tmp[16];
  CHECK_RC(whisper_client_send(from->cl, to, (const uint8_t *)text, strlen(text), n->now, id ? id : tmp),
           WHISPER_OK);
}


/* The server pushes a frame it made up to `d`, as if it came from it. */
__attribute__((unused)) static void net_inject(net *n, node *d, const Whisper__Sync__Frame *f) {
  size_t len = whisper__sync__frame__get_packed_size(f);
  uint8_t *b = malloc(len ? len : 1);
  whisper__sync__frame__pack(f, b);
  CHECK_RC(whisper_client_receive(d->cl, b, len, n->now), WHISPER_OK);
  free(b);
  net_run(n);
}

#endif

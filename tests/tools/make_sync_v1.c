/*
 * Writes the sync fixtures in tests/vectors/ (sync-v1-server.db,
 * sync-v1-alice1.db, sync-v1-alice2.db, sync-v1-bob1.db, sync-v1-carol1.db):
 * a server core and four client engines as the code from before signed
 * device lists and group changes (efef8a4) left them. Built against that
 * libwhisper, never by this build:
 *
 *   mkdir /tmp/old && git archive efef8a4 | tar -x -C /tmp/old
 *   cmake -S /tmp/old -B /tmp/old/build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 *         -DWHISPER_BUILD_EXAMPLES=OFF && cmake --build /tmp/old/build -j2
 *   cc -O1 -I/tmp/old/include -o /tmp/make_sync_v1 tests/tools/make_sync_v1.c \
 *      /tmp/old/build/libwhisper.a \
 *      $(pkg-config --libs libsodium libprotobuf-c libcrypto sqlite3)
 *   /tmp/make_sync_v1 tests/vectors
 *
 * Every store (the server's too) is an SQLite store under the same key:
 * 32 bytes of "sync-v1 fixture key", zero padded. The clock is fixed (it
 * starts at SYNC_V1_T0 = 1699990000000 and moves 1 s per step), every
 * context and the server draw from a seeded RNG (whisper_ctx_rng_set,
 * whisper_server_rng_set), and libsodium's randombytes (the store's salt and
 * nonces) is a seeded stream too, so two runs write the same bytes.
 *
 * What it holds (the in-process network moves frames as tests/unit/sync_net.h
 * does):
 *  - accounts alice (device 1; device 2 linked the old way: its
 *    EV_LINK_CODE body is the bare 16-byte server code, approved by alice.1
 *    with whisper_client_link_approve), bob (device 1), carol (device 1);
 *  - 1:1 "alice" <-> "bob", in this order: alice.1 "hello bob", bob "hello
 *    alice", alice.1 "how are you", bob "fine thanks", alice.2 "from alice
 *    two"; bob marked alice.1's first two read, alice.1 bob's first;
 *  - a group made by alice.1 with bob and carol (its id: SYNC_V1_GROUP
 *    below, printed by the tool), "group from alice", "group from bob",
 *    "group from carol", in this order;
 *  - then alice.1 goes offline and bob sends "are you there": alice.2 has it,
 *    alice.1's copy waits in the server's mailbox (undelivered);
 *  - then alice.2 goes offline too and carol sends "carol in flight" to the
 *    group: bob has it, it waits on the server for alice.1 and alice.2 (as
 *    the old engine sent it: no e2e.Payload; and alice.2 never listed
 *    carol's devices, it only received from her).
 * History rows per conversation: alice.1 "bob" 5, group 3; alice.2 "bob" 6,
 * group 3; bob.1 "alice" 6, group 4; carol.1 group 4 (no 1:1). The tool
 * checks these before it writes. Every engine is freed and every store
 * closed at the end, after the connections are closed.
 * tests/unit/test_migration_sync.c opens them with today's code.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <whisper/whisper.h>
#include <whisper/client.h>
#include <whisper/server.h>

#define SYNC_V1_T0 1699990000000ULL

static uint8_t KEY[32] = "sync-v1 fixture key";

/* --- a seeded RNG ------------------------------------------------------------------------------- */

typedef struct rng {
  uint8_t seed[32];
  uint64_t counter;
} rng;

static void rng_fill(rng *r, void *out, size_t len) {
  uint8_t s[32];
  memcpy(s, r->seed, 32);
  for (int i = 0; i < 8; i++) s[i] ^= (uint8_t)(r->counter >> (8 * i));
  r->counter++;
  randombytes_buf_deterministic(out, len, s);
}

static int rng_fn(void *user, uint8_t *out, size_t len) {
  rng_fill(user, out, len);
  return 0;
}

/* libsodium's own randombytes (the SQLite store's salt and nonces) */
static rng sodium_rng = {"sync-v1 fixture randombytes", 0};
static const char *rb_name(void) { return "sync-v1 fixture"; }
static uint32_t rb_random(void) {
  uint32_t v;
  rng_fill(&sodium_rng, &v, sizeof v);
  return v;
}
static void rb_buf(void *buf, size_t n) { rng_fill(&sodium_rng, buf, n); }
static randombytes_implementation rb_impl = {rb_name, rb_random, NULL, NULL, rb_buf, NULL};

/* --- the network ---------------------------------------------------------------------------------- */

#define MAX_EVENTS 256

typedef struct ev {
  int type;
  char body[128];
  size_t body_len;
  char conversation[64];
  uint8_t id[16];
} ev;

typedef struct node {
  const char *name;
  uint32_t device;
  char path[512];
  whisper_store *st;
  whisper_ctx *ctx;
  whisper_client *cl;
  rng rng;
  uint64_t conn;
  int offline;
  ev ev[MAX_EVENTS];
  int n_ev;
} node;

static whisper_server *srv;
static whisper_store *sst;
static rng srng = {"sync-v1 fixture server", 0};
static uint64_t now = SYNC_V1_T0, next_conn;
static node *nodes[4];
static int n_nodes;

static void need(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "make_sync_v1: %s\n", what);
    exit(1);
  }
}

static whisper_store *open_store(const char *path) {
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = KEY;
  o.key_len = 32;
  whisper_store *st = NULL;
  unlink(path);
  need(whisper_store_sqlite_open(&st, path, &o, NULL) == WHISPER_OK, path);
  return st;
}

static void record(node *d) {
  whisper_client_event_t e;
  while (whisper_client_take_event(d->cl, &e)) {
    need(e.type != WHISPER_EV_ERROR && e.type != WHISPER_EV_IDENTITY, e.message ? e.message : "an error event");
    if (d->n_ev == MAX_EVENTS) continue;
    ev *r = &d->ev[d->n_ev++];
    memset(r, 0, sizeof *r);
    r->type = e.type;
    if (e.body && e.body_len < sizeof r->body) memcpy(r->body, e.body, e.body_len);
    r->body_len = e.body_len;
    if (e.conversation) snprintf(r->conversation, sizeof r->conversation, "%s", e.conversation);
    if (e.id && e.id_len == 16) memcpy(r->id, e.id, 16);
  }
}

static int count(const node *d, int type) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++) n += d->ev[i].type == type;
  return n;
}

static const ev *find_message(const node *d, const char *body) {
  for (int i = 0; i < d->n_ev; i++)
    if (d->ev[i].type == WHISPER_EV_MESSAGE && strcmp(d->ev[i].body, body) == 0) return &d->ev[i];
  return NULL;
}

static node *node_new(const char *dir, const char *name, uint32_t device, const char *file) {
  node *d = calloc(1, sizeof *d);
  need(d != NULL, "out of memory");
  d->name = name;
  d->device = device;
  snprintf(d->path, sizeof d->path, "%s/%s", dir, file);
  snprintf((char *)d->rng.seed, sizeof d->rng.seed, "sync-v1 %s.%u", name, device);
  d->st = open_store(d->path);
  need(whisper_ctx_new(&d->ctx, d->st) == WHISPER_OK, "context");
  whisper_ctx_rng_set(d->ctx, rng_fn, &d->rng);
  need(whisper_identity_generate(d->ctx, name, device, 0, now) == WHISPER_OK, "identity");
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 10; /* small stores */
  cfg.prekey_low = 5;
  need(whisper_client_new(&d->cl, d->ctx, &cfg) == WHISPER_OK, "engine");
  nodes[n_nodes++] = d;
  return d;
}

static node *node_by_conn(uint64_t conn) {
  for (int i = 0; i < n_nodes; i++)
    if (nodes[i]->conn == conn) return nodes[i];
  return NULL;
}

static void node_cut(node *d) {
  if (!d->conn) return;
  whisper_server_disconnected(srv, d->conn, now);
  whisper_client_disconnected(d->cl, now);
  d->conn = 0;
}

/* Moves frames until nothing moves. */
static void run(void) {
  for (int round = 0; round < 100000; round++) {
    int moved = 0;
    for (int i = 0; i < n_nodes; i++) {
      node *d = nodes[i];
      if (!d->conn && !d->offline && whisper_client_want_connect(d->cl, now)) {
        d->conn = ++next_conn;
        need(whisper_server_connected(srv, d->conn, now) == WHISPER_OK, "server open");
        need(whisper_client_connected(d->cl, now) == WHISPER_OK, "client connected");
        moved = 1;
      }
      whisper_buf *b;
      while (d->conn && whisper_client_take_frame(d->cl, &b)) {
        whisper_server_receive(srv, d->conn, b->data, b->len, now);
        whisper_buf_free(b);
        moved = 1;
      }
      need(!(d->conn && whisper_client_want_disconnect(d->cl)), "an engine gave its connection up");
      record(d);
    }
    whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
    while (whisper_server_take_output(srv, &o) > 0) {
      moved = 1;
      node *d = node_by_conn(o.conn);
      if (d == NULL) continue;
      if (o.action == WHISPER_SERVER_SEND) {
        need(whisper_client_receive(d->cl, o.frame, o.frame_len, now) == WHISPER_OK, "receive");
      } else if (o.action == WHISPER_SERVER_DISCONNECT) {
        need(0, "the server closed a connection");
      }
    }
    if (!moved) return;
  }
  need(0, "the network did not settle");
}

/* One step: the clock moves 1 s, then the network settles. */
static void step(void) {
  now += 1000;
  run();
}

static void send_text(node *from, const char *to, const char *text, uint8_t id[16]) {
  uint8_t tmp[16];
  need(whisper_client_send(from->cl, to, (const uint8_t *)text, strlen(text), now, id ? id : tmp) ==
           WHISPER_OK, "send");
  step();
}

static void send_group(node *from, const uint8_t gid[16], const char *text) {
  uint8_t id[16];
  need(whisper_client_send_group(from->cl, gid, (const uint8_t *)text, strlen(text), now, id) ==
           WHISPER_OK, "send group");
  step();
}

static void read_it(node *d, const char *conv, const char *sender, const char *body) {
  const ev *e = find_message(d, body);
  need(e != NULL, body);
  need(whisper_client_mark_read(d->cl, conv, sender, (const uint8_t(*)[16])e->id, 1, now) == WHISPER_OK,
       "mark read");
  step();
}

static int rows(node *d, const char *conv) {
  whisper_page *p = NULL;
  if (whisper_history_page(d->ctx, conv, 0, NULL, 0, 1000, &p) != WHISPER_OK) return -1;
  int n = (int)whisper_page_count(p);
  whisper_page_free(p);
  return n;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  need(randombytes_set_implementation(&rb_impl) == 0 && sodium_init() >= 0, "libsodium");
  char sp[512];
  snprintf(sp, sizeof sp, "%s/sync-v1-server.db", dir);
  sst = open_store(sp);
  need(whisper_server_new(&srv, sst, NULL) == WHISPER_OK, "server");
  whisper_server_rng_set(srv, rng_fn, &srng);

  node *a1 = node_new(dir, "alice", 1, "sync-v1-alice1.db");
  node *b1 = node_new(dir, "bob", 1, "sync-v1-bob1.db");
  node *c1 = node_new(dir, "carol", 1, "sync-v1-carol1.db");
  step();
  for (int i = 0; i < n_nodes; i++)
    need(count(nodes[i], WHISPER_EV_REGISTERED) == 1 && count(nodes[i], WHISPER_EV_ONLINE) == 1,
         "registered");

  /* alice.2, linked the old way: the bare server code */
  node *a2 = node_new(dir, "alice", 2, "sync-v1-alice2.db");
  step();
  need(count(a2, WHISPER_EV_LINK_CODE) == 1, "a link code");
  const ev *code = NULL;
  for (int i = 0; i < a2->n_ev; i++)
    if (a2->ev[i].type == WHISPER_EV_LINK_CODE) code = &a2->ev[i];
  need(code->body_len == 16, "a bare 16-byte code");
  need(whisper_client_link_approve(a1->cl, (const uint8_t *)code->body, code->body_len) == WHISPER_OK,
       "link approve");
  step();
  need(count(a2, WHISPER_EV_REGISTERED) == 1 && count(a2, WHISPER_EV_ONLINE) == 1, "alice.2 linked");

  /* 1:1, both ways, some read */
  send_text(a1, "bob", "hello bob", NULL);
  send_text(b1, "alice", "hello alice", NULL);
  send_text(a1, "bob", "how are you", NULL);
  send_text(b1, "alice", "fine thanks", NULL);
  send_text(a2, "bob", "from alice two", NULL);
  need(find_message(b1, "hello bob") && find_message(b1, "how are you") &&
       find_message(b1, "from alice two") && find_message(a1, "hello alice") &&
       find_message(a1, "fine thanks") && find_message(a2, "hello alice") &&
       find_message(a2, "fine thanks"), "1:1 delivered");
  read_it(b1, "alice", "alice", "hello bob");
  read_it(b1, "alice", "alice", "how are you");
  read_it(a1, "bob", "bob", "hello alice");

  /* a group */
  const char *members[2] = {"bob", "carol"};
  uint8_t gid[16];
  need(whisper_client_group_create(a1->cl, members, 2, now, gid) == WHISPER_OK, "group create");
  step();
  for (int i = 0; i < n_nodes; i++) need(count(nodes[i], WHISPER_EV_GROUP) == 1, "group event");
  send_group(a1, gid, "group from alice");
  send_group(b1, gid, "group from bob");
  send_group(c1, gid, "group from carol");
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  need(find_message(b1, "group from alice") && find_message(c1, "group from alice") &&
       find_message(a1, "group from bob") && find_message(c1, "group from bob") &&
       find_message(a1, "group from carol") && find_message(b1, "group from carol") &&
       find_message(a2, "group from bob") && find_message(a2, "group from carol"),
       "group delivered");

  /* alice.1 goes offline: bob's next message waits for it on the server */
  a1->offline = 1;
  node_cut(a1);
  send_text(b1, "alice", "are you there", NULL);
  need(find_message(a2, "are you there") && !find_message(a1, "are you there"), "one undelivered");
  /* alice.2 goes offline too: carol's next group message waits for both */
  a2->offline = 1;
  node_cut(a2);
  send_group(c1, gid, "carol in flight");
  need(find_message(b1, "carol in flight") && !find_message(a1, "carol in flight") &&
       !find_message(a2, "carol in flight"), "carol's undelivered");

  need(rows(a1, "bob") == 5 && rows(a1, conv) == 3, "alice.1 history");
  need(rows(a2, "bob") == 6 && rows(a2, conv) == 3, "alice.2 history");
  need(rows(b1, "alice") == 6 && rows(b1, conv) == 4, "bob.1 history");
  need(rows(c1, conv) == 4 && rows(c1, "alice") == 0, "carol.1 history");

  /* a clean stop */
  for (int i = 0; i < n_nodes; i++) nodes[i]->offline = 1, node_cut(nodes[i]);
  run();
  for (int i = 0; i < n_nodes; i++) {
    whisper_client_free(nodes[i]->cl);
    whisper_ctx_free(nodes[i]->ctx);
    whisper_store_free(nodes[i]->st);
    free(nodes[i]);
  }
  whisper_server_free(srv);
  whisper_store_free(sst);
  printf("group %s\n", conv);
  return 0;
}

/* Cluster mode (server.h): three server cores over one shared store, the
 * client engines spread over them, the relays moved between the cores by
 * the test (whisperd broadcasts them with PostgreSQL NOTIFY; the real
 * processes are tested in tests/integration/cluster.js):
 *   - a message to a device on another node arrives at once, without a
 *     push; a device offline everywhere is pushed;
 *   - presence and typing cross nodes; a hidden account stays hidden;
 *   - a device logging in on a second node closes its first connection;
 *   - a node that dies without a word: after the node timeout its devices
 *     are offline (pushed again), and they move to another node with
 *     nothing lost or doubled;
 *   - server_seq: distinct and growing across nodes, above the counter;
 *   - malformed relays are refused and change nothing; a node's own
 *     relays are ignored. */
#include "server.pb-c.h"
#include "sync_net.h"

#define NODES 3

static whisper_server *S[NODES];
static int dead[NODES];
static int home[MAX_NODES];
static int drop_relays;
static int relays_moved;

static int index_of(const net *n, const node *d) {
  for (int i = 0; i < n->n; i++)
    if (n->nodes[i] == d) return i;
  return -1;
}

static whisper_server *srv_of(const net *n, const node *d) { return S[home[index_of(n, d)]]; }

/* The sync_net.h helpers use n->srv: point it at the node's server. */
static void cut(net *n, node *d) {
  n->srv = srv_of(n, d);
  node_cut(n, d);
}

static node *add_device(net *n, const char *name, uint32_t device, int at) {
  home[n->n] = at;
  n->srv = S[at];
  return node_new(n, name, device, 0);
}

static void cluster_run(net *n) {
  for (int round = 0; round < 100000; round++) {
    int moved = 0;
    for (int i = 0; i < n->n; i++) {
      node *d = n->nodes[i];
      whisper_server *s = S[home[i]];
      if (d->cl == NULL || dead[home[i]]) continue;
      if (!d->conn && !d->offline && whisper_client_want_connect(d->cl, n->now)) {
        d->conn = ++n->next_conn;
        CHECK_RC(whisper_server_connected(s, d->conn, n->now), WHISPER_OK);
        CHECK_RC(whisper_client_connected(d->cl, n->now), WHISPER_OK);
        moved = 1;
      }
      whisper_buf *b;
      while (d->conn && whisper_client_take_frame(d->cl, &b)) {
        whisper_server_receive(s, d->conn, b->data, b->len, n->now);
        whisper_buf_free(b);
        moved = 1;
      }
      if (d->conn && whisper_client_want_disconnect(d->cl)) {
        cut(n, d);
        moved = 1;
      }
      record(d);
    }
    for (int k = 0; k < NODES; k++) {
      if (dead[k]) continue;
      whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
      while (whisper_server_take_output(S[k], &o) > 0) {
        moved = 1;
        node *d = node_by_conn(n, o.conn);
        if (o.action == WHISPER_SERVER_SEND && d) {
          CHECK_RC(whisper_client_receive(d->cl, o.frame, o.frame_len, n->now), WHISPER_OK);
        } else if (o.action == WHISPER_SERVER_PUSH) {
          for (int i = 0; i < n->n; i++)
            if (strcmp(n->nodes[i]->name, o.account) == 0 && n->nodes[i]->device == o.device_id)
              n->nodes[i]->pushes++;
        } else if (o.action == WHISPER_SERVER_DISCONNECT && d) {
          whisper_server_disconnected(S[k], d->conn, n->now);
          whisper_client_disconnected(d->cl, n->now);
          d->conn = 0;
        } else if (o.action == WHISPER_SERVER_RELAY) {
          CHECK(o.frame_len > 0 && o.frame_len <= WHISPER_SERVER_RELAY_MAX);
          if (drop_relays) continue;
          /* every node gets it, the sender too (as a broadcast does) */
          uint8_t copy[WHISPER_SERVER_RELAY_MAX];
          size_t len = o.frame_len;
          memcpy(copy, o.frame, len);
          for (int j = 0; j < NODES; j++)
            if (!dead[j]) CHECK_RC(whisper_server_relay(S[j], copy, len, n->now), WHISPER_OK);
          relays_moved++;
        }
      }
    }
    if (!moved) return;
  }
  CHECK(!"the network did not settle");
}

static void cluster_advance(net *n, uint64_t ms) {
  uint64_t end = n->now + ms;
  while (n->now < end) {
    uint64_t next = end;
    for (int k = 0; k < NODES; k++) {
      uint64_t sd = dead[k] ? UINT64_MAX : whisper_server_next_deadline(S[k]);
      if (sd > n->now && sd < next) next = sd;
    }
    for (int i = 0; i < n->n; i++)
      if (n->nodes[i]->cl) {
        uint64_t cd = whisper_client_next_deadline(n->nodes[i]->cl);
        if (cd > n->now && cd < next) next = cd;
      }
    n->now = next;
    for (int k = 0; k < NODES; k++)
      if (!dead[k]) whisper_server_tick(S[k], n->now);
    for (int i = 0; i < n->n; i++)
      if (n->nodes[i]->cl) whisper_client_tick(n->nodes[i]->cl, n->now);
    cluster_run(n);
  }
}

static void cluster_open(net *n) {
  net_open(n); /* its server is replaced by the cluster's */
  whisper_server_free(n->srv);
  for (int k = 0; k < NODES; k++) {
    CHECK_RC(whisper_server_new(&S[k], n->sst, NULL), WHISPER_OK);
    whisper_server_rng_set(S[k], test_rng_fn, &n->srng);
    CHECK_RC(whisper_server_cluster(S[k], (uint32_t)k + 1, n->now), WHISPER_OK);
    dead[k] = 0;
  }
  n->srv = S[0];
}

static void cluster_close(net *n) {
  for (int i = 0; i < n->n; i++) node_free(n->nodes[i]);
  for (int k = 0; k < NODES; k++) whisper_server_free(S[k]);
  whisper_store_free(n->sst);
}

static int messages_with(const node *d, const char *body) { return ev_messages(d, body); }

static void say(net *n, node *from, const char *to, const char *body, uint8_t id[16]) {
  CHECK_RC(whisper_client_send(from->cl, to, (const uint8_t *)body, strlen(body), n->now, id),
           WHISPER_OK);
}

static void test_across_nodes(void) {
  net n;
  cluster_open(&n);
  node *a = add_device(&n, "alice", 1, 0);
  node *b = add_device(&n, "bob", 1, 1);
  node *c = add_device(&n, "carol", 1, 2);
  cluster_run(&n);
  CHECK(ev_count(a, WHISPER_EV_ONLINE) == 1 && ev_count(b, WHISPER_EV_ONLINE) == 1 &&
        ev_count(c, WHISPER_EV_ONLINE) == 1);
  CHECK(relays_moved > 0);

  /* 1:1 across nodes: at once, no push */
  uint8_t id[16];
  say(&n, a, "bob", "hello from node 1", id);
  cluster_run(&n);
  CHECK(messages_with(b, "hello from node 1") == 1);
  CHECK(ev_status(a, id, "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(b->pushes == 0);

  /* without relays the message waits: the WAKE is what moves it */
  drop_relays = 1;
  say(&n, a, "bob", "no relay", id);
  cluster_run(&n);
  CHECK(messages_with(b, "no relay") == 0);
  drop_relays = 0;
  say(&n, c, "bob", "relay again", id);
  cluster_run(&n);
  CHECK(messages_with(b, "no relay") == 1 && messages_with(b, "relay again") == 1);

  /* a lost wake is made up by a resync of the node that missed it */
  drop_relays = 1;
  say(&n, a, "bob", "lost wake", id);
  cluster_run(&n);
  CHECK(messages_with(b, "lost wake") == 0);
  drop_relays = 0;
  whisper_server_cluster_resync(S[1], n.now);
  cluster_run(&n);
  CHECK(messages_with(b, "lost wake") == 1);
  CHECK(b->pushes == 0);

  /* presence and typing: carol (node 3) watches bob (node 2) */
  const char *who[1] = {"bob"};
  CHECK_RC(whisper_client_subscribe(c->cl, who, 1), WHISPER_OK);
  cluster_run(&n);
  const rec_event *p = ev_find(c, WHISPER_EV_PRESENCE, 0);
  CHECK(p && strcmp(p->from, "bob") == 0 && p->online == 1);
  ev_clear(c);
  CHECK_RC(whisper_client_typing(b->cl, "carol", 1, n.now), WHISPER_OK);
  cluster_run(&n);
  const rec_event *t = ev_find(c, WHISPER_EV_TYPING, 0);
  CHECK(t && t->started == 1 && strcmp(t->from, "bob") == 0);

  /* bob leaves: offline for carol after the grace period; mail to him pushes */
  ev_clear(c);
  b->offline = 1;
  cut(&n, b);
  cluster_advance(&n, 6000);
  p = ev_find(c, WHISPER_EV_PRESENCE, 0);
  CHECK(p && p->online == 0 && p->last_seen_ms > 0);
  say(&n, a, "bob", "while away", id);
  cluster_run(&n);
  CHECK(b->pushes == 1);

  /* he comes back on node 1: the mail waits for him there */
  ev_clear(c);
  home[index_of(&n, b)] = 0;
  b->offline = 0;
  cluster_advance(&n, 2000);
  CHECK(messages_with(b, "while away") == 1);
  p = ev_find(c, WHISPER_EV_PRESENCE, 0);
  CHECK(p && p->online == 1);

  /* his phone moves to node 3 while node 1 still holds his old connection
   * (half-open): his login there closes it */
  uint64_t old = b->conn;
  CHECK(old != 0);
  whisper_server_stats_t st0 = WHISPER_SERVER_STATS_INIT, st1 = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(S[0], &st0);
  whisper_client_disconnected(b->cl, n.now); /* the engine's side only */
  b->conn = 0;
  home[index_of(&n, b)] = 2;
  cluster_advance(&n, 2000);
  whisper_server_stats(S[0], &st1);
  CHECK(b->conn != 0 && b->conn != old);
  CHECK(st1.authenticated + 1 == st0.authenticated);
  say(&n, a, "bob", "on node 3", id);
  cluster_run(&n);
  CHECK(messages_with(b, "on node 3") == 1);
  cluster_close(&n);
}

/* Linking a device that waits on another node than the approving one. */
static void test_link_across(void) {
  net n;
  cluster_open(&n);
  node *a = add_device(&n, "hana", 1, 0);
  cluster_run(&n);
  node *a2 = add_device(&n, "hana", 2, 2); /* the new device, on node 3 */
  cluster_run(&n);
  const rec_event *code = ev_find(a2, WHISPER_EV_LINK_CODE, 0);
  CHECK(code != NULL);
  CHECK(ev_count(a2, WHISPER_EV_REGISTERED) == 0);
  if (code)
    CHECK_RC(whisper_client_link_approve(a->cl, (const uint8_t *)code->body, code->body_len),
             WHISPER_OK);
  cluster_run(&n);
  CHECK(ev_count(a2, WHISPER_EV_REGISTERED) == 1);
  CHECK(ev_count(a2, WHISPER_EV_ONLINE) == 1);
  /* and the new device is reachable across nodes */
  node *b = add_device(&n, "ivan", 1, 1);
  cluster_run(&n);
  uint8_t id[16];
  say(&n, b, "hana", "to both of hana's devices", id);
  cluster_run(&n);
  CHECK(messages_with(a, "to both of hana's devices") == 1);
  CHECK(messages_with(a2, "to both of hana's devices") == 1);
  cluster_close(&n);
}

/* A node dies without a word: its devices are online in the others' view
 * until the node timeout, then offline; they reconnect elsewhere and get
 * everything once. */
static void test_node_death(void) {
  net n;
  cluster_open(&n);
  node *a = add_device(&n, "dora", 1, 0);
  node *b = add_device(&n, "ed", 1, 1);
  cluster_run(&n);
  uint8_t id[16];
  say(&n, a, "ed", "before", id);
  cluster_run(&n);
  CHECK(messages_with(b, "before") == 1);
  /* node 2 dies with ed on it; ed's engine sees the connection go */
  dead[1] = 1;
  whisper_client_disconnected(b->cl, n.now);
  b->conn = 0;
  b->offline = 1;
  say(&n, a, "ed", "into the void", id);
  cluster_run(&n);
  CHECK(b->pushes == 0); /* still online in the view: no push yet */
  cluster_advance(&n, WHISPER_SERVER_NODE_TIMEOUT_MS + 1000);
  say(&n, a, "ed", "after the timeout", id);
  cluster_run(&n);
  CHECK(b->pushes == 1);
  /* ed reconnects to node 3 */
  home[index_of(&n, b)] = 2;
  b->offline = 0;
  cluster_advance(&n, 2000);
  CHECK(messages_with(b, "before") == 1);
  CHECK(messages_with(b, "into the void") == 1);
  CHECK(messages_with(b, "after the timeout") == 1);
  /* the dead node comes back (a new process: a new core over the store) */
  whisper_server_free(S[1]);
  CHECK_RC(whisper_server_new(&S[1], n.sst, NULL), WHISPER_OK);
  whisper_server_rng_set(S[1], test_rng_fn, &n.srng);
  CHECK_RC(whisper_server_cluster(S[1], 2, n.now), WHISPER_OK);
  dead[1] = 0;
  cluster_run(&n);
  say(&n, a, "ed", "all nodes up", id);
  cluster_run(&n);
  CHECK(messages_with(b, "all nodes up") == 1);
  CHECK(b->pushes == 1);
  cluster_close(&n);
}

/* server_seq in cluster mode: a clock with the node in its low bits. */
static void test_seq(void) {
  net n;
  cluster_open(&n);
  node *a = add_device(&n, "fay", 1, 0);
  node *b = add_device(&n, "gus", 1, 1);
  cluster_run(&n);
  uint8_t id[16];
  for (int i = 0; i < 4; i++) {
    char body[32];
    snprintf(body, sizeof body, "a%d", i);
    say(&n, a, "gus", body, id);
    snprintf(body, sizeof body, "b%d", i);
    say(&n, b, "fay", body, id);
    cluster_run(&n);
  }
  uint64_t last_a = 0, last_b = 0;
  int seen = 0;
  for (int i = 0; i < b->n_ev; i++)
    if (b->ev[i].type == WHISPER_EV_MESSAGE) {
      uint64_t s = b->ev[i].server_seq;
      CHECK((s & 0xFF) == 1 && s > last_a && (s >> 20) >= T0);
      last_a = s;
      seen++;
    }
  for (int i = 0; i < a->n_ev; i++)
    if (a->ev[i].type == WHISPER_EV_MESSAGE) {
      uint64_t s = a->ev[i].server_seq;
      CHECK((s & 0xFF) == 2 && s > last_b);
      last_b = s;
      seen++;
    }
  CHECK(seen == 8);
  cluster_close(&n);
}

static void test_relay_refusals(void) {
  net n;
  cluster_open(&n);
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
  CHECK_RC(whisper_server_relay(S[0], junk, sizeof junk, n.now), WHISPER_EINVALIDMSG);
  /* a WAKE without a device, a node 0 */
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  uint8_t buf[256];
  r.has_node = r.has_kind = 1;
  r.node = 2;
  r.kind = WHISPER__SERVER__RELAY__KIND__WAKE;
  r.account = "alice";
  size_t len = whisper__server__relay__pack(&r, buf);
  CHECK_RC(whisper_server_relay(S[0], buf, len, n.now), WHISPER_EINVALIDMSG);
  r.has_device_id = 1;
  r.device_id = 1;
  r.node = 0;
  len = whisper__server__relay__pack(&r, buf);
  CHECK_RC(whisper_server_relay(S[0], buf, len, n.now), WHISPER_EINVALIDMSG);
  r.node = 2;
  r.account = "Not A Name";
  len = whisper__server__relay__pack(&r, buf);
  CHECK_RC(whisper_server_relay(S[0], buf, len, n.now), WHISPER_EINVALIDMSG);
  /* an ONLINE of this node's own is ignored: nobody is online in its view */
  r.account = "zed";
  r.kind = WHISPER__SERVER__RELAY__KIND__ONLINE;
  r.node = 1;
  len = whisper__server__relay__pack(&r, buf);
  CHECK_RC(whisper_server_relay(S[0], buf, len, n.now), WHISPER_OK);
  node *z = add_device(&n, "zed", 1, 1);
  z->offline = 1;
  node *y = add_device(&n, "yan", 1, 0);
  cluster_run(&n);
  uint8_t id[16];
  (void)id;
  /* a core not in cluster mode takes no relays; a node joins once */
  whisper_server *plain;
  CHECK_RC(whisper_server_new(&plain, n.sst, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_relay(plain, buf, len, n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_cluster(plain, 0, n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_cluster(plain, 256, n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_cluster(plain, 9, n.now), WHISPER_OK);
  CHECK_RC(whisper_server_cluster(plain, 9, n.now), WHISPER_EINVAL);
  whisper_server_free(plain);
  (void)y;
  cluster_close(&n);
}

/* A relay of node `from` to S[0]: kind, account and device (0: none), a frame
 * (NULL: none), an at_ms (0: none). */
static int relay0(net *n, uint32_t from, int kind, const char *account, uint32_t device,
                  const uint8_t *frame, size_t frame_len, uint64_t at_ms) {
  Whisper__Server__Relay r = WHISPER__SERVER__RELAY__INIT;
  uint8_t buf[512];
  r.has_node = r.has_kind = 1;
  r.node = from;
  r.kind = (Whisper__Server__Relay__Kind)kind;
  r.account = (char *)account;
  r.has_device_id = device != 0;
  r.device_id = device;
  r.has_frame = frame != NULL;
  r.frame = (ProtobufCBinaryData){frame_len, (uint8_t *)frame};
  r.has_at_ms = at_ms != 0;
  r.at_ms = at_ms;
  CHECK(whisper__server__relay__get_packed_size(&r) <= sizeof buf);
  size_t len = whisper__server__relay__pack(&r, buf);
  return whisper_server_relay(S[0], buf, len, n->now);
}

/* Found by fuzz_relay (fuzz/README.md): a FRAME relay's frame went to the
 * local connections whatever it was; a malformed FRAME relay still counted
 * as word from its node (keeping its devices online past its timeout); a
 * device woken by one node was never woken by it again after it had been
 * online on another node; an OFFLINE whose last seen was in the future
 * (another node's clock) put off the offline notice until then. */
static void test_relay_fixes(void) {
  net n;
  cluster_open(&n);
  node *y = add_device(&n, "yan", 1, 0);
  node *z = add_device(&n, "zed", 1, 1);
  cluster_run(&n);
  z->offline = 1;
  cut(&n, z);
  cluster_advance(&n, 6000); /* zed is offline everywhere, past the grace */
  const char *who[1] = {"zed"};
  CHECK_RC(whisper_client_subscribe(y->cl, who, 1), WHISPER_OK);
  cluster_run(&n);
  uint8_t id[16];

  /* a FRAME relay carries a typing notice, nothing else */
  Whisper__Sync__Ping ping = WHISPER__SYNC__PING__INIT;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  uint8_t fb[64];
  f.has_version = f.has_id = 1;
  f.version = 1;
  f.id = 7;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PING;
  f.ping = &ping;
  size_t fl = whisper__sync__frame__pack(&f, fb);
  CHECK_RC(relay0(&n, 2, WHISPER__SERVER__RELAY__KIND__FRAME, "yan", 0, fb, fl, 0),
           WHISPER_EINVALIDMSG);

  /* zed logs in on node 7 (which only node 1 hears) */
  ev_clear(y);
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__ONLINE, "zed", 1, NULL, 0, 0), WHISPER_OK);
  cluster_run(&n);
  const rec_event *p = ev_find(y, WHISPER_EV_PRESENCE, 0);
  CHECK(p && p->online == 1);
  /* a malformed relay of node 7 is no word from it: at its timeout zed is
   * offline, and mail to him is pushed */
  cluster_advance(&n, 9000);
  static const uint8_t junk[] = {0xff, 0xff, 0x01};
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__FRAME, "yan", 0, junk, sizeof junk, 0),
           WHISPER_EINVALIDMSG);
  cluster_advance(&n, 1500);
  say(&n, y, "zed", "node 7 is gone", id);
  cluster_run(&n);
  CHECK(z->pushes == 1);
  /* online on node 7 again, then offline: a new offline period, woken again */
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__ONLINE, "zed", 1, NULL, 0, 0), WHISPER_OK);
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__OFFLINE, "zed", 1, NULL, 0, n.now),
           WHISPER_OK);
  say(&n, y, "zed", "woken again", id);
  cluster_run(&n);
  CHECK(z->pushes == 2);
  /* a last seen in the future: offline after the grace all the same */
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__ONLINE, "zed", 1, NULL, 0, 0), WHISPER_OK);
  cluster_run(&n);
  ev_clear(y);
  CHECK_RC(relay0(&n, 7, WHISPER__SERVER__RELAY__KIND__OFFLINE, "zed", 1, NULL, 0,
                  n.now + 3600 * 1000),
           WHISPER_OK);
  cluster_advance(&n, 6000);
  p = ev_find(y, WHISPER_EV_PRESENCE, 0);
  CHECK(p && p->online == 0 && p->last_seen_ms > 0 && p->last_seen_ms <= n.now);
  cluster_close(&n);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp");
  test_across_nodes();
  test_link_across();
  test_node_death();
  test_seq();
  test_relay_refusals();
  test_relay_fixes();
  return test_done();
}

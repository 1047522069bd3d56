/* Pipelined sends and batched catch-up (issue #15): the client engine
 * against the real server core, in process (sync_net.h).
 *
 *  - several Sends in flight per connection reach the recipient in order,
 *    exactly once, across a connection cut mid-window, a lost answer, an
 *    engine restart mid-window (its store reopened) and refusals inside
 *    the window (the server takes none past a refused one: Send.after);
 *  - a backlog is handled in batches of one transaction each (counted on
 *    the store), with progress events, receipts batched per sender, and
 *    nothing lost or doubled after a crash that loses the last batch or a
 *    commit that fails. */
#include "sync_net.h"

#include "protocol/state.h"        /* the skipped keys of a session record */
#include "server/server_internal.h" /* the rate limit, set for one test */

/* --- what one recipient saw ---------------------------------------------------------------------- */

#define MAXS MAX_NODES
#define MAXK 2048

typedef struct tally {
  node *who; /* the recipient watched */
  net *n;
  int next[MAXS], got[MAXS];
  unsigned char seen[MAXS][MAXK];
  int dup, disorder, foreign;
  int progress, progress_back, caught, store_errors;
  uint64_t first_done, last_done, last_total;
} tally;

static tally g_t;

static void tally_watch(net *n, node *who) {
  memset(&g_t, 0, sizeof g_t);
  g_t.who = who;
  g_t.n = n;
}

static int sender_index(const char *name) {
  for (int i = 0; i < g_t.n->n; i++)
    if (strcmp(g_t.n->nodes[i]->name, name) == 0 && g_t.n->nodes[i]->device == 1) return i;
  return -1;
}

/* Messages are "m <k>": each sender's come in k order, each once. */
static void tally_event(node *d, const whisper_client_event_t *e) {
  if (d != g_t.who) return;
  if (e->type == WHISPER_EV_MESSAGE) {
    int s = e->from ? sender_index(e->from) : -1, k = -1;
    char b[32] = "";
    if (e->body) memcpy(b, e->body, e->body_len < sizeof b - 1 ? e->body_len : sizeof b - 1);
    if (s < 0 || sscanf(b, "m %d", &k) != 1 || k < 0 || k >= MAXK) {
      g_t.foreign++;
      return;
    }
    if (g_t.seen[s][k]++) {
      g_t.dup++;
      return;
    }
    if (k != g_t.next[s]) g_t.disorder++;
    g_t.next[s] = k + 1;
    g_t.got[s]++;
  } else if (e->type == WHISPER_EV_CATCHING_UP) {
    if (g_t.progress == 0) g_t.first_done = e->done_bytes;
    g_t.progress++;
    if (e->done_bytes < g_t.last_done || e->total_bytes < e->done_bytes) g_t.progress_back++;
    g_t.last_done = e->done_bytes;
    g_t.last_total = e->total_bytes;
  } else if (e->type == WHISPER_EV_CAUGHT_UP) {
    g_t.caught++;
  } else if (e->type == WHISPER_EV_ERROR && e->code == WHISPER_ESTORE) {
    g_t.store_errors++;
  }
}

static int node_index_of_name(net *n, const char *name) {
  for (int i = 0; i < n->n; i++)
    if (strcmp(n->nodes[i]->name, name) == 0 && n->nodes[i]->device == 1) return i;
  return -1;
}

static int history_has(node *d, const char *conv, const char *body) {
  whisper_page *p = NULL;
  int found = 0;
  if (whisper_history_page(d->ctx, conv, 0, NULL, 0, 1000, &p) != WHISPER_OK) return -1;
  for (size_t i = 0; i < whisper_page_count(p); i++) {
    const whisper_message_t *m = whisper_page_get(p, i);
    found += m->body_len == strlen(body) && memcmp(m->body, body, m->body_len) == 0;
  }
  whisper_page_free(p);
  return found;
}

static void send_many(net *n, node *from, const char *to, int first, int count) {
  char text[32];
  for (int k = first; k < first + count; k++) {
    snprintf(text, sizeof text, "m %d", k);
    send_text(n, from, to, text, NULL);
  }
}

/* --- Sends in flight, as the server sees them ------------------------------------------------------ */

typedef struct inflight {
  node *who;
  int sends, answers, max; /* Send frames that reached the server, answers to them, most unanswered */
} inflight;

static int is_send(const uint8_t *f, size_t len) {
  return body_case(f, len) == WHISPER__SYNC__FRAME__BODY_SEND;
}

static void count_sends(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  (void)n;
  inflight *w = arg;
  if (d != w->who || !is_send(frame, len)) return;
  w->sends++;
  if (w->sends - w->answers > w->max) w->max = w->sends - w->answers;
}

static int count_answers(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  inflight *w = arg;
  int bc = body_case(*frame, *len);
  if (d == w->who && (bc == WHISPER__SYNC__FRAME__BODY_SENT || bc == WHISPER__SYNC__FRAME__BODY_STALE ||
                      bc == WHISPER__SYNC__FRAME__BODY_ERROR))
    w->answers++;
  return 0;
}

/* alice and bob, each with the other's signed list and a session. */
static void pair_open(net *n, node **a, node **b, int sqlite) {
  net_open(n);
  *a = account_new(n, "alice", sqlite);
  *b = account_new(n, "bob", 0);
  send_text(n, *a, "bob", "hello", NULL);
  net_run(n);
  send_text(n, *b, "alice", "hi", NULL);
  net_run(n);
  CHECK(ev_messages(*b, "hello") == 1 && ev_messages(*a, "hi") == 1);
  tally_watch(n, *b);
  net_on_event = tally_event;
}

static void pair_close(net *n) {
  net_on_event = NULL;
  for (int i = 0; i < n->n; i++) CHECK(ev_count(n->nodes[i], WHISPER_EV_REFUSED) == 0);
  net_close(n);
}

static int statuses(node *d, int status) {
  int k = 0;
  for (int i = 0; i < d->n_ev; i++) k += d->ev[i].type == WHISPER_EV_STATUS && d->ev[i].status == status;
  return k;
}

/* 100 messages at once: up to the window (32) in flight, in order at bob. */
static void test_pipeline_order(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 0);
  int ia = node_index_of_name(&n, "alice");
  inflight w = {a, 0, 0, 0};
  n.watch = count_sends;
  n.watch_arg = &w;
  n.tamper = count_answers;
  n.tamper_arg = &w;
  ev_clear(a);
  send_many(&n, a, "bob", 0, 100);
  net_run(&n);
  CHECK(g_t.got[ia] == 100 && g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  CHECK(w.max > 1 && w.max <= WHISPER_SEND_WINDOW_DEFAULT); /* pipelined, within the window */
  CHECK(w.sends >= 100);
  CHECK(statuses(a, WHISPER_STATUS_SENT) == 100);
  CHECK(statuses(a, WHISPER_STATUS_DELIVERED) == 100);
  CHECK(history_count(b, "alice") == 102); /* with hello and hi */
  pair_close(&n);
}

/* The connection is cut mid-window (ten Sends reached the server, the rest
 * were lost), then the answers are lost (every Send of the window reached
 * the server): each message once, in order, one SENT each. */
static void test_pipeline_cut(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 0);
  int ia = node_index_of_name(&n, "alice");
  ev_clear(a);
  a->cut_after_sends = 10;
  send_many(&n, a, "bob", 0, 60);
  net_run(&n);
  CHECK(a->conn == 0 && g_t.got[ia] == 10);
  net_advance(&n, 3000);
  CHECK(g_t.got[ia] == 60 && g_t.dup == 0 && g_t.disorder == 0);
  a->drop_sent = 1;
  send_many(&n, a, "bob", 60, 40);
  net_run(&n);
  CHECK(a->conn == 0);
  net_advance(&n, 3000);
  CHECK(g_t.got[ia] == 100 && g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  CHECK(statuses(a, WHISPER_STATUS_SENT) == 100); /* (a lost Sent is answered again, once) */
  CHECK(statuses(a, WHISPER_STATUS_DELIVERED) == 100);
  CHECK(history_count(b, "alice") == 102); /* with hello and hi */
  pair_close(&n);
}

/* alice's engine dies mid-window and comes back from its store. */
static void test_pipeline_restart(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 1);
  int ia = node_index_of_name(&n, "alice");
  a->cut_after_sends = 7;
  send_many(&n, a, "bob", 0, 50);
  net_run(&n);
  CHECK(a->conn == 0 && g_t.got[ia] == 7);
  node_crash(&n, a);
  node_restart(a);
  net_advance(&n, 3000);
  CHECK(g_t.got[ia] == 50 && g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  CHECK(history_count(b, "alice") == 52);
  CHECK(history_count(a, "bob") == 52); /* alice's hello and the 50, bob's hi */
  whisper_page *p = NULL;
  CHECK_RC(whisper_outbox_page(a->ctx, 100, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  pair_close(&n);
}

/* Every Send of alice reaches the server 1 ms after the one before, and the
 * rate limit (2 frames of burst, one every 2 ms) refuses about every other
 * one: the server takes none past a refused one (its `after` was not
 * taken), and alice sends them again in order. */
static void tick_per_send(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  if (d == arg && is_send(frame, len)) n->now += 1;
}

/* The message keys `d` keeps for messages it skipped in its session with
 * (name, device 1): spent by the sender for ciphertexts never delivered. */
static int skipped_keys(node *d, const char *name) {
  wh_addr a;
  const uint8_t *v;
  size_t n;
  wh_record r;
  int keys = 0;
  if (wh_addr_make(d->ctx, &a, name, 1) != WHISPER_OK ||
      wh_get_view(d->ctx, WHISPER_REC_SESSION, a.key, a.len, &v, &n) != WHISPER_OK ||
      wh_record_decode(&r, v, n) != WHISPER_OK)
    return -1;
  for (uint32_t i = 0; r.has_current && i < r.cur.nrecv; i++) keys += (int)r.cur.recv[i].nkeys;
  wh_record_free(&r);
  return keys;
}

static void test_pipeline_refused(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 0);
  int ia = node_index_of_name(&n, "alice");
  whisper_server_config_t keep = n.srv->cfg;
  n.srv->cfg.rate_burst = 2;
  n.srv->cfg.rate_per_sec = 500;
  net_advance(&n, 1000); /* full buckets */
  n.watch = tick_per_send;
  n.watch_arg = a;
  ev_clear(a);
  send_many(&n, a, "bob", 0, 40);
  net_run(&n);
  CHECK(g_t.got[ia] < 40); /* some were refused */
  for (int i = 0; i < 40 && g_t.got[ia] < 40; i++) net_advance(&n, 100);
  n.srv->cfg = keep;
  net_advance(&n, 1000);
  CHECK(g_t.got[ia] == 40 && g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  CHECK(statuses(a, WHISPER_STATUS_SENT) == 40);

  int lost = 0; /* a message given up says so with its conversation (acks refused do not) */
  for (int i = 0; i < a->n_ev; i++) lost += a->ev[i].type == WHISPER_EV_ERROR && a->ev[i].conversation[0];
  CHECK(lost == 0);
  pair_close(&n);
}

/* The same while bob is offline (no receipt makes alice's ratchet turn
 * meanwhile, so all 40 go on one chain): each refused Send goes again with
 * the ciphertext it had, so bob, when he logs in, decrypts 40 consecutive
 * keys and keeps none for skipped messages (a ciphertext made anew would
 * have spent the key of the one refused: one kept at bob for each). */
static void test_refused_same_ciphertext(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 0);
  int ia = node_index_of_name(&n, "alice");
  b->offline = 1;
  node_cut(&n, b);
  whisper_server_config_t keep = n.srv->cfg;
  n.srv->cfg.rate_burst = 2;
  n.srv->cfg.rate_per_sec = 500;
  net_advance(&n, 1000);
  n.watch = tick_per_send;
  n.watch_arg = a;
  ev_clear(a);
  send_many(&n, a, "bob", 0, 40);
  net_run(&n);
  CHECK(statuses(a, WHISPER_STATUS_SENT) < 40); /* some were refused */
  for (int i = 0; i < 40 && statuses(a, WHISPER_STATUS_SENT) < 40; i++) net_advance(&n, 100);
  n.srv->cfg = keep;
  CHECK(statuses(a, WHISPER_STATUS_SENT) == 40 && g_t.got[ia] == 0);
  b->offline = 0;
  net_advance(&n, 1000);
  CHECK(g_t.got[ia] == 40 && g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  CHECK(skipped_keys(b, "alice") == 0);
  pair_close(&n);
}

/* bob, online, stores three of alice's entries and dies before it acks
 * them: they come again after the restart and are known (no second event),
 * the other three come once. */
static void test_stored_not_acked(void) {
  net n;
  node *a, *b;
  net_open(&n);
  a = account_new(&n, "alice", 0);
  b = account_new(&n, "bob", 1);
  send_text(&n, a, "bob", "hello", NULL);
  net_run(&n);
  tally_watch(&n, b);
  net_on_event = tally_event;
  int ia = node_index_of_name(&n, "alice");
  b->crash_after_delivers = 3;
  send_many(&n, a, "bob", 0, 6);
  net_run(&n);
  CHECK(b->cl == NULL && g_t.got[ia] == 3);
  node_restart(b);
  net_advance(&n, 3000);
  CHECK(g_t.got[ia] == 6 && g_t.dup == 0 && g_t.disorder == 0);
  CHECK(history_count(b, "alice") == 7);
  pair_close(&n);
}

/* --- a server that breaks the order of a window ------------------------------------------------------ */

static int strip_after(whisper_buf **b) {
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, (*b)->len, (*b)->data);
  if (f == NULL || f->body_case != WHISPER__SYNC__FRAME__BODY_SEND) {
    if (f) whisper__sync__frame__free_unpacked(f, NULL);
    return 0;
  }
  f->send->has_after = 0;
  whisper_buf *nb = whisper_buf_new(NULL, whisper__sync__frame__get_packed_size(f));
  whisper__sync__frame__pack(f, nb->data);
  whisper__sync__frame__free_unpacked(f, NULL);
  whisper_buf_free(*b);
  *b = nb;
  return 1;
}

/* Replays alice's message `from` (counted among her messages to bob from
 * now on) in place of her message `into`, with into's seq. */
typedef struct replay {
  node *to;
  int count, from, into, done;
  Whisper__Sync__Frame *saved;
} replay;

static int replay_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  replay *r = arg;
  if (d != r->to) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  if (f->body_case != WHISPER__SYNC__FRAME__BODY_DELIVER || f->deliver->content != 4 ||
      !f->deliver->sender || strcmp(f->deliver->sender, "alice") != 0) {
    whisper__sync__frame__free_unpacked(f, NULL);
    return 0;
  }
  int k = r->count++;
  if (k == r->from) {
    r->saved = f; /* (kept) */
    return 0;
  }
  if (k == r->into && r->saved) {
    Whisper__Sync__Deliver *dv = f->deliver, *sv = r->saved->deliver, keep = *dv;
    dv->client_id = sv->client_id;
    dv->body = sv->body;
    dv->type = sv->type;
    dv->server_seq = sv->server_seq;
    size_t nl = whisper__sync__frame__get_packed_size(f);
    uint8_t *nb = malloc(nl);
    whisper__sync__frame__pack(f, nb);
    *dv = keep; /* (its own buffers, to free) */
    *frame = nb;
    *len = nl;
    r->done = 1;
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return 0;
}

/* The server takes two Sends of a window the other way round (it ignores
 * their `after`), and replays a message in place of a later one in the
 * same batch of bob's: bob shows each message once, the reordering shows
 * as a gap its message then fills, the replay as nothing, and the message
 * it replaced as missing. */
static void test_window_lies(void) {
  net n;
  node *a, *b;
  pair_open(&n, &a, &b, 0);
  int ia = node_index_of_name(&n, "alice");
  ev_clear(b);
  send_many(&n, a, "bob", 0, 10); /* queued at once: lists and sessions are there */
  whisper_buf *fr[64], *t;
  int nf = 0, sends[64], ns = 0;
  while (nf < 64 && whisper_client_take_frame(a->cl, &fr[nf])) {
    if (is_send(fr[nf]->data, fr[nf]->len)) sends[ns++] = nf;
    nf++;
  }
  CHECK(ns == 10);
  if (ns == 10) {
    t = fr[sends[3]];
    fr[sends[3]] = fr[sends[4]];
    fr[sends[4]] = t;
    CHECK(strip_after(&fr[sends[3]]) && strip_after(&fr[sends[4]]));
  }
  for (int i = 0; i < nf; i++) {
    whisper_server_receive(n.srv, a->conn, fr[i]->data, fr[i]->len, n.now);
    whisper_buf_free(fr[i]);
  }
  net_run(&n);
  CHECK(g_t.got[ia] == 10 && g_t.dup == 0 && g_t.foreign == 0);
  CHECK(ev_count(b, WHISPER_EV_GAP) == 1); /* message 4 came before 3 */
  CHECK(history_has(b, "alice", "message-missing") == 0); /* and 3 took its place */
  CHECK(history_count(b, "alice") == 12);
  /* a replay in place of a later message, within one batch */
  replay r = {b, 0, 2, 5, 0, NULL};
  n.tamper = replay_tamper;
  n.tamper_arg = &r;
  ev_clear(b);
  send_many(&n, a, "bob", 10, 8);
  net_run(&n);
  CHECK(r.done);
  CHECK(g_t.got[ia] == 17 && g_t.dup == 0 && g_t.seen[ia][15] == 0); /* 12 once, 15 never */
  CHECK(ev_count(b, WHISPER_EV_GAP) == 1 && history_has(b, "alice", "message-missing") == 1);
  n.tamper = NULL;
  if (r.saved) whisper__sync__frame__free_unpacked(r.saved, NULL);
  pair_close(&n);
}

/* --- catch-up ----------------------------------------------------------------------------------------- */

/* bob's store, seen through a wrapper that counts the commits that move
 * the engine's mailbox position (its "s" record: one per batch of entries,
 * or per entry handled alone), and can fail one of them. */
typedef struct wrap {
  whisper_store *in;
  int progress;    /* the transaction wrote "s" */
  int commits;     /* such commits */
  int fail_at;     /* this one fails (0: none) */
  int encrypted;   /* the transaction wrote a send mark (it encrypted) */
  int marks;       /* send marks written (messages encrypted) */
  int enc_commits; /* commits of transactions that encrypted */
  int both;        /* commits of transactions that wrote "s" and encrypted (a batch's receipts) */
  int fail_enc_at; /* this one fails (0: none) */
} wrap;

static wrap g_w;

static int w_begin(void *u) {
  ((wrap *)u)->progress = ((wrap *)u)->encrypted = 0;
  return ((wrap *)u)->in->ops.begin(((wrap *)u)->in->user);
}
static int w_commit(void *u) {
  wrap *w = u;
  int fail = w->progress && ++w->commits == w->fail_at;
  w->both += w->progress && w->encrypted;
  if (w->encrypted && ++w->enc_commits == w->fail_enc_at) fail = 1;
  if (fail) {
    w->in->ops.rollback(w->in->user);
    return WHISPER_ESTORE;
  }
  return w->in->ops.commit(w->in->user);
}
static void w_rollback(void *u) { ((wrap *)u)->in->ops.rollback(((wrap *)u)->in->user); }
static int w_get(void *u, int kind, const uint8_t *key, size_t key_len, whisper_buf **out) {
  return ((wrap *)u)->in->ops.get(((wrap *)u)->in->user, kind, key, key_len, out);
}
static int w_put(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  if (kind == 10 && key_len == 1 && key[0] == 's') ((wrap *)u)->progress = 1; /* (sync_internal.h) */
  if (kind == WHISPER_REC_SEND_MARK) ((wrap *)u)->encrypted = 1, ((wrap *)u)->marks++;
  return ((wrap *)u)->in->ops.put(((wrap *)u)->in->user, kind, key, key_len, v, n);
}
static int w_del(void *u, int kind, const uint8_t *key, size_t key_len) {
  return ((wrap *)u)->in->ops.del(((wrap *)u)->in->user, kind, key, key_len);
}
static int w_scan(void *u, int kind, const uint8_t *prefix, size_t prefix_len, const uint8_t *bound,
                  size_t bound_len, int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  wrap *w = u;
  return w->in->ops.scan(w->in->user, kind, prefix, prefix_len, bound, bound_len, desc, limit, fn, arg);
}
static int w_add(void *u, int kind, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  return wh_store_add(((wrap *)u)->in, kind, key, key_len, v, n);
}
static void w_destroy(void *u) { whisper_store_free(((wrap *)u)->in); }
static int w_savepoint(void *u) { return ((wrap *)u)->in->ops.savepoint(((wrap *)u)->in->user); }
static int w_release(void *u) { return ((wrap *)u)->in->ops.release(((wrap *)u)->in->user); }
static int w_rollback_to(void *u) { return ((wrap *)u)->in->ops.rollback_to(((wrap *)u)->in->user); }

/* The node's store (just opened) behind the wrapper, and a new engine. */
static void wrap_node(node *d) {
  static const whisper_store_ops ops = {WHISPER_STORE_OPS_VERSION, w_begin, w_commit, w_rollback, w_get,
                                        w_put, w_del, w_destroy, w_scan, w_add,
                                        w_savepoint, w_release, w_rollback_to, NULL};
  whisper_client_free(d->cl);
  whisper_ctx_free(d->ctx);
  g_w.in = d->st;
  CHECK_RC(whisper_store_new(&d->st, &ops, &g_w), WHISPER_OK);
  whisper_ctx_new(&d->ctx, d->st);
  whisper_ctx_rng_set(d->ctx, test_rng_fn, &d->rng);
  node_engine(d);
}

#define SENDERS 10
#define EACH 200
#define ROUND 20 /* messages each sender sends at a time */

typedef struct world {
  net n;
  node *bob, *s[SENDERS];
  node *stranger; /* or NULL */
} world;

/* bob (SQLite) knows ten senders; he goes offline and they send him EACH
 * messages each. With `stranger`, someone bob never heard of writes to him
 * too, half-way: his entries wait for his list (each alone, the batch
 * around them given back and done again). */
static void world_open(world *w, int stranger) {
  net *n = &w->n;
  net_open(n);
  memset(&g_w, 0, sizeof g_w);
  w->bob = node_new(n, "bob", 1, 1);
  wrap_node(w->bob);
  net_run(n);
  CHECK(ev_count(w->bob, WHISPER_EV_ONLINE) == 1);
  char name[16];
  for (int i = 0; i < SENDERS; i++) {
    snprintf(name, sizeof name, "s%d", i);
    w->s[i] = account_new(n, name, 0);
    send_text(n, w->s[i], "bob", "x", NULL); /* bob lists it, and answers */
    net_run(n);
    send_text(n, w->bob, name, "y", NULL);
    net_run(n);
  }
  CHECK(history_count(w->bob, "s9") == 2);
  w->bob->offline = 1;
  node_cut(n, w->bob);
  w->stranger = stranger ? account_new(n, "stranger", 0) : NULL;
  /* (in rounds: the senders' entries interleave in bob's mailbox, as when
   * they write at the same time) */
  for (int k = 0; k < EACH; k += ROUND) {
    for (int i = 0; i < SENDERS; i++) send_many(n, w->s[i], "bob", k, ROUND);
    net_run(n);
    if (w->stranger && k == EACH / 2) {
      send_many(n, w->stranger, "bob", 0, 5);
      net_run(n);
    }
  }
  for (int i = 0; i < SENDERS; i++) CHECK(statuses(w->s[i], WHISPER_STATUS_SENT) >= EACH);
  tally_watch(n, w->bob);
  net_on_event = tally_event;
}

static void world_check(world *w) {
  for (int i = 0; i < SENDERS; i++) {
    int si = node_index_of_name(&w->n, w->s[i]->name);
    CHECK(g_t.got[si] == EACH);
    CHECK(history_count(w->bob, w->s[i]->name) == EACH + 2);
    CHECK(statuses(w->s[i], WHISPER_STATUS_DELIVERED) >= EACH); /* (and the first one's) */
  }
  if (w->stranger) {
    CHECK(g_t.got[node_index_of_name(&w->n, "stranger")] == 5);
    CHECK(history_count(w->bob, "stranger") == 5);
  }
  CHECK(g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
}

static void world_close(world *w) {
  net_on_event = NULL;
  CHECK(ev_count(w->bob, WHISPER_EV_REFUSED) == 0);
  net_close(&w->n);
}

typedef struct bob_sends {
  node *bob;
  int sends;
} bob_sends;

static void count_bob(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  (void)n;
  bob_sends *b = arg;
  if (d == b->bob && is_send(frame, len)) b->sends++;
}

/* 2000 entries: handled in batches (a commit per delivery window, not per
 * entry), the app told how far along, and one receipt per sender and batch. */
static void test_catch_up(void) {
  world w;
  world_open(&w, 0);
  bob_sends bs = {w.bob, 0};
  w.n.watch = count_bob;
  w.n.watch_arg = &bs;
  g_w.commits = g_w.marks = g_w.enc_commits = g_w.both = 0;
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  world_check(&w);
  CHECK(g_t.caught == 1);
  /* a commit per batch (up to the server's window of 256 entries), not per entry */
  CHECK(g_w.commits >= SENDERS * EACH / 256 && g_w.commits <= 2 * (SENDERS * EACH / 256 + 1));
  CHECK(g_t.progress >= SENDERS * EACH / 256 && g_t.progress_back == 0);
  CHECK(g_t.last_done == g_t.last_total && g_t.last_total >= SENDERS * EACH);
  /* DELIVERED end to end: while the backlog comes, a sender's receipt
   * waits for 256 of its messages, 250 ms or the backlog's end (the
   * network's clock stands still here): one receipt per sender, not one
   * per sender and batch, nor per message */
  CHECK(bs.sends == SENDERS && g_w.marks == SENDERS);
  fprintf(stderr, "  catch-up of %d: %d commits, %d progress events, %d Sends of receipts "
          "(%d encryptions, in %d commits)\n", SENDERS * EACH, g_w.commits, g_t.progress,
          bs.sends, g_w.marks, g_w.enc_commits);
  /* Once the senders' lists are at hand (listed once per connection), the
   * receipts go under the commit of the batch whose messages they
   * acknowledge: one commit for both. */
  g_w.commits = g_w.marks = g_w.enc_commits = g_w.both = 0;
  for (int i = 0; i < SENDERS; i++) send_many(&w.n, w.s[i], "bob", EACH, ROUND);
  net_run(&w.n);
  for (int i = 0; i < SENDERS; i++) CHECK(g_t.got[node_index_of_name(&w.n, w.s[i]->name)] == EACH + ROUND);
  CHECK(g_w.both > 0 && g_w.enc_commits == g_w.both);
  fprintf(stderr, "  then %d each online: %d commits, %d encryptions, in %d commits, %d of them a "
          "batch's\n", ROUND, g_w.commits, g_w.marks, g_w.enc_commits, g_w.both);
  /* Such a commit fails: none of the receipts encrypted under it leaves
   * (their keys are not recorded as used: sent, they could be used again),
   * the connection goes, and every message and receipt still comes once. */
  for (int i = 0; i < SENDERS; i++) ev_clear(w.s[i]);
  int errors = g_t.store_errors;
  g_w.commits = 0;
  g_w.fail_at = 1;
  for (int i = 0; i < SENDERS; i++) send_many(&w.n, w.s[i], "bob", EACH + ROUND, ROUND);
  net_advance(&w.n, 3000);
  CHECK(g_t.store_errors == errors + 1 && g_w.commits > 1);
  for (int i = 0; i < SENDERS; i++) {
    CHECK(g_t.got[node_index_of_name(&w.n, w.s[i]->name)] == EACH + 2 * ROUND);
    CHECK(statuses(w.s[i], WHISPER_STATUS_DELIVERED) == ROUND);
    CHECK(ev_count(w.s[i], WHISPER_EV_ERROR) == 0);
  }
  CHECK(g_t.dup == 0 && g_t.disorder == 0 && g_t.foreign == 0);
  world_close(&w);
}

/* bob dies in the middle of the backlog, with what it had received and not
 * committed; restarted from its store, it has everything once. */
static void test_catch_up_crash(void) {
  world w;
  world_open(&w, 1);
  w.bob->crash_after_delivers = 700; /* (mid-window: the server pushes 256 at a time) */
  w.bob->crash_hard = 1;
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(w.bob->cl == NULL);
  int before = 0;
  for (int i = 0; i < SENDERS; i++) before += g_t.got[node_index_of_name(&w.n, w.s[i]->name)];
  CHECK(before > 0 && before < 700); /* committed batches only */
  w.bob->crash_hard = 0;
  node_open(w.bob);
  wrap_node(w.bob);
  net_advance(&w.n, 3000);
  world_check(&w);
  world_close(&w);
}

/* A commit in the middle of the backlog fails: nothing of that batch is
 * kept or shown, the connection goes, and it all comes again. */
static void test_catch_up_commit_fails(void) {
  world w;
  world_open(&w, 1);
  g_w.commits = 0;
  g_w.fail_at = 3; /* the third batch */
  w.bob->offline = 0;
  net_advance(&w.n, 4000);
  CHECK(g_t.store_errors == 1 && g_w.commits > 3);
  world_check(&w);
  world_close(&w);
}

/* The commit of what a run of the send pump encrypted (receipts to the
 * senders, after a batch) fails: none of the frames it queued leaves (their
 * keys are not recorded as used: sent, they could be used again), the
 * connection goes, and every receipt still comes once, every key once. */
static void leaked_sends(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  (void)n;
  bob_sends *b = arg; /* (sends: those taken after the engine gave its connection up) */
  if (d == b->bob && is_send(frame, len) && d->cl && whisper_client_want_disconnect(d->cl)) b->sends++;
}

static void test_catch_up_pump_fails(void) {
  world w;
  world_open(&w, 0);
  bob_sends leaked = {w.bob, 0};
  w.n.watch = leaked_sends;
  w.n.watch_arg = &leaked;
  g_w.enc_commits = 0;
  g_w.fail_enc_at = 2;
  for (int i = 0; i < SENDERS; i++) ev_clear(w.s[i]);
  w.bob->offline = 0;
  net_advance(&w.n, 4000);
  CHECK(g_t.store_errors == 1 && g_w.enc_commits > 2);
  CHECK(leaked.sends == 0); /* nothing of the failed commit left */
  world_check(&w);
  for (int i = 0; i < SENDERS; i++) {
    CHECK(ev_count(w.s[i], WHISPER_EV_ERROR) == 0);
    CHECK(statuses(w.s[i], WHISPER_STATUS_DELIVERED) == EACH);
  }
  world_close(&w);
}

/* The catch-up over the server's rate limit (a burst of 8 frames, then 20
 * a second): bob's Acks and receipts are refused (ERR_RATE) as often as
 * taken. A refused Ack goes again after the wait the server asks for; it
 * was lost before, and with the server's window full nothing more came:
 * the backlog stalled for good. */
static void test_catch_up_rate_limited(void) {
  world w;
  world_open(&w, 0);
  whisper_server_config_t keep = w.n.srv->cfg;
  w.n.srv->cfg.rate_burst = 8;
  w.n.srv->cfg.rate_per_sec = 20;
  net_advance(&w.n, 1000); /* full buckets */
  g_w.marks = g_w.enc_commits = 0;
  w.bob->offline = 0;
  net_advance(&w.n, 60000);
  fprintf(stderr, "  rate-limited: %d encryptions in %d commits\n", g_w.marks, g_w.enc_commits);
  w.n.srv->cfg = keep;
  net_advance(&w.n, 2000);
  world_check(&w);
  CHECK(g_t.caught == 1);
  world_close(&w);
}

/* Big entries: a batch holds at most 4 MiB of frames (SY_BATCH_BYTES), so
 * 80 entries of 60 kB come in two batches, not one. */
static void test_catch_up_big(void) {
  net n;
  net_open(&n);
  memset(&g_w, 0, sizeof g_w);
  node *bob = node_new(&n, "bob", 1, 1);
  wrap_node(bob);
  net_run(&n);
  node *a = account_new(&n, "alice", 0);
  send_text(&n, a, "bob", "x", NULL);
  net_run(&n);
  bob->offline = 1;
  node_cut(&n, bob);
  static char big[60001];
  for (int k = 0; k < 80; k++) {
    memset(big, 'a' + k % 26, sizeof big - 1);
    snprintf(big, 16, "m %d ", k);
    big[strlen(big)] = ' ';
    send_text(&n, a, "bob", big, NULL);
  }
  net_run(&n);
  tally_watch(&n, bob);
  net_on_event = tally_event;
  g_w.commits = 0;
  bob->offline = 0;
  net_advance(&n, 3000);
  CHECK(g_t.got[node_index_of_name(&n, "alice")] == 80 && g_t.dup == 0 && g_t.disorder == 0);
  CHECK(g_t.progress >= 2 && g_t.first_done < 80); /* the first batch ended at 4 MiB */
  CHECK(g_w.commits >= 2 && g_w.commits <= 4);
  net_on_event = NULL;
  net_close(&n);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-sync-pipe-%d", (int)getpid());
  mkdir(dbdir, 0700);
  test_pipeline_order();
  test_pipeline_cut();
  test_pipeline_restart();
  test_pipeline_refused();
  test_refused_same_ciphertext();
  test_stored_not_acked();
  test_window_lies();
  test_catch_up();
  test_catch_up_crash();
  test_catch_up_commit_fails();
  test_catch_up_pump_fails();
  test_catch_up_rate_limited();
  test_catch_up_big();
  rmdir(dbdir);
  return test_done();
}

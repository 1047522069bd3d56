/*
 * Blocking and reporting against the real server core (in process):
 * what a blocked account sends never shows, with an honest server (which
 * stops delivering) and with one that ignores the block list (the engine
 * drops it itself); nothing goes to it (messages refused, no receipts, no
 * typing, hidden presence); the list reaches the account's other devices,
 * survives restarts, merges by time; unblocking lets messages in again;
 * reports reach the server's store with the plaintext and are listed; bad
 * input is refused and changes nothing.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.pb-c.h"
#include "internal.h"
#include "server.pb-c.h"
#include "sync/sync_internal.h"
#include "sync_net.h"

/* --- watching the wire ----------------------------------------------------------------------- */

/* What the server sent to whom, and what engines sent. */
typedef struct spy {
  /* server -> engine */
  int delivers[MAX_NODES];      /* Deliver frames of messages (ENTRY_MESSAGE, not SKDM) */
  int typing[MAX_NODES];        /* TypingNotice */
  int presence_from[MAX_NODES]; /* PresenceNotice about `about` */
  int presence_online[MAX_NODES]; /* ... the last one's online */
  char about[64];
  /* engine -> server */
  int sends_to[MAX_NODES];      /* Send frames to `to` (1:1), by content */
  int receipts_to[MAX_NODES];   /* ... CONTENT_RECEIPT */
  int typing_out[MAX_NODES];    /* Typing frames */
  int block_sets[MAX_NODES];    /* BlockSet frames */
  int reports[MAX_NODES];       /* Report frames */
  char to[64];
  /* a raw request's answer */
  uint64_t want_id;
  int answered, answer_body;
  uint32_t answer_code;
} spy;

static int node_index(net *n, node *d) {
  for (int i = 0; i < n->n; i++)
    if (n->nodes[i] == d) return i;
  return 0;
}

static int spy_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  spy *s = arg;
  int k = node_index(n, d);
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  int drop = 0;
  if (s->want_id && f->has_id && f->id == s->want_id) {
    s->answered = 1;
    s->answer_body = (int)f->body_case;
    s->answer_code = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error->code : 0;
    drop = 1; /* not the engine's request */
  }
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER && f->deliver->kind == 1 &&
      f->deliver->content != WHISPER__SYNC__CONTENT__CONTENT_SKDM)
    s->delivers[k]++;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE) s->typing[k]++;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_PRESENCE && s->about[0] &&
      strcmp(f->presence->account, s->about) == 0) {
    s->presence_from[k]++;
    s->presence_online[k] = f->presence->online;
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return drop;
}

static void spy_watch(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  spy *s = arg;
  int k = node_index(n, d);
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, len, frame);
  if (f == NULL) return;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_SEND && f->send->to && s->to[0] &&
      strcmp(f->send->to, s->to) == 0) {
    s->sends_to[k]++;
    if (f->send->content == WHISPER__SYNC__CONTENT__CONTENT_RECEIPT) s->receipts_to[k]++;
  }
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_TYPING) s->typing_out[k]++;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_BLOCK_SET) s->block_sets[k]++;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_REPORT) s->reports[k]++;
  whisper__sync__frame__free_unpacked(f, NULL);
}

static void spy_on(net *n, spy *s) {
  memset(s, 0, sizeof *s);
  n->tamper = spy_tamper;
  n->tamper_arg = s;
  n->watch = spy_watch;
  n->watch_arg = s;
}

/* --- helpers ------------------------------------------------------------------------------------ */

typedef struct world {
  net n;
  node *alice, *alice2, *bob, *bob2, *carol;
  uint8_t hi_bob[16]; /* alice's first message to bob */
} world;

/* alice (2 devices), bob (2 devices) and carol, who have all talked. */
static void world_open(world *w, const whisper_server_config_t *cfg) {
  net_open(&w->n);
  if (cfg) { /* the same server over the same store, with these limits */
    whisper_server_free(w->n.srv);
    CHECK_RC(whisper_server_new(&w->n.srv, w->n.sst, cfg), WHISPER_OK);
    whisper_server_rng_set(w->n.srv, test_rng_fn, &w->n.srng);
  }
  w->alice = account_new(&w->n, "alice", 1);
  w->bob = account_new(&w->n, "bob", 1);
  w->carol = account_new(&w->n, "carol", 1);
  w->alice2 = device_link(&w->n, w->alice, 2, 1);
  w->bob2 = device_link(&w->n, w->bob, 2, 1);
  send_text(&w->n, w->alice, "bob", "hi bob", w->hi_bob);
  send_text(&w->n, w->bob, "alice", "hi alice", NULL);
  send_text(&w->n, w->carol, "bob", "hi from carol", NULL);
  net_run(&w->n);
  CHECK(ev_messages(w->bob, "hi bob") == 1 && ev_messages(w->bob2, "hi bob") == 1);
  CHECK(ev_messages(w->alice, "hi alice") == 1);
}

static int blocked(node *d, const char *who) {
  int b = -1;
  CHECK_RC(whisper_client_is_blocked(d->cl, who, &b), WHISPER_OK);
  return b;
}

/* The blocked accounts, comma-separated. */
static const char *block_list(node *d) {
  static char out[65536];
  whisper_buf *b = NULL;
  size_t n = 0;
  out[0] = 0;
  CHECK_RC(whisper_client_blocked_list(d->cl, &b, &n), WHISPER_OK);
  for (size_t off = 0, k = 0; b && k < n; k++) {
    const char *name = (const char *)b->data + off;
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s%s", l ? "," : "", name);
    off += strlen(name) + 1;
  }
  whisper_buf_free(b);
  return out;
}

/* The server's stored list of `account`: "name:1,name:0" (blocked or not). */
static const char *server_list(net *n, const char *account) {
  static char out[65536];
  whisper_buf *b = NULL;
  out[0] = 0;
  if (n->sst->ops.get(n->sst->user, WHISPER_REC_SERVER_BLOCKS, (const uint8_t *)account, strlen(account),
                      &b) != WHISPER_OK)
    return out;
  Whisper__Server__Blocks *m = whisper__server__blocks__unpack(NULL, b->len, b->data);
  for (size_t i = 0; m && i < m->n_entries; i++) {
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s%s:%d", l ? "," : "", m->entries[i]->account,
             m->entries[i]->blocked);
  }
  if (m) whisper__server__blocks__free_unpacked(m, NULL);
  whisper_buf_free(b);
  return out;
}

/* A server that ignores block lists: it forgets `account`'s. */
static void server_forget(net *n, const char *account) {
  CHECK_RC(n->sst->ops.del(n->sst->user, WHISPER_REC_SERVER_BLOCKS, (const uint8_t *)account,
                           strlen(account)),
           WHISPER_OK);
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

static int ev_from(const node *d, int type, const char *from) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++) n += d->ev[i].type == type && strcmp(d->ev[i].from, from) == 0;
  return n;
}

/* The id of the last message event `d` saw with this body. */
static int id_of(const node *d, const char *body, uint8_t id[16]) {
  for (int i = d->n_ev - 1; i >= 0; i--)
    if (d->ev[i].type == WHISPER_EV_MESSAGE && strcmp(d->ev[i].body, body) == 0) {
      memcpy(id, d->ev[i].id, 16);
      return 1;
    }
  return 0;
}

/* --- the server stops delivering; the engine drops whatever comes ------------------------------- */

static void test_block_honest_server(void) {
  world w;
  world_open(&w, NULL);
  spy s;
  spy_on(&w.n, &s);
  snprintf(s.to, sizeof s.to, "alice");
  CHECK(blocked(w.bob, "alice") == 0);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  CHECK(blocked(w.bob, "alice") == 1);
  net_run(&w.n);
  CHECK(s.block_sets[node_index(&w.n, w.bob)] == 1);
  CHECK(strcmp(server_list(&w.n, "bob"), "alice:1") == 0);
  /* the other device learns it, end to end */
  CHECK(ev_from(w.bob2, WHISPER_EV_BLOCKED, "alice") == 1);
  const rec_event *e = ev_find(w.bob2, WHISPER_EV_BLOCKED, 0);
  CHECK(e && e->status == 1 && strcmp(e->conversation, "alice") == 0);
  CHECK(blocked(w.bob2, "alice") == 1);
  CHECK(strcmp(block_list(w.bob2), "alice") == 0);
  CHECK(ev_from(w.bob, WHISPER_EV_BLOCKED, "alice") == 0); /* (it did it itself) */
  /* alice sends: one tick, nothing reaches bob's devices; her other device has the copy */
  memset(s.delivers, 0, sizeof s.delivers);
  ev_clear(w.alice);
  ev_clear(w.alice2);
  ev_clear(w.bob);
  ev_clear(w.bob2);
  uint8_t id[16];
  send_text(&w.n, w.alice, "bob", "can you hear me", id);
  net_advance(&w.n, 10000);
  CHECK(s.delivers[node_index(&w.n, w.bob)] == 0 && s.delivers[node_index(&w.n, w.bob2)] == 0);
  CHECK(ev_status(w.alice, id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  CHECK(ev_status(w.alice, id, NULL, 0, WHISPER_STATUS_DELIVERED) == 0);
  CHECK(ev_count(w.alice, WHISPER_EV_ERROR) == 0); /* not told */
  CHECK(history_has(w.alice2, "bob", "can you hear me") == 1);
  CHECK(ev_messages(w.bob, "can you hear me") == 0 && ev_messages(w.bob2, "can you hear me") == 0);
  CHECK(history_has(w.bob, "alice", "can you hear me") == 0);
  /* carol still gets through */
  send_text(&w.n, w.carol, "bob", "carol here", NULL);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "carol here") == 1 && ev_messages(w.bob2, "carol here") == 1);
  /* sending to alice is refused and keeps nothing; so are content operations and calls */
  int before = history_count(w.bob, "alice");
  uint8_t tmp[16], at_bob[16];
  memcpy(at_bob, w.hi_bob, 16);
  CHECK_RC(whisper_client_send(w.bob->cl, "alice", (const uint8_t *)"x", 1, w.n.now, tmp), WHISPER_EBLOCKED);
  CHECK(strstr(whisper_ctx_last_error(w.bob->ctx), "alice") != NULL);
  CHECK_RC(whisper_client_reply(w.bob->cl, "alice", at_bob, 16, "alice", (const uint8_t *)"re", 2, w.n.now, tmp),
           WHISPER_EBLOCKED);
  CHECK_RC(whisper_client_react(w.bob->cl, "alice", at_bob, 16, "alice", "👍", w.n.now), WHISPER_EBLOCKED);
  uint8_t call_id[16] = {1};
  CHECK_RC(whisper_client_call(w.bob->cl, "alice", WHISPER_CALL_OFFER, call_id, (const uint8_t *)"sdp", 3,
                               w.n.now),
           WHISPER_EBLOCKED);
  CHECK(history_count(w.bob, "alice") == before);
  net_run(&w.n);
  CHECK(s.sends_to[node_index(&w.n, w.bob)] == 0);
  /* forwarding from alice's conversation to someone else is fine */
  CHECK_RC(whisper_client_forward(w.bob->cl, "carol", "alice", at_bob, 16, "alice", w.n.now, tmp), WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_messages(w.carol, "hi bob") == 1);
  spy_on(&w.n, &s); /* (reset) */
  net_close(&w.n);
}

/* A server that ignores the list (it forgets it) delivers alice's
 * messages, receipts and typing anyway: the engine drops them. */
static void test_block_malicious_server(void) {
  world w;
  world_open(&w, NULL);
  spy s;
  uint8_t yo[16];
  send_text(&w.n, w.bob, "alice", "yo", yo); /* for a receipt later */
  net_run(&w.n);
  CHECK(ev_status(w.bob, yo, "alice", 1, WHISPER_STATUS_DELIVERED) == 1);
  uint8_t yo_at_alice[16];
  CHECK(id_of(w.alice, "yo", yo_at_alice));
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(blocked(w.bob2, "alice") == 1);
  server_forget(&w.n, "bob");
  CHECK(strcmp(server_list(&w.n, "bob"), "") == 0);
  spy_on(&w.n, &s);
  ev_clear(w.bob);
  ev_clear(w.bob2);
  send_text(&w.n, w.alice, "bob", "let me in", NULL);
  uint8_t cid[16] = {9};
  CHECK_RC(whisper_client_call(w.alice->cl, "bob", WHISPER_CALL_OFFER, cid, (const uint8_t *)"sdp", 3, w.n.now),
           WHISPER_OK);
  CHECK_RC(whisper_client_mark_read(w.alice->cl, "bob", "bob", (const uint8_t(*)[16])yo_at_alice, 1, w.n.now),
           WHISPER_OK);
  CHECK_RC(whisper_client_typing(w.alice->cl, "bob", 1, w.n.now), WHISPER_OK);
  net_advance(&w.n, 1000);
  /* the server delivered them all */
  CHECK(s.delivers[node_index(&w.n, w.bob)] >= 3 && s.delivers[node_index(&w.n, w.bob2)] >= 3);
  CHECK(s.typing[node_index(&w.n, w.bob)] == 1);
  /* and nothing shows */
  node *b[2] = {w.bob, w.bob2};
  for (int i = 0; i < 2; i++) {
    CHECK(ev_messages(b[i], "let me in") == 0);
    CHECK(history_has(b[i], "alice", "let me in") == 0);
    CHECK(ev_count(b[i], WHISPER_EV_CALL) == 0);
    CHECK(ev_count(b[i], WHISPER_EV_TYPING) == 0);
    CHECK(ev_count(b[i], WHISPER_EV_ERROR) == 0 && ev_count(b[i], WHISPER_EV_REFUSED) == 0);
    CHECK(ev_count(b[i], WHISPER_EV_RETRY) == 0);
  }
  CHECK(ev_status(w.bob, yo, "alice", 1, WHISPER_STATUS_READ) == 0);
  CHECK(status_of(w.bob, "alice", yo, "alice", 1) == WHISPER_STATUS_DELIVERED);
  /* acked: the mailbox does not stall (carol's message comes after) */
  send_text(&w.n, w.carol, "bob", "after the noise", NULL);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "after the noise") == 1);
  /* after a restart, still dropped, and the entries are not delivered again */
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  memset(s.delivers, 0, sizeof s.delivers);
  net_advance(&w.n, 2000);
  CHECK(blocked(w.bob, "alice") == 1);
  CHECK(s.delivers[node_index(&w.n, w.bob)] == 0);
  /* bob logged in again: its list went to the server again */
  CHECK(strcmp(server_list(&w.n, "bob"), "alice:1") == 0);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* Nothing goes to a blocked account: no receipts (also for its group
 * messages), no typing, and presence shows it nothing. */
static void test_nothing_goes(void) {
  world w;
  world_open(&w, NULL);
  spy s;
  uint8_t gid[16];
  const char *members[] = {"alice", "carol"};
  CHECK_RC(whisper_client_group_create(w.bob->cl, members, 2, w.n.now, gid), WHISPER_OK);
  net_run(&w.n);
  char gconv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, gconv);
  /* presence: alice watches bob, bob watches alice */
  const char *bob_name[] = {"bob"}, *alice_name[] = {"alice"};
  CHECK_RC(whisper_client_subscribe(w.alice->cl, bob_name, 1), WHISPER_OK);
  CHECK_RC(whisper_client_subscribe(w.bob->cl, alice_name, 1), WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_from(w.alice, WHISPER_EV_PRESENCE, "bob") >= 1);
  const rec_event *pe = NULL;
  for (int i = 0; i < w.alice->n_ev; i++)
    if (w.alice->ev[i].type == WHISPER_EV_PRESENCE && strcmp(w.alice->ev[i].from, "bob") == 0) pe = &w.alice->ev[i];
  CHECK(pe && pe->online == 1);
  spy_on(&w.n, &s);
  snprintf(s.to, sizeof s.to, "alice");
  snprintf(s.about, sizeof s.about, "bob");
  uint8_t hi_at_bob[16];
  CHECK(id_of(w.bob, "hi bob", hi_at_bob));
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  int ka = node_index(&w.n, w.alice), kb = node_index(&w.n, w.bob);
  /* bob now looks offline to alice, without a last seen */
  CHECK(s.presence_from[ka] >= 1 && s.presence_online[ka] == 0);
  pe = NULL;
  for (int i = 0; i < w.alice->n_ev; i++)
    if (w.alice->ev[i].type == WHISPER_EV_PRESENCE && strcmp(w.alice->ev[i].from, "bob") == 0) pe = &w.alice->ev[i];
  CHECK(pe && pe->online == 0 && pe->last_seen_ms == 0);
  /* bob reads alice's message: no READ goes to her */
  CHECK_RC(whisper_client_mark_read(w.bob->cl, "alice", "alice", (const uint8_t(*)[16])hi_at_bob, 1, w.n.now),
           WHISPER_OK);
  /* bob sets his profile: it goes to his contacts, not to the blocked
   * one (this failed with EBLOCKED after storing it: found by fuzz_client) */
  CHECK_RC(whisper_client_profile_set(w.bob->cl, "Bob", "busy", NULL, 0, w.n.now), WHISPER_OK);
  /* bob types to alice: nothing goes */
  CHECK_RC(whisper_client_typing(w.bob->cl, "alice", 1, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(s.typing_out[kb] == 0);
  CHECK(s.receipts_to[kb] == 0);
  /* in the group: alice's message shows (groups are shared), but no DELIVERED goes to her */
  ev_clear(w.bob);
  uint8_t gm[16];
  CHECK_RC(whisper_client_send_group(w.alice->cl, gid, (const uint8_t *)"group hello", 11, w.n.now, gm),
           WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "group hello") == 1 && ev_messages(w.carol, "group hello") == 1);
  CHECK(ev_status(w.alice, gm, "carol", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(w.alice, gm, "bob", 1, WHISPER_STATUS_DELIVERED) == 0);
  CHECK(ev_status(w.alice, gm, "bob", 2, WHISPER_STATUS_DELIVERED) == 0);
  CHECK(s.receipts_to[kb] == 0);
  /* group typing: the server passes it neither way between them */
  memset(s.typing, 0, sizeof s.typing);
  CHECK_RC(whisper_client_typing(w.alice->cl, gconv, 1, w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_typing(w.bob->cl, gconv, 1, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(s.typing[kb] == 0 && s.typing[ka] == 0);
  CHECK(s.typing[node_index(&w.n, w.carol)] == 2);
  /* alice's presence raises nothing at bob (the server still tells it) */
  snprintf(s.about, sizeof s.about, "alice");
  ev_clear(w.bob);
  node_cut(&w.n, w.alice);
  node_cut(&w.n, w.alice2);
  w.alice->offline = w.alice2->offline = 1;
  net_advance(&w.n, 10000);
  CHECK(s.presence_from[kb] >= 1);
  CHECK(ev_from(w.bob, WHISPER_EV_PRESENCE, "alice") == 0);
  w.alice->offline = w.alice2->offline = 0;
  net_advance(&w.n, 2000);
  /* unblocked: bob shows online to alice again, the READ held back does not go, later ones do */
  snprintf(s.about, sizeof s.about, "bob");
  CHECK_RC(whisper_client_unblock(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(s.presence_online[ka] == 1);
  /* the READ bob made while alice was blocked never goes */
  CHECK(ev_status(w.alice, w.hi_bob, "bob", 1, WHISPER_STATUS_READ) == 0);
  CHECK(status_of(w.alice, "bob", w.hi_bob, "bob", 1) == WHISPER_STATUS_DELIVERED);
  /* a later one does */
  CHECK_RC(whisper_client_mark_read(w.bob->cl, "alice", "alice", (const uint8_t(*)[16])hi_at_bob, 1, w.n.now),
           WHISPER_OK);
  net_run(&w.n);
  CHECK(status_of(w.alice, "bob", w.hi_bob, "bob", 1) == WHISPER_STATUS_READ);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* --- the list across devices, restarts and time -------------------------------------------------- */

static void test_unblock_restores(void) {
  world w;
  world_open(&w, NULL);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  for (int i = 0; i < 3; i++) send_text(&w.n, w.alice, "bob", "while blocked", NULL);
  net_run(&w.n);
  w.n.now += 1000;
  ev_clear(w.bob);
  ev_clear(w.bob2);
  /* unblocked on the other device: it reaches bob and the server */
  CHECK_RC(whisper_client_unblock(w.bob2->cl, "alice", w.n.now), WHISPER_OK);
  CHECK(blocked(w.bob2, "alice") == 0);
  net_run(&w.n);
  CHECK(blocked(w.bob, "alice") == 0);
  const rec_event *e = ev_find(w.bob, WHISPER_EV_BLOCKED, 0);
  CHECK(e && e->status == 0 && strcmp(e->from, "alice") == 0);
  CHECK(strcmp(server_list(&w.n, "bob"), "alice:0") == 0);
  CHECK(strcmp(block_list(w.bob), "") == 0);
  uint8_t id[16];
  send_text(&w.n, w.alice, "bob", "welcome back", id);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "welcome back") == 1 && ev_messages(w.bob2, "welcome back") == 1);
  CHECK(ev_messages(w.bob, "while blocked") == 0);
  /* the messages dropped meanwhile leave no gap */
  CHECK(ev_count(w.bob, WHISPER_EV_GAP) == 0 && ev_count(w.bob2, WHISPER_EV_GAP) == 0);
  CHECK(history_has(w.bob, "alice", "message-missing") == 0);
  CHECK(ev_status(w.alice, id, "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  /* and bob may write to her again */
  send_text(&w.n, w.bob, "alice", "sorry", NULL);
  net_run(&w.n);
  CHECK(ev_messages(w.alice, "sorry") == 1);
  net_close(&w.n);
}

/* What waited for alice in bob's outbox waits until she is unblocked. */
static void test_outbox_waits(void) {
  world w;
  world_open(&w, NULL);
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  uint8_t id[16];
  send_text(&w.n, w.bob, "alice", "written before", id);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(ev_messages(w.alice, "written before") == 0);
  CHECK(status_of(w.bob, "alice", id, "alice", 1) == WHISPER_STATUS_PENDING);
  CHECK(blocked(w.bob2, "alice") == 1); /* the change made offline went after the login */
  CHECK_RC(whisper_client_unblock(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_messages(w.alice, "written before") == 1);
  net_close(&w.n);
}

/* Kept across a restart, also a change not yet sent to the other devices;
 * the newest word wins, so an older list sent at a login undoes nothing. */
static void test_persistence_and_merge(void) {
  world w;
  world_open(&w, NULL);
  /* blocked offline, then the process dies before any connection */
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  CHECK_RC(whisper_client_block(w.bob->cl, "carol", w.n.now), WHISPER_OK);
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  CHECK(blocked(w.bob, "carol") == 1);
  ev_clear(w.bob2);
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(blocked(w.bob2, "carol") == 1 && ev_from(w.bob2, WHISPER_EV_BLOCKED, "carol") == 1);
  CHECK(strcmp(server_list(&w.n, "bob"), "carol:1") == 0);
  /* bob goes offline; bob2 unblocks carol later; bob logs in with its older list */
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  w.n.now += 5000;
  CHECK_RC(whisper_client_unblock(w.bob2->cl, "carol", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(strcmp(server_list(&w.n, "bob"), "carol:0") == 0);
  spy s;
  spy_on(&w.n, &s);
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(s.block_sets[node_index(&w.n, w.bob)] >= 1); /* it sent "carol:1" (older) at its login */
  CHECK(strcmp(server_list(&w.n, "bob"), "carol:0") == 0);
  CHECK(blocked(w.bob, "carol") == 0 && blocked(w.bob2, "carol") == 0);
  ev_clear(w.bob);
  send_text(&w.n, w.carol, "bob", "still friends", NULL);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "still friends") == 1);
  /* a change stored, the process gone before it was put in the outbox for
   * the other devices ("unsynced"): it goes after the next login */
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  Whisper__Sync__BlockEntry be = WHISPER__SYNC__BLOCK_ENTRY__INIT, *bep = &be;
  be.account = "erin";
  be.has_blocked = be.has_changed_at = 1;
  be.blocked = 1;
  be.changed_at = w.n.now + 100;
  Whisper__Client__BlockState bs = WHISPER__CLIENT__BLOCK_STATE__INIT;
  bs.n_entries = 1;
  bs.entries = &bep;
  bs.has_unsynced = bs.unsynced = 1;
  CHECK_RC(wh_begin(w.bob->ctx), WHISPER_OK);
  CHECK_RC(wh_finish(w.bob->ctx, wh_put_msg(w.bob->ctx, WHISPER_REC_SYNC_STATE, (const uint8_t *)"b", 1, &bs.base)),
           WHISPER_OK);
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  CHECK(blocked(w.bob, "erin") == 1 && blocked(w.bob2, "erin") == 0);
  ev_clear(w.bob2);
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(blocked(w.bob2, "erin") == 1 && ev_from(w.bob2, WHISPER_EV_BLOCKED, "erin") == 1);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* Changes made on two devices while they could not hear each other:
 * each account's newest word wins on both, whatever order the words come
 * in (an older one that comes late changes nothing). */
static void test_concurrent_changes(void) {
  world w;
  world_open(&w, NULL);
  CHECK_RC(whisper_client_block(w.bob->cl, "carol", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(blocked(w.bob2, "carol") == 1);
  node_cut(&w.n, w.bob2);
  w.bob2->offline = 1;
  w.n.now += 1000;
  CHECK_RC(whisper_client_unblock(w.bob2->cl, "carol", w.n.now), WHISPER_OK); /* older, comes late */
  CHECK_RC(whisper_client_block(w.bob2->cl, "alice", w.n.now), WHISPER_OK);
  w.n.now += 1000;
  CHECK_RC(whisper_client_unblock(w.bob->cl, "carol", w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_block(w.bob->cl, "carol", w.n.now + 1), WHISPER_OK); /* newer */
  net_run(&w.n);
  ev_clear(w.bob);
  ev_clear(w.bob2);
  w.bob2->offline = 0;
  net_advance(&w.n, 2000);
  CHECK(ev_from(w.bob, WHISPER_EV_BLOCKED, "alice") == 1 && ev_from(w.bob, WHISPER_EV_BLOCKED, "carol") == 0);
  CHECK(ev_from(w.bob2, WHISPER_EV_BLOCKED, "carol") == 1); /* bob's newer word */
  node *b[2] = {w.bob, w.bob2};
  for (int i = 0; i < 2; i++) {
    CHECK(blocked(b[i], "alice") == 1);
    CHECK(blocked(b[i], "carol") == 1);
  }
  CHECK(strcmp(server_list(&w.n, "bob"), "alice:1,carol:1") == 0);
  net_close(&w.n);
}

/* The server moves messages between "to this account only" (the block
 * list) and an own-device copy of a message to someone: the conversation
 * inside the encryption says otherwise, and the entry is refused. */
typedef struct readdress {
  node *victim;
  const char *from, *to; /* rewrite conversation_to from -> to */
  int done;
} readdress;

static int readdress_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  readdress *r = arg;
  if (d != r->victim || r->done) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER && f->deliver->conversation_to &&
      strcmp(f->deliver->conversation_to, r->from) == 0 &&
      f->deliver->content == WHISPER__SYNC__CONTENT__CONTENT_MESSAGE) {
    char *orig = f->deliver->conversation_to;
    f->deliver->conversation_to = (char *)r->to;
    size_t nl = whisper__sync__frame__get_packed_size(f);
    uint8_t *b = malloc(nl);
    whisper__sync__frame__pack(f, b);
    *frame = b; /* (the network frees it) */
    *len = nl;
    r->done = 1;
    f->deliver->conversation_to = orig;
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return 0;
}

static void test_readdressed(void) {
  world w;
  world_open(&w, NULL);
  /* bob's own-device copy of a message to alice, passed off as his block list */
  readdress r = {w.bob2, "alice", "bob", 0};
  w.n.tamper = readdress_tamper;
  w.n.tamper_arg = &r;
  ev_clear(w.bob2);
  send_text(&w.n, w.bob, "alice", "to alice", NULL);
  net_run(&w.n);
  CHECK(r.done && ev_count(w.bob2, WHISPER_EV_REFUSED) == 1);
  CHECK(history_has(w.bob2, "alice", "to alice") == 0 && history_has(w.bob2, "bob", "to alice") == 0);
  /* bob's block list, passed off as a copy of a message to alice */
  readdress r2 = {w.bob2, "bob", "alice", 0};
  w.n.tamper_arg = &r2;
  ev_clear(w.bob2);
  CHECK_RC(whisper_client_block(w.bob->cl, "carol", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(r2.done && ev_count(w.bob2, WHISPER_EV_REFUSED) == 1);
  CHECK(blocked(w.bob2, "carol") == 0 && ev_count(w.bob2, WHISPER_EV_BLOCKED) == 0);
  CHECK(history_count(w.bob2, "alice") == 2); /* hi bob, hi alice: nothing new */
  w.n.tamper = NULL;
  net_close(&w.n);
}

/* Another account sends a block list (a modified client): it is nobody's
 * business but its own account's; nothing changes, nothing shows. */
static void test_block_content_from_others(void) {
  world w;
  world_open(&w, NULL);
  Whisper__E2e__BlockEntry e = WHISPER__E2E__BLOCK_ENTRY__INIT, *ep = &e;
  e.account = "carol";
  e.has_blocked = e.has_changed_at = 1;
  e.blocked = 1;
  e.changed_at = w.n.now;
  Whisper__E2e__Block blk = WHISPER__E2E__BLOCK__INIT;
  blk.n_entries = 1;
  blk.entries = &ep;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = 1;
  ct.kind = WHISPER__E2E__CONTENT__KIND__BLOCK;
  ct.block = &blk;
  size_t len = whisper__e2e__content__get_packed_size(&ct);
  uint8_t *b = malloc(len);
  whisper__e2e__content__pack(&ct, b);
  wh_entry_extra x = {.content = b, .content_len = len, .hidden = 1};
  uint8_t id[16];
  int before = history_count(w.bob, "alice");
  ev_clear(w.bob);
  CHECK_RC(sy_enqueue(w.alice->cl, "bob", NULL, 0, &x, NULL, w.n.now, id), WHISPER_OK);
  free(b);
  net_run(&w.n);
  CHECK(blocked(w.bob, "carol") == 0 && blocked(w.bob2, "carol") == 0);
  CHECK(history_count(w.bob, "alice") == before);
  CHECK(ev_count(w.bob, WHISPER_EV_MESSAGE) == 0 && ev_count(w.bob, WHISPER_EV_BLOCKED) == 0);
  net_close(&w.n);
}

/* A profile change (profile.c sends the key to the contacts this account
 * wrote to) skips a blocked contact and still succeeds (it failed with
 * WHISPER_EBLOCKED after changing the store: found by fuzz_client). */
static void test_profile_skips_blocked(void) {
  world w;
  world_open(&w, NULL);
  send_text(&w.n, w.bob, "carol", "hi carol", NULL); /* (the key goes to those bob wrote to) */
  net_run(&w.n);
  CHECK_RC(whisper_client_profile_set(w.bob->cl, "Bob", "", NULL, 0, w.n.now), WHISPER_OK);
  net_advance(&w.n, 2000);
  whisper_profile_t *pr = NULL;
  CHECK_RC(whisper_client_profile_get(w.alice->cl, "bob", &pr), WHISPER_OK);
  CHECK(pr && pr->known && strcmp(pr->name, "Bob") == 0);
  whisper_profile_free(pr);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  w.n.now += 1000;
  CHECK_RC(whisper_client_profile_set(w.bob->cl, "Robert", "", NULL, 0, w.n.now), WHISPER_OK);
  CHECK(ev_count(w.bob, WHISPER_EV_ERROR) == 0);
  net_advance(&w.n, 2000);
  pr = NULL;
  CHECK_RC(whisper_client_profile_get(w.carol->cl, "bob", &pr), WHISPER_OK);
  CHECK(pr && pr->known && strcmp(pr->name, "Robert") == 0); /* carol hears of it */
  whisper_profile_free(pr);
  pr = NULL;
  CHECK_RC(whisper_client_profile_get(w.alice->cl, "bob", &pr), WHISPER_OK);
  CHECK(pr && strcmp(pr->name, "Bob") == 0); /* alice is not told */
  whisper_profile_free(pr);
  net_close(&w.n);
}

/* A device linked later gets the list. */
static void test_new_device_gets_list(void) {
  world w;
  world_open(&w, NULL);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  node *bob3 = device_link(&w.n, w.bob, 3, 1);
  net_advance(&w.n, 2000);
  CHECK(blocked(bob3, "alice") == 1);
  net_close(&w.n);
}

/* --- bad input ---------------------------------------------------------------------------------------- */

static void test_bad_input(void) {
  world w;
  world_open(&w, NULL);
  spy s;
  spy_on(&w.n, &s);
  int b;
  whisper_buf *buf;
  size_t cnt;
  CHECK_RC(whisper_client_block(NULL, "alice", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_block(w.bob->cl, NULL, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_block(w.bob->cl, "", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_block(w.bob->cl, "bob", w.n.now), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(w.bob->ctx), "another account") != NULL);
  CHECK_RC(whisper_client_block(w.bob->cl, "Alice", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_block(w.bob->cl, "#00112233445566778899aabbccddeeff", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_unblock(w.bob->cl, "bad name", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_unblock(w.bob->cl, "alice", w.n.now), WHISPER_OK); /* not blocked: nothing */
  CHECK_RC(whisper_client_is_blocked(w.bob->cl, "alice", NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_client_is_blocked(w.bob->cl, "no such!", &b), WHISPER_EINVAL);
  CHECK_RC(whisper_client_is_blocked(NULL, "alice", &b), WHISPER_EINVAL);
  CHECK_RC(whisper_client_blocked_list(w.bob->cl, NULL, &cnt), WHISPER_EINVAL);
  CHECK_RC(whisper_client_blocked_list(w.bob->cl, &buf, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_client_report(w.bob->cl, NULL, 5, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_report(w.bob->cl, "bob", 5, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_report(w.bob->cl, "x y", 5, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_report(w.bob->cl, "alice", WHISPER_REPORT_MAX + 1, 0, w.n.now), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(w.bob->ctx), "50") != NULL);
  CHECK_RC(whisper_client_report(w.bob->cl, "#00112233445566778899aabbccddeeff", 5, 1, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_report(NULL, "alice", 5, 0, w.n.now), WHISPER_EINVAL);
  net_run(&w.n);
  /* nothing changed, nothing went */
  CHECK(strcmp(block_list(w.bob), "") == 0);
  CHECK(s.block_sets[node_index(&w.n, w.bob)] == 0 && s.reports[node_index(&w.n, w.bob)] == 0);
  CHECK(strcmp(server_list(&w.n, "bob"), "") == 0);
  CHECK(ev_count(w.bob2, WHISPER_EV_BLOCKED) == 0);
  /* blocking twice is one change */
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_block(w.bob->cl, "alice", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(s.block_sets[node_index(&w.n, w.bob)] == 1);
  CHECK(ev_from(w.bob2, WHISPER_EV_BLOCKED, "alice") == 1);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* At most WHISPER_BLOCK_MAX accounts: the next is refused, nothing changes. */
static void test_block_limit(void) {
  world w;
  world_open(&w, NULL);
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  char name[32];
  for (int i = 0; i < WHISPER_BLOCK_MAX; i++) {
    snprintf(name, sizeof name, "spam%04d", i);
    int rc = whisper_client_block(w.bob->cl, name, w.n.now + (uint64_t)i);
    if (rc != WHISPER_OK) CHECK_RC(rc, WHISPER_OK);
  }
  CHECK_RC(whisper_client_block(w.bob->cl, "one.too.many", w.n.now), WHISPER_EINVAL);
  CHECK(blocked(w.bob, "one.too.many") == 0);
  /* an unblock makes room: its tombstone is the one that goes */
  CHECK_RC(whisper_client_unblock(w.bob->cl, "spam0000", w.n.now + 5000), WHISPER_OK);
  CHECK_RC(whisper_client_block(w.bob->cl, "one.too.many", w.n.now + 6000), WHISPER_OK);
  whisper_buf *b;
  size_t n;
  CHECK_RC(whisper_client_blocked_list(w.bob->cl, &b, &n), WHISPER_OK);
  CHECK(n == WHISPER_BLOCK_MAX);
  whisper_buf_free(b);
  w.bob->offline = 0;
  net_advance(&w.n, 15000); /* (a message to the other devices per change: 1026, at the rate limit) */
  const char *l = server_list(&w.n, "bob");
  CHECK(strstr(l, "one.too.many:1") != NULL && strstr(l, "spam0000") == NULL);
  CHECK(blocked(w.bob2, "spam1023") == 1 && blocked(w.bob2, "one.too.many") == 1);
  net_close(&w.n);
}

/* --- the server's own checks ------------------------------------------------------------------------- */

/* Sends a raw request on `d`'s connection and returns the answer's body
 * (the spy takes it, so the engine never sees it). */
static int raw(world *w, spy *s, node *d, Whisper__Sync__Frame *f) {
  static uint64_t next = 1ULL << 40;
  f->has_version = f->has_id = 1;
  f->version = 1;
  f->id = ++next;
  s->want_id = f->id;
  s->answered = 0;
  size_t len = whisper__sync__frame__get_packed_size(f);
  uint8_t *b = malloc(len);
  whisper__sync__frame__pack(f, b);
  CHECK_RC(whisper_server_receive(w->n.srv, d->conn, b, len, w->n.now), WHISPER_OK);
  free(b);
  net_run(&w->n);
  CHECK(s->answered);
  return s->answer_body;
}

static uint32_t raw_block_set(world *w, spy *s, node *d, Whisper__Sync__BlockEntry **e, size_t n) {
  Whisper__Sync__BlockSet bs = WHISPER__SYNC__BLOCK_SET__INIT;
  bs.n_entries = n;
  bs.entries = e;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_BLOCK_SET;
  f.block_set = &bs;
  int body = raw(w, s, d, &f);
  uint32_t code = body == WHISPER__SYNC__FRAME__BODY_OK ? 0 : s->answer_code;
  if (code == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED) { /* (three in a row close the connection) */
    Whisper__Sync__BlockSet none = WHISPER__SYNC__BLOCK_SET__INIT;
    f.block_set = &none;
    CHECK(raw(w, s, d, &f) == WHISPER__SYNC__FRAME__BODY_OK);
  }
  return code;
}

static int count_report(void *user, const whisper_server_report_t *r) {
  (void)r;
  ++*(int *)user;
  return 0;
}

static void test_server_checks(void) {
  world w;
  world_open(&w, NULL);
  spy s;
  spy_on(&w.n, &s);
  static Whisper__Sync__BlockEntry e[1100];
  static Whisper__Sync__BlockEntry *ep[1100];
  static char names[1100][16];
  for (int i = 0; i < 1100; i++) {
    whisper__sync__block_entry__init(&e[i]);
    snprintf(names[i], sizeof names[i], "x%04d", i);
    e[i].account = names[i];
    e[i].has_blocked = e[i].has_changed_at = 1;
    e[i].blocked = 1;
    e[i].changed_at = 100 + (uint64_t)i;
    ep[i] = &e[i];
  }
  /* malformed: itself, twice, no time, a bad name, too many: nothing stored */
  e[0].account = "bob";
  CHECK(raw_block_set(&w, &s, w.bob, ep, 2) == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  e[0].account = names[1];
  CHECK(raw_block_set(&w, &s, w.bob, ep, 2) == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  e[0].account = names[0];
  e[0].has_changed_at = 0;
  CHECK(raw_block_set(&w, &s, w.bob, ep, 2) == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  e[0].has_changed_at = 1;
  e[0].account = "Not A Name";
  CHECK(raw_block_set(&w, &s, w.bob, ep, 2) == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  e[0].account = names[0];
  CHECK(raw_block_set(&w, &s, w.bob, ep, 1025) == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(strcmp(server_list(&w.n, "bob"), "") == 0);
  /* 1024 blocked, then one more in another set: ERR_LIMIT, nothing changes */
  CHECK(raw_block_set(&w, &s, w.bob, ep, 1024) == 0);
  CHECK(raw_block_set(&w, &s, w.bob, ep + 1024, 1) == WHISPER__SYNC__ERROR_CODE__ERR_LIMIT);
  CHECK(strstr(server_list(&w.n, "bob"), "x1024") == NULL);
  /* an older word changes nothing; a newer one does; at the same time, blocked wins */
  e[5].blocked = 0;
  e[5].changed_at = 50;
  CHECK(raw_block_set(&w, &s, w.bob, ep + 5, 1) == 0);
  CHECK(strstr(server_list(&w.n, "bob"), "x0005:1") != NULL);
  e[5].changed_at = 105; /* the same time: blocked stays */
  CHECK(raw_block_set(&w, &s, w.bob, ep + 5, 1) == 0);
  CHECK(strstr(server_list(&w.n, "bob"), "x0005:1") != NULL);
  e[5].changed_at = 106;
  CHECK(raw_block_set(&w, &s, w.bob, ep + 5, 1) == 0);
  CHECK(strstr(server_list(&w.n, "bob"), "x0005:0") != NULL);
  /* now there is room for one more blocked; the oldest tombstone goes past 1024 entries */
  CHECK(raw_block_set(&w, &s, w.bob, ep + 1024, 1) == 0);
  CHECK(strstr(server_list(&w.n, "bob"), "x1024:1") != NULL && strstr(server_list(&w.n, "bob"), "x0005") == NULL);
  /* reports: too many messages, a bad conversation, a long text */
  Whisper__Sync__ReportedMessage rm[51], *rmp[51];
  for (int i = 0; i < 51; i++) {
    whisper__sync__reported_message__init(&rm[i]);
    rm[i].has_id = rm[i].has_text = 1;
    rm[i].id = (ProtobufCBinaryData){16, (uint8_t *)"0123456789abcdef"};
    rm[i].sender = "alice";
    rm[i].text = (ProtobufCBinaryData){2, (uint8_t *)"hi"};
    rmp[i] = &rm[i];
  }
  Whisper__Sync__Report rep = WHISPER__SYNC__REPORT__INIT;
  rep.conversation = "alice";
  rep.n_messages = 51;
  rep.messages = rmp;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_REPORT;
  f.report = &rep;
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_ERROR &&
        s.answer_code == WHISPER__SYNC__ERROR_CODE__ERR_LIMIT);
  rep.n_messages = 2;
  rep.conversation = "#0011";
  Whisper__Sync__BlockSet none = WHISPER__SYNC__BLOCK_SET__INIT;
  Whisper__Sync__Frame ok = WHISPER__SYNC__FRAME__INIT;
  ok.body_case = WHISPER__SYNC__FRAME__BODY_BLOCK_SET;
  ok.block_set = &none;
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_ERROR &&
        s.answer_code == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(raw(&w, &s, w.bob, &ok) == WHISPER__SYNC__FRAME__BODY_OK);
  rep.conversation = "#00112233445566778899aabbccddeeff00";
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_ERROR &&
        s.answer_code == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(raw(&w, &s, w.bob, &ok) == WHISPER__SYNC__FRAME__BODY_OK);
  rep.conversation = "alice";
  static uint8_t big[2049];
  memset(big, 'a', sizeof big);
  rm[1].text = (ProtobufCBinaryData){sizeof big, big};
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_ERROR &&
        s.answer_code == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(raw(&w, &s, w.bob, &ok) == WHISPER__SYNC__FRAME__BODY_OK);
  rm[1].text = (ProtobufCBinaryData){2048, big};
  rm[0].sender = NULL;
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_ERROR &&
        s.answer_code == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(raw(&w, &s, w.bob, &ok) == WHISPER__SYNC__FRAME__BODY_OK);
  rm[0].sender = "alice";
  CHECK(raw(&w, &s, w.bob, &f) == WHISPER__SYNC__FRAME__BODY_OK);
  /* only that one was stored */
  int count = 0;
  CHECK_RC(whisper_server_reports(w.n.srv, 0, 0, count_report, &count), WHISPER_OK);
  CHECK(count == 1);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* --- reports ----------------------------------------------------------------------------------------- */

typedef struct got_reports {
  int n;
  uint64_t number[16];
  char reporter[16][32], conversation[16][64];
  uint32_t device[16];
  int blocked[16];
  size_t n_messages[16];
  char text[16][8][64];
  char sender[16][8][32];
  uint64_t sent_at[16][8];
  int truncated[16][8], deleted[16][8];
  size_t text_len[16][8];
  int bad_size; /* messages whose size is not the library's */
} got_reports;

static int take_report(void *user, const whisper_server_report_t *r) {
  got_reports *g = user;
  if (g->n == 16) return 1;
  int k = g->n++;
  g->number[k] = r->number;
  snprintf(g->reporter[k], sizeof g->reporter[k], "%s", r->reporter);
  snprintf(g->conversation[k], sizeof g->conversation[k], "%s", r->conversation);
  g->device[k] = r->reporter_device;
  g->blocked[k] = r->blocked;
  g->n_messages[k] = r->n_messages;
  if (whisper_server_report_message(r, r->n_messages) != NULL) g->bad_size++;
  for (size_t i = 0; i < r->n_messages && i < 8; i++) {
    /* a versioned array in library memory: stepped by its element size,
     * the library's, the same in every element */
    const whisper_server_report_message_t *m = WHISPER_SERVER_REPORT_MESSAGE(r, i);
    if (whisper_server_report_message(r, i) != m) g->bad_size++; /* the function for bindings */
    if (m->size != sizeof *m || m->size < WHISPER_SERVER_REPORT_MESSAGE_SIZE_1_0) g->bad_size++;
    snprintf(g->text[k][i], sizeof g->text[k][i], "%.*s", (int)(m->text_len < 63 ? m->text_len : 63),
             m->text ? (const char *)m->text : "");
    snprintf(g->sender[k][i], sizeof g->sender[k][i], "%s", m->sender);
    g->sent_at[k][i] = m->sent_at_ms;
    g->truncated[k][i] = m->truncated;
    g->deleted[k][i] = m->deleted;
    g->text_len[k][i] = m->text_len;
  }
  return 0;
}

static void reports_read(net *n, uint64_t after, size_t limit, got_reports *g) {
  memset(g, 0, sizeof *g);
  CHECK_RC(whisper_server_reports(n->srv, after, limit, take_report, g), WHISPER_OK);
  CHECK(g->bad_size == 0);
}

/* Drops the Delivers of one message (the server loses it). */
static int lose_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  (void)d;
  const uint8_t *id = arg;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  int drop = f && f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER && f->deliver->has_client_id &&
             f->deliver->client_id.len == 16 && memcmp(f->deliver->client_id.data, id, 16) == 0;
  if (f) whisper__sync__frame__free_unpacked(f, NULL);
  return drop;
}

static void test_report(void) {
  world w;
  world_open(&w, NULL);
  /* a conversation bob and alice had (each message taken by the server
   * before the next is written: pipelined, alice's next one would pass
   * bob's, which waits for alice's bundle) */
  send_text(&w.n, w.alice, "bob", "buy my stuff", NULL);
  net_run(&w.n);
  w.n.now += 1000;
  send_text(&w.n, w.bob, "alice", "no thanks", NULL);
  net_run(&w.n);
  w.n.now += 1000;
  static char longtext[3000];
  memset(longtext, 'z', sizeof longtext - 1);
  longtext[0] = 'L';
  send_text(&w.n, w.alice, "bob", longtext, NULL);
  uint64_t t_long = w.n.now;
  net_run(&w.n);
  /* one message is lost on the way: bob's history gets a "message-missing" placeholder */
  uint8_t lost[16], del_id[16];
  w.n.now += 1000;
  send_text(&w.n, w.alice, "bob", "lost one", lost);
  w.n.tamper = lose_tamper; /* (for good: also when it is pushed again) */
  w.n.tamper_arg = lost;
  net_run(&w.n);
  w.n.now += 1000;
  send_text(&w.n, w.alice, "bob", "oops", del_id);
  net_run(&w.n);
  CHECK(ev_count(w.bob, WHISPER_EV_GAP) == 1 && history_has(w.bob, "alice", "message-missing") == 1);
  CHECK_RC(whisper_client_delete(w.alice->cl, "bob", del_id, 16, w.n.now), WHISPER_OK);
  net_run(&w.n);
  /* alice links a tablet and writes from it: bob's history gets a "device-added 3" notice */
  node *alice3 = device_link(&w.n, w.alice, 3, 1);
  node_cut(&w.n, w.bob); /* (bob lists alice's devices once per connection) */
  node_cut(&w.n, w.bob2);
  net_advance(&w.n, 2000);
  w.n.now += 1000;
  send_text(&w.n, alice3, "bob", "from the tablet", NULL);
  net_run(&w.n);
  CHECK(ev_messages(w.bob, "from the tablet") == 1 && history_has(w.bob, "alice", "device-added 3") == 1);
  spy s;
  spy_on(&w.n, &s);
  w.n.tamper = lose_tamper;
  w.n.tamper_arg = lost;
  got_reports g;
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 0);
  CHECK_RC(whisper_client_report(w.bob->cl, "alice", 5, 1, w.n.now), WHISPER_OK);
  CHECK(blocked(w.bob, "alice") == 1); /* blocked in the same step */
  net_run(&w.n);
  CHECK(s.reports[node_index(&w.n, w.bob)] == 1);
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 1);
  CHECK(g.number[0] == 1 && strcmp(g.reporter[0], "bob") == 0 && g.device[0] == 1);
  CHECK(strcmp(g.conversation[0], "alice") == 0 && g.blocked[0] == 1);
  CHECK(g.n_messages[0] == 5);
  /* oldest first: the right senders, times and plaintext; no placeholder or notice */
  CHECK(strcmp(g.sender[0][0], "alice") == 0 && strcmp(g.text[0][0], "buy my stuff") == 0);
  CHECK(strcmp(g.sender[0][1], "bob") == 0 && strcmp(g.text[0][1], "no thanks") == 0);
  CHECK(strcmp(g.sender[0][2], "alice") == 0 && g.text_len[0][2] == WHISPER_REPORT_TEXT_MAX &&
        g.text[0][2][0] == 'L' && g.truncated[0][2] == 1);
  CHECK(g.sent_at[0][2] == t_long);
  CHECK(g.deleted[0][3] == 1 && g.text_len[0][3] == 0);
  CHECK(strcmp(g.sender[0][4], "alice") == 0 && strcmp(g.text[0][4], "from the tablet") == 0);
  CHECK(g.sent_at[0][0] < g.sent_at[0][1] && g.sent_at[0][1] < g.sent_at[0][2]);
  /* the report is gone from bob's store once taken: a restart sends nothing again */
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  net_advance(&w.n, 2000);
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 1);
  /* the default n */
  CHECK_RC(whisper_client_report(w.alice->cl, "bob", 0, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  reports_read(&w.n, 1, 0, &g);
  CHECK(g.n == 1 && g.number[0] == 2 && strcmp(g.reporter[0], "alice") == 0 && g.blocked[0] == 0);
  CHECK(g.n_messages[0] == 5);
  for (size_t i = 0; i < g.n_messages[0] && i < 8; i++) CHECK(strncmp(g.text[0][i], "device-", 7) != 0);
  /* a group conversation; a report made offline goes after the next login */
  uint8_t gid[16];
  const char *members[] = {"bob", "carol"};
  CHECK_RC(whisper_client_group_create(w.carol->cl, members, 2, w.n.now, gid), WHISPER_OK);
  net_run(&w.n);
  CHECK_RC(whisper_client_send_group(w.carol->cl, gid, (const uint8_t *)"group spam", 10, w.n.now, del_id),
           WHISPER_OK);
  net_run(&w.n);
  char gconv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, gconv);
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  CHECK_RC(whisper_client_report(w.bob->cl, gconv, 1, 0, w.n.now), WHISPER_OK);
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  reports_read(&w.n, 2, 0, &g);
  CHECK(g.n == 1 && strcmp(g.conversation[0], gconv) == 0 && g.n_messages[0] == 1);
  CHECK(strcmp(g.sender[0][0], "carol") == 0 && strcmp(g.text[0][0], "group spam") == 0);
  /* the server's store keeps them across a restart of the server */
  whisper_server_free(w.n.srv);
  CHECK_RC(whisper_server_new(&w.n.srv, w.n.sst, NULL), WHISPER_OK);
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 3 && g.number[2] == 3);
  reports_read(&w.n, 0, 2, &g);
  CHECK(g.n == 2);
  CHECK_RC(whisper_server_reports(w.n.srv, 0, 0, NULL, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_server_reports(NULL, 0, 0, take_report, &g), WHISPER_EINVAL);
  w.n.tamper = NULL;
  w.n.watch = NULL;
  net_close(&w.n);
}

/* The server keeps the newest max_reports; waiting reports are bounded. */
static void test_report_bounds(void) {
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.max_reports = 3;
  world w;
  world_open(&w, &cfg);
  for (int i = 0; i < 5; i++) {
    CHECK_RC(whisper_client_report(w.bob->cl, "alice", 1, 0, w.n.now), WHISPER_OK);
    net_run(&w.n);
  }
  got_reports g;
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 3 && g.number[0] == 3 && g.number[2] == 5);
  /* offline: at most 16 wait, the next is refused and nothing is kept */
  node_cut(&w.n, w.bob);
  w.bob->offline = 1;
  for (int i = 0; i < 16; i++) CHECK_RC(whisper_client_report(w.bob->cl, "alice", 1, 0, w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_report(w.bob->cl, "alice", 1, 1, w.n.now), WHISPER_ESTATE);
  CHECK(blocked(w.bob, "alice") == 0); /* its block did not happen either */
  w.bob->offline = 0;
  net_advance(&w.n, 2000);
  reports_read(&w.n, 0, 0, &g);
  CHECK(g.n == 3 && g.number[2] == 21);
  net_close(&w.n);
}

#define RUN(t)                                                            \
  do {                                                                    \
    const char *only = getenv("BLOCK_ONLY");                              \
    if (only == NULL || strcmp(only, #t) == 0) t();                       \
  } while (0)

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-block-%d", (int)getpid());
  mkdir(dbdir, 0700);
  RUN(test_block_honest_server);
  RUN(test_block_malicious_server);
  RUN(test_nothing_goes);
  RUN(test_unblock_restores);
  RUN(test_outbox_waits);
  RUN(test_persistence_and_merge);
  RUN(test_concurrent_changes);
  RUN(test_new_device_gets_list);
  RUN(test_readdressed);
  RUN(test_block_content_from_others);
  RUN(test_profile_skips_blocked);
  RUN(test_bad_input);
  RUN(test_block_limit);
  RUN(test_server_checks);
  RUN(test_report);
  RUN(test_report_bounds);
  rmdir(dbdir);
  return test_done();
}

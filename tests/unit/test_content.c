/*
 * Message content against the real server core (in process): replies,
 * forwards, reactions, edits, deletes for everyone, call signalling and
 * content of a newer version, on every device of both accounts, with the
 * order of arrival shuffled and with senders that try what they may not.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.pb-c.h"
#include "internal.h"
#include "sync/sync_internal.h"
#include "sync_net.h"

/* The message of a page with this client id (NULL: none); the page stays
 * the caller's to free. */
static const whisper_message_t *msg_in(node *d, const char *conv, const uint8_t id[16],
                                       whisper_page **pg) {
  *pg = NULL;
  if (whisper_history_page(d->ctx, conv, 0, NULL, 0, 1000, pg) != WHISPER_OK) return NULL;
  for (size_t i = 0; i < whisper_page_count(*pg); i++) {
    const whisper_message_t *m = whisper_page_get(*pg, i);
    if (m->id_len == 16 && memcmp(m->id, id, 16) == 0) return m;
  }
  return NULL;
}

/* The body message `id` shows in `conv` on `d` ("<none>" if absent). */
static const char *body_of(node *d, const char *conv, const uint8_t id[16]) {
  static char out[256];
  whisper_page *pg;
  const whisper_message_t *m = msg_in(d, conv, id, &pg);
  snprintf(out, sizeof out, "%s", "<none>");
  if (m) snprintf(out, sizeof out, "%.*s", (int)m->body_len, m->body ? (const char *)m->body : "");
  whisper_page_free(pg);
  return out;
}

/* "reactor:emoji," for each reaction of message `id`. */
static const char *reactions_of(node *d, const char *conv, const uint8_t id[16]) {
  static char out[512];
  whisper_page *pg;
  const whisper_message_t *m = msg_in(d, conv, id, &pg);
  out[0] = 0;
  /* versioned structs in library memory (docs/api.md): the message and
   * every reaction carry the library's size; the reactions are stepped by
   * it (WHISPER_MESSAGE_REACTION()) */
  CHECK(m == NULL || m->size == sizeof *m);
  for (size_t i = 0; m && i < m->n_reactions; i++) {
    const whisper_reaction_t *r = WHISPER_MESSAGE_REACTION(m, i);
    CHECK(whisper_message_reaction(m, i) == r); /* the function for bindings */
    CHECK(r->size == sizeof *r && r->size >= WHISPER_REACTION_SIZE_1_0);
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s:%s,", r->reactor, r->emoji);
  }
  CHECK(m == NULL || whisper_message_reaction(m, m->n_reactions) == NULL);
  whisper_page_free(pg);
  return out;
}

static int edited(node *d, const char *conv, const uint8_t id[16]) {
  whisper_page *pg;
  const whisper_message_t *m = msg_in(d, conv, id, &pg);
  int e = m && m->edited_ms != 0;
  whisper_page_free(pg);
  return e;
}

static int deleted(node *d, const char *conv, const uint8_t id[16]) {
  whisper_page *pg;
  const whisper_message_t *m = msg_in(d, conv, id, &pg);
  int e = m && m->deleted && m->body_len == 0 && m->n_reactions == 0;
  whisper_page_free(pg);
  return e;
}

static const rec_event *last_of_type(const node *d, int type) {
  const rec_event *r = NULL;
  for (int i = 0; i < d->n_ev; i++)
    if (d->ev[i].type == type) r = &d->ev[i];
  return r;
}

/* How many messages a search finds on `d`. */
static int found(node *d, const char *query) {
  whisper_page *pg = NULL;
  if (whisper_search(d->ctx, query, NULL, NULL, 50, &pg) != WHISPER_OK) return -1;
  int n = (int)whisper_page_count(pg);
  whisper_page_free(pg);
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

/* Sends raw content from `from`'s engine, as a modified client would:
 * nothing checked or applied on its side. */
static void send_raw(net *n, node *from, const char *conv, const Whisper__E2e__Content *ct) {
  size_t len = whisper__e2e__content__get_packed_size(ct);
  uint8_t *b = malloc(len ? len : 1);
  whisper__e2e__content__pack(ct, b);
  wh_entry_extra x = {.content = b, .content_len = len, .hidden = 1};
  uint8_t id[16];
  CHECK_RC(sy_enqueue(from->cl, conv, NULL, 0, &x, NULL, n->now, id), WHISPER_OK);
  free(b);
  net_run(n);
}

/* The stored bytes of d's session with (name, device) (NULL: none). */
static whisper_buf *raw_session(node *d, const char *name, uint32_t device) {
  uint8_t k[300];
  size_t n = strlen(name);
  memcpy(k, name, n);
  k[n] = 0;
  wh_be32(k + n + 1, device);
  whisper_buf *b = NULL;
  if (d->st->ops.get(d->st->user, WHISPER_REC_SESSION, k, n + 5, &b) != WHISPER_OK) return NULL;
  return b;
}

static void raw_op(Whisper__E2e__Content *ct, Whisper__E2e__Target *t, uint32_t kind, const uint8_t id[16],
                   const char *sender, uint64_t at) {
  whisper__e2e__target__init(t);
  t->has_id = 1;
  t->id = (ProtobufCBinaryData){16, (uint8_t *)id};
  t->sender = (char *)sender;
  whisper__e2e__content__init(ct);
  ct->has_version = ct->has_kind = ct->has_at_ms = 1;
  ct->version = 1;
  ct->kind = kind;
  ct->target = t;
  ct->at_ms = at;
}

typedef struct pair {
  net n;
  node *alice, *alice2, *bob, *bob2;
} pair;

/* alice and bob, each with two devices, who have talked. */
static void pair_open(pair *p) {
  net_open(&p->n);
  p->alice = account_new(&p->n, "alice", 1);
  p->bob = account_new(&p->n, "bob", 1);
  p->alice2 = device_link(&p->n, p->alice, 2, 1);
  p->bob2 = device_link(&p->n, p->bob, 2, 1);
  send_text(&p->n, p->alice, "bob", "hi bob", NULL);
  net_run(&p->n);
  CHECK(ev_messages(p->bob, "hi bob") == 1 && ev_messages(p->bob2, "hi bob") == 1);
}

/* --- replies and forwards ------------------------------------------------------------------------ */

static void test_reply_and_forward(void) {
  pair p;
  pair_open(&p);
  uint8_t hello[16], reply[16], fwd[16];
  send_text(&p.n, p.alice, "bob", "hello there", hello);
  net_run(&p.n);
  uint8_t at_bob[16];
  CHECK(id_of(p.bob, "hello there", at_bob) && memcmp(at_bob, hello, 16) == 0);
  CHECK_RC(whisper_client_reply(p.bob->cl, "alice", hello, 16, "alice", (const uint8_t *)"and you", 7,
                                p.n.now, reply),
           WHISPER_OK);
  net_run(&p.n);
  const rec_event *e = last_of_type(p.alice, WHISPER_EV_MESSAGE);
  CHECK(e && strcmp(e->body, "and you") == 0 && e->kind == WHISPER_KIND_TEXT);
  CHECK(e && e->target_len == 16 && memcmp(e->target, hello, 16) == 0 && e->target_sender[0] == 0);
  /* every device shows the quote: alice's (her own message) and bob's */
  node *all[] = {p.alice, p.alice2, p.bob, p.bob2};
  for (int i = 0; i < 4; i++) {
    whisper_page *pg;
    const char *conv = i < 2 ? "bob" : "alice";
    const whisper_message_t *m = msg_in(all[i], conv, reply, &pg);
    CHECK(m != NULL);
    if (m) {
      CHECK(m->quote_id_len == 16 && memcmp(m->quote_id, hello, 16) == 0);
      CHECK(strcmp(m->quote_excerpt, "hello there") == 0);
      /* the quoted message is alice's: NULL on her devices, "alice" on bob's */
      CHECK(i < 2 ? m->quote_sender == NULL : (m->quote_sender && strcmp(m->quote_sender, "alice") == 0));
    }
    whisper_page_free(pg);
  }
  /* a reply to a message that is not there */
  uint8_t none[16] = {1, 2, 3};
  CHECK_RC(whisper_client_reply(p.bob->cl, "alice", none, 16, "alice", (const uint8_t *)"x", 1, p.n.now, reply),
           WHISPER_ENOTFOUND);
  /* forwards: bob forwards alice's message to carol, who forwards it on */
  node *carol = account_new(&p.n, "carol", 1);
  CHECK_RC(whisper_client_forward(p.bob->cl, "carol", "alice", hello, 16, "alice", p.n.now, fwd), WHISPER_OK);
  net_run(&p.n);
  e = last_of_type(carol, WHISPER_EV_MESSAGE);
  CHECK(e && strcmp(e->body, "hello there") == 0 && e->forwarded == 1);
  /* carol forwards it back, bob forwards that on...: the count goes up */
  uint8_t got[16];
  CHECK(id_of(carol, "hello there", got));
  node *from = p.bob, *at = carol; /* `at` holds message `got` from `from` */
  for (uint32_t k = 2; k <= WHISPER_FORWARDED_MANY + 1; k++) {
    CHECK_RC(whisper_client_forward(at->cl, from->name, from->name, got, 16, from->name, p.n.now, fwd),
             WHISPER_OK);
    net_run(&p.n);
    e = last_of_type(from, WHISPER_EV_MESSAGE);
    CHECK(e && e->forwarded == k && strcmp(e->body, "hello there") == 0);
    CHECK(id_of(from, "hello there", got) && memcmp(got, fwd, 16) == 0);
    node *t = from;
    from = at;
    at = t;
  }
  whisper_page *pg;
  const whisper_message_t *m = msg_in(at, from->name, got, &pg);
  CHECK(m && m->forwarded > WHISPER_FORWARDED_MANY); /* "forwarded many times" */
  whisper_page_free(pg);
  net_close(&p.n);
}

/* --- reactions -------------------------------------------------------------------------------------- */

static void test_reactions(void) {
  pair p;
  pair_open(&p);
  uint8_t id[16];
  send_text(&p.n, p.alice, "bob", "react to me", id);
  net_run(&p.n);
  ev_clear(p.bob);
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", "👍", p.n.now), WHISPER_OK);
  net_run(&p.n);
  CHECK(ev_count(p.bob, WHISPER_EV_STATUS) == 0); /* an operation has no tick of its own */
  CHECK(strcmp(reactions_of(p.alice, "bob", id), "bob:👍,") == 0);
  CHECK(strcmp(reactions_of(p.alice2, "bob", id), "bob:👍,") == 0);
  CHECK(strcmp(reactions_of(p.bob, "alice", id), "bob:👍,") == 0);
  CHECK(strcmp(reactions_of(p.bob2, "alice", id), "bob:👍,") == 0);
  const rec_event *e = last_of_type(p.alice, WHISPER_EV_REACTION);
  CHECK(e && strcmp(e->body, "👍") == 0 && e->target_len == 16 && memcmp(e->target, id, 16) == 0);
  /* replaced, from bob's other device; and alice reacts to her own */
  net_advance(&p.n, 1000);
  CHECK_RC(whisper_client_react(p.bob2->cl, "alice", id, 16, "alice", "❤️", p.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_react(p.alice2->cl, "bob", id, 16, NULL, "😂", p.n.now), WHISPER_OK);
  net_run(&p.n);
  node *all[] = {p.alice, p.alice2, p.bob, p.bob2};
  for (int i = 0; i < 4; i++)
    CHECK(strcmp(reactions_of(all[i], i < 2 ? "bob" : "alice", id), "bob:❤️,alice:😂,") == 0);
  /* removed */
  net_advance(&p.n, 1000);
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", "", p.n.now), WHISPER_OK);
  net_run(&p.n);
  for (int i = 0; i < 4; i++)
    CHECK(strcmp(reactions_of(all[i], i < 2 ? "bob" : "alice", id), "alice:😂,") == 0);
  /* an older reaction that comes late does not come back (newest wins) */
  Whisper__E2e__Content ct;
  Whisper__E2e__Target t;
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__REACTION, id, "alice", p.n.now - 5000);
  ct.emoji = "🐢";
  send_raw(&p.n, p.bob, "alice", &ct);
  CHECK(strcmp(reactions_of(p.alice, "bob", id), "alice:😂,") == 0);
  /* bad input changes nothing */
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", NULL, p.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", "\xff", p.n.now), WHISPER_EINVAL);
  uint8_t none[16] = {9};
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", none, 16, "alice", "x", p.n.now), WHISPER_ENOTFOUND);
  net_close(&p.n);
}

/* --- edits -------------------------------------------------------------------------------------------- */

static void test_edits(void) {
  pair p;
  pair_open(&p);
  uint8_t id[16];
  send_text(&p.n, p.alice, "bob", "teh typo", id);
  net_run(&p.n);
  net_advance(&p.n, 60 * 1000);
  CHECK_RC(whisper_client_edit(p.alice->cl, "bob", id, 16, (const uint8_t *)"the typo", 8, p.n.now), WHISPER_OK);
  net_run(&p.n);
  node *all[] = {p.alice, p.alice2, p.bob, p.bob2};
  for (int i = 0; i < 4; i++) {
    const char *conv = i < 2 ? "bob" : "alice";
    CHECK(strcmp(body_of(all[i], conv, id), "the typo") == 0);
    CHECK(edited(all[i], conv, id));
  }
  const rec_event *e = last_of_type(p.bob, WHISPER_EV_EDITED);
  CHECK(e && strcmp(e->body, "the typo") == 0 && memcmp(e->target, id, 16) == 0 &&
        strcmp(e->from, "alice") == 0);
  /* search finds the new words, not the old ones, on both sides */
  CHECK(found(p.bob, "the") == 1 && found(p.bob, "teh") == 0);
  CHECK(found(p.alice2, "the") == 1 && found(p.alice2, "teh") == 0);
  /* only the sender edits: bob's own call is refused here... */
  CHECK_RC(whisper_client_edit(p.bob->cl, "alice", id, 16, (const uint8_t *)"mine", 4, p.n.now),
           WHISPER_ENOTFOUND);
  /* ...and a modified client's edit of alice's message is refused by every receiver */
  Whisper__E2e__Content ct;
  Whisper__E2e__Target t;
  net_advance(&p.n, 1000); /* newer than alice's edit */
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__EDIT, id, "alice", p.n.now);
  ct.text = "bob wrote this";
  ev_clear(p.alice);
  whisper_buf *sess0 = raw_session(p.alice, "bob", p.bob->device);
  CHECK(sess0 != NULL);
  send_raw(&p.n, p.bob, "alice", &ct);
  CHECK(ev_count(p.alice, WHISPER_EV_REFUSED) == 1 && ev_count(p.alice, WHISPER_EV_EDITED) == 0);
  /* nothing of the refused entry is kept, not even its decryption's step
   * of the session (undone by its savepoint; the progress alone is kept) */
  whisper_buf *sess1 = raw_session(p.alice, "bob", p.bob->device);
  CHECK(sess1 && sess0 && sess1->len == sess0->len && memcmp(sess1->data, sess0->data, sess0->len) == 0);
  whisper_buf_free(sess0);
  whisper_buf_free(sess1);
  CHECK(strcmp(body_of(p.alice, "bob", id), "the typo") == 0);
  CHECK(strcmp(body_of(p.alice2, "bob", id), "the typo") == 0);
  /* the same without naming alice: it can only reach bob's own messages */
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__EDIT, id, NULL, p.n.now);
  ct.text = "bob wrote this";
  send_raw(&p.n, p.bob, "alice", &ct);
  CHECK(strcmp(body_of(p.alice, "bob", id), "the typo") == 0);
  /* 15 minutes after sending: refused here, and by receivers when a
   * modified client sends it anyway */
  net_advance(&p.n, 15 * 60 * 1000);
  CHECK_RC(whisper_client_edit(p.alice->cl, "bob", id, 16, (const uint8_t *)"late", 4, p.n.now), WHISPER_EDENIED);
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__EDIT, id, NULL, p.n.now);
  ct.text = "late";
  ev_clear(p.bob);
  send_raw(&p.n, p.alice, "bob", &ct);
  CHECK(ev_count(p.bob, WHISPER_EV_REFUSED) == 1);
  CHECK(strcmp(body_of(p.bob, "alice", id), "the typo") == 0);
  CHECK(strcmp(body_of(p.alice2, "bob", id), "the typo") == 0);
  net_close(&p.n);
}

/* A server that delivers a message after what acts on it: it drops the
 * first delivery of the held ids to the victim (the engine acks only what
 * it handled, so they come again on the next connection). */
typedef struct holdback {
  node *victim;
  uint8_t ids[2][16];
  int dropped[2];
} holdback;

static int hold_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  holdback *h = arg;
  if (d != h->victim) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  int drop = 0;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER && f->deliver->has_client_id &&
      f->deliver->client_id.len == 16)
    for (int i = 0; i < 2; i++)
      if (!h->dropped[i] && memcmp(f->deliver->client_id.data, h->ids[i], 16) == 0)
        drop = h->dropped[i] = 1;
  whisper__sync__frame__free_unpacked(f, NULL);
  return drop;
}

/* An edit, a reaction and a delete that come before their message: kept,
 * across a restart, and applied when it comes. */
static void test_before_target(void) {
  pair p;
  pair_open(&p);
  holdback h = {.victim = p.bob};
  uint8_t id[16], id2[16];
  node_cut(&p.n, p.bob);
  p.bob->offline = 1;
  send_text(&p.n, p.alice, "bob", "first draft", id);
  send_text(&p.n, p.alice, "bob", "to be deleted", id2);
  net_run(&p.n);
  CHECK_RC(whisper_client_edit(p.alice->cl, "bob", id, 16, (const uint8_t *)"final", 5, p.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_react(p.alice->cl, "bob", id, 16, NULL, "✨", p.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_delete(p.alice->cl, "bob", id2, 16, p.n.now), WHISPER_OK);
  net_run(&p.n);
  CHECK(strcmp(body_of(p.bob2, "alice", id), "final") == 0); /* in order: applied at once */
  memcpy(h.ids[0], id, 16);
  memcpy(h.ids[1], id2, 16);
  p.n.tamper = hold_tamper;
  p.n.tamper_arg = &h;
  ev_clear(p.bob);
  p.bob->offline = 0;
  net_advance(&p.n, 70000);
  CHECK(h.dropped[0] && h.dropped[1]);
  CHECK(strcmp(body_of(p.bob, "alice", id), "<none>") == 0);
  CHECK(ev_count(p.bob, WHISPER_EV_EDITED) == 0 && ev_count(p.bob, WHISPER_EV_DELETED) == 0);
  /* bob restarts; then the messages come */
  node_crash(&p.n, p.bob);
  node_restart(p.bob);
  net_advance(&p.n, 70000);
  CHECK(strcmp(body_of(p.bob, "alice", id), "final") == 0);
  CHECK(edited(p.bob, "alice", id));
  CHECK(strcmp(reactions_of(p.bob, "alice", id), "alice:✨,") == 0);
  CHECK(deleted(p.bob, "alice", id2));
  p.n.tamper = NULL;
  net_close(&p.n);
}

/* The server relabels a message with another id (so that a tick, reply
 * or edit would land on the wrong one): the id inside the encryption
 * says otherwise, and the message is refused. */
static int relabel_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  node **victim = arg;
  if (d != *victim) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER && f->deliver->has_client_id &&
      f->deliver->client_id.len == 16 && f->deliver->content == WHISPER__SYNC__CONTENT__CONTENT_MESSAGE) {
    f->deliver->client_id.data[0] ^= 1;
    size_t nl = whisper__sync__frame__get_packed_size(f);
    uint8_t *b = malloc(nl);
    whisper__sync__frame__pack(f, b);
    *frame = b; /* (the network frees it) */
    *len = nl;
    *victim = NULL; /* once */
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return 0;
}

static void test_relabelled_id(void) {
  pair p;
  pair_open(&p);
  node *victim = p.bob;
  p.n.tamper = relabel_tamper;
  p.n.tamper_arg = &victim;
  ev_clear(p.bob);
  send_text(&p.n, p.alice, "bob", "relabel me", NULL);
  net_run(&p.n);
  CHECK(victim == NULL); /* the lie was told */
  CHECK(ev_messages(p.bob, "relabel me") == 0 && ev_count(p.bob, WHISPER_EV_REFUSED) == 1);
  CHECK(ev_messages(p.bob2, "relabel me") == 1); /* the untouched copy is taken */
  p.n.tamper = NULL;
  net_close(&p.n);
}

/* Mute, archive and pin: the same on the account's other devices, the
 * newest setting winning; the server wakes no device for a muted
 * conversation; another account cannot set them. */
static void test_conversation_flags(void) {
  pair p;
  pair_open(&p);
  node *carol = account_new(&p.n, "carol", 1);
  whisper_conversation_flags_t f = {.size = sizeof f, .muted_until_ms = WHISPER_MUTE_FOREVER, .pinned = 1},
                               got = WHISPER_CONVERSATION_FLAGS_INIT;
  CHECK_RC(whisper_client_conversation_flags_set(p.alice->cl, "bob", &f, p.n.now), WHISPER_OK);
  net_run(&p.n);
  CHECK_RC(whisper_client_conversation_flags_get(p.alice2->cl, "bob", &got), WHISPER_OK);
  CHECK(got.muted_until_ms == WHISPER_MUTE_FOREVER && got.pinned && !got.archived);
  const rec_event *e = last_of_type(p.alice2, WHISPER_EV_SETTINGS);
  CHECK(e && strcmp(e->conversation, "bob") == 0);
  CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "carol", &got), WHISPER_OK);
  CHECK(got.muted_until_ms == 0 && !got.pinned && !got.archived);
  /* a versioned struct (docs/api.md): a size below 1.0's is refused both
   * ways, nothing read, written or set; a later caller's bigger struct is
   * read and filled up to the fields the library knows, its newer ones
   * left alone */
  {
    whisper_conversation_flags_t old;
    for (int k = 0; k < 2; k++) {
      memset(&old, 0x5a, sizeof old);
      old.size = k ? WHISPER_CONVERSATION_FLAGS_SIZE_1_0 - 1 : 0;
      CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "bob", &old), WHISPER_EINVAL);
      CHECK(strstr(whisper_ctx_last_error(p.alice->ctx), "WHISPER_CONVERSATION_FLAGS_INIT"));
      CHECK(old.muted_until_ms == 0x5a5a5a5a5a5a5a5aull && old.pinned == 0x5a5a5a5a);
      old.archived = 1;
      CHECK_RC(whisper_client_conversation_flags_set(p.alice->cl, "carol", &old, p.n.now),
               WHISPER_EINVAL);
      CHECK(strstr(whisper_ctx_last_error(p.alice->ctx), "WHISPER_CONVERSATION_FLAGS_INIT"));
    }
    CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "carol", &got), WHISPER_OK);
    CHECK(got.muted_until_ms == 0 && !got.pinned && !got.archived); /* nothing was set */
    struct later_flags {
      whisper_conversation_flags_t f;
      uint64_t newer;
    } later;
    memset(&later, 0x5a, sizeof later);
    later.f.size = sizeof later;
    CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "bob", &later.f), WHISPER_OK);
    CHECK(later.f.size == sizeof later && later.f.muted_until_ms == WHISPER_MUTE_FOREVER &&
          later.f.pinned == 1 && later.f.archived == 0 && later.newer == 0x5a5a5a5a5a5a5a5aull);
    /* set from a bigger struct: its known fields taken, the rest ignored */
    memset(&later, 0x5a, sizeof later);
    later.f.size = sizeof later;
    later.f.muted_until_ms = 0;
    later.f.archived = 0;
    later.f.pinned = 1;
    CHECK_RC(whisper_client_conversation_flags_set(p.alice->cl, "carol", &later.f, p.n.now),
             WHISPER_OK);
    CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "carol", &got), WHISPER_OK);
    CHECK(got.muted_until_ms == 0 && got.pinned == 1 && !got.archived);
    later.f.pinned = 0;
    CHECK_RC(whisper_client_conversation_flags_set(p.alice->cl, "carol", &later.f, p.n.now + 1),
             WHISPER_OK);
    net_run(&p.n);
  }
  /* alice's devices go offline: bob's messages wake neither, carol's do */
  p.alice->offline = p.alice2->offline = 1;
  node_cut(&p.n, p.alice);
  node_cut(&p.n, p.alice2);
  p.alice->pushes = p.alice2->pushes = 0;
  send_text(&p.n, p.bob, "alice", "muted news", NULL);
  net_run(&p.n);
  CHECK(p.alice->pushes == 0 && p.alice2->pushes == 0);
  send_text(&p.n, carol, "alice", "loud news", NULL);
  net_run(&p.n);
  CHECK(p.alice->pushes == 1 && p.alice2->pushes == 1);
  p.alice->offline = p.alice2->offline = 0;
  net_advance(&p.n, 70000);
  CHECK(ev_messages(p.alice, "muted news") == 1); /* muted, not lost */
  /* archived from the other device, later: both hold it; unmuted */
  net_advance(&p.n, 1000);
  whisper_conversation_flags_t g = {.size = sizeof g, .archived = 1};
  CHECK_RC(whisper_client_conversation_flags_set(p.alice2->cl, "bob", &g, p.n.now), WHISPER_OK);
  net_run(&p.n);
  CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "bob", &got), WHISPER_OK);
  CHECK(got.archived && !got.pinned && got.muted_until_ms == 0);
  /* and the server wakes for bob again */
  p.alice->offline = 1;
  node_cut(&p.n, p.alice);
  p.alice->pushes = 0;
  send_text(&p.n, p.bob, "alice", "unmuted", NULL);
  net_run(&p.n);
  CHECK(p.alice->pushes == 1);
  p.alice->offline = 0;
  net_advance(&p.n, 70000);
  /* bob cannot set alice's flags */
  Whisper__E2e__Settings s = WHISPER__E2E__SETTINGS__INIT;
  s.conversation = "bob";
  s.has_pinned = s.pinned = s.has_changed_at = 1;
  s.changed_at = p.n.now + 100000;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = 1;
  ct.kind = WHISPER__E2E__CONTENT__KIND__SETTINGS;
  ct.settings = &s;
  ev_clear(p.alice);
  send_raw(&p.n, p.bob, "alice", &ct);
  CHECK(ev_count(p.alice, WHISPER_EV_REFUSED) == 1);
  CHECK_RC(whisper_client_conversation_flags_get(p.alice->cl, "bob", &got), WHISPER_OK);
  CHECK(!got.pinned);
  CHECK_RC(whisper_client_conversation_flags_set(p.alice->cl, "no way!", &f, p.n.now), WHISPER_EINVAL);
  net_close(&p.n);
}

/* Deletes for everyone: the sender only, within the window; the body is
 * wiped on both of the recipient's devices, a tombstone remains. */
static void test_delete(void) {
  pair p;
  pair_open(&p);
  uint8_t id[16];
  send_text(&p.n, p.alice, "bob", "oops, wrong chat", id);
  net_run(&p.n);
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", "😮", p.n.now), WHISPER_OK);
  net_run(&p.n);
  CHECK_RC(whisper_client_delete(p.bob->cl, "alice", id, 16, p.n.now), WHISPER_ENOTFOUND); /* not bob's */
  Whisper__E2e__Content ct;
  Whisper__E2e__Target t;
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__DELETE, id, "alice", p.n.now);
  ev_clear(p.alice);
  send_raw(&p.n, p.bob, "alice", &ct);
  CHECK(ev_count(p.alice, WHISPER_EV_REFUSED) == 1 && !deleted(p.alice, "bob", id));
  CHECK(found(p.bob2, "wrong") == 1);
  CHECK_RC(whisper_client_delete(p.alice->cl, "bob", id, 16, p.n.now), WHISPER_OK);
  net_run(&p.n);
  node *all[] = {p.alice, p.alice2, p.bob, p.bob2};
  for (int i = 0; i < 4; i++) CHECK(deleted(all[i], i < 2 ? "bob" : "alice", id));
  for (int i = 0; i < 4; i++) CHECK(found(all[i], "wrong") == 0); /* its words are gone */
  CHECK(ev_count(p.bob, WHISPER_EV_DELETED) == 1 && ev_count(p.bob2, WHISPER_EV_DELETED) == 1);
  /* a deleted message takes no edit or reaction */
  CHECK_RC(whisper_client_edit(p.alice->cl, "bob", id, 16, (const uint8_t *)"back", 4, p.n.now), WHISPER_EDENIED);
  CHECK_RC(whisper_client_react(p.bob->cl, "alice", id, 16, "alice", "👍", p.n.now), WHISPER_EDENIED);
  /* past the window (48 hours) */
  uint8_t old[16];
  send_text(&p.n, p.alice, "bob", "old news", old);
  net_run(&p.n);
  net_advance(&p.n, 49ULL * 3600 * 1000);
  CHECK_RC(whisper_client_delete(p.alice->cl, "bob", old, 16, p.n.now), WHISPER_EDENIED);
  raw_op(&ct, &t, WHISPER__E2E__CONTENT__KIND__DELETE, old, NULL, p.n.now);
  ev_clear(p.bob);
  send_raw(&p.n, p.alice, "bob", &ct);
  CHECK(ev_count(p.bob, WHISPER_EV_REFUSED) == 1 && strcmp(body_of(p.bob, "alice", old), "old news") == 0);
  net_close(&p.n);
}

/* A kind of a newer version: kept and shown as unsupported, not dropped. */
static void test_unknown_kind(void) {
  pair p;
  pair_open(&p);
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = 2;
  ct.kind = 99;
  ct.text = "a poll, say";
  size_t len = whisper__e2e__content__get_packed_size(&ct);
  uint8_t *b = malloc(len);
  whisper__e2e__content__pack(&ct, b);
  wh_entry_extra x = {.kind = WHISPER_KIND_TEXT, .content = b, .content_len = len};
  uint8_t id[16];
  ev_clear(p.bob);
  CHECK_RC(sy_enqueue(p.alice->cl, "bob", NULL, 0, &x, NULL, p.n.now, id), WHISPER_OK);
  net_run(&p.n);
  const rec_event *e = last_of_type(p.bob, WHISPER_EV_MESSAGE);
  CHECK(e && e->kind == WHISPER_KIND_UNSUPPORTED);
  whisper_page *pg;
  const whisper_message_t *m = msg_in(p.bob, "alice", id, &pg);
  CHECK(m && m->kind == WHISPER_KIND_UNSUPPORTED);
  whisper_page_free(pg);
  /* the bytes are kept for a later version */
  wh_found f;
  CHECK_RC(wh_history_lookup(p.bob->ctx, "alice", "alice", id, 16, &f), WHISPER_OK);
  wh_found_free(&f);
  free(b);
  net_close(&p.n);
}

/* Call signalling: an event per kind, end to end, nothing in history. */
static void test_calls(void) {
  pair p;
  pair_open(&p);
  uint8_t call[16];
  memset(call, 7, 16);
  int before = history_count(p.bob, "alice");
  static const int types[] = {WHISPER_CALL_OFFER, WHISPER_CALL_ICE, WHISPER_CALL_HANGUP};
  for (int i = 0; i < 3; i++)
    CHECK_RC(whisper_client_call(p.alice->cl, "bob", types[i], call, (const uint8_t *)"v=0 sdp", 7, p.n.now),
             WHISPER_OK);
  CHECK_RC(whisper_client_call(p.bob->cl, "alice", WHISPER_CALL_BUSY, call, NULL, 0, p.n.now), WHISPER_OK);
  net_run(&p.n);
  /* bob's other device sees alice's three and bob's own answer */
  CHECK(ev_count(p.bob, WHISPER_EV_CALL) == 3 && ev_count(p.bob2, WHISPER_EV_CALL) == 4);
  CHECK(ev_count(p.alice, WHISPER_EV_CALL) == 1 && ev_count(p.alice2, WHISPER_EV_CALL) == 4);
  const rec_event *e = ev_find(p.bob, WHISPER_EV_CALL, 0);
  CHECK(e && e->status == WHISPER_CALL_OFFER && memcmp(e->id, call, 16) == 0 &&
        strcmp(e->body, "v=0 sdp") == 0 && strcmp(e->from, "alice") == 0);
  e = last_of_type(p.alice, WHISPER_EV_CALL);
  CHECK(e && e->status == WHISPER_CALL_BUSY);
  CHECK(history_count(p.bob, "alice") == before);
  CHECK_RC(whisper_client_call(p.alice->cl, "bob", 9, call, NULL, 0, p.n.now), WHISPER_EINVAL);
  net_close(&p.n);
}

/* Groups: a reaction from a member, an edit shown to every member. */
static void test_group_content(void) {
  pair p;
  pair_open(&p);
  node *carol = account_new(&p.n, "carol", 1);
  const char *members[] = {"bob", "carol"};
  uint8_t gid[16], id[16];
  CHECK_RC(whisper_client_group_create(p.alice->cl, members, 2, p.n.now, gid), WHISPER_OK);
  net_run(&p.n);
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  CHECK_RC(whisper_client_send_group(p.alice->cl, gid, (const uint8_t *)"group hello", 11, p.n.now, id),
           WHISPER_OK);
  net_run(&p.n);
  CHECK_RC(whisper_client_react(carol->cl, conv, id, 16, "alice", "👋", p.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_edit(p.alice->cl, conv, id, 16, (const uint8_t *)"group hello!", 12, p.n.now),
           WHISPER_OK);
  net_run(&p.n);
  node *all[] = {p.alice, p.alice2, p.bob, p.bob2, carol};
  for (int i = 0; i < 5; i++) {
    CHECK(strcmp(reactions_of(all[i], conv, id), "carol:👋,") == 0);
    CHECK(strcmp(body_of(all[i], conv, id), "group hello!") == 0);
  }
  net_close(&p.n);
}

#define RUN(t)                                                            \
  do {                                                                    \
    const char *only = getenv("CONTENT_ONLY");                            \
    if (only == NULL || strcmp(only, #t) == 0) t();                       \
  } while (0)

/* --- search indexing on the engine's ticks ------------------------------------------------------ */

static int count_row(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  (void)k, (void)kn, (void)v, (void)vn;
  ++*(size_t *)arg;
  return 0;
}

/* Messages `d` stored and has not indexed for search yet (its waiting rows). */
static size_t waiting(node *d) {
  static const uint8_t zeros[16];
  size_t n = 0;
  whisper_store *s = d->ctx->store;
  CHECK_RC(s->ops.scan(s->user, WHISPER_REC_SEARCH, zeros, 16, NULL, 0, 0, SIZE_MAX, count_row, &n),
           WHISPER_OK);
  return n;
}

static void test_index_ticks(void) {
  pair p;
  pair_open(&p);
  net_advance(&p.n, 1000); /* what the set-up stored is indexed */
  CHECK(waiting(p.alice) == 0 && waiting(p.bob) == 0 && waiting(p.bob2) == 0);
  /* live messages after the backlog: stored with a waiting row each, indexed by the ticks */
  char text[64];
  for (int i = 0; i < 40; i++) {
    snprintf(text, sizeof text, "ticking message %d", i);
    send_text(&p.n, p.alice, "bob", text, NULL);
  }
  net_run(&p.n);
  CHECK(ev_messages(p.bob, "ticking message 39") == 1);
  size_t w = waiting(p.bob);
  CHECK(w >= 40);
  uint64_t next = whisper_client_next_deadline(p.bob->cl), t = p.n.now + 200;
  /* a tick asked for 200 ms later (SY_INDEX_DELAY_MS: the messages of a
   * busy conversation indexed a batch at a time), none before */
  CHECK(next > p.n.now && next <= t);
  whisper_client_tick(p.bob->cl, t - 1);
  CHECK(waiting(p.bob) == w);
  whisper_client_tick(p.bob->cl, t);
  CHECK(waiting(p.bob) == w - 32); /* at most 32 a tick */
  next = whisper_client_next_deadline(p.bob->cl);
  CHECK(next > t && next <= t + 1); /* the rest at once */
  whisper_client_tick(p.bob->cl, t + 1);
  CHECK(waiting(p.bob) == 0);
  CHECK(whisper_client_next_deadline(p.bob->cl) > t + 1000); /* nothing more to do */
  CHECK(found(p.bob, "ticking") == 40); /* (nothing waited for the search) */
  net_advance(&p.n, 400); /* the others too, through the harness */
  CHECK(waiting(p.alice) == 0 && waiting(p.alice2) == 0 && waiting(p.bob2) == 0);
  /* a backlog: indexed once it is in (QueueEmpty), without a search */
  p.bob2->offline = 1;
  node_cut(&p.n, p.bob2);
  for (int i = 0; i < 5; i++) {
    snprintf(text, sizeof text, "backlog message %d", i);
    send_text(&p.n, p.alice, "bob", text, NULL);
  }
  net_run(&p.n);
  net_advance(&p.n, 1000);
  CHECK(ev_messages(p.bob2, "backlog message 4") == 0);
  p.bob2->offline = 0;
  net_advance(&p.n, 60000);
  CHECK(ev_messages(p.bob2, "backlog message 4") == 1 && ev_count(p.bob2, WHISPER_EV_CAUGHT_UP) >= 2);
  CHECK(waiting(p.bob2) == 0);
  CHECK(found(p.bob2, "backlog") == 5 && found(p.bob2, "ticking") == 40);
  net_close(&p.n);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-content-%d", (int)getpid());
  mkdir(dbdir, 0700);
  RUN(test_reply_and_forward);
  RUN(test_reactions);
  RUN(test_edits);
  RUN(test_before_target);
  RUN(test_delete);
  RUN(test_relabelled_id);
  RUN(test_conversation_flags);
  RUN(test_unknown_kind);
  RUN(test_calls);
  RUN(test_group_content);
  RUN(test_index_ticks);
  rmdir(dbdir);
  return test_done();
}

/*
 * Profiles against the real server core (in process): a profile set on
 * alice.1 reaches bob's devices and alice's other devices, changes reach
 * them too, the server stores and carries only ciphertext, and a server
 * that swaps in another account's profile, replays an older one or
 * relabels one is refused; a profile key from an account for another
 * account is refused; bad input changes nothing.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "client.pb-c.h"
#include "e2e.pb-c.h"
#include "internal.h"
#include "server.pb-c.h"
#include "sync/sync_internal.h"
#include "sync_net.h"

static const char *NAME1 = "Zorglub Quintessence";
static const char *ABOUT1 = "about-zq-marker";
static const char *NAME2 = "Zorglub the Second";
static uint8_t PIC[3000];

static void pic_fill(void) {
  for (size_t i = 0; i < sizeof PIC; i++) PIC[i] = (uint8_t)("PICTURE-MARKER-XY"[i % 17]);
}

/* Whether `needle` occurs in the bytes. */
static int contains(const uint8_t *h, size_t hl, const void *needle, size_t nl) {
  for (size_t i = 0; nl && i + nl <= hl; i++)
    if (memcmp(h + i, needle, nl) == 0) return 1;
  return 0;
}

static int has_secret(const uint8_t *b, size_t n) {
  return contains(b, n, NAME1, strlen(NAME1)) || contains(b, n, ABOUT1, strlen(ABOUT1)) ||
         contains(b, n, NAME2, strlen(NAME2)) || contains(b, n, "PICTURE-MARKER-XY", 17);
}

/* --- what a device holds -------------------------------------------------------------------------- */

typedef struct seen {
  int known;
  char name[80], about[160];
  size_t picture_len;
  uint64_t version;
} seen;

static seen profile_of(node *d, const char *account) {
  seen s;
  memset(&s, 0, sizeof s);
  whisper_profile_t *p = NULL;
  CHECK_RC(whisper_client_profile_get(d->cl, account, &p), WHISPER_OK);
  if (p == NULL) return s;
  CHECK(p->version == WHISPER_PROFILE_STRUCT_VERSION);
  s.known = p->known;
  snprintf(s.name, sizeof s.name, "%s", p->name);
  snprintf(s.about, sizeof s.about, "%s", p->about);
  s.picture_len = p->picture_len;
  s.version = p->profile_version;
  if (p->picture_len == sizeof PIC) CHECK(memcmp(p->picture, PIC, sizeof PIC) == 0);
  whisper_profile_free(p);
  return s;
}

/* The engine's stored record "P" || sub || name (NULL: none). */
static whisper_buf *prec(node *d, char sub, const char *name) {
  uint8_t k[2 + 64];
  size_t n = name ? strlen(name) : 0;
  k[0] = 'P';
  k[1] = (uint8_t)sub;
  if (n) memcpy(k + 2, name, n);
  whisper_buf *b = NULL;
  if (wh_begin(d->ctx) != WHISPER_OK) return NULL;
  int rc = wh_get(d->ctx, WHISPER_REC_SYNC_STATE, k, 2 + n, &b);
  wh_finish(d->ctx, WHISPER_OK);
  return rc == WHISPER_OK ? b : NULL;
}

/* The profile key this device holds for `account` (0: none). */
static int key_of(node *d, const char *account, uint8_t key[32]) {
  int own = strcmp(account, d->name) == 0, ok = 0;
  whisper_buf *b = prec(d, own ? 's' : 'c', own ? NULL : account);
  if (b == NULL) return 0;
  if (own) {
    Whisper__Client__ProfileSelf *m = whisper__client__profile_self__unpack(NULL, b->len, b->data);
    if (m && m->has_key && m->key.len == 32) memcpy(key, m->key.data, 32), ok = 1;
    if (m) whisper__client__profile_self__free_unpacked(m, NULL);
  } else {
    Whisper__Client__ProfileContact *m = whisper__client__profile_contact__unpack(NULL, b->len, b->data);
    if (m && m->has_key && m->key.len == 32) memcpy(key, m->key.data, 32), ok = 1;
    if (m) whisper__client__profile_contact__free_unpacked(m, NULL);
  }
  whisper_buf_free(b);
  return ok;
}

static int profile_events(const node *d, const char *from) {
  int n = 0;
  for (int i = 0; i < d->n_ev; i++)
    n += d->ev[i].type == WHISPER_EV_PROFILE && strcmp(d->ev[i].from, from) == 0;
  return n;
}

/* The server's stored profile of `account` (NULL: none). */
static Whisper__Server__Profile *stored(net *n, const char *account) {
  whisper_buf *b = NULL;
  if (n->sst->ops.get(n->sst->user, WHISPER_REC_SERVER_PROFILE, (const uint8_t *)account, strlen(account), &b) !=
      WHISPER_OK)
    return NULL;
  Whisper__Server__Profile *p = whisper__server__profile__unpack(NULL, b->len, b->data);
  whisper_buf_free(b);
  return p;
}

/* --- the network's view ----------------------------------------------------------------------------- */

typedef struct spy {
  int leaks;           /* frames (either way) holding a profile's plaintext */
  int profile_sets;    /* ProfileSet frames engines sent */
  int profile_answers; /* Profile frames the server sent */
  int sends_to[4];     /* Send frames of messages (not sender keys or receipts) to the accounts below */
  const char *to[4];
} spy;

static void spy_frame(spy *s, const uint8_t *f, size_t len, int from_engine) {
  if (has_secret(f, len)) s->leaks++;
  Whisper__Sync__Frame *fr = whisper__sync__frame__unpack(NULL, len, f);
  if (fr == NULL) return;
  if (from_engine && fr->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE_SET) s->profile_sets++;
  if (!from_engine && fr->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE) s->profile_answers++;
  if (from_engine && fr->body_case == WHISPER__SYNC__FRAME__BODY_SEND && fr->send->to &&
      fr->send->content != WHISPER__SYNC__CONTENT__CONTENT_SKDM && fr->send->content != WHISPER__SYNC__CONTENT__CONTENT_RECEIPT)
    for (int i = 0; i < 4; i++)
      if (s->to[i] && strcmp(s->to[i], fr->send->to) == 0) s->sends_to[i]++;
  whisper__sync__frame__free_unpacked(fr, NULL);
}

static void spy_watch(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  (void)n;
  (void)d;
  spy_frame(arg, frame, len, 1);
}

/* A lie the server tells: Profile answers to `victim` rewritten. */
typedef struct lie {
  spy *spy;
  node *victim;
  int mode;                /* 0 none; 1 replace ciphertext and version; 2 version + 1; 3 another account named */
  uint8_t blob[70000];
  size_t blob_len;
  uint64_t version;
  int told;
  uint8_t keep[70000];     /* the last Profile answer seen (ciphertext), to replay later */
  size_t keep_len;
  uint64_t keep_version;
} lie;

static int lie_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  lie *l = arg;
  if (l->spy) spy_frame(l->spy, *frame, *len, 0);
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE && f->profile->has_ciphertext &&
      f->profile->ciphertext.len <= sizeof l->keep && l->mode == 0) {
    memcpy(l->keep, f->profile->ciphertext.data, f->profile->ciphertext.len);
    l->keep_len = f->profile->ciphertext.len;
    l->keep_version = f->profile->version;
  }
  if (d == l->victim && l->mode && f->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE) {
    Whisper__Sync__Profile *p = f->profile;
    ProtobufCBinaryData ct = p->ciphertext;
    char *account = p->account;
    uint64_t version = p->version;
    if (l->mode == 1) {
      p->ciphertext = (ProtobufCBinaryData){l->blob_len, l->blob};
      p->version = l->version;
    } else if (l->mode == 2) {
      p->version++;
    } else if (l->mode == 3) {
      p->account = "carol";
    }
    size_t nl = whisper__sync__frame__get_packed_size(f);
    uint8_t *b = malloc(nl);
    whisper__sync__frame__pack(f, b);
    p->ciphertext = ct; /* the unpacked message's own, for its free */
    p->account = account;
    p->version = version;
    *frame = b;
    *len = nl;
    l->told++;
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return 0;
}

/* --- the network ------------------------------------------------------------------------------------ */

typedef struct world {
  net n;
  node *alice, *alice2, *bob, *bob2, *carol;
  spy spy;
  lie lie;
} world;

/* alice and bob with two devices each, carol with one; alice wrote to
 * bob; carol wrote to nobody. Every frame is watched. */
static void world_open(world *w) {
  memset(w, 0, sizeof *w);
  net_open(&w->n);
  w->alice = account_new(&w->n, "alice", 1);
  w->bob = account_new(&w->n, "bob", 1);
  w->carol = account_new(&w->n, "carol", 0);
  w->alice2 = device_link(&w->n, w->alice, 2, 1);
  w->bob2 = device_link(&w->n, w->bob, 2, 0);
  w->spy.to[0] = "bob";
  w->spy.to[1] = "carol";
  w->spy.to[2] = "alice";
  w->spy.to[3] = "dave";
  w->lie.spy = &w->spy;
  w->n.watch = spy_watch;
  w->n.watch_arg = &w->spy;
  w->n.tamper = lie_tamper;
  w->n.tamper_arg = &w->lie;
  send_text(&w->n, w->alice, "bob", "hi bob", NULL);
  net_run(&w->n);
  CHECK(ev_messages(w->bob, "hi bob") == 1);
}

static void world_close(world *w) { net_close(&w->n); }

static void clear_all(world *w) {
  for (int i = 0; i < w->n.n; i++) ev_clear(w->n.nodes[i]);
}

/* --- tests ----------------------------------------------------------------------------------------- */

/* Set on alice.1: bob's devices and alice.2 see it (event and store), the
 * same key everywhere; a change reaches them; alice.2 may set it too. */
static void test_set_and_see(void) {
  world w;
  world_open(&w);
  clear_all(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, PIC, sizeof PIC, w.n.now), WHISPER_OK);
  net_run(&w.n);
  node *viewers[] = {w.bob, w.bob2, w.alice2};
  for (int i = 0; i < 3; i++) {
    CHECK(profile_events(viewers[i], "alice") == 1);
    seen s = profile_of(viewers[i], i < 2 ? "alice" : NULL);
    CHECK(s.known && strcmp(s.name, NAME1) == 0 && strcmp(s.about, ABOUT1) == 0);
    CHECK(s.picture_len == sizeof PIC && s.version == 1);
  }
  seen own = profile_of(w.alice, NULL);
  CHECK(own.known && strcmp(own.name, NAME1) == 0 && own.version == 1);
  CHECK(profile_events(w.alice, "alice") == 0); /* the setter knows */
  seen by_name = profile_of(w.alice2, "alice");
  CHECK(by_name.known && strcmp(by_name.name, NAME1) == 0);
  /* one key, on all four devices */
  uint8_t k1[32], k2[32], kb[32], kb2[32];
  CHECK(key_of(w.alice, "alice", k1) && key_of(w.alice2, "alice", k2) && key_of(w.bob, "alice", kb) &&
        key_of(w.bob2, "alice", kb2));
  CHECK(memcmp(k1, k2, 32) == 0 && memcmp(k1, kb, 32) == 0 && memcmp(k1, kb2, 32) == 0);
  /* carol never heard from alice: no key, no profile */
  uint8_t kc[32];
  CHECK(!key_of(w.carol, "alice", kc) && !profile_of(w.carol, "alice").known);
  CHECK(profile_events(w.carol, "alice") == 0);
  /* a change */
  clear_all(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, "", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  for (int i = 0; i < 3; i++) {
    CHECK(profile_events(viewers[i], "alice") == 1);
    seen s = profile_of(viewers[i], "alice");
    CHECK(s.known && strcmp(s.name, NAME2) == 0 && s.about[0] == 0 && s.picture_len == 0 && s.version == 2);
  }
  /* alice.2, which has the key, sets it: everyone, alice.1 too, follows */
  clear_all(&w);
  CHECK_RC(whisper_client_profile_set(w.alice2->cl, NAME1, "from the phone", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  node *all[] = {w.bob, w.bob2, w.alice};
  for (int i = 0; i < 3; i++) {
    CHECK(profile_events(all[i], "alice") == 1);
    seen s = profile_of(all[i], "alice");
    CHECK(strcmp(s.about, "from the phone") == 0 && s.version == 3);
  }
  /* bob answers with his own profile: alice learns it (bob wrote to her) */
  clear_all(&w);
  send_text(&w.n, w.bob, "alice", "hi alice", NULL);
  net_run(&w.n);
  CHECK_RC(whisper_client_profile_set(w.bob->cl, "Bob", "", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(w.alice, "bob") == 1 && profile_events(w.alice2, "bob") == 1);
  CHECK(strcmp(profile_of(w.alice2, "bob").name, "Bob") == 0);
  CHECK(w.spy.leaks == 0);
  world_close(&w);
}

static int scan_leaks(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)k;
  (void)kl;
  int *a = arg;
  a[0] += has_secret(v, vl);
  a[1]++;
  return 0;
}

/* The server stores and carries ciphertext only: no frame either way and
 * no stored record holds the name, the about text or the picture. */
static void test_server_sees_ciphertext(void) {
  world w;
  world_open(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, PIC, sizeof PIC, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, PIC, sizeof PIC, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(strcmp(profile_of(w.bob, "alice").name, NAME2) == 0); /* it did go through */
  CHECK(w.spy.profile_sets == 2 && w.spy.profile_answers >= 2);
  CHECK(w.spy.leaks == 0);
  Whisper__Server__Profile *p = stored(&w.n, "alice");
  CHECK(p != NULL && p->version == 2 && p->ciphertext.len >= sizeof PIC);
  if (p) {
    CHECK(!has_secret(p->ciphertext.data, p->ciphertext.len));
    CHECK(p->ciphertext.len % 512 == 29); /* format byte, nonce, tag around padded blocks */
    whisper__server__profile__free_unpacked(p, NULL);
  }
  /* and no mailbox entry holds it */
  int a[2] = {0, 0};
  CHECK_RC(w.n.sst->ops.scan(w.n.sst->user, WHISPER_REC_SERVER_MAILBOX, NULL, 0, NULL, 0, 0, 1000000, scan_leaks, a),
           WHISPER_OK);
  CHECK(a[0] == 0);
  world_close(&w);
}

/* The server answers bob's fetch of alice's profile with carol's, with
 * alice's under another version, and names another account: refused,
 * bob keeps what he had. */
static void test_swapped_profile(void) {
  world w;
  world_open(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_profile_set(w.carol->cl, "Carol", "not alice", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(strcmp(profile_of(w.bob, "alice").name, NAME1) == 0);
  Whisper__Server__Profile *cp = stored(&w.n, "carol");
  CHECK(cp != NULL);
  if (cp == NULL) return;
  memcpy(w.lie.blob, cp->ciphertext.data, cp->ciphertext.len);
  w.lie.blob_len = cp->ciphertext.len;
  w.lie.version = cp->version + 5; /* newer than alice's, as far as the server says */
  whisper__server__profile__free_unpacked(cp, NULL);
  w.lie.victim = w.bob;
  for (int mode = 1; mode <= 3; mode++) {
    w.lie.mode = mode;
    w.lie.told = 0;
    clear_all(&w);
    CHECK_RC(whisper_client_profile_refresh(w.bob->cl, "alice"), WHISPER_OK);
    net_run(&w.n);
    CHECK(w.lie.told == 1);
    CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 1 && profile_events(w.bob, "alice") == 0);
    const rec_event *e = ev_find(w.bob, WHISPER_EV_REFUSED, 0);
    CHECK(e && e->code == WHISPER_EFORGED && strcmp(e->from, "alice") == 0);
    seen s = profile_of(w.bob, "alice");
    CHECK(strcmp(s.name, NAME1) == 0 && s.version == 1);
  }
  /* an honest answer again: taken, no event (nothing changed) */
  w.lie.mode = 0;
  clear_all(&w);
  CHECK_RC(whisper_client_profile_refresh(w.bob->cl, "alice"), WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 0 && profile_events(w.bob, "alice") == 0);
  world_close(&w);
}

/* The server replays an older version of alice's profile (after bob saw
 * a newer one), and serves an older one than alice announced: refused. */
static void test_replayed_profile(void) {
  world w;
  world_open(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(w.lie.keep_version == 1);
  memcpy(w.lie.blob, w.lie.keep, w.lie.keep_len);
  w.lie.blob_len = w.lie.keep_len;
  w.lie.version = 1;
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_of(w.bob, "alice").version == 2);
  /* the old one, at bob's next refresh */
  w.lie.victim = w.bob;
  w.lie.mode = 1;
  clear_all(&w);
  CHECK_RC(whisper_client_profile_refresh(w.bob->cl, "alice"), WHISPER_OK);
  net_run(&w.n);
  CHECK(w.lie.told == 1 && ev_count(w.bob, WHISPER_EV_REFUSED) == 1);
  seen s = profile_of(w.bob, "alice");
  CHECK(strcmp(s.name, NAME2) == 0 && s.version == 2);
  /* alice changes it again (version 3, announced to bob): the server
   * keeps handing out version 2 (captured now) */
  w.lie.mode = 0;
  memcpy(w.lie.blob, w.lie.keep, w.lie.keep_len);
  w.lie.blob_len = w.lie.keep_len;
  w.lie.version = w.lie.keep_version;
  CHECK(w.lie.version == 2);
  w.lie.mode = 1;
  w.lie.told = 0;
  clear_all(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, "Third", ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(w.lie.told == 1 && ev_count(w.bob, WHISPER_EV_REFUSED) == 1 && profile_events(w.bob, "alice") == 0);
  CHECK(profile_of(w.bob, "alice").version == 2);
  CHECK(profile_of(w.bob2, "alice").version == 3); /* not lied to */
  /* the lie stops: bob gets version 3 at his next login */
  w.lie.mode = 0;
  clear_all(&w);
  node_cut(&w.n, w.bob);
  net_advance(&w.n, 5000);
  CHECK(profile_events(w.bob, "alice") == 1 && strcmp(profile_of(w.bob, "alice").name, "Third") == 0);
  world_close(&w);
}

/* Sends raw content from `from`'s engine, as a modified client would. */
static void send_raw(net *n, node *from, const char *conv, const Whisper__E2e__Content *ct) {
  size_t len = whisper__e2e__content__get_packed_size(ct);
  uint8_t *b = malloc(len ? len : 1);
  whisper__e2e__content__pack(ct, b);
  wh_entry_extra x = {.content = b, .content_len = len, .hidden = 1};
  uint8_t id[16];
  from->cl->profile_quiet++;
  CHECK_RC(sy_enqueue(from->cl, conv, NULL, 0, &x, NULL, n->now, id), WHISPER_OK);
  from->cl->profile_quiet--;
  free(b);
  net_run(n);
}

/* carol gives bob a profile key "of alice", asks bob for his, and sends a
 * malformed one: refused, nothing kept. */
static void test_key_of_another_account(void) {
  world w;
  world_open(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  CHECK_RC(whisper_client_profile_set(w.bob->cl, "Bob", "", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  uint8_t before[32], after[32], fake[32];
  CHECK(key_of(w.bob, "alice", before));
  memset(fake, 0x42, sizeof fake);
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_profile_key = ct.has_profile_version = 1;
  ct.version = 1;
  ct.kind = WHISPER__E2E__CONTENT__KIND__PROFILE_KEY;
  ct.profile_key = (ProtobufCBinaryData){32, fake};
  ct.profile_version = 99;
  ct.profile_owner = "alice";
  clear_all(&w);
  send_raw(&w.n, w.carol, "bob", &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 1 && ev_count(w.bob2, WHISPER_EV_REFUSED) == 1);
  CHECK(key_of(w.bob, "alice", after) && memcmp(before, after, 32) == 0);
  CHECK(profile_of(w.bob, "alice").version == 1);
  /* in a group message too */
  const char *members[] = {"bob"};
  uint8_t gid[16];
  CHECK_RC(whisper_client_group_create(w.carol->cl, members, 1, w.n.now, gid), WHISPER_OK);
  net_run(&w.n);
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  clear_all(&w);
  send_raw(&w.n, w.carol, conv, &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 1);
  CHECK(key_of(w.bob, "alice", after) && memcmp(before, after, 32) == 0);
  /* carol asks for bob's key (a request: only an account's own devices) */
  ct.has_profile_key = ct.has_profile_version = 0;
  ct.profile_owner = "carol";
  clear_all(&w);
  send_raw(&w.n, w.carol, "bob", &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 1);
  CHECK(!key_of(w.carol, "bob", after));
  /* a key of 31 bytes, a missing owner */
  ct.has_profile_key = ct.has_profile_version = 1;
  ct.profile_key.len = 31;
  clear_all(&w);
  send_raw(&w.n, w.carol, "bob", &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_ERROR) == 1 && ev_count(w.bob, WHISPER_EV_REFUSED) == 0);
  ct.profile_key.len = 32;
  ct.profile_owner = NULL;
  clear_all(&w);
  send_raw(&w.n, w.carol, "bob", &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_ERROR) == 1);
  CHECK(!key_of(w.bob, "carol", after)); /* none of it kept */
  /* carol's own key, in her own name, is taken (the positive case) */
  ct.profile_owner = "carol";
  clear_all(&w);
  send_raw(&w.n, w.carol, "bob", &ct);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 0 && key_of(w.bob, "carol", after) && memcmp(after, fake, 32) == 0);
  world_close(&w);
}

/* Bad input: a clear error and nothing changed. */
static void test_bad_input(void) {
  world w;
  world_open(&w);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  int sets = w.spy.profile_sets, sends = w.spy.sends_to[0];
  char big[200];
  memset(big, 'x', sizeof big);
  big[65] = 0;
  CHECK_RC(whisper_client_profile_set(w.alice->cl, "", ABOUT1, NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(w.alice->ctx), "name") != NULL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, big, ABOUT1, NULL, 0, w.n.now), WHISPER_EINVAL);
  big[65] = 'x';
  big[141] = 0;
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, big, NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, "\xff\xfe", ABOUT1, NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, "\xc3", NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NULL, ABOUT1, NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, NULL, NULL, 0, w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, NULL, 5, w.n.now), WHISPER_EINVAL);
  uint8_t *huge = calloc(1, WHISPER_PROFILE_PICTURE_MAX + 1);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, huge, WHISPER_PROFILE_PICTURE_MAX + 1, w.n.now),
           WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_set(NULL, NAME2, ABOUT1, NULL, 0, w.n.now), WHISPER_EINVAL);
  net_run(&w.n);
  CHECK(w.spy.profile_sets == sets && w.spy.sends_to[0] == sends);
  seen s = profile_of(w.alice, NULL);
  CHECK(strcmp(s.name, NAME1) == 0 && s.version == 1);
  CHECK(profile_of(w.bob, "alice").version == 1);
  /* the largest profile is fine */
  big[141] = 'x';
  big[64] = 0;
  char about[141];
  memset(about, 'a', 140);
  about[140] = 0;
  CHECK_RC(whisper_client_profile_set(w.alice->cl, big, about, huge, WHISPER_PROFILE_PICTURE_MAX, w.n.now),
           WHISPER_OK);
  net_run(&w.n);
  s = profile_of(w.bob, "alice");
  CHECK(s.version == 2 && strlen(s.name) == 64 && strlen(s.about) == 140 &&
        s.picture_len == WHISPER_PROFILE_PICTURE_MAX);
  free(huge);
  /* the other calls */
  whisper_profile_t *p = NULL;
  CHECK_RC(whisper_client_profile_get(w.alice->cl, "No Such", &p), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_get(w.alice->cl, "alice", NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_get(NULL, "alice", &p), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_get(w.alice->cl, "nobody", &p), WHISPER_OK);
  CHECK(p && !p->known && p->name && p->name[0] == 0 && p->picture == NULL);
  whisper_profile_free(p);
  whisper_profile_free(NULL);
  CHECK_RC(whisper_client_profile_refresh(w.alice->cl, "carol"), WHISPER_ESTATE); /* no key of carol's */
  CHECK_RC(whisper_client_profile_refresh(w.alice->cl, "Bad Name"), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_refresh(NULL, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_refresh(w.carol->cl, NULL), WHISPER_ESTATE); /* carol has no profile */
  CHECK_RC(whisper_client_profile_rotate_key(w.alice2->cl, NULL, w.n.now), WHISPER_ESTATE);
  CHECK_RC(whisper_client_profile_rotate_key(w.carol->cl, NULL, w.n.now), WHISPER_ESTATE);
  CHECK_RC(whisper_client_profile_rotate_key(w.alice->cl, "alice", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_rotate_key(w.alice->cl, "Bad Name", w.n.now), WHISPER_EINVAL);
  CHECK_RC(whisper_client_profile_rotate_key(NULL, NULL, w.n.now), WHISPER_EINVAL);
  /* a device that has not received the key cannot set a profile */
  node *bob3 = device_link(&w.n, w.bob, 3, 0);
  node *carol2 = device_link(&w.n, w.carol, 2, 0);
  CHECK_RC(whisper_client_profile_set(carol2->cl, "Carol", "", NULL, 0, w.n.now), WHISPER_ESTATE);
  CHECK(strstr(whisper_ctx_last_error(carol2->ctx), "primary") != NULL);
  (void)bob3;
  CHECK(w.spy.leaks == 0);
  world_close(&w);
}

/* A new contact gets the key with the first message, once; a group's
 * members get it by one group message, and members added later with the
 * next message to the group. */
static void test_new_contacts_and_groups(void) {
  world w;
  world_open(&w);
  node *dave = account_new(&w.n, "dave", 0);
  node *erin = account_new(&w.n, "erin", 0);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(!profile_of(dave, "alice").known);
  int before = w.spy.sends_to[3];
  send_text(&w.n, w.alice, "dave", "hello dave", NULL);
  net_run(&w.n);
  CHECK(profile_events(dave, "alice") == 1 && strcmp(profile_of(dave, "alice").name, NAME1) == 0);
  CHECK(w.spy.sends_to[3] - before == 2); /* the message and the key */
  send_text(&w.n, w.alice, "dave", "again", NULL);
  net_run(&w.n);
  CHECK(w.spy.sends_to[3] - before == 3); /* the key only once */
  /* a change goes to dave as well now */
  ev_clear(dave);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(dave, "alice") == 1 && profile_of(dave, "alice").version == 2);
  /* carol makes a group with alice and erin: alice never wrote to either */
  const char *members[] = {"alice", "erin"};
  uint8_t gid[16];
  CHECK_RC(whisper_client_group_create(w.carol->cl, members, 2, w.n.now, gid), WHISPER_OK);
  net_run(&w.n);
  CHECK(!profile_of(w.carol, "alice").known);
  /* alice's next change reaches the group's members, by a group message */
  clear_all(&w);
  ev_clear(erin);
  int carol_sends = w.spy.sends_to[1];
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, "in a group", NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(w.carol, "alice") == 1 && profile_events(erin, "alice") == 1);
  CHECK(strcmp(profile_of(erin, "alice").about, "in a group") == 0);
  CHECK(w.spy.sends_to[1] == carol_sends); /* not 1:1 */
  /* dave joins; alice writes to the group: dave gets the key */
  const char *add[] = {"dave"};
  CHECK_RC(whisper_client_group_add(w.carol->cl, gid, add, 1, w.n.now), WHISPER_OK);
  net_run(&w.n);
  node *frank = account_new(&w.n, "frank", 0);
  const char *add2[] = {"frank"};
  CHECK_RC(whisper_client_group_add(w.carol->cl, gid, add2, 1, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(!profile_of(frank, "alice").known);
  CHECK_RC(whisper_client_send_group(w.alice->cl, gid, (const uint8_t *)"hi all", 6, w.n.now, (uint8_t[16]){0}),
           WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(frank, "alice") == 1 && strcmp(profile_of(frank, "alice").about, "in a group") == 0);
  world_close(&w);
}

/* A group where only admins send: a member who is not one gives the key
 * to the members one by one (a group message would be refused). */
static void test_admins_only_group(void) {
  net n;
  net_open(&n);
  node *alice = account_new(&n, "alice", 0);
  node *carol = account_new(&n, "carol", 0);
  node *erin = account_new(&n, "erin", 0);
  const char *members[] = {"alice", "erin"};
  uint8_t gid[16];
  CHECK_RC(whisper_client_group_create(carol->cl, members, 2, n.now, gid), WHISPER_OK);
  net_run(&n);
  CHECK_RC(whisper_client_group_setting_set(carol->cl, gid, WHISPER_GROUP_ADMINS_SEND, 1, n.now), WHISPER_OK);
  net_run(&n);
  ev_clear(carol);
  ev_clear(erin);
  CHECK_RC(whisper_client_profile_set(alice->cl, "Alice", "member only", NULL, 0, n.now), WHISPER_OK);
  net_run(&n);
  CHECK(profile_events(carol, "alice") == 1 && profile_events(erin, "alice") == 1);
  CHECK(ev_count(carol, WHISPER_EV_REFUSED) == 0 && ev_count(erin, WHISPER_EV_REFUSED) == 0);
  CHECK(ev_count(alice, WHISPER_EV_ERROR) == 0);
  CHECK(strcmp(profile_of(erin, "alice").about, "member only") == 0);
  net_close(&n);
}

/* Rotation: the new key goes to everyone but the one withheld, who keeps
 * the old profile; writing to it again gives it the new key. */
static void test_rotate(void) {
  world w;
  world_open(&w);
  send_text(&w.n, w.alice, "carol", "hi carol", NULL);
  net_run(&w.n);
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  uint8_t k0[32], k1[32], kb[32], kc[32], k2[32];
  CHECK(key_of(w.alice, "alice", k0));
  clear_all(&w);
  CHECK_RC(whisper_client_profile_rotate_key(w.alice->cl, "bob", w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(key_of(w.alice, "alice", k1) && memcmp(k0, k1, 32) != 0);
  CHECK(key_of(w.alice2, "alice", k2) && memcmp(k2, k1, 32) == 0);
  CHECK(key_of(w.carol, "alice", kc) && memcmp(kc, k1, 32) == 0);
  CHECK(key_of(w.bob, "alice", kb) && memcmp(kb, k0, 32) == 0);
  CHECK(profile_of(w.carol, "alice").version == 2 && profile_of(w.bob, "alice").version == 1);
  /* the old key no longer opens what the server has */
  clear_all(&w);
  CHECK_RC(whisper_client_profile_refresh(w.bob->cl, "alice"), WHISPER_OK);
  net_run(&w.n);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 1 && profile_of(w.bob, "alice").version == 1);
  /* later changes skip bob too */
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_of(w.carol, "alice").version == 3 && profile_of(w.bob, "alice").version == 1);
  /* alice writes to bob again: he gets the key */
  clear_all(&w);
  send_text(&w.n, w.alice, "bob", "friends again", NULL);
  net_run(&w.n);
  CHECK(key_of(w.bob, "alice", kb) && memcmp(kb, k1, 32) == 0);
  CHECK(profile_events(w.bob, "alice") == 1 && profile_of(w.bob, "alice").version == 3);
  world_close(&w);
}

/* Offline and restarts: a profile set offline is uploaded at the next
 * login before the notices go; a device linked after the profile was set
 * asks for the key and gets it; the store keeps everything. */
static void test_offline_and_late_device(void) {
  world w;
  world_open(&w);
  node_cut(&w.n, w.alice);
  w.alice->offline = 1;
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, PIC, sizeof PIC, w.n.now), WHISPER_OK);
  node_crash(&w.n, w.alice); /* and restarted from its store */
  node_restart(w.alice);
  CHECK(profile_of(w.alice, NULL).version == 1);
  w.alice->offline = 0;
  clear_all(&w);
  net_advance(&w.n, 5000);
  CHECK(ev_count(w.bob, WHISPER_EV_REFUSED) == 0);
  CHECK(profile_events(w.bob, "alice") == 1 && profile_events(w.alice2, "alice") == 1);
  CHECK(strcmp(profile_of(w.bob, "alice").name, NAME1) == 0);
  /* bob restarts: what he has is kept */
  node_crash(&w.n, w.bob);
  node_restart(w.bob);
  net_advance(&w.n, 5000);
  CHECK(strcmp(profile_of(w.bob, "alice").name, NAME1) == 0);
  /* alice.3, linked now, asks for the key */
  node *alice3 = device_link(&w.n, w.alice, 3, 0);
  net_advance(&w.n, 5000);
  uint8_t k1[32], k3[32];
  CHECK(key_of(w.alice, "alice", k1) && key_of(alice3, "alice", k3) && memcmp(k1, k3, 32) == 0);
  CHECK(profile_events(alice3, "alice") == 1 && strcmp(profile_of(alice3, NULL).name, NAME1) == 0);
  CHECK(w.spy.leaks == 0);
  world_close(&w);
}

/* An account without contacts: its other device gets the key by the Send
 * to oneself alone, and follows a change. */
static void test_own_devices_only(void) {
  net n;
  net_open(&n);
  node *erin = account_new(&n, "erin", 0);
  node *erin2 = device_link(&n, erin, 2, 0);
  CHECK_RC(whisper_client_profile_set(erin->cl, "Erin", "alone", NULL, 0, n.now), WHISPER_OK);
  net_run(&n);
  CHECK(profile_events(erin2, "erin") == 1 && strcmp(profile_of(erin2, NULL).name, "Erin") == 0);
  CHECK(ev_count(erin2, WHISPER_EV_REFUSED) == 0 && ev_count(erin2, WHISPER_EV_ERROR) == 0);
  CHECK_RC(whisper_client_profile_set(erin->cl, "Erin E.", "alone", NULL, 0, n.now), WHISPER_OK);
  net_run(&n);
  CHECK(profile_events(erin2, "erin") == 2 && profile_of(erin2, NULL).version == 2);
  net_close(&n);
}

/* alice.2 wrote to dave before any profile existed, alice.1 never did:
 * when alice.1 sets the profile, alice.2 tells dave; contacts that
 * alice.1 told already are not told twice. */
static void test_other_device_contacts(void) {
  world w;
  world_open(&w);
  node *dave = account_new(&w.n, "dave", 0);
  send_text(&w.n, w.alice2, "dave", "hi from the phone", NULL);
  net_run(&w.n);
  int to_bob = w.spy.sends_to[0], to_dave = w.spy.sends_to[3];
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME1, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(dave, "alice") == 1 && strcmp(profile_of(dave, "alice").name, NAME1) == 0);
  CHECK(w.spy.sends_to[0] - to_bob == 1 && w.spy.sends_to[3] - to_dave == 1);
  CHECK(profile_events(w.bob, "alice") == 1);
  /* the next change: alice.1 now knows dave too (its copy of the key to dave) */
  to_dave = w.spy.sends_to[3];
  CHECK_RC(whisper_client_profile_set(w.alice->cl, NAME2, ABOUT1, NULL, 0, w.n.now), WHISPER_OK);
  net_run(&w.n);
  CHECK(profile_events(dave, "alice") == 2 && w.spy.sends_to[3] - to_dave == 1);
  world_close(&w);
}

/* The server core alone: what ProfileSet and ProfileGet refuse. */
typedef struct answers {
  node *d;
  uint64_t first;
  int code[16];
  int body[16];
  uint64_t version[16];
} answers;

static int answers_tamper(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n;
  answers *a = arg;
  if (d != a->d) return 0;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f == NULL) return 0;
  int mine = f->id >= a->first && f->id < a->first + 16;
  if (mine) {
    size_t i = (size_t)(f->id - a->first);
    a->body[i] = (int)f->body_case;
    a->code[i] = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? (int)f->error->code : 0;
    a->version[i] = f->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE ? f->profile->version : 0;
  }
  whisper__sync__frame__free_unpacked(f, NULL);
  return mine;
}

static void raw_request(net *n, node *d, uint64_t id, Whisper__Sync__Frame *f) {
  f->has_version = f->has_id = 1;
  f->version = 1;
  f->id = id;
  size_t len = whisper__sync__frame__get_packed_size(f);
  uint8_t *b = malloc(len);
  whisper__sync__frame__pack(f, b);
  CHECK_RC(whisper_server_receive(n->srv, d->conn, b, len, n->now), WHISPER_OK);
  free(b);
  net_run(n);
}

static void test_server_rules(void) {
  net n;
  net_open(&n);
  node *alice = account_new(&n, "alice", 0);
  answers a = {.d = alice, .first = 1000000};
  n.tamper = answers_tamper;
  n.tamper_arg = &a;
  uint8_t blob[100];
  memset(blob, 7, sizeof blob);
  Whisper__Sync__ProfileSet ps = WHISPER__SYNC__PROFILE_SET__INIT;
  ps.has_ciphertext = ps.has_version = 1;
  ps.ciphertext = (ProtobufCBinaryData){sizeof blob, blob};
  ps.version = 3;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_SET;
  f.profile_set = &ps;
  raw_request(&n, alice, a.first + 0, &f); /* taken */
  ps.version = 3;
  raw_request(&n, alice, a.first + 1, &f); /* not newer */
  ps.version = 0;
  raw_request(&n, alice, a.first + 2, &f); /* no version */
  ps.version = 4;
  ps.ciphertext.len = 0;
  raw_request(&n, alice, a.first + 3, &f); /* empty */
  uint8_t *huge = calloc(1, 66561);
  ps.ciphertext = (ProtobufCBinaryData){66561, huge};
  raw_request(&n, alice, a.first + 4, &f); /* over the limit (the frame itself is within it) */
  free(huge);
  Whisper__Sync__ProfileGet pg = WHISPER__SYNC__PROFILE_GET__INIT;
  pg.account = "alice";
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_GET;
  f.profile_get = &pg;
  raw_request(&n, alice, a.first + 5, &f);
  pg.account = "nobody";
  raw_request(&n, alice, a.first + 6, &f);
  pg.account = "Not A Name";
  raw_request(&n, alice, a.first + 7, &f);
  CHECK(a.body[0] == WHISPER__SYNC__FRAME__BODY_OK);
  CHECK(a.code[1] == WHISPER__SYNC__ERROR_CODE__ERR_STATE);
  CHECK(a.code[2] == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(a.code[3] == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  CHECK(a.code[4] == WHISPER__SYNC__ERROR_CODE__ERR_LIMIT);
  CHECK(a.body[5] == WHISPER__SYNC__FRAME__BODY_PROFILE && a.version[5] == 3);
  CHECK(a.code[6] == WHISPER__SYNC__ERROR_CODE__ERR_NOT_FOUND);
  CHECK(a.code[7] == WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED);
  Whisper__Server__Profile *p = stored(&n, "alice");
  CHECK(p && p->version == 3 && p->ciphertext.len == sizeof blob);
  if (p) whisper__server__profile__free_unpacked(p, NULL);
  /* before login: refused */
  uint64_t conn = ++n.next_conn;
  CHECK_RC(whisper_server_connected(n.srv, conn, n.now), WHISPER_OK);
  pg.account = "alice";
  f.has_version = f.has_id = 1;
  f.version = 1;
  f.id = 5;
  size_t len = whisper__sync__frame__get_packed_size(&f);
  uint8_t *b = malloc(len);
  whisper__sync__frame__pack(&f, b);
  CHECK_RC(whisper_server_receive(n.srv, conn, b, len, n.now), WHISPER_OK);
  free(b);
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  int auth = 0;
  while (whisper_server_take_output(n.srv, &o) > 0) {
    if (o.conn != conn || o.action != WHISPER_SERVER_SEND) continue;
    Whisper__Sync__Frame *r = whisper__sync__frame__unpack(NULL, o.frame_len, o.frame);
    if (r && r->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && r->id == 5)
      auth = r->error->code == WHISPER__SYNC__ERROR_CODE__ERR_AUTH;
    if (r) whisper__sync__frame__free_unpacked(r, NULL);
  }
  CHECK(auth);
  whisper_server_disconnected(n.srv, conn, n.now);
  n.tamper = NULL;
  net_close(&n);
}

/* Sealing: what the engine makes opens only under its key, account and
 * version; a bit flipped anywhere is refused. */
static void test_seal(void) {
  uint8_t key[32], other[32];
  memset(key, 1, 32);
  memset(other, 2, 32);
  whisper_buf *blob = NULL;
  wh_rng rng = {NULL, NULL};
  CHECK_RC(sy_profile_seal(&rng, key, "alice", 7, (const uint8_t *)"Al", 2, (const uint8_t *)"", 0, NULL, 0, &blob),
           WHISPER_OK);
  if (blob == NULL) return;
  CHECK(blob->len == 1 + 12 + 512 + 16);
  Whisper__E2e__ProfileBody *b = NULL;
  CHECK_RC(sy_profile_open(key, "alice", 7, blob->data, blob->len, &b), WHISPER_OK);
  CHECK(b && b->name.len == 2 && memcmp(b->name.data, "Al", 2) == 0);
  if (b) whisper__e2e__profile_body__free_unpacked(b, &wh_pb_alloc);
  CHECK_RC(sy_profile_open(other, "alice", 7, blob->data, blob->len, &b), WHISPER_EFORGED);
  CHECK_RC(sy_profile_open(key, "alicf", 7, blob->data, blob->len, &b), WHISPER_EFORGED);
  CHECK_RC(sy_profile_open(key, "alice", 8, blob->data, blob->len, &b), WHISPER_EFORGED);
  int all = 1;
  for (size_t i = 1; i < blob->len; i += 7) {
    blob->data[i] ^= 0x10;
    all &= sy_profile_open(key, "alice", 7, blob->data, blob->len, &b) == WHISPER_EFORGED;
    blob->data[i] ^= 0x10;
  }
  CHECK(all && b == NULL);
  blob->data[0] = 2;
  CHECK_RC(sy_profile_open(key, "alice", 7, blob->data, blob->len, &b), WHISPER_EINVALIDMSG);
  blob->data[0] = 1;
  CHECK_RC(sy_profile_open(key, "alice", 7, blob->data, blob->len - 1, &b), WHISPER_EINVALIDMSG);
  /* two seals of the same profile differ (a fresh nonce each) */
  whisper_buf *again = NULL;
  CHECK_RC(sy_profile_seal(&rng, key, "alice", 7, (const uint8_t *)"Al", 2, (const uint8_t *)"", 0, NULL, 0, &again),
           WHISPER_OK);
  CHECK(again && again->len == blob->len && memcmp(again->data, blob->data, blob->len) != 0);
  whisper_buf_free(again);
  whisper_buf_free(blob);
  CHECK_RC(sy_profile_seal(&rng, key, "alice", 7, (const uint8_t *)"", 0, (const uint8_t *)"", 0, NULL, 0, &blob),
           WHISPER_EINVAL);
}

#define RUN(t)                                              \
  do {                                                      \
    const char *only = getenv("PROFILE_ONLY");              \
    if (only == NULL || strcmp(only, #t) == 0) t();         \
  } while (0)

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-profile-%d", (int)getpid());
  mkdir(dbdir, 0700);
  pic_fill();
  RUN(test_seal);
  RUN(test_server_rules);
  RUN(test_set_and_see);
  RUN(test_server_sees_ciphertext);
  RUN(test_swapped_profile);
  RUN(test_replayed_profile);
  RUN(test_key_of_another_account);
  RUN(test_bad_input);
  RUN(test_new_contacts_and_groups);
  RUN(test_admins_only_group);
  RUN(test_rotate);
  RUN(test_offline_and_late_device);
  RUN(test_own_devices_only);
  RUN(test_other_device_contacts);
  rmdir(dbdir);
  return test_done();
}

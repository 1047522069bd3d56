/* Migration of the sync engine and server (docs/security.md, "Migration
 * trusts the server once"): the stores in tests/vectors/sync-v1-*.db were
 * written by the code from before signed device lists and group changes
 * (efef8a4, tests/tools/make_sync_v1.c says what they hold). Today's server
 * core and engines open copies of them and go on: the old history is there,
 * alice's primary publishes the account's first signed list with the
 * device linked the old way, 1:1 conversations go on both ways (bob's
 * message left undelivered by the old server too), bob sees alice's devices
 * unauthenticated (EV_DEVICES status 0) until that list comes, and the old
 * group goes on (carol's message sent by the old engine and still on the
 * server reaches alice's devices) and takes its first signed changes. */
#include "sync_net.h"

#define FIXTURE_T0 1699990000000ULL /* the fixtures' clock (make_sync_v1.c); T0 is after it */
static const uint8_t FKEY[32] = "sync-v1 fixture key";
/* the group alice.1 made (printed by make_sync_v1) */
static const char GROUP[] = "#82a4833b8a5d9722b4a90d05e1baa0a3";

/* Copies tests/vectors/`name` to the test directory (the vectors are never
 * opened in place), its path in `out`. */
static void fixture(char *out, size_t out_len, const char *name) {
  char src[512];
  snprintf(src, sizeof src, "%s/%s", WHISPER_VECTORS_DIR, name);
  snprintf(out, out_len, "%s/%s", dbdir, name);
  FILE *in = fopen(src, "rb"), *o = fopen(out, "wb");
  CHECK(in != NULL && o != NULL);
  char buf[8192];
  size_t k;
  while (in && o && (k = fread(buf, 1, sizeof buf, in)) > 0) CHECK(fwrite(buf, 1, k, o) == k);
  if (in) fclose(in);
  if (o) fclose(o);
}

static node *attach(net *n, const char *name, uint32_t device, const char *file) {
  char path[256];
  fixture(path, sizeof path, file);
  return node_attach(n, name, device, path, FKEY);
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

/* Honest traffic raises no error and no refusal anywhere. */
static void no_trouble(net *n) {
  for (int i = 0; i < n->n; i++) {
    node *d = n->nodes[i];
    for (int k = 0; k < d->n_ev; k++)
      if (d->ev[k].type == WHISPER_EV_ERROR || d->ev[k].type == WHISPER_EV_REFUSED) {
        fprintf(stderr, "%s.%u: event %d code %d/%d conv %s from %s.%u\n", d->name, d->device,
                d->ev[k].type, d->ev[k].code, d->ev[k].server_code, d->ev[k].conversation,
                d->ev[k].from, d->ev[k].from_device);
        CHECK(!"an error or a refusal from honest traffic");
      }
  }
}

static void clear_all(net *n) {
  no_trouble(n);
  for (int i = 0; i < n->n; i++) ev_clear(n->nodes[i]);
}

static int trust_of(node *d, const char *account, uint8_t key[33]) {
  int trust = -1;
  CHECK_RC(whisper_client_account_info(d->cl, account, &trust, key), WHISPER_OK);
  return trust;
}

static int devices_events(const node *d, const char *from, int status) {
  int k = 0;
  for (int i = 0; i < d->n_ev; i++)
    k += d->ev[i].type == WHISPER_EV_DEVICES && strcmp(d->ev[i].from, from) == 0 &&
         d->ev[i].status == status;
  return k;
}

static void send_group_text(net *n, node *from, const uint8_t gid[16], const char *text) {
  uint8_t id[16];
  CHECK_RC(whisper_client_send_group(from->cl, gid, (const uint8_t *)text, strlen(text), n->now, id),
           WHISPER_OK);
  net_run(n);
}

static void test_migration_sync(void) {
  net n;
  char sp[256];
  fixture(sp, sizeof sp, "sync-v1-server.db");
  net_open_sqlite(&n, sp, FKEY, T0);
  node *a1 = attach(&n, "alice", 1, "sync-v1-alice1.db");
  node *a2 = attach(&n, "alice", 2, "sync-v1-alice2.db");
  node *b1 = attach(&n, "bob", 1, "sync-v1-bob1.db");
  node *c1 = attach(&n, "carol", 1, "sync-v1-carol1.db");
  uint8_t gid[16];
  unhex_to(gid, sizeof gid, GROUP + 1);
  CHECK(T0 > FIXTURE_T0);

  /* the old history, all of it */
  CHECK(history_count(a1, "bob") == 5 && history_count(a1, GROUP) == 3);
  CHECK(history_count(a2, "bob") == 6 && history_count(a2, GROUP) == 3);
  CHECK(history_count(b1, "alice") == 6 && history_count(b1, GROUP) == 4);
  CHECK(history_count(c1, GROUP) == 4 && history_count(c1, "alice") == 0);
  const char *one[] = {"hello bob", "hello alice", "how are you", "fine thanks", "from alice two"};
  for (int i = 0; i < 5; i++)
    CHECK(history_has(a1, "bob", one[i]) == 1 && history_has(a2, "bob", one[i]) == 1 &&
          history_has(b1, "alice", one[i]) == 1);
  CHECK(history_has(a2, "bob", "are you there") == 1 && history_has(b1, "alice", "are you there") == 1);
  CHECK(history_has(a1, "bob", "are you there") == 0); /* still on the server */
  CHECK(history_has(b1, GROUP, "carol in flight") == 1 && history_has(c1, GROUP, "carol in flight") == 1);
  CHECK(history_has(a1, GROUP, "carol in flight") == 0 && history_has(a2, GROUP, "carol in flight") == 0);
  const char *grp[] = {"group from alice", "group from bob", "group from carol"};
  node *all[4] = {a1, a2, b1, c1};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 4; k++) CHECK(history_has(all[k], GROUP, grp[i]) == 1);
  /* read receipts that came back before: bob read alice.1's first two */
  whisper_page *p = NULL;
  CHECK_RC(whisper_history_page(a1->ctx, "bob", 0, NULL, 0, 10, &p), WHISPER_OK);
  int read = 0;
  for (size_t i = 0; p && i < whisper_page_count(p); i++) {
    const whisper_message_t *m = whisper_page_get(p, i);
    int st = -1;
    if (m->sender == NULL &&
        whisper_history_status_get(a1->ctx, "bob", m->id, m->id_len, "bob", 1, &st) == WHISPER_OK)
      read += st == WHISPER_STATUS_READ;
  }
  whisper_page_free(p);
  CHECK(read == 2);
  /* nobody's devices are authenticated yet */
  CHECK(trust_of(b1, "alice", NULL) == WHISPER_TRUST_UNKNOWN);
  CHECK(trust_of(a2, "bob", NULL) == WHISPER_TRUST_UNKNOWN);
  CHECK(trust_of(c1, "alice", NULL) == WHISPER_TRUST_UNKNOWN);

  /* everyone but alice.1 logs in (its primary stays away for now) */
  a1->offline = 1;
  net_run(&n);
  for (int k = 1; k < 4; k++) {
    CHECK(ev_count(all[k], WHISPER_EV_ONLINE) == 1);
    CHECK(ev_count(all[k], WHISPER_EV_REGISTERED) == 0); /* registered before */
  }
  CHECK(ev_count(a1, WHISPER_EV_ONLINE) == 0);
  /* carol's group message, sent by the old engine while both of alice's
   * devices were away; alice.2 never listed carol's devices */
  CHECK(ev_messages(a2, "carol in flight") == 1);
  clear_all(&n);

  /* bob writes to alice before its primary has signed a list: alice is a
   * contact from before, the server's word stands, and bob is told */
  uint8_t id[16];
  send_text(&n, b1, "alice", "while alice.1 is away", id);
  net_run(&n);
  CHECK(ev_status(b1, id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  CHECK(ev_messages(a2, "while alice.1 is away") == 1);
  CHECK(status_of(b1, "alice", id, "alice", 2) == WHISPER_STATUS_DELIVERED);
  CHECK(devices_events(b1, "alice", 0) == 1);
  CHECK(trust_of(b1, "alice", NULL) == WHISPER_TRUST_UNKNOWN);

  /* alice.1 comes back: it gets what waited on the old server (the old
   * engine's message too), and signs its account's first list */
  a1->offline = 0;
  net_run(&n);
  CHECK(ev_count(a1, WHISPER_EV_ONLINE) == 1);
  CHECK(ev_messages(a1, "are you there") == 1);
  CHECK(ev_messages(a1, "while alice.1 is away") == 1);
  CHECK(ev_messages(a1, "carol in flight") == 1);
  CHECK(history_count(a1, "bob") == 7);
  CHECK(status_of(b1, "alice", id, "alice", 1) == WHISPER_STATUS_DELIVERED);
  uint8_t akey[33], held[33];
  CHECK_RC(whisper_identity_get(a1->ctx, akey, NULL, NULL, NULL), WHISPER_OK);
  clear_all(&n);

  /* bob's next connection lists alice's devices again: now signed, with the
   * device linked the old way on it */
  node_cut(&n, b1);
  net_advance(&n, 2000);
  send_text(&n, b1, "alice", "after the upgrade", id);
  net_run(&n);
  CHECK(trust_of(b1, "alice", held) == WHISPER_TRUST_UNVERIFIED);
  CHECK(memcmp(held, akey, 33) == 0);
  CHECK(devices_events(b1, "alice", 0) == 0);
  CHECK(ev_messages(a1, "after the upgrade") == 1 && ev_messages(a2, "after the upgrade") == 1);
  CHECK(status_of(b1, "alice", id, "alice", 1) == WHISPER_STATUS_DELIVERED);
  CHECK(status_of(b1, "alice", id, "alice", 2) == WHISPER_STATUS_DELIVERED);

  /* and the other way, from both of alice's devices */
  uint8_t i1[16], i2[16];
  send_text(&n, a1, "bob", "alice one after", i1);
  net_run(&n);
  send_text(&n, a2, "bob", "alice two after", i2);
  net_run(&n);
  CHECK(ev_messages(b1, "alice one after") == 1 && ev_messages(b1, "alice two after") == 1);
  CHECK(ev_messages(a2, "alice one after") == 1 && ev_messages(a1, "alice two after") == 1);
  CHECK(status_of(a1, "bob", i1, "bob", 1) == WHISPER_STATUS_DELIVERED);
  CHECK(status_of(a2, "bob", i2, "bob", 1) == WHISPER_STATUS_DELIVERED);
  CHECK(trust_of(a1, "bob", NULL) == WHISPER_TRUST_UNVERIFIED);
  CHECK(trust_of(a2, "bob", NULL) == WHISPER_TRUST_UNVERIFIED);
  CHECK(history_count(a1, "bob") == 10 && history_count(a2, "bob") == 10 &&
        history_count(b1, "alice") == 10);
  clear_all(&n);

  /* the old group goes on: a message from each member */
  send_group_text(&n, a1, gid, "group again from alice");
  send_group_text(&n, b1, gid, "group again from bob");
  send_group_text(&n, c1, gid, "group again from carol");
  /* alice.2 never sent to the group: its sender key goes out now, to the
   * devices of signed lists (carol's too, taken as a contact from before
   * by alice.2 until now) */
  send_group_text(&n, a2, gid, "group from alice two");
  const char *again[4] = {"group again from alice", "group again from bob", "group again from carol",
                          "group from alice two"};
  node *sender[4] = {a1, b1, c1, a2};
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++)
      CHECK(ev_messages(all[k], again[i]) == (all[k] == sender[i] ? 0 : 1));
  for (int k = 0; k < 4; k++) CHECK(history_count(all[k], GROUP) == 8);
  CHECK(trust_of(c1, "alice", NULL) == WHISPER_TRUST_UNVERIFIED);
  CHECK(trust_of(c1, "bob", NULL) == WHISPER_TRUST_UNVERIFIED);
  /* alice.2 listed carol before carol's first list was out: carol stays a
   * contact from before for it until it lists her again (a new connection) */
  node_cut(&n, a2);
  net_advance(&n, 2000);
  send_group_text(&n, a2, gid, "alice two, reconnected");
  for (int k = 0; k < 4; k++) CHECK(ev_messages(all[k], "alice two, reconnected") == (all[k] == a2 ? 0 : 1));
  CHECK(trust_of(a2, "carol", NULL) == WHISPER_TRUST_UNVERIFIED);
  clear_all(&n);

  /* its first signed change (version 1, no prev), by alice.1: dave joins */
  node *dave = account_new(&n, "dave", 0);
  ev_clear(dave);
  const char *dv[1] = {"dave"};
  CHECK_RC(whisper_client_group_add(a1->cl, gid, dv, 1, n.now), WHISPER_OK);
  net_run(&n);
  for (int k = 0; k < 4; k++) CHECK(ev_count(all[k], WHISPER_EV_GROUP) == 1);
  CHECK(ev_count(dave, WHISPER_EV_GROUP) == 1);
  send_group_text(&n, a1, gid, "welcome dave");
  CHECK(ev_messages(dave, "welcome dave") == 1 && ev_messages(b1, "welcome dave") == 1 &&
        ev_messages(c1, "welcome dave") == 1 && ev_messages(a2, "welcome dave") == 1);
  send_group_text(&n, dave, gid, "hi all");
  for (int k = 0; k < 4; k++) CHECK(ev_messages(all[k], "hi all") == 1);
  clear_all(&n);

  /* the second (version 2): carol is removed; everyone follows */
  const char *cv[1] = {"carol"};
  CHECK_RC(whisper_client_group_remove(a1->cl, gid, cv, 1, n.now), WHISPER_OK);
  net_run(&n);
  for (int k = 0; k < 4; k++) CHECK(ev_count(all[k], WHISPER_EV_GROUP) == 1);
  CHECK(ev_count(dave, WHISPER_EV_GROUP) == 1);
  send_group_text(&n, b1, gid, "without carol");
  CHECK(ev_messages(a1, "without carol") == 1 && ev_messages(a2, "without carol") == 1 &&
        ev_messages(dave, "without carol") == 1 && ev_messages(c1, "without carol") == 0);
  CHECK_RC(whisper_client_send_group(c1->cl, gid, (const uint8_t *)"x", 1, n.now, id), WHISPER_ESTATE);
  no_trouble(&n);
  net_close(&n);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-migration-sync-%d", (int)getpid());
  mkdir(dbdir, 0700);
  test_migration_sync();
  char sp[300];
  snprintf(sp, sizeof sp, "%s/sync-v1-server.db", dbdir);
  whisper_store_sqlite_delete(sp);
  if (rmdir(dbdir) != 0) fprintf(stderr, "could not remove %s\n", dbdir);
  return test_done();
}

/* The client engine against the real server core, in process (the network
 * is sync_net.h), with an honest server. */
#include "sync_net.h"

/* --- the tests ---------------------------------------------------------------------------------- */

static void test_register_login(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  CHECK(ev_count(a, WHISPER_EV_CAUGHT_UP) == 1);
  CHECK(ev_count(a, WHISPER_EV_ERROR) == 0);
  /* a reconnect logs in without registering again */
  ev_clear(a);
  node_cut(&n, a);
  CHECK(!whisper_client_want_connect(a->cl, n.now)); /* backoff */
  net_advance(&n, 1000);
  CHECK(ev_count(a, WHISPER_EV_REGISTERED) == 0);
  CHECK(ev_count(a, WHISPER_EV_ONLINE) == 1);
  CHECK(a->conn != 0);
  /* a server that stops answering: the request times out, the engine
   * wants the connection closed, and the message goes on the next one */
  node *b = account_new(&n, "bob", 0);
  a->mute = 1;
  ev_clear(a);
  send_text(&n, a, "bob", "through a timeout", NULL);
  net_run(&n);
  CHECK(a->conn != 0 && !whisper_client_want_disconnect(a->cl));
  CHECK(whisper_client_next_deadline(a->cl) <= n.now + 10000);
  a->mute = 0;
  uint64_t cut_at = 0;
  for (int i = 0; i < 30 && !cut_at; i++) {
    uint64_t conn = a->conn;
    net_advance(&n, 1000);
    if (a->conn != conn) cut_at = n.now;
  }
  CHECK(cut_at != 0);
  CHECK(ev_count(a, WHISPER_EV_ERROR) == 1);
  net_advance(&n, 3000);
  CHECK(ev_messages(b, "through a timeout") == 1);
  /* the same account name from another identity is refused */
  node *x = node_new(&n, "alice", 1, 0);
  net_run(&n);
  CHECK(ev_count(x, WHISPER_EV_REGISTERED) == 0);
  CHECK(ev_count(x, WHISPER_EV_ERROR) >= 1);
  x->offline = 1;
  node_cut(&n, x);
  net_close(&n);
}

static void test_direct_two_by_two(void) {
  net n;
  net_open(&n);
  node *a1 = account_new(&n, "alice", 0);
  node *a2 = device_link(&n, a1, 2, 0);
  node *b1 = account_new(&n, "bob", 0);
  node *b2 = device_link(&n, b1, 2, 0);
  for (int i = 0; i < n.n; i++) ev_clear(n.nodes[i]);

  uint8_t id[16];
  send_text(&n, a1, "bob", "hello bob", id);
  CHECK(history_count(a1, "bob") == 1); /* in history before anything moved */
  net_run(&n);
  CHECK(ev_status(a1, id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  CHECK(ev_messages(b1, "hello bob") == 1);
  CHECK(ev_messages(b2, "hello bob") == 1);
  CHECK(ev_messages(a2, "hello bob") == 1); /* own-device copy */
  const rec_event *m = ev_find(b1, WHISPER_EV_MESSAGE, 0);
  CHECK(m && strcmp(m->conversation, "alice") == 0 && strcmp(m->from, "alice") == 0 &&
        m->from_device == 1 && memcmp(m->id, id, 16) == 0 && m->server_seq > 0);
  const rec_event *own = ev_find(a2, WHISPER_EV_MESSAGE, 0);
  CHECK(own && strcmp(own->conversation, "bob") == 0 && strcmp(own->from, "alice") == 0);
  /* delivered by both of bob's devices, seen on both of alice's */
  CHECK(ev_status(a1, id, "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(a1, id, "bob", 2, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(a2, id, "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(a2, id, "bob", 2, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(status_of(a1, "bob", id, "bob", 1) == WHISPER_STATUS_DELIVERED);
  CHECK(status_of(a2, "bob", id, "bob", 2) == WHISPER_STATUS_DELIVERED);
  /* read on bob.1 */
  const uint8_t(*ids)[16] = (const uint8_t(*)[16])id;
  CHECK_RC(whisper_client_mark_read(b1->cl, "alice", "alice", ids, 1, n.now), WHISPER_OK);
  net_run(&n);
  CHECK(ev_status(a1, id, "bob", 1, WHISPER_STATUS_READ) == 1);
  CHECK(ev_status(a2, id, "bob", 1, WHISPER_STATUS_READ) == 1);
  CHECK(status_of(a1, "bob", id, "bob", 1) == WHISPER_STATUS_READ);
  CHECK(status_of(a1, "bob", id, "bob", 2) == WHISPER_STATUS_DELIVERED);
  CHECK(status_of(a2, "bob", id, "bob", 1) == WHISPER_STATUS_READ);
  /* history: sorted by the server's sequence on every device */
  whisper_page *p = NULL;
  CHECK_RC(whisper_history_page(b2->ctx, "alice", 0, NULL, 0, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1);
  if (whisper_page_count(p) == 1) {
    const whisper_message_t *hm = whisper_page_get(p, 0);
    CHECK(hm->sort_key == m->server_seq && hm->body_len == 9 && memcmp(hm->body, "hello bob", 9) == 0);
  }
  whisper_page_free(p);
  CHECK_RC(whisper_history_page(a1->ctx, "bob", 0, NULL, 0, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1 && whisper_page_get(p, 0)->sort_key == m->server_seq);
  whisper_page_free(p);

  /* the answer, from bob's second device: alice's devices and bob.1 */
  uint8_t id2[16];
  send_text(&n, b2, "alice", "hi alice", id2);
  net_run(&n);
  CHECK(ev_messages(a1, "hi alice") == 1);
  CHECK(ev_messages(a2, "hi alice") == 1);
  CHECK(ev_messages(b1, "hi alice") == 1);
  CHECK(ev_status(b2, id2, "alice", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(b2, id2, "alice", 2, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(ev_status(b1, id2, "alice", 2, WHISPER_STATUS_DELIVERED) == 1);
  CHECK(history_count(a1, "bob") == 2);
  CHECK(history_count(b1, "alice") == 2);
  /* a large read batch goes out in several Receipt frames, none refused */
  static uint8_t many[1500][16];
  for (int i = 0; i < 1500; i++) memset(many[i], i % 251 + 1, 16), many[i][0] = (uint8_t)(i >> 8);
  memcpy(many[1400], id2, 16);
  CHECK_RC(whisper_client_mark_read(a1->cl, "bob", "bob", (const uint8_t(*)[16])many, 1500, n.now),
           WHISPER_OK);
  net_run(&n);
  CHECK(ev_status(b2, id2, "alice", 1, WHISPER_STATUS_READ) == 1);
  for (int i = 0; i < n.n; i++) CHECK(ev_count(n.nodes[i], WHISPER_EV_ERROR) == 0);
  net_close(&n);
}

static void test_offline_resume(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  b->offline = 1;
  node_cut(&n, b);
  ev_clear(b);
  char text[32];
  uint8_t ids[5][16];
  for (int i = 0; i < 5; i++) {
    snprintf(text, sizeof text, "offline %d", i);
    send_text(&n, a, "bob", text, ids[i]);
    net_run(&n);
  }
  CHECK(ev_count(a, WHISPER_EV_STATUS) == 5); /* sent, not delivered */
  CHECK(ev_count(b, WHISPER_EV_MESSAGE) == 0);
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(ev_count(b, WHISPER_EV_MESSAGE) == 5);
  CHECK(ev_count(b, WHISPER_EV_CAUGHT_UP) == 1);
  uint64_t last = 0;
  for (int i = 0; i < 5; i++) {
    const rec_event *e = ev_find(b, WHISPER_EV_MESSAGE, i);
    snprintf(text, sizeof text, "offline %d", i);
    CHECK(e && strcmp(e->body, text) == 0 && e->server_seq > last);
    if (e) last = e->server_seq;
  }
  for (int i = 0; i < 5; i++) CHECK(ev_status(a, ids[i], "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  /* reconnecting again delivers nothing twice */
  ev_clear(b);
  node_cut(&n, b);
  net_advance(&n, 2000);
  CHECK(ev_count(b, WHISPER_EV_ONLINE) == 1);
  CHECK(ev_count(b, WHISPER_EV_MESSAGE) == 0);
  CHECK(history_count(b, "alice") == 5);
  net_close(&n);
}

static void test_lost_sent(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  a->drop_sent = 1;
  uint8_t id[16];
  send_text(&n, a, "bob", "only once", id);
  net_run(&n);
  CHECK(ev_status(a, id, NULL, 0, WHISPER_STATUS_SENT) == 0);
  CHECK(a->conn == 0);
  whisper_page *p = NULL;
  CHECK_RC(whisper_outbox_page(a->ctx, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1); /* still in the outbox */
  whisper_page_free(p);
  net_advance(&n, 2000); /* reconnect: the outbox goes again, same client id */
  CHECK(ev_status(a, id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  CHECK(ev_messages(b, "only once") == 1);
  CHECK(history_count(b, "alice") == 1);
  CHECK(ev_status(a, id, "bob", 1, WHISPER_STATUS_DELIVERED) == 1);
  CHECK_RC(whisper_outbox_page(a->ctx, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  net_close(&n);
}

static void test_restart_midstream(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 1);
  node *b = account_new(&n, "bob", 1);
  /* bob knows alice's signed device list (a first contact waits for it) */
  send_text(&n, b, "alice", "hello", NULL);
  net_run(&n);
  b->offline = 1;
  node_cut(&n, b);
  char text[32];
  for (int i = 0; i < 6; i++) {
    snprintf(text, sizeof text, "stream %d", i);
    send_text(&n, a, "bob", text, NULL);
  }
  net_run(&n);
  CHECK(ev_count(a, WHISPER_EV_STATUS) >= 6);
  /* bob comes back and dies after three entries: the backlog is handled in
   * one batch once all six are in (the login said six wait), so nothing of
   * it is stored or acked yet (test_sync_pipe.c: a crash after entries
   * stored and not acked) */
  ev_clear(b);
  b->offline = 0;
  b->crash_after_delivers = 3;
  net_advance(&n, 2000);
  CHECK(b->cl == NULL);
  int before = ev_count(b, WHISPER_EV_MESSAGE);
  CHECK(before == 0);
  node_restart(b);
  net_advance(&n, 2000);
  CHECK(ev_count(b, WHISPER_EV_MESSAGE) == 6); /* the other three, none twice */
  for (int i = 0; i < 6; i++) {
    snprintf(text, sizeof text, "stream %d", i);
    CHECK(ev_messages(b, text) == 1);
  }
  CHECK(history_count(b, "alice") == 7); /* and bob's hello */
  /* bob reads offline, then restarts: the READ receipt still goes */
  const rec_event *first = ev_find(b, WHISPER_EV_MESSAGE, 0);
  uint8_t rid[16];
  memcpy(rid, first ? first->id : rid, 16);
  b->offline = 1;
  node_cut(&n, b);
  CHECK_RC(whisper_client_mark_read(b->cl, "alice", "alice", (const uint8_t(*)[16])rid, 1, n.now), WHISPER_OK);
  node_crash(&n, b);
  node_restart(b);
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(ev_status(a, rid, "bob", 1, WHISPER_STATUS_READ) == 1);
  /* alice restarts too, with a message in her outbox */
  a->offline = 1;
  node_cut(&n, a);
  send_text(&n, a, "bob", "after restart", NULL);
  node_crash(&n, a);
  node_restart(a);
  a->offline = 0;
  net_advance(&n, 2000);
  CHECK(ev_messages(b, "after restart") == 1);
  CHECK(history_count(b, "alice") == 8); /* with the hello */
  CHECK(history_count(a, "bob") == 8);
  net_close(&n);
}

static void test_stale_devices(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  node *b1 = account_new(&n, "bob", 0);
  send_text(&n, a, "bob", "one", NULL);
  net_run(&n);
  send_text(&n, b1, "alice", "two", NULL);
  net_run(&n);
  CHECK(ev_messages(b1, "one") == 1 && ev_messages(a, "two") == 1);
  /* bob adds a device; alice's list is out of date */
  node *b2 = device_link(&n, b1, 2, 0);
  uint8_t id[16];
  send_text(&n, a, "bob", "three", id);
  net_run(&n);
  CHECK(ev_messages(b1, "three") == 1);
  CHECK(ev_messages(b2, "three") == 1);
  CHECK(ev_status(a, id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  CHECK(status_of(a, "bob", id, "bob", 2) == WHISPER_STATUS_DELIVERED);
  CHECK(ev_count(a, WHISPER_EV_ERROR) == 0);
  /* bob's first device learns of its sibling the same way */
  send_text(&n, b1, "alice", "four", NULL);
  net_run(&n);
  CHECK(ev_messages(a, "four") == 1);
  CHECK(ev_messages(b2, "four") == 1);
  net_close(&n);
}

static void test_group(void) {
  net n;
  net_open(&n);
  const char *names[5] = {"alice", "bob", "carol", "dave", "erin"};
  node *m[5];
  for (int i = 0; i < 5; i++) m[i] = account_new(&n, names[i], 0);
  node *a2 = device_link(&n, m[0], 2, 0);
  for (int i = 0; i < n.n; i++) ev_clear(n.nodes[i]);
  uint8_t gid[16];
  CHECK_RC(whisper_client_group_create(m[0]->cl, names + 1, 4, n.now, gid), WHISPER_OK);
  net_run(&n);
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  for (int i = 0; i < 5; i++) CHECK(ev_count(m[i], WHISPER_EV_GROUP) == 1);
  CHECK(ev_count(a2, WHISPER_EV_GROUP) == 1);
  uint8_t id[16];
  CHECK_RC(whisper_client_send_group(m[0]->cl, gid, (const uint8_t *)"g1", 2, n.now, id), WHISPER_OK);
  net_run(&n);
  for (int i = 1; i < 5; i++) {
    CHECK(ev_messages(m[i], "g1") == 1);
    const rec_event *e = ev_find(m[i], WHISPER_EV_MESSAGE, 0);
    CHECK(e && strcmp(e->conversation, conv) == 0 && strcmp(e->from, "alice") == 0);
    CHECK(status_of(m[0], conv, id, names[i], 1) == WHISPER_STATUS_DELIVERED);
  }
  CHECK(ev_messages(a2, "g1") == 1);
  CHECK(ev_status(m[0], id, NULL, 0, WHISPER_STATUS_SENT) == 1);
  /* bob answers in the group */
  CHECK_RC(whisper_client_send_group(m[1]->cl, gid, (const uint8_t *)"g2", 2, n.now, id), WHISPER_OK);
  net_run(&n);
  for (int i = 0; i < 5; i++) CHECK(i == 1 || ev_messages(m[i], "g2") == 1);
  CHECK(ev_messages(a2, "g2") == 1);
  /* erin leaves: everyone who stays rotates */
  CHECK_RC(whisper_client_group_remove(m[4]->cl, gid, names + 4, 1, n.now), WHISPER_OK);
  net_run(&n);
  for (int i = 0; i < 5; i++) CHECK(ev_count(m[i], WHISPER_EV_GROUP) == 2);
  uint8_t id3[16];
  CHECK_RC(whisper_client_send_group(m[0]->cl, gid, (const uint8_t *)"g3", 2, n.now, id3), WHISPER_OK);
  m[0]->catch_group = 1; /* alice's ciphertext, on its way out */
  net_run(&n);
  for (int i = 1; i < 4; i++) CHECK(ev_messages(m[i], "g3") == 1);
  CHECK(ev_messages(a2, "g3") == 1);
  CHECK(ev_messages(m[4], "g3") == 0);
  CHECK(m[0]->caught_len > 0);
  if (m[0]->caught_len) {
    whisper_buf *pt = NULL;
    int rc = whisper_sender_key_decrypt(m[4]->ctx, "alice", 1, m[0]->caught, m[0]->caught_len, &pt);
    CHECK(rc == WHISPER_ENOSESSION); /* the departed member has no key for the new chain */
    whisper_buf_free(pt);
    /* while a member who stayed has it (and it was stored once: a duplicate now) */
    rc = whisper_sender_key_decrypt(m[1]->ctx, "alice", 1, m[0]->caught, m[0]->caught_len, &pt);
    CHECK(rc == WHISPER_EDUPLICATE);
    whisper_buf_free(pt);
    /* stored with the server's sequence: a redelivery is known before decrypting */
    const rec_event *g3 = NULL;
    for (int k = 0; (g3 = ev_find(m[1], WHISPER_EV_MESSAGE, k)) != NULL; k++)
      if (strcmp(g3->body, "g3") == 0) break;
    CHECK(g3 != NULL);
    if (g3) {
      whisper_message_t meta = {.size = sizeof(whisper_message_t),
                                .conversation = conv, .id = g3->id, .id_len = 16,
                                .sort_key = g3->server_seq};
      CHECK_RC(whisper_sender_key_decrypt_store(m[1]->ctx, "alice", 1, m[0]->caught, m[0]->caught_len,
                                           &meta, NULL), WHISPER_EDUPLICATE);
      CHECK(strstr(whisper_ctx_last_error(m[1]->ctx), "stored before") != NULL);
    }
  }
  /* a member who stayed also rotated */
  CHECK_RC(whisper_client_send_group(m[2]->cl, gid, (const uint8_t *)"g4", 2, n.now, id), WHISPER_OK);
  net_run(&n);
  CHECK(ev_messages(m[0], "g4") == 1 && ev_messages(m[1], "g4") == 1 && ev_messages(m[3], "g4") == 1);
  CHECK(ev_messages(m[4], "g4") == 0);
  CHECK(history_count(m[1], conv) == 4);
  CHECK(history_count(m[0], conv) == 4);
  /* erin can no longer send there */
  CHECK_RC(whisper_client_send_group(m[4]->cl, gid, (const uint8_t *)"x", 1, n.now, id), WHISPER_ESTATE);
  for (int i = 0; i < n.n; i++) CHECK(ev_count(n.nodes[i], WHISPER_EV_ERROR) == 0);
  net_close(&n);
}

static void test_typing_presence(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  const char *who[1] = {"alice"};
  /* a quiet 30 s in which the engine is not told the time: a request
   * queued by a call without a clock (subscribe) is timed from the next
   * tick, not from the last time the engine heard */
  n.now += 30000;
  CHECK_RC(whisper_client_subscribe(b->cl, who, 1), WHISPER_OK);
  whisper_client_tick(b->cl, n.now);
  CHECK(!whisper_client_want_disconnect(b->cl));
  net_run(&n);
  const rec_event *p = ev_find(b, WHISPER_EV_PRESENCE, 0);
  CHECK(p && strcmp(p->from, "alice") == 0 && p->online == 1);
  ev_clear(b);
  CHECK_RC(whisper_client_typing(a->cl, "bob", 1, n.now), WHISPER_OK);
  CHECK_RC(whisper_client_typing(a->cl, "bob", 1, n.now + 10), WHISPER_OK); /* throttled */
  net_run(&n);
  CHECK(ev_count(b, WHISPER_EV_TYPING) == 1);
  const rec_event *t = ev_find(b, WHISPER_EV_TYPING, 0);
  CHECK(t && t->started == 1 && strcmp(t->conversation, "alice") == 0 && strcmp(t->from, "alice") == 0);
  net_advance(&n, 7000); /* the indicator lapses */
  CHECK(ev_count(b, WHISPER_EV_TYPING) == 2);
  t = ev_find(b, WHISPER_EV_TYPING, 1);
  CHECK(t && t->started == 0);
  /* alice goes away: offline after the grace period, with a last seen */
  ev_clear(b);
  a->offline = 1;
  node_cut(&n, a);
  net_advance(&n, 6000);
  p = ev_find(b, WHISPER_EV_PRESENCE, 0);
  CHECK(p && p->online == 0 && p->last_seen_ms > 0);
  /* pings keep an idle connection up */
  ev_clear(b);
  net_advance(&n, 120000);
  CHECK(b->conn != 0);
  CHECK(ev_count(b, WHISPER_EV_ONLINE) == 0);
  net_close(&n);
}

static void test_link(void) {
  net n;
  net_open(&n);
  node *a1 = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  send_text(&n, b, "alice", "before", NULL);
  net_run(&n);
  node *a2 = device_link(&n, a1, 7, 1);
  CHECK(ev_messages(a2, "before") == 0); /* a new device starts empty */
  send_text(&n, b, "alice", "after", NULL);
  net_run(&n);
  CHECK(ev_messages(a1, "after") == 1);
  CHECK(ev_messages(a2, "after") == 1);
  send_text(&n, a2, "bob", "from the new device", NULL);
  net_run(&n);
  CHECK(ev_messages(b, "from the new device") == 1);
  CHECK(ev_messages(a1, "from the new device") == 1);
  /* the linked device restarts as a registered device */
  node_crash(&n, a2);
  node_restart(a2);
  ev_clear(a2);
  net_advance(&n, 2000);
  CHECK(ev_count(a2, WHISPER_EV_LINK_CODE) == 0);
  CHECK(ev_count(a2, WHISPER_EV_ONLINE) == 1);
  net_close(&n);
}

static void test_malformed(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  send_text(&n, a, "bob", "fine", NULL);
  net_run(&n);
  ev_clear(b);
  int hist = history_count(b, "alice");
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
  CHECK_RC(whisper_client_receive(b->cl, junk, sizeof junk, n.now), WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_client_receive(b->cl, junk, 0, n.now), WHISPER_EINVALIDMSG);
  /* a frame of another version, and a Deliver without its seq */
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  f.has_version = 1;
  f.version = 2;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DELIVER;
  f.deliver = &d;
  d.has_kind = 1;
  d.kind = 1;
  uint8_t buf[512];
  size_t len = whisper__sync__frame__pack(&f, buf);
  CHECK_RC(whisper_client_receive(b->cl, buf, len, n.now), WHISPER_EINVALIDMSG);
  f.version = 1;
  len = whisper__sync__frame__pack(&f, buf);
  CHECK_RC(whisper_client_receive(b->cl, buf, len, n.now), WHISPER_EINVALIDMSG);
  /* a link code of another length than the server's 16 bytes: never
   * echoed back in a Register */
  {
    Whisper__Sync__Frame lf = WHISPER__SYNC__FRAME__INIT;
    Whisper__Sync__LinkCode lc = WHISPER__SYNC__LINK_CODE__INIT;
    lf.has_version = lf.has_id = 1;
    lf.version = 1;
    lf.id = 1;
    lf.body_case = WHISPER__SYNC__FRAME__BODY_LINK_CODE;
    lf.link_code = &lc;
    lc.has_link_code = 1;
    lc.link_code = (ProtobufCBinaryData){11, (uint8_t *)"fz-link-cod"};
    len = whisper__sync__frame__pack(&lf, buf);
    CHECK_RC(whisper_client_receive(b->cl, buf, len, n.now), WHISPER_EINVALIDMSG);
  }
  /* every truncation of a real frame */
  uint8_t real[512];
  d.has_seq = 1;
  d.seq = 1; /* an entry bob has handled: a real server never repeats a seq otherwise */
  d.sender = "alice";
  d.has_sender_device = 1;
  d.sender_device = 1;
  d.has_type = 1;
  d.type = 2;
  d.has_body = 1;
  d.body = (ProtobufCBinaryData){5, (uint8_t *)"xxxxx"};
  size_t rlen = whisper__sync__frame__pack(&f, real);
  for (size_t cut = 1; cut < rlen; cut++) {
    int rc = whisper_client_receive(b->cl, real, cut, n.now);
    CHECK(rc == WHISPER_EINVALIDMSG || rc == WHISPER_OK);
  }
  CHECK(ev_count(b, WHISPER_EV_MESSAGE) == 0);
  CHECK(history_count(b, "alice") == hist);
  /* a well-formed entry that does not decrypt (alice's device sends junk
   * past its engine): an error, acked, nothing stored */
  record(b);
  ev_clear(b);
  Whisper__Sync__Frame sf = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Send snd = WHISPER__SYNC__SEND__INIT;
  Whisper__Sync__DeviceMessage dm = WHISPER__SYNC__DEVICE_MESSAGE__INIT, *dmp = &dm;
  uint8_t junk_id[16] = "junk client id..";
  dm.has_device_id = dm.has_type = dm.has_body = 1;
  dm.device_id = 1;
  dm.type = 2;
  dm.body = (ProtobufCBinaryData){5, (uint8_t *)"xxxxx"};
  snd.has_client_id = snd.has_content = 1;
  snd.client_id = (ProtobufCBinaryData){16, junk_id};
  snd.to = "bob";
  snd.n_messages = 1;
  snd.messages = &dmp;
  snd.content = 1;
  sf.has_version = sf.has_id = 1;
  sf.version = 1;
  sf.id = 777777;
  sf.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  sf.send = &snd;
  len = whisper__sync__frame__pack(&sf, buf);
  ev_clear(a);
  CHECK_RC(whisper_server_receive(n.srv, a->conn, buf, len, n.now), WHISPER_OK);
  net_run(&n);
  /* bob cannot decrypt it: he asks alice for it again, with a placeholder
   * where it belongs; alice never sent that id, so she refuses */
  CHECK(ev_count(b, WHISPER_EV_ERROR) == 0 && ev_count(b, WHISPER_EV_MESSAGE) == 0);
  const rec_event *rq = ev_find(b, WHISPER_EV_RETRY, 0);
  CHECK(rq && rq->status == WHISPER_RETRY_ASKED && strcmp(rq->from, "alice") == 0 &&
        memcmp(rq->id, junk_id, 16) == 0);
  CHECK(history_count(b, "alice") == hist + 1);
  CHECK(ev_count(a, WHISPER_EV_REFUSED) == 1 && ev_count(a, WHISPER_EV_RETRY) == 0);
  /* answers to requests never made are ignored */
  Whisper__Sync__Frame ok = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Ok okb = WHISPER__SYNC__OK__INIT;
  ok.has_version = ok.has_id = 1;
  ok.version = 1;
  ok.id = 123456;
  ok.body_case = WHISPER__SYNC__FRAME__BODY_OK;
  ok.ok = &okb;
  len = whisper__sync__frame__pack(&ok, buf);
  CHECK_RC(whisper_client_receive(b->cl, buf, len, n.now), WHISPER_OK);
  /* and the engine works on */
  ev_clear(b);
  send_text(&n, a, "bob", "still fine", NULL);
  net_run(&n);
  CHECK(ev_messages(b, "still fine") == 1);
  net_close(&n);
}


static void test_prekeys_and_refusals(void) {
  net n;
  net_open(&n);
  node *a = account_new(&n, "alice", 0);
  uint32_t before = 0, after = 0;
  CHECK_RC(whisper_prekeys_count(a->ctx, &before), WHISPER_OK);
  CHECK(before == 10);
  char name[16];
  for (int i = 0; i < 7; i++) {
    snprintf(name, sizeof name, "p%d", i);
    node *p = account_new(&n, name, 0);
    send_text(&n, p, "alice", "hi", NULL);
    net_run(&n);
  }
  CHECK(ev_messages(a, "hi") == 7);
  /* 7 of 10 used, the server ran low: a new batch went up */
  CHECK_RC(whisper_prekeys_count(a->ctx, &after), WHISPER_OK);
  CHECK(after == 13);
  node *q = account_new(&n, "q", 0);
  send_text(&n, q, "alice", "still a prekey", NULL);
  net_run(&n);
  CHECK(ev_messages(a, "still a prekey") == 1);
  /* an unknown account: an error for that message, the others go on */
  ev_clear(a);
  uint8_t id[16];
  send_text(&n, a, "nobody", "lost", id);
  send_text(&n, a, "q", "found", NULL);
  net_run(&n);
  const rec_event *e = ev_find(a, WHISPER_EV_ERROR, 0);
  CHECK(e && e->server_code == 6 && memcmp(e->id, id, 16) == 0);
  CHECK(ev_messages(q, "found") == 1);
  net_close(&n);
}

static void test_api_checks(void) {
  tdev d;
  tdev_open(&d, 3);
  /* account names as the engine and the server take them */
  char name[WHISPER_ACCOUNT_NAME_MAX + 2];
  memset(name, 'a', sizeof name - 1);
  name[WHISPER_ACCOUNT_NAME_MAX] = 0;
  CHECK_RC(whisper_account_name_check(name), WHISPER_OK); /* 64 bytes */
  name[WHISPER_ACCOUNT_NAME_MAX] = 'a';
  name[WHISPER_ACCOUNT_NAME_MAX + 1] = 0;
  CHECK_RC(whisper_account_name_check(name), WHISPER_EINVAL); /* 65 */
  CHECK_RC(whisper_account_name_check("a.b_c-9"), WHISPER_OK);
  CHECK_RC(whisper_account_name_check(""), WHISPER_EINVAL);
  CHECK_RC(whisper_account_name_check(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_account_name_check("Alice"), WHISPER_EINVAL);
  CHECK_RC(whisper_account_name_check("al ice"), WHISPER_EINVAL);
  whisper_client *c = NULL;
  CHECK_RC(whisper_client_new(&c, d.ctx, NULL), WHISPER_ESTATE); /* no identity */
  CHECK_RC(whisper_identity_generate(d.ctx, "Not An Account", 1, 0, T0), WHISPER_OK);
  CHECK_RC(whisper_client_new(&c, d.ctx, NULL), WHISPER_ESTATE);
  tdev_close(&d);
  tdev_new(&d, "carol", 1, 4);
  CHECK_RC(whisper_client_new(&c, d.ctx, NULL), WHISPER_OK);
  uint8_t id[16];
  CHECK_RC(whisper_client_send(c, "carol", (const uint8_t *)"x", 1, T0, id), WHISPER_EINVAL);
  CHECK_RC(whisper_client_send(c, "Bad Name", (const uint8_t *)"x", 1, T0, id), WHISPER_EINVAL);
  CHECK_RC(whisper_client_send(c, "dave", (const uint8_t *)"x", 1, T0, id), WHISPER_OK);
  CHECK(whisper_client_want_connect(c, T0));
  whisper_buf *b = NULL;
  CHECK(whisper_client_take_frame(c, &b) == 0);
  /* an attempt that never opened backs off as a closed connection does */
  whisper_client_disconnected(c, T0);
  CHECK(!whisper_client_want_connect(c, T0));
  CHECK(whisper_client_next_deadline(c) > T0);
  CHECK(whisper_client_want_connect(c, T0 + 60000));
  whisper_client_free(c);
  whisper_client_free(NULL);
  tdev_close(&d);
}

/* --- the signed prekey's rotation ------------------------------------------------------------- */

typedef struct spk_watch {
  node *who;
  int uploads;      /* UploadPrekeys with a signed prekey from `who` */
  uint32_t last_id; /* the last one's id */
} spk_watch;

static void spk_watch_fn(net *n, node *d, const uint8_t *frame, size_t len, void *arg) {
  (void)n;
  spk_watch *w = arg;
  if (d != w->who) return;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, len, frame);
  if (f && f->body_case == WHISPER__SYNC__FRAME__BODY_UPLOAD && f->upload->signed_) {
    w->uploads++;
    w->last_id = f->upload->signed_->signed_prekey_id;
  }
  if (f) whisper__sync__frame__free_unpacked(f, NULL);
}

/* The signed prekey ids in the Bundles the server sends (to anyone). */
static uint32_t served_spk;
static int spk_served_fn(net *n, node *d, uint8_t **frame, size_t *len, void *arg) {
  (void)n, (void)d, (void)arg;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, *len, *frame);
  if (f && f->body_case == WHISPER__SYNC__FRAME__BODY_BUNDLES)
    for (size_t i = 0; i < f->bundles->n_bundles; i++)
      if (f->bundles->bundles[i]->keys) served_spk = f->bundles->bundles[i]->keys->signed_prekey_id;
  if (f) whisper__sync__frame__free_unpacked(f, NULL);
  return 0;
}

/* Whether `d` still holds the signed prekey of `saved` (a bundle of its
 * from before): a PreKey message built on it by a stranger opens. */
static int spk_opens(node *d, const whisper_prekey_bundle_t *saved, uint64_t now) {
  static int k;
  char name[16];
  tdev z;
  whisper_buf *ct = NULL, *pt = NULL;
  int type = 0;
  snprintf(name, sizeof name, "zed%d", ++k);
  tdev_new(&z, name, 1, (uint8_t)(0x70 + k));
  CHECK_RC(whisper_session_start(z.ctx, d->name, d->device, saved, now), WHISPER_OK);
  CHECK_RC(whisper_session_encrypt(z.ctx, d->name, d->device, (const uint8_t *)"x", 1, now, &type, &ct),
           WHISPER_OK);
  int rc = ct ? whisper_session_decrypt(d->ctx, name, 1, type, ct->data, ct->len, &pt) : -1;
  whisper_buf_free(ct);
  whisper_buf_free(pt);
  tdev_close(&z);
  return rc;
}

static uint32_t spk_current(node *d) {
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(d->ctx, 0, &b), WHISPER_OK);
  return b.signed_prekey_id;
}

/* The engine replaces its signed prekey once it is older than the period
 * (at login, and on its timer while logged in) and uploads it, and the
 * server's bundles carry it from then on; a message built on the old one
 * before the rotation still opens (the grace); a server that hands out
 * another one than the device's current (a lost upload, a restore) gets
 * the current one at the next login. */
static void test_signed_prekey_rotation(void) {
  net n;
  net_open(&n);
  spk_watch w = {0};
  node *a = account_new(&n, "alice", 0);
  node *b = account_new(&n, "bob", 0);
  w.who = b;
  n.watch = spk_watch_fn;
  n.watch_arg = &w;
  n.tamper = spk_served_fn;
  CHECK(spk_current(b) == 1);
  whisper_prekey_bundle_t first = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(b->ctx, 0, &first), WHISPER_OK);
  /* alice starts a session on bob's bundle (signed prekey 1) while bob is away */
  b->offline = 1;
  node_cut(&n, b);
  send_text(&n, a, "bob", "built on the old key", NULL);
  net_run(&n);
  CHECK(served_spk == 1);
  a->offline = 1;
  node_cut(&n, a);
  /* eight days later bob logs in: a new signed prekey, uploaded, and the
   * message built on the old one opens */
  n.now += 8ULL * 24 * 3600 * 1000;
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(spk_current(b) == 2);
  CHECK(w.uploads == 1 && w.last_id == 2);
  CHECK(ev_messages(b, "built on the old key") == 1);
  CHECK(ev_count(b, WHISPER_EV_ERROR) == 0);
  /* the server hands out the new one; a new contact's first message opens */
  node *c = account_new(&n, "carol", 0);
  served_spk = 0;
  send_text(&n, c, "bob", "built on the new key", NULL);
  net_run(&n);
  CHECK(served_spk == 2);
  CHECK(ev_messages(b, "built on the new key") == 1);
  /* a login with nothing due uploads nothing */
  node_cut(&n, b);
  net_advance(&n, 2000);
  CHECK(b->conn != 0 && w.uploads == 1);
  /* the device's signed prekey changed without the server knowing (a
   * rotation whose upload was lost, a restored store): the login's Ok
   * names the server's one, and the engine uploads its own */
  b->offline = 1;
  node_cut(&n, b);
  CHECK_RC(whisper_signed_prekey_rotate(b->ctx, n.now, 0, 30ULL * 24 * 3600 * 1000, NULL), WHISPER_OK);
  CHECK(spk_current(b) == 3);
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(w.uploads == 2 && w.last_id == 3);
  CHECK(spk_current(b) == 3); /* nothing was due: uploaded, not rotated */
  node *e = account_new(&n, "erin", 0);
  served_spk = 0;
  send_text(&n, e, "bob", "after the restore", NULL);
  net_run(&n);
  CHECK(served_spk == 3);
  CHECK(ev_messages(b, "after the restore") == 1);
  /* on the timer while logged in: an engine with a 10-minute period */
  b->offline = 1;
  node_cut(&n, b);
  whisper_client_free(b->cl);
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 10;
  cfg.prekey_low = 5;
  cfg.signed_prekey_rotate_ms = 10 * 60 * 1000;
  CHECK_RC(whisper_client_new(&b->cl, b->ctx, &cfg), WHISPER_OK);
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(b->conn != 0 && w.uploads == 2);
  uint64_t due = whisper_client_next_deadline(b->cl);
  CHECK(due <= n.now + 10 * 60 * 1000);
  net_advance(&n, 11 * 60 * 1000);
  CHECK(spk_current(b) == 4);
  CHECK(w.uploads == 3 && w.last_id == 4);
  CHECK(ev_count(b, WHISPER_EV_ERROR) == 0);
  /* the first one, replaced 10 minutes ago, is still kept (30 days) ... */
  CHECK_RC(spk_opens(b, &first, n.now), WHISPER_OK);
  /* ... and gone at the first check after its grace */
  b->offline = 1;
  node_cut(&n, b);
  n.now += 31ULL * 24 * 3600 * 1000;
  b->offline = 0;
  net_advance(&n, 2000);
  CHECK(spk_current(b) == 5 && w.uploads == 4);
  CHECK(spk_opens(b, &first, n.now) != WHISPER_OK);
  /* a period under a minute is refused */
  whisper_client *bad = NULL;
  cfg.signed_prekey_rotate_ms = 59999;
  CHECK_RC(whisper_client_new(&bad, b->ctx, &cfg), WHISPER_EINVAL);
  net_close(&n);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-sync-test-%d", (int)getpid());
  mkdir(dbdir, 0700);
  test_api_checks();
  test_register_login();
  test_direct_two_by_two();
  test_offline_resume();
  test_lost_sent();
  test_restart_midstream();
  test_stale_devices();
  test_group();
  test_typing_presence();
  test_link();
  test_malformed();
  test_prekeys_and_refusals();
  test_signed_prekey_rotation();
  rmdir(dbdir);
  return test_done();
}

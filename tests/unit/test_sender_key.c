/* Sender keys: the wire sheet's exact bytes, libsignal's sender_key.json
 * steps and byte prefixes, and behaviour (order, duplicates, limits,
 * rotation, distribution through 1:1 sessions). */
#include "internal.h"
#include "storage.pb-c.h"
#include "test.h"

#define NOW TEST_NOW

static int gdec(tdev *d, const char *from, uint32_t dev_id, const whisper_buf *m, const char *want) {
  whisper_buf *pt = NULL;
  int rc = whisper_sender_key_decrypt(d->ctx, from, dev_id, m->data, m->len, &pt);
  if (rc == WHISPER_OK && want) CHECK(pt->len == strlen(want) && memcmp(pt->data, want, pt->len) == 0);
  whisper_buf_free(pt);
  return rc;
}

static const uint8_t KAT_UUID[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x41, 0xd1,
                                     0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

static void test_kat(void) {
  tdev a, b;
  whisper_buf *skdm, *m;
  tdev_new(&a, "alice", 1, 1);
  tdev_new(&b, "bob", 1, 2);
  /* chain id 0x12345678 = u32 0x2468acf0 >> 1, then chain key, then signing key */
  test_rng_push_hex(&a.rng, "2468acf0");
  test_rng_push_hex(&a.rng, "bfedc66b23bd1229018f7fb5c5ce23bc18b60138d0fe3604f2b11ce7548cb110");
  test_rng_push_hex(&a.rng, "80c9ddf773a470c0fa2091708560e446e7b1f3ce7bd48ab56cdadfc3f51c3d53");
  CHECK_RC(whisper_sender_key_generate(a.ctx, KAT_UUID, &skdm), WHISPER_OK);
  size_t n;
  uint8_t *want = unhex("330a106ba7b8109dad41d180b400c04fd430c810f8acd1910118002220bfedc66b23bd"
                        "1229018f7fb5c5ce23bc18b60138d0fe3604f2b11ce7548cb1102a2105f162cf01855081"
                        "ca4519ac25072c4f5a21fce12ca9092e2da99bfbae1689a223",
                        &n);
  CHECK(skdm->len == n && memcmp(skdm->data, want, n) == 0);
  free(want);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm->data, skdm->len), WHISPER_OK);
  const char *z = "7b483e32ed327f6583f9dbb329a0e7e115c5caefec0f5fa9d6a7a2fea71b0d2a"
                  "ca0edd551e0fdd70565793027ee97110f258edfb11150bf547a03dc793f335bf";
  const char *want_hex[2] = {
      "330a106ba7b8109dad41d180b400c04fd430c810f8acd19101180022100b02391164caa809e909d8ff9174"
      "1706f92b6f6c846324302204ef473f9eca1068ede6d6f97bcccf37ec9178e320c930fc2685df6b38f4deef"
      "3d0827218aef00f6f87f432ad19f81e2f81153102f6902",
      "330a106ba7b8109dad41d180b400c04fd430c810f8acd19101180122108156e49c17dd67fc1e60ecfe56c4"
      "3d6cf14a0b7229bd1a8cc9964d5c9a94088a01653188c8acca0b77a9e853cfde3b41b10cbc13526f08b9d6"
      "ca7d5c22efc5a177c9866561ae2efb11928cfe03b85008"};
  for (int i = 0; i < 2; i++) {
    char text[16];
    snprintf(text, sizeof text, "KAT group %d", i);
    test_rng_push_hex(&a.rng, z);
    CHECK_RC(whisper_sender_key_encrypt(a.ctx, KAT_UUID, (const uint8_t *)text, strlen(text), &m),
             WHISPER_OK);
    want = unhex(want_hex[i], &n);
    CHECK(m->len == n && memcmp(m->data, want, n) == 0);
    free(want);
    CHECK_RC(gdec(&b, "alice", 1, m, text), WHISPER_OK);
    whisper_buf_free(m);
  }
  /* a repeated create returns the current state (iteration 2 now) */
  whisper_buf *again;
  CHECK_RC(whisper_sender_key_generate(a.ctx, KAT_UUID, &again), WHISPER_OK);
  CHECK(again->len == skdm->len && memcmp(again->data, skdm->data, 17) == 0);
  CHECK(memcmp(again->data, skdm->data, again->len) != 0); /* iteration and chain key moved */
  whisper_buf_free(again);
  whisper_buf_free(skdm);
  tdev_close(&a);
  tdev_close(&b);
}

/* Installs a sending state (as libsignal's record held it) for `d`. */
static void install_own_state(tdev *d, const uint8_t uuid[16], uint32_t chain_id, const uint8_t ck[32],
                              const uint8_t pub[33], const uint8_t priv[32]) {
  Whisper__Store__SenderChainKey c = WHISPER__STORE__SENDER_CHAIN_KEY__INIT;
  Whisper__Store__SenderSigningKey s = WHISPER__STORE__SENDER_SIGNING_KEY__INIT;
  Whisper__Store__SenderKeyStateStructure st = WHISPER__STORE__SENDER_KEY_STATE_STRUCTURE__INIT;
  Whisper__Store__SenderKeyRecordStructure r = WHISPER__STORE__SENDER_KEY_RECORD_STRUCTURE__INIT;
  Whisper__Store__SenderKeyStateStructure *stp = &st;
  c.has_iteration = c.has_seed = 1;
  c.seed = (ProtobufCBinaryData){32, (uint8_t *)ck};
  s.has_public_key = s.has_private_key = 1;
  s.public_key = (ProtobufCBinaryData){33, (uint8_t *)pub};
  s.private_key = (ProtobufCBinaryData){32, (uint8_t *)priv};
  st.has_chain_id = st.has_message_version = 1;
  st.chain_id = chain_id;
  st.message_version = 3;
  st.sender_chain_key = &c;
  st.sender_signing_key = &s;
  r.n_sender_key_states = 1;
  r.sender_key_states = &stp;
  uint8_t buf[512], key[300];
  size_t len = whisper__store__sender_key_record_structure__pack(&r, buf);
  wh_addr a;
  wh_addr_make(d->ctx, &a, "alice", 1);
  memcpy(key, a.key, a.len);
  memcpy(key + a.len, uuid, 16);
  CHECK_RC(d->st->ops.put(d->st->user, WHISPER_REC_SENDER_KEY, key, a.len + 16, buf, len), WHISPER_OK);
}

static void test_vectors(void) {
  json_value *v = load_vector("sender_key.json");
  const json_value *sk = json_get(v, "skdm"), *msgs = json_get(v, "messages");
  const json_value *steps = json_get(v, "steps");
  tdev b, a;
  size_t n;
  tdev_new(&b, "bob", 1, 3);
  uint8_t *skdm = unhex(jstr(sk, "body_hex"), &n);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm, n), WHISPER_OK);
  /* processing the same SKDM again keeps the chain where it is */
  int ran = 0;
  for (size_t i = 0; steps && i < steps->count; i++) {
    const json_value *s = steps->items[i];
    const char *expect = jstr(s, "expect");
    size_t len;
    uint8_t *body;
    const char *want_pt = NULL;
    if (strcmp(jstr(s, "op"), "group_decrypt") == 0) {
      const json_value *m = msgs->items[ju32(s, "message")];
      body = unhex(jstr(m, "body_hex"), &len);
      want_pt = jstr(m, "plaintext_hex");
    } else {
      body = unhex(jstr(s, "body_hex"), &len);
    }
    whisper_buf *pt = NULL;
    int rc = whisper_sender_key_decrypt(b.ctx, "alice", 1, body, len, &pt);
    int want = strcmp(expect, "ok") == 0                  ? WHISPER_OK
               : strcmp(expect, "duplicate_message") == 0 ? WHISPER_EDUPLICATE
                                                          : WHISPER_EINVALIDSIG;
    if (rc != want) fprintf(stderr, "sender key step %zu: got %d want %d\n", i, rc, want);
    CHECK(rc == want);
    if (rc == WHISPER_OK) {
      size_t wl;
      uint8_t *w = unhex(want_pt, &wl);
      CHECK(pt->len == wl && memcmp(pt->data, w, wl) == 0);
      free(w);
    }
    whisper_buf_free(pt);
    free(body);
    if (i == 2) CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm, n), WHISPER_OK);
    ran++;
  }
  CHECK(ran == 14);
  free(skdm);

  /* a C sender holding libsignal's state reproduces every byte but the
   * randomised signature */
  tdev_new(&a, "alice", 1, 4);
  uint8_t uuid[16], ck[32], pub[33], priv[32];
  const char *u = jstr(v, "distribution_id");
  char hex[33];
  for (size_t i = 0, j = 0; u[i]; i++)
    if (u[i] != '-') hex[j++] = u[i], hex[j] = 0;
  unhex_to(uuid, 16, hex);
  unhex_to(ck, 32, jstr(sk, "chain_key_hex"));
  unhex_to(pub, 33, jstr(sk, "signing_key_public_hex"));
  unhex_to(priv, 32, jstr(sk, "signing_key_private_hex"));
  install_own_state(&a, uuid, ju32(sk, "chain_id"), ck, pub, priv);
  for (size_t i = 0; msgs && i < msgs->count; i++) {
    size_t pl, bl;
    uint8_t *ptext = unhex(jstr(msgs->items[i], "plaintext_hex"), &pl);
    uint8_t *want = unhex(jstr(msgs->items[i], "body_hex"), &bl);
    whisper_buf *m = NULL;
    CHECK_RC(whisper_sender_key_encrypt(a.ctx, uuid, ptext, pl, &m), WHISPER_OK);
    CHECK(m && m->len == bl && memcmp(m->data, want, bl - 64) == 0);
    /* and our signature verifies with libsignal's key: a fresh receiver
     * that processed libsignal's SKDM reads our message */
    free(ptext);
    free(want);
    whisper_buf_free(m);
  }
  json_free(v);
  tdev_close(&a);
  tdev_close(&b);
}

static const uint8_t G[16] = {0xd1, 0xb3, 0xc0, 0xde, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0x12, 0x34};

static void test_behaviour(void) {
  tdev a, b, c;
  whisper_buf *skdm, *m[40];
  tdev_new(&a, "alice", 1, 10);
  tdev_new(&b, "bob", 1, 11);
  tdev_new(&c, "carol", 2, 12);
  CHECK_RC(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)"x", 1, &m[0]), WHISPER_ENOSESSION);
  CHECK_RC(whisper_sender_key_generate(a.ctx, G, &skdm), WHISPER_OK);
  CHECK_RC(whisper_sender_key_process(c.ctx, "alice", 1, skdm->data, skdm->len), WHISPER_OK);
  char text[32];
  for (int i = 0; i < 40; i++) {
    snprintf(text, sizeof text, "group %d", i);
    CHECK_RC(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)text, strlen(text), &m[i]), WHISPER_OK);
  }
  /* no state for a message before it was processed */
  CHECK_RC(gdec(&b, "alice", 1, m[0], NULL), WHISPER_ENOSESSION);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm->data, skdm->len), WHISPER_OK);
  int order[] = {39, 5, 0, 20, 1, 38, 2, 3, 4};
  for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
    snprintf(text, sizeof text, "group %d", order[k]);
    CHECK_RC(gdec(&b, "alice", 1, m[order[k]], text), WHISPER_OK);
    CHECK_RC(gdec(&b, "alice", 1, m[order[k]], NULL), WHISPER_EDUPLICATE);
    CHECK_RC(gdec(&c, "alice", 1, m[order[k]], text), WHISPER_OK);
  }
  /* from another sender name: no state */
  CHECK_RC(gdec(&b, "mallory", 1, m[6], NULL), WHISPER_ENOSESSION);
  /* tampering: signature checked first */
  whisper_buf *bad = whisper_buf_new(m[6]->data, m[6]->len);
  bad->data[30] ^= 1;
  CHECK_RC(gdec(&b, "alice", 1, bad, NULL), WHISPER_EINVALIDSIG);
  CHECK_RC(gdec(&b, "alice", 1, m[6], "group 6"), WHISPER_OK);
  bad->data[0] = 0x43;
  CHECK_RC(gdec(&b, "alice", 1, bad, NULL), WHISPER_EINVALIDMSG);
  bad->len = 64;
  CHECK_RC(gdec(&b, "alice", 1, bad, NULL), WHISPER_EINVALIDMSG);
  whisper_buf_free(bad);
  uint8_t junk[100] = {0x33, 0xff, 0xff};
  whisper_buf *pt = NULL;
  CHECK_RC(whisper_sender_key_decrypt(b.ctx, "alice", 1, junk, sizeof junk, &pt), WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, junk, sizeof junk), WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm->data, 20), WHISPER_EINVALIDMSG);
  /* an SKDM claiming to come from this very device would replace its own
   * sending state: refused, and alice can still send */
  CHECK_RC(whisper_sender_key_process(a.ctx, "alice", 1, skdm->data, skdm->len), WHISPER_EINVAL);
  whisper_buf *still;
  CHECK_RC(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)"still mine", 10, &still), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, still, "still mine"), WHISPER_OK);
  whisper_buf_free(still);

  /* rotation: old messages still readable, new chain works for those given it */
  whisper_buf *skdm2, *r1;
  CHECK_RC(whisper_sender_key_rotate(a.ctx, G, &skdm2), WHISPER_OK);
  CHECK(memcmp(skdm2->data, skdm->data, skdm->len < skdm2->len ? skdm->len : skdm2->len) != 0);
  CHECK_RC(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)"after", 5, &r1), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, r1, NULL), WHISPER_ENOSESSION); /* bob has not got the new chain */
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm2->data, skdm2->len), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, r1, "after"), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, m[7], "group 7"), WHISPER_OK); /* the old chain is still kept */
  CHECK_RC(gdec(&c, "alice", 1, r1, NULL), WHISPER_ENOSESSION); /* carol left: she can't */
  whisper_buf_free(r1);
  whisper_buf_free(skdm2);
  for (int i = 0; i < 40; i++) whisper_buf_free(m[i]);
  whisper_buf_free(skdm);
  tdev_close(&a);
  tdev_close(&b);
  tdev_close(&c);
}

static whisper_buf *lim[25002];

static void test_limits(void) {
  tdev a, b;
  whisper_buf *skdm;
  tdev_new(&a, "alice", 1, 20);
  tdev_new(&b, "bob", 1, 21);
  CHECK_RC(whisper_sender_key_generate(a.ctx, G, &skdm), WHISPER_OK);
  CHECK_RC(whisper_sender_key_process(b.ctx, "alice", 1, skdm->data, skdm->len), WHISPER_OK);
  for (int i = 0; i < 25002; i++) CHECK(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)"y", 1, &lim[i]) == 0);
  CHECK_RC(gdec(&b, "alice", 1, lim[25001], NULL), WHISPER_ETOOFAR);
  CHECK_RC(gdec(&b, "alice", 1, lim[25000], "y"), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, lim[22999], NULL), WHISPER_EDUPLICATE);
  CHECK_RC(gdec(&b, "alice", 1, lim[23000], "y"), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, lim[24999], "y"), WHISPER_OK);
  CHECK_RC(gdec(&b, "alice", 1, lim[25001], "y"), WHISPER_OK);
  for (int i = 0; i < 25002; i++) whisper_buf_free(lim[i]);
  whisper_buf_free(skdm);
  tdev_close(&a);
  tdev_close(&b);
}

static void test_distribution(void) {
  tdev a, b1, b2, c;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  tdev_new(&a, "alice", 1, 30);
  tdev_new(&b1, "bob", 1, 31);
  tdev_new(&b2, "bob", 2, 32);
  tdev_new(&c, "carol", 1, 33);
  tdev *members[2] = {&b1, &b2};
  for (int i = 0; i < 2; i++) {
    CHECK_RC(whisper_bundle_generate(members[i]->ctx, 1, &bundle), WHISPER_OK);
    CHECK_RC(whisper_session_start(a.ctx, "bob", (uint32_t)(i + 1), &bundle, NOW), WHISPER_OK);
  }
  whisper_device_t devs[3] = {{"bob", 1}, {"bob", 2}, {"carol", 1}};
  whisper_envelope_t env[3] = {WHISPER_ENVELOPE_INIT};
  CHECK_RC(whisper_sender_key_distribute(a.ctx, G, devs, 3, NOW, env), WHISPER_OK);
  CHECK(env[0].status == WHISPER_OK && env[1].status == WHISPER_OK);
  CHECK(env[2].status == WHISPER_ENOSESSION && env[2].body == NULL); /* no session with carol */
  for (int i = 0; i < 2; i++) {
    /* a damaged envelope changes nothing; the real one sets up the chain */
    whisper_buf *bad = whisper_buf_new(env[i].body->data, env[i].body->len);
    bad->data[bad->len - 12] ^= 1;
    CHECK_RC(whisper_sender_key_receive_distribution(members[i]->ctx, "alice", 1, env[i].type, bad->data,
                                                bad->len),
             WHISPER_EINVALIDMSG);
    whisper_buf_free(bad);
    CHECK_RC(whisper_sender_key_receive_distribution(members[i]->ctx, "alice", 1, env[i].type,
                                                env[i].body->data, env[i].body->len),
             WHISPER_OK);
    whisper_buf_free(env[i].body);
  }
  /* a versioned array (docs/api.md): out[0].size below 1.0's is refused
   * before anything is written; a later caller's bigger element type is
   * stepped by its size, each element's size set, its newer field left alone */
  whisper_envelope_t small[3];
  memset(small, 0x5a, sizeof small);
  small[0].size = WHISPER_ENVELOPE_SIZE_1_0 - 1;
  CHECK_RC(whisper_sender_key_distribute(a.ctx, G, devs, 3, NOW, small), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(a.ctx), "WHISPER_ENVELOPE_INIT") != NULL);
  CHECK(small[0].status == 0x5a5a5a5a && small[1].size == (size_t)0x5a5a5a5a5a5a5a5aull);
  struct later_envelope {
    whisper_envelope_t e;
    uint64_t newer;
  } big[3];
  memset(big, 0x5a, sizeof big);
  big[0].e.size = sizeof big[0];
  CHECK_RC(whisper_sender_key_distribute(a.ctx, G, devs, 3, NOW, &big[0].e), WHISPER_OK);
  for (int i = 0; i < 3; i++) {
    CHECK(big[i].e.size == sizeof big[0] && big[i].newer == 0x5a5a5a5a5a5a5a5aull);
    if (i < 2) CHECK(big[i].e.status == WHISPER_OK && big[i].e.body && big[i].e.body->len > 0);
    else CHECK(big[i].e.status == WHISPER_ENOSESSION && big[i].e.body == NULL);
    whisper_buf_free(big[i].e.body);
  }
  whisper_buf *m;
  CHECK_RC(whisper_sender_key_encrypt(a.ctx, G, (const uint8_t *)"to all", 6, &m), WHISPER_OK);
  CHECK_RC(gdec(&b1, "alice", 1, m, "to all"), WHISPER_OK);
  CHECK_RC(gdec(&b2, "alice", 1, m, "to all"), WHISPER_OK);
  whisper_buf_free(m);
  /* an ordinary 1:1 message is not a distribution */
  int t;
  CHECK_RC(whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)"hi", 2, NOW, &t, &m), WHISPER_OK);
  CHECK_RC(whisper_sender_key_receive_distribution(b1.ctx, "alice", 1, t, m->data, m->len), WHISPER_EINVALIDMSG);
  whisper_buf *pt;
  CHECK_RC(whisper_session_decrypt(b1.ctx, "alice", 1, t, m->data, m->len, &pt), WHISPER_OK); /* unchanged */
  whisper_buf_free(pt);
  whisper_buf_free(m);
  tdev_close(&a);
  tdev_close(&b1);
  tdev_close(&b2);
  tdev_close(&c);
}

int main(void) {
  test_kat();
  test_vectors();
  test_behaviour();
  test_limits();
  test_distribution();
  return test_done();
}

/* 1:1 sessions: the wire sheet's known answers (exact bytes, both ways),
 * libsignal's transcript (tests/vectors/session_transcript.json), and the
 * behaviour of the ratchet and the record. */
#include "protocol/state.h"
#include "test.h"

#define NOW TEST_NOW

static void keypair_hex(whisper_keypair_t *kp, const char *priv_hex) {
  uint8_t priv[32];
  unhex_to(priv, 32, priv_hex);
  whisper_keypair_from_private(priv, kp);
}

static int send_to(tdev *from, const char *to, uint32_t to_dev, const char *text, int *type,
                   whisper_buf **out) {
  return whisper_session_encrypt(from->ctx, to, to_dev, (const uint8_t *)text, strlen(text), NOW,
                                 type, out);
}

/* Decrypts and checks the plaintext. */
static int recv_from(tdev *to, const char *from, uint32_t from_dev, int type, const whisper_buf *m,
                     const char *want) {
  whisper_buf *pt = NULL;
  int rc = whisper_session_decrypt(to->ctx, from, from_dev, type, m->data, m->len, &pt);
  if (rc == WHISPER_OK && want)
    CHECK(pt->len == strlen(want) && memcmp(pt->data, want, pt->len) == 0);
  whisper_buf_free(pt);
  return rc;
}

static void connect(tdev *a, const char *bname, tdev *b, uint32_t bdev) {
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(b->ctx, 1, &bundle), WHISPER_OK);
  CHECK_RC(whisper_session_start(a->ctx, bname, bdev, &bundle, NOW), WHISPER_OK);
}

/* --- the wire sheet's KAT: every byte ------------------------------------ */
static void test_kat(void) {
  tdev alice, bob;
  whisper_keypair_t ik_a, ik_b, spk, opk;
  uint8_t sig[64];
  tdev_open(&alice, 1);
  tdev_open(&bob, 2);
  keypair_hex(&ik_a, "480c667561506c2f741c55fd81a8a85a7d11461c3f5591b3bea389dadcc9f956");
  keypair_hex(&ik_b, "088aa42f16e8533b45e190091580fc8ca4a588919dab80a706f23b357c0b0365");
  keypair_hex(&spk, "580940dedd6cee7bd7e8b373db16366b51bb30e7ddc728f19c50ba0602dc1455");
  keypair_hex(&opk, "e863372285409086cb6dceed935c42f91ce120e6c3f7624cfc68598b0451a25a");
  unhex_to(sig, 64,
           "a316218f002564371c39259bd679f459a58cb7035bd2b606dfd58acb82d9aff3"
           "35c1638c9d1f2841290d9324cb3f0337ad9ebf83180a3baef20a9373e6ab0e0f");
  CHECK_RC(whisper_identity_import(alice.ctx, "alice", 1, 1111, &ik_a), WHISPER_OK);
  CHECK_RC(whisper_identity_import(bob.ctx, "bob", 1, 2222, &ik_b), WHISPER_OK);
  CHECK_RC(whisper_signed_prekey_import(bob.ctx, 1, &spk, sig, NOW), WHISPER_OK);
  CHECK_RC(whisper_prekey_import(bob.ctx, 2, &opk), WHISPER_OK);
  sig[0] ^= 1;
  CHECK_RC(whisper_signed_prekey_import(bob.ctx, 1, &spk, sig, NOW), WHISPER_EINVALIDSIG);
  sig[0] ^= 1;

  whisper_prekey_bundle_t b = {.size = sizeof b, .registration_id = 2222, .device_id = 1, .has_prekey = 1,
                               .prekey_id = 2, .signed_prekey_id = 1};
  memcpy(b.prekey, opk.pub, 33);
  memcpy(b.signed_prekey, spk.pub, 33);
  memcpy(b.signed_prekey_signature, sig, 64);
  memcpy(b.identity_key, ik_b.pub, 33);
  test_rng_push_hex(&alice.rng, "88414bc7f7f5c9ba93ef9ba105f6585869a470a6b4ac3625b6728b1c5bd49c71");
  test_rng_push_hex(&alice.rng, "e0dbbd076da9a72c2fb60192af3721577aa6d40ae62f2d7039f80aa9805c2f65");
  CHECK_RC(whisper_session_start(alice.ctx, "bob", 1, &b, NOW), WHISPER_OK);

  int type = 0;
  whisper_buf *m = NULL;
  size_t want_len;
  uint8_t *want = unhex(
      "340802122105ca6d70875e6df671991f4f0966651c6e8702869e0de340694135843d09ec73531a2105079cf7"
      "f549014fcd73d31921c55c521bfa15680eb47a5c830e1f680122d6da402242340a2105b05a13b84f5da4677b"
      "9d948afaddde9a9e23445fceba8468fd0eaa3d8111fc461000180022106b7d225d84e1dd7bdaf538d3bab23f"
      "0122534981edbe061628d7083001",
      &want_len);
  CHECK_RC(send_to(&alice, "bob", 1, "KAT hello", &type, &m), WHISPER_OK);
  CHECK(type == WHISPER_MSG_PREKEY);
  CHECK(m && m->len == 146 && want_len == 146 && memcmp(m->data, want, 146) == 0);
  free(want);

  test_rng_push_hex(&bob.rng, "708ae3609538ad5dbee2212fe24b3f90c40ae25ad404c56a9846fd8fb77d9b4c");
  CHECK_RC(recv_from(&bob, "alice", 1, type, m, "KAT hello"), WHISPER_OK);
  /* the one-time prekey is gone; the repeated message is a duplicate */
  CHECK_RC(recv_from(&bob, "alice", 1, type, m, NULL), WHISPER_EDUPLICATE);
  whisper_buf_free(m);

  want = unhex("340a2105e81962343ab6796e6877cccf52c29ed2eb111486f3ec06e02f94d941a420b33d10001800"
               "2210278e1334c525bc2f2f0e41860e2dda88c21ad7eec5232242",
               &want_len);
  CHECK_RC(send_to(&bob, "alice", 1, "KAT reply", &type, &m), WHISPER_OK);
  CHECK(type == WHISPER_MSG_WHISPER);
  CHECK(m && m->len == 66 && memcmp(m->data, want, 66) == 0);
  free(want);
  CHECK_RC(recv_from(&alice, "bob", 1, type, m, "KAT reply"), WHISPER_OK);
  whisper_buf_free(m);
  /* Alice has heard from Bob: she now sends SignalMessages */
  CHECK_RC(send_to(&alice, "bob", 1, "next", &type, &m), WHISPER_OK);
  CHECK(type == WHISPER_MSG_WHISPER);
  CHECK_RC(recv_from(&bob, "alice", 1, type, m, "next"), WHISPER_OK);
  whisper_buf_free(m);
  tdev_close(&alice);
  tdev_close(&bob);
}

/* --- libsignal's transcript ---------------------------------------------- */
static void test_transcript(void) {
  json_value *v = load_vector("session_transcript.json");
  const json_value *jb = json_get(v, "bob"), *msgs = json_get(v, "messages");
  const json_value *steps = json_get(v, "steps");
  tdev bob;
  whisper_keypair_t ik, spk, opk;
  uint8_t sig[64];
  tdev_open(&bob, 3);
  keypair_hex(&ik, jstr(json_get(jb, "identity_key"), "private_hex"));
  const json_value *js = json_get(jb, "signed_prekey"), *jo = json_get(jb, "one_time_prekey");
  keypair_hex(&spk, jstr(js, "private_hex"));
  keypair_hex(&opk, jstr(jo, "private_hex"));
  unhex_to(sig, 64, jstr(js, "signature_hex"));
  CHECK_RC(whisper_identity_import(bob.ctx, "bob", 1, ju32(jb, "registration_id"), &ik), WHISPER_OK);
  CHECK_RC(whisper_signed_prekey_import(bob.ctx, ju32(js, "id"), &spk, sig, NOW), WHISPER_OK);
  CHECK_RC(whisper_prekey_import(bob.ctx, ju32(jo, "id"), &opk), WHISPER_OK);
  /* Bob's first ratchet key, as libsignal's Bob made it */
  test_rng_push_hex(&bob.rng, jstr(json_get(jb, "first_ratchet_key"), "private_hex"));

  int ran = 0;
  for (size_t i = 0; steps && i < steps->count; i++) {
    const json_value *s = steps->items[i];
    const char *op = jstr(s, "op"), *expect = jstr(s, "expect");
    uint8_t *body;
    size_t len;
    int type;
    const char *want_pt = NULL;
    if (strcmp(op, "decrypt") == 0) {
      const json_value *m = msgs->items[ju32(s, "message")];
      body = unhex(jstr(m, "body_hex"), &len);
      type = ju32(m, "type_number");
      want_pt = jstr(m, "plaintext_hex");
    } else {
      body = unhex(jstr(s, "body_hex"), &len);
      type = strcmp(jstr(s, "type"), "prekey") == 0 ? WHISPER_MSG_PREKEY : WHISPER_MSG_WHISPER;
    }
    whisper_buf *pt = NULL;
    int rc = whisper_session_decrypt(bob.ctx, "alice", 1, type, body, len, &pt);
    int want_rc = strcmp(expect, "ok") == 0                  ? WHISPER_OK
                  : strcmp(expect, "duplicate_message") == 0 ? WHISPER_EDUPLICATE
                                                             : WHISPER_EINVALIDMSG;
    if (rc != want_rc) fprintf(stderr, "transcript step %zu: got %d want %d\n", i, rc, want_rc);
    CHECK(rc == want_rc);
    if (rc == WHISPER_OK) {
      size_t wl;
      uint8_t *w = unhex(want_pt, &wl);
      CHECK(pt->len == wl && memcmp(pt->data, w, wl) == 0);
      free(w);
    }
    whisper_buf_free(pt);
    free(body);
    if (i == 0) {
      /* libsignal's Bob answered right after this step: our Bob, with the
       * same ratchet key, must produce the very same bytes */
      const json_value *reply = json_get(v, "bob_reply");
      size_t pl, bl;
      uint8_t *ptext = unhex(jstr(reply, "plaintext_hex"), &pl);
      uint8_t *want = unhex(jstr(reply, "body_hex"), &bl);
      whisper_buf *out = NULL;
      int reply_type = 0;
      CHECK_RC(whisper_session_encrypt(bob.ctx, "alice", 1, ptext, pl, NOW, &reply_type, &out),
               WHISPER_OK);
      CHECK(reply_type == WHISPER_MSG_WHISPER);
      CHECK(out && out->len == bl && memcmp(out->data, want, bl) == 0);
      whisper_buf_free(out);
      free(ptext);
      free(want);
    }
    ran++;
  }
  CHECK(ran == 18);

  json_free(v);
  tdev_close(&bob);
}

/* --- behaviour ------------------------------------------------------------- */
static void test_conversation(void) {
  tdev a, b;
  tdev_new(&a, "alice", 1, 10);
  tdev_new(&b, "bob", 7, 11);
  connect(&a, "bob", &b, 7);
  int has = 0;
  CHECK_RC(whisper_session_exists(a.ctx, "bob", 7, NOW, &has), WHISPER_OK);
  CHECK(has == 1);
  CHECK_RC(whisper_session_exists(b.ctx, "alice", 1, NOW, &has), WHISPER_OK);
  CHECK(has == 0);
  char text[64];
  for (int i = 0; i < 60; i++) {
    tdev *from = i % 3 == 2 ? &b : &a, *to = from == &a ? &b : &a;
    const char *to_name = to == &b ? "bob" : "alice", *from_name = from == &a ? "alice" : "bob";
    uint32_t to_dev = to == &b ? 7 : 1, from_dev = from == &a ? 1 : 7;
    whisper_buf *m;
    int type;
    snprintf(text, sizeof text, "message %d", i);
    CHECK_RC(send_to(from, to_name, to_dev, text, &type, &m), WHISPER_OK);
    if (i == 0) CHECK(type == WHISPER_MSG_PREKEY);
    if (i > 2) CHECK(type == WHISPER_MSG_WHISPER);
    CHECK_RC(recv_from(to, from_name, from_dev, type, m, text), WHISPER_OK);
    whisper_buf_free(m);
  }
  /* an empty message and a large one */
  whisper_buf *m, *pt;
  int type;
  CHECK_RC(whisper_session_encrypt(a.ctx, "bob", 7, NULL, 0, NOW, &type, &m), WHISPER_OK);
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, type, m->data, m->len, &pt), WHISPER_OK);
  CHECK(pt->len == 0);
  whisper_buf_free(pt);
  whisper_buf_free(m);
  size_t big = 1 << 20;
  uint8_t *blob = malloc(big);
  for (size_t i = 0; i < big; i++) blob[i] = (uint8_t)(i * 7);
  CHECK_RC(whisper_session_encrypt(b.ctx, "alice", 1, blob, big, NOW, &type, &m), WHISPER_OK);
  CHECK_RC(whisper_session_decrypt(a.ctx, "bob", 7, type, m->data, m->len, &pt), WHISPER_OK);
  CHECK(pt->len == big && memcmp(pt->data, blob, big) == 0);
  whisper_buf_free(pt);
  whisper_buf_free(m);
  free(blob);
  tdev_close(&a);
  tdev_close(&b);
}

/* Out of order across ratchet steps, duplicates, tampering: no state change. */
static void test_out_of_order_and_refusals(void) {
  tdev a, b;
  tdev_new(&a, "alice", 1, 20);
  tdev_new(&b, "bob", 1, 21);
  connect(&a, "bob", &b, 1);
  whisper_buf *m[30];
  int t[30];
  char text[32];
  /* chain 1: 0..9 from alice (prekey) */
  for (int i = 0; i < 10; i++) {
    snprintf(text, sizeof text, "a%d", i);
    CHECK_RC(send_to(&a, "bob", 1, text, &t[i], &m[i]), WHISPER_OK);
  }
  CHECK_RC(recv_from(&b, "alice", 1, t[5], m[5], "a5"), WHISPER_OK);
  whisper_buf *r;
  int rt;
  CHECK_RC(send_to(&b, "alice", 1, "reply", &rt, &r), WHISPER_OK);
  CHECK_RC(recv_from(&a, "bob", 1, rt, r, "reply"), WHISPER_OK);
  whisper_buf_free(r);
  /* chain 2: 10..19 from alice (whisper) */
  for (int i = 10; i < 20; i++) {
    snprintf(text, sizeof text, "a%d", i);
    CHECK_RC(send_to(&a, "bob", 1, text, &t[i], &m[i]), WHISPER_OK);
    CHECK(t[i] == WHISPER_MSG_WHISPER);
  }
  int order[] = {17, 3, 19, 0, 12, 9, 1, 10, 4, 18, 2, 15, 6, 11, 8, 16, 7, 13, 14};
  for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
    int i = order[k];
    snprintf(text, sizeof text, "a%d", i);
    /* a tampered copy first: refused, and nothing changes */
    whisper_buf *bad = whisper_buf_new(m[i]->data, m[i]->len);
    bad->data[bad->len - 12] ^= 0x40; /* inside the ciphertext or the inner MAC */
    CHECK_RC(recv_from(&b, "alice", 1, t[i], bad, NULL), WHISPER_EINVALIDMSG);
    whisper_buf_free(bad);
    CHECK_RC(recv_from(&b, "alice", 1, t[i], m[i], text), WHISPER_OK);
    CHECK_RC(recv_from(&b, "alice", 1, t[i], m[i], NULL), WHISPER_EDUPLICATE);
  }
  /* malformed */
  uint8_t junk[40] = {0x34, 1, 2, 3};
  whisper_buf *pt = NULL;
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, WHISPER_MSG_WHISPER, junk, sizeof junk, &pt),
           WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, WHISPER_MSG_PREKEY, junk, sizeof junk, &pt),
           WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, WHISPER_MSG_WHISPER, junk, 3, &pt),
           WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, 9, junk, 3, &pt), WHISPER_EINVAL);
  junk[0] = 0x24; /* too old */
  CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, WHISPER_MSG_WHISPER, m[12]->data, 3, &pt),
           WHISPER_EINVALIDMSG);
  whisper_buf *old = whisper_buf_new(m[12]->data, m[12]->len);
  old->data[0] = 0x24;
  CHECK_RC(recv_from(&b, "alice", 1, WHISPER_MSG_WHISPER, old, NULL), WHISPER_EINVALIDMSG);
  old->data[0] = 0x54; /* unrecognized */
  CHECK_RC(recv_from(&b, "alice", 1, WHISPER_MSG_WHISPER, old, NULL), WHISPER_EINVALIDMSG);
  whisper_buf_free(old);
  CHECK_RC(whisper_session_decrypt(b.ctx, "carol", 1, WHISPER_MSG_WHISPER, m[12]->data,
                                   m[12]->len, &pt),
           WHISPER_ENOSESSION);
  /* the conversation goes on after all of that */
  CHECK_RC(send_to(&b, "alice", 1, "still here", &rt, &r), WHISPER_OK);
  CHECK_RC(recv_from(&a, "bob", 1, rt, r, "still here"), WHISPER_OK);
  whisper_buf_free(r);
  for (int i = 0; i < 20; i++) whisper_buf_free(m[i]);
  tdev_close(&a);
  tdev_close(&b);
}

/* A jump of exactly 25000 is accepted, 25001 refused; 2000 keys kept. */
static whisper_buf *limit_msgs[25002];
static int limit_types[25002];

static void test_limits(void) {
  tdev a, b;
  whisper_buf **msgs = limit_msgs;
  int *types = limit_types;
  /* Bob's chain is at index 0: counter 25001 is too far, 25000 is not */
  tdev_new(&a, "alice", 1, 32);
  tdev_new(&b, "bob", 1, 33);
  connect(&a, "bob", &b, 1);
  for (int i = 0; i < 25002; i++) CHECK(send_to(&a, "bob", 1, "y", &types[i], &msgs[i]) == 0);
  CHECK_RC(recv_from(&b, "alice", 1, types[25001], msgs[25001], NULL), WHISPER_ETOOFAR);
  CHECK_RC(recv_from(&b, "alice", 1, types[25000], msgs[25000], "y"), WHISPER_OK);
  /* now at 25001: the newest 2000 skipped keys (23000..24999) are kept */
  CHECK_RC(recv_from(&b, "alice", 1, types[22999], msgs[22999], NULL), WHISPER_EDUPLICATE);
  CHECK_RC(recv_from(&b, "alice", 1, types[23000], msgs[23000], "y"), WHISPER_OK);
  CHECK_RC(recv_from(&b, "alice", 1, types[24999], msgs[24999], "y"), WHISPER_OK);
  CHECK_RC(recv_from(&b, "alice", 1, types[25001], msgs[25001], "y"), WHISPER_OK);
  for (int i = 0; i < 25002; i++) whisper_buf_free(msgs[i]);
  tdev_close(&a);
  tdev_close(&b);
}

static void test_simultaneous_initiation(void) {
  tdev a, b;
  whisper_buf *ma, *mb, *m;
  int ta, tb, t;
  tdev_new(&a, "alice", 1, 40);
  tdev_new(&b, "bob", 1, 41);
  connect(&a, "bob", &b, 1);
  connect(&b, "alice", &a, 1);
  CHECK_RC(send_to(&a, "bob", 1, "hi from a", &ta, &ma), WHISPER_OK);
  CHECK_RC(send_to(&b, "alice", 1, "hi from b", &tb, &mb), WHISPER_OK);
  CHECK(ta == WHISPER_MSG_PREKEY && tb == WHISPER_MSG_PREKEY);
  CHECK_RC(recv_from(&b, "alice", 1, ta, ma, "hi from a"), WHISPER_OK);
  CHECK_RC(recv_from(&a, "bob", 1, tb, mb, "hi from b"), WHISPER_OK);
  whisper_buf_free(ma);
  whisper_buf_free(mb);
  /* both now talk on the sessions the other one started, and converge */
  for (int i = 0; i < 6; i++) {
    tdev *from = i % 2 ? &b : &a, *to = i % 2 ? &a : &b;
    CHECK_RC(send_to(from, i % 2 ? "alice" : "bob", 1, "converge", &t, &m), WHISPER_OK);
    CHECK_RC(recv_from(to, i % 2 ? "bob" : "alice", 1, t, m, "converge"), WHISPER_OK);
    whisper_buf_free(m);
  }
  CHECK_RC(send_to(&a, "bob", 1, "done", &t, &m), WHISPER_OK);
  CHECK(t == WHISPER_MSG_WHISPER);
  CHECK_RC(recv_from(&b, "alice", 1, t, m, "done"), WHISPER_OK);
  whisper_buf_free(m);
  tdev_close(&a);
  tdev_close(&b);
}

static void test_identity_change(void) {
  tdev a, b, b2;
  whisper_buf *m;
  int t;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  uint8_t key[33];
  tdev_new(&a, "alice", 1, 50);
  tdev_new(&b, "bob", 1, 51);
  connect(&a, "bob", &b, 1);
  CHECK_RC(send_to(&a, "bob", 1, "one", &t, &m), WHISPER_OK);
  CHECK_RC(recv_from(&b, "alice", 1, t, m, "one"), WHISPER_OK);
  whisper_buf_free(m);
  /* bob reinstalls: a new identity under the same address */
  tdev_new(&b2, "bob", 1, 52);
  CHECK_RC(whisper_bundle_generate(b2.ctx, 1, &bundle), WHISPER_OK);
  CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &bundle, NOW), WHISPER_EUNTRUSTED);
  /* bob2 starts a session with alice: alice refuses the prekey message */
  connect(&b2, "alice", &a, 1);
  CHECK_RC(send_to(&b2, "alice", 1, "new me", &t, &m), WHISPER_OK);
  CHECK_RC(recv_from(&a, "bob", 1, t, m, NULL), WHISPER_EUNTRUSTED);
  /* the old session still works for alice: the refusal changed nothing */
  whisper_identity_get(b.ctx, key, NULL, NULL, NULL);
  uint8_t seen[33];
  CHECK_RC(whisper_identity_remote(a.ctx, "bob", 1, seen), WHISPER_OK);
  CHECK(memcmp(seen, key, 33) == 0);
  whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;
  CHECK_RC(whisper_identity_info(a.ctx, "bob", 1, &info), WHISPER_OK);
  CHECK(memcmp(info.key, key, 33) == 0 && info.changed == 0 && info.changed_at_ms == 0);
  CHECK_RC(whisper_identity_info(a.ctx, "nobody", 1, &info), WHISPER_ENOTFOUND);
  /* trust the new key: now it works, and the change is recorded with its
   * time; trusting the same key again is no new change */
  whisper_identity_get(b2.ctx, key, NULL, NULL, NULL);
  CHECK_RC(whisper_identity_trust_at(a.ctx, "bob", 1, key, 33, NOW + 777), WHISPER_OK);
  CHECK_RC(whisper_identity_trust_at(a.ctx, "bob", 1, key, 33, NOW + 999), WHISPER_OK);
  CHECK_RC(whisper_identity_info(a.ctx, "bob", 1, &info), WHISPER_OK);
  CHECK(memcmp(info.key, key, 33) == 0 && info.changed == 1 && info.changed_at_ms == NOW + 777);
  /* a versioned struct (docs/api.md): a size below 1.0's is refused and
   * nothing is written; a later caller's bigger struct is filled up to the
   * fields the library knows, and its newer ones are left alone */
  whisper_identity_info_t old_info;
  memset(&old_info, 0x5a, sizeof old_info);
  old_info.size = 0;
  CHECK_RC(whisper_identity_info(a.ctx, "bob", 1, &old_info), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(a.ctx), "WHISPER_IDENTITY_INFO_INIT") != NULL);
  old_info.size = WHISPER_IDENTITY_INFO_SIZE_1_0 - 1;
  CHECK_RC(whisper_identity_info(a.ctx, "bob", 1, &old_info), WHISPER_EINVAL);
  CHECK(old_info.key[0] == 0x5a && old_info.changed == 0x5a5a5a5a);
  struct later_info {
    whisper_identity_info_t info;
    uint64_t newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.info.size = sizeof later;
  CHECK_RC(whisper_identity_info(a.ctx, "bob", 1, &later.info), WHISPER_OK);
  CHECK(later.info.size == sizeof later && memcmp(later.info.key, key, 33) == 0);
  CHECK(later.info.changed == 1 && later.info.changed_at_ms == NOW + 777 &&
        later.newer == 0x5a5a5a5a5a5a5a5aull);
  CHECK_RC(recv_from(&a, "bob", 1, t, m, "new me"), WHISPER_OK);
  whisper_buf_free(m);
  /* and encrypting on the old session to the old key is now refused */
  /* (alice's current session is the one bob2 started, with bob2's key) */
  CHECK_RC(send_to(&a, "bob", 1, "hello again", &t, &m), WHISPER_OK);
  CHECK_RC(recv_from(&b2, "alice", 1, t, m, "hello again"), WHISPER_OK);
  whisper_buf_free(m);
  /* trust for all devices of a name, including unseen ones */
  tdev c, c2;
  tdev_new(&c, "carol", 3, 53);
  tdev_new(&c2, "carol", 3, 54);
  connect(&a, "carol", &c, 3);
  CHECK_RC(whisper_bundle_generate(c2.ctx, 0, &bundle), WHISPER_OK);
  CHECK(bundle.has_prekey == 0);
  CHECK_RC(whisper_session_start(a.ctx, "carol", 3, &bundle, NOW), WHISPER_EUNTRUSTED);
  CHECK_RC(whisper_identity_trust(a.ctx, "carol", WHISPER_ALL_DEVICES, bundle.identity_key, 33),
           WHISPER_OK);
  CHECK_RC(whisper_session_start(a.ctx, "carol", 3, &bundle, NOW), WHISPER_OK);
  /* a first name-wide decision is no change; replacing it is, without a
   * time when none was given */
  CHECK_RC(whisper_identity_info(a.ctx, "carol", 3, &info), WHISPER_OK);
  CHECK(memcmp(info.key, bundle.identity_key, 33) == 0 && info.changed == 0);
  CHECK_RC(whisper_identity_trust(a.ctx, "carol", WHISPER_ALL_DEVICES, key, 33), WHISPER_OK);
  CHECK_RC(whisper_identity_info(a.ctx, "carol", 7, &info), WHISPER_OK);
  CHECK(memcmp(info.key, key, 33) == 0 && info.changed == 1 && info.changed_at_ms == 0);
  CHECK_RC(whisper_identity_trust_at(a.ctx, "carol", WHISPER_ALL_DEVICES, bundle.identity_key, 33,
                                     NOW + 5),
           WHISPER_OK);
  CHECK_RC(whisper_identity_info(a.ctx, "carol", 3, &info), WHISPER_OK);
  CHECK(info.changed == 1 && info.changed_at_ms == NOW + 5);
  CHECK_RC(whisper_identity_trust(a.ctx, "carol", 3, bundle.identity_key, 32), WHISPER_EINVALIDKEY);
  /* name-wide trust pins the key for every device: a device still known
   * by another key, and an unseen device with another key, are refused */
  tdev d9, d5, d7;
  whisper_prekey_bundle_t b5 = WHISPER_PREKEY_BUNDLE_INIT, b7 = WHISPER_PREKEY_BUNDLE_INIT;
  tdev_new(&d9, "dave", 9, 55);
  tdev_new(&d5, "dave", 5, 56);
  tdev_new(&d7, "dave", 7, 57);
  connect(&a, "dave", &d9, 9); /* dave.9 first seen with its own key */
  CHECK_RC(whisper_bundle_generate(d5.ctx, 1, &b5), WHISPER_OK);
  CHECK_RC(whisper_bundle_generate(d7.ctx, 1, &b7), WHISPER_OK);
  CHECK_RC(whisper_identity_trust(a.ctx, "dave", WHISPER_ALL_DEVICES, b5.identity_key, 33),
           WHISPER_OK);
  CHECK_RC(send_to(&a, "dave", 9, "old key", &t, &m), WHISPER_EUNTRUSTED);
  CHECK_RC(whisper_session_start(a.ctx, "dave", 7, &b7, NOW), WHISPER_EUNTRUSTED);
  CHECK_RC(whisper_session_start(a.ctx, "dave", 5, &b5, NOW), WHISPER_OK);
  /* a later decision for one device wins over the name-wide one */
  CHECK_RC(whisper_identity_trust(a.ctx, "dave", 7, b7.identity_key, 33), WHISPER_OK);
  CHECK_RC(whisper_session_start(a.ctx, "dave", 7, &b7, NOW), WHISPER_OK);
  tdev_close(&d9);
  tdev_close(&d5);
  tdev_close(&d7);
  /* a bad signature in a bundle */
  CHECK_RC(whisper_bundle_generate(c2.ctx, 1, &bundle), WHISPER_OK);
  bundle.signed_prekey_signature[5] ^= 1;
  CHECK_RC(whisper_session_start(a.ctx, "carol", 3, &bundle, NOW), WHISPER_EINVALIDSIG);
  bundle.signed_prekey_signature[5] ^= 1;
  bundle.prekey[0] = 6;
  CHECK_RC(whisper_session_start(a.ctx, "carol", 3, &bundle, NOW), WHISPER_EINVALIDKEY);
  tdev_close(&a);
  tdev_close(&b);
  tdev_close(&b2);
  tdev_close(&c);
  tdev_close(&c2);
}

static void test_expiry_and_devices(void) {
  tdev a, b1, b2;
  whisper_buf *m;
  int t, has;
  tdev_new(&a, "alice", 1, 60);
  tdev_new(&b1, "bob", 1, 61);
  tdev_new(&b2, "bob", 2, 62);
  connect(&a, "bob", &b1, 1);
  connect(&a, "bob", &b2, 2);
  uint64_t day = 86400000ULL;
  /* exactly 30 days: still fine; past it: no session */
  CHECK_RC(whisper_session_exists(a.ctx, "bob", 1, NOW + 30 * day, &has), WHISPER_OK);
  CHECK(has == 1);
  CHECK_RC(whisper_session_exists(a.ctx, "bob", 1, NOW + 30 * day + 1000, &has), WHISPER_OK);
  CHECK(has == 0);
  CHECK_RC(whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)"x", 1, NOW + 31 * day, &t, &m),
           WHISPER_ENOSESSION);
  /* two devices of one name are two sessions */
  for (int d = 1; d <= 2; d++) {
    tdev *bd = d == 1 ? &b1 : &b2;
    CHECK_RC(send_to(&a, "bob", (uint32_t)d, d == 1 ? "to one" : "to two", &t, &m), WHISPER_OK);
    CHECK_RC(recv_from(bd, "alice", 1, t, m, d == 1 ? "to one" : "to two"), WHISPER_OK);
    whisper_buf_free(m);
    CHECK_RC(send_to(bd, "alice", 1, "back", &t, &m), WHISPER_OK);
    CHECK_RC(recv_from(&a, "bob", (uint32_t)d, t, m, "back"), WHISPER_OK);
    /* a message from device 1 presented as device 2's fails */
    if (d == 2) {
      CHECK_RC(recv_from(&a, "bob", 1, t, m, NULL), WHISPER_EINVALIDMSG);
    }
    whisper_buf_free(m);
  }
  /* argument checks */
  CHECK_RC(whisper_session_encrypt(a.ctx, "", 1, NULL, 0, NOW, &t, &m), WHISPER_EINVAL);
  CHECK_RC(whisper_session_encrypt(a.ctx, "bob", WHISPER_ALL_DEVICES, NULL, 0, NOW, &t, &m),
           WHISPER_EINVAL);
  CHECK(strlen(whisper_ctx_last_error(a.ctx)) > 0);
  CHECK_RC(whisper_identity_generate(a.ctx, "alice", 1, 0, NOW), WHISPER_ESTATE);
  tdev_close(&a);
  tdev_close(&b1);
  tdev_close(&b2);
}

static void test_bundle_wire(void) {
  tdev a, b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT, back = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *w;
  tdev_new(&a, "alice", 1, 70);
  tdev_new(&b, "bob", 1, 71);
  for (int with = 0; with <= 1; with++) {
    CHECK_RC(whisper_bundle_generate(b.ctx, with, &bundle), WHISPER_OK);
    CHECK_RC(whisper_bundle_encode(&bundle, &w), WHISPER_OK);
    CHECK_RC(whisper_bundle_decode(w->data, w->len, &back), WHISPER_OK);
    CHECK(memcmp(&back, &bundle, sizeof back) == 0);
    /* every truncation is refused cleanly, and leaves `back` zeroed */
    int refused = 0;
    for (size_t n = 0; n < w->len; n++)
      if (whisper_bundle_decode(w->data, n, &back) != WHISPER_OK) refused++;
    CHECK(refused == (int)w->len);
    static const whisper_prekey_bundle_t zero = WHISPER_PREKEY_BUNDLE_INIT;
    CHECK(memcmp(&back, &zero, sizeof back) == 0);
    whisper_buf_free(w);
  }
  /* a versioned struct (docs/api.md): a size below 1.0's is refused by
   * every function, changing nothing; a later caller's bigger struct is
   * read and filled up to the fields the library knows, its newer ones
   * left alone */
  {
    whisper_prekey_bundle_t old;
    uint32_t before = 0, after = 1;
    CHECK_RC(whisper_prekeys_count(b.ctx, &before), WHISPER_OK);
    memset(&old, 0x5a, sizeof old);
    for (int k = 0; k < 2; k++) {
      old.size = k ? WHISPER_PREKEY_BUNDLE_SIZE_1_0 - 1 : 0;
      CHECK_RC(whisper_bundle_generate(b.ctx, 1, &old), WHISPER_EINVAL);
      CHECK(strstr(whisper_ctx_last_error(b.ctx), "WHISPER_PREKEY_BUNDLE_INIT") != NULL);
      CHECK(old.registration_id == 0x5a5a5a5a && old.identity_key[32] == 0x5a);
      CHECK_RC(whisper_bundle_encode(&bundle, &w), WHISPER_OK);
      CHECK_RC(whisper_bundle_decode(w->data, w->len, &old), WHISPER_EINVAL);
      CHECK(old.registration_id == 0x5a5a5a5a && old.identity_key[32] == 0x5a);
      whisper_buf *w2 = (whisper_buf *)1;
      CHECK_RC(whisper_bundle_encode(&old, &w2), WHISPER_EINVAL);
      CHECK(w2 == NULL);
      whisper_buf_free(w);
      CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &old, NOW), WHISPER_EINVAL);
      CHECK(strstr(whisper_ctx_last_error(a.ctx), "WHISPER_PREKEY_BUNDLE_INIT") != NULL);
    }
    /* no session was started by the refused calls */
    int exists = 1;
    CHECK_RC(whisper_session_exists(a.ctx, "bob", 1, NOW, &exists), WHISPER_OK);
    CHECK(exists == 0);
    CHECK_RC(whisper_prekeys_count(b.ctx, &after), WHISPER_OK);
    CHECK(after == before); /* and no one-time prekey was made */
    struct later_bundle {
      whisper_prekey_bundle_t b;
      uint8_t pq_prekey[40]; /* say, the post-quantum prekey */
      uint64_t newer;
    } later, later2;
    memset(&later, 0x5a, sizeof later);
    later.b.size = sizeof later;
    CHECK_RC(whisper_bundle_generate(b.ctx, 1, &later.b), WHISPER_OK);
    CHECK(later.b.size == sizeof later && later.b.device_id == 1 && later.b.has_prekey == 1);
    CHECK(later.pq_prekey[0] == 0x5a && later.pq_prekey[39] == 0x5a &&
          later.newer == 0x5a5a5a5a5a5a5a5aull);
    /* encode reads only the fields it knows; decode fills only those */
    CHECK_RC(whisper_bundle_encode(&later.b, &w), WHISPER_OK);
    memset(&later2, 0xa5, sizeof later2);
    later2.b.size = sizeof later2;
    CHECK_RC(whisper_bundle_decode(w->data, w->len, &later2.b), WHISPER_OK);
    CHECK(memcmp(&later2.b, &later.b, sizeof later.b) == 0);
    CHECK(later2.pq_prekey[0] == 0xa5 && later2.newer == 0xa5a5a5a5a5a5a5a5ull);
    /* a failed decode zeroes only the fields the library knows */
    CHECK_RC(whisper_bundle_decode(w->data, w->len - 1, &later2.b), WHISPER_EINVALIDMSG);
    CHECK(later2.b.size == sizeof later2 && later2.b.registration_id == 0 &&
          later2.b.identity_key[32] == 0);
    CHECK(later2.pq_prekey[0] == 0xa5 && later2.newer == 0xa5a5a5a5a5a5a5a5ull);
    whisper_buf_free(w);
    /* and an outgoing session starts from the bigger struct */
    CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &later.b, NOW), WHISPER_OK);
    CHECK_RC(whisper_session_exists(a.ctx, "bob", 1, NOW, &exists), WHISPER_OK);
    CHECK(exists == 1);
  }
  CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
  /* a key of the wrong type, and a short signature */
  bundle.identity_key[0] = 0x06;
  CHECK_RC(whisper_bundle_encode(&bundle, &w), WHISPER_OK);
  CHECK_RC(whisper_bundle_decode(w->data, w->len, &back), WHISPER_EINVALIDKEY);
  whisper_buf_free(w);
  CHECK_RC(whisper_bundle_decode(NULL, 0, NULL), WHISPER_EINVAL);
  tdev_close(&a);
  tdev_close(&b);
}

static void test_prekey_upkeep(void) {
  tdev a, b;
  whisper_prekey_bundle_t early = WHISPER_PREKEY_BUNDLE_INIT, late = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m;
  int t, rotated = -1;
  uint32_t count = 99;
  const uint64_t day = 86400000ULL;
  tdev_new(&a, "alice", 1, 80);
  tdev_new(&b, "bob", 1, 81);
  CHECK_RC(whisper_prekeys_count(b.ctx, &count), WHISPER_OK);
  CHECK(count == 0);
  CHECK_RC(whisper_prekeys_generate(b.ctx, 100, NULL), WHISPER_OK);
  CHECK_RC(whisper_bundle_generate(b.ctx, 1, &early), WHISPER_OK); /* makes one more */
  CHECK_RC(whisper_prekeys_count(b.ctx, &count), WHISPER_OK);
  CHECK(count == 101);
  /* young enough: nothing happens */
  CHECK_RC(whisper_signed_prekey_rotate(b.ctx, NOW + day, 2 * day, 30 * day, &rotated), WHISPER_OK);
  CHECK(rotated == 0);
  /* old: a new signed prekey, the old one kept for its grace */
  CHECK_RC(whisper_signed_prekey_rotate(b.ctx, NOW + 3 * day, 2 * day, 30 * day, &rotated), WHISPER_OK);
  CHECK(rotated == 1);
  CHECK_RC(whisper_bundle_generate(b.ctx, 0, &late), WHISPER_OK);
  CHECK(late.signed_prekey_id == early.signed_prekey_id + 1);
  CHECK(memcmp(late.signed_prekey, early.signed_prekey, 33) != 0);
  /* a session from the bundle fetched before the rotation still works */
  CHECK_RC(whisper_session_start(a.ctx, "bob", 1, &early, NOW), WHISPER_OK);
  CHECK_RC(send_to(&a, "bob", 1, "early bundle", &t, &m), WHISPER_OK);
  CHECK_RC(recv_from(&b, "alice", 1, t, m, "early bundle"), WHISPER_OK);
  whisper_buf_free(m);
  CHECK_RC(whisper_prekeys_count(b.ctx, &count), WHISPER_OK);
  CHECK(count == 100); /* the one-time prekey was consumed */
  /* past the grace, the old signed prekey is gone: a new PreKey message on it fails */
  tdev c;
  tdev_new(&c, "carol", 1, 82);
  CHECK_RC(whisper_session_start(c.ctx, "bob", 1, &early, NOW), WHISPER_OK);
  CHECK_RC(send_to(&c, "bob", 1, "too late", &t, &m), WHISPER_OK);
  CHECK_RC(whisper_signed_prekey_rotate(b.ctx, NOW + 40 * day, 2 * day, 30 * day, &rotated), WHISPER_OK);
  CHECK(rotated == 1);
  CHECK_RC(recv_from(&b, "carol", 1, t, m, NULL), WHISPER_EINVALIDMSG);
  whisper_buf_free(m);
  /* the current one and the one retired just now still work */
  whisper_prekey_bundle_t now_b = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(b.ctx, 1, &now_b), WHISPER_OK);
  CHECK(now_b.signed_prekey_id == late.signed_prekey_id + 1);
  tdev d;
  tdev_new(&d, "dave", 1, 83);
  CHECK_RC(whisper_session_start(d.ctx, "bob", 1, &late, NOW), WHISPER_OK);
  CHECK_RC(send_to(&d, "bob", 1, "retired but in grace", &t, &m), WHISPER_OK);
  CHECK_RC(recv_from(&b, "dave", 1, t, m, "retired but in grace"), WHISPER_OK);
  whisper_buf_free(m);
  tdev_close(&a);
  tdev_close(&b);
  tdev_close(&c);
  tdev_close(&d);
}

/* --- the record codec: the direct encoder gives protobuf-c's bytes ------- */

static uint64_t rnd_u64(void) {
  uint64_t v;
  randombytes_buf(&v, sizeof v);
  return v;
}

/* A value of a varint field: each length from 1 to 5 (10 for 64 bits) bytes, and 0. */
static uint64_t rnd_varint(int bits) {
  uint64_t v = rnd_u64();
  int k = (int)(rnd_u64() % (unsigned)(bits + 1));
  if (k == 0) return 0;
  v &= k >= 64 ? ~0ULL : ((1ULL << k) - 1);
  return v;
}

static void rnd_chain(wh_chain *c, uint32_t max_keys) {
  randombytes_buf(c->ratchet, sizeof c->ratchet);
  randombytes_buf(c->ck, sizeof c->ck);
  c->index = (uint32_t)rnd_varint(32);
  uint32_t n = max_keys ? (uint32_t)(rnd_u64() % (max_keys + 1)) : 0;
  for (uint32_t i = 0; i < n; i++) {
    wh_msgkey k;
    randombytes_buf(&k, sizeof k);
    k.index = (uint32_t)rnd_varint(32);
    CHECK(wh_chain_push_key(c, &k) == 0);
  }
}

static void rnd_state(wh_state *s) {
  memset(s, 0, sizeof *s);
  s->version = (uint32_t)rnd_varint(32);
  randombytes_buf(s->local_ik, sizeof s->local_ik);
  randombytes_buf(s->remote_ik, sizeof s->remote_ik);
  randombytes_buf(s->root, sizeof s->root);
  s->previous_counter = (uint32_t)rnd_varint(32);
  s->has_sender = rnd_u64() % 4 != 0;
  if (s->has_sender) {
    rnd_chain(&s->sender, 3);
    randombytes_buf(s->sender_priv, sizeof s->sender_priv);
  }
  s->nrecv = (uint32_t)(rnd_u64() % (WH_MAX_RECV_CHAINS + 1));
  for (uint32_t i = 0; i < s->nrecv; i++) rnd_chain(&s->recv[i], i == 0 ? 300 : 5);
  s->has_pending = rnd_u64() % 2;
  s->pending_has_prekey = rnd_u64() % 2;
  s->pending_prekey_id = (uint32_t)rnd_varint(32);
  s->pending_spk_id = (int32_t)(uint32_t)rnd_varint(32);
  if (rnd_u64() % 4 == 0) s->pending_spk_id = -1 - (int32_t)(rnd_u64() % 1000); /* 10 bytes */
  randombytes_buf(s->pending_base, sizeof s->pending_base);
  s->pending_ts = rnd_varint(64);
  s->remote_reg = (uint32_t)rnd_varint(32);
  s->local_reg = (uint32_t)rnd_varint(32);
  randombytes_buf(s->alice_base, sizeof s->alice_base);
  s->sender_gen = rnd_u64() % 3 == 0 ? 0 : rnd_varint(64);
}

static int bufs_equal(const whisper_buf *a, const whisper_buf *b) {
  return a && b && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_record_codec(void) {
  int neg = 0, keys = 0, gen0 = 0;
  for (int round = 0; round < 400; round++) {
    wh_record r, back;
    whisper_buf *mine = NULL, *pb = NULL, *again = NULL;
    memset(&r, 0, sizeof r);
    r.has_current = round % 7 != 0;
    if (r.has_current) rnd_state(&r.cur);
    neg += r.has_current && r.cur.has_pending && r.cur.pending_spk_id < 0;
    keys += r.has_current && r.cur.nrecv && r.cur.recv[0].nkeys > 128;
    gen0 += r.has_current && r.cur.sender_gen == 0;
    uint32_t narch = (uint32_t)(rnd_u64() % 4);
    if (round % 50 == 0) narch = WH_MAX_ARCHIVED;
    for (uint32_t i = 0; i < narch; i++) {
      wh_state st;
      rnd_state(&st);
      whisper_buf *e = NULL, *epb = NULL;
      CHECK_RC(wh_state_encode(&st, &e), WHISPER_OK);
      CHECK_RC(wh_state_encode_pb(&st, &epb), WHISPER_OK);
      CHECK(bufs_equal(e, epb));
      CHECK(e && e->len == wh_state_encoded_len(&st));
      whisper_buf_free(epb);
      wh_state_free(&st);
      r.archived[r.narchived++] = e;
    }
    CHECK_RC(wh_record_encode(&r, &mine), WHISPER_OK);
    CHECK_RC(wh_record_encode_pb(&r, &pb), WHISPER_OK);
    CHECK(bufs_equal(mine, pb));
    CHECK(mine && mine->len == wh_record_encoded_len(&r, NULL));
    /* and it decodes to a record that encodes to the same bytes */
    CHECK_RC(wh_record_decode(&back, mine->data, mine->len), WHISPER_OK);
    CHECK_RC(wh_record_encode(&back, &again), WHISPER_OK);
    CHECK(bufs_equal(mine, again));
    wh_record_free(&back);
    wh_record_free(&r);
    whisper_buf_free(mine);
    whisper_buf_free(pb);
    whisper_buf_free(again);
  }
  CHECK(neg > 5 && keys > 5 && gen0 > 5); /* the draws reached the odd cases */
}

int main(void) {
  test_record_codec();
  test_prekey_upkeep();
  test_bundle_wire();
  test_kat();
  test_transcript();
  test_conversation();
  test_out_of_order_and_refusals();
  test_limits();
  test_simultaneous_initiation();
  test_identity_change();
  test_expiry_and_devices();
  return test_done();
}

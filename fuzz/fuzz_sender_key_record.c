/*
 * fuzz_sender_key_record: the input is a stored sender key record. It is
 * planted in bob.1's store twice, as his record of alice.1 for distribution
 * D1 and as his own (sending) record for D1, and then, each call in its own
 * bracket (a failure must change nothing; everything written is restored):
 *
 *  1. whisper_sender_key_decrypt of alice's real C6 messages at iterations 5 and
 *     2 (fzg_scenario, fuzz_sender_key.h);
 *  2. whisper_sender_key_generate: with no states it makes one (private key
 *     matching the public one), else it writes nothing; its SKDM describes
 *     state 0;
 *  3. whisper_sender_key_encrypt: WHISPER_ENOSESSION without a state 0 that has
 *     a private key, else success, advancing state 0 by one step and
 *     nothing else; carol.1 then processes create's SKDM and decrypts the
 *     message: it must work (plaintext "fuzz") when the stored private key
 *     matches the public key and the version is 3;
 *  4. whisper_sender_key_process of alice's real SKDM for C7 (a chain the
 *     record may or may not hold), checked against the model, then alice's
 *     C7 message at 5 and C6 message at 5 on the record it writes.
 *
 * A record the model does not decode (fzg_record_decode, the rules of
 * src/protocol/sender_key.c) must give WHISPER_ECORRUPT from every call; one it
 * decodes must give the code the model predicts. Every record a successful
 * call writes must decode again.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "fuzz_sender_key.h"

static fzg_world *w;
static fz_dev *bob, *carol;
static wh_addr at_key, own_key;

static void setup_once(void) {
  if (w) return;
  w = fzg_scenario(NULL, NULL, NULL);
  bob = w->bob;
  carol = fz_dev_new("carol", 1, 0xC5);
  fzg_key(&at_key, "alice", 1, fzg_d1);
  fzg_key(&own_key, "bob", 1, fzg_d1);
}

static void plant(const uint8_t *data, size_t size) {
  fz_put_raw(bob, WHISPER_REC_SENDER_KEY, at_key.key, at_key.len, data, size);
  fz_put_raw(bob, WHISPER_REC_SENDER_KEY, own_key.key, own_key.len, data, size);
}

/* 1 if `pub` is the public key of `priv` (the library clamps priv). */
static int priv_matches(const fzg_state *s) {
  wh_keypair kp;
  FZ_ASSERT(wh_keypair_from_priv(&kp, s->priv) == 0, "keypair_from_priv");
  return memcmp(kp.pub, s->pub, 33) == 0;
}

/* Checks create's SKDM against the state it describes. */
static void check_skdm(const whisper_buf *b, const fzg_state *s) {
  FZ_ASSERT(b->len >= 1 && b->data[0] == 0x33, "create's SKDM has version byte %#x",
            b->len ? b->data[0] : 0);
  fzg_skdm m;
  int ok = fzg_skdm_parse(&m, b->data, b->len);
  FZ_ASSERT(ok == (s->pub[0] == 0x05), "create's SKDM parses: %d, state key type %#x", ok,
            s->pub[0]);
  if (!ok) return;
  FZ_ASSERT(memcmp(m.uuid, fzg_d1, 16) == 0 && m.chain_id == s->chain_id &&
                m.iteration == s->iteration && memcmp(m.ck, s->ck, 32) == 0 &&
                memcmp(m.pub, s->pub, 33) == 0,
            "create's SKDM does not describe state 0");
}

/* carol.1 processes `skdm` (which describes s) from bob.1, then decrypts
 * `msg`, made by encrypt with s. */
static void carol_reads(const whisper_buf *skdm, const fzg_state *s, const whisper_buf *msg) {
  whisper_buf *pt = NULL;
  fz_call_begin(carol);
  int rc = whisper_sender_key_process(carol->ctx, "bob", 1, skdm->data, skdm->len);
  FZ_ASSERT(rc == (s->pub[0] == 0x05 ? WHISPER_OK : WHISPER_EINVALIDMSG),
            "carol: process of bob's SKDM returned %d (%s)", rc, whisper_ctx_last_error(carol->ctx));
  if (rc == WHISPER_OK) {
    fzg_set want;
    if ((uint8_t)(s->version << 4 | 3) >> 4 != FZG_VERSION)
      want = FZG_BIT(WHISPER_EINVALIDMSG); /* the message's version byte */
    else if (priv_matches(s))
      want = FZG_BIT(WHISPER_OK);
    else /* another encoding of the same public key still verifies */
      want = FZG_BIT(WHISPER_EINVALIDSIG) | FZG_BIT(WHISPER_OK);
    int rc2 = whisper_sender_key_decrypt(carol->ctx, "bob", 1, msg->data, msg->len, &pt);
    FZ_ASSERT(fzg_in(rc2, want), "carol: decrypt of bob's message returned %d (%s); allowed %#llx",
              rc2, whisper_ctx_last_error(carol->ctx), (unsigned long long)want);
    if (rc2 == WHISPER_OK)
      FZ_ASSERT(pt->len == 4 && memcmp(pt->data, "fuzz", 4) == 0, "carol: wrong plaintext");
  }
  fz_call_end(carol, rc, "carol: sender_key_process + sender_key_decrypt");
  whisper_buf_free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fzg_record r;
  setup_once();
  const int dec = fzg_record_decode(&r, data, size);
  const fzg_record *rp = dec ? &r : NULL;
  plant(data, size);

  /* 1. alice's messages on the record */
  const whisper_buf *m5 = w->chain[FZG_BOB_CHAIN].msg[5], *m2 = w->chain[FZG_BOB_CHAIN].msg[2];
  fzg_decrypt_check(bob, w, rp, &w->chain[FZG_BOB_CHAIN], 5, m5->data, m5->len, 0, 0);
  fzg_decrypt_check(bob, w, rp, &w->chain[FZG_BOB_CHAIN], 2, m2->data, m2->len, 0, 0);

  /* 2. create */
  whisper_buf *skdm = NULL, *created = NULL;
  fzg_record own; /* the own record encrypt will see */
  memset(&own, 0, sizeof own);
  fz_call_begin(bob);
  int rc = whisper_sender_key_generate(bob->ctx, fzg_d1, &skdm);
  FZ_ASSERT(rc == (dec ? WHISPER_OK : WHISPER_ECORRUPT), "sender_key_generate returned %d (%s)", rc,
            whisper_ctx_last_error(bob->ctx));
  FZ_ASSERT((rc == WHISPER_OK) == (skdm != NULL), "sender_key_generate: rc %d, SKDM %p", rc, (void *)skdm);
  if (rc == WHISPER_OK && r.n == 0) {
    created = fz_get(bob, WHISPER_REC_SENDER_KEY, own_key.key, own_key.len);
    FZ_ASSERT(bob->fs.ntouched == 1 && created != NULL &&
                  fzg_record_decode(&own, created->data, created->len),
              "sender_key_generate on an empty record did not write one new record that decodes");
    const fzg_state *s = &own.s[0];
    FZ_ASSERT(own.n == 1 && s->has_priv && s->pub[0] == 0x05 && priv_matches(s) &&
                  s->version == FZG_VERSION && s->iteration == 0 && s->nkeys == 0 &&
                  s->chain_id < 0x80000000u,
              "sender_key_generate on an empty record made a bad state");
    check_skdm(skdm, s);
  } else if (rc == WHISPER_OK) {
    FZ_ASSERT(bob->fs.ntouched == 0, "sender_key_generate with a state wrote %zu records",
              bob->fs.ntouched);
    check_skdm(skdm, &r.s[0]);
  }
  fz_call_end(bob, rc, "sender_key_generate");
  if (created) fzg_put_or_del(bob, WHISPER_REC_SENDER_KEY, &own_key, created);
  else if (dec) fzg_record_decode(&own, data, size);

  /* 3. encrypt (on what create left), then carol reads it */
  whisper_buf *msg = NULL;
  fz_call_begin(bob);
  rc = whisper_sender_key_encrypt(bob->ctx, fzg_d1, (const uint8_t *)"fuzz", 4, &msg);
  const fzg_state *s0 = dec && own.n ? &own.s[0] : NULL;
  if (!dec)
    FZ_ASSERT(rc == WHISPER_ECORRUPT, "sender_key_encrypt on a corrupt record returned %d", rc);
  else if (s0 == NULL || !s0->has_priv)
    FZ_ASSERT(rc == WHISPER_ENOSESSION, "sender_key_encrypt without a private key returned %d (%s)", rc,
              whisper_ctx_last_error(bob->ctx));
  else if (s0->iteration == UINT32_MAX)
    FZ_ASSERT(rc == WHISPER_ESTATE, "sender_key_encrypt at iteration 2^32-1 returned %d", rc);
  else
    FZ_ASSERT(rc == WHISPER_OK, "sender_key_encrypt returned %d (%s)", rc,
              whisper_ctx_last_error(bob->ctx));
  FZ_ASSERT((rc == WHISPER_OK) == (msg != NULL), "sender_key_encrypt: rc %d, message %p", rc,
            (void *)msg);
  if (rc == WHISPER_OK) {
    whisper_buf *now = fz_get(bob, WHISPER_REC_SENDER_KEY, own_key.key, own_key.len);
    fzg_record a;
    FZ_ASSERT(now != NULL && fzg_record_decode(&a, now->data, now->len),
              "sender_key_encrypt succeeded and left a record that does not decode");
    FZ_ASSERT(bob->fs.ntouched == 1, "sender_key_encrypt wrote %zu records", bob->fs.ntouched);
    uint8_t ck[32];
    fzg_ck_advance(ck, s0->ck, 1);
    FZ_ASSERT(a.n == own.n && a.s[0].iteration == s0->iteration + 1 &&
                  memcmp(a.s[0].ck, ck, 32) == 0 && a.s[0].chain_id == s0->chain_id &&
                  a.s[0].version == s0->version && memcmp(a.s[0].pub, s0->pub, 33) == 0 &&
                  a.s[0].has_priv && memcmp(a.s[0].priv, s0->priv, 32) == 0 &&
                  a.s[0].nkeys == s0->nkeys,
              "sender_key_encrypt did not advance state 0 by exactly one step");
    for (uint32_t i = 1; i < a.n; i++)
      FZ_ASSERT(fzg_state_eq(&a.s[i], &own.s[i]), "sender_key_encrypt changed state %u", i);
    FZ_ASSERT(msg->len >= 1 + 64 && msg->data[0] == (uint8_t)(s0->version << 4 | 3),
              "sender_key_encrypt's message has version byte %#x for state version %u", msg->data[0],
              s0->version);
    fzg_skm m;
    if (fzg_skm_parse(&m, msg->data, msg->len))
      FZ_ASSERT(memcmp(m.uuid, fzg_d1, 16) == 0 && m.chain_id == s0->chain_id &&
                    m.iteration == s0->iteration,
                "sender_key_encrypt's message does not carry state 0's chain and iteration");
    else
      FZ_ASSERT(msg->data[0] >> 4 != FZG_VERSION, "sender_key_encrypt made a message that does not parse");
    fzg_record_free(&a);
    whisper_buf_free(now);
  }
  fz_call_end(bob, rc, "sender_key_encrypt");
  if (rc == WHISPER_OK && skdm != NULL) carol_reads(skdm, s0, msg);
  whisper_buf_free(msg);
  whisper_buf_free(skdm);
  whisper_buf_free(created);
  fzg_record_free(&own);
  plant(data, size);

  /* 4. alice's SKDM for C7 */
  const fzg_chain *c7 = &w->chain[FZG_CHAINS - 1];
  fzg_skdm m7;
  FZ_ASSERT(fzg_skdm_parse(&m7, c7->skdm->data, c7->skdm->len), "C7's SKDM");
  whisper_buf *now = NULL;
  fzg_record a;
  memset(&a, 0, sizeof a);
  fz_call_begin(bob);
  rc = whisper_sender_key_process(bob->ctx, "alice", 1, c7->skdm->data, c7->skdm->len);
  FZ_ASSERT(rc == (dec ? WHISPER_OK : WHISPER_ECORRUPT), "sender_key_process returned %d (%s)", rc,
            whisper_ctx_last_error(bob->ctx));
  if (rc == WHISPER_OK) {
    now = fz_get(bob, WHISPER_REC_SENDER_KEY, at_key.key, at_key.len);
    FZ_ASSERT(now != NULL && fzg_record_decode(&a, now->data, now->len),
              "sender_key_process succeeded and left a record that does not decode");
    fzg_check_process_update(&r, &a, &m7);
  }
  fz_call_end(bob, rc, "sender_key_process C7");
  if (rc == WHISPER_OK) {
    fzg_put_or_del(bob, WHISPER_REC_SENDER_KEY, &at_key, now);
    const whisper_buf *m75 = c7->msg[5];
    fzg_decrypt_check(bob, w, &a, c7, 5, m75->data, m75->len, 0, 0);
    fzg_decrypt_check(bob, w, &a, &w->chain[FZG_BOB_CHAIN], 5, m5->data, m5->len, 0, 0);
  }
  fzg_record_free(&a);
  whisper_buf_free(now);
  fzg_record_free(&r);
  return 0;
}

/*
 * fuzz_skdm: the input is a SenderKeyDistributionMessage that bob.1
 * processes (whisper_sender_key_process) as from alice.1. Bob's fixed state
 * (fzg_scenario, fuzz_sender_key.h) already holds five of alice's chains for
 * distribution D1 (C6 C5 C4 C3 C2, newest first, C6 and C5 partly read),
 * so a repeated chain, a chain id with another signing key, a new chain
 * (evicting C2), an evicted chain and a new distribution are all a mutation
 * or two from the seeds. Asserts:
 *  - process accepts exactly what the model parses (fzg_skdm_parse: version
 *    3, every field, 32-byte chain key, 33-byte type-5 signing key) and
 *    answers WHISPER_EINVALIDMSG otherwise;
 *  - a failure changes nothing (the harness check);
 *  - a success writes exactly one record, under (alice.1, the SKDM's
 *    distribution), that decodes and is what the model predicts: the same
 *    chain kept as it was, or a fresh state from the SKDM, first; then the
 *    old states without that chain id, in order, at most 5 in all;
 *  - then, on that record, every fixed message of alice for the
 *    distribution (C1..C7 at iteration 5, or D2 at 0) decrypts or fails
 *    with the code the model gives (ENOSESSION for a chain not held,
 *    success with alice's plaintext on a state with the real key, ...), a
 *    success updates the chain as the model says and does not decrypt
 *    twice, a failure writes nothing.
 * Every record written is restored after each call, so every input meets
 * the same state.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_sender_key.h"

static fzg_world *w;
static fz_dev *bob;
static wh_addr d1_key;
static whisper_buf *snapshot; /* bob's record of alice.1 for D1 */

static void setup_once(void) {
  if (w) return;
  w = fzg_scenario(NULL, NULL, NULL);
  bob = w->bob;
  fzg_key(&d1_key, "alice", 1, fzg_d1);
  snapshot = fz_get(bob, WHISPER_REC_SENDER_KEY, d1_key.key, d1_key.len);
  FZ_ASSERT(snapshot != NULL, "bob has no sender key record after setup");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fzg_skdm m;
  fzg_record before, after;
  wh_addr key;
  whisper_buf *old = NULL, *now = NULL;
  setup_once();

  int valid = fzg_skdm_parse(&m, data, size);
  memset(&before, 0, sizeof before);
  memset(&after, 0, sizeof after);
  if (valid) {
    fzg_key(&key, "alice", 1, m.uuid);
    old = fz_get(bob, WHISPER_REC_SENDER_KEY, key.key, key.len);
    FZ_ASSERT(old == NULL || fzg_record_decode(&before, old->data, old->len),
              "bob's stored record does not decode");
  }

  fz_call_begin(bob);
  int rc = whisper_sender_key_process(bob->ctx, "alice", 1, data, size);
  FZ_ASSERT(rc == (valid ? WHISPER_OK : WHISPER_EINVALIDMSG),
            "sender_key_process returned %d (%s) for a%s SKDM", rc, whisper_ctx_last_error(bob->ctx),
            valid ? " valid" : "n invalid");
  if (rc == WHISPER_OK) {
    const fz_touch *t = &bob->fs.touched[0];
    FZ_ASSERT(bob->fs.ntouched == 1 && t->kind == WHISPER_REC_SENDER_KEY && t->key_len == key.len &&
                  memcmp(t->key, key.key, key.len) == 0,
              "sender_key_process wrote %zu records, not just (alice.1, distribution)",
              bob->fs.ntouched);
    now = fz_get(bob, WHISPER_REC_SENDER_KEY, key.key, key.len);
    FZ_ASSERT(now != NULL && fzg_record_decode(&after, now->data, now->len),
              "sender_key_process succeeded and left a record that does not decode");
    fzg_check_process_update(&before, &after, &m);
  }
  fz_call_end(bob, rc, "sender_key_process");

  if (rc == WHISPER_OK) {
    /* what the SKDM left, read with each of alice's fixed messages */
    fzg_put_or_del(bob, WHISPER_REC_SENDER_KEY, &key, now);
    if (memcmp(m.uuid, fzg_d1, 16) == 0) {
      for (int x = 0; x < FZG_CHAINS; x++) {
        const whisper_buf *msg = w->chain[x].msg[FZG_MSGS - 1];
        fzg_decrypt_check(bob, w, &after, &w->chain[x], FZG_MSGS - 1, msg->data, msg->len, 0, 1);
      }
    } else if (memcmp(m.uuid, fzg_d2, 16) == 0) {
      const whisper_buf *msg = w->d2.msg[0];
      fzg_decrypt_check(bob, w, &after, &w->d2, 0, msg->data, msg->len, 0, 1);
    }
    fzg_put_or_del(bob, WHISPER_REC_SENDER_KEY, &key, old);
  }

  whisper_buf *d1 = fz_get(bob, WHISPER_REC_SENDER_KEY, d1_key.key, d1_key.len);
  FZ_ASSERT(fz_buf_eq(d1, snapshot), "bob's D1 record is not back to its state after setup");
  whisper_buf_free(d1);
  fzg_record_free(&before);
  fzg_record_free(&after);
  whisper_buf_free(old);
  whisper_buf_free(now);
  return 0;
}

/*
 * fuzz_sender_key_message: the input is a SenderKeyMessage that bob.1
 * decrypts (whisper_sender_key_decrypt) as from alice.1. Bob's fixed state
 * (fzg_scenario, fuzz_sender_key.h) holds alice's chains C6 (at iteration 4, a
 * skipped key for 2), C5 (at 1), C4, C3 and C2 (at 0) of distribution D1.
 * Asserts:
 *  - a message the model cannot parse (fzg_skm_parse: version 3, 64-byte
 *    signature, every field) gives WHISPER_EINVALIDMSG; another
 *    distribution, or a chain bob does not hold, gives WHISPER_ENOSESSION;
 *  - on a chain bob holds: WHISPER_EINVALIDSIG, or the code the model
 *    gives for alice's message at that iteration (success, EDUPLICATE below
 *    the chain without a skipped key, ETOOFAR more than 25000 ahead);
 *  - a success gives alice's plaintext and writes the chain update the
 *    model predicts (skipped keys kept, at most 2000, oldest dropped first);
 *  - the same bytes then give WHISPER_EDUPLICATE and write nothing;
 *  - a failure changes nothing (the harness check), and bob's record is
 *    byte-identical to the one after setup once every write is restored.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_sender_key.h"

static fzg_world *w;
static fz_dev *bob;
static wh_addr key;
static whisper_buf *snapshot; /* bob's record of alice.1 for D1 */
static fzg_record r0;

static void setup_once(void) {
  if (w) return;
  w = fzg_scenario(NULL, NULL, NULL);
  bob = w->bob;
  fzg_key(&key, "alice", 1, fzg_d1);
  snapshot = fz_get(bob, WHISPER_REC_SENDER_KEY, key.key, key.len);
  FZ_ASSERT(snapshot != NULL && fzg_record_decode(&r0, snapshot->data, snapshot->len),
            "bob has no usable sender key record after setup");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fzg_skm m;
  const fzg_chain *ch = NULL;
  setup_once();

  int valid = fzg_skm_parse(&m, data, size);
  if (valid && memcmp(m.uuid, fzg_d1, 16) == 0 && fzg_find_chain(&r0, m.chain_id) >= 0)
    for (int x = 0; x < FZG_CHAINS && ch == NULL; x++)
      if (w->chain[x].chain_id == m.chain_id) ch = &w->chain[x];

  if (ch != NULL) {
    fzg_decrypt_check(bob, w, &r0, ch, m.iteration, data, size, FZG_BIT(WHISPER_EINVALIDSIG), 1);
  } else {
    whisper_buf *pt = NULL;
    fz_call_begin(bob);
    int rc = whisper_sender_key_decrypt(bob->ctx, "alice", 1, data, size, &pt);
    int want = valid ? WHISPER_ENOSESSION : WHISPER_EINVALIDMSG;
    FZ_ASSERT(rc == want, "sender_key_decrypt returned %d (%s), wanted %d", rc,
              whisper_ctx_last_error(bob->ctx), want);
    FZ_ASSERT(pt == NULL, "sender_key_decrypt failed but gave a plaintext");
    fz_call_end(bob, rc, "sender_key_decrypt");
  }

  whisper_buf *now = fz_get(bob, WHISPER_REC_SENDER_KEY, key.key, key.len);
  FZ_ASSERT(fz_buf_eq(now, snapshot), "bob's record is not back to its state after setup");
  whisper_buf_free(now);
  return 0;
}

/*
 * fuzz_prekey_message: the input is a PreKeySignalMessage
 * (WHISPER_MSG_PREKEY) to bob, who holds one-time prekeys, signed prekeys
 * 1 and 2 and a session with alice.1 (see fz_scenario_prekey). Each input
 * is decrypted twice: as from alice.1 (identity known, a session record
 * exists) and as from alice.2 (nothing known: trust on first use, no
 * record). Asserts, for each:
 *  - the return code is one decrypt documents;
 *  - a failure changes nothing in the store (no committed write, every
 *    record written is back to its old bytes);
 *  - a success leaves a usable session whose record decodes, and the same
 *    bytes then fail (no replay) without changing state;
 *  - no transaction is left open.
 * Every record written (session, identity, consumed prekey) is restored
 * after each decrypt.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static fz_dev *bob;
static whisper_buf *snapshot1; /* bob's record with alice.1 */

static void setup_once(void) {
  if (bob) return;
  bob = fz_scenario_prekey(NULL);
  snapshot1 = fz_session_record(bob, "alice", 1);
  FZ_ASSERT(snapshot1 != NULL, "no session record after setup");
}

static void one(const uint8_t *data, size_t size, uint32_t device) {
  whisper_buf *pt = NULL, *before = fz_session_record(bob, "alice", device);
  fz_call_begin(bob);
  int rc = whisper_session_decrypt(bob->ctx, "alice", device, WHISPER_MSG_PREKEY, data, size, &pt);
  FZ_ASSERT(fz_rc_in(rc, 5, WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EDUPLICATE, WHISPER_ETOOFAR,
                     WHISPER_EUNTRUSTED),
            "decrypt (alice.%u) returned %d (%s)", device, rc, whisper_ctx_last_error(bob->ctx));
  FZ_ASSERT((rc == WHISPER_OK) == (pt != NULL), "decrypt rc %d but plaintext %p", rc, (void *)pt);
  whisper_buf *after = fz_session_record(bob, "alice", device);
  if (rc != WHISPER_OK) {
    FZ_ASSERT(fz_buf_eq(before, after), "a failed decrypt (alice.%u) changed the session record",
              device);
  } else {
    wh_record r;
    int exists = 0;
    whisper_buf *pt2 = NULL;
    FZ_ASSERT(after != NULL && wh_record_decode(&r, after->data, after->len) == WHISPER_OK,
              "the record written by a successful decrypt does not decode");
    wh_record_free(&r);
    FZ_ASSERT(whisper_session_exists(bob->ctx, "alice", device, FZ_NOW, &exists) == WHISPER_OK &&
                  exists == 1,
              "no usable session after a successful decrypt");
    unsigned committed = bob->fs.committed_writes;
    int rc2 = whisper_session_decrypt(bob->ctx, "alice", device, WHISPER_MSG_PREKEY, data, size, &pt2);
    FZ_ASSERT(rc2 != WHISPER_OK, "the same PreKey message decrypted twice (alice.%u)", device);
    FZ_ASSERT(fz_rc_in(rc2, 2, WHISPER_EDUPLICATE, WHISPER_EINVALIDMSG),
              "replay returned %d (%s)", rc2, whisper_ctx_last_error(bob->ctx));
    FZ_ASSERT(bob->fs.committed_writes == committed, "a failed replay committed writes");
    whisper_buf *after2 = fz_session_record(bob, "alice", device);
    FZ_ASSERT(fz_buf_eq(after, after2), "a failed replay changed the session record");
    whisper_buf_free(after2);
    whisper_buf_free(pt2);
  }
  fz_call_end(bob, rc, device == 1 ? "decrypt PreKey (alice.1)" : "decrypt PreKey (alice.2)");
  whisper_buf *restored = fz_session_record(bob, "alice", device);
  FZ_ASSERT(fz_buf_eq(before, restored), "the session record was not restored");
  whisper_buf_free(restored);
  whisper_buf_free(before);
  whisper_buf_free(after);
  whisper_buf_free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup_once();
  one(data, size, 1);
  one(data, size, 2);
  whisper_buf *now = fz_session_record(bob, "alice", 1);
  FZ_ASSERT(fz_buf_eq(now, snapshot1), "bob's record with alice.1 drifted");
  whisper_buf_free(now);
  return 0;
}

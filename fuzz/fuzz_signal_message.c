/*
 * fuzz_signal_message: the input is a SignalMessage (WHISPER_MSG_WHISPER)
 * from alice.1 to bob, whose fixed session (built once, see
 * fz_scenario_signal) has an archived state, skipped keys and several
 * receiver chains. Asserts:
 *  - the return code is one decrypt documents for such a message;
 *  - a failure changes nothing in the store (no committed write, every
 *    record written is back to its old bytes, the session record is
 *    byte-identical to the one before);
 *  - a success leaves a session that can send, and the very same bytes
 *    then fail (no replay), again without changing state;
 *  - no transaction is left open.
 * After each input every record written is restored, so each input meets
 * the same state.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static fz_dev *bob;
static whisper_buf *snapshot; /* bob's session record with alice.1 */

static void setup_once(void) {
  if (bob) return;
  bob = fz_scenario_signal(NULL);
  snapshot = fz_session_record(bob, "alice", 1);
  FZ_ASSERT(snapshot != NULL, "no session record after setup");
}

static void check_record_unchanged(const char *when) {
  whisper_buf *now = fz_session_record(bob, "alice", 1);
  int same = fz_buf_eq(now, snapshot);
  whisper_buf_free(now);
  FZ_ASSERT(same, "bob's session record changed %s", when);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  whisper_buf *pt = NULL;
  setup_once();

  fz_call_begin(bob);
  int rc = whisper_session_decrypt(bob->ctx, "alice", 1, WHISPER_MSG_WHISPER, data, size, &pt);
  FZ_ASSERT(fz_rc_in(rc, 4, WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EDUPLICATE, WHISPER_ETOOFAR),
            "decrypt returned %d (%s)", rc, whisper_ctx_last_error(bob->ctx));
  FZ_ASSERT((rc == WHISPER_OK) == (pt != NULL), "decrypt rc %d but plaintext %p", rc, (void *)pt);
  if (rc != WHISPER_OK) check_record_unchanged("by a failed decrypt");
  if (rc == WHISPER_OK) {
    whisper_buf *after = fz_session_record(bob, "alice", 1), *pt2 = NULL;
    int exists = 0;
    FZ_ASSERT(after != NULL, "the session record is gone after a successful decrypt");
    wh_record r;
    FZ_ASSERT(wh_record_decode(&r, after->data, after->len) == WHISPER_OK,
              "the record written by a successful decrypt does not decode");
    wh_record_free(&r);
    FZ_ASSERT(whisper_session_exists(bob->ctx, "alice", 1, FZ_NOW, &exists) == WHISPER_OK &&
                  exists == 1,
              "no usable session after a successful decrypt");
    /* replay: the same bytes must now fail and change nothing */
    unsigned committed = bob->fs.committed_writes;
    int rc2 = whisper_session_decrypt(bob->ctx, "alice", 1, WHISPER_MSG_WHISPER, data, size, &pt2);
    FZ_ASSERT(rc2 != WHISPER_OK, "the same message decrypted twice");
    FZ_ASSERT(fz_rc_in(rc2, 2, WHISPER_EDUPLICATE, WHISPER_EINVALIDMSG),
              "replay returned %d (%s)", rc2, whisper_ctx_last_error(bob->ctx));
    FZ_ASSERT(bob->fs.committed_writes == committed, "a failed replay committed writes");
    whisper_buf *after2 = fz_session_record(bob, "alice", 1);
    FZ_ASSERT(fz_buf_eq(after, after2), "a failed replay changed the session record");
    whisper_buf_free(after);
    whisper_buf_free(after2);
    whisper_buf_free(pt2);
  }
  fz_call_end(bob, rc, "decrypt SignalMessage");
  check_record_unchanged("after restoring");
  whisper_buf_free(pt);
  return 0;
}

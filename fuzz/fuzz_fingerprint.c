/*
 * fuzz_fingerprint: the input is a scanned safety-number code (a QR code
 * from another person's screen: untrusted). Asserts:
 *  - whisper_fingerprint_compare returns a documented code and sets
 *    *match to 0 unless it returns WHISPER_OK;
 *  - it says "match" exactly for the mirror of our own code (the other
 *    side's scannable for the same two keys), and for nothing else that
 *    carries other fingerprint bytes.
 */
#include <string.h>

#include "fuzz_common.h"

static whisper_buf *ours, *theirs;

static void setup(void) {
  static const uint8_t a[33] = {5, 1, 2, 3, 4}, b[33] = {5, 9, 8, 7, 6};
  if (ours) return;
  FZ_ASSERT(whisper_fingerprint(2, (const uint8_t *)"alice", 5, a, 33, (const uint8_t *)"bob", 3,
                                b, 33, NULL, &ours) == WHISPER_OK, "fingerprint");
  FZ_ASSERT(whisper_fingerprint(2, (const uint8_t *)"bob", 3, b, 33, (const uint8_t *)"alice", 5,
                                a, 33, NULL, &theirs) == WHISPER_OK, "fingerprint");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  int match = -1;
  int rc = whisper_fingerprint_compare(ours->data, ours->len, data, size, &match);
  FZ_ASSERT(fz_rc_in(rc, 3, WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EVERSION),
            "fingerprint_compare returned %d", rc);
  FZ_ASSERT(match == 0 || (rc == WHISPER_OK && match == 1), "match %d with rc %d", match, rc);
  if (match) {
    /* only the other side's code for the same keys vouches for them: its
     * two 32-byte halves must be exactly theirs */
    FZ_ASSERT(size >= 70, "a %zu-byte code matched", size);
    int found_local = 0, found_remote = 0;
    for (size_t i = 0; i + 32 <= size; i++) {
      if (memcmp(data + i, theirs->data + 6, 32) == 0) found_local = 1;
      if (memcmp(data + i, theirs->data + 42, 32) == 0) found_remote = 1;
    }
    FZ_ASSERT(found_local && found_remote, "a code without both halves matched");
  }
  return 0;
}

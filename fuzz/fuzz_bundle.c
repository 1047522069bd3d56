/*
 * fuzz_bundle: the input is a serialized prekey bundle. Asserts:
 *  - whisper_bundle_decode returns a documented code and, on failure,
 *    leaves the output zeroed;
 *  - on success, encode then decode gives an identical struct (memcmp),
 *    and encoding is canonical (re-encoding gives the same bytes);
 *  - whisper_session_start with the bundle on carol's device (who already
 *    has a session with bob.1) returns a documented code, changes nothing
 *    when it fails, and on success leaves a usable session that encrypts
 *    a PreKey message. Every record written is restored afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static fz_dev *carol;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const whisper_prekey_bundle_t zero = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT, b2 = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *e1 = NULL, *e2 = NULL;
  if (carol == NULL) carol = fz_scenario_bundle(NULL);

  memset(&b, 0xA5, sizeof b);
  b.size = sizeof b;
  int rc = whisper_bundle_decode(data, size, &b);
  FZ_ASSERT(fz_rc_in(rc, 4, WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EINVALIDKEY,
                     WHISPER_EINVALIDSIG),
            "bundle_decode returned %d", rc);
  if (rc != WHISPER_OK) {
    FZ_ASSERT(memcmp(&b, &zero, sizeof b) == 0, "a failed bundle_decode left output (%d)", rc);
    return 0;
  }
  FZ_ASSERT(b.has_prekey == 0 || b.has_prekey == 1, "has_prekey is %d", b.has_prekey);
  FZ_ASSERT(whisper_bundle_encode(&b, &e1) == WHISPER_OK, "bundle_encode failed");
  memset(&b2, 0x5A, sizeof b2);
  b2.size = sizeof b2;
  rc = whisper_bundle_decode(e1->data, e1->len, &b2);
  FZ_ASSERT(rc == WHISPER_OK, "our own encoding does not decode: %d", rc);
  FZ_ASSERT(memcmp(&b, &b2, sizeof b) == 0, "decode(encode(decode(x))) != decode(x)");
  FZ_ASSERT(whisper_bundle_encode(&b2, &e2) == WHISPER_OK, "bundle_encode failed");
  FZ_ASSERT(fz_buf_eq(e1, e2), "encoding is not canonical");
  whisper_buf_free(e1);
  whisper_buf_free(e2);

  fz_call_begin(carol);
  rc = whisper_session_start(carol->ctx, "bob", 1, &b, FZ_NOW);
  FZ_ASSERT(fz_rc_in(rc, 4, WHISPER_OK, WHISPER_EINVALIDKEY, WHISPER_EINVALIDSIG,
                     WHISPER_EUNTRUSTED),
            "session_start returned %d (%s)", rc, whisper_ctx_last_error(carol->ctx));
  if (rc == WHISPER_OK) {
    int exists = 0, type = 0;
    whisper_buf *m = NULL;
    FZ_ASSERT(whisper_session_exists(carol->ctx, "bob", 1, FZ_NOW, &exists) == WHISPER_OK &&
                  exists == 1,
              "no usable session after session_start");
    int erc = whisper_session_encrypt(carol->ctx, "bob", 1, (const uint8_t *)"x", 1, FZ_NOW,
                                      &type, &m);
    FZ_ASSERT(erc == WHISPER_OK && type == WHISPER_MSG_PREKEY,
              "encrypt after session_start: %d type %d (%s)", erc, type,
              whisper_ctx_last_error(carol->ctx));
    whisper_buf_free(m);
  }
  fz_call_end(carol, rc, "session_start");
  return 0;
}

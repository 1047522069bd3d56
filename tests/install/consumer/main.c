/* A program built against the *installed* libwhisper: it makes two devices,
 * sets up a session and round-trips one message. */
#include <stdio.h>
#include <string.h>
#include <whisper/whisper.h>

int main(void) {
  whisper_store *sa, *sb;
  whisper_ctx *a, *b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m = NULL, *pt = NULL;
  int type;
  const uint64_t now = 1700000000000ULL;
  if (whisper_store_memory_new(&sa) || whisper_store_memory_new(&sb)) return 1;
  if (whisper_ctx_new(&a, sa) || whisper_ctx_new(&b, sb)) return 1;
  if (whisper_identity_generate(a, "alice", 1, 0, now) || whisper_identity_generate(b, "bob", 1, 0, now))
    return 1;
  if (whisper_bundle_generate(b, 1, &bundle) || whisper_session_start(a, "bob", 1, &bundle, now)) return 1;
  if (whisper_session_encrypt(a, "bob", 1, (const uint8_t *)"installed", 9, now, &type, &m)) return 1;
  if (whisper_session_decrypt(b, "alice", 1, type, m->data, m->len, &pt)) return 1;
  int ok = pt->len == 9 && memcmp(pt->data, "installed", 9) == 0;
  printf("consumer: libwhisper %u, round trip %s\n", whisper_version(), ok ? "ok" : "FAILED");
  whisper_buf_free(m);
  whisper_buf_free(pt);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);
  return ok ? 0 : 1;
}

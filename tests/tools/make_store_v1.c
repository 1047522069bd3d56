/*
 * Writes the schema-1 store fixtures in tests/vectors/ (store-v1-alice.db,
 * store-v1-bob.db). Built against libwhisper at the commit that introduced
 * the SQLite store (schema 1), never by this build:
 *
 *   git worktree add /tmp/v1 15a0381 && cmake -S /tmp/v1 -B /tmp/v1/build ...
 *   cc -I/tmp/v1/include make_store_v1.c /tmp/v1/build/libwhisper.a \
 *      $(pkg-config --libs libsodium libprotobuf-c libcrypto sqlite3)
 *
 * Alice and Bob (store key: 32 bytes of "store-v1 fixture key", zero
 * padded) have a session and have exchanged two messages; Alice's next
 * message is for test_migration to send after opening them with today's
 * code.
 */
#include <stdio.h>
#include <string.h>
#include <whisper/whisper.h>

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  uint8_t key[32] = "store-v1 fixture key";
  char pa[512], pb[512];
  snprintf(pa, sizeof pa, "%s/store-v1-alice.db", dir);
  snprintf(pb, sizeof pb, "%s/store-v1-bob.db", dir);
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  whisper_store *sa, *sb;
  whisper_ctx *a, *b;
  if (whisper_store_sqlite_open(&sa, pa, &o, NULL) || whisper_store_sqlite_open(&sb, pb, &o, NULL)) return 1;
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  const uint64_t now = 1790000000000ULL;
  if (whisper_identity_generate(a, "alice", 1, 1111, now) || whisper_identity_generate(b, "bob", 1, 2222, now))
    return 1;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  if (whisper_bundle_generate(b, 1, &bundle) || whisper_session_start(a, "bob", 1, &bundle, now)) return 1;
  whisper_buf *m, *pt;
  int type;
  if (whisper_session_encrypt(a, "bob", 1, (const uint8_t *)"written by schema 1", 19, now, &type, &m)) return 1;
  if (whisper_session_decrypt(b, "alice", 1, type, m->data, m->len, &pt)) return 1;
  whisper_buf_free(m);
  whisper_buf_free(pt);
  if (whisper_session_encrypt(b, "alice", 1, (const uint8_t *)"reply from schema 1", 19, now, &type, &m)) return 1;
  if (whisper_session_decrypt(a, "bob", 1, type, m->data, m->len, &pt)) return 1;
  whisper_buf_free(m);
  whisper_buf_free(pt);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);
  return 0;
}

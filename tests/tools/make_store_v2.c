/*
 * Writes the schema-2 store fixtures in tests/vectors/ (store-v2-alice.db,
 * store-v2-bob.db). Built against libwhisper at the last commit with
 * schema 2 (4c43f7a), never by this build:
 *
 *   git worktree add /tmp/v2 4c43f7a && cmake -S /tmp/v2 -B /tmp/v2/build ...
 *   cc -I/tmp/v2/include make_store_v2.c /tmp/v2/build/libwhisper.a \
 *      $(pkg-config --libs libsodium libprotobuf-c libcrypto sqlite3)
 *
 * Alice and Bob (store key: 32 bytes of "store-v2 fixture key", zero
 * padded) have a session. Bob's history of conversation "alice" holds
 * three incoming messages (sort keys 10, 20, 30; ids "in-1".."in-3"; bodies
 * "first", "second", "third"), and conversation "bulk" 297 more from
 * Alice (sort keys 100..396, ids "bulk-N" and bodies "bulk message N"
 * for N = 0..296: more than one chunk of the migration). Alice's history of conversation "bob"
 * holds two outgoing messages to bob's device 1: "out-1" (sort key 5,
 * taken by the server as 15, then DELIVERED) and "out-2" (sort key 40,
 * still PENDING: in the outbox). test_sqlite's test_migration_v2 opens
 * them with today's code and checks all of that, then goes on with the
 * conversation.
 */
#include <stdio.h>
#include <string.h>
#include <whisper/whisper.h>

static int incoming(whisper_ctx *a, whisper_ctx *b, const char *conv, const char *id,
                    const char *body, uint64_t sort_key, uint64_t now) {
  whisper_buf *m = NULL, *pt = NULL;
  int type = 0;
  if (whisper_session_encrypt(a, "bob", 1, (const uint8_t *)body, strlen(body), now, &type, &m))
    return 1;
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = conv, .id = (const uint8_t *)id,
                            .id_len = strlen(id), .sort_key = sort_key, .timestamp_ms = now};
  int rc = whisper_session_decrypt_store(b, "alice", 1, type, m->data, m->len, &meta, &pt);
  whisper_buf_free(m);
  whisper_buf_free(pt);
  return rc != WHISPER_OK;
}

static int outgoing(whisper_ctx *a, const char *id, const char *body, uint64_t sort_key,
                    uint64_t now) {
  whisper_device_t to = {"bob", 1};
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = "bob", .id = (const uint8_t *)id, .id_len = strlen(id),
                         .sort_key = sort_key, .timestamp_ms = now,
                         .body = (const uint8_t *)body, .body_len = strlen(body)};
  return whisper_history_add_outgoing(a, &m, &to, 1) != WHISPER_OK;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  uint8_t key[32] = "store-v2 fixture key";
  char pa[512], pb[512];
  snprintf(pa, sizeof pa, "%s/store-v2-alice.db", dir);
  snprintf(pb, sizeof pb, "%s/store-v2-bob.db", dir);
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  whisper_store *sa, *sb;
  whisper_ctx *a, *b;
  if (whisper_store_sqlite_open(&sa, pa, &o, NULL) || whisper_store_sqlite_open(&sb, pb, &o, NULL))
    return 1;
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  const uint64_t now = 1790000000000ULL;
  if (whisper_identity_generate(a, "alice", 1, 1111, now) ||
      whisper_identity_generate(b, "bob", 1, 2222, now))
    return 1;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  if (whisper_bundle_generate(b, 1, &bundle) || whisper_session_start(a, "bob", 1, &bundle, now))
    return 1;
  if (incoming(a, b, "alice", "in-1", "first", 10, now) ||
      incoming(a, b, "alice", "in-2", "second", 20, now + 1) ||
      incoming(a, b, "alice", "in-3", "third", 30, now + 2))
    return 1;
  for (int i = 0; i < 297; i++) {
    char id[32], body[64];
    snprintf(id, sizeof id, "bulk-%d", i);
    snprintf(body, sizeof body, "bulk message %d", i);
    if (incoming(a, b, "bulk", id, body, 100 + (uint64_t)i, now + 10 + (uint64_t)i)) return 1;
  }
  if (outgoing(a, "out-1", "hello bob", 5, now + 3) || outgoing(a, "out-2", "still pending", 40, now + 4))
    return 1;
  if (whisper_history_sent(a, "bob", (const uint8_t *)"out-1", 5, 15) ||
      whisper_history_status_set(a, "bob", (const uint8_t *)"out-1", 5, "bob", 1, WHISPER_STATUS_DELIVERED))
    return 1;
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);
  return 0;
}

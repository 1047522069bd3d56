/*
 * fuzz_small_records: the smaller stored records, each planted in a
 * device's store and read back through the public API.
 *
 * The first input byte picks the record (the local identity, a one-time
 * prekey, the signed prekey, bob.1's remote identity, bob's name-wide
 * trusted key, or one of the prekey counters and the retired signed-prekey
 * list kept as meta records); the rest is its value. Then a fresh context
 * on alice's store (nothing cached) runs every call that reads it:
 * identity_get, identity_info, prekeys_count, bundle_make, prekeys_generate,
 * signed_prekey_rotate, session_encrypt to bob and decrypting a real
 * PreKey message from carol (built on the planted one-time prekey and the
 * signed prekey). Asserts: every code is a documented one, a store or
 * internal failure never shows (the store is in memory), a failing call
 * changes nothing (fz_call_end), and a decrypt that succeeds gives the
 * right plaintext. Everything is restored after each input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

enum { R_LOCAL, R_PREKEY, R_SPK, R_REMOTE, R_NAME, R_PREKEY_NEXT, R_PREKEY_COUNT, R_SPK_CURRENT,
       R_SPK_RETIRED, R_KINDS };

static fz_dev *alice, *bob, *carol;
static whisper_buf *prekey_msg; /* carol -> alice, on alice's one-time prekey */
static uint32_t prekey_id;

typedef struct planted {
  int kind;
  uint8_t key[300];
  size_t key_len;
} planted;

static void put_be32(uint8_t out[4], uint32_t v) {
  out[0] = (uint8_t)(v >> 24), out[1] = (uint8_t)(v >> 16), out[2] = (uint8_t)(v >> 8),
  out[3] = (uint8_t)v;
}

static void meta_key(planted *p, const char *name) {
  p->kind = WHISPER_REC_META;
  p->key_len = strlen(name);
  memcpy(p->key, name, p->key_len);
}

static void where(planted *p, int which) {
  wh_addr a;
  memset(p, 0, sizeof *p);
  switch (which) {
  case R_LOCAL: p->kind = WHISPER_REC_LOCAL_IDENTITY; break;
  case R_PREKEY: p->kind = WHISPER_REC_PREKEY; put_be32(p->key, prekey_id); p->key_len = 4; break;
  case R_SPK: p->kind = WHISPER_REC_SIGNED_PREKEY; put_be32(p->key, 1); p->key_len = 4; break;
  case R_REMOTE:
    fz_addr(&a, "bob", 1);
    p->kind = WHISPER_REC_REMOTE_IDENTITY;
    memcpy(p->key, a.key, a.len);
    p->key_len = a.len;
    break;
  case R_NAME: p->kind = WHISPER_REC_TRUSTED_NAME; memcpy(p->key, "bob", 3); p->key_len = 3; break;
  case R_PREKEY_NEXT: meta_key(p, "prekey_next"); break;
  case R_PREKEY_COUNT: meta_key(p, "prekey_count"); break;
  case R_SPK_CURRENT: meta_key(p, "signed_prekey_current"); break;
  default: meta_key(p, "signed_prekeys_retired"); break;
  }
}

static void setup_once(void) {
  if (alice) return;
  alice = fz_dev_new("alice", 1, 61);
  bob = fz_dev_new("bob", 1, 62);
  carol = fz_dev_new("carol", 1, 63);
  uint32_t first = 0;
  FZ_ASSERT(whisper_prekeys_generate(alice->ctx, 4, &first) == WHISPER_OK, "prekeys");
  fz_connect(alice, bob, 1); /* alice knows bob.1's identity */
  uint8_t bob_key[33];
  FZ_ASSERT(whisper_identity_get(bob->ctx, bob_key, NULL, NULL, NULL) == WHISPER_OK, "bob key");
  FZ_ASSERT(whisper_identity_trust(alice->ctx, "bob", WHISPER_ALL_DEVICES, bob_key, 33) ==
                WHISPER_OK,
            "name-wide trust");
  /* carol builds a PreKey message on alice's bundle (one-time prekey included) */
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  FZ_ASSERT(whisper_bundle_generate(alice->ctx, 1, &b) == WHISPER_OK && b.has_prekey, "bundle");
  prekey_id = b.prekey_id;
  FZ_ASSERT(whisper_session_start(carol->ctx, "alice", 1, &b, FZ_NOW) == WHISPER_OK, "start");
  prekey_msg = fz_send(carol, "alice", 1, "planted", WHISPER_MSG_PREKEY);
  /* signed prekey 1 retired (in its grace period): the retired list exists */
  int rotated = 0;
  FZ_ASSERT(whisper_signed_prekey_rotate(alice->ctx, FZ_NOW + 10, 0, 86400000, &rotated) ==
                    WHISPER_OK && rotated,
            "rotate");
}

/* One call on the fresh context, bracketed: documented code, no store
 * failure, nothing changed on failure. */
#define CALL(what, expr)                                                                   \
  do {                                                                                     \
    fz_call_begin(alice);                                                                  \
    int rc_ = (expr);                                                                      \
    FZ_ASSERT(fz_rc_known(rc_) && rc_ != WHISPER_ESTORE && rc_ != WHISPER_EINTERNAL,       \
              "%s returned %d (%s)", what, rc_, whisper_ctx_last_error(alice->ctx));       \
    fz_call_end(alice, rc_, what);                                                         \
    last_rc = rc_;                                                                         \
  } while (0)

static void run_calls(void) {
  int last_rc;
  uint8_t key[33];
  uint32_t reg = 0, dev = 0, count = 0, first = 0;
  const char *name = NULL;
  whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  int rotated = 0, type = 0;
  whisper_buf *out = NULL;

  CALL("identity_get", whisper_identity_get(alice->ctx, key, &reg, &name, &dev));
  CALL("identity_info", whisper_identity_info(alice->ctx, "bob", 1, &info));
  CALL("prekeys_count", whisper_prekeys_count(alice->ctx, &count));
  CALL("bundle_make", whisper_bundle_generate(alice->ctx, 1, &b));
  CALL("prekeys_generate", whisper_prekeys_generate(alice->ctx, 2, &first));
  CALL("signed_prekey_rotate",
       whisper_signed_prekey_rotate(alice->ctx, FZ_NOW + 1000, 0, 500, &rotated));
  CALL("session_encrypt", whisper_session_encrypt(alice->ctx, "bob", 1, (const uint8_t *)"x", 1,
                                                  FZ_NOW, &type, &out));
  whisper_buf_free(out);
  out = NULL;
  CALL("decrypt PreKey", whisper_session_decrypt(alice->ctx, "carol", 1, WHISPER_MSG_PREKEY,
                                                 prekey_msg->data, prekey_msg->len, &out));
  if (last_rc == WHISPER_OK) {
    FZ_ASSERT(out->len == 7 && memcmp(out->data, "planted", 7) == 0, "wrong plaintext");
  }
  whisper_buf_free(out);
}

/* The seeds: each record as alice's code wrote it, behind its selector
 * byte. FUZZ_WRITE_SEEDS=DIR ./fuzz_small_records -runs=1 writes them
 * (fuzz/corpus/fuzz_small_records holds them). */
static void write_seeds(const char *dir) {
  for (int i = 0; i < R_KINDS; i++) {
    planted p;
    where(&p, i);
    whisper_buf *v = fz_get(alice, p.kind, p.key, p.key_len);
    FZ_ASSERT(v != NULL, "record %d is missing", i);
    char path[4096];
    snprintf(path, sizeof path, "%s/record-%d", dir, i);
    FILE *f = fopen(path, "wb");
    FZ_ASSERT(f != NULL, "cannot write %s", path);
    uint8_t sel = (uint8_t)i;
    FZ_ASSERT(fwrite(&sel, 1, 1, f) == 1 && fwrite(v->data, 1, v->len, f) == v->len &&
                  fclose(f) == 0,
              "cannot write %s", path);
    whisper_buf_free(v);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int seeded;
  setup_once();
  if (!seeded && getenv("FUZZ_WRITE_SEEDS")) write_seeds(getenv("FUZZ_WRITE_SEEDS"));
  seeded = 1;
  if (size == 0) return 0;
  planted p;
  where(&p, data[0] % R_KINDS);
  whisper_buf *orig = fz_get(alice, p.kind, p.key, p.key_len);
  FZ_ASSERT(orig != NULL, "record %d to plant over is missing", data[0] % R_KINDS);
  fz_put_raw(alice, p.kind, p.key, p.key_len, data + 1, size - 1);

  /* a fresh context: nothing of alice's is cached */
  whisper_ctx *kept = alice->ctx, *fresh = NULL;
  FZ_ASSERT(whisper_ctx_new(&fresh, alice->fs.outer) == WHISPER_OK, "ctx");
  FZ_ASSERT(whisper_ctx_rng_set(fresh, fz_rng_fn, &alice->rng) == WHISPER_OK, "rng");
  alice->ctx = fresh;
  run_calls();
  alice->ctx = kept;
  whisper_ctx_free(fresh);

  fz_put_raw(alice, p.kind, p.key, p.key_len, orig->data, orig->len);
  whisper_buf_free(orig);
  return 0;
}

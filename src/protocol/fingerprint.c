/* Safety numbers: Signal's version-2 fingerprints. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "protocol/pb.h"
#include "wire.pb-c.h"

#define FP_HALF 32 /* bytes of each party's hash in the scannable form */

/* H0 = SHA-512(0x0000 || key || id || key); Hj = SHA-512(Hj-1 || key). */
static void party_hash(uint8_t out[64], uint32_t iterations, const uint8_t *id, size_t id_len,
                       const uint8_t key[WH_PUB_LEN]) {
  static const uint8_t version[2] = {0, 0};
  crypto_hash_sha512_state st;
  crypto_hash_sha512_init(&st);
  crypto_hash_sha512_update(&st, version, 2);
  crypto_hash_sha512_update(&st, key, WH_PUB_LEN);
  crypto_hash_sha512_update(&st, id, id_len);
  crypto_hash_sha512_update(&st, key, WH_PUB_LEN);
  crypto_hash_sha512_final(&st, out);
  for (uint32_t i = 1; i < iterations; i++) {
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, out, 64);
    crypto_hash_sha512_update(&st, key, WH_PUB_LEN);
    crypto_hash_sha512_final(&st, out);
  }
}

/* 30 digits: six 5-byte big-endian chunks, each mod 100000. */
static void party_digits(char out[31], const uint8_t h[64]) {
  for (int c = 0; c < 6; c++) {
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) v = v << 8 | h[5 * c + i];
    snprintf(out + 5 * c, 6, "%05u", (unsigned)(v % 100000));
  }
}

int whisper_fingerprint(uint32_t iterations, const uint8_t *local_id, size_t local_id_len,
                        const uint8_t *local_key, size_t local_key_len, const uint8_t *remote_id,
                        size_t remote_id_len, const uint8_t *remote_key, size_t remote_key_len,
                        char displayable[WHISPER_FINGERPRINT_DISPLAY_LEN], whisper_buf **scannable) {
  static const uint8_t empty[1];
  uint8_t hl[64], hr[64];
  char dl[31], dr[31];
  if (scannable) *scannable = NULL;
  if (iterations < 1 || iterations > 1000000 || (local_id == NULL && local_id_len) ||
      (remote_id == NULL && remote_id_len))
    return WHISPER_EINVAL;
  if (!wh_pub_ok(local_key, local_key_len) || !wh_pub_ok(remote_key, remote_key_len))
    return WHISPER_EINVALIDKEY;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  party_hash(hl, iterations, local_id ? local_id : empty, local_id_len, local_key);
  party_hash(hr, iterations, remote_id ? remote_id : empty, remote_id_len, remote_key);
  if (displayable) {
    party_digits(dl, hl);
    party_digits(dr, hr);
    int local_first = strcmp(dl, dr) <= 0;
    memcpy(displayable, local_first ? dl : dr, 30);
    memcpy(displayable + 30, local_first ? dr : dl, 30);
    displayable[60] = '\0';
  }
  if (scannable) {
    Whisper__Wire__LogicalFingerprint l = WHISPER__WIRE__LOGICAL_FINGERPRINT__INIT;
    Whisper__Wire__LogicalFingerprint r = WHISPER__WIRE__LOGICAL_FINGERPRINT__INIT;
    Whisper__Wire__CombinedFingerprints c = WHISPER__WIRE__COMBINED_FINGERPRINTS__INIT;
    l.has_content = r.has_content = c.has_version = 1;
    l.content = (ProtobufCBinaryData){FP_HALF, hl};
    r.content = (ProtobufCBinaryData){FP_HALF, hr};
    c.version = WHISPER_FINGERPRINT_VERSION;
    c.local_fingerprint = &l;
    c.remote_fingerprint = &r;
    *scannable = whisper_buf_new(NULL, whisper__wire__combined_fingerprints__get_packed_size(&c));
    if (*scannable == NULL) return WHISPER_ENOMEM;
    whisper__wire__combined_fingerprints__pack(&c, (*scannable)->data);
  }
  return WHISPER_OK;
}

static Whisper__Wire__CombinedFingerprints *parse(const uint8_t *b, size_t len) {
  Whisper__Wire__CombinedFingerprints *c =
      whisper__wire__combined_fingerprints__unpack(&wh_pb_alloc, len, b);
  if (c == NULL) return NULL;
  if (!c->has_version || c->local_fingerprint == NULL || c->remote_fingerprint == NULL ||
      c->local_fingerprint->content.len != FP_HALF || c->remote_fingerprint->content.len != FP_HALF) {
    whisper__wire__combined_fingerprints__free_unpacked(c, &wh_pb_alloc);
    return NULL;
  }
  return c;
}

int whisper_fingerprint_compare(const uint8_t *ours, size_t ours_len, const uint8_t *scanned,
                                size_t scanned_len, int *match) {
  if (match == NULL || (ours == NULL && ours_len) || (scanned == NULL && scanned_len))
    return WHISPER_EINVAL;
  *match = 0;
  Whisper__Wire__CombinedFingerprints *a = parse(ours, ours_len);
  Whisper__Wire__CombinedFingerprints *b = parse(scanned, scanned_len);
  int rc = WHISPER_OK;
  if (a == NULL || b == NULL) {
    rc = WHISPER_EINVALIDMSG;
  } else if (a->version != b->version) {
    rc = WHISPER_EVERSION;
  } else {
    /* their "local" is our "remote", and the other way round */
    int same = wh_ct_eq(a->local_fingerprint->content.data, b->remote_fingerprint->content.data,
                        FP_HALF) &
               wh_ct_eq(a->remote_fingerprint->content.data, b->local_fingerprint->content.data,
                        FP_HALF);
    *match = same;
  }
  if (a) whisper__wire__combined_fingerprints__free_unpacked(a, &wh_pb_alloc);
  if (b) whisper__wire__combined_fingerprints__free_unpacked(b, &wh_pb_alloc);
  return rc;
}

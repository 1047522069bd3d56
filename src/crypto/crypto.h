/*
 * Internal crypto layer: thin wrappers over libsodium (X25519, SHA-512,
 * randomness, memory) and OpenSSL (SHA-256, HMAC-SHA256, AES-256-CBC and
 * -GCM), plus HKDF and Signal's XEdDSA.
 * Return 0 on success and -1 on failure unless stated; no error text here:
 * the protocol layer turns failures into codes and sentences.
 */
#ifndef WH_CRYPTO_H
#define WH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "whisper/core.h"

#define WH_KEY_LEN 32
#define WH_PUB_LEN 33
#define WH_SIG_LEN 64
#define WH_DJB_TYPE 0x05

/* The randomness source of a context. */
typedef struct wh_rng {
  whisper_rng_fn fn; /* NULL: libsodium */
  void *user;
} wh_rng;

int wh_random(const wh_rng *rng, uint8_t *out, size_t len);

/* Key pairs: pub is the 33-byte serialized form. */
typedef struct wh_keypair {
  uint8_t pub[WH_PUB_LEN];
  uint8_t priv[WH_KEY_LEN];
} wh_keypair;

void wh_clamp(uint8_t k[WH_KEY_LEN]);
/* Derives pub from priv (priv is clamped in place first). */
int wh_keypair_from_priv(wh_keypair *kp, const uint8_t priv[WH_KEY_LEN]);
int wh_keypair_generate(const wh_rng *rng, wh_keypair *kp);
/* 1 if key[0..33) is a well-formed serialized public key. */
int wh_pub_ok(const uint8_t *key, size_t len);

/* X25519 with a 33-byte peer key. Fails (-1) on an all-zero result, i.e. a
 * low-order peer key: libwhisper refuses those (a deliberate, documented
 * difference from libsignal, which never meets one from an honest peer). */
int wh_dh(uint8_t out[WH_KEY_LEN], const uint8_t priv[WH_KEY_LEN], const uint8_t pub[WH_PUB_LEN]);

/* SHA-256 and HMAC-SHA256 are OpenSSL's (the CPU's SHA extensions). */

/* One part of a message. */
typedef struct wh_iov {
  const uint8_t *p;
  size_t len;
} wh_iov;

/* HMAC-SHA256 of the parts, one after the other (an empty key is allowed). */
void wh_hmacv(uint8_t out[32], const uint8_t *key, size_t key_len, const wh_iov *parts, size_t n);
void wh_hmac(uint8_t out[32], const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len);

/* An HMAC-SHA256 keyed once and used for many messages (or fed a stream):
 * init, update..., final (which leaves it ready for the next message under
 * the same key), free. dup copies the state mid-message (the incremental
 * MAC of attachments). Each returns 0, or -1 when OpenSSL fails. */
typedef struct wh_hmac_ctx {
  void *ctx;
} wh_hmac_ctx;
int wh_hmac_init(wh_hmac_ctx *h, const uint8_t *key, size_t key_len);
int wh_hmac_dup(wh_hmac_ctx *to, const wh_hmac_ctx *from);
int wh_hmac_update(wh_hmac_ctx *h, const uint8_t *in, size_t len);
int wh_hmac_final(wh_hmac_ctx *h, uint8_t out[32]);
void wh_hmac_free(wh_hmac_ctx *h); /* accepts a freed or failed one */

/* SHA-256: one-shot, or streamed (new, update..., final frees it; free
 * drops one not finished). */
int wh_sha256(uint8_t out[32], const uint8_t *in, size_t len);
void *wh_sha256_new(void);
int wh_sha256_update(void *h, const uint8_t *in, size_t len);
int wh_sha256_final(void *h, uint8_t out[32]);
/* A copy of a running SHA-256 (freed with wh_sha256_free or final); NULL if
 * none can be made. */
void *wh_sha256_dup(const void *h);
void wh_sha256_free(void *h);

/* One step of a Signal chain (1:1 and sender-key chains alike): seed =
 * HMAC(ck, 0x01) (skipped when seed is NULL), then ck = HMAC(ck, 0x02),
 * keying HMAC once for both. */
void wh_chain_step(uint8_t seed[32], uint8_t ck[32]);
/* HKDF-SHA256 (RFC 5869); salt NULL means 32 zero bytes. out_len <= 255*32. */
void wh_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
             const uint8_t *ikm, size_t ikm_len, const char *info);

/* AES-256-CBC with PKCS#7. Encrypt writes wh_cbc_len(in_len) bytes. */
size_t wh_cbc_len(size_t in_len);
int wh_cbc_encrypt(uint8_t *out, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in,
                   size_t in_len);
/* Decrypts into out (at least in_len bytes); *out_len gets the plaintext
 * length. Fails on an empty input, a length not a multiple of 16 or bad
 * padding. */
int wh_cbc_decrypt(uint8_t *out, size_t *out_len, const uint8_t key[32], const uint8_t iv[16],
                   const uint8_t *in, size_t in_len);

/* AES-256-GCM (OpenSSL EVP), 12-byte nonce, 16-byte tag: out gets in_len
 * bytes. Decrypt fails (-1, out wiped) unless the tag verifies over ad
 * and the ciphertext. */
#define WH_GCM_NONCE_LEN 12
#define WH_GCM_TAG_LEN 16
int wh_gcm_encrypt(uint8_t *out, uint8_t tag[WH_GCM_TAG_LEN], const uint8_t key[32],
                   const uint8_t nonce[WH_GCM_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                   const uint8_t *in, size_t in_len);
int wh_gcm_decrypt(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WH_GCM_NONCE_LEN],
                   const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t in_len,
                   const uint8_t tag[WH_GCM_TAG_LEN]);

/* Constant-time equality of two buffers of the same length: 1 if equal. */
int wh_ct_eq(const uint8_t *a, const uint8_t *b, size_t len);
void wh_wipe(void *p, size_t len);

/* Signal's XEdDSA. */
int wh_xeddsa_sign(uint8_t sig[WH_SIG_LEN], const uint8_t priv[WH_KEY_LEN], const uint8_t *msg,
                   size_t msg_len, const uint8_t random[64]);
/* pub is the 32-byte u-coordinate (after the type byte). 0 if valid. */
int wh_xeddsa_verify(const uint8_t pub[32], const uint8_t *msg, size_t msg_len,
                     const uint8_t sig[WH_SIG_LEN]);

/* Initialises libsodium once (thread-safe); 0 on success. */
int wh_crypto_init(void);

#endif

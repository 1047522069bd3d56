/*
 * Internal crypto layer: thin wrappers over libsodium (X25519, SHA-2, HMAC,
 * memory) and OpenSSL (AES-256-CBC), plus HKDF and Signal's XEdDSA.
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

/* HMAC-SHA256 over one or more parts. */
void wh_hmac(uint8_t out[32], const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len);
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

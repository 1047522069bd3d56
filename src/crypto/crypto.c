/* Primitives: libsodium and OpenSSL, wrapped. Nothing here is hand-rolled. */
#include "crypto/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* Made once: OpenSSL 3 looks an algorithm up in its provider tables on
 * every init unless it is fetched. SHA-256 and HMAC-SHA256 are OpenSSL's
 * (they use the CPU's SHA extensions; libsodium's are portable C, 2 to 4
 * times slower here); an HMAC context is kept per thread and re-keyed for
 * each use, which costs less than making one. */
static EVP_CIPHER *aes_cbc;
static EVP_CIPHER *aes_gcm;
static EVP_MD *sha256_md;
static EVP_MAC *hmac_alg;
static pthread_key_t hmac_tls;
static int init_failed;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void hmac_tls_free(void *p) { EVP_MAC_CTX_free(p); }

static void crypto_init_once(void) {
  if (sodium_init() < 0 || pthread_key_create(&hmac_tls, hmac_tls_free) != 0) {
    init_failed = 1;
    return;
  }
  aes_cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
  aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
  hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (!sha256_md || !hmac_alg) init_failed = 1;
}

int wh_crypto_init(void) {
  pthread_once(&init_once, crypto_init_once);
  return init_failed ? -1 : 0;
}

int wh_random(const wh_rng *rng, uint8_t *out, size_t len) {
  if (rng && rng->fn) return rng->fn(rng->user, out, len) == 0 ? 0 : -1;
  randombytes_buf(out, len);
  return 0;
}

void wh_clamp(uint8_t k[WH_KEY_LEN]) {
  k[0] &= 0xF8;
  k[31] &= 0x7F;
  k[31] |= 0x40;
}

int wh_keypair_from_priv(wh_keypair *kp, const uint8_t priv[WH_KEY_LEN]) {
  if (kp->priv != priv) memcpy(kp->priv, priv, WH_KEY_LEN);
  wh_clamp(kp->priv);
  kp->pub[0] = WH_DJB_TYPE;
  return crypto_scalarmult_curve25519_base(kp->pub + 1, kp->priv) == 0 ? 0 : -1;
}

int wh_keypair_generate(const wh_rng *rng, wh_keypair *kp) {
  if (wh_random(rng, kp->priv, WH_KEY_LEN) != 0) return -1;
  return wh_keypair_from_priv(kp, kp->priv);
}

int wh_pub_ok(const uint8_t *key, size_t len) {
  return key != NULL && len >= WH_PUB_LEN && key[0] == WH_DJB_TYPE;
}

int wh_dh(uint8_t out[WH_KEY_LEN], const uint8_t priv[WH_KEY_LEN], const uint8_t pub[WH_PUB_LEN]) {
  /* libsodium returns -1 exactly when the shared point is all zeros. */
  if (crypto_scalarmult_curve25519(out, priv, pub + 1) != 0) {
    sodium_memzero(out, WH_KEY_LEN);
    return -1;
  }
  return 0;
}

/* --- SHA-256 and HMAC-SHA256 (OpenSSL) ------------------------------------------------- */

void *wh_sha256_new(void) {
  if (wh_crypto_init() != 0) return NULL;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (c && EVP_DigestInit_ex2(c, sha256_md, NULL) != 1) {
    EVP_MD_CTX_free(c);
    return NULL;
  }
  return c;
}

int wh_sha256_update(void *h, const uint8_t *in, size_t len) {
  return len == 0 || EVP_DigestUpdate(h, in, len) == 1 ? 0 : -1;
}

int wh_sha256_final(void *h, uint8_t out[32]) {
  unsigned n = 0;
  int ok = EVP_DigestFinal_ex(h, out, &n) == 1 && n == 32;
  EVP_MD_CTX_free(h);
  return ok ? 0 : -1;
}

void wh_sha256_free(void *h) { EVP_MD_CTX_free(h); }

void *wh_sha256_dup(const void *h) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (c && EVP_MD_CTX_copy_ex(c, h) != 1) {
    EVP_MD_CTX_free(c);
    return NULL;
  }
  return c;
}

int wh_sha256(uint8_t out[32], const uint8_t *in, size_t len) {
  unsigned n = 0;
  static const uint8_t empty[1];
  if (wh_crypto_init() != 0) return -1;
  return EVP_Digest(len ? in : empty, len, out, &n, sha256_md, NULL) == 1 ? 0 : -1;
}

/* HMAC with an empty key is HMAC with a block of zeros; OpenSSL 3.0 refuses
 * a zero-length key, so it gets the zeros. */
static const uint8_t *hmac_key_or_zeros(const uint8_t *key, size_t *len) {
  static const uint8_t zeros[32];
  if (*len) return key;
  *len = sizeof zeros;
  return zeros;
}

int wh_hmac_init(wh_hmac_ctx *h, const uint8_t *key, size_t key_len) {
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                          OSSL_PARAM_construct_end()};
  h->ctx = NULL;
  if (wh_crypto_init() != 0) return -1;
  EVP_MAC_CTX *c = EVP_MAC_CTX_new(hmac_alg);
  key = hmac_key_or_zeros(key, &key_len);
  if (c == NULL || EVP_MAC_init(c, key, key_len, params) != 1) {
    EVP_MAC_CTX_free(c);
    return -1;
  }
  h->ctx = c;
  return 0;
}

int wh_hmac_dup(wh_hmac_ctx *to, const wh_hmac_ctx *from) {
  to->ctx = from->ctx ? EVP_MAC_CTX_dup(from->ctx) : NULL;
  return to->ctx ? 0 : -1;
}

int wh_hmac_update(wh_hmac_ctx *h, const uint8_t *in, size_t len) {
  if (h->ctx == NULL) return -1;
  return len == 0 || EVP_MAC_update(h->ctx, in, len) == 1 ? 0 : -1;
}

/* The MAC of what was fed since the key (or the last final); the context
 * is then ready for the next message under the same key. */
int wh_hmac_final(wh_hmac_ctx *h, uint8_t out[32]) {
  size_t n = 0;
  if (h->ctx == NULL) return -1;
  if (EVP_MAC_final(h->ctx, out, &n, 32) != 1 || n != 32) return -1;
  return EVP_MAC_init(h->ctx, NULL, 0, NULL) == 1 ? 0 : -1; /* same key again */
}

void wh_hmac_free(wh_hmac_ctx *h) {
  EVP_MAC_CTX_free(h->ctx); /* OpenSSL wipes the key and its pads */
  h->ctx = NULL;
}

/* This thread's HMAC context, keyed with `key`; NULL if none can be made. */
static EVP_MAC_CTX *hmac_tls_keyed(const uint8_t *key, size_t key_len) {
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                          OSSL_PARAM_construct_end()};
  if (wh_crypto_init() != 0) return NULL;
  EVP_MAC_CTX *c = pthread_getspecific(hmac_tls);
  int fresh = c == NULL;
  if (fresh && ((c = EVP_MAC_CTX_new(hmac_alg)) == NULL || pthread_setspecific(hmac_tls, c) != 0)) {
    EVP_MAC_CTX_free(c);
    return NULL;
  }
  key = hmac_key_or_zeros(key, &key_len);
  return EVP_MAC_init(c, key, key_len, fresh ? params : NULL) == 1 ? c : NULL;
}

void wh_hmacv(uint8_t out[32], const uint8_t *key, size_t key_len, const wh_iov *parts, size_t n) {
  EVP_MAC_CTX *c = hmac_tls_keyed(key, key_len);
  size_t len = 0;
  int ok = c != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = parts[i].len == 0 || EVP_MAC_update(c, parts[i].p, parts[i].len) == 1;
  if (ok && EVP_MAC_final(c, out, &len, 32) == 1 && len == 32) return;
  /* Only when OpenSSL cannot allocate: the same MAC from libsodium. */
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  for (size_t i = 0; i < n; i++) crypto_auth_hmacsha256_update(&st, parts[i].p, parts[i].len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void wh_hmac(uint8_t out[32], const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len) {
  wh_iov part = {msg, msg_len};
  wh_hmacv(out, key, key_len, &part, 1);
}

void wh_chain_step(uint8_t seed[32], uint8_t ck[32]) {
  static const uint8_t one = 0x01, two = 0x02;
  size_t n = 0;
  EVP_MAC_CTX *c = hmac_tls_keyed(ck, 32); /* keyed once for both steps */
  if (c && (!seed || (EVP_MAC_update(c, &one, 1) == 1 && EVP_MAC_final(c, seed, &n, 32) == 1 &&
                      EVP_MAC_init(c, NULL, 0, NULL) == 1)) &&
      EVP_MAC_update(c, &two, 1) == 1 && EVP_MAC_final(c, ck, &n, 32) == 1)
    return;
  uint8_t key[32]; /* OpenSSL failed before ck changed */
  memcpy(key, ck, 32);
  if (seed) wh_hmac(seed, key, 32, &one, 1);
  wh_hmac(ck, key, 32, &two, 1);
  sodium_memzero(key, sizeof key);
}

void wh_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
             const uint8_t *ikm, size_t ikm_len, const char *info) {
  static const uint8_t zero_salt[32];
  uint8_t prk[32], t[32];
  size_t info_len = strlen(info), done = 0;
  uint8_t counter = 1;

  if (salt == NULL) {
    salt = zero_salt;
    salt_len = sizeof zero_salt;
  }
  wh_hmac(prk, salt, salt_len, ikm, ikm_len); /* extract */
  while (done < out_len) {                     /* expand */
    size_t n = out_len - done < 32 ? out_len - done : 32;
    wh_iov parts[3] = {{t, counter > 1 ? sizeof t : 0}, {(const uint8_t *)info, info_len},
                       {&counter, 1}};
    wh_hmacv(t, prk, sizeof prk, parts, 3);
    memcpy(out + done, t, n);
    done += n;
    counter++;
  }
  sodium_memzero(prk, sizeof prk);
  sodium_memzero(t, sizeof t);
}

size_t wh_cbc_len(size_t in_len) { return (in_len / 16 + 1) * 16; }

static int cbc_run(int enc, uint8_t *out, size_t *out_len, const uint8_t key[32],
                   const uint8_t iv[16], const uint8_t *in, size_t in_len) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n1 = 0, n2 = 0, ok = 0;
  if (c == NULL) return -1;
  if (in_len > (size_t)INT32_MAX - 32) goto done;
  const EVP_CIPHER *cipher = wh_crypto_init() == 0 && aes_cbc ? aes_cbc : EVP_aes_256_cbc();
  if (EVP_CipherInit_ex(c, cipher, NULL, key, iv, enc) != 1) goto done;
  if (EVP_CipherUpdate(c, out, &n1, in, (int)in_len) != 1) goto done;
  if (EVP_CipherFinal_ex(c, out + n1, &n2) != 1) goto done;
  *out_len = (size_t)n1 + (size_t)n2;
  ok = 1;
done:
  EVP_CIPHER_CTX_free(c); /* wipes the key schedule */
  return ok ? 0 : -1;
}

int wh_cbc_encrypt(uint8_t *out, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in,
                   size_t in_len) {
  size_t n = 0;
  static const uint8_t empty[1];
  return cbc_run(1, out, &n, key, iv, in ? in : empty, in_len);
}

int wh_cbc_decrypt(uint8_t *out, size_t *out_len, const uint8_t key[32], const uint8_t iv[16],
                   const uint8_t *in, size_t in_len) {
  if (in_len == 0 || in_len % 16 != 0) return -1;
  return cbc_run(0, out, out_len, key, iv, in, in_len);
}

/* AES-256-GCM with a 12-byte nonce and a 16-byte tag (profiles). OpenSSL
 * checks the tag in constant time. */
static int gcm_run(int enc, uint8_t *out, const uint8_t key[32], const uint8_t nonce[WH_GCM_NONCE_LEN],
                   const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t in_len,
                   uint8_t tag[WH_GCM_TAG_LEN]) {
  static const uint8_t empty[1];
  if (in_len > (size_t)INT32_MAX - 32 || ad_len > (size_t)INT32_MAX) return -1;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n = 0, ok = 0;
  if (c == NULL) return -1;
  const EVP_CIPHER *cipher = wh_crypto_init() == 0 && aes_gcm ? aes_gcm : EVP_aes_256_gcm();
  if (EVP_CipherInit_ex(c, cipher, NULL, NULL, NULL, enc) != 1) goto done;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WH_GCM_NONCE_LEN, NULL) != 1) goto done;
  if (EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1) goto done;
  if (ad_len && EVP_CipherUpdate(c, NULL, &n, ad, (int)ad_len) != 1) goto done;
  if (EVP_CipherUpdate(c, out, &n, in ? in : empty, (int)in_len) != 1) goto done;
  if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, WH_GCM_TAG_LEN, tag) != 1) goto done;
  if (EVP_CipherFinal_ex(c, out + n, &n) != 1) goto done;
  if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, WH_GCM_TAG_LEN, tag) != 1) goto done;
  ok = 1;
done:
  EVP_CIPHER_CTX_free(c); /* wipes the key schedule */
  return ok ? 0 : -1;
}

int wh_gcm_encrypt(uint8_t *out, uint8_t tag[WH_GCM_TAG_LEN], const uint8_t key[32],
                   const uint8_t nonce[WH_GCM_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                   const uint8_t *in, size_t in_len) {
  return gcm_run(1, out, key, nonce, ad, ad_len, in, in_len, tag);
}

int wh_gcm_decrypt(uint8_t *out, const uint8_t key[32], const uint8_t nonce[WH_GCM_NONCE_LEN],
                   const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t in_len,
                   const uint8_t tag[WH_GCM_TAG_LEN]) {
  uint8_t t[WH_GCM_TAG_LEN];
  memcpy(t, tag, sizeof t);
  int r = gcm_run(0, out, key, nonce, ad, ad_len, in, in_len, t);
  if (r != 0 && in_len) sodium_memzero(out, in_len); /* nothing unauthenticated is left */
  return r;
}

int wh_ct_eq(const uint8_t *a, const uint8_t *b, size_t len) {
  return sodium_memcmp(a, b, len) == 0;
}

void wh_wipe(void *p, size_t len) {
  if (p) sodium_memzero(p, len);
}

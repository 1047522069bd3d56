/* Primitives: libsodium and OpenSSL, wrapped. Nothing here is hand-rolled. */
#include "crypto/crypto.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* Made once: HKDF's extract step with Signal's default salt (32 zero bytes)
 * starts from the same keyed HMAC state every time, and OpenSSL 3 looks a
 * cipher up in its provider tables on every init unless it is fetched. */
static crypto_auth_hmacsha256_state zero_salt_state;
static EVP_CIPHER *aes_cbc;
static EVP_CIPHER *aes_gcm;
static int init_failed;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void crypto_init_once(void) {
  static const uint8_t zero_salt[32];
  if (sodium_init() < 0) {
    init_failed = 1;
    return;
  }
  crypto_auth_hmacsha256_init(&zero_salt_state, zero_salt, sizeof zero_salt);
  aes_cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
  aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
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

void wh_hmac(uint8_t out[32], const uint8_t *key, size_t key_len, const uint8_t *msg,
             size_t msg_len) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, msg, msg_len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void wh_chain_step(uint8_t seed[32], uint8_t ck[32]) {
  static const uint8_t one = 0x01, two = 0x02;
  crypto_auth_hmacsha256_state keyed, st;
  crypto_auth_hmacsha256_init(&keyed, ck, 32);
  if (seed) {
    st = keyed;
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, seed);
  }
  crypto_auth_hmacsha256_update(&keyed, &two, 1);
  crypto_auth_hmacsha256_final(&keyed, ck);
  sodium_memzero(&st, sizeof st);
  sodium_memzero(&keyed, sizeof keyed);
}

void wh_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
             const uint8_t *ikm, size_t ikm_len, const char *info) {
  uint8_t prk[32], t[32];
  size_t info_len = strlen(info), done = 0;
  uint8_t counter = 1;
  crypto_auth_hmacsha256_state keyed, st;

  /* extract */
  if (salt == NULL && wh_crypto_init() == 0)
    st = zero_salt_state;
  else if (salt == NULL)
    crypto_auth_hmacsha256_init(&st, (const uint8_t[32]){0}, 32);
  else
    crypto_auth_hmacsha256_init(&st, salt, salt_len);
  crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
  crypto_auth_hmacsha256_final(&st, prk);
  /* expand: every block is keyed by the PRK, so the keyed state is made once */
  crypto_auth_hmacsha256_init(&keyed, prk, sizeof prk);
  while (done < out_len) {
    size_t n = out_len - done < 32 ? out_len - done : 32;
    st = keyed;
    if (counter > 1) crypto_auth_hmacsha256_update(&st, t, sizeof t);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)info, info_len);
    crypto_auth_hmacsha256_update(&st, &counter, 1);
    crypto_auth_hmacsha256_final(&st, t);
    memcpy(out + done, t, n);
    done += n;
    counter++;
  }
  sodium_memzero(&st, sizeof st);
  sodium_memzero(&keyed, sizeof keyed);
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

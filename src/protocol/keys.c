/* The public key API: key pairs, signatures. */
#include <string.h>

#include "internal.h"

int whisper_keypair_generate(whisper_ctx *ctx, whisper_keypair_t *out) {
  wh_keypair kp;
  if (ctx == NULL || out == NULL) return WHISPER_EINVAL;
  if (wh_keypair_generate(&ctx->rng, &kp) != 0)
    return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
  memcpy(out->pub, kp.pub, sizeof out->pub);
  memcpy(out->priv, kp.priv, sizeof out->priv);
  wh_wipe(&kp, sizeof kp);
  return wh_ok(ctx);
}

int whisper_keypair_from_private(const uint8_t priv[32], whisper_keypair_t *out) {
  wh_keypair kp;
  if (out == NULL || priv == NULL) return WHISPER_EINVAL;
  if (wh_crypto_init() != 0 || wh_keypair_from_priv(&kp, priv) != 0) return WHISPER_EINTERNAL;
  memcpy(out->pub, kp.pub, sizeof out->pub);
  memcpy(out->priv, kp.priv, sizeof out->priv);
  wh_wipe(&kp, sizeof kp);
  return WHISPER_OK;
}

void whisper_keypair_wipe(whisper_keypair_t *kp) {
  if (kp) wh_wipe(kp, sizeof *kp);
}

int whisper_public_key_check(const uint8_t *key, size_t len) {
  return wh_pub_ok(key, len) ? WHISPER_OK : WHISPER_EINVALIDKEY;
}

int whisper_sign(whisper_ctx *ctx, const uint8_t priv[WHISPER_PRIVATE_KEY_LEN],
                 const uint8_t *msg, size_t msg_len, uint8_t sig[WHISPER_SIGNATURE_LEN]) {
  uint8_t z[64];
  if (ctx == NULL || sig == NULL || priv == NULL || (msg == NULL && msg_len)) return WHISPER_EINVAL;
  if (wh_random(&ctx->rng, z, sizeof z) != 0)
    return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
  int rc = wh_xeddsa_sign(sig, priv, msg, msg_len, z);
  wh_wipe(z, sizeof z);
  return rc == 0 ? wh_ok(ctx) : wh_fail(ctx, WHISPER_EINTERNAL, "signing failed");
}

int whisper_verify(const uint8_t *pub, size_t pub_len, const uint8_t *msg, size_t msg_len,
                   const uint8_t *sig, size_t sig_len) {
  if (!wh_pub_ok(pub, pub_len)) return WHISPER_EINVALIDKEY;
  if (sig == NULL || sig_len != WH_SIG_LEN || (msg == NULL && msg_len)) return WHISPER_EINVALIDSIG;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  return wh_xeddsa_verify(pub + 1, msg, msg_len, sig) == 0 ? WHISPER_OK : WHISPER_EINVALIDSIG;
}

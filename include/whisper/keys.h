/*
 * libwhisper: Curve25519 keys and Signal's XEdDSA signatures.
 *
 * Public keys are always in Signal's serialized form: 33 bytes, the type
 * byte 0x05 followed by the 32-byte little-endian X25519 u-coordinate.
 * Private keys are 32 bytes, clamped.
 */
#ifndef WHISPER_KEYS_H
#define WHISPER_KEYS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** A key pair the caller owns. Wipe it (whisper_keypair_wipe) when done. */
typedef struct whisper_keypair_t {
  uint8_t pub[WHISPER_PUBLIC_KEY_LEN];
  uint8_t priv[WHISPER_PRIVATE_KEY_LEN];
} whisper_keypair_t;

/** Makes a fresh key pair from the context's RNG. Returns WHISPER_OK,
 *  WHISPER_EINVAL or WHISPER_ERANDOM. */
WHISPER_API int whisper_keypair_generate(whisper_ctx *ctx, whisper_keypair_t *out);

/** Makes the key pair of a 32-byte private key (clamped first). Returns
 *  WHISPER_OK or WHISPER_EINVAL. */
WHISPER_API int whisper_keypair_from_private(const uint8_t priv[WHISPER_NONNULL 32],
                                             whisper_keypair_t *out);

/** Wipes a key pair. Accepts NULL. */
WHISPER_API void whisper_keypair_wipe(whisper_keypair_t *WHISPER_NULLABLE kp);

/** Checks a serialized public key: at least 33 bytes, type byte 0x05 (bytes
 *  past 33 are ignored, as libsignal does). Returns WHISPER_OK or
 *  WHISPER_EINVALIDKEY. */
WHISPER_API int whisper_public_key_check(const uint8_t *key, size_t len);

/** Signs `msg` with Signal's XEdDSA using `priv` (32 bytes) and 64 random
 *  bytes from the context's RNG. Returns WHISPER_OK, WHISPER_EINVAL or
 *  WHISPER_ERANDOM. */
WHISPER_API int whisper_sign(whisper_ctx *ctx,
                             const uint8_t priv[WHISPER_NONNULL WHISPER_PRIVATE_KEY_LEN],
                             const uint8_t *WHISPER_NULLABLE msg, size_t msg_len,
                             uint8_t sig[WHISPER_NONNULL WHISPER_SIGNATURE_LEN]);

/** Verifies an XEdDSA signature with a serialized public key. Returns
 *  WHISPER_OK, WHISPER_EINVALIDKEY (malformed key) or WHISPER_EINVALIDSIG. */
WHISPER_API int whisper_verify(const uint8_t *pub, size_t pub_len,
                               const uint8_t *WHISPER_NULLABLE msg, size_t msg_len,
                               const uint8_t *sig, size_t sig_len);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

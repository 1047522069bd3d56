/*
 * libwhisper: sender keys (Signal's SenderKey messages: one ciphertext
 * for many devices), byte-compatible with libsignal 0.52.x.
 *
 * Each sending device has, per distribution (a 16-byte UUID in RFC 4122
 * byte order: the set of devices a message goes to, e.g. a conversation
 * group's), a chain of message keys and a signing key. It tells every
 * receiving device about them once, with a SenderKeyDistributionMessage
 * (SKDM) sent through the 1:1 sessions; after that a message is encrypted
 * once and the server fans the same bytes out to everyone.
 *
 * In the API, "group" names only a conversation group (client.h); the
 * functions here say "sender_key".
 *
 * Receivers keep up to 5 chains per (sender, distribution), newest first,
 * and up to 2000 skipped message keys per chain; a message more than 25000
 * iterations ahead is refused. When a member leaves, the sender rotates
 * (whisper_sender_key_rotate()) and distributes the new SKDM to those who remain.
 */
#ifndef WHISPER_SENDER_KEY_H
#define WHISPER_SENDER_KEY_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

#define WHISPER_DISTRIBUTION_ID_LEN 16
#define WHISPER_MSG_SENDERKEY 7 /* Signal's type number for a SenderKeyMessage */

/**
 * This device's SKDM for the distribution: the sender key (a new chain and
 * signing key) is generated on the first call; later calls return the
 * current one (whisper_sender_key_rotate() generates a new one). Returns WHISPER_OK,
 * WHISPER_EINVAL, WHISPER_ESTATE (no local identity), WHISPER_ERANDOM or a
 * store error.
 */
WHISPER_API int whisper_sender_key_generate(
    whisper_ctx *ctx, const uint8_t distribution_id[WHISPER_NONNULL WHISPER_DISTRIBUTION_ID_LEN],
    whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL skdm_out);

/**
 * Starts a new chain for the distribution (new chain id, chain key and
 * signing key) and returns its SKDM; the old chain is no longer used to
 * send. What an app does when a member leaves. Returns as
 * whisper_sender_key_generate().
 */
WHISPER_API int whisper_sender_key_rotate(
    whisper_ctx *ctx, const uint8_t distribution_id[WHISPER_NONNULL WHISPER_DISTRIBUTION_ID_LEN],
    whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL skdm_out);

/**
 * Processes an SKDM received from (sender, device_id). A repeated SKDM
 * leaves the chain where it is. Returns WHISPER_OK, WHISPER_EINVAL (also
 * for an SKDM claiming to come from this very device), WHISPER_EINVALIDMSG
 * (malformed) or a store error.
 */
WHISPER_API int whisper_sender_key_process(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                                      const uint8_t *skdm, size_t skdm_len);

/**
 * Encrypts a message once for the distribution, signed with this device's sender signing
 * key. Returns WHISPER_OK, WHISPER_ENOSESSION (no own state for the
 * distribution: call whisper_sender_key_generate first), WHISPER_ESTATE (the chain
 * reached 2^32 - 1 iterations: rotate), WHISPER_EROLLEDBACK (the state is
 * from before whisper_sessions_distrust(): rotate), WHISPER_ERANDOM or an
 * error.
 */
WHISPER_API int whisper_sender_key_encrypt(
    whisper_ctx *ctx, const uint8_t distribution_id[WHISPER_NONNULL WHISPER_DISTRIBUTION_ID_LEN],
    const uint8_t *WHISPER_NULLABLE plaintext, size_t plaintext_len,
    whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);

/**
 * Decrypts a SenderKeyMessage from (sender, device_id). The signature is
 * checked first. Returns WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EINVALIDSIG,
 * WHISPER_ENOSESSION (no sender key for that sender, distribution or chain),
 * WHISPER_EDUPLICATE, WHISPER_ETOOFAR, or an error; on failure nothing
 * changes.
 */
WHISPER_API int whisper_sender_key_decrypt(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                                      const uint8_t *body, size_t body_len,
                                      whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL plaintext_out);

/** A member device, for whisper_sender_key_distribute(). */
typedef struct whisper_device_t {
  const char *name;
  uint32_t device_id;
} whisper_device_t;

/** One result of whisper_sender_key_distribute(), filled in by the library. A
 *  versioned struct (docs/api.md): the caller sets the first element's
 *  `size` (WHISPER_ENVELOPE_INIT); fields are only appended. */
typedef struct whisper_envelope_t {
  size_t size;       /* sizeof(whisper_envelope_t) as the caller was built */
  int status;        /* WHISPER_OK, or why this device got nothing */
  int type;          /* WHISPER_MSG_PREKEY or WHISPER_MSG_WHISPER */
  whisper_buf *WHISPER_NULLABLE body; /* the 1:1 message (NULL when status is not
                                      * WHISPER_OK); the caller frees it */
} whisper_envelope_t;

/** The first released (1.0) size of whisper_envelope_t. */
#define WHISPER_ENVELOPE_SIZE_1_0 (offsetof(whisper_envelope_t, body) + sizeof(whisper_buf *))
/** Initializer: `whisper_envelope_t env = WHISPER_ENVELOPE_INIT;` */
#define WHISPER_ENVELOPE_INIT {.size = sizeof(whisper_envelope_t)}

/**
 * Wraps this device's current SKDM for the distribution (creating the
 * state if needed) in a Signal Content message (field 7) and encrypts it
 * through the 1:1 session with each of the `n` devices. `out` is an array
 * of `n` envelopes the caller provides; each gets its own status (a
 * device without a session, or whose identity changed, does not stop the
 * others). `out[0].size` gives the element size the array is stepped by
 * (at least WHISPER_ENVELOPE_SIZE_1_0, else WHISPER_EINVAL before anything
 * is written); the library writes it into every element's `size` and
 * leaves fields it does not know alone. Returns WHISPER_OK when the SKDM
 * exists (inspect each status), WHISPER_EINVAL, or an error for the whole
 * call.
 */
WHISPER_API int whisper_sender_key_distribute(
    whisper_ctx *ctx, const uint8_t distribution_id[WHISPER_NONNULL WHISPER_DISTRIBUTION_ID_LEN],
    const whisper_device_t *WHISPER_NULLABLE devices, size_t n, uint64_t now_ms,
    whisper_envelope_t *WHISPER_NULLABLE out);

/**
 * The receiving side of whisper_sender_key_distribute(): decrypts a 1:1 message
 * from (sender, device_id) and processes the SKDM it carries. Returns the
 * codes of whisper_session_decrypt() and whisper_sender_key_process(), or
 * WHISPER_EINVALIDMSG when the content carries no SKDM; on failure nothing
 * changes.
 */
WHISPER_API int whisper_sender_key_receive_distribution(whisper_ctx *ctx, const char *sender,
                                                   uint32_t device_id, int type,
                                                   const uint8_t *body, size_t body_len);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

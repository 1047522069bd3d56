/*
 * libwhisper: the local identity, prekeys, and Signal 1:1 sessions
 * (X3DH and the Double Ratchet, message version 3, byte-compatible with
 * libsignal 0.52.x).
 *
 * A device (this one, or a remote one) is addressed by (name, device_id):
 * `name` is a NUL-terminated string of 1..WHISPER_NAME_MAX (255) bytes
 * (libwhisper does not check their encoding; UTF-8 is expected), and
 * `device_id` any uint32 but UINT32_MAX, which stands for every device
 * (WHISPER_ALL_DEVICES). Every function here refuses another name or id
 * with WHISPER_EINVAL. These are the session layer's limits, as wide as
 * libsignal's addresses; the engine and the server (client.h, server.h)
 * take only account names, 1..WHISPER_ACCOUNT_NAME_MAX (64) bytes of
 * [a-z0-9._-], and device ids 1..WHISPER_DEVICE_ID_MAX (2^31 - 1).
 *
 * Keys in whisper_prekey_bundle_t are exactly 33 bytes (0x05 then the
 * u-coordinate) and the signature exactly 64: a caller reading a longer
 * serialized key (libsignal ignores bytes past 33) keeps the first 33; a
 * signature of another length is an invalid signature.
 *
 * Identity trust: the first identity key seen for an address is trusted
 * (trust on first use). A different key later is refused with
 * WHISPER_EUNTRUSTED (when starting a session, on a received PreKey
 * message, and when encrypting on an existing session) until the app calls
 * whisper_identity_trust() with the new key.
 *
 * Every call here that changes state runs in one store transaction.
 */
#ifndef WHISPER_SESSION_H
#define WHISPER_SESSION_H

#include "core.h"
#include "keys.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** Message types, as Signal numbers them (the transport carries them). */
#define WHISPER_MSG_WHISPER 2 /* SignalMessage */
#define WHISPER_MSG_PREKEY 3  /* PreKeySignalMessage */

/** The longest name of an address, in bytes. */
#define WHISPER_NAME_MAX 255

/** With whisper_identity_trust(): the key is trusted for every device of
 *  the name, seen or not yet seen. */
#define WHISPER_ALL_DEVICES UINT32_MAX

/**
 * Creates this device's identity: a new identity key pair, stored with the
 * name, device id and registration id (1..16380; 0 picks a random one).
 * Also makes signed prekey 1. Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ESTATE (an identity exists already), WHISPER_ERANDOM or a store
 * error.
 */
WHISPER_API int whisper_identity_generate(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                        uint32_t registration_id, uint64_t now_ms);

/** Like whisper_identity_generate() with a given identity key pair (imports,
 *  tests). Returns as whisper_identity_generate(), or WHISPER_EINVALIDKEY
 *  (not a key pair). */
WHISPER_API int whisper_identity_import(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                        uint32_t registration_id,
                                        const whisper_keypair_t *identity);

/** This device's identity: any of the outputs may be NULL. `name_out`, if
 *  not NULL, receives a pointer valid until the next call on `ctx`.
 *  Returns WHISPER_OK or WHISPER_ESTATE when there is no identity yet. */
WHISPER_API int whisper_identity_get(whisper_ctx *ctx,
                                     uint8_t pub[WHISPER_NULLABLE WHISPER_PUBLIC_KEY_LEN],
                                     uint32_t *WHISPER_NULLABLE registration_id,
                                     const char *WHISPER_NULLABLE *WHISPER_NULLABLE name_out,
                                     uint32_t *WHISPER_NULLABLE device_id);

/** Trusts `key` (33 bytes) for (name, device_id), or, with
 *  WHISPER_ALL_DEVICES, for every device of the name: it then becomes the
 *  key expected from each of them, seen or not yet seen (as a Signal
 *  account's devices share one identity key), until a later decision for
 *  one device. The newest decision wins. Returns WHISPER_OK,
 *  WHISPER_EINVAL, WHISPER_EINVALIDKEY or a store error. */
WHISPER_API int whisper_identity_trust(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                       const uint8_t *key, size_t key_len);

/** whisper_identity_trust() at `now_ms`: when the key replaces a different
 *  one, the change is recorded with that time (whisper_identity_info()).
 *  whisper_identity_trust() records a change without a time. Returns as
 *  whisper_identity_trust(). */
WHISPER_API int whisper_identity_trust_at(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                          const uint8_t *key, size_t key_len, uint64_t now_ms);

/** What is known of a remote device's identity. A versioned struct
 *  (docs/api.md): the caller sets `size` (WHISPER_IDENTITY_INFO_INIT);
 *  fields are only appended. */
typedef struct whisper_identity_info_t {
  size_t size;                         /* sizeof(whisper_identity_info_t), set by the caller */
  uint8_t key[WHISPER_PUBLIC_KEY_LEN]; /* the key expected from the device */
  int changed;                         /* 1 if it replaced a different key */
  uint64_t changed_at_ms;              /* when (0: not changed, or the time was not given) */
} whisper_identity_info_t;

/** The first released (1.0) size of whisper_identity_info_t. */
#define WHISPER_IDENTITY_INFO_SIZE_1_0 \
  (offsetof(whisper_identity_info_t, changed_at_ms) + sizeof(uint64_t))
/** Initializer: `whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;` */
#define WHISPER_IDENTITY_INFO_INIT {.size = sizeof(whisper_identity_info_t)}

/** The key expected from (name, device_id) (the device's own or a
 *  name-wide one, whichever was decided last) and whether and when it
 *  changed. A message signed by any other key is refused with
 *  WHISPER_EUNTRUSTED, changing nothing, until the app trusts the new key.
 *  `out->size` must be set (WHISPER_IDENTITY_INFO_INIT): a size smaller
 *  than WHISPER_IDENTITY_INFO_SIZE_1_0 is refused with WHISPER_EINVAL; the
 *  library writes only the fields both it and the caller's struct have
 *  (`size` kept; newer fields it does not know are left alone). Returns
 *  WHISPER_OK, WHISPER_EINVAL, WHISPER_ENOTFOUND or an error. */
WHISPER_API int whisper_identity_info(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                      whisper_identity_info_t *out);

/** The identity key last seen for (name, device_id). Returns WHISPER_OK or
 *  WHISPER_ENOTFOUND. */
WHISPER_API int whisper_identity_remote(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                        uint8_t key[WHISPER_NONNULL WHISPER_PUBLIC_KEY_LEN]);

/** Makes and stores a signed prekey with id `id`, signed by the identity,
 *  timestamped `now_ms`. Returns WHISPER_OK or an error. */
WHISPER_API int whisper_signed_prekey_generate(whisper_ctx *ctx, uint32_t id, uint64_t now_ms);

/**
 * Rotates the signed prekey when the current one is older than `max_age_ms`
 * (0: rotate now): a new one (next id) becomes current, and the replaced
 * one is kept for `grace_ms` so that PreKey messages built from bundles
 * fetched before the rotation still work. Signed prekeys replaced more
 * than `grace_ms` ago are deleted. `*rotated` (may be NULL) tells whether a
 * new one was made. Call it regularly (e.g. daily, with Signal's 2-day age
 * and 30-day grace). Returns WHISPER_OK, WHISPER_ESTATE or an error.
 */
WHISPER_API int whisper_signed_prekey_rotate(whisper_ctx *ctx, uint64_t now_ms, uint64_t max_age_ms,
                                             uint64_t grace_ms, int *WHISPER_NULLABLE rotated);

/** The number of one-time prekeys not used yet, to replenish the server's
 *  supply (whisper_prekeys_generate) when it runs low. Returns WHISPER_OK,
 *  WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_prekeys_count(whisper_ctx *ctx, uint32_t *count);

/** Makes and stores `count` one-time prekeys with ids following the last
 *  one made (ids only increase); the first id is written to `first_id`
 *  (may be NULL). Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE (no
 *  local identity), WHISPER_ERANDOM or a store error. */
WHISPER_API int whisper_prekeys_generate(whisper_ctx *ctx, uint32_t count,
                                         uint32_t *WHISPER_NULLABLE first_id);

/** Stores a signed prekey made elsewhere (migration from another library,
 *  test vectors) and makes it the current one. The signature must verify
 *  with this device's identity key. Returns WHISPER_OK, WHISPER_EINVAL,
 *  WHISPER_EINVALIDKEY, WHISPER_EINVALIDSIG, WHISPER_ESTATE or a store
 *  error. */
WHISPER_API int whisper_signed_prekey_import(
    whisper_ctx *ctx, uint32_t id, const whisper_keypair_t *key,
    const uint8_t signature[WHISPER_NONNULL WHISPER_SIGNATURE_LEN], uint64_t timestamp_ms);

/** Stores a one-time prekey made elsewhere under `id`. Later generated ids
 *  stay above every imported one. Returns WHISPER_OK, WHISPER_EINVAL,
 *  WHISPER_EINVALIDKEY, WHISPER_ESTATE or a store error. */
WHISPER_API int whisper_prekey_import(whisper_ctx *ctx, uint32_t id, const whisper_keypair_t *key);

/** What a device publishes so that others can start sessions with it. A
 *  versioned struct (docs/api.md): the caller sets `size`
 *  (WHISPER_PREKEY_BUNDLE_INIT), for a bundle it fills in as well as one
 *  it gives; fields are only appended (the post-quantum prekey will be). */
typedef struct whisper_prekey_bundle_t {
  size_t size; /* sizeof(whisper_prekey_bundle_t) as the caller was built */
  uint32_t registration_id;
  uint32_t device_id;
  int has_prekey; /* 1 if prekey_id/prekey are set */
  uint32_t prekey_id;
  uint8_t prekey[WHISPER_PUBLIC_KEY_LEN];
  uint32_t signed_prekey_id;
  uint8_t signed_prekey[WHISPER_PUBLIC_KEY_LEN];
  uint8_t signed_prekey_signature[WHISPER_SIGNATURE_LEN];
  uint8_t identity_key[WHISPER_PUBLIC_KEY_LEN];
} whisper_prekey_bundle_t;

/** The first released (1.0) size of whisper_prekey_bundle_t: the smallest
 *  the library accepts. */
#define WHISPER_PREKEY_BUNDLE_SIZE_1_0 \
  (offsetof(whisper_prekey_bundle_t, identity_key) + WHISPER_PUBLIC_KEY_LEN)
/** Initializer: `whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;` */
#define WHISPER_PREKEY_BUNDLE_INIT {.size = sizeof(whisper_prekey_bundle_t)}

/**
 * Fills `out` with this device's bundle: the newest signed prekey and,
 * if `with_prekey`, a newly made one-time prekey. `out->size` must be set
 * (WHISPER_PREKEY_BUNDLE_INIT): a size smaller than
 * WHISPER_PREKEY_BUNDLE_SIZE_1_0 is refused with WHISPER_EINVAL, changing
 * nothing; the library writes only the fields both it and the caller's
 * struct have (`size` kept, newer fields left alone). Returns WHISPER_OK,
 * WHISPER_EINVAL, WHISPER_ESTATE (no identity) or an error; on an error
 * other than WHISPER_EINVAL the fields it knows are zeroed.
 */
WHISPER_API int whisper_bundle_generate(whisper_ctx *ctx, int with_prekey,
                                        whisper_prekey_bundle_t *out);

/** Serializes a bundle (libwhisper's own protobuf form) for transport.
 *  Only the fields both the library and the caller's struct have are read
 *  (its `size` below WHISPER_PREKEY_BUNDLE_SIZE_1_0: WHISPER_EINVAL).
 *  Returns WHISPER_OK, WHISPER_EINVAL or WHISPER_ENOMEM. */
WHISPER_API int whisper_bundle_encode(const whisper_prekey_bundle_t *bundle,
                                      whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** Parses a serialized bundle from untrusted bytes into `out`, whose
 *  `size` the caller sets (WHISPER_PREKEY_BUNDLE_INIT; the library writes
 *  only the fields both it and the caller's struct have). Keys longer
 *  than 33 bytes keep their first 33, as libsignal reads them. Returns
 *  WHISPER_OK, WHISPER_EINVAL (NULL, or `out->size` below
 *  WHISPER_PREKEY_BUNDLE_SIZE_1_0: `out` unchanged), WHISPER_EINVALIDMSG
 *  (malformed or a field missing), WHISPER_EINVALIDKEY (a malformed key)
 *  or WHISPER_EINVALIDSIG (a signature that is not 64 bytes); on those
 *  failures the fields it knows are zeroed. The signature itself is
 *  checked by whisper_session_start(). */
WHISPER_API int whisper_bundle_decode(const uint8_t *data, size_t len,
                                      whisper_prekey_bundle_t *out);

/**
 * Starts an outgoing session with (name, device_id) from its bundle (X3DH,
 * initiator). A current session with that address is archived, not lost.
 * The bundle's `size` below WHISPER_PREKEY_BUNDLE_SIZE_1_0 is refused
 * (WHISPER_EINVAL); only the fields both sides have are read.
 * Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_EINVALIDKEY (a malformed key
 * in the bundle), WHISPER_EINVALIDSIG (the signed prekey's signature does
 * not verify), WHISPER_EUNTRUSTED, WHISPER_ESTATE (no local identity), or a
 * store error.
 */
WHISPER_API int whisper_session_start(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                      const whisper_prekey_bundle_t *bundle, uint64_t now_ms);

/**
 * Distrusts every session's sending chain as it is now, and this device's
 * own sender keys: whisper_session_encrypt() refuses them
 * (WHISPER_EROLLEDBACK) until a new session is started
 * (whisper_session_start()) or the peer's next message turns the ratchet,
 * and whisper_sender_key_encrypt() until the sender key is rotated.
 * For a store found restored from a copy (client.h's anchor): its sessions
 * may be behind keys already used, and must not encrypt again. Receiving
 * is not affected. Returns WHISPER_OK or a store error.
 */
WHISPER_API int whisper_sessions_distrust(whisper_ctx *ctx);

/** Sets *out to 1 if there is a session with (name, device_id) that can
 *  send (a current state with a sender chain whose pending prekey, if
 *  any, is at most 30 days old), else 0. Returns WHISPER_OK,
 *  WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_session_exists(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                       uint64_t now_ms, int *out);

/**
 * Encrypts `plaintext` for (name, device_id). `*type_out` receives
 * WHISPER_MSG_PREKEY until this device has decrypted a message on the
 * session, then WHISPER_MSG_WHISPER. Returns WHISPER_OK,
 * WHISPER_ENOSESSION, WHISPER_EUNTRUSTED (the stored remote identity is no
 * longer trusted), WHISPER_EROLLEDBACK (the session is behind keys already
 * used with that device, by its send marks, or from before
 * whisper_sessions_distrust(): start a new session), or an error.
 */
WHISPER_API int whisper_session_encrypt(whisper_ctx *ctx, const char *name, uint32_t device_id,
                                        const uint8_t *WHISPER_NULLABLE plaintext,
                                        size_t plaintext_len, uint64_t now_ms, int *type_out,
                                        whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);

/**
 * Decrypts a message of `type` (WHISPER_MSG_PREKEY or WHISPER_MSG_WHISPER)
 * from (name, device_id). A PreKey message sets up the session (X3DH,
 * responder) and consumes its one-time prekey, in the same transaction.
 * Returns WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EDUPLICATE,
 * WHISPER_ETOOFAR, WHISPER_ENOSESSION (a SignalMessage and no session),
 * WHISPER_EUNTRUSTED, or an error; on any failure nothing changes.
 */
WHISPER_API int whisper_session_decrypt(
    whisper_ctx *ctx, const char *name, uint32_t device_id, int type, const uint8_t *body,
    size_t body_len, whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL plaintext_out);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

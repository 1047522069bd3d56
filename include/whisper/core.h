/*
 * libwhisper: core types, errors, buffers, randomness and the context.
 *
 * Conventions for the whole API:
 *  - Every fallible function returns int: WHISPER_OK (0) or a negative
 *    WHISPER_E* code. A failing call changes no state unless its
 *    documentation says otherwise, and the context keeps a sentence
 *    describing the failure, read with whisper_ctx_last_error().
 *  - Outputs come first. A whisper_buf returned through `**out` belongs to
 *    the caller, who releases it with whisper_buf_free(). Sizes are size_t.
 *  - Handles are opaque; the _new and _open functions make them, the _free and
 *    _close functions release them
 *    and accept NULL.
 *  - Threads: a whisper_ctx (and everything made from it) is used from one
 *    thread at a time. Separate contexts may be used from separate threads
 *    at once. The library keeps no thread-local state.
 *  - The library never reads the clock: calls that need the time take
 *    `now_ms`, milliseconds since the Unix epoch.
 */
#ifndef WHISPER_CORE_H
#define WHISPER_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define WHISPER_API
#else
#  define WHISPER_API __attribute__((visibility("default")))
#endif

/*
 * Nullability, for Swift's importer and clang's checks. Every pointer in
 * the public headers is non-NULL unless marked WHISPER_NULLABLE: each
 * header's declarations sit in a WHISPER_NONNULL_BEGIN/END region, and a
 * pointer to a pointer spells both levels (an out-parameter is
 * `T *WHISPER_NULLABLE *WHISPER_NONNULL out`: the caller's variable must
 * exist, what the call stores in it may be NULL on failure). A byte input
 * that may be empty (a plaintext, a message body) is WHISPER_NULLABLE:
 * NULL with length 0 is the empty input. Under clang these are _Nullable,
 * _Nonnull and `#pragma clang assume_nonnull`; under other compilers they
 * expand to nothing. bindings/swift checks them (tests/bindings).
 */
#if defined(__clang__)
#  define WHISPER_NULLABLE _Nullable
#  define WHISPER_NONNULL _Nonnull
#  define WHISPER_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#  define WHISPER_NONNULL_END _Pragma("clang assume_nonnull end")
#else
#  define WHISPER_NULLABLE
#  define WHISPER_NONNULL
#  define WHISPER_NONNULL_BEGIN
#  define WHISPER_NONNULL_END
#endif

WHISPER_NONNULL_BEGIN

#define WHISPER_VERSION_MAJOR 0
#define WHISPER_VERSION_MINOR 1
#define WHISPER_VERSION_PATCH 0
/** The version as one number: major * 10000 + minor * 100 + patch. */
#define WHISPER_VERSION_NUMBER \
  (WHISPER_VERSION_MAJOR * 10000 + WHISPER_VERSION_MINOR * 100 + WHISPER_VERSION_PATCH)

/** Error codes. Stable: values are never reused for another meaning. */
enum {
  WHISPER_OK = 0,
  /** An argument is invalid (NULL where not allowed, bad length, bad name). */
  WHISPER_EINVAL = -1,
  /** Memory could not be allocated. */
  WHISPER_ENOMEM = -2,
  /** A received message is malformed, fails its MAC, cannot be decrypted,
   *  has an unsupported version, names a prekey we do not hold, or belongs
   *  to a chain too old to be kept. State is unchanged. */
  WHISPER_EINVALIDMSG = -3,
  /** A received message was already decrypted (or its key is no longer
   *  kept). State is unchanged. */
  WHISPER_EDUPLICATE = -4,
  /** A signature (signed prekey, group message) does not verify. */
  WHISPER_EINVALIDSIG = -5,
  /** A key given by the caller is malformed (wrong length or type byte). */
  WHISPER_EINVALIDKEY = -6,
  /** No usable session (or sender key) for that address. */
  WHISPER_ENOSESSION = -7,
  /** The remote identity key changed and is not trusted yet; see
   *  whisper_identity_trust(). State is unchanged. */
  WHISPER_EUNTRUSTED = -8,
  /** The message's counter is more than 25000 ahead of its chain. */
  WHISPER_ETOOFAR = -9,
  /** A record asked of the store does not exist. */
  WHISPER_ENOTFOUND = -10,
  /** The store failed (I/O, corruption, a failed transaction). */
  WHISPER_ESTORE = -11,
  /** A stored record cannot be read (corrupt, or from a newer version). */
  WHISPER_ECORRUPT = -12,
  /** The random number generator failed. */
  WHISPER_ERANDOM = -13,
  /** The operation is not valid in the current state (e.g. no local
   *  identity yet). */
  WHISPER_ESTATE = -14,
  /** An internal error: a crypto primitive failed unexpectedly. */
  WHISPER_EINTERNAL = -15,
  /** A peer's data has a version this side cannot compare or read (e.g. a
   *  scanned fingerprint of another version). */
  WHISPER_EVERSION = -16,
  /** A key does not open what it should: the store key (or passphrase) is
   *  not the one the store was made with, or an attachment's key is not
   *  the one its blob was made with. */
  WHISPER_EKEY = -17,
  /** The store is locked by another process for longer than the timeout
   *  (whisper_server_open_from(): the source has too many connections). */
  WHISPER_EBUSY = -18,
  /** Refused: the server sent what no one entitled made (a device its
   *  account did not sign, a member no admin added, a message filed under
   *  another conversation, an older device list). */
  WHISPER_EFORGED = -19,
  /** The state is older than what was already used (a store, or one of its
   *  records, restored from a copy): using it would reuse keys. Start a new
   *  session. */
  WHISPER_EROLLEDBACK = -20,
  /** Not allowed: only a message's sender may edit or delete it, and only
   *  within its window (15 minutes for an edit, 48 hours by default for a
   *  delete); a message deleted for everyone cannot be changed. */
  WHISPER_EDENIED = -21,
  /** The account is blocked (whisper_client_block()): nothing goes to it
   *  until it is unblocked. */
  WHISPER_EBLOCKED = -22,
  /** Data ended before its stated size (an attachment blob cut short). */
  WHISPER_ETRUNCATED = -23,
  /** Data was altered: a MAC or a digest does not verify (an attachment
   *  blob, a downloaded chunk). */
  WHISPER_EINTEGRITY = -24,
  /** A stated size is not the data's (an attachment's pointer and its
   *  blob disagree). */
  WHISPER_ESIZE = -25,
  /** Larger than allowed (an attachment above the configured maximum). */
  WHISPER_ETOOBIG = -26
};

/** A short, static English description of an error code. Never NULL. */
WHISPER_API const char *whisper_strerror(int code);

/** The library's version as WHISPER_VERSION_NUMBER; nonzero. */
WHISPER_API unsigned whisper_version(void);

/** A byte buffer owned by the caller once returned. `data` may be NULL only
 *  when `len` is 0. Free with whisper_buf_free(); the bytes are wiped. */
typedef struct whisper_buf {
  uint8_t *WHISPER_NULLABLE data;
  size_t len;
} whisper_buf;

/** Wipes and frees a buffer returned by the library. Accepts NULL. */
WHISPER_API void whisper_buf_free(whisper_buf *WHISPER_NULLABLE buf);

/** Allocates a buffer of `len` bytes (zeroed) for a store implementation to
 *  return through whisper_store_ops. Returns NULL when out of memory. */
WHISPER_API whisper_buf *WHISPER_NULLABLE whisper_buf_new(const uint8_t *WHISPER_NULLABLE data,
                                                          size_t len);

/** A random number source: fill `out` with `len` random bytes; return 0 on
 *  success and nonzero on failure. */
typedef int (*whisper_rng_fn)(void *WHISPER_NULLABLE user, uint8_t *out, size_t len);

/** The context: the local device's handle (store, randomness, last error). */
typedef struct whisper_ctx whisper_ctx;

struct whisper_store;

/**
 * Makes a context on `store`, which the context borrows: the store must
 * outlive the context. The default RNG is libsodium's randombytes_buf().
 * Returns WHISPER_OK, WHISPER_EINVAL (NULL argument), WHISPER_ENOMEM, or
 * WHISPER_EINTERNAL if libsodium cannot be initialised.
 */
WHISPER_API int whisper_ctx_new(whisper_ctx *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                struct whisper_store *store);

/**
 * Frees a context. Accepts NULL. A context keeps, between calls, the
 * decoded session records of the last few devices it used (each checked
 * against the store's bytes at every call: other contexts and processes
 * may share the store); they are wiped here.
 */
WHISPER_API void whisper_ctx_free(whisper_ctx *WHISPER_NULLABLE ctx);

/** Replaces the context's RNG (for tests, fuzzers and vectors, or a
 *  platform source). `fn` NULL restores the default. Returns WHISPER_OK or
 *  WHISPER_EINVAL. */
WHISPER_API int whisper_ctx_set_rng(whisper_ctx *ctx, whisper_rng_fn WHISPER_NULLABLE fn,
                                    void *WHISPER_NULLABLE user);

/** The sentence describing the last failure on this context ("" if none).
 *  Valid until the next call on the context. Never contains secrets. */
WHISPER_API const char *whisper_ctx_last_error(const whisper_ctx *ctx);

/** Sizes, as macros and as functions for binding generators. */
#define WHISPER_PUBLIC_KEY_LEN 33
#define WHISPER_PRIVATE_KEY_LEN 32
#define WHISPER_SIGNATURE_LEN 64
/** WHISPER_PUBLIC_KEY_LEN (33), for bindings. */
WHISPER_API size_t whisper_public_key_len(void);
/** WHISPER_SIGNATURE_LEN (64), for bindings. */
WHISPER_API size_t whisper_signature_len(void);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

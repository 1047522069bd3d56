/*
 * libwhisper: core types, errors, buffers, randomness and the context.
 *
 * Conventions for the whole API:
 *  - Every fallible function returns int: WHISPER_OK (0) or a negative
 *    WHISPER_E* code. A failing call changes no state unless its
 *    documentation says otherwise, and the context keeps a sentence
 *    describing the failure, read with whisper_ctx_last_error().
 *  - Parameter order: the handle the call acts on first (the ctx, client,
 *    server, store, encryptor...), then its inputs, then its outputs last,
 *    e.g. whisper_sign(ctx, priv, msg, msg_len, sig). A buffer or array
 *    the caller provides is followed by its length or capacity, wherever
 *    it stands. One exception: a function that makes a handle (_new,
 *    _open) returns it through its first parameter, as in
 *    whisper_ctx_new(&ctx, store); its other outputs (a `why`) come last.
 *    Callbacks take their `user` pointer first, and a function that takes
 *    a callback takes it followed by that pointer. (docs/api.md lists the
 *    rules for names as well.)
 *  - A whisper_buf returned through `**out` belongs to the caller, who
 *    releases it with whisper_buf_free(). Sizes are size_t.
 *  - Handles are opaque; the _new and _open functions make them, the _free
 *    functions release them and accept NULL. ("_open" opens a file or a
 *    database; a connection the app opened or closed is reported with
 *    _connected / _disconnected.)
 *  - Threads: a whisper_ctx (and everything made from it) is used from one
 *    thread at a time. Separate contexts may be used from separate threads
 *    at once. The library keeps no thread-local state.
 *  - The library never reads the clock: calls that need the time take
 *    `now_ms`, milliseconds since the Unix epoch.
 *  - Waiting: the library never sleeps, but any call that reads or writes
 *    the store (on a ctx, a client, a server or a store, and opening one)
 *    may wait for the store's lock, held by another process or connection
 *    on the same store (an app and its notification extension), for up
 *    to the store's busy timeout (for each transaction it runs: most
 *    calls run one; the engine's may run a few), then fail with
 *    WHISPER_EBUSY. For the SQLite store
 *    that is whisper_sqlite_options_t.busy_timeout_ms, 5000 ms by default
 *    (Android reports "not responding" after 5 s of a blocked main
 *    thread: call the library off the main thread, or lower it); for the
 *    PostgreSQL store (pgstore.h), each statement up to lock_timeout_ms;
 *    for a store of whisper_store_new(), whatever its begin() does.
 *  - Limits: names and device ids are 1..255 bytes (any uint32 id but
 *    UINT32_MAX) in the session layer (session.h), account names of
 *    1..64 bytes of [a-z0-9._-] and ids 1..2^31 - 1 in the engine and
 *    the server (client.h, server.h). Every size and limit macro has a
 *    function of the same name in lower case (sizes.h).
 */
#ifndef WHISPER_CORE_H
#define WHISPER_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * WHISPER_API marks the exported functions. On Windows (a DLL):
 * __declspec(dllexport) while building libwhisper (CMake defines
 * WHISPER_BUILDING for the library's own sources), __declspec(dllimport)
 * for its users; an application linking the static library defines
 * WHISPER_STATIC (whisper.pc's Cflags.private and the CMake target
 * whisper::whisper_static set it) and gets neither. Elsewhere: default
 * visibility (the library is built with -fvisibility=hidden and a linker
 * version script, src/whisper.map). WHISPER_SERVER_API is the same for
 * libwhisper-server's functions (server.h, pgstore.h), exported while
 * WHISPER_SERVER_BUILDING is defined (the server library's sources, which
 * import libwhisper's functions like any user).
 */
#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(WHISPER_STATIC)
#    define WHISPER_API
#  elif defined(WHISPER_BUILDING)
#    define WHISPER_API __declspec(dllexport)
#  else
#    define WHISPER_API __declspec(dllimport)
#  endif
#  if defined(WHISPER_STATIC)
#    define WHISPER_SERVER_API
#  elif defined(WHISPER_SERVER_BUILDING)
#    define WHISPER_SERVER_API __declspec(dllexport)
#  else
#    define WHISPER_SERVER_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define WHISPER_API __attribute__((visibility("default")))
#  define WHISPER_SERVER_API __attribute__((visibility("default")))
#else
#  define WHISPER_API
#  define WHISPER_SERVER_API
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

#define WHISPER_VERSION_MAJOR 1
#define WHISPER_VERSION_MINOR 0
#define WHISPER_VERSION_PATCH 0
/** The version as one number: major * 10000 + minor * 100 + patch. */
#define WHISPER_VERSION_NUMBER \
  (WHISPER_VERSION_MAJOR * 10000 + WHISPER_VERSION_MINOR * 100 + WHISPER_VERSION_PATCH)

/*
 * Error codes, in ranges. Every fallible function returns WHISPER_OK (0) or
 * one of these negative codes, and its documentation lists the codes it
 * returns. Callers compare with the names, never with the numbers (the
 * numbers were regrouped before 1.0; from 1.0 on a value is never reused
 * for another meaning). WHISPER_ERR_GROUP(code) gives the range:
 *
 *   group                      values        codes
 *   0 WHISPER_ERRGROUP_USAGE   -1 .. -19     EINVAL EINVALIDKEY ETOOBIG
 *     the caller's arguments or configuration are wrong; nothing changed;
 *     the same call fails again until the arguments change.
 *   1 WHISPER_ERRGROUP_INPUT   -20 .. -39    EINVALIDMSG EINVALIDSIG ETOOFAR
 *     a verdict about received or       EVERSION EKEY ETRUNCATED
 *     decoded bytes (a message, a         EINTEGRITY ESIZE
 *     blob, a key that does not open them); nothing changed; drop or
 *     report the input.
 *   2 WHISPER_ERRGROUP_TRUST   -40 .. -59    EUNTRUSTED EFORGED EDENIED EBLOCKED
 *     identity and permission: a key not trusted yet, data no one
 *     entitled made, an action not allowed; nothing changed.
 *   3 WHISPER_ERRGROUP_STATE   -60 .. -79    ENOSESSION EDUPLICATE ENOTFOUND
 *     the local state does not allow    ESTATE EROLLEDBACK
 *     the call (no session, already done, missing record, wrong order).
 *   4 WHISPER_ERRGROUP_SYSTEM  -80 .. -99    ENOMEM ESTORE EBUSY ERANDOM
 *     a resource failed (memory, the store's I/O or lock, the RNG); the
 *     call was undone (the store's transaction rolled back) and may be
 *     retried later.
 *   5 WHISPER_ERRGROUP_FATAL   -100 .. -119  ECORRUPT EINTERNAL
 *     see whisper_err_is_fatal().
 *
 * "A store error" in a function's list means WHISPER_ESTORE, WHISPER_EBUSY,
 * WHISPER_ENOMEM or WHISPER_ECORRUPT: any call that reads or writes the
 * store may fail with them. The store's own text about such a failure
 * (for the SQLite store, SQLite's code, extended code and message) ends
 * whisper_ctx_last_error()'s sentence.
 */
enum {
  WHISPER_OK = 0,

  /* --- usage: -1 .. -19 --- */
  /** An argument is invalid (NULL where not allowed, bad length, bad name). */
  WHISPER_EINVAL = -1,
  /** A key given by the caller is malformed (wrong length or type byte). */
  WHISPER_EINVALIDKEY = -2,
  /** Larger than allowed (an attachment above the configured maximum). */
  WHISPER_ETOOBIG = -3,

  /* --- input verdicts: -20 .. -39 --- */
  /** A received message is malformed, fails its MAC, cannot be decrypted,
   *  has an unsupported version, names a prekey we do not hold, or belongs
   *  to a chain too old to be kept. State is unchanged. */
  WHISPER_EINVALIDMSG = -20,
  /** A signature (signed prekey, group message) does not verify. */
  WHISPER_EINVALIDSIG = -21,
  /** The message's counter is more than 25000 ahead of its chain. */
  WHISPER_ETOOFAR = -22,
  /** A peer's data has a version this side cannot compare or read (e.g. a
   *  scanned fingerprint of another version), or a store was written by a
   *  newer libwhisper. */
  WHISPER_EVERSION = -23,
  /** A key does not open what it should: the store key (or passphrase) is
   *  not the one the store was made with, or an attachment's key is not
   *  the one its blob was made with. */
  WHISPER_EKEY = -24,
  /** Data ended before its stated size (an attachment blob cut short). */
  WHISPER_ETRUNCATED = -25,
  /** Data was altered: a MAC or a digest does not verify (an attachment
   *  blob, a downloaded chunk). */
  WHISPER_EINTEGRITY = -26,
  /** A stated size is not the data's (an attachment's pointer and its
   *  blob disagree). */
  WHISPER_ESIZE = -27,

  /* --- trust and identity: -40 .. -59 --- */
  /** The remote identity key changed and is not trusted yet; see
   *  whisper_identity_trust(). State is unchanged. */
  WHISPER_EUNTRUSTED = -40,
  /** Refused: the server sent what no one entitled made (a device its
   *  account did not sign, a member no admin added, a message filed under
   *  another conversation, an older device list). */
  WHISPER_EFORGED = -41,
  /** Not allowed: only a message's sender may edit or delete it, and only
   *  within its window (15 minutes for an edit, 48 hours by default for a
   *  delete); a message deleted for everyone cannot be changed. */
  WHISPER_EDENIED = -42,
  /** The account is blocked (whisper_client_block()): nothing goes to it
   *  until it is unblocked. */
  WHISPER_EBLOCKED = -43,

  /* --- state: -60 .. -79 --- */
  /** No usable session (or sender key) for that address. */
  WHISPER_ENOSESSION = -60,
  /** A received message was already decrypted (or its key is no longer
   *  kept). State is unchanged. */
  WHISPER_EDUPLICATE = -61,
  /** A record asked of the store does not exist. */
  WHISPER_ENOTFOUND = -62,
  /** The operation is not valid in the current state (e.g. no local
   *  identity yet). */
  WHISPER_ESTATE = -63,
  /** The state is older than what was already used (a store, or one of its
   *  records, restored from a copy): using it would reuse keys. Start a new
   *  session. */
  WHISPER_EROLLEDBACK = -64,

  /* --- storage and system: -80 .. -99 --- */
  /** Memory could not be allocated. */
  WHISPER_ENOMEM = -80,
  /** The store failed (I/O, a full disk, a read-only file, a refused
   *  write): the transaction was rolled back. */
  WHISPER_ESTORE = -81,
  /** The store is locked by another process for longer than the timeout
   *  (whisper_server_connected_from(): the source has too many connections). */
  WHISPER_EBUSY = -82,
  /** The random number generator failed. */
  WHISPER_ERANDOM = -83,

  /* --- fatal: -100 .. -119 (whisper_err_is_fatal()) --- */
  /** A stored record (or the store file) cannot be read: damaged, or
   *  written by a newer version. */
  WHISPER_ECORRUPT = -100,
  /** An internal error: a crypto primitive failed unexpectedly, or an
   *  invariant of the library does not hold. */
  WHISPER_EINTERNAL = -101
};

/** The groups of WHISPER_ERR_GROUP(). */
enum {
  WHISPER_ERRGROUP_OK = -1, /* WHISPER_OK and positive values: not an error */
  WHISPER_ERRGROUP_USAGE = 0,
  WHISPER_ERRGROUP_INPUT = 1,
  WHISPER_ERRGROUP_TRUST = 2,
  WHISPER_ERRGROUP_STATE = 3,
  WHISPER_ERRGROUP_SYSTEM = 4,
  WHISPER_ERRGROUP_FATAL = 5
};
/** The range a code belongs to (WHISPER_ERRGROUP_*); a code below -119
 *  gives 6 or more (unknown). */
#define WHISPER_ERR_GROUP(code) ((code) >= 0 ? WHISPER_ERRGROUP_OK : (-(code)) / 20)

/**
 * 1 if `code` is fatal, else 0 (also for WHISPER_OK and unknown codes).
 * A fatal code (WHISPER_ECORRUPT, WHISPER_EINTERNAL: the -100 .. -119
 * range) means the library can no longer vouch for the state behind the
 * call: the store holds bytes it cannot read (damage, or a newer
 * version's records) or an invariant broke. The failing call itself
 * changed nothing (its transaction was rolled back), but the caller must
 * not go on using that store, nor any context or client made on it:
 * free them, report the failure, and recover the store (restore a
 * backup, or whisper_store_sqlite_delete() and set up again). Retrying
 * does not help. Every other code leaves the context and the store usable.
 */
WHISPER_API int whisper_err_is_fatal(int code);

/** A short, static English description of an error code (every WHISPER_E*
 *  code has its own; "unknown error" for any other value). Never NULL. */
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
WHISPER_API int whisper_ctx_rng_set(whisper_ctx *ctx, whisper_rng_fn WHISPER_NULLABLE fn,
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
/** WHISPER_PRIVATE_KEY_LEN (32), for bindings. (Every other size macro has
 *  its function too: sizes.h.) */
WHISPER_API size_t whisper_private_key_len(void);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

/*
 * libwhisper: attachments, encrypted as Signal encrypts them.
 *
 * An attachment (a photo, a video, a voice note, a document) is encrypted
 * on the sending device under a fresh random 64-byte key, uploaded as an
 * opaque blob, and its pointer (where the blob is, its key, sizes and
 * digests) travels end to end inside a message. The blob is Signal's
 * attachment format, so that the format is one reviewed for years:
 *
 *     blob = IV (16) || AES-256-CBC(key[0..32), IV, PKCS#7(plaintext || zeros))
 *                    || HMAC-SHA256(key[32..64), IV || ciphertext) (32)
 *
 *  - the plaintext is padded with zeros to Signal's size buckets,
 *    max(541, floor(1.05^ceil(log_1.05(n)))), so that the blob's size
 *    tells only the bucket (about 5%), not the size;
 *  - the digest is the SHA-256 of the whole blob, and the plaintext's
 *    SHA-256 is carried too;
 *  - the incremental MAC is libsignal's: HMAC-SHA256 (the same MAC key)
 *    over growing prefixes of the blob, one 32-byte MAC each chunk_size
 *    bytes and one over the whole blob, chunk_size chosen from the blob's
 *    size as libsignal chooses it (64 KiB up to 16 MiB, then size/256, at
 *    most 2 MiB). With it a download is verified chunk by chunk, so that a
 *    video can play before it has all arrived.
 *
 * Both directions stream: the caller feeds bytes in pieces of any size and
 * a sink gets the output, with memory bounded whatever the file's size:
 * the encryptor holds 64 KiB and the incremental MAC's 32 bytes a chunk;
 * the decryptor fed a blob holds a chunk (at most 2 MiB) until its MAC
 * checks, and one that reads the blob itself from a source that can be
 * read again (a file: whisper_attachment_decrypt_source()) holds 64 KiB,
 * reading each chunk twice. The decryptor hands its sink only verified
 * plaintext: with an
 * incremental MAC, each chunk once its MAC checks; without one (a sender
 * that does not make it), nothing in a first pass, which checks the whole
 * blob and makes its incremental MAC, then the plaintext in a second pass
 * over the same bytes, each chunk once it checks against that MAC, so
 * that bytes which changed between the passes are never released
 * (whisper_attachment_decrypt_finish() says when).
 * The library does not decode images or video: thumbnails are the app's
 * bytes.
 */
#ifndef WHISPER_ATTACHMENT_H
#define WHISPER_ATTACHMENT_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

#define WHISPER_ATTACHMENT_KEY_LEN 64    /* AES-256 key || HMAC-SHA256 key */
#define WHISPER_ATTACHMENT_IV_LEN 16
#define WHISPER_ATTACHMENT_DIGEST_LEN 32
#define WHISPER_ATTACHMENT_CHUNK_MAX (2u * 1024 * 1024) /* the largest incremental MAC chunk */
#define WHISPER_ATTACHMENT_SIZE_MAX (1ULL << 40) /* the largest plaintext the format takes here */

/** The plaintext's size once padded to its bucket (at least `size`). */
WHISPER_API uint64_t whisper_attachment_padded_size(uint64_t size);

/** The size of the blob of a `size`-byte plaintext: IV, ciphertext of the
 *  padded plaintext, MAC. */
WHISPER_API uint64_t whisper_attachment_blob_size(uint64_t size);

/** libsignal's incremental MAC chunk size for a blob of `blob_size` bytes. */
WHISPER_API uint32_t whisper_attachment_chunk_size(uint64_t blob_size);

/** Where output goes: `len` bytes at `data` (never 0 bytes, never NULL),
 *  valid during the call only.
 *  Return 0 to go on; anything else stops the stream, and the call that
 *  fed it returns that value. */
typedef int (*whisper_attachment_sink)(void *WHISPER_NULLABLE user, const uint8_t *data,
                                       size_t len);

/* --- encrypting ----------------------------------------------------------- */

typedef struct whisper_attachment_encryptor whisper_attachment_encryptor;

/** What an encryption made, for the pointer. A versioned struct
 *  (docs/api.md): the caller sets `size` (WHISPER_ATTACHMENT_RESULT_INIT);
 *  fields are only appended. */
typedef struct whisper_attachment_result_t {
  size_t size; /* sizeof(whisper_attachment_result_t) as the caller was built */
  uint8_t digest[WHISPER_ATTACHMENT_DIGEST_LEN];         /* SHA-256 of the blob */
  uint8_t plaintext_hash[WHISPER_ATTACHMENT_DIGEST_LEN]; /* SHA-256 of the plaintext */
  uint64_t blob_size;
  uint32_t chunk_size;        /* of the incremental MAC */
  whisper_buf *WHISPER_NULLABLE incremental_mac; /* 32 bytes per MAC; the caller frees it */
} whisper_attachment_result_t;

/** The first released (1.0) size of whisper_attachment_result_t. */
#define WHISPER_ATTACHMENT_RESULT_SIZE_1_0 \
  (offsetof(whisper_attachment_result_t, incremental_mac) + sizeof(whisper_buf *))
/** Initializer: `whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;` */
#define WHISPER_ATTACHMENT_RESULT_INIT {.size = sizeof(whisper_attachment_result_t)}

/**
 * Starts encrypting a plaintext of exactly `size` bytes under `key` (64
 * random bytes from a CSPRNG, as the engine makes them; or the key of the same file sent
 * before) and `iv` (16 random bytes; the same key and IV give the same
 * blob, which is how an interrupted upload resumes). The blob goes to
 * `sink` (the IV with the first bytes fed). Returns WHISPER_OK,
 * WHISPER_EINVAL (a NULL argument, size above WHISPER_ATTACHMENT_SIZE_MAX),
 * WHISPER_ENOMEM or WHISPER_EINTERNAL (OpenSSL failed).
 */
WHISPER_API int whisper_attachment_encrypt_new(
    whisper_attachment_encryptor *WHISPER_NULLABLE *WHISPER_NONNULL out,
    const uint8_t key[WHISPER_NONNULL WHISPER_ATTACHMENT_KEY_LEN],
    const uint8_t iv[WHISPER_NONNULL WHISPER_ATTACHMENT_IV_LEN], uint64_t size,
    whisper_attachment_sink sink, void *WHISPER_NULLABLE user);

/** Feeds the next `len` bytes of plaintext; blob bytes go to the sink.
 *  Returns WHISPER_OK, WHISPER_EINVAL (more than `size` bytes in all; the
 *  encryptor is then unusable), the sink's nonzero value, or
 *  WHISPER_EINTERNAL. */
WHISPER_API int whisper_attachment_encrypt_update(whisper_attachment_encryptor *e,
                                                  const uint8_t *WHISPER_NULLABLE data, size_t len);

/** After all `size` bytes: the padding, the last block and the MAC go to
 *  the sink, and `*out` gets the digests (the fields both the library and
 *  the caller's struct have; `size` kept, newer fields left alone).
 *  Returns WHISPER_OK, WHISPER_EINVAL (fewer than `size` bytes were fed;
 *  or `out->size` below WHISPER_ATTACHMENT_RESULT_SIZE_1_0: then nothing
 *  is written and the encryptor is unchanged), the sink's value, or
 *  WHISPER_EINTERNAL. */
WHISPER_API int whisper_attachment_encrypt_finish(whisper_attachment_encryptor *e,
                                                  whisper_attachment_result_t *out);

/** Wipes and frees an encryptor. Accepts NULL. */
WHISPER_API void whisper_attachment_encrypt_free(whisper_attachment_encryptor *WHISPER_NULLABLE e);

/** Frees what a result holds (not the struct) and zeroes the fields the
 *  library knows. Accepts NULL; does nothing when `r->size` is below
 *  WHISPER_ATTACHMENT_RESULT_SIZE_1_0. */
WHISPER_API void whisper_attachment_result_clear(whisper_attachment_result_t *WHISPER_NULLABLE r);

/* --- decrypting ----------------------------------------------------------- */

typedef struct whisper_attachment_decryptor whisper_attachment_decryptor;

/** What the decryptor is told, from the pointer. A versioned struct
 *  (docs/api.md): the caller sets `size` (WHISPER_ATTACHMENT_EXPECT_INIT);
 *  fields are only appended. */
typedef struct whisper_attachment_expect_t {
  size_t size;                 /* sizeof(whisper_attachment_expect_t) as the caller was built */
  const uint8_t *key;          /* WHISPER_ATTACHMENT_KEY_LEN bytes */
  uint64_t plaintext_size;     /* the plaintext's size */
  const uint8_t *digest;       /* SHA-256 of the blob (32 bytes) */
  const uint8_t *WHISPER_NULLABLE plaintext_hash; /* SHA-256 of the plaintext (32 bytes), or NULL */
  const uint8_t *WHISPER_NULLABLE incremental_mac; /* NULL: none (two passes) */
  size_t incremental_mac_len;
  uint32_t chunk_size;         /* with an incremental MAC: 16..WHISPER_ATTACHMENT_CHUNK_MAX */
  uint64_t max_size;           /* the largest plaintext the caller takes (0: no limit
                                * but WHISPER_ATTACHMENT_SIZE_MAX) */
} whisper_attachment_expect_t;

/** The first released (1.0) size of whisper_attachment_expect_t. */
#define WHISPER_ATTACHMENT_EXPECT_SIZE_1_0 \
  (offsetof(whisper_attachment_expect_t, max_size) + sizeof(uint64_t))
/** Initializer: `whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;` */
#define WHISPER_ATTACHMENT_EXPECT_INIT {.size = sizeof(whisper_attachment_expect_t)}

/**
 * Starts decrypting a blob. The sink gets verified plaintext only, exactly
 * `plaintext_size` bytes in all when everything checks. Only the fields both the
 * library and the caller's `expect` have are read. Returns WHISPER_OK,
 * WHISPER_EINVAL (a NULL argument, a missing digest, or `expect->size`
 * below WHISPER_ATTACHMENT_EXPECT_SIZE_1_0), WHISPER_ETOOBIG
 * (plaintext_size above max_size), WHISPER_EINVALIDMSG (a chunk size out of range,
 * or an incremental MAC whose length is not a whole number of MACs),
 * WHISPER_ENOMEM or WHISPER_EINTERNAL.
 */
WHISPER_API int whisper_attachment_decrypt_new(
    whisper_attachment_decryptor *WHISPER_NULLABLE *WHISPER_NONNULL out,
    const whisper_attachment_expect_t *expect, whisper_attachment_sink sink,
    void *WHISPER_NULLABLE user);

/**
 * Feeds the next `len` bytes of the blob. Returns WHISPER_OK, or:
 *  - WHISPER_EINTEGRITY: a chunk does not verify (nothing of it or after it
 *    is released; the caller may stop, or go on feeding so that finish can
 *    tell a wrong key from an altered blob); in a second pass, a chunk is
 *    not what the first pass checked;
 *  - WHISPER_ESIZE: the blob is longer than the pointer's size gives (the
 *    bytes up to that size are taken first, as any others), or its
 *    padding is not zeros (the size is wrong);
 *  - the sink's nonzero value, WHISPER_ENOMEM or WHISPER_EINTERNAL.
 * After an error every later update returns the same error. What the sink
 * gets and what finish returns do not depend on how the blob was cut into
 * pieces (nor on whether whisper_attachment_decrypt_source() read it).
 */
WHISPER_API int whisper_attachment_decrypt_update(whisper_attachment_decryptor *d,
                                                  const uint8_t *WHISPER_NULLABLE data, size_t len);

/** Returned by whisper_attachment_decrypt_finish() after a first pass
 *  without an incremental MAC: the blob checked; feed it again from its
 *  first byte, then finish again, for the plaintext. */
#define WHISPER_ATTACHMENT_AGAIN 1

/**
 * The blob has all been fed: the rest of the verified plaintext goes to
 * the sink. Returns WHISPER_OK when the blob, its MAC, its digest, its
 * padding and the plaintext's size and hash all check, or
 * WHISPER_ATTACHMENT_AGAIN (above), or a distinct error:
 *  - WHISPER_ETRUNCATED: the blob ended before its size (the bytes that
 *    came are a prefix of no complete blob the digest names);
 *  - WHISPER_EKEY: the blob is the one the digest names, but the key does
 *    not open it (a wrong key);
 *  - WHISPER_EINTEGRITY: the blob was altered (a MAC or the digest fails);
 *  - WHISPER_ESIZE: the blob is intact but the pointer's size is not its
 *    plaintext's (longer, shorter, or a plaintext hash that differs);
 *  - WHISPER_ENOMEM or WHISPER_EINTERNAL.
 * On any error the caller must discard what the sink got (it was verified
 * as the sender's bytes, but the whole is not what the pointer says).
 */
WHISPER_API int whisper_attachment_decrypt_finish(whisper_attachment_decryptor *d);

/** Where whisper_attachment_decrypt_source() reads the blob: up to `len`
 *  bytes at `offset` (from the blob's first byte) into `buf`, their number
 *  in `*got`; fewer than `len` only where the blob ends (0 at or past its
 *  end). The same offset may be asked for again, and must then give the
 *  same bytes. Return 0 to go on; anything else stops the decryption,
 *  which returns that value. */
typedef int (*whisper_attachment_source)(void *WHISPER_NULLABLE user, uint64_t offset, uint8_t *buf,
                                         size_t len, size_t *got);

/**
 * Decrypts the whole blob from `source` instead of bytes fed, on a
 * decryptor nothing was fed to (or one whose first pass just returned
 * WHISPER_ATTACHMENT_AGAIN), and finishes it: its memory is 64 KiB and a
 * 32-byte hash per 64 KiB of a chunk, not a chunk. Each chunk is read
 * twice: once for its incremental MAC and the blob's digest (SHA-256),
 * whose value at the end of each 64 KiB piece is kept, then again, each
 * piece released only once the digest run again from the chunk's start
 * over the bytes read now comes to the same value, so that a source whose
 * bytes change between the reads gets nothing unverified out. The blob's
 * MAC is taken from the incremental MAC's state where the ciphertext ends
 * (the same HMAC), so that the work per byte is the fed decryptor's.
 * Without an incremental MAC the blob is first read whole (the first
 * pass), then as above against the incremental MAC the first pass made.
 * After the blob's end one byte more is asked for, and must not come.
 * Returns what whisper_attachment_decrypt_finish()
 * returns (never WHISPER_ATTACHMENT_AGAIN), WHISPER_EINTEGRITY also when a
 * piece read again is not what it was (or is shorter), WHISPER_ESIZE when
 * the source goes on past the blob's end, the source's nonzero value (or
 * WHISPER_EINVAL when it says it read more than asked), the sink's nonzero
 * value; WHISPER_EINVAL when `d` or `source` is NULL, `d` is finished, or
 * bytes were fed to this pass. The decryptor is finished either way (free
 * it); the released count says how much the sink got, and on any error the
 * caller must discard it, as after finish.
 */
WHISPER_API int whisper_attachment_decrypt_source(whisper_attachment_decryptor *d,
                                                  whisper_attachment_source source,
                                                  void *WHISPER_NULLABLE user);

/** Bytes of plaintext released to the sink so far. */
WHISPER_API uint64_t whisper_attachment_decrypt_released(const whisper_attachment_decryptor *d);

/** Wipes and frees a decryptor. Accepts NULL. */
WHISPER_API void whisper_attachment_decrypt_free(whisper_attachment_decryptor *WHISPER_NULLABLE d);

/* --- libsignal's incremental MAC, alone ----------------------------------- */

/**
 * The incremental MAC of `data` under `key` with `chunk_size`: a MAC each
 * chunk_size bytes and one over all of it, 32 bytes each, into `*out`
 * (the caller frees it). For tests and tools; the encryptor makes it for
 * attachments. Returns WHISPER_OK, WHISPER_EINVAL or WHISPER_ENOMEM.
 */
WHISPER_API int whisper_incremental_mac(const uint8_t *WHISPER_NULLABLE key, size_t key_len,
                                        uint32_t chunk_size, const uint8_t *WHISPER_NULLABLE data,
                                        size_t len,
                                        whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

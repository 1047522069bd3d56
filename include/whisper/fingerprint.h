/*
 * libwhisper: safety numbers (Signal's fingerprints, version 2).
 *
 * Two people compare a 60-digit number, or scan each other's QR code, to
 * check that their devices hold each other's real identity keys. Each side
 * computes the same 60 digits; the scannable form holds "mine" then
 * "yours", so a scanned code is compared with the halves swapped.
 *
 * An identifier is whatever stable bytes the app uses for a person (Signal
 * uses the 16-byte account UUID); both sides must use the same ones.
 */
#ifndef WHISPER_FINGERPRINT_H
#define WHISPER_FINGERPRINT_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** Signal's iteration count and scannable version. */
#define WHISPER_FINGERPRINT_ITERATIONS 5200
#define WHISPER_FINGERPRINT_VERSION 2
/** The displayable form: 60 digits and a NUL. */
#define WHISPER_FINGERPRINT_DISPLAY_LEN 61

/**
 * With the client engine (client.h), compare accounts, not devices: use
 * each account's key, the identity key of its device 1, which signs its
 * device list (whisper_client_account_info()). One comparison then covers
 * every device of both accounts.
 *
 * Computes the safety number between the local identity (`local_key`,
 * 33 bytes, and `local_id`) and a remote one. `iterations` is normally
 * WHISPER_FINGERPRINT_ITERATIONS (1..1000000 accepted). Writes the
 * NUL-terminated 60 digits to `displayable` (may be NULL) and the
 * scannable bytes to `*scannable` (may be NULL; free with
 * whisper_buf_free). Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_EINVALIDKEY or WHISPER_ENOMEM.
 */
WHISPER_API int whisper_fingerprint(
    uint32_t iterations, const uint8_t *WHISPER_NULLABLE local_id, size_t local_id_len,
    const uint8_t *local_key, size_t local_key_len, const uint8_t *WHISPER_NULLABLE remote_id,
    size_t remote_id_len, const uint8_t *remote_key, size_t remote_key_len,
    char displayable[WHISPER_NULLABLE WHISPER_FINGERPRINT_DISPLAY_LEN],
    whisper_buf *WHISPER_NULLABLE *WHISPER_NULLABLE scannable);

/**
 * Compares our scannable fingerprint with one scanned from the other
 * device, in constant time. Returns WHISPER_OK and sets *match to 1 when
 * they vouch for the same two keys (else 0); WHISPER_EVERSION when the
 * scanned code has another version; WHISPER_EINVALIDMSG when either is
 * malformed; WHISPER_EINVAL for NULL arguments.
 */
WHISPER_API int whisper_fingerprint_compare(const uint8_t *ours, size_t ours_len,
                                            const uint8_t *scanned, size_t scanned_len,
                                            int *match);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

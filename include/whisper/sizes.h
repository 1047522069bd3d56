/*
 * libwhisper: every size and limit macro as a function, for bindings.
 *
 * Kotlin, Java and other languages that call C through a foreign function
 * interface cannot see a #define, and Swift imports only the simple ones.
 * So each size or limit macro of the public headers (a name ending in
 * _LEN, _MAX, _MAX_SIZE or _DIGITS) has a function named as the macro in
 * lower case that returns the same value: WHISPER_GROUP_ID_LEN and
 * whisper_group_id_len(). They return size_t, but for the values that may
 * not fit one on a 32-bit platform (uint64_t) and device ids (uint32_t).
 * core.h declares the key sizes (whisper_public_key_len() ...) and
 * server.h the server's (whisper_server_relay_max() ...);
 * tests/install/check_symbols.sh checks that no macro lacks its function.
 */
#ifndef WHISPER_SIZES_H
#define WHISPER_SIZES_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/* attachment.h */
WHISPER_API size_t whisper_attachment_key_len(void);
WHISPER_API size_t whisper_attachment_iv_len(void);
WHISPER_API size_t whisper_attachment_digest_len(void);
WHISPER_API size_t whisper_attachment_chunk_max(void);
WHISPER_API uint64_t whisper_attachment_size_max(void);

/* client.h */
WHISPER_API size_t whisper_account_name_max(void);
WHISPER_API uint32_t whisper_device_id_max(void);
WHISPER_API size_t whisper_client_id_len(void);
WHISPER_API size_t whisper_group_id_len(void);
WHISPER_API size_t whisper_group_conversation_len(void);
WHISPER_API size_t whisper_send_window_max(void);
WHISPER_API size_t whisper_group_members_max(void);
WHISPER_API size_t whisper_media_type_max(void);
WHISPER_API size_t whisper_media_name_max(void);
WHISPER_API size_t whisper_media_caption_max(void);
WHISPER_API size_t whisper_media_thumbnail_max(void);
WHISPER_API size_t whisper_profile_name_max(void);
WHISPER_API size_t whisper_profile_about_max(void);
WHISPER_API size_t whisper_profile_picture_max(void);
WHISPER_API size_t whisper_call_id_len(void);
WHISPER_API size_t whisper_call_data_max(void);
WHISPER_API size_t whisper_group_name_max(void);
WHISPER_API size_t whisper_group_description_max(void);
WHISPER_API size_t whisper_group_picture_max(void);
WHISPER_API size_t whisper_group_link_len(void);
WHISPER_API size_t whisper_link_digits(void);
WHISPER_API size_t whisper_anchor_len(void);
WHISPER_API size_t whisper_block_max(void);
WHISPER_API size_t whisper_report_max(void);
WHISPER_API size_t whisper_report_text_max(void);

/* fingerprint.h */
WHISPER_API size_t whisper_fingerprint_display_len(void);

/* history.h */
WHISPER_API size_t whisper_message_id_max(void);

/* search.h */
WHISPER_API size_t whisper_search_query_max(void);
WHISPER_API size_t whisper_search_words_max(void);
WHISPER_API size_t whisper_search_limit_max(void);

/* sender_key.h */
WHISPER_API size_t whisper_distribution_id_len(void);

/* session.h */
WHISPER_API size_t whisper_name_max(void);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif

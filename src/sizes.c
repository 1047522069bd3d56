/* The size functions (sizes.h): each returns its macro. */
#include "whisper/whisper.h"
#include "internal.h"

/* The limit the session layer checks (wh_addr_make) is the one session.h states. */
_Static_assert(WH_NAME_MAX == WHISPER_NAME_MAX, "WH_NAME_MAX is not WHISPER_NAME_MAX");

/* attachment.h */
size_t whisper_attachment_key_len(void) { return WHISPER_ATTACHMENT_KEY_LEN; }
size_t whisper_attachment_iv_len(void) { return WHISPER_ATTACHMENT_IV_LEN; }
size_t whisper_attachment_digest_len(void) { return WHISPER_ATTACHMENT_DIGEST_LEN; }
size_t whisper_attachment_chunk_max(void) { return WHISPER_ATTACHMENT_CHUNK_MAX; }
uint64_t whisper_attachment_size_max(void) { return WHISPER_ATTACHMENT_SIZE_MAX; }

/* client.h */
size_t whisper_account_name_max(void) { return WHISPER_ACCOUNT_NAME_MAX; }
uint32_t whisper_device_id_max(void) { return WHISPER_DEVICE_ID_MAX; }
size_t whisper_client_id_len(void) { return WHISPER_CLIENT_ID_LEN; }
size_t whisper_group_id_len(void) { return WHISPER_GROUP_ID_LEN; }
size_t whisper_group_conversation_len(void) { return WHISPER_GROUP_CONVERSATION_LEN; }
size_t whisper_send_window_max(void) { return WHISPER_SEND_WINDOW_MAX; }
size_t whisper_group_members_max(void) { return WHISPER_GROUP_MEMBERS_MAX; }
size_t whisper_media_type_max(void) { return WHISPER_MEDIA_TYPE_MAX; }
size_t whisper_media_name_max(void) { return WHISPER_MEDIA_NAME_MAX; }
size_t whisper_media_caption_max(void) { return WHISPER_MEDIA_CAPTION_MAX; }
size_t whisper_media_thumbnail_max(void) { return WHISPER_MEDIA_THUMBNAIL_MAX; }
size_t whisper_profile_name_max(void) { return WHISPER_PROFILE_NAME_MAX; }
size_t whisper_profile_about_max(void) { return WHISPER_PROFILE_ABOUT_MAX; }
size_t whisper_profile_picture_max(void) { return WHISPER_PROFILE_PICTURE_MAX; }
size_t whisper_call_id_len(void) { return WHISPER_CALL_ID_LEN; }
size_t whisper_call_data_max(void) { return WHISPER_CALL_DATA_MAX; }
size_t whisper_group_name_max(void) { return WHISPER_GROUP_NAME_MAX; }
size_t whisper_group_description_max(void) { return WHISPER_GROUP_DESCRIPTION_MAX; }
size_t whisper_group_picture_max(void) { return WHISPER_GROUP_PICTURE_MAX; }
size_t whisper_group_link_len(void) { return WHISPER_GROUP_LINK_LEN; }
size_t whisper_link_digits(void) { return WHISPER_LINK_DIGITS; }
size_t whisper_anchor_len(void) { return WHISPER_ANCHOR_LEN; }
size_t whisper_block_max(void) { return WHISPER_BLOCK_MAX; }
size_t whisper_report_max(void) { return WHISPER_REPORT_MAX; }
size_t whisper_report_text_max(void) { return WHISPER_REPORT_TEXT_MAX; }

/* fingerprint.h */
size_t whisper_fingerprint_display_len(void) { return WHISPER_FINGERPRINT_DISPLAY_LEN; }

/* history.h */
size_t whisper_message_id_max(void) { return WHISPER_MESSAGE_ID_MAX; }

/* search.h */
size_t whisper_search_query_max(void) { return WHISPER_SEARCH_QUERY_MAX; }
size_t whisper_search_words_max(void) { return WHISPER_SEARCH_WORDS_MAX; }
size_t whisper_search_limit_max(void) { return WHISPER_SEARCH_LIMIT_MAX; }

/* sender_key.h */
size_t whisper_distribution_id_len(void) { return WHISPER_DISTRIBUTION_ID_LEN; }

/* session.h */
size_t whisper_name_max(void) { return WHISPER_NAME_MAX; }

// sizes.h and core.h's key sizes: every size and limit macro of the C API,
// read once from the library (the C functions whisper_group_id_len() ...).
//
// Named Sizes, after sizes.h, rather than Limits: most of these are exact
// lengths (a public key is PUBLIC_KEY_LEN bytes, not at most), the rest
// maxima (*_MAX) and a digit count (LINK_DIGITS). Each val is named as the
// C macro without its WHISPER_ prefix.
package org.libwhisper

/** The library's sizes and limits, in bytes unless said otherwise. */
object Sizes {
    /** Every value by its C function's name without "whisper_"
     *  ("group_id_len"), as the JNI shim's one table (jni/sizes.c) gives them. */
    val all: Map<String, Long> = run {
        val names = NativeSizes.names()
        val values = NativeSizes.values()
        check(names.size == values.size) { "libwhisper_jni: ${names.size} size names, ${values.size} values" }
        names.indices.associate { names[it]!!.decodeToString() to values[it] }
    }

    private fun long(name: String): Long = all[name] ?: error("libwhisper_jni has no size $name")
    private fun int(name: String): Int = Math.toIntExact(long(name))

    // core.h
    val PUBLIC_KEY_LEN: Int = int("public_key_len")
    val PRIVATE_KEY_LEN: Int = int("private_key_len")
    val SIGNATURE_LEN: Int = int("signature_len")

    // attachment.h
    /** An attachment's key: AES-256 key || HMAC-SHA256 key. */
    val ATTACHMENT_KEY_LEN: Int = int("attachment_key_len")
    val ATTACHMENT_IV_LEN: Int = int("attachment_iv_len")
    val ATTACHMENT_DIGEST_LEN: Int = int("attachment_digest_len")
    /** The largest incremental MAC chunk. */
    val ATTACHMENT_CHUNK_MAX: Int = int("attachment_chunk_max")
    /** The largest plaintext the format takes here (a Long: 2^40). */
    val ATTACHMENT_SIZE_MAX: Long = long("attachment_size_max")

    // client.h
    val ACCOUNT_NAME_MAX: Int = int("account_name_max")
    /** The largest device id (it fits an Int). */
    val DEVICE_ID_MAX: Int = int("device_id_max")
    /** A message's client id. */
    val CLIENT_ID_LEN: Int = int("client_id_len")
    val GROUP_ID_LEN: Int = int("group_id_len")
    /** A group's conversation name: "#" and 2 * GROUP_ID_LEN hex digits (characters). */
    val GROUP_CONVERSATION_LEN: Int = int("group_conversation_len")
    val SEND_WINDOW_MAX: Int = int("send_window_max")
    /** Members of a group (a count). */
    val GROUP_MEMBERS_MAX: Int = int("group_members_max")
    val MEDIA_TYPE_MAX: Int = int("media_type_max")
    val MEDIA_NAME_MAX: Int = int("media_name_max")
    val MEDIA_CAPTION_MAX: Int = int("media_caption_max")
    val MEDIA_THUMBNAIL_MAX: Int = int("media_thumbnail_max")
    val PROFILE_NAME_MAX: Int = int("profile_name_max")
    val PROFILE_ABOUT_MAX: Int = int("profile_about_max")
    val PROFILE_PICTURE_MAX: Int = int("profile_picture_max")
    val CALL_ID_LEN: Int = int("call_id_len")
    val CALL_DATA_MAX: Int = int("call_data_max")
    val GROUP_NAME_MAX: Int = int("group_name_max")
    val GROUP_DESCRIPTION_MAX: Int = int("group_description_max")
    val GROUP_PICTURE_MAX: Int = int("group_picture_max")
    val GROUP_LINK_LEN: Int = int("group_link_len")
    /** The digits both devices show for a link token (a count). */
    val LINK_DIGITS: Int = int("link_digits")
    val ANCHOR_LEN: Int = int("anchor_len")
    /** Accounts blocked at once (a count). */
    val BLOCK_MAX: Int = int("block_max")
    /** Messages a report carries at most (a count). */
    val REPORT_MAX: Int = int("report_max")
    val REPORT_TEXT_MAX: Int = int("report_text_max")

    // fingerprint.h
    /** The C buffer of a displayed safety number: its 60 digits and a NUL
     *  (Fingerprint.displayable is the 60 digits). */
    val FINGERPRINT_DISPLAY_LEN: Int = int("fingerprint_display_len")

    // history.h
    val MESSAGE_ID_MAX: Int = int("message_id_max")

    // search.h
    val SEARCH_QUERY_MAX: Int = int("search_query_max")
    /** Words of a query (a count). */
    val SEARCH_WORDS_MAX: Int = int("search_words_max")
    /** Results of one search (a count). */
    val SEARCH_LIMIT_MAX: Int = int("search_limit_max")

    // sender_key.h
    val DISTRIBUTION_ID_LEN: Int = int("distribution_id_len")

    // session.h
    /** The longest name of an address (bytes of UTF-8). */
    val NAME_MAX: Int = int("name_max")
}

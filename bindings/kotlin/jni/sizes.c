/* libwhisper's Kotlin (JNI) binding: sizes.h and core.h's key sizes
 * (org.libwhisper.NativeSizes, read once by org.libwhisper.Sizes).
 *
 * WJ_SIZES is the one list of them: names() and values() give it in this
 * order, Sizes.kt reads each value by its name (so the two sides cannot
 * drift apart), and run_tests.sh fails when a size function of sizes.h or
 * core.h is missing here or has no val in Sizes.kt. server.h's sizes are
 * not here: the binding does not cover the server. */
#include "common.h"

/* X(name): whisper_<name>(), in the order of the headers (core.h first). */
#define WJ_SIZES(X)                                                                             \
  X(public_key_len)                                                                             \
  X(private_key_len)                                                                            \
  X(signature_len)                                                                              \
  X(attachment_key_len)                                                                         \
  X(attachment_iv_len)                                                                          \
  X(attachment_digest_len)                                                                      \
  X(attachment_chunk_max)                                                                       \
  X(attachment_size_max)                                                                        \
  X(account_name_max)                                                                           \
  X(device_id_max)                                                                              \
  X(client_id_len)                                                                              \
  X(group_id_len)                                                                               \
  X(group_conversation_len)                                                                     \
  X(send_window_max)                                                                            \
  X(group_members_max)                                                                          \
  X(media_type_max)                                                                             \
  X(media_name_max)                                                                             \
  X(media_caption_max)                                                                          \
  X(media_thumbnail_max)                                                                        \
  X(profile_name_max)                                                                           \
  X(profile_about_max)                                                                          \
  X(profile_picture_max)                                                                        \
  X(call_id_len)                                                                                \
  X(call_data_max)                                                                              \
  X(group_name_max)                                                                             \
  X(group_description_max)                                                                      \
  X(group_picture_max)                                                                          \
  X(group_link_len)                                                                             \
  X(link_digits)                                                                                \
  X(anchor_len)                                                                                 \
  X(block_max)                                                                                  \
  X(report_max)                                                                                 \
  X(report_text_max)                                                                            \
  X(fingerprint_display_len)                                                                    \
  X(message_id_max)                                                                             \
  X(search_query_max)                                                                           \
  X(search_words_max)                                                                           \
  X(search_limit_max)                                                                           \
  X(distribution_id_len)                                                                        \
  X(name_max)

#define WJ_SIZE_NAME(n) #n,
#define WJ_SIZE_VALUE(n) (jlong)whisper_##n(),
#define WJ_SIZE_ONE(n) +1

enum { WJ_N_SIZES = 0 WJ_SIZES(WJ_SIZE_ONE) };

/* The names, without "whisper_" ("group_id_len"), as byte[] (UTF-8). */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Sizes, names)(JNIEnv *env, jclass cls) {
  (void)cls;
  static const char *const names[WJ_N_SIZES] = {WJ_SIZES(WJ_SIZE_NAME)};
  jobjectArray arr = wj_new_bytes_array(env, WJ_N_SIZES);
  if (arr == NULL) return NULL;
  for (size_t i = 0; i < WJ_N_SIZES; i++)
    if (wj_array_set(env, arr, i, wj_new_cstr(env, names[i]))) return NULL;
  return arr;
}

/* The values, in the order of names() (every one fits a jlong: the largest
 * is attachment_size_max, 2^40). */
WJ_EXPORT jlongArray JNICALL WJ_FN(Sizes, values)(JNIEnv *env, jclass cls) {
  (void)cls;
  const jlong v[WJ_N_SIZES] = {WJ_SIZES(WJ_SIZE_VALUE)};
  jlongArray arr = (*env)->NewLongArray(env, WJ_N_SIZES);
  if (arr == NULL) return NULL;
  (*env)->SetLongArrayRegion(env, arr, 0, WJ_N_SIZES, v);
  return arr;
}

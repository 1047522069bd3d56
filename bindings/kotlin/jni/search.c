/* libwhisper's Kotlin (JNI) binding: search.h, full-text search over
 * history (org.libwhisper.NativeSearch). Results are pages (history.c). */
#include "common.h"

#include <string.h>

#define CTX WJ_PTR(whisper_ctx, ctx)

/* after_conversation null: from the newest; else the last message of the
 * previous page (its conversation, id and time). Returns a page handle. */
WJ_EXPORT jlong JNICALL WJ_FN(Search, search)(JNIEnv *env, jclass cls, jlong ctx, jbyteArray query,
                                              jbyteArray conversation,
                                              jbyteArray after_conversation, jbyteArray after_id,
                                              jlong after_ts, jint limit) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  wj_bytes q = wj_bytes_get(env, query, 1), c = wj_bytes_get(env, conversation, 1);
  wj_bytes ac = wj_bytes_get(env, after_conversation, 1), ai = wj_bytes_get(env, after_id, 0);
  jlong out = 0;
  if (q.ok && c.ok && ac.ok && ai.ok) {
    whisper_message_t after = WHISPER_MESSAGE_INIT;
    after.conversation = ac.data ? WJ_CSTR(ac) : "";
    after.id = ai.data ? ai.data : (const uint8_t *)"";
    after.id_len = ai.len;
    after.timestamp_ms = (uint64_t)after_ts;
    whisper_page *p = NULL;
    int rc = whisper_search(CTX, q.data ? WJ_CSTR(q) : "", conversation ? WJ_CSTR(c) : NULL,
                            after_conversation ? &after : NULL, (size_t)(limit < 0 ? 0 : limit),
                            &p);
    if (!wj_check_ctx(env, rc, CTX)) {
      wj_handle_made();
      out = WJ_HANDLE(p);
    }
  }
  wj_bytes_done(&q);
  wj_bytes_done(&c);
  wj_bytes_done(&ac);
  wj_bytes_done(&ai);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Search, prepare)(JNIEnv *env, jclass cls, jlong ctx) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_check_ctx(env, whisper_search_prepare(CTX), CTX);
}

WJ_EXPORT void JNICALL WJ_FN(Search, rebuild)(JNIEnv *env, jclass cls, jlong ctx) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_check_ctx(env, whisper_search_rebuild(CTX), CTX);
}

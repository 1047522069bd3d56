/* libwhisper's Kotlin (JNI) binding: history.h, message history, status and
 * the outbox; pages are read here too (org.libwhisper.NativeHistory). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t empty[1];
#define CTX WJ_PTR(whisper_ctx, ctx)

static jbyteArray u64be(JNIEnv *env, uint64_t v) {
  uint8_t b[8];
  for (int i = 7; i >= 0; i--) {
    b[i] = (uint8_t)v;
    v >>= 8;
  }
  return wj_new_bytes(env, b, 8);
}

WJ_EXPORT jlong JNICALL WJ_FN(History, pageCount)(JNIEnv *env, jclass cls, jlong page) {
  (void)cls;
  if (wj_closed(env, page)) return 0;
  return (jlong)whisper_page_count(WJ_PTR(whisper_page, page));
}

/* Message i of a page: nums = {sender_device, sort_key, timestamp_ms,
 * status, kind, edited_ms, deleted, forwarded}; returns [conversation, id,
 * sender, body, quote_id, quote_sender, quote_excerpt] then, per reaction,
 * [reactor, emoji, at_ms (8 bytes, big-endian)]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(History, pageGet)(JNIEnv *env, jclass cls, jlong page,
                                                       jint i, jlongArray nums) {
  (void)cls;
  if (wj_closed(env, page)) return NULL;
  const whisper_message_t *m = whisper_page_get(WJ_PTR(whisper_page, page), (size_t)i);
  if (m == NULL) {
    wj_throw_inval(env, "no such message in the page");
    return NULL;
  }
  jlong v[8] = {m->sender_device, (jlong)m->sort_key, (jlong)m->timestamp_ms, m->status,
                m->kind,          (jlong)m->edited_ms, m->deleted,          m->forwarded};
  wj_set_longs(env, nums, v, 8);
  jobjectArray arr = wj_new_bytes_array(env, 7 + 3 * m->n_reactions);
  if (arr == NULL) return NULL;
  wj_array_set(env, arr, 0, wj_new_cstr(env, m->conversation));
  wj_array_set(env, arr, 1, wj_new_bytes(env, m->id, m->id_len));
  wj_array_set(env, arr, 2, wj_new_cstr(env, m->sender));
  wj_array_set(env, arr, 3, m->body ? wj_new_bytes(env, m->body, m->body_len) : NULL);
  wj_array_set(env, arr, 4, m->quote_id ? wj_new_bytes(env, m->quote_id, m->quote_id_len) : NULL);
  wj_array_set(env, arr, 5, wj_new_cstr(env, m->quote_sender));
  wj_array_set(env, arr, 6, wj_new_cstr(env, m->quote_excerpt));
  /* whisper_message_reaction() steps by the library's element size, as
   * WHISPER_MESSAGE_REACTION() does, and is NULL past the end. */
  for (size_t r = 0; r < m->n_reactions; r++) {
    const whisper_reaction_t *re = whisper_message_reaction(m, r);
    if (re == NULL) break;
    wj_array_set(env, arr, 7 + 3 * r, wj_new_cstr(env, re->reactor));
    wj_array_set(env, arr, 8 + 3 * r, wj_new_cstr(env, re->emoji));
    wj_array_set(env, arr, 9 + 3 * r, u64be(env, re->at_ms));
  }
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(History, pageFree)(JNIEnv *env, jclass cls, jlong page) {
  (void)env;
  (void)cls;
  if (page == 0) return;
  whisper_page_free(WJ_PTR(whisper_page, page));
  wj_handle_freed();
}

static jlong page_out(JNIEnv *env, int rc, whisper_page *p, const whisper_ctx *ctx) {
  if (wj_check_ctx(env, rc, ctx)) return 0;
  wj_handle_made();
  return WJ_HANDLE(p);
}

WJ_EXPORT jlong JNICALL WJ_FN(History, page)(JNIEnv *env, jclass cls, jlong ctx,
                                             jbyteArray conversation, jlong before_sort_key,
                                             jbyteArray before_id, jint limit) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  wj_bytes c = wj_bytes_get(env, conversation, 1), b = wj_bytes_get(env, before_id, 0);
  jlong out = 0;
  if (c.ok && b.ok) {
    whisper_page *p = NULL;
    int rc = whisper_history_page(CTX, c.data ? WJ_CSTR(c) : "", (uint64_t)before_sort_key,
                                  before_id ? (b.data ? b.data : empty) : NULL, b.len,
                                  (size_t)(limit < 0 ? 0 : limit), &p);
    out = page_out(env, rc, p, CTX);
  }
  wj_bytes_done(&c);
  wj_bytes_done(&b);
  return out;
}

WJ_EXPORT jlong JNICALL WJ_FN(History, outboxPage)(JNIEnv *env, jclass cls, jlong ctx, jint limit) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  whisper_page *p = NULL;
  int rc = whisper_outbox_page(CTX, (size_t)(limit < 0 ? 0 : limit), &p);
  return page_out(env, rc, p, CTX);
}

/* A message description from its parts (pointers borrowed from the wj_bytes). */
static void meta_of(whisper_message_t *m, const wj_bytes *conv, const wj_bytes *id,
                    const wj_bytes *body, jlong sort_key, jlong timestamp_ms) {
  memset(m, 0, sizeof *m);
  m->size = sizeof *m;
  m->conversation = conv->data ? WJ_CSTR(*conv) : "";
  m->id = id->data ? id->data : empty;
  m->id_len = id->len;
  m->sort_key = (uint64_t)sort_key;
  m->timestamp_ms = (uint64_t)timestamp_ms;
  if (body != NULL && body->len > 0) {
    m->body = body->data;
    m->body_len = body->len;
  }
}

WJ_EXPORT void JNICALL WJ_FN(History, addOutgoing)(JNIEnv *env, jclass cls, jlong ctx,
                                                   jbyteArray conversation, jbyteArray id,
                                                   jlong sort_key, jlong timestamp_ms,
                                                   jbyteArray body, jobjectArray names,
                                                   jintArray ids) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes c = wj_bytes_get(env, conversation, 1), i = wj_bytes_get(env, id, 0);
  wj_bytes b = wj_bytes_get(env, body, 0);
  wj_cstrs n = wj_cstrs_get(env, names);
  whisper_device_t *devs = NULL;
  jint *idv = NULL;
  if (!c.ok || !i.ok || !b.ok || !n.ok) goto done;
  if ((size_t)(*env)->GetArrayLength(env, ids) != n.n) {
    wj_throw_inval(env, "names and device ids differ in number");
    goto done;
  }
  devs = calloc(n.n + 1, sizeof *devs);
  idv = calloc(n.n + 1, sizeof *idv);
  if (devs == NULL || idv == NULL) {
    wj_check(env, WHISPER_ENOMEM, NULL);
    goto done;
  }
  (*env)->GetIntArrayRegion(env, ids, 0, (jsize)n.n, idv);
  for (size_t k = 0; k < n.n; k++) {
    devs[k].name = n.v[k];
    devs[k].device_id = (uint32_t)idv[k];
  }
  whisper_message_t m = WHISPER_MESSAGE_INIT;
  meta_of(&m, &c, &i, &b, sort_key, timestamp_ms);
  wj_check_ctx(env, whisper_history_add_outgoing(CTX, &m, devs, n.n), CTX);
done:
  free(devs);
  free(idv);
  wj_cstrs_done(&n);
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&b);
}

/* Decrypts (1:1 when type is not WHISPER_MSG_SENDERKEY, else a group
 * message) and stores it in history; returns the plaintext. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(History, decryptStore)(JNIEnv *env, jclass cls, jlong ctx,
                                                          jbyteArray name, jint device_id,
                                                          jint type, jbyteArray body,
                                                          jbyteArray conversation, jbyteArray id,
                                                          jlong sort_key, jlong timestamp_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes n = wj_bytes_get(env, name, 1), b = wj_bytes_get(env, body, 0);
  wj_bytes c = wj_bytes_get(env, conversation, 1), i = wj_bytes_get(env, id, 0);
  jbyteArray out = NULL;
  if (n.ok && b.ok && c.ok && i.ok) {
    whisper_message_t m = WHISPER_MESSAGE_INIT;
    meta_of(&m, &c, &i, NULL, sort_key, timestamp_ms);
    whisper_buf *pt = NULL;
    const char *nm = n.data ? WJ_CSTR(n) : "";
    const uint8_t *bd = b.data ? b.data : empty;
    int rc = type == WHISPER_MSG_SENDERKEY
                 ? whisper_sender_key_decrypt_store(CTX, nm, (uint32_t)device_id, bd, b.len, &m, &pt)
                 : whisper_session_decrypt_store(CTX, nm, (uint32_t)device_id, type, bd, b.len,
                                                 &m, &pt);
    if (!wj_check_ctx(env, rc, CTX)) out = wj_take_buf(env, pt);
  }
  wj_bytes_done(&n);
  wj_bytes_done(&b);
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(History, sent)(JNIEnv *env, jclass cls, jlong ctx,
                                            jbyteArray conversation, jbyteArray id,
                                            jlong server_sort_key) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes c = wj_bytes_get(env, conversation, 1), i = wj_bytes_get(env, id, 0);
  if (c.ok && i.ok)
    wj_check_ctx(env,
                 whisper_history_sent(CTX, c.data ? WJ_CSTR(c) : "", i.data ? i.data : empty,
                                      i.len, (uint64_t)server_sort_key),
                 CTX);
  wj_bytes_done(&c);
  wj_bytes_done(&i);
}

/* status >= 0: sets it; status < 0: reads it (returned). */
WJ_EXPORT jint JNICALL WJ_FN(History, status)(JNIEnv *env, jclass cls, jlong ctx,
                                              jbyteArray conversation, jbyteArray id,
                                              jbyteArray recipient, jint device_id, jint status) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  wj_bytes c = wj_bytes_get(env, conversation, 1), i = wj_bytes_get(env, id, 0);
  wj_bytes r = wj_bytes_get(env, recipient, 1);
  int st = status;
  if (c.ok && i.ok && r.ok) {
    const char *cv = c.data ? WJ_CSTR(c) : "", *rc_ = r.data ? WJ_CSTR(r) : "";
    const uint8_t *id_ = i.data ? i.data : empty;
    int rc = status >= 0
                 ? whisper_history_status_set(CTX, cv, id_, i.len, rc_, (uint32_t)device_id, status)
                 : whisper_history_status_get(CTX, cv, id_, i.len, rc_, (uint32_t)device_id, &st);
    wj_check_ctx(env, rc, CTX);
  }
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&r);
  return st;
}

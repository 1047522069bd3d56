/* libwhisper's Kotlin (JNI) binding: core.h's context and store.h's stores
 * (org.libwhisper.NativeStore). */
#include "common.h"

WJ_EXPORT jlong JNICALL WJ_FN(Store, memoryNew)(JNIEnv *env, jclass cls) {
  (void)cls;
  whisper_store *s = NULL;
  if (wj_check(env, whisper_store_memory_new(&s), NULL)) return 0;
  wj_handle_made();
  return WJ_HANDLE(s);
}

/* key: 32 bytes or null; passphrase: UTF-8 bytes or null (exactly one). */
WJ_EXPORT jlong JNICALL WJ_FN(Store, sqliteOpen)(JNIEnv *env, jclass cls, jbyteArray path,
                                                 jbyteArray key, jbyteArray passphrase,
                                                 jint synchronous, jint busy_timeout_ms) {
  (void)cls;
  wj_bytes p = wj_bytes_get(env, path, 1);
  wj_bytes k = wj_bytes_get(env, key, 0);
  wj_bytes pw = wj_bytes_get(env, passphrase, 1);
  whisper_store *s = NULL;
  if (p.ok && k.ok && pw.ok) {
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = k.data;
    o.key_len = k.len;
    o.passphrase = WJ_CSTR(pw);
    o.synchronous = synchronous;
    o.busy_timeout_ms = (unsigned)busy_timeout_ms;
    const char *why = NULL;
    int rc = whisper_store_sqlite_open(&s, WJ_CSTR(p), &o, &why);
    if (!wj_check(env, rc, why)) wj_handle_made();
  }
  wj_bytes_done(&p);
  wj_bytes_done(&k);
  wj_bytes_done(&pw);
  return WJ_HANDLE(s);
}

WJ_EXPORT void JNICALL WJ_FN(Store, rekey)(JNIEnv *env, jclass cls, jlong h, jbyteArray key,
                                           jbyteArray passphrase) {
  (void)cls;
  if (wj_closed(env, h)) return;
  whisper_store *s = WJ_PTR(whisper_store, h);
  wj_bytes k = wj_bytes_get(env, key, 0);
  wj_bytes pw = wj_bytes_get(env, passphrase, 1);
  if (k.ok && pw.ok) {
    int rc = whisper_store_rekey(s, k.data, k.len, WJ_CSTR(pw));
    wj_check(env, rc, whisper_store_last_error(s));
  }
  wj_bytes_done(&k);
  wj_bytes_done(&pw);
}

/* whisper_store_begin/commit/rollback: the app's transaction (store.h). */
WJ_EXPORT void JNICALL WJ_FN(Store, begin)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  if (wj_closed(env, h)) return;
  whisper_store *s = WJ_PTR(whisper_store, h);
  wj_check(env, whisper_store_begin(s), whisper_store_last_error(s));
}

WJ_EXPORT void JNICALL WJ_FN(Store, commit)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  if (wj_closed(env, h)) return;
  whisper_store *s = WJ_PTR(whisper_store, h);
  wj_check(env, whisper_store_commit(s), whisper_store_last_error(s));
}

WJ_EXPORT void JNICALL WJ_FN(Store, rollback)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  if (wj_closed(env, h)) return;
  whisper_store *s = WJ_PTR(whisper_store, h);
  wj_check(env, whisper_store_rollback(s), whisper_store_last_error(s));
}

WJ_EXPORT void JNICALL WJ_FN(Store, sqliteDelete)(JNIEnv *env, jclass cls, jbyteArray path) {
  (void)cls;
  wj_bytes p = wj_bytes_get(env, path, 1);
  if (p.ok) wj_check(env, whisper_store_sqlite_delete(WJ_CSTR(p)), NULL);
  wj_bytes_done(&p);
}

WJ_EXPORT void JNICALL WJ_FN(Store, close)(JNIEnv *env, jclass cls, jlong h) {
  (void)env;
  (void)cls;
  if (h == 0) return;
  whisper_store_free(WJ_PTR(whisper_store, h));
  wj_handle_freed();
}

WJ_EXPORT jlong JNICALL WJ_FN(Store, ctxNew)(JNIEnv *env, jclass cls, jlong store) {
  (void)cls;
  if (wj_closed(env, store)) return 0;
  whisper_ctx *c = NULL;
  if (wj_check(env, whisper_ctx_new(&c, WJ_PTR(whisper_store, store)), NULL)) return 0;
  wj_handle_made();
  return WJ_HANDLE(c);
}

WJ_EXPORT void JNICALL WJ_FN(Store, ctxFree)(JNIEnv *env, jclass cls, jlong h) {
  (void)env;
  (void)cls;
  if (h == 0) return;
  whisper_ctx_free(WJ_PTR(whisper_ctx, h));
  wj_handle_freed();
}

WJ_EXPORT jstring JNICALL WJ_FN(Store, ctxLastError)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  if (wj_closed(env, h)) return NULL;
  return (*env)->NewStringUTF(env, whisper_ctx_last_error(WJ_PTR(whisper_ctx, h)));
}

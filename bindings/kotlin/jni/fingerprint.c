/* libwhisper's Kotlin (JNI) binding: fingerprint.h, safety numbers
 * (org.libwhisper.NativeFingerprint). */
#include "common.h"

/* Returns [displayable digits (ASCII), scannable bytes]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Fingerprint, compute)(JNIEnv *env, jclass cls,
                                                           jint iterations, jbyteArray local_id,
                                                           jbyteArray local_key,
                                                           jbyteArray remote_id,
                                                           jbyteArray remote_key) {
  (void)cls;
  static const uint8_t empty[1];
  wj_bytes li = wj_bytes_get(env, local_id, 0), lk = wj_bytes_get(env, local_key, 0);
  wj_bytes ri = wj_bytes_get(env, remote_id, 0), rk = wj_bytes_get(env, remote_key, 0);
  jobjectArray arr = NULL;
  if (li.ok && lk.ok && ri.ok && rk.ok) {
    char digits[WHISPER_FINGERPRINT_DISPLAY_LEN];
    whisper_buf *scan = NULL;
    int rc = whisper_fingerprint((uint32_t)iterations, li.data, li.len, lk.data ? lk.data : empty, lk.len,
                                 ri.data, ri.len, rk.data ? rk.data : empty, rk.len,
                                 digits, &scan);
    if (!wj_check(env, rc, NULL)) {
      arr = wj_new_bytes_array(env, 2);
      if (arr != NULL) {
        wj_array_set(env, arr, 0, wj_new_cstr(env, digits));
        wj_array_set(env, arr, 1, wj_take_buf(env, scan));
        scan = NULL;
      }
      whisper_buf_free(scan);
    }
  }
  wj_bytes_done(&li);
  wj_bytes_done(&lk);
  wj_bytes_done(&ri);
  wj_bytes_done(&rk);
  return arr;
}

WJ_EXPORT jboolean JNICALL WJ_FN(Fingerprint, compare)(JNIEnv *env, jclass cls, jbyteArray ours,
                                                       jbyteArray scanned) {
  (void)cls;
  static const uint8_t empty[1];
  wj_bytes o = wj_bytes_get(env, ours, 0), s = wj_bytes_get(env, scanned, 0);
  int match = 0;
  if (o.ok && s.ok)
    wj_check(env,
             whisper_fingerprint_compare(o.data ? o.data : empty, o.len, s.data ? s.data : empty,
                                         s.len, &match),
             NULL);
  wj_bytes_done(&o);
  wj_bytes_done(&s);
  return match ? JNI_TRUE : JNI_FALSE;
}

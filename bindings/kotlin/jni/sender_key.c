/* libwhisper's Kotlin (JNI) binding: sender_key.h, sender keys
 * (org.libwhisper.NativeSenderKey). */
#include "common.h"

#include <stdlib.h>

static const uint8_t empty[1];
#define CTX WJ_PTR(whisper_ctx, ctx)

/* A distribution id: exactly 16 bytes, else EINVAL thrown (ok 0). */
static wj_bytes dist_id(JNIEnv *env, jbyteArray a) {
  wj_bytes d = wj_bytes_get(env, a, 0);
  if (d.ok && d.len != WHISPER_DISTRIBUTION_ID_LEN) {
    wj_bytes_done(&d);
    d.ok = 0;
    wj_throw_inval(env, "a distribution id is 16 bytes");
  }
  return d;
}

static jbyteArray skdm(JNIEnv *env, jlong ctx, jbyteArray dist, int rotate) {
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes d = dist_id(env, dist);
  jbyteArray out = NULL;
  if (d.ok) {
    whisper_buf *b = NULL;
    int rc = rotate ? whisper_sender_key_rotate(CTX, d.data, &b) : whisper_sender_key_generate(CTX, d.data, &b);
    if (!wj_check_ctx(env, rc, CTX)) out = wj_take_buf(env, b);
  }
  wj_bytes_done(&d);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(SenderKey, create)(JNIEnv *env, jclass cls, jlong ctx,
                                                  jbyteArray dist) {
  (void)cls;
  return skdm(env, ctx, dist, 0);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(SenderKey, rotate)(JNIEnv *env, jclass cls, jlong ctx,
                                                  jbyteArray dist) {
  (void)cls;
  return skdm(env, ctx, dist, 1);
}

WJ_EXPORT void JNICALL WJ_FN(SenderKey, process)(JNIEnv *env, jclass cls, jlong ctx, jbyteArray sender,
                                             jint device_id, jbyteArray msg) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes s = wj_bytes_get(env, sender, 1), m = wj_bytes_get(env, msg, 0);
  if (s.ok && m.ok)
    wj_check_ctx(env,
                 whisper_sender_key_process(CTX, s.data ? WJ_CSTR(s) : "", (uint32_t)device_id,
                                       m.data ? m.data : empty, m.len),
                 CTX);
  wj_bytes_done(&s);
  wj_bytes_done(&m);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(SenderKey, encrypt)(JNIEnv *env, jclass cls, jlong ctx,
                                                   jbyteArray dist, jbyteArray plaintext) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes d = dist_id(env, dist);
  wj_bytes p = wj_bytes_get(env, plaintext, 0);
  jbyteArray out = NULL;
  if (d.ok && p.ok) {
    whisper_buf *b = NULL;
    if (!wj_check_ctx(env, whisper_sender_key_encrypt(CTX, d.data, p.data, p.len, &b), CTX))
      out = wj_take_buf(env, b);
  }
  wj_bytes_done(&d);
  wj_bytes_done(&p);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(SenderKey, decrypt)(JNIEnv *env, jclass cls, jlong ctx,
                                                   jbyteArray sender, jint device_id,
                                                   jbyteArray body) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes s = wj_bytes_get(env, sender, 1), b = wj_bytes_get(env, body, 0);
  jbyteArray out = NULL;
  if (s.ok && b.ok) {
    whisper_buf *pt = NULL;
    int rc = whisper_sender_key_decrypt(CTX, s.data ? WJ_CSTR(s) : "", (uint32_t)device_id,
                                   b.data ? b.data : empty, b.len, &pt);
    if (!wj_check_ctx(env, rc, CTX)) out = wj_take_buf(env, pt);
  }
  wj_bytes_done(&s);
  wj_bytes_done(&b);
  return out;
}

/* For each (names[i], ids[i]): statuses[i], types[i]; returns the bodies
 * (null where the status is not OK). */
WJ_EXPORT jobjectArray JNICALL WJ_FN(SenderKey, distribute)(JNIEnv *env, jclass cls, jlong ctx,
                                                        jbyteArray dist, jobjectArray names,
                                                        jintArray ids, jlong now_ms,
                                                        jintArray statuses, jintArray types) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes d = dist_id(env, dist);
  wj_cstrs n = wj_cstrs_get(env, names);
  jobjectArray arr = NULL;
  whisper_device_t *devs = NULL;
  whisper_envelope_t *env_out = NULL;
  jint *idv = NULL;
  if (!d.ok || !n.ok) goto done;
  if ((size_t)(*env)->GetArrayLength(env, ids) != n.n ||
      (size_t)(*env)->GetArrayLength(env, statuses) < n.n ||
      (size_t)(*env)->GetArrayLength(env, types) < n.n) {
    wj_throw_inval(env, "names and device ids differ in number");
    goto done;
  }
  devs = calloc(n.n + 1, sizeof *devs);
  env_out = calloc(n.n + 1, sizeof *env_out);
  idv = calloc(n.n + 1, sizeof *idv);
  if (devs == NULL || env_out == NULL || idv == NULL) {
    wj_check(env, WHISPER_ENOMEM, NULL);
    goto done;
  }
  env_out[0].size = sizeof *env_out;
  (*env)->GetIntArrayRegion(env, ids, 0, (jsize)n.n, idv);
  for (size_t i = 0; i < n.n; i++) {
    devs[i].name = n.v[i];
    devs[i].device_id = (uint32_t)idv[i];
  }
  if (wj_check_ctx(env, whisper_sender_key_distribute(CTX, d.data, devs, n.n, (uint64_t)now_ms, env_out),
                   CTX))
    goto done;
  arr = wj_new_bytes_array(env, n.n);
  for (size_t i = 0; i < n.n; i++) {
    jint st = env_out[i].status, ty = env_out[i].type;
    (*env)->SetIntArrayRegion(env, statuses, (jsize)i, 1, &st);
    (*env)->SetIntArrayRegion(env, types, (jsize)i, 1, &ty);
    if (arr != NULL && env_out[i].body != NULL) {
      wj_array_set(env, arr, i, wj_take_buf(env, env_out[i].body));
    } else {
      whisper_buf_free(env_out[i].body);
    }
    env_out[i].body = NULL;
  }
done:
  free(devs);
  free(env_out);
  free(idv);
  wj_cstrs_done(&n);
  wj_bytes_done(&d);
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(SenderKey, receiveDistribution)(JNIEnv *env, jclass cls, jlong ctx,
                                                         jbyteArray sender, jint device_id,
                                                         jint type, jbyteArray body) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes s = wj_bytes_get(env, sender, 1), b = wj_bytes_get(env, body, 0);
  if (s.ok && b.ok)
    wj_check_ctx(env,
                 whisper_sender_key_receive_distribution(CTX, s.data ? WJ_CSTR(s) : "",
                                                    (uint32_t)device_id, type,
                                                    b.data ? b.data : empty, b.len),
                 CTX);
  wj_bytes_done(&s);
  wj_bytes_done(&b);
}

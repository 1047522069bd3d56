/* libwhisper's Kotlin (JNI) binding: session.h: the identity, prekeys,
 * bundles and 1:1 sessions (org.libwhisper.NativeSession). */
#include "common.h"

#include <string.h>

static const uint8_t empty[1];
#define CTX WJ_PTR(whisper_ctx, ctx)

WJ_EXPORT void JNICALL WJ_FN(Session, identityGenerate)(JNIEnv *env, jclass cls, jlong ctx,
                                                      jbyteArray name, jint device_id,
                                                      jint registration_id, jlong now_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes n = wj_bytes_get(env, name, 1);
  if (n.ok)
    wj_check_ctx(env,
                 whisper_identity_generate(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id,
                                         (uint32_t)registration_id, (uint64_t)now_ms),
                 CTX);
  wj_bytes_done(&n);
}

WJ_EXPORT void JNICALL WJ_FN(Session, identityImport)(JNIEnv *env, jclass cls, jlong ctx,
                                                      jbyteArray name, jint device_id,
                                                      jint registration_id, jbyteArray priv) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes n = wj_bytes_get(env, name, 1);
  wj_bytes p = wj_bytes_get(env, priv, 0);
  if (n.ok && p.ok) {
    whisper_keypair_t kp;
    if (p.len != WHISPER_PRIVATE_KEY_LEN)
      wj_throw_inval(env, "a private key is 32 bytes");
    else if (!wj_check(env, whisper_keypair_from_private(p.data, &kp), NULL))
      wj_check_ctx(env,
                   whisper_identity_import(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id,
                                           (uint32_t)registration_id, &kp),
                   CTX);
    whisper_keypair_wipe(&kp);
  }
  wj_bytes_done(&n);
  wj_bytes_done(&p);
}

/* The identity: returns [name]; pub (33) filled; ids = {device, registration}. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Session, identityGet)(JNIEnv *env, jclass cls, jlong ctx,
                                                         jbyteArray pub, jlongArray ids) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  uint32_t reg = 0, dev = 0;
  const char *name = NULL;
  if (wj_check_ctx(env, whisper_identity_get(CTX, key, &reg, &name, &dev), CTX)) return NULL;
  (*env)->SetByteArrayRegion(env, pub, 0, sizeof key, (const jbyte *)key);
  jlong v[2] = {(jlong)dev, (jlong)reg};
  wj_set_longs(env, ids, v, 2);
  return wj_new_cstr(env, name);
}

WJ_EXPORT void JNICALL WJ_FN(Session, identityTrust)(JNIEnv *env, jclass cls, jlong ctx,
                                                     jbyteArray name, jint device_id,
                                                     jbyteArray key, jlong now_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes n = wj_bytes_get(env, name, 1);
  wj_bytes k = wj_bytes_get(env, key, 0);
  if (n.ok && k.ok) {
    const char *nm = n.data ? WJ_CSTR(n) : "";
    const uint8_t *kd = k.data ? k.data : empty;
    int rc = now_ms != 0
                 ? whisper_identity_trust_at(CTX, nm, (uint32_t)device_id, kd, k.len,
                                             (uint64_t)now_ms)
                 : whisper_identity_trust(CTX, nm, (uint32_t)device_id, kd, k.len);
    wj_check_ctx(env, rc, CTX);
  }
  wj_bytes_done(&n);
  wj_bytes_done(&k);
}

/* The key expected from (name, device); out = {changed, changed_at_ms}. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Session, identityInfo)(JNIEnv *env, jclass cls, jlong ctx,
                                                          jbyteArray name, jint device_id,
                                                          jlongArray out) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes n = wj_bytes_get(env, name, 1);
  jbyteArray key = NULL;
  if (n.ok) {
    whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;
    int rc = whisper_identity_info(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id, &info);
    if (!wj_check_ctx(env, rc, CTX)) {
      jlong v[2] = {info.changed, (jlong)info.changed_at_ms};
      wj_set_longs(env, out, v, 2);
      key = wj_new_bytes(env, info.key, sizeof info.key);
    }
  }
  wj_bytes_done(&n);
  return key;
}

WJ_EXPORT void JNICALL WJ_FN(Session, signedPrekeyGenerate)(JNIEnv *env, jclass cls, jlong ctx,
                                                            jint id, jlong now_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_check_ctx(env, whisper_signed_prekey_generate(CTX, (uint32_t)id, (uint64_t)now_ms), CTX);
}

WJ_EXPORT jboolean JNICALL WJ_FN(Session, signedPrekeyRotate)(JNIEnv *env, jclass cls, jlong ctx,
                                                              jlong now_ms, jlong max_age_ms,
                                                              jlong grace_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return JNI_FALSE;
  int rotated = 0;
  wj_check_ctx(env,
               whisper_signed_prekey_rotate(CTX, (uint64_t)now_ms, (uint64_t)max_age_ms,
                                            (uint64_t)grace_ms, &rotated),
               CTX);
  return rotated ? JNI_TRUE : JNI_FALSE;
}

WJ_EXPORT jlong JNICALL WJ_FN(Session, prekeysCount)(JNIEnv *env, jclass cls, jlong ctx) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  uint32_t n = 0;
  wj_check_ctx(env, whisper_prekeys_count(CTX, &n), CTX);
  return (jlong)n;
}

/* Returns the first id made. */
WJ_EXPORT jlong JNICALL WJ_FN(Session, prekeysGenerate)(JNIEnv *env, jclass cls, jlong ctx,
                                                        jint count) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  uint32_t first = 0;
  wj_check_ctx(env, whisper_prekeys_generate(CTX, (uint32_t)count, &first), CTX);
  return (jlong)first;
}

/* This device's bundle, encoded (whisper_bundle_encode). */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Session, bundleGenerate)(JNIEnv *env, jclass cls, jlong ctx,
                                                        jboolean with_prekey) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  if (wj_check_ctx(env, whisper_bundle_generate(CTX, with_prekey ? 1 : 0, &b), CTX)) return NULL;
  whisper_buf *out = NULL;
  if (wj_check(env, whisper_bundle_encode(&b, &out), NULL)) return NULL;
  return wj_take_buf(env, out);
}

/* Parses an encoded bundle: nums = {registration_id, device_id, has_prekey,
 * prekey_id, signed_prekey_id}; returns [prekey, signed_prekey, signature,
 * identity_key] (prekey null without one). */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Session, bundleDecode)(JNIEnv *env, jclass cls,
                                                            jbyteArray data, jlongArray nums) {
  (void)cls;
  wj_bytes d = wj_bytes_get(env, data, 0);
  jobjectArray arr = NULL;
  if (d.ok) {
    whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
    if (!wj_check(env, whisper_bundle_decode(d.data ? d.data : empty, d.len, &b), NULL)) {
      jlong v[5] = {b.registration_id, b.device_id, b.has_prekey, b.prekey_id,
                    b.signed_prekey_id};
      wj_set_longs(env, nums, v, 5);
      arr = wj_new_bytes_array(env, 4);
      if (arr != NULL) {
        wj_array_set(env, arr, 0, b.has_prekey ? wj_new_bytes(env, b.prekey, 33) : NULL);
        wj_array_set(env, arr, 1, wj_new_bytes(env, b.signed_prekey, 33));
        wj_array_set(env, arr, 2, wj_new_bytes(env, b.signed_prekey_signature, 64));
        wj_array_set(env, arr, 3, wj_new_bytes(env, b.identity_key, 33));
      }
    }
  }
  wj_bytes_done(&d);
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(Session, sessionStart)(JNIEnv *env, jclass cls, jlong ctx,
                                                    jbyteArray name, jint device_id,
                                                    jbyteArray bundle, jlong now_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_bytes n = wj_bytes_get(env, name, 1);
  wj_bytes d = wj_bytes_get(env, bundle, 0);
  if (n.ok && d.ok) {
    whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
    if (!wj_check(env, whisper_bundle_decode(d.data ? d.data : empty, d.len, &b), NULL))
      wj_check_ctx(env,
                   whisper_session_start(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id, &b,
                                         (uint64_t)now_ms),
                   CTX);
  }
  wj_bytes_done(&n);
  wj_bytes_done(&d);
}

WJ_EXPORT void JNICALL WJ_FN(Session, sessionsDistrust)(JNIEnv *env, jclass cls, jlong ctx) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  wj_check_ctx(env, whisper_sessions_distrust(CTX), CTX);
}

WJ_EXPORT jboolean JNICALL WJ_FN(Session, sessionExists)(JNIEnv *env, jclass cls, jlong ctx,
                                                         jbyteArray name, jint device_id,
                                                         jlong now_ms) {
  (void)cls;
  if (wj_closed(env, ctx)) return JNI_FALSE;
  wj_bytes n = wj_bytes_get(env, name, 1);
  int out = 0;
  if (n.ok)
    wj_check_ctx(env,
                 whisper_session_exists(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id,
                                        (uint64_t)now_ms, &out),
                 CTX);
  wj_bytes_done(&n);
  return out ? JNI_TRUE : JNI_FALSE;
}

/* Returns the ciphertext; type_out[0] gets its type. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Session, encrypt)(JNIEnv *env, jclass cls, jlong ctx,
                                                     jbyteArray name, jint device_id,
                                                     jbyteArray plaintext, jlong now_ms,
                                                     jintArray type_out) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes n = wj_bytes_get(env, name, 1);
  wj_bytes p = wj_bytes_get(env, plaintext, 0);
  jbyteArray out = NULL;
  if (n.ok && p.ok) {
    int type = 0;
    whisper_buf *ct = NULL;
    int rc = whisper_session_encrypt(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id, p.data,
                                     p.len, (uint64_t)now_ms, &type, &ct);
    if (!wj_check_ctx(env, rc, CTX)) {
      jint t = type;
      (*env)->SetIntArrayRegion(env, type_out, 0, 1, &t);
      out = wj_take_buf(env, ct);
    }
  }
  wj_bytes_done(&n);
  wj_bytes_done(&p);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Session, decrypt)(JNIEnv *env, jclass cls, jlong ctx,
                                                     jbyteArray name, jint device_id, jint type,
                                                     jbyteArray body) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes n = wj_bytes_get(env, name, 1);
  wj_bytes b = wj_bytes_get(env, body, 0);
  jbyteArray out = NULL;
  if (n.ok && b.ok) {
    whisper_buf *pt = NULL;
    int rc = whisper_session_decrypt(CTX, n.data ? WJ_CSTR(n) : "", (uint32_t)device_id, type,
                                     b.data ? b.data : empty, b.len, &pt);
    if (!wj_check_ctx(env, rc, CTX)) out = wj_take_buf(env, pt);
  }
  wj_bytes_done(&n);
  wj_bytes_done(&b);
  return out;
}

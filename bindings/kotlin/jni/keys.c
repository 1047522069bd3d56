/* libwhisper's Kotlin (JNI) binding: keys.h (org.libwhisper.NativeKeys). */
#include "common.h"

/* Fills pub (33) and priv (32) with a new key pair. */
WJ_EXPORT void JNICALL WJ_FN(Keys, generate)(JNIEnv *env, jclass cls, jlong ctx, jbyteArray pub,
                                             jbyteArray priv) {
  (void)cls;
  if (wj_closed(env, ctx)) return;
  whisper_keypair_t kp;
  int rc = whisper_keypair_generate(WJ_PTR(whisper_ctx, ctx), &kp);
  if (!wj_check_ctx(env, rc, WJ_PTR(whisper_ctx, ctx))) {
    (*env)->SetByteArrayRegion(env, pub, 0, WHISPER_PUBLIC_KEY_LEN, (const jbyte *)kp.pub);
    (*env)->SetByteArrayRegion(env, priv, 0, WHISPER_PRIVATE_KEY_LEN, (const jbyte *)kp.priv);
  }
  whisper_keypair_wipe(&kp);
}

/* The public key (33) of a private key (32). */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Keys, publicOf)(JNIEnv *env, jclass cls, jbyteArray priv) {
  (void)cls;
  wj_bytes p = wj_bytes_get(env, priv, 0);
  jbyteArray out = NULL;
  if (p.ok) {
    if (p.len != WHISPER_PRIVATE_KEY_LEN) {
      wj_throw_inval(env, "a private key is 32 bytes");
    } else {
      whisper_keypair_t kp;
      if (!wj_check(env, whisper_keypair_from_private(p.data, &kp), NULL))
        out = wj_new_bytes(env, kp.pub, sizeof kp.pub);
      whisper_keypair_wipe(&kp);
    }
  }
  wj_bytes_done(&p);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Keys, publicKeyCheck)(JNIEnv *env, jclass cls, jbyteArray key) {
  (void)cls;
  wj_bytes k = wj_bytes_get(env, key, 0);
  if (k.ok) wj_check(env, whisper_public_key_check(k.data ? k.data : (const uint8_t *)"", k.len), NULL);
  wj_bytes_done(&k);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Keys, sign)(JNIEnv *env, jclass cls, jlong ctx, jbyteArray priv,
                                               jbyteArray msg) {
  (void)cls;
  if (wj_closed(env, ctx)) return NULL;
  wj_bytes p = wj_bytes_get(env, priv, 0);
  wj_bytes m = wj_bytes_get(env, msg, 0);
  jbyteArray out = NULL;
  if (p.ok && m.ok) {
    if (p.len != WHISPER_PRIVATE_KEY_LEN) {
      wj_throw_inval(env, "a private key is 32 bytes");
    } else {
      uint8_t sig[WHISPER_SIGNATURE_LEN];
      int rc = whisper_sign(WJ_PTR(whisper_ctx, ctx), p.data, m.data, m.len, sig);
      if (!wj_check_ctx(env, rc, WJ_PTR(whisper_ctx, ctx))) out = wj_new_bytes(env, sig, sizeof sig);
    }
  }
  wj_bytes_done(&p);
  wj_bytes_done(&m);
  return out;
}

/* Throws WhisperException (EINVALIDSIG, EINVALIDKEY) unless it verifies. */
WJ_EXPORT void JNICALL WJ_FN(Keys, verify)(JNIEnv *env, jclass cls, jbyteArray pub, jbyteArray msg,
                                           jbyteArray sig) {
  (void)cls;
  wj_bytes k = wj_bytes_get(env, pub, 0);
  wj_bytes m = wj_bytes_get(env, msg, 0);
  wj_bytes s = wj_bytes_get(env, sig, 0);
  if (k.ok && m.ok && s.ok) {
    static const uint8_t empty[1];
    wj_check(env,
             whisper_verify(k.data ? k.data : empty, k.len, m.data, m.len, s.data ? s.data : empty,
                            s.len),
             NULL);
  }
  wj_bytes_done(&k);
  wj_bytes_done(&m);
  wj_bytes_done(&s);
}

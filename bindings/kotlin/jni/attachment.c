/* libwhisper's Kotlin (JNI) binding: attachment.h, attachments encrypted
 * as Signal encrypts them (org.libwhisper.NativeAttachment).
 *
 * Streaming without callbacks into the JVM: the sink collects what one
 * call produces in a native buffer, and the call returns it as a byte[]
 * (the buffer wiped then). update() and finish() so return the blob (or
 * the verified plaintext) piece by piece, with memory bounded as in C. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

typedef struct sinkbuf {
  uint8_t *data;
  size_t len, cap;
} sinkbuf;

static int sink(void *user, const uint8_t *data, size_t len) {
  sinkbuf *s = user;
  if (len > SIZE_MAX - s->len) return WHISPER_ENOMEM;
  if (s->len + len > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + len) cap *= 2;
    uint8_t *n = malloc(cap);
    if (n == NULL) return WHISPER_ENOMEM;
    if (s->len) memcpy(n, s->data, s->len);
    if (s->data) wj_wipe(s->data, s->cap);
    free(s->data);
    s->data = n;
    s->cap = cap;
  }
  memcpy(s->data + s->len, data, len);
  s->len += len;
  return 0;
}

/* What sink collected, as a byte[]; wiped (kept allocated for the next). */
static jbyteArray drain(JNIEnv *env, sinkbuf *s) {
  jbyteArray a = wj_new_bytes(env, s->data, s->len);
  wj_wipe(s->data, s->len);
  s->len = 0;
  return a;
}

static void sink_free(sinkbuf *s) {
  if (s->data) wj_wipe(s->data, s->cap);
  free(s->data);
}

typedef struct enc {
  whisper_attachment_encryptor *e;
  sinkbuf out;
} enc;

typedef struct dec {
  whisper_attachment_decryptor *d;
  sinkbuf out;
} dec;

WJ_EXPORT jlong JNICALL WJ_FN(Attachment, paddedSize)(JNIEnv *env, jclass cls, jlong size) {
  (void)env;
  (void)cls;
  return (jlong)whisper_attachment_padded_size((uint64_t)size);
}

WJ_EXPORT jlong JNICALL WJ_FN(Attachment, blobSize)(JNIEnv *env, jclass cls, jlong size) {
  (void)env;
  (void)cls;
  return (jlong)whisper_attachment_blob_size((uint64_t)size);
}

WJ_EXPORT jlong JNICALL WJ_FN(Attachment, encryptNew)(JNIEnv *env, jclass cls, jbyteArray key,
                                                      jbyteArray iv, jlong size) {
  (void)cls;
  wj_bytes k = wj_bytes_get(env, key, 0), v = wj_bytes_get(env, iv, 0);
  jlong out = 0;
  if (k.ok && v.ok) {
    enc *e = calloc(1, sizeof *e);
    if (k.len != WHISPER_ATTACHMENT_KEY_LEN || v.len != WHISPER_ATTACHMENT_IV_LEN) {
      wj_throw_inval(env, "an attachment key is 64 bytes and its IV 16");
    } else if (e == NULL) {
      wj_check(env, WHISPER_ENOMEM, NULL);
    } else if (!wj_check(env,
                         whisper_attachment_encrypt_new(&e->e, k.data, v.data, (uint64_t)size,
                                                        sink, &e->out),
                         NULL)) {
      wj_handle_made();
      out = WJ_HANDLE(e);
      e = NULL;
    }
    free(e);
  }
  wj_bytes_done(&k);
  wj_bytes_done(&v);
  return out;
}

/* Feeds plaintext; returns the blob bytes made. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Attachment, encryptUpdate)(JNIEnv *env, jclass cls, jlong h,
                                                              jbyteArray data) {
  (void)cls;
  if (wj_closed(env, h)) return NULL;
  enc *e = WJ_PTR(enc, h);
  wj_bytes d = wj_bytes_get(env, data, 0);
  jbyteArray out = NULL;
  if (d.ok) {
    int rc = whisper_attachment_encrypt_update(e->e, d.data, d.len);
    if (rc != 0 && rc > 0) rc = WHISPER_EINTERNAL;
    if (!wj_check(env, rc, NULL)) out = drain(env, &e->out);
  }
  wj_bytes_done(&d);
  return out;
}

/* Returns [the last blob bytes, digest, plaintext_hash, incremental_mac];
 * nums = {blob_size, chunk_size}. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Attachment, encryptFinish)(JNIEnv *env, jclass cls, jlong h,
                                                                jlongArray nums) {
  (void)cls;
  if (wj_closed(env, h)) return NULL;
  enc *e = WJ_PTR(enc, h);
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  int rc = whisper_attachment_encrypt_finish(e->e, &r);
  if (rc > 0) rc = WHISPER_EINTERNAL;
  if (wj_check(env, rc, NULL)) return NULL;
  jlong v[2] = {(jlong)r.blob_size, r.chunk_size};
  wj_set_longs(env, nums, v, 2);
  jobjectArray arr = wj_new_bytes_array(env, 4);
  if (arr != NULL) {
    wj_array_set(env, arr, 0, drain(env, &e->out));
    wj_array_set(env, arr, 1, wj_new_bytes(env, r.digest, sizeof r.digest));
    wj_array_set(env, arr, 2, wj_new_bytes(env, r.plaintext_hash, sizeof r.plaintext_hash));
    wj_array_set(env, arr, 3,
                 r.incremental_mac ? wj_new_bytes(env, r.incremental_mac->data,
                                                  r.incremental_mac->len)
                                   : NULL);
  }
  whisper_attachment_result_clear(&r);
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(Attachment, encryptFree)(JNIEnv *env, jclass cls, jlong h) {
  (void)env;
  (void)cls;
  if (h == 0) return;
  enc *e = WJ_PTR(enc, h);
  whisper_attachment_encrypt_free(e->e);
  sink_free(&e->out);
  free(e);
  wj_handle_freed();
}

WJ_EXPORT jlong JNICALL WJ_FN(Attachment, decryptNew)(JNIEnv *env, jclass cls, jbyteArray key,
                                                      jlong size, jbyteArray digest,
                                                      jbyteArray plaintext_hash,
                                                      jbyteArray incremental_mac,
                                                      jint chunk_size, jlong max_size) {
  (void)cls;
  wj_bytes k = wj_bytes_get(env, key, 0), dg = wj_bytes_get(env, digest, 0);
  wj_bytes ph = wj_bytes_get(env, plaintext_hash, 0), im = wj_bytes_get(env, incremental_mac, 0);
  jlong out = 0;
  if (k.ok && dg.ok && ph.ok && im.ok) {
    dec *d = calloc(1, sizeof *d);
    if (k.len != WHISPER_ATTACHMENT_KEY_LEN || dg.len != WHISPER_ATTACHMENT_DIGEST_LEN ||
        (plaintext_hash != NULL && ph.len != WHISPER_ATTACHMENT_DIGEST_LEN)) {
      wj_throw_inval(env, "an attachment key is 64 bytes, a digest 32");
    } else if (d == NULL) {
      wj_check(env, WHISPER_ENOMEM, NULL);
    } else {
      whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
      x.key = k.data;
      x.plaintext_size = (uint64_t)size;
      x.digest = dg.data;
      x.plaintext_hash = plaintext_hash ? ph.data : NULL;
      x.incremental_mac = incremental_mac ? im.data : NULL;
      x.incremental_mac_len = im.len;
      x.chunk_size = (uint32_t)chunk_size;
      x.max_size = (uint64_t)max_size;
      if (!wj_check(env, whisper_attachment_decrypt_new(&d->d, &x, sink, &d->out), NULL)) {
        wj_handle_made();
        out = WJ_HANDLE(d);
        d = NULL;
      }
    }
    free(d);
  }
  wj_bytes_done(&k);
  wj_bytes_done(&dg);
  wj_bytes_done(&ph);
  wj_bytes_done(&im);
  return out;
}

/* Feeds blob bytes; returns the verified plaintext released. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Attachment, decryptUpdate)(JNIEnv *env, jclass cls, jlong h,
                                                              jbyteArray data) {
  (void)cls;
  if (wj_closed(env, h)) return NULL;
  dec *d = WJ_PTR(dec, h);
  wj_bytes b = wj_bytes_get(env, data, 0);
  jbyteArray out = NULL;
  if (b.ok) {
    int rc = whisper_attachment_decrypt_update(d->d, b.data, b.len);
    if (rc > 0) rc = WHISPER_EINTERNAL;
    if (!wj_check(env, rc, NULL)) out = drain(env, &d->out);
  }
  wj_bytes_done(&b);
  return out;
}

/* Returns the rest of the plaintext; again[0] = 1 when the blob must be fed
 * once more (WHISPER_ATTACHMENT_AGAIN). On an error, what was released
 * must be discarded. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Attachment, decryptFinish)(JNIEnv *env, jclass cls, jlong h,
                                                              jintArray again) {
  (void)cls;
  if (wj_closed(env, h)) return NULL;
  dec *d = WJ_PTR(dec, h);
  int rc = whisper_attachment_decrypt_finish(d->d);
  jint a = rc == WHISPER_ATTACHMENT_AGAIN;
  if (rc == WHISPER_ATTACHMENT_AGAIN) rc = WHISPER_OK;
  if (wj_check(env, rc, NULL)) {
    wj_wipe(d->out.data, d->out.len);
    d->out.len = 0;
    return NULL;
  }
  (*env)->SetIntArrayRegion(env, again, 0, 1, &a);
  return drain(env, &d->out);
}

WJ_EXPORT void JNICALL WJ_FN(Attachment, decryptFree)(JNIEnv *env, jclass cls, jlong h) {
  (void)env;
  (void)cls;
  if (h == 0) return;
  dec *d = WJ_PTR(dec, h);
  whisper_attachment_decrypt_free(d->d);
  sink_free(&d->out);
  free(d);
  wj_handle_freed();
}

/* libwhisper's Kotlin (JNI) binding: the shared helpers (common.h). */
#include "common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live_handles;
static jclass exc_class;   /* org.libwhisper.WhisperException (global ref) */
static jmethodID exc_ctor; /* (ILjava/lang/String;)V */

void wj_handle_made(void) { atomic_fetch_add(&live_handles, 1); }
void wj_handle_freed(void) { atomic_fetch_sub(&live_handles, 1); }

static void *(*volatile wipe_memset)(void *, int, size_t) = memset;
void wj_wipe(void *p, size_t len) {
  if (p != NULL && len > 0) wipe_memset(p, 0, len);
}

WJ_EXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  jclass c = (*env)->FindClass(env, "org/libwhisper/WhisperException");
  if (c == NULL) return JNI_ERR;
  exc_class = (*env)->NewGlobalRef(env, c);
  (*env)->DeleteLocalRef(env, c);
  exc_ctor = (*env)->GetMethodID(env, exc_class, "<init>", "(ILjava/lang/String;)V");
  if (exc_class == NULL || exc_ctor == NULL) return JNI_ERR;
  return JNI_VERSION_1_6;
}

int wj_check(JNIEnv *env, int rc, const char *why) {
  if (rc >= 0) return 0;
  if ((*env)->ExceptionCheck(env)) return 1; /* a Java exception already (an OOM) */
  const char *msg = (why != NULL && why[0] != '\0') ? why : whisper_strerror(rc);
  jstring s = (*env)->NewStringUTF(env, msg);
  if (s == NULL) return 1;
  jobject e = (*env)->NewObject(env, exc_class, exc_ctor, (jint)rc, s);
  if (e != NULL) (*env)->Throw(env, (jthrowable)e);
  return 1;
}

int wj_check_ctx(JNIEnv *env, int rc, const whisper_ctx *ctx) {
  return wj_check(env, rc, rc < 0 && ctx != NULL ? whisper_ctx_last_error(ctx) : NULL);
}

int wj_throw_inval(JNIEnv *env, const char *msg) {
  wj_check(env, WHISPER_EINVAL, msg);
  return 1;
}

int wj_closed(JNIEnv *env, jlong h) {
  if (h != 0) return 0;
  jclass c = (*env)->FindClass(env, "java/lang/IllegalStateException");
  if (c != NULL) (*env)->ThrowNew(env, c, "the object is closed");
  return 1;
}

wj_bytes wj_bytes_get(JNIEnv *env, jbyteArray a, int cstr) {
  wj_bytes b = {NULL, 0, 1};
  if ((*env)->ExceptionCheck(env)) { /* an earlier argument failed: no JNI call now */
    b.ok = 0;
    return b;
  }
  if (a == NULL) return b;
  jsize n = (*env)->GetArrayLength(env, a);
  b.data = malloc((size_t)n + 1);
  if (b.data == NULL) {
    b.ok = 0;
    wj_check(env, WHISPER_ENOMEM, NULL);
    return b;
  }
  (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)b.data);
  b.data[n] = 0;
  b.len = (size_t)n;
  if (cstr && memchr(b.data, 0, b.len) != NULL) {
    wj_bytes_done(&b);
    b.ok = 0;
    wj_throw_inval(env, "a string argument holds a NUL character");
  }
  return b;
}

void wj_bytes_done(wj_bytes *b) {
  if (b->data != NULL) {
    wj_wipe(b->data, b->len + 1);
    free(b->data);
  }
  b->data = NULL;
  b->len = 0;
}

jbyteArray wj_new_bytes(JNIEnv *env, const void *data, size_t len) {
  if ((*env)->ExceptionCheck(env)) return NULL;
  if (len > INT32_MAX) {
    wj_check(env, WHISPER_ETOOBIG, "too large for a Java array");
    return NULL;
  }
  jbyteArray a = (*env)->NewByteArray(env, (jsize)len);
  if (a != NULL && len > 0) (*env)->SetByteArrayRegion(env, a, 0, (jsize)len, data);
  return a;
}

jbyteArray wj_new_cstr(JNIEnv *env, const char *s) {
  if (s == NULL) return NULL;
  return wj_new_bytes(env, s, strlen(s));
}

jbyteArray wj_take_buf(JNIEnv *env, whisper_buf *buf) {
  jbyteArray a = wj_new_bytes(env, buf ? buf->data : NULL, buf ? buf->len : 0);
  whisper_buf_free(buf); /* wipes */
  return a;
}

void wj_set_longs(JNIEnv *env, jlongArray a, const jlong *v, size_t n) {
  if ((*env)->ExceptionCheck(env)) return;
  if ((size_t)(*env)->GetArrayLength(env, a) < n) {
    wj_throw_inval(env, "the record array is too short");
    return;
  }
  (*env)->SetLongArrayRegion(env, a, 0, (jsize)n, v);
}

jobjectArray wj_new_bytes_array(JNIEnv *env, size_t n) {
  if ((*env)->ExceptionCheck(env)) return NULL;
  jclass c = (*env)->FindClass(env, "[B");
  if (c == NULL) return NULL;
  jobjectArray arr = (*env)->NewObjectArray(env, (jsize)n, c, NULL);
  (*env)->DeleteLocalRef(env, c);
  return arr;
}

int wj_array_set(JNIEnv *env, jobjectArray arr, size_t i, jbyteArray v) {
  if ((*env)->ExceptionCheck(env)) return 1;
  (*env)->SetObjectArrayElement(env, arr, (jsize)i, v);
  if (v != NULL) (*env)->DeleteLocalRef(env, v);
  return (*env)->ExceptionCheck(env) ? 1 : 0;
}

wj_cstrs wj_cstrs_get(JNIEnv *env, jobjectArray a) {
  wj_cstrs s = {NULL, 0, NULL, 1};
  if ((*env)->ExceptionCheck(env)) {
    s.ok = 0;
    return s;
  }
  if (a == NULL) return s;
  jsize n = (*env)->GetArrayLength(env, a);
  if (n == 0) return s;
  s.v = calloc((size_t)n, sizeof *s.v);
  s.parts = calloc((size_t)n, sizeof *s.parts);
  if (s.v == NULL || s.parts == NULL) {
    s.ok = 0;
    wj_cstrs_done(&s);
    wj_check(env, WHISPER_ENOMEM, NULL);
    return s;
  }
  for (jsize i = 0; i < n; i++) {
    jbyteArray e = (jbyteArray)(*env)->GetObjectArrayElement(env, a, i);
    if (e == NULL) {
      s.n = (size_t)i;
      s.ok = 0;
      wj_cstrs_done(&s);
      wj_throw_inval(env, "a null name");
      return s;
    }
    s.parts[i] = wj_bytes_get(env, e, 1);
    (*env)->DeleteLocalRef(env, e);
    s.n = (size_t)i + 1;
    if (!s.parts[i].ok) {
      s.ok = 0;
      wj_cstrs_done(&s);
      return s;
    }
    s.v[i] = (const char *)s.parts[i].data;
  }
  return s;
}

void wj_cstrs_done(wj_cstrs *s) {
  if (s->parts != NULL)
    for (size_t i = 0; i < s->n; i++) wj_bytes_done(&s->parts[i]);
  free(s->parts);
  free(s->v);
  s->parts = NULL;
  s->v = NULL;
  s->n = 0;
}

/* --- org.libwhisper.NativeCore: version, errors, counters ---------------- */

#if defined(__GLIBC__)
#include <malloc.h>
#endif

WJ_EXPORT jint JNICALL WJ_FN(Core, version)(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)whisper_version();
}

WJ_EXPORT jstring JNICALL WJ_FN(Core, strerror)(JNIEnv *env, jclass cls, jint code) {
  (void)cls;
  return (*env)->NewStringUTF(env, whisper_strerror(code));
}

WJ_EXPORT jlong JNICALL WJ_FN(Core, liveHandles)(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jlong)atomic_load(&live_handles);
}

/* Bytes in use in the C heap (glibc's mallinfo2), -1 where unknown. */
WJ_EXPORT jlong JNICALL WJ_FN(Core, mallocInUse)(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  return (jlong)(mi.uordblks + mi.hblkhd);
#else
  return -1;
#endif
}

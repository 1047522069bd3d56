/*
 * libwhisper's Kotlin (JNI) binding: helpers every area's file shares.
 *
 * The shim is thin: each Java_* function converts its arguments, calls one
 * libwhisper function, and converts the result. Conventions:
 *  - Handles (whisper_ctx *, whisper_store *, ...) travel as jlong. Each
 *    one made is counted (wj_handle_made/wj_handle_freed) so that the
 *    tests can see that none leaks.
 *  - Strings travel as UTF-8 byte arrays (the Kotlin side encodes and
 *    decodes them), never as jstring: JNI's "modified UTF-8" is not UTF-8,
 *    and a secret must never become a java.lang.String. Only the error
 *    sentences (never secret) become Strings, in the exception.
 *  - Byte inputs are copied into native memory (wj_bytes) and wiped when
 *    the call returns; a whisper_buf the library returns is copied into a
 *    new byte[] and freed with whisper_buf_free(), which wipes it
 *    (wj_take_buf).
 *  - A failure throws org.libwhisper.WhisperException(code, message),
 *    the message being the library's last_error sentence when there is
 *    one; the Java_* function then returns at once (its value ignored).
 */
#ifndef WJ_COMMON_H
#define WJ_COMMON_H

#include <jni.h>
#include <stddef.h>
#include <stdint.h>

#include <whisper/whisper.h>

#define WJ_EXPORT JNIEXPORT
#define WJ_FN(area, name) Java_org_libwhisper_Native##area##_##name

/* Pointers <-> jlong. */
#define WJ_PTR(type, h) ((type *)(uintptr_t)(h))
#define WJ_HANDLE(p) ((jlong)(uintptr_t)(p))

/* Live native handles (all kinds), for the leak tests. */
void wj_handle_made(void);
void wj_handle_freed(void);

/* Wipes memory (not optimised away). */
void wj_wipe(void *p, size_t len);

/* Throws WhisperException(code, message). `why` may be NULL or "": then
 * whisper_strerror(code) is the message. Returns 1 when rc < 0 (thrown),
 * else 0. */
int wj_check(JNIEnv *env, int rc, const char *why);
/* As wj_check, with the context's last error as the sentence. */
int wj_check_ctx(JNIEnv *env, int rc, const whisper_ctx *ctx);
/* Throws WhisperException(WHISPER_EINVAL, msg) and returns 1. */
int wj_throw_inval(JNIEnv *env, const char *msg);
/* A NULL handle: throws IllegalStateException ("closed") and returns 1. */
int wj_closed(JNIEnv *env, jlong h);

/* A copy of a byte[] in native memory, wiped and freed by wj_bytes_done.
 * A null array gives data NULL, len 0 (ok 1); `cstr` adds a NUL (and
 * refuses an embedded NUL: a string argument). */
typedef struct wj_bytes {
  uint8_t *data;
  size_t len;
  int ok;
} wj_bytes;
wj_bytes wj_bytes_get(JNIEnv *env, jbyteArray a, int cstr);
void wj_bytes_done(wj_bytes *b);
#define WJ_CSTR(b) ((const char *)(b).data)

/* A new byte[] with `len` bytes of `data` (data may be NULL when len is 0);
 * NULL (and an OutOfMemoryError pending) on failure. */
jbyteArray wj_new_bytes(JNIEnv *env, const void *data, size_t len);
/* A NUL-terminated C string as byte[] (NULL -> null). */
jbyteArray wj_new_cstr(JNIEnv *env, const char *s);
/* Copies a whisper_buf into a new byte[] and frees (wipes) it. buf NULL ->
 * an empty array. */
jbyteArray wj_take_buf(JNIEnv *env, whisper_buf *buf);

/* Stores values into a long[] (the numeric fields of a record). */
void wj_set_longs(JNIEnv *env, jlongArray a, const jlong *v, size_t n);
/* A byte[][] of n elements, each from `parts` (NULL elements stay null). */
jobjectArray wj_new_bytes_array(JNIEnv *env, size_t n);
int wj_array_set(JNIEnv *env, jobjectArray arr, size_t i, jbyteArray v);

/* An array of C strings from a byte[][] of UTF-8 names (each NUL-ended);
 * free with wj_cstrs_done. NULL array -> n 0. */
typedef struct wj_cstrs {
  const char **v;
  size_t n;
  wj_bytes *parts;
  int ok;
} wj_cstrs;
wj_cstrs wj_cstrs_get(JNIEnv *env, jobjectArray a);
void wj_cstrs_done(wj_cstrs *s);

#endif

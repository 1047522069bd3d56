/* libwhisper's Kotlin (JNI) binding: client.h, the sans-I/O client engine
 * (org.libwhisper.NativeClient). The handle is a small struct holding the
 * engine and its context (whose last_error is the failure's sentence). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t empty[1];

typedef struct wj_client {
  whisper_client *c;
  whisper_ctx *ctx;
} wj_client;

#define CL WJ_PTR(wj_client, h)
#define CHECK(rc) wj_check_ctx(env, (rc), CL->ctx)
#define OPEN_OR(ret)          \
  do {                        \
    if (wj_closed(env, h)) return ret; \
  } while (0)
#define S(b) ((b).data ? WJ_CSTR(b) : "")
#define SN(arr, b) ((arr) ? WJ_CSTR(b) : NULL) /* a nullable string */
#define B(b) ((b).data ? (b).data : empty)

/* A fixed-size byte argument: exactly n bytes, else EINVAL thrown. */
static wj_bytes fixed(JNIEnv *env, jbyteArray a, size_t n, const char *what) {
  wj_bytes b = wj_bytes_get(env, a, 0);
  if (b.ok && b.len != n) {
    wj_bytes_done(&b);
    b.ok = 0;
    wj_throw_inval(env, what);
  }
  return b;
}

/* cfg = the numeric fields of whisper_client_config_t in order (version 7):
 * prekey_batch, prekey_low, backoff_min_ms, backoff_max_ms, ping_ms,
 * request_timeout_ms, typing_min_ms, read_receipts, presence_visible,
 * hold_on_change, delivery_receipts, delete_window_ms, max_group_members,
 * media_max_size, media_piece, signed_prekey_rotate_ms,
 * signed_prekey_grace_ms, send_window; null: the defaults. */
WJ_EXPORT jlong JNICALL WJ_FN(Client, create)(JNIEnv *env, jclass cls, jlong ctx, jlongArray cfg,
                                              jbyteArray media_dir) {
  (void)cls;
  if (wj_closed(env, ctx)) return 0;
  whisper_client_config_t c = WHISPER_CLIENT_CONFIG_INIT;
  wj_bytes md = wj_bytes_get(env, media_dir, 1);
  jlong out = 0;
  if (!md.ok) return 0;
  if (cfg != NULL) {
    jlong v[18];
    if ((*env)->GetArrayLength(env, cfg) != 18) {
      wj_throw_inval(env, "the config has 18 fields");
      goto done;
    }
    (*env)->GetLongArrayRegion(env, cfg, 0, 18, v);
    c.prekey_batch = (uint32_t)v[0];
    c.prekey_low = (uint32_t)v[1];
    c.backoff_min_ms = (uint64_t)v[2];
    c.backoff_max_ms = (uint64_t)v[3];
    c.ping_ms = (uint64_t)v[4];
    c.request_timeout_ms = (uint64_t)v[5];
    c.typing_min_ms = (uint64_t)v[6];
    c.read_receipts = (int)v[7];
    c.presence_visible = (int)v[8];
    c.hold_on_change = (int)v[9];
    c.delivery_receipts = (int)v[10];
    c.delete_window_ms = (uint64_t)v[11];
    c.max_group_members = (uint32_t)v[12];
    c.media_max_size = (uint64_t)v[13];
    c.media_piece = (uint32_t)v[14];
    c.signed_prekey_rotate_ms = (uint64_t)v[15];
    c.signed_prekey_grace_ms = (uint64_t)v[16];
    c.send_window = (uint32_t)v[17];
  }
  c.media_dir = media_dir ? WJ_CSTR(md) : NULL;
  wj_client *w = calloc(1, sizeof *w);
  if (w == NULL) {
    wj_check(env, WHISPER_ENOMEM, NULL);
    goto done;
  }
  w->ctx = WJ_PTR(whisper_ctx, ctx);
  if (wj_check_ctx(env, whisper_client_new(&w->c, w->ctx, &c), w->ctx)) {
    free(w);
    goto done;
  }
  wj_handle_made();
  out = WJ_HANDLE(w);
done:
  wj_bytes_done(&md);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Client, free)(JNIEnv *env, jclass cls, jlong h) {
  (void)env;
  (void)cls;
  if (h == 0) return;
  whisper_client_free(CL->c);
  free(CL);
  wj_handle_freed();
}

/* --- the connection -------------------------------------------------------- */

WJ_EXPORT jboolean JNICALL WJ_FN(Client, wantConnect)(JNIEnv *env, jclass cls, jlong h, jlong now) {
  (void)cls;
  OPEN_OR(JNI_FALSE);
  return whisper_client_want_connect(CL->c, (uint64_t)now) ? JNI_TRUE : JNI_FALSE;
}

WJ_EXPORT void JNICALL WJ_FN(Client, connected)(JNIEnv *env, jclass cls, jlong h, jlong now) {
  (void)cls;
  OPEN_OR();
  CHECK(whisper_client_connected(CL->c, (uint64_t)now));
}

WJ_EXPORT void JNICALL WJ_FN(Client, disconnected)(JNIEnv *env, jclass cls, jlong h, jlong now) {
  (void)cls;
  OPEN_OR();
  whisper_client_disconnected(CL->c, (uint64_t)now);
}

WJ_EXPORT void JNICALL WJ_FN(Client, receive)(JNIEnv *env, jclass cls, jlong h, jbyteArray frame,
                                              jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes f = wj_bytes_get(env, frame, 0);
  if (f.ok) CHECK(whisper_client_receive(CL->c, B(f), f.len, (uint64_t)now));
  wj_bytes_done(&f);
}

/* The next frame to send, or null. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, takeFrame)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  OPEN_OR(NULL);
  whisper_buf *b = NULL;
  if (!whisper_client_take_frame(CL->c, &b)) return NULL;
  return wj_take_buf(env, b);
}

WJ_EXPORT jboolean JNICALL WJ_FN(Client, wantDisconnect)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  OPEN_OR(JNI_FALSE);
  return whisper_client_want_disconnect(CL->c) ? JNI_TRUE : JNI_FALSE;
}

/* UINT64_MAX comes out as -1: the Kotlin side reads it as "none". */
WJ_EXPORT jlong JNICALL WJ_FN(Client, nextDeadline)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  OPEN_OR(-1);
  return (jlong)whisper_client_next_deadline(CL->c);
}

WJ_EXPORT void JNICALL WJ_FN(Client, tick)(JNIEnv *env, jclass cls, jlong h, jlong now) {
  (void)cls;
  OPEN_OR();
  whisper_client_tick(CL->c, (uint64_t)now);
}

/* --- messages ------------------------------------------------------------- */

/* to: an account (group_id null) or, with group_id, a group. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, send)(JNIEnv *env, jclass cls, jlong h, jbyteArray to,
                                                 jbyteArray group_id, jbyteArray body, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes t = wj_bytes_get(env, to, 1), b = wj_bytes_get(env, body, 0);
  wj_bytes g = group_id ? fixed(env, group_id, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes")
                        : wj_bytes_get(env, NULL, 0);
  jbyteArray out = NULL;
  if (t.ok && b.ok && g.ok) {
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    int rc = group_id ? whisper_client_send_group(CL->c, g.data, b.data, b.len, (uint64_t)now, id)
                      : whisper_client_send(CL->c, S(t), b.data, b.len, (uint64_t)now, id);
    if (!CHECK(rc)) out = wj_new_bytes(env, id, sizeof id);
  }
  wj_bytes_done(&t);
  wj_bytes_done(&b);
  wj_bytes_done(&g);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, reply)(JNIEnv *env, jclass cls, jlong h,
                                                  jbyteArray conv, jbyteArray qid,
                                                  jbyteArray qsender, jbyteArray body, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes c = wj_bytes_get(env, conv, 1), q = wj_bytes_get(env, qid, 0);
  wj_bytes s = wj_bytes_get(env, qsender, 1), b = wj_bytes_get(env, body, 0);
  jbyteArray out = NULL;
  if (c.ok && q.ok && s.ok && b.ok) {
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    if (!CHECK(whisper_client_reply(CL->c, S(c), B(q), q.len, SN(qsender, s), b.data, b.len,
                                    (uint64_t)now, id)))
      out = wj_new_bytes(env, id, sizeof id);
  }
  wj_bytes_done(&c);
  wj_bytes_done(&q);
  wj_bytes_done(&s);
  wj_bytes_done(&b);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, forward)(JNIEnv *env, jclass cls, jlong h,
                                                    jbyteArray to_conv, jbyteArray from_conv,
                                                    jbyteArray mid, jbyteArray sender, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes t = wj_bytes_get(env, to_conv, 1), f = wj_bytes_get(env, from_conv, 1);
  wj_bytes i = wj_bytes_get(env, mid, 0), s = wj_bytes_get(env, sender, 1);
  jbyteArray out = NULL;
  if (t.ok && f.ok && i.ok && s.ok) {
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    if (!CHECK(whisper_client_forward(CL->c, S(t), S(f), B(i), i.len, SN(sender, s),
                                      (uint64_t)now, id)))
      out = wj_new_bytes(env, id, sizeof id);
  }
  wj_bytes_done(&t);
  wj_bytes_done(&f);
  wj_bytes_done(&i);
  wj_bytes_done(&s);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Client, react)(JNIEnv *env, jclass cls, jlong h, jbyteArray conv,
                                            jbyteArray mid, jbyteArray sender, jbyteArray emoji,
                                            jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1), i = wj_bytes_get(env, mid, 0);
  wj_bytes s = wj_bytes_get(env, sender, 1), e = wj_bytes_get(env, emoji, 1);
  if (c.ok && i.ok && s.ok && e.ok)
    CHECK(whisper_client_react(CL->c, S(c), B(i), i.len, SN(sender, s), S(e), (uint64_t)now));
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&s);
  wj_bytes_done(&e);
}

/* body null: delete for everyone; else edit. */
WJ_EXPORT void JNICALL WJ_FN(Client, editOrDelete)(JNIEnv *env, jclass cls, jlong h,
                                                   jbyteArray conv, jbyteArray mid,
                                                   jbyteArray body, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1), i = wj_bytes_get(env, mid, 0);
  wj_bytes b = wj_bytes_get(env, body, 0);
  if (c.ok && i.ok && b.ok)
    CHECK(body ? whisper_client_edit(CL->c, S(c), B(i), i.len, b.data, b.len, (uint64_t)now)
               : whisper_client_delete(CL->c, S(c), B(i), i.len, (uint64_t)now));
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&b);
}

/* --- media ----------------------------------------------------------------- */

/* nums = {width, height, duration_ms, flags}. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, sendFile)(JNIEnv *env, jclass cls, jlong h,
                                                     jbyteArray conv, jbyteArray path,
                                                     jbyteArray content_type,
                                                     jbyteArray file_name, jbyteArray caption,
                                                     jbyteArray thumbnail, jintArray nums,
                                                     jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes c = wj_bytes_get(env, conv, 1), p = wj_bytes_get(env, path, 1);
  wj_bytes ct = wj_bytes_get(env, content_type, 1), fn = wj_bytes_get(env, file_name, 1);
  wj_bytes cp = wj_bytes_get(env, caption, 1), th = wj_bytes_get(env, thumbnail, 0);
  jbyteArray out = NULL;
  if (c.ok && p.ok && ct.ok && fn.ok && cp.ok && th.ok) {
    jint v[4] = {0, 0, 0, 0};
    if (nums != NULL) (*env)->GetIntArrayRegion(env, nums, 0, 4, v);
    whisper_media_meta_t m = WHISPER_MEDIA_META_INIT;
    m.content_type = SN(content_type, ct);
    m.file_name = SN(file_name, fn);
    m.caption = SN(caption, cp);
    m.thumbnail = thumbnail ? th.data : NULL;
    m.thumbnail_len = th.len;
    m.width = (uint32_t)v[0];
    m.height = (uint32_t)v[1];
    m.duration_ms = (uint32_t)v[2];
    m.flags = (uint32_t)v[3];
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    if (!(*env)->ExceptionCheck(env) &&
        !CHECK(whisper_client_send_file(CL->c, S(c), S(p), &m, (uint64_t)now, id)))
      out = wj_new_bytes(env, id, sizeof id);
  }
  wj_bytes_done(&c);
  wj_bytes_done(&p);
  wj_bytes_done(&ct);
  wj_bytes_done(&fn);
  wj_bytes_done(&cp);
  wj_bytes_done(&th);
  return out;
}

/* nums = {size, width, height, duration_ms, flags, state, done, total,
 * error}; returns [content_type, file_name, caption, thumbnail, path]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, mediaGet)(JNIEnv *env, jclass cls, jlong h,
                                                       jbyteArray conv, jbyteArray mid,
                                                       jbyteArray sender, jlongArray nums) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes c = wj_bytes_get(env, conv, 1), i = wj_bytes_get(env, mid, 0);
  wj_bytes s = wj_bytes_get(env, sender, 1);
  jobjectArray arr = NULL;
  if (c.ok && i.ok && s.ok) {
    whisper_media_t *m = NULL;
    if (!CHECK(whisper_client_media_get(CL->c, S(c), B(i), i.len, SN(sender, s), &m))) {
      jlong v[9] = {(jlong)m->size, m->width, m->height, m->duration_ms, m->flags,
                    m->state,       (jlong)m->done, (jlong)m->total, m->error};
      wj_set_longs(env, nums, v, 9);
      arr = wj_new_bytes_array(env, 5);
      if (arr != NULL) {
        wj_array_set(env, arr, 0, wj_new_cstr(env, m->content_type));
        wj_array_set(env, arr, 1, wj_new_cstr(env, m->file_name));
        wj_array_set(env, arr, 2, wj_new_cstr(env, m->caption));
        wj_array_set(env, arr, 3, m->thumbnail ? wj_new_bytes(env, m->thumbnail, m->thumbnail_len)
                                               : NULL);
        wj_array_set(env, arr, 4, wj_new_cstr(env, m->path));
      }
      whisper_media_free(m);
    }
  }
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&s);
  return arr;
}

/* view_once: whisper_client_view_once_open(), else whisper_client_download(). */
WJ_EXPORT void JNICALL WJ_FN(Client, download)(JNIEnv *env, jclass cls, jlong h, jbyteArray conv,
                                               jbyteArray mid, jbyteArray sender, jbyteArray path,
                                               jboolean view_once, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1), i = wj_bytes_get(env, mid, 0);
  wj_bytes s = wj_bytes_get(env, sender, 1), p = wj_bytes_get(env, path, 1);
  if (c.ok && i.ok && s.ok && p.ok)
    CHECK(view_once ? whisper_client_view_once_open(CL->c, S(c), B(i), i.len, SN(sender, s),
                                                    SN(path, p), (uint64_t)now)
                    : whisper_client_download(CL->c, S(c), B(i), i.len, SN(sender, s),
                                              SN(path, p), (uint64_t)now));
  wj_bytes_done(&c);
  wj_bytes_done(&i);
  wj_bytes_done(&s);
  wj_bytes_done(&p);
}

/* The next HTTP request or null: handle[0]; returns [method, path, headers,
 * body]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, takeHttp)(JNIEnv *env, jclass cls, jlong h,
                                                       jlongArray handle) {
  (void)cls;
  OPEN_OR(NULL);
  whisper_http_request_t r = WHISPER_HTTP_REQUEST_INIT;
  if (whisper_client_take_http(CL->c, &r) <= 0) return NULL;
  jlong v = (jlong)r.handle;
  wj_set_longs(env, handle, &v, 1);
  jobjectArray arr = wj_new_bytes_array(env, 4);
  if (arr == NULL) return NULL;
  wj_array_set(env, arr, 0, wj_new_cstr(env, r.method));
  wj_array_set(env, arr, 1, wj_new_cstr(env, r.path));
  wj_array_set(env, arr, 2, wj_new_cstr(env, r.headers));
  wj_array_set(env, arr, 3, wj_new_bytes(env, r.body, r.body_len));
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(Client, httpDone)(JNIEnv *env, jclass cls, jlong h, jlong handle,
                                               jint status, jbyteArray headers, jbyteArray body,
                                               jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes hd = wj_bytes_get(env, headers, 1), b = wj_bytes_get(env, body, 0);
  if (hd.ok && b.ok)
    CHECK(whisper_client_http_done(CL->c, (uint64_t)handle, status, SN(headers, hd), b.data,
                                   b.len, (uint64_t)now));
  wj_bytes_done(&hd);
  wj_bytes_done(&b);
}

/* --- conversation flags and profiles -------------------------------------- */

/* flags = {muted_until_ms, archived, pinned}: set when `set`, else read. */
WJ_EXPORT void JNICALL WJ_FN(Client, conversationFlags)(JNIEnv *env, jclass cls, jlong h,
                                                        jbyteArray conv, jlongArray flags,
                                                        jboolean set, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1);
  if (c.ok) {
    whisper_conversation_flags_t f = WHISPER_CONVERSATION_FLAGS_INIT;
    jlong v[3];
    if (set) {
      (*env)->GetLongArrayRegion(env, flags, 0, 3, v);
      f.muted_until_ms = (uint64_t)v[0];
      f.archived = (int)v[1];
      f.pinned = (int)v[2];
      CHECK(whisper_client_conversation_flags_set(CL->c, S(c), &f, (uint64_t)now));
    } else if (!CHECK(whisper_client_conversation_flags_get(CL->c, S(c), &f))) {
      v[0] = (jlong)f.muted_until_ms;
      v[1] = f.archived;
      v[2] = f.pinned;
      wj_set_longs(env, flags, v, 3);
    }
  }
  wj_bytes_done(&c);
}

WJ_EXPORT void JNICALL WJ_FN(Client, profileSet)(JNIEnv *env, jclass cls, jlong h, jbyteArray name,
                                                 jbyteArray about, jbyteArray picture, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes n = wj_bytes_get(env, name, 1), a = wj_bytes_get(env, about, 1);
  wj_bytes p = wj_bytes_get(env, picture, 0);
  if (n.ok && a.ok && p.ok)
    CHECK(whisper_client_profile_set(CL->c, S(n), S(a), p.len ? p.data : NULL, p.len,
                                     (uint64_t)now));
  wj_bytes_done(&n);
  wj_bytes_done(&a);
  wj_bytes_done(&p);
}

/* nums = {known, profile_version}; returns [name, about, picture]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, profileGet)(JNIEnv *env, jclass cls, jlong h,
                                                         jbyteArray account, jlongArray nums) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes a = wj_bytes_get(env, account, 1);
  jobjectArray arr = NULL;
  whisper_profile_t *p = NULL;
  if (a.ok && !CHECK(whisper_client_profile_get(CL->c, SN(account, a), &p))) {
    jlong v[2] = {p->known, (jlong)p->profile_version};
    wj_set_longs(env, nums, v, 2);
    arr = wj_new_bytes_array(env, 3);
    if (arr != NULL) {
      wj_array_set(env, arr, 0, wj_new_cstr(env, p->name));
      wj_array_set(env, arr, 1, wj_new_cstr(env, p->about));
      wj_array_set(env, arr, 2, p->picture ? wj_new_bytes(env, p->picture, p->picture_len) : NULL);
    }
  }
  whisper_profile_free(p); /* wipes */
  wj_bytes_done(&a);
  return arr;
}

/* rotate: whisper_client_profile_rotate_key(withhold = account), else
 * whisper_client_profile_refresh(account). */
WJ_EXPORT void JNICALL WJ_FN(Client, profileRefreshOrRotate)(JNIEnv *env, jclass cls, jlong h,
                                                             jbyteArray account, jboolean rotate,
                                                             jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes a = wj_bytes_get(env, account, 1);
  if (a.ok)
    CHECK(rotate ? whisper_client_profile_rotate_key(CL->c, SN(account, a), (uint64_t)now)
                 : whisper_client_profile_refresh(CL->c, SN(account, a)));
  wj_bytes_done(&a);
}

/* --- calls, receipts, typing, presence ------------------------------------ */

WJ_EXPORT void JNICALL WJ_FN(Client, call)(JNIEnv *env, jclass cls, jlong h, jbyteArray to,
                                           jint type, jbyteArray call_id, jbyteArray data,
                                           jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes t = wj_bytes_get(env, to, 1), d = wj_bytes_get(env, data, 0);
  wj_bytes i = fixed(env, call_id, WHISPER_CALL_ID_LEN, "a call id is 16 bytes");
  if (t.ok && d.ok && i.ok)
    CHECK(whisper_client_call(CL->c, S(t), type, i.data, d.data, d.len, (uint64_t)now));
  wj_bytes_done(&t);
  wj_bytes_done(&d);
  wj_bytes_done(&i);
}

/* ids: n client ids of 16 bytes, concatenated. */
WJ_EXPORT void JNICALL WJ_FN(Client, markRead)(JNIEnv *env, jclass cls, jlong h, jbyteArray conv,
                                               jbyteArray sender, jbyteArray ids, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1), s = wj_bytes_get(env, sender, 1);
  wj_bytes i = wj_bytes_get(env, ids, 0);
  if (c.ok && s.ok && i.ok) {
    if (i.len % WHISPER_CLIENT_ID_LEN != 0)
      wj_throw_inval(env, "client ids are 16 bytes each");
    else
      CHECK(whisper_client_mark_read(CL->c, S(c), S(s),
                                     i.len ? (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])i.data : NULL,
                                     i.len / WHISPER_CLIENT_ID_LEN, (uint64_t)now));
  }
  wj_bytes_done(&c);
  wj_bytes_done(&s);
  wj_bytes_done(&i);
}

WJ_EXPORT void JNICALL WJ_FN(Client, typing)(JNIEnv *env, jclass cls, jlong h, jbyteArray conv,
                                             jboolean started, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1);
  if (c.ok) CHECK(whisper_client_typing(CL->c, S(c), started ? 1 : 0, (uint64_t)now));
  wj_bytes_done(&c);
}

WJ_EXPORT void JNICALL WJ_FN(Client, subscribe)(JNIEnv *env, jclass cls, jlong h,
                                                jobjectArray accounts) {
  (void)cls;
  OPEN_OR();
  wj_cstrs a = wj_cstrs_get(env, accounts);
  if (a.ok) CHECK(whisper_client_subscribe(CL->c, a.v, a.n));
  wj_cstrs_done(&a);
}

/* --- groups ---------------------------------------------------------------- */

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, groupCreate)(JNIEnv *env, jclass cls, jlong h,
                                                        jobjectArray members, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_cstrs m = wj_cstrs_get(env, members);
  jbyteArray out = NULL;
  if (m.ok) {
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    if (!CHECK(whisper_client_group_create(CL->c, m.v, m.n, (uint64_t)now, gid)))
      out = wj_new_bytes(env, gid, sizeof gid);
  }
  wj_cstrs_done(&m);
  return out;
}

/* remove: whisper_client_group_remove, else _add. */
WJ_EXPORT void JNICALL WJ_FN(Client, groupMembers)(JNIEnv *env, jclass cls, jlong h,
                                                   jbyteArray gid, jobjectArray members,
                                                   jboolean remove, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes g = fixed(env, gid, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes");
  wj_cstrs m = wj_cstrs_get(env, members);
  if (g.ok && m.ok) {
    if (m.n == 0)
      wj_throw_inval(env, "no member named");
    else
      CHECK(remove ? whisper_client_group_remove(CL->c, g.data, m.v, m.n, (uint64_t)now)
                   : whisper_client_group_add(CL->c, g.data, m.v, m.n, (uint64_t)now));
  }
  wj_bytes_done(&g);
  wj_cstrs_done(&m);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, groupConversation)(JNIEnv *env, jclass cls,
                                                              jbyteArray gid) {
  (void)cls;
  wj_bytes g = fixed(env, gid, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes");
  jbyteArray out = NULL;
  if (g.ok) {
    char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
    whisper_client_group_conversation(g.data, conv);
    out = wj_new_cstr(env, conv);
  }
  wj_bytes_done(&g);
  return out;
}

/* op: 1 admin(member, on), 2 set_info(field=arg, value), 3 set(setting=arg,
 * on), 4 link_revoke, 5 leave. */
WJ_EXPORT void JNICALL WJ_FN(Client, groupChange)(JNIEnv *env, jclass cls, jlong h, jbyteArray gid,
                                                  jint op, jint arg, jbyteArray value, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes g = fixed(env, gid, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes");
  wj_bytes v = wj_bytes_get(env, value, op == 1);
  if (g.ok && v.ok) {
    int rc = WHISPER_EINVAL;
    uint64_t t = (uint64_t)now;
    switch (op) {
      case 1: rc = whisper_client_group_admin_set(CL->c, g.data, S(v), arg, t); break;
      case 2: rc = whisper_client_group_info_set(CL->c, g.data, arg, v.len ? v.data : NULL, v.len, t); break;
      case 3: rc = whisper_client_group_setting_set(CL->c, g.data, arg, v.len ? v.data[0] : 0, t); break;
      case 4: rc = whisper_client_group_link_revoke(CL->c, g.data, t); break;
      case 5: rc = whisper_client_group_leave(CL->c, g.data, t); break;
      default: break;
    }
    CHECK(rc);
  }
  wj_bytes_done(&g);
  wj_bytes_done(&v);
}

/* The new invite link as bytes (a secret: wiped here). */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, groupLinkGenerate)(JNIEnv *env, jclass cls, jlong h,
                                                          jbyteArray gid, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes g = fixed(env, gid, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes");
  jbyteArray out = NULL;
  if (g.ok) {
    char link[WHISPER_GROUP_LINK_LEN + 1];
    if (!CHECK(whisper_client_group_link_generate(CL->c, g.data, (uint64_t)now, link)))
      out = wj_new_cstr(env, link);
    wj_wipe(link, sizeof link);
  }
  wj_bytes_done(&g);
  return out;
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, groupJoin)(JNIEnv *env, jclass cls, jlong h,
                                                      jbyteArray link, jlong now) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes l = wj_bytes_get(env, link, 1);
  jbyteArray out = NULL;
  if (l.ok) {
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    if (!CHECK(whisper_client_group_join(CL->c, S(l), (uint64_t)now, gid)))
      out = wj_new_bytes(env, gid, sizeof gid);
  }
  wj_bytes_done(&l);
  return out;
}

static jobjectArray names_of(JNIEnv *env, char *const *v, size_t n) {
  jobjectArray arr = wj_new_bytes_array(env, n);
  for (size_t i = 0; arr != NULL && i < n; i++)
    if (wj_array_set(env, arr, i, wj_new_cstr(env, v[i]))) break;
  return arr;
}

/* nums = {admins_edit_info, admins_send, approval_required, has_link,
 * member, admin, change_version}; returns [members[], admins[],
 * requests[], [name, description, picture]] (an Object[]). */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, groupState)(JNIEnv *env, jclass cls, jlong h,
                                                         jbyteArray gid, jlongArray nums) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes g = fixed(env, gid, WHISPER_GROUP_ID_LEN, "a group id is 16 bytes");
  jobjectArray out = NULL;
  whisper_group_state_t *s = NULL;
  if (g.ok && !CHECK(whisper_client_group_state(CL->c, g.data, &s))) {
    jlong v[7] = {s->admins_edit_info, s->admins_send, s->approval_required, s->has_link,
                  s->member,           s->admin,       (jlong)s->change_version};
    wj_set_longs(env, nums, v, 7);
    jclass oc = (*env)->FindClass(env, "java/lang/Object");
    if (oc != NULL) out = (*env)->NewObjectArray(env, 4, oc, NULL);
    if (out != NULL) {
      (*env)->SetObjectArrayElement(env, out, 0, names_of(env, s->members, s->n_members));
      (*env)->SetObjectArrayElement(env, out, 1, names_of(env, s->admins, s->n_admins));
      (*env)->SetObjectArrayElement(env, out, 2, names_of(env, s->requests, s->n_requests));
      jobjectArray info = wj_new_bytes_array(env, 3);
      if (info != NULL) {
        wj_array_set(env, info, 0, wj_new_cstr(env, s->name));
        wj_array_set(env, info, 1, wj_new_cstr(env, s->description));
        wj_array_set(env, info, 2,
                     s->picture ? wj_new_bytes(env, s->picture, s->picture_len) : NULL);
      }
      (*env)->SetObjectArrayElement(env, out, 3, info);
    }
  }
  whisper_group_state_free(s);
  wj_bytes_done(&g);
  return out;
}

/* --- devices, trust, anchor ------------------------------------------------ */

WJ_EXPORT void JNICALL WJ_FN(Client, linkApprove)(JNIEnv *env, jclass cls, jlong h,
                                                  jbyteArray token) {
  (void)cls;
  OPEN_OR();
  wj_bytes t = wj_bytes_get(env, token, 0);
  if (t.ok) CHECK(whisper_client_link_approve(CL->c, B(t), t.len));
  wj_bytes_done(&t);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, linkDigits)(JNIEnv *env, jclass cls, jbyteArray token) {
  (void)cls;
  wj_bytes t = wj_bytes_get(env, token, 0);
  jbyteArray out = NULL;
  if (t.ok) {
    char d[WHISPER_LINK_DIGITS + 1];
    if (!wj_check(env, whisper_client_link_digits(B(t), t.len, d), NULL)) out = wj_new_cstr(env, d);
  }
  wj_bytes_done(&t);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Client, deviceRemove)(JNIEnv *env, jclass cls, jlong h, jint dev) {
  (void)cls;
  OPEN_OR();
  CHECK(whisper_client_device_remove(CL->c, (uint32_t)dev));
}

/* Returns the account key (null when unknown); trust[0] = WHISPER_TRUST_*. */
WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, accountInfo)(JNIEnv *env, jclass cls, jlong h,
                                                        jbyteArray account, jintArray trust) {
  (void)cls;
  OPEN_OR(NULL);
  wj_bytes a = wj_bytes_get(env, account, 1);
  jbyteArray out = NULL;
  if (a.ok) {
    int t = 0;
    uint8_t key[WHISPER_PUBLIC_KEY_LEN];
    memset(key, 0, sizeof key);
    if (!CHECK(whisper_client_account_info(CL->c, S(a), &t, key))) {
      jint tv = t;
      (*env)->SetIntArrayRegion(env, trust, 0, 1, &tv);
      if (t != WHISPER_TRUST_UNKNOWN && key[0] != 0) out = wj_new_bytes(env, key, sizeof key);
    }
  }
  wj_bytes_done(&a);
  return out;
}

WJ_EXPORT void JNICALL WJ_FN(Client, accountTrust)(JNIEnv *env, jclass cls, jlong h,
                                                   jbyteArray account, jbyteArray key,
                                                   jboolean verified) {
  (void)cls;
  OPEN_OR();
  wj_bytes a = wj_bytes_get(env, account, 1);
  wj_bytes k = fixed(env, key, WHISPER_PUBLIC_KEY_LEN, "an account key is 33 bytes");
  if (a.ok && k.ok) CHECK(whisper_client_account_trust(CL->c, S(a), k.data, verified ? 1 : 0));
  wj_bytes_done(&a);
  wj_bytes_done(&k);
}

WJ_EXPORT jbyteArray JNICALL WJ_FN(Client, anchor)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  OPEN_OR(NULL);
  uint8_t a[WHISPER_ANCHOR_LEN];
  if (CHECK(whisper_client_anchor(CL->c, a))) return NULL;
  return wj_new_bytes(env, a, sizeof a);
}

WJ_EXPORT jboolean JNICALL WJ_FN(Client, checkAnchor)(JNIEnv *env, jclass cls, jlong h,
                                                      jbyteArray anchor) {
  (void)cls;
  OPEN_OR(JNI_FALSE);
  wj_bytes a = wj_bytes_get(env, anchor, 0);
  int restored = 0;
  if (a.ok) CHECK(whisper_client_anchor_check(CL->c, B(a), a.len, &restored));
  wj_bytes_done(&a);
  return restored ? JNI_TRUE : JNI_FALSE;
}

WJ_EXPORT void JNICALL WJ_FN(Client, retry)(JNIEnv *env, jclass cls, jlong h, jlong now) {
  (void)cls;
  OPEN_OR();
  CHECK(whisper_client_retry(CL->c, (uint64_t)now));
}

/* --- blocking and reporting ------------------------------------------------ */

/* op: 1 block, 0 unblock, 2 is_blocked (returned). */
WJ_EXPORT jboolean JNICALL WJ_FN(Client, block)(JNIEnv *env, jclass cls, jlong h,
                                                jbyteArray account, jint op, jlong now) {
  (void)cls;
  OPEN_OR(JNI_FALSE);
  wj_bytes a = wj_bytes_get(env, account, 1);
  int blocked = 0;
  if (a.ok)
    CHECK(op == 1   ? whisper_client_block(CL->c, S(a), (uint64_t)now)
          : op == 0 ? whisper_client_unblock(CL->c, S(a), (uint64_t)now)
                    : whisper_client_is_blocked(CL->c, S(a), &blocked));
  wj_bytes_done(&a);
  return blocked ? JNI_TRUE : JNI_FALSE;
}

WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, blockedList)(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  OPEN_OR(NULL);
  whisper_buf *b = NULL;
  size_t n = 0;
  if (CHECK(whisper_client_blocked_list(CL->c, &b, &n))) return NULL;
  jobjectArray arr = wj_new_bytes_array(env, n);
  const char *p = b && b->data ? (const char *)b->data : "";
  for (size_t i = 0; arr != NULL && i < n; i++) {
    if (wj_array_set(env, arr, i, wj_new_cstr(env, p))) break;
    p += strlen(p) + 1;
  }
  whisper_buf_free(b);
  return arr;
}

WJ_EXPORT void JNICALL WJ_FN(Client, report)(JNIEnv *env, jclass cls, jlong h, jbyteArray conv,
                                             jint n, jboolean block, jlong now) {
  (void)cls;
  OPEN_OR();
  wj_bytes c = wj_bytes_get(env, conv, 1);
  if (c.ok)
    CHECK(whisper_client_report(CL->c, S(c), (size_t)(n < 0 ? 0 : n), block ? 1 : 0,
                                (uint64_t)now));
  wj_bytes_done(&c);
}

/* --- events ---------------------------------------------------------------- */

/* The next event or null: nums = {type, from_device, status, started, online,
 * last_seen_ms, server_seq, server_ts, code, server_code, kind, forwarded,
 * done_bytes, total_bytes}; returns [conversation, from, id, body, message,
 * target_id, target_sender]. */
WJ_EXPORT jobjectArray JNICALL WJ_FN(Client, takeEvent)(JNIEnv *env, jclass cls, jlong h,
                                                        jlongArray nums) {
  (void)cls;
  OPEN_OR(NULL);
  whisper_client_event_t e;
  memset(&e, 0, sizeof e);
  if (!whisper_client_take_event(CL->c, &e)) return NULL;
  jlong v[14] = {e.type,      e.from_device,  e.status,          e.started,
                 e.online,    (jlong)e.last_seen_ms, (jlong)e.server_seq, (jlong)e.server_ts,
                 e.code,      e.server_code,  e.kind,            e.forwarded,
                 (jlong)e.done_bytes, (jlong)e.total_bytes};
  wj_set_longs(env, nums, v, 14);
  jobjectArray arr = wj_new_bytes_array(env, 7);
  if (arr == NULL) return NULL;
  wj_array_set(env, arr, 0, wj_new_cstr(env, e.conversation));
  wj_array_set(env, arr, 1, wj_new_cstr(env, e.from));
  wj_array_set(env, arr, 2, e.id ? wj_new_bytes(env, e.id, e.id_len) : NULL);
  wj_array_set(env, arr, 3, e.body ? wj_new_bytes(env, e.body, e.body_len) : NULL);
  wj_array_set(env, arr, 4, wj_new_cstr(env, e.message));
  wj_array_set(env, arr, 5, e.target_id ? wj_new_bytes(env, e.target_id, e.target_id_len) : NULL);
  wj_array_set(env, arr, 6, wj_new_cstr(env, e.target_sender));
  return arr;
}

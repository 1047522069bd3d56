/*
 * whisper-peer: libwhisper behind the interop peer protocol.
 *
 *   whisper-peer --db PATH
 *
 * Reads one JSON request per line on stdin and writes exactly one JSON
 * response per line on stdout, in order, flushing after each; logs go to
 * stderr only. Exits 0 at end of input or after {"op":"quit"}.
 *
 * Besides the common requests it answers two of its own (the libsignal
 * peer has no such API): decrypt_batch, whisper_session_decrypt_batch()
 * (one transaction, each message stored in history), and history,
 * whisper_history_page(). The retry-request ops (decryption_error_make,
 * decryption_error_read, common to both peers) run the client engine's
 * internal builder and parser (src/sync/retry.c). See docs/interop-peer.md.
 *
 * State: PATH is a libwhisper SQLite store (synchronous=FULL). Every
 * request that changes state commits its one transaction before its
 * response line is written, so a SIGKILL right after a response loses
 * nothing, and a restart on the same PATH resumes there. The store key is a
 * fixed test key: this program is a test tool, not an app.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <whisper/whisper.h>

/* Internal, for the retry-request ops: the engine's own builder and parser
 * (a test program linked statically; these are not exported). */
#include "sync/sync_internal.h"
#include "wire.pb-c.h"

#include "json.h"

#define MAX_NAME_LEN 255

typedef struct peer {
  whisper_store *store;
  whisper_ctx *ctx;
} peer;

/* The failure of one request: a protocol code and a sentence. */
typedef struct failure {
  const char *code;
  char msg[512];
} failure;

static uint64_t now_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(failure *f, const char *code, const char *fmt, ...);

static int fail(failure *f, const char *code, const char *fmt, ...) {
  va_list ap;
  f->code = code;
  va_start(ap, fmt);
  vsnprintf(f->msg, sizeof f->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static const char *code_of(int rc) {
  switch (rc) {
    case WHISPER_EDUPLICATE: return "duplicate_message";
    case WHISPER_EINVALIDMSG: return "invalid_message";
    case WHISPER_EINVALIDSIG: return "invalid_signature";
    case WHISPER_EINVALIDKEY: return "invalid_key";
    case WHISPER_ENOSESSION: return "no_session";
    case WHISPER_EUNTRUSTED: return "untrusted_identity";
    case WHISPER_ETOOFAR: return "too_far_ahead";
    case WHISPER_EINVAL: return "bad_request";
    default: return "internal";
  }
}

/* A library failure: the code mapped, the context's sentence (or the
 * code's description if the context has none). */
static int fail_lib(peer *p, failure *f, int rc) {
  const char *why = whisper_ctx_last_error(p->ctx);
  if (why == NULL || why[0] == '\0') why = whisper_strerror(rc);
  return fail(f, code_of(rc), "%s", why);
}

/* ---- request fields ---- */

static int field_u32(const json_value *obj, const char *key, uint32_t *out, failure *f) {
  const json_value *v = json_get(obj, key);
  if (v == NULL) return fail(f, "bad_request", "missing field \"%s\"", key);
  if (json_u32(v, out) != 0) {
    return fail(f, "bad_request", "field \"%s\" must be an integer in 0..4294967295", key);
  }
  return 0;
}

/* An address name: a string of 1..255 bytes without U+0000. */
static int field_name(const json_value *obj, const char *key, const char **out, failure *f) {
  size_t len = 0;
  const json_value *v = json_get(obj, key);
  if (v == NULL) return fail(f, "bad_request", "missing field \"%s\"", key);
  const char *s = json_str(v, &len);
  if (s == NULL) return fail(f, "bad_request", "field \"%s\" must be a string", key);
  if (len == 0 || len > MAX_NAME_LEN || strlen(s) != len) {
    return fail(f, "bad_request", "field \"%s\" must be 1..%d bytes without U+0000", key,
                MAX_NAME_LEN);
  }
  *out = s;
  return 0;
}

/* A base64 field, decoded; free with b64_free(*out, *len). */
static int field_b64(const json_value *obj, const char *key, uint8_t **out, size_t *len,
                     failure *f) {
  size_t slen = 0;
  *out = NULL;
  *len = 0;
  const json_value *v = json_get(obj, key);
  if (v == NULL) return fail(f, "bad_request", "missing field \"%s\"", key);
  const char *s = json_str(v, &slen);
  if (s == NULL) return fail(f, "bad_request", "field \"%s\" must be a base64 string", key);
  if (b64_decode(s, slen, out, len) != 0) {
    return fail(f, "bad_request", "field \"%s\" is not canonical padded base64", key);
  }
  return 0;
}

/* A message type: "prekey" or "whisper". */
static int field_type(const json_value *obj, int *type, failure *f) {
  size_t len = 0;
  const char *ts = json_str(json_get(obj, "type"), &len);
  /* The exact length too: strcmp would stop at an embedded NUL. */
  if (ts != NULL && len == strlen(ts) && strcmp(ts, "prekey") == 0) {
    *type = WHISPER_MSG_PREKEY;
  } else if (ts != NULL && len == strlen(ts) && strcmp(ts, "whisper") == 0) {
    *type = WHISPER_MSG_WHISPER;
  } else {
    return fail(f, "bad_request", "field \"type\" must be \"prekey\" or \"whisper\"");
  }
  return 0;
}

/* Checks a decoded public key (invalid_key when shorter than 33 bytes or
 * not of type 0x05) and keeps its first 33 bytes, as libsignal does. */
static int check_key(const uint8_t *key, size_t len, const char *what,
                     uint8_t out[WHISPER_PUBLIC_KEY_LEN], failure *f) {
  if (whisper_public_key_check(key, len) != WHISPER_OK) {
    return fail(f, "invalid_key", "%s is not a serialized Curve25519 public key", what);
  }
  memcpy(out, key, WHISPER_PUBLIC_KEY_LEN);
  return 0;
}

/* The device must have an identity for everything but init and quit. */
static int need_identity(peer *p, failure *f) {
  int rc = whisper_identity_get(p->ctx, NULL, NULL, NULL, NULL);
  if (rc == WHISPER_ESTATE) return fail(f, "bad_request", "no local identity: send init first");
  if (rc != WHISPER_OK) return fail_lib(p, f, rc);
  return 0;
}

/* ---- requests ---- */

static int op_init(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t device_id, registration_id;
  if (field_name(req, "name", &name, f) != 0) return -1;
  if (field_u32(req, "device_id", &device_id, f) != 0) return -1;
  if (field_u32(req, "registration_id", &registration_id, f) != 0) return -1;

  uint8_t pub[WHISPER_PUBLIC_KEY_LEN];
  const char *have_name = NULL;
  uint32_t have_device = 0;
  int rc = whisper_identity_get(p->ctx, pub, NULL, &have_name, &have_device);
  if (rc == WHISPER_OK) {
    /* An identity exists (a repeated init, or a resumed --db): it is kept,
     * and the request must name the same device. registration_id is
     * ignored. */
    if (have_name == NULL || strcmp(have_name, name) != 0 || have_device != device_id) {
      return fail(f, "bad_request", "this peer already holds another identity");
    }
  } else if (rc != WHISPER_ESTATE) {
    return fail_lib(p, f, rc);
  } else {
    rc = whisper_identity_generate(p->ctx, name, device_id, registration_id, now_ms());
    if (rc != WHISPER_OK) return fail_lib(p, f, rc);
    rc = whisper_identity_get(p->ctx, pub, NULL, NULL, NULL);
    if (rc != WHISPER_OK) return fail_lib(p, f, rc);
  }
  json_out_key(o, "identity_key");
  json_out_b64(o, pub, sizeof pub);
  return 0;
}

static int op_bundle(peer *p, const json_value *req, json_out *o, failure *f) {
  int one_time = 1;
  const json_value *v = json_get(req, "one_time");
  if (v != NULL && json_bool(v, &one_time) != 0) {
    return fail(f, "bad_request", "field \"one_time\" must be true or false");
  }
  if (need_identity(p, f) != 0) return -1;

  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  int rc = whisper_bundle_generate(p->ctx, one_time, &b);
  if (rc != WHISPER_OK) return fail_lib(p, f, rc);

  json_out_key(o, "bundle");
  json_out_begin_object(o);
  json_out_key(o, "registration_id");
  json_out_u32(o, b.registration_id);
  json_out_key(o, "device_id");
  json_out_u32(o, b.device_id);
  json_out_key(o, "prekey_id");
  if (b.has_prekey) json_out_u32(o, b.prekey_id);
  else json_out_null(o);
  json_out_key(o, "prekey");
  if (b.has_prekey) json_out_b64(o, b.prekey, sizeof b.prekey);
  else json_out_null(o);
  json_out_key(o, "signed_prekey_id");
  json_out_u32(o, b.signed_prekey_id);
  json_out_key(o, "signed_prekey");
  json_out_b64(o, b.signed_prekey, sizeof b.signed_prekey);
  json_out_key(o, "signed_prekey_signature");
  json_out_b64(o, b.signed_prekey_signature, sizeof b.signed_prekey_signature);
  json_out_key(o, "identity_key");
  json_out_b64(o, b.identity_key, sizeof b.identity_key);
  json_out_end_object(o);
  return 0;
}

/* The raw (decoded) fields of a bundle in a request. */
typedef struct raw_bundle {
  uint8_t *prekey, *signed_prekey, *signature, *identity_key;
  size_t prekey_len, signed_prekey_len, signature_len, identity_key_len;
} raw_bundle;

static void raw_bundle_free(raw_bundle *r) {
  b64_free(r->prekey, r->prekey_len);
  b64_free(r->signed_prekey, r->signed_prekey_len);
  b64_free(r->signature, r->signature_len);
  b64_free(r->identity_key, r->identity_key_len);
  memset(r, 0, sizeof *r);
}

/* Parses a bundle object: first everything that makes the request
 * malformed (bad_request), then the keys (invalid_key), then the
 * signature's length (a signature that is not 64 bytes does not verify:
 * invalid_signature). */
static int parse_bundle(const json_value *jb, whisper_prekey_bundle_t *b, raw_bundle *raw,
                        failure *f) {
  memset(b, 0, sizeof *b);
  b->size = sizeof *b;
  if (jb == NULL) return fail(f, "bad_request", "missing field \"bundle\"");
  if (jb->type != JSON_OBJECT) return fail(f, "bad_request", "field \"bundle\" must be an object");
  if (field_u32(jb, "registration_id", &b->registration_id, f) != 0) return -1;
  if (field_u32(jb, "device_id", &b->device_id, f) != 0) return -1;
  if (field_u32(jb, "signed_prekey_id", &b->signed_prekey_id, f) != 0) return -1;

  const json_value *pid = json_get(jb, "prekey_id");
  const json_value *pk = json_get(jb, "prekey");
  int pid_absent = pid == NULL || json_is_null(pid);
  int pk_absent = pk == NULL || json_is_null(pk);
  if (pid_absent != pk_absent) {
    return fail(f, "bad_request", "bundle \"prekey_id\" and \"prekey\" must both be set or null");
  }
  if (!pid_absent) {
    if (field_u32(jb, "prekey_id", &b->prekey_id, f) != 0) return -1;
    if (field_b64(jb, "prekey", &raw->prekey, &raw->prekey_len, f) != 0) return -1;
    b->has_prekey = 1;
  }
  if (field_b64(jb, "signed_prekey", &raw->signed_prekey, &raw->signed_prekey_len, f) != 0) {
    return -1;
  }
  if (field_b64(jb, "signed_prekey_signature", &raw->signature, &raw->signature_len, f) != 0) {
    return -1;
  }
  if (field_b64(jb, "identity_key", &raw->identity_key, &raw->identity_key_len, f) != 0) {
    return -1;
  }
  return 0;
}

static int check_bundle(whisper_prekey_bundle_t *b, const raw_bundle *raw, failure *f) {
  if (check_key(raw->identity_key, raw->identity_key_len, "bundle identity_key",
                b->identity_key, f) != 0) {
    return -1;
  }
  if (check_key(raw->signed_prekey, raw->signed_prekey_len, "bundle signed_prekey",
                b->signed_prekey, f) != 0) {
    return -1;
  }
  if (b->has_prekey &&
      check_key(raw->prekey, raw->prekey_len, "bundle prekey", b->prekey, f) != 0) {
    return -1;
  }
  if (raw->signature_len != WHISPER_SIGNATURE_LEN) {
    return fail(f, "invalid_signature", "bundle signed_prekey_signature is %zu bytes, not %d",
                raw->signature_len, WHISPER_SIGNATURE_LEN);
  }
  memcpy(b->signed_prekey_signature, raw->signature, WHISPER_SIGNATURE_LEN);
  return 0;
}

static int op_start_session(peer *p, const json_value *req, json_out *o, failure *f) {
  (void)o;
  const char *name;
  uint32_t device_id;
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  raw_bundle raw;
  memset(&raw, 0, sizeof raw);
  int ret = -1;

  if (field_name(req, "peer", &name, f) != 0) goto out;
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (parse_bundle(json_get(req, "bundle"), &b, &raw, f) != 0) goto out;
  if (b.device_id != device_id) {
    fail(f, "bad_request", "device_id %lu differs from bundle.device_id %lu",
         (unsigned long)device_id, (unsigned long)b.device_id);
    goto out;
  }
  if (need_identity(p, f) != 0) goto out;
  if (check_bundle(&b, &raw, f) != 0) goto out;
  int rc = whisper_session_start(p->ctx, name, device_id, &b, now_ms());
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  ret = 0;
out:
  raw_bundle_free(&raw);
  return ret;
}

static int op_has_session(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t device_id;
  if (field_name(req, "peer", &name, f) != 0) return -1;
  if (field_u32(req, "device_id", &device_id, f) != 0) return -1;
  if (need_identity(p, f) != 0) return -1;
  int exists = 0;
  int rc = whisper_session_exists(p->ctx, name, device_id, now_ms(), &exists);
  if (rc != WHISPER_OK) return fail_lib(p, f, rc);
  json_out_key(o, "has_session");
  json_out_bool(o, exists != 0);
  return 0;
}

static int op_encrypt(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t device_id;
  uint8_t *pt = NULL;
  size_t pt_len = 0;
  whisper_buf *body = NULL;
  int type = 0, ret = -1;

  if (field_name(req, "peer", &name, f) != 0) goto out;
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (field_b64(req, "plaintext", &pt, &pt_len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_session_encrypt(p->ctx, name, device_id, pt, pt_len, now_ms(), &type, &body);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  if (body == NULL || (type != WHISPER_MSG_PREKEY && type != WHISPER_MSG_WHISPER)) {
    fail(f, "internal", "whisper_session_encrypt returned message type %d", type);
    goto out;
  }
  json_out_key(o, "type");
  json_out_cstring(o, type == WHISPER_MSG_PREKEY ? "prekey" : "whisper");
  json_out_key(o, "body");
  json_out_b64(o, body->data, body->len);
  ret = 0;
out:
  whisper_buf_free(body);
  b64_free(pt, pt_len);
  return ret;
}

static int op_decrypt(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t device_id;
  uint8_t *ct = NULL;
  size_t ct_len = 0;
  whisper_buf *pt = NULL;
  int type = 0, ret = -1;

  if (field_name(req, "peer", &name, f) != 0) goto out;
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (field_type(req, &type, f) != 0) goto out;
  if (field_b64(req, "body", &ct, &ct_len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_session_decrypt(p->ctx, name, device_id, type, ct, ct_len, &pt);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  if (pt == NULL) {
    fail(f, "internal", "whisper_session_decrypt returned no plaintext");
    goto out;
  }
  json_out_key(o, "plaintext");
  json_out_b64(o, pt->data, pt->len);
  ret = 0;
out:
  whisper_buf_free(pt);
  b64_free(ct, ct_len);
  return ret;
}

/* ---- libwhisper extensions: durable decrypt-and-store, history ---- */

/* The decoded fields of one message of a decrypt_batch request. */
typedef struct batch_item {
  uint8_t *body, *id;
  size_t body_len, id_len;
} batch_item;

/* A message id: base64 of 1..WHISPER_MESSAGE_ID_MAX bytes. */
static int field_id(const json_value *obj, const char *key, uint8_t **out, size_t *len,
                    failure *f) {
  if (field_b64(obj, key, out, len, f) != 0) return -1;
  if (*len == 0 || *len > WHISPER_MESSAGE_ID_MAX) {
    return fail(f, "bad_request", "field \"%s\" must be 1..%d bytes", key,
                WHISPER_MESSAGE_ID_MAX);
  }
  return 0;
}

/* Message i of a decrypt_batch request into `in` (its conversation is the
 * sender's name) and `it` (the buffers it points into). */
static int parse_batch_item(const json_value *jm, size_t i, whisper_incoming_t *in,
                            batch_item *it, uint64_t now, failure *f) {
  uint32_t sort_key;
  if (jm->type != JSON_OBJECT) {
    return fail(f, "bad_request", "messages[%zu] must be an object", i);
  }
  if (field_name(jm, "peer", &in->name, f) != 0 ||
      field_u32(jm, "device_id", &in->device_id, f) != 0 ||
      field_type(jm, &in->type, f) != 0 ||
      field_b64(jm, "body", &it->body, &it->body_len, f) != 0 ||
      field_id(jm, "id", &it->id, &it->id_len, f) != 0 ||
      field_u32(jm, "sort_key", &sort_key, f) != 0) {
    char why[sizeof f->msg];
    memcpy(why, f->msg, sizeof why);
    return fail(f, "bad_request", "messages[%zu]: %s", i, why);
  }
  in->body = it->body;
  in->body_len = it->body_len;
  in->meta.size = sizeof in->meta;
  in->meta.conversation = in->name;
  in->meta.id = it->id;
  in->meta.id_len = it->id_len;
  in->meta.sort_key = sort_key;
  in->meta.timestamp_ms = now;
  return 0;
}

/* Decrypts a list of messages and stores each in the history of its
 * sender's conversation, in one transaction (whisper_session_decrypt_batch).
 * A malformed message makes the whole request a bad_request (nothing
 * decrypted); otherwise every message gets its own result. */
static int op_decrypt_batch(peer *p, const json_value *req, json_out *o, failure *f) {
  const json_value *jl = json_get(req, "messages");
  whisper_incoming_t *in = NULL;
  batch_item *items = NULL;
  size_t n = 0;
  int ret = -1;

  if (jl == NULL) return fail(f, "bad_request", "missing field \"messages\"");
  if (jl->type != JSON_ARRAY) return fail(f, "bad_request", "field \"messages\" must be an array");
  n = jl->count;
  in = calloc(n ? n : 1, sizeof *in);
  items = calloc(n ? n : 1, sizeof *items);
  if (in == NULL || items == NULL) {
    fail(f, "internal", "out of memory");
    goto out;
  }
  uint64_t now = now_ms();
  for (size_t i = 0; i < n; i++) {
    in[i].size = sizeof in[i];
    if (parse_batch_item(jl->items[i], i, &in[i], &items[i], now, f) != 0) goto out;
  }
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_session_decrypt_batch(p->ctx, in, n);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  /* The library keeps the detailed sentence of the last failure only. */
  size_t last_failed = n;
  for (size_t i = 0; i < n; i++) {
    if (in[i].result != WHISPER_OK) last_failed = i;
  }
  json_out_key(o, "results");
  json_out_begin_array(o);
  for (size_t i = 0; i < n; i++) {
    int r = in[i].result;
    const char *why = NULL;
    if (r == WHISPER_OK && in[i].plaintext == NULL) {
      why = "whisper_session_decrypt_batch returned no plaintext";
    } else if (r != WHISPER_OK && i == last_failed) {
      why = whisper_ctx_last_error(p->ctx);
    }
    if (r != WHISPER_OK && (why == NULL || why[0] == '\0')) why = whisper_strerror(r);
    json_out_begin_object(o);
    json_out_key(o, "ok");
    json_out_bool(o, why == NULL);
    if (why == NULL) {
      json_out_key(o, "plaintext");
      json_out_b64(o, in[i].plaintext->data, in[i].plaintext->len);
    } else {
      json_out_key(o, "code");
      json_out_cstring(o, r == WHISPER_OK ? "internal" : code_of(r));
      json_out_key(o, "error");
      json_out_cstring(o, why);
    }
    json_out_end_object(o);
  }
  json_out_end_array(o);
  ret = 0;
out:
  for (size_t i = 0; in != NULL && items != NULL && i < n; i++) {
    whisper_buf_free(in[i].plaintext);
    b64_free(items[i].body, items[i].body_len);
    b64_free(items[i].id, items[i].id_len);
  }
  free(in);
  free(items);
  return ret;
}

/* Up to `limit` messages of the conversation with `peer`, newest first
 * (whisper_history_page); optionally older than the message
 * (before_sort_key, before_id), to page on. */
static int op_history(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t limit, before_sort_key = 0;
  uint8_t *before_id = NULL;
  size_t before_id_len = 0;
  whisper_page *page = NULL;
  int ret = -1;

  if (field_name(req, "peer", &name, f) != 0) goto out;
  if (field_u32(req, "limit", &limit, f) != 0) goto out;
  int has_key = json_get(req, "before_sort_key") != NULL;
  int has_id = json_get(req, "before_id") != NULL;
  if (has_key != has_id) {
    fail(f, "bad_request", "\"before_sort_key\" and \"before_id\" go together");
    goto out;
  }
  if (has_key) {
    if (field_u32(req, "before_sort_key", &before_sort_key, f) != 0) goto out;
    if (field_id(req, "before_id", &before_id, &before_id_len, f) != 0) goto out;
  }
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_history_page(p->ctx, name, before_sort_key, before_id, before_id_len, limit,
                                &page);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  size_t count = whisper_page_count(page);
  for (size_t i = 0; i < count; i++) {
    if (whisper_page_get(page, i)->sort_key > UINT32_MAX) {
      fail(f, "internal", "a stored sort key is beyond 4294967295, the range of this peer");
      goto out;
    }
  }
  json_out_key(o, "messages");
  json_out_begin_array(o);
  for (size_t i = 0; i < count; i++) {
    const whisper_message_t *m = whisper_page_get(page, i);
    json_out_begin_object(o);
    json_out_key(o, "id");
    json_out_b64(o, m->id, m->id_len);
    json_out_key(o, "sort_key");
    json_out_u32(o, (uint32_t)m->sort_key);
    json_out_key(o, "plaintext");
    json_out_b64(o, m->body, m->body_len);
    json_out_end_object(o);
  }
  json_out_end_array(o);
  ret = 0;
out:
  whisper_page_free(page);
  b64_free(before_id, before_id_len);
  return ret;
}

static int op_trust(peer *p, const json_value *req, json_out *o, failure *f) {
  (void)o;
  const char *name;
  uint32_t device_id = WHISPER_ALL_DEVICES;
  uint8_t *raw = NULL;
  size_t raw_len = 0;
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  int ret = -1;

  if (field_name(req, "peer", &name, f) != 0) goto out;
  if (json_get(req, "device_id") != NULL && field_u32(req, "device_id", &device_id, f) != 0) {
    goto out;
  }
  /* Note: an explicit device_id of 4294967295 is WHISPER_ALL_DEVICES. */
  if (field_b64(req, "identity_key", &raw, &raw_len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  if (check_key(raw, raw_len, "identity_key", key, f) != 0) goto out;
  int rc = whisper_identity_trust(p->ctx, name, device_id, key, sizeof key);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  ret = 0;
out:
  b64_free(raw, raw_len);
  return ret;
}

static int op_fingerprint(peer *p, const json_value *req, json_out *o, failure *f) {
  uint8_t *lid = NULL, *rid = NULL, *rkey = NULL;
  size_t lid_len = 0, rid_len = 0, rkey_len = 0;
  uint8_t local[WHISPER_PUBLIC_KEY_LEN], remote[WHISPER_PUBLIC_KEY_LEN];
  char digits[WHISPER_FINGERPRINT_DISPLAY_LEN];
  whisper_buf *scan = NULL;
  int ret = -1;
  if (field_b64(req, "local_identifier", &lid, &lid_len, f) != 0) goto out;
  if (field_b64(req, "remote_identifier", &rid, &rid_len, f) != 0) goto out;
  if (field_b64(req, "remote_identity_key", &rkey, &rkey_len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  if (check_key(rkey, rkey_len, "remote_identity_key", remote, f) != 0) goto out;
  int rc = whisper_identity_get(p->ctx, local, NULL, NULL, NULL);
  if (rc == WHISPER_OK)
    rc = whisper_fingerprint(WHISPER_FINGERPRINT_ITERATIONS, lid, lid_len, local, sizeof local, rid,
                             rid_len, remote, sizeof remote, digits, &scan);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  json_out_key(o, "displayable");
  json_out_cstring(o, digits);
  json_out_key(o, "scannable");
  json_out_b64(o, scan->data, scan->len);
  ret = 0;
out:
  whisper_buf_free(scan);
  b64_free(lid, lid_len);
  b64_free(rid, rid_len);
  b64_free(rkey, rkey_len);
  return ret;
}

/* A UUID string (8-4-4-4-12 hex digits) into its 16 bytes. */
static int field_uuid(const json_value *req, const char *key, uint8_t out[16], failure *f) {
  size_t len = 0;
  const char *u = json_str(json_get(req, key), &len);
  if (u == NULL) return fail(f, "bad_request", "missing string field \"%s\"", key);
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (u[i] != '-') return fail(f, "bad_request", "field \"%s\" is not a UUID", key);
      continue;
    }
    char c = u[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0 || j >= 32) return fail(f, "bad_request", "field \"%s\" is not a UUID", key);
    if (j % 2 == 0) out[j / 2] = (uint8_t)(v << 4);
    else out[j / 2] |= (uint8_t)v;
    j++;
  }
  if (len != 36 || j != 32) return fail(f, "bad_request", "field \"%s\" is not a UUID", key);
  return 0;
}

static int op_group_create(peer *p, const json_value *req, json_out *o, failure *f) {
  uint8_t uuid[16];
  whisper_buf *skdm = NULL;
  if (field_uuid(req, "distribution_id", uuid, f) != 0) return -1;
  if (need_identity(p, f) != 0) return -1;
  int rc = whisper_sender_key_generate(p->ctx, uuid, &skdm);
  if (rc != WHISPER_OK) return fail_lib(p, f, rc);
  json_out_key(o, "skdm");
  json_out_b64(o, skdm->data, skdm->len);
  whisper_buf_free(skdm);
  return 0;
}

static int op_group_process(peer *p, const json_value *req, json_out *o, failure *f) {
  (void)o;
  const char *name;
  uint32_t device_id;
  uint8_t *skdm = NULL;
  size_t len = 0;
  int ret = -1;
  if (field_name(req, "sender", &name, f) != 0) goto out;
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (field_b64(req, "skdm", &skdm, &len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_sender_key_process(p->ctx, name, device_id, skdm, len);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  ret = 0;
out:
  b64_free(skdm, len);
  return ret;
}

static int op_group_encrypt(peer *p, const json_value *req, json_out *o, failure *f) {
  uint8_t uuid[16];
  uint8_t *pt = NULL;
  size_t len = 0;
  whisper_buf *body = NULL;
  int ret = -1;
  if (field_uuid(req, "distribution_id", uuid, f) != 0) goto out;
  if (field_b64(req, "plaintext", &pt, &len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_sender_key_encrypt(p->ctx, uuid, pt, len, &body);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  json_out_key(o, "body");
  json_out_b64(o, body->data, body->len);
  ret = 0;
out:
  whisper_buf_free(body);
  b64_free(pt, len);
  return ret;
}

static int op_group_decrypt(peer *p, const json_value *req, json_out *o, failure *f) {
  const char *name;
  uint32_t device_id;
  uint8_t *body = NULL;
  size_t len = 0;
  whisper_buf *pt = NULL;
  int ret = -1;
  if (field_name(req, "sender", &name, f) != 0) goto out;
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (field_b64(req, "body", &body, &len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  int rc = whisper_sender_key_decrypt(p->ctx, name, device_id, body, len, &pt);
  if (rc != WHISPER_OK) {
    fail_lib(p, f, rc);
    goto out;
  }
  json_out_key(o, "plaintext");
  json_out_b64(o, pt->data, pt->len);
  ret = 0;
out:
  whisper_buf_free(pt);
  b64_free(body, len);
  return ret;
}

/* ---- retry requests: libsignal's DecryptionErrorMessage in a PlaintextContent ---- */

/* The original message's type: "whisper", "prekey" or "sender_key". */
static int field_original_type(const json_value *obj, int *type, failure *f) {
  size_t len = 0;
  const char *ts = json_str(json_get(obj, "type"), &len);
  if (ts != NULL && len == strlen(ts) && strcmp(ts, "prekey") == 0) {
    *type = WHISPER_MSG_PREKEY;
  } else if (ts != NULL && len == strlen(ts) && strcmp(ts, "whisper") == 0) {
    *type = WHISPER_MSG_WHISPER;
  } else if (ts != NULL && len == strlen(ts) && strcmp(ts, "sender_key") == 0) {
    *type = WHISPER_MSG_SENDERKEY;
  } else {
    return fail(f, "bad_request", "field \"type\" must be \"prekey\", \"whisper\" or \"sender_key\"");
  }
  return 0;
}

/* The engine's builder (src/sync/retry.c), as it asks for a message. */
static int op_decryption_error_make(peer *p, const json_value *req, json_out *o, failure *f) {
  uint8_t *orig = NULL;
  size_t orig_len = 0;
  uint64_t ts = 0;
  uint32_t device_id;
  int type = 0, ret = -1;
  whisper_buf *pc = NULL;

  if (field_b64(req, "original", &orig, &orig_len, f) != 0) goto out;
  if (field_original_type(req, &type, f) != 0) goto out;
  if (json_u53(json_get(req, "timestamp"), &ts) != 0) {
    fail(f, "bad_request", "field \"timestamp\" must be an integer in 0..2^53-1");
    goto out;
  }
  if (field_u32(req, "device_id", &device_id, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  pc = sy_decryption_error_for(type, orig, orig_len, ts, device_id);
  if (pc == NULL) {
    fail(f, "internal", "out of memory");
    goto out;
  }
  json_out_key(o, "plaintext_content");
  json_out_b64(o, pc->data, pc->len);
  ret = 0;
out:
  whisper_buf_free(pc);
  b64_free(orig, orig_len);
  return ret;
}

/* The engine's parser (src/sync/retry.c), as it reads a retry request. */
static int op_decryption_error_read(peer *p, const json_value *req, json_out *o, failure *f) {
  uint8_t *pc = NULL;
  size_t pc_len = 0;
  int ret = -1;
  Whisper__Wire__DecryptionErrorMessage *m = NULL;

  if (field_b64(req, "plaintext_content", &pc, &pc_len, f) != 0) goto out;
  if (need_identity(p, f) != 0) goto out;
  m = sy_decryption_error_parse(pc, pc_len);
  if (m == NULL) {
    fail(f, "invalid_message", "not a PlaintextContent holding a DecryptionErrorMessage");
    goto out;
  }
  json_out_key(o, "timestamp");
  json_out_u64(o, m->timestamp);
  json_out_key(o, "device_id");
  json_out_u32(o, m->has_device_id ? m->device_id : 0);
  json_out_key(o, "ratchet_key");
  if (m->has_ratchet_key) json_out_b64(o, m->ratchet_key.data, m->ratchet_key.len);
  else json_out_null(o);
  ret = 0;
out:
  if (m) whisper__wire__decryption_error_message__free_unpacked(m, &wh_pb_alloc);
  b64_free(pc, pc_len);
  return ret;
}

typedef int (*op_fn)(peer *, const json_value *, json_out *, failure *);

static const struct {
  const char *name;
  op_fn fn;
} ops[] = {
    {"init", op_init},
    {"bundle", op_bundle},
    {"start_session", op_start_session},
    {"has_session", op_has_session},
    {"encrypt", op_encrypt},
    {"decrypt", op_decrypt},
    {"decrypt_batch", op_decrypt_batch},
    {"history", op_history},
    {"trust", op_trust},
    {"group_create", op_group_create},
    {"group_process", op_group_process},
    {"group_encrypt", op_group_encrypt},
    {"group_decrypt", op_group_decrypt},
    {"fingerprint", op_fingerprint},
    {"decryption_error_make", op_decryption_error_make},
    {"decryption_error_read", op_decryption_error_read},
};

static void write_failure(json_out *o, const failure *f) {
  json_out_reset(o);
  json_out_begin_object(o);
  json_out_key(o, "ok");
  json_out_bool(o, 0);
  json_out_key(o, "code");
  json_out_cstring(o, f->code);
  json_out_key(o, "error");
  json_out_cstring(o, f->msg);
  json_out_end_object(o);
}

/* Answers one request line into `o`. Returns 1 if it was quit. */
static int handle_line(peer *p, const char *line, size_t len, json_out *o) {
  json_value *req = NULL;
  failure f;
  char err[128];
  int quit = 0;

  f.code = "internal";
  f.msg[0] = '\0';
  json_out_reset(o);

  if (json_parse(line, len, &req, err, sizeof err) != 0) {
    fail(&f, "bad_request", "malformed JSON: %s", err);
    write_failure(o, &f);
    return 0;
  }
  size_t op_len = 0;
  const char *op = json_str(json_get(req, "op"), &op_len);
  if (req->type != JSON_OBJECT) {
    fail(&f, "bad_request", "a request must be a JSON object");
  } else if (op == NULL) {
    fail(&f, "bad_request", "missing string field \"op\"");
  } else if (op_len == 4 && strcmp(op, "quit") == 0) {
    quit = 1;
    json_out_begin_object(o);
    json_out_key(o, "ok");
    json_out_bool(o, 1);
    json_out_end_object(o);
  } else {
    op_fn fn = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
      if (strlen(ops[i].name) == op_len && strcmp(ops[i].name, op) == 0) fn = ops[i].fn;
    }
    if (fn == NULL) {
      fail(&f, "bad_request", "unknown op");
    } else {
      json_out_begin_object(o);
      json_out_key(o, "ok");
      json_out_bool(o, 1);
      if (fn(p, req, o, &f) == 0) {
        json_out_end_object(o);
      } else {
        write_failure(o, &f);
      }
    }
  }
  if (!quit && o->len == 0) write_failure(o, &f);
  json_free(req);
  return quit;
}

static int write_line(json_out *o) {
  static const char oom[] =
      "{\"ok\":false,\"code\":\"internal\",\"error\":\"out of memory building the response\"}";
  if (o->failed || o->data == NULL) {
    if (fwrite(oom, 1, sizeof oom - 1, stdout) != sizeof oom - 1) return -1;
  } else if (fwrite(o->data, 1, o->len, stdout) != o->len) {
    return -1;
  }
  if (fputc('\n', stdout) == EOF) return -1;
  if (fflush(stdout) != 0) return -1;
  return 0;
}

static void usage(void) { fprintf(stderr, "usage: whisper-peer --db PATH\n"); }

int main(int argc, char **argv) {
  const char *db = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      db = argv[++i];
    } else {
      usage();
      return 2;
    }
  }
  if (db == NULL || db[0] == '\0') {
    usage();
    return 2;
  }

  peer p;
  memset(&p, 0, sizeof p);
  static const uint8_t test_key[32] = "whisper-peer test key, not real";
  whisper_sqlite_options_t so = WHISPER_SQLITE_OPTIONS_INIT;
  so.key = test_key;
  so.key_len = sizeof test_key;
  const char *why = "";
  int rc = whisper_store_sqlite_open(&p.store, db, &so, &why);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-peer: cannot open the store %s: %s (%s)\n", db, whisper_strerror(rc),
            why);
    return 1;
  }
  rc = whisper_ctx_new(&p.ctx, p.store);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-peer: cannot make the context: %s\n", whisper_strerror(rc));
    whisper_store_free(p.store);
    return 1;
  }
  fprintf(stderr, "whisper-peer: libwhisper %u, store %s\n", whisper_version(), db);

  json_out o;
  json_out_init(&o);
  char *line = NULL;
  size_t cap = 0;
  int status = 0;
  for (;;) {
    errno = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
      if (ferror(stdin)) {
        fprintf(stderr, "whisper-peer: reading stdin: %s\n", strerror(errno));
        status = 1;
      }
      break;
    }
    size_t len = (size_t)n;
    if (len > 0 && line[len - 1] == '\n') len--;
    int quit = handle_line(&p, line, len, &o);
    json_wipe(line, (size_t)n);
    if (write_line(&o) != 0) {
      fprintf(stderr, "whisper-peer: writing stdout failed\n");
      status = 1;
      break;
    }
    json_out_reset(&o);
    if (quit) break;
  }

  if (line != NULL) {
    json_wipe(line, cap);
    free(line);
  }
  json_out_free(&o);
  whisper_ctx_free(p.ctx);
  whisper_store_free(p.store);
  return status;
}

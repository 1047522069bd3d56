/*
 * Attachments in the engine (include/whisper/client.h, "media"): jobs that
 * encrypt a file into a blob, upload it to the server's blob store (tus
 * 1.0, over the app's HTTP), then send its pointer end to end; and jobs
 * that download a blob, verify it as it comes and write the plaintext
 * where the app said.
 *
 * Every job is a MediaJob record ("M" || conversation tag || message tag)
 * and the unfinished ones are listed in "J", so a restart finds them:
 *  - an upload keeps its key and IV, so the blob it makes again is the
 *    same, and goes on from the offset the server acknowledged (HEAD);
 *  - a download keeps the blob bytes that came in media_dir and verifies
 *    them again on the way back in (the decryptor's state is not kept).
 * Only verified plaintext is written, and only to the app's path, which is
 * removed when the download fails. The blobs in media_dir are encrypted.
 */
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/sync_internal.h"
#include "versioned.h"

#define DIR_UP 1
#define DIR_DOWN 2
#define KEY_LEN 33             /* "M" || conversation tag || message tag */
#define ENCRYPT_BUDGET (8u << 20) /* bytes a tick encrypts */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
#define TOKEN_MARGIN_MS 60000  /* a token this close to expiring is not used */
#define SEEN_TTL_MS (29ULL * 24 * 3600 * 1000) /* a blob is reused this long after its upload
                                                * (the server keeps it 30 days) */
#define TUS "Tus-Resumable: 1.0.0\r\n"
#define IO_LEN (64 * 1024)    /* a job's file reads, at a time */

struct sy_media {
  uint8_t key[KEY_LEN];
  int dir, state, error, view_once;
  char *conv, *sender, *path, *url;
  uint8_t id[WHISPER_MESSAGE_ID_MAX];
  size_t id_len;
  uint8_t akey[WHISPER_ATTACHMENT_KEY_LEN], iv[WHISPER_ATTACHMENT_IV_LEN];
  whisper_buf *content; /* upload: the Content to send; download: the message's */
  uint64_t offset, total;
  uint64_t created;
  /* not stored */
  int offset_known;     /* upload: the server told the offset on this connection */
  uint64_t inflight;    /* the HTTP request out (0: none) */
  uint64_t retry_at, backoff;
  whisper_attachment_encryptor *enc;
  whisper_attachment_decryptor *dec;
  FILE *src, *tmp, *out;
  uint64_t done;        /* encrypting: bytes read */
  uint8_t *io;          /* IO_LEN bytes through which files are read (wiped: plaintext) */
  whisper_client *c;    /* downloading without a path: where the bytes go (events) */
  uint64_t size;        /* downloading: the plaintext's size */
  uint64_t given;       /* and how many were given */
  struct sy_media *next;
};

struct sy_http {
  uint64_t handle;
  char method[8];
  char *path, *headers;
  whisper_buf *body;
  struct sy_http *next;
};

/* --- small things -------------------------------------------------------------------------- */

static char *hexstr(const uint8_t *p, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) out[2 * i] = d[p[i] >> 4], out[2 * i + 1] = d[p[i] & 15];
  out[2 * n] = 0;
  return out;
}

/* A character of a blob id or a base64url token. */
static int id_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_';
}

/* media_dir/<job>.up or .down: the job's whole key (conversation tag and
 * message tag), so that two jobs of one conversation have their own file */
static char *tmp_path(const whisper_client *c, const sy_media *j) {
  char hex[2 * (KEY_LEN - 1) + 1];
  size_t n = strlen(c->cfg.media_dir) + sizeof hex + 8;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s.%s", c->cfg.media_dir, hexstr(j->key + 1, KEY_LEN - 1, hex),
                  j->dir == DIR_UP ? "up" : "down");
  return p;
}

static int job_key(whisper_client *c, const char *conv, const uint8_t *id, size_t id_len,
                   const char *sender, uint8_t out[KEY_LEN]) {
  uint8_t ct[16], mt[16];
  int rc = wh_history_tags(c->ctx, conv, id, id_len, ct, mt);
  if (rc != WHISPER_OK) return rc;
  out[0] = 'M';
  memcpy(out + 1, ct, 16);
  memcpy(out + 17, mt, 16);
  /* the sender too: two senders may use one id in a group */
  uint8_t h[32];
  wh_hmac(h, mt, 16, (const uint8_t *)(sender ? sender : ""), sender ? strlen(sender) : 0);
  memcpy(out + 17, h, 16);
  return WHISPER_OK;
}

static void media_event(whisper_client *c, const sy_media *j, int state, int code) {
  sy_event *e = sy_event_new(c, WHISPER_EV_MEDIA);
  if (e == NULL || sy_event_set(e, j->conv, j->sender, j->id, j->id_len, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.status = state;
  e->ev.code = code;
  e->ev.done_bytes = state == WHISPER_MEDIA_ENCRYPTING ? j->done : j->offset;
  e->ev.total_bytes = state == WHISPER_MEDIA_ENCRYPTING ? j->total : j->total;
  sy_event_push(c, e);
}

static void job_close_files(sy_media *j) {
  whisper_attachment_encrypt_free(j->enc);
  whisper_attachment_decrypt_free(j->dec);
  j->enc = NULL;
  j->dec = NULL;
  if (j->src) fclose(j->src);
  if (j->tmp) fclose(j->tmp);
  if (j->out) fclose(j->out);
  j->src = j->tmp = j->out = NULL;
}

static void job_free(sy_media *j) {
  if (j == NULL) return;
  job_close_files(j);
  if (j->io) wh_wipe(j->io, IO_LEN);
  free(j->io);
  free(j->conv);
  free(j->sender);
  free(j->path);
  free(j->url);
  whisper_buf_free(j->content);
  wh_wipe(j, sizeof *j);
  free(j);
}

/* --- the store ----------------------------------------------------------------------------- */

static int job_put(whisper_client *c, const sy_media *j) {
  Whisper__Client__MediaJob m = WHISPER__CLIENT__MEDIA_JOB__INIT;
  m.has_dir = m.has_state = m.has_id = m.has_offset = m.has_total = m.has_created_ms = 1;
  m.dir = (uint32_t)j->dir;
  m.state = (uint32_t)j->state;
  m.conversation = j->conv;
  m.id = (ProtobufCBinaryData){j->id_len, (uint8_t *)j->id};
  m.sender = j->sender;
  m.path = j->path;
  m.url = j->url;
  m.offset = j->offset;
  m.total = j->total;
  m.created_ms = j->created;
  if (j->dir == DIR_UP) {
    m.has_key = m.has_iv = 1;
    m.key = (ProtobufCBinaryData){sizeof j->akey, (uint8_t *)j->akey};
    m.iv = (ProtobufCBinaryData){sizeof j->iv, (uint8_t *)j->iv};
  }
  if (j->content) {
    m.has_content = 1;
    m.content = (ProtobufCBinaryData){j->content->len, j->content->data};
  }
  if (j->error) m.has_error_code = 1, m.error_code = j->error;
  if (j->view_once) m.has_view_once = 1, m.view_once = 1;
  return sy_rec_put_msg(c, j->key, KEY_LEN, &m.base);
}

static int index_put(whisper_client *c) {
  size_t n = 0;
  for (sy_media *j = c->media; j; j = j->next) n++;
  ProtobufCBinaryData *keys = calloc(n ? n : 1, sizeof *keys);
  if (keys == NULL) return WHISPER_ENOMEM;
  n = 0;
  for (sy_media *j = c->media; j; j = j->next) keys[n++] = (ProtobufCBinaryData){KEY_LEN, j->key};
  Whisper__Client__MediaIndex ix = WHISPER__CLIENT__MEDIA_INDEX__INIT;
  ix.n_keys = n;
  ix.keys = keys;
  int rc = sy_rec_put_msg(c, (const uint8_t *)"J", 1, &ix.base);
  free(keys);
  return rc;
}

/* Stores a job (and the list, when it joined or left it) in one transaction. */
static int job_save(whisper_client *c, const sy_media *j, int with_index) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = job_put(c, j);
  if (rc == WHISPER_OK && with_index) rc = index_put(c);
  return wh_finish(c->ctx, rc);
}

static Whisper__Client__MediaJob *job_read(whisper_client *c, const uint8_t key[KEY_LEN], int *rc) {
  whisper_buf *b = NULL;
  *rc = sy_rec_get(c, key, KEY_LEN, &b);
  if (*rc != WHISPER_OK) return NULL;
  Whisper__Client__MediaJob *m = whisper__client__media_job__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL) *rc = WHISPER_ECORRUPT;
  return m;
}

static char *dup_or_null(const char *s) { return s ? sy_strdup(s) : NULL; }

/* A stored job's error: field 16 holds a WHISPER_E* code; field 13, written
 * before the codes were regrouped into ranges, the old number (-1..-26). */
static int job_error(const Whisper__Client__MediaJob *m) {
  static const int old[26] = {
      WHISPER_EINVAL,      WHISPER_ENOMEM,     WHISPER_EINVALIDMSG, WHISPER_EDUPLICATE,
      WHISPER_EINVALIDSIG, WHISPER_EINVALIDKEY, WHISPER_ENOSESSION, WHISPER_EUNTRUSTED,
      WHISPER_ETOOFAR,     WHISPER_ENOTFOUND,  WHISPER_ESTORE,      WHISPER_ECORRUPT,
      WHISPER_ERANDOM,     WHISPER_ESTATE,     WHISPER_EINTERNAL,   WHISPER_EVERSION,
      WHISPER_EKEY,        WHISPER_EBUSY,      WHISPER_EFORGED,     WHISPER_EROLLEDBACK,
      WHISPER_EDENIED,     WHISPER_EBLOCKED,   WHISPER_ETRUNCATED,  WHISPER_EINTEGRITY,
      WHISPER_ESIZE,       WHISPER_ETOOBIG};
  if (m->has_error_code) return m->error_code;
  if (m->has_error && m->error < 0 && m->error >= -26) return old[-m->error - 1];
  return m->has_error ? m->error : 0;
}

static sy_media *job_from(const uint8_t key[KEY_LEN], const Whisper__Client__MediaJob *m) {
  sy_media *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  memcpy(j->key, key, KEY_LEN);
  j->dir = (int)m->dir;
  j->state = (int)m->state;
  j->error = job_error(m);
  j->view_once = m->view_once;
  j->offset = m->offset;
  j->total = m->total;
  j->created = m->created_ms;
  j->id_len = m->id.len <= sizeof j->id ? m->id.len : 0;
  if (j->id_len) memcpy(j->id, m->id.data, j->id_len);
  if (m->key.len == sizeof j->akey) memcpy(j->akey, m->key.data, sizeof j->akey);
  if (m->iv.len == sizeof j->iv) memcpy(j->iv, m->iv.data, sizeof j->iv);
  j->conv = dup_or_null(m->conversation);
  j->sender = dup_or_null(m->sender);
  j->path = dup_or_null(m->path);
  j->url = dup_or_null(m->url);
  if (m->has_content) j->content = whisper_buf_new(m->content.data, m->content.len);
  int up = j->dir == DIR_UP, down = j->dir == DIR_DOWN;
  if (j->conv == NULL || j->path == NULL || j->id_len == 0 || j->content == NULL || (!up && !down) ||
      (up && (m->key.len != sizeof j->akey || m->iv.len != sizeof j->iv ||
              (j->state != WHISPER_MEDIA_ENCRYPTING && j->state != WHISPER_MEDIA_UPLOADING))) ||
      (down && j->state != WHISPER_MEDIA_DOWNLOADING) || j->offset > j->total ||
      (j->url && (strncmp(j->url, "/v1/blobs/", 10) != 0 || strlen(j->url) > 300))) {
    job_free(j);
    return NULL;
  }
  return j;
}

int sy_media_load(whisper_client *c) {
  whisper_buf *b = NULL;
  int rc = sy_rec_get(c, (const uint8_t *)"J", 1, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__MediaIndex *ix = whisper__client__media_index__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (ix == NULL) return wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's media jobs are corrupt");
  sy_media **tail = &c->media;
  for (size_t i = 0; rc == WHISPER_OK && i < ix->n_keys; i++) {
    if (ix->keys[i].len != KEY_LEN) continue;
    Whisper__Client__MediaJob *m = job_read(c, ix->keys[i].data, &rc);
    if (rc == WHISPER_ENOTFOUND) {
      rc = WHISPER_OK;
      continue;
    }
    if (m == NULL) break;
    sy_media *j = job_from(ix->keys[i].data, m);
    whisper__client__media_job__free_unpacked(m, &wh_pb_alloc);
    if (j == NULL) continue; /* a job that cannot be read is dropped, not the others */
    int twice = 0;
    for (sy_media *k = c->media; k && !twice; k = k->next) twice = memcmp(k->key, j->key, KEY_LEN) == 0;
    if (twice) { /* a list naming a job twice: one job */
      job_free(j);
      continue;
    }
    *tail = j;
    tail = &j->next;
  }
  whisper__client__media_index__free_unpacked(ix, &wh_pb_alloc);
  return rc;
}

void sy_media_free(whisper_client *c) {
  while (c->media) {
    sy_media *j = c->media;
    c->media = j->next;
    job_free(j);
  }
  while (c->http_q) {
    sy_http *h = c->http_q;
    c->http_q = h->next;
    free(h->path);
    free(h->headers);
    whisper_buf_free(h->body);
    free(h);
  }
  if (c->http_cur) {
    free(c->http_cur->path);
    free(c->http_cur->headers);
    whisper_buf_free(c->http_cur->body);
    free(c->http_cur);
    c->http_cur = NULL;
  }
  wh_wipe(c->media_token, sizeof c->media_token);
}

/* Takes a finished job off the list (its record stays, for media_get). */
static void job_retire(whisper_client *c, sy_media *j) {
  for (sy_media **p = &c->media; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  int rc = job_save(c, j, 1);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store a media job");
  job_free(j);
}

/* The job failed for good: nothing of it is left but the record saying why. */
static void job_fail(whisper_client *c, sy_media *j, int code) {
  job_close_files(j);
  char *tp = tmp_path(c, j);
  if (tp) unlink(tp);
  free(tp);
  if (j->dir == DIR_DOWN && j->path[0]) unlink(j->path); /* no unverified whole is left */
  j->state = WHISPER_MEDIA_FAILED;
  j->error = code;
  media_event(c, j, WHISPER_MEDIA_FAILED, code);
  job_retire(c, j);
}

/* The job's read buffer (each job its own: engines may run on several
 * threads, and what goes through it is plaintext, wiped with the job). */
static uint8_t *job_io(sy_media *j) {
  if (j->io == NULL) j->io = malloc(IO_LEN);
  return j->io;
}

/* Feeds the decryptor what the file holds, from its start; the count of
 * bytes fed into *fed (may be NULL). */
static int feed_file(sy_media *j, FILE *f, uint64_t *fed) {
  uint8_t *buf = job_io(j);
  if (buf == NULL) return WHISPER_ENOMEM;
  int rc = WHISPER_OK;
  size_t n;
  rewind(f);
  while (rc == WHISPER_OK && (n = fread(buf, 1, IO_LEN, f)) > 0) {
    rc = whisper_attachment_decrypt_update(j->dec, buf, n);
    if (fed) *fed += n;
  }
  return rc;
}

/* --- pointers ------------------------------------------------------------------------------ */

/* A Content of kind ATTACHMENT (NULL: not one). Only this engine's own
 * bytes come here: a job's, or history's, which took them checked
 * (sy_content_parse) or made them. */
static Whisper__E2e__Content *attachment_of(const whisper_buf *content) {
  if (content == NULL) return NULL;
  Whisper__E2e__Content *ct = whisper__e2e__content__unpack(&wh_pb_alloc, content->len, content->data);
  if (ct && (ct->kind != WHISPER__E2E__CONTENT__KIND__ATTACHMENT || ct->attachment == NULL)) {
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    ct = NULL;
  }
  return ct;
}

static whisper_buf *content_pack(const Whisper__E2e__Content *ct) {
  size_t n = whisper__e2e__content__get_packed_size(ct);
  whisper_buf *b = whisper_buf_new(NULL, n);
  if (b) whisper__e2e__content__pack(ct, b->data);
  return b;
}

static int seen_key(uint8_t k[33], const uint8_t hash[32]) {
  k[0] = 'u';
  memcpy(k + 1, hash, 32);
  return 33;
}

/* The pointer of an earlier upload of the same plaintext, if it is fresh. */
static Whisper__E2e__AttachmentPointer *seen_get(whisper_client *c, const uint8_t hash[32],
                                                 uint64_t now) {
  uint8_t k[33];
  whisper_buf *b = NULL;
  if (sy_rec_get(c, k, seen_key(k, hash), &b) != WHISPER_OK) return NULL;
  Whisper__Client__MediaSeen *s = whisper__client__media_seen__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  Whisper__E2e__AttachmentPointer *p =
      s ? whisper__e2e__attachment_pointer__unpack(&wh_pb_alloc, s->pointer.len, s->pointer.data) : NULL;
  if (s) whisper__client__media_seen__free_unpacked(s, &wh_pb_alloc);
  if (p && (p->blob_id == NULL || p->key.len != WHISPER_ATTACHMENT_KEY_LEN ||
            p->uploaded_at_ms + SEEN_TTL_MS < now)) {
    whisper__e2e__attachment_pointer__free_unpacked(p, &wh_pb_alloc);
    p = NULL;
  }
  return p;
}

/* Remembers a blob of this account's (the blob's fields only). */
int sy_media_seen_put(whisper_client *c, const Whisper__E2e__AttachmentPointer *p) {
  if (p->plaintext_hash.len != 32 || p->blob_id == NULL || p->key.len != WHISPER_ATTACHMENT_KEY_LEN)
    return WHISPER_OK;
  Whisper__E2e__AttachmentPointer q = WHISPER__E2E__ATTACHMENT_POINTER__INIT;
  q.blob_id = p->blob_id;
  q.has_key = q.has_size = q.has_digest = q.has_plaintext_hash = q.has_uploaded_at_ms = 1;
  q.key = p->key;
  q.size = p->size;
  q.digest = p->digest;
  q.plaintext_hash = p->plaintext_hash;
  q.uploaded_at_ms = p->uploaded_at_ms;
  if (p->has_incremental_mac) {
    q.has_incremental_mac = q.has_chunk_size = 1;
    q.incremental_mac = p->incremental_mac;
    q.chunk_size = p->chunk_size;
  }
  size_t n = whisper__e2e__attachment_pointer__get_packed_size(&q);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) return WHISPER_ENOMEM;
  whisper__e2e__attachment_pointer__pack(&q, buf);
  Whisper__Client__MediaSeen s = WHISPER__CLIENT__MEDIA_SEEN__INIT;
  s.has_pointer = 1;
  s.pointer = (ProtobufCBinaryData){n, buf};
  uint8_t k[33];
  int rc = sy_rec_put_msg(c, k, seen_key(k, p->plaintext_hash.data), &s.base);
  wh_wipe(buf, n);
  free(buf);
  return rc;
}

/* --- sending a file ------------------------------------------------------------------------ */

static int str_ok(const char *s, size_t max) {
  return s == NULL || (strlen(s) <= max && wh_utf8_valid((const uint8_t *)s, strlen(s)));
}

int whisper_client_send_file(whisper_client *c, const char *conversation, const char *path,
                             const whisper_media_meta_t *in_meta, uint64_t now_ms,
                             uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  int size_rc = in_meta ? WH_SIZE_CHECK(c->ctx, "meta", in_meta->size, whisper_media_meta_t,
                                        WHISPER_MEDIA_META)
                        : WHISPER_OK;
  if (size_rc != WHISPER_OK) return size_rc;
  /* the fields both sides have (none: all zero) */
  whisper_media_meta_t meta_copy = WHISPER_MEDIA_META_INIT, *meta = &meta_copy;
  if (in_meta) wh_versioned_in(&meta_copy, sizeof meta_copy, in_meta);
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (conversation == NULL || path == NULL || id_out == NULL ||
      (!wh_group_conv_parse(conversation, gid) &&
       (!wh_account_ok(conversation) || strcmp(conversation, c->account) == 0)))
    return sy_fail(c, WHISPER_EINVAL, "send_file needs a conversation, a path and id_out");
  if (c->cfg.media_dir == NULL) return sy_fail(c, WHISPER_EINVAL, "no media_dir is configured");
  const char *name = meta->file_name;
  if (!str_ok(meta->content_type, WHISPER_MEDIA_TYPE_MAX) || !str_ok(name, WHISPER_MEDIA_NAME_MAX) ||
      (name && strchr(name, '/')) || !str_ok(meta->caption, WHISPER_MEDIA_CAPTION_MAX) ||
      (meta->thumbnail == NULL && meta->thumbnail_len) ||
      meta->thumbnail_len > WHISPER_MEDIA_THUMBNAIL_MAX ||
      (meta->flags & ~(uint32_t)(WHISPER_MEDIA_VOICE_NOTE | WHISPER_MEDIA_VIEW_ONCE)))
    return sy_fail(c, WHISPER_EINVAL, "a media field is too long, not UTF-8, or a file name has a '/'");
  if (sy_block_has(c, conversation))
    return sy_fail(c, WHISPER_EBLOCKED, "%s is blocked: unblock it to send to it", conversation);
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return sy_fail(c, WHISPER_ENOTFOUND, "no such file: %s", path);
  if ((uint64_t)st.st_size > c->cfg.media_max_size)
    return sy_fail(c, WHISPER_ETOOBIG, "the file is larger than media_max_size (%llu bytes)",
                   (unsigned long long)c->cfg.media_max_size);
  sy_media *j = calloc(1, sizeof *j);
  if (j == NULL) return WHISPER_ENOMEM;
  j->dir = DIR_UP;
  j->state = WHISPER_MEDIA_ENCRYPTING;
  j->id_len = WHISPER_CLIENT_ID_LEN;
  j->created = now_ms;
  j->total = (uint64_t)st.st_size;
  int rc = wh_random(&c->ctx->rng, j->id, WHISPER_CLIENT_ID_LEN) == 0 &&
                   wh_random(&c->ctx->rng, j->akey, sizeof j->akey) == 0 &&
                   wh_random(&c->ctx->rng, j->iv, sizeof j->iv) == 0
               ? WHISPER_OK
               : sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  j->conv = sy_strdup(conversation);
  j->path = sy_strdup(path);
  if (rc == WHISPER_OK && (j->conv == NULL || j->path == NULL)) rc = WHISPER_ENOMEM;
  /* the Content to send, complete but for the blob's fields */
  Whisper__E2e__AttachmentPointer p = WHISPER__E2E__ATTACHMENT_POINTER__INIT;
  p.content_type = (char *)(meta->content_type ? meta->content_type : "application/octet-stream");
  p.file_name = (char *)name;
  if (meta->width) p.has_width = 1, p.width = meta->width;
  if (meta->height) p.has_height = 1, p.height = meta->height;
  if (meta->duration_ms) p.has_duration_ms = 1, p.duration_ms = meta->duration_ms;
  p.caption = (char *)meta->caption;
  if (meta->thumbnail_len)
    p.has_thumbnail = 1, p.thumbnail = (ProtobufCBinaryData){meta->thumbnail_len, (uint8_t *)meta->thumbnail};
  if (meta->flags) p.has_flags = 1, p.flags = meta->flags;
  p.has_size = 1;
  p.size = (uint64_t)st.st_size;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__ATTACHMENT;
  ct.attachment = &p;
  if (rc == WHISPER_OK && (j->content = content_pack(&ct)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) rc = job_key(c, conversation, j->id, j->id_len, NULL, j->key);
  if (rc == WHISPER_OK) {
    j->next = c->media; /* (order does not matter: each job goes its own pace) */
    c->media = j;
    rc = job_save(c, j, 1);
    if (rc != WHISPER_OK) c->media = j->next;
  }
  if (rc != WHISPER_OK) {
    job_free(j);
    return rc;
  }
  memcpy(id_out, j->id, WHISPER_CLIENT_ID_LEN);
  media_event(c, j, WHISPER_MEDIA_ENCRYPTING, 0);
  return wh_ok(c->ctx);
}

static int tmp_sink(void *user, const uint8_t *data, size_t len) {
  return fwrite(data, 1, len, user) == len ? 0 : WHISPER_ESTORE;
}

/* The upload is done (or was done before): the message goes out with the
 * pointer, the blob is remembered for the same file sent again. */
static void upload_done(whisper_client *c, sy_media *j, const char *blob_id, uint64_t uploaded_at,
                        uint64_t now) {
  Whisper__E2e__Content *ct = attachment_of(j->content);
  if (ct == NULL) {
    job_fail(c, j, WHISPER_EINTERNAL);
    return;
  }
  if (blob_id) {
    ct->attachment->blob_id = (char *)blob_id; /* borrowed until packed */
    ct->attachment->has_uploaded_at_ms = 1;
    ct->attachment->uploaded_at_ms = uploaded_at;
  }
  whisper_buf *packed = content_pack(ct);
  if (blob_id) ct->attachment->blob_id = NULL; /* (not the unpacker's to free) */
  const char *caption = ct->attachment->caption ? ct->attachment->caption : "";
  int rc = packed ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) {
    wh_entry_extra x = {.kind = WHISPER_KIND_ATTACHMENT, .content = packed->data,
                        .content_len = packed->len, .forwarded = ct->forwarded};
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    rc = sy_enqueue_as(c, j->conv, (const uint8_t *)caption, strlen(caption), &x, NULL, now, j->id, id);
  }
  if (rc == WHISPER_OK) {
    Whisper__E2e__Content *sent = attachment_of(packed);
    if (sent) {
      int src = sy_begin(c);
      if (src == WHISPER_OK) src = wh_finish(c->ctx, sy_media_seen_put(c, sent->attachment));
      whisper__e2e__content__free_unpacked(sent, &wh_pb_alloc);
    }
  }
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  whisper_buf_free(j->content);
  j->content = packed;
  if (rc != WHISPER_OK) {
    job_fail(c, j, rc);
    return;
  }
  job_close_files(j);
  char *tp = tmp_path(c, j);
  if (tp) unlink(tp);
  free(tp);
  j->state = WHISPER_MEDIA_SENT;
  j->offset = j->total;
  media_event(c, j, WHISPER_MEDIA_SENT, 0);
  job_retire(c, j);
}

/* One tick's worth of encryption; at the end, the pointer's digests. */
static void encrypt_step(whisper_client *c, sy_media *j, uint64_t now) {
  int rc = WHISPER_OK;
  if (j->enc == NULL) { /* (again) from the start: the same key and IV make the same blob */
    job_close_files(j);
    char *tp = tmp_path(c, j);
    j->src = fopen(j->path, "rb");
    j->tmp = tp ? fopen(tp, "wb") : NULL;
    free(tp);
    if (j->src == NULL) {
      job_fail(c, j, WHISPER_ENOTFOUND);
      return;
    }
    if (j->tmp == NULL) {
      job_fail(c, j, WHISPER_ESTORE);
      return;
    }
    j->done = 0;
    rc = whisper_attachment_encrypt_new(&j->enc, j->akey, j->iv, j->total, tmp_sink, j->tmp);
  }
  uint8_t *buf = job_io(j);
  size_t budget = ENCRYPT_BUDGET;
  if (buf == NULL) rc = WHISPER_ENOMEM;
  while (rc == WHISPER_OK && budget && j->done < j->total) {
    size_t n = fread(buf, 1, IO_LEN < budget ? IO_LEN : budget, j->src);
    if (n == 0) {
      rc = WHISPER_ESIZE; /* the file shrank since it was given */
      break;
    }
    if (n > j->total - j->done) n = (size_t)(j->total - j->done);
    rc = whisper_attachment_encrypt_update(j->enc, buf, n);
    j->done += n;
    budget -= n;
  }
  if (rc != WHISPER_OK) {
    job_fail(c, j, rc == WHISPER_EINVAL ? WHISPER_ESIZE : rc);
    return;
  }
  if (j->done < j->total) {
    media_event(c, j, WHISPER_MEDIA_ENCRYPTING, 0);
    return;
  }
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  rc = whisper_attachment_encrypt_finish(j->enc, &r);
  if (rc == WHISPER_OK && (fflush(j->tmp) != 0 || fsync(fileno(j->tmp)) != 0)) rc = WHISPER_ESTORE;
  job_close_files(j);
  if (rc != WHISPER_OK) {
    job_fail(c, j, rc);
    return;
  }
  Whisper__E2e__Content *ct = attachment_of(j->content);
  Whisper__E2e__AttachmentPointer *seen = seen_get(c, r.plaintext_hash, now);
  whisper_buf *packed = NULL;
  if (ct) {
    Whisper__E2e__AttachmentPointer *p = ct->attachment;
    const Whisper__E2e__AttachmentPointer *from = seen; /* the same file: its blob again */
    /* what the unpacker made (a blob made again: the first encryption's
     * fields), given back to it below to free */
    ProtobufCBinaryData own[4] = {p->key, p->digest, p->plaintext_hash, p->incremental_mac};
    p->has_key = p->has_digest = p->has_plaintext_hash = p->has_incremental_mac = p->has_chunk_size = 1;
    p->key = from ? from->key : (ProtobufCBinaryData){sizeof j->akey, j->akey};
    p->digest = from ? from->digest : (ProtobufCBinaryData){32, r.digest};
    p->plaintext_hash = (ProtobufCBinaryData){32, r.plaintext_hash};
    p->incremental_mac = from ? from->incremental_mac : (ProtobufCBinaryData){r.incremental_mac->len, r.incremental_mac->data};
    p->chunk_size = from ? from->chunk_size : r.chunk_size;
    p->has_incremental_mac = p->incremental_mac.len > 0;
    p->has_chunk_size = p->has_incremental_mac;
    packed = content_pack(ct);
    /* (the fields point into r, seen and j: not the unpacker's to free; its own are) */
    p->key = own[0];
    p->digest = own[1];
    p->plaintext_hash = own[2];
    p->incremental_mac = own[3];
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  }
  whisper_attachment_result_clear(&r);
  if (packed == NULL) {
    if (seen) whisper__e2e__attachment_pointer__free_unpacked(seen, &wh_pb_alloc);
    job_fail(c, j, WHISPER_ENOMEM);
    return;
  }
  whisper_buf_free(j->content);
  j->content = packed;
  j->offset = 0;
  j->total = whisper_attachment_blob_size(j->total);
  if (seen) {
    char *blob = sy_strdup(seen->blob_id);
    uint64_t at = seen->uploaded_at_ms;
    whisper__e2e__attachment_pointer__free_unpacked(seen, &wh_pb_alloc);
    upload_done(c, j, blob, at, now); /* nothing to upload */
    free(blob);
    return;
  }
  j->state = WHISPER_MEDIA_UPLOADING;
  j->offset_known = 0; /* an upload made before (the blob made again): HEAD says where it stands */
  rc = job_save(c, j, 0);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store a media job");
  media_event(c, j, WHISPER_MEDIA_UPLOADING, 0);
}

/* --- the app's HTTP -------------------------------------------------------------------------- */

static int http_queue(whisper_client *c, sy_media *j, const char *method, const char *path,
                      const char *headers, whisper_buf *body) {
  sy_http *h = calloc(1, sizeof *h);
  if (h == NULL || (h->path = sy_strdup(path)) == NULL || (h->headers = sy_strdup(headers)) == NULL) {
    if (h) free(h->path);
    free(h);
    whisper_buf_free(body);
    return WHISPER_ENOMEM;
  }
  snprintf(h->method, sizeof h->method, "%s", method);
  h->handle = ++c->http_next;
  h->body = body;
  sy_http **t = &c->http_q;
  while (*t) t = &(*t)->next;
  *t = h;
  j->inflight = h->handle;
  return WHISPER_OK;
}

int whisper_client_take_http(whisper_client *c, whisper_http_request_t *caller) {
  if (c == NULL || caller == NULL) return 0;
  int size_rc = WH_SIZE_CHECK(c->ctx, "out", caller->size, whisper_http_request_t, WHISPER_HTTP_REQUEST);
  if (size_rc != WHISPER_OK) return size_rc;
  /* filled here, then the fields both sides have copied out */
  whisper_http_request_t request, *out = &request;
  if (c->http_cur) {
    free(c->http_cur->path);
    free(c->http_cur->headers);
    whisper_buf_free(c->http_cur->body);
    free(c->http_cur);
    c->http_cur = NULL;
  }
  sy_http *h = c->http_q;
  if (h == NULL || !c->logged_in) return 0;
  c->http_q = h->next;
  c->http_cur = h;
  memset(out, 0, sizeof *out);
  out->handle = h->handle;
  out->method = h->method;
  out->path = h->path;
  out->headers = h->headers;
  out->body = h->body ? h->body->data : NULL;
  out->body_len = h->body ? h->body->len : 0;
  wh_versioned_out(caller, out, sizeof *out);
  return 1;
}

/* The value of header `name` in "Name: value\r\n" lines, into out. */
static int header(const char *headers, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = headers; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = len - (size_t)(v - p);
      if (vl >= cap) return 0;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 1;
    }
    p = eol ? eol + 2 : NULL;
  }
  return 0;
}

static int header_u64(const char *headers, const char *name, uint64_t *v) {
  char buf[32], *end = NULL;
  if (!header(headers, name, buf, sizeof buf) || buf[0] < '0' || buf[0] > '9') return 0;
  errno = 0;
  unsigned long long x = strtoull(buf, &end, 10);
  if (errno || *end) return 0;
  *v = x;
  return 1;
}

static void backoff(sy_media *j, uint64_t now) {
  j->backoff = j->backoff ? j->backoff * 2 : RETRY_MIN_MS;
  if (j->backoff > RETRY_MAX_MS) j->backoff = RETRY_MAX_MS;
  j->retry_at = now + j->backoff;
}

static int token_ok(const whisper_client *c, uint64_t now) {
  return c->media_token[0] && c->media_token_expires > now + TOKEN_MARGIN_MS;
}

static void ask_token(whisper_client *c) {
  if (c->media_token_asked || !c->logged_in) return;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__UploadAuth a = WHISPER__SYNC__UPLOAD_AUTH__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH;
  f.upload_auth = &a;
  if (sy_queue(c, &f, RQ_MEDIA_AUTH, 1, NULL) == WHISPER_OK) c->media_token_asked = 1;
}

/* A token the Authorization header can carry as it is: RFC 7235's token68
 * (the server's is base64url). Anything else, a CR or LF above all, would
 * let the server write the app's request lines. */
static int token68(const char *t) {
  size_t n = strlen(t), i = 0;
  if (n == 0) return 0;
  while (i < n && (id_char(t[i]) || t[i] == '.' || t[i] == '~' || t[i] == '+' || t[i] == '/')) i++;
  if (i == 0) return 0;
  while (i < n && t[i] == '=') i++;
  return i == n;
}

void sy_media_token_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  (void)r;
  c->media_token_asked = 0;
  if (f->body_case != WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN || f->upload_token->token == NULL ||
      strlen(f->upload_token->token) >= sizeof c->media_token || !token68(f->upload_token->token)) {
    sy_error_event(c, WHISPER_ESTATE, f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? (int)f->error->code : 0,
                   "the server gave no upload token (or one a header cannot carry)");
    for (sy_media *j = c->media; j; j = j->next)
      if (j->dir == DIR_UP) backoff(j, c->now);
    return;
  }
  snprintf(c->media_token, sizeof c->media_token, "%s", f->upload_token->token);
  c->media_token_expires = f->upload_token->expires_ms;
}

/* The next request of an upload. */
static void upload_step(whisper_client *c, sy_media *j, uint64_t now) {
  if (!token_ok(c, now)) {
    ask_token(c);
    return;
  }
  char hdr[1024];
  int rc;
  if (j->url == NULL) { /* create the upload */
    snprintf(hdr, sizeof hdr, TUS "Upload-Length: %llu\r\nAuthorization: Bearer %s\r\n",
             (unsigned long long)j->total, c->media_token);
    rc = http_queue(c, j, "POST", "/v1/blobs", hdr, NULL);
  } else if (!j->offset_known) { /* where it stands */
    snprintf(hdr, sizeof hdr, TUS "Authorization: Bearer %s\r\n", c->media_token);
    rc = http_queue(c, j, "HEAD", j->url, hdr, NULL);
  } else {
    uint64_t n = j->total - j->offset;
    if (n > c->cfg.media_piece) n = c->cfg.media_piece;
    whisper_buf *body = whisper_buf_new(NULL, (size_t)n);
    char *tp = tmp_path(c, j);
    int fd = tp ? open(tp, O_RDONLY) : -1;
    free(tp);
    ssize_t got = body && fd >= 0 ? pread(fd, body->data, (size_t)n, (off_t)j->offset) : -1;
    if (fd >= 0) close(fd);
    if (body == NULL) {
      backoff(j, now);
      return;
    }
    if (got != (ssize_t)n) { /* the blob here is gone or short: made again */
      whisper_buf_free(body);
      j->state = WHISPER_MEDIA_ENCRYPTING;
      j->total = 0;
      Whisper__E2e__Content *ct = attachment_of(j->content);
      j->total = ct ? ct->attachment->size : 0;
      if (ct) whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
      return;
    }
    snprintf(hdr, sizeof hdr,
             TUS "Upload-Offset: %llu\r\nContent-Type: application/offset+octet-stream\r\n"
                 "Authorization: Bearer %s\r\n",
             (unsigned long long)j->offset, c->media_token);
    rc = http_queue(c, j, "PATCH", j->url, hdr, body);
  }
  if (rc != WHISPER_OK) backoff(j, now);
}

static void upload_answer(whisper_client *c, sy_media *j, int status, const char *headers,
                          uint64_t now) {
  uint64_t off = 0;
  char loc[512];
  if (status == 401) { /* the token lapsed or the server forgot it */
    c->media_token[0] = 0;
    return;
  }
  if (j->url == NULL) { /* POST */
    if (status == 201 && header(headers, "Location", loc, sizeof loc)) {
      /* an absolute URL is cut to its path: the app's host is the server's */
      const char *p = strstr(loc, "://");
      p = p ? strchr(p + 3, '/') : loc;
      /* it goes into the app's next requests: a plain path, nothing that could end a line */
      if (p == NULL || strncmp(p, "/v1/blobs/", 10) != 0 || strlen(p) < 11 || strlen(p) > 300 ||
          strspn(p + 10, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
              strlen(p + 10)) {
        job_fail(c, j, WHISPER_EINVALIDMSG);
        return;
      }
      j->url = sy_strdup(p);
      j->offset = 0;
      j->offset_known = 1;
      int rc = j->url ? job_save(c, j, 0) : WHISPER_ENOMEM;
      if (rc != WHISPER_OK) {
        free(j->url);
        j->url = NULL;
        backoff(j, now);
      }
      return;
    }
    if (status == 413) job_fail(c, j, WHISPER_ETOOBIG);
    else if (status == 403 || status == 507) job_fail(c, j, WHISPER_EDENIED); /* over quota */
    else backoff(j, now);
    return;
  }
  if ((status == 200 || status == 204) && header_u64(headers, "Upload-Offset", &off) &&
      off <= j->total) { /* HEAD or PATCH */
    j->offset_known = 1;
    j->backoff = 0;
    if (off != j->offset) {
      j->offset = off;
      int rc = job_save(c, j, 0);
      if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store a media job");
      media_event(c, j, WHISPER_MEDIA_UPLOADING, 0);
    }
    if (j->offset == j->total) {
      const char *blob = strrchr(j->url, '/') + 1;
      char *b = sy_strdup(blob);
      upload_done(c, j, b, now, now);
      free(b);
    }
    return;
  }
  if (status == 409) { /* the offset was not the server's: ask it */
    j->offset_known = 0;
    return;
  }
  if (status == 404 || status == 410) { /* the upload is gone: a new one */
    free(j->url);
    j->url = NULL;
    j->offset = 0;
    int rc = job_save(c, j, 0);
    if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store a media job");
    return;
  }
  if (status == 403) {
    job_fail(c, j, WHISPER_EDENIED);
    return;
  }
  backoff(j, now);
}

/* --- downloading ---------------------------------------------------------------------------- */

/* Verified plaintext: to the app's file, or to the app itself (events). */
static int out_sink(void *user, const uint8_t *data, size_t len) {
  sy_media *j = user;
  if (j->out) return fwrite(data, 1, len, j->out) == len ? 0 : WHISPER_ESTORE;
  sy_event *e = sy_event_new(j->c, WHISPER_EV_MEDIA_DATA);
  if (e == NULL || sy_event_set(e, j->conv, j->sender, j->id, j->id_len, data, len) != WHISPER_OK) {
    sy_event_free(e);
    return WHISPER_ENOMEM;
  }
  e->ev.done_bytes = j->given; /* where these bytes start */
  e->ev.total_bytes = j->size;
  j->given += len;
  sy_event_push(j->c, e);
  return WHISPER_OK;
}

static Whisper__E2e__AttachmentPointer *job_pointer(sy_media *j, Whisper__E2e__Content **ct) {
  *ct = attachment_of(j->content);
  return *ct ? (*ct)->attachment : NULL;
}

/* Opens the files and the decryptor, and feeds it what came before. */
static int download_open(whisper_client *c, sy_media *j) {
  Whisper__E2e__Content *ct;
  Whisper__E2e__AttachmentPointer *p = job_pointer(j, &ct);
  if (p && !sy_attachment_ok(p)) { /* (the blob id goes into a URL path) */
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    p = NULL;
  }
  if (p == NULL) return WHISPER_EINVALIDMSG;
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  x.key = p->key.data;
  x.plaintext_size = p->size;
  x.digest = p->digest.data;
  x.plaintext_hash = p->has_plaintext_hash && p->plaintext_hash.len == 32 ? p->plaintext_hash.data : NULL;
  if (p->has_incremental_mac && p->incremental_mac.len) {
    x.incremental_mac = p->incremental_mac.data;
    x.incremental_mac_len = p->incremental_mac.len;
    x.chunk_size = p->chunk_size;
  }
  x.max_size = c->cfg.media_max_size;
  j->size = p->size;
  char *tp = tmp_path(c, j);
  j->tmp = tp ? fopen(tp, "a+b") : NULL;
  free(tp);
  j->out = j->path[0] ? fopen(j->path, "wb") : NULL; /* "": the bytes go to the app */
  j->c = c;
  j->given = 0;
  int rc = j->tmp && (j->out || !j->path[0]) ? WHISPER_OK : WHISPER_ESTORE;
  if (rc == WHISPER_OK) rc = whisper_attachment_decrypt_new(&j->dec, &x, out_sink, j);
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  if (rc != WHISPER_OK) return rc;
  /* the blob bytes already here, verified again */
  j->offset = 0;
  rc = feed_file(j, j->tmp, &j->offset);
  if (rc == WHISPER_OK && j->out && fflush(j->out) != 0) rc = WHISPER_ESTORE;
  return rc;
}

/* Feeds the whole blob again (a pointer without an incremental MAC: the
 * second pass), then finishes. */
static int download_finish(sy_media *j) {
  int rc = whisper_attachment_decrypt_finish(j->dec);
  if (rc == WHISPER_ATTACHMENT_AGAIN) {
    rc = feed_file(j, j->tmp, NULL);
    if (rc == WHISPER_OK) rc = whisper_attachment_decrypt_finish(j->dec);
  }
  if (rc == WHISPER_OK && j->out && (fflush(j->out) != 0 || fsync(fileno(j->out)) != 0))
    rc = WHISPER_ESTORE;
  return rc;
}

static void view_once_opened(whisper_client *c, sy_media *j, uint64_t now);

static void download_complete(whisper_client *c, sy_media *j, uint64_t now) {
  int rc = download_finish(j);
  if (rc != WHISPER_OK) {
    job_fail(c, j, rc);
    return;
  }
  job_close_files(j);
  char *tp = tmp_path(c, j);
  if (tp) unlink(tp);
  free(tp);
  j->state = WHISPER_MEDIA_DOWNLOADED;
  media_event(c, j, WHISPER_MEDIA_DOWNLOADED, 0);
  if (j->view_once) {
    view_once_opened(c, j, now);
    return;
  }
  job_retire(c, j);
}

static void download_step(whisper_client *c, sy_media *j, uint64_t now) {
  if (j->dec == NULL) {
    int rc = download_open(c, j);
    if (rc != WHISPER_OK) {
      job_fail(c, j, rc);
      return;
    }
  }
  if (j->offset >= j->total) {
    download_complete(c, j, now);
    return;
  }
  Whisper__E2e__Content *ct;
  Whisper__E2e__AttachmentPointer *p = job_pointer(j, &ct);
  if (p == NULL) {
    job_fail(c, j, WHISPER_EINVALIDMSG);
    return;
  }
  char path[300], hdr[128];
  snprintf(path, sizeof path, "/v1/blobs/%s", p->blob_id);
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  uint64_t last = j->offset + c->cfg.media_piece - 1;
  if (last >= j->total) last = j->total - 1;
  snprintf(hdr, sizeof hdr, "Range: bytes=%llu-%llu\r\n", (unsigned long long)j->offset,
           (unsigned long long)last);
  if (http_queue(c, j, "GET", path, hdr, NULL) != WHISPER_OK) backoff(j, now);
}

static void download_answer(whisper_client *c, sy_media *j, int status, const uint8_t *body,
                            size_t len, uint64_t now) {
  if (status == 200 && j->offset > 0) { /* the whole blob, though a range was asked: skip */
    if (len < j->offset) {
      backoff(j, now);
      return;
    }
    body += j->offset;
    len -= (size_t)j->offset;
    status = 206;
  }
  if (status == 404 || status == 410) {
    job_fail(c, j, WHISPER_ENOTFOUND);
    return;
  }
  if (status == 416) { /* nothing past what came: the blob is shorter than its size */
    download_complete(c, j, now);
    return;
  }
  if ((status != 206 && status != 200) || len == 0) {
    backoff(j, now);
    return;
  }
  if (len > j->total - j->offset) len = (size_t)(j->total - j->offset) + 1; /* (ESIZE follows) */
  int rc = fwrite(body, 1, len, j->tmp) == len && fflush(j->tmp) == 0 ? WHISPER_OK : WHISPER_ESTORE;
  if (rc == WHISPER_OK) rc = whisper_attachment_decrypt_update(j->dec, body, len);
  if (rc == WHISPER_OK && j->out && fflush(j->out) != 0) rc = WHISPER_ESTORE;
  if (rc != WHISPER_OK) {
    job_fail(c, j, rc);
    return;
  }
  j->offset += len;
  j->backoff = 0;
  media_event(c, j, WHISPER_MEDIA_DOWNLOADING, 0);
  if (j->offset >= j->total) download_complete(c, j, now);
}

/* The attachment (conv, id, sender) as history holds it. */
static int find_attachment(whisper_client *c, const char *conv, const uint8_t *id, size_t id_len,
                           const char *sender, wh_found *f) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = wh_finish(c->ctx, wh_history_lookup(c->ctx, conv, sy_local_sender(c, sender), id, id_len, f));
  if (rc == WHISPER_OK && (f->hidden || f->kind != WHISPER_KIND_ATTACHMENT)) {
    wh_found_free(f);
    rc = WHISPER_ENOTFOUND;
  }
  if (rc == WHISPER_ENOTFOUND) return sy_fail(c, rc, "no such attachment in that conversation");
  return rc;
}

static int start_download(whisper_client *c, const char *conv, const uint8_t *id, size_t id_len,
                          const char *sender, const char *path, int view_once, uint64_t now) {
  if (c == NULL) return WHISPER_EINVAL;
  if (conv == NULL || id == NULL || id_len == 0 || id_len > WHISPER_MESSAGE_ID_MAX ||
      (path && path[0] == 0) || (sender && !wh_account_ok(sender)))
    return sy_fail(c, WHISPER_EINVAL, "download needs a conversation, a message and a path (or NULL)");
  if (path == NULL) path = ""; /* the bytes go to the app, in events */
  if (c->cfg.media_dir == NULL) return sy_fail(c, WHISPER_EINVAL, "no media_dir is configured");
  wh_found f;
  int rc = find_attachment(c, conv, id, id_len, sender, &f);
  if (rc != WHISPER_OK) return rc;
  whisper_buf *content = f.content;
  f.content = NULL;
  wh_found_free(&f);
  Whisper__E2e__Content *ct = attachment_of(content);
  if (ct == NULL) {
    whisper_buf_free(content);
    return sy_fail(c, WHISPER_EDENIED, "that attachment was opened or deleted");
  }
  const Whisper__E2e__AttachmentPointer *p = ct->attachment;
  int vo = p->flags & WHISPER_MEDIA_VIEW_ONCE;
  uint64_t size = p->size;
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  if (vo != (view_once ? WHISPER_MEDIA_VIEW_ONCE : 0)) {
    whisper_buf_free(content);
    return sy_fail(c, WHISPER_EDENIED, vo ? "a view-once attachment is opened, not downloaded"
                                          : "that attachment is not view-once");
  }
  if (size > c->cfg.media_max_size) {
    whisper_buf_free(content);
    return sy_fail(c, WHISPER_ETOOBIG, "the attachment is larger than media_max_size");
  }
  sy_media *j = calloc(1, sizeof *j);
  if (j == NULL) {
    whisper_buf_free(content);
    return WHISPER_ENOMEM;
  }
  j->dir = DIR_DOWN;
  j->state = WHISPER_MEDIA_DOWNLOADING;
  j->view_once = view_once;
  j->content = content;
  j->created = now;
  j->total = whisper_attachment_blob_size(size);
  j->id_len = id_len;
  memcpy(j->id, id, id_len);
  j->conv = sy_strdup(conv);
  j->sender = sy_local_sender(c, sender) ? sy_strdup(sender) : NULL;
  j->path = sy_strdup(path);
  rc = j->conv && j->path && (j->sender || !sy_local_sender(c, sender)) ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) rc = job_key(c, conv, id, id_len, j->sender, j->key);
  /* a download already running for it starts over, to the new path */
  for (sy_media **pp = &c->media; rc == WHISPER_OK && *pp; pp = &(*pp)->next)
    if (memcmp((*pp)->key, j->key, KEY_LEN) == 0) {
      sy_media *old = *pp;
      if (old->dir == DIR_UP) {
        rc = sy_fail(c, WHISPER_ESTATE, "that attachment is still being sent");
        break;
      }
      *pp = old->next;
      if (old->path[0] && strcmp(old->path, path) != 0) unlink(old->path);
      job_free(old);
      break;
    }
  if (rc == WHISPER_OK) {
    j->next = c->media;
    c->media = j;
    rc = job_save(c, j, 1);
    if (rc != WHISPER_OK) c->media = j->next;
  }
  if (rc != WHISPER_OK) {
    job_free(j);
    return rc;
  }
  media_event(c, j, WHISPER_MEDIA_DOWNLOADING, 0);
  return wh_ok(c->ctx);
}

int whisper_client_download(whisper_client *c, const char *conversation, const uint8_t *id,
                            size_t id_len, const char *sender, const char *path, uint64_t now_ms) {
  return start_download(c, conversation, id, id_len, sender, path, 0, now_ms);
}

int whisper_client_view_once_open(whisper_client *c, const char *conversation, const uint8_t *id,
                                  size_t id_len, const char *sender, const char *path,
                                  uint64_t now_ms) {
  return start_download(c, conversation, id, id_len, sender, path, 1, now_ms);
}

/* --- view once ------------------------------------------------------------------------------ */

/* The view-once attachment (conv, sender, id) is gone here: its key from
 * history, its job, its blob. */
static int wipe_here(whisper_client *c, const char *conv, const char *sender, const uint8_t *id,
                     size_t id_len) {
  wh_history_op op = {WH_OP_OPENED, NULL, 0, NULL, 0, 0};
  int pending = 0;
  return wh_history_apply(c->ctx, conv, sender, id, id_len, &op, &pending);
}

static void view_once_opened(whisper_client *c, sy_media *j, uint64_t now) {
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) rc = wipe_here(c, j->conv, j->sender, j->id, j->id_len);
  rc = sy_txn_end(c, rc);
  whisper_buf_free(j->content);
  j->content = NULL;
  j->state = WHISPER_MEDIA_OPENED;
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot wipe a view-once attachment");
  /* this account's other devices wipe it too */
  Whisper__E2e__Target t = WHISPER__E2E__TARGET__INIT;
  t.has_id = 1;
  t.id = (ProtobufCBinaryData){j->id_len, j->id};
  t.sender = j->sender;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_at_ms = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__OPENED;
  ct.target = &t;
  ct.text = j->conv;
  ct.at_ms = now;
  whisper_buf *packed = content_pack(&ct);
  if (packed) {
    wh_entry_extra x = {.content = packed->data, .content_len = packed->len, .hidden = 1};
    uint8_t oid[WHISPER_CLIENT_ID_LEN];
    rc = sy_enqueue(c, c->account, NULL, 0, &x, NULL, now, oid);
    if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot tell this account's devices");
    whisper_buf_free(packed);
  }
  /* and the sender sees it was opened */
  if (j->sender && j->id_len == WHISPER_CLIENT_ID_LEN) {
    rc = sy_receipt_add(c, j->sender, WHISPER_STATUS_OPENED,
                        (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])j->id, 1);
    if (rc == WHISPER_OK) rc = sy_ops_store(c);
    if (rc == WHISPER_OK) sy_ops_flush(c);
  }
  media_event(c, j, WHISPER_MEDIA_OPENED, 0);
  job_retire(c, j);
}

int sy_media_opened_receive(whisper_client *c, const Whisper__E2e__Content *ct) {
  if (ct->target == NULL || !ct->target->has_id || ct->target->id.len == 0 ||
      ct->target->id.len > WHISPER_MESSAGE_ID_MAX || ct->text == NULL ||
      (ct->target->sender && !wh_account_ok(ct->target->sender)))
    return WHISPER_EINVAL;
  const char *sender = sy_local_sender(c, ct->target->sender);
  int rc = wipe_here(c, ct->text, sender, ct->target->id.data, ct->target->id.len);
  if (rc == WHISPER_EDENIED) rc = WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  uint8_t key[KEY_LEN];
  if (job_key(c, ct->text, ct->target->id.data, ct->target->id.len, sender, key) != WHISPER_OK)
    return WHISPER_OK;
  for (sy_media **pp = &c->media; *pp; pp = &(*pp)->next)
    if (memcmp((*pp)->key, key, KEY_LEN) == 0) { /* a download of it here stops */
      sy_media *j = *pp;
      job_close_files(j);
      char *tp = tmp_path(c, j);
      if (tp) unlink(tp);
      free(tp);
      if (j->path[0]) unlink(j->path);
      *pp = j->next;
      job_free(j);
      rc = index_put(c);
      break;
    }
  return rc;
}

/* --- the engine's hooks ---------------------------------------------------------------------- */

void sy_media_login(whisper_client *c) {
  for (sy_media *j = c->media; j; j = j->next) {
    j->offset_known = 0;
    j->inflight = 0;
    j->retry_at = 0;
  }
}

void sy_media_disconnected(whisper_client *c) {
  for (sy_media *j = c->media; j; j = j->next) j->inflight = 0; /* answers to come are dropped */
  while (c->http_q) {
    sy_http *h = c->http_q;
    c->http_q = h->next;
    free(h->path);
    free(h->headers);
    whisper_buf_free(h->body);
    free(h);
  }
  c->media_token_asked = 0;
}

void sy_media_tick(whisper_client *c, uint64_t now) {
  sy_media *next;
  for (sy_media *j = c->media; j; j = next) {
    next = j->next; /* (a step may retire j) */
    if (j->state == WHISPER_MEDIA_ENCRYPTING) {
      encrypt_step(c, j, now);
      continue;
    }
    if (!c->logged_in || j->inflight || now < j->retry_at) continue;
    if (j->state == WHISPER_MEDIA_UPLOADING) upload_step(c, j, now);
    else if (j->state == WHISPER_MEDIA_DOWNLOADING) download_step(c, j, now);
  }
}

uint64_t sy_media_deadline(const whisper_client *c) {
  uint64_t d = UINT64_MAX;
  for (const sy_media *j = c->media; j; j = j->next) {
    if (j->state == WHISPER_MEDIA_ENCRYPTING) return c->now;
    if (!c->logged_in || j->inflight) continue;
    if (j->state == WHISPER_MEDIA_UPLOADING && !token_ok(c, c->now) && c->media_token_asked) continue;
    uint64_t t = j->retry_at > c->now ? j->retry_at : c->now;
    if (t < d) d = t;
  }
  return d;
}

int whisper_client_http_done(whisper_client *c, uint64_t handle, int status, const char *headers,
                             const uint8_t *body, size_t body_len, uint64_t now_ms) {
  if (c == NULL || handle == 0 || (body == NULL && body_len)) return WHISPER_EINVAL;
  c->now = now_ms;
  sy_media *j = c->media;
  while (j && j->inflight != handle) j = j->next;
  if (j == NULL) return sy_fail(c, WHISPER_EINVAL, "no such HTTP request (or it was dropped)");
  j->inflight = 0;
  if (headers == NULL) headers = "";
  if (j->dir == DIR_UP) upload_answer(c, j, status, headers, now_ms);
  else download_answer(c, j, status, body, body_len, now_ms);
  sy_media_tick(c, now_ms); /* the next request at once */
  return wh_ok(c->ctx);
}

/* --- what the app reads ---------------------------------------------------------------------- */

static char *dup_or_empty(const char *s) { return sy_strdup(s ? s : ""); }

void whisper_media_free(whisper_media_t *m) {
  if (m == NULL) return;
  free(m->content_type);
  free(m->file_name);
  free(m->caption);
  free(m->thumbnail);
  free(m->path);
  free(m);
}

int whisper_client_media_get(whisper_client *c, const char *conversation, const uint8_t *id,
                             size_t id_len, const char *sender, whisper_media_t **out) {
  if (c == NULL) return WHISPER_EINVAL;
  if (out == NULL || conversation == NULL || id == NULL || id_len == 0 || id_len > WHISPER_MESSAGE_ID_MAX)
    return sy_fail(c, WHISPER_EINVAL, "media_get needs a conversation, a message and out");
  *out = NULL;
  const char *ls = sy_local_sender(c, sender);
  uint8_t key[KEY_LEN];
  int rc = job_key(c, conversation, id, id_len, ls, key);
  if (rc != WHISPER_OK) return rc;
  /* a job: in memory while it runs, else its record */
  sy_media *live = c->media;
  while (live && memcmp(live->key, key, KEY_LEN) != 0) live = live->next;
  Whisper__Client__MediaJob *rec = NULL;
  if (live == NULL) {
    rc = sy_begin(c);
    if (rc == WHISPER_OK) {
      rec = job_read(c, key, &rc);
      rc = wh_finish(c->ctx, rc == WHISPER_ENOTFOUND ? WHISPER_OK : rc);
    }
    /* a record that names no state (or direction) is not one the engine wrote */
    if (rc == WHISPER_OK && rec &&
        (rec->state < WHISPER_MEDIA_ENCRYPTING || rec->state > WHISPER_MEDIA_FAILED ||
         (rec->dir != DIR_UP && rec->dir != DIR_DOWN)))
      rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "a media job's record is corrupt");
    if (rc != WHISPER_OK) {
      if (rec) whisper__client__media_job__free_unpacked(rec, &wh_pb_alloc);
      return rc;
    }
  }
  wh_found f;
  whisper_buf *content = NULL;
  if (live && live->dir == DIR_UP) {
    content = whisper_buf_new(live->content ? live->content->data : NULL, live->content ? live->content->len : 0);
  } else {
    rc = find_attachment(c, conversation, id, id_len, sender, &f);
    if (rc != WHISPER_OK && rec && rec->dir == DIR_UP && rec->has_content) {
      rc = WHISPER_OK; /* (failed before it was sent: the job's record is all there is) */
      content = whisper_buf_new(rec->content.data, rec->content.len);
    } else if (rc == WHISPER_OK) {
      content = f.content;
      f.content = NULL;
      wh_found_free(&f);
    }
  }
  whisper_media_t *m = calloc(1, sizeof *m);
  Whisper__E2e__Content *ct = rc == WHISPER_OK ? attachment_of(content) : NULL;
  if (rc == WHISPER_OK && m == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) {
    const Whisper__E2e__AttachmentPointer *p = ct ? ct->attachment : NULL;
    m->version = WHISPER_MEDIA_STRUCT_VERSION;
    m->content_type = dup_or_empty(p ? p->content_type : NULL);
    m->file_name = dup_or_empty(p ? p->file_name : NULL);
    m->caption = dup_or_empty(p ? p->caption : NULL);
    if (p && p->has_thumbnail && p->thumbnail.len && (m->thumbnail = malloc(p->thumbnail.len))) {
      memcpy(m->thumbnail, p->thumbnail.data, p->thumbnail.len);
      m->thumbnail_len = p->thumbnail.len;
    }
    if (p) {
      m->size = p->size;
      m->width = p->width;
      m->height = p->height;
      m->duration_ms = p->duration_ms;
      m->flags = p->flags;
    }
    if (live) {
      m->state = live->state;
      m->done = live->state == WHISPER_MEDIA_ENCRYPTING ? live->done : live->offset;
      m->total = live->total;
      m->path = dup_or_empty(live->path);
    } else if (rec) {
      m->state = (int)rec->state;
      m->done = rec->offset;
      m->total = rec->total;
      m->error = job_error(rec);
      m->path = dup_or_empty(rec->path);
    } else {
      m->state = p == NULL ? WHISPER_MEDIA_OPENED : ls ? WHISPER_MEDIA_REMOTE : WHISPER_MEDIA_SENT;
      m->path = dup_or_empty(NULL);
    }
    if (p == NULL) m->state = WHISPER_MEDIA_OPENED; /* its key is gone */
    if (!m->content_type || !m->file_name || !m->caption || !m->path) rc = WHISPER_ENOMEM;
  }
  if (ct) whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  whisper_buf_free(content);
  if (rec) whisper__client__media_job__free_unpacked(rec, &wh_pb_alloc);
  if (rc != WHISPER_OK) {
    whisper_media_free(m);
    return rc;
  }
  *out = m;
  return wh_ok(c->ctx);
}

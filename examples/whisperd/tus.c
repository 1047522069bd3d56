/*
 * whisperd: the blob store over HTTP (tus 1.0.0 core, creation and
 * termination; https://tus.io/protocols/resumable-upload), on whisperd's
 * port beside the WebSocket endpoint.
 *
 *   OPTIONS /v1/blobs        204, what the server speaks (no token)
 *   POST    /v1/blobs        201 Location: /v1/blobs/<id>  (token, Upload-Length)
 *   HEAD    /v1/blobs/<id>   200 Upload-Offset, Upload-Length (the uploader's token)
 *   PATCH   /v1/blobs/<id>   204 Upload-Offset, once the bytes are on the disk
 *   DELETE  /v1/blobs/<id>   204 (the uploader's token)
 *   GET     /v1/blobs/<id>   200 the whole blob, 206 a range (no token: the id,
 *                            32 random bytes, is the capability)
 *
 * The token is the sync protocol's UploadToken, in "Authorization: Bearer";
 * whisper_server_upload_token_check() says whose it is. The statuses (and
 * the order the checks are made in) are in docs/sync-protocol.md, "Blobs".
 * A refused request changes nothing; its body, if any, is read and
 * dropped before the answer (lws holds writes until the body is in).
 *
 * A transaction: wd_tus_request() decides (or, for an accepted PATCH,
 * starts writing), wd_tus_body() takes the body, wd_tus_body_done()
 * decides what waited for it, and wd_tus_writeable() writes the answer:
 * the headers, then the body in pieces (a blob is read from its file
 * 64 KiB at a time, never whole).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "blobs.h"

#define TUS_VERSION "1.0.0"
#define CHUNK (64 * 1024)
#define TEXT_MAX 160

enum { M_OTHER, M_GET, M_HEAD, M_POST, M_PATCH, M_DELETE, M_OPTIONS };

struct wd_tus {
  int method;
  uint64_t body_len; /* the request's Content-Length */
  int await_body;    /* the answer waits for the body */
  /* the answer */
  unsigned status;
  int decided;
  int tus;           /* Tus-Resumable */
  int options;       /* Tus-Version, Tus-Extension, Tus-Max-Size */
  int has_offset, has_length;
  uint64_t upload_offset, upload_length;
  int no_store;      /* Cache-Control: no-store */
  int www_auth;      /* WWW-Authenticate: Bearer */
  int close_after;
  const char *allow; /* 405 */
  char location[sizeof WD_BLOBS_PATH + WD_BLOB_HEX_LEN + 2];
  char content_range[96];
  char text[TEXT_MAX]; /* the body of a refusal */
  /* a PATCH being written */
  wd_blob *blob;
  uint64_t start, received;
  int write_err; /* -errno of the first failed write */
  /* a GET: bytes [pos, end) of fd */
  int fd;
  uint64_t pos, end;
  int sent_headers;
  uint8_t *buf;
};

static const unsigned status_codes[] = {
#define X(code) code,
    WD_BLOB_STATUSES
#undef X
};

unsigned wd_blob_status_code(int index) { return status_codes[index]; }

uint64_t wd_blob_now(const wd_config *cfg) { return wd_now_ms() + cfg->clock_offset_ms; }

static void count_status(wd_tus_ctx *t, unsigned status) {
  for (int i = 0; i < WD_BLOB_N_STATUSES; i++)
    if (status_codes[i] == status) {
      t->stats.requests[i]++;
      return;
    }
}

/* --- deciding ------------------------------------------------------------------ */

/* The answer: `status`, with `text` (a sentence) as the body of a
 * refusal. Returns 0. */
static int answer(wd_tus_ctx *t, wd_tus *tx, unsigned status, const char *text) {
  tx->status = status;
  tx->decided = 1;
  snprintf(tx->text, sizeof tx->text, "%s%s", text ? text : "", text ? "\n" : "");
  count_status(t, status);
  return 0;
}

/* A refusal of a tus request (it carries Tus-Resumable too). */
static int refuse(wd_tus_ctx *t, wd_tus *tx, unsigned status, const char *text) {
  tx->tus = 1;
  return answer(t, tx, status, text);
}

static int write_failed(wd_tus_ctx *t, wd_tus *tx, int err, const char *what) {
  wd_error("blobs: %s: %s", what, strerror(-err));
  if (err == -ENOSPC || err == -EDQUOT) return refuse(t, tx, 507, "the blob store is full");
  return refuse(t, tx, 500, "the blob store failed");
}

static int method_of(struct lws *wsi) {
  static const struct {
    enum lws_token_indexes token;
    int method;
  } m[] = {{WSI_TOKEN_GET_URI, M_GET},       {WSI_TOKEN_HEAD_URI, M_HEAD},
           {WSI_TOKEN_POST_URI, M_POST},     {WSI_TOKEN_PATCH_URI, M_PATCH},
           {WSI_TOKEN_DELETE_URI, M_DELETE}, {WSI_TOKEN_OPTIONS_URI, M_OPTIONS}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (lws_hdr_total_length(wsi, m[i].token) > 0) return m[i].method;
  return M_OTHER;
}

/* A decimal number, nothing else: 0 or -1. */
static int parse_u64(const char *s, uint64_t *out) {
  if (!*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* A header lws does not know (lws keeps their names in lower case, with
 * the colon): its value into buf, or -1 when absent or too long. */
static int custom_header(struct lws *wsi, const char *name, char *buf, int cap) {
  int n = (int)strlen(name);
  int len = lws_hdr_custom_length(wsi, name, n);
  if (len < 0 || len >= cap) return -1;
  return lws_hdr_custom_copy(wsi, buf, cap, name, n) < 0 ? -1 : len;
}

static int header(struct lws *wsi, enum lws_token_indexes token, char *buf, int cap) {
  int len = lws_hdr_total_length(wsi, token);
  if (len <= 0 || len >= cap) return len <= 0 ? -1 : -2;
  return lws_hdr_copy(wsi, buf, cap, token) < 0 ? -2 : len;
}

/* A custom header that must be a decimal number: 1 present and good, 0
 * absent, -1 malformed. */
static int number_header(struct lws *wsi, const char *name, uint64_t *out) {
  char v[32];
  int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
  if (n < 0) return 0;
  if (custom_header(wsi, name, v, sizeof v) < 0 || parse_u64(v, out) != 0) return -1;
  return 1;
}

static int tus_version_ok(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi) {
  char v[16];
  if (custom_header(wsi, "tus-resumable:", v, sizeof v) >= 0 && strcmp(v, TUS_VERSION) == 0)
    return 1;
  tx->options = 1; /* Tus-Version says what we speak */
  refuse(t, tx, 412, "Tus-Resumable: 1.0.0 is required");
  return 0;
}

/* The device the request's token names, or an answer (401, 500). 1 if
 * authenticated. */
static int authenticate(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, char account[65],
                        uint32_t *device) {
  char v[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 32];
  int n = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, v, sizeof v);
  const char *tok = v;
  if (n < 0 || strncasecmp(v, "Bearer ", 7) != 0) {
    tx->www_auth = 1;
    refuse(t, tx, 401, "an upload token is required (Authorization: Bearer)");
    return 0;
  }
  for (tok += 7; *tok == ' '; tok++) continue;
  size_t len = strlen(tok);
  while (len && tok[len - 1] == ' ') len--;
  int rc = whisper_server_upload_token_check(t->srv, tok, len, wd_now_ms(), account, 65, device);
  if (rc == WHISPER_OK) return 1;
  if (rc == WHISPER_EINVALIDMSG || rc == WHISPER_EINVALIDSIG || rc == WHISPER_ESTATE ||
      rc == WHISPER_ENOTFOUND) {
    wd_debug("blobs: token refused: %s", whisper_server_last_error(t->srv));
    tx->www_auth = 1;
    refuse(t, tx, 401, rc == WHISPER_ESTATE ? "the upload token has expired"
                                            : "the upload token is not valid");
    return 0;
  }
  wd_error("blobs: checking a token: %s (%s)", whisper_strerror(rc),
           whisper_server_last_error(t->srv));
  refuse(t, tx, 500, "the server's store failed");
  return 0;
}

/* The blob named by `id` (wd_blobs_get), or NULL when an answer was
 * decided: 404 (none, or expired), 500. */
static wd_blob *get_blob(wd_tus_ctx *t, wd_tus *tx, const char *id, int tus) {
  wd_blob *blob = NULL;
  int rc = wd_blobs_get(t->store, id, strlen(id), &blob);
  if (rc != 0 && rc != -ENOENT) {
    tx->tus = tus;
    write_failed(t, tx, rc, "reading a blob");
    return NULL;
  }
  if (!blob || wd_blobs_expired(t->store, blob, wd_blob_now(t->cfg))) {
    wd_blobs_done(t->store, blob);
    tx->tus = tus;
    answer(t, tx, 404, "no such blob");
    return NULL;
  }
  return blob;
}

/* The blob a tus request on /v1/blobs/<id> is about, checked: the token's
 * device uploaded it. NULL when an answer was decided (401, 404, 403). The
 * caller gives it back with wd_blobs_done(). */
static wd_blob *own_blob(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *id) {
  char account[65];
  uint32_t device;
  wd_blob_owner who;
  if (!tus_version_ok(t, tx, wsi) || !authenticate(t, tx, wsi, account, &device)) return NULL;
  wd_blob *blob = get_blob(t, tx, id, 1);
  if (!blob) return NULL;
  int rc = wd_blobs_owner(t->store, account, device, &who);
  if (rc != 0) {
    wd_blobs_done(t->store, blob);
    write_failed(t, tx, rc, "the owner key");
    return NULL;
  }
  if (wd_blobs_same(&who, &blob->owner) != 2) {
    wd_blobs_done(t->store, blob);
    refuse(t, tx, 403, "another device uploaded this blob");
    return NULL;
  }
  return blob;
}

static int do_options(wd_tus_ctx *t, wd_tus *tx) {
  tx->options = 1;
  tx->tus = 1;
  return answer(t, tx, 204, NULL);
}

/* POST /v1/blobs: a new upload. */
static int do_create(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi) {
  char account[65];
  uint32_t device;
  uint64_t length = 0;
  if (!tus_version_ok(t, tx, wsi) || !authenticate(t, tx, wsi, account, &device)) return 0;
  if (lws_hdr_custom_length(wsi, "upload-defer-length:", 20) >= 0)
    return refuse(t, tx, 400, "Upload-Defer-Length is not supported: give Upload-Length");
  if (number_header(wsi, "upload-length:", &length) != 1)
    return refuse(t, tx, 400, "Upload-Length must be a number of bytes");
  if (tx->body_len)
    return refuse(t, tx, 400, "a creation takes no body (creation-with-upload is not supported)");
  if (length > t->cfg->server.blob_max_size)
    return refuse(t, tx, 413, "the blob is over the server's size limit");
  /* the quota: in cluster mode checked and the blob made in one transaction */
  wd_blob *blob;
  int rc = wd_blobs_create_within(t->store, account, device, length, t->cfg->server.blob_quota,
                                  wd_blob_now(t->cfg), &blob);
  if (rc == WD_BLOBS_OVER_QUOTA)
    return refuse(t, tx, 403, "the account's blob quota would be exceeded");
  if (rc != 0) return write_failed(t, tx, rc, "creating a blob");
  snprintf(tx->location, sizeof tx->location, WD_BLOBS_PATH "/%s", blob->hex);
  wd_info("blobs: %.8s... created, %llu bytes, device %lu", blob->hex,
          (unsigned long long)length, (unsigned long)device);
  wd_blobs_done(t->store, blob);
  tx->tus = 1;
  return answer(t, tx, 201, NULL);
}

static int do_head(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *id) {
  wd_blob *blob = own_blob(t, tx, wsi, id);
  if (!blob) return 0;
  tx->has_offset = tx->has_length = tx->no_store = tx->tus = 1;
  tx->upload_offset = blob->offset;
  tx->upload_length = blob->length;
  wd_blobs_done(t->store, blob);
  return answer(t, tx, 200, NULL);
}

/* PATCH: checked (a refusal gives the blob back), then the body goes to
 * the data file as it comes. */
static int patch_check(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, wd_blob *blob) {
  char ctype[64];
  uint64_t offset = 0;
  if (header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype) < 0 ||
      strcasecmp(ctype, "application/offset+octet-stream") != 0)
    return refuse(t, tx, 415, "Content-Type must be application/offset+octet-stream");
  if (number_header(wsi, "upload-offset:", &offset) != 1)
    return refuse(t, tx, 400, "Upload-Offset must be a number of bytes");
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
    return refuse(t, tx, 411, "Content-Length is required");
  if (blob->busy) return refuse(t, tx, 423, "another PATCH is writing this blob");
  if (offset != blob->offset) {
    tx->has_offset = 1;
    tx->upload_offset = blob->offset;
    return refuse(t, tx, 409, "Upload-Offset is not the blob's offset");
  }
  if (tx->body_len > blob->length - offset)
    return refuse(t, tx, 413, "the body would pass Upload-Length");
  int rc = wd_blobs_write_begin(t->store, blob);
  /* cluster mode: another node writes it, or it moved or went meanwhile */
  if (rc == -EBUSY) return refuse(t, tx, 423, "another PATCH is writing this blob");
  if (rc == -ESTALE) {
    tx->has_offset = 1;
    tx->upload_offset = blob->offset;
    return refuse(t, tx, 409, "Upload-Offset is not the blob's offset");
  }
  if (rc == -ENOENT) return refuse(t, tx, 404, "no such blob");
  if (rc != 0) return write_failed(t, tx, rc, "opening a blob");
  tx->blob = blob;
  tx->start = offset;
  return 0; /* decided when the body is in */
}

static int do_patch(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *id) {
  wd_blob *blob = own_blob(t, tx, wsi, id);
  if (!blob) return 0;
  patch_check(t, tx, wsi, blob);
  if (!tx->blob) wd_blobs_done(t->store, blob);
  return 0;
}

/* The PATCH's bytes so far made durable: the answer. */
static int patch_end(wd_tus_ctx *t, wd_tus *tx) {
  wd_blob *blob = tx->blob;
  tx->blob = NULL;
  if (tx->write_err) {
    wd_blobs_write_abort(blob);
    wd_blobs_done(t->store, blob);
    return write_failed(t, tx, tx->write_err, "writing a blob");
  }
  int rc = wd_blobs_write_end(t->store, blob, tx->start + tx->received);
  if (rc != 0) {
    wd_blobs_done(t->store, blob);
    return write_failed(t, tx, rc, "syncing a blob");
  }
  t->stats.bytes_in += tx->received;
  wd_debug("blobs: %.8s... at %llu of %llu bytes", blob->hex, (unsigned long long)blob->offset,
           (unsigned long long)blob->length);
  if (blob->offset == blob->length && tx->received)
    wd_info("blobs: %.8s... complete, %llu bytes", blob->hex, (unsigned long long)blob->length);
  tx->has_offset = tx->tus = 1;
  tx->upload_offset = blob->offset;
  wd_blobs_done(t->store, blob);
  return answer(t, tx, 204, NULL);
}

/* A PATCH whose connection went before its body was in: tus asks to keep
 * as much as arrived, so those bytes are made durable and acknowledged
 * (the client finds the offset with HEAD). Nobody hears an answer. */
static void patch_cut(wd_tus_ctx *t, wd_tus *tx) {
  wd_blob *blob = tx->blob;
  tx->blob = NULL;
  int rc = tx->write_err ? tx->write_err : wd_blobs_write_end(t->store, blob, tx->start + tx->received);
  if (tx->write_err) wd_blobs_write_abort(blob);
  if (rc != 0) {
    wd_error("blobs: %.8s...: keeping a cut-off PATCH: %s", blob->hex, strerror(-rc));
    wd_blobs_done(t->store, blob);
    return;
  }
  t->stats.bytes_in += tx->received;
  wd_info("blobs: %.8s...: a PATCH cut off after %llu of %llu bytes; kept, at %llu", blob->hex,
          (unsigned long long)tx->received, (unsigned long long)tx->body_len,
          (unsigned long long)blob->offset);
  wd_blobs_done(t->store, blob);
}

static int do_delete(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *id) {
  wd_blob *blob = own_blob(t, tx, wsi, id);
  if (!blob) return 0;
  if (blob->busy) {
    wd_blobs_done(t->store, blob);
    return refuse(t, tx, 423, "a PATCH is writing this blob");
  }
  char hex[9];
  snprintf(hex, sizeof hex, "%.8s", blob->hex);
  int rc = wd_blobs_delete(t->store, blob); /* frees it when it succeeds */
  if (rc != 0) wd_blobs_done(t->store, blob);
  /* cluster mode: another node writes it, or deleted it meanwhile */
  if (rc == -EBUSY) return refuse(t, tx, 423, "a PATCH is writing this blob");
  if (rc == -ENOENT) return refuse(t, tx, 404, "no such blob");
  if (rc != 0) return write_failed(t, tx, rc, "deleting a blob");
  wd_info("blobs: %s... deleted by its uploader", hex);
  tx->tus = 1;
  return answer(t, tx, 204, NULL);
}

/* Range: bytes=a-b, bytes=a- or bytes=-n of a blob of `len` bytes: 1 with
 * [*from, *to) set, 0 to serve the whole blob (no Range, or one this
 * server ignores: malformed, several ranges), -1 unsatisfiable. */
static int parse_range(const char *v, uint64_t len, uint64_t *from, uint64_t *to) {
  char a[24], b[24];
  const char *dash;
  if (strncmp(v, "bytes=", 6) != 0 || strchr(v, ',') || !(dash = strchr(v + 6, '-'))) return 0;
  size_t an = (size_t)(dash - (v + 6)), bn = strlen(dash + 1);
  if (an >= sizeof a || bn >= sizeof b) return 0;
  memcpy(a, v + 6, an);
  a[an] = 0;
  memcpy(b, dash + 1, bn + 1);
  uint64_t x = 0, y = 0;
  if (an == 0) { /* the last n bytes */
    if (parse_u64(b, &y) != 0) return 0;
    if (y == 0 || len == 0) return -1;
    *from = y >= len ? 0 : len - y;
    *to = len;
    return 1;
  }
  if (parse_u64(a, &x) != 0 || (bn && (parse_u64(b, &y) != 0 || y < x))) return 0;
  if (x >= len) return -1;
  *from = x;
  *to = bn && y < len ? y + 1 : len;
  return 1;
}

/* GET /v1/blobs/<id>: a complete blob, or a range of it. */
static int do_get(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *id) {
  char range[96];
  wd_blob *blob = get_blob(t, tx, id, 0);
  if (!blob) return 0;
  uint64_t from = 0, to = blob->length, length = blob->length;
  if (blob->offset < blob->length) {
    wd_blobs_done(t->store, blob);
    return answer(t, tx, 404, "no such blob");
  }
  int fd = wd_blobs_open_data(t->store, blob);
  wd_blobs_done(t->store, blob);
  int r = 0, n = header(wsi, WSI_TOKEN_HTTP_RANGE, range, sizeof range);
  if (n >= 0) r = parse_range(range, length, &from, &to);
  if (r < 0) {
    if (fd >= 0) close(fd);
    snprintf(tx->content_range, sizeof tx->content_range, "bytes */%llu",
             (unsigned long long)length);
    return answer(t, tx, 416, "the range is past the end of the blob");
  }
  /* cluster mode: deleted by another node since its row was read */
  if (fd == -ENOENT) return answer(t, tx, 404, "no such blob");
  if (fd < 0) return write_failed(t, tx, fd, "reading a blob");
  if (!(tx->buf = malloc(LWS_PRE + CHUNK))) {
    close(fd);
    return answer(t, tx, 500, "out of memory");
  }
  tx->fd = fd;
  tx->pos = from;
  tx->end = to;
  tx->no_store = 1;
  if (r > 0)
    snprintf(tx->content_range, sizeof tx->content_range, "bytes %llu-%llu/%llu",
             (unsigned long long)from, (unsigned long long)to - 1, (unsigned long long)length);
  return answer(t, tx, r > 0 ? 206 : 200, NULL);
}

int wd_tus_path(const char *path) {
  size_t n = strlen(WD_BLOBS_PATH);
  return strncmp(path, WD_BLOBS_PATH, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/* Routes a request on a blob path. */
static int route(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, const char *path) {
  const char *rest = path + strlen(WD_BLOBS_PATH);
  int collection = *rest == 0 || strcmp(rest, "/") == 0;
  const char *id = collection ? "" : rest + 1;
  if (tx->method == M_OPTIONS) return do_options(t, tx);
  if (!t->store) return answer(t, tx, 503, "this server keeps no blobs");
  if (collection) {
    if (tx->method == M_POST) return do_create(t, tx, wsi);
    tx->allow = "OPTIONS, POST";
    return answer(t, tx, 405, "method not allowed");
  }
  switch (tx->method) {
    case M_HEAD:
      return do_head(t, tx, wsi, id);
    case M_PATCH:
      return do_patch(t, tx, wsi, id);
    case M_DELETE:
      return do_delete(t, tx, wsi, id);
    case M_GET:
      return do_get(t, tx, wsi, id);
    default:
      tx->allow = "GET, HEAD, PATCH, DELETE, OPTIONS";
      return answer(t, tx, 405, "method not allowed");
  }
}

int wd_tus_request(wd_tus_ctx *t, struct lws *wsi, const char *path, wd_tus **out) {
  char v[32];
  wd_tus *tx = calloc(1, sizeof *tx);
  *out = tx;
  if (!tx) return -1;
  tx->fd = -1;
  tx->method = method_of(wsi);
  int n = header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, v, sizeof v);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
    /* lws cannot hand us a chunked body: answer and close */
    tx->close_after = 1;
    answer(t, tx, 411, "Content-Length is required (no chunked bodies)");
  } else if (n == -2 || (n >= 0 && parse_u64(v, &tx->body_len) != 0)) {
    tx->close_after = 1;
    answer(t, tx, 400, "a bad Content-Length");
  } else {
    route(t, tx, wsi, path);
  }
  tx->await_body = tx->body_len > 0 && !tx->close_after;
  if (tx->blob && tx->body_len == 0) patch_end(t, tx); /* an empty PATCH */
  if (tx->decided && !tx->await_body) lws_callback_on_writable(wsi);
  return 0;
}

int wd_tus_body(wd_tus_ctx *t, wd_tus *tx, const void *in, size_t len) {
  (void)t;
  if (!tx || !tx->blob || tx->write_err || !len) return 0; /* dropped */
  if (len > tx->body_len - tx->received) len = (size_t)(tx->body_len - tx->received);
  int rc = wd_blobs_write(tx->blob, tx->start + tx->received, in, len);
  if (rc != 0)
    tx->write_err = rc;
  else
    tx->received += len;
  return 0;
}

int wd_tus_body_done(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi) {
  if (!tx) return -1;
  tx->await_body = 0;
  if (tx->blob) patch_end(t, tx);
  if (!tx->decided) answer(t, tx, 500, "no answer"); /* never: every path decides */
  lws_callback_on_writable(wsi);
  return 0;
}

/* --- answering ---------------------------------------------------------------------- */

static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
               unsigned char *end) {
  return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                     (const unsigned char *)value, (int)strlen(value), p, end);
}

static int add_u64(struct lws *wsi, const char *name, uint64_t v, unsigned char **p,
                   unsigned char *end) {
  char num[24];
  snprintf(num, sizeof num, "%llu", (unsigned long long)v);
  return add(wsi, name, num, p, end);
}

/* Whether the answer has a body, and its length. A HEAD's and a 204's
 * have none (and no Content-Length). */
static int body_of(const wd_tus *tx, uint64_t *len) {
  if (tx->method == M_HEAD || tx->status == 204) return 0;
  *len = tx->fd >= 0 ? tx->end - tx->pos : strlen(tx->text);
  return 1;
}

static int write_headers(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi) {
  unsigned char buf[LWS_PRE + 1024];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  uint64_t len = 0;
  int has_body = body_of(tx, &len), bad = lws_add_http_header_status(wsi, tx->status, &p, end);
  if (has_body && (len || tx->fd >= 0))
    bad = bad || add(wsi, "content-type:", tx->fd >= 0 ? "application/octet-stream"
                                                        : "text/plain; charset=utf-8", &p, end);
  if (has_body) bad = bad || lws_add_http_header_content_length(wsi, len, &p, end);
  if (tx->tus) bad = bad || add(wsi, "tus-resumable:", TUS_VERSION, &p, end);
  if (tx->options)
    bad = bad || add(wsi, "tus-version:", TUS_VERSION, &p, end) ||
          add(wsi, "tus-extension:", "creation,termination", &p, end) ||
          add_u64(wsi, "tus-max-size:", t->cfg->server.blob_max_size, &p, end);
  if (tx->has_offset) bad = bad || add_u64(wsi, "upload-offset:", tx->upload_offset, &p, end);
  if (tx->has_length) bad = bad || add_u64(wsi, "upload-length:", tx->upload_length, &p, end);
  if (tx->no_store) bad = bad || add(wsi, "cache-control:", "no-store", &p, end);
  if (tx->location[0]) bad = bad || add(wsi, "location:", tx->location, &p, end);
  if (tx->content_range[0]) bad = bad || add(wsi, "content-range:", tx->content_range, &p, end);
  if (tx->fd >= 0) bad = bad || add(wsi, "accept-ranges:", "bytes", &p, end);
  if (tx->www_auth) bad = bad || add(wsi, "www-authenticate:", "Bearer", &p, end);
  if (tx->allow) bad = bad || add(wsi, "allow:", tx->allow, &p, end);
  if (tx->close_after) bad = bad || add(wsi, "connection:", "close", &p, end);
  if (bad || lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
  tx->sent_headers = 1;
  if (!has_body || len == 0) {
    tx->pos = tx->end = 0;
    tx->text[0] = 0;
  }
  return 0;
}

/* One piece of the blob (at most CHUNK bytes). 0, or -1 to close. */
static int write_blob(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi) {
  size_t n = tx->end - tx->pos > CHUNK ? CHUNK : (size_t)(tx->end - tx->pos);
  ssize_t r;
  do r = pread(tx->fd, tx->buf + LWS_PRE, n, (off_t)tx->pos);
  while (r < 0 && errno == EINTR);
  if (r != (ssize_t)n) {
    wd_error("blobs: reading a blob: %s", r < 0 ? strerror(errno) : "it is shorter than it was");
    return -1;
  }
  int last = tx->pos + n == tx->end;
  int w = lws_write(wsi, tx->buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
  if (w < 0 || (size_t)w < n) return -1;
  tx->pos += n;
  t->stats.bytes_out += n;
  return 0;
}

int wd_tus_writeable(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, int *done) {
  *done = 0;
  if (!tx || !tx->decided || tx->await_body) return 0;
  if (!tx->sent_headers) {
    if (write_headers(t, tx, wsi)) return -1;
  } else if (tx->fd >= 0 && tx->pos < tx->end) {
    if (write_blob(t, tx, wsi)) return -1;
  } else if (tx->text[0]) {
    size_t n = strlen(tx->text);
    unsigned char buf[LWS_PRE + TEXT_MAX];
    memcpy(buf + LWS_PRE, tx->text, n);
    tx->text[0] = 0;
    if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n) return -1;
  }
  if ((tx->fd >= 0 && tx->pos < tx->end) || tx->text[0]) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (tx->close_after) return -1;
  *done = 1;
  return 0;
}

void wd_tus_free(wd_tus_ctx *t, wd_tus *tx) {
  if (!tx) return;
  if (tx->blob) patch_cut(t, tx); /* the connection went in the middle of a PATCH */
  if (tx->fd >= 0) close(tx->fd);
  free(tx->buf);
  free(tx);
}

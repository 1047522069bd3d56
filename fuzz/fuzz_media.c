/*
 * fuzz_media: the engine's attachment jobs (include/whisper/client.h,
 * "media"; src/sync/media.c) against a blob store that says anything.
 *
 * The world, built once per process (fuzz_sync.c's client world, then
 * more): alice.1 logged in against the scripted server (fzs_respond), with
 *  - an upload job: a 200 KiB file (up.bin) sent to bob, encrypted into
 *    media_dir, not uploaded yet (UPLOADING, no blob created, no token);
 *  - a download job: bob's attachment message (a pointer to a blob this
 *    harness encrypted with the real encryptor, 150 KiB of plaintext)
 *    going to dl.bin, nothing fetched yet;
 *  - bob's second attachment (60 KiB, to dl2.bin when the input asks) and
 *    a second file (up2.bin, 70 KiB, sent when the input asks), so that
 *    two jobs of one conversation run side by side (the second pointer has
 *    no incremental MAC: verified whole, then written); and bob's
 *    view-once attachment (20 KiB, to dl3.bin when the input opens it);
 * media_piece 64 KiB, files in a temporary directory. The store is put
 * back after each input (fz_journal), and the files too (media_dir holds
 * the upload's blob again, dl*.bin are removed).
 *
 * An input is a sequence of operations (one byte each, then its
 * parameters; a missing byte reads as 0):
 *  0x00..0x1F  answer a request the engine handed out (whisper_client_
 *              take_http) honestly; the low 5 bits pick it: 0..15 the
 *              k-th (mod count+1; the last: a handle that is no request),
 *              16..23 the oldest upload request, 24..31 the oldest GET
 *  0x20..0x3F  the same pick, answered as the input says: a byte S (low
 *              nibble the status: 0 honest, else 200 201 204 206 401 403
 *              404 409 410 413 416 500 0 507, or 15: two bytes, a signed
 *              status; high nibble the headers: 0 honest, 1 NULL, 2 "",
 *              3 Upload-Offset the honest one plus a signed byte, 4 an
 *              absurd Upload-Offset, 5 a Location variant, 6 raw bytes,
 *              7 honest + raw, 8 raw + honest, 9 "upload-offset:v", 10 LF
 *              line ends, 11 no last CRLF, 12 Upload-Offset the whole
 *              upload's size, 13..15 honest), a byte B (low 3 bits the
 *              body: 0 honest, 1 a byte flipped, 2 cut short, 3 longer, 4
 *              empty, 5 raw bytes, 6 the whole blob, 7 shifted; 0x80: the
 *              blob store does not do what the request asked), then the
 *              parameters those need
 *  0x40..0x5F  the clock moves (a table, 0 ms .. 30 days), then
 *              whisper_client_tick
 *  0x60..0x6F  an UploadToken frame: low 2 bits the token (honest, raw
 *              bytes, none, honest + raw), next 2 the frame id (the
 *              UploadAuth's, 0, the last request's, the UploadAuth's + 1);
 *              then a byte E (expiry, and 0x10: max_size)
 *  0x70..0x77  to the UploadAuth: an Error (a code byte), Ok, an empty
 *              token, a Pong, or raw frame bytes
 *  0x78..0x7F  the connection drops (whisper_client_disconnected)
 *  0x80..0x8F  an app call: media_get of every attachment; download of
 *              the first attachment to dl.bin, or without a path
 *              (WHISPER_EV_MEDIA_DATA), or of the second to dl2.bin or
 *              without a path; send up2.bin, or up.bin again;
 *              view_once_open of the view-once one (to dl3.bin or without
 *              a path), a download of it, a view_once_open of the first
 *              (both EDENIED); send_file of a missing file (ENOTFOUND);
 *              media_dir emptied (as a system clears a cache); up2.bin cut
 *              to half, or removed;
 *              the clock to the engine's next deadline and a tick
 *  0x90..0x9F  the process dies: the engine is freed and made again
 *  0xA0..0xAF  a stored record planted (low 2 bits: "J", the upload's
 *              "M", the download's "M"; 0x04: deleted, else two bytes of
 *              length and the record's bytes), then a restart
 *  0xB0..0xFF  the oldest request (any, upload, GET, any) answered honestly
 * The engine's sync frames are answered by the scripted server, but
 * UploadAuth, which the input answers; the connection comes back when the
 * engine wants it (logged in again by the harness).
 *
 * Asserts, for every input:
 *  - no crash, leak or UB; every call returns a documented code: receive
 *    OK or EINVALIDMSG (which changes nothing, raises nothing, sends
 *    nothing), http_done OK for a request handed out and not yet answered
 *    on this connection, EINVAL for a handle that is no request (else
 *    either), app calls their documented codes; no transaction is left
 *    open;
 *  - every HTTP request is well formed: POST "/v1/blobs", HEAD, PATCH and
 *    GET "/v1/blobs/<[A-Za-z0-9_-]+>"; headers are "Name: value\r\n" lines
 *    with exactly the names the method sends (POST Tus-Resumable,
 *    Upload-Length, Authorization; HEAD Tus-Resumable, Authorization;
 *    PATCH those and Upload-Offset, Content-Type; GET Range), once each,
 *    values without control characters (but HTAB): no CR or LF but the
 *    line ends; Upload-Length and Upload-Offset decimal numbers, Range
 *    "bytes=a-b" with a <= b and at most media_piece bytes; bodies only
 *    with PATCH, at most media_piece;
 *  - the upload's message (a Send with its client id) and its SENT event
 *    come only after an answer to a HEAD or PATCH with status 200 or 204
 *    whose headers hold the blob's size (after a plant: any such answer);
 *  - every sync frame the engine sends is a version-1 request;
 *  - events are whole and consistent; WHISPER_EV_MEDIA has a documented
 *    code with FAILED; WHISPER_EV_MEDIA_DATA stays within its total.
 * And, when no record was planted (the store is the engine's own):
 *  - download and view_once_open return OK, or EDENIED exactly for the
 *    wrong call or a view-once attachment already OPENED;
 *  - a download's DOWNLOADED comes only when the file holds exactly the
 *    plaintext (or, without a path, when WHISPER_EV_MEDIA_DATA gave all
 *    of it, in order, each piece the plaintext's bytes at done_bytes);
 *    after its FAILED the file is gone; after every operation dl*.bin
 *    are absent or a prefix of their plaintext;
 *  - the first upload and bob's downloads fail only after an answer that
 *    was not honest for their blob (a download: to a GET of its blob; the
 *    upload: to any upload request);
 *  - a PATCH to a blob the honest store made for the first upload (its
 *    POST's Upload-Length was that blob's size, and no answer but the
 *    honest one named its id) carries exactly that blob's bytes at its
 *    Upload-Offset, and ends within it; a POST asks for the size of
 *    up.bin's or up2.bin's blob; a GET asks for bob's blobs within their
 *    size; WHISPER_EV_MEDIA's done <= total;
 *  - after the input whisper_client_new succeeds on the store and the
 *    engine logs in (after a plant: a documented code).
 *
 * Planted records name files by absolute path: the harness's directory
 * (/dev/shm/whisper-fuzz-media-XXXXXX, one per process; /tmp/... without
 * /dev/shm) in the input's bytes is rewritten to this process's, and a
 * record naming a path elsewhere (or with "..") is not planted (the
 * engine would write there).
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seeds (hand-made sessions, each run and
 * checked to do what its name says) into DIR.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_sync.h"
#include "sync/sync_internal.h"
#include "whisper/attachment.h"

#define PIECE 65536u
#define UP_SIZE (200u * 1024)
#define UP2_SIZE (70u * 1024 + 11)
#define DL_SIZE (150u * 1024 + 7)
#define DL2_SIZE (60u * 1024 + 3)
#define DL3_SIZE (20u * 1024 + 1) /* the view-once one */
#define NATT 3
#define T_SETUP (FZ_NOW + 5000)
#define T_IN (FZ_NOW + 20000)
#define TOKEN "fzTok_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH-_xyz"
#define DIR_NAME "whisper-fuzz-media-" /* then 6 characters (mkdtemp) */
#define MAX_REQS 16
#define MAX_BLOBS 32
#define MAX_BLOB_LEN (4u << 20) /* the honest store takes no larger blob */

/* --- the world ---------------------------------------------------------------------------- */

typedef struct att {
  const char *blob_id;
  int view_once;
  int two_pass; /* a pointer without an incremental MAC: verified whole, then written */
  uint8_t id[16];
  uint8_t *pt, *blob;
  size_t pt_len, blob_len;
  char path[128];
} att;

static struct {
  int ready;
  fzs_client_world *w;
  char dir[64], media[96], up[96], up2[96], up_tmp[256];
  att dl[NATT];
  uint8_t up_id[16];
  uint8_t *up_blob;
  size_t up_blob_len;
  uint64_t up2_total;
  uint8_t key_up[33], key_dl[33];
  whisper_buf *rec_j, *rec_up, *rec_dl; /* the records as the world has them (seeds) */
  uint64_t server_seq, last_seq;
  int dirty; /* a planted path may have written over up.bin / up2.bin */
} G;

/* --- the input's state ---------------------------------------------------------------------- */

typedef struct req {
  uint64_t handle;
  char method[8];
  char *path, *headers;
  uint8_t *body;
  size_t body_len;
  int fresh; /* handed out by this engine, on this connection, its job not replaced since */
} req;

typedef struct hblob {
  char id[16];
  uint64_t length, len;
  uint8_t *data;
  int owner; /* 1: made for the first upload (its size) */
  int lied;  /* its Location was given to another request too */
} hblob;

static struct {
  fz_dev *d;
  whisper_client *c;
  uint64_t now;
  int connected;
  uint64_t last_id;
  uint64_t pending_auth; /* the UploadAuth waiting for the input's answer */
  uint64_t last_req_id;
  int planted;
  int acked_strong, acked_weak;
  int up_tainted, dl_tainted[NATT];
  int dl_mode[NATT];      /* 0 no job, 1 to its file, 2 events */
  uint64_t dl_next[NATT]; /* events: the next plaintext offset */
  int opened;             /* the view-once attachment was opened (its key is gone) */
  int up2_cut, up2_gone;  /* up2.bin was cut to half, removed */
  int owner_off;       /* two jobs of the first upload's size: no owner check */
  req reqs[MAX_REQS];
  int nreq;
  uint64_t max_handle;
  hblob blobs[MAX_BLOBS];
  int nblobs;
  int next_blob;            /* the next blob id (fzupNN): an id handed out is never made again */
  uint8_t named[100];       /* ids a dishonest answer named: whose is whose is not known */
  unsigned long sum;
  /* what happened (seed checks) */
  int n_sent_up, n_up_sent_ev, n_up_failed, n_dl_done[NATT], n_dl_failed[NATT], n_patch, n_head,
      n_post, n_get, n_token, n_data[NATT], n_get_corrupt, n_opened, n_denied;
} H;

typedef struct cur {
  const uint8_t *p;
  size_t n, i;
} cur;

static uint8_t u8(cur *c) { return c->i < c->n ? c->p[c->i++] : 0; }
static uint16_t u16(cur *c) {
  uint16_t v = (uint16_t)(u8(c) << 8);
  return (uint16_t)(v | u8(c));
}
/* up to n bytes (fewer if the input ends) */
static const uint8_t *take(cur *c, size_t n, size_t *got) {
  if (n > c->n - c->i) n = c->n - c->i;
  const uint8_t *p = c->p + c->i;
  c->i += n;
  *got = n;
  return p;
}

/* --- small things --------------------------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  FZ_ASSERT(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* The whole file (NULL if none); *n its length. */
static uint8_t *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, len = 0;
  uint8_t *p = malloc(cap);
  FZ_ASSERT(p != NULL, "out of memory");
  size_t k;
  while ((k = fread(p + len, 1, cap - len, f)) > 0) {
    len += k;
    if (len == cap) {
      cap *= 2;
      p = realloc(p, cap);
      FZ_ASSERT(p != NULL, "out of memory");
    }
  }
  fclose(f);
  *n = len;
  return p;
}

/* A documented code (every WHISPER_E* code, see fz_rc_known()). */
static int rc_known(int rc) { return fz_rc_known(rc); }

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* The file at path holds a prefix of pt (whole: exactly pt); absent counts
 * as the empty prefix unless whole. */
static int file_is(const char *path, const uint8_t *pt, size_t n, int whole) {
  static uint8_t buf[1 << 16];
  FILE *f = fopen(path, "rb");
  if (f == NULL) return !whole;
  size_t at = 0, k;
  int ok = 1;
  while (ok && (k = fread(buf, 1, sizeof buf, f)) > 0) {
    ok = k <= n - at && memcmp(buf, pt + at, k) == 0;
    at += k;
  }
  fclose(f);
  return ok && (!whole || at == n);
}

static void after_call(const char *what) {
  FZ_ASSERT(!H.d->fs.outer->depth, "%s left a store transaction open", what);
  FZ_ASSERT(H.d->ctx->store == H.d->fs.outer, "%s left the context on the engine's shim", what);
}

/* Whether a line of h (split at CRLF, as the engine splits them) named
 * Upload-Offset (any case) holds the decimal number v: what the engine
 * needs to read v there. */
static int offset_line_has(const char *h, uint64_t v) {
  char num[32];
  snprintf(num, sizeof num, "%llu", (unsigned long long)v);
  for (const char *p = h; p && *p;) {
    const char *e = strstr(p, "\r\n");
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l > 13 && strncasecmp(p, "Upload-Offset", 13) == 0 && p[13] == ':') {
      size_t nl = strlen(num);
      for (size_t i = 14; i + nl <= l; i++)
        if (memcmp(p + i, num, nl) == 0) return 1;
    }
    p = e ? e + 2 : NULL;
  }
  return 0;
}

/* --- the checks of what the engine sends ------------------------------------------------------ */

static int id_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_';
}

static int blob_path_ok(const char *p) {
  if (strncmp(p, "/v1/blobs/", 10) != 0 || p[10] == 0) return 0;
  for (const char *s = p + 10; *s; s++)
    if (!id_char(*s)) return 0;
  return 1;
}

/* A decimal number as the engine writes one: digits, no leading zero, fits. */
static int dec_ok(const char *v, size_t n, uint64_t *out) {
  if (n == 0 || n > 20 || (n > 1 && v[0] == '0')) return 0;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return 0;
    unsigned d = (unsigned)(v[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return 0;
    x = x * 10 + d;
  }
  *out = x;
  return 1;
}

typedef struct hdrs {
  uint64_t upload_length, upload_offset, range_a, range_b;
  int has_length, has_offset, has_range;
} hdrs;

static void check_headers(const char *method, const char *h, hdrs *out) {
  static const char *const post[] = {"Tus-Resumable", "Upload-Length", "Authorization", NULL};
  static const char *const head[] = {"Tus-Resumable", "Authorization", NULL};
  static const char *const patch[] = {"Tus-Resumable", "Upload-Offset", "Content-Type",
                                      "Authorization", NULL};
  static const char *const get[] = {"Range", NULL};
  const char *const *names = strcmp(method, "POST") == 0    ? post
                             : strcmp(method, "HEAD") == 0  ? head
                             : strcmp(method, "PATCH") == 0 ? patch
                                                            : get;
  int seen[5] = {0};
  memset(out, 0, sizeof *out);
  FZ_ASSERT(h != NULL, "a %s request without headers", method);
  for (const char *p = h; *p;) {
    const char *eol = strstr(p, "\r\n");
    FZ_ASSERT(eol != NULL, "%s headers: a line without CRLF: \"%s\"", method, p);
    size_t len = (size_t)(eol - p);
    for (size_t i = 0; i < len; i++) {
      unsigned char ch = (unsigned char)p[i];
      FZ_ASSERT(ch != '\r' && ch != '\n', "%s headers: a bare CR or LF in \"%.*s\"", method, (int)len,
                p);
      FZ_ASSERT(ch >= 0x20 || ch == '\t', "%s headers: control byte 0x%02x in a line", method, ch);
      FZ_ASSERT(ch != 0x7f, "%s headers: DEL in a line", method);
    }
    const char *colon = memchr(p, ':', len);
    FZ_ASSERT(colon != NULL, "%s headers: a line without a colon: \"%.*s\"", method, (int)len, p);
    size_t nl = (size_t)(colon - p);
    int k = -1;
    for (int i = 0; names[i]; i++)
      if (strlen(names[i]) == nl && memcmp(names[i], p, nl) == 0) k = i;
    FZ_ASSERT(k >= 0, "%s headers: a header \"%.*s\" the engine does not send", method, (int)len, p);
    FZ_ASSERT(!seen[k], "%s headers: %s twice", method, names[k]);
    seen[k] = 1;
    FZ_ASSERT(colon[1] == ' ', "%s headers: no space after %s:", method, names[k]);
    const char *v = colon + 2;
    size_t vl = len - nl - 2;
    if (strcmp(names[k], "Tus-Resumable") == 0) {
      FZ_ASSERT(vl == 5 && memcmp(v, "1.0.0", 5) == 0, "Tus-Resumable: %.*s", (int)vl, v);
    } else if (strcmp(names[k], "Upload-Length") == 0) {
      FZ_ASSERT(dec_ok(v, vl, &out->upload_length), "Upload-Length: %.*s", (int)vl, v);
      out->has_length = 1;
    } else if (strcmp(names[k], "Upload-Offset") == 0) {
      FZ_ASSERT(dec_ok(v, vl, &out->upload_offset), "Upload-Offset: %.*s", (int)vl, v);
      out->has_offset = 1;
    } else if (strcmp(names[k], "Content-Type") == 0) {
      FZ_ASSERT(vl == 31 && memcmp(v, "application/offset+octet-stream", 31) == 0,
                "Content-Type: %.*s", (int)vl, v);
    } else if (strcmp(names[k], "Authorization") == 0) {
      FZ_ASSERT(vl > 7 && memcmp(v, "Bearer ", 7) == 0, "Authorization: %.*s", (int)vl, v);
    } else { /* Range */
      const char *dash = vl > 6 && memcmp(v, "bytes=", 6) == 0 ? memchr(v + 6, '-', vl - 6) : NULL;
      FZ_ASSERT(dash && dec_ok(v + 6, (size_t)(dash - v - 6), &out->range_a) &&
                    dec_ok(dash + 1, (size_t)(v + vl - dash - 1), &out->range_b) &&
                    out->range_a <= out->range_b && out->range_b - out->range_a < PIECE,
                "Range: %.*s", (int)vl, v);
      out->has_range = 1;
    }
    p = eol + 2;
  }
  for (int i = 0; names[i]; i++) FZ_ASSERT(seen[i], "a %s request without %s", method, names[i]);
}

static hblob *blob_by_path(const char *path) {
  if (strncmp(path, "/v1/blobs/", 10) != 0) return NULL;
  for (int i = 0; i < H.nblobs; i++)
    if (strcmp(H.blobs[i].id, path + 10) == 0) return &H.blobs[i];
  return NULL;
}

static int dl_by_path(const char *path) {
  for (int k = 0; k < NATT; k++)
    if (strncmp(path, "/v1/blobs/", 10) == 0 && strcmp(path + 10, G.dl[k].blob_id) == 0) return k;
  return -1;
}

static void check_request(const whisper_http_request_t *r) {
  FZ_ASSERT(r->handle != 0, "a request with handle 0");
  FZ_ASSERT(r->method && r->path, "a request without method or path");
  int post = strcmp(r->method, "POST") == 0, head = strcmp(r->method, "HEAD") == 0,
      patch = strcmp(r->method, "PATCH") == 0, get = strcmp(r->method, "GET") == 0;
  FZ_ASSERT(post || head || patch || get, "a request of method \"%s\"", r->method);
  FZ_ASSERT(post ? strcmp(r->path, "/v1/blobs") == 0 : blob_path_ok(r->path),
            "a %s request to \"%s\"", r->method, r->path);
  FZ_ASSERT(r->body != NULL || r->body_len == 0, "a body of %zu bytes at NULL", r->body_len);
  FZ_ASSERT(patch || r->body_len == 0, "a %s request with a body of %zu bytes", r->method,
            r->body_len);
  FZ_ASSERT(r->body_len <= PIECE, "a PATCH of %zu bytes (media_piece %u)", r->body_len, PIECE);
  hdrs h;
  check_headers(r->method, r->headers, &h);
  if (fz_verbose())
    fprintf(stderr, "    http %llu %s %s (%zu bytes) %s", (unsigned long long)r->handle, r->method,
            r->path, r->body_len, r->headers);
  H.n_post += post;
  H.n_head += head;
  H.n_patch += patch;
  H.n_get += get;
  if (H.planted) return;
  /* the engine's own jobs: what they can ask for */
  if (post)
    FZ_ASSERT(h.upload_length == G.up_blob_len || h.upload_length == G.up2_total ||
                  (H.up2_cut && h.upload_length == whisper_attachment_blob_size(UP2_SIZE / 2)),
              "a POST for a blob of %llu bytes", (unsigned long long)h.upload_length);
  if (get) {
    int k = dl_by_path(r->path);
    FZ_ASSERT(k >= 0, "a GET of %s, no blob of bob's", r->path);
    FZ_ASSERT(h.range_b < G.dl[k].blob_len, "a GET of bytes %llu-%llu of a %zu-byte blob",
              (unsigned long long)h.range_a, (unsigned long long)h.range_b, G.dl[k].blob_len);
  }
  if (patch && !H.owner_off) {
    hblob *b = blob_by_path(r->path);
    if (b && b->owner == 1 && !b->lied) {
      FZ_ASSERT(h.upload_offset <= G.up_blob_len && r->body_len <= G.up_blob_len - h.upload_offset,
                "a PATCH of %zu bytes at %llu to a %zu-byte blob", r->body_len,
                (unsigned long long)h.upload_offset, G.up_blob_len);
      FZ_ASSERT(r->body_len == 0 || memcmp(r->body, G.up_blob + h.upload_offset, r->body_len) == 0,
                "a PATCH at %llu carries bytes that are not the upload's blob",
                (unsigned long long)h.upload_offset);
    }
  }
}

static void req_free(req *q) {
  free(q->path);
  free(q->headers);
  free(q->body);
  memset(q, 0, sizeof *q);
}

static void reqs_drop(int k) {
  req_free(&H.reqs[k]);
  memmove(&H.reqs[k], &H.reqs[k + 1], (size_t)(H.nreq - k - 1) * sizeof H.reqs[0]);
  H.nreq--;
  memset(&H.reqs[H.nreq], 0, sizeof H.reqs[0]);
}

static void reqs_clear(void) {
  while (H.nreq) reqs_drop(H.nreq - 1);
}

static char *dup_str(const char *s) {
  char *d = strdup(s ? s : "");
  FZ_ASSERT(d != NULL, "out of memory");
  return d;
}

/* Takes every request the engine has for the app. */
static int take_http(void) {
  whisper_http_request_t r = WHISPER_HTTP_REQUEST_INIT;
  int n = 0;
  while (H.c && whisper_client_take_http(H.c, &r) > 0) {
    after_call("take_http");
    check_request(&r);
    FZ_ASSERT(r.handle > H.max_handle, "handle %llu after %llu", (unsigned long long)r.handle,
              (unsigned long long)H.max_handle);
    H.max_handle = r.handle;
    if (H.nreq == MAX_REQS) reqs_drop(0); /* the app gave up on the oldest */
    req *q = &H.reqs[H.nreq++];
    q->handle = r.handle;
    snprintf(q->method, sizeof q->method, "%s", r.method);
    q->path = dup_str(r.path);
    q->headers = dup_str(r.headers);
    q->body = malloc(r.body_len ? r.body_len : 1);
    FZ_ASSERT(q->body != NULL, "out of memory");
    if (r.body_len) memcpy(q->body, r.body, r.body_len);
    q->body_len = r.body_len;
    q->fresh = 1;
    n++;
  }
  return n;
}

/* --- sync frames ------------------------------------------------------------------------------- */

static void read_str(const char *s) {
  if (s) H.sum += strlen(s);
}

static void read_bytes(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) H.sum += p[i];
}

static int which_att(const whisper_client_event_t *e) {
  if (e->id == NULL || e->id_len != 16) return -2;
  if (e->from == NULL && memcmp(e->id, G.up_id, 16) == 0) return -1;
  for (int k = 0; k < NATT; k++)
    if (e->from && strcmp(e->from, "bob") == 0 && memcmp(e->id, G.dl[k].id, 16) == 0) return k;
  return -2;
}

static void on_media(const whisper_client_event_t *e) {
  FZ_ASSERT(e->status >= WHISPER_MEDIA_ENCRYPTING && e->status <= WHISPER_MEDIA_FAILED,
            "EV_MEDIA with status %d", e->status);
  FZ_ASSERT(e->conversation && e->id && e->id_len > 0, "EV_MEDIA without its message");
  if (!H.planted) /* (a planted total may be anything) */
    FZ_ASSERT(e->done_bytes <= e->total_bytes, "EV_MEDIA at %llu of %llu bytes",
              (unsigned long long)e->done_bytes, (unsigned long long)e->total_bytes);
  if (e->status == WHISPER_MEDIA_FAILED)
    FZ_ASSERT(e->code < 0 && rc_known(e->code), "EV_MEDIA FAILED with code %d", e->code);
  int k = which_att(e);
  if (k == -1) {
    H.n_up_sent_ev += e->status == WHISPER_MEDIA_SENT;
    H.n_up_failed += e->status == WHISPER_MEDIA_FAILED;
  }
  if (k >= 0) {
    H.n_dl_done[k] += e->status == WHISPER_MEDIA_DOWNLOADED;
    H.n_dl_failed[k] += e->status == WHISPER_MEDIA_FAILED;
    H.n_opened += e->status == WHISPER_MEDIA_OPENED;
    if (e->status == WHISPER_MEDIA_OPENED) H.opened = 1;
  }
  if (H.planted) {
    if (k == -1 && e->status == WHISPER_MEDIA_SENT)
      FZ_ASSERT(H.acked_weak, "the upload is SENT, but no HEAD or PATCH got 200 or 204");
    return;
  }
  if (k == -1) {
    FZ_ASSERT(e->status == WHISPER_MEDIA_ENCRYPTING || e->status == WHISPER_MEDIA_UPLOADING ||
                  e->status == WHISPER_MEDIA_SENT || e->status == WHISPER_MEDIA_FAILED,
              "the upload's EV_MEDIA with status %d", e->status);
    if (e->status == WHISPER_MEDIA_SENT)
      FZ_ASSERT(H.acked_strong, "the upload is SENT before the store said it holds its %zu bytes",
                G.up_blob_len);
    if (e->status == WHISPER_MEDIA_FAILED)
      FZ_ASSERT(H.up_tainted, "the upload FAILED (%d) though the blob store answered honestly",
                e->code);
  } else if (k >= 0) {
    const att *a = &G.dl[k];
    FZ_ASSERT(e->status == WHISPER_MEDIA_DOWNLOADING || e->status == WHISPER_MEDIA_DOWNLOADED ||
                  e->status == WHISPER_MEDIA_FAILED ||
                  (a->view_once && e->status == WHISPER_MEDIA_OPENED),
              "download %d: EV_MEDIA with status %d", k, e->status);
    FZ_ASSERT(H.dl_mode[k] != 0, "download %d: EV_MEDIA without a job", k);
    if (e->status == WHISPER_MEDIA_DOWNLOADED) {
      if (H.dl_mode[k] == 1)
        FZ_ASSERT(file_is(a->path, a->pt, a->pt_len, 1),
                  "download %d: DOWNLOADED, but %s is not the plaintext", k, a->path);
      else
        FZ_ASSERT(H.dl_next[k] == a->pt_len,
                  "download %d: DOWNLOADED after %llu of %zu bytes of plaintext", k,
                  (unsigned long long)H.dl_next[k], a->pt_len);
    }
    if (e->status == WHISPER_MEDIA_FAILED) {
      if (H.dl_mode[k] == 1)
        FZ_ASSERT(!exists(a->path), "download %d FAILED (%d) and left %s", k, e->code, a->path);
      FZ_ASSERT(H.dl_tainted[k], "download %d FAILED (%d) though the blob store answered honestly",
                k, e->code);
    }
  }
}

static void on_media_data(const whisper_client_event_t *e) {
  FZ_ASSERT(e->body != NULL && e->body_len > 0, "EV_MEDIA_DATA without bytes");
  FZ_ASSERT(e->done_bytes <= e->total_bytes && e->body_len <= e->total_bytes - e->done_bytes,
            "EV_MEDIA_DATA of %zu bytes at %llu of %llu", e->body_len,
            (unsigned long long)e->done_bytes, (unsigned long long)e->total_bytes);
  int k = which_att(e);
  if (k >= 0) H.n_data[k]++;
  if (H.planted) return;
  FZ_ASSERT(k >= 0 && H.dl_mode[k] == 2, "EV_MEDIA_DATA for no download without a path");
  const att *a = &G.dl[k];
  FZ_ASSERT(e->total_bytes == a->pt_len, "EV_MEDIA_DATA of a %llu-byte plaintext (%zu)",
            (unsigned long long)e->total_bytes, a->pt_len);
  FZ_ASSERT(e->done_bytes == H.dl_next[k], "EV_MEDIA_DATA at %llu, the next byte is %llu",
            (unsigned long long)e->done_bytes, (unsigned long long)H.dl_next[k]);
  FZ_ASSERT(memcmp(e->body, a->pt + e->done_bytes, e->body_len) == 0,
            "EV_MEDIA_DATA at %llu: bytes that are not the plaintext", (unsigned long long)e->done_bytes);
  H.dl_next[k] += e->body_len;
}

static size_t drain_events(void) {
  whisper_client_event_t e;
  size_t n = 0;
  while (H.c && whisper_client_take_event(H.c, &e)) {
    n++;
    if (fz_verbose())
      fprintf(stderr, "    event %d conv=%s from=%s status=%d code=%d/%d done=%llu/%llu %s\n", e.type,
              e.conversation ? e.conversation : "", e.from ? e.from : "", e.status, e.code,
              e.server_code, (unsigned long long)e.done_bytes, (unsigned long long)e.total_bytes,
              e.message ? e.message : "");
    FZ_ASSERT(e.type >= WHISPER_EV_REGISTERED && e.type <= WHISPER_EV_CATCHING_UP, "event type %d",
              e.type);
    read_str(e.conversation);
    read_str(e.from);
    read_str(e.message);
    FZ_ASSERT((e.id == NULL) == (e.id_len == 0), "an event id %p of %zu bytes", (void *)e.id, e.id_len);
    if (e.id) read_bytes(e.id, e.id_len);
    FZ_ASSERT(e.body != NULL || e.body_len == 0, "an event body of %zu bytes at NULL", e.body_len);
    if (e.body) read_bytes(e.body, e.body_len);
    if (e.type == WHISPER_EV_ERROR || e.type == WHISPER_EV_REFUSED)
      FZ_ASSERT(e.code < 0 && rc_known(e.code), "event %d with code %d", e.type, e.code);
    if (e.type == WHISPER_EV_MEDIA) on_media(&e);
    if (e.type == WHISPER_EV_MEDIA_DATA) on_media_data(&e);
  }
  return n;
}

/* A frame the engine sent: a version-1 request; the upload's message only
 * once the store said it holds the blob. */
static fzs_frame *check_frame(const whisper_buf *b) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  FZ_ASSERT(f != NULL, "the engine sent %zu bytes that are not a Frame", b->len);
  FZ_ASSERT(f->has_version && f->version == 1, "the engine sent version %u", f->version);
  FZ_ASSERT(fzs_is_request(f->body_case), "the engine sent a %s", fzs_body_name(f->body_case));
  FZ_ASSERT(f->has_id && f->id > H.last_id, "the engine sent id %llu after %llu",
            (unsigned long long)f->id, (unsigned long long)H.last_id);
  H.last_id = f->id;
  H.last_req_id = f->id;
  if (fz_verbose())
    fprintf(stderr, "    engine -> %s id %llu\n", fzs_body_name(f->body_case), (unsigned long long)f->id);
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_SEND && f->send->has_client_id &&
      f->send->client_id.len == 16 && memcmp(f->send->client_id.data, G.up_id, 16) == 0) {
    H.n_sent_up++;
    if (H.planted)
      FZ_ASSERT(H.acked_weak, "the upload's message went out, but no HEAD or PATCH got 200 or 204");
    else
      FZ_ASSERT(H.acked_strong, "the upload's message went out before the store said it holds the "
                                "blob's %zu bytes", G.up_blob_len);
  }
  return f;
}

static void feed_ok(whisper_buf *b) {
  int rc = whisper_client_receive(H.c, b->data, b->len, H.now);
  after_call("receive");
  FZ_ASSERT(rc == WHISPER_OK, "the scripted server's answer refused: %d (%s)", rc,
            whisper_ctx_last_error(H.d->ctx));
  whisper_buf_free(b);
}

/* bob's device list (device 1), signed by bob.1 (his account key), as
 * fuzz_sync.c's device_list() makes one: the engine takes messages only
 * from devices on a signed list. */
static whisper_buf *bob_devices(uint64_t id) {
  static const char ctx_str[] = "whisper-devices-v1";
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  fz_dev *bob = G.w->bob;
  FZ_ASSERT(whisper_bundle_generate(bob->ctx, 0, &b) == WHISPER_OK, "bundle_make");
  Whisper__E2e__ListedDevice ld = WHISPER__E2E__LISTED_DEVICE__INIT, *ldp = &ld;
  ld.has_device_id = ld.has_identity_key = 1;
  ld.device_id = 1;
  ld.identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.identity_key};
  Whisper__E2e__DeviceListBody lb = WHISPER__E2E__DEVICE_LIST_BODY__INIT;
  lb.account = "bob";
  lb.has_version = 1;
  lb.version = 1;
  lb.n_devices = 1;
  lb.devices = &ldp;
  uint8_t body[256], msg[sizeof ctx_str + 256], sig[WHISPER_SIGNATURE_LEN];
  size_t bn = whisper__e2e__device_list_body__get_packed_size(&lb);
  FZ_ASSERT(bn <= sizeof body, "device list body");
  whisper__e2e__device_list_body__pack(&lb, body);
  memcpy(msg, ctx_str, sizeof ctx_str - 1);
  memcpy(msg + sizeof ctx_str - 1, body, bn);
  FZ_ASSERT(wh_local_identity(bob->ctx) == WHISPER_OK, "identity");
  FZ_ASSERT(whisper_sign(bob->ctx, bob->ctx->identity.priv, msg, sizeof ctx_str - 1 + bn, sig) ==
                WHISPER_OK,
            "sign");
  Whisper__E2e__SignedDeviceList sl = WHISPER__E2E__SIGNED_DEVICE_LIST__INIT;
  sl.has_body = sl.has_signature = 1;
  sl.body = (ProtobufCBinaryData){bn, body};
  sl.signature = (ProtobufCBinaryData){sizeof sig, sig};
  uint8_t list[512];
  size_t ln = whisper__e2e__signed_device_list__get_packed_size(&sl);
  FZ_ASSERT(ln <= sizeof list, "device list");
  whisper__e2e__signed_device_list__pack(&sl, list);
  uint32_t ids[1] = {1};
  Whisper__Sync__Devices d = WHISPER__SYNC__DEVICES__INIT;
  d.account = "bob";
  d.n_device_ids = 1;
  d.device_ids = ids;
  d.has_signed_list = 1;
  d.signed_list = (ProtobufCBinaryData){ln, list};
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DEVICES;
  f.devices = &d;
  return fzs_pack(&f, id);
}

/* Answers the engine's sync frames (the scripted server; UploadAuth waits
 * for the input). */
static int pump(void) {
  int moved = 0;
  for (int guard = 0; guard < 400 && H.c && H.connected; guard++) {
    whisper_buf *b;
    if (!whisper_client_take_frame(H.c, &b)) return moved;
    moved = 1;
    fzs_frame *f = check_frame(b);
    whisper_buf_free(b);
    whisper_buf *out[4] = {NULL};
    int n = 0;
    switch (f->body_case) {
      case WHISPER__SYNC__FRAME__BODY_HELLO:
        out[0] = fzs_challenge();
        n = 1;
        break;
      case WHISPER__SYNC__FRAME__BODY_AUTH:
        out[0] = fzs_ok(f->id, 1);
        n = 1;
        break;
      case WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH:
        H.pending_auth = f->id;
        break;
      case WHISPER__SYNC__FRAME__BODY_LIST_DEVICES:
        if (f->list_devices->account && strcmp(f->list_devices->account, "bob") == 0) {
          out[0] = bob_devices(f->id);
          n = 1;
          break;
        }
        n = fzs_respond(G.w, f, out);
        break;
      default:
        n = fzs_respond(G.w, f, out);
        break;
    }
    fzs_frame_free(f);
    for (int i = 0; i < n; i++) {
      if (H.c && H.connected) feed_ok(out[i]);
      else whisper_buf_free(out[i]);
    }
    drain_events();
  }
  FZ_ASSERT(!H.c || !H.connected, "the engine and the scripted server never went quiet");
  return moved;
}

static void disconnect(void) {
  whisper_client_disconnected(H.c, H.now);
  after_call("disconnected");
  H.connected = 0;
  H.pending_auth = 0;
  for (int i = 0; i < H.nreq; i++) H.reqs[i].fresh = 0; /* their answers are dropped */
  whisper_buf *b;
  FZ_ASSERT(!whisper_client_take_frame(H.c, &b), "a frame to take after the connection closed");
  whisper_http_request_t r = WHISPER_HTTP_REQUEST_INIT;
  FZ_ASSERT(whisper_client_take_http(H.c, &r) == 0, "an HTTP request to take while not logged in");
}

/* Files: the downloads hold only verified plaintext. A file is read again
 * when stat() says it changed (or always, with `all`). */
static void check_files_all(int all) {
  static struct stat seen[NATT];
  if (H.planted) return;
  for (int k = 0; k < NATT; k++) {
    struct stat st;
    if (stat(G.dl[k].path, &st) != 0) {
      memset(&seen[k], 0, sizeof seen[k]);
      continue;
    }
    if (!all && st.st_ino == seen[k].st_ino && st.st_size == seen[k].st_size &&
        st.st_mtim.tv_sec == seen[k].st_mtim.tv_sec && st.st_mtim.tv_nsec == seen[k].st_mtim.tv_nsec &&
        st.st_ctim.tv_sec == seen[k].st_ctim.tv_sec && st.st_ctim.tv_nsec == seen[k].st_ctim.tv_nsec)
      continue;
    FZ_ASSERT(file_is(G.dl[k].path, G.dl[k].pt, G.dl[k].pt_len, 0),
              "%s is not a prefix of the plaintext", G.dl[k].path);
    seen[k] = st;
  }
}

static void check_files(void) { check_files_all(0); }

/* Until nothing moves: the connection as the engine wants it, its frames
 * answered, its requests and events taken. */
static void settle(void) {
  for (int round = 0; round < 64 && H.c; round++) {
    int moved = 0;
    if (H.connected && whisper_client_want_disconnect(H.c)) {
      disconnect();
      moved = 1;
    }
    if (!H.connected && whisper_client_want_connect(H.c, H.now)) {
      int rc = whisper_client_connected(H.c, H.now);
      after_call("connected");
      FZ_ASSERT(rc == WHISPER_OK, "connected: %d", rc);
      H.connected = 1;
      H.last_id = 0;
      moved = 1;
    }
    moved |= pump();
    moved |= take_http() > 0;
    drain_events();
    if (!moved) break;
  }
  (void)whisper_client_next_deadline(H.c);
  check_files();
}

/* Makes the engine from the store; 0 if that failed (after a plant). */
static int engine_new(void) {
  H.c = NULL;
  int rc = whisper_client_new(&H.c, H.d->ctx, &G.w->cfg);
  after_call("client_new");
  if (H.planted) {
    FZ_ASSERT(rc_known(rc) && (rc == WHISPER_OK) == (H.c != NULL),
              "whisper_client_new on planted records: %d", rc);
  } else {
    FZ_ASSERT(rc == WHISPER_OK, "whisper_client_new fails on the engine's own store: %d (%s)", rc,
              whisper_ctx_last_error(H.d->ctx));
  }
  if (fz_verbose()) fprintf(stderr, "  client_new: %d\n", rc);
  H.connected = 0;
  H.last_id = 0;
  H.max_handle = 0;
  H.pending_auth = 0;
  reqs_clear();
  H.dl_next[0] = H.dl_next[1] = 0; /* the plaintext comes again from its first byte */
  if (rc != WHISPER_OK) {
    H.c = NULL;
    return 0;
  }
  drain_events();
  settle();
  return 1;
}

static void crash(void) {
  if (fz_verbose()) fprintf(stderr, "  crash\n");
  whisper_client_free(H.c);
  H.c = NULL;
  FZ_ASSERT(H.d->ctx->store == H.d->fs.outer, "the context is left on the engine's shim");
  engine_new();
}

/* --- the honest blob store ---------------------------------------------------------------------- */

typedef struct answer {
  int status;
  char *hdr;        /* malloc'd; NULL: none */
  uint8_t *body;    /* malloc'd */
  size_t body_len;
  uint64_t offset;  /* Upload-Offset in the honest answer (has_offset) */
  int has_offset, has_location;
  char location[32];
} answer;

static void ans_hdr(answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ans_hdr(answer *a, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  size_t old = a->hdr ? strlen(a->hdr) : 0, n = strlen(line);
  a->hdr = realloc(a->hdr, old + n + 1);
  FZ_ASSERT(a->hdr != NULL, "out of memory");
  memcpy(a->hdr + old, line, n + 1);
}

static void ans_body(answer *a, const uint8_t *p, size_t n) {
  free(a->body);
  a->body = malloc(n ? n : 1);
  FZ_ASSERT(a->body != NULL, "out of memory");
  if (n) memcpy(a->body, p, n);
  a->body_len = n;
}

static int hdr_val(const char *h, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = h; p && *p;) {
    const char *e = strstr(p, "\r\n");
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') v++;
      size_t vl = l - (size_t)(v - p);
      if (vl >= cap) return 0;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 1;
    }
    p = e ? e + 2 : NULL;
  }
  return 0;
}

/* The bytes blob `path` has (whole blobs only), or NULL. */
static const uint8_t *blob_bytes(const char *path, size_t *len) {
  int k = dl_by_path(path);
  if (k >= 0) {
    *len = G.dl[k].blob_len;
    return G.dl[k].blob;
  }
  hblob *b = blob_by_path(path);
  if (b && b->len == b->length) {
    *len = (size_t)b->len;
    return b->data;
  }
  return NULL;
}

/* What an honest blob store answers (and does, when `apply`). */
static void honest(const req *r, int apply, answer *a) {
  char v[600];
  memset(a, 0, sizeof *a);
  if (strcmp(r->method, "GET") == 0) {
    size_t have = 0;
    const uint8_t *data = blob_bytes(r->path, &have);
    if (data == NULL) {
      a->status = 404;
      return;
    }
    unsigned long long x = 0, z = have ? have - 1 : 0;
    if (hdr_val(r->headers, "Range", v, sizeof v) && sscanf(v, "bytes=%llu-%llu", &x, &z) < 1) {
      a->status = 400;
      return;
    }
    if (x >= have) {
      a->status = 416;
      ans_hdr(a, "Content-Range: bytes */%zu\r\n", have);
      return;
    }
    if (z >= have) z = have - 1;
    a->status = 206;
    ans_hdr(a, "Content-Range: bytes %llu-%llu/%zu\r\n", x, z, have);
    ans_body(a, data + x, (size_t)(z - x + 1));
    return;
  }
  if (!hdr_val(r->headers, "Authorization", v, sizeof v) || strcmp(v, "Bearer " TOKEN) != 0) {
    a->status = 401;
    return;
  }
  if (strcmp(r->method, "POST") == 0) {
    uint64_t length;
    if (!hdr_val(r->headers, "Upload-Length", v, sizeof v) || !dec_ok(v, strlen(v), &length)) {
      a->status = 400;
      return;
    }
    if (length > MAX_BLOB_LEN) {
      a->status = 413;
      return;
    }
    if (H.nblobs == MAX_BLOBS) {
      a->status = 500;
      return;
    }
    if (H.next_blob == 100) {
      a->status = 500;
      return;
    }
    hblob *b = &H.blobs[H.nblobs];
    char id[16];
    snprintf(id, sizeof id, "fzup%02d", H.next_blob++);
    a->status = 201;
    a->has_location = 1;
    snprintf(a->location, sizeof a->location, "%s", id);
    ans_hdr(a, "Location: /v1/blobs/%s\r\nTus-Resumable: 1.0.0\r\n", id);
    if (!apply) return;
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->length = length;
    b->data = malloc(length ? (size_t)length : 1);
    FZ_ASSERT(b->data != NULL, "out of memory");
    b->owner = length == G.up_blob_len ? 1 : 0;
    b->lied = H.named[H.next_blob - 1];
    H.nblobs++;
    return;
  }
  hblob *b = blob_by_path(r->path);
  if (b == NULL) {
    a->status = 404;
    return;
  }
  if (strcmp(r->method, "HEAD") == 0) {
    a->status = 200;
    a->has_offset = 1;
    a->offset = b->len;
    ans_hdr(a, "Upload-Offset: %llu\r\nUpload-Length: %llu\r\nTus-Resumable: 1.0.0\r\n",
            (unsigned long long)b->len, (unsigned long long)b->length);
    return;
  }
  if (strcmp(r->method, "PATCH") == 0) {
    uint64_t off;
    if (!hdr_val(r->headers, "Upload-Offset", v, sizeof v) || !dec_ok(v, strlen(v), &off)) {
      a->status = 400;
      return;
    }
    if (off != b->len) {
      a->status = 409;
      return;
    }
    if (r->body_len > b->length - b->len) {
      a->status = 413;
      return;
    }
    if (apply) {
      if (r->body_len) memcpy(b->data + b->len, r->body, r->body_len);
      b->len += r->body_len;
    }
    a->status = 204;
    a->has_offset = 1;
    a->offset = off + r->body_len;
    ans_hdr(a, "Upload-Offset: %llu\r\nTus-Resumable: 1.0.0\r\n", (unsigned long long)a->offset);
    return;
  }
  a->status = 405;
}

static void blobs_free(void) {
  for (int i = 0; i < H.nblobs; i++) free(H.blobs[i].data);
  H.nblobs = 0;
}

/* --- answering a request -------------------------------------------------------------------------- */

static const int STATUS[16] = {0, 200, 201, 204, 206, 401, 403, 404, 409, 410, 413, 416, 500, 0, 507, 0};

static const char *const ABSURD[] = {
    "18446744073709551615", "18446744073709551616", "99999999999999999999999", "-1", "+1", " 1",
    "1 ", "0x10", "", "1e3", "0", "4294967296", "000000000000000000000000000001", "1,2", "١٢", "9\t",
};

static const char *const LOCATIONS[] = {
    "https://blobs.example/v1/blobs/%s",
    "/v1/blobs/",
    "/v1/blobs/%s/x",
    "/v1/blobs/%s?x=1",
    "/v1/blobs/%s ",
    "/v1/blobs/%s\rX",
    "/v1/blobs/%s\nX-Injected: 1",
    "/v1/blobs/%s\r\nX-Injected: 1",
    "v1/blobs/%s",
    "//evil.example/v1/blobs/%s",
    "http:///v1/blobs/%s",
    "/v1/blobs/..%%2f%s",
    "/v1/blobs/%s%%00",
    "\t/v1/blobs/%s",
    "/V1/BLOBS/%s",
    "OTHER", /* another blob's place */
    "LONG",  /* 300 id characters */
    "FITS",  /* 290 */
};

/* Replaces the value of header `name` in a->hdr with `value` (added if
 * absent). */
static void hdr_set(answer *a, const char *name, const char *value) {
  char *old = a->hdr ? a->hdr : dup_str("");
  a->hdr = NULL;
  size_t n = strlen(name);
  int done = 0;
  for (const char *p = old; *p;) {
    const char *e = strstr(p, "\r\n");
    size_t l = e ? (size_t)(e - p) + 2 : strlen(p);
    if (!done && l > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      ans_hdr(a, "%s: %s\r\n", name, value);
      done = 1;
    } else {
      ans_hdr(a, "%.*s", (int)l, p);
    }
    p += l;
  }
  if (!done) ans_hdr(a, "%s: %s\r\n", name, value);
  if (a->hdr == NULL) a->hdr = dup_str("");
  free(old);
}

static void hdr_replace_all(answer *a, const char *from, const char *to) {
  if (a->hdr == NULL) return;
  char *old = a->hdr;
  a->hdr = dup_str("");
  size_t fl = strlen(from);
  for (const char *p = old; *p;) {
    if (strncmp(p, from, fl) == 0) {
      ans_hdr(a, "%s", to);
      p += fl;
    } else {
      ans_hdr(a, "%c", *p);
      p++;
    }
  }
  free(old);
}

static void raw_hdr(answer *a, cur *in, int where) { /* where: 0 replace, 1 append, 2 prepend */
  size_t n;
  const uint8_t *p = take(in, u8(in), &n);
  char *raw = malloc(n + 1);
  FZ_ASSERT(raw != NULL, "out of memory");
  memcpy(raw, p, n);
  raw[n] = 0; /* (a NUL inside ends the headers there, as for the app) */
  char *honest_h = a->hdr ? a->hdr : dup_str("");
  a->hdr = NULL;
  if (where == 0) ans_hdr(a, "%s", raw);
  if (where == 1) ans_hdr(a, "%s%s", honest_h, raw);
  if (where == 2) ans_hdr(a, "%s%s", raw, honest_h);
  if (a->hdr == NULL) a->hdr = dup_str("");
  free(honest_h);
  free(raw);
}

/* The request the op byte's low 5 bits pick: an index into H.reqs, or -1
 * for a handle that is no request. */
static int pick(unsigned sel) {
  if (sel >= 16) {
    int want_get = sel >= 24;
    for (int i = 0; i < H.nreq; i++)
      if ((strcmp(H.reqs[i].method, "GET") == 0) == want_get) return i;
    return -1;
  }
  unsigned k = sel % (unsigned)(H.nreq + 1);
  return k == (unsigned)H.nreq ? -1 : (int)k;
}

static void http_answer(unsigned sel, int custom, cur *in) {
  int k = pick(sel);
  if (k < 0) { /* an answer to no request */
    uint64_t bogus = sel & 1 ? 0 : H.max_handle + 1 + (sel & 7);
    int rc = whisper_client_http_done(H.c, bogus, 200, "", NULL, 0, H.now);
    after_call("http_done");
    if (fz_verbose()) fprintf(stderr, "  http_done(bogus %llu): %d\n", (unsigned long long)bogus, rc);
    FZ_ASSERT(rc == WHISPER_EINVAL, "http_done of handle %llu, no request: %d",
              (unsigned long long)bogus, rc);
    settle();
    return;
  }
  req *q = &H.reqs[k];
  uint8_t S = custom ? u8(in) : 0, B = custom ? u8(in) : 0;
  int hm = S >> 4, apply = !(B & 0x80);
  answer a;
  honest(q, apply, &a);
  int honest_answer = (S & 15) == 0 && (hm == 0 || hm >= 13) && (B & 0x87) == 0;
  /* the status */
  int status = a.status;
  if ((S & 15) == 15) status = (int16_t)u16(in);
  else if (S & 15) status = STATUS[S & 15];
  /* the headers */
  char num[64];
  int null_hdr = 0;
  switch (hm) {
    case 1:
      null_hdr = 1;
      break;
    case 2:
      free(a.hdr);
      a.hdr = dup_str("");
      break;
    case 3: {
      int8_t d = (int8_t)u8(in);
      uint64_t base = a.has_offset ? a.offset : 0;
      snprintf(num, sizeof num, "%llu", (unsigned long long)(base + (uint64_t)(int64_t)d));
      hdr_set(&a, "Upload-Offset", num);
      break;
    }
    case 4:
      hdr_set(&a, "Upload-Offset", ABSURD[u8(in) % (sizeof ABSURD / sizeof ABSURD[0])]);
      break;
    case 5: {
      unsigned which = u8(in) % (sizeof LOCATIONS / sizeof LOCATIONS[0]);
      const char *id = a.has_location ? a.location : "fzzz";
      char loc[400];
      if (strcmp(LOCATIONS[which], "OTHER") == 0) { /* (marked below, as every id named) */
        hblob *o = H.nblobs ? &H.blobs[H.nblobs - 1 - (int)(u8(in) % (unsigned)H.nblobs)] : NULL;
        snprintf(loc, sizeof loc, "/v1/blobs/%s", o ? o->id : "fzzz");
      } else if (strcmp(LOCATIONS[which], "LONG") == 0 || strcmp(LOCATIONS[which], "FITS") == 0) {
        size_t n = LOCATIONS[which][0] == 'L' ? 300 : 290;
        memcpy(loc, "/v1/blobs/", 10);
        memset(loc + 10, 'a', n);
        loc[10 + n] = 0;
      } else {
        size_t o = 0;
        for (const char *t = LOCATIONS[which]; *t && o + strlen(id) + 2 < sizeof loc; t++) {
          if (t[0] == '%' && t[1] == 's') {
            memcpy(loc + o, id, strlen(id));
            o += strlen(id);
            t++;
          } else {
            loc[o++] = t[0] == '%' && t[1] == '%' ? *t++ : *t;
          }
        }
        loc[o] = 0;
      }
      hdr_set(&a, "Location", loc);
      break;
    }
    case 6:
      raw_hdr(&a, in, 0);
      break;
    case 7:
      raw_hdr(&a, in, 1);
      break;
    case 8:
      raw_hdr(&a, in, 2);
      break;
    case 9:
      hdr_replace_all(&a, "Upload-Offset: ", "upload-offset:");
      break;
    case 10:
      hdr_replace_all(&a, "\r\n", "\n");
      break;
    case 11:
      if (a.hdr && strlen(a.hdr) >= 2) a.hdr[strlen(a.hdr) - 2] = 0;
      break;
    case 12:
      snprintf(num, sizeof num, "%zu", G.up_blob_len);
      hdr_set(&a, "Upload-Offset", num);
      break;
    default:
      break;
  }
  /* the body */
  size_t have = 0;
  const uint8_t *whole = blob_bytes(q->path, &have);
  switch (B & 7) {
    case 1:
      if (a.body_len) {
        size_t pos = u16(in) % a.body_len;
        a.body[pos] ^= (uint8_t)(u8(in) | 1);
      }
      break;
    case 2:
      a.body_len = u16(in) % (a.body_len + 1);
      break;
    case 3: {
      size_t extra = (size_t)u8(in) + 1, n = a.body_len + extra;
      uint8_t *p = malloc(n);
      FZ_ASSERT(p != NULL, "out of memory");
      memcpy(p, a.body ? a.body : (const uint8_t *)"", a.body_len);
      memset(p + a.body_len, 0xAA, extra);
      free(a.body);
      a.body = p;
      a.body_len = n;
      break;
    }
    case 4:
      a.body_len = 0;
      break;
    case 5: {
      size_t n;
      const uint8_t *p = take(in, u16(in), &n);
      ans_body(&a, p, n);
      break;
    }
    case 6:
      if (whole) ans_body(&a, whole, have);
      break;
    case 7: {
      int8_t d = (int8_t)u8(in);
      char v[64];
      unsigned long long x = 0;
      if (whole && hdr_val(q->headers, "Range", v, sizeof v) && sscanf(v, "bytes=%llu", &x) == 1) {
        long long from = (long long)x + d;
        if (from < 0) from = 0;
        size_t n = a.body_len;
        if ((size_t)from > have) from = (long long)have;
        if (n > have - (size_t)from) n = have - (size_t)from;
        ans_body(&a, whole + from, n);
      }
      break;
    }
    default:
      break;
  }
  int get = strcmp(q->method, "GET") == 0;
  int upload_req = !get;
  if (!honest_answer && !H.planted) {
    if (upload_req) H.up_tainted = 1;
    int dk = dl_by_path(q->path);
    if (get && dk >= 0) H.dl_tainted[dk] = 1;
    if (get && dk < 0) H.dl_tainted[0] = H.dl_tainted[1] = 1; /* (no GET of another blob is made) */
  }
  const char *hdr = null_hdr ? NULL : (a.hdr ? a.hdr : "");
  if (!honest_answer && hdr) /* blobs it names may be taken for another job's */
    for (const char *p = strstr(hdr, "fzup"); p; p = strstr(p + 4, "fzup"))
      if (p[4] >= '0' && p[4] <= '9' && p[5] >= '0' && p[5] <= '9') {
        int nb = (p[4] - '0') * 10 + (p[5] - '0');
        H.named[nb] = 1;
        for (int i = 0; i < H.nblobs; i++)
          if (atoi(H.blobs[i].id + 4) == nb) H.blobs[i].lied = 1;
      }
  /* what the store said: the whole upload is there */
  int put = strcmp(q->method, "HEAD") == 0 || strcmp(q->method, "PATCH") == 0;
  if (put && (status == 200 || status == 204)) {
    H.acked_weak = 1;
    if (offset_line_has(hdr, G.up_blob_len)) H.acked_strong = 1;
  }
  uint64_t handle = q->handle;
  int fresh = q->fresh;
  if (fz_verbose())
    fprintf(stderr, "  http_done %llu (%s %s): %d%s, %zu bytes, headers %s%s", (unsigned long long)handle,
            q->method, q->path, status, honest_answer ? " (honest)" : "", a.body_len,
            hdr ? "" : "NULL", hdr ? hdr : "\n");
  if (hdr && !strchr(hdr, '\n') && fz_verbose()) fprintf(stderr, "\n");
  reqs_drop(k);
  int rc = whisper_client_http_done(H.c, handle, status, hdr, a.body_len ? a.body : NULL, a.body_len,
                                    H.now);
  after_call("http_done");
  if (fz_verbose()) fprintf(stderr, "    -> %d\n", rc);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVAL, "http_done returned %d (%s)", rc,
            whisper_ctx_last_error(H.d->ctx));
  if (fresh) FZ_ASSERT(rc == WHISPER_OK, "http_done of a request out: %d", rc);
  free(a.hdr);
  free(a.body);
  settle();
}

/* --- the other operations ----------------------------------------------------------------------- */

static const uint64_t STEPS[32] = {
    0,     50,    100,    250,    500,    1000,    2000,     3000,      5000,      9000,       10001,
    15000, 29000, 30000,  31000,  59000,  60001,   61000,    120000,    300000,    600000,     3600000,
    7200000, 86400000ULL, 7 * 86400000ULL, 30 * 86400000ULL, 1, 499, 501, 999, 16000, 45000};

static void tick(uint64_t step) {
  H.now += step;
  if (fz_verbose()) fprintf(stderr, "  tick +%llu ms (at +%llu)\n", (unsigned long long)step,
                            (unsigned long long)(H.now - T_IN));
  whisper_client_tick(H.c, H.now);
  after_call("tick");
  settle();
}

/* A sync frame from the server: OK or EINVALIDMSG, which changes nothing. */
static void frame_in(whisper_buf *b) {
  if (!H.connected) {
    whisper_buf_free(b);
    return;
  }
  fz_watch_begin(&H.d->fs);
  int rc = whisper_client_receive(H.c, b->data, b->len, H.now);
  after_call("receive");
  if (fz_verbose())
    fprintf(stderr, "  receive %zu bytes: %d %s\n", b->len, rc, rc ? whisper_ctx_last_error(H.d->ctx) : "");
  whisper_buf_free(b);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVALIDMSG, "receive returned %d (%s)", rc,
            whisper_ctx_last_error(H.d->ctx));
  if (rc == WHISPER_EINVALIDMSG) {
    FZ_ASSERT(H.d->fs.committed_writes == 0 && fz_store_changed(&H.d->fs) == NULL,
              "an EINVALIDMSG frame changed the store");
    FZ_ASSERT(drain_events() == 0, "an EINVALIDMSG frame raised events");
    whisper_buf *o;
    FZ_ASSERT(!whisper_client_take_frame(H.c, &o), "an EINVALIDMSG frame made the engine send");
  }
  fz_watch_end(&H.d->fs);
  settle();
}

static const uint64_t EXPIRY[16] = {3600000, 0 /* absent */, 0, 59000, 61000, 60001, UINT64_MAX, 1,
                                   86400000, 600000, 60000, 120000, 30000, 5000, 900000, 7200000};

static uint64_t frame_id(int how) {
  switch (how & 3) {
    case 0: return H.pending_auth ? H.pending_auth : H.last_req_id + 1;
    case 1: return 0;
    case 2: return H.last_req_id;
    default: return H.pending_auth + 1;
  }
}

static void token_frame(uint8_t t, cur *in) {
  uint8_t e = u8(in);
  char tok[700];
  int has_tok = 1;
  size_t n;
  const uint8_t *p;
  switch (t & 3) {
    case 0:
      snprintf(tok, sizeof tok, "%s", TOKEN);
      break;
    case 1:
      p = take(in, u8(in) * 3u, &n); /* (up to 765 bytes: longer than the engine keeps) */
      if (n > sizeof tok - 1) n = sizeof tok - 1;
      memcpy(tok, p, n);
      tok[n] = 0;
      break;
    case 2:
      has_tok = 0;
      tok[0] = 0;
      break;
    default:
      p = take(in, u8(in), &n);
      snprintf(tok, sizeof tok, "%s%.*s", TOKEN, (int)n, (const char *)p);
      break;
  }
  Whisper__Sync__UploadToken ut = WHISPER__SYNC__UPLOAD_TOKEN__INIT;
  ut.token = has_tok ? tok : NULL;
  if ((e & 15) != 1) {
    ut.has_expires_ms = 1;
    uint64_t x = EXPIRY[e & 15];
    ut.expires_ms = x == UINT64_MAX || x == 0 || x == 1 ? (x == 1 ? H.now - 1 : x) : H.now + x;
  }
  if (e & 0x10) ut.has_max_size = 1, ut.max_size = (e & 0x20) ? 100 : (64u << 20);
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN;
  f.upload_token = &ut;
  uint64_t id = frame_id(t >> 2);
  if (id == H.pending_auth) H.pending_auth = 0;
  H.n_token++;
  frame_in(fzs_pack(&f, id));
}

static void other_frame(uint8_t t, cur *in) {
  uint64_t id = H.pending_auth ? H.pending_auth : H.last_req_id;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  whisper_buf *b = NULL;
  switch (t & 7) {
    case 0: case 1: case 2: case 3: {
      uint8_t code = u8(in);
      b = fzs_error(id, code, (t & 1) ? "no blobs for you" : NULL);
      break;
    }
    case 4:
      b = fzs_ok(id, 0);
      break;
    case 5: {
      Whisper__Sync__UploadToken ut = WHISPER__SYNC__UPLOAD_TOKEN__INIT;
      ut.token = "";
      ut.has_expires_ms = 1;
      ut.expires_ms = H.now + 3600000;
      f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN;
      f.upload_token = &ut;
      b = fzs_pack(&f, id);
      break;
    }
    case 6: {
      Whisper__Sync__Pong pong = WHISPER__SYNC__PONG__INIT;
      f.body_case = WHISPER__SYNC__FRAME__BODY_PONG;
      f.pong = &pong;
      b = fzs_pack(&f, id);
      break;
    }
    default: {
      size_t n;
      const uint8_t *p = take(in, u16(in) & 0x0fff, &n);
      b = whisper_buf_new(p, n);
      FZ_ASSERT(b != NULL, "out of memory");
      break;
    }
  }
  if (id == H.pending_auth) H.pending_auth = 0;
  frame_in(b);
}

/* A download (or, vo, a view-once opening) of bob's attachment k. */
static void download(int k, int to_file, int vo) {
  const att *a = &G.dl[k];
  const char *path = to_file ? a->path : NULL;
  int rc = vo ? whisper_client_view_once_open(H.c, "bob", a->id, 16, "bob", path, H.now)
              : whisper_client_download(H.c, "bob", a->id, 16, "bob", path, H.now);
  after_call("download");
  if (fz_verbose())
    fprintf(stderr, "  %s %d to %s: %d\n", vo ? "view_once_open" : "download", k, path ? path : "events", rc);
  H.n_denied += rc == WHISPER_EDENIED;
  if (H.planted) {
    FZ_ASSERT(rc == WHISPER_OK || (rc < 0 && rc_known(rc)), "download: %d", rc);
  } else {
    /* a view-once attachment only opens, once; another only downloads */
    int want = a->view_once != vo || (a->view_once && H.opened) ? WHISPER_EDENIED : WHISPER_OK;
    FZ_ASSERT(rc == want, "%s of bob's attachment %d: %d, not %d (%s)", vo ? "view_once_open" : "download",
              k, rc, want, whisper_ctx_last_error(H.d->ctx));
  }
  if (rc == WHISPER_OK) {
    /* a job of it already running is replaced: its request is no longer one */
    for (int i = 0; i < H.nreq; i++)
      if (strcmp(H.reqs[i].method, "GET") == 0) H.reqs[i].fresh = 0;
    H.dl_mode[k] = to_file ? 1 : 2;
    H.dl_next[k] = 0;
  }
  settle();
}

static void send_again(int same) {
  uint8_t id[16];
  static const uint8_t thumb[16] = "a small picture";
  whisper_media_meta_t meta = {.size = sizeof meta, .content_type = "application/octet-stream", .file_name = "up2.bin",
                               .thumbnail = thumb, .thumbnail_len = sizeof thumb, .width = 3,
                               .height = 4, .duration_ms = 5, .flags = WHISPER_MEDIA_VOICE_NOTE};
  int rc = whisper_client_send_file(H.c, "bob", same ? G.up : G.up2, &meta, H.now, id);
  after_call("send_file");
  if (fz_verbose()) fprintf(stderr, "  send_file %s: %d\n", same ? "up.bin" : "up2.bin", rc);
  int want = !same && H.up2_gone ? WHISPER_ENOTFOUND : WHISPER_OK;
  FZ_ASSERT(H.planted ? (rc < 0 ? rc_known(rc) : rc == WHISPER_OK) : rc == want,
            "send_file: %d (%s)", rc, whisper_ctx_last_error(H.d->ctx));
  if (same) H.owner_off = 1; /* two blobs of one size: whose is whose is not known */
  settle();
}

static void media_get_all(void) {
  struct {
    const uint8_t *id;
    const char *sender;
  } m[1 + NATT] = {{G.up_id, NULL}, {G.dl[0].id, "bob"}, {G.dl[1].id, "bob"}, {G.dl[2].id, "bob"}};
  for (int i = 0; i < 1 + NATT; i++) {
    whisper_media_t *x = NULL;
    int rc = whisper_client_media_get(H.c, "bob", m[i].id, 16, m[i].sender, &x);
    after_call("media_get");
    FZ_ASSERT(rc_known(rc) && (rc == WHISPER_OK) == (x != NULL), "media_get: %d", rc);
    H.n_get_corrupt += rc == WHISPER_ECORRUPT;
    if (!H.planted) FZ_ASSERT(rc == WHISPER_OK, "media_get of attachment %d: %d", i, rc);
    if (x) {
      FZ_ASSERT(x->content_type && x->file_name && x->caption && x->path, "media_get: a NULL string");
      FZ_ASSERT(x->state >= WHISPER_MEDIA_ENCRYPTING && x->state <= WHISPER_MEDIA_FAILED,
                "media_get: state %d", x->state);
      read_str(x->content_type);
      read_str(x->path);
      if (x->thumbnail) read_bytes(x->thumbnail, x->thumbnail_len);
      if (!H.planted && i == 0)
        FZ_ASSERT(x->state != WHISPER_MEDIA_SENT || H.acked_strong, "media_get: SENT before the store said so");
    }
    whisper_media_free(x);
  }
}

static void app(uint8_t t) {
  switch (t & 15) {
    case 0: media_get_all(); break;
    case 1: download(0, 1, 0); break;
    case 2: download(0, 0, 0); break;
    case 3: download(1, 1, 0); break;
    case 4: send_again(0); break;
    case 5: send_again(1); break;
    case 6: download(1, 0, 0); break;
    case 8: download(2, 1, 1); break;  /* the view-once one, opened */
    case 9: download(2, 0, 1); break;
    case 10: download(2, 1, 0); break; /* (EDENIED: it is view-once) */
    case 11: download(0, 1, 1); break; /* (EDENIED: it is not) */
    case 13: { /* the system empties media_dir (a cache): the jobs make again what they need */
      DIR *d = opendir(G.media);
      struct dirent *e;
      char p[512];
      while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", G.media, e->d_name);
        unlink(p);
      }
      if (d) closedir(d);
      if (fz_verbose()) fprintf(stderr, "  media_dir emptied\n");
      break;
    }
    case 14: /* the app's second file shrinks, or goes, before it is encrypted */
    case 15:
      if ((t & 15) == 14 && !H.up2_gone) {
        FZ_ASSERT(truncate(G.up2, UP2_SIZE / 2) == 0, "truncate %s", G.up2);
        H.up2_cut = 1;
      } else {
        unlink(G.up2);
        H.up2_gone = 1;
      }
      G.dirty = 1; /* (written again before the next input) */
      if (fz_verbose()) fprintf(stderr, "  up2.bin %s\n", (t & 15) == 14 ? "cut to half" : "removed");
      break;
    case 12: { /* a file that is not there */
      char missing[128];
      uint8_t id[16];
      snprintf(missing, sizeof missing, "%s/missing.bin", G.dir);
      int rc = whisper_client_send_file(H.c, "bob", missing, NULL, H.now, id);
      after_call("send_file");
      FZ_ASSERT(rc == WHISPER_ENOTFOUND, "send_file of a missing file: %d", rc);
      settle();
      break;
    }
    default: {
      uint64_t d = whisper_client_next_deadline(H.c);
      tick(d > H.now && d != UINT64_MAX && d - H.now < 7 * 86400000ULL ? d - H.now : 0);
      break;
    }
  }
}

/* --- planting --------------------------------------------------------------------------------- */

/* The harness's directory in planted bytes becomes this process's (the
 * six characters mkdtemp chose; the base, /dev/shm or /tmp, stays). */
static void own_dir(uint8_t *p, size_t n) {
  size_t pl = strlen(DIR_NAME);
  const char *mine = G.dir + strlen(G.dir) - 6;
  for (size_t i = 0; i + pl + 6 <= n; i++)
    if (memcmp(p + i, DIR_NAME, pl) == 0) memcpy(p + i + pl, mine, 6);
}

static int path_inside(const char *p) {
  size_t n = strlen(G.dir);
  return p == NULL || (strncmp(p, G.dir, n) == 0 && p[n] == '/' && strstr(p, "..") == NULL);
}

static void store_put(const uint8_t *key, size_t key_len, const uint8_t *val, size_t len, int del) {
  whisper_store *s = H.d->fs.outer;
  FZ_ASSERT(s->ops.begin(s->user) == WHISPER_OK, "begin");
  int rc = del ? s->ops.del(s->user, WHISPER_REC_SYNC_STATE, key, key_len)
               : s->ops.put(s->user, WHISPER_REC_SYNC_STATE, key, key_len, val, len);
  FZ_ASSERT(rc == WHISPER_OK && s->ops.commit(s->user) == WHISPER_OK, "planting failed: %d", rc);
}

static void plant(uint8_t t, cur *in) {
  const uint8_t *key = (t & 3) == 1 ? G.key_up : (t & 3) == 2 ? G.key_dl : (const uint8_t *)"J";
  size_t key_len = key[0] == 'J' ? 1 : 33;
  int del = (t & 4) != 0;
  size_t n = 0;
  uint8_t *val = NULL;
  if (!del) {
    const uint8_t *p = take(in, u16(in), &n);
    val = malloc(n ? n : 1);
    FZ_ASSERT(val != NULL, "out of memory");
    if (n) memcpy(val, p, n);
    own_dir(val, n);
    if (key_len == 33) { /* the engine writes to the record's path: only inside the directory */
      Whisper__Client__MediaJob *m = whisper__client__media_job__unpack(NULL, n, val);
      int ok = m == NULL || path_inside(m->path);
      if (m) whisper__client__media_job__free_unpacked(m, NULL);
      if (!ok) {
        if (fz_verbose()) fprintf(stderr, "  plant: a path outside, not planted\n");
        free(val);
        return;
      }
    }
  }
  if (fz_verbose()) fprintf(stderr, "  plant %s (%zu bytes%s)\n", key_len == 1 ? "J" : "M", n, del ? ", deleted" : "");
  whisper_client_free(H.c); /* (the engine keeps its jobs in memory: planted under it, then a restart) */
  H.c = NULL;
  store_put(key, key_len, val, n, del);
  free(val);
  H.planted = 1;
  G.dirty = 1;
  engine_new();
}

/* --- the world -------------------------------------------------------------------------------- */

static int mem_sink(void *user, const uint8_t *data, size_t len) {
  att *a = user;
  a->blob = realloc(a->blob, a->blob_len + len);
  FZ_ASSERT(a->blob != NULL, "out of memory");
  memcpy(a->blob + a->blob_len, data, len);
  a->blob_len += len;
  return 0;
}

/* bob's attachment message to alice: a blob encrypted here, its pointer
 * end to end (a PreKey message from bob). */
static whisper_buf *attachment_from_bob(att *a, size_t size, uint32_t seed, uint64_t seq) {
  /* (a->view_once: the pointer's flags say so) */
  a->pt_len = size;
  a->pt = malloc(size);
  FZ_ASSERT(a->pt != NULL, "out of memory");
  fill(a->pt, size, seed);
  uint8_t key[WHISPER_ATTACHMENT_KEY_LEN], iv[WHISPER_ATTACHMENT_IV_LEN];
  fill(key, sizeof key, seed + 1);
  fill(iv, sizeof iv, seed + 2);
  whisper_attachment_encryptor *enc = NULL;
  FZ_ASSERT(whisper_attachment_encrypt_new(&enc, key, iv, size, mem_sink, a) == WHISPER_OK, "encrypt_new");
  FZ_ASSERT(whisper_attachment_encrypt_update(enc, a->pt, size) == WHISPER_OK, "encrypt_update");
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  FZ_ASSERT(whisper_attachment_encrypt_finish(enc, &r) == WHISPER_OK, "encrypt_finish");
  whisper_attachment_encrypt_free(enc);
  FZ_ASSERT(a->blob_len == whisper_attachment_blob_size(size), "blob size");
  Whisper__E2e__AttachmentPointer p = WHISPER__E2E__ATTACHMENT_POINTER__INIT;
  p.blob_id = (char *)a->blob_id;
  p.content_type = "image/png";
  p.file_name = "picture.png";
  p.caption = "a picture";
  p.has_key = p.has_size = p.has_digest = p.has_plaintext_hash = p.has_uploaded_at_ms = 1;
  p.key = (ProtobufCBinaryData){sizeof key, key};
  p.size = size;
  p.digest = (ProtobufCBinaryData){32, r.digest};
  p.plaintext_hash = (ProtobufCBinaryData){32, r.plaintext_hash};
  p.uploaded_at_ms = FZ_NOW;
  if (a->view_once) p.has_flags = 1, p.flags = WHISPER_MEDIA_VIEW_ONCE;
  if (!a->two_pass) {
    p.has_incremental_mac = p.has_chunk_size = 1;
    p.incremental_mac = (ProtobufCBinaryData){r.incremental_mac->len, r.incremental_mac->data};
    p.chunk_size = r.chunk_size;
  }
  static const uint8_t thumb[48] = "a thumbnail the app made, 48 bytes of it .......";
  if (seed == 1001) p.has_thumbnail = 1, p.thumbnail = (ProtobufCBinaryData){sizeof thumb, (uint8_t *)thumb};
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__ATTACHMENT;
  ct.attachment = &p;
  size_t cn = whisper__e2e__content__get_packed_size(&ct);
  uint8_t *content = malloc(cn);
  FZ_ASSERT(content != NULL, "out of memory");
  whisper__e2e__content__pack(&ct, content);
  whisper_attachment_result_clear(&r);
  Whisper__E2e__Payload pl = WHISPER__E2E__PAYLOAD__INIT;
  pl.to = "alice";
  pl.has_body = pl.has_sent_at_ms = pl.has_content = pl.has_id = 1;
  pl.sent_at_ms = FZ_NOW + 3;
  pl.content = (ProtobufCBinaryData){cn, content};
  pl.id = (ProtobufCBinaryData){16, a->id};
  size_t pn = whisper__e2e__payload__get_packed_size(&pl);
  uint8_t *pt = malloc(pn);
  FZ_ASSERT(pt != NULL, "out of memory");
  whisper__e2e__payload__pack(&pl, pt);
  free(content);
  whisper_buf *m = NULL;
  int type = 0;
  FZ_ASSERT(whisper_session_encrypt(G.w->bob->ctx, "alice", 1, pt, pn, FZ_NOW, &type, &m) == WHISPER_OK,
            "bob encrypts");
  free(pt);
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_client_id = 1;
  d.has_type = d.has_body = d.has_content = d.has_seq = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE;
  d.sender = "bob";
  d.sender_device = 1;
  d.server_ts = FZ_NOW + 5;
  d.server_seq = 5000 + seq;
  d.client_id = (ProtobufCBinaryData){16, a->id};
  d.type = (uint32_t)type;
  d.body = (ProtobufCBinaryData){m->len, m->data};
  d.content = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE;
  d.seq = seq;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DELIVER;
  f.deliver = &d;
  whisper_buf *b = fzs_pack(&f, 0);
  whisper_buf_free(m);
  return b;
}

static void rm_dir(void) {
  if (!G.dir[0]) return;
  DIR *d = opendir(G.media);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", G.media, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(G.media);
  d = opendir(G.dir);
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    snprintf(p, sizeof p, "%s/%s", G.dir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(G.dir);
}

/* The files as the world left them: media_dir holds the upload's blob,
 * no download has written anything. */
static void reset_files(void) {
  /* the upload's blob stays when it is whole: without a plant the engine
   * only ever writes the same blob there (the same key, IV and file) */
  char p[512];
  struct stat st;
  int keep = G.up_tmp[0] && !G.dirty && stat(G.up_tmp, &st) == 0 &&
             (uint64_t)st.st_size == G.up_blob_len;
  struct dirent *e;
  DIR *d = opendir(G.media);
  FZ_ASSERT(d != NULL, "media_dir %s is gone", G.media);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", G.media, e->d_name);
    if (!keep || strcmp(p, G.up_tmp) != 0) unlink(p);
  }
  closedir(d);
  d = opendir(G.dir);
  FZ_ASSERT(d != NULL, "%s is gone", G.dir);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || strcmp(e->d_name, "media") == 0 ||
        strcmp(e->d_name, "up.bin") == 0 || strcmp(e->d_name, "up2.bin") == 0)
      continue;
    snprintf(p, sizeof p, "%s/%s", G.dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  if (G.up_tmp[0] && !keep) write_file(G.up_tmp, G.up_blob, G.up_blob_len);
  if (G.dirty) {
    uint8_t *b = malloc(UP_SIZE);
    FZ_ASSERT(b != NULL, "out of memory");
    fill(b, UP_SIZE, 7);
    write_file(G.up, b, UP_SIZE);
    fill(b, UP2_SIZE, 8);
    write_file(G.up2, b, UP2_SIZE);
    free(b);
    G.dirty = 0;
  }
}

static whisper_buf *record(const uint8_t *key, size_t key_len) {
  whisper_buf *b = fz_get(G.w->alice, WHISPER_REC_SYNC_STATE, key, key_len);
  FZ_ASSERT(b != NULL, "the world has no record %c", key[0]);
  return b;
}

static void world_new(void) {
  G.w = fzs_client_world_new();
  /* in memory if it can be (the engine fsyncs what it finishes) */
  snprintf(G.dir, sizeof G.dir, "%s/%sXXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
           DIR_NAME);
  FZ_ASSERT(mkdtemp(G.dir) != NULL, "mkdtemp: %s", strerror(errno));
  atexit(rm_dir);
  snprintf(G.media, sizeof G.media, "%s/media", G.dir);
  snprintf(G.up, sizeof G.up, "%s/up.bin", G.dir);
  snprintf(G.up2, sizeof G.up2, "%s/up2.bin", G.dir);
  FZ_ASSERT(mkdir(G.media, 0700) == 0, "mkdir %s", G.media);
  G.dirty = 1;
  reset_files(); /* (writes up.bin and up2.bin) */
  G.dl[0].blob_id = "fzdl1";
  G.dl[1].blob_id = "fzdl2";
  G.dl[2].blob_id = "fzdl3";
  G.dl[2].view_once = 1;
  G.dl[1].two_pass = 1;
  memset(G.dl[0].id, 0xD1, 16);
  memset(G.dl[1].id, 0xD2, 16);
  memset(G.dl[2].id, 0xD3, 16);
  snprintf(G.dl[0].path, sizeof G.dl[0].path, "%s/dl.bin", G.dir);
  snprintf(G.dl[1].path, sizeof G.dl[1].path, "%s/dl2.bin", G.dir);
  snprintf(G.dl[2].path, sizeof G.dl[2].path, "%s/dl3.bin", G.dir);
  G.up2_total = whisper_attachment_blob_size(UP2_SIZE);
  G.w->cfg.media_dir = G.media;
  G.w->cfg.media_piece = PIECE;

  /* alice online: what waited goes out, answered */
  memset(&H, 0, sizeof H);
  H.d = G.w->alice;
  H.now = T_SETUP;
  H.planted = 1; /* (no model yet) */
  FZ_ASSERT(engine_new(), "alice's engine");
  FZ_ASSERT(H.connected, "alice does not connect");
  /* bob's two attachments */
  fz_connect(G.w->bob, G.w->alice, 0);
  whisper_buf *m1 = attachment_from_bob(&G.dl[0], DL_SIZE, 1001, ++G.w->last_seq);
  whisper_buf *m2 = attachment_from_bob(&G.dl[1], DL2_SIZE, 2002, ++G.w->last_seq);
  whisper_buf *m3 = attachment_from_bob(&G.dl[2], DL3_SIZE, 3003, ++G.w->last_seq);
  feed_ok(m1);
  settle();
  feed_ok(m2);
  settle();
  feed_ok(m3);
  settle();
  disconnect();
  /* offline: the download and the upload are asked for; the file is encrypted */
  FZ_ASSERT(whisper_client_download(H.c, "bob", G.dl[0].id, 16, "bob", G.dl[0].path, H.now) == WHISPER_OK,
            "download: %s", whisper_ctx_last_error(H.d->ctx));
  whisper_media_meta_t meta = {.size = sizeof meta, .content_type = "application/octet-stream", .file_name = "up.bin",
                               .caption = "a file"};
  FZ_ASSERT(whisper_client_send_file(H.c, "bob", G.up, &meta, H.now, G.up_id) == WHISPER_OK,
            "send_file: %s", whisper_ctx_last_error(H.d->ctx));
  whisper_client_tick(H.c, H.now);
  drain_events();
  whisper_client_free(H.c);
  H.c = NULL;
  reqs_clear();
  /* the upload's blob, as the engine made it */
  DIR *d = opendir(G.media);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(G.up_tmp, sizeof G.up_tmp, "%s/%s", G.media, e->d_name);
    n++;
  }
  closedir(d);
  FZ_ASSERT(n == 1 && strstr(G.up_tmp, ".up"), "media_dir holds %d files (%s)", n, G.up_tmp);
  free(G.up_blob);
  G.up_blob = read_file(G.up_tmp, &G.up_blob_len);
  FZ_ASSERT(G.up_blob && G.up_blob_len == whisper_attachment_blob_size(UP_SIZE), "the upload's blob");
  /* the records */
  G.rec_j = record((const uint8_t *)"J", 1);
  Whisper__Client__MediaIndex *ix = whisper__client__media_index__unpack(NULL, G.rec_j->len, G.rec_j->data);
  FZ_ASSERT(ix && ix->n_keys == 2 && ix->keys[0].len == 33 && ix->keys[1].len == 33, "the J record");
  for (size_t i = 0; i < 2; i++) {
    whisper_buf *r = record(ix->keys[i].data, 33);
    Whisper__Client__MediaJob *m = whisper__client__media_job__unpack(NULL, r->len, r->data);
    FZ_ASSERT(m && m->dir >= 1 && m->dir <= 2, "a job record");
    FZ_ASSERT(m->dir == 2 || m->state == WHISPER_MEDIA_UPLOADING, "the upload is in state %u", m->state);
    memcpy(m->dir == 1 ? G.key_up : G.key_dl, ix->keys[i].data, 33);
    if (m->dir == 1) G.rec_up = r;
    else G.rec_dl = r;
    whisper__client__media_job__free_unpacked(m, NULL);
  }
  whisper__client__media_index__free_unpacked(ix, NULL);
  G.server_seq = G.w->server_seq;
  G.last_seq = G.w->last_seq;
  memset(&H, 0, sizeof H);
  G.ready = 1;
}

/* --- one input ------------------------------------------------------------------------------------- */

static void run_input(const uint8_t *data, size_t size) {
  reset_files();
  memset(&H, 0, sizeof H);
  H.d = G.w->alice;
  H.d->rng.counter = UINT64_C(1) << 40;
  H.d->ctx->have_history_salt = 0;
  G.w->server_seq = G.server_seq;
  G.w->last_seq = G.last_seq;
  fz_journal_begin(&H.d->fs);
  H.now = T_IN;
  H.dl_mode[0] = 1; /* the world's download, to dl.bin */
  engine_new();
  cur in = {data, size, 0};
  while (in.i < in.n && H.c) {
    uint8_t t = u8(&in);
    if (t < 0x20) http_answer(t & 0x1f, 0, &in);
    else if (t < 0x40) http_answer(t & 0x1f, 1, &in);
    else if (t < 0x60) tick(STEPS[t & 0x1f]);
    else if (t < 0x70) token_frame(t, &in);
    else if (t < 0x78) other_frame(t, &in);
    else if (t < 0x80) {
      if (H.connected) disconnect();
      settle();
    } else if (t < 0x90) app(t);
    else if (t < 0xA0) crash();
    else if (t < 0xB0) plant(t, &in);
    else http_answer((t & 3) == 1 ? 16 : (t & 3) == 2 ? 24 : 0, 0, &in);
  }
  /* the end: the engine comes back from the store and logs in */
  check_files_all(1);
  if (H.c) {
    if (H.connected) disconnect();
    drain_events();
    whisper_client_free(H.c);
    H.c = NULL;
    FZ_ASSERT(H.d->ctx->store == H.d->fs.outer, "the context is left on the engine's shim");
    if (engine_new()) {
      if (!H.planted) FZ_ASSERT(H.connected, "the engine does not connect after a restart");
      tick(1000);
      whisper_client_free(H.c);
      H.c = NULL;
    }
  }
  reqs_clear();
  blobs_free();
  fz_journal_restore(&H.d->fs);
}

/* --- seeds ------------------------------------------------------------------------------------- */

typedef struct seed_buf {
  uint8_t b[4096];
  size_t n;
} seed_buf;

static void sb(seed_buf *s, int n, ...) {
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    FZ_ASSERT(s->n < sizeof s->b, "seed too long");
    s->b[s->n++] = (uint8_t)va_arg(ap, int);
  }
  va_end(ap);
}

static void sb_bytes(seed_buf *s, const void *p, size_t n) {
  FZ_ASSERT(s->n + n <= sizeof s->b, "seed too long");
  memcpy(s->b + s->n, p, n);
  s->n += n;
}

#define OP_HONEST_ANY 0xB0
#define OP_HONEST_UP 0xB1
#define OP_HONEST_GET 0xB2
#define OP_ANSWER_UP (0x20 | 16)
#define OP_ANSWER_GET (0x20 | 24)
#define OP_TICK(i) (0x40 | (i))
#define OP_TOKEN 0x60
#define OP_TOKEN_APPEND 0x63
#define OP_DROP 0x78
#define OP_APP(i) (0x80 | (i))
#define OP_CRASH 0x90
#define OP_PLANT(i) (0xA0 | (i))

static void sb_honest(seed_buf *s, int op, int n) {
  for (int i = 0; i < n; i++) sb(s, 1, op);
}

/* The start of most seeds: the token, a tick (the POST and the first GET). */
static void sb_start(seed_buf *s) {
  sb(s, 1, OP_TICK(0));  /* UploadAuth out, the first GET */
  sb(s, 2, OP_TOKEN, 0); /* the honest token, an hour */
  sb(s, 1, OP_TICK(1));  /* the POST */
}

static void write_seed(const char *dir, const char *name, const seed_buf *s) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  write_file(p, s->b, s->n);
  printf("%-40s %zu bytes\n", name, s->n);
}

/* Runs a seed and checks what its name says. */
#define SEED_CHECK(cond, name) FZ_ASSERT(cond, "seed %s does not do what it says", name)

static void write_seeds(const char *dir) {
  seed_buf s;
  /* 1. the whole session, honest: upload (POST, 4 PATCHes) and download (3 GETs) */
  s.n = 0;
  sb_start(&s);
  sb_honest(&s, OP_HONEST_ANY, 12);
  sb(&s, 1, OP_TICK(5));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_up_sent_ev == 1 && H.n_dl_done[0] == 1 && H.n_patch == 4 &&
                 H.n_get == 3,
             "full_session");
  write_seed(dir, "full_session", &s);

  /* 2. a PATCH answered 409 (the store took it, the answer says otherwise): HEAD, then on */
  s.n = 0;
  sb_start(&s);
  sb_honest(&s, OP_HONEST_UP, 2);         /* POST, PATCH 1 */
  sb(&s, 3, OP_ANSWER_UP, 8, 0x00);       /* PATCH 2: 409, taken */
  sb_honest(&s, OP_HONEST_UP, 6);         /* HEAD (offset 128 KiB), PATCH 3, 4 */
  sb(&s, 1, OP_TICK(5));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_head == 1 && H.n_patch == 4, "upload_409_resume");
  write_seed(dir, "upload_409_resume", &s);

  /* 3. a tampered piece: the download fails, then again, honestly */
  s.n = 0;
  sb_start(&s);
  sb(&s, 1, OP_HONEST_GET);
  sb(&s, 6, OP_ANSWER_GET, 0, 1, 0x01, 0x00, 0x40); /* a byte of piece 2 flipped */
  sb(&s, 1, OP_APP(1));                             /* download again */
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_GET, 4);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_dl_failed[0] == 1 && H.n_dl_done[0] == 1, "download_tampered");
  write_seed(dir, "download_tampered", &s);

  /* 4. the process dies mid-way: both jobs go on from where they were */
  s.n = 0;
  sb_start(&s);
  sb_honest(&s, OP_HONEST_ANY, 4);
  sb(&s, 1, OP_CRASH);
  sb(&s, 1, OP_TICK(5));
  sb(&s, 2, OP_TOKEN, 0);
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_ANY, 12);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_dl_done[0] == 1 && H.n_head >= 1, "crash_resume");
  write_seed(dir, "crash_resume", &s);

  /* 5. a lying store: absurd and near offsets, Location variants, short and long bodies,
   * 416, 401 and a token that expires */
  s.n = 0;
  sb_start(&s);
  sb(&s, 4, OP_ANSWER_UP, 0x50, 0x00, 0); /* POST: an absolute Location */
  sb(&s, 4, OP_ANSWER_UP, 0x40, 0x00, 0); /* PATCH: Upload-Offset 2^64-1 */
  sb(&s, 1, OP_TICK(5));
  sb(&s, 4, OP_ANSWER_UP, 0x30, 0x80, 0xff); /* HEAD: one byte less, nothing done */
  sb(&s, 1, OP_TICK(6));
  sb(&s, 5, OP_ANSWER_GET, 0x00, 0x02, 0x10, 0x00); /* short */
  sb(&s, 1, OP_TICK(6));
  sb(&s, 4, OP_ANSWER_GET, 0x00, 0x03, 0x20);       /* long */
  sb(&s, 3, OP_ANSWER_UP, 0x05, 0x00);              /* 401 */
  sb(&s, 1, OP_TICK(6));
  sb(&s, 2, OP_TOKEN, 3);                           /* expires in 59 s */
  sb(&s, 1, OP_TICK(6));
  sb(&s, 3, OP_ANSWER_GET, 0x0B, 0x04);             /* 416, empty */
  sb(&s, 1, OP_TICK(14));
  sb_honest(&s, OP_HONEST_ANY, 6);
  run_input(s.b, s.n);
  write_seed(dir, "lying_store", &s);

  /* 6. the store claims the whole upload at the first PATCH */
  s.n = 0;
  sb_start(&s);
  sb(&s, 1, OP_HONEST_UP);
  sb(&s, 3, OP_ANSWER_UP, 0xC0, 0x00);
  sb(&s, 1, OP_TICK(5));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_patch == 1, "upload_claimed_whole");
  write_seed(dir, "upload_claimed_whole", &s);

  /* 7. the first attachment without a path: the plaintext as events */
  s.n = 0;
  sb(&s, 1, OP_APP(2));
  sb(&s, 1, OP_TICK(1));
  sb_honest(&s, OP_HONEST_GET, 2);
  sb(&s, 1, OP_CRASH);
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_GET, 3);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_dl_done[0] == 1 && H.n_data[0] >= 1, "download_events");
  write_seed(dir, "download_events", &s);

  /* regression: two jobs of one conversation at once (they shared their blob
   * file in media_dir: a second download re-read the first one's bytes, a
   * second upload's encryption overwrote the first one's blob) */
  s.n = 0;
  sb(&s, 1, OP_TICK(1));
  sb(&s, 1, OP_HONEST_GET);  /* the first attachment's first piece */
  sb(&s, 1, OP_APP(3));      /* the second one's download */
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_GET, 6);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_dl_done[0] == 1 && H.n_dl_done[1] == 1, "two_downloads");
  write_seed(dir, "two_downloads", &s);
  s.n = 0;
  sb(&s, 1, OP_APP(4));      /* up2.bin too */
  sb_start(&s);
  sb(&s, 1, OP_TICK(1));
  sb_honest(&s, OP_HONEST_UP, 12);
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_UP, 4);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_post == 2 && H.n_up_sent_ev == 1, "two_uploads");
  write_seed(dir, "two_uploads", &s);

  /* regression: a token with a line break (and one with a control byte) went
   * into the Authorization header as it came */
  s.n = 0;
  sb(&s, 1, OP_TICK(0));
  sb(&s, 3, OP_TOKEN_APPEND, 0, 15);
  sb_bytes(&s, "\r\nX-Injected: 1", 15);
  sb(&s, 1, OP_TICK(1));     /* (no POST: refused, the upload waits) */
  sb(&s, 1, OP_TICK(5));     /* UploadAuth again */
  sb(&s, 2, OP_TOKEN, 0);
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_UP, 6);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_token == 2 && H.n_post == 1 && H.n_sent_up == 1, "token_crlf");
  write_seed(dir, "token_crlf", &s);

  /* regression: a stored job that names no state (here: an empty record)
   * was given to the app with state 0 */
  s.n = 0;
  sb(&s, 3, OP_PLANT(2), 0, 0);
  sb(&s, 1, OP_APP(0));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_get_corrupt == 1, "media_get_empty_record");
  write_seed(dir, "media_get_empty_record", &s);

  /* 8. the view-once attachment: opened once (DOWNLOADED, then OPENED: the
   * wipe, the notice to alice's devices and bob's receipt go out), then
   * refused; a plain download of it is refused too */
  s.n = 0;
  sb(&s, 1, OP_APP(8));
  sb(&s, 1, OP_TICK(1));
  sb_honest(&s, OP_HONEST_GET, 2);
  sb(&s, 1, OP_APP(8));
  sb(&s, 1, OP_APP(10));
  sb(&s, 1, OP_APP(0));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_dl_done[2] == 1 && H.n_opened == 1 && H.n_denied == 2, "view_once");
  write_seed(dir, "view_once", &s);

  /* the second attachment's pointer has no incremental MAC: nothing is
   * written until the whole blob verified (two passes) */
  s.n = 0;
  sb(&s, 1, OP_APP(3));
  sb(&s, 1, OP_TICK(1));
  sb(&s, 1, OP_HONEST_GET);
  sb(&s, 1, OP_APP(0));
  sb(&s, 1, OP_APP(6));      /* again, without a path */
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_GET, 4);
  sb(&s, 1, OP_APP(12));
  run_input(s.b, s.n);
  SEED_CHECK(H.n_dl_done[1] >= 1 && H.n_data[1] >= 1, "download_two_pass");
  write_seed(dir, "download_two_pass", &s);

  /* regression: media_dir emptied mid-upload: the blob is made again (the
   * same key and IV) and the upload goes on; making it again leaked the
   * first encryption's pointer fields */
  s.n = 0;
  sb_start(&s);
  sb_honest(&s, OP_HONEST_UP, 2); /* POST, PATCH 1 */
  sb(&s, 1, OP_APP(13));
  sb_honest(&s, OP_HONEST_UP, 1); /* PATCH 2: the file is gone, not sent */
  sb(&s, 1, OP_TICK(5));          /* encrypted again */
  sb(&s, 1, OP_TICK(5));
  sb_honest(&s, OP_HONEST_UP, 6);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_post == 1 && H.n_sent_up == 1, "media_dir_emptied");
  write_seed(dir, "media_dir_emptied", &s);

  /* the second file shrinks before it is encrypted (ESIZE); then it is
   * gone (ENOTFOUND) */
  s.n = 0;
  sb(&s, 2, OP_APP(4), OP_APP(14));
  sb(&s, 1, OP_TICK(1));
  sb(&s, 2, OP_APP(4), OP_APP(15));
  sb(&s, 1, OP_TICK(1));
  sb(&s, 1, OP_APP(4));
  run_input(s.b, s.n);
  write_seed(dir, "second_file_shrinks", &s);

  /* 8. the records planted as they are, then a download and an upload record changed */
  s.n = 0;
  sb(&s, 1, OP_PLANT(0));
  sb(&s, 2, (int)(G.rec_j->len >> 8), (int)(G.rec_j->len & 0xff));
  sb_bytes(&s, G.rec_j->data, G.rec_j->len);
  sb(&s, 1, OP_PLANT(1));
  sb(&s, 2, (int)(G.rec_up->len >> 8), (int)(G.rec_up->len & 0xff));
  sb_bytes(&s, G.rec_up->data, G.rec_up->len);
  sb(&s, 1, OP_PLANT(2));
  sb(&s, 2, (int)(G.rec_dl->len >> 8), (int)(G.rec_dl->len & 0xff));
  sb_bytes(&s, G.rec_dl->data, G.rec_dl->len);
  sb_start(&s);
  sb_honest(&s, OP_HONEST_ANY, 12);
  run_input(s.b, s.n);
  SEED_CHECK(H.n_sent_up == 1 && H.n_dl_done[0] == 1, "planted_as_they_are");
  write_seed(dir, "planted_as_they_are", &s);
  {
    Whisper__Client__MediaJob *m = whisper__client__media_job__unpack(NULL, G.rec_up->len, G.rec_up->data);
    m->url = "/v1/blobs/fzup00";
    m->has_offset = 1;
    m->offset = 3 * PIECE;
    uint8_t buf[2048];
    size_t n = whisper__client__media_job__get_packed_size(m);
    FZ_ASSERT(n <= sizeof buf, "record size");
    whisper__client__media_job__pack(m, buf);
    m->url = NULL;
    whisper__client__media_job__free_unpacked(m, NULL);
    s.n = 0;
    sb(&s, 3, OP_PLANT(1), (int)(n >> 8), (int)(n & 0xff));
    sb_bytes(&s, buf, n);
    sb_start(&s);
    sb_honest(&s, OP_HONEST_UP, 4);
    write_seed(dir, "planted_upload_url", &s);
    /* a total past the blob file's end: the last piece is short, the
     * blob is made again (the same key and IV) */
    m = whisper__client__media_job__unpack(NULL, G.rec_up->len, G.rec_up->data);
    m->has_total = 1;
    m->total += 4096;
    n = whisper__client__media_job__get_packed_size(m);
    FZ_ASSERT(n <= sizeof buf, "record size");
    whisper__client__media_job__pack(m, buf);
    whisper__client__media_job__free_unpacked(m, NULL);
    s.n = 0;
    sb(&s, 3, OP_PLANT(1), (int)(n >> 8), (int)(n & 0xff));
    sb_bytes(&s, buf, n);
    sb_start(&s);
    sb_honest(&s, OP_HONEST_UP, 5);
    sb(&s, 1, OP_TICK(5));
    sb_honest(&s, OP_HONEST_UP, 5);
    write_seed(dir, "planted_upload_total_past_blob", &s);
    m = whisper__client__media_job__unpack(NULL, G.rec_dl->len, G.rec_dl->data);
    m->has_view_once = 1;
    m->view_once = 1;
    m->has_total = 1;
    m->total = 100;
    n = whisper__client__media_job__get_packed_size(m);
    FZ_ASSERT(n <= sizeof buf, "record size");
    whisper__client__media_job__pack(m, buf);
    whisper__client__media_job__free_unpacked(m, NULL);
    s.n = 0;
    sb(&s, 3, OP_PLANT(2), (int)(n >> 8), (int)(n & 0xff));
    sb_bytes(&s, buf, n);
    sb(&s, 1, OP_TICK(1));
    sb_honest(&s, OP_HONEST_GET, 4);
    write_seed(dir, "planted_download_changed", &s);
  }
  s.n = 0;
  sb(&s, 1, OP_PLANT(4)); /* J deleted */
  sb_start(&s);
  write_seed(dir, "planted_no_index", &s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int seeded;
  if (!G.ready) world_new();
  if (!seeded && getenv("FUZZ_WRITE_SEEDS")) write_seeds(getenv("FUZZ_WRITE_SEEDS"));
  seeded = 1;
  run_input(data, size);
  return 0;
}

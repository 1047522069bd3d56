/* Attachments through the engine (media.c): engines on the real server
 * core, with a blob store in the test speaking the same tus requests as
 * whisperd's (tests/integration/blobs.js tests that one), so that a crash,
 * a lying blob store and every failure can be placed exactly. Files are
 * real files in a temporary directory; the stores are SQLite. */
#include <fcntl.h>
#include <strings.h>

#include "sync_net.h"

/* --- a blob store ------------------------------------------------------------------------- */

#define MAX_BLOBS 32

typedef struct blob {
  char id[33];
  char owner[80];
  uint32_t owner_dev;
  uint8_t *data;
  uint64_t len, length; /* bytes in, Upload-Length */
  int gone;
} blob;

typedef struct blobstore {
  blob b[MAX_BLOBS];
  int n;
  int posts, patches, heads, gets;
  uint64_t bytes_in, bytes_out, first_patch_offset_after_crash;
  node *crash_uploader;      /* crashes after crash_after PATCHes taken (the answer lost) */
  node *crash_downloader;    /* the same after crash_after GETs */
  int crash_after, count;
  int flip_at;               /* >0: GET answers flip the bit at this blob offset (a lying store) */
  int64_t cut_to;            /* >=0: GET serves the blob as if it had only these bytes */
  int unauthorized;          /* requests refused for a missing or bad token */
} blobstore;

static const char *hdr_get(const char *h, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = h; p && *p;) {
    const char *e = strstr(p, "\r\n");
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') v++;
      size_t vl = l - (size_t)(v - p);
      if (vl >= cap) return NULL;
      memcpy(out, v, vl);
      out[vl] = 0;
      return out;
    }
    p = e ? e + 2 : NULL;
  }
  return NULL;
}

static blob *blob_find(blobstore *s, const char *path) {
  if (strncmp(path, "/v1/blobs/", 10) != 0) return NULL;
  for (int i = 0; i < s->n; i++)
    if (!s->b[i].gone && strcmp(s->b[i].id, path + 10) == 0) return &s->b[i];
  return NULL;
}

/* One request: the status, headers into hdr, body into *body (malloc'd). */
static int serve(net *n, blobstore *s, const whisper_http_request_t *r, char *hdr, size_t hcap,
                 uint8_t **body, size_t *blen) {
  char v[600], acct[80];
  uint32_t dev = 0;
  *body = NULL;
  *blen = 0;
  hdr[0] = 0;
  int authed = hdr_get(r->headers, "Authorization", v, sizeof v) && strncmp(v, "Bearer ", 7) == 0 &&
               whisper_server_upload_token_check(n->srv, v + 7, strlen(v + 7), n->now, acct,
                                                 sizeof acct, &dev) == WHISPER_OK;
  if (strcmp(r->method, "GET") == 0) {
    s->gets++;
    blob *b = blob_find(s, r->path);
    if (b == NULL || b->len < b->length) return 404;
    uint64_t have = s->cut_to >= 0 && (uint64_t)s->cut_to < b->len ? (uint64_t)s->cut_to : b->len;
    unsigned long long a = 0, z = have - 1;
    if (hdr_get(r->headers, "Range", v, sizeof v) && sscanf(v, "bytes=%llu-%llu", &a, &z) < 1) return 400;
    if (a >= have) return 416;
    if (z >= have) z = have - 1;
    *blen = (size_t)(z - a + 1);
    *body = malloc(*blen);
    memcpy(*body, b->data + a, *blen);
    if (s->flip_at > 0 && (uint64_t)s->flip_at >= a && (uint64_t)s->flip_at <= z)
      (*body)[s->flip_at - a] ^= 0x04;
    s->bytes_out += *blen;
    return 206;
  }
  if (!authed) {
    s->unauthorized++;
    return 401;
  }
  if (strcmp(r->method, "POST") == 0) {
    s->posts++;
    if (s->n == MAX_BLOBS || !hdr_get(r->headers, "Upload-Length", v, sizeof v)) return 400;
    blob *b = &s->b[s->n++];
    snprintf(b->id, sizeof b->id, "b%031d", s->n);
    snprintf(b->owner, sizeof b->owner, "%s", acct);
    b->owner_dev = dev;
    b->length = strtoull(v, NULL, 10);
    b->data = malloc(b->length ? b->length : 1);
    snprintf(hdr, hcap, "Location: http://127.0.0.1:1/v1/blobs/%s\r\n" "Tus-Resumable: 1.0.0\r\n", b->id);
    return 201;
  }
  blob *b = blob_find(s, r->path);
  if (b == NULL) return 404;
  if (strcmp(b->owner, acct) != 0 || b->owner_dev != dev) return 403;
  if (strcmp(r->method, "HEAD") == 0) {
    s->heads++;
    snprintf(hdr, hcap, "Upload-Offset: %llu\r\nUpload-Length: %llu\r\n", (unsigned long long)b->len,
             (unsigned long long)b->length);
    return 200;
  }
  if (strcmp(r->method, "PATCH") == 0) {
    if (!hdr_get(r->headers, "Upload-Offset", v, sizeof v)) return 400;
    uint64_t off = strtoull(v, NULL, 10);
    if (off != b->len) return 409;
    if (b->len + r->body_len > b->length) return 413;
    if (s->first_patch_offset_after_crash == UINT64_MAX) s->first_patch_offset_after_crash = off;
    s->patches++;
    memcpy(b->data + b->len, r->body, r->body_len);
    b->len += r->body_len;
    s->bytes_in += r->body_len;
    snprintf(hdr, hcap, "Upload-Offset: %llu\r\n", (unsigned long long)b->len);
    return 204;
  }
  return 405;
}

static void blobs_free(blobstore *s) {
  for (int i = 0; i < s->n; i++) free(s->b[i].data);
}

static int http_hook(net *n, node *d, void *arg) {
  blobstore *s = arg;
  int moved = 0;
  /* a versioned struct (docs/api.md): a size below 1.0's is refused,
   * nothing taken or written; requests are taken into a later caller's
   * bigger struct, its newer field left alone */
  whisper_http_request_t old;
  memset(&old, 0x5a, sizeof old);
  old.size = (size_t)(n->now & 1) ? WHISPER_HTTP_REQUEST_SIZE_1_0 - 1 : 0;
  if (d->cl) CHECK_RC(whisper_client_take_http(d->cl, &old), WHISPER_EINVAL);
  CHECK(old.handle == 0x5a5a5a5a5a5a5a5aull && old.body_len == 0x5a5a5a5a5a5a5a5aull);
  struct later_request {
    whisper_http_request_t r;
    uint64_t newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.r.size = sizeof later;
  while (d->cl && whisper_client_take_http(d->cl, &later.r) > 0) {
    CHECK(later.r.size == sizeof later && later.newer == 0x5a5a5a5a5a5a5a5aull);
    whisper_http_request_t r = later.r;
    moved = 1;
    char hdr[600];
    uint8_t *body = NULL;
    size_t blen = 0;
    int status = serve(n, s, &r, hdr, sizeof hdr, &body, &blen);
    int patch = strcmp(r.method, "PATCH") == 0, get = strcmp(r.method, "GET") == 0;
    uint64_t handle = r.handle;
    if (((d == s->crash_uploader && patch) || (d == s->crash_downloader && get)) &&
        ++s->count == s->crash_after) {
      free(body);
      s->crash_uploader = s->crash_downloader = NULL;
      node_crash(n, d); /* the answer is lost with the process */
      return 1;
    }
    CHECK_RC(whisper_client_http_done(d->cl, handle, status, hdr, body, blen, n->now), WHISPER_OK);
    free(body);
    record(d);
  }
  return moved;
}

/* --- helpers ------------------------------------------------------------------------------ */

static char tmpdir[100];

static node *media_account(net *n, const char *name) { return account_new(n, name, 1); }

static void write_file(const char *path, size_t n, uint32_t seed) {
  FILE *f = fopen(path, "wb");
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    fputc((int)(seed >> 16) & 0xFF, f);
  }
  fclose(f);
}

static int same_files(const char *a, const char *b) {
  FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
  int same = x && y;
  while (same) {
    int p = fgetc(x), q = fgetc(y);
    if (p != q) same = 0;
    if (p == EOF || q == EOF) break;
  }
  if (x) fclose(x);
  if (y) fclose(y);
  return same;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* Files in a directory (the media_dir's blobs in flight). */
static int files_in(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
  FILE *p = popen(cmd, "r");
  int k = -1;
  if (p && fscanf(p, "%d", &k) != 1) k = -1;
  if (p) pclose(p);
  return k;
}

static const rec_event *last_media(const node *d, const uint8_t id[16]) {
  const rec_event *last = NULL;
  for (int i = 0; i < d->n_ev; i++)
    if (d->ev[i].type == WHISPER_EV_MEDIA && memcmp(d->ev[i].id, id, 16) == 0) last = &d->ev[i];
  return last;
}

static int media_state(node *d, const char *conv, const uint8_t id[16], const char *sender) {
  whisper_media_t *m = NULL;
  int rc = whisper_client_media_get(d->cl, conv, id, 16, sender, &m);
  int st = rc == WHISPER_OK ? m->state : rc;
  whisper_media_free(m);
  return st;
}

/* The id of the last attachment message d got. */
static int last_attachment(const node *d, uint8_t id[16]) {
  for (int i = d->n_ev - 1; i >= 0; i--)
    if (d->ev[i].type == WHISPER_EV_MESSAGE && d->ev[i].kind == WHISPER_KIND_ATTACHMENT) {
      memcpy(id, d->ev[i].id, 16);
      return 1;
    }
  return 0;
}

static void settle(net *n) {
  for (int i = 0; i < 20; i++) net_advance(n, 100);
}

/* WHISPER_EV_MEDIA_DATA pieces, gathered */
static struct {
  uint8_t *p;
  size_t n, cap;
  int in_order;
} collected = {NULL, 0, 0, 1};
static node *collect_from;

static void collect(struct node *d, const whisper_client_event_t *e) {
  if (d != collect_from || e->type != WHISPER_EV_MEDIA_DATA) return;
  if (e->done_bytes != collected.n) collected.in_order = 0;
  if (collected.n + e->body_len > collected.cap) {
    collected.cap = (collected.n + e->body_len) * 2;
    collected.p = realloc(collected.p, collected.cap);
  }
  memcpy(collected.p + collected.n, e->body, e->body_len);
  collected.n += e->body_len;
}

static int same_bytes(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "rb");
  int same = f != NULL;
  for (size_t i = 0; same && i < n; i++) same = fgetc(f) == p[i];
  if (f) same = same && fgetc(f) == EOF, fclose(f);
  return same;
}

/* --- the tests ------------------------------------------------------------------------------- */

static void test_send_and_download(void) {
  net n;
  blobstore s = {0};
  s.cut_to = -1;
  net_open(&n);
  n.http = http_hook;
  n.http_arg = &s;
  node *alice = media_account(&n, "alice"), *bob = media_account(&n, "bob");
  settle(&n);
  char src[256], dst[256];
  snprintf(src, sizeof src, "%s/photo.jpg", tmpdir);
  snprintf(dst, sizeof dst, "%s/bob-photo.jpg", tmpdir);
  size_t size = 300 * 1024 + 7;
  write_file(src, size, 1);
  uint8_t thumb[100];
  memset(thumb, 0xAB, sizeof thumb);
  whisper_media_meta_t meta = {.size = sizeof meta, .content_type = "image/jpeg", .file_name = "photo.jpg", .width = 640,
                               .height = 480, .caption = "the lake", .thumbnail = thumb,
                               .thumbnail_len = sizeof thumb};
  uint8_t id[16], got[16];
  /* a versioned struct (docs/api.md): a size below 1.0's is refused,
   * nothing sent; a later caller's bigger struct is read up to the fields
   * the library knows (its newer ones, garbage here, ignored) */
  whisper_media_meta_t old = meta;
  for (int k = 0; k < 2; k++) {
    old.size = k ? WHISPER_MEDIA_META_SIZE_1_0 - 1 : 0;
    CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &old, n.now, id), WHISPER_EINVAL);
    CHECK(strstr(whisper_ctx_last_error(alice->ctx), "WHISPER_MEDIA_META_INIT") != NULL);
  }
  struct later_meta {
    whisper_media_meta_t m;
    const char *newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.m = meta;
  later.m.size = sizeof later;
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &later.m, n.now, id), WHISPER_OK);
  settle(&n);
  CHECK(s.posts == 1 && s.bytes_in == whisper_attachment_blob_size(size));
  CHECK(s.patches == (int)((whisper_attachment_blob_size(size) + 65535) / 65536));
  CHECK(last_media(alice, id) && last_media(alice, id)->status == WHISPER_MEDIA_SENT);
  CHECK(media_state(alice, "bob", id, NULL) == WHISPER_MEDIA_SENT);
  CHECK(files_in(alice->media_dir) == 0); /* the encrypted blob went with the upload */
  /* progress: encrypting, then uploading with growing offsets */
  uint64_t last = 0;
  int ups = 0, monotonic = 1;
  for (int i = 0; i < alice->n_ev; i++)
    if (alice->ev[i].type == WHISPER_EV_MEDIA && alice->ev[i].status == WHISPER_MEDIA_UPLOADING) {
      ups++;
      monotonic &= alice->ev[i].done >= last;
      last = alice->ev[i].done;
    }
  CHECK(ups >= 4 && monotonic);
  /* bob got the message: an attachment he has not downloaded */
  CHECK(last_attachment(bob, got) && memcmp(got, id, 16) == 0);
  const rec_event *msg = ev_find(bob, WHISPER_EV_MESSAGE, 0);
  CHECK(msg && msg->kind == WHISPER_KIND_ATTACHMENT && strcmp(msg->body, "the lake") == 0);
  whisper_media_t *m = NULL;
  CHECK_RC(whisper_client_media_get(bob->cl, "alice", id, 16, "alice", &m), WHISPER_OK);
  CHECK(m && m->state == WHISPER_MEDIA_REMOTE && m->size == size && m->width == 640 &&
        m->height == 480 && strcmp(m->content_type, "image/jpeg") == 0 &&
        strcmp(m->file_name, "photo.jpg") == 0 && strcmp(m->caption, "the lake") == 0 &&
        m->thumbnail_len == sizeof thumb && memcmp(m->thumbnail, thumb, sizeof thumb) == 0);
  whisper_media_free(m);
  /* the download: verified as it comes, written where bob said */
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
  settle(&n);
  CHECK(media_state(bob, "alice", id, "alice") == WHISPER_MEDIA_DOWNLOADED);
  CHECK(same_files(src, dst));
  CHECK(files_in(bob->media_dir) == 0);
  /* or without a file: the verified bytes come as events, in order */
  collected.n = 0;
  collect_from = bob;
  net_on_event = collect;
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", NULL, n.now), WHISPER_OK);
  settle(&n);
  net_on_event = NULL;
  CHECK(media_state(bob, "alice", id, "alice") == WHISPER_MEDIA_DOWNLOADED);
  CHECK(collected.n == size && collected.in_order && same_bytes(src, collected.p, collected.n));
  /* the same file again: the blob is not uploaded twice */
  int posts = s.posts;
  uint64_t in = s.bytes_in;
  uint8_t id2[16];
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &meta, n.now, id2), WHISPER_OK);
  settle(&n);
  CHECK(s.posts == posts && s.bytes_in == in);
  CHECK(last_attachment(bob, got) && memcmp(got, id2, 16) == 0);
  snprintf(dst, sizeof dst, "%s/bob-photo2.jpg", tmpdir);
  CHECK_RC(whisper_client_download(bob->cl, "alice", id2, 16, "alice", dst, n.now), WHISPER_OK);
  settle(&n);
  CHECK(same_files(src, dst));
  /* bob forwards it to carol: no upload at all */
  node *carol = media_account(&n, "carol");
  settle(&n);
  uint8_t fid[16];
  CHECK_RC(whisper_client_forward(bob->cl, "carol", "alice", id, 16, "alice", n.now, fid), WHISPER_OK);
  settle(&n);
  CHECK(s.posts == posts && s.bytes_in == in);
  CHECK(last_attachment(carol, got) && memcmp(got, fid, 16) == 0);
  const rec_event *fm = ev_find(carol, WHISPER_EV_MESSAGE, 0);
  CHECK(fm && fm->forwarded == 1);
  snprintf(dst, sizeof dst, "%s/carol-photo.jpg", tmpdir);
  CHECK_RC(whisper_client_download(carol->cl, "bob", fid, 16, "bob", dst, n.now), WHISPER_OK);
  settle(&n);
  CHECK(same_files(src, dst));
  /* bad calls change nothing */
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", "/no/such/file", NULL, n.now, id2), WHISPER_ENOTFOUND);
  meta.file_name = "a/b";
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &meta, n.now, id2), WHISPER_EINVAL);
  CHECK_RC(whisper_client_download(bob->cl, "alice", (const uint8_t *)"nope", 4, "alice", dst, n.now),
           WHISPER_ENOTFOUND);
  CHECK(s.unauthorized == 0);
  net_close(&n);
  blobs_free(&s);
}

/* The sender dies mid-upload: after the restart the upload goes on from
 * the offset the store acknowledged, with the same blob. */
static void test_upload_crash(void) {
  net n;
  blobstore s = {0};
  s.cut_to = -1;
  net_open(&n);
  n.http = http_hook;
  n.http_arg = &s;
  node *alice = media_account(&n, "alice"), *bob = media_account(&n, "bob");
  settle(&n);
  char src[256], dst[256];
  snprintf(src, sizeof src, "%s/video.mp4", tmpdir);
  snprintf(dst, sizeof dst, "%s/bob-video.mp4", tmpdir);
  size_t size = 1024 * 1024 + 333;
  write_file(src, size, 2);
  uint8_t id[16], got[16];
  whisper_media_meta_t meta = {.size = sizeof meta, .content_type = "video/mp4", .duration_ms = 4000};
  s.crash_uploader = alice;
  s.crash_after = 5; /* the 5th PATCH is stored, its answer lost */
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &meta, n.now, id), WHISPER_OK);
  settle(&n);
  CHECK(alice->cl == NULL && s.patches == 5);
  CHECK(!last_attachment(bob, got)); /* nothing was sent before the upload ended */
  s.first_patch_offset_after_crash = UINT64_MAX;
  node_restart(alice);
  settle(&n);
  CHECK(s.posts == 1 && s.heads >= 1);
  CHECK(s.first_patch_offset_after_crash == 5 * 65536); /* from where the store stood */
  CHECK(s.bytes_in == whisper_attachment_blob_size(size)); /* no byte twice */
  CHECK(last_attachment(bob, got) && memcmp(got, id, 16) == 0);
  CHECK(ev_count(bob, WHISPER_EV_MESSAGE) == 1); /* once */
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
  /* bob dies mid-download: the blob bytes he has are verified again, the rest fetched */
  s.crash_downloader = bob;
  s.crash_after = 8;
  s.count = 0;
  settle(&n);
  CHECK(bob->cl == NULL && s.gets == 8);
  node_restart(bob);
  CHECK(media_state(bob, "alice", id, "alice") == WHISPER_MEDIA_DOWNLOADING);
  uint64_t out_before = s.bytes_out;
  settle(&n);
  CHECK(media_state(bob, "alice", id, "alice") == WHISPER_MEDIA_DOWNLOADED);
  CHECK(same_files(src, dst));
  /* the 7 pieces taken before the crash were not fetched again (the 8th was lost with bob) */
  CHECK(s.bytes_out - out_before == whisper_attachment_blob_size(size) - 7 * 65536);
  net_close(&n);
  blobs_free(&s);
}

/* A blob store that lies or loses: the download fails with its own error
 * and leaves no file. */
static void test_bad_blobs(void) {
  net n;
  blobstore s = {0};
  s.cut_to = -1;
  net_open(&n);
  n.http = http_hook;
  n.http_arg = &s;
  node *alice = media_account(&n, "alice"), *bob = media_account(&n, "bob");
  settle(&n);
  char src[256], dst[256];
  snprintf(src, sizeof src, "%s/doc.pdf", tmpdir);
  snprintf(dst, sizeof dst, "%s/bob-doc.pdf", tmpdir);
  size_t size = 200 * 1024;
  write_file(src, size, 3);
  uint8_t id[16];
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, NULL, n.now, id), WHISPER_OK);
  settle(&n);
  struct { int flip; int64_t cut; int err; } cases[] = {
      {70000, -1, WHISPER_EINTEGRITY},  /* a flipped bit in the second chunk */
      {5, -1, WHISPER_EINTEGRITY},      /* in the IV */
      {0, 150000, WHISPER_ETRUNCATED},  /* the store has only part of it */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    s.flip_at = cases[k].flip;
    s.cut_to = cases[k].cut;
    ev_clear(bob);
    CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
    settle(&n);
    const rec_event *e = last_media(bob, id);
    CHECK(e && e->status == WHISPER_MEDIA_FAILED && e->code == cases[k].err);
    CHECK(!exists(dst)); /* nothing unverified left */
    CHECK(files_in(bob->media_dir) == 0);
    whisper_media_t *m = NULL;
    CHECK_RC(whisper_client_media_get(bob->cl, "alice", id, 16, "alice", &m), WHISPER_OK);
    CHECK(m && m->state == WHISPER_MEDIA_FAILED && m->error == cases[k].err);
    whisper_media_free(m);
  }
  /* the blob expired on the server */
  s.flip_at = 0;
  s.cut_to = -1;
  s.b[0].gone = 1;
  ev_clear(bob);
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
  settle(&n);
  const rec_event *e = last_media(bob, id);
  CHECK(e && e->status == WHISPER_MEDIA_FAILED && e->code == WHISPER_ENOTFOUND && !exists(dst));
  /* and back: a retry works */
  s.b[0].gone = 0;
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
  settle(&n);
  CHECK(same_files(src, dst));
  net_close(&n);
  blobs_free(&s);
}

/* View once: opened once on one device, gone on every device of the
 * account, the sender told end to end. */
static void test_view_once(void) {
  net n;
  blobstore s = {0};
  s.cut_to = -1;
  net_open(&n);
  n.http = http_hook;
  n.http_arg = &s;
  node *alice = media_account(&n, "alice"), *bob = media_account(&n, "bob");
  settle(&n);
  node *bob2 = device_link(&n, bob, 2, 1);
  settle(&n);
  char src[256], dst[256];
  snprintf(src, sizeof src, "%s/secret.jpg", tmpdir);
  snprintf(dst, sizeof dst, "%s/bob-secret.jpg", tmpdir);
  write_file(src, 50000, 4);
  whisper_media_meta_t meta = {.size = sizeof meta, .content_type = "image/jpeg", .flags = WHISPER_MEDIA_VIEW_ONCE};
  uint8_t id[16], got[16], fid[16];
  CHECK_RC(whisper_client_send_file(alice->cl, "bob", src, &meta, n.now, id), WHISPER_OK);
  settle(&n);
  CHECK(last_attachment(bob, got) && last_attachment(bob2, got));
  CHECK_RC(whisper_client_download(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_EDENIED);
  CHECK_RC(whisper_client_forward(bob->cl, "alice", "alice", id, 16, "alice", n.now, fid), WHISPER_EDENIED);
  CHECK_RC(whisper_client_view_once_open(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_OK);
  settle(&n);
  CHECK(same_files(src, dst)); /* the app shows it, then deletes it */
  CHECK(media_state(bob, "alice", id, "alice") == WHISPER_MEDIA_OPENED);
  CHECK(media_state(bob2, "alice", id, "alice") == WHISPER_MEDIA_OPENED); /* gone there too */
  CHECK_RC(whisper_client_view_once_open(bob->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_EDENIED);
  CHECK_RC(whisper_client_view_once_open(bob2->cl, "alice", id, 16, "alice", dst, n.now), WHISPER_EDENIED);
  CHECK(ev_status(alice, id, "bob", 1, WHISPER_STATUS_OPENED)); /* alice sees it was opened */
  /* a view-once opening that does not come from bob's own account is refused */
  net_close(&n);
  blobs_free(&s);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/whisper-media-%d", (int)getpid());
  mkdir(tmpdir, 0700);
  snprintf(dbdir, sizeof dbdir, "%s", tmpdir);
  snprintf(net_media_root, sizeof net_media_root, "%s", tmpdir);
  net_media_piece = 64 * 1024;
  test_send_and_download();
  test_upload_crash();
  test_bad_blobs();
  test_view_once();
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  free(collected.p);
  return test_done();
}

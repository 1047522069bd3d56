/*
 * whisperd: the blob store on disk (blobs.h says what it is for).
 *
 * One directory (--blob-dir, default "blobs" beside the database), made
 * on the first upload and locked with flock() while whisperd runs:
 *
 *   owner.key     32 random bytes: the key of the owner tags
 *   <id>.data     the bytes uploaded so far (<id>: 64 hex digits)
 *   <id>.meta     what the store knows of it, text:
 *                   whisper-blob 1
 *                   owner <tag, 32 hex digits> <device id>
 *                   length <Upload-Length>
 *                   offset <bytes acknowledged>
 *                   created <ms>
 *   <id>.meta.tmp the next metadata, before its rename
 *
 * A blob exists once its metadata does. Writes go: data, fsync; metadata
 * to the temporary file, fsync, rename, fsync of the directory. So after a
 * crash the metadata holds an acknowledged offset and the data file has at
 * least that many bytes; startup cuts the data back to it (bytes past it
 * were never acknowledged), deletes the temporary files and the data files
 * without metadata (a creation that did not finish), and sweeps the
 * expired blobs.
 *
 * The owner tag is BLAKE2b-128 of the account name keyed with owner.key,
 * so the directory names no account. Losing owner.key loses who owns
 * what: the blobs stay downloadable and expire, but cannot be resumed or
 * deleted by their uploaders, and count for nobody's quota.
 *
 * An id is the capability to download a blob: the log shows only its
 * first 8 hex digits.
 *
 * The index: blobs by id and bytes (Upload-Length) per owner account, in
 * two chained hash tables; ids and tags are random, so their first bytes
 * are the hash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "blobs.h"

#define KEY_FILE "owner.key"
#define KEY_LEN 32
#define META_MAX 512

/* Bytes of one account's blobs. */
typedef struct usage {
  struct usage *next;
  uint8_t tag[WD_BLOB_TAG_LEN];
  uint64_t bytes;
  uint64_t blobs;
} usage;

struct wd_blobs {
  char *dir;
  int dfd; /* the directory, locked; -1 until it is made */
  uint8_t key[KEY_LEN];
  uint64_t ttl_ms;
  wd_blob **blobs; /* by id */
  size_t cap, count;
  usage **users; /* by owner tag */
  size_t ucap, ucount;
  uint64_t bytes; /* acknowledged, all blobs */
};

/* --- small helpers ------------------------------------------------------------ */

static void to_hex(char *out, const uint8_t *in, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = 0;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Lowercase hex only: one spelling per id. 0 or -1. */
static int from_hex(uint8_t *out, const char *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* The first 8 bytes of a random id or tag, as a bucket number. */
static size_t bucket(const uint8_t *key, size_t cap) {
  uint64_t h = 0;
  for (int i = 0; i < 8; i++) h = h << 8 | key[i];
  return (size_t)h & (cap - 1);
}

static int write_full(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? -errno : -EIO;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const wd_blobs *b) { return fsync(b->dfd) == 0 ? 0 : -errno; }

/* A file the store makes: created with mode 0600 and set to it, whatever
 * the umask (a umask of 0277 would leave it 0400, unwritable once closed).
 * The descriptor, or -errno. */
static int create_at(const wd_blobs *b, const char *name, int flags) {
  int fd = openat(b->dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
  if (fd < 0) return -errno;
  if (fchmod(fd, 0600) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static void name_of(char *out, size_t cap, const wd_blob *blob, const char *suffix) {
  snprintf(out, cap, "%s%s", blob->hex, suffix);
}

/* --- the index ------------------------------------------------------------------ */

static int blobs_grow(wd_blobs *b) {
  size_t cap = b->cap ? b->cap * 2 : 256;
  wd_blob **t = calloc(cap, sizeof *t);
  if (!t) return -ENOMEM;
  for (size_t i = 0; i < b->cap; i++)
    while (b->blobs[i]) {
      wd_blob *x = b->blobs[i];
      b->blobs[i] = x->next;
      size_t j = bucket(x->id, cap);
      x->next = t[j];
      t[j] = x;
    }
  free(b->blobs);
  b->blobs = t;
  b->cap = cap;
  return 0;
}

static usage *usage_get(const wd_blobs *b, const uint8_t tag[WD_BLOB_TAG_LEN]) {
  if (!b->ucap) return NULL;
  for (usage *u = b->users[bucket(tag, b->ucap)]; u; u = u->next)
    if (memcmp(u->tag, tag, WD_BLOB_TAG_LEN) == 0) return u;
  return NULL;
}

static int users_grow(wd_blobs *b) {
  size_t cap = b->ucap ? b->ucap * 2 : 64;
  usage **t = calloc(cap, sizeof *t);
  if (!t) return -ENOMEM;
  for (size_t i = 0; i < b->ucap; i++)
    while (b->users[i]) {
      usage *x = b->users[i];
      b->users[i] = x->next;
      size_t j = bucket(x->tag, cap);
      x->next = t[j];
      t[j] = x;
    }
  free(b->users);
  b->users = t;
  b->ucap = cap;
  return 0;
}

/* Counts a blob for its owner (sign +1) or stops counting it (-1). */
static int usage_add(wd_blobs *b, const wd_blob *blob, int sign) {
  usage *u = usage_get(b, blob->owner.tag);
  if (!u) {
    if (sign < 0) return 0;
    if (b->ucount >= b->ucap && users_grow(b)) return -ENOMEM;
    if (!(u = calloc(1, sizeof *u))) return -ENOMEM;
    memcpy(u->tag, blob->owner.tag, WD_BLOB_TAG_LEN);
    size_t j = bucket(u->tag, b->ucap);
    u->next = b->users[j];
    b->users[j] = u;
    b->ucount++;
  }
  if (sign > 0) {
    u->bytes += blob->length;
    u->blobs++;
    return 0;
  }
  u->bytes -= blob->length;
  if (--u->blobs) return 0;
  usage **pp = &b->users[bucket(u->tag, b->ucap)];
  while (*pp != u) pp = &(*pp)->next;
  *pp = u->next;
  free(u);
  b->ucount--;
  return 0;
}

static int index_put(wd_blobs *b, wd_blob *blob) {
  if (b->count >= b->cap && blobs_grow(b)) return -ENOMEM;
  if (usage_add(b, blob, +1)) return -ENOMEM;
  size_t j = bucket(blob->id, b->cap);
  blob->next = b->blobs[j];
  b->blobs[j] = blob;
  b->count++;
  b->bytes += blob->offset;
  return 0;
}

static void index_del(wd_blobs *b, wd_blob *blob) {
  wd_blob **pp = &b->blobs[bucket(blob->id, b->cap)];
  while (*pp && *pp != blob) pp = &(*pp)->next;
  if (!*pp) return;
  *pp = blob->next;
  b->count--;
  b->bytes -= blob->offset;
  usage_add(b, blob, -1);
}

static wd_blob *index_find(const wd_blobs *b, const uint8_t id[WD_BLOB_ID_LEN]) {
  if (!b->cap) return NULL;
  for (wd_blob *x = b->blobs[bucket(id, b->cap)]; x; x = x->next)
    if (memcmp(x->id, id, WD_BLOB_ID_LEN) == 0) return x;
  return NULL;
}

/* --- metadata ------------------------------------------------------------------- */

static int meta_render(const wd_blob *blob, char *out, size_t cap) {
  char tag[2 * WD_BLOB_TAG_LEN + 1];
  to_hex(tag, blob->owner.tag, WD_BLOB_TAG_LEN);
  return snprintf(out, cap,
                  "whisper-blob 1\nowner %s %lu\nlength %llu\noffset %llu\ncreated %llu\n", tag,
                  (unsigned long)blob->owner.device, (unsigned long long)blob->length,
                  (unsigned long long)blob->offset, (unsigned long long)blob->created_ms);
}

/* A decimal number ending at `end` (with *end the character expected
 * after it). 0 or -1. */
static int parse_num(const char **p, char end, uint64_t *out) {
  const char *s = *p;
  if (*s < '0' || *s > '9') return -1;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (*s != end) return -1;
  *p = s + 1;
  *out = v;
  return 0;
}

static int expect_word(const char **p, const char *word) {
  size_t n = strlen(word);
  if (strncmp(*p, word, n) != 0) return -1;
  *p += n;
  return 0;
}

/* Parses what meta_render wrote, exactly. 0 or -1. */
static int meta_parse(const char *text, wd_blob *blob) {
  const char *p = text;
  uint64_t device, length, offset, created;
  if (expect_word(&p, "whisper-blob 1\nowner ") || from_hex(blob->owner.tag, p, WD_BLOB_TAG_LEN))
    return -1;
  p += 2 * WD_BLOB_TAG_LEN;
  if (expect_word(&p, " ") || parse_num(&p, '\n', &device) || device == 0 ||
      device > 0x7FFFFFFF || expect_word(&p, "length ") || parse_num(&p, '\n', &length) ||
      expect_word(&p, "offset ") || parse_num(&p, '\n', &offset) ||
      expect_word(&p, "created ") || parse_num(&p, '\n', &created) || *p || offset > length)
    return -1;
  blob->owner.device = (uint32_t)device;
  blob->length = length;
  blob->offset = offset;
  blob->created_ms = created;
  return 0;
}

/* The blob's metadata as it is in memory, durably: temporary file,
 * fsync, rename, fsync of the directory. 0 or -errno. */
static int meta_write(wd_blobs *b, const wd_blob *blob) {
  char text[META_MAX], tmp[WD_BLOB_HEX_LEN + 16], meta[WD_BLOB_HEX_LEN + 16];
  int n = meta_render(blob, text, sizeof text);
  name_of(tmp, sizeof tmp, blob, ".meta.tmp");
  name_of(meta, sizeof meta, blob, ".meta");
  int fd = create_at(b, tmp, O_TRUNC);
  if (fd < 0) return fd;
  int rc = write_full(fd, text, (size_t)n);
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && renameat(b->dfd, tmp, b->dfd, meta) != 0) rc = -errno;
  if (rc == 0) return fsync_dir(b);
  unlinkat(b->dfd, tmp, 0);
  return rc;
}

/* --- the directory ---------------------------------------------------------------- */

static int read_key(wd_blobs *b) {
  int fd = openat(b->dfd, KEY_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t r = read(fd, b->key, KEY_LEN);
  int rc = r == KEY_LEN ? 0 : -EINVAL;
  uint8_t more;
  if (rc == 0 && read(fd, &more, 1) != 0) rc = -EINVAL;
  close(fd);
  return rc;
}

/* owner.key, made if it is missing (32 random bytes, mode 0600). */
static int load_key(wd_blobs *b) {
  int rc = read_key(b);
  if (rc != -ENOENT) return rc;
  int fd = create_at(b, KEY_FILE, O_EXCL);
  if (fd < 0) return fd;
  randombytes_buf(b->key, KEY_LEN);
  rc = write_full(fd, b->key, KEY_LEN);
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  close(fd);
  if (rc == 0) rc = fsync_dir(b);
  if (rc != 0) unlinkat(b->dfd, KEY_FILE, 0);
  return rc;
}

/* Opens (with `make`: makes) and locks the directory, and reads its key.
 * 0, -ENOENT (no directory and not `make`), or -errno. */
static int dir_open(wd_blobs *b, int make) {
  if (b->dfd >= 0) return 0;
  int made = make && mkdir(b->dir, 0700) == 0;
  if (make && !made && errno != EEXIST) return -errno;
  int fd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  if (made && fchmod(fd, 0700) != 0) { /* 0700 whatever the umask */
    int e = -errno;
    close(fd);
    return e;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
    close(fd);
    return e;
  }
  b->dfd = fd;
  int rc = load_key(b);
  if (rc != 0) {
    close(fd);
    b->dfd = -1;
  }
  return rc;
}

/* Brings the data file of a blob just read back to its metadata. 0, or -1
 * when the blob cannot be kept (no data file). */
static int repair(wd_blobs *b, wd_blob *blob) {
  char data[WD_BLOB_HEX_LEN + 16];
  struct stat st;
  name_of(data, sizeof data, blob, ".data");
  if (fstatat(b->dfd, data, &st, 0) != 0) {
    wd_warn("blobs: %.8s... has metadata but no data (%s); dropped", blob->hex, strerror(errno));
    return -1;
  }
  if ((uint64_t)st.st_size > blob->offset) {
    /* bytes written past the last acknowledged offset before a crash */
    int fd = openat(b->dfd, data, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)blob->offset) != 0 || fsync(fd) != 0) {
      wd_warn("blobs: cannot cut %.8s... back to its offset: %s; dropped", blob->hex, strerror(errno));
      if (fd >= 0) close(fd);
      return -1;
    }
    close(fd);
    wd_info("blobs: %.8s... cut back from %lld to %llu bytes (unacknowledged after a crash)", blob->hex,
            (long long)st.st_size, (unsigned long long)blob->offset);
  } else if ((uint64_t)st.st_size < blob->offset) {
    wd_warn("blobs: %.8s... has %lld bytes of data, its metadata says %llu; taking %lld", blob->hex,
            (long long)st.st_size, (unsigned long long)blob->offset, (long long)st.st_size);
    blob->offset = (uint64_t)st.st_size;
    if (meta_write(b, blob) != 0) return -1;
  }
  return 0;
}

/* Reads <hex>.meta into a new blob. */
static wd_blob *load_meta(wd_blobs *b, const char *name) {
  char text[META_MAX + 1];
  wd_blob *blob = calloc(1, sizeof *blob);
  if (!blob) return NULL;
  from_hex(blob->id, name, WD_BLOB_ID_LEN);
  memcpy(blob->hex, name, WD_BLOB_HEX_LEN);
  blob->fd = -1;
  int fd = openat(b->dfd, name, O_RDONLY | O_CLOEXEC);
  ssize_t r = fd < 0 ? -1 : read(fd, text, META_MAX);
  if (fd >= 0) close(fd);
  if (r >= 0) text[r] = 0;
  if (r < 0 || meta_parse(text, blob) != 0) {
    wd_warn("blobs: %.8s... is not readable metadata; left alone and not served", name);
    free(blob);
    return NULL;
  }
  return blob;
}

/* "<64 hex>" followed by exactly `suffix`. */
static int named(const char *name, const char *suffix) {
  uint8_t id[WD_BLOB_ID_LEN];
  return strlen(name) == WD_BLOB_HEX_LEN + strlen(suffix) &&
         strcmp(name + WD_BLOB_HEX_LEN, suffix) == 0 && from_hex(id, name, WD_BLOB_ID_LEN) == 0;
}

/* One pass over the directory: pass 0 loads the metadata, pass 1 removes
 * temporary files and data files without metadata. */
static int scan_pass(wd_blobs *b, int pass) {
  int fd = dup(b->dfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return -errno;
  }
  rewinddir(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    uint8_t id[WD_BLOB_ID_LEN];
    if (pass == 0 && named(name, ".meta")) {
      wd_blob *blob = load_meta(b, name);
      if (!blob) continue;
      if (repair(b, blob) != 0) {
        unlinkat(b->dfd, name, 0);
        free(blob);
        continue;
      }
      if (index_put(b, blob)) {
        free(blob);
        closedir(d);
        return -ENOMEM;
      }
    } else if (pass == 1 && named(name, ".meta.tmp")) {
      unlinkat(b->dfd, name, 0);
    } else if (pass == 1 && named(name, ".data") && from_hex(id, name, WD_BLOB_ID_LEN) == 0 &&
               !index_find(b, id)) {
      wd_info("blobs: %.8s...: a creation that did not finish; removed", name);
      unlinkat(b->dfd, name, 0);
    }
  }
  closedir(d);
  return 0;
}

/* --- the API ------------------------------------------------------------------------ */

int wd_blobs_open(wd_blobs **out, const char *dir, uint64_t ttl_ms, uint64_t now_ms) {
  *out = NULL;
  wd_blobs *b = calloc(1, sizeof *b);
  if (!b || !(b->dir = strdup(dir))) {
    free(b);
    fprintf(stderr, "whisperd: out of memory\n");
    return -1;
  }
  b->dfd = -1;
  b->ttl_ms = ttl_ms;
  int rc = dir_open(b, 0);
  if (rc == -ENOENT) {
    wd_info("blobs: %s does not exist yet; it is made on the first upload", dir);
    *out = b;
    return 0;
  }
  if (rc == 0) rc = scan_pass(b, 0);
  if (rc == 0) rc = scan_pass(b, 1);
  if (rc == 0) rc = fsync_dir(b);
  if (rc != 0) {
    fprintf(stderr, "whisperd: blob store %s: %s\n", dir,
            rc == -EBUSY ? "used by another whisperd (locked)" : strerror(-rc));
    wd_blobs_free(b);
    return -1;
  }
  size_t gone = wd_blobs_sweep(b, now_ms);
  wd_info("blobs: %s open: %zu blobs, %llu bytes (%zu expired ones deleted)", dir, b->count,
          (unsigned long long)b->bytes, gone);
  *out = b;
  return 0;
}

void wd_blobs_free(wd_blobs *b) {
  if (!b) return;
  for (size_t i = 0; i < b->cap; i++)
    while (b->blobs[i]) {
      wd_blob *x = b->blobs[i];
      b->blobs[i] = x->next;
      if (x->fd >= 0) wd_blobs_write_abort(x);
      free(x);
    }
  for (size_t i = 0; i < b->ucap; i++)
    while (b->users[i]) {
      usage *u = b->users[i];
      b->users[i] = u->next;
      free(u);
    }
  free(b->blobs);
  free(b->users);
  if (b->dfd >= 0) close(b->dfd); /* and with it the lock */
  sodium_memzero(b->key, sizeof b->key);
  free(b->dir);
  free(b);
}

int wd_blobs_owner(wd_blobs *b, const char *account, uint32_t device, wd_blob_owner *out) {
  int rc = dir_open(b, 0);
  if (rc != 0) return rc;
  crypto_generichash(out->tag, WD_BLOB_TAG_LEN, (const uint8_t *)account, strlen(account), b->key,
                     KEY_LEN);
  out->device = device;
  return 0;
}

int wd_blobs_same(const wd_blob_owner *a, const wd_blob_owner *b) {
  if (sodium_memcmp(a->tag, b->tag, WD_BLOB_TAG_LEN) != 0) return 0;
  return a->device == b->device ? 2 : 1;
}

uint64_t wd_blobs_used(const wd_blobs *b, const wd_blob_owner *owner) {
  const usage *u = usage_get(b, owner->tag);
  return u ? u->bytes : 0;
}

wd_blob *wd_blobs_find(const wd_blobs *b, const char *hex, size_t len) {
  uint8_t id[WD_BLOB_ID_LEN];
  if (len != WD_BLOB_HEX_LEN || from_hex(id, hex, WD_BLOB_ID_LEN) != 0) return NULL;
  return index_find(b, id);
}

int wd_blobs_create(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                    uint64_t now_ms, wd_blob **out) {
  char data[WD_BLOB_HEX_LEN + 16];
  int rc = dir_open(b, 1);
  if (rc != 0) return rc;
  wd_blob *blob = calloc(1, sizeof *blob);
  if (!blob) return -ENOMEM;
  do randombytes_buf(blob->id, WD_BLOB_ID_LEN);
  while (index_find(b, blob->id));
  to_hex(blob->hex, blob->id, WD_BLOB_ID_LEN);
  wd_blobs_owner(b, account, device, &blob->owner);
  blob->length = length;
  blob->created_ms = now_ms;
  blob->fd = -1;
  name_of(data, sizeof data, blob, ".data");
  int fd = create_at(b, data, O_EXCL);
  if (fd < 0) {
    free(blob);
    return fd;
  }
  close(fd);
  /* the rename's directory fsync makes the data file's name durable too */
  rc = meta_write(b, blob);
  if (rc == 0) rc = index_put(b, blob);
  if (rc != 0) {
    char meta[WD_BLOB_HEX_LEN + 16];
    name_of(meta, sizeof meta, blob, ".meta");
    unlinkat(b->dfd, meta, 0);
    unlinkat(b->dfd, data, 0);
    free(blob);
    return rc;
  }
  *out = blob;
  return 0;
}

int wd_blobs_write_begin(wd_blobs *b, wd_blob *blob) {
  char data[WD_BLOB_HEX_LEN + 16];
  name_of(data, sizeof data, blob, ".data");
  int fd = openat(b->dfd, data, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  blob->fd = fd;
  blob->busy = 1;
  return 0;
}

int wd_blobs_write(wd_blob *blob, uint64_t at, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t w = pwrite(blob->fd, p, len, (off_t)at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? -errno : -EIO;
    p += w;
    at += (uint64_t)w;
    len -= (size_t)w;
  }
  return 0;
}

void wd_blobs_write_abort(wd_blob *blob) {
  if (blob->fd >= 0) {
    if (ftruncate(blob->fd, (off_t)blob->offset) != 0)
      wd_warn("blobs: %.8s...: cannot cut back unacknowledged bytes: %s (cut at the next start)",
              blob->hex, strerror(errno));
    close(blob->fd);
  }
  blob->fd = -1;
  blob->busy = 0;
}

int wd_blobs_write_end(wd_blobs *b, wd_blob *blob, uint64_t offset) {
  if (offset == blob->offset) {
    wd_blobs_write_abort(blob);
    return 0;
  }
  int rc = fdatasync(blob->fd) == 0 ? 0 : -errno;
  uint64_t old = blob->offset;
  if (rc == 0) {
    blob->offset = offset;
    rc = meta_write(b, blob);
    if (rc != 0) blob->offset = old;
  }
  if (rc != 0) {
    wd_blobs_write_abort(blob);
    return rc;
  }
  b->bytes += offset - old;
  close(blob->fd);
  blob->fd = -1;
  blob->busy = 0;
  return 0;
}

int wd_blobs_delete(wd_blobs *b, wd_blob *blob) {
  char name[WD_BLOB_HEX_LEN + 16];
  name_of(name, sizeof name, blob, ".meta");
  /* the metadata first: a crash before the data goes leaves a data file
   * without metadata, which startup removes */
  if (unlinkat(b->dfd, name, 0) != 0 && errno != ENOENT) return -errno;
  name_of(name, sizeof name, blob, ".data");
  if (unlinkat(b->dfd, name, 0) != 0 && errno != ENOENT)
    wd_warn("blobs: cannot remove %.8s...: %s (removed at the next start)", name, strerror(errno));
  fsync_dir(b);
  index_del(b, blob);
  free(blob);
  return 0;
}

int wd_blobs_open_data(wd_blobs *b, const wd_blob *blob) {
  char data[WD_BLOB_HEX_LEN + 16];
  name_of(data, sizeof data, blob, ".data");
  int fd = openat(b->dfd, data, O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int wd_blobs_expired(const wd_blobs *b, const wd_blob *blob, uint64_t now_ms) {
  return now_ms >= blob->created_ms && now_ms - blob->created_ms >= b->ttl_ms;
}

size_t wd_blobs_sweep(wd_blobs *b, uint64_t now_ms) {
  size_t gone = 0;
  if (b->dfd < 0) return 0;
  for (size_t i = 0; i < b->cap; i++) {
    wd_blob *x = b->blobs[i];
    while (x) {
      wd_blob *next = x->next; /* x may be freed */
      if (!x->busy && wd_blobs_expired(b, x, now_ms)) {
        char hex[WD_BLOB_HEX_LEN + 1];
        memcpy(hex, x->hex, sizeof hex);
        if (wd_blobs_delete(b, x) == 0) {
          gone++;
          wd_debug("blobs: %.8s... expired, deleted", hex);
        }
      }
      x = next;
    }
  }
  return gone;
}

void wd_blobs_count(const wd_blobs *b, uint64_t *blobs, uint64_t *bytes) {
  *blobs = b ? b->count : 0;
  *bytes = b ? b->bytes : 0;
}

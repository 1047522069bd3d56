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
 *
 * Cluster mode (--pg, wd_blobs_open_cluster): the nodes share the
 * directory, and the metadata is rows in PostgreSQL (blobmeta_pg.c)
 * instead of .meta files and the index, so there is no lock on the whole
 * directory, no index and no repair at startup:
 *
 *   - owner.key is made once for the cluster (a temporary file linked
 *     into place: of two nodes making it at once, one wins and the other
 *     reads it), and its fingerprint is recorded in PostgreSQL, so that a
 *     node given another directory refuses to start;
 *   - a lookup reads the blob's row: the blob it returns is a copy, the
 *     caller's until wd_blobs_done();
 *   - a creation checks the quota and inserts the row in one transaction
 *     (the data file is made inside it, and removed if it does not commit);
 *   - a PATCH takes the blob's writer lock, reads the offset again under
 *     it and cuts the data file back to it (bytes past the recorded offset
 *     were never acknowledged: a node died in the middle of a PATCH), then
 *     writes; the new offset is committed after the data's fdatasync. An
 *     aborted PATCH leaves what it wrote past the offset for the next
 *     writer to cut (cutting it here could cut another node's bytes if the
 *     lock went with a lost connection);
 *   - a deletion (the uploader's, or the sweep's) deletes the row under
 *     the blob's lock, then the data file: two nodes sweeping at once
 *     each delete the rows they got, and the files of those;
 *   - the data files no row names (a creation or a deletion cut short by
 *     a crash) are removed at startup once they are an hour old.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "blobmeta_pg.h"
#include "blobs.h"

#define KEY_FILE "owner.key"
#define KEY_LEN 32
#define META_MAX 512
#define ORPHAN_AGE_S 3600 /* cluster mode: a data file without a row this old is a leftover */
#define SWEEP_BATCH 256   /* cluster mode: expired rows read at a time */

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
  wd_bmeta_pg *pg;  /* cluster mode: the metadata; NULL: the .meta files and the index */
  wd_blob *writing; /* cluster mode: the blobs this node's PATCHes write (by next) */
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

/* --- cluster mode ----------------------------------------------------------------- */

static wd_blob *writing_find(const wd_blobs *b, const uint8_t id[WD_BLOB_ID_LEN]) {
  for (wd_blob *x = b->writing; x; x = x->next)
    if (memcmp(x->id, id, WD_BLOB_ID_LEN) == 0) return x;
  return NULL;
}

/* 1 if `blob` was one of the writing ones (it is no longer), 0 if not. */
static int writing_del(wd_blobs *b, wd_blob *blob) {
  for (wd_blob **pp = &b->writing; *pp; pp = &(*pp)->next)
    if (*pp == blob) {
      *pp = blob->next;
      blob->next = NULL;
      return 1;
    }
  return 0;
}

/* A copy of a row: the caller's. */
static wd_blob *blob_new(wd_blobs *b, const uint8_t id[WD_BLOB_ID_LEN]) {
  wd_blob *blob = calloc(1, sizeof *blob);
  if (!blob) return NULL;
  memcpy(blob->id, id, WD_BLOB_ID_LEN);
  to_hex(blob->hex, blob->id, WD_BLOB_ID_LEN);
  blob->fd = -1;
  blob->cluster = b;
  return blob;
}

/* owner.key of a shared directory, made if missing: the key goes to a
 * temporary file of this node's, then is linked into place, so a node
 * never reads a key another is still writing. */
static int load_key_shared(wd_blobs *b) {
  int rc = read_key(b);
  if (rc != -ENOENT) return rc;
  uint8_t r[8];
  char hex[17], tmp[64];
  randombytes_buf(r, sizeof r);
  to_hex(hex, r, sizeof r);
  snprintf(tmp, sizeof tmp, KEY_FILE ".%s.tmp", hex);
  int fd = create_at(b, tmp, O_EXCL);
  if (fd < 0) return fd;
  uint8_t key[KEY_LEN];
  randombytes_buf(key, KEY_LEN);
  rc = write_full(fd, key, KEY_LEN);
  sodium_memzero(key, sizeof key);
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  close(fd);
  if (rc == 0 && linkat(b->dfd, tmp, b->dfd, KEY_FILE, 0) != 0) rc = -errno;
  unlinkat(b->dfd, tmp, 0);
  if (rc == 0 || rc == -EEXIST) rc = read_key(b); /* ours, or the node's that was first */
  if (rc == 0) rc = fsync_dir(b);
  return rc;
}

/* The shared directory, made if missing, and its key. */
static int dir_open_shared(wd_blobs *b) {
  int made = mkdir(b->dir, 0700) == 0;
  if (!made && errno != EEXIST) return -errno;
  int fd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  if (made && fchmod(fd, 0700) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  b->dfd = fd;
  return load_key_shared(b);
}

/* Data files no row names, an hour old or more: removed. Also counts the
 * .meta files of a single-node store, which cluster mode does not serve. */
static int remove_orphans(wd_blobs *b) {
  int fd = dup(b->dfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return -errno;
  }
  uint8_t *ids = NULL;
  size_t n = 0, cap = 0, metas = 0;
  time_t old = time(NULL) - ORPHAN_AGE_S;
  int rc = 0;
  struct dirent *e;
  rewinddir(d);
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    const char *name = e->d_name;
    if (named(name, ".meta")) metas++;
    int data = named(name, ".data");
    int tmp = strncmp(name, KEY_FILE ".", sizeof KEY_FILE) == 0 && strlen(name) > 4 &&
              strcmp(name + strlen(name) - 4, ".tmp") == 0;
    if ((!data && !tmp) || fstatat(b->dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        st.st_mtime > old)
      continue;
    if (tmp) { /* a node died making owner.key */
      unlinkat(b->dfd, name, 0);
      continue;
    }
    if (n == cap) {
      uint8_t *t = realloc(ids, (cap = cap ? 2 * cap : 256) * WD_BLOB_ID_LEN);
      if (!t) {
        rc = -ENOMEM;
        break;
      }
      ids = t;
    }
    from_hex(ids + n++ * WD_BLOB_ID_LEN, name, WD_BLOB_ID_LEN);
  }
  closedir(d);
  uint8_t *known = rc == 0 && n ? malloc(n) : NULL;
  if (rc == 0 && n && !known) rc = -ENOMEM;
  if (rc == 0 && n) rc = wd_bmeta_pg_known(b->pg, ids, n, known);
  size_t gone = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (known[i]) continue;
    char hex[WD_BLOB_HEX_LEN + 1], data[WD_BLOB_HEX_LEN + 16];
    to_hex(hex, ids + i * WD_BLOB_ID_LEN, WD_BLOB_ID_LEN);
    snprintf(data, sizeof data, "%s.data", hex);
    if (unlinkat(b->dfd, data, 0) == 0) {
      gone++;
      wd_info("blobs: %.8s...: a data file no row names (a creation or a deletion cut short); "
              "removed", hex);
    }
  }
  if (gone) fsync_dir(b);
  if (metas)
    wd_warn("blobs: %zu blobs of a single-node store (.meta files) in %s are not served in "
            "cluster mode (their metadata is not in PostgreSQL)", metas, b->dir);
  free(known);
  free(ids);
  return rc;
}

static int get_cluster(wd_blobs *b, const uint8_t id[WD_BLOB_ID_LEN], wd_blob **out) {
  wd_blob *blob = blob_new(b, id);
  if (!blob) return -ENOMEM;
  int rc = wd_bmeta_pg_get(b->pg, blob);
  if (rc <= 0) {
    free(blob);
    return rc == 0 ? -ENOENT : rc;
  }
  blob->busy = writing_find(b, id) != NULL;
  *out = blob;
  return 0;
}

static int create_cluster(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                          uint64_t quota, uint64_t now_ms, wd_blob **out) {
  char data[WD_BLOB_HEX_LEN + 16];
  uint8_t id[WD_BLOB_ID_LEN];
  /* expired blobs (created ttl_ms or more before now) do not count */
  int64_t live_after = now_ms >= b->ttl_ms ? (int64_t)(now_ms - b->ttl_ms) : -1;
  randombytes_buf(id, sizeof id);
  wd_blob *blob = blob_new(b, id);
  if (!blob) return -ENOMEM;
  int rc = wd_blobs_owner(b, account, device, &blob->owner);
  blob->length = length;
  blob->created_ms = now_ms;
  for (int attempt = 0; rc == 0; attempt++) {
    if (attempt) { /* the id was taken: another one (never, with 32 random bytes) */
      if (attempt == 4) {
        rc = -EEXIST;
        break;
      }
      randombytes_buf(blob->id, WD_BLOB_ID_LEN);
      to_hex(blob->hex, blob->id, WD_BLOB_ID_LEN);
    }
    rc = wd_bmeta_pg_create_begin(b->pg, blob->owner.tag, length, quota, live_after);
    if (rc != 0) break; /* an error, or WD_BLOBS_OVER_QUOTA: nothing was made */
    name_of(data, sizeof data, blob, ".data");
    int fd = create_at(b, data, O_EXCL);
    if (fd < 0) {
      wd_bmeta_pg_create_abort(b->pg);
      rc = fd == -EEXIST ? 0 : fd;
      continue;
    }
    close(fd);
    rc = fsync_dir(b); /* the file's name is durable before the row is */
    if (rc != 0) {
      wd_bmeta_pg_create_abort(b->pg);
    } else {
      rc = wd_bmeta_pg_create_commit(b->pg, blob);
      if (rc == 0) {
        *out = blob;
        return 0;
      }
    }
    unlinkat(b->dfd, data, 0);
    if (rc == -EEXIST) rc = 0;
  }
  free(blob);
  return rc;
}

/* The end of a PATCH in cluster mode: the data file closed, the lock
 * released (if this copy is the writer: a copy that only says another
 * PATCH of this node writes the blob holds nothing). Bytes written past
 * the offset stay (the next writer cuts them). */
static void write_done_cluster(wd_blob *blob) {
  wd_blobs *b = blob->cluster;
  if (blob->fd >= 0) close(blob->fd);
  blob->fd = -1;
  if (writing_del(b, blob)) wd_bmeta_pg_unlock(b->pg, blob->id, blob->lock_gen);
  blob->busy = 0;
}

static int write_begin_cluster(wd_blobs *b, wd_blob *blob) {
  char data[WD_BLOB_HEX_LEN + 16];
  uint64_t gen, want = blob->offset;
  int rc = wd_bmeta_pg_lock(b->pg, blob->id, &gen);
  if (rc <= 0) return rc == 0 ? -EBUSY : rc;
  /* read under the lock: the offset the last writer committed */
  rc = wd_bmeta_pg_get(b->pg, blob);
  if (rc == 1) rc = blob->offset == want ? 0 : -ESTALE;
  else if (rc == 0) rc = -ENOENT;
  int fd = -1;
  if (rc == 0) {
    /* an empty one may be made again (its creation committed, its file lost) */
    name_of(data, sizeof data, blob, ".data");
    fd = blob->offset ? openat(b->dfd, data, O_WRONLY | O_CLOEXEC) : create_at(b, data, 0);
    if (fd < 0) rc = blob->offset ? -errno : fd;
  }
  struct stat st;
  if (rc == 0 && fstat(fd, &st) != 0) rc = -errno;
  if (rc == 0 && (uint64_t)st.st_size > blob->offset) {
    /* a writer died in the middle of a PATCH: its bytes past the offset go */
    if (ftruncate(fd, (off_t)blob->offset) != 0)
      rc = -errno;
    else
      wd_info("blobs: %.8s... cut back from %lld to %llu bytes (unacknowledged)", blob->hex,
              (long long)st.st_size, (unsigned long long)blob->offset);
  } else if (rc == 0 && (uint64_t)st.st_size < blob->offset) {
    wd_warn("blobs: %.8s... has %lld bytes of data, its row says %llu; taking %lld", blob->hex,
            (long long)st.st_size, (unsigned long long)blob->offset, (long long)st.st_size);
    rc = wd_bmeta_pg_set_offset(b->pg, blob->id, blob->offset, (uint64_t)st.st_size, gen);
    if (rc == 0) {
      blob->offset = (uint64_t)st.st_size;
      rc = -ESTALE;
    }
  }
  if (rc != 0) {
    if (fd >= 0) close(fd);
    wd_bmeta_pg_unlock(b->pg, blob->id, gen);
    return rc;
  }
  blob->fd = fd;
  blob->busy = 1;
  blob->lock_gen = gen;
  blob->next = b->writing;
  b->writing = blob;
  return 0;
}

/* Deletes the row (under the blob's lock), then the data file. 0, -EBUSY,
 * -ENOENT, or -errno. */
static int delete_cluster(wd_blobs *b, const uint8_t id[WD_BLOB_ID_LEN]) {
  char hex[WD_BLOB_HEX_LEN + 1], data[WD_BLOB_HEX_LEN + 16];
  if (writing_find(b, id)) return -EBUSY; /* our own session's lock would not stop us */
  int rc = wd_bmeta_pg_delete(b->pg, id);
  if (rc <= 0) return rc == 0 ? -ENOENT : rc;
  to_hex(hex, id, WD_BLOB_ID_LEN);
  snprintf(data, sizeof data, "%s.data", hex);
  if (unlinkat(b->dfd, data, 0) != 0 && errno != ENOENT)
    wd_warn("blobs: cannot remove %.8s...: %s (removed at a later start)", hex, strerror(errno));
  return 0;
}

static size_t sweep_cluster(wd_blobs *b, uint64_t now_ms) {
  uint8_t ids[SWEEP_BATCH * WD_BLOB_ID_LEN];
  size_t gone = 0;
  if (now_ms < b->ttl_ms) return 0;
  for (;;) {
    int n = wd_bmeta_pg_expired(b->pg, now_ms - b->ttl_ms, ids, SWEEP_BATCH);
    size_t went = 0;
    for (int i = 0; i < n; i++) {
      const uint8_t *id = ids + (size_t)i * WD_BLOB_ID_LEN;
      /* written now (here or on another node), or swept by another node: skipped */
      if (delete_cluster(b, id) != 0) continue;
      went++;
      if (wd_log_enabled(WD_LOG_DEBUG)) {
        char hex[WD_BLOB_HEX_LEN + 1];
        to_hex(hex, id, WD_BLOB_ID_LEN);
        wd_debug("blobs: %.8s... expired, deleted", hex);
      }
    }
    gone += went;
    if (n < SWEEP_BATCH || went == 0) break;
  }
  if (gone) fsync_dir(b);
  return gone;
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

int wd_blobs_open_cluster(wd_blobs **out, const char *dir, const char *conninfo,
                          const char *table, uint64_t ttl_ms, uint64_t now_ms) {
  char why_buf[512];
  const char *why = NULL;
  uint8_t fp[WD_BMETA_FP_LEN];
  static const char label[] = "whisperd blob directory";
  *out = NULL;
  wd_blobs *b = calloc(1, sizeof *b);
  if (!b || !(b->dir = strdup(dir))) {
    free(b);
    fprintf(stderr, "whisperd: out of memory\n");
    return -1;
  }
  b->dfd = -1;
  b->ttl_ms = ttl_ms;
  int rc = dir_open_shared(b);
  if (rc != 0) {
    fprintf(stderr, "whisperd: blob store %s: %s\n", dir, strerror(-rc));
    wd_blobs_free(b);
    return -1;
  }
  crypto_generichash(fp, sizeof fp, (const uint8_t *)label, sizeof label - 1, b->key, KEY_LEN);
  if (wd_bmeta_pg_open(&b->pg, conninfo, table, fp, why_buf, sizeof why_buf, &why) != 0) {
    fprintf(stderr, "whisperd: blob store %s: %s\n", dir, why);
    wd_blobs_free(b);
    return -1;
  }
  rc = remove_orphans(b);
  if (rc != 0) wd_warn("blobs: looking for leftover data files: %s", strerror(-rc));
  size_t gone = wd_blobs_sweep(b, now_ms);
  uint64_t blobs = 0, bytes = 0;
  wd_blobs_count(b, &blobs, &bytes);
  wd_info("blobs: %s open, shared by the cluster's nodes (metadata in PostgreSQL, table %s): "
          "%llu blobs, %llu bytes (%zu expired ones deleted)",
          dir, wd_bmeta_pg_table(b->pg), (unsigned long long)blobs, (unsigned long long)bytes,
          gone);
  *out = b;
  return 0;
}

int wd_blobs_clustered(const wd_blobs *b) { return b && b->pg; }

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
  wd_bmeta_pg_free(b->pg); /* and with its session any writer lock */
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

int wd_blobs_get(wd_blobs *b, const char *hex, size_t len, wd_blob **out) {
  uint8_t id[WD_BLOB_ID_LEN];
  *out = NULL;
  if (len != WD_BLOB_HEX_LEN || from_hex(id, hex, WD_BLOB_ID_LEN) != 0) return -ENOENT;
  if (b->pg) return get_cluster(b, id, out);
  *out = index_find(b, id);
  return *out ? 0 : -ENOENT;
}

void wd_blobs_done(wd_blobs *b, wd_blob *blob) {
  (void)b;
  if (!blob || !blob->cluster) return; /* the index's */
  write_done_cluster(blob); /* nothing, unless it is still writing */
  free(blob);
}

int wd_blobs_create_within(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                           uint64_t quota, uint64_t now_ms, wd_blob **out) {
  if (b->pg) return create_cluster(b, account, device, length, quota, now_ms, out);
  wd_blob_owner who;
  uint64_t used = 0;
  int rc = wd_blobs_owner(b, account, device, &who);
  if (rc != 0 && rc != -ENOENT) return rc;
  if (rc == 0) used = wd_blobs_used(b, &who);
  if (rc == 0 && (used > quota || length > quota - used)) {
    wd_blobs_sweep(b, now_ms); /* expired blobs no longer count */
    used = wd_blobs_used(b, &who);
    if (used > quota || length > quota - used) return WD_BLOBS_OVER_QUOTA;
  }
  return wd_blobs_create(b, account, device, length, now_ms, out);
}

int wd_blobs_create(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                    uint64_t now_ms, wd_blob **out) {
  char data[WD_BLOB_HEX_LEN + 16];
  if (b->pg) return create_cluster(b, account, device, length, UINT64_MAX, now_ms, out);
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
  if (blob->cluster) return write_begin_cluster(b, blob);
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
  if (blob->cluster) {
    write_done_cluster(blob);
    return;
  }
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
  if (blob->cluster) {
    /* the bytes are on the disk: the offset is committed, under the lock */
    if (rc == 0) rc = wd_bmeta_pg_set_offset(b->pg, blob->id, blob->offset, offset, blob->lock_gen);
    if (rc == 0) blob->offset = offset;
    write_done_cluster(blob);
    return rc;
  }
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
  if (blob->cluster) {
    int rc = delete_cluster(b, blob->id);
    if (rc == 0) free(blob);
    return rc;
  }
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
  if (b->pg) return sweep_cluster(b, now_ms);
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
  if (b && b->pg && wd_bmeta_pg_count(b->pg, blobs, bytes) != 0) *blobs = *bytes = 0;
}

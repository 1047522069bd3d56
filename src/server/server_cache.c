/*
 * The batch's record cache. Inside a batch (server_batch.c) the records
 * of the plain kinds (accounts, devices, groups, Sent answers, counters,
 * profiles, block lists: not the ordered kinds, which are scanned, but for
 * the share records, written out before a scan of them) are
 * read from the store once and written to it once, when the batch
 * commits: the frames of a batch touch the same few records again and
 * again (a device's mailbox counters, the server_seq counter, the
 * accounts of a conversation), and each store access costs a B-tree
 * lookup and an AEAD operation.
 *
 * The cache is the batch's view of those records: what its frames wrote
 * over what the store holds. A frame's changes are undone with the
 * frame's savepoint (an undo log of the entries it changed first); a
 * failed batch drops the cache with its transaction. By default it lives
 * as long as the batch, so a store shared with other servers is read
 * afresh by each batch; a server that is its store's only writer may keep
 * the records that are read again and again (accounts, devices, groups,
 * block lists, counters) from one batch to the next
 * (whisper_server_record_cache_set()): after a commit they are what the
 * store holds. Any write outside a batch empties it (server_store.c).
 *
 * An entry is a record known to exist (with its value), known not to,
 * or unknown (written blindly and then undone: the store has the truth).
 * Dirty entries are written to the store at the commit.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

enum { C_UNKNOWN = 0, C_ABSENT = 1, C_PRESENT = 2 };

typedef struct centry {
  int state;
  int dirty;
  int listed;          /* in srv->cdirty */
  wsrv_map_item *item; /* its item in srv->cache (its key) */
  uint64_t saved_in; /* the frame that logged this entry's previous state */
  uint8_t *val;
  size_t len;
} centry;

struct wsrv_cundo {
  centry *e;
  int state, dirty;
  uint8_t *val;
  size_t len;
};

#define CKEY_MAX 1100 /* kind (1) || key: longer keys bypass the cache */

static size_t ckey(uint8_t out[CKEY_MAX], int kind, const uint8_t *key, size_t n) {
  if (n + 1 > CKEY_MAX || kind < 0 || kind > 255) return 0;
  out[0] = (uint8_t)kind;
  if (n) memcpy(out + 1, key, n);
  return n + 1;
}

static void bytes_free(uint8_t *p, size_t n) {
  if (p == NULL) return;
  wh_wipe(p, n);
  free(p);
}

static void centry_free(void *p) {
  centry *e = p;
  if (e == NULL) return;
  bytes_free(e->val, e->len);
  free(e);
}

/* Of the ordered kinds, only the share records (read and written by
 * every append and Ack of another account's entry, scanned only when a
 * device goes: wsrv_scan() writes the cached ones out first). */
int wsrv_cache_usable(const whisper_server *srv, int kind, size_t n) {
  return srv->batch && (!WHISPER_REC_IS_ORDERED(kind) || kind == WHISPER_REC_SERVER_SHARE) &&
         kind >= 0 && kind <= 255 && n + 1 <= CKEY_MAX;
}

/* Kinds worth keeping between batches: read by most frames (a share by
 * the next entry or Ack between the same two accounts). A Sent answer is
 * read once (a resend), a profile or a report rarely. */
static int kept_kind(int kind) {
  return kind == WHISPER_REC_SERVER_ACCOUNT || kind == WHISPER_REC_SERVER_DEVICE ||
         kind == WHISPER_REC_SERVER_GROUP || kind == WHISPER_REC_SERVER_BLOCKS ||
         kind == WHISPER_REC_SERVER_META || kind == WHISPER_REC_SERVER_SHARE;
}

/* The entry of (kind, key), made (unknown) if missing; NULL: no memory.
 * A new entry of a kind not kept is listed, to go after the batch. */
static centry *entry(whisper_server *srv, int kind, const uint8_t *key, size_t n) {
  uint8_t k[CKEY_MAX];
  size_t kn = ckey(k, kind, key, n);
  centry *e = wsrv_map_get(&srv->cache, k, kn);
  if (e) return e;
  if (!kept_kind(kind) && srv->cache_keep) {
    if (srv->n_cgone == srv->cap_cgone) {
      size_t cap = srv->cap_cgone ? srv->cap_cgone * 2 : 32;
      uint8_t **g = realloc(srv->cgone, cap * sizeof *g);
      if (g == NULL) return NULL;
      srv->cgone = g;
      srv->cap_cgone = cap;
    }
    uint8_t *copy = malloc(kn + 2);
    if (copy == NULL) return NULL;
    copy[0] = (uint8_t)(kn >> 8);
    copy[1] = (uint8_t)kn;
    memcpy(copy + 2, k, kn);
    srv->cgone[srv->n_cgone++] = copy;
  }
  if ((e = calloc(1, sizeof *e)) == NULL) return NULL;
  if ((e->item = wsrv_map_put_item(&srv->cache, k, kn, e)) == NULL) {
    free(e);
    return NULL;
  }
  return e;
}

static void cgone_clear(whisper_server *srv) {
  for (size_t i = 0; i < srv->n_cgone; i++) free(srv->cgone[i]);
  srv->n_cgone = 0;
}

/* The entry's value in place (valid until the entry changes): no copy. */
int wsrv_cache_peek(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                    const uint8_t **v, size_t *vn) {
  static const uint8_t empty[1];
  whisper_buf *b = NULL;
  centry *e = entry(srv, kind, key, n);
  if (e == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (e->state == C_UNKNOWN) { /* read into the entry */
    int rc = wsrv_cache_get(srv, kind, key, n, &b);
    if (b) {
      wh_wipe(b->data, b->len);
      whisper_buf_free(b);
    }
    if (rc != WHISPER_OK) return rc;
  }
  if (e->state != C_PRESENT) return WHISPER_ENOTFOUND;
  *v = e->val ? e->val : empty;
  *vn = e->len;
  return WHISPER_OK;
}

static int save(whisper_server *srv, centry *e);

int wsrv_cache_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out) {
  *out = NULL;
  centry *e = entry(srv, kind, key, n);
  if (e == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (e->state == C_UNKNOWN) {
    /* A read inside a frame is undone with it: a store that locks what a
     * transaction reads (PostgreSQL) releases the locks a rolled-back
     * savepoint took, so the record must be read (and locked) again by the
     * next frame that needs it, not taken from here unlocked. */
    if (srv->cache_in_frame && save(srv, e) != WHISPER_OK) return WHISPER_ENOMEM;
    whisper_buf *b;
    int rc = wsrv_store_get(srv, kind, key, n, &b);
    if (rc == WHISPER_ENOTFOUND) {
      e->state = C_ABSENT;
    } else if (rc != WHISPER_OK) {
      return rc;
    } else {
      e->val = b->len ? malloc(b->len) : NULL;
      if (b->len && e->val == NULL) {
        whisper_buf_free(b);
        return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
      }
      if (b->len) memcpy(e->val, b->data, b->len);
      e->len = b->len;
      e->state = C_PRESENT;
      *out = b; /* the store's copy goes to the caller */
      return WHISPER_OK;
    }
  }
  if (e->state == C_ABSENT) return WHISPER_ENOTFOUND;
  if ((*out = whisper_buf_new(e->val, e->len)) == NULL)
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  return WHISPER_OK;
}

/* Logs e's state before the frame's first change of it. */
static int save(whisper_server *srv, centry *e) {
  if (e->saved_in == srv->cache_frame) return WHISPER_OK;
  if (srv->n_cundo == srv->cap_cundo) {
    size_t cap = srv->cap_cundo ? srv->cap_cundo * 2 : 32;
    struct wsrv_cundo *u = realloc(srv->cundo, cap * sizeof *u);
    if (u == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    srv->cundo = u;
    srv->cap_cundo = cap;
  }
  struct wsrv_cundo *u = &srv->cundo[srv->n_cundo++];
  u->e = e;
  u->state = e->state;
  u->dirty = e->dirty;
  u->val = e->val; /* handed to the log: the change replaces it */
  u->len = e->len;
  e->val = NULL;
  e->len = 0;
  e->saved_in = srv->cache_frame;
  return WHISPER_OK;
}

/* Lists e among the entries to write at the flush (once). */
static int list_dirty(whisper_server *srv, centry *e) {
  if (e->listed) return WHISPER_OK;
  if (srv->n_cdirty == srv->cap_cdirty) {
    size_t cap = srv->cap_cdirty ? srv->cap_cdirty * 2 : 64;
    wsrv_map_item **d = realloc(srv->cdirty, cap * sizeof *d);
    if (d == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    srv->cdirty = d;
    srv->cap_cdirty = cap;
  }
  srv->cdirty[srv->n_cdirty++] = e->item;
  e->listed = 1;
  return WHISPER_OK;
}

/* Sets e to `v` (NULL: absent), dirty; `owned`: v is a malloc'd buffer
 * the entry takes over (freed, wiped, on failure too), else it is copied. */
static int set(whisper_server *srv, centry *e, const uint8_t *v, size_t vn, uint8_t *owned) {
  uint8_t *copy = owned;
  if (!owned && v && vn && (copy = malloc(vn)) == NULL)
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (copy && !owned) memcpy(copy, v, vn);
  if (copy && !vn) { /* (an owned buffer of nothing) */
    free(copy);
    copy = NULL;
  }
  int rc = list_dirty(srv, e);
  if (rc == WHISPER_OK) rc = save(srv, e);
  if (rc != WHISPER_OK) {
    bytes_free(copy, vn);
    return rc;
  }
  bytes_free(e->val, e->len);
  e->val = copy;
  e->len = v ? vn : 0;
  e->state = v ? C_PRESENT : C_ABSENT;
  e->dirty = 1;
  return WHISPER_OK;
}

int wsrv_cache_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                   size_t vn) {
  static const uint8_t empty[1];
  centry *e = entry(srv, kind, key, n);
  if (e == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  return set(srv, e, v ? v : empty, vn, NULL);
}

int wsrv_cache_put_owned(whisper_server *srv, int kind, const uint8_t *key, size_t n, uint8_t *v,
                         size_t vn) {
  centry *e = entry(srv, kind, key, n);
  if (e == NULL) {
    bytes_free(v, vn);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  return set(srv, e, v, vn, v);
}

int wsrv_cache_del(whisper_server *srv, int kind, const uint8_t *key, size_t n) {
  centry *e = entry(srv, kind, key, n);
  if (e == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  return set(srv, e, NULL, 0, NULL);
}

void wsrv_cache_frame_begin(whisper_server *srv) {
  srv->cache_frame++;
  srv->n_cundo = 0;
  srv->cache_in_frame = 1;
}

/* Keeps the frame's changes (its log's old values go), or undoes them,
 * newest first. */
void wsrv_cache_frame_end(whisper_server *srv, int keep) {
  srv->cache_in_frame = 0;
  for (size_t i = srv->n_cundo; i-- > 0;) {
    struct wsrv_cundo *u = &srv->cundo[i];
    if (keep) {
      bytes_free(u->val, u->len);
      continue;
    }
    centry *e = u->e;
    bytes_free(e->val, e->len);
    e->state = u->state;
    e->dirty = u->dirty;
    e->val = u->val;
    e->len = u->len;
    e->saved_in = 0;
  }
  srv->n_cundo = 0;
}

/* Writes the dirty entries to the store (inside the batch's transaction):
 * those listed since the last flush (an entry listed and then put back
 * clean by a frame's rollback is passed over). */
int wsrv_cache_flush(whisper_server *srv) {
  int rc = WHISPER_OK;
  size_t i = 0;
  for (; i < srv->n_cdirty && rc == WHISPER_OK; i++) {
    wsrv_map_item *it = srv->cdirty[i];
    centry *e = it->value;
    if (!e->dirty) {
      e->listed = 0;
      continue;
    }
    int kind = it->key[0];
    const uint8_t *key = it->key + 1;
    size_t n = it->key_len - 1;
    rc = e->state == C_PRESENT ? wsrv_store_put(srv, kind, key, n, e->val, e->len)
                               : wsrv_store_del(srv, kind, key, n);
    if (rc == WHISPER_OK) e->dirty = e->listed = 0;
  }
  if (rc == WHISPER_OK) srv->n_cdirty = 0;
  return rc;
}

/* Writes the dirty entries of `kind` to the store now (before a scan of
 * that kind, which reads the store). Each is logged first, as a change
 * would be, so that the frame's rollback (which undoes the write with
 * its savepoint) makes it dirty again. */
int wsrv_cache_flush_kind(whisper_server *srv, int kind) {
  int rc = WHISPER_OK;
  for (size_t i = 0; i < srv->n_cdirty && rc == WHISPER_OK; i++) {
    wsrv_map_item *it = srv->cdirty[i];
    centry *e = it->value;
    if (!e->dirty || it->key[0] != (uint8_t)kind) continue;
    uint8_t *copy = NULL;
    if (e->len && (copy = malloc(e->len)) == NULL)
      return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    if (e->len) memcpy(copy, e->val, e->len);
    const uint8_t *key = it->key + 1;
    size_t n = it->key_len - 1, len = e->len;
    rc = e->state == C_PRESENT ? wsrv_store_put(srv, kind, key, n, e->val, e->len)
                               : wsrv_store_del(srv, kind, key, n);
    if (rc == WHISPER_OK) rc = save(srv, e); /* the log takes e->val (unless it has one) */
    if (rc != WHISPER_OK) {
      free(copy);
      break;
    }
    bytes_free(e->val, e->len);
    e->val = copy;
    e->len = len;
    e->dirty = 0;
  }
  return rc;
}

void wsrv_cache_drop(whisper_server *srv) {
  wsrv_cache_frame_end(srv, 1);
  wsrv_map_clear(&srv->cache, centry_free);
  cgone_clear(srv);
  srv->n_cdirty = 0;
}

/* After a commit: the entries of kinds not kept go (those the batch made:
 * listed), and everything when the cache grew past its size. */
void wsrv_cache_settle(whisper_server *srv) {
  wsrv_cache_frame_end(srv, 1);
  if (srv->cache_keep == 0 || srv->cache.count > srv->cache_keep) {
    wsrv_cache_drop(srv);
    return;
  }
  for (size_t i = 0; i < srv->n_cgone; i++) {
    const uint8_t *g = srv->cgone[i];
    centry_free(wsrv_map_take(&srv->cache, g + 2, (size_t)g[0] << 8 | g[1]));
  }
  cgone_clear(srv);
  if (srv->cache.count > srv->cache_keep) wsrv_cache_drop(srv);
}

int whisper_server_record_cache_set(whisper_server *srv, size_t max_records) {
  if (srv == NULL) return WHISPER_EINVAL;
  if (srv->cluster.node && max_records) return WHISPER_EINVAL; /* other nodes write the store */
  srv->cache_keep = max_records;
  if (!srv->batch && max_records == 0) wsrv_cache_drop(srv);
  return WHISPER_OK;
}

void wsrv_cache_free(whisper_server *srv) {
  wsrv_cache_drop(srv);
  free(srv->cundo);
  srv->cundo = NULL;
  srv->cap_cundo = 0;
  free(srv->cgone);
  srv->cgone = NULL;
  srv->cap_cgone = 0;
  free(srv->cdirty);
  srv->cdirty = NULL;
  srv->cap_cdirty = 0;
}

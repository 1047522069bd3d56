/*
 * The volatile in-memory store: a hash table of (kind, key) -> value with
 * an undo journal, so rollback really restores the state at begin. A
 * savepoint marks the journal's length (and starts a new journal stamp):
 * the records journaled after it restore the state at the savepoint
 * (rollback_to); a key is journaled once per transaction or savepoint.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct mem_entry {
  struct mem_entry *next;
  int kind;
  uint8_t *val;
  size_t key_len, val_len;
  uint64_t hash;
  uint64_t journaled; /* the transaction whose journal holds this key's old value */
  uint8_t key[];      /* key_len bytes */
} mem_entry;

/* One undo record: the value a key had before its first write in a
 * transaction (moved here, not copied). */
typedef struct mem_undo {
  int kind;
  uint8_t *heap_key; /* the key when it does not fit in ikey, else NULL */
  size_t key_len;
  uint8_t *val; /* NULL: the key did not exist */
  size_t val_len;
  uint8_t ikey[48];
} mem_undo;

typedef struct mem_store {
  mem_entry **buckets;
  size_t nbuckets, count;
  int in_txn;
  uint64_t txn;    /* the stamp of the open transaction or savepoint (unique) */
  uint64_t stamps; /* stamps handed out */
  mem_undo *undo;  /* the journal, oldest first; kept between transactions */
  size_t nundo, capundo;
  struct mem_mark {
    size_t nundo;  /* the journal's length at the savepoint */
    uint64_t txn;  /* the stamp before it */
  } *marks;        /* the open savepoints, oldest first */
  size_t n_marks, cap_marks;
} mem_store;

/* Eight bytes at a time, then mixed so that the low bits (the bucket)
 * depend on every byte. */
static uint64_t hash(int kind, const uint8_t *k, size_t n) {
  const uint64_t M = 0x9E3779B97F4A7C15ULL;
  uint64_t h = ((uint64_t)(unsigned)kind << 32 | n) * M;
  for (; n >= 8; n -= 8, k += 8) {
    uint64_t w;
    memcpy(&w, k, 8);
    h = (h ^ w) * M;
    h ^= h >> 29;
  }
  if (n) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)k[i] << (8 * i);
    h = (h ^ w) * M;
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ULL;
  return h ^ h >> 32;
}

/* The link that points at (kind, k), or the empty one at its bucket's end;
 * *h gets the key's hash. */
static mem_entry **find_h(mem_store *m, int kind, const uint8_t *k, size_t n, uint64_t *h) {
  *h = hash(kind, k, n);
  mem_entry **pp = &m->buckets[*h & (m->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == *h && (*pp)->kind == kind && (*pp)->key_len == n &&
        (n == 0 || memcmp((*pp)->key, k, n) == 0))
      return pp;
  return pp;
}

static mem_entry **find(mem_store *m, int kind, const uint8_t *k, size_t n) {
  uint64_t h;
  return find_h(m, kind, k, n, &h);
}

static void free_bytes(uint8_t *p, size_t n) {
  if (p) {
    wh_wipe(p, n);
    free(p);
  }
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

static int grow(mem_store *m) {
  size_t nb = m->nbuckets * 2;
  mem_entry **b = calloc(nb, sizeof *b);
  if (b == NULL) return -1;
  for (size_t i = 0; i < m->nbuckets; i++) {
    mem_entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->next;
      size_t j = e->hash & (nb - 1);
      e->next = b[j];
      b[j] = e;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
  return 0;
}

/* (not a pointer into the record: the journal array moves when it grows) */
static uint8_t *undo_key(mem_undo *u) { return u->heap_key ? u->heap_key : u->ikey; }

/* Before the first change of a key in a transaction: an undo record that
 * takes its current value (the caller then gives the entry a new one, or
 * removes it, without freeing the old). 0: journaled; 1: nothing to do (no
 * transaction, or journaled already); -1: out of memory. */
static int journal(mem_store *m, int kind, const uint8_t *k, size_t n, mem_entry *e) {
  if (!m->in_txn || (e && e->journaled == m->txn)) return 1;
  if (m->nundo == m->capundo) {
    size_t cap = m->capundo ? m->capundo * 2 : 16;
    mem_undo *u = realloc(m->undo, cap * sizeof *u);
    if (u == NULL) return -1;
    m->undo = u;
    m->capundo = cap;
  }
  mem_undo *u = &m->undo[m->nundo];
  u->heap_key = NULL;
  if (n > sizeof u->ikey && (u->heap_key = malloc(n)) == NULL) return -1;
  if (n) memcpy(undo_key(u), k, n);
  u->kind = kind;
  u->key_len = n;
  u->val = e ? e->val : NULL;
  u->val_len = e ? e->val_len : 0;
  if (e) e->journaled = m->txn;
  m->nundo++;
  return 0;
}

static void undo_free(mem_undo *u) {
  free(u->heap_key);
  free_bytes(u->val, u->val_len);
  u->heap_key = NULL;
  u->val = NULL;
}

/* Gives (kind, k) the value `val` (taken). `pp` is find()'s answer. */
static int set_val(mem_store *m, mem_entry **pp, int kind, const uint8_t *k, size_t n,
                   uint8_t *val, size_t vn, uint64_t journaled) {
  if (*pp) {
    (*pp)->val = val;
    (*pp)->val_len = vn;
    return WHISPER_OK;
  }
  mem_entry *e = malloc(sizeof *e + n);
  if (e == NULL) return WHISPER_ENOMEM;
  e->next = NULL;
  if (n) memcpy(e->key, k, n);
  e->hash = hash(kind, k, n);
  e->kind = kind;
  e->key_len = n;
  e->val = val;
  e->val_len = vn;
  e->journaled = journaled;
  *pp = e;
  if (++m->count > m->nbuckets) grow(m); /* a failed grow only costs speed */
  return WHISPER_OK;
}

static void unlink_entry(mem_store *m, mem_entry **pp) {
  mem_entry *e = *pp;
  *pp = e->next;
  free(e);
  m->count--;
}

static void drop_journal(mem_store *m) {
  for (size_t i = 0; i < m->nundo; i++) undo_free(&m->undo[i]);
  m->nundo = 0;
  m->n_marks = 0;
}

static int mem_begin(void *user) {
  mem_store *m = user;
  if (m->in_txn) return WHISPER_ESTATE;
  m->in_txn = 1;
  m->txn = ++m->stamps;
  return WHISPER_OK;
}

static int mem_commit(void *user) {
  mem_store *m = user;
  drop_journal(m);
  m->in_txn = 0;
  return WHISPER_OK;
}

/* Undoes the journal's records down to `to`, the newest first: a key
 * journaled twice (removed, then made again; or once in a savepoint and
 * once before it) ends with its oldest record's value. */
static void unwind(mem_store *m, size_t to) {
  for (size_t i = m->nundo; i-- > to;) {
    mem_undo *u = &m->undo[i];
    mem_entry **pp = find(m, u->kind, undo_key(u), u->key_len);
    if (*pp) {
      free_bytes((*pp)->val, (*pp)->val_len);
      if (u->val)
        (*pp)->val = u->val, (*pp)->val_len = u->val_len;
      else
        unlink_entry(m, pp);
    } else if (u->val &&
               set_val(m, pp, u->kind, undo_key(u), u->key_len, u->val, u->val_len, 0) != 0) {
      free_bytes(u->val, u->val_len); /* out of memory: the value is lost */
    }
    u->val = NULL; /* given back */
    undo_free(u);
  }
  m->nundo = to;
}

static void mem_rollback(void *user) {
  mem_store *m = user;
  unwind(m, 0);
  drop_journal(m);
  m->in_txn = 0;
}

static int mem_savepoint(void *user) {
  mem_store *m = user;
  if (!m->in_txn) return WHISPER_ESTATE;
  if (m->n_marks == m->cap_marks) {
    size_t cap = m->cap_marks ? m->cap_marks * 2 : 4;
    struct mem_mark *marks = realloc(m->marks, cap * sizeof *marks);
    if (marks == NULL) return WHISPER_ENOMEM;
    m->marks = marks;
    m->cap_marks = cap;
  }
  m->marks[m->n_marks].nundo = m->nundo;
  m->marks[m->n_marks].txn = m->txn;
  m->n_marks++;
  m->txn = ++m->stamps; /* keys are journaled again inside it */
  return WHISPER_OK;
}

/* The savepoint's records stay, in the enclosing one's part of the
 * journal; a key they cover may be journaled once more there (harmless:
 * unwinding ends with the oldest record). */
static int mem_release(void *user) {
  mem_store *m = user;
  if (!m->in_txn || m->n_marks == 0) return WHISPER_ESTATE;
  m->txn = m->marks[--m->n_marks].txn;
  return WHISPER_OK;
}

static int mem_rollback_to(void *user) {
  mem_store *m = user;
  if (!m->in_txn || m->n_marks == 0) return WHISPER_ESTATE;
  m->n_marks--;
  unwind(m, m->marks[m->n_marks].nundo);
  m->txn = m->marks[m->n_marks].txn;
  return WHISPER_OK;
}

static int mem_get(void *user, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  mem_entry *e = *find(user, kind, k, n);
  if (e == NULL) return WHISPER_ENOTFOUND;
  *out = wh_buf_alloc(e->val_len);
  if (*out == NULL) return WHISPER_ENOMEM;
  if (e->val_len) memcpy((*out)->data, e->val, e->val_len);
  return WHISPER_OK;
}

static int mem_view(void *user, int kind, const uint8_t *k, size_t n, const uint8_t **val,
                    size_t *val_len) {
  mem_entry *e = *find(user, kind, k, n);
  if (e == NULL) return WHISPER_ENOTFOUND;
  *val = e->val;
  *val_len = e->val_len;
  return WHISPER_OK;
}

static int mem_put(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v,
                   size_t vn) {
  mem_store *m = user;
  mem_entry **pp = find(m, kind, k, n);
  uint8_t *val = dup_bytes(v, vn);
  if (val == NULL) return WHISPER_ENOMEM;
  int j = journal(m, kind, k, n, *pp);
  if (j < 0) {
    free_bytes(val, vn);
    return WHISPER_ENOMEM;
  }
  if (j == 1 && *pp) free_bytes((*pp)->val, (*pp)->val_len); /* not the value at begin */
  int rc = set_val(m, pp, kind, k, n, val, vn, m->in_txn ? m->txn : 0);
  if (rc != WHISPER_OK) {
    free_bytes(val, vn);
    if (j == 0) undo_free(&m->undo[--m->nundo]); /* a new key: its record says "absent" */
  }
  return rc;
}

static int mem_add(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v,
                   size_t vn) {
  if (*find(user, kind, k, n) != NULL) return WHISPER_EDUPLICATE;
  return mem_put(user, kind, k, n, v, vn);
}

static int mem_del(void *user, int kind, const uint8_t *k, size_t n) {
  mem_store *m = user;
  mem_entry **pp = find(m, kind, k, n);
  if (*pp == NULL) return WHISPER_OK;
  int j = journal(m, kind, k, n, *pp);
  if (j < 0) return WHISPER_ENOMEM;
  if (j == 1) free_bytes((*pp)->val, (*pp)->val_len);
  unlink_entry(m, pp);
  return WHISPER_OK;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static int entry_cmp(const void *x, const void *y) {
  const mem_entry *a = *(const mem_entry *const *)x, *b = *(const mem_entry *const *)y;
  return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* The volatile store scans by sorting what matches: fine for its uses
 * (tests, ephemeral devices). */
static int mem_scan(void *user, int kind, const uint8_t *prefix, size_t prefix_len,
                    const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                    whisper_scan_fn fn, void *arg) {
  mem_store *m = user;
  if (!WHISPER_REC_IS_ORDERED(kind)) return WHISPER_EINVAL;
  if (limit == 0) return WHISPER_OK;
  /* the first `limit` in scan order: all of them sorted, or (a short limit
   * of many) only those kept, in order, as they are found */
  size_t keep = limit < m->count ? limit : m->count;
  mem_entry **hits = malloc((m->count ? m->count : 1) * sizeof *hits);
  if (hits == NULL) return WHISPER_ENOMEM;
  size_t n = 0;
  int bounded = keep < m->count && keep <= 256;
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (mem_entry *e = m->buckets[i]; e; e = e->next) {
      if (e->kind != kind || e->key_len < prefix_len ||
          (prefix_len && memcmp(e->key, prefix, prefix_len) != 0))
        continue;
      if (bound) {
        int c = key_cmp(e->key, e->key_len, bound, bound_len);
        if (descending ? c >= 0 : c <= 0) continue;
      }
      if (!bounded) {
        hits[n++] = e;
        continue;
      }
      /* hits[0..n) in scan order; e goes in if it comes before the last */
      size_t lo = 0, hi = n;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(e->key, e->key_len, hits[mid]->key, hits[mid]->key_len);
        if (descending ? c > 0 : c < 0) hi = mid;
        else lo = mid + 1;
      }
      if (lo >= keep) continue;
      size_t move = (n < keep ? n : keep - 1) - lo;
      memmove(&hits[lo + 1], &hits[lo], move * sizeof *hits);
      hits[lo] = e;
      if (n < keep) n++;
    }
  }
  if (!bounded) qsort(hits, n, sizeof *hits, entry_cmp);
  for (size_t i = 0; i < n && i < limit; i++) {
    mem_entry *e = hits[bounded || !descending ? i : n - 1 - i];
    if (fn(arg, e->key, e->key_len, e->val, e->val_len)) break;
  }
  free(hits);
  return WHISPER_OK;
}

static void mem_destroy(void *user) {
  mem_store *m = user;
  drop_journal(m);
  free(m->undo);
  free(m->marks);
  for (size_t i = 0; i < m->nbuckets; i++) {
    mem_entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->next;
      free_bytes(e->val, e->val_len);
      free(e);
    }
  }
  free(m->buckets);
  free(m);
}

int whisper_store_memory_new(whisper_store **out) {
  static const whisper_store_ops ops = {WHISPER_STORE_OPS_VERSION, mem_begin, mem_commit,
                                        mem_rollback, mem_get, mem_put, mem_del, mem_destroy,
                                        mem_scan,    mem_add,     mem_savepoint,
                                        mem_release, mem_rollback_to, NULL};
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  mem_store *m = calloc(1, sizeof *m);
  if (m == NULL) return WHISPER_ENOMEM;
  m->nbuckets = 64;
  m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
  if (m->buckets == NULL) {
    free(m);
    return WHISPER_ENOMEM;
  }
  int rc = whisper_store_new(out, &ops, m);
  if (rc != WHISPER_OK) mem_destroy(m);
  else (*out)->view = mem_view;
  return rc;
}

/*
 * The volatile in-memory store: a hash table of (kind, key) -> value with
 * an undo journal, so rollback really restores the state at begin.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct mem_entry {
  struct mem_entry *next;
  int kind;
  uint8_t *key, *val;
  size_t key_len, val_len;
} mem_entry;

/* One undo record: the value a key had before its first write in a txn. */
typedef struct mem_undo {
  struct mem_undo *next;
  int kind;
  uint8_t *key, *val; /* val NULL: the key did not exist */
  size_t key_len, val_len;
} mem_undo;

typedef struct mem_store {
  mem_entry **buckets;
  size_t nbuckets, count;
  int in_txn;
  mem_undo *undo;
} mem_store;

static uint64_t hash(int kind, const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
  for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
  return h;
}

static mem_entry **find(mem_store *m, int kind, const uint8_t *k, size_t n) {
  mem_entry **pp = &m->buckets[hash(kind, k, n) & (m->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->kind == kind && (*pp)->key_len == n && (n == 0 || memcmp((*pp)->key, k, n) == 0))
      return pp;
  return pp;
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
      size_t j = hash(e->kind, e->key, e->key_len) & (nb - 1);
      e->next = b[j];
      b[j] = e;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
  return 0;
}

/* Saves the current value of a key once per transaction. */
static int journal(mem_store *m, int kind, const uint8_t *k, size_t n) {
  if (!m->in_txn) return 0;
  for (mem_undo *u = m->undo; u; u = u->next)
    if (u->kind == kind && u->key_len == n && (n == 0 || memcmp(u->key, k, n) == 0)) return 0;
  mem_undo *u = calloc(1, sizeof *u);
  if (u == NULL) return -1;
  u->kind = kind;
  u->key = dup_bytes(k, n);
  u->key_len = n;
  mem_entry *e = *find(m, kind, k, n);
  if (e) {
    u->val = dup_bytes(e->val, e->val_len);
    u->val_len = e->val_len;
  }
  if (u->key == NULL || (e && u->val == NULL)) {
    free(u->key);
    free(u->val);
    free(u);
    return -1;
  }
  u->next = m->undo;
  m->undo = u;
  return 0;
}

static int raw_put(mem_store *m, int kind, const uint8_t *k, size_t n, const uint8_t *v,
                   size_t vn) {
  uint8_t *val = dup_bytes(v, vn);
  if (val == NULL) return WHISPER_ENOMEM;
  mem_entry **pp = find(m, kind, k, n);
  if (*pp) {
    free_bytes((*pp)->val, (*pp)->val_len);
    (*pp)->val = val;
    (*pp)->val_len = vn;
    return WHISPER_OK;
  }
  mem_entry *e = calloc(1, sizeof *e);
  if (e == NULL || (e->key = dup_bytes(k, n)) == NULL) {
    free(e);
    free_bytes(val, vn);
    return WHISPER_ENOMEM;
  }
  e->kind = kind;
  e->key_len = n;
  e->val = val;
  e->val_len = vn;
  *pp = e;
  if (++m->count > m->nbuckets) grow(m); /* a failed grow only costs speed */
  return WHISPER_OK;
}

static void raw_del(mem_store *m, int kind, const uint8_t *k, size_t n) {
  mem_entry **pp = find(m, kind, k, n);
  mem_entry *e = *pp;
  if (e == NULL) return;
  *pp = e->next;
  free(e->key);
  free_bytes(e->val, e->val_len);
  free(e);
  m->count--;
}

static void drop_journal(mem_store *m) {
  mem_undo *u = m->undo, *next;
  for (; u; u = next) {
    next = u->next;
    free(u->key);
    free_bytes(u->val, u->val_len);
    free(u);
  }
  m->undo = NULL;
}

static int mem_begin(void *user) {
  mem_store *m = user;
  if (m->in_txn) return WHISPER_ESTATE;
  m->in_txn = 1;
  return WHISPER_OK;
}

static int mem_commit(void *user) {
  mem_store *m = user;
  drop_journal(m);
  m->in_txn = 0;
  return WHISPER_OK;
}

static void mem_rollback(void *user) {
  mem_store *m = user;
  for (mem_undo *u = m->undo; u; u = u->next) {
    if (u->val)
      raw_put(m, u->kind, u->key, u->key_len, u->val, u->val_len);
    else
      raw_del(m, u->kind, u->key, u->key_len);
  }
  drop_journal(m);
  m->in_txn = 0;
}

static int mem_get(void *user, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  mem_entry *e = *find(user, kind, k, n);
  if (e == NULL) return WHISPER_ENOTFOUND;
  *out = whisper_buf_new(e->val, e->val_len);
  return *out ? WHISPER_OK : WHISPER_ENOMEM;
}

static int mem_put(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v,
                   size_t vn) {
  if (journal(user, kind, k, n) != 0) return WHISPER_ENOMEM;
  return raw_put(user, kind, k, n, v, vn);
}

static int mem_add(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v,
                   size_t vn) {
  if (*find(user, kind, k, n) != NULL) return WHISPER_EDUPLICATE;
  return mem_put(user, kind, k, n, v, vn);
}

static int mem_del(void *user, int kind, const uint8_t *k, size_t n) {
  if (journal(user, kind, k, n) != 0) return WHISPER_ENOMEM;
  raw_del(user, kind, k, n);
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
  for (size_t i = 0; i < m->nbuckets; i++) {
    mem_entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->next;
      free(e->key);
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
                                        mem_scan,    mem_add};
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
  return rc;
}

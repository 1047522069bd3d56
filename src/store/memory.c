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

/* The entries of one ordered kind (WHISPER_REC_IS_ORDERED), sorted by key,
 * in chunks of at most CHUNK (an insert or a removal moves at most a
 * chunk's refs, not every entry's): a scan finds its first row by binary
 * search and walks from there. Each ref has its key's first 8 bytes
 * (big-endian, zero-padded): most comparisons end there, without reading
 * the entry. */
#define CHUNK 128
typedef struct mem_ref {
  uint64_t head;
  mem_entry *e;
} mem_ref;

typedef struct mem_chunk {
  size_t n;
  mem_ref r[CHUNK];
} mem_chunk;

typedef struct mem_order {
  int kind;
  mem_chunk **c; /* nc chunks, none empty */
  size_t nc, capc;
  mem_chunk *spare; /* one made ahead, so that an insert cannot fail */
} mem_order;

/* A place in an order: chunk ci, ref i (ci == nc: the end). */
typedef struct mem_pos {
  size_t ci, i;
} mem_pos;

typedef struct mem_store {
  mem_entry **buckets;
  size_t nbuckets, count;
  mem_order *orders; /* one per ordered kind stored so far */
  size_t n_orders;
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

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0; /* (a prefix of none may be NULL) */
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

/* The sorted entries of an ordered kind (made if `make`; NULL if none, or
 * out of memory). */
static mem_order *order_of(mem_store *m, int kind, int make) {
  for (size_t i = 0; i < m->n_orders; i++)
    if (m->orders[i].kind == kind) return &m->orders[i];
  if (!make) return NULL;
  mem_order *o = realloc(m->orders, (m->n_orders + 1) * sizeof *o);
  if (o == NULL) return NULL;
  m->orders = o;
  o = &m->orders[m->n_orders++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  return o;
}

static uint64_t key_head(const uint8_t *k, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < 8; i++) h = h << 8 | (i < n ? k[i] : 0);
  return h;
}

static int ref_cmp(const mem_ref *r, uint64_t head, const uint8_t *k, size_t n) {
  return r->head < head ? -1 : r->head > head ? 1 : key_cmp(r->e->key, r->e->key_len, k, n);
}

/* The place of the first entry whose key is >= k (strict: > k). */
static mem_pos order_lower(const mem_order *o, const uint8_t *k, size_t n, int strict) {
  uint64_t head = key_head(k, n);
  size_t lo = 0, hi = o->nc; /* the first chunk whose last key is >= (>) k */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = ref_cmp(&o->c[mid]->r[o->c[mid]->n - 1], head, k, n);
    if (strict ? c <= 0 : c < 0) lo = mid + 1;
    else hi = mid;
  }
  mem_pos p = {lo, 0};
  if (lo == o->nc) return p;
  const mem_chunk *ch = o->c[lo];
  size_t a = 0, b = ch->n;
  while (a < b) {
    size_t mid = a + (b - a) / 2;
    int c = ref_cmp(&ch->r[mid], head, k, n);
    if (strict ? c <= 0 : c < 0) a = mid + 1;
    else b = mid;
  }
  p.i = a;
  return p;
}

static int pos_before(mem_pos x, mem_pos y) { return x.ci < y.ci || (x.ci == y.ci && x.i < y.i); }

/* Room for one more entry of `kind` in its order (before the entry is
 * made, so that a failure leaves nothing half done). */
static int order_reserve(mem_store *m, int kind) {
  if (!WHISPER_REC_IS_ORDERED(kind)) return 0;
  mem_order *o = order_of(m, kind, 1);
  if (o == NULL) return -1;
  if (o->spare == NULL && (o->spare = malloc(sizeof *o->spare)) == NULL) return -1;
  if (o->nc < o->capc) return 0;
  size_t cap = o->capc ? o->capc * 2 : 4;
  mem_chunk **c = realloc(o->c, cap * sizeof *c);
  if (c == NULL) return -1;
  o->c = c;
  o->capc = cap;
  return 0;
}

/* Puts the spare chunk in at index at (reserved: room and a spare). */
static mem_chunk *chunk_add(mem_order *o, size_t at) {
  mem_chunk *ch = o->spare;
  o->spare = NULL;
  ch->n = 0;
  memmove(&o->c[at + 1], &o->c[at], (o->nc - at) * sizeof *o->c);
  o->c[at] = ch;
  o->nc++;
  return ch;
}

static void order_insert(mem_store *m, mem_entry *e) {
  if (!WHISPER_REC_IS_ORDERED(e->kind)) return;
  mem_order *o = order_of(m, e->kind, 0); /* (reserved) */
  mem_pos p = order_lower(o, e->key, e->key_len, 0);
  if (o->nc == 0) {
    chunk_add(o, 0);
    p.ci = p.i = 0;
  } else if (p.ci == o->nc) { /* past every key: at the end of the last chunk */
    p.ci = o->nc - 1;
    p.i = o->c[p.ci]->n;
  }
  mem_chunk *ch = o->c[p.ci];
  if (ch->n == CHUNK) { /* full: its upper half to a new chunk after it */
    mem_chunk *up = chunk_add(o, p.ci + 1);
    up->n = CHUNK / 2;
    memcpy(up->r, &ch->r[CHUNK / 2], (CHUNK / 2) * sizeof *up->r);
    ch->n = CHUNK / 2;
    if (p.i > CHUNK / 2) {
      ch = up;
      p.i -= CHUNK / 2;
    }
  }
  memmove(&ch->r[p.i + 1], &ch->r[p.i], (ch->n - p.i) * sizeof *ch->r);
  ch->r[p.i].head = key_head(e->key, e->key_len);
  ch->r[p.i].e = e;
  ch->n++;
}

static void order_remove(mem_store *m, const mem_entry *e) {
  if (!WHISPER_REC_IS_ORDERED(e->kind)) return;
  mem_order *o = order_of(m, e->kind, 0);
  if (o == NULL) return;
  mem_pos p = order_lower(o, e->key, e->key_len, 0);
  if (p.ci == o->nc || o->c[p.ci]->r[p.i].e != e) return; /* (not expected) */
  mem_chunk *ch = o->c[p.ci];
  memmove(&ch->r[p.i], &ch->r[p.i + 1], (ch->n - p.i - 1) * sizeof *ch->r);
  if (--ch->n) return;
  memmove(&o->c[p.ci], &o->c[p.ci + 1], (o->nc - p.ci - 1) * sizeof *o->c);
  o->nc--;
  if (o->spare == NULL) o->spare = ch;
  else free(ch);
}

/* Gives (kind, k) the value `val` (taken). `pp` is find()'s answer. */
static int set_val(mem_store *m, mem_entry **pp, int kind, const uint8_t *k, size_t n,
                   uint8_t *val, size_t vn, uint64_t journaled) {
  if (*pp) {
    (*pp)->val = val;
    (*pp)->val_len = vn;
    return WHISPER_OK;
  }
  if (order_reserve(m, kind) != 0) return WHISPER_ENOMEM;
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
  order_insert(m, e);
  if (++m->count > m->nbuckets) grow(m); /* a failed grow only costs speed */
  return WHISPER_OK;
}

static void unlink_entry(mem_store *m, mem_entry **pp) {
  mem_entry *e = *pp;
  *pp = e->next;
  order_remove(m, e);
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

/* A scan walks the kind's sorted entries from the first in its range (a
 * binary search): the rows it gives, not the whole store. They are taken
 * first and called back after, so that a callback may scan again. */
static int mem_scan(void *user, int kind, const uint8_t *prefix, size_t prefix_len,
                    const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                    whisper_scan_fn fn, void *arg) {
  mem_store *m = user;
  if (!WHISPER_REC_IS_ORDERED(kind)) return WHISPER_EINVAL;
  const mem_order *o = order_of(m, kind, 0);
  if (limit == 0 || o == NULL || o->nc == 0) return WHISPER_OK;
  /* [lo, hi): the keys with the prefix: from the prefix itself up to the
   * first key at or past its successor (the prefix without its trailing
   * 0xFF bytes, the last one plus one; none: to the end) */
  mem_pos lo = order_lower(o, prefix, prefix_len, 0), hi = {o->nc, 0};
  size_t sn = prefix_len;
  while (sn && prefix[sn - 1] == 0xFF) sn--;
  if (sn) {
    uint8_t *succ = malloc(sn);
    if (succ == NULL) return WHISPER_ENOMEM;
    memcpy(succ, prefix, sn);
    succ[sn - 1]++;
    hi = order_lower(o, succ, sn, 0);
    free(succ);
  }
  if (bound) { /* ascending: keys > bound; descending: keys < bound */
    mem_pos at = order_lower(o, bound, bound_len, !descending);
    if (descending && pos_before(at, hi)) hi = at;
    if (!descending && pos_before(lo, at)) lo = at;
  }
  if (!pos_before(lo, hi)) return WHISPER_OK;
  /* (a place at a chunk's end is the next chunk's start) */
  if (descending && hi.i == 0) hi.i = o->c[--hi.ci]->n;
  size_t n = 0, cap = limit < 64 ? limit : 64;
  mem_entry **hits = malloc(cap * sizeof *hits);
  if (hits == NULL) return WHISPER_ENOMEM;
  mem_pos at = descending ? hi : lo;
  while (n < limit) {
    if (descending) {
      if (!pos_before(lo, at)) break;
      if (at.i == 0) at.i = o->c[--at.ci]->n;
      at.i--;
    } else {
      if (at.i == o->c[at.ci]->n) at.ci++, at.i = 0;
      if (!pos_before(at, hi)) break;
    }
    if (n == cap) {
      size_t nc = cap * 2 < limit ? cap * 2 : limit;
      mem_entry **h = realloc(hits, nc * sizeof *h);
      if (h == NULL) {
        free(hits);
        return WHISPER_ENOMEM;
      }
      hits = h;
      cap = nc;
    }
    hits[n++] = o->c[at.ci]->r[at.i].e;
    if (!descending) at.i++;
  }
  for (size_t i = 0; i < n; i++)
    if (fn(arg, hits[i]->key, hits[i]->key_len, hits[i]->val, hits[i]->val_len)) break;
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
  for (size_t i = 0; i < m->n_orders; i++) {
    for (size_t k = 0; k < m->orders[i].nc; k++) free(m->orders[i].c[k]);
    free(m->orders[i].c);
    free(m->orders[i].spare);
  }
  free(m->orders);
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

/* A hash map of byte keys to pointers, for the server's in-memory tables
 * (connections, devices and accounts seen online, typing throttles), and
 * a heap of deadlines for their timers. */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define MAP_MIN_BUCKETS 64

static uint64_t hash(const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
  return h;
}

static wsrv_map_item **slot(const wsrv_map *m, const void *key, size_t n) {
  wsrv_map_item **pp = &m->buckets[hash(key, n) & (m->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->key_len == n && memcmp((*pp)->key, key, n) == 0) break;
  return pp;
}

void *wsrv_map_get(const wsrv_map *m, const void *key, size_t n) {
  if (m->nbuckets == 0) return NULL;
  wsrv_map_item *it = *slot(m, key, n);
  return it ? it->value : NULL;
}

/* Doubles the bucket array; a failure only costs speed. */
static void grow(wsrv_map *m) {
  size_t nb = m->nbuckets * 2;
  wsrv_map_item **b = calloc(nb, sizeof *b);
  if (b == NULL) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    wsrv_map_item *it = m->buckets[i], *next;
    for (; it; it = next) {
      next = it->next;
      size_t j = hash(it->key, it->key_len) & (nb - 1);
      it->next = b[j];
      b[j] = it;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

int wsrv_map_put(wsrv_map *m, const void *key, size_t n, void *value) {
  return wsrv_map_put_item(m, key, n, value) ? WHISPER_OK : WHISPER_ENOMEM;
}

wsrv_map_item *wsrv_map_put_item(wsrv_map *m, const void *key, size_t n, void *value) {
  if (m->nbuckets == 0) {
    m->buckets = calloc(MAP_MIN_BUCKETS, sizeof *m->buckets);
    if (m->buckets == NULL) return NULL;
    m->nbuckets = MAP_MIN_BUCKETS;
  }
  wsrv_map_item *it = malloc(sizeof *it + n);
  if (it == NULL) return NULL;
  memcpy(it->key, key, n);
  it->key_len = n;
  it->value = value;
  wsrv_map_item **pp = &m->buckets[hash(key, n) & (m->nbuckets - 1)];
  it->next = *pp;
  *pp = it;
  if (++m->count > m->nbuckets) grow(m);
  return it;
}

void *wsrv_map_take(wsrv_map *m, const void *key, size_t n) {
  if (m->nbuckets == 0) return NULL;
  wsrv_map_item **pp = slot(m, key, n), *it = *pp;
  if (it == NULL) return NULL;
  void *v = it->value;
  *pp = it->next;
  free(it);
  m->count--;
  return v;
}

void **wsrv_map_values(const wsrv_map *m, size_t *n) {
  *n = 0;
  if (m->count == 0) return NULL;
  void **v = malloc(m->count * sizeof *v);
  if (v == NULL) return NULL;
  for (size_t i = 0; i < m->nbuckets; i++)
    for (wsrv_map_item *it = m->buckets[i]; it; it = it->next) v[(*n)++] = it->value;
  return v;
}

void wsrv_map_prune(wsrv_map *m, int (*drop)(void *value, void *arg), void *arg,
                    void (*free_value)(void *)) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    wsrv_map_item **pp = &m->buckets[i];
    while (*pp) {
      wsrv_map_item *it = *pp;
      if (drop(it->value, arg)) {
        *pp = it->next;
        if (free_value) free_value(it->value);
        free(it);
        m->count--;
      } else {
        pp = &it->next;
      }
    }
  }
}

void wsrv_map_clear(wsrv_map *m, void (*free_value)(void *)) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    wsrv_map_item *it = m->buckets[i], *next;
    for (; it; it = next) {
      next = it->next;
      if (free_value) free_value(it->value);
      free(it);
    }
  }
  free(m->buckets);
  memset(m, 0, sizeof *m);
}

/* --- the timer heap -------------------------------------------------------- */

int wsrv_heap_reserve(wsrv_heap *h, size_t n) {
  if (n <= h->cap) return WHISPER_OK;
  size_t cap = h->cap ? h->cap : 64;
  while (cap < n) cap *= 2;
  wsrv_timer **v = realloc(h->v, cap * sizeof *v);
  if (v == NULL) return WHISPER_ENOMEM;
  h->v = v;
  h->cap = cap;
  return WHISPER_OK;
}

static void heap_place(wsrv_heap *h, wsrv_timer *t, size_t i) {
  h->v[i] = t;
  t->pos = i + 1;
}

static void heap_up(wsrv_heap *h, size_t i) {
  wsrv_timer *t = h->v[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (h->v[parent]->at <= t->at) break;
    heap_place(h, h->v[parent], i);
    i = parent;
  }
  heap_place(h, t, i);
}

static void heap_down(wsrv_heap *h, size_t i) {
  wsrv_timer *t = h->v[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->n) break;
    if (child + 1 < h->n && h->v[child + 1]->at < h->v[child]->at) child++;
    if (t->at <= h->v[child]->at) break;
    heap_place(h, h->v[child], i);
    i = child;
  }
  heap_place(h, t, i);
}

void wsrv_heap_set(wsrv_heap *h, wsrv_timer *t, uint64_t at) {
  if (t->pos == 0) {
    if (h->n == h->cap) return; /* not reserved: a caller's bug, never a crash */
    t->at = at;
    heap_place(h, t, h->n++);
    heap_up(h, h->n - 1);
    return;
  }
  uint64_t was = t->at;
  t->at = at;
  if (at < was)
    heap_up(h, t->pos - 1);
  else if (at > was)
    heap_down(h, t->pos - 1);
}

void wsrv_heap_del(wsrv_heap *h, wsrv_timer *t) {
  if (t->pos == 0) return;
  size_t i = t->pos - 1;
  t->pos = 0;
  wsrv_timer *last = h->v[--h->n];
  if (i == h->n) return;
  heap_place(h, last, i);
  if (i > 0 && h->v[(i - 1) / 2]->at > last->at)
    heap_up(h, i);
  else
    heap_down(h, i);
}

void wsrv_heap_free(wsrv_heap *h) {
  free(h->v);
  memset(h, 0, sizeof *h);
}

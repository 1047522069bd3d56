/* A hash map of byte keys to pointers, for the server's in-memory tables
 * (connections, devices and accounts seen online, typing throttles). */
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
  if (m->nbuckets == 0) {
    m->buckets = calloc(MAP_MIN_BUCKETS, sizeof *m->buckets);
    if (m->buckets == NULL) return WHISPER_ENOMEM;
    m->nbuckets = MAP_MIN_BUCKETS;
  }
  wsrv_map_item *it = malloc(sizeof *it + n);
  if (it == NULL) return WHISPER_ENOMEM;
  memcpy(it->key, key, n);
  it->key_len = n;
  it->value = value;
  wsrv_map_item **pp = &m->buckets[hash(key, n) & (m->nbuckets - 1)];
  it->next = *pp;
  *pp = it;
  if (++m->count > m->nbuckets) grow(m);
  return WHISPER_OK;
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

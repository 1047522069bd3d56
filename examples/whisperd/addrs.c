/*
 * whisperd: source addresses, for limits per address (whisperd.h).
 *
 * A peer is keyed by its IPv4 address, or by the /64 of its IPv6 address:
 * one host, or one customer's network, usually holds a whole /64, so a
 * key per IPv6 address would cap nothing. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4 peer) is
 * its IPv4 address.
 *
 * The counts are a chained hash table keyed with SipHash (libsodium's
 * crypto_shorthash) under a random key, so that a peer choosing its
 * addresses (a /48 holds 65536 /64s) cannot make them collide. An address
 * whose count falls to 0 is removed: the table holds only the addresses
 * with a connection counted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "whisperd.h"

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void wd_addr_of_sockaddr(const void *sa_, size_t len, wd_addr *out) {
  const struct sockaddr *sa = sa_;
  memset(out, 0, sizeof *out);
  if (!sa) return;
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = sa_;
    out->len = 4;
    memcpy(out->b, &in->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = sa_;
    const uint8_t *a = in6->sin6_addr.s6_addr;
    if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) {
      out->len = 4;
      memcpy(out->b, a + 12, 4);
    } else {
      out->len = 8; /* the /64 */
      memcpy(out->b, a, 8);
    }
  }
}

void wd_addr_of_fd(int fd, wd_addr *out) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
    memset(out, 0, sizeof *out);
    return;
  }
  wd_addr_of_sockaddr(&ss, sl, out);
}

int wd_addr_is_loopback(const wd_addr *a) {
  static const uint8_t v6_64[8] = {0}; /* ::1's /64 is all zeros */
  if (a->len == 4) return a->b[0] == 127;
  return a->len == 8 && memcmp(a->b, v6_64, 8) == 0;
}

const char *wd_addr_format(const wd_addr *a, char *buf, size_t cap) {
  if (cap == 0) return buf;
  buf[0] = 0;
  if (a->len == 4) {
    if (!inet_ntop(AF_INET, a->b, buf, (socklen_t)cap)) buf[0] = 0;
  } else if (a->len == 8) {
    uint8_t full[16] = {0};
    char tmp[INET6_ADDRSTRLEN];
    memcpy(full, a->b, 8);
    if (inet_ntop(AF_INET6, full, tmp, sizeof tmp)) snprintf(buf, cap, "%s/64", tmp);
  } else {
    snprintf(buf, cap, "?");
  }
  return buf;
}

typedef struct entry {
  struct entry *next;
  wd_addr addr;
  uint32_t count;
} entry;

struct wd_addr_counts {
  entry **buckets;
  size_t cap; /* a power of two */
  size_t size;
  uint8_t key[crypto_shorthash_KEYBYTES];
};

wd_addr_counts *wd_addr_counts_new(void) {
  wd_addr_counts *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->cap = 64;
  t->buckets = calloc(t->cap, sizeof *t->buckets);
  if (!t->buckets) {
    free(t);
    return NULL;
  }
  randombytes_buf(t->key, sizeof t->key);
  return t;
}

void wd_addr_counts_free(wd_addr_counts *t) {
  if (!t) return;
  for (size_t i = 0; i < t->cap; i++)
    while (t->buckets[i]) {
      entry *e = t->buckets[i];
      t->buckets[i] = e->next;
      free(e);
    }
  free(t->buckets);
  free(t);
}

static size_t bucket_of(const wd_addr_counts *t, const wd_addr *a, size_t cap) {
  uint8_t in[9], h[crypto_shorthash_BYTES];
  size_t n = a->len <= 8 ? a->len : 8; /* the bytes past len are not the key's */
  in[0] = a->len;
  memcpy(in + 1, a->b, n);
  crypto_shorthash(h, in, 1 + n, t->key);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return (size_t)v & (cap - 1);
}

static int same(const wd_addr *x, const wd_addr *y) {
  return x->len == y->len && memcmp(x->b, y->b, x->len) == 0;
}

static entry *find(const wd_addr_counts *t, const wd_addr *a) {
  for (entry *e = t->buckets[bucket_of(t, a, t->cap)]; e; e = e->next)
    if (same(&e->addr, a)) return e;
  return NULL;
}

uint32_t wd_addr_count(const wd_addr_counts *t, const wd_addr *a) {
  if (!t || a->len == 0) return 0;
  const entry *e = find(t, a);
  return e ? e->count : 0;
}

size_t wd_addr_counts_size(const wd_addr_counts *t) { return t ? t->size : 0; }

static void grow(wd_addr_counts *t) {
  size_t cap = t->cap * 2;
  entry **b = calloc(cap, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  for (size_t i = 0; i < t->cap; i++)
    while (t->buckets[i]) {
      entry *e = t->buckets[i];
      t->buckets[i] = e->next;
      size_t j = bucket_of(t, &e->addr, cap);
      e->next = b[j];
      b[j] = e;
    }
  free(t->buckets);
  t->buckets = b;
  t->cap = cap;
}

int wd_addr_inc(wd_addr_counts *t, const wd_addr *a) {
  if (!t || a->len == 0) return 0; /* not an IP peer: not counted */
  entry *e = find(t, a);
  if (e) {
    e->count++;
    return 0;
  }
  e = calloc(1, sizeof *e);
  if (!e) return -1;
  e->addr = *a;
  e->count = 1;
  size_t i = bucket_of(t, a, t->cap);
  e->next = t->buckets[i];
  t->buckets[i] = e;
  t->size++;
  if (t->size > t->cap) grow(t);
  return 0;
}

void wd_addr_dec(wd_addr_counts *t, const wd_addr *a) {
  if (!t || a->len == 0) return;
  entry **pp = &t->buckets[bucket_of(t, a, t->cap)];
  for (; *pp; pp = &(*pp)->next) {
    entry *e = *pp;
    if (!same(&e->addr, a)) continue;
    if (--e->count == 0) {
      *pp = e->next;
      free(e);
      t->size--;
    }
    return;
  }
}

/* Internal: the caller's versioned structs (docs/api.md, "How structs
 * grow"). Each starts with `size_t size`, the sizeof the caller was built
 * with; the library reads and writes only the fields both it and the
 * caller's struct have. The caller's size is checked against the first
 * released one (*_SIZE_1_0) before these are used. */
#ifndef WH_VERSIONED_H
#define WH_VERSIONED_H

#include <stddef.h>
#include <string.h>

/* Copies the caller's struct `src` (its own `size` first) into the
 * library's `dst` of `dst_size` bytes: the fields both have; the library's
 * newer fields are zero (their defaults); dst's size is dst_size. */
static inline void wh_versioned_in(void *dst, size_t dst_size, const void *src) {
  size_t n;
  memcpy(&n, src, sizeof n);
  memset(dst, 0, dst_size);
  memcpy(dst, src, n < dst_size ? n : dst_size);
  memcpy(dst, &dst_size, sizeof dst_size);
}

/* Copies the library's struct `src` of `src_size` bytes into the caller's
 * `dst` (whose `size` is already checked): the fields both have; dst's
 * `size` and the newer fields of a bigger (later) struct are left alone. */
static inline void wh_versioned_out(void *dst, const void *src, size_t src_size) {
  size_t n;
  memcpy(&n, dst, sizeof n);
  if (n > src_size) n = src_size;
  if (n > sizeof n)
    memcpy((unsigned char *)dst + sizeof n, (const unsigned char *)src + sizeof n, n - sizeof n);
}

#endif

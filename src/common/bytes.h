/*
 * Internal (src/common): big-endian integers in byte strings, for the
 * library core, the engine and the server core (store keys, tokens,
 * addresses). Inline: each is a few shifts on a hot path.
 */
#ifndef WH_COMMON_BYTES_H
#define WH_COMMON_BYTES_H

#include <stdint.h>

static inline void wh_be32(uint8_t out[4], uint32_t v) {
  out[0] = (uint8_t)(v >> 24);
  out[1] = (uint8_t)(v >> 16);
  out[2] = (uint8_t)(v >> 8);
  out[3] = (uint8_t)v;
}

static inline void wh_be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static inline uint32_t wh_rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t wh_rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

#endif

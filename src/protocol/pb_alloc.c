/* A protobuf-c allocator that wipes every block when it is freed, so
 * decoded records (chain keys, private keys) leave nothing behind. */
#include <sodium.h>
#include <stdlib.h>

#include "protocol/pb.h"

#define HDR 16 /* keeps the block 16-byte aligned */

static void *wipe_alloc(void *data, size_t size) {
  (void)data;
  if (size > SIZE_MAX - HDR) return NULL;
  unsigned char *p = malloc(size + HDR);
  if (p == NULL) return NULL;
  *(size_t *)p = size;
  return p + HDR;
}

static void wipe_free(void *data, void *ptr) {
  (void)data;
  if (ptr == NULL) return;
  unsigned char *p = (unsigned char *)ptr - HDR;
  sodium_memzero(ptr, *(size_t *)p);
  free(p);
}

ProtobufCAllocator wh_pb_alloc = {wipe_alloc, wipe_free, NULL};

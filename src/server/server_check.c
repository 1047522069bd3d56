/* Checks of decoded frame fields: every field of a frame is untrusted. */
#include <string.h>

#include "server/server_internal.h"

/* Device ids: 1..2^31-1. */
int wsrv_device_ok(protobuf_c_boolean has, uint32_t id) {
  return has && wh_device_id_ok(id);
}

int wsrv_bytes_ok(protobuf_c_boolean has, ProtobufCBinaryData b, size_t len) {
  return has && b.len == len && b.data != NULL;
}

/* A serialized public key: exactly 33 bytes, type 0x05. */
int wsrv_key_ok(protobuf_c_boolean has, ProtobufCBinaryData b) {
  return wsrv_bytes_ok(has, b, WHISPER_PUBLIC_KEY_LEN) &&
         whisper_public_key_check(b.data, b.len) == WHISPER_OK;
}

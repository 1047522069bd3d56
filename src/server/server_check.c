/* Checks of decoded frame fields: every field of a frame is untrusted. */
#include <string.h>

#include "server/server_internal.h"

/* Account names: 1..64 bytes of [a-z0-9._-]. */
int wsrv_name_ok(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n == 0 || n > WSRV_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

/* Device ids: 1..2^31-1. */
int wsrv_device_ok(protobuf_c_boolean has, uint32_t id) {
  return has && id >= 1 && id <= 0x7FFFFFFFu;
}

int wsrv_bytes_ok(protobuf_c_boolean has, ProtobufCBinaryData b, size_t len) {
  return has && b.len == len && b.data != NULL;
}

/* A serialized public key: exactly 33 bytes, type 0x05. */
int wsrv_key_ok(protobuf_c_boolean has, ProtobufCBinaryData b) {
  return wsrv_bytes_ok(has, b, WHISPER_PUBLIC_KEY_LEN) &&
         whisper_public_key_check(b.data, b.len) == WHISPER_OK;
}

void wsrv_group_conv(char out[WSRV_CONV_MAX + 1], const uint8_t id[WSRV_ID_LEN]) {
  static const char hex[] = "0123456789abcdef";
  out[0] = '#';
  for (size_t i = 0; i < WSRV_ID_LEN; i++) {
    out[1 + 2 * i] = hex[id[i] >> 4];
    out[2 + 2 * i] = hex[id[i] & 15];
  }
  out[WSRV_CONV_MAX] = 0;
}

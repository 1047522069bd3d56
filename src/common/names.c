/* Internal (src/common): account-name and device-id checks, the group
 * conversation name (names.h). */
#include "common/names.h"

#include <string.h>

int wh_account_ok(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n == 0 || n > WH_ACCOUNT_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

void wh_group_conv(char out[WH_GROUP_CONV_LEN + 1], const uint8_t gid[WH_GROUP_ID_LEN]) {
  static const char hex[] = "0123456789abcdef";
  out[0] = '#';
  for (int i = 0; i < WH_GROUP_ID_LEN; i++) {
    out[1 + 2 * i] = hex[gid[i] >> 4];
    out[2 + 2 * i] = hex[gid[i] & 15];
  }
  out[WH_GROUP_CONV_LEN] = '\0';
}

int wh_group_conv_parse(const char *conv, uint8_t gid[WH_GROUP_ID_LEN]) {
  if (conv == NULL || conv[0] != '#' || strlen(conv) != WH_GROUP_CONV_LEN) return 0;
  for (int i = 0; i < WH_GROUP_ID_LEN; i++) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char ch = conv[1 + 2 * i + k];
      int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
      if (d < 0) return 0;
      v = v << 4 | d;
    }
    gid[i] = (uint8_t)v;
  }
  return 1;
}

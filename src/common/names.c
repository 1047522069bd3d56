/* Internal (src/common): account-name and device-id checks, the group
 * conversation name, name lists compared as sets (names.h). */
#include "common/names.h"

#include <stdlib.h>
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

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int wh_names_same(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  if (na == 0) return 1;
  char **x = malloc(na * sizeof *x), **y = malloc(nb * sizeof *y);
  int same = x && y ? 1 : -1;
  if (same == 1) {
    memcpy(x, a, na * sizeof *x);
    memcpy(y, b, nb * sizeof *y);
    qsort(x, na, sizeof *x, name_cmp);
    qsort(y, nb, sizeof *y, name_cmp);
    for (size_t i = 0; i < na && same == 1; i++) same = strcmp(x[i], y[i]) == 0;
  }
  free(x);
  free(y);
  return same;
}

int wh_names_same_but(char *const *a, size_t na, char *const *b, size_t nb, const char *name,
                      int op) {
  char **v = malloc((nb + 1) * sizeof *v);
  if (v == NULL) return -1;
  size_t n = 0;
  for (size_t i = 0; i < nb; i++)
    if (op >= 0 || strcmp(b[i], name) != 0) v[n++] = b[i];
  if (op > 0) v[n++] = (char *)name;
  int same = wh_names_same(a, na, v, n);
  free(v);
  return same;
}

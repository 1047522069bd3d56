/* Internal (src/common): the last-error sentence (err.h). */
#include "common/err.h"

#include <stdio.h>

int wh_error_setv(char last_error[WH_ERROR_LEN], int code, const char *fmt, va_list ap) {
  if (last_error) vsnprintf(last_error, WH_ERROR_LEN, fmt, ap);
  return code;
}

int wh_error_set(char last_error[WH_ERROR_LEN], int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wh_error_setv(last_error, code, fmt, ap);
  va_end(ap);
  return code;
}

/*
 * Internal (src/common): the last-error sentence and fail(), for the
 * library core (whisper_ctx's, wh_fail), the engine (its context's,
 * sy_fail) and the server core (whisper_server's, wsrv_fail): one
 * buffer size, one way of writing it (printf-style, cut to fit).
 */
#ifndef WH_COMMON_ERR_H
#define WH_COMMON_ERR_H

#include <stdarg.h>

#define WH_ERROR_LEN 256 /* a last-error buffer, its NUL included */

/* Writes the sentence into `last_error` (NULL: nowhere); returns `code`. */
int wh_error_set(char last_error[WH_ERROR_LEN], int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int wh_error_setv(char last_error[WH_ERROR_LEN], int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif

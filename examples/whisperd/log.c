/*
 * whisperd: logging. One line per event on stderr:
 *
 *   whisperd: 2024-05-01T12:00:00.123Z info conn 7 open (peer 127.0.0.1)
 *
 * A line is formatted whole and written with one call, so lines never
 * interleave. Callers log ids, sizes, counts and addresses, never a
 * frame, a message body or a key.
 */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "whisperd.h"

int wd_log_level = WD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int wd_log_enabled(int level) { return level <= wd_log_level; }

int wd_log_level_parse(const char *name) {
  for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  if (strcmp(name, "warning") == 0) return WD_LOG_WARN;
  return -1;
}

const char *wd_log_level_name(int level) {
  if (level < 0 || level > WD_LOG_DEBUG) return "?";
  return level_names[level];
}

void wd_log(int level, const char *fmt, ...) {
  if (!wd_log_enabled(level)) return;

  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  time_t secs = ts.tv_sec;
  gmtime_r(&secs, &tm);
  int n = snprintf(line, sizeof line, "whisperd: %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (long)(ts.tv_nsec / 1000000), wd_log_level_name(level));
  if (n < 0) return;
  size_t len = (size_t)n;

  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  len += (size_t)m;
  if (len > sizeof line - 2) len = sizeof line - 2; /* truncated: keep one line */
  /* One event, one line: no embedded newlines. */
  for (size_t i = 0; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}

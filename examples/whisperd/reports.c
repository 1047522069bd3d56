/*
 * whisperd --reports: the reports users made (whisper_server_reports()),
 * one JSON object per line on stdout, oldest first (whisperd.h has the
 * format). Their plaintext is what the reporters chose to reveal; it goes
 * to stdout only, never to the log.
 */
#include <stdlib.h>
#include <string.h>

#include "whisperd.h"

/* 1 if s (n bytes) is well-formed UTF-8 (no overlongs, surrogates or
 * values past U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* A JSON string of UTF-8 bytes: quotes, backslashes and control
 * characters escaped. */
static void json_str(FILE *out, const uint8_t *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c == '\r')
      fputs("\\r", out);
    else if (c == '\t')
      fputs("\\t", out);
    else if (c < 0x20 || c == 0x7F)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static void json_cstr(FILE *out, const char *s) { json_str(out, (const uint8_t *)s, strlen(s)); }

static void hex(FILE *out, const uint8_t *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) fprintf(out, "%02x", s[i]);
  fputc('"', out);
}

typedef struct printing {
  FILE *out;
  uint64_t count;
} printing;

static int print_one(void *user, const whisper_server_report_t *r) {
  printing *p = user;
  FILE *out = p->out;
  fprintf(out, "{\"number\":%llu,\"at_ms\":%llu,\"reporter\":", (unsigned long long)r->number,
          (unsigned long long)r->at_ms);
  json_cstr(out, r->reporter);
  fprintf(out, ",\"reporter_device\":%u,\"conversation\":", (unsigned)r->reporter_device);
  json_cstr(out, r->conversation);
  fprintf(out, ",\"blocked\":%s,\"messages\":[", r->blocked ? "true" : "false");
  for (size_t i = 0; i < r->n_messages; i++) {
    const whisper_server_report_message_t *m = WHISPER_SERVER_REPORT_MESSAGE(r, i);
    fprintf(out, "%s{\"id\":", i ? "," : "");
    hex(out, m->id, m->id_len);
    fputs(",\"sender\":", out);
    json_cstr(out, m->sender);
    fprintf(out, ",\"sent_at_ms\":%llu,", (unsigned long long)m->sent_at_ms);
    if (utf8_ok(m->text, m->text_len)) {
      fputs("\"text\":", out);
      json_str(out, m->text, m->text_len);
    } else {
      fputs("\"text_hex\":", out);
      hex(out, m->text, m->text_len);
    }
    fprintf(out, ",\"truncated\":%s,\"deleted\":%s}", m->truncated ? "true" : "false",
            m->deleted ? "true" : "false");
  }
  fputs("]}\n", out);
  p->count++;
  return ferror(out) ? 1 : 0;
}

int wd_reports_print(whisper_server *srv, uint64_t after, FILE *out) {
  printing p = {out, 0};
  int rc = whisper_server_reports(srv, after, 0, print_one, &p);
  if (fflush(out) != 0 || ferror(out)) {
    fprintf(stderr, "whisperd: --reports: cannot write the reports\n");
    return -1;
  }
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisperd: --reports: %s (%s), after %llu report(s)\n", whisper_strerror(rc),
            whisper_server_last_error(srv), (unsigned long long)p.count);
    return -1;
  }
  wd_info("%llu report(s) printed", (unsigned long long)p.count);
  return 0;
}

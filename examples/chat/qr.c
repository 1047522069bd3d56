/*
 * whisper-chat: QR codes in the terminal, with Debian's libqrencode, and
 * the texts they carry.
 *
 * A code is drawn with Unicode half blocks (▀ ▄ █ and a space): one
 * character is one module wide and two modules high, so a code of the
 * sizes used here (version 7 to 10) takes 53 to 65 columns. Around it is
 * the quiet zone of 4 modules that the standard asks for. With colours the
 * code is black on white whatever the terminal's theme; without, it is
 * drawn as `qrencode -t UTF8` draws it, for light text on a dark
 * background: the light modules are the blocks.
 *
 * The texts: QR_SAFETY_PREFIX or QR_LINK_PREFIX, then the bytes in
 * uppercase hex (so the whole text is in QR's alphanumeric mode, 5.5 bits
 * a character rather than 8).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <qrencode.h>

#include "chat.h"

#define QUIET 4 /* modules of quiet zone on each side */

char *qr_text(const char *prefix, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789ABCDEF";
  size_t plen = strlen(prefix);
  char *s = malloc(plen + 2 * n + 1);
  if (!s) return NULL;
  memcpy(s, prefix, plen);
  for (size_t i = 0; i < n; i++) {
    s[plen + 2 * i] = digits[b[i] >> 4];
    s[plen + 2 * i + 1] = digits[b[i] & 15];
  }
  s[plen + 2 * n] = '\0';
  return s;
}

long qr_text_parse(const char *prefix, const char *s, uint8_t *out, size_t max) {
  size_t plen = strlen(prefix);
  if (strncasecmp(s, prefix, plen) == 0) s += plen;
  if (!*s) return -1;
  return hex_decode_var(out, max, s);
}

/* Whether module (x, y) of the code is dark; outside it (the quiet zone)
 * it is light. */
static int dark(const QRcode *q, int x, int y) {
  if (x < 0 || y < 0 || x >= q->width || y >= q->width) return 0;
  return q->data[y * q->width + x] & 1;
}

int qr_draw(const chat *c, jbuf *b, const char *text) {
  /* 8-bit mode as the hint: libqrencode still takes the alphanumeric
   * stretches in alphanumeric mode (case-sensitive, so nothing changes) */
  QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (!q) return -1;
  int size = q->width + 2 * QUIET;
  for (int y = 0; y < size; y += 2) {
    hb_printf(b, "\n  %s", c->color ? "\033[30;47m" : "");
    for (int x = 0; x < size; x++) {
      int top = dark(q, x - QUIET, y - QUIET);
      int bottom = y + 1 < size && dark(q, x - QUIET, y + 1 - QUIET);
      /* the ink: the dark modules in black on white; without colours the
       * light ones (the terminal's text colour) */
      if (!c->color) {
        top = !top;
        bottom = y + 1 < size ? !bottom : 0;
      }
      hb_printf(b, "%s", top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ");
    }
    if (c->color) hb_printf(b, "\033[0m");
  }
  QRcode_free(q);
  return b->failed ? -1 : 0;
}

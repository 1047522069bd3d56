/*
 * whisper-chat: what it prints. In --script mode one JSON object per line
 * on stdout for every event and command result, flushed at once; else
 * human lines. Strings from the network are escaped (JSON) or made
 * harmless for a terminal (human). Nothing printed is ever a key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"

/* --- the line buffer --------------------------------------------------------- */

void jb_init(jbuf *b) { memset(b, 0, sizeof *b); }

void jb_free(jbuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static void put(jbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(jbuf *b, const char *s) { put(b, s, strlen(s)); }

/* The length of the valid UTF-8 sequence at s (1..4), or 0 if it is not
 * one (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
  uint8_t c0 = s[0];
  size_t len;
  uint32_t v, min;
  if (c0 < 0x80) {
    *cp = c0;
    return 1;
  } else if ((c0 & 0xe0) == 0xc0) {
    len = 2, v = c0 & 0x1f, min = 0x80;
  } else if ((c0 & 0xf0) == 0xe0) {
    len = 3, v = c0 & 0x0f, min = 0x800;
  } else if ((c0 & 0xf8) == 0xf0) {
    len = 4, v = c0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return len;
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * valid UTF-8 kept, an invalid byte becomes U+FFFD. */
static void put_json_string(jbuf *b, const uint8_t *s, size_t n) {
  put(b, "\"", 1);
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t len = utf8_seq(s + i, n - i, &cp);
    if (len == 0) {
      puts_(b, "\\ufffd");
      i++;
      continue;
    }
    if (cp == '"') {
      puts_(b, "\\\"");
    } else if (cp == '\\') {
      puts_(b, "\\\\");
    } else if (cp == '\n') {
      puts_(b, "\\n");
    } else if (cp == '\r') {
      puts_(b, "\\r");
    } else if (cp == '\t') {
      puts_(b, "\\t");
    } else if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
      puts_(b, esc);
    } else {
      put(b, (const char *)s + i, len);
    }
    i += len;
  }
  put(b, "\"", 1);
}

/* A comma goes before a value unless it opens its container or follows a
 * key. */
static void sep(jbuf *b) {
  if (b->len == 0) return;
  char last = b->p[b->len - 1];
  if (last != '{' && last != '[' && last != ':') put(b, ",", 1);
}

void jb_begin(jbuf *b, const char *ev) {
  b->len = 0;
  b->failed = 0;
  put(b, "{", 1);
  jb_str(b, "ev", ev);
}

void jb_key(jbuf *b, const char *key) {
  sep(b);
  if (!key) return;
  put_json_string(b, (const uint8_t *)key, strlen(key));
  put(b, ":", 1);
}

void jb_str(jbuf *b, const char *key, const char *s) {
  jb_key(b, key);
  if (!s)
    puts_(b, "null");
  else
    put_json_string(b, (const uint8_t *)s, strlen(s));
}

void jb_bytes(jbuf *b, const char *key, const uint8_t *s, size_t n) {
  jb_key(b, key);
  put_json_string(b, s ? s : (const uint8_t *)"", s ? n : 0);
}

void jb_hex(jbuf *b, const char *key, const uint8_t *s, size_t n) {
  jb_key(b, key);
  if (!s) {
    puts_(b, "null");
    return;
  }
  char *h = malloc(2 * n + 1);
  if (!h) {
    b->failed = 1;
    return;
  }
  hex_encode(h, s, n);
  put(b, "\"", 1);
  puts_(b, h);
  put(b, "\"", 1);
  free(h);
}

void jb_u64(jbuf *b, const char *key, uint64_t v) {
  char num[24];
  jb_key(b, key);
  snprintf(num, sizeof num, "%llu", (unsigned long long)v);
  puts_(b, num);
}

void jb_int(jbuf *b, const char *key, long long v) {
  char num[24];
  jb_key(b, key);
  snprintf(num, sizeof num, "%lld", v);
  puts_(b, num);
}

void jb_bool(jbuf *b, const char *key, int v) {
  jb_key(b, key);
  puts_(b, v ? "true" : "false");
}

void jb_open(jbuf *b, const char *key, char bracket) {
  jb_key(b, key);
  put(b, &bracket, 1);
}

void jb_close(jbuf *b, char bracket) { put(b, &bracket, 1); }

static void emit(chat *c, jbuf *b) {
  if (c->out_broken) return;
  if (b->failed) {
    fputs(c->script ? "{\"ev\":\"error\",\"message\":\"out of memory\"}\n" : "! out of memory\n",
          stdout);
  } else {
    put(b, "\n", 1);
    fwrite(b->p, 1, b->len, stdout);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    c->out_broken = 1;
    c->quit = 1;
  }
}

void jb_print(chat *c, jbuf *b) {
  put(b, "}", 1);
  emit(c, b);
}

void hb_printf(jbuf *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    put(b, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    b->failed = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  put(b, big, (size_t)n);
  free(big);
}

/* Text for a terminal: no control characters (C0, DEL, C1: no escape
 * sequences from a peer), no invalid UTF-8. */
void hb_text(jbuf *b, const uint8_t *s, size_t n) {
  size_t i = 0;
  if (!s) return;
  while (i < n) {
    uint32_t cp;
    size_t len = utf8_seq(s + i, n - i, &cp);
    if (len == 0) {
      put(b, "?", 1);
      i++;
      continue;
    }
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 || cp == 0x2029)
      put(b, cp == '\n' ? " " : "?", 1);
    else
      put(b, (const char *)s + i, len);
    i += len;
  }
}

static void hb_str(jbuf *b, const char *s) {
  if (s) hb_text(b, (const uint8_t *)s, strlen(s));
}

void hb_print(chat *c, jbuf *b) { emit(c, b); }

/* --- statuses ------------------------------------------------------------------ */

const char *status_name(int status) {
  switch (status) {
  case WHISPER_STATUS_PENDING: return "pending";
  case WHISPER_STATUS_SENT: return "sent";
  case WHISPER_STATUS_DELIVERED: return "delivered";
  case WHISPER_STATUS_READ: return "read";
  case WHISPER_STATUS_FAILED: return "failed";
  case WHISPER_STATUS_OPENED: return "opened";
  default: return "unknown";
  }
}

const char *status_ticks(const chat *c, int status) {
  switch (status) {
  case WHISPER_STATUS_PENDING: return "…";
  case WHISPER_STATUS_SENT: return "✓";
  case WHISPER_STATUS_DELIVERED: return "✓✓";
  case WHISPER_STATUS_READ: return c->color ? "\033[34m✓✓\033[0m" : "✓✓ read";
  case WHISPER_STATUS_FAILED: return c->color ? "\033[31m! not delivered\033[0m" : "! not delivered";
  case WHISPER_STATUS_OPENED: return c->color ? "\033[34m✓✓ opened\033[0m" : "✓✓ opened";
  default: return "?";
  }
}

/* --- message content ------------------------------------------------------------- */

#define QUOTE_CHARS 40 /* of a quote's excerpt, on a human line */

const char *call_type_name(int type) {
  switch (type) {
  case WHISPER_CALL_OFFER: return "offer";
  case WHISPER_CALL_ANSWER: return "answer";
  case WHISPER_CALL_ICE: return "ice";
  case WHISPER_CALL_HANGUP: return "hangup";
  case WHISPER_CALL_BUSY: return "busy";
  default: return NULL;
  }
}

int call_type_parse(const char *s) {
  for (int t = WHISPER_CALL_OFFER; t <= WHISPER_CALL_BUSY; t++)
    if (strcmp(s, call_type_name(t)) == 0) return t;
  return 0;
}

/* An account as human lines name it: "you" for this one. */
static void hb_who(const chat *c, jbuf *b, const char *account) {
  if (!account || strcmp(account, c->account) == 0)
    puts_(b, "you");
  else
    hb_text(b, (const uint8_t *)account, strlen(account));
}

/* "the first words…": the first QUOTE_CHARS characters of s, quoted. */
static void hb_excerpt(jbuf *b, const uint8_t *s, size_t n) {
  size_t i = 0, chars = 0;
  uint32_t cp;
  while (s && i < n && chars < QUOTE_CHARS) {
    size_t len = utf8_seq(s + i, n - i, &cp);
    i += len ? len : 1;
    chars++;
  }
  size_t shown = i;
  while (shown < n && shown > 0 && s[shown - 1] == ' ') shown--; /* cut: no blank before the … */
  puts_(b, "\"");
  hb_text(b, s, shown);
  puts_(b, i < n ? "…\"" : "\"");
}

/* ↪ bob: "the first words…" (sender NULL: this account). */
static void hb_quote(const chat *c, jbuf *b, const char *sender, const char *excerpt) {
  puts_(b, "↪ ");
  hb_who(c, b, sender);
  puts_(b, ": ");
  hb_excerpt(b, (const uint8_t *)excerpt, excerpt ? strlen(excerpt) : 0);
}

/* A message's kind as the JSON lines name it. */
static const char *kind_name(int kind) {
  return kind == WHISPER_KIND_TEXT ? "text" : kind == WHISPER_KIND_ATTACHMENT ? "attachment" : "unsupported";
}

void jb_content(chat *c, jbuf *b, const whisper_message_t *m) {
  jb_str(b, "kind", kind_name(m->kind));
  if (m->kind == WHISPER_KIND_ATTACHMENT && !m->deleted) /* media.c */
    jb_attachment(c, b, m->conversation, m->id, m->id_len, m->sender);
  jb_bool(b, "edited", m->edited_ms != 0);
  if (m->edited_ms) jb_u64(b, "edited_ms", m->edited_ms);
  jb_bool(b, "deleted", m->deleted);
  jb_u64(b, "forwarded", m->forwarded);
  if (m->quote_id && m->quote_id_len) {
    jb_open(b, "quote", '{');
    jb_hex(b, "id", m->quote_id, m->quote_id_len);
    jb_str(b, "from", m->quote_sender ? m->quote_sender : c->account);
    jb_bool(b, "own", m->quote_sender == NULL);
    jb_str(b, "excerpt", m->quote_excerpt ? m->quote_excerpt : "");
    jb_close(b, '}');
  }
  jb_open(b, "reactions", '[');
  for (size_t i = 0; i < m->n_reactions && m->reactions; i++) {
    jb_open(b, NULL, '{');
    jb_str(b, "from", WHISPER_MESSAGE_REACTION(m, i)->reactor);
    jb_str(b, "emoji", WHISPER_MESSAGE_REACTION(m, i)->emoji);
    jb_u64(b, "at_ms", WHISPER_MESSAGE_REACTION(m, i)->at_ms);
    jb_close(b, '}');
  }
  jb_close(b, ']');
}

static void hb_forwarded(const chat *c, jbuf *b, uint32_t forwarded) {
  if (!forwarded) return;
  hb_printf(b, "%s[forwarded%s]%s ", c->color ? "\033[2m" : "",
            forwarded >= WHISPER_FORWARDED_MANY ? " many times" : "", c->color ? "\033[0m" : "");
}

void hb_content(chat *c, jbuf *b, const whisper_message_t *m) {
  if (m->deleted) {
    hb_printf(b, "%s%s%s", c->color ? "\033[2m" : "", TOMBSTONE_TEXT, c->color ? "\033[0m" : "");
    return;
  }
  if (m->kind == WHISPER_KIND_ATTACHMENT) { /* media.c; the body is its caption */
    hb_forwarded(c, b, m->forwarded);
    hb_attachment(c, b, m->conversation, m->id, m->id_len, m->sender, m->body, m->body_len);
    return;
  }
  if (m->kind != WHISPER_KIND_TEXT) { /* unsupported, or a kind of a later library */
    puts_(b, UNSUPPORTED_TEXT);
    return;
  }
  hb_forwarded(c, b, m->forwarded);
  hb_text(b, m->body, m->body_len);
  if (m->edited_ms) hb_printf(b, "  %s(edited)%s", c->color ? "\033[2m" : "", c->color ? "\033[0m" : "");
}

void hb_content_below(chat *c, jbuf *b, const whisper_message_t *m) {
  if (m->deleted) return;
  if (m->quote_id && m->quote_id_len) {
    puts_(b, "\n          ");
    hb_quote(c, b, m->quote_sender, m->quote_excerpt);
  }
  if (m->n_reactions && m->reactions) {
    puts_(b, "\n          ");
    for (size_t i = 0; i < m->n_reactions; i++) {
      if (i) puts_(b, ", ");
      hb_str(b, WHISPER_MESSAGE_REACTION(m, i)->emoji);
      puts_(b, " ");
      hb_who(c, b, WHISPER_MESSAGE_REACTION(m, i)->reactor);
    }
  }
}

/* --- events -------------------------------------------------------------------- */

static const char *event_name(int type) {
  switch (type) {
  case WHISPER_EV_REGISTERED: return "registered";
  case WHISPER_EV_ONLINE: return "online";
  case WHISPER_EV_CAUGHT_UP: return "caught_up";
  case WHISPER_EV_CATCHING_UP: return "catching_up";
  case WHISPER_EV_MESSAGE: return "message";
  case WHISPER_EV_STATUS: return "status";
  case WHISPER_EV_TYPING: return "typing";
  case WHISPER_EV_PRESENCE: return "presence";
  case WHISPER_EV_IDENTITY: return "identity";
  case WHISPER_EV_GROUP: return "group";
  case WHISPER_EV_ERROR: return "error";
  case WHISPER_EV_LINK_CODE: return "link_code";
  case WHISPER_EV_DEVICES: return "devices";
  case WHISPER_EV_REFUSED: return "refused";
  case WHISPER_EV_GAP: return "gap";
  case WHISPER_EV_RETRY: return "retry";
  case WHISPER_EV_ROLLBACK: return "rollback";
  case WHISPER_EV_ANCHOR: return "anchor";
  case WHISPER_EV_EDITED: return "edited";
  case WHISPER_EV_DELETED: return "deleted";
  case WHISPER_EV_REACTION: return "reaction";
  case WHISPER_EV_CALL: return "call";
  case WHISPER_EV_SETTINGS: return "settings";
  case WHISPER_EV_PROFILE: return "profile";
  case WHISPER_EV_MEDIA: return "media";
  default: return "unknown";
  }
}

void clock_str(char out[16], uint64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (ms == 0 || !localtime_r(&t, &tm)) {
    snprintf(out, 16, "--:--:--");
    return;
  }
  strftime(out, 16, "%H:%M:%S", &tm);
}

static const char *devices_change(int status) {
  return status == 1 ? "added" : status == 2 ? "removed" : "unauthenticated";
}

#define LOOKUP_RECENT 200 /* messages looked at for what an event names */

/* Message (id, sender) among the newest LOOKUP_RECENT of `conversation`
 * (sender NULL or this account: an own message), in *page (the caller's
 * to free), or NULL. For what a live line shows: a reply's quote, what a
 * reaction is to. */
static const whisper_message_t *recent_message(chat *c, const char *conversation, const uint8_t *id,
                                               size_t id_len, const char *sender,
                                               whisper_page **page) {
  *page = NULL;
  if (!conversation || !id || !id_len) return NULL;
  int own = sender == NULL || strcmp(sender, c->account) == 0;
  if (whisper_history_page(c->ctx, conversation, 0, NULL, 0, LOOKUP_RECENT, page) != WHISPER_OK)
    return NULL;
  for (size_t i = 0; i < whisper_page_count(*page); i++) {
    const whisper_message_t *m = whisper_page_get(*page, i);
    if (m && m->id_len == id_len && memcmp(m->id, id, id_len) == 0 &&
        (own ? m->sender == NULL : m->sender && strcmp(m->sender, sender) == 0))
      return m;
  }
  return NULL;
}

/* The message an EDITED, DELETED or REACTION event names. */
static void jb_target(chat *c, jbuf *b, const whisper_client_event_t *ev) {
  jb_hex(b, "target_id", ev->target_id, ev->target_id_len);
  jb_str(b, "target_sender", ev->target_sender ? ev->target_sender : c->account);
  jb_bool(b, "target_own", ev->target_sender == NULL);
}

static void event_json(chat *c, const whisper_client_event_t *ev) {
  jbuf b;
  jb_init(&b);
  jb_begin(&b, event_name(ev->type));
  switch (ev->type) {
  case WHISPER_EV_REGISTERED:
  case WHISPER_EV_ONLINE:
  case WHISPER_EV_CAUGHT_UP:
    break;
  case WHISPER_EV_CATCHING_UP:
    jb_u64(&b, "done", ev->done_bytes);
    jb_u64(&b, "total", ev->total_bytes);
    break;
  case WHISPER_EV_MESSAGE:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_hex(&b, "id", ev->id, ev->id_len);
    jb_bytes(&b, "body", ev->body, ev->body_len);
    jb_u64(&b, "seq", ev->server_seq);
    jb_u64(&b, "ts", ev->server_ts);
    jb_str(&b, "kind", kind_name(ev->kind));
    jb_u64(&b, "forwarded", ev->forwarded);
    if (ev->kind == WHISPER_KIND_ATTACHMENT) /* media.c; the body is its caption */
      jb_attachment(c, &b, ev->conversation, ev->id, ev->id_len,
                    ev->from && strcmp(ev->from, c->account) == 0 ? NULL : ev->from);
    if (ev->target_id && ev->target_id_len) {
      /* a reply: the quote as history keeps it with the reply */
      whisper_page *page;
      const whisper_message_t *m = recent_message(c, ev->conversation, ev->id, ev->id_len, ev->from, &page);
      jb_open(&b, "quote", '{');
      jb_hex(&b, "id", ev->target_id, ev->target_id_len);
      jb_str(&b, "from", ev->target_sender ? ev->target_sender : c->account);
      jb_bool(&b, "own", ev->target_sender == NULL);
      if (m && m->quote_excerpt) jb_str(&b, "excerpt", m->quote_excerpt);
      jb_close(&b, '}');
      whisper_page_free(page);
    }
    break;
  case WHISPER_EV_EDITED:
  case WHISPER_EV_DELETED:
  case WHISPER_EV_REACTION:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_target(c, &b, ev);
    if (ev->type == WHISPER_EV_EDITED) jb_bytes(&b, "body", ev->body, ev->body_len);
    if (ev->type == WHISPER_EV_REACTION) {
      jb_bytes(&b, "emoji", ev->body, ev->body_len);
      jb_bool(&b, "removed", ev->body_len == 0);
    }
    if (ev->server_seq) jb_u64(&b, "seq", ev->server_seq);
    break;
  case WHISPER_EV_CALL:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_str(&b, "type", call_type_name(ev->status));
    jb_hex(&b, "call_id", ev->id_len == WHISPER_CALL_ID_LEN ? ev->id : NULL, WHISPER_CALL_ID_LEN);
    jb_bytes(&b, "data", ev->body, ev->body_len);
    break;
  case WHISPER_EV_SETTINGS: { /* another device of ours changed them */
    whisper_conversation_flags_t f = WHISPER_CONVERSATION_FLAGS_INIT;
    jb_str(&b, "conversation", ev->conversation);
    if (ev->conversation && whisper_client_conversation_flags_get(c->client, ev->conversation, &f) == WHISPER_OK) {
      jb_u64(&b, "muted_until", f.muted_until_ms);
      jb_bool(&b, "archived", f.archived);
      jb_bool(&b, "pinned", f.pinned);
    }
    break;
  }
  case WHISPER_EV_PROFILE: { /* a contact's profile, or ours from another device, changed */
    whisper_profile_t *p = NULL;
    jb_str(&b, "account", ev->from);
    if (ev->from && whisper_client_profile_get(c->client, ev->from, &p) == WHISPER_OK) {
      jb_str(&b, "name", p->name);
      jb_str(&b, "about", p->about);
      jb_u64(&b, "picture_len", p->picture_len);
      jb_u64(&b, "version", p->profile_version);
    }
    whisper_profile_free(p);
    break;
  }
  case WHISPER_EV_STATUS:
    jb_hex(&b, "id", ev->id, ev->id_len);
    if (ev->conversation) jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "to", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_str(&b, "status", status_name(ev->status));
    if (ev->server_seq) jb_u64(&b, "seq", ev->server_seq);
    break;
  case WHISPER_EV_TYPING:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_bool(&b, "started", ev->started);
    break;
  case WHISPER_EV_PRESENCE:
    jb_str(&b, "account", ev->from);
    jb_bool(&b, "online", ev->online);
    jb_u64(&b, "last_seen_ms", ev->last_seen_ms);
    break;
  case WHISPER_EV_IDENTITY:
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    if (ev->body_len) jb_hex(&b, "key", ev->body, ev->body_len);
    break;
  case WHISPER_EV_DEVICES:
    jb_str(&b, "account", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_str(&b, "change", devices_change(ev->status));
    break;
  case WHISPER_EV_REFUSED:
    jb_int(&b, "code", ev->code);
    jb_str(&b, "error", ev->code ? whisper_strerror(ev->code) : NULL);
    jb_str(&b, "message", ev->message);
    if (ev->conversation) jb_str(&b, "conversation", ev->conversation);
    if (ev->from) jb_str(&b, "from", ev->from);
    if (ev->from_device) jb_u64(&b, "device", ev->from_device);
    break;
  case WHISPER_EV_GROUP:
    jb_str(&b, "conversation", ev->conversation);
    if (ev->conversation && strlen(ev->conversation) == WHISPER_GROUP_CONVERSATION_LEN)
      jb_str(&b, "group", ev->conversation + 1);
    if (ev->from) jb_str(&b, "from", ev->from);
    jb_int(&b, "changed", ev->status); /* WHISPER_GROUP_CHANGED_* bits, or a join request */
    if (ev->body && ev->body_len) jb_bytes(&b, "detail", ev->body, ev->body_len);
    if (ev->message) jb_str(&b, "message", ev->message);
    break;
  case WHISPER_EV_ERROR:
    jb_int(&b, "code", ev->code);
    jb_str(&b, "error", ev->code ? whisper_strerror(ev->code) : NULL);
    jb_int(&b, "server_code", ev->server_code);
    jb_str(&b, "message", ev->message);
    if (ev->conversation) jb_str(&b, "conversation", ev->conversation);
    if (ev->from) jb_str(&b, "from", ev->from);
    if (ev->id && ev->id_len) jb_hex(&b, "id", ev->id, ev->id_len);
    break;
  case WHISPER_EV_GAP:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_int(&b, "missing", ev->status);
    break;
  case WHISPER_EV_RETRY:
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from);
    jb_u64(&b, "device", ev->from_device);
    jb_hex(&b, "id", ev->id, ev->id_len);
    jb_str(&b, "what", ev->status == WHISPER_RETRY_ASKED    ? "asked"
                       : ev->status == WHISPER_RETRY_RESENT ? "resent"
                                                            : "failed");
    break;
  case WHISPER_EV_ROLLBACK:
    if (ev->from) jb_str(&b, "from", ev->from);
    if (ev->from) jb_u64(&b, "device", ev->from_device);
    break;
  case WHISPER_EV_ANCHOR:
    break; /* the anchor itself stays out of the output */
  case WHISPER_EV_LINK_CODE: {
    char digits[WHISPER_LINK_DIGITS + 1] = "";
    whisper_client_link_digits(ev->body, ev->body_len, digits);
    char *text = qr_text(QR_LINK_PREFIX, ev->body ? ev->body : (const uint8_t *)"", ev->body_len);
    jb_hex(&b, "code", ev->body, ev->body_len);
    jb_str(&b, "digits", digits);
    jb_str(&b, "qr_text", text);
    free(text);
    break;
  }
  default:
    jb_int(&b, "type", ev->type);
    if (ev->conversation) jb_str(&b, "conversation", ev->conversation);
    if (ev->from) jb_str(&b, "from", ev->from);
    break;
  }
  jb_print(c, &b);
  jb_free(&b);
}

static void hb_id(jbuf *b, const uint8_t *id, size_t n) {
  char hex[2 * 256 + 1];
  if (!id || n == 0 || n > 256) return;
  hex_encode(hex, id, n);
  put(b, hex, 2 * n);
}

/* A message id as human lines show it: its first SHORT_ID_HEX digits,
 * enough to name it in a command (msgref.c). */
static void hb_short_id(jbuf *b, const uint8_t *id, size_t n) {
  hb_id(b, id, n < SHORT_ID_HEX / 2 ? n : SHORT_ID_HEX / 2);
}

#define CALL_DATA_SHOWN 200 /* characters of a call's data on a human line */

/* "12:00:00 [conversation] bob.1" in front of what an event says. */
static void hb_head(chat *c, jbuf *b, const whisper_client_event_t *ev) {
  char when[16];
  clock_str(when, ev->server_ts);
  hb_printf(b, "%s%s%s [", c->color ? "\033[2m" : "", when, c->color ? "\033[0m" : "");
  hb_str(b, ev->conversation);
  hb_printf(b, "] %s", c->color ? "\033[1m" : "");
  hb_str(b, ev->from);
  hb_printf(b, ".%u%s", (unsigned)ev->from_device, c->color ? "\033[0m" : "");
}

/* Whose message an event names: "your", "their own", "bob's". */
static void hb_whose(chat *c, jbuf *b, const whisper_client_event_t *ev) {
  if (!ev->target_sender || strcmp(ev->target_sender, c->account) == 0) {
    puts_(b, "your");
  } else if (ev->from && strcmp(ev->target_sender, ev->from) == 0) {
    puts_(b, "their own");
  } else {
    hb_str(b, ev->target_sender);
    puts_(b, "'s");
  }
}

/* An edit, a delete for everyone or a reaction, as a line. */
static void op_human(chat *c, jbuf *b, const whisper_client_event_t *ev) {
  const char *dim = c->color ? "\033[2m" : "", *off = c->color ? "\033[0m" : "";
  hb_head(c, b, ev);
  if (ev->type == WHISPER_EV_EDITED) {
    puts_(b, " edited a message: ");
    hb_text(b, ev->body, ev->body_len);
  } else if (ev->type == WHISPER_EV_DELETED) {
    hb_printf(b, " deleted a message for everyone: %s%s%s", dim, TOMBSTONE_TEXT, off);
  } else {
    if (ev->body_len) {
      puts_(b, " reacted ");
      hb_text(b, ev->body, ev->body_len);
      puts_(b, " to ");
    } else {
      puts_(b, " took back their reaction to ");
    }
    hb_whose(c, b, ev);
    puts_(b, " message");
    whisper_page *page;
    const whisper_message_t *m =
        recent_message(c, ev->conversation, ev->target_id, ev->target_id_len, ev->target_sender, &page);
    if (m && !m->deleted && m->kind == WHISPER_KIND_TEXT && m->body) {
      puts_(b, " ");
      hb_excerpt(b, m->body, m->body_len);
    }
    whisper_page_free(page);
  }
  hb_printf(b, "  %s(", dim);
  hb_short_id(b, ev->target_id, ev->target_id_len);
  hb_printf(b, ")%s", off);
}

/* Call signalling, as a line. */
static void call_human(chat *c, jbuf *b, const whisper_client_event_t *ev) {
  char id[2 * WHISPER_CALL_ID_LEN + 1] = "?";
  if (ev->id && ev->id_len == WHISPER_CALL_ID_LEN) hex_encode(id, ev->id, WHISPER_CALL_ID_LEN);
  const char *type = call_type_name(ev->status);
  int mine = ev->from && strcmp(ev->from, c->account) == 0;
  puts_(b, "☎ ");
  if (mine) {
    /* another device of this account signalled */
    hb_printf(b, "your device %u sent %s to ", (unsigned)ev->from_device, type ? type : "a call signal");
    hb_str(b, ev->conversation);
    hb_printf(b, " (call %s)", id);
  } else {
    hb_str(b, ev->from);
    hb_printf(b, ".%u ", (unsigned)ev->from_device);
    switch (ev->status) {
    case WHISPER_CALL_OFFER:
      hb_printf(b, "is calling you (call %s). Answer: call ", id);
      hb_str(b, ev->from);
      puts_(b, " answer <sdp>; refuse: call ");
      hb_str(b, ev->from);
      puts_(b, " busy");
      break;
    case WHISPER_CALL_ANSWER: hb_printf(b, "answered (call %s)", id); break;
    case WHISPER_CALL_ICE: hb_printf(b, "sent an ICE candidate (call %s)", id); break;
    case WHISPER_CALL_HANGUP: hb_printf(b, "hung up (call %s)", id); break;
    case WHISPER_CALL_BUSY: hb_printf(b, "is busy (call %s)", id); break;
    default: hb_printf(b, "sent call signal %d (call %s)", ev->status, id); break;
    }
  }
  if (ev->body_len) {
    size_t n = ev->body_len, i = 0, chars = 0;
    uint32_t cp;
    while (i < n && chars < CALL_DATA_SHOWN) {
      size_t len = utf8_seq(ev->body + i, n - i, &cp);
      i += len ? len : 1;
      chars++;
    }
    puts_(b, "\n    ");
    hb_text(b, ev->body, i);
    if (i < n) hb_printf(b, "… (%zu bytes)", n);
  }
}

static void event_human(chat *c, const whisper_client_event_t *ev) {
  jbuf b;
  char when[16];
  jb_init(&b);
  const char *dim = c->color ? "\033[2m" : "", *bold = c->color ? "\033[1m" : "",
             *off = c->color ? "\033[0m" : "";
  switch (ev->type) {
  case WHISPER_EV_REGISTERED:
    hb_printf(&b, "* registered as %s.%u", c->account, (unsigned)c->device);
    break;
  case WHISPER_EV_ONLINE:
    hb_printf(&b, "* online");
    break;
  case WHISPER_EV_CAUGHT_UP:
    hb_printf(&b, "* caught up");
    break;
  case WHISPER_EV_CATCHING_UP:
    hb_printf(&b, "%s* catching up: %llu of %llu%s", dim, (unsigned long long)ev->done_bytes,
              (unsigned long long)ev->total_bytes, off);
    break;
  case WHISPER_EV_MESSAGE:
    clock_str(when, ev->server_ts);
    hb_printf(&b, "%s%s%s [", dim, when, off);
    hb_str(&b, ev->conversation);
    hb_printf(&b, "] %s", bold);
    hb_str(&b, ev->from);
    hb_printf(&b, ".%u%s: ", (unsigned)ev->from_device, off);
    if (ev->kind == WHISPER_KIND_ATTACHMENT) {
      hb_forwarded(c, &b, ev->forwarded);
      hb_attachment(c, &b, ev->conversation, ev->id, ev->id_len,
                    ev->from && strcmp(ev->from, c->account) == 0 ? NULL : ev->from, ev->body,
                    ev->body_len);
    } else if (ev->kind != WHISPER_KIND_TEXT) {
      puts_(&b, UNSUPPORTED_TEXT);
    } else {
      hb_forwarded(c, &b, ev->forwarded);
      hb_text(&b, ev->body, ev->body_len);
    }
    hb_printf(&b, "  %s(", dim);
    hb_short_id(&b, ev->id, ev->id_len);
    hb_printf(&b, ")%s", off);
    if (ev->target_id && ev->target_id_len) {
      whisper_page *page;
      const whisper_message_t *m = recent_message(c, ev->conversation, ev->id, ev->id_len, ev->from, &page);
      puts_(&b, "\n          ");
      if (m && m->quote_id) {
        hb_quote(c, &b, m->quote_sender, m->quote_excerpt);
      } else {
        puts_(&b, "↪ a reply to ");
        hb_who(c, &b, ev->target_sender);
        puts_(&b, " (");
        hb_short_id(&b, ev->target_id, ev->target_id_len);
        puts_(&b, ")");
      }
      whisper_page_free(page);
    }
    break;
  case WHISPER_EV_EDITED:
  case WHISPER_EV_DELETED:
  case WHISPER_EV_REACTION:
    op_human(c, &b, ev);
    break;
  case WHISPER_EV_CALL:
    call_human(c, &b, ev);
    break;
  case WHISPER_EV_SETTINGS: {
    whisper_conversation_flags_t f = WHISPER_CONVERSATION_FLAGS_INIT;
    hb_printf(&b, "  * another device of yours changed ");
    hb_str(&b, ev->conversation ? ev->conversation : "?");
    if (ev->conversation && whisper_client_conversation_flags_get(c->client, ev->conversation, &f) == WHISPER_OK)
      hb_printf(&b, ": %s%s%s", f.muted_until_ms > now_ms() ? "muted" : "not muted",
                f.archived ? ", archived" : "", f.pinned ? ", pinned" : "");
    break;
  }
  case WHISPER_EV_PROFILE: {
    whisper_profile_t *p = NULL;
    hb_printf(&b, "* ");
    hb_str(&b, ev->from ? ev->from : "?");
    if (ev->from && whisper_client_profile_get(c->client, ev->from, &p) == WHISPER_OK && p->known) {
      hb_printf(&b, "'s profile: ");
      hb_str(&b, p->name);
      if (p->about[0]) {
        hb_printf(&b, " — ");
        hb_str(&b, p->about);
      }
      if (p->picture_len) hb_printf(&b, " (picture: %zu bytes)", p->picture_len);
    } else {
      hb_printf(&b, "'s profile changed");
    }
    whisper_profile_free(p);
    break;
  }
  case WHISPER_EV_STATUS:
    hb_printf(&b, "  %s ", status_ticks(c, ev->status));
    hb_short_id(&b, ev->id, ev->id_len);
    hb_printf(&b, " %s", status_name(ev->status));
    if (ev->status == WHISPER_STATUS_SENT) {
      /* once per message: the server took it */
      if (ev->conversation) {
        hb_printf(&b, " to ");
        hb_str(&b, ev->conversation);
      }
    } else if (ev->from) {
      hb_printf(&b, " by ");
      hb_str(&b, ev->from);
      if (ev->from_device) hb_printf(&b, ".%u", (unsigned)ev->from_device);
    }
    break;
  case WHISPER_EV_TYPING:
    hb_printf(&b, "* ");
    hb_str(&b, ev->from);
    hb_printf(&b, ".%u %s typing in ", (unsigned)ev->from_device,
              ev->started ? "is" : "stopped");
    hb_str(&b, ev->conversation);
    break;
  case WHISPER_EV_PRESENCE:
    hb_printf(&b, "* ");
    hb_str(&b, ev->from);
    if (ev->online) {
      hb_printf(&b, " is online");
    } else if (ev->last_seen_ms) {
      clock_str(when, ev->last_seen_ms);
      hb_printf(&b, " is offline, last seen %s", when);
    } else {
      hb_printf(&b, " is offline");
    }
    break;
  case WHISPER_EV_IDENTITY:
    hb_printf(&b, "! the account key of ");
    hb_str(&b, ev->from);
    hb_printf(&b, " changed (a new safety number). Compare them (safety ");
    hb_str(&b, ev->from);
    hb_printf(&b, "), then: verify ");
    hb_str(&b, ev->from);
    hb_printf(&b, " (or, for a contact from before account keys: trust ");
    hb_str(&b, ev->from);
    hb_printf(&b, " %u)", (unsigned)ev->from_device);
    break;
  case WHISPER_EV_DEVICES:
    hb_printf(&b, "* ");
    hb_str(&b, ev->from);
    if (ev->status == 1) hb_printf(&b, " added a device (%u)", (unsigned)ev->from_device);
    else if (ev->status == 2) hb_printf(&b, " removed a device (%u)", (unsigned)ev->from_device);
    else hb_printf(&b, "'s devices are not authorised by an account key yet");
    break;
  case WHISPER_EV_GAP:
    hb_printf(&b, "! %d message%s from ", ev->status, ev->status == 1 ? "" : "s");
    hb_str(&b, ev->from);
    hb_printf(&b, ".%u in ", (unsigned)ev->from_device);
    hb_str(&b, ev->conversation);
    hb_printf(&b, " %s missing (the server did not deliver %s)", ev->status == 1 ? "is" : "are",
              ev->status == 1 ? "it" : "them");
    break;
  case WHISPER_EV_RETRY:
    if (ev->status == WHISPER_RETRY_ASKED) {
      hb_printf(&b, "* a message from ");
      hb_str(&b, ev->from);
      hb_printf(&b, " could not be decrypted: asked for it again");
    } else if (ev->status == WHISPER_RETRY_RESENT) {
      hb_str(&b, ev->from);
      hb_printf(&b, ".%u could not decrypt a message: sent it again", (unsigned)ev->from_device);
    } else {
      hb_printf(&b, "! a message to ");
      hb_str(&b, ev->from);
      hb_printf(&b, ".%u could not be recovered (failed)", (unsigned)ev->from_device);
    }
    break;
  case WHISPER_EV_ROLLBACK:
    hb_printf(&b, "! this store was restored from an older copy%s: fresh sessions are made",
              ev->from ? " (one session)" : "");
    break;
  case WHISPER_EV_REFUSED:
    hb_printf(&b, "! refused what the server delivered");
    if (ev->conversation) {
      hb_printf(&b, " in ");
      hb_str(&b, ev->conversation);
    }
    if (ev->message && *ev->message) {
      hb_printf(&b, ": ");
      hb_str(&b, ev->message);
    }
    break;
  case WHISPER_EV_GROUP:
    hb_printf(&b, "* group ");
    hb_str(&b, ev->conversation);
    if (ev->status & WHISPER_GROUP_JOIN_REQUEST) {
      hb_printf(&b, ": ");
      hb_str(&b, ev->from);
      hb_printf(&b, " asks to join by the invite link (group add approves)");
    } else if (ev->status & WHISPER_GROUP_JOIN_REQUESTED) {
      hb_printf(&b, ": your request to join waits for an admin");
    } else {
      static const char *const what[] = {"members", "admins", "info", "settings", "invite link"};
      int n = 0;
      hb_printf(&b, ": ");
      for (int i = 0; i < 5; i++)
        if (ev->status & (1 << i)) hb_printf(&b, "%s%s", n++ ? ", " : "", what[i]);
      hb_printf(&b, "%s changed", n ? "" : "membership");
      if (ev->from) {
        hb_printf(&b, " by ");
        hb_str(&b, ev->from);
      }
    }
    if (ev->body && ev->body_len) {
      hb_printf(&b, " (");
      hb_text(&b, ev->body, ev->body_len);
      hb_printf(&b, ")");
    }
    break;
  case WHISPER_EV_ERROR:
    hb_printf(&b, "! error: %s", ev->code ? whisper_strerror(ev->code) : "server");
    if (ev->server_code) hb_printf(&b, " (server code %d)", ev->server_code);
    if (ev->message && *ev->message) {
      hb_printf(&b, ": ");
      hb_str(&b, ev->message);
    }
    break;
  case WHISPER_EV_LINK_CODE: {
    /* the token as a QR code for device 1 to scan, and as text to type */
    char digits[WHISPER_LINK_DIGITS + 1] = "";
    whisper_client_link_digits(ev->body, ev->body_len, digits);
    char *text = ev->body_len ? qr_text(QR_LINK_PREFIX, ev->body, ev->body_len) : NULL;
    hb_printf(&b, "* link code %s%s%s: to add this device to %s, on %s.1 run\n    link-approve <code>\n"
                  "  with the text of this QR code (scan it), or:",
              bold, digits, off, c->account, c->account);
    if (text && qr_draw(c, &b, text) != 0) hb_printf(&b, "\n  (no QR code: it does not fit)");
    hb_printf(&b, "\n  the code: %s\n  Approve only if %s.1 then shows the same digits, %s.",
              text ? text : "(out of memory)", c->account, digits);
    free(text);
    break;
  }
  default:
    hb_printf(&b, "* event %d", ev->type);
    break;
  }
  hb_print(c, &b);
  jb_free(&b);
}

void out_event(chat *c, const whisper_client_event_t *ev) {
  if (ev->type == WHISPER_EV_ANCHOR && !c->script) return; /* kept, not shown (--anchor-file) */
  if (chat_block_event(c, ev)) return; /* block.c */
  if (chat_media_event(c, ev)) return; /* media.c */
  if (c->script)
    event_json(c, ev);
  else
    event_human(c, ev);
}

void out_disconnected(chat *c, const char *why) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "disconnected");
    jb_str(&b, "reason", why);
    jb_print(c, &b);
  } else {
    if (c->quit) {
      jb_free(&b);
      return;
    }
    hb_printf(&b, "* disconnected");
    if (why && *why) {
      hb_printf(&b, ": ");
      hb_str(&b, why);
    }
    hb_printf(&b, " (reconnecting)");
    hb_print(c, &b);
  }
  jb_free(&b);
}

void out_cmd_error(chat *c, const char *cmd, int rc, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "error");
    jb_str(&b, "cmd", cmd);
    if (rc) {
      jb_int(&b, "code", rc);
      jb_str(&b, "error", whisper_strerror(rc));
    }
    jb_str(&b, "message", msg);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "! %s: %s", cmd, msg);
    if (rc) hb_printf(&b, " (%s)", whisper_strerror(rc));
    hb_print(c, &b);
  }
  jb_free(&b);
}

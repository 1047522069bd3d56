/*
 * whisper-chat: naming a message on a command line.
 *
 * Nobody should have to type a 32-digit id. A command names a message of a
 * conversation by:
 *
 *   #3 or 3    the number `history` showed for it: the messages of the
 *              last `history <conversation>` listing are #1 (the oldest
 *              shown) to #n, and keep their numbers until the next listing
 *              of that conversation;
 *   701e41     the start of its hex id, at least MSGREF_MIN_PREFIX digits,
 *              that no other message of the conversation's history shares.
 *
 * A word of 4 or more digits could be either; it must then name a single
 * message. The commands that point at a message use it: read, reply,
 * react, unreact, edit, delete, forward.
 *
 * Also here: the read marks, which received messages this run has marked
 * read (the history does not keep that for received messages).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat.h"

#define PAGE 500            /* messages per history page when scanning */
#define SCAN_MAX 10000000   /* a scan stops after this many (a guard, not a limit met) */
#define NUMBER_MAX 999999999UL

static void fill(const chat *c, msgref *r, const whisper_message_t *m) {
  memset(r, 0, sizeof *r);
  r->id_len = m->id_len <= sizeof r->id ? m->id_len : sizeof r->id;
  if (m->id) memcpy(r->id, m->id, r->id_len);
  r->own = m->sender == NULL;
  snprintf(r->sender, sizeof r->sender, "%s", r->own ? c->account : m->sender);
  r->sender_device = m->sender_device;
  r->sort_key = m->sort_key;
}

int msgref_each(chat *c, const char *conversation, int (*fn)(void *arg, const msgref *m),
                void *arg) {
  uint64_t before_key = 0;
  uint8_t before_id[WHISPER_MESSAGE_ID_MAX];
  size_t before_len = 0, seen = 0;
  int start = 1, stop = 0;
  msgref r;
  while (!stop && seen < SCAN_MAX) {
    whisper_page *page = NULL;
    int rc = whisper_history_page(c->ctx, conversation, before_key, start ? NULL : before_id,
                                  before_len, PAGE, &page);
    if (rc != WHISPER_OK) return rc;
    size_t n = whisper_page_count(page);
    for (size_t i = 0; i < n && !stop; i++) {
      const whisper_message_t *m = whisper_page_get(page, i);
      if (!m) continue;
      fill(c, &r, m);
      stop = fn(arg, &r) != 0;
    }
    const whisper_message_t *last = n ? whisper_page_get(page, n - 1) : NULL;
    if (last && last->id_len && last->id_len <= sizeof before_id) {
      before_key = last->sort_key;
      before_len = last->id_len;
      memcpy(before_id, last->id, before_len);
      start = 0;
    } else {
      stop = 1;
    }
    whisper_page_free(page);
    seen += n;
    if (n < PAGE) stop = 1;
  }
  return WHISPER_OK;
}

/* --- the numbered listings ------------------------------------------------------ */

static chat_listing *listing_find(const chat *c, const char *conversation) {
  for (chat_listing *l = c->listings; l; l = l->next)
    if (strcmp(l->conversation, conversation) == 0) return l;
  return NULL;
}

static void listing_drop(chat *c, const char *conversation) {
  for (chat_listing **p = &c->listings; *p; p = &(*p)->next) {
    chat_listing *l = *p;
    if (strcmp(l->conversation, conversation) == 0) {
      *p = l->next;
      free(l->conversation);
      free(l->msgs);
      free(l);
      return;
    }
  }
}

int msgref_remember(chat *c, const char *conversation, const whisper_page *page) {
  size_t n = whisper_page_count(page);
  listing_drop(c, conversation);
  chat_listing *l = calloc(1, sizeof *l);
  if (!l) return -1;
  l->conversation = strdup(conversation);
  l->msgs = calloc(n ? n : 1, sizeof *l->msgs);
  if (!l->conversation || !l->msgs) {
    free(l->conversation);
    free(l->msgs);
    free(l);
    return -1;
  }
  /* the page is newest first; #1 is the oldest */
  for (size_t k = n; k-- > 0;) {
    const whisper_message_t *m = whisper_page_get(page, k);
    if (m) fill(c, &l->msgs[l->n++], m);
  }
  l->next = c->listings;
  c->listings = l;
  return 0;
}

/* --- resolving a word ----------------------------------------------------------- */

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int all_digits(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static int all_hex(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
      return 0;
  return 1;
}

/* #N of the conversation's listing: 0, or -1 with why in err. */
static int by_number(const chat *c, const char *conversation, const char *digits, msgref *out,
                     char *err, size_t errlen) {
  unsigned long n = 0;
  for (const char *s = digits; *s; s++) {
    n = n * 10 + (unsigned long)(*s - '0');
    if (n > NUMBER_MAX) break;
  }
  const chat_listing *l = listing_find(c, conversation);
  if (!l) {
    say(err, errlen, "no numbered messages of %.100s yet: run history %.100s first, then use the #numbers it shows",
        conversation, conversation);
    return -1;
  }
  if (l->n == 0) {
    say(err, errlen, "the last history of %.100s showed no messages", conversation);
    return -1;
  }
  if (n == 0 || n > l->n) {
    say(err, errlen, "no #%.12s in the last history of %.100s (it showed #1 to #%zu)", digits,
        conversation, l->n);
    return -1;
  }
  *out = l->msgs[n - 1];
  return 0;
}

typedef struct prefix_scan {
  const char *prefix;
  size_t len;
  size_t matches;
  msgref first, second;
} prefix_scan;

static int prefix_one(void *arg, const msgref *m) {
  prefix_scan *s = arg;
  char hex[2 * WHISPER_MESSAGE_ID_MAX + 1];
  if (s->len > 2 * m->id_len) return 0;
  hex_encode(hex, m->id, m->id_len);
  if (strncasecmp(hex, s->prefix, s->len) != 0) return 0;
  if (s->matches == 0) s->first = *m;
  else if (s->matches == 1) s->second = *m;
  s->matches++;
  return 0;
}

static void short_hex(char out[SHORT_ID_HEX + 1], const msgref *m) {
  char hex[2 * WHISPER_MESSAGE_ID_MAX + 1];
  hex_encode(hex, m->id, m->id_len);
  size_t n = strlen(hex) < SHORT_ID_HEX ? strlen(hex) : SHORT_ID_HEX;
  memcpy(out, hex, n);
  out[n] = '\0';
}

static int same_message(const msgref *a, const msgref *b) {
  return a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0 && a->own == b->own &&
         strcmp(a->sender, b->sender) == 0;
}

int msgref_resolve(chat *c, const char *conversation, const char *word, msgref *out, char *err,
                   size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!word || !*word) {
    say(err, errlen, "no message named");
    return -1;
  }
  size_t len = strlen(word);
  if (word[0] == '#') {
    if (!all_digits(word + 1)) {
      say(err, errlen, "not a message number: %.40s (history shows them as #1, #2, ...)", word);
      return -1;
    }
    return by_number(c, conversation, word + 1, out, err, errlen);
  }
  if (all_digits(word) && len < MSGREF_MIN_PREFIX) return by_number(c, conversation, word, out, err, errlen);
  if (!all_hex(word)) {
    say(err, errlen,
        "not a message: %.40s (name one by its number in history, like #3, or by the start of its id, %d or more hex digits)",
        word, MSGREF_MIN_PREFIX);
    return -1;
  }
  if (len < MSGREF_MIN_PREFIX) {
    say(err, errlen, "an id prefix needs at least %d hex digits: %.40s", MSGREF_MIN_PREFIX, word);
    return -1;
  }
  if (len > 2 * WHISPER_MESSAGE_ID_MAX) {
    say(err, errlen, "longer than any message id: %.40s...", word);
    return -1;
  }

  /* an id prefix, or (all digits) maybe also a number */
  msgref numbered;
  char numerr[256];
  int is_number = all_digits(word) && by_number(c, conversation, word, &numbered, numerr, sizeof numerr) == 0;
  prefix_scan s;
  memset(&s, 0, sizeof s);
  s.prefix = word;
  s.len = len;
  int rc = msgref_each(c, conversation, prefix_one, &s);
  if (rc != WHISPER_OK) {
    say(err, errlen, "cannot read the history of %.100s: %s (%s)", conversation, whisper_strerror(rc),
        whisper_ctx_last_error(c->ctx));
    return -1;
  }
  if (is_number) {
    if (s.matches == 0 || (s.matches == 1 && same_message(&s.first, &numbered))) {
      *out = numbered;
      return 0;
    }
    say(err, errlen, "%.40s is both #%.40s of the last history and the start of another message's id: write #%.40s, or more of the id",
        word, word, word);
    return -1;
  }
  if (s.matches == 1) {
    *out = s.first;
    return 0;
  }
  if (s.matches == 0 && all_digits(word)) {
    say(err, errlen, "no #%.40s in the last history of %.100s, and no message of it has an id starting with %.40s",
        word, conversation, word);
    return -1;
  }
  if (s.matches == 0) {
    say(err, errlen, "no message of %.100s has an id starting with %.40s", conversation, word);
    return -1;
  }
  char a[SHORT_ID_HEX + 1], b[SHORT_ID_HEX + 1];
  short_hex(a, &s.first);
  short_hex(b, &s.second);
  say(err, errlen, "%.40s is ambiguous: %zu messages of %.100s have ids starting with it (%s..., %s...%s): type more of the id, or use the #number from history",
      word, s.matches, conversation, a, b, s.matches > 2 ? ", ..." : "");
  return -1;
}

/* --- read marks ---------------------------------------------------------------- */

static int readmark_cmp(const void *a, const void *b) {
  const chat_readmark *x = a, *y = b;
  int d = memcmp(x->id, y->id, WHISPER_CLIENT_ID_LEN);
  return d ? d : strcmp(x->sender, y->sender);
}

/* Marks are appended, and sorted (duplicates dropped) when next looked up:
 * one sort for a `read` of a whole conversation. */
static void readmark_sort(chat *c) {
  if (!c->readmarks_unsorted) return;
  qsort(c->readmarks, c->n_readmarks, sizeof *c->readmarks, readmark_cmp);
  size_t k = 0;
  for (size_t i = 0; i < c->n_readmarks; i++) {
    if (k && readmark_cmp(&c->readmarks[k - 1], &c->readmarks[i]) == 0)
      free(c->readmarks[i].sender);
    else
      c->readmarks[k++] = c->readmarks[i];
  }
  c->n_readmarks = k;
  c->readmarks_unsorted = 0;
}

int readmark_has(chat *c, const char *sender, const uint8_t id[WHISPER_CLIENT_ID_LEN]) {
  chat_readmark key;
  memcpy(key.id, id, WHISPER_CLIENT_ID_LEN);
  key.sender = (char *)sender;
  readmark_sort(c);
  return c->n_readmarks &&
         bsearch(&key, c->readmarks, c->n_readmarks, sizeof *c->readmarks, readmark_cmp) != NULL;
}

int readmark_add(chat *c, const char *sender, const uint8_t id[WHISPER_CLIENT_ID_LEN]) {
  if (c->n_readmarks == c->cap_readmarks) {
    size_t cap = c->cap_readmarks ? 2 * c->cap_readmarks : 64;
    chat_readmark *p = realloc(c->readmarks, cap * sizeof *p);
    if (!p) return -1;
    c->readmarks = p;
    c->cap_readmarks = cap;
  }
  char *s = strdup(sender);
  if (!s) return -1;
  memcpy(c->readmarks[c->n_readmarks].id, id, WHISPER_CLIENT_ID_LEN);
  c->readmarks[c->n_readmarks++].sender = s;
  c->readmarks_unsorted = 1;
  return 0;
}

void msgref_free_all(chat *c) {
  while (c->listings) listing_drop(c, c->listings->conversation);
  for (size_t i = 0; i < c->n_readmarks; i++) free(c->readmarks[i].sender);
  free(c->readmarks);
  c->readmarks = NULL;
  c->n_readmarks = c->cap_readmarks = 0;
}

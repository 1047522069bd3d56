/*
 * whisper-chat: the commands, one per line, the same interactive and in
 * --script mode. The table at the end (commands[]) lists them with their
 * usage and a line about each; `help` prints it.
 *
 * A conversation is an account's name, or # and a group's id in hex. A
 * message is named by its number in the last `history` of its
 * conversation (#3) or by the start of its id (msgref.c). A group id is 32
 * hex digits, with or without the leading '#' of its conversation name.
 *
 * In --script mode every command answers with one JSON line: its result
 * (sent_cmd for send, gsend, reply and forward; group_created, history,
 * safety, state, help, or ok with "cmd") or an error with "cmd".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

#define MAX_ARGS 1100 /* a group of up to 1024 members, and some */
#define HISTORY_DEFAULT 50
#define HISTORY_MAX 10000
#define MARK_CHUNK 10000 /* ids per whisper_client_mark_read() call */

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* Cuts the next word off *p (NUL-terminating it); NULL at the end. */
static char *next_word(char **p) {
  char *s = *p;
  while (is_space(*s)) s++;
  if (!*s) {
    *p = s;
    return NULL;
  }
  char *w = s;
  while (*s && !is_space(*s)) s++;
  if (*s) *s++ = '\0';
  *p = s;
  return w;
}

/* The rest of the line, as typed (leading blanks skipped). */
static char *rest(char **p) {
  char *s = *p;
  while (is_space(*s)) s++;
  *p = s + strlen(s);
  return s;
}

static size_t words(char **p, char **out, size_t max) {
  size_t n = 0;
  char *w;
  while (n < max && (w = next_word(p)) != NULL) out[n++] = w;
  return n;
}

static int parse_gid(const char *s, uint8_t gid[WHISPER_GROUP_ID_LEN]) {
  if (*s == '#') s++;
  return hex_decode(gid, WHISPER_GROUP_ID_LEN, s);
}

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  if (!s || !*s || *s == '-' || *s == '+') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

/* {"ev":"ok","cmd":...} or "ok: <cmd>" */
static void ok(chat *c, const char *cmd) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  ok: %s", cmd);
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void engine_error(chat *c, const char *cmd, int rc) {
  out_cmd_error(c, cmd, rc, "%s", whisper_ctx_last_error(c->ctx));
}

static void sent(chat *c, const char *conversation, const uint8_t id[WHISPER_CLIENT_ID_LEN]) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "sent_cmd");
    jb_hex(&b, "id", id, WHISPER_CLIENT_ID_LEN);
    jb_str(&b, "conversation", conversation);
    jb_print(c, &b);
  } else {
    char hex[2 * WHISPER_CLIENT_ID_LEN + 1];
    hex_encode(hex, id, WHISPER_CLIENT_ID_LEN);
    hex[SHORT_ID_HEX] = '\0';
    hb_printf(&b, "  %s %s to ", status_ticks(c, WHISPER_STATUS_PENDING), hex);
    hb_text(&b, (const uint8_t *)conversation, strlen(conversation));
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_send(chat *c, char *args) {
  char *to = next_word(&args);
  char *text = rest(&args);
  if (!to || !*text) {
    out_cmd_error(c, "send", 0, "usage: send <account> <text>");
    return;
  }
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = whisper_client_send(c->client, to, (const uint8_t *)text, strlen(text), now_ms(), id);
  if (rc != WHISPER_OK) {
    engine_error(c, "send", rc);
    return;
  }
  sent(c, to, id);
}

static void cmd_gsend(chat *c, char *args) {
  char *g = next_word(&args);
  char *text = rest(&args);
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (!g || !*text || parse_gid(g, gid) != 0) {
    out_cmd_error(c, "gsend", 0, "usage: gsend <groupid-hex> <text>");
    return;
  }
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = whisper_client_send_group(c->client, gid, (const uint8_t *)text, strlen(text), now_ms(),
                                     id);
  if (rc != WHISPER_OK) {
    engine_error(c, "gsend", rc);
    return;
  }
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  sent(c, conv, id);
}

/* A group made or being joined: {"ev": ev, group, conversation} or a line. */
static void group_said(chat *c, const char *ev, const char *what, const uint8_t gid[WHISPER_GROUP_ID_LEN]) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, ev);
    jb_hex(&b, "group", gid, WHISPER_GROUP_ID_LEN);
    jb_str(&b, "conversation", conv);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  %s %s (conversation %s)", what, conv + 1, conv);
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_group(chat *c, char *args) {
  static char *members[MAX_ARGS];
  char *op = next_word(&args);
  if (op && strcmp(op, "create") == 0) {
    size_t n = words(&args, members, MAX_ARGS);
    if (n == 0) {
      out_cmd_error(c, "group create", 0, "usage: group create <member>...");
      return;
    }
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    int rc = whisper_client_group_create(c->client, (const char *const *)members, n, now_ms(), gid);
    if (rc != WHISPER_OK) {
      engine_error(c, "group create", rc);
      return;
    }
    group_said(c, "group_created", "group created:", gid);
    return;
  }
  if (op && (strcmp(op, "add") == 0 || strcmp(op, "remove") == 0)) {
    int add = op[0] == 'a';
    const char *name = add ? "group add" : "group remove";
    char *g = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    size_t n = words(&args, members, MAX_ARGS);
    if (!g || parse_gid(g, gid) != 0 || n == 0) {
      out_cmd_error(c, name, 0, "usage: %s <groupid-hex> <member>...", name);
      return;
    }
    int rc = add ? whisper_client_group_add(c->client, gid, (const char *const *)members, n, now_ms())
                 : whisper_client_group_remove(c->client, gid, (const char *const *)members, n,
                                               now_ms());
    if (rc != WHISPER_OK) {
      engine_error(c, name, rc);
      return;
    }
    ok(c, name);
    return;
  }
  if (op && strcmp(op, "admin") == 0) {
    char *g = next_word(&args), *how = next_word(&args), *who = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    int promote = how && strcmp(how, "promote") == 0;
    if (!g || parse_gid(g, gid) != 0 || !how || (!promote && strcmp(how, "demote") != 0) || !who ||
        next_word(&args)) {
      out_cmd_error(c, "group admin", 0, "usage: group admin <groupid-hex> promote|demote <member>");
      return;
    }
    int rc = whisper_client_group_admin_set(c->client, gid, who, promote, now_ms());
    if (rc != WHISPER_OK) engine_error(c, "group admin", rc);
    else ok(c, "group admin");
    return;
  }
  if (op && strcmp(op, "info") == 0) {
    char *g = next_word(&args), *field = next_word(&args);
    char *value = rest(&args); /* the rest of the line; none clears it */
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    int f = !field                             ? 0
            : strcmp(field, "name") == 0        ? WHISPER_GROUP_NAME
            : strcmp(field, "description") == 0 ? WHISPER_GROUP_DESCRIPTION
            : strcmp(field, "picture") == 0     ? WHISPER_GROUP_PICTURE
                                                : 0;
    if (!g || parse_gid(g, gid) != 0 || f == 0) {
      out_cmd_error(c, "group info", 0, "usage: group info <groupid-hex> name|description|picture [<value>]");
      return;
    }
    int rc = whisper_client_group_info_set(c->client, gid, f, (const uint8_t *)value, strlen(value), now_ms());
    if (rc != WHISPER_OK) engine_error(c, "group info", rc);
    else ok(c, "group info");
    return;
  }
  if (op && strcmp(op, "setting") == 0) {
    char *g = next_word(&args), *which = next_word(&args), *onoff = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    int setting = !which                                   ? 0
                  : strcmp(which, "admins-edit-info") == 0 ? WHISPER_GROUP_ADMINS_EDIT_INFO
                  : strcmp(which, "admins-send") == 0      ? WHISPER_GROUP_ADMINS_SEND
                                                           : 0;
    int on = onoff && strcmp(onoff, "on") == 0;
    if (!g || parse_gid(g, gid) != 0 || setting == 0 || !onoff || (!on && strcmp(onoff, "off") != 0) ||
        next_word(&args)) {
      out_cmd_error(c, "group setting", 0,
                    "usage: group setting <groupid-hex> admins-edit-info|admins-send on|off");
      return;
    }
    int rc = whisper_client_group_setting_set(c->client, gid, setting, on, now_ms());
    if (rc != WHISPER_OK) engine_error(c, "group setting", rc);
    else ok(c, "group setting");
    return;
  }
  if (op && strcmp(op, "link") == 0) {
    char *g = next_word(&args), *what = next_word(&args), *onoff = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    int make = what && strcmp(what, "make") == 0, revoke = what && strcmp(what, "revoke") == 0;
    int approval = what && strcmp(what, "approval") == 0;
    int on = onoff && strcmp(onoff, "on") == 0;
    if (!g || parse_gid(g, gid) != 0 || !(make || revoke || approval) ||
        (approval ? !onoff || (!on && strcmp(onoff, "off") != 0) : onoff != NULL) || next_word(&args)) {
      out_cmd_error(c, "group link", 0, "usage: group link <groupid-hex> make|revoke|approval on|off");
      return;
    }
    if (approval) {
      int rc = whisper_client_group_setting_set(c->client, gid, WHISPER_GROUP_APPROVAL, on, now_ms());
      if (rc != WHISPER_OK) engine_error(c, "group link", rc);
      else ok(c, "group link");
      return;
    }
    if (revoke) {
      int rc = whisper_client_group_link_revoke(c->client, gid, now_ms());
      if (rc != WHISPER_OK) engine_error(c, "group link", rc);
      else ok(c, "group link");
      return;
    }
    char link[WHISPER_GROUP_LINK_LEN + 1];
    int rc = whisper_client_group_link_generate(c->client, gid, now_ms(), link);
    if (rc != WHISPER_OK) {
      engine_error(c, "group link", rc);
      return;
    }
    /* shown to the user, who passes it on; not kept */
    jbuf b;
    jb_init(&b);
    if (c->script) {
      jb_begin(&b, "group_link");
      jb_hex(&b, "group", gid, sizeof gid);
      jb_str(&b, "link", link);
      jb_print(c, &b);
    } else {
      hb_printf(&b, "  invite link (works once the group has taken it; whoever has it may join):\n  %s",
                link);
      hb_print(c, &b);
    }
    if (b.p) wipe(b.p, b.cap);
    jb_free(&b);
    wipe(link, sizeof link);
    return;
  }
  if (op && strcmp(op, "join") == 0) {
    char *link = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    if (!link || next_word(&args)) {
      out_cmd_error(c, "group join", 0, "usage: group join <link>");
      return;
    }
    int rc = whisper_client_group_join(c->client, link, now_ms(), gid);
    wipe(link, strlen(link)); /* the link's secret: the engine keeps it until the join is answered */
    if (rc != WHISPER_OK) {
      engine_error(c, "group join", rc);
      return;
    }
    group_said(c, "group_joining", "joining group", gid);
    return;
  }
  if (op && (strcmp(op, "leave") == 0 || strcmp(op, "show") == 0)) {
    int leave = op[0] == 'l';
    const char *name = leave ? "group leave" : "group show";
    char *g = next_word(&args);
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    if (!g || parse_gid(g, gid) != 0 || next_word(&args)) {
      out_cmd_error(c, name, 0, "usage: %s <groupid-hex>", name);
      return;
    }
    if (leave) {
      int rc = whisper_client_group_leave(c->client, gid, now_ms());
      if (rc != WHISPER_OK) engine_error(c, name, rc);
      else ok(c, name);
      return;
    }
    whisper_group_state_t *st = NULL;
    int rc = whisper_client_group_state(c->client, gid, &st);
    if (rc != WHISPER_OK) {
      engine_error(c, name, rc);
      return;
    }
    jbuf b;
    jb_init(&b);
    if (c->script) {
      jb_begin(&b, "group_state");
      jb_hex(&b, "group", gid, sizeof gid);
      jb_open(&b, "members", '[');
      for (size_t i = 0; i < st->n_members; i++) jb_str(&b, NULL, st->members[i]);
      jb_close(&b, ']');
      jb_open(&b, "admins", '[');
      for (size_t i = 0; i < st->n_admins; i++) jb_str(&b, NULL, st->admins[i]);
      jb_close(&b, ']');
      jb_open(&b, "requests", '[');
      for (size_t i = 0; i < st->n_requests; i++) jb_str(&b, NULL, st->requests[i]);
      jb_close(&b, ']');
      jb_str(&b, "name", st->name);
      jb_str(&b, "description", st->description);
      if (st->picture) jb_bytes(&b, "picture", st->picture, st->picture_len);
      jb_bool(&b, "admins_edit_info", st->admins_edit_info);
      jb_bool(&b, "admins_send", st->admins_send);
      jb_bool(&b, "link", st->has_link);
      jb_bool(&b, "approval", st->approval_required);
      jb_bool(&b, "member", st->member);
      jb_bool(&b, "admin", st->admin);
      jb_u64(&b, "version", st->change_version);
      jb_print(c, &b);
    } else {
      hb_printf(&b, "  group %s", g[0] == '#' ? g + 1 : g);
      if (*st->name) {
        hb_printf(&b, " \"");
        hb_text(&b, (const uint8_t *)st->name, strlen(st->name));
        hb_printf(&b, "\"");
      }
      if (*st->description) {
        hb_printf(&b, "\n  about: ");
        hb_text(&b, (const uint8_t *)st->description, strlen(st->description));
      }
      hb_printf(&b, "\n  members (%zu):", st->n_members);
      for (size_t i = 0; i < st->n_members; i++) {
        int admin = 0;
        for (size_t k = 0; k < st->n_admins; k++) admin |= strcmp(st->admins[k], st->members[i]) == 0;
        hb_printf(&b, " %s%s", st->members[i], admin ? " (admin)" : "");
      }
      hb_printf(&b, "\n  only admins edit info: %s; only admins send: %s; invite link: %s%s",
                st->admins_edit_info ? "on" : "off", st->admins_send ? "on" : "off",
                st->has_link ? "yes" : "none", st->approval_required ? " (approval required)" : "");
      if (st->n_requests) {
        hb_printf(&b, "\n  asking to join (group add approves):");
        for (size_t i = 0; i < st->n_requests; i++) hb_printf(&b, " %s", st->requests[i]);
      }
      if (!st->member) hb_printf(&b, "\n  (you are not a member)");
      hb_print(c, &b);
    }
    jb_free(&b);
    whisper_group_state_free(st);
    return;
  }
  out_cmd_error(c, "group", 0,
                "usage: group create|add|remove|admin|info|setting|link|join|leave|show ...");
}

/* --- read ----------------------------------------------------------------------- */

/* The old, explicit form: read <conversation> <sender> <id>..., with full
 * 32-digit ids (scripts use it). Taken when the first word could be an
 * account (not a number) and every later word is a whole id. */
static int read_is_explicit(char **w, size_t n) {
  if (n < 2 || w[0][0] == '#' || strspn(w[0], "0123456789") == strlen(w[0])) return 0;
  if (strspn(w[0], "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(w[0])) return 0;
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  for (size_t i = 1; i < n; i++)
    if (hex_decode(id, sizeof id, w[i]) != 0) return 0;
  return 1;
}

/* What one `read` marks: (sender, id) pairs, each once (named twice on a
 * command line, it is added once; the history has each once). */
typedef struct read_list {
  chat_readmark *v;
  size_t n, cap;
  int failed;
} read_list;

static void read_list_add(read_list *l, const char *sender, const uint8_t id[WHISPER_CLIENT_ID_LEN],
                          int named) {
  for (size_t i = 0; named && i < l->n; i++)
    if (memcmp(l->v[i].id, id, WHISPER_CLIENT_ID_LEN) == 0 && strcmp(l->v[i].sender, sender) == 0)
      return;
  if (l->failed) return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    chat_readmark *v = realloc(l->v, cap * sizeof *v);
    if (!v) {
      l->failed = 1;
      return;
    }
    l->v = v;
    l->cap = cap;
  }
  if ((l->v[l->n].sender = strdup(sender)) == NULL) {
    l->failed = 1;
    return;
  }
  memcpy(l->v[l->n].id, id, WHISPER_CLIENT_ID_LEN);
  l->n++;
}

static void read_list_free(read_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].sender);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int by_sender(const void *a, const void *b) {
  return strcmp(((const chat_readmark *)a)->sender, ((const chat_readmark *)b)->sender);
}

/* Marks the list read, a call per sender, and reports. */
static void read_mark(chat *c, const char *conv, read_list *l) {
  static uint8_t ids[MARK_CHUNK][WHISPER_CLIENT_ID_LEN];
  if (l->failed) {
    out_cmd_error(c, "read", WHISPER_ENOMEM, "out of memory");
    return;
  }
  if (l->n) qsort(l->v, l->n, sizeof *l->v, by_sender);
  for (size_t i = 0; i < l->n;) {
    size_t k = 0;
    const char *sender = l->v[i].sender;
    while (i + k < l->n && k < MARK_CHUNK && strcmp(l->v[i + k].sender, sender) == 0) {
      memcpy(ids[k], l->v[i + k].id, WHISPER_CLIENT_ID_LEN);
      k++;
    }
    int rc = whisper_client_mark_read(c->client, conv, sender,
                                      (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])ids, k, now_ms());
    if (rc != WHISPER_OK) {
      engine_error(c, "read", rc);
      return;
    }
    for (size_t j = i; j < i + k; j++) readmark_add(c, l->v[j].sender, l->v[j].id);
    i += k;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "read");
    jb_str(&b, "conversation", conv);
    jb_u64(&b, "marked", l->n);
    jb_open(&b, "ids", '[');
    for (size_t i = 0; i < l->n; i++) jb_hex(&b, NULL, l->v[i].id, WHISPER_CLIENT_ID_LEN);
    jb_close(&b, ']');
    jb_print(c, &b);
  } else {
    if (l->n == 0)
      hb_printf(&b, "  nothing new to mark read in ");
    else
      hb_printf(&b, "  marked %zu message%s read in ", l->n, l->n == 1 ? "" : "s");
    hb_text(&b, (const uint8_t *)conv, strlen(conv));
    hb_print(c, &b);
  }
  jb_free(&b);
}

/* read <conversation>: every received message of its history that this
 * run has not marked read. */
typedef struct unread_scan {
  chat *c;
  read_list *l;
} unread_scan;

static int unread_one(void *arg, const msgref *m) {
  unread_scan *u = arg;
  if (!m->own && m->id_len == WHISPER_CLIENT_ID_LEN && !readmark_has(u->c, m->sender, m->id))
    read_list_add(u->l, m->sender, m->id, 0);
  return u->l->failed;
}

static void cmd_read(chat *c, char *args) {
  static char *w[MAX_ARGS];
  char *conv = next_word(&args);
  size_t n = words(&args, w, MAX_ARGS);
  read_list l;
  memset(&l, 0, sizeof l);
  if (!conv || *rest(&args)) {
    out_cmd_error(c, "read", 0, "usage: read <conversation> [<message>...] (at most %d messages)",
                  MAX_ARGS);
    return;
  }
  if (read_is_explicit(w, n)) {
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    for (size_t i = 1; i < n; i++) {
      hex_decode(id, sizeof id, w[i]);
      read_list_add(&l, w[0], id, 1);
    }
  } else if (n == 0) {
    unread_scan u = {c, &l};
    int rc = msgref_each(c, conv, unread_one, &u);
    if (rc != WHISPER_OK) {
      engine_error(c, "read", rc);
      read_list_free(&l);
      return;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      msgref m;
      char err[512];
      if (msgref_resolve(c, conv, w[i], &m, err, sizeof err) != 0) {
        out_cmd_error(c, "read", 0, "%s", err);
        read_list_free(&l);
        return;
      }
      if (m.own || m.id_len != WHISPER_CLIENT_ID_LEN) {
        out_cmd_error(c, "read", 0, "%.40s is %s: only received messages are marked read", w[i],
                      m.own ? "your own message" : "a message without a client id");
        read_list_free(&l);
        return;
      }
      read_list_add(&l, m.sender, m.id, 1);
    }
  }
  read_mark(c, conv, &l);
  read_list_free(&l);
}

/* --- message content: reply, react, edit, delete, forward, call ------------------ */

/* The message `word` names in `conv` (msgref.c), or -1 after saying why. */
static int message_arg(chat *c, const char *cmd, const char *conv, const char *word, msgref *m) {
  char err[512];
  if (msgref_resolve(c, conv, word, m, err, sizeof err) != 0) {
    out_cmd_error(c, cmd, 0, "%s", err);
    return -1;
  }
  return 0;
}

/* The library's sender argument for a message: NULL for this account's. */
static const char *sender_arg(const msgref *m) { return m->own ? NULL : m->sender; }

/* What edit and delete take: this account's own messages. */
static int own_only(chat *c, const char *cmd, const char *word, const msgref *m) {
  if (m->own) return 0;
  out_cmd_error(c, cmd, 0, "%.40s is %.64s's message: you can only %s your own", word,
                m->sender, cmd);
  return -1;
}

/* An operation on a message is done: {"ev":"ok","cmd":...,"conversation",
 * "id", "sender"[, "emoji"]} or a human line. */
static void op_ok(chat *c, const char *cmd, const char *conv, const msgref *m, const char *emoji) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_str(&b, "conversation", conv);
    jb_hex(&b, "id", m->id, m->id_len);
    jb_str(&b, "sender", m->sender);
    if (emoji) jb_str(&b, "emoji", emoji);
    jb_print(c, &b);
  } else {
    char hex[2 * WHISPER_MESSAGE_ID_MAX + 1];
    hex_encode(hex, m->id, m->id_len);
    hex[SHORT_ID_HEX] = '\0';
    if (emoji) {
      if (*emoji) {
        hb_printf(&b, "  ok: you reacted ");
        hb_text(&b, (const uint8_t *)emoji, strlen(emoji));
        hb_printf(&b, " to ");
      } else {
        hb_printf(&b, "  ok: you took back your reaction to ");
      }
      if (m->own) {
        hb_printf(&b, "your");
      } else {
        hb_text(&b, (const uint8_t *)m->sender, strlen(m->sender));
        hb_printf(&b, "'s");
      }
      hb_printf(&b, " message %s in ", hex);
      hb_text(&b, (const uint8_t *)conv, strlen(conv));
    } else {
      hb_printf(&b, "  ok: your message %s in ", hex);
      hb_text(&b, (const uint8_t *)conv, strlen(conv));
      hb_printf(&b, " is %s", strcmp(cmd, "edit") == 0 ? "edited" : "deleted for everyone");
    }
    hb_print(c, &b);
  }
  jb_free(&b);
}

/* reply <conversation> <message> <text>: a message quoting another. */
static void cmd_reply(chat *c, char *args) {
  char *conv = next_word(&args);
  char *word = next_word(&args);
  char *text = rest(&args);
  msgref m;
  if (!conv || !word || !*text) {
    out_cmd_error(c, "reply", 0, "usage: reply <conversation> <message> <text>");
    return;
  }
  if (message_arg(c, "reply", conv, word, &m) != 0) return;
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = whisper_client_reply(c->client, conv, m.id, m.id_len, sender_arg(&m), (const uint8_t *)text,
                                strlen(text), now_ms(), id);
  if (rc != WHISPER_OK) {
    engine_error(c, "reply", rc);
    return;
  }
  sent(c, conv, id);
}

/* Whether s is only printable ASCII (so, not an emoji). */
static int ascii_only(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80) return 0;
  return 1;
}

/* react <conversation> <message> <emoji>, and unreact (emoji ""). */
static void react(chat *c, const char *cmd, char *args, int with_emoji) {
  char *conv = next_word(&args);
  char *word = next_word(&args);
  char *emoji = with_emoji ? next_word(&args) : (char *)"";
  msgref m;
  if (!conv || !word || !emoji || *rest(&args)) {
    out_cmd_error(c, cmd, 0, with_emoji ? "usage: react <conversation> <message> <emoji>"
                                        : "usage: unreact <conversation> <message>");
    return;
  }
  if (with_emoji && ascii_only(emoji)) {
    out_cmd_error(c, cmd, 0, "a reaction is one emoji, like 👍 (not %.20s)", emoji);
    return;
  }
  if (message_arg(c, cmd, conv, word, &m) != 0) return;
  int rc = whisper_client_react(c->client, conv, m.id, m.id_len, sender_arg(&m), emoji, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, cmd, rc);
    return;
  }
  op_ok(c, cmd, conv, &m, emoji);
}

static void cmd_react(chat *c, char *args) { react(c, "react", args, 1); }
static void cmd_unreact(chat *c, char *args) { react(c, "unreact", args, 0); }

/* edit <conversation> <message> <text>: one's own message, within
 * WHISPER_EDIT_WINDOW_MS of sending it. */
static void cmd_edit(chat *c, char *args) {
  char *conv = next_word(&args);
  char *word = next_word(&args);
  char *text = rest(&args);
  msgref m;
  if (!conv || !word || !*text) {
    out_cmd_error(c, "edit", 0, "usage: edit <conversation> <message> <new text>");
    return;
  }
  if (message_arg(c, "edit", conv, word, &m) != 0 || own_only(c, "edit", word, &m) != 0) return;
  int rc = whisper_client_edit(c->client, conv, m.id, m.id_len, (const uint8_t *)text, strlen(text),
                               now_ms());
  if (rc == WHISPER_EDENIED) {
    out_cmd_error(c, "edit", rc, "%s (a message can be edited for %llu minutes after it was sent, and not once deleted)",
                  whisper_ctx_last_error(c->ctx), (unsigned long long)(WHISPER_EDIT_WINDOW_MS / 60000));
    return;
  }
  if (rc == WHISPER_ENOTFOUND) {
    out_cmd_error(c, "edit", rc, "%.40s is not a message you sent in %.100s", word, conv);
    return;
  }
  if (rc != WHISPER_OK) {
    engine_error(c, "edit", rc);
    return;
  }
  op_ok(c, "edit", conv, &m, NULL);
}

/* delete <conversation> <message>: for everyone, one's own message,
 * within the delete window. */
static void cmd_delete(chat *c, char *args) {
  char *conv = next_word(&args);
  char *word = next_word(&args);
  msgref m;
  if (!conv || !word || *rest(&args)) {
    out_cmd_error(c, "delete", 0, "usage: delete <conversation> <message>");
    return;
  }
  if (message_arg(c, "delete", conv, word, &m) != 0 || own_only(c, "delete", word, &m) != 0) return;
  int rc = whisper_client_delete(c->client, conv, m.id, m.id_len, now_ms());
  if (rc == WHISPER_EDENIED) {
    out_cmd_error(c, "delete", rc, "%s (a message can be deleted for everyone for %llu hours after it was sent)",
                  whisper_ctx_last_error(c->ctx), (unsigned long long)(c->cfg.delete_window_ms / 3600000));
    return;
  }
  if (rc == WHISPER_ENOTFOUND) {
    out_cmd_error(c, "delete", rc, "%.40s is not a message you sent in %.100s", word, conv);
    return;
  }
  if (rc != WHISPER_OK) {
    engine_error(c, "delete", rc);
    return;
  }
  op_ok(c, "delete", conv, &m, NULL);
}

/* forward <to-conversation> <from-conversation> <message>. */
static void cmd_forward(chat *c, char *args) {
  char *to = next_word(&args);
  char *from = next_word(&args);
  char *word = next_word(&args);
  msgref m;
  if (!to || !from || !word || *rest(&args)) {
    out_cmd_error(c, "forward", 0, "usage: forward <to-conversation> <from-conversation> <message>");
    return;
  }
  if (message_arg(c, "forward", from, word, &m) != 0) return;
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = whisper_client_forward(c->client, to, from, m.id, m.id_len, sender_arg(&m), now_ms(), id);
  if (rc != WHISPER_OK) {
    engine_error(c, "forward", rc);
    return;
  }
  sent(c, to, id);
}

/* The length of the next word of p if it has a call id's shape (hex, 8
 * digits or more), else 0. */
static size_t call_id_ahead(const char *p) {
  p += strspn(p, " \t");
  size_t n = strcspn(p, " \t");
  return n >= 8 && strspn(p, "0123456789abcdefABCDEF") >= n ? n : 0;
}

/* call <account> offer|answer|ice|hangup|busy [<call id>] [data]: call
 * signalling (no media). An offer without an id starts a new call; the
 * others take the id, or that of the last call with the account. */
static void cmd_call(chat *c, char *args) {
  static const char usage[] =
      "usage: call <account> offer|answer|ice|hangup|busy [<call id: 32 hex digits>] [data]";
  char *to = next_word(&args);
  char *tw = next_word(&args);
  int type = tw ? call_type_parse(tw) : 0;
  if (!to || !type) {
    out_cmd_error(c, "call", 0, "%s", usage);
    return;
  }
  uint8_t id[WHISPER_CALL_ID_LEN];
  if (call_id_ahead(args)) {
    char *w = next_word(&args);
    if (hex_decode(id, sizeof id, w) != 0) {
      out_cmd_error(c, "call", 0, "a call id is %d hex digits, not %.40s", 2 * WHISPER_CALL_ID_LEN, w);
      return;
    }
  } else {
    if (type == WHISPER_CALL_OFFER) {
      if (random_bytes(id, sizeof id) != 0) {
        out_cmd_error(c, "call", WHISPER_ERANDOM, "cannot read /dev/urandom for a call id");
        return;
      }
    } else if (strcmp(c->call_peer, to) == 0) {
      memcpy(id, c->call_id, sizeof id);
    } else {
      out_cmd_error(c, "call", 0, "which call? none with %.64s in this run: give its id (call %.64s %s <id> [data])",
                    to, to, tw);
      return;
    }
  }
  char *data = rest(&args);
  int rc = whisper_client_call(c->client, to, type, id, (const uint8_t *)data, strlen(data), now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, "call", rc);
    return;
  }
  snprintf(c->call_peer, sizeof c->call_peer, "%s", to);
  memcpy(c->call_id, id, sizeof id);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "call");
    jb_str(&b, "to", to);
    jb_str(&b, "type", call_type_name(type));
    jb_hex(&b, "call_id", id, sizeof id);
    jb_print(c, &b);
  } else {
    char hex[2 * WHISPER_CALL_ID_LEN + 1];
    hex_encode(hex, id, sizeof id);
    hb_printf(&b, "  ☎ %s to ", call_type_name(type));
    hb_text(&b, (const uint8_t *)to, strlen(to));
    hb_printf(&b, ", call %s", hex);
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_typing(chat *c, char *args) {
  char *conv = next_word(&args);
  char *state = next_word(&args);
  if (!conv || !state || (strcmp(state, "on") != 0 && strcmp(state, "off") != 0)) {
    out_cmd_error(c, "typing", 0, "usage: typing <conversation> on|off");
    return;
  }
  int rc = whisper_client_typing(c->client, conv, strcmp(state, "on") == 0, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, "typing", rc);
    return;
  }
  ok(c, "typing");
}

static void cmd_subscribe(chat *c, char *args) {
  static char *accounts[MAX_ARGS];
  size_t n = words(&args, accounts, MAX_ARGS);
  if (n == 0) {
    out_cmd_error(c, "subscribe", 0, "usage: subscribe <account>...");
    return;
  }
  int rc = whisper_client_subscribe(c->client, (const char *const *)accounts, n);
  if (rc != WHISPER_OK) {
    engine_error(c, "subscribe", rc);
    return;
  }
  ok(c, "subscribe");
}

static void cmd_history(chat *c, char *args) {
  char *conv = next_word(&args);
  char *lim = next_word(&args);
  uint32_t limit = HISTORY_DEFAULT;
  if (!conv || (lim && (parse_u32(lim, &limit) != 0 || limit == 0 || limit > HISTORY_MAX))) {
    out_cmd_error(c, "history", 0, "usage: history <conversation> [limit (1..%d)]", HISTORY_MAX);
    return;
  }
  whisper_page *page = NULL;
  int rc = whisper_history_page(c->ctx, conv, 0, NULL, 0, limit, &page);
  if (rc != WHISPER_OK) {
    engine_error(c, "history", rc);
    return;
  }
  size_t n = whisper_page_count(page);
  if (msgref_remember(c, conv, page) != 0) {
    whisper_page_free(page);
    out_cmd_error(c, "history", WHISPER_ENOMEM, "out of memory");
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "history");
    jb_str(&b, "conversation", conv);
    jb_open(&b, "messages", '[');
  } else {
    hb_printf(&b, "  history of ");
    hb_text(&b, (const uint8_t *)conv, strlen(conv));
    hb_printf(&b, ": %zu message%s%s", n, n == 1 ? "" : "s",
              n ? " (#numbers name them in read, until the next history of it)" : "");
  }
  /* The page is newest first; print oldest first, numbered from 1 as
   * msgref_remember() numbered them. */
  for (size_t k = n; k-- > 0;) {
    const whisper_message_t *m = whisper_page_get(page, k);
    size_t number = n - k;
    if (!m) continue;
    int own = m->sender == NULL;
    if (c->script) {
      jb_open(&b, NULL, '{');
      jb_u64(&b, "n", number);
      jb_hex(&b, "id", m->id, m->id_len);
      /* An own message was sent by this device or another of this
       * account's (history does not keep which). */
      jb_str(&b, "from", own ? c->account : m->sender);
      if (own && !m->sender_device)
        jb_str(&b, "device", NULL);
      else
        jb_u64(&b, "device", m->sender_device);
      jb_bool(&b, "own", own);
      jb_bytes(&b, "body", m->body, m->body_len);
      jb_u64(&b, "seq", m->sort_key);
      jb_u64(&b, "ts", m->timestamp_ms);
      if (own) jb_str(&b, "status", status_name(m->status));
      jb_content(c, &b, m);
      jb_close(&b, '}');
    } else {
      char hex[2 * WHISPER_MESSAGE_ID_MAX + 1], when[16];
      hex_encode(hex, m->id, m->id_len);
      if (strlen(hex) > SHORT_ID_HEX) hex[SHORT_ID_HEX] = '\0';
      clock_str(when, m->timestamp_ms);
      hb_printf(&b, "\n  %s#%-4zu%s %s ", c->color ? "\033[1m" : "", number, c->color ? "\033[0m" : "", when);
      if (own)
        hb_printf(&b, "you");
      else {
        hb_text(&b, (const uint8_t *)m->sender, strlen(m->sender));
        hb_printf(&b, ".%u", (unsigned)m->sender_device);
      }
      hb_printf(&b, ": ");
      hb_content(c, &b, m);
      if (own) hb_printf(&b, "  %s", status_ticks(c, m->status));
      hb_printf(&b, "  %s(%s)%s", c->color ? "\033[2m" : "", hex, c->color ? "\033[0m" : "");
      hb_content_below(c, &b, m);
    }
  }
  whisper_page_free(page);
  if (c->script) {
    jb_close(&b, ']');
    jb_print(c, &b);
  } else {
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_trust(chat *c, char *args) {
  char *name = next_word(&args);
  char *dev = next_word(&args);
  uint32_t device;
  if (!name || !dev || parse_u32(dev, &device) != 0 || device == WHISPER_ALL_DEVICES) {
    out_cmd_error(c, "trust", 0, "usage: trust <account> <device>");
    return;
  }
  /* The new key the engine announced (EV_IDENTITY) becomes trusted; without
   * one, the key last seen for that device. Then what waited for it is
   * tried again. */
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  int rc = WHISPER_OK;
  if (!changed_key_take(c, name, device, key)) {
    rc = whisper_identity_remote(c->ctx, name, device, key);
    if (rc == WHISPER_ENOTFOUND) {
      out_cmd_error(c, "trust", rc, "no identity key seen for %s.%u", name, (unsigned)device);
      return;
    }
  }
  if (rc == WHISPER_OK) rc = whisper_identity_trust(c->ctx, name, device, key, sizeof key);
  wipe(key, sizeof key);
  if (rc == WHISPER_OK) rc = whisper_client_retry(c->client, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, "trust", rc);
    return;
  }
  ok(c, "trust");
}

/* The token a new device shows: its QR code's text (QR_LINK_PREFIX and
 * hex) or the hex alone. */
static void cmd_link_approve(chat *c, char *args) {
  uint8_t code[256];
  char *text = next_word(&args);
  long n = text && !*rest(&args) ? qr_text_parse(QR_LINK_PREFIX, text, code, sizeof code) : -1;
  if (n <= 0) {
    out_cmd_error(c, "link-approve", 0,
                  "usage: link-approve <code> (the text of the new device's QR code, " QR_LINK_PREFIX
                  "..., or its link token in hex)");
    return;
  }
  char digits[WHISPER_LINK_DIGITS + 1] = "";
  int rc = whisper_client_link_digits(code, (size_t)n, digits);
  if (rc == WHISPER_OK) rc = whisper_client_link_approve(c->client, code, (size_t)n);
  if (rc != WHISPER_OK) {
    engine_error(c, "link-approve", rc);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "link-approve");
    jb_str(&b, "digits", digits);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  ok: link-approve: the new device joins (it showed the digits %s; if it did not, remove it with device-remove)",
              digits);
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_device_remove(chat *c, char *args) {
  char *dev = next_word(&args);
  uint32_t device;
  if (!dev || parse_u32(dev, &device) != 0) {
    out_cmd_error(c, "device-remove", 0, "usage: device-remove <device>");
    return;
  }
  int rc = whisper_client_device_remove(c->client, device);
  if (rc != WHISPER_OK) {
    engine_error(c, "device-remove", rc);
    return;
  }
  ok(c, "device-remove");
}

static const char *trust_name(int t) {
  switch (t) {
  case WHISPER_TRUST_UNVERIFIED: return "unverified";
  case WHISPER_TRUST_VERIFIED: return "verified";
  case WHISPER_TRUST_CHANGED: return "changed";
  default: return "unknown";
  }
}

/* The two account keys a safety number is over: this account's (device
 * 1's identity key, the one its device list is signed with) and the other
 * account's, so one comparison covers every device of both. Returns 0, or
 * -1 after reporting why. */
static int safety_keys(chat *c, const char *cmd, const char *name,
                       uint8_t ours[WHISPER_PUBLIC_KEY_LEN], uint8_t theirs[WHISPER_PUBLIC_KEY_LEN],
                       int *trust) {
  int own_trust = WHISPER_TRUST_UNKNOWN;
  *trust = WHISPER_TRUST_UNKNOWN;
  int rc = whisper_client_account_info(c->client, name, trust, theirs);
  if (rc == WHISPER_OK) rc = whisper_client_account_info(c->client, c->account, &own_trust, ours);
  if (rc == WHISPER_OK && c->device == 1) {
    rc = whisper_identity_get(c->ctx, ours, NULL, NULL, NULL);
    own_trust = WHISPER_TRUST_VERIFIED;
  }
  if (rc != WHISPER_OK) {
    engine_error(c, cmd, rc);
    return -1;
  }
  if (*trust == WHISPER_TRUST_UNKNOWN || own_trust == WHISPER_TRUST_UNKNOWN) {
    out_cmd_error(c, cmd, WHISPER_ENOTFOUND, "no account key known yet for %s",
                  *trust == WHISPER_TRUST_UNKNOWN ? name : c->account);
    return -1;
  }
  return 0;
}

/* The safety number's 60 digits and its scannable form (*scannable, for
 * whisper_buf_free). Returns 0, or -1 after reporting why. */
static int safety_number(chat *c, const char *cmd, const char *name,
                         const uint8_t ours[WHISPER_PUBLIC_KEY_LEN],
                         const uint8_t theirs[WHISPER_PUBLIC_KEY_LEN],
                         char number[WHISPER_FINGERPRINT_DISPLAY_LEN], whisper_buf **scannable) {
  int rc = whisper_fingerprint(WHISPER_FINGERPRINT_ITERATIONS, (const uint8_t *)c->account, strlen(c->account),
                               ours, WHISPER_PUBLIC_KEY_LEN, (const uint8_t *)name,
                               strlen(name), theirs, WHISPER_PUBLIC_KEY_LEN, number,
                               scannable);
  if (rc != WHISPER_OK) {
    out_cmd_error(c, cmd, rc, "cannot compute the safety number");
    return -1;
  }
  return 0;
}

enum { CODE_MATCH = 0, CODE_MISMATCH = 1, CODE_OWN = 2 };

/* Compares what the user brought from the other device: the text of its
 * QR code (QR_SAFETY_PREFIX and hex: it holds that side's view, compared
 * with the halves swapped) or the 60 digits (the same on both sides).
 * Blanks are ignored. Returns CODE_MATCH, CODE_MISMATCH, CODE_OWN (this
 * device's own code was scanned), or -1 after reporting why it cannot
 * compare. */
static int safety_compare(chat *c, const char *cmd, const char *code,
                          const char number[WHISPER_FINGERPRINT_DISPLAY_LEN],
                          const whisper_buf *ours) {
  char compact[600];
  size_t n = 0;
  for (const char *s = code; *s; s++) {
    if (is_space(*s)) continue;
    if (n + 1 >= sizeof compact) {
      out_cmd_error(c, cmd, 0, "that is too long for a safety code");
      return -1;
    }
    compact[n++] = *s;
  }
  compact[n] = '\0';
  if (strspn(compact, "0123456789") == n) {
    if (n != WHISPER_FINGERPRINT_DISPLAY_LEN - 1) {
      out_cmd_error(c, cmd, 0, "a safety number has %d digits, not %zu", WHISPER_FINGERPRINT_DISPLAY_LEN - 1, n);
      return -1;
    }
    return strcmp(compact, number) == 0 ? CODE_MATCH : CODE_MISMATCH;
  }
  uint8_t scanned[256];
  long len = qr_text_parse(QR_SAFETY_PREFIX, compact, scanned, sizeof scanned);
  int match = 0;
  int rc = len > 0 ? whisper_fingerprint_compare(ours->data, ours->len, scanned, (size_t)len, &match)
                   : WHISPER_EINVALIDMSG;
  if (rc == WHISPER_EVERSION) {
    out_cmd_error(c, cmd, rc, "the scanned code is of another safety number version");
    return -1;
  }
  if (rc != WHISPER_OK) {
    out_cmd_error(c, cmd, 0,
                  "not a safety code: give the text of the other device's QR code (" QR_SAFETY_PREFIX
                  "...) or the 60 digits");
    return -1;
  }
  if (match) return CODE_MATCH;
  if ((size_t)len == ours->len && memcmp(scanned, ours->data, ours->len) == 0) return CODE_OWN;
  return CODE_MISMATCH;
}

static const char *mismatch_why(int result) {
  return result == CODE_OWN ? "that is this device's own code: scan the one on the other person's device"
                            : "it is not the safety number this device has for them";
}

/* The human lines of `safety`: the comparison's verdict, or the number
 * and its QR code. */
static void safety_human(chat *c, jbuf *b, const char *name, int trust, const char *number,
                         const char *text, const char *code, int result) {
  if (result >= 0) {
    if (result == CODE_MATCH)
      hb_printf(b, "  %sMATCH%s: the safety numbers with %s are the same on both devices. To remember it: verify %s %s",
                c->color ? "\033[1;32m" : "", c->color ? "\033[0m" : "", name, name, code);
    else
      hb_printf(b, "  %sMISMATCH%s: %s (%s). Do not verify %s.", c->color ? "\033[1;31m" : "",
                c->color ? "\033[0m" : "", mismatch_why(result), name, name);
  } else {
    hb_printf(b, "  safety number with %s (%s):\n  ", name, trust_name(trust));
    for (int i = 0; i < 12; i++) hb_printf(b, "%.5s%s", number + 5 * i, i == 5 ? "\n  " : " ");
    if (qr_draw(c, b, text) != 0) hb_printf(b, "\n  (no QR code: it does not fit)");
    hb_printf(b, "\n  Compare the digits with %s's screen, or scan %s's code and give its text:\n"
                  "  verify %s <text>.  This code's text: %s",
              name, name, name, text);
  }
}

/* safety <account> [<code>]: the safety number as digits and as a QR code
 * (in --script mode the code's text instead of the drawing); with a code
 * from the other device, whether the two match. */
static void cmd_safety(chat *c, char *args) {
  char *name = next_word(&args);
  char *code = rest(&args);
  uint8_t theirs[WHISPER_PUBLIC_KEY_LEN], ours[WHISPER_PUBLIC_KEY_LEN];
  char number[WHISPER_FINGERPRINT_DISPLAY_LEN];
  whisper_buf *scan = NULL;
  int trust, result = -1;
  if (!name) {
    out_cmd_error(c, "safety", 0, "usage: safety <account> [<scanned code or 60 digits>]");
    return;
  }
  if (safety_keys(c, "safety", name, ours, theirs, &trust) != 0 ||
      safety_number(c, "safety", name, ours, theirs, number, &scan) != 0)
    return;
  if (*code && (result = safety_compare(c, "safety", code, number, scan)) < 0) {
    whisper_buf_free(scan);
    return;
  }
  char *text = qr_text(QR_SAFETY_PREFIX, scan->data, scan->len);
  whisper_buf_free(scan);
  if (!text) {
    out_cmd_error(c, "safety", WHISPER_ENOMEM, "out of memory");
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "safety");
    jb_str(&b, "account", name);
    jb_str(&b, "number", number);
    jb_str(&b, "trust", trust_name(trust));
    jb_str(&b, "qr_text", text);
    if (result >= 0) {
      jb_bool(&b, "match", result == CODE_MATCH);
      if (result != CODE_MATCH) jb_str(&b, "why", mismatch_why(result));
    }
    jb_print(c, &b);
  } else {
    safety_human(c, &b, name, trust, number, text, code, result);
    hb_print(c, &b);
  }
  jb_free(&b);
  free(text);
}

/* The app's decision on an account key: verify (safety numbers compared;
 * with a code from the other device, only if it matches) or accept (a
 * changed key, without verifying). */
static void cmd_account_trust(chat *c, const char *cmd, char *args, int verified) {
  char *name = next_word(&args);
  char *code = rest(&args);
  uint8_t key[WHISPER_PUBLIC_KEY_LEN], ours[WHISPER_PUBLIC_KEY_LEN];
  int trust;
  if (!name || (*code && !verified)) {
    out_cmd_error(c, cmd, 0, verified ? "usage: verify <account> [<scanned code or 60 digits>]"
                                      : "usage: accept <account>");
    return;
  }
  if (*code) {
    /* the key compared is the key marked verified: account_trust refuses
     * it if another one came meanwhile */
    char number[WHISPER_FINGERPRINT_DISPLAY_LEN];
    whisper_buf *scan = NULL;
    if (safety_keys(c, cmd, name, ours, key, &trust) != 0 ||
        safety_number(c, cmd, name, ours, key, number, &scan) != 0)
      return;
    int result = safety_compare(c, cmd, code, number, scan);
    whisper_buf_free(scan);
    if (result < 0) return;
    if (result != CODE_MATCH) {
      out_cmd_error(c, cmd, 0, "MISMATCH: %s (%s); %s is not marked verified", mismatch_why(result),
                    name, name);
      return;
    }
  } else {
    int rc = whisper_client_account_info(c->client, name, &trust, key);
    if (rc == WHISPER_OK && trust == WHISPER_TRUST_UNKNOWN) {
      out_cmd_error(c, cmd, WHISPER_ENOTFOUND, "no account key known yet for %s", name);
      return;
    }
    if (rc != WHISPER_OK) {
      engine_error(c, cmd, rc);
      return;
    }
  }
  int rc = whisper_client_account_trust(c->client, name, key, verified);
  if (rc == WHISPER_OK) rc = whisper_client_retry(c->client, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, cmd, rc);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_str(&b, "account", name);
    jb_str(&b, "trust", verified ? "verified" : "unverified");
    if (*code) jb_bool(&b, "match", 1);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  ok: %s%s is %s", *code ? "MATCH: " : "", name, verified ? "verified" : "accepted (unverified)");
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_verify(chat *c, char *args) { cmd_account_trust(c, "verify", args, 1); }
static void cmd_accept(chat *c, char *args) { cmd_account_trust(c, "accept", args, 0); }

static void cmd_status(chat *c, char *args) {
  (void)args;
  static const char *const states[] = {"closed", "connecting", "open"};
  size_t outbox = 0;
  whisper_page *page = NULL;
  int rc = whisper_outbox_page(c->ctx, 1000, &page);
  if (rc == WHISPER_OK) outbox = whisper_page_count(page);
  whisper_page_free(page);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "state");
    jb_str(&b, "account", c->account);
    jb_u64(&b, "device", c->device);
    jb_str(&b, "server", c->server);
    jb_str(&b, "connection", states[net_state(c)]);
    jb_bool(&b, "online", c->online);
    jb_bool(&b, "caught_up", c->caught_up);
    if (rc == WHISPER_OK)
      jb_u64(&b, "outbox", outbox);
    else
      jb_str(&b, "outbox", NULL);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  %s.%u on %s: connection %s%s%s; %zu%s message%s waiting to be sent",
              c->account, (unsigned)c->device, c->server, states[net_state(c)],
              c->online ? ", logged in" : "", c->caught_up ? ", caught up" : "", outbox,
              outbox >= 1000 ? "+" : "", outbox == 1 ? "" : "s");
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_help(chat *c, char *args);

static void cmd_quit(chat *c, char *args) {
  (void)args;
  c->quit = 1;
  ok(c, "quit");
}

/* --- search --------------------------------------------------------------------------- */

#define SEARCH_SHOWN 20

/* search [in <conversation>] <words...>: newest first, every word (case
 * and accents aside) in each message found. */
static void cmd_search(chat *c, char *args) {
  const char *conv = NULL;
  char *save = args, *first = next_word(&args);
  if (first && strcmp(first, "in") == 0) {
    conv = next_word(&args);
  } else {
    args = save;
  }
  char *query = rest(&args);
  if (query == NULL || *query == '\0' || (first && strcmp(first, "in") == 0 && conv == NULL)) {
    out_cmd_error(c, "search", 0, "usage: search [in <conversation>] <words>");
    return;
  }
  whisper_page *page = NULL;
  int rc = whisper_search(c->ctx, query, conv, NULL, SEARCH_SHOWN, &page);
  if (rc != WHISPER_OK) {
    out_cmd_error(c, "search", rc, "%s", whisper_ctx_last_error(c->ctx));
    return;
  }
  size_t n = whisper_page_count(page);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "search");
    jb_str(&b, "query", query);
    jb_open(&b, "messages", '[');
  } else {
    hb_printf(&b, "  %zu message%s with \"%s\"%s", n, n == 1 ? "" : "s", query,
              n == SEARCH_SHOWN ? " (the newest shown)" : "");
  }
  for (size_t i = 0; i < n; i++) {
    const whisper_message_t *m = whisper_page_get(page, i);
    int own = m->sender == NULL;
    if (c->script) {
      jb_open(&b, NULL, '{');
      jb_str(&b, "conversation", m->conversation);
      jb_hex(&b, "id", m->id, m->id_len);
      jb_str(&b, "from", own ? c->account : m->sender);
      jb_bytes(&b, "body", m->body, m->body_len);
      jb_u64(&b, "ts", m->timestamp_ms);
      jb_close(&b, '}');
    } else {
      char when[16];
      clock_str(when, m->timestamp_ms);
      hb_printf(&b, "\n  %s in ", when);
      hb_text(&b, (const uint8_t *)m->conversation, strlen(m->conversation));
      hb_printf(&b, ", ");
      if (own) hb_printf(&b, "you");
      else hb_text(&b, (const uint8_t *)m->sender, strlen(m->sender));
      hb_printf(&b, ": ");
      hb_content(c, &b, m);
    }
  }
  whisper_page_free(page);
  if (c->script) {
    jb_close(&b, ']');
    jb_print(c, &b);
  } else {
    hb_print(c, &b);
  }
  jb_free(&b);
}

/* --- conversation flags: mute, archive, pin ------------------------------------------ */

/* Reads the flags, lets `change` set one, writes them back, and shows them. */
static void flags_change(chat *c, const char *cmd, const char *conv, int which, uint64_t value) {
  whisper_conversation_flags_t f = WHISPER_CONVERSATION_FLAGS_INIT;
  int rc = whisper_client_conversation_flags_get(c->client, conv, &f);
  if (rc == WHISPER_OK) {
    if (which == 0) f.muted_until_ms = value;
    else if (which == 1) f.archived = (int)value;
    else if (which == 2) f.pinned = (int)value;
    if (which <= 2) rc = whisper_client_conversation_flags_set(c->client, conv, &f, now_ms());
  }
  if (rc != WHISPER_OK) {
    engine_error(c, cmd, rc);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_str(&b, "conversation", conv);
    jb_u64(&b, "muted_until", f.muted_until_ms);
    jb_bool(&b, "muted", f.muted_until_ms > now_ms());
    jb_bool(&b, "archived", f.archived);
    jb_bool(&b, "pinned", f.pinned);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  %s:", conv);
    if (f.muted_until_ms == WHISPER_MUTE_FOREVER) hb_printf(&b, " muted");
    else if (f.muted_until_ms > now_ms())
      hb_printf(&b, " muted for %llu more minutes",
                (unsigned long long)((f.muted_until_ms - now_ms() + 59999) / 60000));
    else hb_printf(&b, " not muted");
    hb_printf(&b, "%s%s", f.archived ? ", archived" : "", f.pinned ? ", pinned" : "");
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void cmd_mute(chat *c, char *args) {
  char *conv = next_word(&args), *mins = next_word(&args);
  uint32_t m = 0;
  if (!conv || (mins && (parse_u32(mins, &m) != 0 || m == 0))) {
    out_cmd_error(c, "mute", 0, "usage: mute <conversation> [minutes]");
    return;
  }
  flags_change(c, "mute", conv, 0, mins ? now_ms() + (uint64_t)m * 60000 : WHISPER_MUTE_FOREVER);
}

static void cmd_unmute(chat *c, char *args) {
  char *conv = next_word(&args);
  if (!conv) {
    out_cmd_error(c, "unmute", 0, "usage: unmute <conversation>");
    return;
  }
  flags_change(c, "unmute", conv, 0, 0);
}

static void on_off_flag(chat *c, char *args, const char *cmd, int which) {
  char *conv = next_word(&args), *state = next_word(&args);
  if (!conv || !state || (strcmp(state, "on") != 0 && strcmp(state, "off") != 0)) {
    char usage[64];
    snprintf(usage, sizeof usage, "usage: %s <conversation> on|off", cmd);
    out_cmd_error(c, cmd, 0, "%s", usage);
    return;
  }
  flags_change(c, cmd, conv, which, strcmp(state, "on") == 0);
}

static void cmd_archive(chat *c, char *args) { on_off_flag(c, args, "archive", 1); }
static void cmd_pin(chat *c, char *args) { on_off_flag(c, args, "pin", 2); }

static void cmd_flags(chat *c, char *args) {
  char *conv = next_word(&args);
  if (!conv) {
    out_cmd_error(c, "flags", 0, "usage: flags <conversation>");
    return;
  }
  flags_change(c, "flags", conv, 3, 0);
}

/* --- profiles: name, about text, picture ------------------------------------------- */

/* A profile as this device holds it: `ok` with the fields, or a line. */
static void profile_show(chat *c, const char *account) {
  whisper_profile_t *p = NULL;
  int rc = whisper_client_profile_get(c->client, account, &p);
  if (rc != WHISPER_OK) {
    engine_error(c, "profile", rc);
    return;
  }
  const char *who = account ? account : c->account;
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "profile");
    jb_str(&b, "account", who);
    jb_bool(&b, "known", p->known);
    jb_str(&b, "name", p->name);
    jb_str(&b, "about", p->about);
    jb_u64(&b, "picture_len", p->picture_len);
    jb_u64(&b, "version", p->profile_version);
    jb_print(c, &b);
  } else if (!p->known) {
    hb_printf(&b, "  %s: no profile yet%s", who,
              account ? " (it comes when they write to you or share a group with you)" : "");
    hb_print(c, &b);
  } else { /* (what a contact wrote goes through hb_text: no terminal controls) */
    hb_printf(&b, "  %s: ", who);
    hb_text(&b, (const uint8_t *)p->name, strlen(p->name));
    if (p->about[0]) {
      hb_printf(&b, " — ");
      hb_text(&b, (const uint8_t *)p->about, strlen(p->about));
    }
    if (p->picture_len) hb_printf(&b, " (picture: %zu bytes)", p->picture_len);
    hb_print(c, &b);
  }
  jb_free(&b);
  whisper_profile_free(p);
}

#define PROFILE_FILE_MAX WHISPER_PROFILE_PICTURE_MAX

/* Reads at most PROFILE_FILE_MAX bytes of `path` into a malloc'd buffer;
 * -1 (with *why) when it cannot, or when it is larger. */
static int read_picture(const char *path, uint8_t **out, size_t *len, const char **why) {
  FILE *f = fopen(path, "rb");
  *out = NULL;
  *len = 0;
  if (f == NULL) {
    *why = "cannot open the picture file";
    return -1;
  }
  uint8_t *b = malloc(PROFILE_FILE_MAX + 1);
  size_t n = b ? fread(b, 1, PROFILE_FILE_MAX + 1, f) : 0;
  int bad = b == NULL || ferror(f);
  fclose(f);
  if (bad || n > PROFILE_FILE_MAX) {
    free(b);
    *why = bad ? "cannot read the picture file" : "the picture is over 65536 bytes";
    return -1;
  }
  *out = b;
  *len = n;
  return 0;
}

/* profile set name|about <text>, profile set picture <file>|none: the
 * other fields stay as they are. */
static void profile_set(chat *c, char *args) {
  char *field = next_word(&args);
  char *value = rest(&args);
  int name = field && strcmp(field, "name") == 0, about = field && strcmp(field, "about") == 0;
  int picture = field && strcmp(field, "picture") == 0;
  if (!(name || about || picture) || (!about && !*value)) {
    out_cmd_error(c, "profile", 0, "usage: profile set name|about <text>, or profile set picture <file>|none");
    return;
  }
  whisper_profile_t *p = NULL;
  int rc = whisper_client_profile_get(c->client, NULL, &p);
  if (rc != WHISPER_OK) {
    engine_error(c, "profile", rc);
    return;
  }
  if (!p->known && !name) {
    whisper_profile_free(p);
    out_cmd_error(c, "profile", 0, "set a name first: profile set name <text>");
    return;
  }
  uint8_t *pic = NULL;
  size_t pic_len = 0;
  const char *why = NULL;
  if (picture && strcmp(value, "none") != 0 && read_picture(value, &pic, &pic_len, &why) != 0) {
    whisper_profile_free(p);
    out_cmd_error(c, "profile", 0, "%s", why);
    return;
  }
  if (!picture && p->picture_len) { /* keep the picture held */
    pic = malloc(p->picture_len);
    if (pic) memcpy(pic, p->picture, p->picture_len), pic_len = p->picture_len;
  }
  rc = whisper_client_profile_set(c->client, name ? value : p->name, about ? value : p->about, pic,
                                  pic_len, now_ms());
  free(pic);
  whisper_profile_free(p);
  if (rc != WHISPER_OK) {
    engine_error(c, "profile", rc);
    return;
  }
  chat_pump(c);
  profile_show(c, NULL);
}

static void cmd_profile(chat *c, char *args) {
  char *w = next_word(&args);
  if (w && strcmp(w, "set") == 0) {
    profile_set(c, args);
    return;
  }
  if (w && (strcmp(w, "refresh") == 0 || strcmp(w, "rotate-key") == 0)) {
    char *who = next_word(&args);
    int refresh = w[0] == 'r' && w[2] == 'f';
    int rc = refresh ? whisper_client_profile_refresh(c->client, who)
                     : whisper_client_profile_rotate_key(c->client, who, now_ms());
    if (rc != WHISPER_OK) {
      engine_error(c, "profile", rc);
      return;
    }
    chat_pump(c);
    ok(c, "profile");
    return;
  }
  if (w && strcmp(w, "show") == 0) w = next_word(&args); /* an account named "set", say */
  if (next_word(&args) != NULL) {
    out_cmd_error(c, "profile", 0, "usage: profile [<account>]");
    return;
  }
  profile_show(c, w);
}

/* Every command: its usage and a line about it. A command with several
 * forms has a row per form; the first row of a name runs it. */
static const struct command {
  const char *name;
  const char *usage;
  const char *about;
  void (*run)(chat *c, char *args);
} commands[] = {
    {"send", "send <account> <text>", "send a message to an account (all its devices)", cmd_send},
    {"gsend", "gsend <groupid> <text>", "send a message to a group", cmd_gsend},
    {"group", "group create <account>...", "create a group with these accounts", cmd_group},
    {"group", "group add <groupid> <account>...", "add members to a group", NULL},
    {"group", "group remove <groupid> <account>...", "remove members from a group (yourself: leave it)", NULL},
    {"group", "group admin <groupid> promote|demote <member>", "make a member admin, or an admin a member", NULL},
    {"group", "group info <groupid> name|description|picture [<value>]", "set the group's info (no value: clear it)", NULL},
    {"group", "group setting <groupid> admins-edit-info|admins-send on|off", "only admins edit the info / send", NULL},
    {"group", "group link <groupid> make|revoke|approval on|off", "an invite link (a new one replaces the old); approve joins", NULL},
    {"group", "group join <link>", "join a group by its invite link", NULL},
    {"group", "group leave <groupid>", "leave a group", NULL},
    {"group", "group show <groupid>", "members, admins, info, settings, join requests", NULL},
    {"history", "history <conversation> [limit]", "the last messages (default 50), numbered #1 (oldest) up", cmd_history},
    {"read", "read <conversation> [<message>...]", "mark messages read (none named: all received, not marked yet)", cmd_read},
    {"read", "read <conversation> <sender> <id>...", "the same with the sender and whole 32-digit ids", NULL},
    {"reply", "reply <conversation> <message> <text>", "send a reply that quotes a message", cmd_reply},
    {"react", "react <conversation> <message> <emoji>", "react to a message (replaces your reaction)", cmd_react},
    {"unreact", "unreact <conversation> <message>", "take back your reaction to a message", cmd_unreact},
    {"edit", "edit <conversation> <message> <text>", "change the text of your message (15 minutes)", cmd_edit},
    {"delete", "delete <conversation> <message>", "delete your message for everyone (48 hours)", cmd_delete},
    {"forward", "forward <to> <from> <message>", "forward a message of conversation <from> to <to>", cmd_forward},
    {"call", "call <account> <signal> [<id>] [data]", "call signalling: offer (a new call id), answer, ice, hangup, busy", cmd_call},
    {"search", "search [in <conversation>] <words>", "find messages with every word (case and accents aside)", cmd_search},
    {"mute", "mute <conversation> [minutes]", "no push for it (on every device of yours; forever if no time)", cmd_mute},
    {"unmute", "unmute <conversation>", "take back a mute", cmd_unmute},
    {"archive", "archive <conversation> on|off", "archive a conversation (on every device of yours)", cmd_archive},
    {"pin", "pin <conversation> on|off", "pin a conversation (on every device of yours)", cmd_pin},
    {"flags", "flags <conversation>", "whether a conversation is muted, archived, pinned", cmd_flags},
    {"profile", "profile [<account>]", "a profile as this device has it (none given: yours)", cmd_profile},
    {"profile", "profile set name|about <text>", "set your display name or about text (for your contacts, end to end)", NULL},
    {"profile", "profile set picture <file>|none", "set your profile picture (at most 64 KiB), or remove it", NULL},
    {"profile", "profile refresh [<account>]", "fetch a profile from the server again", NULL},
    {"profile", "profile rotate-key [<account>]", "on device 1: a new profile key, not given to <account>", NULL},
    {"profile", "profile show <account>", "the same as profile <account> (for an account named set)", NULL},
    {"typing", "typing <conversation> on|off", "say that you are typing, or stopped", cmd_typing},
    {"subscribe", "subscribe <account>...", "see when these accounts are online", cmd_subscribe},
    {"safety", "safety <account> [<code>]", "the safety number (digits, QR code); with their code: compare", cmd_safety},
    {"verify", "verify <account> [<code>]", "mark their key verified (with their code: if it matches)", cmd_verify},
    {"accept", "accept <account>", "accept an account's changed key without verifying it", cmd_accept},
    {"trust", "trust <account> <device>", "trust a device's changed key (contacts from before account keys)", cmd_trust},
    {"link-approve", "link-approve <code>", "on device 1: add the new device that shows this code", cmd_link_approve},
    {"device-remove", "device-remove <device>", "on device 1: remove one of this account's devices", cmd_device_remove},
    {"status", "status", "the connection, the login, the messages waiting to go", cmd_status},
    {"help", "help", "this list", cmd_help},
    {"quit", "quit", "close the connection and the store, and exit", cmd_quit},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void cmd_help(chat *c, char *args) {
  (void)args;
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "help");
    jb_open(&b, "commands", '[');
    for (size_t i = 0; i < N_COMMANDS; i++) {
      jb_open(&b, NULL, '{');
      jb_str(&b, "command", commands[i].name);
      jb_str(&b, "usage", commands[i].usage);
      jb_str(&b, "about", commands[i].about);
      jb_close(&b, '}');
    }
    for (size_t i = 0; i < chat_block_n; i++) { /* block.c */
      jb_open(&b, NULL, '{');
      jb_str(&b, "command", chat_block_cmds[i].name);
      jb_str(&b, "usage", chat_block_cmds[i].usage);
      jb_str(&b, "about", chat_block_cmds[i].about);
      jb_close(&b, '}');
    }
    for (size_t i = 0; i < chat_media_n; i++) { /* media.c */
      jb_open(&b, NULL, '{');
      jb_str(&b, "command", chat_media_cmds[i].name);
      jb_str(&b, "usage", chat_media_cmds[i].usage);
      jb_str(&b, "about", chat_media_cmds[i].about);
      jb_close(&b, '}');
    }
    jb_close(&b, ']');
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  commands:");
    for (size_t i = 0; i < N_COMMANDS; i++)
      hb_printf(&b, "\n  %-38s %s", commands[i].usage, commands[i].about);
    for (size_t i = 0; i < chat_block_n; i++) /* block.c */
      hb_printf(&b, "\n  %-38s %s", chat_block_cmds[i].usage, chat_block_cmds[i].about);
    for (size_t i = 0; i < chat_media_n; i++) /* media.c */
      hb_printf(&b, "\n  %-38s %s", chat_media_cmds[i].usage, chat_media_cmds[i].about);
    hb_printf(&b,
              "\n\n  A conversation is an account's name, or # and a group's id (as messages show it).\n"
              "  A <message> is #N, the number the last `history` of its conversation showed for it\n"
              "  (kept until the next history of that conversation), or the start of its id\n"
              "  (%d or more hex digits, enough for just one message).\n"
              "  A <code> is the text of the QR code the other device shows (scan it with a phone),\n"
              "  or for safety and verify also the 60 digits.",
              MSGREF_MIN_PREFIX);
    hb_print(c, &b);
  }
  jb_free(&b);
}

void cmd_line(chat *c, char *line) {
  char *p = line;
  char *cmd = next_word(&p);
  if (!cmd) return;
  /* The engine's clock is what the last call gave it; calls without a
   * now_ms (subscribe, link-approve) stamp their request deadlines with it,
   * so bring it up to date first (running timers early is harmless). */
  whisper_client_tick(c->client, now_ms());
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (commands[i].run && strcmp(cmd, commands[i].name) == 0) {
      commands[i].run(c, p);
      return;
    }
  }
  if (chat_block_cmd(c, cmd, p)) return; /* block.c */
  if (chat_media_cmd(c, cmd, p)) return; /* media.c */
  out_cmd_error(c, cmd, 0, "unknown command (try: help)");
}

/*
 * whisper-chat: the commands, one per line, the same interactive and in
 * --script mode:
 *
 *   send <account> <text>               gsend <groupid-hex> <text>
 *   group create <member>...            group add|remove <gid> <member>...
 *   read <conversation> <sender> <idhex>...
 *   typing <conversation> on|off        subscribe <account>...
 *   history <conversation> [limit]      trust <account> <device>
 *   link-approve <tokenhex>             device-remove <device>
 *   safety <account>                    verify <account>   accept <account>
 *   status        help        quit
 *
 * A group id is 32 hex digits, with or without the leading '#' of its
 * conversation name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

#define MAX_ARGS 1100 /* a group of up to 1024 members, and some */
#define HISTORY_DEFAULT 50
#define HISTORY_MAX 10000

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
  whisper_client_group_conversation(conv, gid);
  sent(c, conv, id);
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
    char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
    whisper_client_group_conversation(conv, gid);
    jbuf b;
    jb_init(&b);
    if (c->script) {
      jb_begin(&b, "group_created");
      jb_hex(&b, "group", gid, sizeof gid);
      jb_str(&b, "conversation", conv);
      jb_print(c, &b);
    } else {
      hb_printf(&b, "  group created: %s (conversation %s)", conv + 1, conv);
      hb_print(c, &b);
    }
    jb_free(&b);
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
  out_cmd_error(c, "group", 0, "usage: group create|add|remove ...");
}

static void cmd_read(chat *c, char *args) {
  static char *hexes[MAX_ARGS];
  static uint8_t ids[MAX_ARGS][WHISPER_CLIENT_ID_LEN];
  char *conv = next_word(&args);
  char *sender = next_word(&args);
  size_t n = words(&args, hexes, MAX_ARGS);
  if (!conv || !sender || n == 0) {
    out_cmd_error(c, "read", 0, "usage: read <conversation> <sender> <idhex>...");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (hex_decode(ids[i], WHISPER_CLIENT_ID_LEN, hexes[i]) != 0) {
      out_cmd_error(c, "read", 0, "not a message id (32 hex digits): %.80s", hexes[i]);
      return;
    }
  }
  int rc = whisper_client_mark_read(c->client, conv, sender,
                                    (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])ids, n, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, "read", rc);
    return;
  }
  ok(c, "read");
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
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "history");
    jb_str(&b, "conversation", conv);
    jb_open(&b, "messages", '[');
  } else {
    hb_printf(&b, "  history of ");
    hb_text(&b, (const uint8_t *)conv, strlen(conv));
    hb_printf(&b, ": %zu message%s", n, n == 1 ? "" : "s");
  }
  /* The page is newest first; print oldest first. */
  for (size_t k = n; k-- > 0;) {
    const whisper_message_t *m = whisper_page_get(page, k);
    if (!m) continue;
    int own = m->sender == NULL;
    if (c->script) {
      jb_open(&b, NULL, '{');
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
      jb_close(&b, '}');
    } else {
      char hex[2 * WHISPER_MESSAGE_ID_MAX + 1];
      hex_encode(hex, m->id, m->id_len);
      hb_printf(&b, "\n  %6llu ", (unsigned long long)m->sort_key);
      if (own)
        hb_printf(&b, "you");
      else {
        hb_text(&b, (const uint8_t *)m->sender, strlen(m->sender));
        hb_printf(&b, ".%u", (unsigned)m->sender_device);
      }
      hb_printf(&b, ": ");
      hb_text(&b, m->body, m->body_len);
      if (own) hb_printf(&b, "  %s", status_ticks(c, m->status));
      hb_printf(&b, "  %s(%s)%s", c->color ? "\033[2m" : "", hex, c->color ? "\033[0m" : "");
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

static void cmd_link_approve(chat *c, char *args) {
  uint8_t code[256];
  char *hex = next_word(&args);
  long n = hex ? hex_decode_var(code, sizeof code, hex) : -1;
  if (n <= 0) {
    out_cmd_error(c, "link-approve", 0, "usage: link-approve <tokenhex>");
    return;
  }
  int rc = whisper_client_link_approve(c->client, code, (size_t)n);
  if (rc != WHISPER_OK) {
    engine_error(c, "link-approve", rc);
    return;
  }
  ok(c, "link-approve");
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

/* The safety number with an account: over this account's key (device 1's
 * identity key, the one its device list is signed with) and the other
 * account's key, so one comparison covers every device of both. */
static void cmd_safety(chat *c, char *args) {
  char *name = next_word(&args);
  uint8_t theirs[WHISPER_PUBLIC_KEY_LEN], ours[WHISPER_PUBLIC_KEY_LEN];
  int trust = WHISPER_TRUST_UNKNOWN, own_trust = WHISPER_TRUST_UNKNOWN;
  if (!name) {
    out_cmd_error(c, "safety", 0, "usage: safety <account>");
    return;
  }
  int rc = whisper_client_account_info(c->client, name, &trust, theirs);
  if (rc == WHISPER_OK) rc = whisper_client_account_info(c->client, c->account, &own_trust, ours);
  if (rc == WHISPER_OK && c->device == 1) {
    rc = whisper_identity_get(c->ctx, ours, NULL, NULL, NULL);
    own_trust = WHISPER_TRUST_VERIFIED;
  }
  if (rc != WHISPER_OK) {
    engine_error(c, "safety", rc);
    return;
  }
  if (trust == WHISPER_TRUST_UNKNOWN || own_trust == WHISPER_TRUST_UNKNOWN) {
    out_cmd_error(c, "safety", WHISPER_ENOTFOUND, "no account key known yet for %s",
                  trust == WHISPER_TRUST_UNKNOWN ? name : c->account);
    return;
  }
  char number[WHISPER_FINGERPRINT_DISPLAY_LEN];
  rc = whisper_fingerprint(number, NULL, WHISPER_FINGERPRINT_ITERATIONS, (const uint8_t *)c->account,
                           strlen(c->account), ours, sizeof ours, (const uint8_t *)name, strlen(name),
                           theirs, sizeof theirs);
  if (rc != WHISPER_OK) {
    engine_error(c, "safety", rc);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "safety");
    jb_str(&b, "account", name);
    jb_str(&b, "number", number);
    jb_str(&b, "trust", trust_name(trust));
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  safety number with %s (%s):\n  ", name, trust_name(trust));
    for (int i = 0; i < 12; i++) hb_printf(&b, "%.5s%s", number + 5 * i, i == 5 ? "\n  " : " ");
    hb_print(c, &b);
  }
  jb_free(&b);
}

/* The app's decision on an account key: verify (safety numbers compared)
 * or accept (a changed key, without verifying). */
static void cmd_account_trust(chat *c, const char *cmd, char *args, int verified) {
  char *name = next_word(&args);
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  int trust;
  if (!name) {
    out_cmd_error(c, cmd, 0, "usage: %s <account>", cmd);
    return;
  }
  int rc = whisper_client_account_info(c->client, name, &trust, key);
  if (rc == WHISPER_OK && trust == WHISPER_TRUST_UNKNOWN) {
    out_cmd_error(c, cmd, WHISPER_ENOTFOUND, "no account key known yet for %s", name);
    return;
  }
  if (rc == WHISPER_OK) rc = whisper_client_account_trust(c->client, name, key, verified);
  if (rc == WHISPER_OK) rc = whisper_client_retry(c->client, now_ms());
  if (rc != WHISPER_OK) {
    engine_error(c, cmd, rc);
    return;
  }
  ok(c, cmd);
}

static void cmd_status(chat *c) {
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

static void cmd_help(chat *c) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "help");
    jb_str(&b, "commands",
           "send gsend group read typing subscribe history trust link-approve device-remove safety "
           "verify accept status quit");
    jb_print(c, &b);
  } else {
    hb_printf(&b,
              "  send <account> <text>               gsend <groupid-hex> <text>\n"
              "  group create <member>...            group add|remove <groupid-hex> <member>...\n"
              "  read <conversation> <sender> <idhex>...\n"
              "  typing <conversation> on|off        subscribe <account>...\n"
              "  history <conversation> [limit]      trust <account> <device>\n"
              "  link-approve <tokenhex>             device-remove <device>\n"
              "  safety <account>                    verify <account>    accept <account>\n"
              "  status    help    quit\n"
              "  A group's conversation is # and its id in hex.");
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
  if (strcmp(cmd, "send") == 0)
    cmd_send(c, p);
  else if (strcmp(cmd, "gsend") == 0)
    cmd_gsend(c, p);
  else if (strcmp(cmd, "group") == 0)
    cmd_group(c, p);
  else if (strcmp(cmd, "read") == 0)
    cmd_read(c, p);
  else if (strcmp(cmd, "typing") == 0)
    cmd_typing(c, p);
  else if (strcmp(cmd, "subscribe") == 0)
    cmd_subscribe(c, p);
  else if (strcmp(cmd, "history") == 0)
    cmd_history(c, p);
  else if (strcmp(cmd, "trust") == 0)
    cmd_trust(c, p);
  else if (strcmp(cmd, "link-approve") == 0)
    cmd_link_approve(c, p);
  else if (strcmp(cmd, "device-remove") == 0)
    cmd_device_remove(c, p);
  else if (strcmp(cmd, "safety") == 0)
    cmd_safety(c, p);
  else if (strcmp(cmd, "verify") == 0)
    cmd_account_trust(c, "verify", p, 1);
  else if (strcmp(cmd, "accept") == 0)
    cmd_account_trust(c, "accept", p, 0);
  else if (strcmp(cmd, "status") == 0)
    cmd_status(c);
  else if (strcmp(cmd, "help") == 0)
    cmd_help(c);
  else if (strcmp(cmd, "quit") == 0)
    c->quit = 1;
  else
    out_cmd_error(c, cmd, 0, "unknown command (try: help)");
}

/*
 * whisper-chat: blocking and reporting (whisper_client_block, _unblock,
 * _blocked_list, _report), kept apart from commands.c: its own table of
 * commands (cmd_line and help take it after commands.c's), and the
 * WHISPER_EV_BLOCKED event (another device of this account blocked or
 * unblocked someone).
 *
 *   block <account>                      nothing goes to it, what it sends is dropped
 *   unblock <account>
 *   blocked                              the blocked accounts
 *   report <conversation> [n] [block]    its last n messages (default 5, at most 50)
 *                                        to the server's moderators; `block`: block too
 *
 * --script answers: {"ev":"ok","cmd":"block"|"unblock"|"report"},
 * {"ev":"ok","cmd":"blocked","accounts":[...]}, or {"ev":"error","cmd":...};
 * the event: {"ev":"block","account":...,"blocked":true|false}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static char *word(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) {
    *p = s;
    return NULL;
  }
  char *w = s;
  while (*s && *s != ' ' && *s != '\t') s++;
  if (*s) *s++ = '\0';
  *p = s;
  return w;
}

static void done(chat *c, const char *cmd, const char *human) {
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  %s", human);
    hb_print(c, &b);
  }
  jb_free(&b);
}

static void block_or_unblock(chat *c, char *args, int block) {
  const char *cmd = block ? "block" : "unblock";
  char *who = word(&args);
  if (!who || word(&args)) {
    out_cmd_error(c, cmd, 0, "usage: %s <account>", cmd);
    return;
  }
  int rc = block ? whisper_client_block(c->client, who, now_ms())
                 : whisper_client_unblock(c->client, who, now_ms());
  if (rc != WHISPER_OK) {
    out_cmd_error(c, cmd, rc, "%s", whisper_ctx_last_error(c->ctx));
    return;
  }
  char line[160];
  snprintf(line, sizeof line, block ? "%s is blocked: nothing goes to it, what it sends is dropped"
                                    : "%s is not blocked any more",
           who);
  done(c, cmd, line);
}

static void cmd_block(chat *c, char *args) { block_or_unblock(c, args, 1); }
static void cmd_unblock(chat *c, char *args) { block_or_unblock(c, args, 0); }

static void cmd_blocked(chat *c, char *args) {
  if (word(&args)) {
    out_cmd_error(c, "blocked", 0, "usage: blocked");
    return;
  }
  whisper_buf *list = NULL;
  size_t n = 0;
  int rc = whisper_client_blocked_list(c->client, &list, &n);
  if (rc != WHISPER_OK) {
    out_cmd_error(c, "blocked", rc, "%s", whisper_ctx_last_error(c->ctx));
    return;
  }
  jbuf b;
  jb_init(&b);
  const char *name = (const char *)list->data;
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "blocked");
    jb_open(&b, "accounts", '[');
    for (size_t i = 0; i < n; i++, name += strlen(name) + 1) jb_str(&b, NULL, name);
    jb_close(&b, ']');
    jb_print(c, &b);
  } else {
    hb_printf(&b, n ? "  blocked:" : "  nobody is blocked");
    for (size_t i = 0; i < n; i++, name += strlen(name) + 1) hb_printf(&b, " %s", name);
    hb_print(c, &b);
  }
  jb_free(&b);
  whisper_buf_free(list);
}

static void cmd_report(chat *c, char *args) {
  char *conv = word(&args), *a = word(&args), *b = word(&args);
  unsigned long n = 0;
  int block = 0;
  if (a && strcmp(a, "block") == 0 && !b) {
    block = 1;
  } else if (a) {
    char *end;
    n = strtoul(a, &end, 10);
    if (*end || *a == '-' || *a == '+' || n == 0 || n > WHISPER_REPORT_MAX || (b && strcmp(b, "block") != 0)) {
      out_cmd_error(c, "report", 0, "usage: report <conversation> [n (1..%d)] [block]", WHISPER_REPORT_MAX);
      return;
    }
    block = b != NULL;
  }
  if (!conv || word(&args)) {
    out_cmd_error(c, "report", 0, "usage: report <conversation> [n (1..%d)] [block]", WHISPER_REPORT_MAX);
    return;
  }
  int rc = whisper_client_report(c->client, conv, n, block, now_ms());
  if (rc != WHISPER_OK) {
    out_cmd_error(c, "report", rc, "%s", whisper_ctx_last_error(c->ctx));
    return;
  }
  char line[200];
  snprintf(line, sizeof line, "reported %s (its last %lu messages)%s", conv,
           n ? n : (unsigned long)WHISPER_REPORT_DEFAULT, block ? "; blocked" : "");
  done(c, "report", line);
}

const chat_cmd chat_block_cmds[] = {
    {"block", "block <account>", "block an account: nothing goes to it, what it sends is dropped", cmd_block},
    {"unblock", "unblock <account>", "unblock an account: its later messages come again", cmd_unblock},
    {"blocked", "blocked", "the accounts you blocked", cmd_blocked},
    {"report", "report <conversation> [n] [block]",
     "send its last n messages (default 5) to the server's moderators; block: block it too", cmd_report},
};

const size_t chat_block_n = sizeof chat_block_cmds / sizeof chat_block_cmds[0];

int chat_block_cmd(chat *c, const char *cmd, char *args) {
  for (size_t i = 0; i < chat_block_n; i++)
    if (strcmp(cmd, chat_block_cmds[i].name) == 0) {
      chat_block_cmds[i].run(c, args);
      return 1;
    }
  return 0;
}

int chat_block_event(chat *c, const whisper_client_event_t *ev) {
  if (ev->type != WHISPER_EV_BLOCKED) return 0;
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "block");
    jb_str(&b, "account", ev->from);
    jb_bool(&b, "blocked", ev->status != 0);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "* ");
    if (ev->from) hb_text(&b, (const uint8_t *)ev->from, strlen(ev->from));
    hb_printf(&b, " was %s on another of your devices", ev->status ? "blocked" : "unblocked");
    hb_print(c, &b);
  }
  jb_free(&b);
  return 1;
}

/*
 * whisper-chat: attachments (client.h, "media: attachments"), kept apart
 * from commands.c as block.c is: its own table of commands (cmd_line and
 * help take it after block.c's), the WHISPER_EV_MEDIA event, and how an
 * attachment shows in history and in a message line.
 *
 *   send-file <conversation> <path> [caption]   a file as an attachment (the content
 *                                               type from its extension, its name the
 *                                               path's last part)
 *   view-once <conversation> <path> [caption]   the same, opened once (WHISPER_MEDIA_VIEW_ONCE)
 *   voice-note <conversation> <path>            the same, a voice note (WHISPER_MEDIA_VOICE_NOTE)
 *   (send-file, view-once and voice-note take --thumb FILE, --size WxH and
 *   --duration MS between the path and the caption)
 *   download <conversation> <message> [path]    into path (default: the downloads
 *                                               folder beside the store, by its name)
 *   open <conversation> <message> <path>        a view-once attachment, into path
 *   media <conversation> <message>              the attachment as this device holds it
 *
 * The engine does the work in jobs kept in the store (encrypt, upload,
 * send; download, verify); these commands only start them, and
 * WHISPER_EV_MEDIA says how they go. The engine's HTTP is http.c's.
 *
 * --script answers: {"ev":"sent_cmd","id","conversation","file","size"} for
 * send-file and view-once, {"ev":"ok","cmd":"download"|"open","conversation",
 * "id","sender","path"}, {"ev":"ok","cmd":"media",...,"attachment":{...}},
 * or {"ev":"error","cmd":...}; the event: {"ev":"media","conversation","from",
 * "own","id","state","done","total"} (with "code" and "error" when failed,
 * "path" when downloaded).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"

#define NAME_SHOWN 80 /* characters of a file name on a human line */

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

static char *rest(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  *p = s + strlen(s);
  return s;
}

static const char *state_name(int state) {
  switch (state) {
  case WHISPER_MEDIA_ENCRYPTING: return "encrypting";
  case WHISPER_MEDIA_UPLOADING: return "uploading";
  case WHISPER_MEDIA_SENT: return "sent";
  case WHISPER_MEDIA_REMOTE: return "remote";
  case WHISPER_MEDIA_DOWNLOADING: return "downloading";
  case WHISPER_MEDIA_DOWNLOADED: return "downloaded";
  case WHISPER_MEDIA_OPENED: return "opened";
  case WHISPER_MEDIA_FAILED: return "failed";
  default: return "unknown";
  }
}

/* The content type of a file name, by its extension. */
static const char *content_type_of(const char *name) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},  {"png", "image/png"},
      {"gif", "image/gif"},       {"webp", "image/webp"},  {"heic", "image/heic"},
      {"svg", "image/svg+xml"},   {"mp4", "video/mp4"},    {"mov", "video/quicktime"},
      {"webm", "video/webm"},     {"mkv", "video/x-matroska"}, {"mp3", "audio/mpeg"},
      {"m4a", "audio/mp4"},       {"aac", "audio/aac"},    {"ogg", "audio/ogg"},
      {"opus", "audio/ogg"},      {"wav", "audio/wav"},    {"flac", "audio/flac"},
      {"pdf", "application/pdf"}, {"txt", "text/plain"},   {"md", "text/markdown"},
      {"html", "text/html"},      {"csv", "text/csv"},     {"json", "application/json"},
      {"zip", "application/zip"}, {"gz", "application/gzip"}, {"tar", "application/x-tar"},
  };
  const char *dot = strrchr(name, '.');
  if (!dot || !dot[1]) return "application/octet-stream";
  char ext[8];
  size_t n = 0;
  for (const char *s = dot + 1; *s && n + 1 < sizeof ext; s++)
    ext[n++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
  ext[n] = '\0';
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(ext, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

/* "3.2 MiB", "512 bytes" */
static void size_str(char out[32], uint64_t n) {
  if (n < 1024)
    snprintf(out, 32, "%llu byte%s", (unsigned long long)n, n == 1 ? "" : "s");
  else if (n < (1ULL << 20))
    snprintf(out, 32, "%.1f KiB", (double)n / 1024);
  else if (n < (1ULL << 30))
    snprintf(out, 32, "%.1f MiB", (double)n / (1 << 20));
  else
    snprintf(out, 32, "%.2f GiB", (double)n / (1 << 30));
}

/* A path made absolute against the current directory (the engine keeps it
 * across runs, which may start elsewhere). NULL: no memory. */
static char *absolute(const char *path) {
  if (path[0] == '/') return strdup(path);
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return strdup(path);
  size_t n = strlen(cwd) + 1 + strlen(path) + 1;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", cwd, path);
  return p;
}

static void engine_error(chat *c, const char *cmd, int rc) {
  out_cmd_error(c, cmd, rc, "%s", whisper_ctx_last_error(c->ctx));
}

/* --- send-file, view-once --------------------------------------------------- */

/* The whole of a small file (a thumbnail), or NULL with why in err. */
static uint8_t *read_small(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
    return NULL;
  }
  uint8_t *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  fclose(f);
  if (!buf || n > max) {
    snprintf(err, errlen, "%.200s: %s", path, buf ? "larger than a thumbnail may be" : "out of memory");
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

/* Options between the path and the caption: --thumb FILE (the app's small
 * image, carried inline), --size WxH, --duration MS. 0, or -1 (said). */
static int media_options(chat *c, const char *cmd, char **args, whisper_media_meta_t *meta,
                         uint8_t **thumb) {
  for (;;) {
    char *s = *args;
    while (*s == ' ' || *s == '\t') s++;
    if (strncmp(s, "--", 2) != 0) return 0;
    char *opt = word(args), *val = word(args);
    unsigned a = 0, b = 0;
    char err[256], extra;
    if (!val) {
      out_cmd_error(c, cmd, 0, "%.40s needs a value", opt);
      return -1;
    }
    if (strcmp(opt, "--thumb") == 0) {
      size_t n = 0;
      free(*thumb);
      if (!(*thumb = read_small(val, WHISPER_MEDIA_THUMBNAIL_MAX, &n, err, sizeof err))) {
        out_cmd_error(c, cmd, WHISPER_EINVAL, "%s", err);
        return -1;
      }
      meta->thumbnail = *thumb;
      meta->thumbnail_len = n;
    } else if (strcmp(opt, "--size") == 0 && sscanf(val, "%ux%u%c", &a, &b, &extra) == 2) {
      meta->width = a;
      meta->height = b;
    } else if (strcmp(opt, "--duration") == 0 && sscanf(val, "%u%c", &a, &extra) == 1) {
      meta->duration_ms = a;
    } else {
      out_cmd_error(c, cmd, 0, "unknown option %.40s %.40s (--thumb FILE, --size WxH, --duration MS)",
                    opt, val);
      return -1;
    }
  }
}

static void send_file(chat *c, const char *cmd, char *args, uint32_t flags) {
  char *conv = word(&args);
  char *path = word(&args);
  whisper_media_meta_t meta = WHISPER_MEDIA_META_INIT;
  uint8_t *thumb = NULL;
  if (!conv || !path) {
    out_cmd_error(c, cmd, 0, "usage: %s <conversation> <path> [--thumb FILE] [--size WxH] "
                             "[--duration MS] [caption]", cmd);
    return;
  }
  if (media_options(c, cmd, &args, &meta, &thumb) != 0) {
    free(thumb);
    return;
  }
  char *caption = rest(&args);
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    out_cmd_error(c, cmd, WHISPER_ENOTFOUND, "%.200s: %s", path,
                  errno == ENOENT || errno == 0 ? "no such file" : strerror(errno));
    free(thumb);
    return;
  }
  char *full = absolute(path);
  if (!full) {
    out_cmd_error(c, cmd, WHISPER_ENOMEM, "out of memory");
    free(thumb);
    return;
  }
  const char *base = strrchr(full, '/');
  base = base ? base + 1 : full;
  meta.content_type = content_type_of(base);
  meta.file_name = base; /* (whisper-chat reads no image: --size and --thumb are the user's) */
  meta.caption = *caption ? caption : NULL;
  meta.flags = flags;
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = whisper_client_send_file(c->client, conv, full, &meta, now_ms(), id);
  if (rc != WHISPER_OK) {
    if (rc == WHISPER_ETOOBIG)
      out_cmd_error(c, cmd, rc, "%.200s is larger than %llu bytes", path,
                    (unsigned long long)c->cfg.media_max_size);
    else
      engine_error(c, cmd, rc);
    free(full);
    free(thumb);
    return;
  }
  free(thumb);
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "sent_cmd");
    jb_hex(&b, "id", id, sizeof id);
    jb_str(&b, "conversation", conv);
    jb_str(&b, "file", full);
    jb_u64(&b, "size", (uint64_t)st.st_size);
    jb_bool(&b, "view_once", (flags & WHISPER_MEDIA_VIEW_ONCE) != 0);
    jb_print(c, &b);
  } else {
    char hex[2 * WHISPER_CLIENT_ID_LEN + 1], size[32];
    hex_encode(hex, id, sizeof id);
    hex[SHORT_ID_HEX] = '\0';
    size_str(size, (uint64_t)st.st_size);
    hb_printf(&b, "  %s %s %s", status_ticks(c, WHISPER_STATUS_PENDING), hex,
              flags & WHISPER_MEDIA_VIEW_ONCE ? "👁 (view once) " : "📎 ");
    hb_text(&b, (const uint8_t *)base, strlen(base));
    hb_printf(&b, " (%s) to ", size);
    hb_text(&b, (const uint8_t *)conv, strlen(conv));
    hb_printf(&b, ": encrypted and uploaded first, then sent");
    hb_print(c, &b);
  }
  jb_free(&b);
  free(full);
}

static void cmd_send_file(chat *c, char *args) { send_file(c, "send-file", args, 0); }
static void cmd_view_once(chat *c, char *args) {
  send_file(c, "view-once", args, WHISPER_MEDIA_VIEW_ONCE);
}
static void cmd_voice_note(chat *c, char *args) {
  send_file(c, "voice-note", args, WHISPER_MEDIA_VOICE_NOTE);
}

/* --- download, open ------------------------------------------------------------ */

/* The downloads folder's path for a file named `name` (from the sender:
 * only its last part, no dot files), not taken yet: "name", "name-2.ext",
 * ... NULL: no memory, or no free name. */
static char *download_path(chat *c, const char *name, const uint8_t *id, size_t id_len) {
  char safe[WHISPER_MEDIA_NAME_MAX + 1];
  size_t n = 0;
  const char *slash = name ? strrchr(name, '/') : NULL;
  const char *s = slash ? slash + 1 : name ? name : "";
  while (*s == '.') s++;
  for (; *s && n + 1 < sizeof safe; s++) {
    unsigned char ch = (unsigned char)*s;
    safe[n++] = (ch < 0x20 || ch == 0x7f || ch == '\\') ? '_' : (char)ch;
  }
  safe[n] = '\0';
  if (n == 0) {
    char hex[2 * WHISPER_MESSAGE_ID_MAX + 1];
    hex_encode(hex, id, id_len < WHISPER_MESSAGE_ID_MAX ? id_len : WHISPER_MESSAGE_ID_MAX);
    snprintf(safe, sizeof safe, "attachment-%.16s", hex);
  }
  const char *dot = strrchr(safe, '.');
  size_t stem = dot && dot != safe ? (size_t)(dot - safe) : strlen(safe);
  size_t cap = strlen(c->downloads_dir) + 1 + strlen(safe) + 16;
  char *p = malloc(cap);
  if (!p) return NULL;
  for (int k = 1; k < 1000; k++) {
    struct stat st;
    if (k == 1)
      snprintf(p, cap, "%s/%s", c->downloads_dir, safe);
    else
      snprintf(p, cap, "%s/%.*s-%d%s", c->downloads_dir, (int)stem, safe, k, safe + stem);
    if (lstat(p, &st) != 0 && errno == ENOENT) return p;
  }
  free(p);
  return NULL;
}

static void get_file(chat *c, const char *cmd, char *args, int view_once) {
  char *conv = word(&args);
  char *ref = word(&args);
  char *path = word(&args);
  if (!conv || !ref || (view_once && !path) || word(&args)) {
    out_cmd_error(c, cmd, 0, view_once ? "usage: open <conversation> <message> <path>"
                                       : "usage: download <conversation> <message> [path]");
    return;
  }
  msgref m;
  char err[512];
  if (msgref_resolve(c, conv, ref, &m, err, sizeof err) != 0) {
    out_cmd_error(c, cmd, 0, "%s", err);
    return;
  }
  const char *sender = m.own ? NULL : m.sender;
  char *target = NULL;
  if (path) {
    target = absolute(path);
  } else {
    whisper_media_t *a = NULL;
    int rc = whisper_client_media_get(c->client, conv, m.id, m.id_len, sender, &a);
    if (rc != WHISPER_OK) {
      if (rc == WHISPER_ENOTFOUND)
        out_cmd_error(c, cmd, rc, "%.40s is not an attachment", ref);
      else
        engine_error(c, cmd, rc);
      return;
    }
    target = download_path(c, a->file_name, m.id, m.id_len);
    whisper_media_free(a);
  }
  if (!target) {
    out_cmd_error(c, cmd, WHISPER_ENOMEM, "no file name free for it in %s", c->downloads_dir);
    return;
  }
  int rc = view_once ? whisper_client_view_once_open(c->client, conv, m.id, m.id_len, sender, target,
                                                     now_ms())
                     : whisper_client_download(c->client, conv, m.id, m.id_len, sender, target,
                                               now_ms());
  if (rc != WHISPER_OK) {
    if (rc == WHISPER_ENOTFOUND)
      out_cmd_error(c, cmd, rc, "%.40s is not an attachment", ref);
    else if (rc == WHISPER_EDENIED)
      out_cmd_error(c, cmd, rc, view_once ? "%.40s is not a view-once attachment, or it was opened already"
                                          : "%.40s is view once: open it (open <conversation> <message> <path>)",
                    ref);
    else
      engine_error(c, cmd, rc);
    free(target);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", cmd);
    jb_str(&b, "conversation", conv);
    jb_hex(&b, "id", m.id, m.id_len);
    jb_str(&b, "sender", m.sender);
    jb_str(&b, "path", target);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  %s into ", view_once ? "opening (view once)" : "downloading");
    hb_text(&b, (const uint8_t *)target, strlen(target));
    hb_printf(&b, "%s", view_once ? ": look at it, then delete it; it is wiped here and on your other devices" : "");
    hb_print(c, &b);
  }
  jb_free(&b);
  free(target);
}

static void cmd_download(chat *c, char *args) { get_file(c, "download", args, 0); }
static void cmd_open(chat *c, char *args) { get_file(c, "open", args, 1); }

/* --- media: what this device holds ------------------------------------------- */

static void jb_media(jbuf *b, const whisper_media_t *a) {
  jb_open(b, "attachment", '{');
  jb_str(b, "name", a->file_name);
  jb_str(b, "type", a->content_type);
  jb_u64(b, "size", a->size);
  jb_str(b, "caption", a->caption);
  jb_str(b, "state", state_name(a->state));
  jb_u64(b, "done", a->done);
  jb_u64(b, "total", a->total);
  jb_bool(b, "view_once", (a->flags & WHISPER_MEDIA_VIEW_ONCE) != 0);
  jb_bool(b, "voice_note", (a->flags & WHISPER_MEDIA_VOICE_NOTE) != 0);
  if (a->width || a->height) {
    jb_u64(b, "width", a->width);
    jb_u64(b, "height", a->height);
  }
  if (a->duration_ms) jb_u64(b, "duration_ms", a->duration_ms);
  jb_u64(b, "thumbnail_len", a->thumbnail_len);
  jb_str(b, "path", a->path);
  if (a->state == WHISPER_MEDIA_FAILED) {
    jb_int(b, "code", a->error);
    jb_str(b, "error", a->error ? whisper_strerror(a->error) : NULL);
  }
  jb_close(b, '}');
}

static void cmd_media(chat *c, char *args) {
  char *conv = word(&args);
  char *ref = word(&args);
  if (!conv || !ref || word(&args)) {
    out_cmd_error(c, "media", 0, "usage: media <conversation> <message>");
    return;
  }
  msgref m;
  char err[512];
  if (msgref_resolve(c, conv, ref, &m, err, sizeof err) != 0) {
    out_cmd_error(c, "media", 0, "%s", err);
    return;
  }
  whisper_media_t *a = NULL;
  int rc = whisper_client_media_get(c->client, conv, m.id, m.id_len, m.own ? NULL : m.sender, &a);
  if (rc != WHISPER_OK) {
    if (rc == WHISPER_ENOTFOUND)
      out_cmd_error(c, "media", rc, "%.40s is not an attachment", ref);
    else
      engine_error(c, "media", rc);
    return;
  }
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "ok");
    jb_str(&b, "cmd", "media");
    jb_str(&b, "conversation", conv);
    jb_hex(&b, "id", m.id, m.id_len);
    jb_str(&b, "sender", m.sender);
    jb_media(&b, a);
    jb_print(c, &b);
  } else {
    hb_printf(&b, "  ");
    hb_attachment(c, &b, conv, m.id, m.id_len, m.own ? NULL : m.sender, NULL, 0);
    if (a->path && *a->path) {
      hb_printf(&b, "\n  file: ");
      hb_text(&b, (const uint8_t *)a->path, strlen(a->path));
    }
    hb_print(c, &b);
  }
  jb_free(&b);
  whisper_media_free(a);
}

/* --- how attachments show -------------------------------------------------------- */

void jb_attachment(chat *c, jbuf *b, const char *conversation, const uint8_t *id, size_t id_len,
                   const char *sender) {
  whisper_media_t *a = NULL;
  if (conversation && id &&
      whisper_client_media_get(c->client, conversation, id, id_len, sender, &a) == WHISPER_OK)
    jb_media(b, a);
  whisper_media_free(a);
}

/* The progress of a job, "12.0 of 20.0 MiB (60%)". */
static void hb_progress(jbuf *b, uint64_t done, uint64_t total) {
  char d[32], t[32];
  size_str(d, done);
  size_str(t, total);
  if (total)
    hb_printf(b, "%s of %s (%u%%)", d, t, (unsigned)(done * 100 / total));
  else
    hb_printf(b, "%s", d);
}

/* 📎 photo.jpg (3.0 MiB, image/jpeg) "the caption" [downloaded] */
void hb_attachment(chat *c, jbuf *b, const char *conversation, const uint8_t *id, size_t id_len,
                   const char *sender, const uint8_t *caption, size_t caption_len) {
  whisper_media_t *a = NULL;
  const char *dim = c->color ? "\033[2m" : "", *off = c->color ? "\033[0m" : "";
  if (!conversation || !id ||
      whisper_client_media_get(c->client, conversation, id, id_len, sender, &a) != WHISPER_OK) {
    hb_printf(b, "📎 [an attachment]");
    if (caption_len) {
      hb_printf(b, " ");
      hb_text(b, caption, caption_len);
    }
    return;
  }
  int view_once = (a->flags & WHISPER_MEDIA_VIEW_ONCE) != 0;
  char size[32];
  size_str(size, a->size);
  hb_printf(b, "%s ", view_once ? "👁" : a->flags & WHISPER_MEDIA_VOICE_NOTE ? "🎤" : "📎");
  if (view_once) hb_printf(b, "view once: ");
  size_t n = strlen(a->file_name);
  hb_text(b, (const uint8_t *)(*a->file_name ? a->file_name : "(no name)"),
          *a->file_name ? (n > NAME_SHOWN ? NAME_SHOWN : n) : 9);
  hb_printf(b, " (%s%s%s)", size, *a->content_type ? ", " : "", a->content_type);
  const char *cap = a->caption;
  if (*cap) {
    hb_printf(b, " \"");
    hb_text(b, (const uint8_t *)cap, strlen(cap));
    hb_printf(b, "\"");
  } else if (caption_len) {
    hb_printf(b, " \"");
    hb_text(b, caption, caption_len);
    hb_printf(b, "\"");
  }
  hb_printf(b, " %s[%s", dim, state_name(a->state));
  if (a->state == WHISPER_MEDIA_UPLOADING || a->state == WHISPER_MEDIA_DOWNLOADING) {
    hb_printf(b, " ");
    hb_progress(b, a->done, a->total);
  }
  if (a->state == WHISPER_MEDIA_FAILED && a->error) hb_printf(b, ": %s", whisper_strerror(a->error));
  if (a->state == WHISPER_MEDIA_REMOTE) hb_printf(b, view_once ? ": open it" : ": download it");
  hb_printf(b, "]%s", off);
  whisper_media_free(a);
}

int chat_media_event(chat *c, const whisper_client_event_t *ev) {
  if (ev->type == WHISPER_EV_MEDIA_DATA) {
    /* only for a download without a path, which whisper-chat never asks for */
    if (c->script) {
      jbuf b;
      jb_init(&b);
      jb_begin(&b, "media_data");
      jb_str(&b, "conversation", ev->conversation);
      jb_hex(&b, "id", ev->id, ev->id_len);
      jb_u64(&b, "offset", ev->done_bytes);
      jb_u64(&b, "len", ev->body_len);
      jb_print(c, &b);
      jb_free(&b);
    }
    return 1;
  }
  if (ev->type != WHISPER_EV_MEDIA) return 0;
  int own = ev->from == NULL || strcmp(ev->from, c->account) == 0;
  jbuf b;
  jb_init(&b);
  if (c->script) {
    jb_begin(&b, "media");
    jb_str(&b, "conversation", ev->conversation);
    jb_str(&b, "from", ev->from ? ev->from : c->account);
    jb_bool(&b, "own", own);
    jb_hex(&b, "id", ev->id, ev->id_len);
    jb_str(&b, "state", state_name(ev->status));
    jb_u64(&b, "done", ev->done_bytes);
    jb_u64(&b, "total", ev->total_bytes);
    if (ev->status == WHISPER_MEDIA_FAILED) {
      jb_int(&b, "code", ev->code);
      jb_str(&b, "error", ev->code ? whisper_strerror(ev->code) : NULL);
    }
    if (ev->status == WHISPER_MEDIA_DOWNLOADED && ev->conversation && ev->id) {
      whisper_media_t *a = NULL;
      if (whisper_client_media_get(c->client, ev->conversation, ev->id, ev->id_len, ev->from, &a) ==
          WHISPER_OK)
        jb_str(&b, "path", a->path);
      whisper_media_free(a);
    }
    jb_print(c, &b);
  } else {
    char hex[2 * WHISPER_MESSAGE_ID_MAX + 1] = "";
    if (ev->id && ev->id_len) {
      hex_encode(hex, ev->id, ev->id_len < WHISPER_MESSAGE_ID_MAX ? ev->id_len : WHISPER_MESSAGE_ID_MAX);
      hex[SHORT_ID_HEX] = '\0';
    }
    hb_printf(&b, "  %s %s ", ev->status <= WHISPER_MEDIA_SENT ? "⇪" : "⇩", hex);
    switch (ev->status) {
    case WHISPER_MEDIA_ENCRYPTING: hb_printf(&b, "encrypting "); hb_progress(&b, ev->done_bytes, ev->total_bytes); break;
    case WHISPER_MEDIA_UPLOADING: hb_printf(&b, "uploading "); hb_progress(&b, ev->done_bytes, ev->total_bytes); break;
    case WHISPER_MEDIA_SENT: hb_printf(&b, "uploaded: the message is sent"); break;
    case WHISPER_MEDIA_REMOTE: hb_printf(&b, "an attachment on the server: download it"); break;
    case WHISPER_MEDIA_DOWNLOADING: hb_printf(&b, "downloading "); hb_progress(&b, ev->done_bytes, ev->total_bytes); break;
    case WHISPER_MEDIA_DOWNLOADED: {
      whisper_media_t *a = NULL;
      hb_printf(&b, "downloaded and verified");
      if (ev->conversation && ev->id &&
          whisper_client_media_get(c->client, ev->conversation, ev->id, ev->id_len, ev->from, &a) == WHISPER_OK &&
          *a->path) {
        hb_printf(&b, ": ");
        hb_text(&b, (const uint8_t *)a->path, strlen(a->path));
      }
      whisper_media_free(a);
      break;
    }
    case WHISPER_MEDIA_OPENED: hb_printf(&b, "opened (view once): wiped on every device"); break;
    case WHISPER_MEDIA_FAILED:
      hb_printf(&b, "failed: %s", ev->code ? whisper_strerror(ev->code) : "?");
      if (!own) hb_printf(&b, " (download again to retry)");
      break;
    default: hb_printf(&b, "state %d", ev->status); break;
    }
    hb_print(c, &b);
  }
  jb_free(&b);
  return 1;
}

/* --- the folders ------------------------------------------------------------------- */

/* "<db without .db><suffix>" */
static char *beside_store(const chat *c, const char *suffix) {
  size_t n = strlen(c->db_path);
  if (n > 3 && strcmp(c->db_path + n - 3, ".db") == 0) n -= 3;
  char *p = malloc(n + strlen(suffix) + 1);
  if (!p) return NULL;
  memcpy(p, c->db_path, n);
  strcpy(p + n, suffix);
  char *full = absolute(p);
  free(p);
  return full;
}

static int make_dir(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    errno = ENOTDIR;
  }
  fprintf(stderr, "whisper-chat: cannot make the folder %s: %s\n", path, strerror(errno));
  return -1;
}

int media_dirs(chat *c) {
  if (!c->media_dir) c->media_dir = beside_store(c, "-media");
  else {
    char *full = absolute(c->media_dir);
    free(c->media_dir);
    c->media_dir = full;
  }
  if (!c->downloads_dir) c->downloads_dir = beside_store(c, "-downloads");
  if (!c->media_dir || !c->downloads_dir) {
    fprintf(stderr, "whisper-chat: out of memory\n");
    return -1;
  }
  if (make_dir(c->media_dir) != 0 || make_dir(c->downloads_dir) != 0) return -1;
  return 0;
}

const chat_cmd chat_media_cmds[] = {
    {"send-file", "send-file <conversation> <path> [--thumb FILE] [--size WxH] [--duration MS] [caption]",
     "send a file (encrypted, uploaded, then the message; resumes after a restart)", cmd_send_file},
    {"view-once", "view-once <conversation> <path> [options as send-file] [caption]",
     "send a file that can be opened once, then is wiped", cmd_view_once},
    {"voice-note", "voice-note <conversation> <path> [--duration MS]",
     "send an audio file as a voice note", cmd_voice_note},
    {"download", "download <conversation> <message> [path]",
     "download and verify an attachment (default: the downloads folder)", cmd_download},
    {"open", "open <conversation> <message> <path>", "open a view-once attachment (once) into path",
     cmd_open},
    {"media", "media <conversation> <message>", "an attachment: name, size, state, progress, file",
     cmd_media},
};

const size_t chat_media_n = sizeof chat_media_cmds / sizeof chat_media_cmds[0];

int chat_media_cmd(chat *c, const char *cmd, char *args) {
  for (size_t i = 0; i < chat_media_n; i++)
    if (strcmp(cmd, chat_media_cmds[i].name) == 0) {
      chat_media_cmds[i].run(c, args);
      return 1;
    }
  return 0;
}

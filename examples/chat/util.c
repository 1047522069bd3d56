/*
 * whisper-chat: time, hex and the store key file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void hex_encode(char *out, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static int nibble(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

long hex_decode_var(uint8_t *out, size_t max, const char *s) {
  size_t len = strlen(s);
  if (len % 2 != 0 || len / 2 > max) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return (long)(len / 2);
}

int hex_decode(uint8_t *out, size_t n, const char *s) {
  if (strlen(s) != 2 * n) return -1;
  return hex_decode_var(out, n, s) == (long)n ? 0 : -1;
}

void wipe(void *p, size_t n) {
  volatile uint8_t *v = p;
  while (n--) *v++ = 0;
}

static int read_full(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, buf + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    put += (size_t)r;
  }
  return 0;
}

int random_bytes(uint8_t *b, size_t n) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = read_full(fd, b, n);
  close(fd);
  return rc;
}

/* A new key file: 32 random bytes, mode 0600, created exclusively (two
 * processes starting at once cannot both write one). */
static int key_file_create(const char *path, uint8_t key[CHAT_KEY_LEN]) {
  if (random_bytes(key, CHAT_KEY_LEN) != 0) {
    fprintf(stderr, "whisper-chat: cannot read /dev/urandom: %s\n", strerror(errno));
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return 1;
  if (fd < 0) {
    fprintf(stderr, "whisper-chat: cannot create the key file %s: %s\n", path, strerror(errno));
    wipe(key, CHAT_KEY_LEN);
    return -1;
  }
  if (write_full(fd, key, CHAT_KEY_LEN) != 0 || fsync(fd) != 0) {
    fprintf(stderr, "whisper-chat: cannot write the key file %s: %s\n", path, strerror(errno));
    close(fd);
    unlink(path);
    return -1;
  }
  close(fd);
  return 0;
}

int key_file_load(const char *path, uint8_t key[CHAT_KEY_LEN]) {
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      int rc = key_file_create(path, key);
      if (rc == 0) return 0;
      if (rc < 0) {
        wipe(key, CHAT_KEY_LEN);
        return -1;
      }
      continue; /* made by someone else meanwhile: read it */
    }
    if (fd < 0) {
      fprintf(stderr, "whisper-chat: cannot open the key file %s: %s\n", path, strerror(errno));
      return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != CHAT_KEY_LEN) {
      fprintf(stderr, "whisper-chat: the key file %s is not a %d-byte file\n", path, CHAT_KEY_LEN);
      close(fd);
      return -1;
    }
    if (st.st_mode & 077)
      fprintf(stderr, "whisper-chat: warning: the key file %s is readable by others (mode %03o)\n",
              path, (unsigned)(st.st_mode & 0777));
    int rc = read_full(fd, key, CHAT_KEY_LEN);
    close(fd);
    if (rc != 0) {
      fprintf(stderr, "whisper-chat: cannot read the key file %s\n", path);
      wipe(key, CHAT_KEY_LEN);
      return -1;
    }
    return 0;
  }
  fprintf(stderr, "whisper-chat: cannot open the key file %s\n", path);
  return -1;
}

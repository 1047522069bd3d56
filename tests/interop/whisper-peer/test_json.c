/*
 * Unit tests for the peer's JSON reader/writer and base64 (json.c).
 * Prints one line per failure and a final "N passed, N failed"; exits
 * nonzero if anything failed.
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (cond) {                                                        \
      passed++;                                                        \
    } else {                                                           \
      failed++;                                                        \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

static json_value *parse(const char *s) {
  json_value *v = NULL;
  char err[128];
  if (json_parse(s, strlen(s), &v, err, sizeof err) != 0) return NULL;
  return v;
}

static int parses(const char *s) {
  json_value *v = parse(s);
  int ok = v != NULL;
  json_free(v);
  return ok;
}

static void expect_valid(const char *s, int line) {
  if (parses(s)) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL line %d: should parse: %s\n", line, s);
  }
}

static void expect_invalid_n(const char *s, size_t len, int line) {
  json_value *v = NULL;
  char err[128];
  int r = json_parse(s, len, &v, err, sizeof err);
  if (r != 0 && v == NULL && err[0] != '\0') {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL line %d: should be rejected: %.*s\n", line, (int)len, s);
    json_free(v);
  }
}

#define VALID(s) expect_valid(s, __LINE__)
#define INVALID(s) expect_invalid_n(s, strlen(s), __LINE__)
#define INVALID_N(s, n) expect_invalid_n(s, n, __LINE__)

/* Parses a one-string document and compares the decoded bytes. */
static void expect_string(const char *doc, const char *want, size_t want_len, int line) {
  json_value *v = parse(doc);
  size_t n = 0;
  const char *s = json_str(v, &n);
  if (s != NULL && n == want_len && memcmp(s, want, n) == 0 && s[n] == '\0') {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL line %d: string %s decoded wrongly\n", line, doc);
  }
  json_free(v);
}
#define STRING(doc, want) expect_string(doc, want, sizeof(want) - 1, __LINE__)

static void test_literals(void) {
  VALID("null");
  VALID("true");
  VALID("false");
  VALID("0");
  VALID("-0");
  VALID("123");
  VALID("-1.5e+10");
  VALID("1E5");
  VALID("0.25");
  VALID("\"\"");
  VALID("[]");
  VALID("{}");
  VALID(" \t\r\n{ \"a\" : [ 1 , 2 , { } ] } \r\n");
  VALID("{\"op\":\"init\",\"name\":\"alice\",\"device_id\":1,\"registration_id\":1234}");

  INVALID("");
  INVALID("   ");
  INVALID("nul");
  INVALID("nulll");
  INVALID("True");
  INVALID("01");
  INVALID("-");
  INVALID("+1");
  INVALID("1.");
  INVALID(".5");
  INVALID("1e");
  INVALID("1e+");
  INVALID("0x10");
  INVALID("NaN");
  INVALID("Infinity");
  INVALID("[1,]");
  INVALID("[,1]");
  INVALID("[1 2]");
  INVALID("{\"a\":1,}");
  INVALID("{\"a\" 1}");
  INVALID("{a:1}");
  INVALID("{'a':1}");
  INVALID("{\"a\":1");
  INVALID("[");
  INVALID("]");
  INVALID("{\"a\":1}}");
  INVALID("{} {}");
  INVALID("1 2");
  INVALID("{\"a\":1,\"a\":2}"); /* duplicate keys */
  INVALID("/* c */ 1");
  INVALID("\"abc");
  INVALID("\"a\nb\"");  /* raw control char */
  INVALID("\"a\tb\"");
  INVALID("\"\\x\"");
  INVALID("\"\\u12\"");
  INVALID("\"\\u12g4\"");
  INVALID("\"\\");
  INVALID_N("\"a\0b\"", 5); /* raw NUL */
  INVALID_N("1\0", 2);
  INVALID("\xEF\xBB\xBF{}"); /* BOM */
}

static void test_strings(void) {
  STRING("\"hello\"", "hello");
  STRING("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
  STRING("\"\\u0041\\u00e9\\u20AC\"", "A\xC3\xA9\xE2\x82\xAC");
  STRING("\"\\u0000x\"", "\0x");
  STRING("\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80"); /* U+1F600 */
  STRING("\"\\uDBFF\\uDFFF\"", "\xF4\x8F\xBF\xBF"); /* U+10FFFF */
  STRING("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  STRING("\"\x7F\"", "\x7F");

  INVALID("\"\\ud83d\"");         /* lone high surrogate */
  INVALID("\"\\ud83dx\"");
  INVALID("\"\\ud83d\\u0041\"");  /* high + non-low */
  INVALID("\"\\ude00\"");         /* lone low surrogate */
  INVALID("\"\\ude00\\ud83d\"");  /* reversed pair */
  INVALID("\"\xC3\"");            /* truncated UTF-8 */
  INVALID("\"\xC0\x80\"");        /* overlong NUL */
  INVALID("\"\xE0\x80\xAF\"");    /* overlong */
  INVALID("\"\xED\xA0\x80\"");    /* encoded surrogate */
  INVALID("\"\xF4\x90\x80\x80\""); /* > U+10FFFF */
  INVALID("\"\xFF\"");
  INVALID("\"\x80\"");

  /* A long string crosses buffer growth. */
  size_t n = 100000;
  char *doc = malloc(n + 3);
  CHECK(doc != NULL);
  if (doc != NULL) {
    doc[0] = '"';
    for (size_t i = 0; i < n; i++) doc[i + 1] = (char)('a' + i % 26);
    doc[n + 1] = '"';
    doc[n + 2] = '\0';
    json_value *v = parse(doc);
    size_t len = 0;
    const char *s = json_str(v, &len);
    CHECK(s != NULL && len == n && s[0] == 'a' && s[n - 1] == (char)('a' + (n - 1) % 26));
    json_free(v);
    free(doc);
  }
}

static void test_depth(void) {
  char buf[512];
  /* 64 nested arrays: accepted; 65: rejected. */
  for (int depth = 63; depth <= 66; depth++) {
    size_t k = 0;
    for (int i = 0; i < depth; i++) buf[k++] = '[';
    for (int i = 0; i < depth; i++) buf[k++] = ']';
    buf[k] = '\0';
    if (depth <= JSON_MAX_DEPTH) VALID(buf);
    else INVALID(buf);
  }
  /* Objects count too. */
  size_t k = 0;
  for (int i = 0; i < 65; i++) {
    memcpy(buf + k, "{\"a\":", 5);
    k += 5;
  }
  buf[k++] = '1';
  for (int i = 0; i < 65; i++) buf[k++] = '}';
  buf[k] = '\0';
  INVALID(buf);

  /* Very deep input must not overflow the stack. */
  size_t big = 1000000;
  char *deep = malloc(big);
  CHECK(deep != NULL);
  if (deep != NULL) {
    memset(deep, '[', big);
    INVALID_N(deep, big);
    free(deep);
  }
}

static void test_accessors(void) {
  json_value *v = parse(
      "{\"s\":\"x\\u0000y\",\"n\":4294967295,\"big\":4294967296,\"neg\":-1,\"z\":0,"
      "\"negz\":-0,\"f\":1.0,\"e\":1e3,\"t\":true,\"fa\":false,\"nu\":null,\"arr\":[1],"
      "\"obj\":{\"k\":\"v\"},\"lz\":10}");
  CHECK(v != NULL);
  if (v == NULL) return;
  uint32_t u = 7;
  size_t len = 0;
  int b = -1;
  CHECK(json_str(json_get(v, "s"), &len) != NULL && len == 3);
  CHECK(json_str(json_get(v, "n"), NULL) == NULL);
  CHECK(json_u32(json_get(v, "n"), &u) == 0 && u == 4294967295u);
  CHECK(json_u32(json_get(v, "big"), &u) == -1);
  CHECK(json_u32(json_get(v, "neg"), &u) == -1);
  CHECK(json_u32(json_get(v, "z"), &u) == 0 && u == 0);
  CHECK(json_u32(json_get(v, "negz"), &u) == -1);
  CHECK(json_u32(json_get(v, "f"), &u) == -1);
  CHECK(json_u32(json_get(v, "e"), &u) == -1);
  CHECK(json_u32(json_get(v, "lz"), &u) == 0 && u == 10);
  CHECK(json_u32(json_get(v, "s"), &u) == -1);
  CHECK(json_u32(json_get(v, "missing"), &u) == -1);
  uint64_t w = 7;
  CHECK(json_u53(json_get(v, "big"), &w) == 0 && w == 4294967296u);
  CHECK(json_u53(json_get(v, "z"), &w) == 0 && w == 0);
  CHECK(json_u53(json_get(v, "neg"), &w) == -1);
  CHECK(json_u53(json_get(v, "f"), &w) == -1);
  CHECK(json_u53(json_get(v, "e"), &w) == -1);
  CHECK(json_u53(json_get(v, "s"), &w) == -1);
  CHECK(json_bool(json_get(v, "t"), &b) == 0 && b == 1);
  CHECK(json_bool(json_get(v, "fa"), &b) == 0 && b == 0);
  CHECK(json_bool(json_get(v, "nu"), &b) == -1);
  CHECK(json_is_null(json_get(v, "nu")));
  CHECK(!json_is_null(json_get(v, "fa")));
  CHECK(!json_is_null(json_get(v, "missing")));
  CHECK(json_get(v, "arr") != NULL && json_get(v, "arr")->type == JSON_ARRAY &&
        json_get(v, "arr")->count == 1);
  CHECK(json_get(json_get(v, "arr"), "x") == NULL);
  CHECK(json_str(json_get(json_get(v, "obj"), "k"), NULL) != NULL &&
        strcmp(json_str(json_get(json_get(v, "obj"), "k"), NULL), "v") == 0);
  CHECK(json_get(NULL, "x") == NULL);
  CHECK(json_get(v, "S") == NULL); /* case-sensitive */
  json_free(v);

  /* A key with an embedded NUL does not match the C-string key. */
  v = parse("{\"op\\u0000x\":1}");
  CHECK(v != NULL && json_get(v, "op") == NULL);
  json_free(v);

  /* Numbers with a long digit run are range-checked without overflow. */
  v = parse("99999999999999999999999999999999");
  CHECK(v != NULL && json_u32(v, &u) == -1);
  json_free(v);
  w = 0;
  v = parse("9007199254740991");
  CHECK(v != NULL && json_u53(v, &w) == 0 && w == 9007199254740991ULL);
  json_free(v);
  v = parse("9007199254740992");
  CHECK(v != NULL && json_u53(v, &w) == -1);
  json_free(v);
  v = parse("18446744073709551616");
  CHECK(v != NULL && json_u53(v, &w) == -1);
  json_free(v);
  json_free(NULL);
}

static void test_writer(void) {
  json_out o;
  json_out_init(&o);
  json_out_begin_object(&o);
  json_out_key(&o, "ok");
  json_out_bool(&o, 1);
  json_out_key(&o, "n");
  json_out_u32(&o, 4294967295u);
  json_out_key(&o, "t");
  json_out_u64(&o, 9007199254740991ULL);
  json_out_key(&o, "s");
  json_out_string(&o, "a\"b\\c\n\x01\x1f\x7f\0z", 11);
  json_out_key(&o, "u");
  json_out_cstring(&o, "\xC3\xA9\xFF\xC3");
  json_out_key(&o, "arr");
  json_out_begin_array(&o);
  json_out_null(&o);
  json_out_bool(&o, 0);
  json_out_begin_object(&o);
  json_out_end_object(&o);
  json_out_begin_array(&o);
  json_out_end_array(&o);
  json_out_end_array(&o);
  json_out_key(&o, "b");
  json_out_b64(&o, (const uint8_t *)"hello", 5);
  json_out_key(&o, "e");
  json_out_b64(&o, NULL, 0);
  json_out_end_object(&o);
  CHECK(!o.failed && o.depth == 0);
  const char *want =
      "{\"ok\":true,\"n\":4294967295,\"t\":9007199254740991,\"s\":\"a\\\"b\\\\c\\n\\u0001\\u001f\x7f\\u0000z\","
      "\"u\":\"\xC3\xA9\\ufffd\\ufffd\",\"arr\":[null,false,{},[]],\"b\":\"aGVsbG8=\","
      "\"e\":\"\"}";
  CHECK(o.data != NULL && strcmp(o.data, want) == 0);
  if (o.data != NULL && strcmp(o.data, want) != 0) fprintf(stderr, "got:  %s\n", o.data);

  /* The output parses back to the same values. */
  json_value *v = NULL;
  CHECK(o.data != NULL && json_parse(o.data, o.len, &v, NULL, 0) == 0);
  size_t len = 0;
  const char *s = json_str(json_get(v, "s"), &len);
  CHECK(s != NULL && len == 11 && memcmp(s, "a\"b\\c\n\x01\x1f\x7f\0z", 11) == 0);
  json_free(v);

  /* Every byte string round-trips through escape + parse. */
  char all[256];
  for (int i = 0; i < 128; i++) all[i] = (char)i;
  json_out_reset(&o);
  json_out_string(&o, all, 128);
  v = NULL;
  CHECK(!o.failed && json_parse(o.data, o.len, &v, NULL, 0) == 0);
  s = json_str(v, &len);
  CHECK(s != NULL && len == 128 && memcmp(s, all, 128) == 0);
  json_free(v);

  /* Misuse is caught, not written. */
  json_out_reset(&o);
  json_out_begin_object(&o);
  json_out_u32(&o, 1); /* value without a key */
  CHECK(o.failed);
  json_out_reset(&o);
  json_out_key(&o, "k"); /* key outside an object */
  CHECK(o.failed);
  json_out_reset(&o);
  json_out_begin_array(&o);
  json_out_end_object(&o);
  CHECK(o.failed);
  json_out_reset(&o);
  for (int i = 0; i < JSON_MAX_DEPTH + 1; i++) json_out_begin_array(&o);
  CHECK(o.failed);
  json_out_reset(&o);
  json_out_u32(&o, 0);
  CHECK(!o.failed && strcmp(o.data, "0") == 0);
  json_out_free(&o);
}

static void expect_b64(const char *in, const char *want, size_t want_len, int line) {
  uint8_t *out = NULL;
  size_t n = 99;
  int r = b64_decode(in, strlen(in), &out, &n);
  if (r == 0 && out != NULL && n == want_len && memcmp(out, want, n) == 0) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL line %d: base64 \"%s\" should decode\n", line, in);
  }
  b64_free(out, n);
}

static void expect_b64_bad(const char *in, size_t len, int line) {
  uint8_t *out = (uint8_t *)1;
  size_t n = 99;
  int r = b64_decode(in, len, &out, &n);
  if (r != 0 && out == NULL && n == 0) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL line %d: base64 \"%.*s\" should be rejected\n", line, (int)len, in);
    if (r == 0) b64_free(out, n);
  }
}
#define B64(in, want) expect_b64(in, want, sizeof(want) - 1, __LINE__)
#define B64_BAD(in) expect_b64_bad(in, strlen(in), __LINE__)

static void test_base64(void) {
  B64("", "");
  B64("Zg==", "f");
  B64("Zm8=", "fo");
  B64("Zm9v", "foo");
  B64("Zm9vYg==", "foob");
  B64("Zm9vYmE=", "fooba");
  B64("Zm9vYmFy", "foobar");
  B64("+/+/", "\xfb\xff\xbf");
  B64("AAAA", "\0\0\0");

  B64_BAD("Zg");       /* no padding */
  B64_BAD("Zg=");      /* wrong length */
  B64_BAD("Zg===");
  B64_BAD("Zh==");     /* non-zero pad bits */
  B64_BAD("Zm9=");     /* non-zero pad bits */
  B64_BAD("Zm8=Zm8="); /* padding in the middle */
  B64_BAD("Z===");
  B64_BAD("====");
  B64_BAD("Zm=v");
  B64_BAD("Zm9v\n");
  B64_BAD(" Zm9v");
  B64_BAD("Zm 9v");
  B64_BAD("Zm9-");     /* URL-safe alphabet */
  B64_BAD("Zm9_");
  B64_BAD("Zm9v====");
  B64_BAD("Z\xC3\xA9v");
  expect_b64_bad("Zm\0v", 4, __LINE__);

  /* Round trips for every length and byte value. */
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
  int all_ok = 1;
  for (size_t len = 0; len <= sizeof data; len++) {
    char enc[420];
    size_t el = b64_encoded_len(len);
    b64_encode(enc, data, len);
    if (strlen(enc) != el || el % 4 != 0) all_ok = 0;
    uint8_t *out = NULL;
    size_t n = 0;
    if (b64_decode(enc, el, &out, &n) != 0 || n != len || (len && memcmp(out, data, len))) {
      all_ok = 0;
    }
    b64_free(out, n);
  }
  CHECK(all_ok);

  /* Exhaustive: for a 4-char group every decodable string re-encodes to
   * itself (canonical), checked over the last-group shapes. */
  const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int canon_ok = 1;
  for (int a = 0; a < 64; a++) {
    for (int c = 0; c < 64; c++) {
      char g[5] = {'Q', alpha[a], alpha[c], '=', '\0'};
      uint8_t *out = NULL;
      size_t n = 0;
      if (b64_decode(g, 4, &out, &n) == 0) {
        char re[8];
        b64_encode(re, out, n);
        if (strcmp(re, g) != 0) canon_ok = 0;
        b64_free(out, n);
      } else if ((c & 3) == 0) {
        canon_ok = 0; /* zero pad bits must be accepted */
      }
    }
  }
  CHECK(canon_ok);
}

int main(void) {
  test_literals();
  test_strings();
  test_depth();
  test_accessors();
  test_writer();
  test_base64();
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

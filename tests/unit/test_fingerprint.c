/* Safety numbers against libsignal's (tests/vectors/fingerprint.json and
 * the wire sheet's vector), and the comparison of scanned codes. */
#include "test.h"

static void check_case(const char *lid_hex, const char *rid_hex, const char *lkey_hex,
                       const char *rkey_hex, const char *display, const char *scan_local_hex,
                       const char *scan_remote_hex) {
  size_t ll, rl, lkl, rkl, sl, srl;
  uint8_t *lid = unhex(lid_hex, &ll), *rid = unhex(rid_hex, &rl);
  uint8_t *lk = unhex(lkey_hex, &lkl), *rk = unhex(rkey_hex, &rkl);
  uint8_t *want_l = unhex(scan_local_hex, &sl);
  char digits[WHISPER_FINGERPRINT_DISPLAY_LEN], digits2[WHISPER_FINGERPRINT_DISPLAY_LEN];
  whisper_buf *scan = NULL, *scan2 = NULL;
  CHECK_RC(whisper_fingerprint(5200, lid, ll, lk, lkl, rid, rl, rk, rkl, digits, &scan), WHISPER_OK);
  CHECK(strcmp(digits, display) == 0);
  CHECK(scan && scan->len == sl && memcmp(scan->data, want_l, sl) == 0);
  /* the other side sees the same digits and the mirrored code */
  CHECK_RC(whisper_fingerprint(5200, rid, rl, rk, rkl, lid, ll, lk, lkl, digits2, &scan2), WHISPER_OK);
  CHECK(strcmp(digits2, display) == 0);
  if (scan_remote_hex) {
    uint8_t *want_r = unhex(scan_remote_hex, &srl);
    CHECK(scan2 && scan2->len == srl && memcmp(scan2->data, want_r, srl) == 0);
    free(want_r);
  }
  int match = -1;
  CHECK_RC(whisper_fingerprint_compare(scan->data, scan->len, scan2->data, scan2->len, &match),
           WHISPER_OK);
  CHECK(match == 1);
  /* our own code scanned back is not a match (halves not swapped) */
  CHECK_RC(whisper_fingerprint_compare(scan->data, scan->len, scan->data, scan->len, &match),
           WHISPER_OK);
  CHECK(match == 0);
  whisper_buf_free(scan);
  whisper_buf_free(scan2);
  free(lid), free(rid), free(lk), free(rk), free(want_l);
}

int main(void) {
  json_value *v = load_vector("fingerprint.json");
  const json_value *cases = json_get(v, "cases");
  CHECK(cases && cases->count == 5);
  for (size_t i = 0; cases && i < cases->count; i++) {
    const json_value *c = cases->items[i];
    CHECK(ju32(c, "iterations") == 5200 && ju32(c, "version") == 2);
    check_case(jstr(c, "local_identifier_hex"), jstr(c, "remote_identifier_hex"),
               jstr(json_get(c, "local_identity_key"), "public_hex"),
               jstr(json_get(c, "remote_identity_key"), "public_hex"), jstr(c, "displayable"),
               jstr(c, "scannable_local_hex"), jstr(c, "scannable_remote_hex"));
  }
  json_free(v);
  /* libsignal's own test vector, from the wire sheet */
  check_case("2b3134313532323232323232", "2b3134313533333333333333",
             "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868",
             "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b",
             "300354477692869396892869876765458257569162576843440918079131",
             "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20"
             "d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
             NULL);

  /* refusals */
  uint8_t key[33] = {5, 1, 2, 3}, bad[33] = {6};
  char d[WHISPER_FINGERPRINT_DISPLAY_LEN];
  whisper_buf *s1, *s2;
  CHECK_RC(whisper_fingerprint(5200, NULL, 0, bad, 33, NULL, 0, key, 33, d, NULL), WHISPER_EINVALIDKEY);
  CHECK_RC(whisper_fingerprint(5200, NULL, 0, key, 32, NULL, 0, key, 33, d, NULL), WHISPER_EINVALIDKEY);
  CHECK_RC(whisper_fingerprint(0, NULL, 0, key, 33, NULL, 0, key, 33, d, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_fingerprint(5200, (const uint8_t *)"a", 1, key, 33, NULL, 0, key, 33, d, &s1), WHISPER_OK);
  CHECK_RC(whisper_fingerprint(5200, NULL, 0, key, 33, (const uint8_t *)"a", 1, key, 33, d, &s2), WHISPER_OK);
  int match = -1;
  s2->data[1] = 3; /* version 3 */
  CHECK_RC(whisper_fingerprint_compare(s1->data, s1->len, s2->data, s2->len, &match), WHISPER_EVERSION);
  CHECK_RC(whisper_fingerprint_compare(s1->data, s1->len, s2->data, 10, &match), WHISPER_EINVALIDMSG);
  CHECK_RC(whisper_fingerprint_compare(s1->data, s1->len, NULL, 0, &match), WHISPER_EINVALIDMSG);
  CHECK(match == 0);
  CHECK_RC(whisper_fingerprint_compare(s1->data, s1->len, s2->data, s2->len, NULL), WHISPER_EINVAL);
  whisper_buf_free(s1);
  whisper_buf_free(s2);
  return test_done();
}

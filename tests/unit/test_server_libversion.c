/* libwhisper-server reads the store handles libwhisper makes, whose layout
 * is internal: whisper_server_new() refuses a libwhisper of another
 * version (WHISPER_EVERSION). Linked against the two shared libraries;
 * ctest runs it as is ("ok") and with fake_version.so preloaded, which
 * makes whisper_version() say another version ("eversion"). */
#include <stdio.h>
#include <string.h>
#include <whisper/server.h>
#include <whisper/whisper.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int want = strcmp(argv[1], "eversion") == 0 ? WHISPER_EVERSION : WHISPER_OK;
  whisper_store *store;
  whisper_server *srv = NULL;
  if (whisper_store_memory_new(&store) != WHISPER_OK) return 1;
  int rc = whisper_server_new(&srv, store, NULL);
  int ok = rc == want && (rc == WHISPER_OK) == (srv != NULL);
  printf("whisper_server_new: %s (%d), want %d: %s\n", whisper_strerror(rc), rc, want,
         ok ? "ok" : "FAILED");
  whisper_server_free(srv);
  whisper_store_free(store);
  return ok ? 0 : 1;
}

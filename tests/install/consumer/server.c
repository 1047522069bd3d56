/* A program built against the *installed* libwhisper-server: a server over
 * a memory store greets a connection with a Challenge, answers three
 * frames that do not parse with Error frames and then closes it. */
#include <stdio.h>
#include <whisper/server.h>
#include <whisper/whisper.h>

int main(void) {
  whisper_store *store;
  whisper_server *srv;
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
  const uint64_t now = 1700000000000ULL;
  int sends = 0, closes = 0, challenge = 0;
  if (whisper_store_memory_new(&store) != WHISPER_OK) return 1;
  if (whisper_server_new(&srv, store, NULL) != WHISPER_OK) return 1;
  if (whisper_server_connected(srv, 1, now) != WHISPER_OK) return 1;
  if (whisper_server_take_output(srv, &o) == 1 && o.action == WHISPER_SERVER_SEND && o.conn == 1 &&
      o.frame_len > 32)
    challenge = 1;
  for (int i = 0; i < 3; i++) {
    if (whisper_server_receive(srv, 1, junk, sizeof junk, now) != WHISPER_OK) return 1;
    while (whisper_server_take_output(srv, &o) == 1) {
      if (o.action == WHISPER_SERVER_SEND) sends++;
      if (o.action == WHISPER_SERVER_DISCONNECT) closes++;
    }
  }
  int ok = challenge && sends == 3 && closes == 1;
  printf("consumer_server: libwhisper-server with libwhisper %u: %s\n", whisper_version(),
         ok ? "ok" : "FAILED");
  whisper_server_free(srv);
  whisper_store_free(store);
  return ok ? 0 : 1;
}

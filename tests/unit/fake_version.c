/* Preloaded by the server_libversion_mismatch test: a libwhisper that says
 * it is another version. */
unsigned whisper_version(void);
unsigned whisper_version(void) { return 9999; }

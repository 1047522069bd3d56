/* The server's size functions (server.h): each returns its macro. */
#include "whisper/server.h"
#include "whisper/client.h"
#include "server/server_internal.h"

/* The limits the server checks (wsrv_name_ok, wsrv_device_ok) are the ones
 * client.h and server.h state. */
_Static_assert(WSRV_NAME_MAX == WHISPER_ACCOUNT_NAME_MAX, "WSRV_NAME_MAX is not WHISPER_ACCOUNT_NAME_MAX");

size_t whisper_server_reports_max(void) { return WHISPER_SERVER_REPORTS_MAX; }
uint64_t whisper_server_blob_max_size(void) { return WHISPER_SERVER_BLOB_MAX_SIZE; }
size_t whisper_server_source_max(void) { return WHISPER_SERVER_SOURCE_MAX; }
size_t whisper_server_relay_max(void) { return WHISPER_SERVER_RELAY_MAX; }
size_t whisper_server_upload_token_max(void) { return WHISPER_SERVER_UPLOAD_TOKEN_MAX; }

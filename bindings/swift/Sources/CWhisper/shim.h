/* The module's one header: libwhisper's umbrella header, found on the
 * include path (pkg-config's Cflags, or an XCFramework's Headers). */
#ifndef CWHISPER_SHIM_H
#define CWHISPER_SHIM_H
#include <whisper/whisper.h>
#endif

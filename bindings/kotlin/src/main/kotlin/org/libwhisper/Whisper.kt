// libwhisper for Kotlin: errors, version, and the conventions of the binding.
//
//  - Every class that holds a native handle is AutoCloseable: close it (or
//    use `use {}`); a closed object throws IllegalStateException.
//  - Bytes go in and out as ByteArray. Keys, plaintexts and message bodies
//    are never turned into a String by the binding: decode a body yourself
//    (`body.decodeToString()`) if and when the app wants text. Names,
//    conversations and paths are Strings (identifiers, not secrets).
//  - A failure throws WhisperException with the library's code
//    (WhisperException.code, one of the ErrorCode constants) and its
//    sentence (never secret).
//  - Threads: an object and everything made from it are used from one
//    thread at a time (core.h).
package org.libwhisper

/** A libwhisper failure: `code` is the negative WHISPER_E* code. */
class WhisperException(val code: Int, message: String) : Exception(message) {
    /** The code's name ("EINVAL", "EUNTRUSTED", ...). */
    val codeName: String get() = ErrorCode.name(code)
    override fun toString(): String = "WhisperException($codeName: $message)"
}

/** The error codes of core.h. */
object ErrorCode {
    const val EINVAL = -1
    const val ENOMEM = -80
    const val EINVALIDMSG = -20
    const val EDUPLICATE = -61
    const val EINVALIDSIG = -21
    const val EINVALIDKEY = -2
    const val ENOSESSION = -60
    const val EUNTRUSTED = -40
    const val ETOOFAR = -22
    const val ENOTFOUND = -62
    const val ESTORE = -81
    const val ECORRUPT = -100
    const val ERANDOM = -83
    const val ESTATE = -63
    const val EINTERNAL = -101
    const val EVERSION = -23
    const val EKEY = -24
    const val EBUSY = -82
    const val EFORGED = -41
    const val EROLLEDBACK = -64
    const val EDENIED = -42
    const val EBLOCKED = -43
    const val ETRUNCATED = -25
    const val EINTEGRITY = -26
    const val ESIZE = -27
    const val ETOOBIG = -3

    private val names = mapOf(
        EINVAL to "EINVAL", ENOMEM to "ENOMEM", EINVALIDMSG to "EINVALIDMSG", EDUPLICATE to "EDUPLICATE",
        EINVALIDSIG to "EINVALIDSIG", EINVALIDKEY to "EINVALIDKEY", ENOSESSION to "ENOSESSION",
        EUNTRUSTED to "EUNTRUSTED", ETOOFAR to "ETOOFAR", ENOTFOUND to "ENOTFOUND", ESTORE to "ESTORE",
        ECORRUPT to "ECORRUPT", ERANDOM to "ERANDOM", ESTATE to "ESTATE", EINTERNAL to "EINTERNAL",
        EVERSION to "EVERSION", EKEY to "EKEY", EBUSY to "EBUSY", EFORGED to "EFORGED",
        EROLLEDBACK to "EROLLEDBACK", EDENIED to "EDENIED", EBLOCKED to "EBLOCKED",
        ETRUNCATED to "ETRUNCATED", EINTEGRITY to "EINTEGRITY", ESIZE to "ESIZE", ETOOBIG to "ETOOBIG")

    fun name(code: Int): String = names[code] ?: "E$code"
}

/** The library itself. */
object Whisper {
    /** whisper_version(): major * 10000 + minor * 100 + patch. */
    val version: Int get() = NativeCore.version()

    /** A short English description of an error code. */
    fun strerror(code: Int): String = NativeCore.strerror(code)

    /** Native handles alive (contexts, stores, engines, pages, streams): for
     *  leak checks in tests. */
    val liveHandles: Long get() = NativeCore.liveHandles()

    /** Bytes in use in the C heap (glibc), -1 where unknown: for tests. */
    val nativeHeapInUse: Long get() = NativeCore.mallocInUse()

    /** WHISPER_ALL_DEVICES (UINT32_MAX) as a Kotlin Int. */
    const val ALL_DEVICES: Int = -1
}

/** Wipes a ByteArray (for the app's own copies of secrets). */
fun ByteArray.wipe() = fill(0)

internal fun String.utf8(): ByteArray = encodeToByteArray()
internal fun String?.utf8OrNull(): ByteArray? = this?.encodeToByteArray()
internal fun ByteArray?.str(): String? = this?.decodeToString()
internal fun List<String>.utf8Array(): Array<ByteArray> = Array(size) { this[it].utf8() }

/** A native handle with an owner's close(); the base of every AutoCloseable here. */
abstract class NativeObject internal constructor(handle: Long) : AutoCloseable {
    private var h: Long = handle

    internal val handle: Long
        get() {
            check(h != 0L) { "${javaClass.simpleName} is closed" }
            return h
        }

    val isClosed: Boolean get() = h == 0L

    protected abstract fun free(handle: Long)

    override fun close() {
        val x = h
        if (x != 0L) {
            h = 0L
            free(x)
        }
    }
}

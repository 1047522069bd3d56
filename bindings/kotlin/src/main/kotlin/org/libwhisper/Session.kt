// session.h: the local identity, prekeys, bundles and 1:1 sessions, as
// methods of Context.
package org.libwhisper

/** Signal's message types (the transport carries them). */
object MessageType {
    const val WHISPER = 2
    const val PREKEY = 3
    const val SENDERKEY = 7
}

/** This device's identity. */
class Identity(val name: String, val deviceId: Int, val registrationId: Int, val publicKey: ByteArray)

/** What is known of a remote device's identity. */
class IdentityInfo(val key: ByteArray, val changed: Boolean, val changedAtMs: Long)

/** A prekey bundle: `encoded` is what travels; the fields are read from it. */
class PreKeyBundle(val encoded: ByteArray) {
    val registrationId: Int
    val deviceId: Int
    val prekeyId: Int?
    val prekey: ByteArray?
    val signedPrekeyId: Int
    val signedPrekey: ByteArray
    val signedPrekeySignature: ByteArray
    val identityKey: ByteArray

    init {
        val n = LongArray(5)
        val b = NativeSession.bundleDecode(encoded, n)
        registrationId = n[0].toInt()
        deviceId = n[1].toInt()
        prekeyId = if (n[2] != 0L) n[3].toInt() else null
        signedPrekeyId = n[4].toInt()
        prekey = b[0]
        signedPrekey = b[1]!!
        signedPrekeySignature = b[2]!!
        identityKey = b[3]!!
    }
}

/** An encrypted 1:1 message and its type (MessageType). */
class Ciphertext(val type: Int, val body: ByteArray)

/** Creates this device's identity (registrationId 0: a random one). */
fun Context.generateIdentity(name: String, deviceId: Int = 1, registrationId: Int = 0,
                           nowMs: Long = System.currentTimeMillis()) =
    NativeSession.identityGenerate(handle, name.utf8(), deviceId, registrationId, nowMs)

/** Creates this device's identity with a given private key (imports). */
fun Context.importIdentity(name: String, deviceId: Int, registrationId: Int, privateKey: ByteArray) =
    NativeSession.identityImport(handle, name.utf8(), deviceId, registrationId, privateKey)

/** This device's identity; throws WhisperException(ESTATE) before one exists. */
fun Context.identity(): Identity {
    val pub = ByteArray(Sizes.PUBLIC_KEY_LEN)
    val ids = LongArray(2)
    val name = NativeSession.identityGet(handle, pub, ids)
    return Identity(name.decodeToString(), ids[0].toInt(), ids[1].toInt(), pub)
}

/** Trusts `key` for (name, deviceId), or for every device of the name with
 *  Whisper.ALL_DEVICES. nowMs 0: the change is recorded without a time. */
fun Context.trustIdentity(name: String, deviceId: Int, key: ByteArray, nowMs: Long = 0) =
    NativeSession.identityTrust(handle, name.utf8(), deviceId, key, nowMs)

/** The key expected from (name, deviceId); null when none is known. */
fun Context.identityInfo(name: String, deviceId: Int): IdentityInfo? {
    val out = LongArray(2)
    return try {
        val key = NativeSession.identityInfo(handle, name.utf8(), deviceId, out)
        IdentityInfo(key, out[0] != 0L, out[1])
    } catch (e: WhisperException) {
        if (e.code == ErrorCode.ENOTFOUND) null else throw e
    }
}

fun Context.generateSignedPrekey(id: Int, nowMs: Long = System.currentTimeMillis()) =
    NativeSession.signedPrekeyGenerate(handle, id, nowMs)

/** Rotates the signed prekey when older than maxAgeMs; true if it did. */
fun Context.rotateSignedPrekey(nowMs: Long, maxAgeMs: Long, graceMs: Long): Boolean =
    NativeSession.signedPrekeyRotate(handle, nowMs, maxAgeMs, graceMs)

/** One-time prekeys not used yet. */
fun Context.prekeysCount(): Long = NativeSession.prekeysCount(handle)

/** Makes `count` one-time prekeys; returns the first id. */
fun Context.generatePrekeys(count: Int): Long = NativeSession.prekeysGenerate(handle, count)

/** This device's bundle (with a new one-time prekey if asked). */
fun Context.bundle(withPrekey: Boolean = true): PreKeyBundle =
    PreKeyBundle(NativeSession.bundleGenerate(handle, withPrekey))

/** Starts a session with (name, deviceId) from its bundle (X3DH). */
fun Context.startSession(name: String, deviceId: Int, bundle: PreKeyBundle,
                         nowMs: Long = System.currentTimeMillis()) =
    NativeSession.sessionStart(handle, name.utf8(), deviceId, bundle.encoded, nowMs)

fun Context.distrustSessions() = NativeSession.sessionsDistrust(handle)

fun Context.hasSession(name: String, deviceId: Int, nowMs: Long = System.currentTimeMillis()): Boolean =
    NativeSession.sessionExists(handle, name.utf8(), deviceId, nowMs)

fun Context.encrypt(name: String, deviceId: Int, plaintext: ByteArray,
                    nowMs: Long = System.currentTimeMillis()): Ciphertext {
    val type = IntArray(1)
    val body = NativeSession.encrypt(handle, name.utf8(), deviceId, plaintext, nowMs, type)
    return Ciphertext(type[0], body)
}

fun Context.decrypt(name: String, deviceId: Int, message: Ciphertext): ByteArray =
    NativeSession.decrypt(handle, name.utf8(), deviceId, message.type, message.body)

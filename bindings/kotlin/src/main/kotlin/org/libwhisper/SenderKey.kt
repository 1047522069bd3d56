// sender_key.h: sender keys (one ciphertext for many devices), as methods of Context.
package org.libwhisper

/** A member device. */
data class Device(val name: String, val deviceId: Int)

/** One device's SKDM envelope from distributeSenderKey(). */
class Envelope(val device: Device, val status: Int, val message: Ciphertext?)

/** This device's SKDM for the distribution id (Sizes.DISTRIBUTION_ID_LEN bytes;
 *  generated on first use). */
fun Context.senderKeyGenerate(distributionId: ByteArray): ByteArray = NativeSenderKey.create(handle, distributionId)

/** A new sender chain for the distribution; returns its SKDM. */
fun Context.senderKeyRotate(distributionId: ByteArray): ByteArray = NativeSenderKey.rotate(handle, distributionId)

fun Context.senderKeyProcess(sender: String, deviceId: Int, skdm: ByteArray) =
    NativeSenderKey.process(handle, sender.utf8(), deviceId, skdm)

fun Context.senderKeyEncrypt(distributionId: ByteArray, plaintext: ByteArray): ByteArray =
    NativeSenderKey.encrypt(handle, distributionId, plaintext)

fun Context.senderKeyDecrypt(sender: String, deviceId: Int, body: ByteArray): ByteArray =
    NativeSenderKey.decrypt(handle, sender.utf8(), deviceId, body)

/** Wraps this device's SKDM for each device through its 1:1 session. */
fun Context.distributeSenderKey(distributionId: ByteArray, devices: List<Device>,
                                nowMs: Long = System.currentTimeMillis()): List<Envelope> {
    val st = IntArray(devices.size)
    val ty = IntArray(devices.size)
    val bodies = NativeSenderKey.distribute(handle, distributionId, devices.map { it.name }.utf8Array(),
                                        IntArray(devices.size) { devices[it].deviceId }, nowMs, st, ty)
    return devices.indices.map { i ->
        Envelope(devices[i], st[i], bodies[i]?.let { Ciphertext(ty[i], it) })
    }
}

fun Context.receiveSenderKey(sender: String, deviceId: Int, message: Ciphertext) =
    NativeSenderKey.receiveDistribution(handle, sender.utf8(), deviceId, message.type, message.body)

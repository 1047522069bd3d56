// sender_key.h: group messages with sender keys, as methods of Context.
package org.libwhisper

/** A member device. */
data class Device(val name: String, val deviceId: Int)

/** One device's SKDM envelope from distributeSenderKey(). */
class Envelope(val device: Device, val status: Int, val message: Ciphertext?)

/** This device's SKDM for the 16-byte distribution id (made on first use). */
fun Context.senderKeyGenerate(distributionId: ByteArray): ByteArray = NativeGroup.create(handle, distributionId)

/** A new sender chain for the distribution; returns its SKDM. */
fun Context.senderKeyRotate(distributionId: ByteArray): ByteArray = NativeGroup.rotate(handle, distributionId)

fun Context.senderKeyProcess(sender: String, deviceId: Int, skdm: ByteArray) =
    NativeGroup.process(handle, sender.utf8(), deviceId, skdm)

fun Context.senderKeyEncrypt(distributionId: ByteArray, plaintext: ByteArray): ByteArray =
    NativeGroup.encrypt(handle, distributionId, plaintext)

fun Context.senderKeyDecrypt(sender: String, deviceId: Int, body: ByteArray): ByteArray =
    NativeGroup.decrypt(handle, sender.utf8(), deviceId, body)

/** Wraps this device's SKDM for each device through its 1:1 session. */
fun Context.distributeSenderKey(distributionId: ByteArray, devices: List<Device>,
                                nowMs: Long = System.currentTimeMillis()): List<Envelope> {
    val st = IntArray(devices.size)
    val ty = IntArray(devices.size)
    val bodies = NativeGroup.distribute(handle, distributionId, devices.map { it.name }.utf8Array(),
                                        IntArray(devices.size) { devices[it].deviceId }, nowMs, st, ty)
    return devices.indices.map { i ->
        Envelope(devices[i], st[i], bodies[i]?.let { Ciphertext(ty[i], it) })
    }
}

fun Context.receiveSenderKey(sender: String, deviceId: Int, message: Ciphertext) =
    NativeGroup.receiveDistribution(handle, sender.utf8(), deviceId, message.type, message.body)

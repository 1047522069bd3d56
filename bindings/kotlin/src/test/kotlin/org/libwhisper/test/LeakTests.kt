// Many operations in a loop: the process's memory must not grow (a leaked
// native buffer or handle would), checked three ways: VmRSS, the C heap in
// use (glibc's mallinfo2) and the count of live native handles.
package org.libwhisper.test

import org.libwhisper.*
import java.io.File
import kotlin.test.*

fun rssKb(): Long =
    File("/proc/self/status").readLines().first { it.startsWith("VmRSS:") }.split(Regex("\\s+"))[1].toLong()

fun settle() {
    repeat(3) { System.gc(); Thread.sleep(20) }
}

fun noLeakInALoop() {
    val n = System.getProperty("whisper.leak.iterations")?.toInt() ?: 20_000
    val dist = ByteArray(Sizes.DISTRIBUTION_ID_LEN) { 9 }
    val dev = org.libwhisper.Device("bob", 1)
    Device("alice").use { alice ->
        Device("bob").use { bob ->
            alice.ctx.startSession("bob", 1, bob.ctx.bundle())
            bob.ctx.decrypt("alice", 1, alice.ctx.encrypt("bob", 1, bytes("first")))
            bob.ctx.senderKeyProcess("alice", 1, alice.ctx.senderKeyGenerate(dist))
            Client(alice.ctx).use { engine ->
                val plain = ByteArray(4096) { it.toByte() }
                val key = ByteArray(Sizes.ATTACHMENT_KEY_LEN) { 5 }
                val iv = ByteArray(Sizes.ATTACHMENT_IV_LEN) { 6 }
                fun round(i: Int) {
                    val ct = alice.ctx.encrypt("bob", 1, plain, 10_000L + i)
                    assertEquals(4096, bob.ctx.decrypt("alice", 1, ct).size)
                    val back = bob.ctx.encrypt("alice", 1, plain, 10_000L + i)
                    alice.ctx.decrypt("bob", 1, back)
                    val g = alice.ctx.senderKeyEncrypt(dist, plain)
                    bob.ctx.senderKeyDecrypt("alice", 1, g)
                    try { bob.ctx.decrypt("alice", 1, ct); fail("a replay") } catch (e: WhisperException) {
                        assertEquals(ErrorCode.EDUPLICATE, e.code)
                    }
                    engine.accountInfo("bob")
                    engine.conversationFlags("bob")
                    engine.isBlocked("carol")
                    engine.takeEvent()
                    engine.anchor
                    alice.ctx.historyPage("bob", 5)
                    alice.ctx.identity()
                    if (i % 10 == 0) {
                        Fingerprint.compute(bytes("a"), alice.ctx.identity().publicKey, bytes("b"),
                                            bob.ctx.identity().publicKey, iterations = 2)
                        AttachmentEncryptor.encrypt(key, iv, plain)
                        alice.ctx.bundle(withPrekey = false)
                    }
                    if (i % 100 == 0) Client(bob.ctx).close()
                }
                val warm = n / 10
                for (i in 0 until warm) round(i)
                settle()
                val rss0 = rssKb()
                val heap0 = Whisper.nativeHeapInUse
                val handles0 = Whisper.liveHandles
                val t0 = System.nanoTime()
                for (i in warm until warm + n) round(i)
                val ms = (System.nanoTime() - t0) / 1_000_000
                settle()
                val rss1 = rssKb()
                val heap1 = Whisper.nativeHeapInUse
                val handles1 = Whisper.liveHandles
                println("  leak loop: $n rounds in $ms ms; VmRSS ${rss0} -> ${rss1} kB (${rss1 - rss0}); " +
                        "C heap ${heap0 / 1024} -> ${heap1 / 1024} kB (${(heap1 - heap0) / 1024}); handles $handles0 -> $handles1")
                assertEquals(handles0, handles1, "native handles leaked")
                // A leaked 4 KiB buffer per round would be 80 MB here.
                if (heap0 >= 0) assertTrue(heap1 - heap0 < 8L * 1024 * 1024, "the C heap grew by ${(heap1 - heap0) / 1024} kB")
                assertTrue(rss1 - rss0 < 24 * 1024, "VmRSS grew by ${rss1 - rss0} kB")
            }
        }
    }
    assertEquals(0, Whisper.liveHandles)
}

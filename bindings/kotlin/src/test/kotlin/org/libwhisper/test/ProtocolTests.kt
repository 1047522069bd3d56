// Two devices talking through the binding: sessions, sender keys,
// fingerprints, and failures that must come out as the right exception.
package org.libwhisper.test

import org.libwhisper.*
import kotlin.test.*

// Store.transaction: calls join it; a throw rolls both back, a return
// commits both.
fun storeTransaction() {
    Device("alice").use { alice ->
        Device("bob").use { bob -> Device("carol").use { carol ->
            val bundle = bob.ctx.bundle(withPrekey = true)
            val boom = assertFailsWith<IllegalStateException> {
                alice.store.transaction {
                    alice.ctx.startSession("bob", 1, bundle)
                    alice.ctx.encrypt("bob", 1, bytes("never sent"))
                    assertTrue(alice.ctx.hasSession("bob", 1))
                    throw IllegalStateException("changed my mind")
                }
            }
            assertEquals("changed my mind", boom.message)
            assertFalse(alice.ctx.hasSession("bob", 1)) // both calls rolled back
            val m = alice.store.transaction {
                alice.ctx.startSession("bob", 1, bundle)
                alice.ctx.encrypt("bob", 1, bytes("kept"))
            }
            assertTrue(alice.ctx.hasSession("bob", 1))
            assertEquals("kept", bob.ctx.decrypt("alice", 1, m).decodeToString())
            // nested: the inner one's throw undoes its own writes alone
            alice.store.transaction {
                alice.ctx.encrypt("bob", 1, bytes("outer"))
                assertFailsWith<IllegalStateException> {
                    alice.store.transaction {
                        alice.ctx.startSession("carol", 1, carol.ctx.bundle())
                        assertTrue(alice.ctx.hasSession("carol", 1))
                        throw IllegalStateException("inner")
                    }
                }
                assertFalse(alice.ctx.hasSession("carol", 1))
                assertTrue(alice.ctx.hasSession("bob", 1))
            }
        } }
    }
}

fun twoDevicesTalk() {
    Device("alice").use { alice ->
        Device("bob").use { bob ->
            val bundle = bob.ctx.bundle(withPrekey = true)
            assertEquals(1, bundle.deviceId)
            assertNotNull(bundle.prekeyId)
            assertContentEquals(bob.ctx.identity().publicKey, bundle.identityKey)
            assertFalse(alice.ctx.hasSession("bob", 1))
            alice.ctx.startSession("bob", 1, bundle)
            assertTrue(alice.ctx.hasSession("bob", 1))

            val m1 = alice.ctx.encrypt("bob", 1, bytes("hello bob"))
            assertEquals(MessageType.PREKEY, m1.type)
            assertEquals("hello bob", bob.ctx.decrypt("alice", 1, m1).decodeToString())
            // a replay is refused
            val dup = assertFailsWith<WhisperException> { bob.ctx.decrypt("alice", 1, m1) }
            assertEquals(ErrorCode.EDUPLICATE, dup.code)

            val r1 = bob.ctx.encrypt("alice", 1, bytes("hi alice"))
            assertEquals(MessageType.WHISPER, r1.type)
            assertEquals("hi alice", alice.ctx.decrypt("bob", 1, r1).decodeToString())
            for (i in 0 until 50) {
                val m = alice.ctx.encrypt("bob", 1, bytes("m$i"))
                assertEquals(MessageType.WHISPER, m.type)
                assertEquals("m$i", bob.ctx.decrypt("alice", 1, m).decodeToString())
            }
            // empty plaintext
            assertEquals(0, bob.ctx.decrypt("alice", 1, alice.ctx.encrypt("bob", 1, ByteArray(0))).size)

            // trust on first use, and what the other side saw
            val info = bob.ctx.identityInfo("alice", 1)!!
            assertContentEquals(alice.ctx.identity().publicKey, info.key)
            assertFalse(info.changed)
            assertNull(bob.ctx.identityInfo("carol", 1))

            // keys and signatures
            KeyPair.generate(alice.ctx).use { kp ->
                val sig = Keys.sign(alice.ctx, kp.privateKey, bytes("signed"))
                assertTrue(Keys.verify(kp.publicKey, bytes("signed"), sig))
                assertFalse(Keys.verify(kp.publicKey, bytes("other"), sig))
                assertContentEquals(kp.publicKey, KeyPair.fromPrivate(kp.privateKey).publicKey)
                kp.close()
                assertTrue(kp.privateKey.all { it == 0.toByte() }, "close() wipes the private key")
            }
        }
    }
    assertEquals(0, Whisper.liveHandles)
}

fun senderKeysAndFingerprints() {
    val dist = ByteArray(Sizes.DISTRIBUTION_ID_LEN) { it.toByte() }
    Device("alice").use { alice ->
        Device("bob").use { bob ->
            Device("carol").use { carol ->
                for (d in listOf(bob, carol)) alice.ctx.startSession(d.name, 1, d.ctx.bundle())
                val env = alice.ctx.distributeSenderKey(dist, listOf(org.libwhisper.Device("bob", 1),
                    org.libwhisper.Device("carol", 1), org.libwhisper.Device("dave", 1)))
                assertEquals(3, env.size)
                assertEquals(0, env[0].status)
                assertEquals(ErrorCode.ENOSESSION, env[2].status)
                assertNull(env[2].message)
                bob.ctx.receiveSenderKey("alice", 1, env[0].message!!)
                carol.ctx.receiveSenderKey("alice", 1, env[1].message!!)
                val g = alice.ctx.senderKeyEncrypt(dist, bytes("to the group"))
                assertEquals("to the group", bob.ctx.senderKeyDecrypt("alice", 1, g).decodeToString())
                assertEquals("to the group", carol.ctx.senderKeyDecrypt("alice", 1, g).decodeToString())

                // safety numbers: the same digits on both sides, the QR codes cross-match
                val a = alice.ctx.identity().publicKey
                val b = bob.ctx.identity().publicKey
                val fa = Fingerprint.compute(bytes("alice"), a, bytes("bob"), b)
                val fb = Fingerprint.compute(bytes("bob"), b, bytes("alice"), a)
                assertEquals(60, fa.displayable.length)
                assertEquals(fa.displayable, fb.displayable)
                assertTrue(fa.matches(fb.scannable))
                val fc = Fingerprint.compute(bytes("bob"), carol.ctx.identity().publicKey, bytes("alice"), a)
                assertFalse(fa.matches(fc.scannable))
            }
        }
    }
}

fun badInputThrows() {
    Device("alice").use { alice ->
        Device("bob").use { bob ->
            alice.ctx.startSession("bob", 1, bob.ctx.bundle())
            // garbage as a message: EINVALIDMSG, and nothing changed
            val e1 = assertFailsWith<WhisperException> {
                bob.ctx.decrypt("alice", 1, Ciphertext(MessageType.PREKEY, byteArrayOf(1, 2, 3)))
            }
            assertEquals(ErrorCode.EINVALIDMSG, e1.code)
            assertTrue(e1.message!!.isNotEmpty())
            bob.ctx.decrypt("alice", 1, alice.ctx.encrypt("bob", 1, bytes("first")))
            alice.ctx.decrypt("bob", 1, bob.ctx.encrypt("alice", 1, bytes("back")))
            val good = alice.ctx.encrypt("bob", 1, bytes("still fine"))
            assertEquals(MessageType.WHISPER, good.type)
            // the last byte is the MAC's: refused, and the session is unchanged
            val flipped = good.body.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
            assertEquals(ErrorCode.EINVALIDMSG, assertFailsWith<WhisperException> {
                bob.ctx.decrypt("alice", 1, Ciphertext(good.type, flipped))
            }.code)
            assertEquals("still fine", bob.ctx.decrypt("alice", 1, good).decodeToString())
            // no session
            val e2 = assertFailsWith<WhisperException> {
                bob.ctx.decrypt("carol", 1, Ciphertext(MessageType.WHISPER, good.body))
            }
            assertTrue(e2.code == ErrorCode.ENOSESSION || e2.code == ErrorCode.EINVALIDMSG, e2.toString())
            assertEquals(ErrorCode.ENOSESSION,
                assertFailsWith<WhisperException> { alice.ctx.encrypt("carol", 1, bytes("x")) }.code)
            // a bundle that is not one
            assertEquals(ErrorCode.EINVALIDMSG, assertFailsWith<WhisperException> { PreKeyBundle(byteArrayOf(9, 9, 9)) }.code)
            // bad lengths, bad names
            assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { alice.ctx.senderKeyGenerate(ByteArray(3)) }.code)
            assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { alice.ctx.encrypt("", 1, bytes("x")) }.code)
            assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { alice.ctx.encrypt("a\u0000b", 1, bytes("x")) }.code)
            assertEquals(ErrorCode.EINVALIDKEY, assertFailsWith<WhisperException> { Keys.checkPublicKey(ByteArray(Sizes.PUBLIC_KEY_LEN)) }.code)
            // an identity twice
            assertEquals(ErrorCode.ESTATE, assertFailsWith<WhisperException> { alice.ctx.generateIdentity("alice") }.code)
            // a changed identity key is refused until trusted
            Device("bob").use { bob2 ->
                val ex = assertFailsWith<WhisperException> { alice.ctx.startSession("bob", 1, bob2.ctx.bundle()) }
                assertEquals(ErrorCode.EUNTRUSTED, ex.code)
                alice.ctx.trustIdentity("bob", 1, bob2.ctx.identity().publicKey, nowMs = 5_000)
                alice.ctx.startSession("bob", 1, bob2.ctx.bundle())
                assertTrue(alice.ctx.identityInfo("bob", 1)!!.changed)
            }
            // the engine: bytes that are not a frame
            Client(alice.ctx).use { c ->
                assertEquals(ErrorCode.EINVALIDMSG,
                    assertFailsWith<WhisperException> { c.receive(byteArrayOf(0x7f, 0x7f, 0x7f), 1_000) }.code)
                assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { c.sendGroup(ByteArray(5), bytes("x")) }.code)
                assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { c.checkAnchor(ByteArray(3)) }.code)
                // a context with an engine cannot be closed under it
                assertFailsWith<IllegalStateException> { alice.ctx.close() }
            }
        }
    }
    // a closed object
    val s = Store.memory()
    val ctx = Context(s)
    assertFailsWith<IllegalStateException> { s.close() }
    ctx.close()
    s.close()
    assertFailsWith<IllegalStateException> { ctx.identity() }
    // SQLite: the wrong key
    val dir = tempDir("wk-sqlite")
    val path = "${dir.path}/s.db"
    Store.sqlite(path, key = ByteArray(32) { 1 }).use { st -> Context(st).use { it.generateIdentity("x") } }
    val e = assertFailsWith<WhisperException> { Store.sqlite(path, key = ByteArray(32) { 2 }) }
    assertEquals(ErrorCode.EKEY, e.code)
    Store.sqlite(path, key = ByteArray(32) { 1 }).use { st -> Context(st).use { assertEquals("x", it.identity().name) } }
    Store.deleteSqlite(path)
    assertEquals(0, Whisper.liveHandles)
}

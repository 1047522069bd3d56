// History pages, status, the outbox, search, attachments, and the engine
// without a server.
package org.libwhisper.test

import org.libwhisper.*
import kotlin.test.*

fun historyPagingAndSearch() {
    val dir = tempDir("wk-hist")
    Device("alice").use { alice ->
        Device("bob", store = Store.sqlite("${dir.path}/bob.db", passphrase = bytes("pw"))).use { bob ->
            alice.ctx.startSession("bob", 1, bob.ctx.bundle())
            for (i in 0 until 25) {
                val text = if (i % 5 == 0) "banana number $i" else "plain message $i"
                val m = alice.ctx.encrypt("bob", 1, bytes(text))
                val pt = bob.ctx.decryptAndStore("alice", 1, m, "alice", bytes("id-$i"), sortKey = i + 1L,
                                                 timestampMs = 10_000L + i)
                assertEquals(text, pt.decodeToString())
                if (i == 3) {
                    // a redelivery (same sort key and id) is refused before decrypting
                    assertEquals(ErrorCode.EDUPLICATE, assertFailsWith<WhisperException> {
                        bob.ctx.decryptAndStore("alice", 1, m, "alice", bytes("id-3"), 4, 10_003)
                    }.code)
                }
            }
            val p1 = bob.ctx.historyPage("alice", 10)
            assertEquals((24 downTo 15).map { "id-$it" }, p1.map { it.id.decodeToString() })
            assertEquals("alice", p1[0].sender)
            assertEquals(25L, p1[0].sortKey)
            assertEquals("plain message 24", p1[0].body!!.decodeToString())
            val p2 = bob.ctx.historyPage("alice", 10, before = p1.last())
            assertEquals((14 downTo 5).map { "id-$it" }, p2.map { it.id.decodeToString() })
            val p3 = bob.ctx.historyPage("alice", 10, before = p2.last())
            assertEquals((4 downTo 0).map { "id-$it" }, p3.map { it.id.decodeToString() })
            assertEquals(25, bob.ctx.history("alice", pageSize = 7).count())
            assertEquals(0, bob.ctx.historyPage("nobody", 10).size)

            // search, paged
            val s1 = bob.ctx.search("BANANA", limit = 3)
            assertEquals(listOf("id-20", "id-15", "id-10"), s1.map { it.id.decodeToString() })
            val s2 = bob.ctx.search("banana", limit = 3, after = s1.last())
            assertEquals(listOf("id-5", "id-0"), s2.map { it.id.decodeToString() })
            assertEquals(1, bob.ctx.search("banana 15", conversation = "alice").size)
            assertEquals(0, bob.ctx.search("cherry").size)
            assertEquals(ErrorCode.EINVAL, assertFailsWith<WhisperException> { bob.ctx.search("  ") }.code)

            // outgoing: pending in the outbox, then sent, delivered
            val bobDev = org.libwhisper.Device("bob", 1)
            alice.ctx.addOutgoing("bob", bytes("out-1"), 100, 20_000, bytes("hello"), listOf(bobDev))
            assertEquals(ErrorCode.EDUPLICATE, assertFailsWith<WhisperException> {
                alice.ctx.addOutgoing("bob", bytes("out-1"), 100, 20_000, bytes("hello"), listOf(bobDev))
            }.code)
            assertEquals(listOf("out-1"), alice.ctx.outbox(10).map { it.id.decodeToString() })
            assertEquals(Status.PENDING, alice.ctx.status("bob", bytes("out-1"), bobDev))
            alice.ctx.markSent("bob", bytes("out-1"), 500)
            alice.ctx.setStatus("bob", bytes("out-1"), bobDev, Status.DELIVERED)
            alice.ctx.setStatus("bob", bytes("out-1"), bobDev, Status.SENT) // never backwards
            assertEquals(Status.DELIVERED, alice.ctx.status("bob", bytes("out-1"), bobDev))
            assertEquals(0, alice.ctx.outbox(10).size)
            val mine = alice.ctx.historyPage("bob", 5).single()
            assertNull(mine.sender)
            assertEquals(500L, mine.sortKey)
            assertEquals(Status.DELIVERED, mine.status)
            assertEquals(ErrorCode.ENOTFOUND, assertFailsWith<WhisperException> {
                alice.ctx.markSent("bob", bytes("nope"), 1)
            }.code)
        }
    }
    assertEquals(0, Whisper.liveHandles)
}

fun attachments() {
    val key = ByteArray(Sizes.ATTACHMENT_KEY_LEN) { (it * 7).toByte() }
    val iv = ByteArray(Sizes.ATTACHMENT_IV_LEN) { (it + 1).toByte() }
    val plain = ByteArray(300_000) { (it % 251).toByte() }
    val (blob, r) = AttachmentEncryptor.encrypt(key, iv, plain)
    assertEquals(AttachmentEncryptor.blobSize(plain.size.toLong()), blob.size.toLong())
    assertEquals(r.blobSize, blob.size.toLong())
    assertNotNull(r.incrementalMac)
    assertContentEquals(plain, AttachmentDecryptor.decrypt(key, blob, plain.size.toLong(), r))
    // streamed in small pieces, without the incremental MAC (two passes)
    AttachmentDecryptor(key, plain.size.toLong(), r.digest, r.plaintextHash).use { d ->
        for (pass in 0..1) {
            var out = ByteArray(0)
            var o = 0
            while (o < blob.size) {
                val n = minOf(7_777, blob.size - o)
                out += d.update(blob.copyOfRange(o, o + n))
                o += n
            }
            val rest = d.finish()
            if (pass == 0) {
                assertNull(rest, "a first pass without an incremental MAC asks for the blob again")
                assertEquals(0, out.size, "nothing is released before the blob checks")
            } else {
                assertContentEquals(plain, out + rest!!)
            }
        }
    }
    // an altered blob
    val bad = blob.copyOf().also { it[100_000] = (it[100_000].toInt() xor 0x40).toByte() }
    val e = assertFailsWith<WhisperException> { AttachmentDecryptor.decrypt(key, bad, plain.size.toLong(), r) }
    assertEquals(ErrorCode.EINTEGRITY, e.code)
    // the wrong key
    val e2 = assertFailsWith<WhisperException> {
        AttachmentDecryptor.decrypt(ByteArray(Sizes.ATTACHMENT_KEY_LEN), blob, plain.size.toLong(), r)
    }
    assertTrue(e2.code == ErrorCode.EKEY || e2.code == ErrorCode.EINTEGRITY, e2.toString())
    assertEquals(0, Whisper.liveHandles)
}

fun engineOffline() {
    val dir = tempDir("wk-eng")
    Device("alice", store = Store.sqlite("${dir.path}/a.db", key = ByteArray(32) { 3 })).use { alice ->
        Client(alice.ctx, ClientConfig(mediaDir = dir.path)).use { c ->
            assertTrue(c.wantConnect(1_000))
            val id = c.send("bob", bytes("queued"), 2_000)
            assertEquals(16, id.size)
            val h = alice.ctx.historyPage("bob", 10).single()
            assertContentEquals(id, h.id)
            assertNull(h.sender) // its status waits for the recipients' devices (none known yet)
            assertEquals("queued", h.body!!.decodeToString())
            assertEquals(1, alice.ctx.outbox(10).size)
            c.edit("bob", id, bytes("queued, edited"), 3_000)
            assertEquals("queued, edited", alice.ctx.historyPage("bob", 10).single().body!!.decodeToString())

            c.setConversationFlags("bob", ConversationFlags(mutedUntilMs = 99_000, pinned = true), 4_000)
            val f = c.conversationFlags("bob")
            assertEquals(99_000L, f.mutedUntilMs)
            assertTrue(f.pinned)
            assertFalse(f.archived)

            c.block("mallory", 5_000)
            assertTrue(c.isBlocked("mallory"))
            assertEquals(listOf("mallory"), c.blocked())
            assertEquals(ErrorCode.EBLOCKED, assertFailsWith<WhisperException> { c.send("mallory", bytes("x"), 5_001) }.code)
            c.unblock("mallory", 5_002)
            assertFalse(c.isBlocked("mallory"))

            assertEquals(AccountInfo.UNKNOWN, c.accountInfo("bob").trust)
            assertEquals(16, c.anchor.size)
            assertFalse(c.checkAnchor(c.anchor))
            assertEquals(Sizes.GROUP_CONVERSATION_LEN, Group.conversation(ByteArray(Sizes.GROUP_ID_LEN)).length)

            // a file to send: a job (encrypted by the ticks, uploaded once connected)
            val file = java.io.File(dir, "photo.bin").apply { writeBytes(ByteArray(5000) { it.toByte() }) }
            val mid = c.sendFile("bob", file.path, MediaMeta(contentType = "image/png", caption = bytes("a photo")), 6_000)
            val m = c.media("bob", mid, null)
            assertEquals(5000L, m.size)
            assertEquals("image/png", m.contentType)
            assertEquals("a photo", m.caption.decodeToString())
            assertEquals(ErrorCode.ENOTFOUND, assertFailsWith<WhisperException> {
                c.sendFile("bob", "${dir.path}/missing", null, 6_001)
            }.code)

            // connecting: the engine registers first
            c.connected(7_000)
            assertTrue(c.takeFrames().isNotEmpty())
            assertNotNull(c.nextDeadline)
            c.disconnected(8_000)
            c.events()
        }
    }
    assertEquals(0, Whisper.liveHandles)
}

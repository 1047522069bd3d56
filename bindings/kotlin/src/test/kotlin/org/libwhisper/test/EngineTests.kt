// The engine against a real whisperd on loopback: java.net.http's WebSocket
// carries the frames, java.net.http's HttpClient the blob store's requests.
package org.libwhisper.test

import org.libwhisper.*
import java.io.ByteArrayOutputStream
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest as JHttpRequest
import java.net.http.HttpResponse
import java.net.http.WebSocket
import java.nio.ByteBuffer
import java.time.Duration
import java.util.concurrent.CompletionStage
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.test.*

class Whisperd(exe: String, dir: File) : AutoCloseable {
    val proc: Process
    val port: Int

    init {
        proc = ProcessBuilder(exe, "--listen", "127.0.0.1:0", "--db", "${dir.path}/server.db",
                              "--key-file", "${dir.path}/server.key", "--metrics-listen", "127.0.0.1:0",
                              "--log-level", "info")
            .redirectErrorStream(true).start()
        val q = LinkedBlockingQueue<Int>()
        val log = File(dir, "whisperd.log")
        Thread {
            try {
                proc.inputStream.bufferedReader().forEachLine { line ->
                    log.appendText(line + "\n")
                    Regex("whisperd: listening on .*:(\\d+)\\s*$").find(line)?.let { q.put(it.groupValues[1].toInt()) }
                }
            } catch (e: java.io.IOException) {
                // the process ended
            }
        }.apply { isDaemon = true }.start()
        port = q.poll(20, TimeUnit.SECONDS) ?: run {
            proc.destroyForcibly()
            throw AssertionError("whisperd did not say where it listens: ${log.readText()}")
        }
    }

    override fun close() {
        proc.destroy() // SIGTERM
        if (!proc.waitFor(10, TimeUnit.SECONDS)) proc.destroyForcibly()
    }
}

/** One engine and its connection. */
class Conn(val name: String, val client: Client, private val port: Int) {
    private object Closed
    private val inbox = LinkedBlockingQueue<Any>()
    private var ws: WebSocket? = null
    private val http: HttpClient = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build()
    val events = mutableListOf<ClientEvent>()

    private fun listener() = object : WebSocket.Listener {
        val buf = ByteArrayOutputStream()
        override fun onOpen(w: WebSocket) { w.request(1) }
        override fun onBinary(w: WebSocket, data: ByteBuffer, last: Boolean): CompletionStage<*>? {
            val b = ByteArray(data.remaining()); data.get(b); buf.write(b)
            if (last) { inbox.put(buf.toByteArray()); buf.reset() }
            w.request(1)
            return null
        }
        override fun onClose(w: WebSocket, code: Int, reason: String): CompletionStage<*>? { inbox.put(Closed); return null }
        override fun onError(w: WebSocket, error: Throwable) { inbox.put(Closed) }
    }

    fun step() {
        var now = System.currentTimeMillis()
        if (ws == null && client.wantConnect(now)) {
            ws = try {
                http.newWebSocketBuilder().subprotocols("whisper-sync-v1")
                    .buildAsync(URI("ws://127.0.0.1:$port/v1/ws"), listener()).get(5, TimeUnit.SECONDS)
            } catch (e: Exception) { null }
            if (ws != null) client.connected(now) else client.disconnected(now)
        }
        while (true) {
            val x = inbox.poll() ?: break
            now = System.currentTimeMillis()
            if (x is ByteArray) client.receive(x, now) else if (ws != null) { ws = null; client.disconnected(now) }
        }
        for (f in client.takeFrames()) ws?.sendBinary(ByteBuffer.wrap(f), true)?.get(5, TimeUnit.SECONDS)
        while (true) {
            val r = client.takeHttp() ?: break
            serve(r)
        }
        now = System.currentTimeMillis()
        val d = client.nextDeadline
        if (d != null && d <= now) client.tick(now)
        events += client.events()
        if (client.wantDisconnect && ws != null) { ws!!.abort(); ws = null; client.disconnected(System.currentTimeMillis()) }
    }

    /** Makes the engine's HTTP request to whisperd's blob store. */
    private fun serve(r: org.libwhisper.HttpRequest) {
        val b = JHttpRequest.newBuilder(URI("http://127.0.0.1:$port${r.path}")).timeout(Duration.ofSeconds(10))
        for (line in r.headers.split("\r\n")) {
            val i = line.indexOf(':')
            if (i <= 0) continue
            val k = line.substring(0, i).trim()
            if (k.lowercase() in setOf("content-length", "host", "connection", "expect", "upgrade")) continue
            b.header(k, line.substring(i + 1).trim())
        }
        val body = if (r.body.isNotEmpty()) JHttpRequest.BodyPublishers.ofByteArray(r.body) else JHttpRequest.BodyPublishers.noBody()
        b.method(r.method, body)
        val (status, headers, data) = try {
            val resp = http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray())
            val h = resp.headers().map().entries.filter { !it.key.startsWith(":") }.joinToString("") { (k, v) -> v.joinToString("") { "$k: $it\r\n" } }
            Triple(resp.statusCode(), h, resp.body())
        } catch (e: Exception) {
            Triple(0, null, null)
        }
        if (System.getenv("WK_TRACE") != null)
            println("  http $name: ${r.method} ${r.path} [${r.headers.replace("\r\n", "; ")}] ${r.body.size} B -> $status [${headers?.replace("\r\n", "; ")}] ${data?.size} B")
        client.httpDone(r.handle, status, headers, data, System.currentTimeMillis())
    }

    inline fun <reified T : ClientEvent> find(pred: (T) -> Boolean = { true }): T? =
        events.filterIsInstance<T>().firstOrNull(pred)
}

fun describe(e: ClientEvent): String = when (e) {
    is ClientEvent.Media -> "Media(state ${e.state}, ${e.done}/${e.total}, code ${e.code})"
    is ClientEvent.Error -> "Error(${e.code}, ${e.serverCode}, ${e.message})"
    is ClientEvent.Refused -> "Refused(${e.code}, ${e.message})"
    is ClientEvent.StatusChanged -> "Status(${e.status})"
    else -> e.javaClass.simpleName
}

fun pump(conns: List<Conn>, what: String, timeoutMs: Long = 20_000, until: () -> Boolean) {
    val end = System.currentTimeMillis() + timeoutMs
    while (true) {
        for (c in conns) c.step()
        if (until()) return
        if (System.currentTimeMillis() > end) {
            val ev = conns.joinToString("; ") { c -> c.name + ": " + c.events.joinToString { describe(it) } }
            throw AssertionError("timed out waiting for $what ($ev)")
        }
        Thread.sleep(2)
    }
}

fun engineWhisperd() {
    val exe = Options.whisperd ?: throw Skip("no whisperd built (libwebsockets missing)")
    val dir = tempDir("wk-whisperd")
    Whisperd(exe, dir).use { server ->
        val cfg = ClientConfig(backoffMinMs = 50, backoffMaxMs = 500, mediaDir = dir.path, sendWindow = 1)
        Device("alice", store = Store.sqlite("${dir.path}/alice.db", key = ByteArray(32) { 1 })).use { ad ->
            Device("bob", store = Store.sqlite("${dir.path}/bob.db", key = ByteArray(32) { 2 })).use { bd ->
                Client(ad.ctx, cfg).use { ac ->
                    Client(bd.ctx, cfg).use { bc ->
                        val a = Conn("alice", ac, server.port)
                        val b = Conn("bob", bc, server.port)
                        val both = listOf(a, b)
                        pump(both, "both online") { a.find<ClientEvent.Online>() != null && b.find<ClientEvent.Online>() != null }
                        assertNotNull(a.find<ClientEvent.Registered>())

                        // 1:1, both ways, with delivery receipts
                        val id1 = ac.send("bob", bytes("hello over whisperd"))
                        pump(both, "bob's message") {
                            b.find<ClientEvent.Message> { it.id.contentEquals(id1) } != null
                        }
                        val m1 = b.find<ClientEvent.Message> { it.id.contentEquals(id1) }!!
                        assertEquals("alice", m1.from)
                        assertEquals("alice", m1.conversation)
                        assertEquals("hello over whisperd", m1.body.decodeToString())
                        pump(both, "DELIVERED at alice") {
                            a.find<ClientEvent.StatusChanged> { it.id.contentEquals(id1) && it.status == Status.DELIVERED } != null
                        }
                        val id2 = bc.reply("alice", id1, "alice", bytes("hi alice"))
                        pump(both, "alice's reply") { a.find<ClientEvent.Message> { it.id.contentEquals(id2) } != null }
                        val m2 = a.find<ClientEvent.Message> { it.id.contentEquals(id2) }!!
                        assertEquals("hi alice", m2.body.decodeToString())
                        assertContentEquals(id1, m2.quotedId)
                        // what history holds on both sides, in order
                        assertEquals(listOf("hi alice", "hello over whisperd"),
                                     bd.ctx.historyPage("alice", 10).map { it.body!!.decodeToString() })
                        // reactions, read back from history (two: the page steps
                        // through them with whisper_message_reaction())
                        bc.react("alice", id1, "alice", "\uD83D\uDC4D")
                        pump(both, "bob's reaction") {
                            a.find<ClientEvent.ReactionChanged> { it.targetId?.contentEquals(id1) == true } != null
                        }
                        ac.react("bob", id1, null, "\u2764")
                        val reacted = ad.ctx.historyPage("bob", 10).single { it.id.contentEquals(id1) }
                        assertEquals(listOf("bob" to "\uD83D\uDC4D", "alice" to "\u2764"),
                                     reacted.reactions.map { it.reactor to it.emoji })
                        assertTrue(reacted.reactions.all { it.atMs > 0 })
                        assertEquals(AccountInfo.UNVERIFIED, ac.accountInfo("bob").trust)
                        assertContentEquals(bd.ctx.identity().publicKey, ac.accountInfo("bob").key)

                        // a group of two
                        val gid = ac.createGroup(listOf("bob"))
                        val gconv = Group.conversation(gid)
                        pump(both, "bob in the group") { b.find<ClientEvent.GroupChanged> { it.conversation == gconv } != null }
                        assertEquals(setOf("alice", "bob"), bc.groupState(gid).members.toSet())
                        val gm = ac.sendGroup(gid, bytes("to the group"))
                        pump(both, "the group message") { b.find<ClientEvent.Message> { it.id.contentEquals(gm) } != null }
                        assertEquals(gconv, b.find<ClientEvent.Message> { it.id.contentEquals(gm) }!!.conversation)

                        // an attachment: encrypted, uploaded by tus, sent, downloaded and verified
                        val data = ByteArray(200_000) { (it * 31 % 256).toByte() }
                        val file = File(dir, "send.bin").apply { writeBytes(data) }
                        val fid = ac.sendFile("bob", file.path, MediaMeta(contentType = "application/x-test", fileName = "send.bin"))
                        pump(both, "the attachment's message") { b.find<ClientEvent.Message> { it.id.contentEquals(fid) } != null }
                        assertEquals(Kind.ATTACHMENT, b.find<ClientEvent.Message> { it.id.contentEquals(fid) }!!.kind)
                        assertEquals(Media.REMOTE, bc.media("alice", fid, "alice").state)
                        val out = File(dir, "got.bin")
                        bc.download("alice", fid, "alice", out.path)
                        pump(both, "the download") {
                            b.find<ClientEvent.Media> { it.id?.contentEquals(fid) == true && (it.state == Media.DOWNLOADED || it.state == Media.FAILED) } != null
                        }
                        assertEquals(Media.DOWNLOADED, bc.media("alice", fid, "alice").state)
                        assertContentEquals(data, out.readBytes())
                    }
                }
            }
        }
    }
    assertEquals(0, Whisper.liveHandles)
}

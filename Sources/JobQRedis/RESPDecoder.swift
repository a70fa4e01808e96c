internal import CHiredis

/// Decodes RESP2 bytes with hiredis' own reader, without a connection.
///
/// The connection code and this decoder share one conversion (``RedisReply/init(hiredis:)``), so a
/// test that feeds bytes here exercises exactly what a live connection produces.
package final class RESPDecoder {
    private let reader: UnsafeMutablePointer<redisReader>

    package init() {
        guard let reader = redisReaderCreate() else {
            fatalError("hiredis could not allocate a reader (out of memory)")
        }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Appends raw protocol bytes (any split: a reply may arrive in several pieces).
    package func feed(_ bytes: [UInt8]) throws(RedisError) {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK {
            throw RedisError(.protocolError, endpoint: nil, detail: String(cString: CHiredis_readerErrstr(reader)))
        }
    }

    /// The next complete reply, or nil when more bytes are needed.
    /// - Throws: ``RedisError/Code-swift.struct/protocolError`` on malformed input; the decoder is unusable afterwards.
    package func next() throws(RedisError) -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            throw RedisError(.protocolError, endpoint: nil, detail: String(cString: CHiredis_readerErrstr(reader)))
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply(hiredis: raw.assumingMemoryBound(to: redisReply.self))
    }
}

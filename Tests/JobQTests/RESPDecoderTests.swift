import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("RESP decoding through hiredis' reader")
struct RESPDecoderTests {
    private func decodeAll(_ text: [UInt8], splitEvery step: Int = .max) throws -> [RedisReply] {
        let decoder = RESPDecoder()
        var replies: [RedisReply] = []
        var i = 0
        while i < text.count {
            let end = min(text.count, i + max(step, 1))
            try decoder.feed(Array(text[i..<end]))
            while let r = try decoder.next() { replies.append(r) }
            i = end
        }
        return replies
    }

    @Test("every RESP2 type")
    func types() throws {
        let wire = Array("+OK\r\n-ERR wrong\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n".utf8)
        let replies = try decodeAll(wire)
        #expect(replies == [.status("OK"), .error("ERR wrong"), .integer(42), .integer(-7), .bulk(Array("hello".utf8)), .bulk([]), .null, .null, .array([])])
        #expect(replies[1].errorCode == "ERR")
    }

    @Test("binary bulk strings keep NUL and CR LF bytes")
    func binary() throws {
        let payload: [UInt8] = [0, 13, 10, 0, 255, 36]
        let wire = Array("$6\r\n".utf8) + payload + Array("\r\n".utf8)
        #expect(try decodeAll(wire) == [.bulk(payload)])
    }

    @Test("nested arrays, fed one byte at a time")
    func nestedSplit() throws {
        let wire = Array("*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n*2\r\n:1\r\n$-1\r\n*1\r\n+x\r\n".utf8)
        let expected: [RedisReply] = [
            .array([.bulk(Array("message".utf8)), .bulk(Array("chan".utf8)), .array([.integer(1), .null])]),
            .array([.status("x")]),
        ]
        #expect(try decodeAll(wire, splitEvery: 1) == expected)
        #expect(try decodeAll(wire, splitEvery: 7) == expected)
    }

    @Test("an incomplete reply yields nothing until the rest arrives")
    func incomplete() throws {
        let decoder = RESPDecoder()
        try decoder.feed(Array("$10\r\n01234".utf8))
        #expect(try decoder.next() == nil)
        try decoder.feed(Array("56789\r\n".utf8))
        #expect(try decoder.next() == .bulk(Array("0123456789".utf8)))
        #expect(try decoder.next() == nil)
    }

    @Test("malformed input is a protocol error, not a crash")
    func malformed() throws {
        let decoder = RESPDecoder()
        try decoder.feed(Array("?what\r\n".utf8))
        #expect(throws: RedisError.self) { try decoder.next() }
    }

    @Test("reply accessors")
    func accessors() {
        #expect(RedisReply.bulk(Array("12".utf8)).int == 12)
        #expect(RedisReply.integer(3).string == "3")
        #expect(RedisReply.status("OK").bytes == Array("OK".utf8))
        #expect(RedisReply.error("NOSCRIPT No matching script").errorCode == "NOSCRIPT")
        #expect(RedisReply.null.isNull)
        #expect(RedisReply.bulk([0, 255]).description == "<2 bytes>")
    }
}

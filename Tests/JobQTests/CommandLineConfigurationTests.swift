import Foundation
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Redis settings for command-line programs (`docs/configuration.md`)")
struct CommandLineConfigurationTests {
    @Test("--redis-url wins over JOBQ_REDIS_URL; the default is 127.0.0.1:6379")
    func urlPrecedence() throws {
        let env = ["JOBQ_REDIS_URL": "redis://env-host:7000/2"]
        #expect(
            try RedisConfiguration.commandLine(urlFlag: "redis://flag-host:7001", passwordFile: nil, environment: env).endpoint
                == .tcp(host: "flag-host", port: 7001))
        #expect(try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil, environment: env).endpoint == .tcp(host: "env-host", port: 7000))
        #expect(try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil, environment: [:]).endpoint == .tcp(host: "127.0.0.1", port: 6379))
    }

    @Test("a password in --redis-url is refused; JOBQ_REDIS_URL may carry one")
    func flagPasswordRefused() throws {
        #expect {
            _ = try RedisConfiguration.commandLine(urlFlag: "redis://u:secret@h", passwordFile: nil, environment: [:])
        } throws: { error in
            let e = error as! RedisError
            return e.code == .invalidURL && e.detail.contains("ps") && !e.description.contains("secret")
        }
        let fromEnv = try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil, environment: ["JOBQ_REDIS_URL": "redis://u:secret@h"])
        #expect(fromEnv.password == "secret")
    }

    @Test("password file beats JOBQ_REDIS_PASSWORD, which beats the URL's")
    func passwordPrecedence() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-pw-\(UUID().uuidString)").path
        try "from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let env = ["JOBQ_REDIS_URL": "redis://:from-url@h", "JOBQ_REDIS_PASSWORD": "from-env"]
        #expect(try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: file, environment: env).password == "from-file")
        #expect(try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil, environment: env).password == "from-env")
        #expect(
            try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil, environment: ["JOBQ_REDIS_URL": "redis://:from-url@h"]).password == "from-url")

        let empty = file + ".empty"
        try "\n".write(toFile: empty, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: RedisError.self) { try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: empty, environment: [:]) }
        #expect(throws: RedisError.self) { try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: "/nonexistent/pw", environment: [:]) }
    }

    @Test("durability problems are named with what to set")
    func durability() {
        let bad = RedisServerInfo(fields: ["aof_enabled": "0", "maxmemory_policy": "allkeys-lru"])
        #expect(bad.durabilityProblems.count == 2)
        #expect(bad.durabilityProblems.joined().contains("appendonly yes"))
        #expect(bad.durabilityProblems.joined().contains("noeviction"))
        let good = RedisServerInfo(fields: ["aof_enabled": "1", "maxmemory_policy": "noeviction"])
        #expect(good.durabilityProblems.isEmpty)
    }
}

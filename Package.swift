// swift-tools-version:6.2
// 6.2 or later: swift-log, swift-metrics, swift-service-lifecycle, hummingbird and
// async-http-client declare 6.2 manifests, so an older toolchain cannot resolve the graph.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    // `any P` spelled out wherever an existential is meant.
    .enableUpcomingFeature("ExistentialAny"),
    // A file sees members only of the modules it imports itself.
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "jobq",
    // Linux only (Debian 12 and Ubuntu are tested): the runtime uses Glibc, poll(2) and
    // posix_spawn file actions as Linux has them. No `platforms:` line claims otherwise.
    // What a user of the package sees: the library and the two programs an operator runs. The
    // demo, the benchmark and the chaos test are executables of this package, not products.
    products: [
        .library(name: "JobQ", targets: ["JobQ"]),
        // The handlers of the stock worker (`exec`, `http`) and its metrics and health endpoint,
        // for a Swift service that wants them too.
        .library(name: "JobQWorkerKit", targets: ["JobQWorkerKit"]),
        .executable(name: "jobq-worker", targets: ["jobq-worker"]),
        .executable(name: "jobq-admin", targets: ["jobq-admin"]),
    ],
    dependencies: [
        // Command-line parsing, help text and usage errors for every executable: saves writing and
        // testing our own flag parser (and gives `--help` that matches the code by construction).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The logging API every Swift server library speaks: structured metadata (queue, job id,
        // worker id) and pluggable back ends without our own logger.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The `Service` protocol and graceful shutdown on SIGTERM/SIGINT for the worker: saves our
        // own signal handling, service ordering and shutdown fan-out (and composes with the user's
        // other services in one ServiceGroup).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The worker's configuration: one YAML file, JOBQ_* environment overrides, secrets kept out
        // of logs, without our own YAML parser or precedence rules. `.defaults` keeps
        // JSON; "YAML" brings Yams.
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "YAML"]),
        // The metrics API the worker reports through (counters, gauges, timers), backend-agnostic.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // Prometheus text exposition for `/metrics`: saves our own registry and formatter.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // HTTP client for `http` handlers: pooling, timeouts, redirects, TLS.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // HTTP server for `/metrics` and `/health` on the worker's metrics port (and the test
        // suite's local endpoint for `http` handlers): saves our own NIO HTTP pipeline.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already in the graph through swift-configuration; named here for `FilePath`, the type its
        // file provider takes.
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        // Already in the graph through async-http-client and hummingbird; named here because a
        // test reads HTTP responses with NIOCore's ByteBuffer and TimeAmount, which a file must
        // import itself (MemberImportVisibility).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HdrHistogram for benchmark latencies (p50…p99.9, max) without our own bucketing maths.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Already in the graph through swift-configuration's YAML trait; named here so jobq-worker
        // can check its file's types, unknown keys and alias expansion before reading it, and the
        // deploy tests can parse every Kubernetes/Compose file, without a parser of ours.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // hiredis 0.14 (Debian's libhiredis-dev). No pkgConfig: it only adds a prohibited-flag warning.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // The sockets under every Redis connection, plain or TLS through Debian's OpenSSL 3
        // (libssl-dev): hiredis 0.14 has no TLS, so hiredis stays the RESP codec and this shim
        // moves the bytes. C, because OpenSSL's API is macros and varargs Swift cannot import.
        .target(
            name: "CJobQNet",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),
        // The Redis layer under the queue: connections (pipelined, blocking, pub/sub), TLS,
        // Cluster routing, Sentinel, reply handling. A target of its own so that the queue's
        // public API stays the queue: the rest of this package reaches it through `package`
        // declarations, and only what a user configures or catches (RedisConfiguration,
        // RedisTLS, RedisError, the RedisClient handle a queue is made with) is public,
        // re-exported by JobQ.
        .target(
            name: "JobQRedis",
            dependencies: ["CHiredis", "CJobQNet"],
            swiftSettings: strict
        ),
        .target(
            name: "JobQ",
            dependencies: [
                "JobQRedis",
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            // One Lua file per atomic state move (docs/lua-scripts.md), read at run time.
            resources: [.copy("Lua")],
            swiftSettings: strict
        ),
        // Every child process jobq starts (exec programs; the private Redis servers of tests, demo
        // and benchmark) goes through this C shim: what it needs from glibc is declared only
        // under _GNU_SOURCE, which Swift's Glibc module does not define.
        .target(name: "CJobQSpawn"),
        // What the stock `jobq-worker` adds to the library, by role: the `exec` and `http`
        // handlers and the metrics/health endpoint.
        .target(
            name: "JobQWorkerKit",
            dependencies: [
                "JobQ",
                "CJobQSpawn",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What every executable shares on its command line (a main that survives a closed
        // stdout). Not a product.
        .target(
            name: "JobQCommandLine",
            dependencies: ["JobQ", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        // Starts and stops private redis-server processes (tests, demo, benchmark). Not a product.
        .target(
            name: "LocalRedis",
            dependencies: ["JobQ", "CJobQSpawn"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jobq-worker",
            dependencies: [
                "JobQCommandLine",
                "JobQ",
                "JobQWorkerKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jobq-admin",
            dependencies: [
                "JobQCommandLine",
                "JobQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jobq-demo",
            dependencies: [
                "JobQCommandLine",
                "JobQ",
                "LocalRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jobq-bench",
            dependencies: [
                "JobQCommandLine",
                "JobQ",
                "LocalRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jobq-chaos",
            dependencies: [
                "JobQCommandLine",
                "JobQ",
                "JobQWorkerKit",
                "LocalRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JobQTests",
            dependencies: ["JobQ", "JobQRedis", "JobQWorkerKit", "CHiredis", "LocalRedis", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JobQIntegrationTests",
            dependencies: [
                "JobQ", "JobQRedis", "LocalRedis", "JobQWorkerKit", "CJobQSpawn",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)

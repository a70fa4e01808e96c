public import Hummingbird
public import Logging
import Metrics
import NIOCore
public import Prometheus

/// `/metrics` (Prometheus text), `/health` (liveness) and `/health/ready` (readiness: Redis
/// reachable and the worker running) on the worker's metrics port.
public enum MetricsEndpoint {
    /// Routes every swift-metrics metric of this process into a Prometheus registry. Call once,
    /// before anything creates a metric.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// The HTTP server, a `Service` to run beside the worker. `port` 0 picks a free port;
    /// `onBound` receives the port actually bound.
    public static func server(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        ready: @escaping @Sendable () async -> Bool,
        onBound: @escaping @Sendable (Int) -> Void,
        logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("health") { _, _ -> String in "ok\n" }
        router.get("health/ready") { _, _ -> Response in
            let ok = await ready()
            return Response(status: ok ? .ok : .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: ok ? "ready\n" : "not ready\n")))
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "jobq-worker"),
            onServerRunning: { channel in onBound(channel.localAddress?.port ?? port) },
            logger: quiet
        )
    }
}

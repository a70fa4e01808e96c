import Foundation
import Testing
import Yams

/// No Docker engine or cluster runs here, so the deployment files are parsed and the
/// fields that matter are checked against the code: ports, probes, grace periods, image and
/// binary names, and every path the Dockerfile copies.
@Suite("Deployment files")
struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func text(_ path: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Seconds in a duration written like `30s`, `2m`.
    func seconds(_ text: String) -> Int? {
        if text.hasSuffix("s"), let n = Int(text.dropLast()) { return n }
        if text.hasSuffix("m"), let n = Int(text.dropLast()) { return n * 60 }
        return Int(text)
    }

    @Test("config/jobq.yaml parses, and the grace every deployment file allows exceeds its shutdown grace")
    func configuration() throws {
        let config = try #require(try Yams.load(yaml: try text("config/jobq.yaml")) as? [String: Any])
        let worker = try #require(config["worker"] as? [String: Any])
        let grace = try #require(seconds(worker["shutdownGrace"] as? String ?? ""))
        #expect(grace == 30)
        #expect(worker["lease"] as? String == "10s" && (worker["queues"] as? [String])?.isEmpty == false)
        #expect((config["handlers"] as? [String])?.isEmpty == false && config["redis"] != nil && config["log"] != nil)
        #expect(try text("config/jobq.yaml").contains("# port: 9464"))

        let compose = try #require(try Yams.load(yaml: try text("deploy/docker-compose.yml")) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        let w = try #require(services["worker"] as? [String: Any])
        #expect(try #require(seconds(w["stop_grace_period"] as? String ?? "")) > grace)
        #expect(w["stop_signal"] as? String == "SIGTERM")
        #expect((w["build"] as? [String: Any])?["dockerfile"] as? String == "deploy/Dockerfile")
        let command = try #require(w["command"] as? [String])
        #expect(command.contains("--metrics-port") && command.contains("9464"))
        #expect(((w["healthcheck"] as? [String: Any])?["test"] as? [String])?.joined(separator: " ").contains("/health/ready") == true)
        #expect((w["environment"] as? [String: Any])?["JOBQ_REDIS_URL"] as? String == "redis://redis:6379")
        let redis = try #require(services["redis"] as? [String: Any])
        #expect((redis["volumes"] as? [String])?.contains { $0.hasPrefix("../config/redis.conf:") } == true)
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("config/redis.conf").path))
        #expect(try text("config/redis.conf").contains("appendonly yes") && text("config/redis.conf").contains("maxmemory-policy noeviction"))

        let unit = try text("deploy/systemd/jobq-worker.service")
        let stop = try #require(unit.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") }.flatMap { Int($0.dropFirst("TimeoutStopSec=".count)) })
        #expect(stop > grace && unit.contains("KillSignal=SIGTERM") && unit.contains("ExecStart=/usr/local/bin/jobq-worker --config /etc/jobq/jobq.yaml"))
    }

    @Test("Kubernetes: the Deployment's grace, probes, ports and annotations match the worker")
    func kubernetes() throws {
        let documents = try Yams.load_all(yaml: try text("deploy/kubernetes/worker.yaml")).compactMap { $0 as? [String: Any] }
        func kind(_ k: String) -> [String: Any]? { documents.first { $0["kind"] as? String == k } }
        let deployment = try #require(kind("Deployment"))
        let template = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])
        let pod = try #require(template["spec"] as? [String: Any])
        #expect(try #require(pod["terminationGracePeriodSeconds"] as? Int) > 30)
        let annotations = try #require((template["metadata"] as? [String: Any])?["annotations"] as? [String: Any])
        #expect(annotations["prometheus.io/scrape"] as? String == "true" && annotations["prometheus.io/port"] as? String == "9464")
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        #expect(container["image"] as? String == "jobq-worker:latest")
        func probe(_ name: String) -> (String?, Int?) {
            let get = (container[name] as? [String: Any])?["httpGet"] as? [String: Any]
            return (get?["path"] as? String, get?["port"] as? Int)
        }
        #expect(probe("livenessProbe") == ("/health", 9464))
        #expect(probe("readinessProbe") == ("/health/ready", 9464))
        #expect((container["ports"] as? [[String: Any]])?.first?["containerPort"] as? Int == 9464)

        // The worker config inside the ConfigMap is itself valid and serves metrics on that port.
        let configMap = try #require(kind("ConfigMap"))
        let embedded = try #require((configMap["data"] as? [String: Any])?["jobq.yaml"] as? String)
        let config = try #require(try Yams.load(yaml: embedded) as? [String: Any])
        #expect((config["metrics"] as? [String: Any])?["port"] as? Int == 9464)
        #expect((config["metrics"] as? [String: Any])?["address"] as? String == "0.0.0.0")
        #expect(seconds((config["worker"] as? [String: Any])?["shutdownGrace"] as? String ?? "") == 30)
        #expect(((config["redis"] as? [String: Any])?["url"] as? String)?.contains(":") == true)

        let hpa = try #require(kind("HorizontalPodAutoscaler"))
        let target = try #require((hpa["spec"] as? [String: Any])?["scaleTargetRef"] as? [String: Any])
        #expect(target["name"] as? String == "jobq-worker" && target["kind"] as? String == "Deployment")
        #expect(try text("deploy/kubernetes/worker.yaml").contains("jobq_queue_jobs"), "the metric the worker exports")
        #expect(try text("Sources/JobQ/Worker/Heartbeat.swift").contains("\"jobq_queue_jobs\""))

        // The external metric the autoscaler reads is the one the shipped adapter rule serves,
        // from the gauge the worker exports, aggregated with max (each worker reports the depth).
        let metrics = try #require((hpa["spec"] as? [String: Any])?["metrics"] as? [[String: Any]])
        let external = try #require(metrics.first?["external"] as? [String: Any])
        let metric = try #require(external["metric"] as? [String: Any])
        let wanted = try #require(metric["name"] as? String)
        let labels = try #require((metric["selector"] as? [String: Any])?["matchLabels"] as? [String: Any])
        let adapter = try #require(try Yams.load(yaml: try text("deploy/kubernetes/prometheus-adapter.yaml")) as? [String: Any])
        let adapterConfig = try #require((adapter["data"] as? [String: Any])?["config.yaml"] as? String)
        let rules = try #require((try Yams.load(yaml: adapterConfig) as? [String: Any])?["externalRules"] as? [[String: Any]])
        let rule = try #require(rules.first { ($0["name"] as? [String: Any])?["as"] as? String == wanted }, "a rule serving \(wanted)")
        #expect((rule["seriesQuery"] as? String)?.contains("jobq_queue_jobs{state=\"waiting\"}") == true)
        let query = try #require(rule["metricsQuery"] as? String)
        #expect(query.hasPrefix("max by (queue)") && !query.contains("sum"), "one worker's report per queue, not their sum")
        #expect(labels.keys.allSatisfy { query.contains("by (\($0))") }, "every label the HPA selects on survives the aggregation")
    }

    @Test("Dockerfile: every path it copies exists; binary names match the products; the entrypoint is the worker")
    func dockerfile() throws {
        let lines = try text("deploy/Dockerfile").split(separator: "\n").map(String.init)
        let package = try text("Package.swift")
        for line in lines where line.hasPrefix("COPY ") && !line.contains("--from=") {
            let parts = line.split(separator: " ").map(String.init)
            for source in parts.dropFirst().dropLast() {
                #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "\(source) is copied but missing")
            }
        }
        for product in ["jobq-worker", "jobq-admin"] {
            #expect(lines.contains { $0.contains("--product \(product)") })
            #expect(package.contains(".executable(name: \"\(product)\""))
        }
        #expect(lines.contains { $0.contains("jobq_JobQ.resources") }, "the Lua scripts travel with the binaries")
        #expect(lines.contains("ENTRYPOINT [\"/usr/local/bin/jobq-worker\"]"))
        #expect(lines.contains("EXPOSE 9464") && lines.contains("STOPSIGNAL SIGTERM"))
        #expect(lines.contains { $0.hasPrefix("FROM ") && $0.contains(" AS build") } && lines.filter { $0.hasPrefix("FROM ") }.count == 2)
    }

    @Test("the systemd unit passes systemd-analyze verify (when systemd-analyze exists)")
    func systemdUnit() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else { return }
        // verify resolves ExecStart: point it at a stand-in binary in a temp copy of the unit.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let unit = try text("deploy/systemd/jobq-worker.service").replacingOccurrences(of: "/usr/local/bin/jobq-worker", with: "/bin/true")
        let path = dir.appendingPathComponent("jobq-worker.service").path
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // Problems with the unit are reported with its file name; other noise (no systemd as
        // PID 1 in a container) is not about the unit.
        let aboutUnit = output.split(separator: "\n").filter { $0.contains("jobq-worker.service") && !$0.contains("Failed to connect") }
        #expect(aboutUnit.isEmpty, "\(output)")
    }
}

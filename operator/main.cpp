// repl-operator: wires flags, the kube client, the templates and the controller, and stops on
// SIGINT/SIGTERM. No logic lives here.
#include <malloc.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "common/clock.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "common/time.hpp"
#include "controller.hpp"
#include "events.hpp"
#include "health.hpp"
#include "kube/config.hpp"
#include "kube/http_server.hpp"
#include "kube/incidents.hpp"
#include "kube/leader_election.hpp"
#include "kube/transport.hpp"
#include "operator_metrics.hpp"
#include "reconciler.hpp"
#include "repl/children.hpp"

namespace {

constexpr int kIoThreads = 1;
constexpr auto kReleaseTimeout = std::chrono::seconds(1);
constexpr auto kShutdownBackstop = std::chrono::seconds(5);

// Asked for by a signal, by losing the Lease, or by the watches ending; waited for by main().
class ShutdownRequest {
 public:
  void request() {
    std::lock_guard lock(mu_);
    requested_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return requested_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
};

}  // namespace

#ifndef REPL_DEFAULT_TEMPLATES
#define REPL_DEFAULT_TEMPLATES "templates"
#endif

int main(int argc, char** argv) {
  using namespace repl;
  // glibc gives each thread that allocates its own arena and keeps what they free: the watchers'
  // LIST pages would stay resident in a dozen arenas. Two arenas keep the steady state compact.
  mallopt(M_ARENA_MAX, 2);
  // A fixed mmap threshold: the 64 KiB chunks of the documents a reconcile renders and a LIST page
  // parses are mapped and unmapped whole, not carved from the heap between long-lived cache entries,
  // which they left full of holes (at 2,000 Repls: 0.7 MB less resident after sync). glibc's
  // default threshold grows to the largest block freed, so it would soon stop doing that.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  std::string kubeconfig;
  std::string templates_dir = REPL_DEFAULT_TEMPLATES;
  bool network_policy = true;
  std::string log_level = "info";
  ControllerOptions controller_options;
  ChildSettings settings;
  // Leader election is on by default in a cluster (where replicas may run), off on a laptop.
  bool leader_elect = process_getenv("KUBERNETES_SERVICE_HOST").has_value();
  std::string election_namespace;
  std::string election_id = "repl-operator";
  std::string metrics_addr = ":8080";
  std::string health_addr = ":8081";

  Flags flags(
      "repl-operator",
      "Reconciles each Repl (peetcode.com/v1alpha1) into a Deployment, a Service and an Ingress it owns,\n"
      "and reports the Repl's phase and URLs in its status.");
  flags.add("kubeconfig", "", &kubeconfig,
            "kubeconfig file; without it $KUBECONFIG, then the in-cluster service account, is used");
  flags.add("namespace", "REPL_NAMESPACE", &controller_options.ns,
            "watch Repls in this namespace only (empty: all)");
  flags.add("templates", "REPL_TEMPLATES", &templates_dir,
            "directory holding deployment.yaml, service.yaml, ingress.yaml (and networkpolicy.yaml)");
  flags.add("network-policy", "REPL_NETWORK_POLICY", &network_policy,
            "give each Repl a NetworkPolicy from networkpolicy.yaml");
  flags.add("runner-image", "REPL_RUNNER_IMAGE", &settings.runner_image,
            "runner image, unless a Repl sets spec.image");
  flags.add("init-image", "REPL_INIT_IMAGE", &settings.init_image,
            "image of the init container that copies code from S3");
  flags.add("bucket", "REPL_BUCKET", &settings.bucket, "S3 bucket holding <code-prefix>/<replId>/");
  flags.add("s3-endpoint", "REPL_S3_ENDPOINT", &settings.s3_endpoint,
            "URL of an S3-compatible store (empty: AWS)");
  flags.add("s3-egress-cidr", "REPL_S3_EGRESS_CIDR", &settings.s3_egress_cidr,
            "CIDR (IPv4 or IPv6) of a private --s3-endpoint, which each NetworkPolicy lets the pod reach on "
            "the endpoint's port (its URL's, else 80 for http, 443 for https); empty: no such rule");
  flags.add("s3-region", "REPL_S3_REGION", &settings.s3_region, "region of the bucket");
  flags.add("code-prefix", "REPL_CODE_PREFIX", &settings.code_prefix,
            "a repl's code is s3://<bucket>/<code-prefix>/<replId>/");
  flags.add("base-prefix", "REPL_BASE_PREFIX", &settings.base_prefix,
            "a repl without code starts from s3://<bucket>/<base-prefix>/<language>/");
  flags.add("s3-credentials", "REPL_S3_CREDENTIALS", &settings.s3_credentials,
            "secret (keys from --aws-secret) or ambient (the platform's workload identity)");
  flags.add("aws-secret", "REPL_AWS_SECRET", &settings.aws_secret_name,
            "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in each Repl's namespace");
  flags.add("ide-domain", "REPL_IDE_DOMAIN", &settings.ide_domain,
            "IDE host is <replId>.<ide-domain> (port 3001)");
  flags.add("preview-domain", "REPL_PREVIEW_DOMAIN", &settings.preview_domain,
            "preview host is <replId>.<preview-domain> (port 3000)");
  flags.add("ingress-class", "REPL_INGRESS_CLASS", &settings.ingress_class,
            "ingressClassName of each Ingress");
  flags.add("ingress-namespace", "REPL_INGRESS_NAMESPACE", &settings.ingress_namespace,
            "namespace of the ingress controller, the only one a repl's NetworkPolicy lets in");
  flags.add("runner-cpu-request", "REPL_RUNNER_CPU_REQUEST", &settings.runner_cpu_request,
            "runner CPU request");
  flags.add("runner-cpu-limit", "REPL_RUNNER_CPU_LIMIT", &settings.runner_cpu_limit, "runner CPU limit");
  flags.add("runner-memory-request", "REPL_RUNNER_MEMORY_REQUEST", &settings.runner_memory_request,
            "runner memory request");
  flags.add("runner-memory-limit", "REPL_RUNNER_MEMORY_LIMIT", &settings.runner_memory_limit,
            "runner memory limit");
  flags.add("runner-ephemeral-storage-request", "REPL_RUNNER_EPHEMERAL_STORAGE_REQUEST",
            &settings.runner_ephemeral_storage_request, "runner scratch disk request");
  flags.add("runner-ephemeral-storage-limit", "REPL_RUNNER_EPHEMERAL_STORAGE_LIMIT",
            &settings.runner_ephemeral_storage_limit,
            "runner scratch disk limit (also the workspace's size)");
  flags.add("runner-uid", "REPL_RUNNER_UID", &settings.runner_uid,
            "uid every container of a runner pod runs as (runAsUser; not 0: the pod runs as non-root)");
  flags.add("runner-gid", "REPL_RUNNER_GID", &settings.runner_gid,
            "gid of every container of a runner pod (runAsGroup), and the workspace's group (fsGroup)");
  flags.add("sync-interval", "REPL_SYNC_INTERVAL", &settings.sync_interval_seconds,
            "seconds between two pushes of a running repl's workspace to S3 by its sync sidecar");
  flags.add("termination-grace-period", "REPL_TERMINATION_GRACE_PERIOD",
            &settings.termination_grace_period_seconds,
            "seconds a stopping runner pod has for the runner's exit and the final sync to S3 (at least 10)");
  int sync_check_interval = 60;
  flags.add("sync-check-interval", "REPL_SYNC_CHECK_INTERVAL", &sync_check_interval,
            "seconds between two reads of each running sync sidecar's log (how its pushes go: the Synced "
            "condition; live IDE connections: activity); 0: never");
  std::string request_timeout = "30s", watch_stall_timeout = "3m";
  flags.add("request-timeout", "REPL_REQUEST_TIMEOUT", &request_timeout,
            "a request to the API server whose answer stops coming for this long fails, and is retried "
            "(h/m/s, at least 1s)");
  flags.add("watch-stall-timeout", "REPL_WATCH_STALL_TIMEOUT", &watch_stall_timeout,
            "a watch that brings nothing for this long (the API server sends a bookmark every minute) is "
            "replaced (h/m/s, at least 10s; 0: never)");
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  flags.add("leader-election-lease-duration", "REPL_LEADER_ELECTION_LEASE_DURATION", &lease_duration,
            "how long a standby waits after the leader's last renewal before taking over (h/m/s)");
  flags.add("leader-election-renew-deadline", "REPL_LEADER_ELECTION_RENEW_DEADLINE", &renew_deadline,
            "the leader stops writing when it has not renewed for this long (h/m/s; less than the lease "
            "duration)");
  flags.add("leader-election-retry-period", "REPL_LEADER_ELECTION_RETRY_PERIOD", &retry_period,
            "between attempts to acquire or renew the Lease (h/m/s)");
  std::string idle_timeout = "30m", ttl_after_suspend = "0";
  flags.add("idle-timeout", "REPL_IDLE_TIMEOUT", &idle_timeout,
            "a running repl with no activity (/start, heartbeat) for this long is suspended, unless its "
            "spec.idleTimeout says otherwise (h/m/s, e.g. 30m; 0: never)");
  flags.add("ttl-after-suspend", "REPL_TTL_AFTER_SUSPEND", &ttl_after_suspend,
            "a repl suspended this long is deleted (after its final sync), unless its spec.ttlAfterSuspend "
            "says otherwise (h/m/s, e.g. 168h; 0: never)");
  flags.add("url-scheme", "REPL_URL_SCHEME", &settings.url_scheme, "scheme of the URLs reported in status");
  flags.add("workers", "REPL_WORKERS", &controller_options.workers, "Repls reconciled in parallel");
  flags.add("leader-elect", "REPL_LEADER_ELECT", &leader_elect,
            "only the replica holding the Lease reconciles (default: on when running in a cluster)");
  flags.add("leader-election-namespace", "REPL_LEADER_ELECTION_NAMESPACE", &election_namespace,
            "namespace of the Lease (default: the pod's namespace, else the kubeconfig's, else default)");
  flags.add("leader-election-id", "REPL_LEADER_ELECTION_ID", &election_id, "name of the Lease");
  flags.add("metrics-addr", "REPL_METRICS_ADDR", &metrics_addr,
            "[host]:port serving /metrics (Prometheus text); empty: off");
  flags.add("health-addr", "REPL_HEALTH_ADDR", &health_addr,
            "[host]:port serving /healthz and /readyz (ready once every cache has synced); empty: off");
  flags.add("log-level", "REPL_LOG_LEVEL", &log_level, "debug, info, warn or error");

  if (auto exit_code = flags.parse_main(argc, argv)) return *exit_code;
  const auto level = log::parse_level(log_level);
  if (!level) {
    std::cerr << "repl-operator: --log-level must be debug, info, warn or error\n";
    return 2;
  }
  log::set_level(*level);
  controller_options.sync_check_interval = std::chrono::seconds(std::max(0, sync_check_interval));
  settings.activity_report_seconds = std::max(0, sync_check_interval);
  if (controller_options.workers < 1) {
    std::cerr << "repl-operator: --workers must be at least 1\n";
    return 2;
  }
  LifecycleSettings lifecycle;
  kube::TransportOptions transport_options;
  std::chrono::seconds stall_timeout{};
  kube::LeaderElectionConfig election;
  for (const auto& [flag, text, target] :
       {std::tuple{"--idle-timeout", &idle_timeout, &lifecycle.idle_timeout},
        std::tuple{"--ttl-after-suspend", &ttl_after_suspend, &lifecycle.ttl_after_suspend},
        std::tuple{"--request-timeout", &request_timeout, &transport_options.request_timeout},
        std::tuple{"--watch-stall-timeout", &watch_stall_timeout, &stall_timeout},
        std::tuple{"--leader-election-lease-duration", &lease_duration, &election.lease_duration},
        std::tuple{"--leader-election-renew-deadline", &renew_deadline, &election.renew_deadline},
        std::tuple{"--leader-election-retry-period", &retry_period, &election.retry_period}}) {
    const auto parsed = parse_hms_duration(*text);
    if (!parsed) {
      std::cerr << "repl-operator: " << flag << " must be 0 or h/m/s such as 30m or 168h, not \"" << *text
                << "\"\n";
      return 2;
    }
    *target = *parsed;
  }
  if (transport_options.request_timeout < std::chrono::seconds(1)) {
    std::cerr << "repl-operator: --request-timeout must be at least 1s\n";
    return 2;
  }
  if (stall_timeout != std::chrono::seconds(0) && stall_timeout < std::chrono::seconds(10)) {
    std::cerr << "repl-operator: --watch-stall-timeout must be 0 or at least 10s\n";
    return 2;
  }
  controller_options.watch_stall_timeout = stall_timeout;
  // A watch whose response never starts is bounded by the transport, a little after the stall.
  if (stall_timeout.count() > 0) transport_options.stream_timeout = stall_timeout + std::chrono::seconds(30);
  if (const auto problems = settings_problems(settings); !problems.empty()) {
    for (const auto& p : problems) std::cerr << "repl-operator: " << p << "\n";
    return 2;
  }

  // Before the first client is made, or it cannot be sized.
  if (!kube::limit_http_threads()) log::warn("the HTTP client's thread pool was started before it was sized");
  auto connection = kube::connect(kubeconfig, transport_options);
  if (!connection) {
    log::error("cannot connect", {{"error", connection.error()}});
    return 1;
  }
  auto templates = load_child_templates(templates_dir, network_policy, settings);
  if (!templates) {
    log::error("cannot load templates", {{"error", templates.error().message}});
    return 1;
  }

  // One io_context carries the watches, the Lease renewal, the Event sender, the timers (the
  // queue's delays, the watchers' backoffs, the shutdown backstop) and the signals; a fixed pool
  // runs reconciles, which block their thread.
  boost::asio::io_context io;
  auto io_work = boost::asio::make_work_guard(io);
  boost::asio::thread_pool reconcile_pool(static_cast<std::size_t>(controller_options.workers));
  AsioClock clock(io.get_executor());

  OperatorMetrics metrics;
  kube::Client client(connection->transport, kube::incident_logger(clock, metrics.api_observer()));
  std::atomic<bool> lost_leadership{false};
  std::atomic<bool> shutting_down{false};
  ShutdownRequest shutdown;
  const std::string identity = kube::default_leader_identity();
  std::unique_ptr<kube::LeaderElector> elector;
  // is_leader() turns false at the renew deadline by itself, before the standby may take over,
  // even while a slow Lease request is still in flight. Asked before each reconcile, and (the
  // fence) before each write of the reconciler and the Event sender: a leader frozen in the middle
  // of a reconcile past its Lease sends nothing more when it thaws. The elector's own Lease writes
  // go through `client`.
  const auto leading = [&elector] { return elector && elector->is_leader(); };
  kube::Client writer = leader_elect ? client.gated(leading) : client;
  ApiEventSender api_events(writer, clock, identity);
  AsyncEventRecorder events(api_events, clock);
  Reconciler reconciler(writer, events, clock, settings, std::move(*templates), lifecycle);
  controller_options.leading_at_start = !leader_elect;
  if (leader_elect) controller_options.may_write = leading;
  // The first LISTs are the largest transient allocation the operator ever makes: give it back.
  controller_options.on_synced = [] { malloc_trim(0); };
  Controller controller(writer, reconciler, metrics, clock, io.get_executor(), reconcile_pool.get_executor(),
                        controller_options);

  if (leader_elect) {
    election.lease = {election_namespace.empty()
                          ? (connection->config.ns.empty() ? "default" : connection->config.ns)
                          : election_namespace,
                      election_id};
    election.identity = identity;
    if (auto valid = kube::validate(election); !valid) {
      log::error("bad leader election settings", {{"error", valid.error()}});
      return 2;
    }
    elector = std::make_unique<kube::LeaderElector>(
        client, election,
        kube::LeaderCallbacks{[&] {
                                log::info("became leader", {{"identity", identity}});
                                controller.set_leading(true);
                              },
                              [&] {
                                if (shutting_down) return;  // our own release at the end
                                // The controller does not resume after losing the Lease: like
                                // kube-controller-manager, stop, and let the Deployment restart us.
                                log::error("lost leadership", {{"identity", identity}});
                                controller.set_leading(false);
                                lost_leadership = true;
                                shutdown.request();
                              }},
        clock);
  }

  metrics.add_counter("repl_operator_events_dropped_total",
                      "Events not sent because too many were waiting (the API server is slow or down).",
                      [&events] { return static_cast<double>(events.dropped()); });
  metrics.add_gauge("repl_operator_leader", "1 while this replica reconciles (holds the Lease).",
                    [&] { return elector ? (elector->is_leader() ? 1.0 : 0.0) : 1.0; });
  std::unique_ptr<kube::HttpServer> metrics_server;
  std::unique_ptr<kube::HttpServer> health_server;
  const auto serve = [&io, &clock](const std::string& what, const std::string& addr, kube::Routes routes,
                                   std::unique_ptr<kube::HttpServer>& server) {
    if (addr.empty()) return true;
    auto started = kube::HttpServer::start(io.get_executor(), clock, addr, std::move(routes));
    if (!started) {
      log::error("cannot serve " + what, {{"addr", addr}, {"error", started.error()}});
      return false;
    }
    server = std::move(*started);
    log::info("serving " + what, {{"addr", server->host() + ":" + std::to_string(server->port())}});
    return true;
  };
  if (!serve("metrics", metrics_addr, metrics_routes(metrics.registry()), metrics_server) ||
      !serve("health", health_addr, health_routes({{"caches", [&] { return controller.synced(); }}}),
             health_server)) {
    return 1;
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("stopping", {{"signal", std::to_string(sig)}});
    shutdown.request();
  });
  std::vector<std::thread> io_threads;
  for (int i = 0; i < kIoThreads; ++i) io_threads.emplace_back([&io] { io.run(); });
  if (elector) elector->start();

  log::info("starting", {{"server", connection->config.server},
                         {"config", connection->config.source},
                         {"namespace", controller_options.ns.empty() ? "(all)" : controller_options.ns},
                         {"templates", templates_dir}});
  std::thread controller_thread([&] {
    controller.run();
    shutdown.request();  // the watches ended by themselves: nothing left to do
  });

  // Shutdown, in the order that lets a standby take over soonest and bounds the whole: no more
  // reconciles (in-flight ones get their grace), the Lease released (a request to a dead API server
  // gets kReleaseTimeout), then one cancellation of every request still in flight (the watches'
  // lists, a blocked Lease request), which ends every thread. A backstop timer exits the process
  // if something still holds it after all that.
  shutdown.wait();
  shutting_down = true;
  auto backstop = clock.make_timer();
  backstop->wait_until(clock.now() + controller_options.shutdown_grace + kShutdownBackstop, [] {
    log::error("shutdown took too long; exiting");
    std::_Exit(1);
  });
  controller.stop();
  if (elector) {
    elector->stop();
    auto release_deadline = clock.make_timer();
    release_deadline->wait_until(clock.now() + kReleaseTimeout, [&client] {
      log::warn("the Lease was not released in time");
      client.cancel_all();  // ends the request in flight, and so the elector
    });
    elector->wait();
    release_deadline->cancel();
  }
  client.cancel_all();
  controller_thread.join();
  reconcile_pool.join();
  events.drain();  // while the io_context still runs its timer
  backstop->cancel();
  signals.cancel();
  metrics_server.reset();  // while the io_context still runs their closing
  health_server.reset();
  io_work.reset();
  io.stop();
  for (auto& t : io_threads) t.join();
  log::info("stopped");
  return lost_leadership ? 1 : 0;
}

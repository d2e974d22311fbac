// repl-bench: the measuring half of `make bench` (bench/run.sh starts the cluster, the operator and
// the shim, and calls this). It creates Repls and watches, with the project's own client, for the
// moment each child appears and each status is written, so every figure is "observed by a watch",
// as a user's `kubectl get -w` would see it.
//
//   repl-bench latency  --namespace NS --count 200 [--shim URL]   one Repl after another
//   repl-bench burst    --namespace NS --count 1000 --concurrency 32    Repls at once
//   repl-bench baseline --namespace NS --count 1000 --concurrency 32    the same writes, directly
//   repl-bench floor    --namespace NS --count 200    latency's floor: a Repl's children, directly
//   repl-bench populate --namespace NS --count N [--suspended]    create N, wait for every status
//   repl-bench soak     --namespace NS --seconds S --rate 10 --count 100   churn for S seconds
//
// Each prints one JSON object on stdout; progress goes to stderr.
#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/flags.hpp"
#include "common/json.hpp"
#include "common/time.hpp"
#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/resource.hpp"
#include "kube/transport.hpp"
#include "kube/watcher.hpp"
#include "repl/children.hpp"
#include "repl/status.hpp"

namespace {

using namespace repl;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// The kinds of child a Repl gets with the default templates.
const std::array<kube::Resource, 4> kChildren = {kube::deployments(), kube::services(), kube::ingresses(),
                                                 kube::network_policies()};

struct Timeline {
  std::optional<TimePoint> seen;  // first delivered by the Repl watch
  std::array<std::optional<TimePoint>, kChildren.size()> child;
  std::optional<TimePoint> status;  // first status with a phase
  std::optional<TimePoint> ready;   // first Ready=True

  std::optional<TimePoint> last_child() const {
    TimePoint last{};
    for (const auto& c : child) {
      if (!c) return std::nullopt;
      last = std::max(last, *c);
    }
    return last;
  }
};

// What the watches saw, by Repl name.
class Recorder {
 public:
  void child(std::size_t kind, const std::string& repl) {
    update(repl, [kind](Timeline& t, TimePoint now) {
      if (!t.child[kind]) t.child[kind] = now;
    });
  }
  void repl(const rapidjson::Value& object) {
    const std::string name = json::string_at(json::member(object, "metadata"), "name");
    const auto* status = json::member(object, "status");
    const bool has_phase = !json::string_at(status, "phase").empty();
    bool ready = false;
    if (const auto* conditions = json::member(status, "conditions"); conditions && conditions->IsArray()) {
      for (const auto& c : conditions->GetArray()) {
        ready = ready || (json::string_at(&c, "type") == "Ready" && json::string_at(&c, "status") == "True");
      }
    }
    update(name, [has_phase, ready](Timeline& t, TimePoint now) {
      if (!t.seen) t.seen = now;
      if (has_phase && !t.status) t.status = now;
      if (ready && !t.ready) t.ready = now;
    });
  }
  // Waits until `done(timeline)` holds for `repl`; false on timeout.
  template <class Pred>
  bool wait(const std::string& repl, Pred done, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(timelines_[repl]); });
  }
  // Waits until `done` holds for every one of `repls`.
  template <class Pred>
  bool wait_all(const std::vector<std::string>& repls, Pred done, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      return std::all_of(repls.begin(), repls.end(),
                         [&](const std::string& r) { return done(timelines_[r]); });
    });
  }
  Timeline get(const std::string& repl) {
    std::lock_guard lock(mu_);
    return timelines_[repl];
  }

 private:
  template <class F>
  void update(const std::string& repl, F f) {
    {
      std::lock_guard lock(mu_);
      f(timelines_[repl], Clock::now());
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Timeline> timelines_;
};

class ChildSink final : public kube::WatchSink {
 public:
  ChildSink(Recorder& r, std::size_t kind) : recorder_(r), kind_(kind) {}
  void begin_resync() override {}
  void resync_item(const rapidjson::Value& o) override { seen(o); }
  void end_resync() override {}
  void on_event(kube::EventType type, const rapidjson::Value& o) override {
    if (type != kube::EventType::kDeleted) seen(o);
  }

 private:
  void seen(const rapidjson::Value& o) {
    const auto* labels = json::member(json::member(o, "metadata"), "labels");
    const std::string repl = json::string_at(labels, "peetcode.com/repl");
    if (!repl.empty()) recorder_.child(kind_, repl);
  }
  Recorder& recorder_;
  std::size_t kind_;
};

class ReplSink final : public kube::WatchSink {
 public:
  explicit ReplSink(Recorder& r) : recorder_(r) {}
  void begin_resync() override {}
  void resync_item(const rapidjson::Value& o) override { recorder_.repl(o); }
  void end_resync() override {}
  void on_event(kube::EventType type, const rapidjson::Value& o) override {
    if (type != kube::EventType::kDeleted) recorder_.repl(o);
  }

 private:
  Recorder& recorder_;
};

// Watches of one namespace's Repls and managed children, feeding a Recorder, for the process's life.
class Watches {
 public:
  Watches(kube::Client& client, const std::string& ns, Recorder& recorder) : repls_(recorder) {
    for (std::size_t i = 0; i < kChildren.size(); ++i)
      children_.push_back(std::make_unique<ChildSink>(recorder, i));
    add(client, kube::repls(), ns, "", repls_);
    for (std::size_t i = 0; i < kChildren.size(); ++i) {
      add(client, kChildren[i], ns, "app.kubernetes.io/managed-by=repl-operator", *children_[i]);
    }
    for (auto& r : runners_) r->start();
    thread_ = std::thread([this] { io_.run(); });  // the watchers' continuations and backoff timers
  }
  ~Watches() {
    for (auto& r : runners_) r->stop();
    for (auto& r : runners_) r->wait();
    work_.reset();
    thread_.join();
  }

 private:
  void add(kube::Client& client, const kube::Resource& r, const std::string& ns, const std::string& selector,
           kube::WatchSink& sink) {
    runners_.push_back(std::make_unique<kube::WatchRunner>(
        client, clock_, io_.get_executor(),
        kube::WatcherOptions{kube::collection_path(r, ns), selector, 500, r.plural}, sink));
  }
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  AsioClock clock_{io_.get_executor()};
  ReplSink repls_;
  std::vector<std::unique_ptr<ChildSink>> children_;
  std::vector<std::unique_ptr<kube::WatchRunner>> runners_;
  std::thread thread_;
};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// {"p50":..,"p90":..,"p99":..,"max":..} of `v` (nearest rank).
std::string percentiles(std::vector<double> v) {
  if (v.empty()) return "null";
  std::sort(v.begin(), v.end());
  const auto at = [&v](double p) {
    const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p * static_cast<double>(v.size()))));
    return v[std::min(rank, v.size()) - 1];
  };
  char buf[200];
  std::snprintf(buf, sizeof buf, R"({"p50":%.2f,"p90":%.2f,"p99":%.2f,"max":%.2f,"n":%zu})", at(0.5), at(0.9),
                at(0.99), v.back(), v.size());
  return buf;
}

std::string series(const std::vector<double>& v) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
  out << "]";
  return out.str();
}

rapidjson::Document repl_object(const std::string& ns, const std::string& name, bool suspended) {
  auto doc = kube::new_object(kube::repls(), ns, name);
  auto& a = doc.GetAllocator();
  rapidjson::Value spec(rapidjson::kObjectType);
  spec.AddMember("userId", "bench", a);
  spec.AddMember("language", "node-js", a);
  if (suspended) spec.AddMember("suspended", true, a);
  doc.AddMember("spec", std::move(spec), a);
  return doc;
}

struct Options {
  std::string kubeconfig;
  std::string ns = "bench";
  std::string shim;
  std::string templates = "templates";
  std::string prefix = "r";
  int count = 200;
  int concurrency = 32;
  bool suspended = false;
  int seconds = 1800;
  int rate = 10;
};

// Runs `work(i)` for i in [0, count) on `concurrency` threads.
template <class F>
void parallel(int count, int concurrency, F work) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      for (int i; (i = next++) < count;) work(i);
    });
  }
  for (auto& t : threads) t.join();
}

int latency(kube::Client& client, const Options& o) {
  Recorder recorder;
  Watches watches(client, o.ns, recorder);
  std::shared_ptr<kube::Transport> shim;
  if (!o.shim.empty()) {
    kube::ClusterConfig cfg;
    cfg.server = o.shim;
    auto t = kube::make_http_transport(cfg);
    if (!t) {
      std::cerr << "repl-bench: " << t.error().message << "\n";
      return 1;
    }
    shim = *t;
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the watches have listed
  // A first Repl, not counted: the time it takes is printed apart ("first_ready", null when it is
  // not Ready within 5 minutes), as an operator just started may take longer for it.
  const std::string first = o.prefix + "first";
  const auto first_t0 = Clock::now();
  if (auto r = client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, first, false));
      !r) {
    std::cerr << "repl-bench: create " << first << ": " << r.error().describe() << "\n";
    return 1;
  }
  std::optional<double> first_ready;
  if (recorder.wait(
          first, [](const Timeline& t) { return t.last_child() && t.ready; }, std::chrono::seconds(300))) {
    first_ready = ms(*recorder.get(first).ready - first_t0);
  } else {
    std::cerr << "repl-bench: " << first << " not Ready within 300 s; measuring on\n";
  }
  std::vector<double> to_children, to_ready, call;
  int timed_out = 0;
  std::array<std::vector<double>, kChildren.size()> by_kind;
  for (int i = 0; i < o.count; ++i) {
    const std::string name = o.prefix + std::to_string(i);
    const auto t0 = Clock::now();
    if (shim) {
      const auto r = shim->send({"POST", "/start", "application/json",
                                 R"({"userId":"bench","replId":")" + name + R"(","language":"node-js"})"});
      if (!r || r->status != 201) {
        std::cerr << "repl-bench: /start " << name << " failed\n";
        return 1;
      }
    } else if (auto r =
                   client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, name, false));
               !r) {
      std::cerr << "repl-bench: create " << name << ": " << r.error().describe() << "\n";
      return 1;
    }
    call.push_back(ms(Clock::now() - t0));
    if (!recorder.wait(
            name, [](const Timeline& t) { return t.last_child() && t.ready; }, std::chrono::seconds(60))) {
      // Counted and left out of the percentiles: one slow Repl does not end the whole run.
      std::cerr << "repl-bench: " << name << " not Ready within 60 s\n";
      ++timed_out;
      continue;
    }
    const auto t = recorder.get(name);
    to_children.push_back(ms(*t.last_child() - t0));
    for (std::size_t k = 0; k < kChildren.size(); ++k) by_kind[k].push_back(ms(*t.child[k] - t0));
    to_ready.push_back(ms(*t.ready - t0));
    if ((i + 1) % 50 == 0) std::cerr << "  " << (i + 1) << "/" << o.count << "\n";
  }
  std::cout << R"({"via":")" << (shim ? "start" : "create") << R"(","first_ready":)"
            << (first_ready ? std::to_string(*first_ready) : "null") << R"(,"not_ready_in_60s":)" << timed_out
            << R"(,"call":)" << percentiles(call) << R"(,"children":)" << percentiles(to_children)
            << R"(,"ready":)" << percentiles(to_ready);
  for (std::size_t k = 0; k < kChildren.size(); ++k) {
    std::cout << R"(,")" << kChildren[k].plural << R"(":)" << percentiles(by_kind[k]);
  }
  std::cout << R"(,"children_series":)" << series(to_children) << R"(,"ready_series":)" << series(to_ready)
            << "}\n";
  return 0;
}

int burst(kube::Client& client, const Options& o) {
  // `count` Repls created at once; done when every child exists and every status is written.
  Recorder recorder;
  Watches watches(client, o.ns, recorder);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::vector<std::string> names;
  for (int i = 0; i < o.count; ++i) names.push_back(o.prefix + std::to_string(i));
  std::atomic<int> failed{0};
  const auto t0 = Clock::now();
  parallel(o.count, o.concurrency, [&](int i) {
    if (!client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, names[i], false)))
      ++failed;
  });
  if (failed > 0) {
    std::cerr << "repl-bench: " << failed << " creates failed\n";
    return 1;
  }
  if (!recorder.wait_all(
          names, [](const Timeline& t) { return t.last_child() && t.status; }, std::chrono::seconds(900))) {
    std::cerr << "repl-bench: the burst did not complete within 900 s\n";
    return 1;
  }
  TimePoint end{};
  for (const auto& n : names) {
    const auto t = recorder.get(n);
    end = std::max({end, *t.last_child(), *t.status});
  }
  const double operator_ms = ms(end - t0);
  std::cerr << "  operator: " << operator_ms << " ms\n";
  std::printf(R"({"repls":%d,"concurrency":%d,"operator_ms":%.1f})"
              "\n",
              o.count, o.concurrency, operator_ms);
  return 0;
}

// The Repl an operator would see once `created` (the API server's answer to its create).
Repl created_repl(const Options& o, const std::string& name, const rapidjson::Value& created) {
  Repl r;
  r.key = {o.ns, name};
  r.spec.user_id = "bench";
  r.spec.language = "node-js";
  r.uid = json::string_at(json::member(created, "metadata"), "uid");
  r.generation = 1;
  return r;
}

std::optional<std::vector<ChildTemplate>> templates_or_say(const Options& o) {
  auto templates = load_child_templates(o.templates);
  if (!templates) {
    std::cerr << "repl-bench: " << templates.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*templates);
}

// The floor of latency's "create -> last child", with no operator running: the bench itself acts as
// an operator that costs nothing. Per Repl: create it, wait for the Repl watch to deliver it (the
// hop every operator waits for), apply its four children at once, rendered by the same
// templates, and time until the child watches have seen all four; one Repl after another.
int floor_latency(kube::Client& client, const Options& o) {
  const auto templates = templates_or_say(o);
  if (!templates) return 1;
  Recorder recorder;
  Watches watches(client, o.ns, recorder);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the watches have listed
  std::vector<double> to_children, to_seen, writes;
  for (int i = 0; i < o.count; ++i) {
    const std::string name = o.prefix + std::to_string(i);
    const auto t0 = Clock::now();
    auto created = client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, name, false));
    if (!created ||
        !recorder.wait(
            name, [](const Timeline& t) { return t.seen.has_value(); }, std::chrono::seconds(60))) {
      std::cerr << "repl-bench: " << name << " was not created and seen\n";
      return 1;
    }
    auto children = desired_children(created_repl(o, name, *created), ChildSettings{}, *templates);
    if (!children) {
      std::cerr << "repl-bench: cannot render the children of " << name << ": " << children.error().message
                << "\n";
      return 1;
    }
    const auto w0 = Clock::now();
    // As the operator does: asynchronous server-side applies, all in flight at once.
    std::mutex mu;
    std::condition_variable all_in;
    std::size_t pending = children->size();
    int failed = 0;
    for (const auto& c : *children) {
      client.apply_async(kube::object_path(c.resource, o.ns, c.name), c.object, "repl-operator",
                         [&](kube::Client::Answer applied) {
                           std::lock_guard lock(mu);
                           if (!applied) {
                             std::cerr << "repl-bench: apply: " << applied.error().describe() << "\n";
                             ++failed;
                           }
                           if (--pending == 0) all_in.notify_one();
                         });
    }
    {
      std::unique_lock lock(mu);
      all_in.wait(lock, [&] { return pending == 0; });
    }
    writes.push_back(ms(Clock::now() - w0));
    if (failed > 0 ||
        !recorder.wait(
            name, [](const Timeline& t) { return t.last_child().has_value(); }, std::chrono::seconds(60))) {
      std::cerr << "repl-bench: the children of " << name << " were not created and seen\n";
      return 1;
    }
    const auto t = recorder.get(name);
    to_seen.push_back(ms(*t.seen - t0));
    to_children.push_back(ms(*t.last_child() - t0));
    // The cluster's own work for this Repl (its ReplicaSet, pod, scheduling, kwok's stages) ends
    // before the next, as latency's wait for Ready lets it: otherwise it lands in the next figure.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::cout << R"({"children":)" << percentiles(to_children) << R"(,"seen":)" << percentiles(to_seen)
            << R"(,"child_writes":)" << percentiles(writes) << "}\n";
  return 0;
}

// The physical baseline of a burst, with no operator running: the writes an operator must make per
// Repl (the Repl's create, its four children's creates, owned by it and rendered by the same
// templates, the apply of its finalizer, and one status apply), issued directly, `concurrency`
// Repls at a time.
int baseline(kube::Client& client, const Options& o) {
  const auto templates = templates_or_say(o);
  if (!templates) return 1;
  std::atomic<int> failed{0}, writes{0};
  const auto write = [&](const auto& result) {
    ++writes;
    if (!result) ++failed;
    return static_cast<bool>(result);
  };
  const auto t0 = Clock::now();
  parallel(o.count, o.concurrency, [&](int i) {
    const std::string name = o.prefix + std::to_string(i);
    auto created = client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, name, false));
    if (!write(created)) return;
    const Repl r = created_repl(o, name, *created);
    auto children = desired_children(r, ChildSettings{}, *templates);
    if (!children) {
      ++failed;
      return;
    }
    for (const auto& c : *children) write(client.create(kube::collection_path(c.resource, o.ns), c.object));
    write(client.apply(kube::object_path(kube::repls(), o.ns, r.key.name), finalizer_apply_body(r.key, true),
                       "repl-operator"));
    const auto status = compute_status(r, ChildObservation{}, urls_for(r, ChildSettings{}),
                                       rfc3339(std::chrono::system_clock::now()));
    write(client.apply(kube::object_path(kube::repls(), o.ns, r.key.name) + "/status",
                       status_apply_body(r, status), "repl-operator"));
  });
  const double baseline_ms = ms(Clock::now() - t0);
  if (failed > 0) {
    std::cerr << "repl-bench: " << failed << " baseline writes failed\n";
    return 1;
  }
  std::cerr << "  baseline: " << baseline_ms << " ms for " << writes << " writes\n";
  std::printf(R"({"repls":%d,"concurrency":%d,"writes":%d,"baseline_ms":%.1f})"
              "\n",
              o.count, o.concurrency, writes.load(), baseline_ms);
  return 0;
}

int populate(kube::Client& client, const Options& o) {
  Recorder recorder;
  Watches watches(client, o.ns, recorder);
  std::vector<std::string> names;
  for (int i = 0; i < o.count; ++i) names.push_back(o.prefix + std::to_string(i));
  const auto t0 = Clock::now();
  std::atomic<int> failed{0};
  // Repls left by an earlier, smaller populate stay: the namespace grows to `count`.
  parallel(o.count, o.concurrency, [&](int i) {
    auto r =
        client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, names[i], o.suspended));
    if (!r && !(r.error().kind == kube::ApiError::Kind::kApi && r.error().code == 409)) ++failed;
  });
  const double created_ms = ms(Clock::now() - t0);
  std::cerr << "  created " << o.count << " in " << created_ms << " ms (" << failed << " failed)\n";
  if (!recorder.wait_all(
          names, [](const Timeline& t) { return t.last_child() && t.status; }, std::chrono::seconds(1800))) {
    std::cerr << "repl-bench: not every Repl got its children and status within 30 min\n";
    return 1;
  }
  std::printf(R"({"repls":%d,"created_ms":%.1f,"settled_ms":%.1f})"
              "\n",
              o.count, created_ms, ms(Clock::now() - t0));
  return failed == 0 ? 0 : 1;
}

// Churn, for `seconds`: `rate` Repls created a second, each deleted again once `count` newer ones
// exist, so about `count` are live and their pods come and go all the time; then the rest go too.
// The operator's memory over this time is what bench/run.sh samples.
int soak(kube::Client& client, const Options& o) {
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(1)) / std::max(1, o.rate);
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::seconds(o.seconds);
  std::deque<std::string> live;
  int created = 0, deleted = 0, failed = 0;
  const auto remove_oldest = [&] {
    ++(client.remove(kube::object_path(kube::repls(), o.ns, live.front())) ? deleted : failed);
    live.pop_front();
  };
  for (auto next = t0; Clock::now() < end; next += period) {
    std::string name = o.prefix + std::to_string(created++);
    if (client.create(kube::collection_path(kube::repls(), o.ns), repl_object(o.ns, name, false))) {
      live.push_back(std::move(name));
    } else {
      ++failed;
    }
    if (live.size() > static_cast<std::size_t>(o.count)) remove_oldest();
    if (created % (o.rate * 60) == 0) {
      std::cerr << "  " << created << " created, " << deleted << " deleted, " << failed << " failed\n";
    }
    std::this_thread::sleep_until(next + period);
  }
  while (!live.empty()) remove_oldest();
  std::printf(R"({"seconds":%d,"rate":%d,"live":%d,"created":%d,"deleted":%d,"failed":%d})"
              "\n",
              o.seconds, o.rate, o.count, created, deleted, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: repl-bench latency|burst|baseline|floor|populate|soak [flags] (--help for flags)\n";
    return 2;
  }
  const std::string command = argv[1];
  Options o;
  Flags flags("repl-bench " + command, "Measures the operator; see bench/run.sh.");
  flags.add("kubeconfig", "", &o.kubeconfig, "kubeconfig file (default $KUBECONFIG)");
  flags.add("namespace", "", &o.ns, "namespace the operator watches");
  flags.add("shim", "", &o.shim, "latency: create through POST <shim>/start instead of the API");
  flags.add("templates", "", &o.templates, "baseline, floor: the templates they render");
  flags.add("prefix", "", &o.prefix, "Repl names are <prefix><n>");
  flags.add("count", "", &o.count, "Repls");
  flags.add("concurrency", "", &o.concurrency, "creates in flight (burst, baseline, populate)");
  flags.add("suspended", "", &o.suspended, "populate: create suspended Repls (no pods)");
  flags.add("seconds", "", &o.seconds, "soak: how long to churn");
  flags.add("rate", "", &o.rate, "soak: Repls created (and deleted) a second");
  if (auto exit_code = flags.parse_main(argc - 1, argv + 1)) return *exit_code;

  auto connection = kube::connect(o.kubeconfig);
  if (!connection) {
    std::cerr << "repl-bench: " << connection.error() << "\n";
    return 1;
  }
  kube::Client client(connection->transport);
  if (command == "latency") return latency(client, o);
  if (command == "burst") return burst(client, o);
  if (command == "baseline") return baseline(client, o);
  if (command == "floor") return floor_latency(client, o);
  if (command == "populate") return populate(client, o);
  if (command == "soak") return soak(client, o);
  std::cerr << "repl-bench: unknown command " << command << "\n";
  return 2;
}

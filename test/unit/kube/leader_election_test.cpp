// Leader election: the pure state machine transition by transition, the Lease JSON, and the
// LeaderElector driven by a scripted transport on virtual time (nothing sleeps).
#include "kube/leader_election.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "unit/support/fake_transport.hpp"
#include "unit/support/json.hpp"
#include "unit/support/quiet_logs.hpp"
#include "unit/support/status_json.hpp"

namespace {

using namespace std::chrono_literals;
using repl::kube::LeaderElectionConfig;
using repl::kube::MonoTime;
using repl::kube::WallTime;
using repl::kube::leader::Action;
using repl::kube::leader::LeaseRecord;
using repl::kube::leader::ObservedLease;
using repl::kube::leader::State;
using repl::kube::leader::Step;
using repl::test::at;
using repl::test::parse_json;
using repl::test::string_at;
using Kind = Action::Kind;

const char* const kLeasePath = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/repl-operator";
const char* const kLeasesPath = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

LeaderElectionConfig config() {
  LeaderElectionConfig c;
  c.lease = {"ops", "repl-operator"};
  c.identity = "me";
  return c;  // 15 s / 10 s / 2 s
}

// 2024-05-06T07:08:09.123456Z
const WallTime kWall = WallTime(std::chrono::seconds(1714979289)) + std::chrono::microseconds(123456);
const char* const kWallText = "2024-05-06T07:08:09.123456Z";
const MonoTime kT0 = MonoTime(1000s);  // an arbitrary point of the monotonic clock

ObservedLease observed(std::string holder, std::string rv, std::string renew = "2024-01-01T00:00:00.000000Z",
                       std::int64_t transitions = 3, std::int64_t duration = 15) {
  return {{std::move(holder), duration, "2023-12-31T00:00:00.000000Z", std::move(renew), transitions},
          std::move(rv)};
}

std::string lease_body(const std::string& holder, const std::string& rv,
                       const std::string& renew = "2024-01-01T00:00:00.000000Z", int transitions = 3,
                       int duration = 15) {
  return R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"repl-operator",)"
         R"("namespace":"ops","resourceVersion":")" +
         rv + R"(","labels":{"team":"platform"}},"spec":{"holderIdentity":")" + holder +
         R"(","leaseDurationSeconds":)" + std::to_string(duration) +
         R"(,"acquireTime":"2023-12-31T00:00:00.000000Z","renewTime":")" + renew +
         R"(","leaseTransitions":)" + std::to_string(transitions) + "}}";
}

// Feeds `in` at `now`, with jitter 0.
Step feed(const State& s, const repl::kube::leader::Input& in, MonoTime now) {
  return repl::kube::leader::step(config(), s, in, now, kWall, 0.0);
}

// A state in which we lead: we wrote the lease (rv `rv`) at `at`.
State leading_since(MonoTime at, const std::string& rv = "10") {
  State s;
  s.observed = observed("me", rv, kWallText, 4);
  s.observed_at = at;
  s.leading = true;
  s.renewed_at = at;
  s.write_sent_at = at;
  s.stale = false;
  return s;
}

}  // namespace

// ---- values and JSON ----

TEST_CASE("MicroTime is RFC 3339 with microseconds, in UTC", "[leader]") {
  using repl::kube::format_micro_time;
  CHECK(format_micro_time(WallTime(std::chrono::seconds(1136214245))) == "2006-01-02T15:04:05.000000Z");
  CHECK(format_micro_time(kWall) == kWallText);
  CHECK(format_micro_time(WallTime()) == "1970-01-01T00:00:00.000000Z");
}

TEST_CASE("validate accepts client-go's defaults and rejects inconsistent timings", "[leader]") {
  CHECK(repl::kube::validate(config()));
  auto c = config();
  c.identity.clear();
  CHECK_FALSE(repl::kube::validate(c));
  c = config();
  c.lease.ns.clear();
  CHECK_FALSE(repl::kube::validate(c));
  c = config();
  c.renew_deadline = 15s;  // not below the lease duration
  CHECK_FALSE(repl::kube::validate(c));
  c = config();
  c.retry_period = 9s;  // 1.2 x 9 s > renew deadline
  CHECK(repl::kube::validate(c).error().find("renew deadline") != std::string::npos);
  c = config();
  c.retry_period = 0s;
  CHECK_FALSE(repl::kube::validate(c));
}

TEST_CASE("default_leader_identity is the hostname and a random suffix", "[leader]") {
  const std::string a = repl::kube::default_leader_identity();
  const std::string b = repl::kube::default_leader_identity();
  CHECK(a != b);
  const auto sep = a.rfind('_');
  REQUIRE(sep != std::string::npos);
  CHECK(sep > 0);
  CHECK(a.size() - sep - 1 == 16);
}

TEST_CASE("lease_json has the Lease's shape", "[leader]") {
  const LeaseRecord r{"me", 15, "2024-01-01T00:00:00.000000Z", kWallText, 2};
  const auto doc = repl::kube::leader::lease_json({"ops", "repl-operator"}, r, "42");
  CHECK(string_at(doc, "/apiVersion") == "coordination.k8s.io/v1");
  CHECK(string_at(doc, "/kind") == "Lease");
  CHECK(string_at(doc, "/metadata/name") == "repl-operator");
  CHECK(string_at(doc, "/metadata/namespace") == "ops");
  CHECK(string_at(doc, "/metadata/resourceVersion") == "42");
  CHECK(string_at(doc, "/spec/holderIdentity") == "me");
  CHECK(at(doc, "/spec/leaseDurationSeconds").GetInt64() == 15);
  CHECK(string_at(doc, "/spec/acquireTime") == "2024-01-01T00:00:00.000000Z");
  CHECK(string_at(doc, "/spec/renewTime") == kWallText);
  CHECK(at(doc, "/spec/leaseTransitions").GetInt64() == 2);

  SECTION("without a resourceVersion (a create) there is none in metadata") {
    const auto created = repl::kube::leader::lease_json({"ops", "repl-operator"}, r, "");
    CHECK_FALSE(repl::test::has(created, "/metadata/resourceVersion"));
  }
  SECTION("on a base, other metadata and spec fields are kept and ours replaced") {
    auto base = parse_json(lease_body("other", "7"));
    base["spec"].AddMember("strategy", "OldestEmulationVersion", base.GetAllocator());
    const auto doc2 = repl::kube::leader::lease_json({"ops", "repl-operator"}, r, "7", &base);
    CHECK(string_at(doc2, "/metadata/labels/team") == "platform");
    CHECK(string_at(doc2, "/spec/strategy") == "OldestEmulationVersion");
    CHECK(string_at(doc2, "/spec/holderIdentity") == "me");
    CHECK(string_at(doc2, "/metadata/resourceVersion") == "7");
    CHECK(at(doc2, "/spec/leaseTransitions").GetInt64() == 2);
  }
}

TEST_CASE("parse_lease reads the record and the resourceVersion", "[leader]") {
  const auto doc = parse_json(lease_body("other", "7", "2024-02-02T00:00:00.000000Z", 5, 30));
  const auto lease = repl::kube::leader::parse_lease(doc);
  REQUIRE(lease);
  CHECK(lease->resource_version == "7");
  CHECK(lease->record ==
        LeaseRecord{"other", 30, "2023-12-31T00:00:00.000000Z", "2024-02-02T00:00:00.000000Z", 5});
  // A fresh Lease may have no spec fields at all.
  const auto bare = repl::kube::leader::parse_lease(parse_json(R"({"metadata":{"resourceVersion":"1"}})"));
  REQUIRE(bare);
  CHECK(bare->record == LeaseRecord{});
  CHECK_FALSE(repl::kube::leader::parse_lease(parse_json(R"({"spec":{}})")));
  CHECK_FALSE(repl::kube::leader::parse_lease(parse_json("[]")));
}

// ---- the state machine ----

TEST_CASE("a candidate reads first, and creates the lease when there is none", "[leader]") {
  const Step first = feed(State{}, repl::kube::leader::Tick{}, kT0);
  CHECK(first.action.kind == Kind::kRead);

  const Step create = feed(first.state, repl::kube::leader::ReadNotFound{}, kT0);
  CHECK(create.action.kind == Kind::kCreate);
  CHECK(create.action.record == LeaseRecord{"me", 15, kWallText, kWallText, 0});
  CHECK_FALSE(create.started_leading);

  const Step created =
      feed(create.state, repl::kube::leader::WriteOk{observed("me", "1", kWallText, 0)}, kT0 + 1s);
  CHECK(created.started_leading);
  CHECK_FALSE(created.stopped_leading);
  CHECK(created.state.leading);
  CHECK(created.state.renewed_at == kT0);  // counted from the sending
  CHECK(created.action.kind == Kind::kWait);
  CHECK(created.action.wake_at == kT0 + 3s);  // renew every retry period
}

TEST_CASE("a lease renewed recently by another holder is left alone", "[leader]") {
  const Step s = feed(State{}, repl::kube::leader::ReadOk{observed("other", "5")}, kT0);
  CHECK(s.action.kind == Kind::kWait);
  CHECK(s.action.wake_at == kT0 + 2s);
  CHECK_FALSE(s.started_leading);
  CHECK(s.state.observed_at == kT0);
}

TEST_CASE("expiry is judged by when we saw the record change, not by its renewTime", "[leader]") {
  // The holder's renewTime says 1970 (a skewed clock, or a holder long dead): we still give it a
  // full lease duration from our first sight of the record.
  const auto old = observed("other", "5", "1970-01-01T00:00:00.000000Z");
  Step s = feed(State{}, repl::kube::leader::ReadOk{old}, kT0);
  CHECK(s.action.kind == Kind::kWait);

  s = feed(s.state, repl::kube::leader::ReadOk{old}, kT0 + 14s);
  CHECK(s.action.kind == Kind::kWait);
  CHECK(s.state.observed_at == kT0);  // unchanged record: the timer runs on

  SECTION("unchanged for lease_duration: taken over, transitions + 1, with the read version") {
    s = feed(s.state, repl::kube::leader::ReadOk{old}, kT0 + 15s);
    REQUIRE(s.action.kind == Kind::kUpdate);
    CHECK(s.action.resource_version == "5");
    CHECK(s.action.record == LeaseRecord{"me", 15, kWallText, kWallText, 4});
    CHECK_FALSE(s.started_leading);  // only once the write succeeded
  }
  SECTION("a renewal seen meanwhile restarts the timer") {
    s = feed(s.state, repl::kube::leader::ReadOk{observed("other", "6", "1970-01-01T00:00:02.000000Z")},
             kT0 + 14s);
    CHECK(s.state.observed_at == kT0 + 14s);
    s = feed(s.state, repl::kube::leader::ReadOk{observed("other", "6", "1970-01-01T00:00:02.000000Z")},
             kT0 + 28s);
    CHECK(s.action.kind == Kind::kWait);
    s = feed(s.state, repl::kube::leader::ReadOk{observed("other", "6", "1970-01-01T00:00:02.000000Z")},
             kT0 + 29s);
    CHECK(s.action.kind == Kind::kUpdate);
  }
  SECTION("the holder's own leaseDurationSeconds counts") {
    const auto short_lease = observed("other", "5", "x", 3, 4);
    s = feed(State{}, repl::kube::leader::ReadOk{short_lease}, kT0);
    CHECK(s.action.kind == Kind::kWait);
    s = feed(s.state, repl::kube::leader::ReadOk{short_lease}, kT0 + 4s);
    CHECK(s.action.kind == Kind::kUpdate);
  }
}

TEST_CASE("a released lease (no holder) is taken at once", "[leader]") {
  const Step s = feed(State{}, repl::kube::leader::ReadOk{observed("", "9", kWallText, 4, 1)}, kT0);
  REQUIRE(s.action.kind == Kind::kUpdate);
  CHECK(s.action.resource_version == "9");
  CHECK(s.action.record.holder_identity == "me");
  CHECK(s.action.record.lease_transitions == 5);
}

TEST_CASE("candidates spread their retries with jitter", "[leader]") {
  const Step s = repl::kube::leader::step(
      config(), State{}, repl::kube::leader::ReadOk{observed("other", "5")}, kT0, kWall, 0.5);
  CHECK(s.action.wake_at == kT0 + 2s + 1200ms);  // 2 s x (1 + 1.2 x 0.5)
}

TEST_CASE("the leader renews with its last version, keeping acquireTime and transitions", "[leader]") {
  const Step s = feed(leading_since(kT0), repl::kube::leader::Tick{}, kT0 + 2s);
  REQUIRE(s.action.kind == Kind::kUpdate);
  CHECK(s.action.resource_version == "10");
  CHECK(s.action.record == LeaseRecord{"me", 15, "2023-12-31T00:00:00.000000Z", kWallText, 4});

  const Step renewed =
      feed(s.state, repl::kube::leader::WriteOk{observed("me", "11", kWallText, 4)}, kT0 + 2500ms);
  CHECK(renewed.state.leading);
  CHECK_FALSE(renewed.started_leading);  // already leading
  CHECK(renewed.state.renewed_at == kT0 + 2s);
  CHECK(renewed.state.observed->resource_version == "11");
  CHECK(renewed.action.wake_at == kT0 + 4500ms);
}

TEST_CASE("renewals failing past renew_deadline end leadership, once", "[leader]") {
  const auto server_error = repl::kube::decode_status(500, "");
  Step s = feed(leading_since(kT0), repl::kube::leader::Tick{}, kT0 + 2s);
  REQUIRE(s.action.kind == Kind::kUpdate);
  s = feed(s.state, repl::kube::leader::WriteFailed{server_error}, kT0 + 2s);
  CHECK(s.state.leading);
  CHECK(s.action.wake_at == kT0 + 4s);
  s = feed(s.state, repl::kube::leader::Tick{}, kT0 + 4s);
  CHECK(s.action.kind == Kind::kRead);  // after a failure, read before writing again
  s = feed(s.state, repl::kube::leader::ReadFailed{repl::kube::transport_error("connection refused")},
           kT0 + 9s);
  CHECK(s.state.leading);
  CHECK(s.action.wake_at == kT0 + 10s);  // wakes at the deadline, not at 11 s
  s = feed(s.state, repl::kube::leader::Tick{}, kT0 + 10s);
  CHECK(s.stopped_leading);
  CHECK_FALSE(s.state.leading);
  CHECK(s.action.kind == Kind::kWait);
  s = feed(s.state, repl::kube::leader::Tick{}, s.action.wake_at);
  CHECK_FALSE(s.stopped_leading);  // reported once
  CHECK(s.action.kind == Kind::kRead);
}

TEST_CASE("a 409 on acquire means not leader, and a re-read", "[leader]") {
  const auto conflict = repl::kube::decode_status(409, repl::test::status_json(409, "Conflict", "modified"));
  Step s = feed(State{}, repl::kube::leader::ReadOk{observed("", "9")}, kT0);
  REQUIRE(s.action.kind == Kind::kUpdate);
  s = feed(s.state, repl::kube::leader::WriteFailed{conflict}, kT0);
  CHECK_FALSE(s.state.leading);
  CHECK_FALSE(s.started_leading);
  CHECK(s.action.kind == Kind::kRead);
  s = feed(s.state, repl::kube::leader::ReadOk{observed("other", "10")}, kT0);
  CHECK(s.action.kind == Kind::kWait);  // the winner's lease is fresh

  SECTION("a second 409 in a row waits instead of re-reading at once") {
    s = feed(State{}, repl::kube::leader::ReadOk{observed("", "9")}, kT0);
    s = feed(s.state, repl::kube::leader::WriteFailed{conflict}, kT0);
    s = feed(s.state, repl::kube::leader::ReadOk{observed("", "11")}, kT0);
    REQUIRE(s.action.kind == Kind::kUpdate);
    s = feed(s.state, repl::kube::leader::WriteFailed{conflict}, kT0);
    CHECK(s.action.kind == Kind::kWait);
  }
  SECTION("a 409 on create (AlreadyExists) also re-reads") {
    s = feed(State{}, repl::kube::leader::ReadNotFound{}, kT0);
    REQUIRE(s.action.kind == Kind::kCreate);
    s = feed(s.state,
             repl::kube::leader::WriteFailed{
                 repl::kube::decode_status(409, repl::test::status_json(409, "AlreadyExists", "exists"))},
             kT0);
    CHECK(s.action.kind == Kind::kRead);
  }
}

TEST_CASE("a leader that reads another holder, or no lease, stops leading", "[leader]") {
  State stale = leading_since(kT0);
  stale.stale = true;
  Step s = feed(stale, repl::kube::leader::ReadOk{observed("other", "12")}, kT0 + 3s);
  CHECK(s.stopped_leading);
  CHECK_FALSE(s.state.leading);
  CHECK(s.action.kind == Kind::kWait);

  s = feed(stale, repl::kube::leader::ReadNotFound{}, kT0 + 3s);
  CHECK(s.stopped_leading);
  CHECK(s.action.kind == Kind::kWait);

  SECTION("but renews when the lease still names it") {
    s = feed(stale, repl::kube::leader::ReadOk{observed("me", "12", kWallText, 4)}, kT0 + 3s);
    CHECK_FALSE(s.stopped_leading);
    REQUIRE(s.action.kind == Kind::kUpdate);
    CHECK(s.action.resource_version == "12");
  }
}

TEST_CASE("an answer slower than renew_deadline does not make a leader", "[leader]") {
  Step s = feed(State{}, repl::kube::leader::ReadNotFound{}, kT0);
  s = feed(s.state, repl::kube::leader::WriteOk{observed("me", "1", kWallText, 0)}, kT0 + 10s);
  CHECK_FALSE(s.started_leading);
  CHECK_FALSE(s.state.leading);
}

TEST_CASE("release clears the holder, with duration 1 s and the observed version", "[leader]") {
  const auto a = repl::kube::leader::release(config(), leading_since(kT0), kWall);
  REQUIRE(a);
  CHECK(a->kind == Kind::kUpdate);
  CHECK(a->resource_version == "10");
  CHECK(a->record == LeaseRecord{"", 1, kWallText, kWallText, 4});

  State other;
  other.observed = observed("other", "3");
  CHECK_FALSE(repl::kube::leader::release(config(), other, kWall));
  CHECK_FALSE(repl::kube::leader::release(config(), State{}, kWall));
}

// ---- LeaderElector over a scripted transport, on virtual time ----

namespace {

// The scripted transport answers at once, so every step of the elector runs inside start() or
// the virtual clock's advance(): a test sees each wait as the clock's earliest armed timer.
struct Harness {
  repl::test::QuietLogs quiet;
  std::shared_ptr<repl::test::FakeTransport> transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  repl::ManualClock clock;
  const MonoTime t0 = clock.now();
  std::vector<std::string> events;
  repl::kube::LeaderElector elector{
      client,
      config(),
      {[this] { events.push_back("started@" + std::to_string(transport->requests.size())); },
       [this] { events.push_back("stopped@" + std::to_string(transport->requests.size())); }},
      clock,
      {[this] { return kWall + std::chrono::duration_cast<WallTime::duration>(clock.now() - t0); },
       [] { return 0.0; }}};

  ~Harness() {
    elector.stop();
    clock.advance(0s);
    elector.wait();
  }
  // When the elector next wants to run: its one armed timer.
  MonoTime wake() const {
    REQUIRE(clock.pending() == 1);
    return *clock.wait_armed(0ms);
  }
  // Starts the elector and runs its first step (a read, due at once); returns its next wake.
  MonoTime first_tick() {
    elector.start();
    clock.advance(0s);
    return wake();
  }
  // Advances virtual time to `at`, where the elector asked to run; returns its next wake.
  MonoTime next_tick(MonoTime at) {
    clock.advance_to(at);
    return wake();
  }
  const repl::kube::HttpRequest& request(std::size_t i) const { return transport->requests.at(i); }
};

}  // namespace

TEST_CASE("LeaderElector creates a missing lease and leads", "[leader]") {
  Harness h;
  h.transport->respond(404, repl::test::status_json(404, "NotFound", "leases \"repl-operator\" not found"));
  h.transport->respond(201, lease_body("me", "1", kWallText, 0));

  h.elector.start();
  CHECK(h.transport->requests.empty());  // start() only arms the first wait
  const MonoTime wake = h.next_tick(h.t0);
  CHECK(wake == h.t0 + 2s);
  CHECK(h.elector.is_leader());
  CHECK(h.events == std::vector<std::string>{"started@2"});
  REQUIRE(h.transport->requests.size() == 2);
  CHECK(h.request(0).method == "GET");
  CHECK(h.request(0).target == kLeasePath);
  CHECK(h.request(1).method == "POST");
  CHECK(h.request(1).target == kLeasesPath);
  const auto body = parse_json(h.request(1).body);
  CHECK(string_at(body, "/kind") == "Lease");
  CHECK(string_at(body, "/spec/holderIdentity") == "me");
  CHECK(at(body, "/spec/leaseDurationSeconds").GetInt() == 15);
  CHECK(string_at(body, "/spec/acquireTime") == kWallText);
  CHECK(string_at(body, "/spec/renewTime") == kWallText);
  CHECK(at(body, "/spec/leaseTransitions").GetInt() == 0);
  CHECK_FALSE(repl::test::has(body, "/metadata/resourceVersion"));
}

TEST_CASE("LeaderElector waits out a live holder, then takes over with a PUT carrying the version",
          "[leader]") {
  Harness h;
  for (int i = 0; i < 8; ++i) h.transport->respond(200, lease_body("other", "5"));  // t0, +2, ..., +14
  MonoTime wake = h.first_tick();
  for (int i = 1; i < 8; ++i) wake = h.next_tick(wake);
  CHECK(h.clock.now() == h.t0 + 14s);
  CHECK(h.transport->requests.size() == 8);
  CHECK_FALSE(h.elector.is_leader());
  CHECK(h.events.empty());
  for (const auto& r : h.transport->requests) CHECK(r.method == "GET");

  h.transport->respond(200, lease_body("other", "5"));  // at +16: unchanged for 16 s >= 15 s
  h.transport->respond(200, lease_body("me", "6", kWallText, 4));
  wake = h.next_tick(wake);
  REQUIRE(h.transport->requests.size() == 10);
  const auto& put = h.request(9);
  CHECK(put.method == "PUT");
  CHECK(put.target == kLeasePath);
  const auto body = parse_json(put.body);
  CHECK(string_at(body, "/metadata/resourceVersion") == "5");
  CHECK(string_at(body, "/metadata/labels/team") == "platform");  // the read Lease's metadata kept
  CHECK(string_at(body, "/spec/holderIdentity") == "me");
  CHECK(at(body, "/spec/leaseTransitions").GetInt() == 4);
  CHECK(string_at(body, "/spec/acquireTime") == repl::kube::format_micro_time(kWall + 16s));
  CHECK(h.elector.is_leader());
  CHECK(h.events == std::vector<std::string>{"started@10"});
  CHECK(h.transport->unused_responses() == 0);
  h.transport->respond(200, lease_body("", "7", kWallText, 4, 1));  // the release, at the end
}

TEST_CASE("LeaderElector renews while leading and stops once renewals fail past the deadline", "[leader]") {
  Harness h;
  h.transport->respond(404, "");
  h.transport->respond(201, lease_body("me", "1", kWallText, 0));
  MonoTime wake = h.first_tick();  // leading since t0
  h.transport->respond(200, lease_body("me", "2", kWallText, 0));
  wake = h.next_tick(wake);  // +2: renewed
  REQUIRE(h.transport->requests.size() == 3);
  CHECK(h.request(2).method == "PUT");
  CHECK(string_at(parse_json(h.request(2).body), "/metadata/resourceVersion") == "1");
  CHECK(h.elector.is_leader());

  // From +4 on, every request fails: a 500, then transport errors (the unscripted requests).
  h.transport->respond(500, repl::test::status_json(500, "InternalError", "etcd is down"));
  wake = h.next_tick(wake);  // +4: PUT fails
  CHECK(wake == h.t0 + 6s);
  CHECK(h.elector.is_leader());
  wake = h.next_tick(wake);   // +6: GET fails
  wake = h.next_tick(wake);   // +8: GET fails
  CHECK(wake == h.t0 + 10s);  // the last renewal was sent at +2: deadline +12
  wake = h.next_tick(wake);   // +10: GET fails
  CHECK(wake == h.t0 + 12s);
  CHECK(h.elector.is_leader());
  h.clock.advance(2s - 1ns);
  CHECK(h.elector.is_leader());
  CHECK(h.events == std::vector<std::string>{"started@2"});
  h.clock.advance(1ns);  // +12: the deadline; the elector's step notices it too
  CHECK_FALSE(h.elector.is_leader());
  CHECK(h.events == std::vector<std::string>{"started@2", "stopped@7"});
  wake = h.next_tick(h.wake());
  wake = h.next_tick(wake);
  CHECK(h.events.size() == 2);  // stopped reported once
  CHECK_FALSE(h.elector.is_leader());
}

TEST_CASE("LeaderElector's is_leader turns false at the deadline while a request is still in flight",
          "[leader]") {
  repl::test::QuietLogs quiet;
  // A transport that keeps the renewal unanswered until the test answers it.
  auto transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  repl::ManualClock clock;
  const MonoTime t0 = clock.now();
  transport->respond(404, "");
  transport->respond(201, lease_body("me", "1", kWallText, 0));
  repl::kube::LeaderElector elector(client, config(), {}, clock, {[] { return kWall; }, [] { return 0.0; }});
  elector.start();
  clock.advance(0s);
  REQUIRE(elector.is_leader());
  transport->hold_next();  // the renewal at +2 hangs
  clock.advance(2s);
  REQUIRE(transport->requests.size() == 3);
  CHECK(clock.pending() == 0);  // no wait armed: the request is in flight
  clock.advance(7s);            // +9
  CHECK(elector.is_leader());
  clock.advance(1s);  // +10: the renew deadline of the create, the last write that succeeded (at t0)
  CHECK_FALSE(elector.is_leader());
  CHECK(clock.now() == t0 + 10s);
  elector.stop();
  transport->release_held(500, repl::test::status_json(500, "InternalError", "too late"));
  elector.wait();  // the answer ended it; the lease still names us, so it tried to release it
  REQUIRE(transport->requests.size() == 4);
  CHECK(transport->requests.at(3).method == "PUT");
  CHECK(string_at(parse_json(transport->requests.at(3).body), "/spec/holderIdentity") == "");
}

TEST_CASE("LeaderElector treats a 409 on acquire as a lost race and re-reads", "[leader]") {
  Harness h;
  h.transport->respond(200, lease_body("", "9", kWallText, 3, 1));  // released
  h.transport->respond(409, repl::test::status_json(409, "Conflict", "the object has been modified"));
  h.transport->respond(200, lease_body("other", "10", kWallText, 4));
  const MonoTime wake = h.first_tick();
  REQUIRE(h.transport->requests.size() == 3);
  CHECK(h.request(1).method == "PUT");
  CHECK(h.request(2).method == "GET");
  CHECK(wake == h.t0 + 2s);
  CHECK_FALSE(h.elector.is_leader());
  CHECK(h.events.empty());
}

TEST_CASE("LeaderElector, stopped, stops leading, then releases the lease", "[leader]") {
  repl::test::QuietLogs quiet;
  auto transport = std::make_shared<repl::test::FakeTransport>();
  repl::kube::Client client{transport};
  repl::ManualClock clock;
  transport->respond(404, "");
  transport->respond(201, lease_body("me", "1", kWallText, 0));
  transport->respond(200, lease_body("", "2", kWallText, 0, 1));
  std::vector<std::string> order;
  repl::kube::LeaderElector elector(
      client, config(),
      {[&] { elector.stop(); },  // stop() from a callback, inside the elector's own step
       [&] { order.push_back("stopped@" + std::to_string(transport->requests.size())); }},
      clock, {[] { return kWall; }, [] { return 0.0; }});
  elector.start();
  clock.advance(0s);
  elector.wait();  // ended within that step: stop() was requested before any wait

  CHECK(order == std::vector<std::string>{"stopped@2"});  // before the release request
  CHECK_FALSE(elector.is_leader());
  CHECK(clock.pending() == 0);
  REQUIRE(transport->requests.size() == 3);
  const auto& put = transport->requests.at(2);
  CHECK(put.method == "PUT");
  CHECK(put.target == kLeasePath);
  const auto body = parse_json(put.body);
  CHECK(string_at(body, "/spec/holderIdentity") == "");
  CHECK(at(body, "/spec/leaseDurationSeconds").GetInt() == 1);
  CHECK(string_at(body, "/metadata/resourceVersion") == "1");
  CHECK(at(body, "/spec/leaseTransitions").GetInt() == 0);

  elector.stop();  // again: nothing more to do or release
  elector.wait();
  CHECK(transport->requests.size() == 3);
}

TEST_CASE("LeaderElector stopped while waiting ends at once; it does not release a lease it does not hold",
          "[leader]") {
  Harness h;
  h.transport->respond(200, lease_body("other", "5"));
  const MonoTime wake = h.first_tick();
  CHECK(wake == h.t0 + 2s);
  h.elector.stop();
  h.clock.advance(0s);  // the wait ends now, not at +2
  h.elector.wait();
  CHECK(h.clock.now() == h.t0);
  CHECK(h.transport->requests.size() == 1);
  CHECK(h.events.empty());
}

TEST_CASE("LeaderElector never started: stop and wait return at once, no request", "[leader]") {
  Harness h;
  h.elector.stop();
  h.elector.wait();
  h.elector.start();  // too late: it has ended
  h.clock.advance(10s);
  CHECK(h.transport->requests.empty());
}

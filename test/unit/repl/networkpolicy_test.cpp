// The NetworkPolicy each Repl gets from templates/networkpolicy.yaml: it fences the repl's pod so
// that only the ingress controller's namespace reaches the runner's two ports, and the pod reaches
// DNS and the public internet only (no pods, nodes, private ranges or cloud metadata service), and
// with --s3-egress-cidr exactly that CIDR on the S3 endpoint's port besides.
// With the NetworkPolicy off, the operator loads and renders the other three children only.
#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/resource.hpp"
#include "repl/children.hpp"
#include "unit/support/child_checks.hpp"
#include "unit/support/json.hpp"
#include "unit/support/repl_fixtures.hpp"
#include "unit/support/temp_dir.hpp"

namespace {

using repl::Child;
using repl::ChildSettings;
using repl::Shape;
using repl::test::at;
using repl::test::has;
using repl::test::string_at;
using Strings = std::set<std::string>;

const rapidjson::Value& network_policy(const std::vector<Child>& children) {
  return repl::test::child_of_kind(children, "NetworkPolicy").object;
}

Strings strings_of(const rapidjson::Value& array) {
  REQUIRE(array.IsArray());
  Strings out;
  for (const auto& v : array.GetArray()) {
    REQUIRE(v.IsString());
    out.insert(v.GetString());
  }
  return out;
}

// "<protocol> <port>" of each entry of a rule's ports.
Strings ports_of(const rapidjson::Value& rule) {
  Strings out;
  for (const auto& p : at(rule, "/ports").GetArray()) {
    REQUIRE(at(p, "/port").IsInt64());
    out.insert(string_at(p, "/protocol") + " " + std::to_string(at(p, "/port").GetInt64()));
  }
  return out;
}

std::uint32_t ipv4(const std::string& text) {
  std::uint32_t out = 0;
  std::size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    const std::size_t end = text.find('.', pos);
    out = (out << 8) | static_cast<std::uint32_t>(std::stoul(text.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

// Whether an IPv4 CIDR ("10.0.0.0/8") holds an address ("10.1.2.3").
bool cidr_holds(const std::string& cidr, const std::string& address) {
  const std::size_t slash = cidr.find('/');
  REQUIRE(slash != std::string::npos);
  const int bits = std::stoi(cidr.substr(slash + 1));
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (ipv4(cidr.substr(0, slash)) & mask) == (ipv4(address) & mask);
}

// Whether the egress ipBlock for 0.0.0.0/0 lets `address` through (no except entry holds it).
bool ipv4_allowed(const Strings& except, const std::string& address) {
  for (const auto& cidr : except) {
    if (cidr_holds(cidr, address)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the NetworkPolicy selects the repl's pod and is owned by the Repl",
          "[render][repl][networkpolicy]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const Child& child = repl::test::child_of_kind(children, "NetworkPolicy");
  CHECK(child.resource == repl::kube::network_policies());
  CHECK(child.name == "abc123");
  const auto& np = child.object;
  CHECK(string_at(np, "/apiVersion") == "networking.k8s.io/v1");
  CHECK(string_at(np, "/metadata/name") == "abc123");
  repl::test::check_stamped_metadata(np);

  // The pod selector is exactly the label the Deployment puts on its pods.
  const auto& match = at(np, "/spec/podSelector/matchLabels");
  CHECK(match.MemberCount() == 1);
  CHECK(string_at(match, "/peetcode.com~1repl") == "abc123");
  CHECK_FALSE(has(np, "/spec/podSelector/matchExpressions"));
  const auto& deployment = repl::test::child_of_kind(children, "Deployment").object;
  CHECK(string_at(deployment, "/spec/template/metadata/labels/peetcode.com~1repl") == "abc123");

  // Both directions are fenced.
  CHECK(strings_of(at(np, "/spec/policyTypes")) == Strings{"Ingress", "Egress"});
  CHECK(at(np, "/spec/policyTypes").Size() == 2);
}

TEST_CASE("the NetworkPolicy lets in only the ingress namespace, only to ports 3000 and 3001",
          "[render][repl][networkpolicy]") {
  ChildSettings settings;
  std::string ns = "ingress-nginx";  // the default
  SECTION("the default ingress namespace") {}
  SECTION("another ingress namespace") {
    ns = "edge-proxies";
    settings.ingress_namespace = ns;
  }
  const auto children = repl::test::render_children(repl::test::sample_repl(), settings);
  const auto& np = network_policy(children);
  const auto& ingress = at(np, "/spec/ingress");
  REQUIRE(ingress.Size() == 1);
  const auto& rule = ingress[0];
  REQUIRE(at(rule, "/from").Size() == 1);
  const auto& peer = at(rule, "/from/0");
  // A namespaceSelector alone: every pod of that namespace, and of no other namespace.
  CHECK(peer.MemberCount() == 1);
  const auto& labels = at(peer, "/namespaceSelector/matchLabels");
  CHECK(labels.MemberCount() == 1);
  CHECK(string_at(labels, "/kubernetes.io~1metadata.name") == ns);
  CHECK_FALSE(has(peer, "/namespaceSelector/matchExpressions"));
  CHECK(at(rule, "/ports").Size() == 2);
  CHECK(ports_of(rule) == Strings{"TCP 3000", "TCP 3001"});
}

TEST_CASE("the NetworkPolicy lets out DNS to kube-dns and the public internet only",
          "[render][repl][networkpolicy][security]") {
  const auto children = repl::test::render_children(repl::test::sample_repl());
  const auto& egress = at(network_policy(children), "/spec/egress");
  REQUIRE(egress.Size() == 2);

  SECTION("DNS: port 53 over UDP and TCP, to the kube-dns pods of kube-system or NodeLocal DNSCache") {
    const auto& dns = egress[0];
    CHECK(ports_of(dns) == Strings{"UDP 53", "TCP 53"});
    CHECK(at(dns, "/ports").Size() == 2);
    REQUIRE(at(dns, "/to").Size() == 2);
    // NodeLocal DNSCache's link-local address, and only it (the rule's ports keep it to DNS).
    const auto& node_local = at(dns, "/to/1");
    CHECK(node_local.MemberCount() == 1);
    CHECK(string_at(node_local, "/ipBlock/cidr") == "169.254.20.10/32");
    CHECK_FALSE(has(node_local, "/ipBlock/except"));
    // One peer holding both selectors: kube-dns pods *in* kube-system (two peers would be "or").
    const auto& peer = at(dns, "/to/0");
    CHECK(peer.MemberCount() == 2);
    const auto& ns = at(peer, "/namespaceSelector/matchLabels");
    CHECK(ns.MemberCount() == 1);
    CHECK(string_at(ns, "/kubernetes.io~1metadata.name") == "kube-system");
    const auto& pods = at(peer, "/podSelector/matchLabels");
    CHECK(pods.MemberCount() == 1);
    CHECK(string_at(pods, "/k8s-app") == "kube-dns");
  }

  SECTION("IPv4: everything but private, shared, loopback and link-local ranges") {
    const auto& rule = egress[1];
    CHECK_FALSE(has(rule, "/ports"));  // any port of a public address
    const auto& to = at(rule, "/to");
    REQUIRE(to.Size() == 2);
    for (const auto& peer : to.GetArray()) {
      INFO(repl::test::pretty_json(peer));
      CHECK(peer.MemberCount() == 1);  // an ipBlock only: no namespace or pod selector
      CHECK(has(peer, "/ipBlock"));
    }
    CHECK(string_at(to[0], "/ipBlock/cidr") == "0.0.0.0/0");
    const Strings except = strings_of(at(to[0], "/ipBlock/except"));
    for (const std::string cidr :
         {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}) {
      CHECK(except.count(cidr) == 1);
    }
    // Addresses a runner must not reach: the cloud metadata services (AWS, GCP, Azure at
    // 169.254.169.254; Alibaba at 100.100.100.200), pods, services and nodes on private ranges.
    for (const std::string address : {"169.254.169.254", "169.254.170.2", "100.100.100.200", "10.96.0.1",
                                      "10.244.1.7", "172.17.0.2", "172.31.255.254", "192.168.1.1"}) {
      INFO(address);
      CHECK_FALSE(ipv4_allowed(except, address));
    }
    // Public addresses stay reachable (S3, a package registry).
    for (const std::string address :
         {"52.216.0.1", "151.101.0.223", "1.1.1.1", "172.32.0.1", "100.128.0.1"}) {
      INFO(address);
      CHECK(ipv4_allowed(except, address));
    }
  }

  SECTION("IPv6: everything but unique-local and link-local ranges") {
    const auto& block = at(egress[1], "/to/1/ipBlock");
    CHECK(string_at(block, "/cidr") == "::/0");
    const Strings except = strings_of(at(block, "/except"));
    CHECK(except.count("fc00::/7") == 1);   // unique-local, among them AWS's fd00:ec2::254
    CHECK(except.count("fe80::/10") == 1);  // link-local
  }
}

TEST_CASE("the NetworkPolicy is the same for every Repl but for its names", "[render][repl][networkpolicy]") {
  auto other = repl::test::sample_repl();
  other.key = {"team-b", "zz9"};
  other.spec.user_id = "user-7";
  other.spec.suspended = true;
  const auto a_children = repl::test::render_children(repl::test::sample_repl());
  const auto& a = network_policy(a_children);
  const auto b_children = repl::test::render_children(other);
  const auto& b = network_policy(b_children);
  CHECK(string_at(b, "/metadata/name") == "zz9");
  CHECK(string_at(b, "/metadata/namespace") == "team-b");
  CHECK(string_at(b, "/spec/podSelector/matchLabels/peetcode.com~1repl") == "zz9");
  CHECK(repl::kube::to_json(at(a, "/spec/ingress")) == repl::kube::to_json(at(b, "/spec/ingress")));
  CHECK(repl::kube::to_json(at(a, "/spec/egress")) == repl::kube::to_json(at(b, "/spec/egress")));
}

TEST_CASE("with the NetworkPolicy off, three templates load and render", "[render][repl][networkpolicy]") {
  const std::string repo = std::string(REPL_SOURCE_DIR) + "/templates";
  SECTION("the repository's templates") {
    auto loaded = repl::load_child_templates(repo, false);
    INFO((loaded ? "" : loaded.error().message));
    REQUIRE(loaded);
    REQUIRE(loaded->size() == 3);
    CHECK((*loaded)[0].resource == repl::kube::deployments());
    CHECK((*loaded)[1].resource == repl::kube::services());
    CHECK((*loaded)[2].resource == repl::kube::ingresses());
    auto children = repl::desired_children(repl::test::sample_repl(), ChildSettings{}, *loaded);
    REQUIRE(children);
    REQUIRE(children->size() == 3);
    CHECK_FALSE(repl::test::has_child_of_kind(*children, "NetworkPolicy"));
    // The other children are those rendered with the NetworkPolicy on.
    const auto with = repl::test::render_children(repl::test::sample_repl());
    for (std::size_t i = 0; i < children->size(); ++i) {
      CHECK(repl::kube::to_json((*children)[i].object) == repl::kube::to_json(with[i].object));
    }
  }
  SECTION("a directory without networkpolicy.yaml") {
    repl::test::TempDir dir;
    for (const std::string file : {"deployment.yaml", "service.yaml", "ingress.yaml"}) {
      auto text = repl::kube::read_file(repo + "/" + file);
      REQUIRE(text);
      dir.write(file, *text);
    }
    auto off = repl::load_child_templates(dir.path(), false);
    INFO((off ? "" : off.error().message));
    REQUIRE(off);
    CHECK(off->size() == 3);
    // On (the default), the missing file is an error at start-up.
    auto on = repl::load_child_templates(dir.path());
    REQUIRE_FALSE(on);
    CHECK_THAT(on.error().message, Catch::Contains("networkpolicy.yaml"));
  }
  SECTION("with the NetworkPolicy on, the repository's templates are four") {
    auto loaded = repl::load_child_templates(repo);
    REQUIRE(loaded);
    REQUIRE(loaded->size() == 4);
    CHECK((*loaded)[3].resource == repl::kube::network_policies());
  }
}

TEST_CASE("networkpolicy.yaml must render a NetworkPolicy", "[render][repl][networkpolicy]") {
  repl::test::TempDir dir;
  const std::string repo = std::string(REPL_SOURCE_DIR) + "/templates";
  for (const std::string file : {"deployment.yaml", "service.yaml", "ingress.yaml"}) {
    auto text = repl::kube::read_file(repo + "/" + file);
    REQUIRE(text);
    dir.write(file, *text);
  }
  dir.write("networkpolicy.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n");
  auto loaded = repl::load_child_templates(dir.path());
  REQUIRE_FALSE(loaded);
  CHECK_THAT(loaded.error().message, Catch::Contains("must render a NetworkPolicy (networking.k8s.io/v1)"));
  // Off, the file is not even read.
  CHECK(repl::load_child_templates(dir.path(), false));
}

namespace {

// The NetworkPolicy of the sample Repl, from the repository's templates loaded with `settings` as the
// operator loads them (the settings decide the `!if` items, and so the template's Shape), with that
// Shape.
struct Rendered {
  rapidjson::Document object;
  Shape shape;
};
Rendered network_policy_with(const ChildSettings& settings) {
  auto loaded = repl::load_child_templates(std::string(REPL_SOURCE_DIR) + "/templates", true, settings);
  INFO((loaded ? "" : loaded.error().message));
  REQUIRE(loaded);
  auto children = repl::desired_children(repl::test::sample_repl(), settings, *loaded);
  REQUIRE(children);
  REQUIRE(children->size() == 4);
  REQUIRE((*loaded)[3].resource == repl::kube::network_policies());
  Rendered out{rapidjson::Document(), (*loaded)[3].shape};
  out.object.CopyFrom((*children)[3].object, out.object.GetAllocator());
  return out;
}

}  // namespace

TEST_CASE("with an S3 egress CIDR, the pod may also reach exactly that CIDR on the endpoint's port",
          "[render][repl][networkpolicy][security]") {
  struct Case {
    std::string endpoint, cidr;
    std::int64_t port;
  };
  for (const Case& c : {Case{"http://10.88.0.1:9000", "10.88.0.1/32", 9000},
                        Case{"http://minio.storage.svc.cluster.local", "10.96.0.0/12", 80},
                        Case{"https://s3.internal:8443/tenant", "192.168.10.0/24", 8443},
                        Case{"https://[fd00::5]/", "fd00::5/128", 443}}) {
    INFO(c.endpoint << " " << c.cidr);
    ChildSettings settings;
    settings.s3_endpoint = c.endpoint;
    settings.s3_egress_cidr = c.cidr;
    REQUIRE(repl::settings_problems(settings).empty());
    const auto with = network_policy_with(settings);
    const auto& egress = at(with.object, "/spec/egress");
    REQUIRE(egress.Size() == 3);

    // One more rule, last: that block alone (no except, no selector), TCP to that port alone.
    const auto& rule = egress[2];
    CHECK(rule.MemberCount() == 2);
    REQUIRE(at(rule, "/to").Size() == 1);
    const auto& peer = at(rule, "/to/0");
    CHECK(peer.MemberCount() == 1);
    CHECK(at(peer, "/ipBlock").MemberCount() == 1);
    CHECK(string_at(peer, "/ipBlock/cidr") == c.cidr);
    REQUIRE(at(rule, "/ports").Size() == 1);
    CHECK(at(rule, "/ports/0").MemberCount() == 2);
    CHECK(ports_of(rule) == Strings{"TCP " + std::to_string(c.port)});

    // Everything else is the policy without the setting.
    const auto without = repl::test::render_children(repl::test::sample_repl());
    rapidjson::Document trimmed;
    trimmed.CopyFrom(with.object, trimmed.GetAllocator());
    trimmed["spec"]["egress"].PopBack();
    CHECK(repl::kube::to_json(trimmed) == repl::kube::to_json(network_policy(without)));

    // The Shape the operator takes at start-up covers the rule: a live policy without it, or with
    // another port, differs from the desired one (and is applied again).
    CHECK(with.shape.fingerprint(with.object) == Shape::of(with.object).fingerprint(with.object));
    CHECK(with.shape.fingerprint(trimmed) != with.shape.fingerprint(with.object));
    rapidjson::Document other_port;
    other_port.CopyFrom(with.object, other_port.GetAllocator());
    other_port["spec"]["egress"][2]["ports"][0]["port"].SetInt64(c.port + 1);
    CHECK(with.shape.fingerprint(other_port) != with.shape.fingerprint(with.object));
  }
}

TEST_CASE("without an S3 egress CIDR, the NetworkPolicy is the one of the defaults, S3 endpoint or not",
          "[render][repl][networkpolicy]") {
  ChildSettings settings;
  settings.s3_endpoint = "http://10.88.0.1:9000";
  const auto rendered = network_policy_with(settings);
  CHECK(at(rendered.object, "/spec/egress").Size() == 2);
  const auto defaults = repl::test::render_children(repl::test::sample_repl());
  CHECK(repl::kube::to_json(rendered.object) == repl::kube::to_json(network_policy(defaults)));
}

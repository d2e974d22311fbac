// CORS as a real browser enforces it: headless Chromium loads a page from one loopback origin whose
// script POSTs /start to the shim on another (a cross-origin request with a JSON body, so the
// browser sends a preflight first). From the origin in --cors-origins the call succeeds and the Repl
// exists; from any other origin the preflight is refused, the browser never sends the POST, the
// script sees a TypeError and no Repl is created.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "auth/jwt.hpp"
#include "integration/support.hpp"
#include "unit/support/jwt_minter.hpp"

using namespace repl::test;
using namespace std::chrono_literals;

namespace {

// The page: POST /start to `shim` with the ids, and the outcome written into <pre id=out>.
std::string page(const std::string& shim, const std::string& user, const std::string& repl) {
  return R"(<!doctype html>
<meta charset="utf-8">
<title>repl-shim CORS</title>
<pre id="out">pending</pre>
<script>
const out = document.getElementById("out");
fetch(")" +
         shim + R"(/start", {
  method: "POST",
  headers: {"Content-Type": "application/json"},
  body: JSON.stringify({userId: ")" +
         user + R"(", replId: ")" + repl + R"("}),
}).then(r => r.text().then(t => { out.textContent = "status=" + r.status + " body=" + t; }),
        e => { out.textContent = "error=" + e.name + " message=" + e.message; });
</script>
)";
}

// The page of a frontend with JWT sign-in: POST /start {replId} with the user's token (no userId:
// the shim takes the token's), then GET the repl with it; both outcomes into <pre id=out>.
std::string jwt_page(const std::string& shim, const std::string& token, const std::string& repl) {
  return R"(<!doctype html>
<meta charset="utf-8">
<title>repl-shim JWT</title>
<pre id="out">pending</pre>
<script>
const out = document.getElementById("out");
const auth = {"Authorization": "Bearer )" +
         token + R"("};
fetch(")" +
         shim + R"(/start", {
  method: "POST",
  headers: {...auth, "Content-Type": "application/json"},
  body: JSON.stringify({replId: ")" +
         repl + R"("}),
}).then(r => r.text().then(t => fetch(")" +
         shim + "/repls/" + repl + R"(", {headers: auth}).then(g => g.text().then(u => {
  out.textContent = "status=" + r.status + " body=" + t + " get=" + g.status + " " + u;
}))), e => { out.textContent = "error=" + e.name + " message=" + e.message; });
</script>
)";
}

// Loads `url` in headless Chromium and answers the text of <pre id=out> once the page settled;
// the whole DOM when there is no such element.
std::string load_in_chromium(const TempDir& tmp, const std::string& url) {
  static int runs = 0;
  const std::string profile = tmp.path.string() + "/profile-" + std::to_string(++runs);
  // HOME and the XDG directories too: Chromium writes an NSS database and caches under them.
  const auto r = run({"env", "HOME=" + tmp.path.string(), "XDG_CONFIG_HOME=" + tmp.path.string() + "/config",
                      "XDG_CACHE_HOME=" + tmp.path.string() + "/cache",
                      // timeout kills the whole process group: the browser and its helpers.
                      "timeout", "-k", "10", "240", which("chromium"), "--headless", "--no-sandbox",
                      "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
                      "--virtual-time-budget=10000", "--dump-dom", url});
  INFO("chromium stderr (end): " << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0));
  REQUIRE(r.exit_code == 0);
  const std::regex out(R"(<pre id="out">([^<]*)</pre>)");
  std::smatch m;
  if (!std::regex_search(r.out, m, out)) return r.out;
  return m[1].str();
}

// The sum of the samples of `name` in a Prometheus text exposition whose labels include `labels`
// (e.g. `route="start"`; a comma-separated subset, each label as written).
double metric_sum(const std::string& text, const std::string& name, const std::string& labels) {
  std::istringstream in(text);
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool match = true;
    std::istringstream parts(labels);
    for (std::string part; std::getline(parts, part, ',');)
      match = match && line.find(part) != std::string::npos;
    if (match) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("a browser may call the shim from an allowed origin only; a refused preflight creates nothing",
          "[browser]") {
  TempDir tmp;  // first: removed last, after the servers below are stopped
  const std::string allowed_dir = tmp.path.string() + "/allowed", other_dir = tmp.path.string() + "/other";
  std::filesystem::create_directories(allowed_dir);
  std::filesystem::create_directories(other_dir);
  StaticServer allowed(allowed_dir), other(other_dir);
  REQUIRE(allowed.origin != other.origin);

  const std::string ns = fresh_namespace("browser-cors");
  auto shim = start_shim({"--namespace", ns, "--cors-origins", allowed.origin});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const std::string shim_url = "http://" + addr;
  write_file(allowed_dir + "/index.html", page(shim_url, "alice", "from-allowed"));
  write_file(other_dir + "/index.html", page(shim_url, "mallory", "from-other"));
  const auto requests = [&](const std::string& labels) {
    return metric_sum(http("GET", shim_url + "/metrics").body, "repl_shim_requests_total", labels);
  };

  {
    INFO("from the other origin " << other.origin);
    const std::string outcome = load_in_chromium(tmp, other.origin + "/index.html");
    INFO(outcome);
    CHECK_THAT(outcome, Catch::StartsWith("error=TypeError") && Catch::Contains("Failed to fetch"));
    // The preflight was refused, so the POST never reached the shim, and nothing was created.
    CHECK(requests(R"(route="preflight",code="403")") == 1);
    CHECK(requests(R"(route="start")") == 0);
    CHECK(kubectl({"get", "-n", ns, "repl/from-other"}).exit_code != 0);
  }
  {
    INFO("from the allowed origin " << allowed.origin);
    const std::string outcome = load_in_chromium(tmp, allowed.origin + "/index.html");
    INFO(outcome);
    CHECK_THAT(outcome, Catch::StartsWith("status=201 body=") &&
                            Catch::Contains(R"("replId":"from-allowed")") &&
                            Catch::Contains(R"("userId":"alice")"));
    CHECK(jsonpath(ns, "repl/from-allowed", "{.spec.userId}") == "alice");
    // The browser asked first (the preflight), then sent the POST.
    CHECK(requests(R"(route="preflight",code="204")") == 1);
    CHECK(requests(R"(route="start",code="201")") == 1);
  }
  const auto repls = kubectl({"get", "repls", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}"});
  REQUIRE(repls.exit_code == 0);
  CHECK(repls.out == "from-allowed");
}

TEST_CASE(
    "a browser signed in with a JWT: the page's fetch with the user's token (preflight included) starts "
    "and reads its own repl; a forged token is 401 and creates nothing",
    "[browser]") {
  TempDir tmp;
  const std::string dir = tmp.path.string() + "/site";
  std::filesystem::create_directories(dir);
  StaticServer site(dir);
  const Minter key = Minter::p256("idp-1");
  write_file(tmp.path.string() + "/jwks.json", repl::test::jwks_of({key.jwk()}));
  const std::string ns = fresh_namespace("browser-jwt");
  auto shim = start_shim({"--namespace", ns, "--cors-origins", site.origin, "--jwks-file",
                          tmp.path.string() + "/jwks.json", "--jwt-issuer", "https://idp.test",
                          "--jwt-audience", "repl-shim"});
  std::string addr;
  REQUIRE(eventually(30s, [&] { return !(addr = shim->served_addr("")).empty(); }));
  const std::string shim_url = "http://" + addr;
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string claims = R"({"sub":"auth0|alice","iss":"https://idp.test","aud":"repl-shim","exp":)" +
                             std::to_string(now + 300) + "}";
  const std::string token = key.sign(R"({"alg":"ES256","kid":"idp-1","typ":"JWT"})", claims);
  write_file(dir + "/ok.html", jwt_page(shim_url, token, "signed-in"));
  const std::string forged = Minter::p256("idp-1").sign(R"({"alg":"ES256","kid":"idp-1"})", claims);
  write_file(dir + "/forged.html", jwt_page(shim_url, forged, "forged"));
  const std::string user = repl::auth::user_id_for("auth0|alice");

  const std::string ok = load_in_chromium(tmp, site.origin + "/ok.html");
  INFO(ok);
  CHECK_THAT(ok, Catch::StartsWith("status=201 body=") && Catch::Contains(R"("userId":")" + user + "\"") &&
                     Catch::Contains(" get=200 "));
  CHECK(jsonpath(ns, "repl/signed-in", "{.spec.userId}") == user);
  CHECK(jsonpath(ns, "repl/signed-in", "{.metadata.annotations.peetcode\\.com/subject}") == "auth0|alice");
  const auto requests = [&](const std::string& labels) {
    return metric_sum(http("GET", shim_url + "/metrics").body, "repl_shim_requests_total", labels);
  };
  CHECK(requests(R"(route="preflight",code="204")") >= 1);  // Authorization makes the GET preflighted too

  const std::string refused = load_in_chromium(tmp, site.origin + "/forged.html");
  INFO(refused);
  CHECK_THAT(refused, Catch::StartsWith("status=401 ") && Catch::Contains(" get=401 "));
  CHECK(kubectl({"get", "-n", ns, "repl/forged"}).exit_code != 0);
}

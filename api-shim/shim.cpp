#include "shim.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <map>

#include "common/json.hpp"
#include "common/log.hpp"
#include "common/time.hpp"
#include "kube/incidents.hpp"
#include "repl/validation.hpp"

namespace repl::shim {
namespace {

using kube::HttpReply;
using kube::IncomingRequest;

constexpr const char* kJson = "application/json";

std::string json_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

HttpReply json_reply(int status, const rapidjson::Value& body) {
  return HttpReply{status, kJson, json_text(body), {}};
}

// {replId, userId, phase, ready, urls: {ide, preview}}
HttpReply repl_reply(int status, const Repl& r) {
  rapidjson::Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  const auto str = [&a](const std::string& s) {
    return rapidjson::Value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  d.AddMember("replId", str(r.key.name), a);
  d.AddMember("userId", str(r.spec.user_id), a);
  d.AddMember("phase", str(r.status.phase.empty() ? "Pending" : r.status.phase), a);
  d.AddMember("ready", r.status.phase == "Ready", a);
  rapidjson::Value urls(rapidjson::kObjectType);
  urls.AddMember("ide", str(r.status.ide_url), a);
  urls.AddMember("preview", str(r.status.preview_url), a);
  d.AddMember("urls", std::move(urls), a);
  return json_reply(status, d);
}

// The API server could not be reached, or failed: the client should come back later.
// The API server's own trouble is logged once per incident (kube::incident_logger); its Retry-After,
// if longer, is passed on.
HttpReply upstream_reply(const kube::ApiError& e) {
  log::write(kube::is_server_failure(e) ? log::Level::kDebug : log::Level::kWarn, "kubernetes request failed",
             {{"error", e.describe()}});
  HttpReply r = error_reply(503, "unavailable", "", "the Kubernetes API is not available; try again shortly");
  r.headers.emplace_back("Retry-After", std::to_string(std::max<long long>(2, e.retry_after.count())));
  return r;
}

// The request body, parsed: a JSON object of string fields only, from a closed set.
struct Fields {
  std::map<std::string, std::string> values;
};

Result<Fields, HttpReply> parse_fields(const IncomingRequest& req, const std::vector<std::string>& allowed) {
  if (req.body_too_large)
    return Fail(error_reply(413, "payload_too_large", "", "the request body is too large"));
  // Media types are case-insensitive (RFC 9110); parameters such as charset may follow.
  std::string media = req.header("content-type");
  media = media.substr(0, media.find(';'));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  for (char& c : media) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (media != kJson) {
    return Fail(error_reply(415, "unsupported_media_type", "", "send the body as application/json"));
  }
  rapidjson::Document doc;
  // Iterative: deeply nested input cannot exhaust the stack. Validated: invalid UTF-8 is refused.
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(req.body.data(),
                                                                                    req.body.size());
  if (doc.HasParseError()) {
    return Fail(error_reply(
        400, "bad_request", "",
        std::string("the body is not valid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return Fail(error_reply(400, "bad_request", "", "the body must be a JSON object"));
  Fields f;
  for (const auto& m : doc.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return Fail(error_reply(400, "bad_request", name, "unknown field \"" + name + "\""));
    }
    if (!m.value.IsString()) return Fail(error_reply(400, "bad_request", name, name + " must be a string"));
    f.values[name].assign(m.value.GetString(), m.value.GetStringLength());
  }
  return f;
}

std::string field(const Fields& f, const std::string& name) {
  const auto it = f.values.find(name);
  return it == f.values.end() ? std::string() : it->second;
}

// The body's userId, if it names one (an empty one is named, and refused later).
std::optional<std::string> given_user(const Fields& f) {
  const auto it = f.values.find("userId");
  if (it == f.values.end()) return std::nullopt;
  return it->second;
}

// Decodes %XX and '+' in a query component; a malformed escape is kept as it is (and then fails
// validation like any other bad character).
std::string percent_decode(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(const std::string& query) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    const std::size_t amp = query.find('&', pos);
    const std::string part = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    const std::size_t eq = part.find('=');
    if (!part.empty()) {
      out[percent_decode(part.substr(0, eq))] =
          eq == std::string::npos ? "" : percent_decode(part.substr(eq + 1));
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

// The spec fields a request leaves out, from the Repl as it is: the shim's apply would remove
// what it owned and leaves out.
void keep_unnamed(StartRequest& s, const Repl& existing) {
  if (s.language.empty()) s.language = existing.spec.language;
  if (s.subject.empty()) s.subject = existing.subject;
  if (s.idle_timeout.empty()) s.idle_timeout = existing.spec.idle_timeout;
  if (s.ttl_after_suspend.empty()) s.ttl_after_suspend = existing.spec.ttl_after_suspend;
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> digest(const std::string& s) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

}  // namespace

HttpReply error_reply(int status, const std::string& code, const std::string& field,
                      const std::string& message) {
  rapidjson::Document d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("error", rapidjson::Value(code.c_str(), a), a);
  if (field.empty()) {
    d.AddMember("field", rapidjson::Value(rapidjson::kNullType), a);
  } else {
    d.AddMember("field", rapidjson::Value(field.c_str(), static_cast<rapidjson::SizeType>(field.size()), a),
                a);
  }
  d.AddMember("message",
              rapidjson::Value(message.c_str(), static_cast<rapidjson::SizeType>(message.size()), a), a);
  return json_reply(status, d);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  // Beyond a day nothing here makes sense, and the bound keeps the conversion below from overflowing.
  constexpr std::int64_t kMaxMillis = 24LL * 3600 * 1000;
  if (ec != std::errc{} || n < 0 || n > kMaxMillis) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  std::chrono::milliseconds d;
  if (unit.empty() || unit == "s") {
    d = std::chrono::seconds(n);
  } else if (unit == "ms") {
    d = std::chrono::milliseconds(n);
  } else if (unit == "m") {
    d = std::chrono::minutes(n);
  } else {
    return std::nullopt;
  }
  if (d.count() > kMaxMillis) return std::nullopt;
  return d;
}

Shim::Shim(ShimOptions options, ReplApi& api, Clock& clock, metrics::Registry& registry)
    : options_(std::move(options)),
      api_(api),
      clock_(clock),
      registry_(registry),
      requests_(prometheus::BuildCounter()
                    .Name("repl_shim_requests_total")
                    .Help("HTTP requests, by route and status code.")
                    .Register(registry.families())),
      latency_(prometheus::BuildHistogram()
                   .Name("repl_shim_request_duration_seconds")
                   .Help("Time to answer, by route.")
                   .Register(registry.families())),
      buckets_(options_.rate_per_minute > 0 ? std::make_unique<TokenBuckets>(options_.rate_per_minute,
                                                                             std::max(1, options_.rate_burst))
                                            : nullptr) {}

std::optional<HttpReply> Shim::admit(const std::string& repl_id, const std::string& user, bool* reserved) {
  *reserved = false;
  if (options_.quota == nullptr) return std::nullopt;
  const auto& limits = options_.quota->limits();
  switch (options_.quota->admit(repl_id, user, reserved)) {
    case Quota::Verdict::kAdmitted:
      return std::nullopt;
    case Quota::Verdict::kUserFull:
      return error_reply(429, "too_many_requests", "",
                         "user " + user + " already runs " + std::to_string(limits.per_user) +
                             " repls, the most one user may (--max-repls-per-user): stop one first");
    case Quota::Verdict::kTotalFull:
      return error_reply(429, "too_many_requests", "",
                         std::to_string(limits.total) +
                             " repls run, the most the platform allows (--max-repls): try again later");
    case Quota::Verdict::kNotSynced:
      break;
  }
  HttpReply r = error_reply(503, "unavailable", "", "the shim is still reading the running repls; try again");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::optional<HttpReply> Shim::rate_limited(const std::string& user) {
  if (!buckets_) return std::nullopt;
  const auto wait = buckets_->take(user, clock_.now());
  if (!wait) return std::nullopt;
  HttpReply r = error_reply(429, "too_many_requests", "",
                            "user " + user + " sent more than " + std::to_string(options_.rate_per_minute) +
                                " writes a minute (bursts of " + std::to_string(options_.rate_burst) +
                                "); try again in " + std::to_string(wait->count()) + " s");
  r.headers.emplace_back("Retry-After", std::to_string(wait->count()));
  return r;
}

bool Shim::origin_allowed(const std::string& origin) const {
  return !origin.empty() && std::find(options_.cors_origins.begin(), options_.cors_origins.end(), origin) !=
                                options_.cors_origins.end();
}

Result<Shim::Caller, HttpReply> Shim::authenticate(const IncomingRequest& request) const {
  const bool jwt = static_cast<bool>(options_.jwt_keys);
  if (options_.auth_token.empty() && !jwt) return Caller{};
  const auto refused = [](const char* challenge) {
    HttpReply r = error_reply(401, "unauthorized", "", "a valid bearer token is required");
    r.headers.emplace_back("WWW-Authenticate", challenge);
    return r;
  };
  const std::string header = request.header("authorization");
  // The scheme is case-insensitive (RFC 9110); the token is not.
  std::string scheme = header.substr(0, 7);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string given = scheme == "bearer " ? header.substr(7) : std::string();
  if (given.empty()) return Fail(refused("Bearer"));
  if (!options_.auth_token.empty()) {
    // Compared as digests in constant time: neither the content nor the length of the token leaks.
    const auto a = digest(given);
    const auto b = digest(options_.auth_token);
    if (CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0) return Caller{};
  }
  if (!jwt) return Fail(refused("Bearer"));
  const auto keys = options_.jwt_keys();
  auto who = keys ? auth::verify(given, *keys, options_.jwt, clock_.wall())
                  : Result<auth::Identity, std::string>(Fail(std::string("no JWT keys")));
  if (!who) {
    // The reason is for the operator's log only: a client learns nothing about the keys.
    log::info("bearer token refused", {{"reason", who.error()}});
    return Fail(refused(R"(Bearer error="invalid_token")"));
  }
  return Caller{false, auth::user_id_for(who->subject), who->subject};
}

Result<std::string, HttpReply> Shim::user_for(const Caller& caller,
                                              const std::optional<std::string>& given) const {
  if (!caller.trusted) {
    if (given && *given != caller.user_id && *given != caller.subject) {
      return Fail(error_reply(403, "forbidden", "userId", "the userId is not the token's user"));
    }
    return caller.user_id;
  }
  std::string user_id = given.value_or(options_.default_user);
  if (auto e = validate_user_id(user_id)) return Fail(error_reply(400, "bad_request", "userId", e->message));
  return user_id;
}

void Shim::handle(const IncomingRequest& request, kube::Responder respond) {
  std::string route_name = "other";
  Routed routed = route(request, route_name);
  auto finish = [this, started = clock_.now(), route_name, origin = request.header("origin"),
                 respond = std::move(respond)](HttpReply reply) {
    if (origin_allowed(origin)) {
      reply.headers.emplace_back("Access-Control-Allow-Origin", origin);
      reply.headers.emplace_back("Access-Control-Allow-Credentials", "true");
    }
    if (!options_.cors_origins.empty()) reply.headers.emplace_back("Vary", "Origin");
    requests_.Add({{"route", route_name}, {"code", std::to_string(reply.status)}}).Increment();
    latency_.Add({{"route", route_name}}, metrics::default_seconds_buckets())
        .Observe(std::chrono::duration<double>(clock_.now() - started).count());
    respond(std::move(reply));
  };
  if (auto* wait = std::get_if<WaitReady>(&routed)) {
    api_.wait_ready(wait->repl_id, wait->timeout,
                    [finish = std::move(finish), owner = wait->owner](WaitResult r) {
                      if (!r) return finish(upstream_reply(r.error()));
                      if (!*r || (!owner.empty() && (**r).spec.user_id != owner))
                        return finish(error_reply(404, "not_found", "replId", "no such repl"));
                      finish(repl_reply(200, **r));
                    });
    return;
  }
  finish(std::get<HttpReply>(std::move(routed)));
}

Shim::Routed Shim::route(const IncomingRequest& req, std::string& route_name) {
  const std::string& path = req.path;
  const auto method_not_allowed = [](const char* allow) {
    HttpReply r = error_reply(405, "method_not_allowed", "", std::string("allowed: ") + allow);
    r.headers.emplace_back("Allow", allow);
    return r;
  };
  if (req.method == "OPTIONS") {
    route_name = "preflight";
    return preflight(req);
  }
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    route_name = path.substr(1);
    if (req.method != "GET") return method_not_allowed("GET");
    if (path == "/healthz") return HttpReply{200, kJson, R"({"status":"ok"})", {}};
    if (path == "/metrics") return HttpReply{200, metrics::kContentType, registry_.render(), {}};
    if (!api_.reachable()) return error_reply(503, "unavailable", "", "the Kubernetes API does not answer");
    // Until the quota has the running Repls, /start would only answer 503: not ready for traffic.
    if (options_.quota != nullptr && !options_.quota->synced())
      return error_reply(503, "unavailable", "", "still reading the running repls (quotas)");
    return HttpReply{200, kJson, R"({"status":"ok"})", {}};
  }
  const bool is_start = path == "/start";
  const bool is_stop = path == "/stop";
  const std::string repls_prefix = "/repls/";
  const std::string heartbeat_suffix = "/heartbeat";
  std::string repl_id;
  bool is_heartbeat = false;
  if (path.rfind(repls_prefix, 0) == 0) {
    repl_id = path.substr(repls_prefix.size());
    is_heartbeat = repl_id.size() > heartbeat_suffix.size() &&
                   repl_id.compare(repl_id.size() - heartbeat_suffix.size(), heartbeat_suffix.size(),
                                   heartbeat_suffix) == 0;
    if (is_heartbeat) repl_id.resize(repl_id.size() - heartbeat_suffix.size());
  }
  const bool is_repl = !repl_id.empty() && repl_id.find('/') == std::string::npos;
  if (!is_start && !is_stop && !is_repl)
    return error_reply(404, "not_found", "", "no such endpoint: " + path);
  route_name = is_start ? "start" : is_stop ? "stop" : is_heartbeat ? "heartbeat" : "repl";
  auto caller = authenticate(req);
  if (!caller) return caller.error();
  if (is_start) return req.method == "POST" ? start(req, *caller) : method_not_allowed("POST");
  if (is_stop) return req.method == "POST" ? stop(req, *caller) : method_not_allowed("POST");
  if (is_heartbeat)
    return req.method == "POST" ? heartbeat(req, repl_id, *caller) : method_not_allowed("POST");
  if (req.method == "GET") return get(req, repl_id, *caller);
  if (req.method == "DELETE") return remove(req, repl_id, *caller);
  return method_not_allowed("GET, DELETE");
}

HttpReply Shim::preflight(const IncomingRequest& req) {
  const std::string origin = req.header("origin");
  const std::string method = req.header("access-control-request-method");
  if (!origin_allowed(origin)) return error_reply(403, "forbidden", "", "origin not allowed");
  if (method != "GET" && method != "POST" && method != "DELETE") {
    return error_reply(403, "forbidden", "", "method not allowed for cross-origin requests");
  }
  HttpReply r{204, kJson, "", {}};
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE");
  r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  return r;
}

HttpReply Shim::start(const IncomingRequest& req, const Caller& caller) {
  auto fields = parse_fields(req, {"userId", "replId", "language", "idleTimeout", "ttlAfterSuspend"});
  if (!fields) return fields.error();
  StartRequest s{field(*fields, "replId"),      "",
                 field(*fields, "language"),    false,
                 field(*fields, "idleTimeout"), field(*fields, "ttlAfterSuspend"),
                 rfc3339(clock_.wall()),        caller.subject};
  if (auto e = validate_repl_id(s.repl_id)) return error_reply(400, "bad_request", "replId", e->message);
  auto user = user_for(caller, given_user(*fields));
  if (!user) return user.error();
  s.user_id = *user;
  // (replId and userId are checked above, by the rules the CRD shares.)
  if (!s.language.empty()) {
    if (auto e = validate_language(s.language))
      return error_reply(400, "bad_request", "language", e->message);
  }
  for (const char* name : {"idleTimeout", "ttlAfterSuspend"}) {
    // The CRD's rule, with its message: a given but empty value is refused like any other.
    const auto it = fields->values.find(name);
    if (it != fields->values.end() && validate_duration(name, it->second))
      return error_reply(400, "bad_request", name, kDurationMessage);
  }
  if (auto limited = rate_limited(s.user_id)) return *limited;  // input checks first: they change nothing
  if (s.language.empty() || s.idle_timeout.empty() || s.ttl_after_suspend.empty()) {
    // A resume keeps what it does not name (an apply without a field would remove it).
    auto existing = api_.get(s.repl_id);
    if (!existing) return upstream_reply(existing.error());
    if (*existing) keep_unnamed(s, **existing);
  }

  bool reserved = false;
  if (auto refused = admit(s.repl_id, s.user_id, &reserved)) return *refused;
  auto applied = api_.apply(s);
  if (!applied && reserved) options_.quota->release(s.repl_id);
  if (!applied) {
    const auto& e = applied.error();
    if (e.is_invalid() && e.message.find("userId is immutable") != std::string::npos) {
      return error_reply(409, "conflict", "replId", "this replId belongs to another user");
    }
    // The CRD's own rules refused it: the client's input (our checks match the CRD's, so this is
    // rare). Anything else (429 throttling, 401/403 for the shim's own credentials) is ours.
    if (e.kind == kube::ApiError::Kind::kApi && (e.code == 400 || e.code == 422)) {
      return error_reply(400, "bad_request", "", e.message);
    }
    return upstream_reply(e);
  }
  log::info("started",
            {{"repl", s.repl_id}, {"user", s.user_id}, {"created", applied->created ? "true" : "false"}});
  return repl_reply(applied->created ? 201 : 200, applied->repl);
}

HttpReply Shim::stop(const IncomingRequest& req, const Caller& caller) {
  auto fields = parse_fields(req, {"userId", "replId"});
  if (!fields) return fields.error();
  StartRequest s{field(*fields, "replId"), "", "", true, "", "", "", ""};
  if (auto e = validate_repl_id(s.repl_id)) return error_reply(400, "bad_request", "replId", e->message);
  auto user = user_for(caller, given_user(*fields));
  if (!user) return user.error();
  s.user_id = *user;
  if (auto limited = rate_limited(s.user_id)) return *limited;
  auto existing = api_.get(s.repl_id);
  if (!existing) return upstream_reply(existing.error());
  if (!*existing) return error_reply(404, "not_found", "replId", "no such repl");
  if ((*existing)->spec.user_id != s.user_id) {
    return error_reply(409, "conflict", "replId", "this replId belongs to another user");
  }
  keep_unnamed(s, **existing);
  s.last_activity = (*existing)->last_activity;  // kept too
  auto applied = api_.apply(s);
  if (!applied) return upstream_reply(applied.error());
  return repl_reply(200, applied->repl);
}

HttpReply Shim::heartbeat(const IncomingRequest& req, const std::string& repl_id, const Caller& caller) {
  if (auto e = validate_repl_id(repl_id)) return error_reply(400, "bad_request", "replId", e->message);
  auto user = requested_user(req, caller);
  if (!user) return user.error();
  if (auto limited = rate_limited(*user)) return *limited;
  auto existing = api_.get(repl_id);
  if (!existing) return upstream_reply(existing.error());
  if (!*existing) return error_reply(404, "not_found", "replId", "no such repl");
  if ((*existing)->spec.user_id != *user) {
    return error_reply(409, "conflict", "replId", "this replId belongs to another user");
  }
  // Written at most once an activity interval per Repl (heartbeats come every few seconds from
  // every open tab); two shim replicas read the same annotation, so together they write about as
  // rarely.
  const WallTime now = clock_.wall();
  const auto last = parse_rfc3339((*existing)->last_activity);
  if (last && now - *last < options_.activity_interval) return repl_reply(200, **existing);
  auto recorded = api_.record_activity(repl_id, rfc3339(now));
  if (!recorded) {
    if (recorded.error().is_not_found()) return error_reply(404, "not_found", "replId", "no such repl");
    return upstream_reply(recorded.error());
  }
  return repl_reply(200, *recorded);
}

Shim::Routed Shim::get(const IncomingRequest& req, const std::string& repl_id, const Caller& caller) {
  if (auto e = validate_repl_id(repl_id)) return error_reply(400, "bad_request", "replId", e->message);
  const auto query = parse_query(req.query);
  const auto wait = query.find("wait");
  if (wait != query.end() && wait->second != "ready") {
    return error_reply(400, "bad_request", "wait", "wait may only be \"ready\"");
  }
  if (wait == query.end()) {
    auto r = api_.get(repl_id);
    if (!r) return upstream_reply(r.error());
    // A JWT caller sees only its own: another user's Repl is not there for it.
    if (!*r || (!caller.trusted && (**r).spec.user_id != caller.user_id))
      return error_reply(404, "not_found", "replId", "no such repl");
    return repl_reply(200, **r);
  }
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  if (const auto t = query.find("timeout"); t != query.end()) {
    const auto parsed = parse_duration(t->second);
    if (!parsed || *parsed > options_.max_wait) {
      return error_reply(400, "bad_request", "timeout",
                         "timeout must be a duration such as 30s, at most " +
                             std::to_string(options_.max_wait.count()) + "s");
    }
    timeout = *parsed;
  }
  return WaitReady{repl_id, timeout, caller.trusted ? "" : caller.user_id};
}

Result<std::string, HttpReply> Shim::requested_user(const IncomingRequest& req, const Caller& caller) const {
  // From the body or the query; the default user only when neither names one at all.
  std::optional<std::string> given;
  if (!req.body.empty() || req.body_too_large) {
    auto fields = parse_fields(req, {"userId"});
    if (!fields) return Fail(fields.error());
    given = given_user(*fields);
  } else {
    const auto query = parse_query(req.query);
    if (const auto it = query.find("userId"); it != query.end()) given = it->second;
  }
  return user_for(caller, given);
}

HttpReply Shim::remove(const IncomingRequest& req, const std::string& repl_id, const Caller& caller) {
  if (auto e = validate_repl_id(repl_id)) return error_reply(400, "bad_request", "replId", e->message);
  auto user = requested_user(req, caller);
  if (!user) return user.error();
  if (auto limited = rate_limited(*user)) return *limited;
  const std::string& user_id = *user;
  auto existing = api_.get(repl_id);
  if (!existing) return upstream_reply(existing.error());
  if (!*existing) return error_reply(404, "not_found", "replId", "no such repl");
  if ((*existing)->spec.user_id != user_id) {
    return error_reply(409, "conflict", "replId", "this replId belongs to another user");
  }
  auto removed = api_.remove(repl_id, (*existing)->uid);
  if (!removed) {
    if (removed.error().is_not_found()) return error_reply(404, "not_found", "replId", "no such repl");
    if (removed.error().is_conflict())
      return error_reply(409, "conflict", "replId", "the repl changed meanwhile");
    return upstream_reply(removed.error());
  }
  log::info("deleted", {{"repl", repl_id}, {"user", user_id}});
  return HttpReply{200, kJson, R"({"deleted":true})", {}};
}

}  // namespace repl::shim

#include "kube/client.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.hpp"
#include "kube/resource.hpp"

namespace repl::kube {

using json::member;

namespace {

std::string with_query(std::string_view path, const std::string& query) {
  return query.empty() ? std::string(path) : std::string(path) + "?" + query;
}

void add_param(std::string& query, std::string_view key, std::string_view value) {
  if (!query.empty()) query += "&";
  query += std::string(key) + "=" + query_escape(value);
}

HttpRequest apply_request(std::string_view path, const rapidjson::Value& object,
                          std::string_view field_manager, bool force) {
  std::string query;
  add_param(query, "fieldManager", field_manager);
  if (force) add_param(query, "force", "true");
  // JSON is YAML, so the apply body can be the object's JSON text.
  return {"PATCH", with_query(path, query), "application/apply-patch+yaml", to_json(object)};
}

HttpRequest create_request(std::string_view collection, const rapidjson::Value& object) {
  return {"POST", std::string(collection), "application/json", to_json(object)};
}

HttpRequest merge_patch_request(std::string_view path, const rapidjson::Value& patch) {
  return {"PATCH", std::string(path), "application/merge-patch+json", to_json(patch)};
}

}  // namespace

std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

void Client::observe(std::string_view verb, int code) const {
  if (observer_) observer_(verb, code);
}

std::optional<ApiError> Client::refused(const HttpRequest& request) const {
  if (!gate_ || request.method == "GET" || gate_()) return std::nullopt;
  return fenced_error("not the leader: " + request.method + " " + request.target + " not sent");
}

Result<rapidjson::Document, ApiError> Client::exchange(std::string_view verb, HttpRequest request,
                                                       int* status) {
  if (auto error = refused(request)) return Fail(std::move(*error));
  return decode(verb, request, transport_->send(request), status);
}

void Client::exchange_async(std::string_view verb, HttpRequest request, Done done) {
  if (auto error = refused(request)) return done(Fail(std::move(*error)));
  auto shared = std::make_shared<HttpRequest>(std::move(request));
  transport_->send_async(*shared, [this, verb, shared, done = std::move(done)](Transport::SendResult resp) {
    done(decode(verb, *shared, resp, nullptr));
  });
}

Client::Answer Client::decode(std::string_view verb, const HttpRequest& request,
                              const Transport::SendResult& resp, int* status) const {
  observe(verb, resp ? resp->status : 0);
  if (!resp) return Fail(resp.error());
  if (status != nullptr) *status = resp->status;
  if (resp->status < 200 || resp->status > 299) return Fail(decode_status(*resp));
  rapidjson::Document doc;
  if (resp->body.empty()) return doc;
  doc.Parse(resp->body.data(), resp->body.size());
  if (doc.HasParseError()) {
    return Fail(decode_error(request.method + " " + request.target + ": response is not JSON"));
  }
  return doc;
}

Result<rapidjson::Document, ApiError> Client::get(std::string_view path) {
  return exchange("GET", {"GET", std::string(path), "", ""});
}

void Client::get_async(std::string_view path, Done done) {
  exchange_async("GET", {"GET", std::string(path), "", ""}, std::move(done));
}

void Client::get_text_async(std::string_view path, TextDone done) {
  auto shared = std::make_shared<HttpRequest>(HttpRequest{"GET", std::string(path), "", ""});
  transport_->send_async(*shared, [this, shared, done = std::move(done)](Transport::SendResult resp) {
    observe("GET", resp ? resp->status : 0);
    if (!resp) return done(Fail(resp.error()));
    if (resp->status < 200 || resp->status > 299) return done(Fail(decode_status(*resp)));
    done(std::move(resp->body));
  });
}

struct Client::Listing {
  std::string collection;
  ListOptions options;
  ItemFn on_item;
  ListDone done;
};

void Client::list_async(std::string_view collection, const ListOptions& options, ItemFn on_item,
                        ListDone done) {
  list_from(std::make_shared<Listing>(
                Listing{std::string(collection), options, std::move(on_item), std::move(done)}),
            "");
}

void Client::list_from(std::shared_ptr<Listing> listing, const std::string& continue_token) {
  const ListOptions& options = listing->options;
  std::string query;
  add_param(query, "limit", std::to_string(options.page_size));
  if (!options.label_selector.empty()) add_param(query, "labelSelector", options.label_selector);
  if (!options.field_selector.empty()) add_param(query, "fieldSelector", options.field_selector);
  if (!continue_token.empty()) add_param(query, "continue", continue_token);
  exchange_async("LIST", {"GET", with_query(listing->collection, query), "", ""},
                 [this, listing](Answer page) {
                   const std::string what = "LIST " + listing->collection;
                   if (!page) return listing->done(Fail(page.error()));
                   const rapidjson::Value* items = member(*page, "items");
                   const rapidjson::Value* meta = member(*page, "metadata");
                   if (items == nullptr || !items->IsArray() || meta == nullptr) {
                     return listing->done(Fail(decode_error(what + ": not a list")));
                   }
                   for (const auto& item : items->GetArray()) listing->on_item(item);
                   const rapidjson::Value* next = member(*meta, "continue");
                   if (next != nullptr && next->IsString() && next->GetStringLength() > 0) {
                     return list_from(listing, std::string(next->GetString(), next->GetStringLength()));
                   }
                   const rapidjson::Value* rv = member(*meta, "resourceVersion");
                   if (rv == nullptr || !rv->IsString())
                     return listing->done(Fail(decode_error(what + ": no resourceVersion")));
                   listing->done(std::string(rv->GetString(), rv->GetStringLength()));
                 });
}

Client::ListResult Client::list(std::string_view collection, const ListOptions& options,
                                const ItemFn& on_item) {
  return wait_for_answer<ListResult>(
      [&](ListDone done) { list_async(collection, options, on_item, std::move(done)); });
}

Result<rapidjson::Document, ApiError> Client::apply(std::string_view path, const rapidjson::Value& object,
                                                    std::string_view field_manager, bool force,
                                                    bool* created) {
  int status = 0;
  auto r = exchange("PATCH", apply_request(path, object, field_manager, force), &status);
  if (created != nullptr) *created = status == 201;
  return r;
}

void Client::apply_async(std::string_view path, const rapidjson::Value& object,
                         std::string_view field_manager, Done done) {
  exchange_async("PATCH", apply_request(path, object, field_manager, true), std::move(done));
}

Result<rapidjson::Document, ApiError> Client::merge_patch(std::string_view path,
                                                          const rapidjson::Value& patch) {
  return exchange("PATCH", merge_patch_request(path, patch));
}

void Client::merge_patch_async(std::string_view path, const rapidjson::Value& patch, Done done) {
  exchange_async("PATCH", merge_patch_request(path, patch), std::move(done));
}

Result<void, ApiError> Client::remove(std::string_view path, std::string_view uid) {
  std::string body;
  if (!uid.empty()) {
    rapidjson::Document options(rapidjson::kObjectType);
    auto& a = options.GetAllocator();
    options.AddMember("kind", "DeleteOptions", a);
    options.AddMember("apiVersion", "v1", a);
    rapidjson::Value preconditions(rapidjson::kObjectType);
    preconditions.AddMember("uid",
                            rapidjson::Value(uid.data(), static_cast<rapidjson::SizeType>(uid.size()), a), a);
    options.AddMember("preconditions", std::move(preconditions), a);
    body = to_json(options);
  }
  auto r = exchange("DELETE", {"DELETE", std::string(path), body.empty() ? "" : "application/json", body});
  if (!r) return Fail(r.error());
  return Ok{};
}

Result<rapidjson::Document, ApiError> Client::create(std::string_view collection,
                                                     const rapidjson::Value& object) {
  return exchange("POST", create_request(collection, object));
}

void Client::create_async(std::string_view collection, const rapidjson::Value& object, Done done) {
  exchange_async("POST", create_request(collection, object), std::move(done));
}

Result<rapidjson::Document, ApiError> Client::update(std::string_view path, const rapidjson::Value& object) {
  return exchange("PUT", {"PUT", std::string(path), "application/json", to_json(object)});
}

void Client::update_async(std::string_view path, const rapidjson::Value& object, Done done) {
  exchange_async("PUT", {"PUT", std::string(path), "application/json", to_json(object)}, std::move(done));
}

void Client::watch_async(std::string_view collection, const WatchOptions& options,
                         Transport::StreamDone done) {
  std::string query;
  add_param(query, "watch", "true");
  if (!options.resource_version.empty()) add_param(query, "resourceVersion", options.resource_version);
  if (!options.label_selector.empty()) add_param(query, "labelSelector", options.label_selector);
  add_param(query, "timeoutSeconds", std::to_string(options.timeout_seconds));
  if (options.allow_bookmarks) add_param(query, "allowWatchBookmarks", "true");
  if (!options.field_selector.empty()) add_param(query, "fieldSelector", options.field_selector);
  transport_->open_stream_async({"GET", with_query(collection, query), "", ""},
                                [this, done = std::move(done)](Transport::StreamResult stream) {
                                  const bool api = !stream && stream.error().kind == ApiError::Kind::kApi;
                                  observe("WATCH", stream ? 200 : (api ? stream.error().code : 0));
                                  done(std::move(stream));
                                });
}

Transport::StreamResult Client::watch(std::string_view collection, const WatchOptions& options) {
  return wait_for_answer<Transport::StreamResult>(
      [&](Transport::StreamDone done) { watch_async(collection, options, std::move(done)); });
}

}  // namespace repl::kube

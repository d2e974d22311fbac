// The Kubernetes REST client: typed verbs over a Transport, JSON (RapidJSON) in and out, every
// failure an ApiError value carrying the server's Status.
//
//   Client c(transport);
//   auto repl = c.get(object_path(repls(), "default", "abc"));
//   if (!repl && repl.error().is_not_found()) ...
//
// Thread-safety: as safe as its Transport (the real one may be shared by threads).
#pragma once

#include <rapidjson/document.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "kube/error.hpp"
#include "kube/transport.hpp"

namespace repl::kube {

struct ListOptions {
  std::string label_selector;
  int page_size = 500;  // `limit` per request; continue tokens are followed to the end
  std::string field_selector;
};

struct WatchOptions {
  std::string resource_version;  // watch changes after this version
  std::string label_selector;
  int timeout_seconds = 300;  // the server ends the watch after this
  bool allow_bookmarks = true;
  std::string field_selector;  // e.g. "metadata.name=abc" to watch one object
};

class Client final {
 public:
  // Told about every finished request: its verb ("GET", "LIST", "WATCH", "PATCH", ...) and the
  // HTTP status (0 when the server could not be reached). Called on the requesting thread (for an
  // asynchronous verb, on the thread that calls its Done).
  using Observer = std::function<void(std::string_view verb, int code)>;

  explicit Client(std::shared_ptr<Transport> transport, Observer observer = {})
      : transport_(std::move(transport)), observer_(std::move(observer)) {}

  // Asked before every write (any verb but GET) is sent: false refuses it with is_fenced() and sends
  // nothing. A leader's fence: its writes stop the moment its Lease may have passed to another
  // replica, also in a reconcile that was already running (a write already handed to the socket
  // is past the gate).
  using WriteGate = std::function<bool()>;
  // The same transport and observer, writes behind `gate`.
  Client gated(WriteGate gate) const {
    Client c(transport_, observer_);
    c.gate_ = std::move(gate);
    return c;
  }

  using Answer = Result<rapidjson::Document, ApiError>;
  // Called once with the answer of an asynchronous verb, on a transport thread (see
  // Transport::send_async).
  using Done = std::function<void(Answer)>;

  Result<rapidjson::Document, ApiError> get(std::string_view path);
  void get_async(std::string_view path, Done done);
  // A GET whose answer is text (a pod's log), not JSON.
  using TextDone = std::function<void(Result<std::string, ApiError>)>;
  void get_text_async(std::string_view path, TextDone done);

  using ItemFn = std::function<void(const rapidjson::Value&)>;
  using ListResult = Result<std::string, ApiError>;
  using ListDone = std::function<void(ListResult)>;
  // Lists every page of a collection, one request after another, calling `on_item` for each object
  // in order (on the thread that delivers its page, never two at once), then `done` once with the
  // list's resourceVersion (the point to start a watch from). A 410 while paging (the continue
  // token expired) is an error: the caller lists again from the start.
  void list_async(std::string_view collection, const ListOptions& options, ItemFn on_item, ListDone done);
  // The same, waited for.
  ListResult list(std::string_view collection, const ListOptions& options, const ItemFn& on_item);

  // Server-side apply of `object` (which names apiVersion, kind and metadata.name) at `path`, as
  // `field_manager`; force takes ownership of conflicting fields from other managers.
  // `created`, when given, tells whether the apply created the object (201) or changed or kept an
  // existing one (200).
  Result<rapidjson::Document, ApiError> apply(std::string_view path, const rapidjson::Value& object,
                                              std::string_view field_manager, bool force = true,
                                              bool* created = nullptr);

  // The same forced apply without blocking: many in flight at once, no thread each.
  void apply_async(std::string_view path, const rapidjson::Value& object, std::string_view field_manager,
                   Done done);

  // JSON merge patch (RFC 7386): maps merge, lists are replaced whole.
  Result<rapidjson::Document, ApiError> merge_patch(std::string_view path, const rapidjson::Value& patch);
  void merge_patch_async(std::string_view path, const rapidjson::Value& patch, Done done);

  // With `uid`, only that incarnation of the object is deleted (409 Conflict if the name now belongs
  // to another one).
  Result<void, ApiError> remove(std::string_view path, std::string_view uid = {});

  // POST `object` to a collection (create); 409 AlreadyExists when the name is taken.
  Result<rapidjson::Document, ApiError> create(std::string_view collection, const rapidjson::Value& object);
  void create_async(std::string_view collection, const rapidjson::Value& object, Done done);
  // PUT `object` (replace); with metadata.resourceVersion set, 409 Conflict when it changed meanwhile.
  Result<rapidjson::Document, ApiError> update(std::string_view path, const rapidjson::Value& object);
  void update_async(std::string_view path, const rapidjson::Value& object, Done done);

  // Opens a watch on a collection; `done` is called once with the stream (as for send_async). Each
  // line of the stream is one JSON watch event.
  void watch_async(std::string_view collection, const WatchOptions& options, Transport::StreamDone done);
  // The same, waited for.
  Transport::StreamResult watch(std::string_view collection, const WatchOptions& options);

  // Fails every request in flight and every later one (Transport::cancel_all): the end of shutdown.
  void cancel_all() { transport_->cancel_all(); }

 private:
  Result<rapidjson::Document, ApiError> exchange(std::string_view verb, HttpRequest request,
                                                 int* status = nullptr);
  void exchange_async(std::string_view verb, HttpRequest request, Done done);
  struct Listing;
  void list_from(std::shared_ptr<Listing> listing, const std::string& continue_token);
  // An HTTP answer as a document or the server's Status.
  Answer decode(std::string_view verb, const HttpRequest& request, const Transport::SendResult& resp,
                int* status) const;
  void observe(std::string_view verb, int code) const;

  // The error of a write the gate refused, if it does.
  std::optional<ApiError> refused(const HttpRequest& request) const;

  std::shared_ptr<Transport> transport_;
  Observer observer_;
  WriteGate gate_;
};

// Serialises a JSON value compactly.
std::string to_json(const rapidjson::Value& v);

}  // namespace repl::kube

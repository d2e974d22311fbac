#include "kube/http_get.hpp"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>

namespace repl::kube {

void http_get(const std::string& url, const std::string& ca_file, std::chrono::seconds timeout,
              std::size_t max_bytes, GetDone done) {
  auto shared = std::make_shared<GetDone>(std::move(done));
  try {
    web::http::client::http_client_config config;
    config.set_timeout(timeout);
    config.set_ssl_context_callback([ca_file](boost::asio::ssl::context& ctx) {
      if (!ca_file.empty()) ctx.load_verify_file(ca_file);
    });
    auto client = std::make_shared<web::http::client::http_client>(url, config);
    client->request(web::http::methods::GET)
        .then([client, shared, url, max_bytes](pplx::task<web::http::http_response> t) {
          // Worked out first, handed over once, outside the try: `done` is called exactly once.
          Result<std::string, std::string> result = Fail("GET " + url + ": no answer");
          try {
            const auto response = t.get();
            const std::string too_big =
                "GET " + url + ": the body is over " + std::to_string(max_bytes) + " bytes";
            if (response.status_code() != web::http::status_codes::OK) {
              result = Fail("GET " + url + ": status " + std::to_string(response.status_code()));
            } else if (response.headers().content_length() > max_bytes) {
              result = Fail(too_big);
            } else {
              // At most max_bytes + 1 are read, whatever the body's length (chunked, or endless).
              concurrency::streams::container_buffer<std::string> into;
              auto body = response.body();
              std::size_t n = 0;
              for (std::size_t got = 1; got > 0 && n <= max_bytes; n += got)
                got = body.read(into, max_bytes + 1 - n).get();
              result = n > max_bytes ? Result<std::string, std::string>(Fail(too_big))
                                     : Result<std::string, std::string>(std::move(into.collection()));
            }
          } catch (const std::exception& e) {
            result = Fail("GET " + url + ": " + e.what());
          }
          (*shared)(std::move(result));
        });
  } catch (const std::exception& e) {  // a malformed URL
    (*shared)(Fail("GET " + url + ": " + e.what()));
  }
}

}  // namespace repl::kube

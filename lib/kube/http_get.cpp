#include "kube/http_get.hpp"

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
          try {
            const auto response = t.get();
            if (response.status_code() != web::http::status_codes::OK) {
              (*shared)(Fail("GET " + url + ": status " + std::to_string(response.status_code())));
              return;
            }
            if (response.headers().content_length() > max_bytes) {
              (*shared)(Fail("GET " + url + ": the body is over " + std::to_string(max_bytes) + " bytes"));
              return;
            }
            const auto body = response.extract_vector().get();
            if (body.size() > max_bytes) {
              (*shared)(Fail("GET " + url + ": the body is over " + std::to_string(max_bytes) + " bytes"));
              return;
            }
            (*shared)(std::string(body.begin(), body.end()));
          } catch (const std::exception& e) {
            (*shared)(Fail("GET " + url + ": " + e.what()));
          }
        });
  } catch (const std::exception& e) {  // a malformed URL
    (*shared)(Fail("GET " + url + ": " + e.what()));
  }
}

}  // namespace repl::kube

#include "common/yaml_load.hpp"

#include <future>
#include <memory>
#include <thread>

namespace repl {

Result<std::vector<YAML::Node>, std::string> load_yaml_documents(std::string_view text,
                                                                 std::chrono::milliseconds bound) {
  using Parsed = Result<std::vector<YAML::Node>, std::string>;
  auto answer = std::make_shared<std::promise<Parsed>>();
  auto parsed = answer->get_future();
  std::thread([answer, yaml = std::string(text)] {
    try {
      answer->set_value(YAML::LoadAll(yaml));
    } catch (const YAML::Exception& e) {
      // yaml-cpp reports syntax errors by exception; this is the boundary where they become values.
      answer->set_value(Fail(std::string(e.what())));
    } catch (const std::exception& e) {
      answer->set_value(Fail(std::string("cannot parse: ") + e.what()));
    }
  }).detach();
  if (parsed.wait_for(bound) != std::future_status::ready) {
    return Fail("the YAML parser did not finish within " + std::to_string(bound.count()) +
                " ms (yaml-cpp loops forever on some malformed text): is the YAML well-formed?");
  }
  return parsed.get();
}

}  // namespace repl

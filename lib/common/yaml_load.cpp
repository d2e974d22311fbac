#include "common/yaml_load.hpp"

#include <yaml-cpp/eventhandler.h>

#include <sstream>

namespace repl {

namespace {

// Notes where each document starts and nothing else: the first pass only checks that every
// document moves the parser on.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
  }
  void OnMapEnd() override {}

  YAML::Mark start = YAML::Mark::null_mark();
};

std::string at(const YAML::Mark& mark) {
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

// The first pass: every document must start past where the one before it did; a document that
// consumed nothing is where yaml-cpp 0.7.0's LoadAll would loop.
Result<void, std::string> check_progress(const std::string& yaml) {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentStarts starts;
  int previous = -1;
  while (parser.HandleNextDocument(starts)) {
    if (starts.start.pos == previous) {
      return Fail("yaml-cpp: error at " + at(starts.start) +
                  ": a document cannot start here (a ',' or another token outside a collection?)");
    }
    previous = starts.start.pos;
  }
  return {};
}

}  // namespace

Result<std::vector<YAML::Node>, std::string> load_yaml_documents(std::string_view text) {
  const std::string yaml(text);
  try {
    if (auto ok = check_progress(yaml); !ok) return Fail(ok.error());
    return YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports syntax errors by exception; this is the boundary where they become values.
    return Fail(std::string(e.what()));
  } catch (const std::exception& e) {
    return Fail(std::string("cannot parse: ") + e.what());
  }
}

}  // namespace repl

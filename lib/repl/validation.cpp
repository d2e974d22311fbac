#include "repl/validation.hpp"

#include "common/time.hpp"

namespace repl {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

}  // namespace

bool is_dns_label_shape(std::string_view s) {
  if (s.empty() || !is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  return true;
}

bool is_dns_label(std::string_view s) { return s.size() <= 63 && is_dns_label_shape(s); }

bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (std::size_t start = 0;;) {
    const std::size_t dot = s.find('.', start);
    if (!is_dns_label(
            s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::optional<FieldError> validate_repl_id(std::string_view id) {
  const char* field = "metadata.name";
  if (id.empty()) return FieldError{field, "replId is required"};
  if (id.size() > kMaxReplIdLength) return FieldError{field, "replId must be at most 63 characters"};
  // DNS-1035, not just DNS-1123: the replId also names the Service, which must start with a letter.
  if (!is_dns_label_shape(id) || id.front() < 'a' || id.front() > 'z') {
    return FieldError{field,
                      "replId must consist of lower case alphanumeric characters or '-', start with a "
                      "letter and end with an alphanumeric character"};
  }
  return std::nullopt;
}

std::optional<FieldError> validate_user_id(std::string_view id) {
  const char* field = "spec.userId";
  if (id.empty()) return FieldError{field, "userId is required"};
  if (id.size() > kMaxUserIdLength) return FieldError{field, "userId must be at most 63 characters"};
  bool ok = is_alnum(id.front()) && is_alnum(id.back());
  for (char c : id) ok = ok && (is_alnum(c) || c == '-' || c == '_' || c == '.');
  if (!ok) {
    return FieldError{field,
                      "userId must consist of alphanumeric characters, '-', '_' or '.', and must start "
                      "and end with an alphanumeric character"};
  }
  return std::nullopt;
}

std::optional<FieldError> validate_language(std::string_view language) {
  const char* field = "spec.language";
  if (language.size() > kMaxLanguageLength)
    return FieldError{field, "language must be at most 32 characters"};
  if (!is_dns_label_shape(language)) {
    return FieldError{field,
                      "language must consist of lower case alphanumeric characters or '-', and must "
                      "start and end with an alphanumeric character"};
  }
  return std::nullopt;
}

std::optional<FieldError> validate_image(std::string_view image) {
  const char* field = "spec.image";
  if (image.empty()) return FieldError{field, "image must not be empty"};
  if (image.size() > kMaxImageLength) return FieldError{field, "image must be at most 512 characters"};
  for (unsigned char c : image) {
    if (c <= ' ' || c >= 0x7f)
      return FieldError{field, "image must not contain whitespace or control characters"};
  }
  return std::nullopt;
}

std::optional<FieldError> validate_sync_interval(std::int64_t seconds) {
  if (seconds >= 1 && seconds <= kMaxSyncIntervalSeconds) return std::nullopt;
  return FieldError{"spec.syncIntervalSeconds", "must be between 1 and 86400"};
}

std::optional<FieldError> validate_duration(std::string_view field, std::string_view text) {
  if (parse_hms_duration(text)) return std::nullopt;
  return FieldError{std::string(field), kDurationMessage};
}

}  // namespace repl

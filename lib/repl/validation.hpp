// Validation of the identifiers a Repl is made of, one function per field, shared by the operator
// and the API shim. The rules are the ones the CRD enforces (crd/repls.peetcode.com.yaml), so the
// shim refuses exactly what the API server would refuse, before it writes anything.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace repl {

struct FieldError {
  std::string field;    // JSON path of the offending field, e.g. "spec.userId"
  std::string message;  // for humans; says what is allowed

  bool operator==(const FieldError&) const = default;
};

inline constexpr std::size_t kMaxReplIdLength = 63;
inline constexpr std::size_t kMaxUserIdLength = 63;
inline constexpr std::size_t kMaxLanguageLength = 32;
inline constexpr std::size_t kMaxImageLength = 512;

// [a-z0-9]([-a-z0-9]*[a-z0-9])?, of any length.
bool is_dns_label_shape(std::string_view s);
// An RFC 1123 label (the shape above, at most 63 characters): a namespace name.
bool is_dns_label(std::string_view s);
// RFC 1123 labels joined by '.', at most 253 characters: a Secret name, a host name.
bool is_dns_subdomain(std::string_view s);

// replId = metadata.name: an RFC 1035 DNS label (lower-case alphanumerics and '-', starting with a
// letter, ending alphanumeric), at most 63 characters: it becomes a host name label and names the
// Service, whose names must start with a letter.
std::optional<FieldError> validate_repl_id(std::string_view id);

// userId: a Kubernetes label value (alphanumerics, with '-', '_' or '.' inside), 1..63 characters,
// because it is written into the peetcode.com/user label of every child.
std::optional<FieldError> validate_user_id(std::string_view id);

// language: lower-case alphanumerics and '-', starting and ending alphanumeric, at most 32
// characters, because it names an S3 prefix (base/<language>/).
std::optional<FieldError> validate_language(std::string_view language);

// image: a container image reference without whitespace or control characters, at most 512.
std::optional<FieldError> validate_image(std::string_view image);

// syncIntervalSeconds: 1 to 86400 (the CRD's minimum and maximum).
inline constexpr std::int64_t kMaxSyncIntervalSeconds = 86400;
std::optional<FieldError> validate_sync_interval(std::int64_t seconds);

// idleTimeout, ttlAfterSuspend: "0" or Go's h/m/s ("30m", "1h30m"), at most 87600h (see
// parse_hms_duration). `field` is the JSON path named in the error (e.g. "spec.idleTimeout").
// The message for a bad duration, word for word the CRD's (its x-kubernetes-validations rule).
inline constexpr const char* kDurationMessage =
    "must be 0 or a duration of hours, minutes and seconds such as 30m, 1h30m or 168h, at most 87600h";
std::optional<FieldError> validate_duration(std::string_view field, std::string_view text);

}  // namespace repl

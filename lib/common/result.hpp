// Result<T, E>: a value or an expected failure, in the spirit of C++23 std::expected.
//
// Expected failures (a 404 from the API server, a kubeconfig without a server, a template that does
// not parse) travel as values of this type; exceptions are kept for the boundaries where a library
// throws (cpprestsdk, yaml-cpp) and for broken invariants.
//
//   Result<Config, ConfigError> r = load_kubeconfig(path);
//   if (!r) return Fail(r.error());
//   use(*r);
//
// Thread-safety: a plain value type.
#pragma once

#include <utility>
#include <variant>

namespace repl {

template <class E>
struct Failure {
  E error;
};

// Fail(e) converts to any Result<T, E>.
template <class E>
[[nodiscard]] Failure<std::decay_t<E>> Fail(E&& e) {
  return {std::forward<E>(e)};
}

template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  template <class G>
  Result(Failure<G> f) : v_(std::in_place_index<1>, E(std::move(f.error))) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

// Result<void, E>: success carries nothing.
struct Ok {};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result(Ok = {}) {}
  template <class G>
  Result(Failure<G> f) : error_(E(std::move(f.error))), failed_(true) {}

  bool has_value() const { return !failed_; }
  explicit operator bool() const { return has_value(); }
  const E& error() const& { return error_; }

 private:
  E error_{};
  bool failed_ = false;
};

}  // namespace repl

#include "common/metrics.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <set>

#include "common/log.hpp"

namespace repl::metrics {
namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

const char* type_name(detail::Kind kind) {
  switch (kind) {
    case detail::Kind::kCounter:
    case detail::Kind::kCounterFunc:
      return "counter";
    case detail::Kind::kGauge:
    case detail::Kind::kGaugeFunc:
      return "gauge";
    case detail::Kind::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// A sample value as Prometheus clients write it: integers without a fraction, other values in the
// shortest form that reads back the same, and the special values spelled NaN, +Inf, -Inf.
void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    out += std::to_string(static_cast<long long>(v));  // also turns -0 into 0
  } else {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc() ? end : buf);
  }
}

// HELP text escapes backslash and newline; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `{a="x",b="y"}` (plus `le` for histogram buckets), or nothing when there are no labels.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, const char* le = nullptr) {
  if (names.empty() && le == nullptr) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (le != nullptr) {
    if (!names.empty()) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, const detail::FamilyBase& family) {
  out += "# HELP ";
  out += family.name();
  out += ' ';
  append_escaped(out, family.help(), false);
  out += "\n# TYPE ";
  out += family.name();
  out += ' ';
  out += type_name(family.kind());
  out += '\n';
}

void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, double v, const char* le = nullptr) {
  out += name;
  append_labels(out, names, values, le);
  out += ' ';
  append_value(out, v);
  out += '\n';
}

void append_series(std::string& out, const detail::FamilyBase& f, const std::vector<std::string>& values,
                   const Counter& c) {
  append_sample(out, f.name(), f.label_names(), values, c.value());
}

void append_series(std::string& out, const detail::FamilyBase& f, const std::vector<std::string>& values,
                   const Gauge& g) {
  append_sample(out, f.name(), f.label_names(), values, g.value());
}

void append_series(std::string& out, const detail::FamilyBase& f, const std::vector<std::string>& values,
                   const Histogram& h) {
  const std::vector<std::uint64_t> counts = h.cumulative_counts();
  const std::string bucket = f.name() + "_bucket";
  for (std::size_t i = 0; i < counts.size(); ++i) {
    std::string le;
    if (i < f.upper_bounds().size()) {
      append_value(le, f.upper_bounds()[i]);
    } else {
      le = "+Inf";
    }
    append_sample(out, bucket, f.label_names(), values, static_cast<double>(counts[i]), le.c_str());
  }
  append_sample(out, f.name() + "_sum", f.label_names(), values, h.sum());
  append_sample(out, f.name() + "_count", f.label_names(), values, static_cast<double>(counts.back()));
}

// A gauge or counter read from a callback at render time.
class ReadFunc final : public detail::FamilyBase {
 public:
  ReadFunc(detail::Kind kind, std::string name, std::string help, std::function<double()> read)
      : FamilyBase(kind, std::move(name), std::move(help), {}, {}), read_(std::move(read)) {}

  void render(std::string& out) const override {
    double v;
    try {
      v = read_();
    } catch (...) {
      v = std::nan("");  // a scrape must not fail because one reading did
    }
    append_header(out, *this);
    append_sample(out, name(), {}, {}, v);
  }

 private:
  const std::function<double()> read_;
};

template <class T>
std::string describe(const std::vector<T>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    if constexpr (std::is_same_v<T, double>) {
      append_value(out, items[i]);
    } else {
      out += items[i];
    }
  }
  return out + "]";
}

Result<void, std::string> check_labels(detail::Kind kind, std::string_view metric,
                                       const std::vector<std::string>& label_names) {
  std::set<std::string_view> seen;
  for (const std::string& label : label_names) {
    if (!valid_label_name(label)) {
      return Fail("metric " + std::string(metric) + ": invalid label name \"" + label + "\"");
    }
    if (kind == detail::Kind::kHistogram && label == "le") {
      return Fail("metric " + std::string(metric) +
                  ": the label name \"le\" is reserved for histogram buckets");
    }
    if (!seen.insert(label).second) {
      return Fail("metric " + std::string(metric) + ": label name \"" + label + "\" repeated");
    }
  }
  return Ok{};
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  if (!is_letter(name[0]) && name[0] != '_' && name[0] != ':') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_letter(c) || is_digit(c) || c == '_' || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  if (!is_letter(name[0]) && name[0] != '_') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_letter(c) || is_digit(c) || c == '_'; });
}

std::vector<double> default_seconds_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Counter::inc(double n) {
  if (!(n >= 0)) return;  // also NaN
  value_.fetch_add(n, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>& upper_bounds)
    : upper_bounds_(upper_bounds), counts_(new std::atomic<std::uint64_t>[upper_bounds.size() + 1]()) {}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  // The first bound >= value: a bucket counts the observations <= its upper bound.
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative_counts() const {
  std::vector<std::uint64_t> out(upper_bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

std::uint64_t Histogram::count() const { return cumulative_counts().back(); }

namespace detail {

FamilyBase::FamilyBase(Kind kind, std::string name, std::string help, std::vector<std::string> label_names,
                       std::vector<double> upper_bounds)
    : kind_(kind),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

}  // namespace detail

template <class Series>
Series& Family<Series>::with(std::initializer_list<std::string_view> label_values) {
  if (label_values.size() != label_names().size()) {
    // A programming error in the caller, the same on every call: fail loudly at the first one.
    log::error("metrics: wrong number of label values", {{"metric", name()},
                                                         {"expected", std::to_string(label_names().size())},
                                                         {"got", std::to_string(label_values.size())}});
    std::abort();
  }
  {
    std::shared_lock lock(mu_);
    if (const auto it = series_.find(label_values); it != series_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  auto it = series_.find(label_values);
  if (it == series_.end()) {
    std::unique_ptr<Series> series;
    if constexpr (std::is_same_v<Series, Histogram>) {
      series = std::make_unique<Histogram>(upper_bounds());
    } else {
      series = std::make_unique<Series>();
    }
    it =
        series_.emplace(std::vector<std::string>(label_values.begin(), label_values.end()), std::move(series))
            .first;
  }
  return *it->second;
}

template <class Series>
void Family<Series>::render(std::string& out) const {
  std::shared_lock lock(mu_);
  if (series_.empty()) return;  // as client_golang: a labelled family shows up with its first series
  append_header(out, *this);
  for (const auto& [values, series] : series_) append_series(out, *this, values, *series);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Registry() = default;
Registry::~Registry() = default;

Result<detail::FamilyBase*, std::string> Registry::find_compatible(
    detail::Kind kind, std::string_view name, std::string_view help,
    const std::vector<std::string>& label_names, const std::vector<double>& upper_bounds) const {
  const std::string quoted = "metric \"" + std::string(name) + "\"";
  // A histogram writes name_bucket, name_sum and name_count; no other family may own those names.
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string_view s(suffix);
    if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
      const auto stem = families_.find(name.substr(0, name.size() - s.size()));
      if (stem != families_.end() && stem->second->kind() == detail::Kind::kHistogram) {
        return Fail(quoted + " clashes with the series of histogram \"" + stem->first + "\"");
      }
    }
    if (kind == detail::Kind::kHistogram) {
      if (const auto other = families_.find(std::string(name) + suffix); other != families_.end()) {
        return Fail(quoted + ": its series would clash with metric \"" + other->first + "\"");
      }
    }
  }

  const auto it = families_.find(name);
  if (it == families_.end()) return static_cast<detail::FamilyBase*>(nullptr);
  const detail::FamilyBase& existing = *it->second;
  const auto is_func = [](detail::Kind k) {
    return k == detail::Kind::kGaugeFunc || k == detail::Kind::kCounterFunc;
  };
  if (is_func(kind) || existing.kind() != kind) {
    return Fail(quoted + " is already registered as a " + type_name(existing.kind()) +
                (is_func(existing.kind()) ? " function" : ""));
  }
  if (existing.help() != help) return Fail(quoted + " is already registered with another help text");
  if (existing.label_names() != label_names) {
    return Fail(quoted + " is already registered with labels " + describe(existing.label_names()));
  }
  if (existing.upper_bounds() != upper_bounds) {
    return Fail(quoted + " is already registered with buckets " + describe(existing.upper_bounds()));
  }
  return it->second.get();
}

template <class Series>
Result<Family<Series>*, std::string> Registry::add(detail::Kind kind, std::string_view name,
                                                   std::string_view help,
                                                   std::vector<std::string> label_names,
                                                   std::vector<double> upper_bounds) {
  if (!valid_metric_name(name)) return Fail("invalid metric name \"" + std::string(name) + "\"");
  if (auto ok = check_labels(kind, name, label_names); !ok) return Fail(ok.error());

  std::unique_lock lock(mu_);
  auto existing = find_compatible(kind, name, help, label_names, upper_bounds);
  if (!existing) return Fail(std::move(existing).error());
  if (*existing != nullptr) return static_cast<Family<Series>*>(*existing);

  const bool unlabelled = label_names.empty();
  auto family = std::make_unique<Family<Series>>(kind, std::string(name), std::string(help),
                                                 std::move(label_names), std::move(upper_bounds));
  Family<Series>* raw = family.get();
  families_.emplace(std::string(name), std::move(family));
  // An unlabelled metric exists from the start, so a scrape shows 0 rather than nothing.
  if (unlabelled) raw->with();
  return raw;
}

Result<CounterFamily*, std::string> Registry::counter(std::string_view name, std::string_view help,
                                                      std::vector<std::string> label_names) {
  return add<Counter>(detail::Kind::kCounter, name, help, std::move(label_names), {});
}

Result<GaugeFamily*, std::string> Registry::gauge(std::string_view name, std::string_view help,
                                                  std::vector<std::string> label_names) {
  return add<Gauge>(detail::Kind::kGauge, name, help, std::move(label_names), {});
}

Result<HistogramFamily*, std::string> Registry::histogram(std::string_view name, std::string_view help,
                                                          std::vector<std::string> label_names,
                                                          std::vector<double> upper_bounds) {
  const std::string quoted = "metric \"" + std::string(name) + "\"";
  if (!upper_bounds.empty() && std::isinf(upper_bounds.back()) && upper_bounds.back() > 0)
    upper_bounds.pop_back();
  if (upper_bounds.empty()) return Fail(quoted + ": a histogram needs at least one finite bucket");
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      return Fail(quoted + ": bucket bounds must be finite, got " + describe(upper_bounds));
    }
    if (i > 0 && !(upper_bounds[i - 1] < upper_bounds[i])) {
      return Fail(quoted + ": bucket bounds must be strictly increasing, got " + describe(upper_bounds));
    }
  }
  return add<Histogram>(detail::Kind::kHistogram, name, help, std::move(label_names),
                        std::move(upper_bounds));
}

Result<void, std::string> Registry::gauge_func(std::string_view name, std::string_view help,
                                               std::function<double()> read) {
  return read_func(detail::Kind::kGaugeFunc, name, help, std::move(read));
}

Result<void, std::string> Registry::counter_func(std::string_view name, std::string_view help,
                                                 std::function<double()> read) {
  return read_func(detail::Kind::kCounterFunc, name, help, std::move(read));
}

Result<void, std::string> Registry::read_func(detail::Kind kind, std::string_view name, std::string_view help,
                                              std::function<double()> read) {
  if (!valid_metric_name(name)) return Fail("invalid metric name \"" + std::string(name) + "\"");
  if (!read) return Fail("metric \"" + std::string(name) + "\": no function to read");
  std::unique_lock lock(mu_);
  if (auto existing = find_compatible(kind, name, help, {}, {}); !existing) {
    return Fail(std::move(existing).error());
  }
  families_.emplace(std::string(name),
                    std::make_unique<ReadFunc>(kind, std::string(name), std::string(help), std::move(read)));
  return Ok{};
}

std::string Registry::render() const {
  // Families are never removed, so the pointers stay valid once the lock is released; rendering
  // without it lets a gauge function take its own locks, or even register, without deadlock.
  std::vector<const detail::FamilyBase*> families;
  {
    std::shared_lock lock(mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  std::string out;
  for (const detail::FamilyBase* family : families) family->render(out);
  return out;
}

}  // namespace repl::metrics

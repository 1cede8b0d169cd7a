// The run's metrics log: runs/<job>/metrics.jsonl, one JSON object per line, appended and
// flushed per line (docs/training.md lists the records); each record also goes to a callback
// (the coordinator's reporter). Not thread-safe: the training loop alone writes it.
#pragma once

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace matbert {

class MetricsLog {
 public:
  MetricsLog(const std::string& path, std::function<void(const std::string&)> on_record)
      : out_(path, std::ios::app), on_record_(std::move(on_record)) {}
  bool ok() const { return out_.good(); }
  void Write(const nlohmann::json& record) {
    const std::string line = record.dump();
    out_ << line << '\n';
    out_.flush();
    if (on_record_) on_record_(line);
  }

 private:
  std::ofstream out_;
  std::function<void(const std::string&)> on_record_;
};

}  // namespace matbert

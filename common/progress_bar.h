// Progress of long work on stderr: a redrawn bar with rate and ETA on a terminal, a plain
// line every 10% otherwise, nothing when quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace matbert {

class ProgressBar {
 public:
  enum class Mode { kAuto, kTerminal, kPlain, kQuiet };

  // `unit` names what is counted ("matrices"). kAuto picks kTerminal when stderr is a tty.
  ProgressBar(int64_t total, std::string unit, Mode mode = Mode::kAuto, FILE* out = stderr);

  // Reports that `done` of `total` are finished. Cheap when nothing is redrawn. Not
  // thread-safe: call from one thread at a time.
  void Update(int64_t done);

  // Draws the final state and ends the line.
  void Finish();

  // Seconds since construction.
  double ElapsedSeconds() const;

 private:
  void Draw(int64_t done, bool final);

  int64_t total_;
  std::string unit_;
  Mode mode_;
  FILE* out_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int last_decile_ = 0;
  int64_t done_ = 0;
};

// "1.2 s", "3 min 04 s", "2 h 05 min".
std::string FormatDuration(double seconds);

}  // namespace matbert

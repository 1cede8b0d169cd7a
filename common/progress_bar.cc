#include "common/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace matbert {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return absl::StrFormat("%.1f s", seconds);
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 3600) return absl::StrFormat("%d min %02d s", s / 60, s % 60);
  return absl::StrFormat("%d h %02d min", s / 3600, (s % 3600) / 60);
}

ProgressBar::ProgressBar(int64_t total, std::string unit, Mode mode, FILE* out)
    : total_(std::max<int64_t>(total, 1)), unit_(std::move(unit)), mode_(mode), out_(out) {
  if (mode_ == Mode::kAuto) mode_ = ::isatty(::fileno(out_)) ? Mode::kTerminal : Mode::kPlain;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

double ProgressBar::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::Update(int64_t done) {
  done_ = done;
  if (mode_ == Mode::kQuiet) return;
  if (mode_ == Mode::kPlain) {
    int decile = static_cast<int>(done * 10 / total_);
    if (decile > last_decile_ && decile < 10) {
      last_decile_ = decile;
      Draw(done, false);
    }
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw(done, false);
}

void ProgressBar::Finish() {
  if (mode_ == Mode::kQuiet) return;
  Draw(done_, true);
}

void ProgressBar::Draw(int64_t done, bool final) {
  double elapsed = ElapsedSeconds();
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  double fraction = std::clamp(static_cast<double>(done) / static_cast<double>(total_), 0.0, 1.0);
  std::string tail = final ? absl::StrFormat("in %s", FormatDuration(elapsed))
                           : absl::StrFormat("ETA %s", FormatDuration(eta));
  if (mode_ == Mode::kTerminal) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    absl::FPrintF(out_, "\r[%s] %3.0f%% %d/%d %s  %.0f %s/s  %s\033[K%s", bar, fraction * 100, done,
                  total_, unit_, rate, unit_, tail, final ? "\n" : "");
  } else {
    absl::FPrintF(out_, "%3.0f%% %d/%d %s  %.0f %s/s  %s\n", fraction * 100, done, total_, unit_,
                  rate, unit_, tail);
  }
  std::fflush(out_);
}

}  // namespace matbert

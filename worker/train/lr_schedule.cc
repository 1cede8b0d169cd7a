#include "worker/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace matbert {

double LearningRate(const TrainingSection& t, int64_t step) {
  const double peak = t.lr;
  if (step <= t.warmup_steps)
    return peak * static_cast<double>(step) / std::max<int64_t>(t.warmup_steps, 1);
  const double floor = peak * t.min_lr_ratio;
  const int64_t decay_end = t.steps - t.cooldown_steps;  // the cooldown starts here
  double lr = peak;
  if (t.schedule != "constant" && decay_end > t.warmup_steps) {
    const double progress = std::clamp(static_cast<double>(step - t.warmup_steps) /
                                           static_cast<double>(decay_end - t.warmup_steps),
                                       0.0, 1.0);
    const double shape =
        t.schedule == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
    lr = floor + (peak - floor) * shape;
  }
  if (t.cooldown_steps > 0 && step > decay_end) {
    lr *= static_cast<double>(t.steps - step) / static_cast<double>(t.cooldown_steps);
  }
  return lr;
}

}  // namespace matbert

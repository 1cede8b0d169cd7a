// Learning-rate schedule: linear warmup from 0, then constant, linear or cosine decay to
// min_lr_ratio * lr, then an optional linear cooldown to 0 over the last cooldown_steps.
// A pure function of the step, so a resumed run needs no scheduler state.
#pragma once

#include <cstdint>

#include "common/job_spec.h"

namespace matbert {

// LR for optimizer step `step` (1-based: the first update is step 1).
double LearningRate(const TrainingSection& t, int64_t step);

}  // namespace matbert

// Early-return helpers for absl::Status / absl::StatusOr, used across module boundaries.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MATBERT_CONCAT_INNER(a, b) a##b
#define MATBERT_CONCAT(a, b) MATBERT_CONCAT_INNER(a, b)

// Returns `expr` from the current function if it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status matbert_status_ = (expr);           \
    if (!matbert_status_.ok()) return matbert_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(MATBERT_CONCAT(matbert_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                          \
  if (!statusor.ok()) return statusor.status();    \
  lhs = std::move(statusor).value()

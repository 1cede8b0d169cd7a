// A fresh, empty directory for the running gtest test, under the test temp dir and named
// for the suite's `prefix`, this process and the test, so parallel runs never share one.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace matbert {

inline std::string FreshTestDir(const std::string& prefix) {
  const std::string dir =
      absl::StrCat(testing::TempDir(), "/", prefix, "_", getpid(), "_",
                   testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace matbert

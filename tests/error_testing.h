#pragma once
// The two ways the tests check a refusal: the message itself (error_of, for tests that compare it
// whole or look for several parts), or that it names one thing (expect_error).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "util/error.h"

namespace sdit {

// The message of the sdit::Error that f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs f, which must throw sdit::Error whose message contains `needle`.
inline void expect_error(const std::function<void()>& f, const std::string& needle) {
  const std::string msg = error_of(f);
  if (msg == "(no error)")
    ADD_FAILURE() << "no sdit::Error thrown; expected one mentioning '" << needle << "'";
  else
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
}

}  // namespace sdit

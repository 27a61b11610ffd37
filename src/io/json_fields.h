#pragma once
// Typed reads of optional JSON object fields for config files and metadata: a present field of the
// wrong type is an error naming the file's role and the key; an absent (or null) field keeps the
// default already in the destination. One reader for every config (models, VAE, text encoders).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "util/error.h"

namespace sdit {

class JsonFields {
 public:
  // `what` names the document in errors, e.g. "VAE config.json".
  JsonFields(const nlohmann::json& j, std::string what) : j_(j), what_(std::move(what)) {
    if (!j_.is_object()) fail(what_, " is not a JSON object");
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  void get(const char* key, int64_t& dst, bool positive = false) const {
    if (!has(key)) return;
    if (!j_[key].is_number_integer()) fail(what_, ": '", key, "' must be an integer, got ", j_[key].dump());
    dst = j_[key].get<int64_t>();
    if (positive && dst <= 0) fail(what_, ": '", key, "' must be positive, got ", dst);
  }
  void get(const char* key, bool& dst) const {
    if (!has(key)) return;
    if (!j_[key].is_boolean()) fail(what_, ": '", key, "' must be true or false, got ", j_[key].dump());
    dst = j_[key].get<bool>();
  }
  void get(const char* key, double& dst) const {
    if (!has(key)) return;
    if (!j_[key].is_number()) fail(what_, ": '", key, "' must be a number, got ", j_[key].dump());
    dst = j_[key].get<double>();
  }
  void get(const char* key, std::string& dst) const {
    if (!has(key)) return;
    if (!j_[key].is_string()) fail(what_, ": '", key, "' must be a string, got ", j_[key].dump());
    dst = j_[key].get<std::string>();
  }

 private:
  const nlohmann::json& j_;
  std::string what_;
};

}  // namespace sdit

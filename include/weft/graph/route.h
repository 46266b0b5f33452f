// Routes of the reactive graph: a route is a signal with an owner, named by six tokens, and
// carrying one schema that says what its values are. Guide: docs/graph.md.
//
//   graph::RouteName temp{.owner = "sensor", .family = "env", .stream = "temperature"};
//   temp.ToString();  // "sensor/env/temperature/meta/read/logical"
//   auto pose = graph::Schema::Pod<Pose>("pose.v1");  // a trivially copyable struct, named
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "weft/core/status.h"

namespace weft::graph {

// A route's name. Each part is a token of 1 to 64 characters from [A-Za-z0-9_-], so that a
// name is also a topic's name and a NATS subject's tokens.
struct RouteName {
  std::string owner;              // the device, service or component whose signal it is
  std::string family;             // a group of its streams ("imu")
  std::string stream;             // the stream ("accel")
  std::string variant = "meta";   // which of its facets: meta, payload, request, desired, reported,
                                  // effective, event, health, state ...
  std::string plane = "read";     // read, write, state, query, debug ...
  std::string layer = "logical";  // raw, logical, shadow, bulk, internal ...

  // "owner/family/stream/variant/plane/layer".
  std::string ToString() const;
  // The form ToString makes; kInvalidArgument naming the part that is wrong.
  static Result<RouteName> Parse(std::string_view text);
  Status Validate() const;
  // Checks one token (`part` names it in the error).
  static Status ValidateToken(std::string_view part, std::string_view value);
  bool operator==(const RouteName&) const = default;
  auto operator<=>(const RouteName&) const = default;
};

// What a route's values are: a canonical text (the one description both sides compare) and its
// identity, a 64-bit hash of the text (FNV-1a). Sides that disagree are kSchemaMismatch, told
// both texts.
class Schema {
 public:
  Schema() : Schema("bytes") {}
  // Bytes as they are ("bytes").
  static Schema Bytes();
  // A trivially copyable C++ type under a name its user versions ("pose.v1"); the text
  // carries its size and alignment, so a changed struct under an unchanged name still differs.
  template <typename T>
  static Schema Pod(std::string_view name) {
    static_assert(std::is_trivially_copyable_v<T>, "a Pod schema is for trivially copyable types");
    return Schema("pod " + std::string(name) + " size " + std::to_string(sizeof(T)) + " align " +
                  std::to_string(alignof(T)));
  }
  // A schema described elsewhere (the Python schemas, a schema read back from a store): its
  // canonical text, 1 to 4096 printable characters; kInvalidArgument otherwise.
  static Result<Schema> FromText(std::string_view text);

  const std::string& text() const { return text_; }
  uint64_t id() const { return id_; }
  // The fixed size of its values (a Pod's), or 0 if they vary.
  size_t fixed_size() const { return fixed_size_; }
  bool operator==(const Schema& o) const { return id_ == o.id_ && text_ == o.text_; }

 private:
  explicit Schema(std::string text);
  std::string text_;
  uint64_t id_ = 0;
  size_t fixed_size_ = 0;
};

// kSchemaMismatch for a route carrying `has` approached with `wants`, naming both.
Status SchemaMismatch(const RouteName& route, const Schema& has, const Schema& wants);

}  // namespace weft::graph

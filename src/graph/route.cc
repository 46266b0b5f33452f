// Route names and schemas (weft/graph/route.h).
#include "weft/graph/route.h"

#include <array>

namespace weft::graph {
namespace {

constexpr size_t kMaxToken = 64;
constexpr size_t kMaxSchemaText = 4096;

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

Status RouteName::ValidateToken(std::string_view part, std::string_view value) {
  if (value.empty() || value.size() > kMaxToken) {
    return InvalidArgument("a route's " + std::string(part) + " is 1 to 64 characters, not " +
                           std::to_string(value.size()) + (value.empty() ? "" : " ('" + std::string(value.substr(0, 80)) + "')"));
  }
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgument("a route's " + std::string(part) + " '" + std::string(value) +
                             "' has a character outside [A-Za-z0-9_-]");
    }
  }
  return Status::Ok();
}

std::string RouteName::ToString() const {
  return owner + "/" + family + "/" + stream + "/" + variant + "/" + plane + "/" + layer;
}

Status RouteName::Validate() const {
  WEFT_RETURN_IF_ERROR(ValidateToken("owner", owner));
  WEFT_RETURN_IF_ERROR(ValidateToken("family", family));
  WEFT_RETURN_IF_ERROR(ValidateToken("stream", stream));
  WEFT_RETURN_IF_ERROR(ValidateToken("variant", variant));
  WEFT_RETURN_IF_ERROR(ValidateToken("plane", plane));
  return ValidateToken("layer", layer);
}

Result<RouteName> RouteName::Parse(std::string_view text) {
  std::array<std::string, 6> parts;
  size_t n = 0, at = 0;
  for (;;) {
    const size_t slash = text.find('/', at);
    if (n == parts.size()) return InvalidArgument("a route name has six parts: owner/family/stream/variant/plane/layer");
    parts[n++] = std::string(text.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at));
    if (slash == std::string_view::npos) break;
    at = slash + 1;
  }
  if (n != parts.size()) {
    return InvalidArgument("a route name has six parts: owner/family/stream/variant/plane/layer, not " +
                           std::to_string(n) + " ('" + std::string(text.substr(0, 200)) + "')");
  }
  RouteName r{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]};
  WEFT_RETURN_IF_ERROR(r.Validate());
  return r;
}

Schema::Schema(std::string text) : text_(std::move(text)), id_(Fnv1a(text_)) {
  // A Pod's text says its size: "pod NAME size N align A".
  if (text_.starts_with("pod ")) {
    const size_t at = text_.rfind(" size ");
    if (at != std::string::npos) fixed_size_ = std::strtoull(text_.c_str() + at + 6, nullptr, 10);
  }
}

Schema Schema::Bytes() { return Schema("bytes"); }

Result<Schema> Schema::FromText(std::string_view text) {
  if (text.empty() || text.size() > kMaxSchemaText) {
    return InvalidArgument("a schema's text is 1 to 4096 characters, not " + std::to_string(text.size()));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgument("a schema's text is printable characters only");
    }
  }
  if (text.starts_with("pod ")) {  // it must be what Pod<T> makes, or sizes would be believed blindly
    const size_t size_at = text.rfind(" size "), align_at = text.rfind(" align ");
    if (size_at == std::string_view::npos || align_at == std::string_view::npos || align_at < size_at ||
        std::string_view(text).substr(size_at + 6, align_at - size_at - 6).find_first_not_of("0123456789") != std::string_view::npos ||
        align_at == size_at + 6 || text.substr(align_at + 7).empty() ||
        text.substr(align_at + 7).find_first_not_of("0123456789") != std::string_view::npos) {
      return InvalidArgument("a pod schema reads 'pod NAME size N align A', not '" + std::string(text) + "'");
    }
    const std::string size(text.substr(size_at + 6, align_at - size_at - 6));
    if (size.size() > 9 || std::stoull(size) == 0) return InvalidArgument("a pod schema of size " + size);
  }
  return Schema(std::string(text));
}

Status SchemaMismatch(const RouteName& route, const Schema& has, const Schema& wants) {
  return Status(Code::kSchemaMismatch, "route " + route.ToString() + " carries '" + has.text() + "', not '" +
                                           wants.text() + "'");
}

}  // namespace weft::graph

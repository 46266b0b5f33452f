// JSON text for the graph's inspection and query plane. Internal to graph.
#pragma once

#include <cstdio>
#include <string>

namespace weft::graph::internal {

// `s` as a JSON string: quotes, backslashes and control characters escaped.
inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace weft::graph::internal

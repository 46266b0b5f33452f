// The graph's query plane as a Weft resource (weft/graph/query.h).
#include "weft/graph/query.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "internal/json.h"
#include "weft/graph/inspect.h"
#include "weft/rpc/codec.h"

namespace weft::graph {

using internal::JsonString;

namespace {

constexpr size_t kMaxHex = 4096;

std::string EnvelopeJson(const Envelope& e) {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "{\"seq\":%" PRIu64 ",\"id\":%" PRIu64 ",\"producer\":%" PRIu64 ",\"event_ns\":%" PRId64
                ",\"ingest_ns\":%" PRId64 ",\"trace\":%" PRIu64 ",\"causality\":%" PRIu64 ",\"correlation\":%" PRIu64
                ",\"taints\":%u}",
                e.seq, e.id, e.producer, e.event_ns, e.ingest_ns, e.trace, e.causality, e.correlation,
                static_cast<unsigned>(e.taints));
  return buf;
}

// The value as JSON for the schemas whose bytes say what they are; "null" otherwise.
std::string ValueJson(const std::string& schema, ByteView b) {
  auto is = [&](const char* name) { return schema == name || schema == std::string("pod ") + name + " size 8 align 8"; };
  if (is("i64") && b.size() == 8) {
    int64_t v;
    std::memcpy(&v, b.data(), 8);
    return std::to_string(v);
  }
  if (is("f64") && b.size() == 8) {
    double v;
    std::memcpy(&v, b.data(), 8);
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    return (std::strchr(buf, 'n') != nullptr || std::strchr(buf, 'i') != nullptr) ? "null" : buf;  // nan, inf
  }
  if (schema == "bool" && b.size() == 1) return b[0] != 0 ? "true" : "false";
  if (schema == "str") return JsonString(std::string(b.begin(), b.end()));
  return "null";
}

std::string Hex(ByteView b) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  const size_t n = std::min(b.size(), kMaxHex);
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[b[i] >> 4];
    out += kDigits[b[i] & 15];
  }
  return out;
}

Result<Route> FindRoute(const Graph& g, const std::string& text) {
  auto name = RouteName::Parse(text);
  if (!name.ok()) return name.status();
  return g.Find(*name);
}

}  // namespace

rpc::Contract QueryContract() {
  return rpc::ContractBuilder("weft.graph", "Query", "1.1.0")
      .Method("catalog", rpc::Access::kRead, {}, "str")
      .Method("latest", rpc::Access::kRead, {"str"}, "str")
      .Method("topology", rpc::Access::kRead, {"str"}, "str")
      .Method("audit", rpc::Access::kRead, {"str"}, "str")
      .Method("validate", rpc::Access::kRead, {}, "str")
      .Method("lineage", rpc::Access::kRead, {"str", "i64", "i64", "i64"}, "str")
      .Method("tainted", rpc::Access::kRead, {"str", "i64"}, "str")
      .Method("repairs", rpc::Access::kRead, {"str"}, "str")
      .Build()
      .value();
}

rpc::Resource QueryResource(std::shared_ptr<Graph> graph) {
  rpc::Resource r;
  r.contract = QueryContract();
  std::weak_ptr<Graph> weak = graph;
  auto live = [weak]() -> Result<std::shared_ptr<Graph>> {
    auto g = weak.lock();
    if (g == nullptr) return Status(Code::kClosed, "the graph is gone");
    return g;
  };
  r.handlers["catalog"] = rpc::Typed<std::string()>([live]() -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    return (*g)->Describe().RoutesJson();
  });
  r.handlers["latest"] = rpc::Typed<std::string(std::string)>([live](std::string name) -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    auto route = FindRoute(**g, name);
    if (!route.ok()) return route.status();
    const std::string& schema = route->schema().text();
    std::string j = "{\"route\":" + JsonString(route->name().ToString()) + ",\"schema\":" + JsonString(schema);
    SampleRef v = route->Latest();
    if (v == nullptr) return j + ",\"found\":false}";
    if ((v->envelope().taints & kSensitive) != 0) {  // a sensitive value does not leave through the query plane
      return j + ",\"found\":true,\"envelope\":" + EnvelopeJson(v->envelope()) + ",\"value\":null,\"redacted\":true}";
    }
    auto bytes = v->bytes();
    if (!bytes.ok()) return bytes.status();
    return j + ",\"found\":true,\"envelope\":" + EnvelopeJson(v->envelope()) + ",\"value\":" + ValueJson(schema, *bytes) +
           ",\"size\":" + std::to_string(bytes->size()) + ",\"bytes\":\"" + Hex(*bytes) + "\"}";
  });
  r.handlers["topology"] = rpc::Typed<std::string(std::string)>([live](std::string format) -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    if (format == "json") return (*g)->Describe().ToJson();
    if (format == "dot") return (*g)->Describe().ToDot();
    return InvalidArgument("a topology is \"json\" or \"dot\", not \"" + format + "\"");
  });
  r.handlers["audit"] = rpc::Typed<std::string(std::string)>([live](std::string name) -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    auto route = FindRoute(**g, name);
    if (!route.ok()) return route.status();
    return route->Audit().ToJson();
  });
  r.handlers["validate"] = rpc::Typed<std::string()>([live]() -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    std::string j = "[";
    for (const std::string& p : (*g)->Validate()) j += (j.size() > 1 ? "," : "") + JsonString(p);
    return j + "]";
  });
  r.handlers["lineage"] = rpc::Typed<std::string(std::string, int64_t, int64_t, int64_t)>(
      [live](std::string name, int64_t trace, int64_t causality, int64_t correlation) -> Result<std::string> {
        auto g = live();
        if (!g.ok()) return g.status();
        LineageQuery q{nullptr, static_cast<uint64_t>(trace), static_cast<uint64_t>(causality), static_cast<uint64_t>(correlation)};
        RouteName rn;
        if (!name.empty()) {
          auto parsed = RouteName::Parse(name);
          if (!parsed.ok()) return parsed.status();
          rn = *parsed;
          q.route = &rn;
        }
        std::string j = "[";
        for (const LineageEntry& e : (*g)->Lineage(q)) {
          j += (j.size() > 1 ? "," : "") + std::string("{\"route\":") + JsonString(e.route.ToString()) +
               ",\"envelope\":" + EnvelopeJson(e.envelope) + "}";
        }
        return j + "]";
      });
  r.handlers["tainted"] = rpc::Typed<std::string(std::string, int64_t)>(
      [live](std::string name, int64_t taints) -> Result<std::string> {
        auto g = live();
        if (!g.ok()) return g.status();
        if (taints < 0 || (taints & ~int64_t{kAllTaints}) != 0) {
          return InvalidArgument("taints are Taint bits (1 nondeterministic, 2 sensitive, 4 repaired, 8 incoherent), not " +
                                 std::to_string(taints));
        }
        auto route = FindRoute(**g, name);
        if (!route.ok()) return route.status();
        const uint8_t bits = taints == 0 ? kAllTaints : static_cast<uint8_t>(taints);
        const RouteName rn = route->name();
        std::string j = "[";
        for (const LineageEntry& e : (*g)->Lineage({.route = &rn})) {
          if ((e.envelope.taints & bits) != 0) j += (j.size() > 1 ? "," : "") + EnvelopeJson(e.envelope);
        }
        return j + "]";
      });
  r.handlers["repairs"] = rpc::Typed<std::string(std::string)>([live](std::string name) -> Result<std::string> {
    auto g = live();
    if (!g.ok()) return g.status();
    auto route = FindRoute(**g, name);
    if (!route.ok()) return route.status();
    std::string j = "[";
    for (const RepairNote& n : route->RepairNotes()) {
      j += (j.size() > 1 ? "," : "") + std::string("{\"repaired\":") + std::to_string(n.repaired) +
           ",\"note\":" + JsonString(n.note) + "}";
    }
    return j + "]";
  });
  return r;
}

Result<std::unique_ptr<rpc::Server>> ServeQueries(std::shared_ptr<Graph> graph, const std::string& name,
                                                  const rpc::ServerOptions& options) {
  auto server = rpc::Server::Create("graph." + name, options);
  if (!server.ok()) return server.status();
  WEFT_RETURN_IF_ERROR((*server)->Register("graph." + name, QueryResource(std::move(graph))));
  WEFT_RETURN_IF_ERROR((*server)->Start());
  return server;
}

}  // namespace weft::graph

// `weft graph`: ask a served graph (weft/graph/query.h) for its catalog, a route's latest
// value, its topology, a route's audit, its problems, lineage, tainted values or repair notes;
// or list the graphs served on this host.
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "commands.h"
#include "weft/graph/query.h"
#include "weft/rpc/codec.h"

namespace weft::cli {

namespace {

// The graphs served on this host (in this network namespace): the abstract Unix sockets of
// their servers, "@weft.rpc.graph.<name>".
std::set<std::string> ServedGraphs() {
  std::set<std::string> out;
  std::ifstream in("/proc/net/unix");
  std::string line;
  const std::string mark = "@weft.rpc.graph.";
  while (std::getline(in, line)) {
    const size_t at = line.find(mark);
    if (at == std::string::npos) continue;
    std::string name = line.substr(at + mark.size());
    name.erase(name.find_last_not_of(" \n\r") + 1);
    if (!name.empty()) out.insert(name);
  }
  return out;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "weft graph: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int GraphCmd(const GraphArgs& a) {
  if (a.what == "list") {
    for (const std::string& g : ServedGraphs()) std::printf("%s\n", g.c_str());
    return 0;
  }
  const std::string address = a.at.empty() ? "ipc://graph." + a.graph : a.at;
  auto client = rpc::Client::Connect(graph::QueryContract(), "graph." + a.graph, address, Deadline::AfterMs(a.timeout_ms));
  if (!client.ok()) return Fail(client.status());
  const Deadline d = Deadline::AfterMs(a.timeout_ms);
  Result<std::string> out = Status(Code::kInvalidArgument, "unknown query " + a.what);
  if (a.what == "catalog" || a.what == "validate") {
    out = rpc::CallAs<std::string>(**client, a.what, d);
  } else if (a.what == "latest" || a.what == "audit") {
    if (a.route.empty()) return Fail(InvalidArgument(a.what + " needs a route (owner/family/stream/variant/plane/layer)"));
    out = rpc::CallAs<std::string>(**client, a.what, d, a.route);
  } else if (a.what == "topology") {
    out = rpc::CallAs<std::string>(**client, "topology", d, std::string(a.dot ? "dot" : "json"));
  } else if (a.what == "lineage") {
    out = rpc::CallAs<std::string>(**client, "lineage", d, a.route, a.trace, a.causality, a.correlation);
  } else if (a.what == "tainted") {
    int64_t bits = 0;
    if (!a.taint.empty()) {
      for (uint8_t b = 1; b <= 8; b <<= 1) {
        if (a.taint == graph::TaintName(static_cast<graph::Taint>(b))) bits = b;
      }
      if (bits == 0) return Fail(InvalidArgument("a taint is nondeterministic, sensitive, repaired or incoherent, not " + a.taint));
    }
    out = rpc::CallAs<std::string>(**client, "tainted", d, a.route, bits);
  } else if (a.what == "repairs") {
    out = rpc::CallAs<std::string>(**client, "repairs", d, a.route);
  }
  if (!out.ok()) return Fail(out.status());
  std::printf("%s%s", out->c_str(), !out->empty() && out->back() == '\n' ? "" : "\n");
  return 0;
}

}  // namespace weft::cli

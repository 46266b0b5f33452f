// The graph's query plane as a Weft resource (contract "weft.graph/Query"): its catalog, a
// route's latest value with its envelope, its topology (JSON or DOT), a route's audit, its
// validation and lineage, answered as JSON text. Served like any resource, it is reached the
// same way from this process, another process, or another host (tcp://, a NATS registry), and
// by `weft graph`. Guide: docs/graph.md, "The query plane".
//
//   auto server = graph::ServeQueries(g, "plant").value();    // ipc://graph.plant
//   $ weft graph catalog plant
//   $ weft graph latest plant sensor/env/temp/meta/read/logical
#pragma once

#include <memory>
#include <string>

#include "weft/graph/graph.h"
#include "weft/rpc/rpc.h"

namespace weft::graph {

// Methods (each returns JSON text as a str):
//   catalog() -> [{name, schema, published, observers, refused, retained, ephemeral}]
//   latest(route) -> {"route", "schema", "found", "envelope": {...}, "value", "bytes"}; a value
//                    tainted sensitive is not shown: {"envelope", "value": null, "redacted": true}
//   topology(format: "json" | "dot") -> the topology (DOT as text)
//   audit(route) -> RouteAudit::ToJson
//   validate() -> ["problem", ...]
//   lineage(route, trace, causality, correlation) -> [{route, envelope}]  ("" and 0: any)
//   tainted(route, taints) -> [envelope] of the values it retains with any of those Taint bits
//                             (0: any taint): the taint query
//   repairs(route) -> [{repaired, note}], oldest first: the repair-note query
// A value is shown as a number, a boolean or a string for the schemas "i64", "f64", "bool",
// "str" and 8-byte pods of those names; otherwise "value" is null and "bytes" is its hex
// (the first 4 KiB).
rpc::Contract QueryContract();
rpc::Resource QueryResource(std::shared_ptr<Graph> graph);

// Serves the query plane as resource "graph.<name>" of a server of that id (so at
// ipc://graph.<name>; `options` may add tcp:// listeners and a registry). The server stops when
// the returned pointer goes.
Result<std::unique_ptr<rpc::Server>> ServeQueries(std::shared_ptr<Graph> graph, const std::string& name,
                                                  const rpc::ServerOptions& options = {});

}  // namespace weft::graph

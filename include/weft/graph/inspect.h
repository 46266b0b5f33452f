// Asking the graph about itself: its routes and edges as data (JSON, DOT), what is wrong with
// it, one route's audit, and the lineage of values. Guide: docs/graph.md, "Inspection".
//
//   graph::Topology t = g->Describe();   t.ToDot();  t.ToJson();
//   for (const std::string& problem : g->Validate()) ...
//   auto chain = g->Lineage({.causality = output_id});   // the value, its cause, its cause's ...
#pragma once

#include <string>
#include <vector>

#include "weft/graph/graph.h"

namespace weft::graph {

// A repair's note: which value was repaired (the repaired value's causality) and how.
struct RepairNote {
  uint64_t repaired = 0;
  std::string note;
};

// An edge: values of `from` go on to `to` through a flow primitive or a binding's pipe.
struct Edge {
  RouteName from, to;
  std::string kind;  // "capacitor", "resistor", "watchdog", "pipe", "filter", ...
  std::string name;
};

struct RouteAudit {
  RouteName name;
  std::string schema;
  uint64_t published = 0;
  uint64_t refused = 0;        // publishes some observer refused (RefuseValue)
  size_t observers = 0;
  bool retained = false;
  bool ephemeral = false;
  std::vector<std::pair<uint64_t, uint64_t>> producers;  // (producer id, values), up to 16 ids
  std::vector<Edge> in, out;
  uint64_t tainted[4] = {0, 0, 0, 0};  // values published carrying each Taint bit (1, 2, 4, 8)
  uint64_t repairs = 0;                // repair notes kept (Route::NoteRepair)
  // {"name", "schema", "published", "observers", "refused", "retained", "ephemeral",
  //  "producers": [{"producer", "values"}], "in": [edges], "out": [edges],
  //  "tainted": {"nondeterministic": n, ...}, "repairs": n}
  std::string ToJson() const;
};

struct Topology {
  std::vector<RouteAudit> routes;  // in name order
  std::vector<Edge> edges;
  std::string ToJson() const;
  // The routes alone: [{name, schema, published, observers, refused, retained, ephemeral}].
  std::string RoutesJson() const;
  std::string ToDot() const;
};

// What to look for in the retained values of every route: each given field must match; with
// `causality`, the value of that id and then its cause, and its cause's, back to the start.
struct LineageQuery {
  const RouteName* route = nullptr;
  uint64_t trace = 0;
  uint64_t causality = 0;
  uint64_t correlation = 0;
};

struct LineageEntry {
  RouteName route;
  Envelope envelope;
};

}  // namespace weft::graph

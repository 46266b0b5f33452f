// Inspection (weft/graph/inspect.h): the topology as data, JSON and DOT, following flow
// primitives as they come and go; validation (schema mismatches across an edge, a cycle with no
// capacitor and the same cycle with one, a sink nobody reads); a route's audit (producers,
// refusals); lineage across three hops by causality, trace and correlation.
#include "weft/graph/inspect.h"

#include <gtest/gtest.h>

#include "weft/graph/flow.h"

namespace weft::graph {
namespace {

RouteName Name(const std::string& stream) { return RouteName{.owner = "t", .family = "inspect", .stream = stream}; }

bool Has(const std::vector<std::string>& problems, const std::string& needle) {
  for (const std::string& p : problems) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(InspectTest, TopologyFollowsFlowPrimitivesAndExportsJsonAndDot) {
  auto g = Graph::Create();
  Route a = g->Declare(Name("a"), Schema::Pod<int64_t>("n.v1")).value();
  Route b = g->Declare(Name("b"), Schema::Pod<int64_t>("n.v1")).value();
  Route c = g->Declare(Name("c"), Schema::Pod<int64_t>("n.v1")).value();
  auto cap = Capacitor::Create(a, b, {.capacity = 2}).value();
  auto res = Resistor::Create(b, c, {}).value();
  Topology t = g->Describe();
  ASSERT_EQ(t.routes.size(), 3u);
  ASSERT_EQ(t.edges.size(), 2u);
  EXPECT_EQ(t.edges[0].kind, "capacitor");
  EXPECT_EQ(t.routes[1].in.size(), 1u);  // b: from the capacitor
  EXPECT_EQ(t.routes[1].out.size(), 1u);
  const std::string json = t.ToJson();
  EXPECT_NE(json.find("\"kind\":\"resistor\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"t/inspect/a/meta/read/logical\""), std::string::npos);
  EXPECT_NE(t.ToDot().find("\"t/inspect/a/meta/read/logical\" -> \"t/inspect/b/meta/read/logical\""), std::string::npos);
  cap->Close();
  EXPECT_EQ(g->Describe().edges.size(), 1u);
}

TEST(InspectTest, ValidationFindsMismatchesCyclesWithoutACapacitorAndUnreadSinks) {
  auto g = Graph::Create();
  Route a = g->Declare(Name("a"), Schema::Pod<int64_t>("n.v1")).value();
  Route b = g->Declare(Name("b"), Schema::Pod<int64_t>("n.v1")).value();
  Route text = g->Declare(Name("text"), Schema::Bytes()).value();
  EXPECT_TRUE(g->Validate().empty());
  const uint64_t bad = a.AddEdge(text, "pipe", "a to text");
  EXPECT_TRUE(Has(g->Validate(), "schema mismatch: pipe t/inspect/a"));
  a.RemoveEdge(bad);
  const uint64_t ab = a.AddEdge(b, "pipe", "");
  const uint64_t ba = b.AddEdge(a, "pipe", "");
  auto problems = g->Validate();
  EXPECT_TRUE(Has(problems, "a cycle with no capacitor")) << (problems.empty() ? "" : problems[0]);
  b.RemoveEdge(ba);
  auto cap = Capacitor::Create(b, a, {.capacity = 1}).value();  // the same cycle through storage
  EXPECT_FALSE(Has(g->Validate(), "cycle"));
  cap->Close();
  a.RemoveEdge(ab);
  // b receives from a, and nobody reads b.
  a.AddEdge(b, "pipe", "");
  EXPECT_TRUE(Has(g->Validate(), "unconnected sink: t/inspect/b"));
  Subscription s = b.Observe([](const SampleRef&) {});
  EXPECT_FALSE(Has(g->Validate(), "unconnected sink"));
}

TEST(InspectTest, AuditCountsProducersAndRefusals) {
  auto g = Graph::Create();
  Route a = g->Declare(Name("a"), Schema::Pod<int64_t>("n.v1")).value();
  auto box = Mailbox::Create(a, {.capacity = 1, .overflow = Overflow::kBlock, .block_timeout_ms = 0}).value();
  ASSERT_TRUE(a.Publish(int64_t{1}, Meta{.producer = 7}).ok());
  EXPECT_EQ(a.Publish(int64_t{2}, Meta{.producer = 7}).code(), Code::kResourceExhausted);
  ASSERT_TRUE(box->TryTake() != nullptr);
  ASSERT_TRUE(a.Publish(int64_t{3}, Meta{.producer = 9}).ok());
  RouteAudit audit = a.Audit();
  EXPECT_EQ(audit.published, 3u);
  EXPECT_EQ(audit.refused, 1u);
  EXPECT_EQ(audit.observers, 1u);
  ASSERT_EQ(audit.producers.size(), 2u);
  EXPECT_EQ(audit.producers[0], std::make_pair(uint64_t{7}, uint64_t{2}));
  EXPECT_EQ(audit.producers[1], std::make_pair(uint64_t{9}, uint64_t{1}));
}

TEST(InspectTest, LineageAcrossThreeHops) {
  auto g = Graph::Create();
  Route raw = g->Declare(Name("raw"), Schema::Pod<int64_t>("n.v1")).value();
  Route smooth = g->Declare(Name("smooth"), Schema::Pod<int64_t>("n.v1")).value();
  Route alarm = g->Declare(Name("alarm"), Schema::Pod<int64_t>("n.v1")).value();
  for (const Route& r : {raw, smooth, alarm}) ASSERT_TRUE(r.SetRetention({.keep_last = 100}).ok());
  Subscription s1 = raw.Observe([&](const SampleRef& v) { smooth.Forward(v).IgnoreError(); });
  Subscription s2 = smooth.Observe([&](const SampleRef& v) {
    if (v->as<int64_t>() > 5) alarm.Publish(v->as<int64_t>() * 10, Meta{.cause = &v->envelope()}).IgnoreError();
  });
  ASSERT_TRUE(raw.Publish(int64_t{3}, Meta{.correlation = 11}).ok());
  ASSERT_TRUE(raw.Publish(int64_t{8}, Meta{.correlation = 12}).ok());
  const Envelope out = alarm.Latest()->envelope();
  auto chain = g->Lineage({.causality = out.id});
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0].route, alarm.name());
  EXPECT_EQ(chain[1].route, smooth.name());
  EXPECT_EQ(chain[2].route, raw.name());
  EXPECT_EQ(chain[2].envelope.causality, 0u);
  auto traced = g->Lineage({.trace = out.trace});
  EXPECT_EQ(traced.size(), 3u);
  auto by_correlation = g->Lineage({.correlation = 11});
  EXPECT_EQ(by_correlation.size(), 2u);  // raw and smooth of the first value (no alarm)
  RouteName r = raw.name();
  EXPECT_EQ(g->Lineage({.route = &r}).size(), 2u);
  EXPECT_TRUE(g->Lineage({.causality = 12345}).empty());
}

}  // namespace
}  // namespace weft::graph

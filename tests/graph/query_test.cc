// The query plane (weft/graph/query.h) through a real client over ipc://: the catalog, a
// route's latest value rendered by its schema with its envelope, the topology as JSON and DOT,
// a route's audit, validation and lineage; unknown and malformed route names refused clearly;
// a graph that is gone answers kClosed.
#include "weft/graph/query.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "weft/graph/flow.h"
#include "weft/rpc/codec.h"

namespace weft::graph {
namespace {

std::string Q(rpc::Client& c, const std::string& method) {
  auto r = rpc::CallAs<std::string>(c, method, Deadline::AfterMs(5000));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

template <typename... A>
Result<std::string> Q(rpc::Client& c, const std::string& method, const A&... a) {
  return rpc::CallAs<std::string>(c, method, Deadline::AfterMs(5000), a...);
}

TEST(QueryTest, AServedGraphAnswersItsQueries) {
  auto g = Graph::Create();
  Route temp = g->Declare({.owner = "plant", .family = "boiler", .stream = "temp"}, Schema::FromText("f64").value()).value();
  Route shown = g->Declare({.owner = "plant", .family = "boiler", .stream = "shown"}, Schema::FromText("f64").value()).value();
  Route label = g->Declare({.owner = "plant", .family = "boiler", .stream = "label"}, Schema::FromText("str").value()).value();
  auto cap = Capacitor::Create(temp, shown, {.capacity = 4}, "display").value();
  ASSERT_TRUE(temp.Publish(21.5, Meta{.producer = 7, .correlation = 99}).ok());
  ASSERT_TRUE(label.Publish(std::string("hot \"boiler\"")).ok());
  const std::string name = "gtest" + std::to_string(::getpid());
  auto server = ServeQueries(g, name).value();
  auto c = rpc::Client::Connect(QueryContract(), "graph." + name, "ipc://graph." + name, Deadline::AfterMs(5000)).value();

  const std::string catalog = Q(*c, "catalog");
  EXPECT_EQ(catalog.front(), '[');
  EXPECT_NE(catalog.find("\"name\":\"plant/boiler/temp/meta/read/logical\",\"schema\":\"f64\",\"published\":1"), std::string::npos) << catalog;

  const std::string latest = Q(*c, "latest", std::string("plant/boiler/temp/meta/read/logical")).value();
  EXPECT_NE(latest.find("\"found\":true"), std::string::npos) << latest;
  EXPECT_NE(latest.find("\"value\":21.5"), std::string::npos) << latest;
  EXPECT_NE(latest.find("\"producer\":7"), std::string::npos) << latest;
  EXPECT_NE(latest.find("\"correlation\":99"), std::string::npos) << latest;
  const std::string text = Q(*c, "latest", std::string("plant/boiler/label/meta/read/logical")).value();
  EXPECT_NE(text.find("\"value\":\"hot \\\"boiler\\\"\""), std::string::npos) << text;
  const std::string none = Q(*c, "latest", std::string("plant/boiler/shown/meta/read/logical")).value();
  EXPECT_NE(none.find("\"found\":false"), std::string::npos) << none;

  auto unknown = Q(*c, "latest", std::string("plant/boiler/nothing/meta/read/logical"));
  EXPECT_EQ(unknown.status().code(), Code::kNotFound) << unknown.status().ToString();
  auto malformed = Q(*c, "audit", std::string("not a route"));
  EXPECT_EQ(malformed.status().code(), Code::kInvalidArgument) << malformed.status().ToString();
  EXPECT_EQ(Q(*c, "topology", std::string("svg")).status().code(), Code::kInvalidArgument);

  const std::string dot = Q(*c, "topology", std::string("dot")).value();
  EXPECT_NE(dot.find("capacitor: display"), std::string::npos) << dot;
  const std::string json = Q(*c, "topology", std::string("json")).value();
  EXPECT_NE(json.find("\"kind\":\"capacitor\""), std::string::npos) << json;
  const std::string audit = Q(*c, "audit", std::string("plant/boiler/temp/meta/read/logical")).value();
  EXPECT_NE(audit.find("\"producers\":[{\"producer\":7,\"values\":1}]"), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"out\":[{"), std::string::npos) << audit;
  const std::string problems = Q(*c, "validate");
  EXPECT_NE(problems.find("shown"), std::string::npos) << problems;  // a sink nobody reads
  ASSERT_TRUE(temp.SetRetention({.keep_last = 8}).ok());
  ASSERT_TRUE(temp.Publish(22.0, Meta{.correlation = 5}).ok());
  const std::string lineage = Q(*c, "lineage", std::string(), int64_t{0}, int64_t{0}, int64_t{5}).value();
  EXPECT_NE(lineage.find("\"correlation\":5"), std::string::npos) << lineage;
  EXPECT_EQ(lineage.find("\"correlation\":99"), std::string::npos) << lineage;

  // A sensitive value does not leave through the query plane (the control: the clean one above did).
  ASSERT_TRUE(label.Publish(std::string("secret"), {.taints = kSensitive}).ok());
  const std::string hidden = Q(*c, "latest", std::string("plant/boiler/label/meta/read/logical")).value();
  EXPECT_NE(hidden.find("\"redacted\":true"), std::string::npos) << hidden;
  EXPECT_EQ(hidden.find("secret"), std::string::npos) << hidden;
  EXPECT_EQ(hidden.find("736563726574"), std::string::npos) << hidden;  // "secret" in hex

  // The taint and repair-note queries.
  ASSERT_TRUE(temp.Publish(23.0, Meta{.correlation = 6, .taints = kNondeterministic}).ok());
  temp.NoteRepair(42, "a spike clamped");
  const std::string tainted = Q(*c, "tainted", std::string("plant/boiler/temp/meta/read/logical"), int64_t{0}).value();
  EXPECT_NE(tainted.find("\"correlation\":6,\"taints\":1"), std::string::npos) << tainted;
  EXPECT_EQ(tainted.find("\"correlation\":5"), std::string::npos) << tainted;  // the clean one: not there
  EXPECT_EQ(Q(*c, "tainted", std::string("plant/boiler/temp/meta/read/logical"), int64_t{kSensitive}).value(), "[]");
  EXPECT_EQ(Q(*c, "tainted", std::string("plant/boiler/temp/meta/read/logical"), int64_t{16}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Q(*c, "repairs", std::string("plant/boiler/temp/meta/read/logical")).value(),
            "[{\"repaired\":42,\"note\":\"a spike clamped\"}]");
  const std::string audited = Q(*c, "audit", std::string("plant/boiler/temp/meta/read/logical")).value();
  EXPECT_NE(audited.find("\"tainted\":{\"nondeterministic\":1,\"sensitive\":0,\"repaired\":0,\"incoherent\":0},\"repairs\":1"),
            std::string::npos)
      << audited;

  cap.reset();
  temp = Route();
  shown = Route();
  label = Route();
  g.reset();  // the graph is gone; its query plane says so
  EXPECT_EQ(Q(*c, "validate", std::string()).status().code(), Code::kInvalidArgument);  // wrong arity, still checked
  auto gone = rpc::CallAs<std::string>(*c, "catalog", Deadline::AfterMs(5000));
  EXPECT_EQ(gone.status().code(), Code::kClosed) << gone.status().ToString();
}

}  // namespace
}  // namespace weft::graph

// Lazy payloads (weft/graph/lazy.h): metadata announces each payload (its causality is the
// payload's id), an observer opens only the payloads it wants, and the demand is counted
// exactly: opened, missed (left the window), never opened. The edge shows in the topology and
// goes with Close.
#include "weft/graph/lazy.h"

#include <gtest/gtest.h>

#include "weft/graph/inspect.h"

namespace weft::graph {
namespace {

TEST(LazyPayloadTest, PayloadsAreOpenedOnDemandAndTheDemandIsCounted) {
  auto g = Graph::Create();
  Route meta = g->Declare({.owner = "cam", .family = "front", .stream = "frame", .variant = "meta"}, Schema::Bytes()).value();
  Route payload = g->Declare({.owner = "cam", .family = "front", .stream = "frame", .variant = "payload", .layer = "bulk"},
                             Schema::Bytes()).value();
  auto lazy = LazyPayload::Create(meta, payload, {.keep = 4}, "frames").value();
  std::vector<Envelope> metas;
  std::vector<std::string> opened;
  Subscription s = meta.Observe([&](const SampleRef& m) {
    metas.push_back(m->envelope());
    auto b = m->bytes().value();
    if (b[0] == 'k') {  // "keep": opened at once
      auto p = lazy->Open(m->envelope());
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      auto pb = (*p)->bytes().value();
      opened.emplace_back(pb.begin(), pb.end());
    }
  });
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(lazy->Publish(i % 3 == 0 ? "keep" : "skip", "frame " + std::to_string(i), Meta{.correlation = 5}).ok());
  }
  EXPECT_EQ(opened, (std::vector<std::string>{"frame 0", "frame 3", "frame 6", "frame 9"}));
  ASSERT_EQ(metas.size(), 10u);
  EXPECT_NE(metas[0].causality, 0u);
  EXPECT_EQ(metas[0].correlation, 5u);
  // A recent one opened later still; an old one is gone.
  auto late = lazy->Open(metas[8]);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*late)->bytes()->data()), (*late)->bytes()->size()), "frame 8");
  EXPECT_EQ(lazy->Open(metas[1]).status().code(), Code::kNotFound);
  const PayloadStats st = lazy->stats();
  EXPECT_EQ(st.published, 10u);
  EXPECT_EQ(st.opened, 5u);
  EXPECT_EQ(st.missed, 1u);
  EXPECT_EQ(st.kept, 4u);
  EXPECT_EQ(st.never_opened, 4u);  // frames 1, 2, 4, 5 left unopened (7 is still kept)
  EXPECT_NE(g->Describe().ToDot().find("lazy: frames"), std::string::npos);
  lazy->Close();
  EXPECT_EQ(g->Describe().ToDot().find("lazy: frames"), std::string::npos);
  EXPECT_EQ(LazyPayload::Create(meta, payload, {.keep = 0}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::graph

// The embedded profile (weft/graph/embedded.h): scalar sensors smooth and suppress by deadband,
// bulk sensors keep payloads behind cheap metadata and check what is opened, and the profile's
// check names what breaks it.
#include "weft/graph/embedded.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace weft::graph {
namespace {

TEST(EmbeddedTest, AScalarSensorSmoothsAndSuppressesSmallChanges) {
  auto g = Graph::Create();
  auto t = ScalarSensor::Create(*g, {.owner = "board", .family = "env", .stream = "temp"},
                                {.smoothing = 0.5, .deadband = 0.3})
               .value();
  std::vector<double> logical;
  auto sub = t->logical().Observe([&](const SampleRef& s) { logical.push_back(s->as<double>()); });
  ASSERT_TRUE(t->Read(20.0).ok());  // first: itself
  ASSERT_TRUE(t->Read(20.2).ok());  // 20.1: within the deadband
  ASSERT_TRUE(t->Read(21.0).ok());  // 20.55: moved 0.55
  EXPECT_EQ(logical, (std::vector<double>{20.0, 20.55}));
  EXPECT_EQ(t->suppressed(), 1u);
  EXPECT_EQ(t->logical().Latest()->envelope().causality, t->raw().Latest()->envelope().id);
  EXPECT_EQ(t->raw().name().ToString(), "board/env/temp/meta/read/raw");
  EXPECT_EQ(t->Read(std::nan("")).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->raw().published(), 3u);
  // Without a deadband and smoothing, every reading passes as it is (the control).
  auto plain = ScalarSensor::Create(*g, {.owner = "board", .family = "env", .stream = "plain"}).value();
  for (double v : {1.0, 1.01, 1.02}) ASSERT_TRUE(plain->Read(v).ok());
  EXPECT_EQ(plain->logical().published(), 3u);
  EXPECT_EQ(plain->suppressed(), 0u);
}

TEST(EmbeddedTest, ABulkSensorOpensPayloadsOnDemandAndChecksThem) {
  auto g = Graph::Create();
  auto d = BulkSensor::Create(*g, {.owner = "bms", .family = "battery", .stream = "dump"},
                              {.keep = 2, .max_payload_bytes = 1 << 20})
               .value();
  std::vector<SampleRef> metas;
  auto sub = d->meta().Observe([&](const SampleRef& s) { metas.push_back(s); });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(d->Capture(std::string(1000 + i, static_cast<char>('a' + i)), 7).ok());
  ASSERT_EQ(metas.size(), 3u);
  const BulkMeta m = metas[2]->as<BulkMeta>();
  EXPECT_EQ(m.bytes, 1002u);
  EXPECT_EQ(m.kind, 7u);
  auto p = d->Open(metas[2]);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->bytes()->size(), 1002u);
  EXPECT_EQ(d->Open(metas[0]).status().code(), Code::kNotFound);  // left the window of 2
  const PayloadStats st = d->stats();
  EXPECT_EQ(st.opened, 1u);
  EXPECT_EQ(st.missed, 1u);
  EXPECT_EQ(d->Capture(std::string((1 << 20) + 1, 'x')).code(), Code::kInvalidArgument);
  EXPECT_EQ(d->payload().published(), 3u);  // the refused capture published nothing
  // Forged metadata naming a kept payload with another checksum: kCorrupt, not the payload.
  BulkMeta forged = m;
  forged.crc32c ^= 1;
  Envelope env = metas[2]->envelope();
  auto fake = std::make_shared<Sample>(env, std::string(reinterpret_cast<const char*>(&forged), sizeof(forged)));
  EXPECT_EQ(d->Open(fake).status().code(), Code::kCorrupt);
}

TEST(EmbeddedTest, TheProfileCheckNamesWhatBreaksIt) {
  auto g = Graph::Create();
  ScalarSensor::Create(*g, {.owner = "board", .family = "env", .stream = "temp"}).value();
  BulkSensor::Create(*g, {.owner = "bms", .family = "battery", .stream = "dump"}).value();
  EXPECT_TRUE(CheckEmbeddedProfile(*g).empty());  // the helpers keep to it
  struct Big {
    char b[128];
  };
  ASSERT_TRUE(g->Declare({.owner = "cam", .family = "vision", .stream = "frame"}, Schema::Pod<Big>("big")).ok());
  ASSERT_TRUE(g->Declare({.owner = "uart", .family = "io", .stream = "line", .layer = "raw"}, Schema::Bytes()).ok());
  const auto problems = CheckEmbeddedProfile(*g);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("cam/vision/frame"), std::string::npos);
  EXPECT_NE(problems[1].find("uart/io/line"), std::string::npos);
}

TEST(EmbeddedTest, BadOptionsAreRefused) {
  auto g = Graph::Create();
  const RouteName n{.owner = "board", .family = "env", .stream = "temp"};
  EXPECT_EQ(ScalarSensor::Create(*g, n, {.smoothing = 0}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ScalarSensor::Create(*g, n, {.smoothing = 1.5}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ScalarSensor::Create(*g, n, {.deadband = -1}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(BulkSensor::Create(*g, n, {.keep = 0}).status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(g->Declare({.owner = "x", .family = "y", .stream = "z", .layer = "raw"}, Schema::Bytes()).ok());
  EXPECT_EQ(ScalarSensor::Create(*g, {.owner = "x", .family = "y", .stream = "z"}).status().code(), Code::kSchemaMismatch);
}

}  // namespace
}  // namespace weft::graph

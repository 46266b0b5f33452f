// Routes placed on NATS (weft/graph/placement.h), through a real nats-server on a loopback
// port: values cross between graphs on their own connections with their envelopes, in order,
// and never come back to the connection that sent them; foreign bytes, records of another
// schema and truncated records on the subject are refused and counted (a well-formed record is
// the control); a server SIGKILLed and started again on its port carries values again; bad
// urls and namespaces are refused clearly, an absent server is kUnavailable.
#include <nats/nats.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "graph/internal/record.h"
#include "support/servers.h"
#include "weft/graph/placement.h"

namespace weft::graph {
namespace {

RouteName Name() { return RouteName{.owner = "cell", .family = "line", .stream = "count"}; }

template <typename Pred>
bool WaitFor(Pred pred, int ms = 20'000) {
  for (int i = 0; i < ms && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return pred();
}

struct Seen {
  std::mutex mu;
  std::vector<Envelope> envs;
  std::vector<int64_t> values;
  Subscription sub;
  explicit Seen(const Route& r)
      : sub(r.Observe([this](const SampleRef& v) {
          std::lock_guard<std::mutex> l(mu);
          envs.push_back(v->envelope());
          values.push_back(v->as<int64_t>());
        })) {}
  size_t size() {
    std::lock_guard<std::mutex> l(mu);
    return values.size();
  }
};

class NatsPlacementTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(nats_.up()) << "nats-server did not start (is it installed?)"; }
  std::string Url(const std::string& ns = "t") const { return "nats://127.0.0.1:" + std::to_string(nats_.port()) + "/" + ns; }
  weft::testing::NatsServer nats_;
};

TEST_F(NatsPlacementTest, ValuesCrossWithTheirEnvelopesInOrderAndNeverEcho) {
  auto ga = Graph::Create();
  auto gb = Graph::Create();
  Route a = ga->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  Route b = gb->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto pa = NatsPlacement::Create(a, Url()).value();
  auto pb = NatsPlacement::Create(b, Url()).value();
  EXPECT_EQ(pa->where(), "weft.graph.t.cell.line.count.meta.read.logical");
  Seen on_a(a), on_b(b);
  for (int64_t i = 0; i < 500; ++i) {
    ASSERT_TRUE(a.Publish(i, Meta{.producer = 42, .event_ns = 1000 + i, .correlation = 77}).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return on_b.size() == 500; })) << on_b.size();
  {
    std::lock_guard<std::mutex> l(on_b.mu);
    for (int64_t i = 0; i < 500; ++i) {
      const auto k = static_cast<size_t>(i);
      EXPECT_EQ(on_b.values[k], i);  // in order
      EXPECT_EQ(on_b.envs[k].seq, k + 1);  // b's own count
      EXPECT_EQ(on_b.envs[k].event_ns, 1000 + i);
    }
    const Envelope& sent = a.Latest()->envelope();
    const Envelope& got = on_b.envs.back();
    EXPECT_EQ(got.id, sent.id);
    EXPECT_EQ(got.trace, sent.trace);
    EXPECT_EQ(got.producer, 42u);
    EXPECT_EQ(got.correlation, 77u);
    EXPECT_EQ(got.ingest_ns, sent.ingest_ns);
  }
  // And back the other way.
  ASSERT_TRUE(b.Publish(int64_t{-1}).ok());
  ASSERT_TRUE(WaitFor([&] { return on_a.size() == 501; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // an echo would have come by now
  EXPECT_EQ(on_a.size(), 501u);  // each of its own once, and b's one
  EXPECT_EQ(on_b.size(), 501u);
  EXPECT_EQ(pa->stats().sent, 500u);
  EXPECT_EQ(pa->stats().received, 1u);
  EXPECT_EQ(pb->stats().received, 500u);
  EXPECT_EQ(pb->stats().refused, 0u);
  EXPECT_EQ(pb->stats().lost, 0u);
  pa->Close();
  pb->Close();
}

TEST_F(NatsPlacementTest, ForeignBytesAnotherSchemaAndTruncatedRecordsAreRefusedAndCounted) {
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto place = NatsPlacement::Create(r, Url()).value();
  Seen seen(r);
  // A graph that says the route holds doubles: its values are refused here, and ours there.
  auto other = Graph::Create();
  Route r2 = other->Declare(Name(), Schema::Pod<double>("count.v2")).value();
  auto place2 = NatsPlacement::Create(r2, Url()).value();
  ASSERT_TRUE(r2.Publish(1.5).ok());
  // A plain NATS client writing on the subject.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, ("nats://127.0.0.1:" + std::to_string(nats_.port())).c_str()), NATS_OK);
  auto send = [&](const std::string& bytes) {
    ASSERT_EQ(natsConnection_Publish(nc, place->where().c_str(), bytes.data(), static_cast<int>(bytes.size())), NATS_OK);
  };
  const int64_t v = 7;
  Envelope e{.seq = 1, .id = 9, .trace = 9};
  send("garbage that is no record at all, long enough to look like a header................................");
  send("");
  send(internal::EncodeRecord(e, r.schema().id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 4)));  // wrong size
  std::string cut = internal::EncodeRecord(e, r.schema().id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 8));
  send(cut.substr(0, cut.size() - 3));
  send(internal::EncodeRecord(e, r.schema().id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 8)));  // the control
  ASSERT_EQ(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
  EXPECT_TRUE(WaitFor([&] { return seen.size() == 1; }));
  EXPECT_TRUE(WaitFor([&] { return place->stats().refused == 5; })) << place->stats().refused;
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.values.at(0), 7);
  }
  EXPECT_TRUE(WaitFor([&] { return place2->stats().refused == 5; })) << place2->stats().refused;  // all but its own
  ASSERT_TRUE(r.Publish(int64_t{8}).ok());  // our value is refused there, too
  EXPECT_TRUE(WaitFor([&] { return place2->stats().refused == 6; }));
  EXPECT_EQ(r2.Latest()->as<double>(), 1.5);  // nothing of ours replaced it
  natsConnection_Destroy(nc);
  place->Close();
  place2->Close();
}

TEST_F(NatsPlacementTest, AServerKilledAndStartedAgainCarriesValuesAgain) {
  auto ga = Graph::Create();
  auto gb = Graph::Create();
  Route a = ga->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  Route b = gb->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto pa = NatsPlacement::Create(a, Url()).value();
  auto pb = NatsPlacement::Create(b, Url()).value();
  Seen on_b(b);
  ASSERT_TRUE(a.Publish(int64_t{1}).ok());
  ASSERT_TRUE(WaitFor([&] { return on_b.size() == 1; }));  // the control: it works before
  nats_.Kill();
  ASSERT_TRUE(nats_.Start());
  // Both connections come back by themselves (nats.c reconnects and subscribes again); values
  // published meanwhile are buffered, so keep publishing until one is seen.
  int64_t next = 2;
  EXPECT_TRUE(WaitFor([&] {
    a.Publish(next++).IgnoreError();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return on_b.size() >= 2;
  }));
  std::lock_guard<std::mutex> l(on_b.mu);
  EXPECT_GT(on_b.values.back(), 1);
}

TEST_F(NatsPlacementTest, BadUrlsAndNamespacesAreRefusedAndAnAbsentServerIsUnavailable) {
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto bad_ns = NatsPlacement::Create(r, Url("plant/li ne"));
  ASSERT_FALSE(bad_ns.ok());
  EXPECT_EQ(bad_ns.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad_ns.status().message().find("namespace"), std::string::npos) << bad_ns.status().message();
  auto wild = NatsPlacement::Create(r, Url(), {.subject = "weft.>"});
  ASSERT_FALSE(wild.ok());
  EXPECT_EQ(wild.status().code(), Code::kInvalidArgument);
  auto empty_token = NatsPlacement::Create(r, Url(), {.subject = "weft..x"});
  EXPECT_EQ(empty_token.status().code(), Code::kInvalidArgument);
  auto not_nats = NatsPlacement::Create(r, "http://127.0.0.1:1/x");
  EXPECT_EQ(not_nats.status().code(), Code::kInvalidArgument);
  auto absent = NatsPlacement::Create(r, "nats://127.0.0.1:" + std::to_string(weft::testing::FreePort()) + "/t");
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().code(), Code::kUnavailable) << absent.status().ToString();
  // Namespaces of several tokens make subjects of several tokens.
  EXPECT_EQ(NatsPlacement::SubjectFor(Name(), "plant/line1"), "weft.graph.plant.line1.cell.line.count.meta.read.logical");
  auto nested = NatsPlacement::Create(r, Url("plant/line1"));
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  EXPECT_EQ((*nested)->where(), "weft.graph.plant.line1.cell.line.count.meta.read.logical");
}

}  // namespace
}  // namespace weft::graph

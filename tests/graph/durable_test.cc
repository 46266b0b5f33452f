// Durable retention (Route::SetRetention with a log directory): a process publishes and is
// SIGKILLed; a new process gets the newest values back, its latest, and a sequence that goes on.
// While the first process lives, its log is its own (kBusy: the negative control for the kill).
// A log of another schema and a damaged record are refused with clear errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "graph/internal/record.h"
#include "support/temp_dir.h"
#include "weft/graph/graph.h"
#include "weft/log/log.h"

namespace weft::graph {
namespace {

RouteName Name() { return RouteName{.owner = "plant", .family = "boiler", .stream = "pressure"}; }

TEST(DurableTest, ValuesComeBackAfterTheWriterIsKilled) {
  weft::testing::TempDir dir("weft-graph-durable");
  const std::string path = dir / "pressure";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
    if (!r.SetRetention({.keep_last = 50, .durable_path = path}).ok()) _exit(2);
    for (int i = 1; i <= 200; ++i) {
      if (!r.Publish(double(i), Meta{.correlation = 7}).ok()) _exit(3);
    }
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  {
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
    Status busy = r.SetRetention({.keep_last = 50, .durable_path = path});
    EXPECT_EQ(busy.code(), Code::kBusy) << busy.ToString();  // the living writer holds it
  }
  ::kill(child, SIGKILL);
  int st = 0;
  ::waitpid(child, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));

  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
  ASSERT_TRUE(r.SetRetention({.keep_last = 50, .durable_path = path}).ok());
  auto h = r.History();
  ASSERT_EQ(h.size(), 50u);
  EXPECT_EQ(h.front()->as<double>(), 151.0);
  EXPECT_EQ(h.back()->as<double>(), 200.0);
  EXPECT_EQ(h.back()->envelope().seq, 200u);
  EXPECT_EQ(h.back()->envelope().correlation, 7u);
  ASSERT_NE(r.Latest(), nullptr);
  EXPECT_EQ(r.Latest()->as<double>(), 200.0);
  ASSERT_TRUE(r.Publish(201.0).ok());
  EXPECT_EQ(r.Latest()->envelope().seq, 201u);  // the count goes on
  std::vector<double> replayed;
  Subscription s = r.Observe([&](const SampleRef& v) { replayed.push_back(v->as<double>()); }, true);
  ASSERT_EQ(replayed.size(), 50u);
  EXPECT_EQ(replayed.back(), 201.0);
  // Without durability nothing comes back (the control).
  auto g2 = Graph::Create();
  Route mem = g2->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
  ASSERT_TRUE(mem.SetRetention({.keep_last = 50}).ok());
  EXPECT_TRUE(mem.History().empty());
}

TEST(DurableTest, ALogOfAnotherSchemaOrADamagedRecordIsRefused) {
  weft::testing::TempDir dir("weft-graph-durable");
  const std::string path = dir / "p";
  {
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
    ASSERT_TRUE(r.SetRetention({.keep_last = 5, .durable_path = path}).ok());
    ASSERT_TRUE(r.Publish(1.0).ok());
  }
  {
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<float>("bar.v2")).value();
    Status s = r.SetRetention({.keep_last = 5, .durable_path = path});
    EXPECT_EQ(s.code(), Code::kSchemaMismatch) << s.ToString();
  }
  {
    auto lg = log::Log::Open(path, {}).value();
    ASSERT_TRUE(lg->Append(AsBytes("not a graph record")).ok());
  }
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<double>("bar.v1")).value();
  Status s = r.SetRetention({.keep_last = 5, .durable_path = path});
  EXPECT_EQ(s.code(), Code::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find("record 1"), std::string::npos) << s.ToString();
}

TEST(RecordTest, EncodeDecodeAndEveryMalformedRecordRefused) {
  Envelope e{.seq = 3, .id = 99, .producer = 4, .event_ns = -5, .ingest_ns = 6, .trace = 7, .causality = 8, .correlation = 9};
  const std::string b = internal::EncodeRecord(e, 0xABCDEF, AsBytes("value"));
  auto d = internal::DecodeRecord(AsBytes(b));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->env.seq, 3u);
  EXPECT_EQ(d->env.event_ns, -5);
  EXPECT_EQ(d->env.correlation, 9u);
  EXPECT_EQ(d->schema_id, 0xABCDEFu);
  EXPECT_EQ(std::string(d->value.begin(), d->value.end()), "value");
  std::string bad = b;
  bad[0] ^= 1;  // magic
  EXPECT_EQ(internal::DecodeRecord(AsBytes(bad)).status().code(), Code::kCorrupt);
  bad = b;
  bad[6] = 16;  // a flag that is not a taint
  EXPECT_EQ(internal::DecodeRecord(AsBytes(bad)).status().code(), Code::kCorrupt);
  bad = b;
  bad[7] = 1;  // reserved
  EXPECT_EQ(internal::DecodeRecord(AsBytes(bad)).status().code(), Code::kCorrupt);
  Envelope tainted = e;
  tainted.taints = kNondeterministic | kRepaired;  // the taints travel in the flags
  auto t = internal::DecodeRecord(AsBytes(internal::EncodeRecord(tainted, 1, AsBytes("v"))));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->env.taints, kNondeterministic | kRepaired);
  EXPECT_EQ(d->env.taints, 0);
  EXPECT_EQ(internal::DecodeRecord(AsBytes(b.substr(0, b.size() - 1))).status().code(), Code::kCorrupt);
  EXPECT_EQ(internal::DecodeRecord(AsBytes(b + "x")).status().code(), Code::kCorrupt);
  EXPECT_EQ(internal::DecodeRecord(AsBytes(b.substr(0, 40))).status().code(), Code::kCorrupt);
  Envelope zero = e;
  zero.seq = 0;
  EXPECT_EQ(internal::DecodeRecord(AsBytes(internal::EncodeRecord(zero, 1, {}))).status().code(), Code::kCorrupt);
}

}  // namespace
}  // namespace weft::graph

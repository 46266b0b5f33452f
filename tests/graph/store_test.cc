// Stores (weft/graph/store.h) against a model: an ordered byte keyspace under random writes,
// batches and prefixes, reopened and compacted; a writer SIGKILLed mid-stream leaves every
// batch whole (two keys always written together are always equal; the last batch it reported
// is there: the control); a second writer is kBusy; a damaged journal, CURRENT or generation is
// kCorrupt, never an empty store. EventLog, SnapshotStore and Memory: typed round trips across
// reopen, readers' committed positions, schema mismatches refused naming both.
#include "weft/graph/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>

#include "graph/internal/record.h"
#include "graph/internal/store_format.h"
#include "support/temp_dir.h"
#include "weft/log/log.h"

namespace weft::graph {
namespace {

std::vector<KeyValue> ModelRange(const std::map<std::string, std::string>& m, const std::string& b, const std::string& e) {
  std::vector<KeyValue> out;
  for (auto it = m.lower_bound(b); it != m.end() && (e.empty() || it->first < e); ++it) out.push_back({it->first, it->second});
  return out;
}

TEST(FileStoreTest, MatchesAnOrderedMapUnderRandomWritesReopensAndCompactions) {
  weft::testing::TempDir dir("weft-store");
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(7);
  auto key = [&] {
    std::string k(1 + rng() % 3, '\0');
    for (char& c : k) c = "a\x00\xff" "bz"[rng() % 5];  // bytes that sort apart, zero and 0xff too
    return k;
  };
  for (int round = 0; round < 4; ++round) {
    auto store = FileStore::Open(dir.path, {.fsync = false, .compact_above_bytes = 4096}).value();
    Keyspace ks = store->Prefix("");
    EXPECT_EQ(ks.Range().value(), ModelRange(model, "", ""));  // what the last round left
    for (int i = 0; i < 400; ++i) {
      const int what = static_cast<int>(rng() % 10);
      if (what < 5) {
        const std::string k = key(), v = std::to_string(rng());
        ASSERT_TRUE(ks.Set(k, v).ok());
        model[k] = v;
      } else if (what < 7) {
        const std::string k = key();
        ASSERT_TRUE(ks.Clear(k).ok());
        model.erase(k);
      } else if (what < 8) {
        std::string b = key(), e = key();
        if (e < b) std::swap(b, e);
        ASSERT_TRUE(ks.ClearRange(b, e).ok());
        model.erase(model.lower_bound(b), model.lower_bound(e));
      } else {
        WriteBatch batch;
        for (int j = 0; j < 3; ++j) {
          const std::string k = key(), v = "batch" + std::to_string(i);
          batch.Set(k, v);
          model[k] = v;
        }
        const std::string gone = key();
        batch.Clear(gone);
        model.erase(gone);
        ASSERT_TRUE(ks.Commit(batch).ok());
      }
      std::string b = key(), e = key();
      if (e < b) std::swap(b, e);
      ASSERT_EQ(ks.Range(b, e).value(), ModelRange(model, b, e)) << "round " << round << " step " << i;
    }
    EXPECT_EQ(store->stats().keys, model.size());
    if (round == 2) ASSERT_TRUE(store->Compact().ok());
  }
  auto store = FileStore::Open(dir.path).value();
  EXPECT_EQ(store->Prefix("").Range().value(), ModelRange(model, "", ""));
  EXPECT_GE(store->stats().generation, 1u);  // compacted (by hand, and by size)
  int gens = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) gens += e.path().filename().string().rfind("gen-", 0) == 0;
  EXPECT_EQ(gens, 1);
}

TEST(FileStoreTest, PrefixesAreKeyspacesOfTheirOwn) {
  weft::testing::TempDir dir("weft-store");
  auto store = FileStore::Open(dir.path, {.fsync = false}).value();
  Keyspace a = store->Prefix("plant/"), b = store->Prefix("plant0");  // "plant0" sorts right after "plant/"
  Keyspace nested = a.Prefix("boiler/");
  ASSERT_TRUE(a.Set("x", "1").ok());
  ASSERT_TRUE(nested.Set("temp", "21").ok());
  ASSERT_TRUE(b.Set("y", "2").ok());
  EXPECT_EQ(a.Range().value(), (std::vector<KeyValue>{{"boiler/temp", "21"}, {"x", "1"}}));
  EXPECT_EQ(nested.Range().value(), (std::vector<KeyValue>{{"temp", "21"}}));
  EXPECT_EQ(nested.Get("temp").value(), std::optional<std::string>("21"));
  EXPECT_EQ(b.Get("x").value(), std::nullopt);
  ASSERT_TRUE(a.ClearRange("", "").ok());  // the whole keyspace, nothing past it
  EXPECT_TRUE(a.Range().value().empty());
  EXPECT_EQ(b.Get("y").value(), std::optional<std::string>("2"));
  EXPECT_EQ(store->Prefix("").Range({}, {}, 10).value().size(), 1u);
  EXPECT_EQ(store->Prefix("").Range({}, {}, 0).value().size(), 0u);
}

TEST(FileStoreTest, OneWriterAtATime) {
  weft::testing::TempDir dir("weft-store");
  auto first = FileStore::Open(dir.path).value();
  auto second = FileStore::Open(dir.path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_NE(second.status().message().find(std::to_string(::getpid())), std::string::npos) << second.status().ToString();
  first.reset();
  EXPECT_TRUE(FileStore::Open(dir.path).ok());  // the control: free once closed
}

TEST(FileStoreTest, AWriterKilledMidStreamLeavesEveryBatchWhole) {
  weft::testing::TempDir dir("weft-store");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto store = FileStore::Open(dir.path, {.fsync = false, .compact_above_bytes = 64 << 10}).value();
    Keyspace ks = store->Prefix("pair/");
    for (uint64_t n = 1;; ++n) {
      WriteBatch b;
      const std::string v = std::to_string(n) + std::string(n % 97, 'x');
      b.Set("a", v);
      b.Set("b", v);
      if (!ks.Commit(b).ok()) _exit(2);
      if (n == 5000) {
        char c = 1;
        (void)!::write(ready[1], &c, 1);
      }
    }
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::usleep(20'000);
  ::kill(child, SIGKILL);
  int st = 0;
  ::waitpid(child, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  auto store = FileStore::Open(dir.path).value();
  Keyspace ks = store->Prefix("pair/");
  const auto a = ks.Get("a").value(), b = ks.Get("b").value();
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(*a, *b);
  EXPECT_GE(std::stoull(*a), 5000u);  // the control: what it reported is there
}

TEST(FileStoreTest, DamageIsCorruptNeverAnEmptyStore) {
  weft::testing::TempDir dir("weft-store");
  {
    auto store = FileStore::Open(dir.path).value();
    ASSERT_TRUE(store->Prefix("").Set("k", "v").ok());
  }
  {
    auto lg = log::Log::Open(dir / "gen-0").value();  // a foreign record in the journal
    ASSERT_TRUE(lg->Append(AsBytes("not a batch")).ok());
  }
  auto s = FileStore::Open(dir.path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorrupt);
  EXPECT_NE(s.status().message().find("journal record 1"), std::string::npos) << s.status().ToString();

  weft::testing::TempDir dir2("weft-store");
  { ASSERT_TRUE(FileStore::Open(dir2.path).ok()); }
  { std::ofstream(dir2 / "CURRENT") << "weft-store 1 gen x\n"; }
  EXPECT_EQ(FileStore::Open(dir2.path).status().code(), Code::kCorrupt);
  { std::ofstream(dir2 / "CURRENT") << "weft-store 1 gen 9\n"; }  // a generation that is not there
  s = FileStore::Open(dir2.path);
  EXPECT_EQ(s.status().code(), Code::kCorrupt);
  EXPECT_NE(s.status().message().find("missing"), std::string::npos) << s.status().ToString();

  // The batch decoder refuses every malformed record.
  const std::string good = internal::EncodeStoreBatch({{internal::kStoreSet, "k", "v"}, {internal::kStoreClear, "j", {}}});
  ASSERT_TRUE(internal::DecodeStoreBatch(AsBytes(good)).ok());
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_EQ(internal::DecodeStoreBatch(AsBytes(good.substr(0, cut))).status().code(), Code::kCorrupt) << cut;
  }
  EXPECT_EQ(internal::DecodeStoreBatch(AsBytes(good + "x")).status().code(), Code::kCorrupt);
  std::string bad_kind = good;
  bad_kind[8] = 9;
  EXPECT_EQ(internal::DecodeStoreBatch(AsBytes(bad_kind)).status().code(), Code::kCorrupt);
  std::string huge = good;
  huge[4] = '\xff';
  huge[5] = '\xff';
  EXPECT_EQ(internal::DecodeStoreBatch(AsBytes(huge)).status().code(), Code::kCorrupt);
}

struct Pose {
  double x, y;
};

TEST(EventLogTest, TypedAppendsReadBackAndReadersResumeWhereTheyCommitted) {
  weft::testing::TempDir dir("weft-store");
  {
    auto store = FileStore::Open(dir.path, {.fsync = false}).value();
    auto ev = EventLog::Open("poses", store->Prefix("robot/"), Schema::Pod<Pose>("pose.v1")).value();
    for (int i = 0; i < 10; ++i) EXPECT_EQ(ev->Append(Pose{double(i), -double(i)}).value(), uint64_t(i));
    auto got = ev->Read(3, 4).value();
    ASSERT_EQ(got.size(), 4u);
    Pose p;
    std::memcpy(&p, got[1].value.data(), sizeof p);
    EXPECT_EQ(got[1].seq, 4u);
    EXPECT_EQ(p.x, 4.0);
    EXPECT_GT(got[1].timestamp_ns, 0);
    ASSERT_TRUE(ev->Commit("planner", 7).ok());
    EXPECT_EQ(ev->Commit("planner", 11).code(), Code::kInvalidArgument);  // past the end
    EXPECT_EQ(ev->Append(AsBytes("short")).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(ev->Committed("nobody").value(), 0u);
  }
  auto store = FileStore::Open(dir.path).value();
  auto ev = EventLog::Open("poses", store->Prefix("robot/"), Schema::Pod<Pose>("pose.v1")).value();
  EXPECT_EQ(ev->next_seq(), 10u);
  EXPECT_EQ(ev->Committed("planner").value(), 7u);
  EXPECT_EQ(ev->Read(ev->Committed("planner").value(), 100).value().size(), 3u);
  EXPECT_TRUE(ev->Read(10, 5).value().empty());
  auto other = EventLog::Open("poses", store->Prefix("robot/"), Schema::Pod<float>("pose.v2"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kSchemaMismatch);
  EXPECT_NE(other.status().message().find("pose.v1"), std::string::npos) << other.status().ToString();
  EXPECT_EQ(EventLog::Open("no/slash", store->Prefix(""), Schema::Bytes()).status().code(), Code::kInvalidArgument);
  // The same name in another keyspace is another log.
  auto elsewhere = EventLog::Open("poses", store->Prefix("other/"), Schema::Bytes()).value();
  EXPECT_EQ(elsewhere->next_seq(), 0u);
}

TEST(SnapshotStoreTest, ALatestValueAcrossReopenAndOfItsSchemaOnly) {
  weft::testing::TempDir dir("weft-store");
  {
    auto store = FileStore::Open(dir.path, {.fsync = false}).value();
    auto snap = SnapshotStore::Open("setpoint", store->Prefix(""), Schema::Pod<double>("celsius.v1")).value();
    EXPECT_EQ(snap->Get().value(), std::nullopt);
    ASSERT_TRUE(snap->Set(20.5).ok());
    ASSERT_TRUE(snap->Set(21.5).ok());
  }
  auto store = FileStore::Open(dir.path).value();
  auto snap = SnapshotStore::Open("setpoint", store->Prefix(""), Schema::Pod<double>("celsius.v1")).value();
  auto v = snap->Get().value();
  ASSERT_TRUE(v.has_value());
  double d;
  std::memcpy(&d, v->data(), 8);
  EXPECT_EQ(d, 21.5);
  EXPECT_EQ(SnapshotStore::Open("setpoint", store->Prefix(""), Schema::Pod<float>("celsius.v2")).status().code(),
            Code::kSchemaMismatch);
  ASSERT_TRUE(store->Prefix("").Set("snapshot/setpoint", "xx").ok());  // scribbled
  EXPECT_EQ(snap->Get().status().code(), Code::kCorrupt);
  ASSERT_TRUE(snap->Clear().ok());
  EXPECT_EQ(snap->Get().value(), std::nullopt);
}

RouteName Temp() { return RouteName{.owner = "plant", .family = "boiler", .stream = "temp"}; }

TEST(MemoryTest, ARouteResumesItsRememberedValueAfterTheProcessIsKilled) {
  weft::testing::TempDir dir("weft-store");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto g = Graph::Create();
    Route r = g->Declare(Temp(), Schema::Pod<double>("celsius.v1")).value();
    auto mem = Memory::Open(dir.path).value();
    Subscription keep = mem->Remember(r);
    for (int i = 1; i <= 50; ++i) {
      if (!r.Publish(double(i), Meta{.producer = 9, .correlation = 40}).ok()) _exit(2);
    }
    if (mem->write_errors() != 0) _exit(3);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  {
    // The control: while it lives, the memory is its.
    EXPECT_EQ(Memory::Open(dir.path).status().code(), Code::kBusy);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto g = Graph::Create();
  Route r = g->Declare(Temp(), Schema::Pod<double>("celsius.v1")).value();
  auto mem = Memory::Open(dir.path).value();
  EXPECT_EQ(r.Latest(), nullptr);
  ASSERT_TRUE(mem->Resume(r).value());
  ASSERT_NE(r.Latest(), nullptr);
  EXPECT_EQ(r.Latest()->as<double>(), 50.0);
  EXPECT_EQ(r.Latest()->envelope().producer, 9u);
  EXPECT_EQ(r.Latest()->envelope().correlation, 40u);
  Route other = g->Declare(RouteName{.owner = "plant", .family = "boiler", .stream = "other"}, Schema::Pod<double>("celsius.v1")).value();
  EXPECT_FALSE(mem->Resume(other).value());  // nothing remembered for it
  auto g2 = Graph::Create();
  Route wrong = g2->Declare(Temp(), Schema::Pod<float>("celsius.v2")).value();
  EXPECT_EQ(mem->Resume(wrong).status().code(), Code::kSchemaMismatch);
}

}  // namespace
}  // namespace weft::graph

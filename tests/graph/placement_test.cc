// Routes across processes over Weft topics (weft/graph/placement.h): values of another process
// arrive with their envelopes and ours reach it; a publishing process SIGKILLed mid-stream
// leaves the observers of the others working (a process started after it is heard); records of
// another schema on the topic are refused, counted.
#include "weft/graph/placement.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "graph/internal/record.h"
#include "weft/shm/topic.h"

namespace weft::graph {
namespace {

RouteName Name() { return RouteName{.owner = "cell", .family = "line", .stream = "count"}; }

std::string TopicName(const char* what) { return std::string("gtest.") + what + "." + std::to_string(::getpid()); }

template <typename Pred>
bool WaitFor(Pred pred, int ms = 10'000) {
  for (int i = 0; i < ms && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return pred();
}

// A child process publishing `n` values (or for ever with n < 0) on the placed route, after
// `go` is readable.
pid_t Publisher(const std::string& topic, int64_t first, int64_t n, int go_fd) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto place = ShmPlacement::Create(r, {.topic = topic}).value();
  char c;
  if (::read(go_fd, &c, 1) != 1) _exit(2);
  for (int64_t i = first; n < 0 || i < first + n; ++i) {
    if (!r.Publish(i, Meta{.producer = static_cast<uint64_t>(::getpid()), .correlation = 77}).ok()) _exit(3);
    if (n < 0) ::usleep(200);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the values be taken
  _exit(0);
}

// Children are forked before this process starts any thread (a placement's receiver): a fork
// of a threaded process is not what the children should be (and TSan refuses it).
TEST(ShmPlacementTest, AnotherProcesssValuesArriveWithTheirEnvelopes) {
  const std::string topic = TopicName("env");
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = Publisher(topic, 0, 100, go[0]);
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto place = ShmPlacement::Create(r, {.topic = topic}).value();
  std::mutex mu;
  std::vector<Envelope> seen;
  std::vector<int64_t> values;
  Subscription s = r.Observe([&](const SampleRef& v) {
    std::lock_guard<std::mutex> l(mu);
    seen.push_back(v->envelope());
    values.push_back(v->as<int64_t>());
  });
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> l(mu);
    return values.size() == 100;
  }));
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::lock_guard<std::mutex> l(mu);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(values[static_cast<size_t>(i)], i);  // in order
  EXPECT_EQ(seen[0].producer, static_cast<uint64_t>(child));
  EXPECT_EQ(seen[0].correlation, 77u);
  EXPECT_EQ(seen[0].seq, 1u);  // this route's own count
  EXPECT_NE(seen[0].id, seen[1].id);
  EXPECT_EQ(place->stats().received, 100u);
  EXPECT_EQ(place->stats().sent, 0u);  // nothing of ours went back out
  place->Close();
  shm::UnlinkTopic(topic).IgnoreError();
}

TEST(ShmPlacementTest, APublisherKilledMidStreamLeavesTheOthersWorking) {
  const std::string topic = TopicName("kill");
  int go1[2], go2[2];
  ASSERT_EQ(::pipe(go1), 0);
  ASSERT_EQ(::pipe(go2), 0);
  const pid_t first = Publisher(topic, 0, -1, go1[0]);  // for ever
  const pid_t second = Publisher(topic, 1'000'000, 20, go2[0]);
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto place = ShmPlacement::Create(r, {.topic = topic}).value();
  std::atomic<int64_t> from_second{0}, total{0};
  Subscription s = r.Observe([&](const SampleRef& v) {
    ++total;
    if (v->as<int64_t>() >= 1'000'000) ++from_second;
  });
  ASSERT_EQ(::write(go1[1], "g", 1), 1);
  ASSERT_TRUE(WaitFor([&] { return total.load() >= 50; }));
  ::kill(first, SIGKILL);
  int st = 0;
  ::waitpid(first, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  ASSERT_EQ(::write(go2[1], "g", 1), 1);
  EXPECT_TRUE(WaitFor([&] { return from_second.load() == 20; })) << from_second.load();
  ::waitpid(second, &st, 0);
  // This process still publishes to the topic too.
  EXPECT_TRUE(r.Publish(int64_t{5}).ok());
  EXPECT_GE(place->stats().sent, 1u);
  place->Close();
  shm::UnlinkTopic(topic).IgnoreError();
}

TEST(ShmPlacementTest, RecordsOfAnotherSchemaOnTheTopicAreRefused) {
  const std::string topic = TopicName("schema");
  auto g = Graph::Create();
  Route r = g->Declare(Name(), Schema::Pod<int64_t>("count.v1")).value();
  auto place = ShmPlacement::Create(r, {.topic = topic}).value();
  std::atomic<int> seen{0};
  Subscription s = r.Observe([&](const SampleRef&) { ++seen; });
  auto pub = shm::Publisher::Open(topic).value();
  auto send = [&](const std::string& bytes) {
    auto loan = pub->Loan(bytes.size()).value();
    std::memcpy(loan.data.data(), bytes.data(), bytes.size());
    ASSERT_TRUE(pub->Publish(loan, bytes.size(), Deadline::AfterMs(1000)).ok());
  };
  const int64_t v = 1;
  Envelope e{.seq = 1, .id = 9, .trace = 9};
  send(internal::EncodeRecord(e, Schema::Pod<double>("other").id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 8)));
  send("garbage that is no record at all, long enough to look like a header................................");
  send(internal::EncodeRecord(e, r.schema().id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 4)));  // wrong size
  send(internal::EncodeRecord(e, r.schema().id(), ByteView(reinterpret_cast<const uint8_t*>(&v), 8)));  // the control
  EXPECT_TRUE(WaitFor([&] { return seen.load() == 1; }));
  EXPECT_TRUE(WaitFor([&] { return place->stats().refused == 3; })) << place->stats().refused;
  place->Close();
  pub.reset();
  shm::UnlinkTopic(topic).IgnoreError();
}

// A large value from another process is read in place (no copy): its bytes are right, and its
// block goes back to the pool once its samples are gone, so many more values than the pool
// holds pass. The control: an observer that keeps every sample fills the pool, and the
// publisher's sends fail.
pid_t BulkPublisher(const std::string& topic, int n, int go_fd, int report_fd) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto g = Graph::Create();
  Route r = g->Declare(RouteName{.owner = "cam", .family = "front", .stream = "frame"}, Schema::Bytes()).value();
  auto place = ShmPlacement::Create(r, {.topic = topic, .queue_depth = 8, .pool_bytes = 8 << 20, .send_timeout_ms = 200}).value();
  char c;
  if (::read(go_fd, &c, 1) != 1) _exit(2);
  for (int i = 0; i < n; ++i) {
    std::string frame(256 << 10, static_cast<char>(i));
    if (!r.Publish(std::move(frame)).ok()) _exit(3);
    ::usleep(2000);
  }
  ::usleep(200'000);
  const uint64_t errors = place->stats().send_errors;
  (void)!::write(report_fd, &errors, sizeof(errors));
  _exit(0);
}

TEST(ShmPlacementTest, LargeValuesAreReadInPlaceAndTheirBlocksGoBack) {
  for (const bool keep_all : {false, true}) {
    const std::string topic = TopicName(keep_all ? "bulk-keep" : "bulk");
    int go[2], report[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(report), 0);
    const int n = 300;  // more large blocks than the pool lets live at once (256)
    const pid_t child = BulkPublisher(topic, n, go[0], report[1]);
    auto g = Graph::Create();
    Route r = g->Declare(RouteName{.owner = "cam", .family = "front", .stream = "frame"}, Schema::Bytes()).value();
    auto place = ShmPlacement::Create(r, {.topic = topic, .queue_depth = 8, .pool_bytes = 8 << 20}).value();
    std::mutex mu;
    std::vector<SampleRef> kept;
    std::atomic<int> seen{0}, wrong{0}, in_place{0};
    Subscription s = r.Observe([&](const SampleRef& v) {
      auto b = v->bytes().value();
      const int i = seen.load();
      if (b.size() != (256u << 10) || b[0] != static_cast<uint8_t>(i) || b[b.size() - 1] != static_cast<uint8_t>(i)) ++wrong;
      in_place += v->in_place();
      ++seen;
      if (keep_all) {
        std::lock_guard<std::mutex> l(mu);
        kept.push_back(v);
      }
    });
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    uint64_t errors = 0;
    ASSERT_EQ(::read(report[0], &errors, sizeof(errors)), static_cast<ssize_t>(sizeof(errors)));
    int st = 0;
    ::waitpid(child, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    if (!keep_all) {
      EXPECT_EQ(errors, 0u);
      EXPECT_TRUE(WaitFor([&] { return seen.load() == n; })) << seen.load();
      EXPECT_EQ(in_place.load(), n);
      EXPECT_EQ(place->stats().in_place, static_cast<uint64_t>(n));
    } else {
      EXPECT_GT(errors, 0u) << "in place " << in_place.load() << " seen " << seen.load();  // the pool filled with the blocks the observer keeps
      EXPECT_LT(seen.load(), n);
    }
    EXPECT_EQ(wrong.load(), 0);
    s.Cancel();
    {
      std::lock_guard<std::mutex> l(mu);
      kept.clear();
    }
    place->Close();
    shm::UnlinkTopic(topic).IgnoreError();
  }
}

}  // namespace
}  // namespace weft::graph

// Topics: named one-to-many publish/subscribe over a shared-memory pool, with no daemon.
//
// A publisher loans a block from the topic's pool, writes it, and publishes it: every
// subscriber gets the block id in its own queue and a hold on the block (its bit in the block's
// holder mask), reads the block in place, and releases it; the block is free when the last
// holder lets go. Order is kept per publisher. Each subscriber chooses what happens when it
// falls behind: the publisher waits (with its deadline), or the oldest or the newest sample is
// dropped, counted. A late joiner may ask for the last N samples of each publisher.
// Layout: docs/formats/topic.md.
//
// Thread rule: a Publisher or Subscriber object is used by one thread at a time. Each takes a
// publisher or subscriber slot of the topic and a holder slot of its pool.
// Ordering: the bytes of a published sample are visible to a subscriber that takes it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/overflow.h"
#include "weft/core/status.h"
#include "weft/core/wait.h"
#include "weft/shm/pool.h"

namespace weft::shm {
namespace internal {
struct TopicLayout;
}

// Used by the process that creates the topic. A process that joins an existing topic gets the
// topic as it was made, unless must_match asks it to check.
struct TopicOptions {
  uint32_t max_publishers = 8;
  uint32_t max_subscribers = 16;
  uint32_t queue_depth = 256;  // samples waiting per (publisher, subscriber); a power of two
  uint32_t history = 0;        // samples each publisher keeps for late joiners (up to 64)
  PoolOptions pool;            // the topic's pool "<topic>.pool"
  // Joining an existing topic whose queue depth or history differs from the above fails with
  // kInvalidArgument (saying what it has), instead of silently taking the topic's own.
  bool must_match = false;
};

// What a publisher does when this subscriber's queue is full (one vocabulary with channels).
using weft::Overflow;

struct SubscriberOptions {
  Overflow on_full = Overflow::kBlock;
  uint32_t history = 0;  // samples per publisher to receive first, if the topic keeps them
  // Take spins up to this long before sleeping (adaptive: less while spinning finds nothing);
  // -1 spins until the deadline.
  int64_t spin_ns = 50'000;
};

// A loaned or received sample: a block of the topic's pool.
struct Sample {
  BlockId block = 0;
  MutableBytes data;  // publishers write it; subscribers only read it
  uint64_t seq = 0;   // per publisher, from 1
  int publisher = -1;
};

struct SubscriberCounters {
  uint64_t taken = 0, drops_newest = 0, drops_oldest = 0;
};

// A racy picture of a topic, for tools.
struct TopicInfo {
  uint32_t max_publishers = 0, max_subscribers = 0, queue_depth = 0, history = 0;
  struct Endpoint {
    int index = 0;
    int32_t pid = 0;
    bool alive = false;
    uint64_t published = 0;         // publishers
    std::string on_full;            // subscribers
    uint64_t queued = 0;            // subscribers: entries waiting, over all publishers
    uint64_t taken = 0, drops_newest = 0, drops_oldest = 0;
  };
  std::vector<Endpoint> publishers, subscribers;
};
// Reads a topic's endpoints and queue depths without joining it.
Result<TopicInfo> InspectTopic(std::string_view name);
// The topics on this host, found through the registry segment (no daemon).
Result<std::vector<std::string>> ListTopics();
// Removes a topic's name and its pool's (kNotFound if there is no such topic). Endpoints that
// are attached keep working until they close; a later Open creates a new topic.
Status UnlinkTopic(std::string_view name);

class Topic;  // internal: the mapped topic segment and its pool

class Publisher {
 public:
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Opens topic `name`, creating it (and its pool) with `options` if absent.
  static Result<std::unique_ptr<Publisher>> Open(std::string_view name, const TopicOptions& options = {});
  // A writable block of at least n bytes from the topic's pool.
  Result<Sample> Loan(size_t n);
  // Publishes the first `size` bytes of a loaned sample to every subscriber; the loan is
  // consumed. A subscriber with OnFull::kBlock whose queue stays full past `deadline` makes
  // this fail with kTimeout, and nothing is published.
  Status Publish(Sample& sample, size_t size, Deadline deadline);
  // The same, naming the loan by its block (size at most the loaned size).
  Status Publish(BlockId block, size_t size, Deadline deadline);
  // Returns a loan unpublished.
  Status Discard(Sample& sample);
  Status Close();
  // The one call another thread may make while Publish waits for room: it ends with kClosed
  // within one liveness slice, and so does every later wait.
  void Interrupt();
  int index() const { return index_; }
  // Subscribers currently attached (racy).
  int subscribers_approx() const;
  // Never delivers to subscriber `index` (this process's own, which would only skip what its
  // own publisher sends); -1: delivers to every subscriber.
  void ExcludeSubscriber(int index) { excluded_ = index; }

 private:
  Publisher() = default;
  std::unique_ptr<Topic> topic_;
  int index_ = -1;
  Waiter waiter_;  // spin budget, Interrupt
  uint32_t epoch_ = 0;
  int send_fd_ = -1;  // for ringing subscribers' doorbells
  int excluded_ = -1;
};

class Subscriber {
 public:
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Opens topic `name` (creating it with `create` if absent) and subscribes.
  static Result<std::unique_ptr<Subscriber>> Open(std::string_view name, const SubscriberOptions& options = {},
                                                  const TopicOptions& create = {});
  // The next sample, held until Release. kWouldBlock / kTimeout when none came by `deadline`.
  Result<Sample> Take(Deadline deadline);
  // A descriptor that turns readable when a sample may be ready. It starts readable; when it
  // is, call Take(Deadline::Now()): it takes a sample, or returns kWouldBlock and arms the
  // descriptor for the next publish. Owned by the Subscriber.
  Result<int> WaitFd();
  Status Release(const Sample& sample);
  SubscriberCounters counters() const;
  // Revokes the holds a publisher that died mid-publish (or mid-drop) left to this subscriber
  // for samples that never reached, or already left, its queue; returns how many. Take runs it on its own after a
  // quiet liveness slice; a caller that never sleeps may run it after seeing a publisher die.
  size_t RecoverOrphans();
  Status Close();
  // The one call another thread may make while Take waits: it ends with kClosed within one
  // liveness slice, and so does every later wait.
  void Interrupt();
  int index() const { return index_; }

 private:
  Subscriber() = default;
  bool TryTake(Sample* out);
  bool Referenced(BlockId block);
  std::unique_ptr<Topic> topic_;
  int index_ = -1;
  Waiter waiter_;  // spin budget, Interrupt
  uint32_t epoch_ = 0;
  uint32_t next_publisher_ = 0;
  int bell_fd_ = -1;
  int send_fd_ = -1;  // for ringing our own doorbell once, when it is made
  std::deque<Sample> pending_;              // history samples, delivered first
  std::vector<uint64_t> history_seq_;       // per publisher: last seq delivered from history
  std::vector<BlockId> history_extra_;      // history blocks whose hold was counted locally
  std::vector<BlockId> outstanding_;        // taken and not yet released
  bool orphan_check_ = false;               // a drop record was seen: RecoverOrphans at the next Take
  int64_t next_orphan_check_ns_ = 0;        // a waiting Take runs RecoverOrphans at most once a slice
};

}  // namespace weft::shm

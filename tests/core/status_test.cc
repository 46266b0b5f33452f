#include "weft/core/status.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "weft/core/clock.h"

namespace weft {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s(Code::kPeerDead, "producer 12 exited");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kPeerDead);
  EXPECT_EQ(s.ToString(), "peer_dead: producer 12 exited");
  Status copy = s;
  EXPECT_EQ(copy.ToString(), s.ToString());
  copy.Annotate("reading");
  EXPECT_EQ(copy.message(), "reading: producer 12 exited");
  EXPECT_EQ(s.message(), "producer 12 exited");
}

TEST(StatusTest, CodeNumbersAreFixed) {
  EXPECT_EQ(static_cast<int>(Code::kWouldBlock), 4);
  EXPECT_EQ(static_cast<int>(Code::kPeerDead), 6);
  EXPECT_EQ(static_cast<int>(Code::kPermissionDenied), 16);
  EXPECT_STREQ(CodeName(Code::kTooLarge), "too_large");
}

// Every code of the table has a unique name, a description and a retry class; the numbers are
// dense from 1 (the C and Python tables are checked against the same table).
TEST(StatusTest, TheCodeTableIsCompleteAndConsistent) {
  std::set<std::string> names;
  for (int n = 1; n <= WEFT_STATUS_CODE_MAX; ++n) {
    const Code c = static_cast<Code>(n);
    const std::string name = CodeName(c);
    EXPECT_NE(name, "unknown") << n;
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_STRNE(CodeDescription(c), "unknown code") << n;
  }
  EXPECT_STREQ(CodeName(static_cast<Code>(WEFT_STATUS_CODE_MAX + 1)), "unknown");
  EXPECT_EQ(CodeRetry(Code::kWouldBlock), Retry::kWhenReady);
  EXPECT_EQ(CodeRetry(Code::kUnavailable), Retry::kBackoff);
  EXPECT_EQ(CodeRetry(Code::kPeerDead), Retry::kReconnect);
  EXPECT_EQ(CodeRetry(Code::kCorrupt), Retry::kNo);
  EXPECT_EQ(static_cast<int>(Code::kResourceExhausted), 21);
}

// A Fixed failure is reported without allocating: copies share its message.
TEST(StatusTest, AFixedStatusIsSharedNotCopied) {
  static const Status::Fixed kMiss{Code::kWouldBlock, "nothing yet"};
  Status a = kMiss;
  Status b = a;
  Status c = std::move(b);
  EXPECT_EQ(a.code(), Code::kWouldBlock);
  EXPECT_EQ(&a.message(), &kMiss.message);
  EXPECT_EQ(&c.message(), &kMiss.message);
  EXPECT_EQ(c.ToString(), "would_block: nothing yet");
  a.Annotate("polling");  // an annotated copy is its own; the fixed one is untouched
  EXPECT_EQ(a.message(), "polling: nothing yet");
  EXPECT_EQ(kMiss.message, "nothing yet");
  Result<int> r = Status(kMiss);
  EXPECT_EQ(r.status().code(), Code::kWouldBlock);
}

TEST(StatusTest, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "x").code(), Code::kNotFound);
  EXPECT_EQ(ErrnoStatus(EEXIST, "x").code(), Code::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EACCES, "x").code(), Code::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(EIO, "x").code(), Code::kIoError);
}

TEST(ResultTest, HoldsValueOrError) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = Status(Code::kTimeout, "late");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kTimeout);
}

TEST(DeadlineTest, NowNeverAndAfter) {
  EXPECT_TRUE(Deadline::Now().Expired());
  EXPECT_FALSE(Deadline::Never().Expired());
  EXPECT_EQ(Deadline::Never().RemainingNs(), Deadline::kNever);
  Deadline d = Deadline::AfterMs(10'000);
  EXPECT_FALSE(d.Expired());
  EXPECT_GT(d.RemainingNs(), 0);
  EXPECT_TRUE(Deadline::AfterMs(-1).is_never());
}

}  // namespace
}  // namespace weft

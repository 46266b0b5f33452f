#include "weft/core/status.h"

#include <gtest/gtest.h>

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

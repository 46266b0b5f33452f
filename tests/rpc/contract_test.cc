#include "weft/rpc/contract.h"

#include <gtest/gtest.h>

namespace weft::rpc {
namespace {

Contract Counter(const char* version = "0.1.0") {
  return ContractBuilder("demo.counter", "Counter", version)
      .Write<int64_t(int64_t)>("increment")
      .Read<int64_t()>("value")
      .Write<int64_t()>("reset")
      .Build()
      .value();
}

TEST(ContractTest, CanonicalTextIsSortedAndExact) {
  EXPECT_EQ(Counter().Canonical(),
            "weft-contract 1\n"
            "namespace demo.counter\n"
            "name Counter\n"
            "version 0.1.0\n"
            "method increment write i64 -> i64\n"
            "method reset write -> i64\n"
            "method value read -> i64\n");
  EXPECT_EQ(Counter().Find("reset"), 1);
  EXPECT_EQ(Counter().Find("nope"), -1);
}

TEST(ContractTest, HashIsStableAcrossRunsAndLanguages) {
  // BLAKE2b-128 of the canonical text above; tests/python/test_rpc.py checks the same value
  // from Python (hashlib and weft.contract).
  EXPECT_EQ(Counter().Hash(), "2c2859863138efe6c98aa14daa210b3b");
  EXPECT_NE(Counter("0.2.0").Hash(), Counter().Hash());
}

TEST(ContractTest, ParseRoundTripsAndRejectsWhatIsNotCanonical) {
  const std::string text = Counter().Canonical();
  auto parsed = Contract::Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(Compare(*parsed, Counter()).ok());
  for (std::string bad : {std::string("weft-contract 2\nnamespace a\nname B\nversion 1\n"),
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1"),   // no newline
                          std::string("weft-contract 1\nnamespace a\nname 1B\nversion 1\n"),  // not an identifier
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod z read -> i64\nmethod a read -> i64\n"),
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod a read i64\n"),
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod a maybe -> i64\n"),
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod a read  -> i64\n"),
                          std::string("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod a read none -> i64\n")}) {
    auto r = Contract::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_EQ(r.status().code(), Code::kCorrupt) << bad;
  }
}

TEST(ContractTest, MismatchSaysWhatDiffers) {
  Contract client = ContractBuilder("demo.counter", "Counter", "0.2.0")
                        .Write<int64_t(double)>("increment")
                        .Write<int64_t()>("value")
                        .Read<std::string()>("describe")
                        .Build()
                        .value();
  Status s = Compare(Counter(), client);
  ASSERT_EQ(s.code(), Code::kContractMismatch);
  const std::string& m = s.message();
  EXPECT_NE(m.find("version 0.1.0 on the server, 0.2.0 on the client"), std::string::npos) << m;
  EXPECT_NE(m.find("method 'describe' only on the client"), std::string::npos) << m;
  EXPECT_NE(m.find("method 'reset' only on the server"), std::string::npos) << m;
  EXPECT_NE(m.find("method 'increment' takes (i64) on the server, (f64) on the client"), std::string::npos) << m;
  EXPECT_NE(m.find("method 'value' is read on the server, write on the client"), std::string::npos) << m;
  EXPECT_TRUE(Compare(Counter(), Counter()).ok());
}

TEST(ContractTest, BadDefinitionsAreRejected) {
  EXPECT_EQ(ContractBuilder("demo", "Counter", "1").Read<int64_t()>("a").Read<int64_t()>("a").Build().status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ContractBuilder("", "Counter", "1").Build().status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ContractBuilder("demo", "Counter", "1 0").Build().status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ContractBuilder("demo", "Counter", "1").Method("m", Access::kRead, {"stream"}, "i64").Build().status().code(),
            Code::kInvalidArgument);
  // Many routes: no small limit.
  ContractBuilder big("demo", "Big", "1");
  for (int i = 0; i < 1000; ++i) big.Read<int64_t()>("m" + std::to_string(i));
  auto c = big.Build();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->methods.size(), 1000u);
  EXPECT_TRUE(Contract::Parse(c->Canonical()).ok());
}

}  // namespace
}  // namespace weft::rpc

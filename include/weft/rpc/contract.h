// Contracts: what a resource offers, in a form every language agrees on. A contract names a
// namespace, a name and a version, and lists methods, each a read (may run beside other reads)
// or a write (runs alone), with the codecs of its parameters and result. Its canonical text
// (docs/formats/rpc-contract.md) is what client and server exchange before the first call, and
// its hash (BLAKE2b-128 of that text) names it; Compare says exactly what differs.
//
//   Contract counter = ContractBuilder("demo.counter", "Counter", "0.1.0")
//                          .Write<int64_t(int64_t)>("increment")
//                          .Read<int64_t()>("value")
//                          .Build().value();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/status.h"

namespace weft::rpc {

enum class Access : uint8_t { kRead = 0, kWrite = 1 };

struct MethodSpec {
  std::string name;
  Access access = Access::kWrite;
  std::vector<std::string> params;  // codec names, in order
  std::string result = "none";      // codec name
  bool stream = false;              // the method yields a stream of `result` chunks
};

struct Contract {
  std::string ns, name, version;
  std::vector<MethodSpec> methods;  // kept sorted by name (Build and Parse sort them)

  // The canonical text; equal contracts have equal texts, byte for byte.
  std::string Canonical() const;
  // BLAKE2b-128 of the canonical text, 32 lowercase hex digits.
  std::string Hash() const;
  // The method's index in `methods`, or -1.
  int Find(std::string_view method) const;

  // Parses and validates a canonical text (as received from a peer). Fuzzed.
  static Result<Contract> Parse(std::string_view text);
};

// OK if the two contracts are the same; else kContractMismatch saying what differs (version,
// methods missing on either side, access, parameters, results), server's view first.
Status Compare(const Contract& server, const Contract& client);
// Whether a client of contract `client` may call a server of contract `server`: the same
// namespace and name, and every method of the client's on the server, the same (the server
// may add methods, and its version may differ). kContractMismatch saying what differs.
Status CheckCompatible(const Contract& server, const Contract& client);

// Checks names, versions, codec names and that method names are unique.
Status Validate(const Contract& c);

// Codec names for C++ types: the builtin codecs (docs/formats/rpc-contract.md).
template <typename T>
struct CodecName;
template <> struct CodecName<void> { static constexpr const char* value = "none"; };
template <> struct CodecName<bool> { static constexpr const char* value = "bool"; };
template <> struct CodecName<int64_t> { static constexpr const char* value = "i64"; };
template <> struct CodecName<double> { static constexpr const char* value = "f64"; };
template <> struct CodecName<std::string> { static constexpr const char* value = "str"; };
template <> struct CodecName<std::vector<uint8_t>> { static constexpr const char* value = "bytes"; };

class ContractBuilder {
 public:
  ContractBuilder(std::string ns, std::string name, std::string version);
  // A method by codec names.
  ContractBuilder& Method(std::string name, Access access, std::vector<std::string> params, std::string result,
                          bool stream = false);
  // A method by C++ signature: Read<int64_t(std::string)>("lookup").
  template <typename Sig>
  ContractBuilder& Read(std::string name) {
    return Typed<Sig>(std::move(name), Access::kRead);
  }
  template <typename Sig>
  ContractBuilder& Write(std::string name) {
    return Typed<Sig>(std::move(name), Access::kWrite);
  }
  // The contract, validated, methods sorted.
  Result<Contract> Build() const;

 private:
  template <typename Sig>
  struct Split;
  template <typename R, typename... A>
  struct Split<R(A...)> {
    static std::vector<std::string> Params() { return {CodecName<A>::value...}; }
    static std::string Result() { return CodecName<R>::value; }
  };
  template <typename Sig>
  ContractBuilder& Typed(std::string name, Access access) {
    return Method(std::move(name), access, Split<Sig>::Params(), Split<Sig>::Result());
  }
  Contract c_;
};

}  // namespace weft::rpc

// The builtin codecs of contract values (docs/formats/rpc-wire.md): the bytes of one i64, f64,
// bool or UTF-8 str value, and typed calls and handlers over them, so that C++ resources and
// clients need not handle bytes:
//
//   resource.handlers["increment"] = rpc::Typed<int64_t(int64_t)>([&](int64_t by) { return value += by; });
//   int64_t now = rpc::CallAs<int64_t>(*client, "increment", deadline, int64_t{5}).value();
//
// C++ types map to codecs as in ContractBuilder: int64_t i64, double f64, bool bool,
// std::string str, std::vector<uint8_t> bytes, void none.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/rpc/rpc.h"

namespace weft::rpc {

// ndarray: a header (magic "WNDA", header size, dtype as NumPy's dtype.str such as "<f8", ndim,
// shape), padded so the data starts 64-byte aligned, then the C-order data.
struct ArrayHeader {
  std::string dtype;           // "<f8", "|u1", ...
  std::vector<uint64_t> shape;
  uint64_t data_offset = 0;    // where the data starts in the value
  uint64_t data_bytes = 0;
};
std::string EncodeArrayHeader(std::string_view dtype, const std::vector<uint64_t>& shape, uint64_t* data_offset);
// Checks the header against the value's size: the data must fit exactly.
Result<ArrayHeader> DecodeArrayHeader(ByteView value);
// The item size of a dtype string ("<f8" -> 8), or 0 if it is not a plain numeric/bool dtype.
uint64_t DtypeItemSize(std::string_view dtype);



std::string EncodeI64(int64_t v);
std::string EncodeF64(double v);
std::string EncodeBool(bool v);
Result<int64_t> DecodeI64(ByteView b);
Result<double> DecodeF64(ByteView b);
Result<bool> DecodeBool(ByteView b);
// str values must be UTF-8 (no overlong forms, no surrogates); kCorrupt otherwise.
Status CheckUtf8(ByteView b);

// Codec<T>::Encode / Decode for each builtin C++ type.
template <typename T>
struct Codec;
template <>
struct Codec<int64_t> {
  static std::string Encode(int64_t v) { return EncodeI64(v); }
  static Result<int64_t> Decode(ByteView b) { return DecodeI64(b); }
};
template <>
struct Codec<double> {
  static std::string Encode(double v) { return EncodeF64(v); }
  static Result<double> Decode(ByteView b) { return DecodeF64(b); }
};
template <>
struct Codec<bool> {
  static std::string Encode(bool v) { return EncodeBool(v); }
  static Result<bool> Decode(ByteView b) { return DecodeBool(b); }
};
template <>
struct Codec<std::string> {
  static std::string Encode(const std::string& v) { return v; }
  static Result<std::string> Decode(ByteView b) {
    WEFT_RETURN_IF_ERROR(CheckUtf8(b));
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
};
template <>
struct Codec<std::vector<uint8_t>> {
  static std::string Encode(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
  static Result<std::vector<uint8_t>> Decode(ByteView b) { return std::vector<uint8_t>(b.begin(), b.end()); }
};

// Result<R>, or Status for R = void.
template <typename R>
using CallResult = std::conditional_t<std::is_void_v<R>, Status, Result<R>>;

// Calls `method` with typed arguments; the typed result (R = void for a `none` result: a Status).
template <typename R, typename... A>
CallResult<R> CallAs(Client& client, std::string_view method, Deadline deadline, const A&... args) {
  const std::string encoded[] = {Codec<A>::Encode(args)..., std::string()};
  std::vector<ByteView> views;
  views.reserve(sizeof...(A));
  for (size_t i = 0; i < sizeof...(A); ++i) views.push_back(AsBytes(encoded[i]));
  Result<std::string> r = client.Call(method, views, deadline);
  if (!r.ok()) return r.status();
  if constexpr (std::is_void_v<R>) {
    if (!r->empty()) return Corrupt("a none result with " + std::to_string(r->size()) + " bytes");
    return Status::Ok();
  } else {
    return Codec<R>::Decode(AsBytes(*r));
  }
}

namespace detail {
template <typename Sig>
struct TypedSig;
template <typename R, typename... A>
struct TypedSig<R(A...)> {
  template <typename F>
  static Handler Make(F fn) {
    return Make(std::move(fn), std::index_sequence_for<A...>{});
  }
  template <typename F, size_t... I>
  static Handler Make(F fn, std::index_sequence<I...>) {
    return [fn = std::move(fn)](const CallArgs& call) -> Result<std::string> {
      if (call.args.size() != sizeof...(A)) return InvalidArgument("wrong argument count");
      std::tuple<Result<std::decay_t<A>>...> decoded{Codec<std::decay_t<A>>::Decode(call.args[I])...};
      Status bad;
      ((bad.ok() && !std::get<I>(decoded).ok() ? (void)(bad = std::get<I>(decoded).status()) : (void)0), ...);
      if (!bad.ok()) return bad;
      if constexpr (std::is_void_v<R>) {
        fn(std::get<I>(decoded).value()...);
        return std::string();
      } else {
        auto out = fn(std::get<I>(decoded).value()...);
        using Out = decltype(out);
        if constexpr (std::is_same_v<Out, Result<R>>) {
          if (!out.ok()) return out.status();
          return Codec<R>::Encode(out.value());
        } else {
          return Codec<R>::Encode(out);
        }
      }
    };
  }
};
}  // namespace detail

// A Handler from a typed function: Typed<int64_t(int64_t)>(fn). `fn` returns R or Result<R>
// (an error for the caller); arguments that fail to decode are the caller's error.
template <typename Sig, typename F>
Handler Typed(F fn) {
  return detail::TypedSig<Sig>::Make(std::move(fn));
}

}  // namespace weft::rpc

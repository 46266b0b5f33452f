#include "weft/rpc/contract.h"

#include <sodium.h>

#include <algorithm>
#include <map>
#include <set>

namespace weft::rpc {
namespace {

constexpr std::string_view kHeader = "weft-contract 1";
constexpr size_t kMaxMethods = 4096;
constexpr size_t kMaxParams = 64;
constexpr size_t kMaxToken = 128;

bool Ident(std::string_view s) {
  if (s.empty() || s.size() > kMaxToken) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool Chars(std::string_view s, std::string_view extra, size_t max) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}

bool Namespace(std::string_view s) { return Chars(s, "_.-", kMaxToken) && s.front() != '.' && s.back() != '.'; }
bool Version(std::string_view s) { return Chars(s, "._+-", 64); }
bool Codec(std::string_view s) { return Chars(s, "_.:", kMaxToken) && s != "stream"; }

const char* AccessName(Access a) { return a == Access::kRead ? "read" : "write"; }

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

std::string ResultText(const MethodSpec& m) { return (m.stream ? "stream " : "") + m.result; }

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= line.size()) {
    size_t sp = line.find(' ', start);
    if (sp == std::string_view::npos) sp = line.size();
    out.push_back(line.substr(start, sp - start));
    start = sp + 1;
  }
  return out;
}

}  // namespace

Status Validate(const Contract& c) {
  if (!Namespace(c.ns)) return InvalidArgument("contract namespace '" + c.ns + "': letters, digits, _ . - (1 to 128)");
  if (!Ident(c.name)) return InvalidArgument("contract name '" + c.name + "' is not an identifier");
  if (!Version(c.version)) return InvalidArgument("contract version '" + c.version + "': letters, digits, . _ + - (1 to 64)");
  if (c.methods.size() > kMaxMethods) return InvalidArgument("more than 4096 methods");
  std::set<std::string_view> seen;
  for (const MethodSpec& m : c.methods) {
    if (!Ident(m.name)) return InvalidArgument("method name '" + m.name + "' is not an identifier");
    if (!seen.insert(m.name).second) return InvalidArgument("method '" + m.name + "' declared twice");
    if (m.params.size() > kMaxParams) return InvalidArgument("method '" + m.name + "' has more than 64 parameters");
    for (const std::string& p : m.params) {
      if (!Codec(p) || p == "none") return InvalidArgument("method '" + m.name + "': bad parameter codec '" + p + "'");
    }
    if (!Codec(m.result)) return InvalidArgument("method '" + m.name + "': bad result codec '" + m.result + "'");
  }
  return Status::Ok();
}

std::string Contract::Canonical() const {
  std::vector<const MethodSpec*> sorted;
  for (const MethodSpec& m : methods) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(), [](const MethodSpec* a, const MethodSpec* b) { return a->name < b->name; });
  std::string out;
  out += kHeader;
  out += "\nnamespace " + ns + "\nname " + name + "\nversion " + version + "\n";
  for (const MethodSpec* m : sorted) {
    out += "method " + m->name + " " + AccessName(m->access);
    for (const std::string& p : m->params) out += " " + p;
    out += " -> " + ResultText(*m) + "\n";
  }
  return out;
}

std::string Contract::Hash() const {
  static const int init = sodium_init();
  (void)init;
  const std::string text = Canonical();
  unsigned char digest[16];
  crypto_generichash(digest, sizeof(digest), reinterpret_cast<const unsigned char*>(text.data()), text.size(), nullptr, 0);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : digest) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  return hex;
}

int Contract::Find(std::string_view method) const {
  auto it = std::lower_bound(methods.begin(), methods.end(), method,
                             [](const MethodSpec& m, std::string_view n) { return m.name < n; });
  if (it == methods.end() || it->name != method) return -1;
  return static_cast<int>(it - methods.begin());
}

Result<Contract> Contract::Parse(std::string_view text) {
  if (text.size() > (1u << 20)) return Corrupt("contract text longer than 1 MiB");
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) return Corrupt("contract text does not end with a newline");
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (lines.size() < 4 || lines[0] != kHeader) return Corrupt("not a weft contract (expected '" + std::string(kHeader) + "')");
  Contract c;
  auto field = [&](size_t i, std::string_view key, std::string* out) -> Status {
    const std::string_view l = lines[i];
    if (l.substr(0, key.size() + 1) != std::string(key) + " ") return Corrupt("contract line " + std::to_string(i + 1) + ": expected '" + std::string(key) + "'");
    *out = std::string(l.substr(key.size() + 1));
    return Status::Ok();
  };
  WEFT_RETURN_IF_ERROR(field(1, "namespace", &c.ns));
  WEFT_RETURN_IF_ERROR(field(2, "name", &c.name));
  WEFT_RETURN_IF_ERROR(field(3, "version", &c.version));
  for (size_t i = 4; i < lines.size(); ++i) {
    const std::vector<std::string_view> t = Split(lines[i]);
    const std::string where = "contract line " + std::to_string(i + 1);
    if (t.size() < 5 || t[0] != "method") return Corrupt(where + ": expected 'method NAME read|write PARAMS -> RESULT'");
    MethodSpec m;
    m.name = std::string(t[1]);
    if (t[2] == "read") {
      m.access = Access::kRead;
    } else if (t[2] == "write") {
      m.access = Access::kWrite;
    } else {
      return Corrupt(where + ": access must be read or write");
    }
    size_t k = 3;
    for (; k < t.size() && t[k] != "->"; ++k) m.params.emplace_back(t[k]);
    if (k == t.size()) return Corrupt(where + ": no '->'");
    ++k;
    if (k < t.size() && t[k] == "stream") {
      m.stream = true;
      ++k;
    }
    if (k + 1 != t.size()) return Corrupt(where + ": expected one result codec after '->'");
    m.result = std::string(t[k]);
    if (!c.methods.empty() && c.methods.back().name >= m.name) return Corrupt(where + ": methods not in canonical order");
    c.methods.push_back(std::move(m));
  }
  Status v = Validate(c);
  if (!v.ok()) return Corrupt("contract: " + v.message());
  if (c.Canonical() != text) return Corrupt("contract text is not canonical");
  return c;
}

namespace {

Status Differences(const Contract& server, const Contract& client, bool strict) {
  std::vector<std::string> diffs;
  if (server.ns != client.ns || server.name != client.name) {
    diffs.push_back("contract " + server.ns + "/" + server.name + " on the server, " + client.ns + "/" + client.name +
                    " on the client");
  }
  if (strict && server.version != client.version) {
    diffs.push_back("version " + server.version + " on the server, " + client.version + " on the client");
  }
  std::map<std::string, std::pair<const MethodSpec*, const MethodSpec*>> all;
  for (const MethodSpec& m : server.methods) all[m.name].first = &m;
  for (const MethodSpec& m : client.methods) all[m.name].second = &m;
  for (const auto& [name, pair] : all) {
    const auto [s, c] = pair;
    if (s == nullptr) {
      diffs.push_back("method '" + name + "' only on the client");
    } else if (c == nullptr) {
      if (strict) diffs.push_back("method '" + name + "' only on the server");
    } else {
      if (s->access != c->access) {
        diffs.push_back("method '" + name + "' is " + AccessName(s->access) + " on the server, " + AccessName(c->access) +
                        " on the client");
      }
      if (s->params != c->params) {
        diffs.push_back("method '" + name + "' takes (" + Join(s->params, ", ") + ") on the server, (" +
                        Join(c->params, ", ") + ") on the client");
      }
      if (s->result != c->result || s->stream != c->stream) {
        diffs.push_back("method '" + name + "' returns " + ResultText(*s) + " on the server, " + ResultText(*c) +
                        " on the client");
      }
    }
  }
  if (diffs.empty()) return Status::Ok();
  std::string msg = "contract " + client.ns + "/" + client.name + " differs: ";
  const size_t shown = std::min<size_t>(diffs.size(), 8);
  for (size_t i = 0; i < shown; ++i) msg += (i > 0 ? "; " : "") + diffs[i];
  if (diffs.size() > shown) msg += "; and " + std::to_string(diffs.size() - shown) + " more";
  return Status(Code::kContractMismatch, msg);
}

}  // namespace

Status Compare(const Contract& server, const Contract& client) { return Differences(server, client, true); }

Status CheckCompatible(const Contract& server, const Contract& client) { return Differences(server, client, false); }

ContractBuilder::ContractBuilder(std::string ns, std::string name, std::string version) {
  c_.ns = std::move(ns);
  c_.name = std::move(name);
  c_.version = std::move(version);
}

ContractBuilder& ContractBuilder::Method(std::string name, Access access, std::vector<std::string> params,
                                         std::string result, bool stream) {
  c_.methods.push_back({std::move(name), access, std::move(params), std::move(result), stream});
  return *this;
}

Result<Contract> ContractBuilder::Build() const {
  Contract c = c_;
  WEFT_RETURN_IF_ERROR(Validate(c));
  std::sort(c.methods.begin(), c.methods.end(), [](const MethodSpec& a, const MethodSpec& b) { return a.name < b.name; });
  return c;
}

}  // namespace weft::rpc

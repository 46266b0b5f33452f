#include "weft/net/nats.h"

#include <nats/nats.h>

#include <charconv>
#include <vector>

namespace weft::net {

namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// "%41" and friends in the userinfo and query values.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

Result<NatsUrl> ParseNatsUrl(std::string_view url) {
  NatsUrl out;
  std::string_view rest;
  bool tls = false;
  if (StartsWith(url, "nats://")) {
    rest = url.substr(7);
  } else if (StartsWith(url, "tls://")) {
    rest = url.substr(6);
    tls = true;
  } else {
    return InvalidArgument("'" + std::string(url) + "' is not a nats:// url");
  }
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash + 1));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string_view::npos) {
      out.options.token = Unescape(cred);
    } else {
      out.options.user = Unescape(cred.substr(0, colon));
      out.options.password = Unescape(cred.substr(colon + 1));
    }
  }
  out.options.servers.clear();
  while (!authority.empty()) {
    const size_t comma = authority.find(',');
    std::string_view hp = authority.substr(0, comma);
    authority = comma == std::string_view::npos ? std::string_view() : authority.substr(comma + 1);
    std::string_view host = hp;
    int port = 4222;
    if (const size_t colon = hp.rfind(':'); colon != std::string_view::npos) {
      host = hp.substr(0, colon);
      const std::string_view p = hp.substr(colon + 1);
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
      if (ec != std::errc() || end != p.data() + p.size() || port <= 0 || port > 65535) {
        return InvalidArgument("'" + std::string(url) + "': port '" + std::string(p) + "' is not 1..65535");
      }
    }
    if (host.empty()) return InvalidArgument("'" + std::string(url) + "' names a server without a host");
    out.options.servers.push_back(std::string(tls ? "tls://" : "nats://") + std::string(host) + ":" + std::to_string(port));
  }
  if (out.options.servers.empty()) return InvalidArgument("'" + std::string(url) + "' names no server");
  out.options.tls = tls;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = kv.find('=');
    const std::string_view k = kv.substr(0, eq);
    const std::string v = eq == std::string_view::npos ? "" : Unescape(kv.substr(eq + 1));
    if (k == "creds") {
      out.options.creds_file = v;
    } else if (k == "nkey") {
      out.options.nkey = v;
    } else if (k == "seed") {
      out.options.nkey_seed_file = v;
    } else if (k == "tls") {
      out.options.tls = v == "1" || v == "true";
    } else if (k == "ca") {
      out.options.ca_file = v;
    } else if (k == "cert") {
      out.options.cert_file = v;
    } else if (k == "key") {
      out.options.key_file = v;
    } else {
      return InvalidArgument("'" + std::string(url) + "': unknown option '" + std::string(k) +
                             "' (creds, nkey, seed, tls, ca, cert, key)");
    }
  }
  return out;
}

Status NatsStatus(int nats_status, int js_error, std::string_view what) {
  const natsStatus s = static_cast<natsStatus>(nats_status);
  const char* last = nats_GetLastError(nullptr);
  std::string text = std::string(what) + ": " + natsStatus_GetText(s);
  if (js_error != 0) text += " (JetStream error " + std::to_string(js_error) + ")";
  if (last != nullptr && last[0] != '\0' && std::string_view(last) != natsStatus_GetText(s)) text += ": " + std::string(last);
  Code code = Code::kInternal;
  switch (s) {
    case NATS_OK:
      return Status::Ok();
    case NATS_TIMEOUT:
      code = Code::kTimeout;
      break;
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_RESPONDERS:
    case NATS_IO_ERROR:
      code = Code::kUnavailable;
      break;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_SSL_ERROR:  // the server's certificate is not trusted (or ours is refused)
      code = Code::kUnauthenticated;
      break;
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
      code = Code::kInvalidArgument;  // TLS on one side only: say tls=1 (or not) in the url
      break;
    case NATS_NOT_PERMITTED:
      code = Code::kPermissionDenied;
      break;
    case NATS_NOT_FOUND:
      code = Code::kNotFound;
      break;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_TIMEOUT:
      code = Code::kInvalidArgument;
      break;
    case NATS_MAX_PAYLOAD:
      code = Code::kTooLarge;
      break;
    case NATS_SLOW_CONSUMER:
    case NATS_INSUFFICIENT_BUFFER:
      code = Code::kResourceExhausted;
      break;
    default:
      break;
  }
  if (js_error == JSStreamNotFoundErr || js_error == JSConsumerNotFoundErr) code = Code::kNotFound;
  if (js_error == JSNotEnabledErr || js_error == JSClusterNoPeersErr) code = Code::kUnavailable;
  if (js_error == JSInsufficientResourcesErr) code = Code::kResourceExhausted;
  return Status(code, text);
}

NatsConnection::~NatsConnection() {
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

Result<std::unique_ptr<NatsConnection>> NatsConnection::Connect(const NatsOptions& o) {
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s != NATS_OK) return NatsStatus(s, 0, "nats options");
  struct Free {
    natsOptions* o;
    ~Free() { natsOptions_Destroy(o); }
  } free_opts{opts};
  std::vector<const char*> servers;
  for (const std::string& u : o.servers) servers.push_back(u.c_str());
  const std::string where = "nats at " + (o.servers.empty() ? std::string("?") : o.servers.front()) +
                            (o.servers.size() > 1 ? " (and " + std::to_string(o.servers.size() - 1) + " more)" : "");
  const char* failed = "";
  auto step = [&](natsStatus st, const char* what) {
    if (s == NATS_OK && st != NATS_OK) {
      s = st;
      failed = what;
    }
  };
  step(natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size())), "servers");
  step(natsOptions_SetNoRandomize(opts, true), "server order");
  step(natsOptions_SetTimeout(opts, o.connect_timeout_ms), "connect timeout");
  step(natsOptions_SetMaxReconnect(opts, o.max_reconnect), "reconnects");
  step(natsOptions_SetReconnectWait(opts, o.reconnect_wait_ms), "reconnect wait");
  step(natsOptions_SetReconnectBufSize(opts, o.reconnect_buffer_bytes), "reconnect buffer");
  step(natsOptions_SetAllowReconnect(opts, true), "reconnect");
  if (o.no_echo) step(natsOptions_SetNoEcho(opts, true), "no echo");
  if (o.send_asap) step(natsOptions_SetSendAsap(opts, true), "send asap");
  if (!o.user.empty() || !o.password.empty()) step(natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str()), "user");
  if (!o.token.empty()) step(natsOptions_SetToken(opts, o.token.c_str()), "token");
  if (!o.creds_file.empty()) step(natsOptions_SetUserCredentialsFromFiles(opts, o.creds_file.c_str(), nullptr), "credentials file");
  if (!o.nkey.empty() || !o.nkey_seed_file.empty()) {
    if (o.nkey.empty() || o.nkey_seed_file.empty()) {
      return InvalidArgument(where + ": an NKey needs both its public key (nkey=) and its seed file (seed=)");
    }
    step(natsOptions_SetNKeyFromSeed(opts, o.nkey.c_str(), o.nkey_seed_file.c_str()), "nkey seed file");
  }
  if (o.tls) step(natsOptions_SetSecure(opts, true), "tls");
  if (!o.ca_file.empty()) step(natsOptions_LoadCATrustedCertificates(opts, o.ca_file.c_str()), "tls ca file");
  if (!o.cert_file.empty() || !o.key_file.empty()) {
    step(natsOptions_LoadCertificatesChain(opts, o.cert_file.c_str(), o.key_file.c_str()), "tls certificate and key");
  }
  if (s != NATS_OK) {
    Status st = NatsStatus(s, 0, where + " " + failed);
    return Status(st.code() == Code::kInternal ? Code::kInvalidArgument : st.code(), st.message());
  }
  natsConnection* nc = nullptr;
  s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK) {
    // nats.c reports refused credentials in its last error ("Authorization Violation").
    const char* last = nats_GetLastError(nullptr);
    Status st = NatsStatus(s, 0, where);
    if (last != nullptr && (std::string_view(last).find("uthorization") != std::string_view::npos ||
                            std::string_view(last).find("uthentication") != std::string_view::npos)) {
      return Status(Code::kUnauthenticated, st.message());
    }
    return st;
  }
  return std::unique_ptr<NatsConnection>(new NatsConnection(nc, o));
}

}  // namespace weft::net

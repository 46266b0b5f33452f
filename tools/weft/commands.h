// Subcommands of the `weft` tool. Each returns the process exit code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weft/core/bytes.h"

namespace weft::cli {

int Inspect(const std::string& name);
// Prints a bus's options and counters (shm: or log: url); the exit code.
int DescribeBus(const std::string& url);
// `weft keygen --out PATH` (a new Ed25519 host key, its id in PATH.pub) or `--show PATH`.
// `--cert PATH`: the self-signed certificate of that key, PEM, on stdout.
int Keygen(const std::string& out, const std::string& show, const std::string& cert);
// `weft contract <args>`: runs `python3 -m weft.contract_tool <args>` ($WEFT_PYTHON, else
// /usr/bin/python3).
int Contract(const std::vector<std::string>& args);
// Printable bytes as they are; others (and backslash) as \xNN.
std::string Escape(ByteView b);
int Gc(bool dry_run);

struct LogArgs {
  std::string path;
  std::vector<std::string> records;  // append: each one a record; none: lines of stdin
  std::string fsync = "always";
  uint32_t flags = 0;
  uint64_t from = 0;  // tail
  int64_t last = -1;  // tail: start this many records before the end (-1: not given)
  bool follow = false;
  std::string format = "text";
  bool repair = false;  // verify: cut damage in the newest segment that valid records follow
};
int LogAppend(const LogArgs& a);
int LogTail(const LogArgs& a);
int LogStat(const LogArgs& a);
int LogVerify(const LogArgs& a);

struct BusArgs {
  std::string url;                  // shm:<name>
  std::vector<std::string> events;  // publish: each one an event; none: lines of stdin
  std::string key;                  // publish: the events' key (empty: none)
  std::string group;                // publish: a group to create (so that the events wait); tail: the group to read as
  int64_t last = -1;                // tail: print at most this many (-1: all there is)
  bool follow = false;
};
int BusPublish(const BusArgs& a);
int BusTail(const BusArgs& a);
int BusStat(const BusArgs& a);

struct GraphArgs {
  std::string what;   // list, catalog, latest, topology, audit, validate, lineage, tainted, repairs
  std::string graph;  // the served graph's name
  std::string route;  // latest, audit, lineage: owner/family/stream/variant/plane/layer
  std::string at;     // its address if not ipc://graph.<graph> (tcp://host:port, nats://...)
  bool dot = false;   // topology as DOT
  int64_t trace = 0, causality = 0, correlation = 0;  // lineage
  std::string taint;  // tainted: a taint's name (empty: any)
  int64_t timeout_ms = 5000;
};
int GraphCmd(const GraphArgs& a);

}  // namespace weft::cli

// weft: the command-line tool. `weft --help` lists the subcommands.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"

namespace {

// `weft bench` and `weft demo` run the weft-bench program (built with WEFT_BUILD_BENCH): beside
// this one when installed, in the build tree's bench/ folder, or $WEFT_BENCH.
int RunBenchProgram(int argc, char** argv) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("WEFT_BENCH")) candidates.push_back(env);
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    candidates.push_back(dir + "/weft-bench");
    candidates.push_back(dir + "/../../bench/weft-bench");  // build tree: tools/weft/weft
  }
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  for (const std::string& c : candidates) {
    if (::access(c.c_str(), X_OK) != 0) continue;
    args[0] = const_cast<char*>(c.c_str());
    ::execv(c.c_str(), args.data());
    std::fprintf(stderr, "weft %s: cannot run %s: %s\n", argv[1], c.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr,
               "weft %s: the weft-bench program is not installed (build with -DWEFT_BUILD_BENCH=ON, or set "
               "WEFT_BENCH to its path)\n",
               argv[1]);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "bench") == 0 || std::strcmp(argv[1], "demo") == 0)) {
    return RunBenchProgram(argc, argv);
  }
  CLI::App app{"weft: zero-copy data plane (shared-memory channels, tools and benchmarks)"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("weft ") + WEFT_VERSION + " (C ABI 1)");

  // Listed for --help; run by the weft-bench program (see RunBenchProgram).
  app.add_subcommand("demo", "Stream tensors and messages between two processes, verified, beside a Unix socket");
  app.add_subcommand("bench", "Run a benchmark suite side by side with its baselines (weft bench --help)");

  std::string name;
  auto* inspect = app.add_subcommand("inspect", "Print a segment's header, roles, cursors and counters, or a bus's state");
  inspect->add_option("name", name, "Segment name (without the weft. prefix), or a bus url (log:, redis://, nats://)")->required();

  bool dry_run = false;
  auto* gc = app.add_subcommand("gc", "Remove segments whose creator and users are gone");
  gc->add_flag("--dry-run,-n", dry_run, "Only list what would be removed");

  weft::cli::LogArgs largs;
  auto* logc = app.add_subcommand("log", "Append to, follow, describe or check a durable log");
  logc->require_subcommand(1);
  auto* lappend = logc->add_subcommand("append", "Append records (arguments, or lines of standard input)");
  lappend->add_option("path", largs.path, "Log directory (created if absent)")->required();
  lappend->add_option("records", largs.records, "Records to append, each one argument");
  lappend->add_option("--fsync", largs.fsync, "never, every_n, interval or always")->capture_default_str();
  lappend->add_option("--flags", largs.flags, "Flags stored with each record");
  auto* ltail = logc->add_subcommand("tail", "Print records: seq, time (UTC), payload");
  ltail->add_option("path", largs.path, "Log directory")->required();
  ltail->add_option("--from", largs.from, "First sequence number");
  ltail->add_option("-n,--last", largs.last, "Start this many records before the end");
  ltail->add_flag("-f,--follow", largs.follow, "Keep following new appends (Ctrl-C ends)");
  ltail->add_option("--format", largs.format,
                    "text (seq, ISO-8601 time, escaped payload), raw (payload bytes and a newline) or json (one "
                    "object per line: seq, time, timestamp_ns, flags, payload or payload_base64)");
  auto* lstat = logc->add_subcommand("stat", "Sequence numbers, durability, segments, writer");
  lstat->add_option("path", largs.path, "Log directory")->required();
  auto* lverify = logc->add_subcommand("verify", "Read every record and check it");
  lverify->add_option("path", largs.path, "Log directory")->required();
  lverify->add_flag("--repair", largs.repair,
                    "Cut the newest segment at damage that valid records follow (they are lost), and say what was cut");

  weft::cli::BusArgs bargs;
  auto* busc = app.add_subcommand("bus", "Publish to, read from, or describe an event bus (shm:, log:, redis://, nats://)");
  busc->require_subcommand(1);
  auto* bpublish = busc->add_subcommand("publish", "Ingest events (arguments, or lines of standard input)");
  bpublish->add_option("url", bargs.url, "shm:<name>, log:<dir>, redis://host:port/<name> or nats://host:port/<name> (created if absent)")->required();
  bpublish->add_option("events", bargs.events, "Events, each one argument");
  bpublish->add_option("--key", bargs.key, "The events' key (they then land on one shard)");
  bpublish->add_option("--group", bargs.group, "A group to create first, so that the events wait for it");
  auto* btail = busc->add_subcommand("tail", "Print events as a member of a group: shard, offset, key, data");
  btail->add_option("url", bargs.url, "The bus's url")->required();
  btail->add_option("--group", bargs.group, "The group to read as (created if absent)")->required();
  btail->add_option("-n,--count", bargs.last, "Print at most this many events");
  btail->add_flag("-f,--follow", bargs.follow, "Keep following new events (Ctrl-C ends)");
  auto* bstat = busc->add_subcommand("stat", "Options, counts, shards, producers, groups and members");
  bstat->add_option("url", bargs.url, "The bus's url")->required();

  weft::cli::GraphArgs gargs;
  auto* graphc = app.add_subcommand("graph", "Ask a served graph (weft::graph::ServeQueries) about its routes and topology");
  graphc->require_subcommand(1);
  graphc->add_option("--at", gargs.at, "The graph's address if not ipc://graph.<name>: tcp://host:port or nats://servers");
  graphc->add_option("--timeout-ms", gargs.timeout_ms, "How long to wait for the answer")->capture_default_str();
  graphc->add_subcommand("list", "The graphs served on this host");
  struct GraphQuery {
    const char* what;
    const char* help;
    bool route;
  };
  for (const GraphQuery& q : {GraphQuery{"catalog", "Its routes: name, schema, counts", false},
                              GraphQuery{"latest", "A route's latest value with its envelope", true},
                              GraphQuery{"topology", "Its routes and edges as JSON (or --dot)", false},
                              GraphQuery{"audit", "A route's producers, observers, edges, refusals", true},
                              GraphQuery{"validate", "What is wrong with it: schema mismatches, cycles, unread sinks", false},
                              GraphQuery{"lineage", "Retained values by route, trace, causality or correlation", false},
                              GraphQuery{"tainted", "The values a route retains that carry a taint", true},
                              GraphQuery{"repairs", "A route's repair notes: which value was repaired, and how", true}}) {
    auto* sub = graphc->add_subcommand(q.what, q.help);
    sub->add_option("graph", gargs.graph, "The graph's name")->required();
    if (q.route) sub->add_option("route", gargs.route, "owner/family/stream/variant/plane/layer")->required();
    if (std::string(q.what) == "topology") sub->add_flag("--dot", gargs.dot, "As Graphviz DOT");
    if (std::string(q.what) == "tainted") {
      sub->add_option("--taint", gargs.taint, "nondeterministic, sensitive, repaired or incoherent (default: any)");
    }
    if (std::string(q.what) == "lineage") {
      sub->add_option("--route", gargs.route, "Only this route's values");
      sub->add_option("--trace", gargs.trace, "Only this trace");
      sub->add_option("--causality", gargs.causality, "This value and its causes, back to the start");
      sub->add_option("--correlation", gargs.correlation, "Only this correlation id");
    }
  }

  std::string key_out, key_show, key_cert;
  auto* keygen = app.add_subcommand("keygen", "Make a host key (Ed25519) for connections across machines, or show a key's id");
  keygen->add_option("--out", key_out, "Write a new private key here (mode 0600, never over a file) and its id to <out>.pub");
  keygen->add_option("--show", key_show, "Print the id of this private key file");
  keygen->add_option("--cert", key_cert,
                     "Print the self-signed certificate Weft presents for this private key file (PEM), for other TLS stacks");
  keygen->require_option(1);

  // `weft contract ...`: portable contracts, by the Python package (it imports the classes).
  auto* contractc = app.add_subcommand("contract", "Portable contracts: export, validate, codegen typescript (run by Python)");
  contractc->allow_extras();
  contractc->prefix_command();

  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);

  if (app.got_subcommand("inspect")) {
    if (name.find(':') != std::string::npos) return weft::cli::DescribeBus(name);  // a bus url
    return weft::cli::Inspect(name);
  }
  if (app.got_subcommand("gc")) return weft::cli::Gc(dry_run);
  if (app.got_subcommand("keygen")) return weft::cli::Keygen(key_out, key_show, key_cert);
  if (app.got_subcommand("contract")) return weft::cli::Contract(contractc->remaining());
  if (app.got_subcommand("log")) {
    if (lappend->parsed()) return weft::cli::LogAppend(largs);
    if (ltail->parsed()) return weft::cli::LogTail(largs);
    if (lstat->parsed()) return weft::cli::LogStat(largs);
    if (lverify->parsed()) return weft::cli::LogVerify(largs);
  }
  if (app.got_subcommand("bus")) {
    if (bpublish->parsed()) return weft::cli::BusPublish(bargs);
    if (btail->parsed()) return weft::cli::BusTail(bargs);
    if (bstat->parsed()) return weft::cli::BusStat(bargs);
  }
  if (app.got_subcommand("graph")) {
    gargs.what = graphc->get_subcommands().front()->get_name();
    return weft::cli::GraphCmd(gargs);
  }
  if (app.got_subcommand("version")) {
    std::printf("weft %s (C ABI 1)\n", WEFT_VERSION);
    return 0;
  }
  // No subcommand: say what there is, and succeed (asking is not an error).
  std::printf("%s", app.help().c_str());
  return 0;
}

// weft: the command-line tool. `weft --help` lists the subcommands.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.h"
#include "suites.h"

int main(int argc, char** argv) {
  CLI::App app{"weft: zero-copy data plane (shared-memory channels, tools and benchmarks)"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("weft ") + WEFT_VERSION + " (C ABI 1)");

  bool demo_quick = false;
  auto* demo = app.add_subcommand("demo", "Stream tensors and messages between two processes, verified, beside a Unix socket");
  demo->add_flag("--quick", demo_quick, "A smaller run");

  weft::bench::Options bopt;
  std::string suite;
  auto* bench = app.add_subcommand("bench", "Run a benchmark suite side by side with its baselines");
  bench->add_option("suite", suite, "Suite: channel, pool, topic, log, rpc, all")->required();
  bench->add_flag("--quick", bopt.quick, "Finish in under a minute");
  bench->add_flag("--json", bopt.json, "One JSON object per line on stdout");
  bench->add_option("--out", bopt.out, "Also append JSON lines to this file");
  bench->add_option("--case", bopt.only, "Run only this case");

  std::string name;
  auto* inspect = app.add_subcommand("inspect", "Print a segment's header, roles, cursors and counters");
  inspect->add_option("name", name, "Segment name (without the weft. prefix)")->required();

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
  auto* ltail = logc->add_subcommand("tail", "Print records: seq, timestamp (ns), payload");
  ltail->add_option("path", largs.path, "Log directory")->required();
  ltail->add_option("--from", largs.from, "First sequence number");
  ltail->add_option("-n,--last", largs.last, "Start this many records before the end");
  ltail->add_flag("-f,--follow", largs.follow, "Keep following new appends (Ctrl-C ends)");
  ltail->add_option("--format", largs.format, "text (escaped) or raw (payload bytes and a newline)");
  auto* lstat = logc->add_subcommand("stat", "Sequence numbers, durability, segments, writer");
  lstat->add_option("path", largs.path, "Log directory")->required();
  auto* lverify = logc->add_subcommand("verify", "Read every record and check it");
  lverify->add_option("path", largs.path, "Log directory")->required();
  lverify->add_flag("--repair", largs.repair,
                    "Cut the newest segment at damage that valid records follow (they are lost), and say what was cut");

  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);

  if (app.got_subcommand("demo")) return weft::cli::Demo(demo_quick);
  if (app.got_subcommand("bench")) {
    bool ran = false;
    if (suite == "channel" || suite == "all") {
      weft::bench::RunChannelSuite(bopt);
      ran = true;
    }
    if (suite == "pool" || suite == "all") {
      weft::bench::RunPoolSuite(bopt);
      ran = true;
    }
    if (suite == "log" || suite == "all") {
      weft::bench::RunLogSuite(bopt);
      ran = true;
    }
    if (suite == "topic" || suite == "all") {
      weft::bench::RunTopicSuite(bopt);
      ran = true;
    }
    if (suite == "rpc" || suite == "all") {
      weft::bench::RunRpcSuite(bopt);
      ran = true;
    }
    if (ran) return 0;
    std::fprintf(stderr, "weft bench: unknown suite '%s' (suites: channel, pool, topic, log, rpc, all)\n", suite.c_str());
    return 2;
  }
  if (app.got_subcommand("inspect")) return weft::cli::Inspect(name);
  if (app.got_subcommand("gc")) return weft::cli::Gc(dry_run);
  if (app.got_subcommand("log")) {
    if (lappend->parsed()) return weft::cli::LogAppend(largs);
    if (ltail->parsed()) return weft::cli::LogTail(largs);
    if (lstat->parsed()) return weft::cli::LogStat(largs);
    if (lverify->parsed()) return weft::cli::LogVerify(largs);
  }
  if (app.got_subcommand("version")) {
    std::printf("weft %s (C ABI 1)\n", WEFT_VERSION);
    return 0;
  }
  // No subcommand: say what there is, and succeed (asking is not an error).
  std::printf("%s", app.help().c_str());
  return 0;
}

// weft-bench: the benchmark suites and the demo, a program of their own so that the `weft` tool
// links only Weft (the baselines bring gRPC, ZeroMQ, SQLite and hiredis). `weft bench ...` and
// `weft demo ...` run this program with the same arguments.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "suites.h"

int main(int argc, char** argv) {
  CLI::App app{"weft-bench: Weft's benchmark suites side by side with their baselines, and the demo"};
  app.require_subcommand(1);

  bool demo_quick = false;
  auto* demo = app.add_subcommand("demo", "Stream tensors and messages between two processes, verified, beside a Unix socket");
  demo->add_flag("--quick", demo_quick, "A smaller run");

  weft::bench::Options bopt;
  std::string suite;
  auto* bench = app.add_subcommand("bench", "Run a benchmark suite side by side with its baselines");
  bench->add_option("suite", suite, "Suite: channel, pool, topic, log, rpc, bus, graph, all")->required();
  bench->add_flag("--quick", bopt.quick, "Finish in under a minute");
  bench->add_flag("--json", bopt.json, "One JSON object per line on stdout");
  bench->add_option("--out", bopt.out, "Also append JSON lines to this file");
  bench->add_option("--case", bopt.only, "Run only this case");

  CLI11_PARSE(app, argc, argv);

  if (demo->parsed()) return weft::bench::Demo(demo_quick);
  struct Suite {
    const char* name;
    void (*run)(const weft::bench::Options&);
  };
  static const Suite kSuites[] = {{"channel", weft::bench::RunChannelSuite}, {"pool", weft::bench::RunPoolSuite},
                                  {"log", weft::bench::RunLogSuite},         {"topic", weft::bench::RunTopicSuite},
                                  {"rpc", weft::bench::RunRpcSuite},         {"bus", weft::bench::RunBusSuite},
                                  {"graph", weft::bench::RunGraphSuite}};
  bool ran = false;
  for (const Suite& s : kSuites) {
    if (suite == s.name || suite == "all") {
      s.run(bopt);
      ran = true;
    }
  }
  if (ran) return 0;
  std::fprintf(stderr, "weft bench: unknown suite '%s' (suites: channel, pool, topic, log, rpc, bus, graph, all)\n", suite.c_str());
  return 2;
}

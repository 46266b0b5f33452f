// The smallest graph in C++: a typed route, values published, the latest read back, observed as
// they come, with their envelopes.
#include "check.h"

#include <cstdio>
#include <vector>

#include "weft/graph/graph.h"

using namespace weft;

int main() {
  auto g = graph::Graph::Create();
  auto temp = g->Declare({.owner = "sensor", .family = "env", .stream = "temperature"},
                         graph::Schema::Pod<double>("celsius.v1"))
                  .value();
  CHECK(temp.Latest() == nullptr);
  std::vector<double> seen;
  auto sub = temp.Observe([&](const graph::SampleRef& s) { seen.push_back(s->as<double>()); });
  CHECK(temp.Publish(21.5).ok());
  CHECK(temp.Publish(22.0).ok());
  auto latest = temp.Latest();
  CHECK(latest->as<double>() == 22.0 && latest->envelope().seq == 2);
  CHECK((seen == std::vector<double>{21.5, 22.0}));
  std::printf("%s: latest %.1f C (seq %llu)\n", temp.name().ToString().c_str(), latest->as<double>(),
              static_cast<unsigned long long>(latest->envelope().seq));
  std::printf("simple latest example ok\n");
  return 0;
}

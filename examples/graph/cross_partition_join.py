"""A join across partitions: orders joined with each customer's tier, spread over 4 partitions.
Before wiring it, the repartition plan says where each customer's key goes, the load of every
partition, how skewed it is, and which hot keys to split. Each partition then runs its own
lookup join on its own routes, and the measured load is the planned one."""

import collections
import dataclasses
import random

from weft import graph

PARTITIONS = 4


@dataclasses.dataclass
class Order:
    customer: int
    amount: float


@dataclasses.dataclass
class Customer:
    customer: int
    tier: str


@dataclasses.dataclass
class Priced:
    customer: int
    amount: float
    tier: str


def main():
    rng = random.Random(3)
    # Customer 7 is a marketplace: a third of all orders.
    orders = [Order(7 if rng.random() < 0.33 else rng.randrange(100), float(rng.randrange(1, 500))) for _ in range(3000)]
    counts = collections.Counter(o.customer for o in orders)
    plan = graph.plan_repartition(counts, PARTITIONS)
    print(plan["text"])
    assert plan["skew"] > 1.2, plan["skew"]  # the hot customer makes one partition heavy
    assert plan["hot"][0]["key"] == 7 and plan["hot"][0]["split"] >= 2

    g = graph.Graph()
    part = lambda name, schema, p: graph.route("shop", name, f"p{p}", schema)  # noqa: E731
    out = graph.route("shop", "priced", "all", Priced)
    for p in range(PARTITIONS):
        g.lookup_join(part("orders", Order, p), part("customers", Customer, p), key_left=lambda o: o.customer,
                      key_right=lambda c: c.customer, combine=lambda o, c: Priced(o.customer, o.amount, c.tier),
                      output=out)
    where = plan["partition_of"]
    for c in range(100):  # the customer table, each row to its key's partition
        g.publish(part("customers", Customer, where.get(c, 0)), Customer(c, "gold" if c % 10 == 0 else "basic"))
    priced = []
    g.observe(out, priced.append)
    load = [0] * PARTITIONS
    for o in orders:
        p = where[o.customer]
        load[p] += 1
        g.publish(part("orders", Order, p), o)
    assert load == plan["load"], (load, plan["load"])
    assert len(priced) == len(orders) and all(x.tier == ("gold" if x.customer % 10 == 0 else "basic") for x in priced)
    print(f"{len(priced)} orders joined across {PARTITIONS} partitions; load {load}, skew {plan['skew']:.2f}")
    print("cross-partition join example ok")


if __name__ == "__main__":
    main()

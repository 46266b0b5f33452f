// The TypeScript client's failure policies (tests/python/test_typescript.py): three clients of
// the Codecs resource, one retrying reads, one without retry (the control), one with a circuit
// breaker. The test kills the server and starts another between the steps, which this program
// waits for on standard input, and prints what each call did as JSON.
//   node resilience_main.js <registry> <key> <cert> <trusted server key id>
import * as readline from "readline";
import { CodecsClient, WeftError } from "./client";

function outcome(p: Promise<unknown>): Promise<unknown> {
  return p.then((v) => ["ok", v], (e) => (e instanceof WeftError ? [e.code, e.message] : ["?", String(e)]));
}

async function main(): Promise<void> {
  const [registry, key, cert, trust] = process.argv.slice(2);
  const base = { name: "codecs", registry, key, cert, trust: [trust], via: "direct" as const, timeoutMs: 10_000 };
  const retrying = await CodecsClient.connect({ ...base, retry: { attempts: 4, backoffMs: 50 } });
  const plain = await CodecsClient.connect(base);
  const guarded = await CodecsClient.connect({ ...base, breaker: { failures: 2, openMs: 60_000 } });
  const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const out: Record<string, unknown> = {};
  out.before = [await outcome(retrying.greet("a")), await outcome(plain.greet("b")), await outcome(guarded.greet("c"))];
  console.log("ready");
  await lines.next();  // the server was killed and another one started
  out.retried = await outcome(retrying.greet("again"));  // the broken connection, then the new server
  out.plain_first = await outcome(plain.greet("again"));  // control: the broken connection is the answer
  out.plain_second = await outcome(plain.greet("again"));  // and the next call dials the new server
  console.log("ready");
  await lines.next();  // no server now
  out.write_once = await outcome(retrying.reset());  // a write is never tried again
  out.guarded = [await outcome(guarded.greet("x")), await outcome(guarded.greet("y"))];
  out.open = await outcome(guarded.greet("z"));  // refused without dialing
  // Control: without a breaker the third call dials again.
  out.unguarded = [await outcome(plain.greet("x")), await outcome(plain.greet("y")), await outcome(plain.greet("z"))];
  for (const c of [retrying, plain, guarded]) await c.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});

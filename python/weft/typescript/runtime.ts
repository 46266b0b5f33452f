// ---- Weft TypeScript runtime: the rpc wire (docs/formats/rpc-wire.md) over TLS 1.3, over a
// tunnel through NATS (docs/formats/nats-tunnel.md) or TCP, found through a NATS registry
// (docs/formats/rpc-registry.md). Needs the npm package `nats` (2.x) and Node 18 or later.
import { connect as natsConnect, createInbox, NatsConnection, Subscription } from "nats";
import * as crypto from "node:crypto";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";

export type TypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

/** An `ndarray` value: NumPy's dtype string, the shape, and the C-order data as a typed array. */
export interface NDArray {
  dtype: string;
  shape: number[];
  data: TypedArray;
}

export interface ContractDoc {
  weft_contract: number;
  namespace: string;
  name: string;
  version: string;
  hash: string;
  canonical: string;
  methods: { name: string; access: string; params: { name: string; codec: string }[]; result: string; stream: boolean }[];
}

export interface ConnectOptions {
  name: string;                 // the resource
  registry?: string;            // "nats://host:port[,host:port][/bucket]": find it there
  address?: string;             // or "tcp://host:port" directly
  key?: string;                 // this side's private key file (weft keygen)
  cert?: string;                // its certificate (weft keygen --cert KEY > FILE)
  trust?: string[];             // server key ids accepted ("ed25519:<hex>")
  plaintext?: boolean;          // no TLS (both sides must say so)
  via?: "auto" | "direct" | "relay";  // registry routes: direct addresses first (auto), or only one kind
  timeoutMs?: number;           // connecting, and each call by default (30 s)
  retry?: number | RetryOptions;  // tries per call of a read method (a number: attempts; none: 1)
  breaker?: BreakerOptions;     // fail at once after failures in a row (none: no breaker)
}

/** Calls of read methods are tried again after Unavailable, PeerDead, Closed, ResourceExhausted
 *  or Aborted, while their deadline allows; writes never are. */
export interface RetryOptions {
  attempts: number;             // tries per call (1: no retry)
  backoffMs?: number;           // the wait before the second try (20), doubled before each next one,
  maxBackoffMs?: number;        //   at most this (1000); each wait drawn at random below it
}

/** After `failures` calls in a row failed for the connection's or server's sake (the kinds
 *  retried, or Timeout), calls fail at once with Unavailable for `openMs` (5000); then one trial
 *  call goes through: its success closes the circuit, its failure opens it again. */
export interface BreakerOptions {
  failures: number;
  openMs?: number;
}

const RETRYABLE = ["Unavailable", "PeerDead", "Closed", "ResourceExhausted", "Aborted"];

export interface CallOptions {
  timeoutMs?: number;
}

/** An error a call or connection failed with: `code` is Weft's error name (e.g. "PermissionDenied"). */
export class WeftError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "WeftError";
  }
}

let errorNames: Record<number, string> = {};
function setErrorNames(names: Record<number, string>): void {
  errorNames = names;
}
function errorOf(code: number, message: string): WeftError {
  return new WeftError(errorNames[code] ?? `code ${code}`, message);
}

// ---- codecs ----------------------------------------------------------------------------------

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

const DTYPES: Record<string, [any, number]> = {
  "|i1": [Int8Array, 1], "|u1": [Uint8Array, 1], "|b1": [Uint8Array, 1],
  "<i2": [Int16Array, 2], "<u2": [Uint16Array, 2], "<i4": [Int32Array, 4], "<u4": [Uint32Array, 4],
  "<i8": [BigInt64Array, 8], "<u8": [BigUint64Array, 8], "<f4": [Float32Array, 4], "<f8": [Float64Array, 8],
};

function dtypeOf(a: TypedArray): string {
  if (a instanceof Int8Array) return "|i1";
  if (a instanceof Uint8Array) return "|u1";
  if (a instanceof Int16Array) return "<i2";
  if (a instanceof Uint16Array) return "<u2";
  if (a instanceof Int32Array) return "<i4";
  if (a instanceof Uint32Array) return "<u4";
  if (a instanceof BigInt64Array) return "<i8";
  if (a instanceof BigUint64Array) return "<u8";
  if (a instanceof Float32Array) return "<f4";
  return "<f8";
}

function encodeNdarray(v: NDArray | TypedArray): Uint8Array {
  const arr: NDArray = ArrayBuffer.isView(v) ? { dtype: dtypeOf(v as TypedArray), shape: [(v as TypedArray).length], data: v as TypedArray } : (v as NDArray);
  const dtype = arr.dtype ?? dtypeOf(arr.data);
  const fixed = 4 + 4 + 1 + dtype.length + 1;
  const dims = Math.ceil(fixed / 8) * 8 + 8 * arr.shape.length;
  const headerSize = Math.ceil(dims / 64) * 64;
  const data = new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength);
  const out = new Uint8Array(headerSize + data.length);
  const dv = new DataView(out.buffer);
  out.set(utf8.encode("WNDA"), 0);
  dv.setUint32(4, headerSize, true);
  out[8] = dtype.length;
  out.set(utf8.encode(dtype), 9);
  out[9 + dtype.length] = arr.shape.length;
  const at = Math.ceil(fixed / 8) * 8;
  arr.shape.forEach((d, i) => dv.setBigUint64(at + 8 * i, BigInt(d), true));
  out.set(data, headerSize);
  return out;
}

function decodeNdarray(b: Uint8Array): NDArray {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 16 || fromUtf8.decode(b.subarray(0, 4)) !== "WNDA") throw new WeftError("Corrupt", "not an ndarray value");
  const headerSize = dv.getUint32(4, true);
  const n = b[8];
  const dtype = fromUtf8.decode(b.subarray(9, 9 + n));
  const ndim = b[9 + n];
  const at = Math.ceil((4 + 4 + 1 + n + 1) / 8) * 8;
  if (headerSize % 64 !== 0 || headerSize > b.length || at + 8 * ndim > headerSize) throw new WeftError("Corrupt", "ndarray header");
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(Number(dv.getBigUint64(at + 8 * i, true)));
  const kind = DTYPES[dtype];
  if (kind === undefined) throw new WeftError("InvalidArgument", `ndarray dtype ${dtype} has no typed array here`);
  const bytes = new Uint8Array(b.subarray(headerSize));  // a copy of its own: aligned for the typed array
  const count = shape.reduce((x, y) => x * y, 1);
  if (bytes.length !== count * kind[1]) throw new WeftError("Corrupt", "ndarray data does not fill its shape");
  return { dtype, shape, data: new kind[0](bytes.buffer, 0, count) };
}

function encode(codec: string, v: any): Uint8Array {
  switch (codec) {
    case "none":
      return new Uint8Array(0);
    case "bool":
      return Uint8Array.of(v ? 1 : 0);
    case "i64": {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigInt64(0, BigInt(v), true);
      return out;
    }
    case "f64": {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setFloat64(0, Number(v), true);
      return out;
    }
    case "str":
      if (typeof v !== "string") throw new WeftError("InvalidArgument", "a str parameter takes a string");
      return utf8.encode(v);
    case "bytes":
      return v instanceof Uint8Array ? v : new Uint8Array(v);
    case "ndarray":
      return encodeNdarray(v);
    case "pickle":
      throw new WeftError("InvalidArgument", "pickle values are for Python peers only");
    default:  // a user codec: its own bytes
      return v as Uint8Array;
  }
}

function decode(codec: string, b: Uint8Array): any {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const need = (n: number) => {
    if (b.length !== n) throw new WeftError("Corrupt", `a ${codec} value of ${b.length} bytes`);
  };
  switch (codec) {
    case "none":
      return null;
    case "bool":
      need(1);
      return b[0] !== 0;
    case "i64":
      need(8);
      return dv.getBigInt64(0, true);
    case "f64":
      need(8);
      return dv.getFloat64(0, true);
    case "str":
      return fromUtf8.decode(b);
    case "ndarray":
      return decodeNdarray(b);
    default:
      return b;
  }
}

// ---- a tunnel through NATS, as a Duplex stream -----------------------------------------------

const WINDOW = 8 << 20;
const CHUNK = 256 << 10;

class NatsTunnel extends Duplex {
  private out = "";
  private sub?: Subscription;
  private sent = 0;
  private acked = 0;
  private received = 0;
  private ackedOut = 0;
  private heard = Date.now();
  private lastSent = Date.now();
  private waiting: (() => void) | null = null;
  private timer?: NodeJS.Timeout;
  private closedOut = false;

  private constructor(private readonly nc: NatsConnection) {
    super();
  }

  static async open(nc: NatsConnection, subject: string, timeoutMs: number): Promise<NatsTunnel> {
    const t = new NatsTunnel(nc);
    const inbox = createInbox();
    t.sub = nc.subscribe(inbox, { callback: (err, m) => (err ? t.destroy(err) : t.onMessage(m.data)) });
    let reply;
    try {
      reply = await nc.request(subject, utf8.encode("weft-tunnel 1 " + inbox), { timeout: timeoutMs });
    } catch (e: any) {
      t.sub.unsubscribe();
      const code = String(e?.code ?? "") === "503" ? "Unavailable" : "Timeout";
      throw new WeftError(code, `tunnel request on ${subject}: ${e?.message ?? e}`);
    }
    const text = new TextDecoder().decode(reply.data);
    if (!text.startsWith("ok ")) {
      t.sub.unsubscribe();
      throw new WeftError("Unavailable", `tunnel on ${subject}: ${text.slice(0, 200)}`);
    }
    t.out = text.slice(3);
    t.timer = setInterval(() => t.tick(), 500);
    return t;
  }

  private publish(kind: string, value: number, data?: Uint8Array): void {
    const m = new Uint8Array(9 + (data?.length ?? 0));
    m[0] = kind.charCodeAt(0);
    new DataView(m.buffer).setBigUint64(1, BigInt(value), true);
    if (data) m.set(data, 9);
    this.nc.publish(this.out, m);
    this.lastSent = Date.now();
  }

  private onMessage(m: Uint8Array): void {
    this.heard = Date.now();
    if (m.length < 9) return;
    const v = Number(new DataView(m.buffer, m.byteOffset, m.byteLength).getBigUint64(1, true));
    switch (String.fromCharCode(m[0])) {
      case "D":
        if (v !== this.received) {  // a lost or forged message: the stream cannot go on
          this.destroy(new WeftError("Unavailable", "tunnel: a message was lost"));
          return;
        }
        this.received += m.length - 9;
        this.push(m.subarray(9));
        if (this.received - this.ackedOut >= WINDOW / 4) {
          this.ackedOut = this.received;
          this.publish("A", this.received);
        }
        return;
      case "A":
        if (v <= this.sent && v > this.acked) this.acked = v;
        if (this.waiting && this.sent - this.acked < WINDOW) {
          const w = this.waiting;
          this.waiting = null;
          w();
        }
        return;
      case "C":
        this.push(null);
        return;
      default:
        return;
    }
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.heard > 10_000) {
      this.destroy(new WeftError("Unavailable", "tunnel: the peer went silent"));
      return;
    }
    if (now - this.lastSent >= 2_000) this.publish("P", 0);
  }

  _read(): void {}

  _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    let at = 0;
    const step = () => {
      while (at < chunk.length) {
        if (this.sent - this.acked >= WINDOW) {
          this.waiting = step;
          return;
        }
        const n = Math.min(CHUNK, chunk.length - at, WINDOW - (this.sent - this.acked));
        this.publish("D", this.sent, chunk.subarray(at, at + n));
        this.sent += n;
        at += n;
      }
      cb();
    };
    step();
  }

  _final(cb: (e?: Error | null) => void): void {
    if (!this.closedOut) this.publish("C", 0);
    this.closedOut = true;
    cb();
  }

  _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.timer) clearInterval(this.timer);
    if (!this.closedOut && this.out) {
      this.closedOut = true;
      try {
        this.publish("C", 0);
      } catch {
        // the NATS connection is closed already
      }
    }
    this.sub?.unsubscribe();
    cb(err);
  }
}

// ---- the registry ----------------------------------------------------------------------------

interface Route {
  name: string;
  contract: string;
  instance: string;
  identity: string;
  addresses: string[];
  relay: string;
}

function nameToken(name: string): string {
  let out = "";
  for (const b of utf8.encode(name)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_-]/.test(c) ? c : "=" + b.toString(16).padStart(2, "0");
  }
  return out;
}

function parseRoute(text: string): Route | null {
  const lines = text.split("\n");
  if (lines.pop() !== "" || lines[0] !== "weft-route 1") return null;
  let i = 1;
  const field = (key: string): string | null => (lines[i]?.startsWith(key + " ") ? lines[i++].slice(key.length + 1) : null);
  const name = field("name"), contract = field("contract"), instance = field("instance"), identity = field("identity");
  if (name === null || contract === null || instance === null || identity === null) return null;
  const addresses: string[] = [];
  for (let a = field("address"); a !== null; a = field("address")) addresses.push(a);
  const relay = field("relay");
  if (relay === null || i !== lines.length) return null;
  return { name, contract, instance, identity: identity === "-" ? "" : identity, addresses, relay: relay === "-" ? "" : relay };
}

function parseNatsUrl(url: string): { servers: string[]; bucket: string } {
  const m = /^(nats|tls):\/\/([^/]*)(?:\/(.*))?$/.exec(url);
  if (!m) throw new WeftError("InvalidArgument", `${url} is not a nats:// url`);
  return { servers: m[2].split(",").map((s) => `${m[1]}://${s}`), bucket: m[3] || "weft_rpc" };
}

// ---- the rpc wire ----------------------------------------------------------------------------

const MAGIC = 0x43505257;
const INLINE_MAX = 64 << 10;
const DATA_MAX = 1 << 20;
enum Frame { Call = 1, Reply = 2, Error = 3, Cancel = 4, Chunk = 5, End = 6, Credit = 7, Data = 8 }

interface ReadFrame {
  type: number;
  call: bigint;
  payload: Buffer;
  values: Uint8Array[];  // its values, the following ones filled from data frames
}

/** Frames in and out over a byte stream (a TLS socket, a tunnel, a TCP socket). */
class Wire {
  private buf: Uint8Array = new Uint8Array(0);
  private wakeup: (() => void) | null = null;
  private failed: Error | null = null;

  constructor(private readonly s: Duplex) {
    s.on("data", (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.wake();
    });
    const end = (e?: Error) => {
      this.failed ??= e instanceof WeftError ? e : new WeftError("Unavailable", `connection lost${e ? ": " + e.message : ""}`);
      this.wake();
    };
    s.on("end", () => end());
    s.on("close", () => end());
    s.on("error", (e) => end(e));
  }

  private wake(): void {
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }

  async take(n: number, deadline: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.failed) throw this.failed;
      const left = deadline - Date.now();
      if (left <= 0) throw new WeftError("Timeout", "no answer before the deadline");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wakeup = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const out = Buffer.from(this.buf.buffer, this.buf.byteOffset, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  write(parts: Uint8Array[]): void {
    for (const p of parts) this.s.write(p);
  }

  async handshake(text: string, deadline: number): Promise<string> {
    const body = utf8.encode(text);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(body.length, 4);
    this.write([head, body]);
    const h = await this.take(8, deadline);
    if (h.readUInt32LE(0) !== MAGIC) throw new WeftError("Corrupt", "the server's handshake is not Weft's");
    const n = h.readUInt32LE(4);
    if (n > 1 << 20) throw new WeftError("TooLarge", "handshake");
    return (await this.take(n, deadline)).toString("utf-8");
  }

  send(type: Frame, resource: number, method: number, call: bigint, deadlineNs: bigint, values: Uint8Array[]): void {
    // The value list: a count, then each value's 16-byte descriptor followed by its bytes when
    // inline (padded to 8); a value above 64 KiB follows the frame in data frames.
    const count = Buffer.alloc(8);
    count.writeUInt32LE(values.length, 0);
    const list: Uint8Array[] = [count];
    for (const v of values) {
      const d = Buffer.alloc(16);
      const follows = v.length > INLINE_MAX;
      d[0] = follows ? 2 : 0;
      d.writeBigUInt64LE(BigInt(v.length), 8);
      list.push(d);
      if (follows) continue;
      list.push(v);
      const pad = (8 - (v.length % 8)) % 8;
      if (pad) list.push(new Uint8Array(pad));
    }
    const payload = list.reduce((n, p) => n + p.length, 0);
    this.write([this.header(type, resource, method, call, deadlineNs, payload), ...list]);
    for (const v of values) {
      if (v.length <= INLINE_MAX) continue;
      for (let at = 0; at < v.length; at += DATA_MAX) {
        const piece = v.subarray(at, Math.min(v.length, at + DATA_MAX));
        this.write([this.header(Frame.Data, resource, method, call, 0n, piece.length), piece]);
      }
    }
  }

  /** A cancel or credit frame: u32 count, u32 reserved. */
  control(type: Frame, resource: number, method: number, call: bigint, count: number): void {
    const p = Buffer.alloc(8);
    p.writeUInt32LE(count, 0);
    this.write([this.header(type, resource, method, call, 0n, 8), p]);
  }

  private header(type: number, resource: number, method: number, call: bigint, deadlineNs: bigint, payload: number): Buffer {
    const h = Buffer.alloc(40);
    h.writeUInt32LE(MAGIC, 0);
    h[4] = 2;
    h[5] = type;
    h.writeUInt32LE(resource, 8);
    h.writeUInt32LE(method, 12);
    h.writeBigUInt64LE(call, 16);
    h.writeBigInt64LE(deadlineNs, 24);
    h.writeUInt32LE(payload, 32);
    return h;
  }

  async read(deadline: number): Promise<ReadFrame> {
    const h = await this.take(40, deadline);
    if (h.readUInt32LE(0) !== MAGIC || h[4] !== 2) throw new WeftError("Corrupt", "not a Weft frame");
    const type = h[5];
    const call = h.readBigUInt64LE(16);
    const n = h.readUInt32LE(32);
    if (n > 8 << 20) throw new WeftError("TooLarge", "frame payload");
    const payload = Buffer.from(await this.take(n, deadline));
    const values: Uint8Array[] = [];
    if (type === Frame.Reply || type === Frame.Chunk || type === Frame.Call) {
      const count = payload.readUInt32LE(0);
      let at = 8;
      const pending: [number, number][] = [];
      for (let i = 0; i < count; i++) {
        if (at + 16 > payload.length) throw new WeftError("Corrupt", "a value list shorter than its count");
        const placement = payload[at];
        const len = Number(payload.readBigUInt64LE(at + 8));
        at += 16;
        if (placement === 0) {
          if (at + len > payload.length) throw new WeftError("Corrupt", "a value runs past its frame");
          values.push(payload.subarray(at, at + len));
          at += Math.ceil(len / 8) * 8;
        } else if (placement === 2) {
          values.push(new Uint8Array(len));
          pending.push([i, len]);
        } else {
          throw new WeftError("Corrupt", "a pool block over a stream");
        }
      }
      for (const [i, len] of pending) {  // the following values' bytes, in data frames
        let got = 0;
        while (got < len) {
          const d = await this.take(40, deadline);
          const m = d.readUInt32LE(32);
          if (d[5] !== Frame.Data || m === 0 || m > len - got) throw new WeftError("Corrupt", "a data frame out of place");
          values[i].set(await this.take(m, deadline), got);
          got += m;
        }
      }
    }
    return { type, call, payload, values };
  }
}

// ---- the client ------------------------------------------------------------------------------

function methodIndex(canonical: string): Map<string, number> {
  const names = canonical.split("\n").filter((l) => l.startsWith("method ")).map((l) => l.split(" ")[1]);
  return new Map(names.map((n, i) => [n, i]));
}

function keyIdOf(cert: crypto.X509Certificate): string {
  const der = cert.publicKey.export({ type: "spki", format: "der" });
  return "ed25519:" + Buffer.from(der.subarray(der.length - 32)).toString("hex");
}

export class RpcClient {
  private nc: NatsConnection | null = null;
  private wire: Wire | null = null;
  private socket: Duplex | null = null;
  private resource = 0;
  private methods = new Map<string, number>();
  private nextCall = 1n;
  private busy: Promise<unknown> = Promise.resolve();
  where = "";

  private constructor(private readonly contract: ContractDoc, private readonly options: ConnectOptions) {}

  static async connect(contract: ContractDoc, options: ConnectOptions): Promise<RpcClient> {
    const c = new RpcClient(contract, options);
    try {
      await c.dial();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  private timeout(o?: CallOptions): number {
    return o?.timeoutMs ?? this.options.timeoutMs ?? 30_000;
  }

  private async dial(): Promise<void> {
    const o = this.options;
    const deadline = Date.now() + this.timeout();
    const ways: { how: string; open: () => Promise<Duplex> }[] = [];
    if (o.address) {
      ways.push({ how: o.address, open: () => tcpOpen(o.address!, deadline) });
    } else if (o.registry) {
      const { servers, bucket } = parseNatsUrl(o.registry);
      this.nc ??= await natsConnect({ servers, timeout: Math.max(1, deadline - Date.now()) });
      const routes = await resolve(this.nc, bucket, o.name, this.contract, o.registry);
      if (o.via !== "relay") for (const r of routes) for (const a of r.addresses) ways.push({ how: a, open: () => tcpOpen(a, deadline) });
      if (o.via !== "direct") {
        for (const r of routes) {
          if (r.relay) ways.push({ how: "nats relay " + r.relay, open: () => NatsTunnel.open(this.nc!, r.relay, Math.max(1, deadline - Date.now())) });
        }
      }
    } else {
      throw new WeftError("InvalidArgument", "connect: give a registry or an address");
    }
    const tried: string[] = [];
    for (const w of ways) {
      try {
        const raw = await w.open();
        const s = o.plaintext ? raw : await this.secure(raw, deadline);
        await this.hello(s, deadline);
        this.where = `'${o.name}' at ${w.how}`;
        return;
      } catch (e: any) {
        const failure = e instanceof WeftError ? e : new WeftError("Unavailable", `${w.how}: ${e?.message ?? e}`);
        if (["Unauthenticated", "ContractMismatch", "PermissionDenied"].includes(failure.code) || ways.length === 1) throw failure;
        tried.push(failure.message);
      }
    }
    throw new WeftError("Unavailable", `no way to '${o.name}'${tried.length ? ": " + tried.join("; ") : ""}`);
  }

  private secure(raw: Duplex, deadline: number): Promise<Duplex> {
    const o = this.options;
    if (!o.key || !o.cert || !o.trust?.length) {
      throw new WeftError("InvalidArgument", "TLS needs key, cert (weft keygen --cert) and trust, or plaintext: true");
    }
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        socket: raw, key: readFileSync(o.key!), cert: readFileSync(o.cert!), rejectUnauthorized: false,
        minVersion: "TLSv1.3", maxVersion: "TLSv1.3",
      });
      const t = setTimeout(() => {
        s.destroy();
        reject(new WeftError("Timeout", "TLS handshake before the deadline"));
      }, Math.max(1, deadline - Date.now()));
      s.once("secureConnect", () => {
        clearTimeout(t);
        const peer = s.getPeerX509Certificate();
        const id = peer ? keyIdOf(peer) : "";
        if (!o.trust!.includes(id)) {
          s.destroy();
          reject(new WeftError("Unauthenticated", `the server proved key ${id || "none"}, which is not trusted`));
          return;
        }
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(new WeftError("Unauthenticated", `TLS: ${e.message}`));
      });
    });
  }

  private async hello(s: Duplex, deadline: number): Promise<void> {
    const wire = new Wire(s);
    const answer = await wire.handshake(`hello 3\nwire 2 2\n${this.options.name}\n-\n${this.contract.canonical}`, deadline);
    if (answer.startsWith("error\n")) {
      const [, code, ...message] = answer.split("\n");
      s.destroy();
      throw errorOf(Number(code), message.join("\n"));
    }
    const m = /^ok\n(\d+)\nwire 2\n([\s\S]*)$/.exec(answer);
    if (!m) throw new WeftError("Corrupt", "the server's answer");
    this.resource = Number(m[1]);
    this.methods = methodIndex(m[2]);
    this.wire = wire;
    this.socket = s;
  }

  // One call or stream at a time on the connection: the next waits for the lock.
  private async lock(): Promise<() => void> {
    const before = this.busy;
    let release!: () => void;
    this.busy = new Promise<void>((r) => (release = r));
    await before;
    return release;
  }

  // Sends a call: its id, the method, the wire and the deadline of each read.
  private async begin(method: string, args: unknown[], stream: boolean, o?: CallOptions) {
    const m = this.contract.methods.find((x) => x.name === method);
    if (!m) throw new WeftError("InvalidArgument", `no method ${method}`);
    if (m.stream !== stream) throw new WeftError("InvalidArgument", `${method} ${m.stream ? "streams: iterate it" : "does not stream: call it"}`);
    if (args.length !== m.params.length) throw new WeftError("InvalidArgument", `${method} takes ${m.params.length} arguments`);
    const values = m.params.map((p, i) => encode(p.codec, args[i]));
    if (this.wire === null) await this.dial();  // after a broken connection
    const wire = this.wire!;
    const timeout = this.timeout(o);
    const call = this.nextCall++;
    const index = this.methods.get(method)!;
    wire.send(Frame.Call, this.resource, index, call, BigInt(timeout) * 1_000_000n, values);
    return { m, wire, call, index, timeout };
  }

  // The next frame of `call` (an earlier call's late answer skipped); an error frame thrown.
  private async next(wire: Wire, call: bigint, deadline: number): Promise<ReadFrame> {
    for (;;) {
      const f = await wire.read(deadline);
      if (f.call !== call) continue;
      if (f.type === Frame.Error) {
        const code = f.payload.readUInt32LE(0);
        const n = f.payload.readUInt32LE(4);
        throw errorOf(code, Buffer.from(f.payload.subarray(8, 8 + n)).toString("utf-8"));
      }
      return f;
    }
  }

  // After a failure: a broken connection is dialled again at the next call; a call given up
  // is cancelled at the server.
  private failed(e: unknown, wire: Wire, call: bigint, index: number): void {
    if (e instanceof WeftError && ["Unavailable", "Corrupt", "TooLarge"].includes(e.code)) {
      this.socket?.destroy();
      this.wire = null;
    } else if (e instanceof WeftError && e.code === "Timeout") {
      wire.control(Frame.Cancel, this.resource, index, call, 0);
    }
  }

  /** Calls `method` with its arguments (in the contract's codecs); one call at a time per client.
   *  A read is tried again as `retry` says; the breaker, if any, may refuse it at once. */
  async call(method: string, args: unknown[], o?: CallOptions): Promise<unknown> {
    const read = this.contract.methods.find((x) => x.name === method)?.access === "read";
    const r = this.options.retry;
    const policy: RetryOptions = typeof r === "number" ? { attempts: r } : r ?? { attempts: 1 };
    const attempts = read ? Math.max(1, policy.attempts) : 1;
    const deadline = Date.now() + this.timeout(o);
    let backoff = policy.backoffMs ?? 20;
    for (let attempt = 1; ; ++attempt) {
      this.admit();
      try {
        const result = await this.once(method, args, { timeoutMs: Math.max(1, deadline - Date.now()) });
        this.record(null);
        return result;
      } catch (e) {
        this.record(e);
        if (attempt >= attempts || !(e instanceof WeftError) || !RETRYABLE.includes(e.code)) throw e;
        const wait = Math.random() * Math.min(backoff, policy.maxBackoffMs ?? 1000);  // full jitter
        if (Date.now() + wait >= deadline) throw e;
        await new Promise((done) => setTimeout(done, wait));
        backoff *= 2;
      }
    }
  }

  private failures = 0;
  private openUntil = 0;
  private trial = false;

  // The breaker: an open circuit refuses at once, until its time is up (then one trial call).
  private admit(): void {
    const b = this.options.breaker;
    if (!b || b.failures <= 0 || this.openUntil === 0) return;
    if (Date.now() < this.openUntil || this.trial) {
      throw new WeftError("Unavailable", `the circuit to '${this.options.name}' is open after ${this.failures} failures in a row; calls fail at once until it lets a trial through`);
    }
    this.trial = true;
  }

  private record(e: unknown): void {
    const b = this.options.breaker;
    if (!b || b.failures <= 0) return;
    const failed = e instanceof WeftError && (RETRYABLE.includes(e.code) || e.code === "Timeout");
    if (!failed) {  // a success, or the call's own error: the server is there
      this.failures = 0;
      this.openUntil = 0;
      this.trial = false;
      return;
    }
    ++this.failures;
    if (this.trial || this.failures >= b.failures) this.openUntil = Date.now() + (b.openMs ?? 5000);
    this.trial = false;
  }

  private async once(method: string, args: unknown[], o: CallOptions): Promise<unknown> {
    const release = await this.lock();
    try {
      const { m, wire, call, index, timeout } = await this.begin(method, args, false, o);
      try {
        const f = await this.next(wire, call, Date.now() + timeout);
        if (f.type !== Frame.Reply || f.values.length !== 1) throw new WeftError("Corrupt", "unexpected frame");
        return decode(m.result, f.values[0]);
      } catch (e) {
        this.failed(e, wire, call, index);
        throw e;
      }
    } finally {
      release();
    }
  }

  /** A streaming method's chunks, as they come (credit: 16 ahead, then 8 per 8 taken). Leaving
   *  the loop early cancels the rest at the server. The connection carries nothing else meanwhile. */
  async *stream(method: string, args: unknown[], o?: CallOptions): AsyncIterable<unknown> {
    const release = await this.lock();
    try {
      const { m, wire, call, index, timeout } = await this.begin(method, args, true, o);
      let done = false, taken = 0;
      try {
        for (;;) {
          const f = await this.next(wire, call, Date.now() + timeout);  // each chunk within the timeout
          if (f.type === Frame.End) {
            done = true;
            return;
          }
          if (f.type !== Frame.Chunk || f.values.length !== 1) throw new WeftError("Corrupt", "unexpected frame in a stream");
          yield decode(m.result, f.values[0]);
          if (++taken % 8 === 0) wire.control(Frame.Credit, this.resource, index, call, 8);
        }
      } catch (e) {
        done = e instanceof WeftError && e.code !== "Timeout";  // an error frame ended it, or the connection broke
        this.failed(e, wire, call, index);
        throw e;
      } finally {
        if (!done && this.wire === wire) {
          // Stopped early: cancel, and skip what was in flight up to the stream's end.
          wire.control(Frame.Cancel, this.resource, index, call, 0);
          try {
            for (;;) {
              const f = await this.next(wire, call, Date.now() + timeout);
              if (f.type === Frame.End) break;
            }
          } catch {
            // the Cancelled error that ends it (or a broken connection, dialled again later)
          }
        }
      }
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    this.socket = null;
    this.wire = null;
    if (this.nc) await this.nc.close();
    this.nc = null;
  }
}

function tcpOpen(address: string, deadline: number): Promise<Duplex> {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address);
  if (!m) return Promise.reject(new WeftError("InvalidArgument", `${address} is not tcp://host:port`));
  const host = m[1].replace(/^\[|\]$/g, "");
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(m[2]) });
    const t = setTimeout(() => {
      s.destroy();
      reject(new WeftError("Unavailable", `${address}: no connection before the deadline`));
    }, Math.max(1, Math.min(1500, deadline - Date.now())));
    s.once("connect", () => {
      clearTimeout(t);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(t);
      reject(new WeftError("Unavailable", `${address}: ${e.message}`));
    });
  });
}

async function resolve(nc: NatsConnection, bucket: string, name: string, contract: ContractDoc, registry: string): Promise<Route[]> {
  const kv = await nc.jetstream().views.kv(bucket, { bindOnly: true });
  const token = nameToken(name);
  const routes: Route[] = [];
  const hashes = new Set<string>();
  // The keys first, then each entry: reading entries while the key listing runs ends the listing
  // early (nats.js 2.29), so a live server's route could be missed.
  const keys: string[] = [];
  for await (const key of await kv.keys(`${token}.*.*`)) keys.push(key);
  for (const key of keys) {
    const e = await kv.get(key);
    if (!e || e.operation !== "PUT") continue;
    const r = parseRoute(new TextDecoder().decode(e.value));
    if (!r || r.name !== token || `${r.name}.${r.contract}.${r.instance}` !== key) continue;
    if (r.contract === contract.hash) routes.push(r);
    else hashes.add(r.contract);
  }
  if (routes.length > 0) return routes.sort(() => Math.random() - 0.5);
  if (hashes.size > 0) {
    throw new WeftError("ContractMismatch", `'${name}' is registered at ${registry} with contract hash ${[...hashes].join(", ")}, not ${contract.hash}: a name alone is not enough`);
  }
  throw new WeftError("NotFound", `no live server of '${name}' is registered at ${registry}`);
}

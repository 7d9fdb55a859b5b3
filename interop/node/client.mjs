// A WebSocket client for the interop tests: it connects to a URL, sends the
// exchange's messages one at a time, checks each echo, closes with 1000 and
// prints one JSON line saying what it agreed to and saw.
//
// Usage: node client.mjs ws|builtin URL [OPTIONS]
//
// ws is the npm package, builtin Node's own WebSocket (which Node 20 only
// has with --experimental-websocket). OPTIONS is JSON: {"protocols": [...],
// "ws": {...options of the ws package, such as perMessageDeflate}}.
//
// The messages are those of the Go tests' exchange: text and binary, small
// and over 1 MiB, and a text that repeats the one before it, so that with
// context takeover its compressed form refers back into that one.

const [impl, url, optionsJSON] = process.argv.slice(2);
const options = optionsJSON ? JSON.parse(optionsJSON) : {};

function fail(why) {
  console.log(JSON.stringify({ error: String(why) }));
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out after 30 s'), 30000);

let WebSocketClass;
if (impl === 'ws') {
  WebSocketClass = (await import('ws')).WebSocket;
} else if (impl === 'builtin') {
  if (typeof globalThis.WebSocket !== 'function') {
    fail('this Node has no built-in WebSocket; run it with --experimental-websocket');
  }
  WebSocketClass = globalThis.WebSocket;
} else {
  fail(`unknown client ${JSON.stringify(impl)}, want ws or builtin`);
}

function random(n) {
  // xorshift, as the Go side: bytes that deflate cannot shrink
  const b = new Uint8Array(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const phrase = 'a large text message that compresses well. ';
const messages = [
  { name: 'small text', data: 'hello, cooper ✓' },
  { name: 'small binary', data: new Uint8Array([0, 1, 0xfe, 0xff]) },
  { name: '1 MiB of random binary', data: random((1 << 20) + 3) },
  { name: '1 MiB of text', data: phrase.repeat(Math.floor((1 << 20) / phrase.length) + 1) },
  { name: '4300 bytes of the same text', data: phrase.repeat(100) },
  { name: '1290 bytes of it again', data: phrase.repeat(30) },
];

function same(sent, got) {
  if (typeof sent === 'string') return typeof got === 'string' && got === sent;
  if (!(got instanceof ArrayBuffer)) return false;
  const g = new Uint8Array(got);
  return g.length === sent.length && g.every((v, i) => v === sent[i]);
}

const result = { client: impl, node: process.version, messages: [] };
const ws =
  impl === 'ws'
    ? new WebSocketClass(url, options.protocols ?? [], options.ws ?? {})
    : new WebSocketClass(url, options.protocols ?? []);
ws.binaryType = 'arraybuffer';
if (impl === 'ws') {
  ws.on('upgrade', (res) => {
    result.extensionsHeader = res.headers['sec-websocket-extensions'] ?? '';
  });
}

const incoming = [];
let waiting = null;
ws.onmessage = (event) => {
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(event.data);
  } else {
    incoming.push(event.data);
  }
};
const next = () =>
  incoming.length > 0 ? Promise.resolve(incoming.shift()) : new Promise((resolve) => (waiting = resolve));

ws.onerror = (event) => fail(`error: ${event.message ?? event.error ?? 'WebSocket error'}`);
const closed = new Promise((resolve) => {
  ws.onclose = (event) => {
    if (waiting) fail(`closed with ${event.code} while waiting for an echo`);
    resolve(event);
  };
});
await new Promise((resolve) => {
  ws.onopen = resolve;
});
result.protocol = ws.protocol;
result.extensions = ws.extensions;

for (const m of messages) {
  ws.send(m.data);
  const got = await next();
  result.messages.push({ name: m.name, echoed: same(m.data, got) });
}
ws.close(1000);
const event = await closed;
result.close = { code: event.code, wasClean: event.wasClean };
clearTimeout(timer);
console.log(JSON.stringify(result));

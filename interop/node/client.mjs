// A WebSocket client for the interop tests: it connects to a URL, runs the
// exchange of exchange.mjs and prints one JSON line saying what it agreed
// to and saw, or {"error": ...}.
//
// Usage: node client.mjs ws|builtin URL [OPTIONS]
//
// ws is the npm package, builtin Node's own WebSocket (which Node 20 only
// has with --experimental-websocket). OPTIONS is JSON: {"protocols": [...],
// "ws": {...options of the ws package, such as perMessageDeflate}}.

import { runExchange } from './exchange.mjs';

const [impl, url, optionsJSON] = process.argv.slice(2);
const options = optionsJSON ? JSON.parse(optionsJSON) : {};

function fail(why) {
  console.log(JSON.stringify({ error: String(why) }));
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out after 30 s'), 30000);

let ws;
let extensionsHeader;
if (impl === 'ws') {
  const { WebSocket } = await import('ws');
  ws = new WebSocket(url, options.protocols ?? [], options.ws ?? {});
  ws.on('upgrade', (res) => {
    extensionsHeader = res.headers['sec-websocket-extensions'] ?? '';
  });
} else if (impl === 'builtin') {
  if (typeof globalThis.WebSocket !== 'function') {
    fail('this Node has no built-in WebSocket; run it with --experimental-websocket');
  }
  ws = new globalThis.WebSocket(url, options.protocols ?? []);
} else {
  fail(`unknown client ${JSON.stringify(impl)}, want ws or builtin`);
}

try {
  const result = await runExchange(ws);
  clearTimeout(timer);
  console.log(JSON.stringify({ client: impl, node: process.version, extensionsHeader, ...result }));
} catch (err) {
  fail(err.message);
}

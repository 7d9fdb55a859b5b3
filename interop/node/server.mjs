// An echo server of the ws package for the interop tests: it listens on a
// free loopback port, prints {"port": N} on one line, and echoes every
// message with its type until it is stopped. A client's close frame is
// answered by ws itself.
//
// Usage: node server.mjs [OPTIONS]
//
// OPTIONS is JSON: {"protocols": [...the subprotocols spoken...],
// "ws": {...WebSocketServer options, such as perMessageDeflate}}. The
// subprotocol agreed is the client's first that is spoken.

import { WebSocketServer } from 'ws';

const options = JSON.parse(process.argv[2] ?? '{}');
const spoken = options.protocols ?? [];

const wss = new WebSocketServer({
  ...(options.ws ?? {}),
  host: '127.0.0.1',
  port: 0,
  maxPayload: 8 << 20,
  handleProtocols: (offered) => [...offered].find((p) => spoken.includes(p)) ?? false,
});
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
process.on('SIGTERM', () => process.exit(0));

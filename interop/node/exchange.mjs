// The exchange every JavaScript client of the interop tests runs, in Node
// and in the browser alike: send the messages one at a time, check each
// echo, close with 1000, and report what was agreed and seen.
//
// The messages are those of the Go tests' exchange: text and binary, small
// and over 1 MiB, and a text, random hex, that repeats the one before it,
// so that with context takeover its compressed form refers back into that
// one and is a fraction of its size.

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
const hex = Array.from(random(600), (b) => b.toString(16).padStart(2, '0')).join('');

export const messages = [
  { name: 'small text', data: 'hello, cooper ✓' },
  { name: 'small binary', data: new Uint8Array([0, 1, 0xfe, 0xff]) },
  { name: '1 MiB of random binary', data: random((1 << 20) + 3) },
  { name: '1 MiB of text', data: phrase.repeat(Math.floor((1 << 20) / phrase.length) + 1) },
  { name: '1200 bytes of random hex', data: hex },
  { name: 'the same 1200 bytes again', data: hex },
];

function same(sent, got) {
  if (typeof sent === 'string') return typeof got === 'string' && got === sent;
  if (!(got instanceof ArrayBuffer)) return false;
  const g = new Uint8Array(got);
  return g.length === sent.length && g.every((v, i) => v === sent[i]);
}

// runExchange runs the exchange on ws, a WebSocket just created, with the
// standard WebSocket interface. It resolves to {protocol, extensions,
// messages: [{name, echoed}], close: {code, wasClean}} and rejects if the
// connection fails or closes early.
export async function runExchange(ws) {
  ws.binaryType = 'arraybuffer';
  const incoming = [];
  let waiting = null;
  let fail;
  const failure = new Promise((_, reject) => (fail = reject));
  failure.catch(() => {});
  ws.onmessage = (event) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(event.data);
    } else {
      incoming.push(event.data);
    }
  };
  ws.onerror = (event) => fail(new Error(`WebSocket error: ${event.message ?? 'no detail'}`));
  const closed = new Promise((resolve) => {
    ws.onclose = (event) => {
      fail(new Error(`closed with ${event.code} before the exchange ended`));
      resolve(event);
    };
  });
  const next = () =>
    incoming.length > 0 ? Promise.resolve(incoming.shift()) : new Promise((resolve) => (waiting = resolve));

  await Promise.race([new Promise((resolve) => (ws.onopen = resolve)), failure]);
  const result = { protocol: ws.protocol, extensions: ws.extensions, messages: [] };
  for (const m of messages) {
    ws.send(m.data);
    const got = await Promise.race([next(), failure]);
    result.messages.push({ name: m.name, echoed: same(m.data, got) });
  }
  ws.onerror = null;
  ws.close(1000);
  const event = await closed;
  result.close = { code: event.code, wasClean: event.wasClean };
  return result;
}

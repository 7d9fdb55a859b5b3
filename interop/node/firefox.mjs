// Drives a headless Firefox for the interop tests, with puppeteer-core
// over WebDriver BiDi: it starts the Firefox at FIREFOX with its profile in
// PROFILE, loads URL in its one page, and then evaluates in that page each
// JavaScript expression posted to it over HTTP on loopback, and tells the
// WebSocket handshakes the page made as Firefox saw them on the network.
//
// Usage: node firefox.mjs FIREFOX PROFILE URL
//
// Once Firefox runs it prints a JSON line {"version", "pid"}: Firefox's
// version and its process id (Firefox leads a process group of its own);
// when the page has loaded, {"driver"}: the URL to post expressions to.
// Anything that fails before then prints {"error": ...}. What Firefox
// prints goes to the driver's output too.
//
// A POST of an expression to the driver's URL answers {"value": ...}, the
// expression's value awaited and as JSON, or {"error": ...}. A GET of
// handshakes there answers [{"url", "status", "offer", "answer"}]: for each
// WebSocket handshake so far (a request with Sec-WebSocket-Version) that
// got a response, its URL, the response's status, and the
// Sec-WebSocket-Extensions of the request and of the response ("" when
// absent), as Firefox's network events tell them.
//
// It stops Firefox and exits on SIGTERM or SIGINT, when Firefox goes away,
// or after 5 minutes whatever happens.

import http from 'node:http';
import puppeteer from 'puppeteer-core';

const [executablePath, userDataDir, url] = process.argv.slice(2);

let browser;
async function quit(code) {
  await browser?.close().catch(() => {});
  process.exit(code);
}
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => quit(0));
}
setTimeout(() => {
  console.log(JSON.stringify({ error: 'still running after 5 minutes' }));
  quit(1);
}, 5 * 60 * 1000).unref();

try {
  browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath,
    userDataDir,
    headless: true,
    // The test servers' certificates are made up: the BiDi session's
    // capability makes Firefox accept them, for the page and its WebSocket.
    acceptInsecureCerts: true,
    // A first start with a fresh profile on a loaded machine is slow.
    timeout: 60000,
    protocolTimeout: 60000,
    // Firefox must reach loopback only. MOZ_DISABLE_NONLOCAL_CONNECTIONS, the
    // switch of Firefox's own test harnesses, makes it crash, saying why on
    // stderr, rather than connect to any other address, and makes it take
    // services.settings.server, which a release build otherwise ignores.
    env: { ...process.env, MOZ_DISABLE_NONLOCAL_CONNECTIONS: '1' },
    extraPrefsFirefox: {
      // Remote settings skip their syncs with firefox.settings.services.mozilla.com
      // at this server; puppeteer's own, http://dummy.test/, would still be
      // looked up in DNS.
      'services.settings.server': 'data:,#remote-settings-dummy/v1',
    },
    // Firefox's output goes to ours, where the test looks for that crash.
    dumpio: true,
  });
  browser.on('disconnected', () => quit(1));
  console.log(JSON.stringify({ version: await browser.version(), pid: browser.process().pid }));
  const [page] = await browser.pages();
  const handshakes = [];
  page.on('response', (res) => {
    const req = res.request().headers();
    if ('sec-websocket-version' in req) {
      handshakes.push({
        url: res.url(),
        status: res.status(),
        offer: req['sec-websocket-extensions'] ?? '',
        answer: res.headers()['sec-websocket-extensions'] ?? '',
      });
    }
  });
  await page.goto(url, { waitUntil: 'load', timeout: 30000 });

  const server = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'application/json');
    if (req.method === 'GET' && req.url === '/handshakes') {
      res.end(JSON.stringify(handshakes));
      return;
    }
    let expression = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (expression += chunk));
    req.on('end', async () => {
      let answer;
      try {
        answer = { value: await page.evaluate(expression) };
      } catch (err) {
        answer = { error: String(err) };
      }
      res.end(JSON.stringify(answer));
    });
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ driver: `http://127.0.0.1:${server.address().port}/` }));
  });
} catch (err) {
  console.log(JSON.stringify({ error: String(err) }));
  await quit(1);
}

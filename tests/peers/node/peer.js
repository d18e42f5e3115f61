'use strict';
// The Node `ws` peer of tests/real_peers.rs.
//
//   node peer.js server --expect BYTES [--port 0] [--report-as text|binary]
//                       [--heartbeat-ms 1000] [--timeout 60]
//     Serves one connection on 127.0.0.1 (prints "listening PORT" first). Counts and
//     SHA-256-hashes every binary message it receives. Once at least BYTES have arrived it
//     sends "bytes=N sha256=HEX\n" (as a text or binary message), then waits for the connection
//     to close. Heartbeat as the ws README shows it: every --heartbeat-ms, a client that did
//     not answer the previous ping is terminate()d; otherwise it is pinged again.
//
//   node peer.js upload --url URL --size BYTES [--digest-as text|binary] [--timeout 120]
//     Connects, sends BYTES of a deterministic pattern with one ws.send(buffer) (one frame),
//     then the hex SHA-256 of those bytes as a text (or binary) message, and waits for the
//     server to close.
//
// Every step is printed on stdout, one line each. Exits 0 when the run went as described,
// 1 otherwise, 2 on --timeout.

const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

const START = process.hrtime.bigint();
// The repeating block of the upload pattern: a prime length, so it lines up with no
// power-of-two buffer or frame size and a misplaced chunk changes the digest.
const BLOCK = 1000003;

function log(...parts) {
  const s = Number(process.hrtime.bigint() - START) / 1e9;
  console.log(`[${s.toFixed(3).padStart(7)}s]`, ...parts);
}

function peakRssMiB() {
  return (process.resourceUsage().maxRSS / 1024).toFixed(0); // maxRSS is in KiB
}

function parseArgs(argv) {
  const [cmd, ...rest] = argv;
  const opts = {};
  for (let i = 0; i < rest.length; i += 2) {
    if (!rest[i].startsWith('--') || i + 1 >= rest.length) usage(`bad argument ${rest[i]}`);
    opts[rest[i].slice(2)] = rest[i + 1];
  }
  return { cmd, opts };
}

function usage(why) {
  console.error(`peer.js: ${why}\nusage: peer.js server --expect BYTES [...] | upload --url URL --size BYTES [...]`);
  process.exit(64);
}

function finish(code) {
  log(`exit ok=${code === 0} peak_rss=${peakRssMiB()} MiB`);
  // Let stdout drain (it is a pipe) before exiting.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}

// A deterministic xorshift32 block, repeated to `size` bytes.
function pattern(size) {
  const block = Buffer.allocUnsafe(BLOCK);
  let x = 0x5eed1234;
  for (let i = 0; i < BLOCK; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    block[i] = x >>> 24;
  }
  return Buffer.allocUnsafe(size).fill(block);
}

function server(opts) {
  const expect = Number(opts.expect);
  if (!Number.isSafeInteger(expect)) usage('--expect BYTES is required');
  const reportAsText = (opts['report-as'] || 'text') === 'text';
  const heartbeatMs = Number(opts['heartbeat-ms'] || 1000);

  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: Number(opts.port || 0),
    perMessageDeflate: false,
    maxPayload: 0, // no limit
  });
  let ok = false;

  wss.on('listening', () => {
    log(`ws server, heartbeat every ${heartbeatMs} ms`);
    console.log(`listening ${wss.address().port}`);
  });

  wss.on('connection', (ws, req) => {
    log('connected from', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    const digest = crypto.createHash('sha256');
    let total = 0;
    let reported = false;
    let terminated = false;

    ws.isAlive = true;
    ws.on('pong', () => {
      log('heartbeat: received pong');
      ws.isAlive = true;
    });
    const heartbeat = setInterval(() => {
      if (ws.isAlive === false) {
        log(`terminate(): no pong to the ping sent ${heartbeatMs} ms ago`);
        terminated = true;
        ws.terminate();
        return;
      }
      ws.isAlive = false;
      ws.ping();
      log('heartbeat: sent ping');
    }, heartbeatMs);

    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        log(`text message ${JSON.stringify(data.toString().slice(0, 80))}`);
        return;
      }
      digest.update(data);
      total += data.length;
      if (total >= expect && !reported) {
        const report = `bytes=${total} sha256=${digest.copy().digest('hex')}`;
        log('received everything; sending report:', report);
        ws.send(reportAsText ? `${report}\n` : Buffer.from(`${report}\n`));
        reported = true;
        ok = total === expect;
      }
    });
    ws.on('error', (e) => log('error:', e.message));
    ws.on('close', (code, reason) => {
      clearInterval(heartbeat);
      log(`connection closed: code=${code} reason=${JSON.stringify(reason.toString())} terminated=${terminated}`);
      log(`received bytes=${total} sha256=${digest.digest('hex')} reported=${reported}`);
      wss.close(() => finish(ok ? 0 : 1));
    });
  });
}

function upload(opts) {
  const size = Number(opts.size);
  if (!opts.url || !Number.isSafeInteger(size)) usage('--url URL and --size BYTES are required');
  const digestAsText = (opts['digest-as'] || 'text') === 'text';

  let t = process.hrtime.bigint();
  const secs = () => (Number(process.hrtime.bigint() - t) / 1e9).toFixed(2);
  let data = pattern(size);
  const hex = crypto.createHash('sha256').update(data).digest('hex');
  log(`generated ${size} bytes in ${secs()}s, sha256=${hex}`);

  const ws = new WebSocket(opts.url, { perMessageDeflate: false, maxPayload: 0 });
  let closeCode = null;
  ws.on('open', () => {
    log('connected');
    t = process.hrtime.bigint();
    ws.send(data, { binary: true }, (err) => {
      if (err) { log(`sending the data failed: ${err.message}`); return; }
      log(`sent ${size} bytes as one frame in ${secs()}s`);
    });
    data = null;
    ws.send(digestAsText ? hex : Buffer.from(hex), (err) => {
      if (!err) log(`sent the digest as ${digestAsText ? 'text' : 'binary'}`);
    });
  });
  ws.on('message', (msg) => log(`received ${JSON.stringify(msg.toString().slice(0, 200))}`));
  ws.on('error', (e) => log('error:', e.message));
  ws.on('close', (code, reason) => {
    closeCode = code;
    log(`connection closed: code=${code} reason=${JSON.stringify(reason.toString())}`);
    finish(closeCode === 1000 ? 0 : 1);
  });
}

const { cmd, opts } = parseArgs(process.argv.slice(2));
const timeout = Number(opts.timeout || (cmd === 'server' ? 60 : 120));
setTimeout(() => {
  log(`gave up after --timeout ${timeout}s`);
  finish(2);
}, timeout * 1000).unref();
if (cmd === 'server') server(opts);
else if (cmd === 'upload') upload(opts);
else usage(`unknown command ${cmd}`);

'use strict';
// The Node `ws` peer of tests/real_peers.rs and tests/compression_peers.rs.
//
//   node peer.js server --expect BYTES [--port 0] [--report-as text|binary]
//                       [--heartbeat-ms 1000] [--deflate] [--timeout 60]
//     Serves one connection on 127.0.0.1 (prints "listening PORT" first). Counts and
//     SHA-256-hashes every binary message it receives. Once at least BYTES have arrived it
//     sends "bytes=N sha256=HEX\n" (as a text or binary message), then waits for the connection
//     to close. Heartbeat as the ws README shows it: every --heartbeat-ms, a client that did
//     not answer the previous ping is terminate()d; otherwise it is pinged again.
//
//   node peer.js upload --url URL --size BYTES [--digest-as text|binary] [--deflate]
//                       [--timeout 120]
//     Connects, sends BYTES of a deterministic pattern with one ws.send(buffer) (one frame),
//     then the hex SHA-256 of those bytes as a text (or binary) message, and waits for the
//     server to close.
//
//   node peer.js echo-server [--port 0] [--deflate] [--timeout 60] [--forever]
//   node peer.js echo-client --url URL [--deflate] [--timeout 60]
//     Serves one connection on 127.0.0.1 (prints "listening PORT" first), or connects to URL.
//     Prints "extensions VALUE", the Sec-WebSocket-Extensions header of the handshake
//     response ("extensions none" without one). Then sends every message back as it came
//     (same type, same bytes), except three commands, text messages of their own:
//       "wsio-peer: digest"  the next message is hashed and answered with the text message
//                            "bytes=N sha256=HEX";
//       "wsio-peer: send N"  sends N bytes of JSON lines (compressible) as one binary
//                            message, then "bytes=N sha256=HEX" of them as text;
//       "wsio-peer: json"    sends JSON_SAMPLE, encoded by JSON.stringify, as a text message.
//     Exits 0 when the other side closes with 1000.
//
// --deflate turns permessage-deflate on, compressing every message (`perMessageDeflate:
// { threshold: 0 }`, ws's defaults otherwise); without it compression is off.
//
// Every step is printed on stdout, one line each. Exits 0 when the run went as described,
// 1 otherwise, 2 on --timeout.

const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

const START = process.hrtime.bigint();
// The repeating block of the upload pattern: a prime length, so it lines up with no
// power-of-two buffer or frame size and a misplaced chunk changes the digest.
const BLOCK = 1000003;
// The prefix of the commands of the echo modes.
const COMMAND = 'wsio-peer: ';
// What the "json" command sends (tests/typed_messages.rs expects the same value).
const JSON_SAMPLE = {
  from: 'peer',
  text: 'h\u00e9llo \u2713 \u{1f980} "quoted"\n',
  numbers: [1, -2, 2.5, 1e300],
  nested: { ok: true, nothing: null },
};
// The options that take no value.
const FLAGS = new Set(['deflate', 'forever']);

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
    if (!rest[i].startsWith('--')) usage(`bad argument ${rest[i]}`);
    const name = rest[i].slice(2);
    if (FLAGS.has(name)) {
      opts[name] = true;
      i -= 1;
      continue;
    }
    if (i + 1 >= rest.length) usage(`bad argument ${rest[i]}`);
    opts[name] = rest[i + 1];
  }
  return { cmd, opts };
}

function usage(why) {
  console.error(`peer.js: ${why}\nusage: peer.js server --expect BYTES [...] | upload --url URL --size BYTES [...] | echo-server [...] | echo-client --url URL [...]`);
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

// The perMessageDeflate option of a server or client: off, or on for every message.
function deflate(opts) {
  return opts.deflate ? { threshold: 0 } : false;
}

// `size` bytes of JSON lines, a block of a prime length repeated.
function jsonLines(size) {
  const lines = [];
  for (let i = 0; i < BLOCK / 40; i++) {
    lines.push(`{"seq":${i},"user":"peer-${i % 97}","score":${(i * 7919) % 100003},"tags":["alpha","beta"],"ok":true}\n`);
  }
  const block = Buffer.from(lines.join('')).subarray(0, BLOCK);
  return Buffer.allocUnsafe(size).fill(block);
}

function report(total, hash) {
  return `bytes=${total} sha256=${hash.digest('hex')}`;
}

// Echoes messages and answers the commands; calls done(ok) when the connection has closed,
// ok when the other side closed with 1000.
// --forever: an echo server for many connections (a load generator's target), which logs no
// message and stays up until it is killed.
let quiet = false;

function echo(ws, extensions, done) {
  if (!quiet) console.log(`extensions ${extensions || 'none'}`);
  let echoed = 0;
  let hashNext = false;
  ws.on('message', (data, isBinary) => {
    if (hashNext) {
      hashNext = false;
      const hash = crypto.createHash('sha256').update(data);
      const line = report(data.length, hash);
      log(`hashed a message: ${line}`);
      ws.send(line);
      return;
    }
    const text = isBinary ? null : data.toString();
    if (text !== null && text.startsWith(COMMAND)) {
      const command = text.slice(COMMAND.length);
      log(`command ${JSON.stringify(command)}`);
      if (command === 'digest') {
        hashNext = true;
      } else if (command === 'json') {
        ws.send(JSON.stringify(JSON_SAMPLE));
      } else if (command.startsWith('send ')) {
        let t = process.hrtime.bigint();
        const secs = () => (Number(process.hrtime.bigint() - t) / 1e9).toFixed(2);
        const size = Number(command.slice('send '.length));
        const payload = jsonLines(size);
        const line = report(size, crypto.createHash('sha256').update(payload));
        log(`generated ${size} bytes in ${secs()}s`);
        t = process.hrtime.bigint();
        ws.send(payload, { binary: true }, (err) => {
          if (err) log(`sending them failed: ${err.message}`);
          else log(`sent them as one message in ${secs()}s`);
        });
        ws.send(line);
      } else {
        log('unknown command');
        ws.close(1003, 'unknown command');
      }
      return;
    }
    ws.send(data, { binary: isBinary });
    echoed += 1;
    if (!quiet) log(`echoed message ${echoed}: ${isBinary ? 'binary' : 'text'}, ${data.length} bytes`);
  });
  ws.on('error', (e) => log('error:', e.message));
  ws.on('close', (code, reason) => {
    if (!quiet) log(`connection closed: code=${code} reason=${JSON.stringify(reason.toString())}`);
    done(code === 1000);
  });
}

function echoServer(opts) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: Number(opts.port || 0),
    perMessageDeflate: deflate(opts),
    maxPayload: 0, // no limit
  });
  let extensions = null;
  wss.on('headers', (headers) => {
    const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
    extensions = line ? line.slice(line.indexOf(':') + 1).trim() : null;
  });
  wss.on('listening', () => console.log(`listening ${wss.address().port}`));
  quiet = Boolean(opts.forever);
  wss.on('connection', (ws, req) => {
    if (quiet) {
      echo(ws, extensions, () => {});
      return;
    }
    log('connected from', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    echo(ws, extensions, (ok) => wss.close(() => finish(ok ? 0 : 1)));
  });
}

function echoClient(opts) {
  if (!opts.url) usage('--url URL is required');
  const ws = new WebSocket(opts.url, { perMessageDeflate: deflate(opts), maxPayload: 0 });
  let extensions = null;
  ws.on('upgrade', (res) => {
    extensions = res.headers['sec-websocket-extensions'] || null;
  });
  ws.on('open', () => {
    log('connected');
    echo(ws, extensions, (ok) => finish(ok ? 0 : 1));
  });
  ws.on('error', (e) => {
    if (ws.readyState !== WebSocket.OPEN) log('error:', e.message);
  });
}

function server(opts) {
  const expect = Number(opts.expect);
  if (!Number.isSafeInteger(expect)) usage('--expect BYTES is required');
  const reportAsText = (opts['report-as'] || 'text') === 'text';
  const heartbeatMs = Number(opts['heartbeat-ms'] || 1000);

  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: Number(opts.port || 0),
    perMessageDeflate: deflate(opts),
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

  const ws = new WebSocket(opts.url, { perMessageDeflate: deflate(opts), maxPayload: 0 });
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
const timeout = Number(opts.timeout || (cmd === 'upload' ? 120 : 60));
setTimeout(() => {
  log(`gave up after --timeout ${timeout}s`);
  finish(2);
}, timeout * 1000).unref();
if (cmd === 'server') server(opts);
else if (cmd === 'upload') upload(opts);
else if (cmd === 'echo-server') echoServer(opts);
else if (cmd === 'echo-client') echoClient(opts);
else usage(`unknown command ${cmd}`);

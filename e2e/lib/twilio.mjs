// A stand-in for Twilio's Messages API for the end-to-end tests: a node:http server on a free
// 127.0.0.1 port that takes `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` exactly as
// Twilio does (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource):
// a form-encoded body with the fields `To`, `From` and `Body` (each once, nothing else), HTTP
// Basic `AccountSid:AuthToken`, answered `201` with JSON `{"sid": "SM…", "status": "queued"}`.
//
// Every request is checked. One that does not match is answered like Twilio would (401,
// 404, 405, 415 or 400 with Twilio's error JSON) and recorded in `problems`, which a test
// asserts empty at its end: the server under test never sees a lenient Twilio. Accepted
// messages are recorded in `messages`; `failNext()` makes the next well-formed requests get an
// error answer instead (they are recorded in `requests`, not in `messages`).

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const FORM = 'application/x-www-form-urlencoded';
/** E.164: `+`, a first digit 1–9, 7 to 15 digits in all. */
const E164 = /^\+[1-9]\d{6,14}$/;
/** Twilio's limit for a message body, in characters. */
const MAX_BODY = 1_600;

/** `AC` (or `SM`, …) and 32 hex digits, fresh. */
export const twilioSid = (prefix) => `${prefix}${randomBytes(16).toString('hex')}`;

/**
 * Starts the stand-in for the account `accountSid` with `authToken`, expecting the sender
 * `from`. Returns { port, baseUrl, accountSid, authToken, from, messages, requests, problems,
 * failNext(), waitFor(), close() }.
 *
 * - `messages`: accepted texts, oldest first: { seq, to, from, body, sid, at }.
 * - `requests`: every request, oldest first: { seq, method, path, headers, raw, fields,
 *   status, problem? } (`status` is what the stand-in answered).
 * - `problems`: a description of each request that was not exactly what Twilio takes.
 */
export async function startTwilio({ accountSid = twilioSid('AC'), authToken = randomBytes(16).toString('hex'), from }) {
  if (!/^AC[0-9a-f]{32}$/.test(accountSid)) throw new Error(`not an account SID: ${accountSid}`);
  if (!E164.test(from ?? '')) throw new Error(`not an E.164 sender: ${from}`);
  const path = `/2010-04-01/Accounts/${accountSid}/Messages.json`;
  const basic = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
  const messages = [];
  const requests = [];
  const problems = [];
  const failures = [];
  let seq = 0;

  const twilioError = (res, status, code, message) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }));
    return status;
  };

  /** What is wrong with a request (each problem a string), and its parsed fields. */
  const check = (req, raw) => {
    const wrong = [];
    const url = new URL(req.url, 'http://stand-in');
    if (req.method !== 'POST') wrong.push(`method ${req.method}, not POST`);
    if (url.pathname !== path) wrong.push(`path ${url.pathname}, not ${path}`);
    if (url.search) wrong.push(`a query string ${url.search}`);
    const type = req.headers['content-type'];
    if (type !== FORM) wrong.push(`Content-Type ${JSON.stringify(type)}, not ${FORM}`);
    const auth = req.headers.authorization;
    if (auth !== basic) {
      let who = '(none)';
      if (auth?.startsWith('Basic ')) who = `Basic ${Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')[0]}:…`;
      else if (auth) who = `${auth.split(' ')[0]} …`;
      wrong.push(`Authorization ${who}, not Basic ${accountSid}:<the auth token>`);
    }
    if (/[^A-Za-z0-9%+*._~=&-]/.test(raw)) wrong.push(`a body that is not form-encoded: ${JSON.stringify(raw.slice(0, 200))}`);
    const params = new URLSearchParams(raw);
    const names = [...params.keys()];
    const fields = Object.fromEntries(params);
    if ([...names].sort().join(',') !== 'Body,From,To') {
      wrong.push(`form fields [${names.join(', ')}], not exactly To, From, Body (each once)`);
    }
    if (fields.From !== undefined && fields.From !== from) wrong.push(`From ${fields.From}, not ${from}`);
    if (fields.To !== undefined && !E164.test(fields.To)) wrong.push(`To ${JSON.stringify(fields.To)} is not E.164`);
    if (fields.Body !== undefined && (fields.Body.length === 0 || fields.Body.length > MAX_BODY)) {
      wrong.push(`a Body of ${fields.Body.length} characters (1 to ${MAX_BODY})`);
    }
    return { wrong, fields, url };
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const { wrong, fields, url } = check(req, raw);
      const request = { seq: ++seq, method: req.method, path: url.pathname, headers: req.headers, raw, fields, at: Date.now() };
      requests.push(request);
      if (wrong.length > 0) {
        request.problem = wrong.join('; ');
        problems.push(`request #${request.seq} ${req.method} ${req.url}: ${request.problem}`);
        // Answered as Twilio answers the first thing wrong.
        if (req.method !== 'POST') request.status = twilioError(res, 405, 20004, 'Method not allowed');
        else if (url.pathname !== path) request.status = twilioError(res, 404, 20404, 'The requested resource was not found');
        else if (req.headers.authorization !== basic) request.status = twilioError(res, 401, 20003, 'Authenticate');
        else if (req.headers['content-type'] !== FORM) request.status = twilioError(res, 415, 20415, 'Unsupported Media Type');
        else request.status = twilioError(res, 400, 21604, `A required parameter is missing or wrong: ${request.problem}`);
        return;
      }
      const failure = failures.shift();
      if (failure) {
        request.status = failure.status;
        res.writeHead(failure.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(failure.body ?? { code: 20500, message: 'Internal Server Error', status: failure.status }));
        return;
      }
      const sid = twilioSid('SM');
      messages.push({ seq: request.seq, to: fields.To, from: fields.From, body: fields.Body, sid, at: request.at });
      request.status = 201;
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sid, status: 'queued' }));
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();

  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    from,
    messages,
    requests,
    problems,
    /**
     * The next `times` well-formed requests are answered `status` with `body` (JSON; by
     * default Twilio's 20500 error) instead of being accepted.
     */
    failNext({ status = 503, body, times = 1 } = {}) {
      for (let i = 0; i < times; i++) failures.push({ status, body });
    },
    /**
     * Waits (polling, at most `timeoutMs`) until `count` accepted messages for which
     * `match(message)` holds have arrived; returns them all, oldest first. Fails with `what`,
     * every message and every problem so far.
     */
    async waitFor(match = () => true, { count = 1, timeoutMs = 15_000, what = 'a text message' } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.filter(match);
        if (found.length >= count) return found;
        if (Date.now() >= until) {
          const seen = messages.map((m) => `#${m.seq} to ${m.to}: ${m.body}`).join('\n  ');
          throw new Error(
            `${what}: ${found.length} of ${count} reached the Twilio stand-in within ${timeoutMs} ms; it accepted:\n  ${seen || '(nothing)'}` +
              (problems.length ? `\nand refused:\n  ${problems.join('\n  ')}` : ''),
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

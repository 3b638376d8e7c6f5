// Shared helpers for the end-to-end tests: a fresh Latchkey server per test file (own temp
// directory, own SQLite database, own port), seeded through the real CLI; a headless
// Chromium that signs in through the real login and consent pages; and a tiny relying
// party on 127.0.0.1 (another site than the issuer on localhost).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { createHash, createPublicKey, webcrypto } from 'node:crypto';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(here, '..', '..');
export const LATCHKEY_BIN = process.env.LATCHKEY_BIN || join(REPO_ROOT, 'target', 'debug', 'latchkey');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The relying party host for confidential clients: never resolved, always intercepted. */
export const RP_ORIGIN = 'https://rp.example.test';

export const ADA = {
  username: 'ada',
  email: 'ada@example.com',
  name: 'Ada Lovelace',
  password: 'correct horse battery',
};

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** The environment for the server and the CLI: ours, minus inherited LATCHKEY_* overrides. */
function serverEnv(port, tls) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    // LATCHKEY_TEST_* names are reserved (not config keys); every other LATCHKEY_* would
    // change the server's configuration under the tests.
    if (k.startsWith('LATCHKEY_') && !k.startsWith('LATCHKEY_TEST_')) continue;
    env[k] = v;
  }
  env.LATCHKEY_SERVER__PORT = String(port);
  // Cheap Argon2 so sign-ins are fast in a debug build.
  env.LATCHKEY_PASSWORDS__MEMORY_KIB = '64';
  env.LATCHKEY_PASSWORDS__ITERATIONS = '1';
  env.NO_COLOR = '1';
  if (tls) {
    // Serve HTTPS directly: the issuer becomes https://localhost:PORT.
    env.LATCHKEY_SERVER__TLS__CERT = tls.cert;
    env.LATCHKEY_SERVER__TLS__KEY = tls.key;
  }
  return env;
}

/**
 * Starts `latchkey serve` in a new temp directory. `seed(cli)` runs first, against the same
 * directory (and so the same database), before the server is up. With `tls: { cert, key }`
 * (PEM paths) the server serves HTTPS itself and the issuer is `https://localhost:PORT`.
 * `env` adds configuration overrides for the server and the CLI (`LATCHKEY_*` names, nested
 * keys joined by `__`, e.g. `{ LATCHKEY_REGISTRATION__MODE: 'open' }`). `files` ({ name:
 * text }) are written into the directory first (relative paths in the configuration resolve
 * there). With `publicHost` the server's `public_url`, and so the issuer, is
 * `http://PUBLIC_HOST:PORT` instead of localhost.
 */
export async function startLatchkey({ seed, tls, env: overrides = {}, files = {}, publicHost = 'localhost' } = {}) {
  if (!existsSync(LATCHKEY_BIN)) {
    throw new Error(`${LATCHKEY_BIN} is missing: run \`cargo build -p latchkey\` (bash e2e/run does)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const env = { ...serverEnv(port, tls), ...overrides };
    const issuer = `${tls ? 'https' : 'http'}://${publicHost}:${port}`;
    if (publicHost !== 'localhost') env.LATCHKEY_SERVER__PUBLIC_URL = issuer;
    const cli = makeCli(dir, env);
    if (attempt === 0 && seed) await seed(cli);
    try {
      const server = await spawnServer(dir, env);
      if (server.issuer !== issuer) {
        await server.stop();
        throw new Error(`server printed issuer ${server.issuer}, expected ${issuer}`);
      }
      return {
        dir,
        port,
        issuer,
        cli,
        logs: server.logs,
        /**
         * Stops the server (again: a no-op) and removes its directory, unless `keepDir` (to
         * read what the server left on disk; a later `stop()` removes it) or E2E_KEEP_DIRS.
         */
        async stop({ keepDir = false } = {}) {
          await server.stop();
          if (!keepDir && !process.env.E2E_KEEP_DIRS) rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      // Most likely the port was taken between freePort() and bind: try another.
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

function makeCli(dir, env) {
  /** Runs `latchkey --json ARGS` in the server's directory; returns parsed JSON output. */
  const cli = (args, { input } = {}) => {
    const r = spawnSync(LATCHKEY_BIN, ['--json', ...args], { cwd: dir, env, input, encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(`latchkey ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    }
    const out = r.stdout.trim();
    return out ? JSON.parse(out) : null;
  };
  /** The server's directory (the CLI's working directory). */
  cli.dir = dir;
  cli.createUser = ({ username, email, name, password }) =>
    cli(['user', 'create', '--username', username, '--email', email, '--name', name, '--password-stdin'], {
      input: `${password}\n`,
    });
  /**
   * Registers a client. Options: id, name, type ('confidential'|'public'), redirectUris,
   * postLogoutRedirectUris, grantTypes, scopes, authMethod, idTokenAlg, firstParty, jwks (a
   * JWK set, written to a file for --jwks-file); logout and sessions: frontchannelLogoutUri,
   * frontchannelLogoutSessionRequired, backchannelLogoutUri, backchannelLogoutSessionRequired,
   * logoutRevokesOfflineTokens, defaultMaxAge (seconds), sessionRefreshTokens; step-up:
   * requireMfa, requirePasskey; roles: releaseClaims (e.g. ['roles', 'groups',
   * 'entitlements']), applicationRolesOnly, requireRoles (role names), requireAllRoles.
   * Returns { client, client_secret }.
   */
  cli.createClient = (o) => {
    const args = ['client', 'create', '--name', o.name ?? o.id, '--id', o.id];
    if (o.type) args.push('--type', o.type);
    for (const u of o.redirectUris ?? []) args.push('--redirect-uri', u);
    for (const u of o.postLogoutRedirectUris ?? []) args.push('--post-logout-redirect-uri', u);
    for (const g of o.grantTypes ?? ['authorization_code']) args.push('--grant-type', g);
    for (const s of o.scopes ?? ['openid']) args.push('--scope', s);
    if (o.authMethod) args.push('--auth-method', o.authMethod);
    if (o.idTokenAlg) args.push('--id-token-alg', o.idTokenAlg);
    if (o.firstParty) args.push('--first-party');
    if (o.frontchannelLogoutUri) args.push('--frontchannel-logout-uri', o.frontchannelLogoutUri);
    if (o.frontchannelLogoutSessionRequired) args.push('--frontchannel-logout-session-required');
    if (o.backchannelLogoutUri) args.push('--backchannel-logout-uri', o.backchannelLogoutUri);
    if (o.backchannelLogoutSessionRequired) args.push('--backchannel-logout-session-required');
    if (o.logoutRevokesOfflineTokens) args.push('--logout-revokes-offline-tokens');
    if (o.defaultMaxAge !== undefined) args.push('--default-max-age', String(o.defaultMaxAge));
    if (o.sessionRefreshTokens) args.push('--session-refresh-tokens');
    if (o.requireMfa) args.push('--require-mfa');
    if (o.requirePasskey) args.push('--require-passkey');
    if (o.allowLegacyAssertionAudience) args.push('--allow-legacy-assertion-audience');
    if (o.releaseClaims) args.push('--release-claims', o.releaseClaims.join(','));
    if (o.applicationRolesOnly) args.push('--application-roles-only');
    for (const r of o.requireRoles ?? []) args.push('--require-role', r);
    if (o.requireAllRoles) args.push('--require-all-roles');
    if (o.jwks) {
      const file = join(dir, `${o.id}.jwks.json`);
      writeFileSync(file, JSON.stringify(o.jwks));
      args.push('--jwks-file', file);
    }
    return cli(args);
  };
  /**
   * Registers a public (native) client on the loopback: `none` authentication, redirect URI
   * `http://127.0.0.1/callback` (RFC 8252 §7.3: any port), the name its id; `o` as for
   * createClient, and wins.
   */
  cli.createLoopbackClient = (o) =>
    cli.createClient({ name: o.id, type: 'public', authMethod: 'none', redirectUris: ['http://127.0.0.1/callback'], ...o });
  cli.createScope = (name, description) => cli(['scope', 'create', name, '--description', description]);
  /**
   * Creates a role: tenant-wide, or the application role of the client `application`;
   * `entitlements` are the rights it confers. Returns the role record.
   */
  cli.createRole = (name, { entitlements = [], application, description } = {}) => {
    const args = ['role', 'create', name];
    for (const e of entitlements) args.push('--entitlement', e);
    if (application) args.push('--application', application);
    if (description !== undefined) args.push('--description', description);
    return cli(args);
  };
  return cli;
}

function spawnServer(dir, env) {
  return new Promise((ok, fail) => {
    const child = spawn(LATCHKEY_BIN, ['serve'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const logs = { stdout: '', stderr: '' };
    let issuer = null;
    let listening = null;
    let settled = false;
    const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      stop().then(() =>
        fail(new Error(`latchkey serve did not become ready\n--- stdout ---\n${logs.stdout}\n--- stderr ---\n${logs.stderr}`)),
      );
    }, START_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      logs.stderr += d;
    });
    child.stdout.on('data', (d) => {
      logs.stdout += d;
      for (const line of logs.stdout.split('\n')) {
        const t = line.trim();
        if (t.startsWith('issuer:')) issuer = t.slice('issuer:'.length).trim();
        if (t.startsWith('listening:')) listening = t.slice('listening:'.length).trim();
      }
      if (!settled && issuer && listening) {
        settled = true;
        clearTimeout(timer);
        ok({ issuer, listening, logs, stop });
      }
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fail(
        new Error(
          `latchkey serve exited (${code ?? signal}) before it was ready\n--- stdout ---\n${logs.stdout}\n--- stderr ---\n${logs.stderr}`,
        ),
      );
    });
  });
}

/** Seeds the standard user; returns its record (with `sub`). */
export function seedAda(cli) {
  return cli.createUser(ADA);
}

// ---------------------------------------------------------------------------------------
// Browser

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * A headless Chromium with a new, empty profile (its own user data dir), and one page.
 * Everything this browser does is recorded in `navigations` (main-frame requests).
 * `thirdPartyCookies: true` sets the profile's cookie setting to "Allow third-party cookies"
 * (Chromium here blocks them by default, so a frame from another site cannot read its own
 * cookies).
 */
export async function openBrowser({ args = [], thirdPartyCookies = false } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'latchkey-e2e-chromium-'));
  if (thirdPartyCookies) {
    mkdirSync(join(userDataDir, 'Default'));
    writeFileSync(join(userDataDir, 'Default', 'Preferences'), JSON.stringify({ profile: { cookie_controls_mode: 0 } }));
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    // Diagnostics only: E2E_BYPASS_CSP=1 makes Chromium ignore Latchkey's Content-Security-Policy,
    // to tell a CSP problem from anything else. Never set in `e2e/run`.
    bypassCSP: process.env.E2E_BYPASS_CSP === '1',
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const navigations = [];
  page.on('request', (req) => {
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      navigations.push({ method: req.method(), url: req.url() });
    }
  });
  const console = [];
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  return {
    context,
    page,
    navigations,
    console,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn(browser)` with a fresh browser (`openBrowser(options)`), always closing it. */
export async function withBrowser(fn, options) {
  const browser = await openBrowser(options);
  try {
    return await fn(browser);
  } catch (e) {
    e.message += `\n(browser at ${browser.page.url()}; navigations: ${browser.navigations
      .map((n) => `${n.method} ${n.url}`)
      .join(' -> ')}; console: ${browser.console.join(' | ')})`;
    throw e;
  } finally {
    await browser.close();
  }
}

const rpInterceptors = new WeakMap();

/**
 * Intercepts every request to the (unresolvable) https relying party: GETs and POSTs are
 * recorded and answered with a tiny page, so the browser stops there. Idempotent per page.
 *
 * This uses the DevTools protocol's Fetch domain directly: Playwright's own `page.route`
 * does not take effect on the Chromium that Debian ships (older than the one this
 * playwright-core release targets), so the navigation would go to the network instead.
 */
export async function interceptRp(page) {
  if (rpInterceptors.has(page)) return rpInterceptors.get(page);
  const hits = [];
  let waiters = [];
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Fetch.requestPaused', async (e) => {
    const url = new URL(e.request.url);
    if (url.pathname !== '/favicon.ico') {
      let body = e.request.postData ?? '';
      if (!body && e.request.postDataEntries) {
        body = e.request.postDataEntries.map((x) => Buffer.from(x.bytes ?? '', 'base64').toString('utf8')).join('');
      }
      const hit = { method: e.request.method, url: e.request.url, body, headers: e.request.headers };
      hits.push(hit);
      for (const w of waiters) w(hit);
      waiters = [];
    }
    await cdp
      .send('Fetch.fulfillRequest', {
        requestId: e.requestId,
        responseCode: 200,
        responseHeaders: [{ name: 'content-type', value: 'text/html; charset=utf-8' }],
        body: Buffer.from('<!doctype html><title>Relying party</title><h1>Relying party</h1>').toString('base64'),
      })
      .catch(() => {});
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${RP_ORIGIN}/*`, requestStage: 'Request' }] });
  const interceptor = {
    hits,
    /** The next request that reaches the relying party. */
    next() {
      return new Promise((r) => waiters.push(r));
    },
  };
  rpInterceptors.set(page, interceptor);
  return interceptor;
}

/** Whether the page shows Latchkey's login form. */
export async function onLoginPage(page, issuer) {
  const url = new URL(page.url());
  return url.origin === new URL(issuer).origin && url.pathname === '/login';
}

/** Fills and submits the login form (the page must show it). */
export async function signIn(page, { username = ADA.username, password = ADA.password } = {}) {
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/**
 * Watches the page for navigations that Chromium blocks under Latchkey's
 * Content-Security-Policy (it logs them to the console). `guard(p)` rejects as soon as one
 * happens, with the console message, instead of waiting for a timeout.
 */
export function watchCsp(page) {
  let reject;
  const violation = new Promise((_, r) => {
    reject = r;
  });
  violation.catch(() => {});
  const listener = (m) => {
    const text = m.text();
    if (text.includes('violates the following Content Security Policy directive')) {
      reject(new Error(`Chromium blocked a navigation under Latchkey's Content-Security-Policy (page ${page.url()}): ${text}`));
    }
  };
  page.on('console', listener);
  return {
    guard: (p) => Promise.race([p, violation]),
    dispose: () => page.off('console', listener),
  };
}

/**
 * Drives the browser from `authorizationUrl` to the client's redirect URI: signs in when the
 * login page shows, answers the consent page with `consent` ('Allow' or 'Deny') when it
 * shows. `arrived()` resolves with what the relying party received. Returns
 * { hit, sawLogin, sawConsent }.
 */
export async function authorizeInBrowser(page, issuer, authorizationUrl, arrived, { consent = 'Allow', user } = {}) {
  const issuerOrigin = new URL(issuer).origin;
  const onIssuerPage = (u, path) => u.origin === issuerOrigin && u.pathname === path;
  const csp = watchCsp(page);
  let sawLogin = false;
  let sawConsent = false;
  let done = false;
  const result = arrived().then((hit) => {
    done = true;
    return hit;
  });
  try {
    await csp.guard(page.goto(authorizationUrl.toString()));
    // Each step either lands on a Latchkey page or on the relying party.
    for (let step = 0; step < 4 && !done; step++) {
      const where = await csp.guard(
        Promise.race([
          result.then(() => 'rp'),
          page
            .waitForURL((u) => onIssuerPage(u, '/login') || onIssuerPage(u, '/consent'))
            .then(() => new URL(page.url()).pathname),
        ]),
      );
      if (where === 'rp') break;
      if (where === '/login') {
        if (sawLogin) throw new Error(`the login page showed again after signing in: ${await page.content()}`);
        sawLogin = true;
        await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
        await signIn(page, user);
        await csp.guard(
          page.waitForURL((u) => !onIssuerPage(u, '/login')).catch(async () => {
            throw new Error(`still on the login page after signing in: ${await page.locator('body').innerText()}`);
          }),
        );
      } else if (where === '/consent') {
        if (sawConsent) throw new Error('the consent page showed twice');
        sawConsent = true;
        await page.getByRole('button', { name: consent }).click();
        await csp.guard(page.waitForURL((u) => !onIssuerPage(u, '/consent')));
      }
    }
    const hit = await csp.guard(
      withTimeout(result, 15_000, async () => `the relying party was not reached; page ${page.url()}: ${await page.content()}`),
    );
    return { hit, sawLogin, sawConsent };
  } finally {
    csp.dispose();
  }
}

/** openid-client's configuration for `clientId` at `issuer`, by discovery (plain http allowed). */
export function discoverClient(issuer, clientId, auth, metadata) {
  return oidc.discovery(new URL(issuer), clientId, metadata, auth, { execute: [oidc.allowInsecureRequests] });
}

/**
 * An authorization code + PKCE + nonce flow for openid-client's `config` in the browser, then
 * the token request (ID token validated by openid-client). With `app` (a startLoopbackRp())
 * the request starts at the app on 127.0.0.1 and returns to its `/callback`; without, the
 * redirect URI is `${RP_ORIGIN}/callback` (intercepted in Chromium). `options` go to
 * authorizeInBrowser. Returns { tokens, callback (URL), hit, sawLogin, sawConsent }.
 */
export async function codeFlow(page, issuer, config, { app, scope = 'openid', options } = {}) {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: app ? app.redirectUri : `${RP_ORIGIN}/callback`,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  let start = url;
  let arrived;
  if (app) {
    start = app.goTo(url);
    const response = app.waitFor((h) => h.path === '/callback' && new URL(h.url).searchParams.get('state') === state, {
      timeoutMs: 30_000,
      what: 'the authorization response',
    });
    response.catch(() => {});
    arrived = () => response;
  } else {
    arrived = (await interceptRp(page)).next;
  }
  const flow = await authorizeInBrowser(page, issuer, start, arrived, options);
  const callback = new URL(flow.hit.url);
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  return { ...flow, callback, tokens };
}

async function withTimeout(promise, ms, describe) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(async () => fail(new Error(await describe())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------
// A relying party on 127.0.0.1 (public clients, RFC 8252 loopback redirect)

/**
 * A tiny HTTP server on 127.0.0.1: `GET /start` redirects to whatever `goTo(url)` set (so
 * authorization requests start from another site, like a real app's "Sign in" link), and
 * every other request is recorded (method, URL, body, headers, arrival time `at`) and
 * answered with a small page, or with what `respond(hit)` returns when it returns something:
 * `{ status, headers, body }` (each optional). That is how a test serves its own pages and
 * its back-channel logout endpoints.
 */
export async function startLoopbackRp({ respond } = {}) {
  const hits = [];
  let waiters = [];
  let next = null;
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (url.pathname === '/start' && next) {
      res.writeHead(302, { location: next });
      res.end();
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const hit = { method: req.method, url: url.href, path: url.pathname, body, headers: req.headers, at: Date.now() };
      if (url.pathname !== '/favicon.ico') {
        hits.push(hit);
        for (const w of waiters) w(hit);
        waiters = waiters.filter((w) => !w.once);
      }
      const custom = respond?.(hit);
      if (custom) {
        res.writeHead(custom.status ?? 200, custom.headers ?? { 'content-type': 'text/html; charset=utf-8' });
        res.end(custom.body ?? '');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Loopback app</title><h1>Loopback app</h1>');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    hits,
    /** Sets where `/start` sends the browser; returns the `/start` URL. */
    goTo(url) {
      next = url.toString();
      return `${origin}/start`;
    },
    /** The next request that reaches the app. */
    next() {
      return new Promise((r) => {
        r.once = true;
        waiters.push(r);
      });
    },
    /**
     * The `count`-th request (1-based, counting those already recorded) for which `match(hit)`
     * holds; fails after `timeoutMs` with `what` and every request received so far.
     */
    waitFor(match, { count = 1, timeoutMs = 10_000, what = 'a request' } = {}) {
      return new Promise((ok, fail) => {
        const matching = () => hits.filter(match);
        const check = () => {
          const m = matching();
          if (m.length < count) return false;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== check);
          ok(m[count - 1]);
          return true;
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          const seen = hits.map((h) => `${h.method} ${h.url}`).join('\n  ');
          fail(new Error(`${what} did not reach the app within ${timeoutMs} ms (${matching().length} of ${count}); it received:\n  ${seen || '(nothing)'}`));
        }, timeoutMs);
        if (!check()) waiters.push(check);
      });
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(r));
    },
  };
}

/**
 * Polls `probe()` (sync or async) every `intervalMs` until `done(value)` holds, at most
 * `timeoutMs`; returns the last value, so the caller asserts on it (and a timeout fails with
 * what was last seen, never silently).
 */
export async function pollUntil(probe, done, { timeoutMs = 10_000, intervalMs = 100 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() >= until) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Decodes a JWT's header and payload without verifying it (for assertions only). */
export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  const dec = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: dec(h), payload: dec(p) };
}

// ---------------------------------------------------------------------------------------
// Client keys (private_key_jwt) and TLS material

/**
 * A new signing key pair for a client (WebCrypto). Returns { privateKey, publicJwk, kid }:
 * the public JWK carries `kid`, `alg` and `use`, ready for a JWK set; the private CryptoKey
 * is not extractable.
 */
export async function generateClientKey({ kid, alg = 'ES256' } = {}) {
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const { privateKey, publicKey } = await webcrypto.subtle.generateKey(params, false, ['sign', 'verify']);
  const jwk = await webcrypto.subtle.exportKey('jwk', publicKey);
  delete jwk.key_ops;
  delete jwk.ext;
  const publicJwk = { ...jwk, kid, alg, use: 'sig' };
  return { privateKey, publicJwk, kid };
}

/**
 * The TLS material `e2e/run` generated for the HTTPS lane: a throwaway CA (which Node trusts
 * through NODE_EXTRA_CA_CERTS) and a certificate for localhost. Returns { cert, key, ca,
 * spki } where `spki` is the base64 SHA-256 of the server key's SubjectPublicKeyInfo (for
 * Chromium's --ignore-certificate-errors-spki-list).
 */
export function tlsMaterial() {
  const dir = process.env.E2E_TLS_DIR;
  if (!dir || !process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error('E2E_TLS_DIR and NODE_EXTRA_CA_CERTS are not set: run this file through `bash e2e/run`');
  }
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server.key');
  const ca = join(dir, 'ca.pem');
  for (const f of [cert, key, ca]) if (!existsSync(f)) throw new Error(`${f} is missing`);
  if (resolve(process.env.NODE_EXTRA_CA_CERTS) !== resolve(ca)) {
    throw new Error(`NODE_EXTRA_CA_CERTS is ${process.env.NODE_EXTRA_CA_CERTS}, not the test CA ${ca}`);
  }
  const spkiDer = createPublicKey(readFileSync(key)).export({ type: 'spki', format: 'der' });
  const spki = createHash('sha256').update(spkiDer).digest('base64');
  return { cert, key, ca, spki };
}

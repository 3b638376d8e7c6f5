// Forward-auth behind real reverse proxies: nginx (auth_request), Caddy (forward_auth) and
// Traefik v3 (ForwardAuth), each run with the configuration docs/forward-auth/ documents, in
// front of an app that echoes what it received. Latchkey's public URL is
// http://auth.latchkey.test:PORT and the app is http://app.latchkey.test:PROXY_PORT (Chromium
// resolves *.latchkey.test to 127.0.0.1; Node sends the Host header itself), so the
// forward-auth cookie crosses hosts under cookie_domain = latchkey.test as in a deployment.
//
// For each proxy: a browser is sent to sign in and comes back to the page it asked for, and
// the app is told who signed in; a bypass path needs nothing; a path that needs a role is
// refused until the role is granted; API keys (Bearer, and Basic with the key as password)
// act for their owner, a read-only key cannot POST, a revoked key stops working;
// /forward-auth/start never redirects off the protected hosts; identity headers, Latchkey's
// cookies and the Authorization header a client sends never reach the app; encoded-path
// tricks do not get past a rule; nor do a client's own X-Original-URL or X-Forwarded-*
// headers, an absolute-form request line naming another host than the Host header, another
// case of a protected path, or a lowercase method.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ADA, onLoginPage, pollUntil, seedAda, signIn, startLatchkey, watchCsp, withBrowser } from '../lib/latchkey.mjs';
import { headerValues, proxyBinary, proxyRequest, rawRequest, startEchoApp, startProxy } from '../lib/proxies.mjs';

const APP_HOST = 'app.latchkey.test';
const AUTH_HOST = 'auth.latchkey.test';
/** Another host the rules cover, open to anyone: a request decided as its would pass. */
const OPEN_HOST = 'open.latchkey.test';
const COOKIE_DOMAIN = 'latchkey.test';
const FORWARD_AUTH_COOKIE = 'latchkey-forward-auth';

/** Chromium reaches every *.latchkey.test host on the loopback (the proxy, or Latchkey). */
const BROWSER = {
  args: [`--host-resolver-rules=MAP *.${COOKIE_DOMAIN} 127.0.0.1`, '--disable-features=HttpsUpgrades'],
};

/** Signs in, is refused /admin until granted `admin`. */
const GRACE = { username: 'grace', email: 'grace@example.com', name: 'Grace Hopper', password: 'cobol compiler 1959' };
/** Holds nothing; her API key probes the path tricks. */
const EVE = { username: 'eve', email: 'eve@example.com', name: 'Eve', password: 'eavesdropper 1984' };

/** How long the server may take to see a change the CLI made (its change poll is ~1 s). */
const PROPAGATION_MS = 10_000;

const RULES = `# The e2e rules: first match wins, no match is denied.

# The public pages: anyone, no sign-in.
[[rule]]
hosts = ["${APP_HOST}"]
paths = ["/public/*"]
policy = "bypass"

# The feed: anyone may read it; any other method needs sign-in (the rest of the app).
[[rule]]
hosts = ["${APP_HOST}"]
paths = ["/feed/*"]
methods = ["GET", "HEAD"]
policy = "bypass"

# Never served, to anyone.
[[rule]]
hosts = ["${APP_HOST}"]
paths = ["/internal/*"]
policy = "deny"

# The admin pages: signed in, holding the admin role.
[[rule]]
hosts = ["${APP_HOST}"]
paths = ["/admin/*"]
policy = "one_factor"
roles = ["admin"]

# The rest of the app: anyone signed in.
[[rule]]
hosts = ["${APP_HOST}"]
policy = "one_factor"

# Another site, open to anyone. The proxies in the tests do not serve it: it is here so that
# a request mistaken for one of its would be let through.
[[rule]]
hosts = ["${OPEN_HOST}"]
paths = ["/*"]
policy = "bypass"
`;

/** Client-sent headers that only Latchkey may set (also the `_` spellings some app servers merge). */
const FORGED = {
  'Remote-User': 'mallory',
  'Remote-Email': 'mallory@evil.example',
  'Remote-Name': 'Mallory',
  'Remote-Groups': 'admins',
  'Remote-Roles': 'admin',
  'Remote-Truncated': 'Remote-Roles',
  Remote_User: 'mallory',
  Remote_Roles: 'admin',
};

const basic = (password) => `Basic ${Buffer.from(`anyone:${password}`).toString('base64')}`;

/** The identity headers the app received, by lowercased name (also `_` spellings). */
function remoteHeaders(hit) {
  return Object.fromEntries(Object.entries(hit.headers).filter(([k]) => /^remote[-_]/.test(k)));
}

/** Fails when the app received a Latchkey cookie or an Authorization header. */
function assertNoCredentials(hit, kind) {
  assert.equal(hit.headers.authorization, undefined, `${kind} passed Authorization to the app`);
  const cookie = hit.headers.cookie ?? '';
  assert.doesNotMatch(cookie, /(^|;\s*)(__Secure-|__Host-)?latchkey-/, `${kind} passed a Latchkey cookie to the app: ${cookie}`);
}

for (const kind of ['nginx', 'caddy', 'traefik']) {
  describe(`forward-auth behind ${kind}`, () => {
    let lk;
    let app;
    let proxy;
    const keys = {};

    before(async () => {
      // Fails (never skips) when the proxy is not installed: CI must run these.
      proxyBinary(kind);
      app = await startEchoApp();
      lk = await startLatchkey({
        publicHost: AUTH_HOST,
        files: { 'access-rules.toml': RULES },
        env: {
          LATCHKEY_SERVER__TRUSTED_PROXIES: '["127.0.0.1/32"]',
          LATCHKEY_FORWARD_AUTH__RULES: 'access-rules.toml',
          LATCHKEY_FORWARD_AUTH__COOKIE_DOMAIN: COOKIE_DOMAIN,
        },
        seed(cli) {
          seedAda(cli);
          // Remote-Email carries only a verified address (grace's stays unverified).
          cli(['user', 'update', ADA.username, '--email-verified', 'true']);
          cli.createUser(GRACE);
          cli.createUser(EVE);
          cli.createRole('admin');
          cli.createRole('editor');
          cli(['group', 'create', 'engineering']);
          cli(['group', 'add-member', 'engineering', ADA.username]);
          cli(['user', 'grant', ADA.username, 'editor']);
          const key = (owner, name, ...extra) =>
            cli(['api-key', 'create', '--owner', owner, '--name', name, '--scope', 'openid', ...extra]);
          keys.ada = key(ADA.username, 'everything').secret;
          keys.readOnly = key(ADA.username, 'reader', '--read-only').secret;
          const doomed = key(ADA.username, 'doomed');
          keys.doomed = doomed.secret;
          keys.doomedId = doomed.key.id;
          keys.eve = key(EVE.username, 'probe').secret;
        },
      });
      proxy = await startProxy(kind, { appHost: APP_HOST, upstream: app.address, latchkey: `127.0.0.1:${lk.port}` });
    });

    after(async () => {
      await proxy?.stop();
      await lk?.stop();
      await app?.close();
    });

    const appOrigin = () => `http://${APP_HOST}:${proxy.port}`;
    /** A request to the app through the proxy. */
    const send = (path, options = {}) => proxyRequest(proxy, { host: `${APP_HOST}:${proxy.port}`, path, ...options });
    /** A request straight to Latchkey, as the browser names it. */
    const toLatchkey = (path, options = {}) => proxyRequest(lk, { host: `${AUTH_HOST}:${lk.port}`, path, ...options });
    /** Runs `fn`; returns the requests the app received meanwhile. */
    const hitsDuring = async (fn) => {
      const before = app.hits.length;
      const result = await fn();
      return { result, hits: app.hits.slice(before) };
    };
    const diagnose = (r) => `${r.status} ${JSON.stringify(r.headers)} ${r.body.slice(0, 300)}\n${proxy.logs().slice(-3000)}`;

    test('a browser is sent to sign in, comes back to the page it asked for, and the app is told who it is', async () => {
      await withBrowser(async ({ page, context, navigations }) => {
        // The app's own cookie on its host: it must still reach the app (except behind
        // Traefik, which can only drop the whole Cookie header).
        await context.addCookies([{ name: 'theme', value: 'dark', url: appOrigin() }]);
        const target = `${appOrigin()}/reports/2024?view=full&x=%C3%A9`;
        const csp = watchCsp(page);
        try {
          await csp.guard(page.goto(target));
          assert.equal(await onLoginPage(page, lk.issuer), true, `expected Latchkey's sign-in page, at ${page.url()}`);
          const start = navigations.map((n) => new URL(n.url)).find((u) => u.origin === lk.issuer && u.pathname === '/forward-auth/start');
          assert.equal(start?.searchParams.get('rd'), target, 'the proxy sent the browser to /forward-auth/start with the page it asked for');
          const arrived = await hitsDuring(async () => {
            await signIn(page);
            await csp.guard(page.waitForURL(target));
          });
          const hit = arrived.hits.find((h) => h.path === '/reports/2024?view=full&x=%C3%A9');
          assert.ok(hit, `the app received the page: ${JSON.stringify(arrived.hits.map((h) => h.path))}`);
          assert.deepEqual(remoteHeaders(hit), {
            'remote-user': ADA.username,
            'remote-email': ADA.email,
            'remote-name': ADA.name,
            'remote-groups': 'engineering',
            'remote-roles': 'editor',
          });
          assertNoCredentials(hit, kind);
          if (kind === 'traefik') assert.equal(hit.headers.cookie, undefined, 'Traefik drops the Cookie header');
          else assert.equal(hit.headers.cookie, 'theme=dark', 'the app’s own cookie passes');

          // The forward-auth cookie is for the whole cookie domain; the SSO cookie stays on
          // Latchkey's host.
          const cookies = await context.cookies();
          const fa = cookies.find((c) => c.name === FORWARD_AUTH_COOKIE);
          assert.ok(fa, `a ${FORWARD_AUTH_COOKIE} cookie: ${JSON.stringify(cookies)}`);
          assert.equal(fa.domain, `.${COOKIE_DOMAIN}`);
          assert.equal(fa.path, '/');
          assert.equal(fa.httpOnly, true);
          assert.equal(fa.sameSite, 'Lax');
          const session = cookies.find((c) => c.name === 'latchkey-session');
          assert.ok(session, `a latchkey-session cookie: ${JSON.stringify(cookies)}`);
          assert.equal(session.domain, AUTH_HOST, 'the SSO cookie is host-only');

          // Signed in: another page loads at once.
          const other = await hitsDuring(() => page.goto(`${appOrigin()}/other`));
          assert.equal(other.result.status(), 200);
          assert.equal(other.hits.length, 1);
          assert.equal(other.hits[0].headers['remote-user'], ADA.username);

          // Even signed in, /forward-auth/start never sends the browser off the protected hosts.
          const evil = await page.goto(`${lk.issuer}/forward-auth/start?rd=${encodeURIComponent('https://evil.example/')}`);
          assert.equal(evil.status(), 400);
          assert.equal(new URL(page.url()).host, `${AUTH_HOST}:${lk.port}`);
          assert.ok(!navigations.some((n) => n.url.includes('evil.example/') && !n.url.startsWith(lk.issuer)), 'never went to evil.example');
        } finally {
          csp.dispose();
        }
      }, BROWSER);
    });

    test('a bypass path is served without sign-in and without identity', async () => {
      const { result: r, hits } = await hitsDuring(() => send('/public/hello.txt', { headers: { accept: 'text/html' } }));
      assert.equal(r.status, 200, diagnose(r));
      assert.equal(hits.length, 1);
      assert.deepEqual(remoteHeaders(hits[0]), {});
    });

    test('without credentials: a browser is sent to sign in, an API caller gets 401 with challenges', async () => {
      const page = '/reports?id=7';
      const { result: browser, hits: h1 } = await hitsDuring(() => send(page, { headers: { accept: 'text/html,application/xhtml+xml' } }));
      assert.equal(browser.status, 302, diagnose(browser));
      const location = new URL(browser.headers.location);
      assert.equal(`${location.origin}${location.pathname}`, `${lk.issuer}/forward-auth/start`);
      assert.equal(location.searchParams.get('rd'), `${appOrigin()}${page}`);

      const { result: api, hits: h2 } = await hitsDuring(() => send(page, { headers: { accept: 'application/json' } }));
      assert.equal(api.status, 401, diagnose(api));
      assert.equal(api.headers.location, undefined);
      const challenges = headerValues(api.rawHeaders, 'www-authenticate').join(', ');
      assert.match(challenges, /Bearer realm="latchkey"/);
      // nginx before 1.23 (Debian 12 has 1.22) passes on only the first challenge.
      if (kind !== 'nginx') assert.match(challenges, /Basic realm="latchkey"/);
      assert.equal(h1.length + h2.length, 0, 'nothing reached the app');
    });

    test('a path that needs a role: 403 without it, 200 once granted', async () => {
      await withBrowser(async ({ page }) => {
        const target = `${appOrigin()}/admin/settings`;
        await page.goto(target);
        assert.equal(await onLoginPage(page, lk.issuer), true, `expected the sign-in page, at ${page.url()}`);
        const csp = watchCsp(page);
        const refused = await hitsDuring(async () => {
          const response = page.waitForResponse((r) => r.url() === target);
          await signIn(page, GRACE);
          return csp.guard(response).finally(() => csp.dispose());
        });
        assert.equal(refused.result.status(), 403);
        assert.equal(refused.hits.length, 0, 'nothing reached the app');
        // Latchkey's "signed in" page sends the browser on (a Refresh): let that navigation
        // finish before the next one starts.
        await page.waitForURL(target, { waitUntil: 'load' });

        lk.cli(['user', 'grant', GRACE.username, 'admin']);
        const attempts = [];
        const admitted = await hitsDuring(() =>
          pollUntil(
            async () => {
              const status = (await page.goto(target)).status();
              attempts.push(status);
              return status;
            },
            (s) => s === 200,
            { timeoutMs: PROPAGATION_MS, intervalMs: 250 },
          ),
        );
        assert.equal(admitted.result, 200, `still refused ${PROPAGATION_MS} ms after the grant: ${attempts.join(', ')}`);
        assert.ok(attempts.slice(0, -1).every((s) => s === 403), `each attempt before was 403: ${attempts.join(', ')}`);
        const hit = admitted.hits.at(-1);
        assert.equal(hit.headers['remote-user'], GRACE.username);
        assert.equal(hit.headers['remote-roles'], 'admin');
        assert.equal(hit.headers['remote-email'], undefined, 'an unverified address is never sent');
      }, BROWSER);
    });

    test('API keys: Bearer or Basic acts for the owner; a read-only key cannot POST; a revoked key gets 401', async () => {
      for (const authorization of [`Bearer ${keys.ada}`, basic(keys.ada)]) {
        const { result: r, hits } = await hitsDuring(() => send('/api/things', { headers: { authorization } }));
        assert.equal(r.status, 200, `${authorization.split(' ')[0]}: ${diagnose(r)}`);
        assert.equal(hits.length, 1);
        assert.equal(hits[0].headers['remote-user'], ADA.username);
        assert.equal(hits[0].headers['remote-email'], ADA.email);
        assertNoCredentials(hits[0], kind);
      }

      const read = await send('/api/things', { headers: { authorization: `Bearer ${keys.readOnly}` } });
      assert.equal(read.status, 200, diagnose(read));
      const { result: post, hits: posted } = await hitsDuring(() =>
        send('/api/things', {
          method: 'POST',
          headers: { authorization: `Bearer ${keys.readOnly}`, 'content-type': 'application/json' },
          body: '{"name":"x"}',
        }),
      );
      assert.equal(post.status, 403, diagnose(post));
      assert.equal(posted.length, 0, 'the POST did not reach the app');
      // The full key may POST, and the body reaches the app (the proxy kept it from Latchkey only).
      const { result: ok, hits: okHits } = await hitsDuring(() =>
        send('/api/things', { method: 'POST', headers: { authorization: basic(keys.ada) }, body: 'name=x' }),
      );
      assert.equal(ok.status, 200, diagnose(ok));
      assert.equal(okHits[0]?.body, 'name=x');

      const before = await send('/api/things', { headers: { authorization: `Bearer ${keys.doomed}` } });
      assert.equal(before.status, 200, diagnose(before));
      lk.cli(['api-key', 'revoke', keys.doomedId]);
      const statuses = [];
      const revoked = await pollUntil(
        async () => {
          const r = await send('/api/things', { headers: { authorization: `Bearer ${keys.doomed}` } });
          statuses.push(r.status);
          return r;
        },
        (r) => r.status !== 200,
        { timeoutMs: 5_000, intervalMs: 200 },
      );
      assert.equal(revoked.status, 401, `after the revocation: ${statuses.join(', ')}; ${diagnose(revoked)}`);
      assert.match(headerValues(revoked.rawHeaders, 'www-authenticate').join(', '), /Bearer realm="latchkey"/);
    });

    test('/forward-auth/start refuses a return URL off the protected hosts (400, never a redirect)', async () => {
      for (const rd of ['https://evil.example/', 'http://other.latchkey.test/', 'javascript:alert(1)', `//evil.example/`]) {
        const r = await toLatchkey(`/forward-auth/start?rd=${encodeURIComponent(rd)}`, { headers: { accept: 'text/html' } });
        assert.equal(r.status, 400, `rd=${rd}: ${r.status} ${r.headers.location ?? ''}`);
        assert.equal(r.headers.location, undefined, `rd=${rd}`);
      }
      // A protected page is a fine place to come back to: the sign-in page, on Latchkey's host.
      const fine = await toLatchkey(`/forward-auth/start?rd=${encodeURIComponent(`${appOrigin()}/x`)}`, { headers: { accept: 'text/html' } });
      assert.ok([200, 302, 303].includes(fine.status), `${fine.status}`);
      if (fine.headers.location) assert.equal(new URL(fine.headers.location, lk.issuer).host, `${AUTH_HOST}:${lk.port}`);
    });

    test('identity headers, Latchkey cookies and Authorization sent by the client never reach the app', async () => {
      const cookie = `${FORWARD_AUTH_COOKIE}=forged; theme=dark; __Secure-${FORWARD_AUTH_COOKIE}=forged; latchkey-session=forged`;

      // Bypass: the app gets no identity at all.
      const bypass = await hitsDuring(() =>
        send('/public/page', { headers: { ...FORGED, cookie, authorization: 'Bearer forged', accept: 'text/html' } }),
      );
      assert.equal(bypass.result.status, 200, diagnose(bypass.result));
      assert.equal(bypass.hits.length, 1);
      assert.deepEqual(remoteHeaders(bypass.hits[0]), {});
      assertNoCredentials(bypass.hits[0], kind);

      // Allowed: exactly what Latchkey said, once; nothing of the client's.
      const allowed = await hitsDuring(() =>
        send('/dashboard', { headers: { ...FORGED, cookie: `theme=dark; ${FORWARD_AUTH_COOKIE}=forged`, authorization: `Bearer ${keys.ada}` } }),
      );
      assert.equal(allowed.result.status, 200, diagnose(allowed.result));
      assert.deepEqual(remoteHeaders(allowed.hits[0]), {
        'remote-user': ADA.username,
        'remote-email': ADA.email,
        'remote-name': ADA.name,
        'remote-groups': 'engineering',
        'remote-roles': 'editor',
      });
      assertNoCredentials(allowed.hits[0], kind);
      if (kind !== 'traefik') assert.equal(allowed.hits[0].headers.cookie, 'theme=dark');

      // Denied: forged admin headers do not make Eve an admin, and nothing reaches the app.
      const denied = await hitsDuring(() => send('/admin/users', { headers: { ...FORGED, authorization: `Bearer ${keys.eve}` } }));
      assert.equal(denied.result.status, 403, diagnose(denied.result));
      assert.equal(denied.hits.length, 0);
    });

    test('encoded-path tricks do not get past a rule (400 or 403, never the app)', async () => {
      // Eve holds no role: /admin is refused to her, /public is open. Each of these is /admin
      // in disguise, or a path Latchkey refuses to read.
      for (const path of ['/admin%2F', '/admin%2fusers', '/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin/users', '/public/..%2Fadmin']) {
        const { result: r, hits } = await hitsDuring(() => send(path, { headers: { authorization: `Bearer ${keys.eve}` } }));
        assert.ok([400, 403].includes(r.status), `${path}: ${diagnose(r)}`);
        assert.equal(hits.length, 0, `${path} reached the app as ${hits[0]?.path}`);
      }
    });

    /**
     * The callers that must not get `path`: nobody (an API caller: 401, or 403 where the
     * rules deny everyone), and Eve's key (signed in, no role: 403). `fn(path, headers)`
     * sends; each answer is checked, and that the app received nothing.
     */
    const assertRefused = async (label, path, fn) => {
      const callers = [
        { who: 'anonymous', headers: { accept: 'application/json' }, statuses: [401, 403] },
        { who: 'eve', headers: { accept: 'application/json', authorization: `Bearer ${keys.eve}` }, statuses: [403] },
      ];
      for (const { who, headers, statuses } of callers) {
        const { result: r, hits } = await hitsDuring(() => fn(path, headers));
        assert.equal(hits.length, 0, `${label} ${path} as ${who} reached the app as ${JSON.stringify(hits[0])} (${r.status})`);
        assert.ok(statuses.includes(r.status), `${label} ${path} as ${who}: ${r.status} ${(r.head ?? JSON.stringify(r.headers)).slice(0, 300)} ${r.body.slice(0, 200)}`);
      }
    };

    test('a client’s own X-Original-URL or X-Forwarded-* headers do not decide another request than the app gets', async () => {
      const appUrl = `http://${APP_HOST}:${proxy.port}`;
      // Each names a request that would pass (a bypass path, or the open host) instead of
      // the one sent. They go one set at a time: a set Latchkey refused must not hide one
      // it would have believed.
      const forgeries = {
        'X-Original-URL of a bypass path': { 'X-Original-URL': `${appUrl}/public/x`, 'X-Original-Method': 'GET' },
        'X-Original-URL of the open host': { 'X-Original-URL': `http://${OPEN_HOST}:${proxy.port}/x`, 'X-Original-Method': 'GET' },
        'X-Original-URI': { 'X-Original-URI': '/public/x', 'X-Original-Method': 'GET' },
        'X-Forwarded-* of a bypass path': { 'X-Forwarded-Method': 'GET', 'X-Forwarded-Proto': 'http', 'X-Forwarded-Host': `${APP_HOST}:${proxy.port}`, 'X-Forwarded-Uri': '/public/x' },
        'X-Forwarded-* of the open host': { 'X-Forwarded-Method': 'GET', 'X-Forwarded-Proto': 'http', 'X-Forwarded-Host': OPEN_HOST, 'X-Forwarded-Uri': '/x' },
      };
      for (const [label, forged] of Object.entries(forgeries)) {
        for (const path of ['/admin/x', '/internal/x']) {
          await assertRefused(label, path, (p, headers) => send(p, { headers: { ...headers, ...forged } }));
        }
        // The same headers on a path that passes anyway change nothing.
        const { result: r, hits } = await hitsDuring(() => send('/public/y', { headers: { accept: 'application/json', ...forged } }));
        assert.equal(r.status, 200, `${label} on /public/y: ${diagnose(r)}`);
        assert.equal(hits[0]?.path, '/public/y');
      }
      // Latchkey itself: /forward-auth reads only X-Forwarded-*, /forward-auth/nginx only
      // X-Original-URL and X-Original-Method.
      const forwarded = { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': APP_HOST, 'x-forwarded-uri': '/admin/x', accept: 'application/json' };
      const original = { 'x-original-url': `http://${APP_HOST}/public/x`, 'x-original-method': 'GET' };
      const both = await toLatchkey('/forward-auth', { headers: { ...forwarded, ...original } });
      assert.equal(both.status, 401, `/forward-auth decided on X-Original-URL: ${both.status} ${both.body}`);
      const nginxFlavor = await toLatchkey('/forward-auth/nginx', { headers: { ...forwarded, 'x-forwarded-uri': '/public/x', 'x-original-url': `http://${APP_HOST}/admin/x` } });
      assert.equal(nginxFlavor.status, 400, `/forward-auth/nginx without X-Original-Method: ${nginxFlavor.status} ${nginxFlavor.body}`);
    });

    test('an absolute-form request line is decided for the host it names, the one the proxy routes on', async () => {
      const port = proxy.port;
      const raw = (target, host, headers = {}) =>
        rawRequest(
          proxy,
          `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('')}Connection: close\r\n\r\n`,
        );
      // The proxy serves the app's host: the control, so that the refusals below are not
      // a proxy refusing absolute-form altogether.
      const { result: control, hits } = await hitsDuring(() => raw(`http://${APP_HOST}:${port}/public/abs`, `${OPEN_HOST}:${port}`));
      assert.equal(control.status, 200, `control: ${control.head} ${control.body.slice(0, 200)}`);
      assert.equal(hits.length, 1);
      assert.equal(hits[0].path, '/public/abs');
      // The app's host in the request line, the open host in Host: the app's rules decide.
      for (const path of ['/admin/x', '/internal/x']) {
        await assertRefused('absolute-form, Host: open', path, (p, headers) => raw(`http://${APP_HOST}:${port}${p}`, `${OPEN_HOST}:${port}`, headers));
      }
      const { result: anon, hits: anonHits } = await hitsDuring(() => raw(`http://${APP_HOST}:${port}/reports`, `${OPEN_HOST}:${port}`, { accept: 'application/json' }));
      assert.equal(anonHits.length, 0, `absolute-form /reports reached the app as ${JSON.stringify(anonHits[0])}`);
      assert.equal(anon.status, 401, `absolute-form /reports: ${anon.head}`);
      // The open host, which this proxy does not serve, gets nothing of the app: named in
      // Host, or in the request line with the app's host in Host.
      const other = [
        ['Host: open', () => send('/admin/x', { host: `${OPEN_HOST}:${port}`, headers: { accept: 'application/json' } })],
        ['Host: open, port-less', () => send('/admin/x', { host: OPEN_HOST, headers: { accept: 'application/json' } })],
        ['absolute-form open, Host: app', () => raw(`http://${OPEN_HOST}:${port}/admin/x`, `${APP_HOST}:${port}`, { accept: 'application/json' })],
      ];
      for (const [label, fn] of other) {
        const { result: r, hits: h } = await hitsDuring(fn);
        assert.equal(h.length, 0, `${label} reached the app as ${JSON.stringify(h[0])} (${r.status})`);
        if (kind === 'nginx') assert.equal(r.status, 421, `${label}: ${r.status} ${(r.head ?? '').slice(0, 200)}`);
      }
    });

    test('another case or a trailing slash of a protected path is protected; a bypass path is only its own case', async () => {
      for (const path of ['/ADMIN/x', '/Admin/x', '/admin/X/', '/ADMIN', '/admin/', '/%41DMIN/x', '/%61dmin/x', '/INTERNAL/x', '/Internal/', '/internal/x/']) {
        await assertRefused('case', path, (p, headers) => send(p, { headers }));
      }
      // Bypass is exact: /PUBLIC/x is the rest of the app, for which one signs in.
      const { result: r, hits } = await hitsDuring(() => send('/PUBLIC/x', { headers: { accept: 'application/json' } }));
      assert.equal(r.status, 401, diagnose(r));
      assert.equal(hits.length, 0);
    });

    test('a lowercase method is refused, never decided as GET', async () => {
      const raw = (method, path, headers) =>
        rawRequest(
          proxy,
          `${method} ${path} HTTP/1.1\r\nHost: ${APP_HOST}:${proxy.port}\r\n${Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('')}Connection: close\r\n\r\n`,
        );
      // The control: the feed is open to GET.
      const { result: feed, hits: feedHits } = await hitsDuring(() => raw('GET', '/feed/x', { accept: 'application/json' }));
      assert.equal(feed.status, 200, `GET /feed/x: ${feed.head}`);
      assert.equal(feedHits.length, 1);
      // `get` is not GET (to the app either): not the feed's bypass, the rest of the app.
      for (const method of ['get', 'Get', 'head']) {
        for (const path of ['/feed/x', '/reports', '/admin/x', '/internal/x']) {
          const { result: r, hits } = await hitsDuring(() => raw(method, path, { accept: 'application/json' }));
          assert.equal(hits.length, 0, `${method} ${path} (anonymous) reached the app as ${JSON.stringify(hits[0])} (${r.status})`);
          assert.ok([400, 401, 403, 405, 501].includes(r.status), `${method} ${path}: ${r.head.slice(0, 300)} ${r.body.slice(0, 200)}`);
        }
      }
      // A read-only key that may GET must not write with `post`.
      const { result: r, hits } = await hitsDuring(() => raw('post', '/api/things', { authorization: `Bearer ${keys.readOnly}`, 'content-length': '0' }));
      assert.equal(hits.length, 0, `post with a read-only key reached the app as ${JSON.stringify(hits[0])} (${r.status})`);
      // Eve may read the rest of the app; she does not get in with a lowercase method either
      // (Latchkey refuses to decide on it).
      const { result: e, hits: eh } = await hitsDuring(() => raw('get', '/reports', { authorization: `Bearer ${keys.eve}` }));
      assert.equal(eh.length, 0, `get /reports with Eve's key reached the app as ${JSON.stringify(eh[0])} (${e.status})`);
    });

    test('Latchkey answers /forward-auth only to a trusted proxy', async () => {
      const headers = { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': APP_HOST, 'x-forwarded-uri': '/public/x' };
      const trusted = await toLatchkey('/forward-auth', { headers });
      assert.equal(trusted.status, 200, `from 127.0.0.1 (trusted): ${trusted.status} ${trusted.body}`);
      const untrusted = await toLatchkey('/forward-auth', { headers, localAddress: '127.0.0.2' });
      assert.equal(untrusted.status, 403, `from 127.0.0.2: ${untrusted.status} ${untrusted.body}`);
    });
  });
}

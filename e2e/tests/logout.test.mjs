// Single sign-on across two clients, then every OIDC logout channel, against a real Latchkey
// and Chromium: RP-Initiated Logout 1.0, Front-Channel Logout 1.0 (hidden iframes on the
// signed-out page) and Back-Channel Logout 1.0 (logout tokens POSTed by the server, verified
// here with jose against the issuer's JWKS), including the retry of a failing endpoint;
// refresh tokens at logout; ending another browser's session from the account page.
//
// The relying party runs on 127.0.0.1, Latchkey on localhost: another site, so the browser
// applies its cross-site cookie and framing rules as in a real deployment.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { SignJWT, createRemoteJWKSet, generateKeyPair, jwtVerify } from 'jose';

import {
  RP_ORIGIN,
  codeFlow,
  decodeJwt,
  discoverClient,
  onLoginPage,
  seedAda,
  startLatchkey,
  startLoopbackRp,
  withBrowser,
  pollUntil,
} from '../lib/latchkey.mjs';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Back-channel delivery is asynchronous (a queue in the database, usually 1–2 s). */
const DELIVERY_BOUND_MS = 10_000;
/**
 * A failed delivery is retried with backoff, the first retry about 2 s later: the second
 * attempt must come within this bound (generous for a debug build on a busy machine).
 */
const RETRY_BOUND_MS = 20_000;
/** The signed-out page waits a few seconds at most for the front-channel iframes. */
const SIGNED_OUT_BOUND_MS = 15_000;

let lk;
let ada;
let app;
let jwks;
let md;
let webSecret;
/** jti values whose first delivery the app answered with a 500. */
const failedOnce = new Set();

/** The `sid` of the logout token a back-channel request carries (undefined if none). */
function logoutTokenSid(hit) {
  try {
    return decodeJwt(new URLSearchParams(hit.body).get('logout_token')).payload.sid;
  } catch {
    return undefined;
  }
}

/**
 * The app on 127.0.0.1: front-channel logout URIs /fc/CLIENT, back-channel logout URIs
 * /bc/CLIENT (200, except /bc/flaky-app, which answers 500 to the first delivery of each
 * logout token), /callback and /signed-out (recorded, small page).
 */
function respond(hit) {
  if (!hit.path.startsWith('/bc/')) return undefined;
  const headers = { 'cache-control': 'no-store' };
  if (hit.path === '/bc/flaky-app') {
    let jti;
    try {
      jti = decodeJwt(new URLSearchParams(hit.body).get('logout_token')).payload.jti;
    } catch {
      return { status: 400, headers };
    }
    if (!failedOnce.has(jti)) {
      failedOnce.add(jti);
      return { status: 500, headers };
    }
  }
  return { status: 200, headers };
}

before(async () => {
  // The app first: its port goes into the logout URIs registered below.
  app = await startLoopbackRp({ respond });
  const loopback = (path) => `${app.origin}${path}`;
  // Latchkey's outbound guard sends logout tokens over https to public addresses only: the
  // app's port on 127.0.0.1 is opened for back-channel logout, over http, as an operator
  // opens an internal destination (the CLI checks the registered URIs against it too).
  const port = new URL(app.origin).port;
  const allow = `[{ cidr = "127.0.0.1/32", for = ["backchannel_logout"], ports = [${port}], allow_insecure_http = true }]`;
  lk = await startLatchkey({
    env: { LATCHKEY_OUTBOUND__ALLOW: allow },
    seed(cli) {
      ada = seedAda(cli);
      // Public (PKCE) app on the loopback, both logout channels. Its redirect URI and one
      // post-logout URI are registered without a port (RFC 8252 §7.3: any port).
      cli.createLoopbackClient({
        id: 'spa-app',
        name: 'Single-page app',
        firstParty: true,
        postLogoutRedirectUris: [loopback('/signed-out'), 'http://127.0.0.1/any-port/signed-out'],
        frontchannelLogoutUri: loopback('/fc/spa-app'),
        frontchannelLogoutSessionRequired: true,
        backchannelLogoutUri: loopback('/bc/spa-app'),
        backchannelLogoutSessionRequired: true,
      });
      // Confidential web app (redirect intercepted in Chromium), back-channel only.
      webSecret = cli.createClient({
        id: 'web-app',
        name: 'Web app',
        authMethod: 'client_secret_basic',
        firstParty: true,
        redirectUris: [`${RP_ORIGIN}/callback`],
        postLogoutRedirectUris: [`${RP_ORIGIN}/signed-out`],
        backchannelLogoutUri: loopback('/bc/web-app'),
        backchannelLogoutSessionRequired: true,
      }).client_secret;
      // Registered for both channels but never signed into: must get nothing.
      cli.createLoopbackClient({
        id: 'other-app',
        firstParty: true,
        frontchannelLogoutUri: loopback('/fc/other-app'),
        backchannelLogoutUri: loopback('/bc/other-app'),
      });
      // Refresh tokens and logout: bound to the session without offline_access; with
      // offline_access they survive logout, unless the client asks for their revocation.
      for (const [id, revokesOffline] of [['session-rt-app', false], ['strict-rt-app', true]]) {
        cli.createLoopbackClient({
          id,
          firstParty: true,
          grantTypes: ['authorization_code', 'refresh_token'],
          scopes: ['openid', 'offline_access'],
          sessionRefreshTokens: true,
          logoutRevokesOfflineTokens: revokesOffline,
        });
      }
      // Its back-channel endpoint fails the first delivery.
      cli.createLoopbackClient({
        id: 'flaky-app',
        firstParty: true,
        backchannelLogoutUri: loopback('/bc/flaky-app'),
        backchannelLogoutSessionRequired: true,
      });
    },
  });
  md = await (await fetch(`${lk.issuer}/.well-known/openid-configuration`)).json();
  jwks = createRemoteJWKSet(new URL(md.jwks_uri));
});

after(async () => {
  await lk?.stop();
  await app?.close();
});

/**
 * Waits (bounded) for the `count`-th back-channel delivery to /bc/CLIENT for session `sid`;
 * checks the request and verifies its logout token fully. Returns { hit, payload, header }.
 */
async function logoutTokenFor(clientId, { sid, sub }, { count = 1, timeoutMs = DELIVERY_BOUND_MS } = {}) {
  const hit = await app.waitFor((h) => h.path === `/bc/${clientId}` && logoutTokenSid(h) === sid, {
    count,
    timeoutMs,
    what: `back-channel logout delivery #${count} to ${clientId} for sid ${sid}`,
  });
  assert.equal(hit.method, 'POST', 'back-channel logout is a POST');
  assert.match(hit.headers['content-type'] ?? '', /^application\/x-www-form-urlencoded\b/, 'form-encoded body');
  const form = new URLSearchParams(hit.body);
  assert.deepEqual([...form.keys()], ['logout_token'], `the body is only logout_token: ${hit.body}`);
  const token = form.get('logout_token');
  const { payload, protectedHeader: header } = await jwtVerify(token, jwks, {
    issuer: lk.issuer,
    audience: clientId,
    typ: 'logout+jwt',
    algorithms: ['RS256'],
    requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'events', 'sid', 'sub'],
  }).catch((e) => {
    throw new Error(`the logout token for ${clientId} does not verify: ${e.code ?? ''} ${e.message}\n${JSON.stringify(decodeJwt(token))}`);
  });
  assert.equal(header.typ, 'logout+jwt');
  assert.equal(header.alg, 'RS256', "signed with the client's ID token algorithm (RS256 by default)");
  assert.equal(typeof header.kid, 'string', 'the header names the JWKS key');
  assert.deepEqual([payload.aud].flat(), [clientId], 'aud is exactly the client');
  assert.deepEqual(payload.events, { [BACKCHANNEL_EVENT]: {} }, 'events holds exactly the back-channel logout event');
  assert.equal(payload.sid, sid, "sid is the ID token's sid");
  assert.equal(payload.sub, sub, "sub is the ID token's sub");
  assert.equal('nonce' in payload, false, 'a logout token never carries a nonce');
  assert.equal(typeof payload.jti, 'string');
  assert.ok(payload.jti.length > 0, 'jti is not empty');
  const now = Math.floor(Date.now() / 1000);
  assert.ok(payload.exp > now, `exp ${payload.exp} is in the future (now ${now})`);
  assert.ok(Math.abs(payload.iat - now) <= 120, `iat ${payload.iat} is about now (${now})`);
  assert.ok(payload.exp > payload.iat, 'exp after iat');
  return { hit, payload, header };
}

/** `latchkey_backchannel_logout_total{outcome="OUTCOME"}` from /metrics (0 before the first). */
async function backchannelCounter(outcome) {
  const text = await (await fetch(`${lk.issuer}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('latchkey_backchannel_logout_total{') && l.includes(`outcome="${outcome}"`));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

/** The visible text of an HTML page (for failure messages). */
function textOf(html) {
  return html
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Navigates to an authorization request of `config` (from the app) and expects the login page. */
async function expectLoginPage(page, config) {
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: app.redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state: client.randomState(),
  });
  await page.goto(app.goTo(url));
  await page.waitForURL((u) => u.pathname === '/login' || u.origin === app.origin);
  assert.equal(await onLoginPage(page, lk.issuer), true, `expected the login page, at ${page.url()}`);
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
}

describe('SSO sessions and OIDC logout', () => {
  test('discovery advertises session management and both logout channels', () => {
    assert.equal(md.issuer, lk.issuer);
    assert.equal(md.check_session_iframe, `${lk.issuer}/session/check`);
    assert.equal(md.end_session_endpoint, `${lk.issuer}/logout`);
    assert.equal(md.frontchannel_logout_supported, true);
    assert.equal(md.frontchannel_logout_session_supported, true);
    assert.equal(md.backchannel_logout_supported, true);
    assert.equal(md.backchannel_logout_session_supported, true);
  });

  test('SSO across two clients, then RP-initiated logout: back-channel tokens, front-channel iframe, post-logout redirect', async () => {
    const spaConfig = await discoverClient(lk.issuer, 'spa-app', client.None());
    const webConfig = await discoverClient(lk.issuer, 'web-app', client.ClientSecretBasic(webSecret));
    await withBrowser(async ({ page }) => {
      const spa = await codeFlow(page, lk.issuer, spaConfig, { app });
      assert.equal(spa.sawLogin, true, 'the first sign-in shows the login page');
      assert.equal(spa.sawConsent, false, 'first-party: no consent page');
      const web = await codeFlow(page, lk.issuer, webConfig);
      assert.equal(web.sawLogin, false, 'single sign-on: the second client gets a code without the login page');
      assert.equal(web.sawConsent, false);

      const spaClaims = spa.tokens.claims();
      const webClaims = web.tokens.claims();
      assert.equal(spaClaims.sub, ada.sub);
      assert.equal(webClaims.sub, ada.sub);
      assert.equal(typeof spaClaims.sid, 'string', 'the ID token carries sid');
      assert.ok(spaClaims.sid.length > 0);
      assert.equal(webClaims.sid, spaClaims.sid, 'one SSO session: the same sid for both clients');
      for (const [name, flow] of [['spa-app', spa], ['web-app', web]]) {
        const sessionState = flow.callback.searchParams.get('session_state');
        assert.match(sessionState ?? '', /^[0-9a-f]{64}\.[^.\s]+$/, `${name}: session_state is hex(SHA-256).salt`);
      }
      const sid = spaClaims.sid;

      // RP-initiated logout from the single-page app, back to it.
      const state = client.randomState();
      const signedOut = `${app.origin}/signed-out`;
      const endSession = client.buildEndSessionUrl(spaConfig, {
        id_token_hint: spa.tokens.id_token,
        post_logout_redirect_uri: signedOut,
        state,
      });
      assert.equal(endSession.origin + endSession.pathname, `${lk.issuer}/logout`);
      const mark = Date.now();
      await page.goto(endSession.href);
      const back = await app
        .waitFor((h) => h.path === '/signed-out' && h.at >= mark, {
          timeoutMs: SIGNED_OUT_BOUND_MS,
          what: 'the redirect to the post_logout_redirect_uri',
        })
        .catch(async (e) => {
          e.message += `\nthe page says: ${await page.locator('body').innerText().catch(() => '?')}`;
          throw e;
        });
      assert.equal(back.method, 'GET');
      const backUrl = new URL(back.url);
      assert.equal(backUrl.origin + backUrl.pathname, signedOut);
      assert.equal(backUrl.searchParams.get('state'), state, 'state is returned to the post-logout URI');
      await page.waitForURL((u) => u.origin === app.origin && u.pathname === '/signed-out');

      // Front-channel: the signed-out page loaded spa-app's URI (the only front-channel client
      // this session signed into) in an iframe, with iss and sid, before it redirected.
      const frontChannel = app.hits.filter((h) => h.path.startsWith('/fc/') && h.at >= mark);
      assert.deepEqual(
        frontChannel.map((h) => h.path),
        ['/fc/spa-app'],
        "exactly spa-app's front-channel logout URI was loaded (other-app was never signed into)",
      );
      const [fc] = frontChannel;
      const fcUrl = new URL(fc.url);
      assert.equal(fc.method, 'GET');
      assert.equal(fcUrl.searchParams.get('iss'), lk.issuer, 'front-channel iss is the issuer');
      assert.equal(fcUrl.searchParams.get('sid'), sid, "front-channel sid is the ID token's sid");
      assert.equal(fc.headers['sec-fetch-dest'], 'iframe', 'loaded in an iframe');
      assert.equal(fc.headers['sec-fetch-site'], 'cross-site', 'from the issuer, another site');
      assert.ok(app.hits.indexOf(fc) < app.hits.indexOf(back), 'the iframe was loaded before the post-logout redirect');

      // Back-channel: one verified logout token per client of the session, each its own jti.
      const spaToken = await logoutTokenFor('spa-app', spaClaims);
      const webToken = await logoutTokenFor('web-app', webClaims);
      assert.notEqual(spaToken.payload.jti, webToken.payload.jti, 'each logout token has its own jti');
      const toOther = app.hits.filter((h) => h.path.endsWith('/other-app'));
      assert.deepEqual(toOther.map((h) => `${h.method} ${h.url}`), [], 'nothing for a client the session never signed into');

      // The SSO session is over: the next authorization request shows the login page.
      await expectLoginPage(page, spaConfig);
    });
  });

  test(`a back-channel endpoint that fails gets the same logout token again (retry within ${RETRY_BOUND_MS} ms)`, async () => {
    const config = await discoverClient(lk.issuer, 'flaky-app', client.None());
    await withBrowser(async ({ page }) => {
      const flow = await codeFlow(page, lk.issuer, config, { app });
      assert.equal(flow.sawLogin, true);
      const claims = flow.tokens.claims();
      const retriedBefore = await backchannelCounter('retried');
      await page.goto(client.buildEndSessionUrl(config, { id_token_hint: flow.tokens.id_token }).href);

      const first = await logoutTokenFor('flaky-app', claims);
      assert.ok(failedOnce.has(first.payload.jti), 'the app answered the first delivery with 500');
      const second = await logoutTokenFor('flaky-app', claims, { count: 2, timeoutMs: RETRY_BOUND_MS });
      assert.equal(second.payload.jti, first.payload.jti, 'the retry carries the same logout (same jti)');
      const gap = second.hit.at - first.hit.at;
      assert.ok(gap >= 1_000, `the retry waited (backoff, first retry after ~2 s), not ${gap} ms`);
      // Visible in the metrics: the failed attempt counted as retried (within 5 s).
      const retried = await pollUntil(() => backchannelCounter('retried'), (n) => n > retriedBefore, { timeoutMs: 5_000 });
      assert.equal(retried, retriedBefore + 1, 'latchkey_backchannel_logout_total{outcome="retried"} counts the failed attempt');

      await expectLoginPage(page, config);
    });
  });

  test('logout revokes the refresh tokens of the session; offline_access ones survive unless the client says so', async () => {
    const sessionRt = await discoverClient(lk.issuer, 'session-rt-app', client.None());
    const strictRt = await discoverClient(lk.issuer, 'strict-rt-app', client.None());
    await withBrowser(async ({ page }) => {
      const bound = await codeFlow(page, lk.issuer, sessionRt, { app, scope: 'openid' });
      const offline = await codeFlow(page, lk.issuer, sessionRt, { app, scope: 'openid offline_access' });
      const strict = await codeFlow(page, lk.issuer, strictRt, { app, scope: 'openid offline_access' });
      for (const [name, flow] of [['session-bound', bound], ['offline', offline], ['strict offline', strict]]) {
        assert.equal(typeof flow.tokens.refresh_token, 'string', `${name}: a refresh token was issued`);
      }
      // Each works before logout (and rotates: keep the newest).
      const live = {};
      for (const [name, config, flow] of [
        ['bound', sessionRt, bound],
        ['offline', sessionRt, offline],
        ['strict', strictRt, strict],
      ]) {
        live[name] = { config, token: (await client.refreshTokenGrant(config, flow.tokens.refresh_token)).refresh_token };
      }

      await page.goto(client.buildEndSessionUrl(sessionRt, { id_token_hint: bound.tokens.id_token }).href);
      await page.getByRole('heading', { name: /signed out/i }).waitFor();

      const refresh = ({ config, token }) =>
        client.refreshTokenGrant(config, token).then(
          (t) => ({ ok: true, rotated: typeof t.refresh_token === 'string' }),
          (e) => ({ ok: false, error: e.error ?? e.message }),
        );
      assert.deepEqual(await refresh(live.bound), { ok: false, error: 'invalid_grant' }, 'a session-bound refresh token ends with the session');
      assert.deepEqual(await refresh(live.offline), { ok: true, rotated: true }, 'an offline_access refresh token survives logout by default');
      assert.deepEqual(
        await refresh(live.strict),
        { ok: false, error: 'invalid_grant' },
        'with --logout-revokes-offline-tokens, offline_access refresh tokens end too',
      );
    });
  });

  test('the account page lists the sessions and ends another browser\'s: back-channel logout for it only', async () => {
    const config = await discoverClient(lk.issuer, 'spa-app', client.None());
    await withBrowser(async (here) => {
      await withBrowser(async (elsewhere) => {
        const mine = (await codeFlow(here.page, lk.issuer, config, { app })).tokens.claims();
        const other = (await codeFlow(elsewhere.page, lk.issuer, config, { app })).tokens.claims();
        assert.notEqual(mine.sid, other.sid, 'two browsers, two sessions');

        const { page } = here;
        await page.goto(`${lk.issuer}/account/sessions`);
        const rows = page.locator('li.session');
        const sids = await rows.evaluateAll((lis) => lis.map((li) => li.dataset.sid));
        assert.deepEqual(sids.toSorted(), [mine.sid, other.sid].toSorted(), "the page lists both of Ada's sessions");
        const otherRow = page.locator(`li.session[data-sid="${other.sid}"]`);
        assert.match(await otherRow.innerText(), /Single-page app/, 'the session lists the application it signed into');
        assert.match(await page.locator(`li.session[data-sid="${mine.sid}"]`).innerText(), /this browser/);

        const mark = Date.now();
        const reloaded = page.waitForResponse(
          (r) => new URL(r.url()).pathname === '/account/sessions' && r.request().method() === 'GET',
        );
        await otherRow.getByRole('button', { name: 'End this session' }).click();
        assert.equal((await reloaded).status(), 200, 'back to the list after ending the session');
        await page.locator(`li.session[data-sid="${mine.sid}"]`).waitFor();
        assert.deepEqual(
          await page.locator('li.session').evaluateAll((lis) => lis.map((li) => li.dataset.sid)),
          [mine.sid],
          'only this browser\'s session is left',
        );

        // The ended session's client hears about it on the back channel; this browser's
        // session goes on; the front channel is not used (that browser is elsewhere).
        await logoutTokenFor('spa-app', other);
        assert.equal(
          app.hits.filter((h) => h.path.startsWith('/fc/') && h.at >= mark).length,
          0,
          'no front-channel request for a session ended from another browser',
        );
        const again = await codeFlow(page, lk.issuer, config, { app });
        assert.equal(again.sawLogin, false, 'this browser is still signed in');
        assert.equal(again.tokens.claims().sid, mine.sid);
        await expectLoginPage(elsewhere.page, config);
      });
    });
  });

  test("a public client's loopback post-logout URI matches on any port (RFC 8252 §7.3)", async () => {
    // Registered as http://127.0.0.1/any-port/signed-out; asked for on some port. No
    // session in this request, so the answer is the redirect itself.
    const uri = `http://127.0.0.1:${Number(new URL(app.origin).port) + 1}/any-port/signed-out`;
    const url = new URL(`${lk.issuer}/logout`);
    url.search = new URLSearchParams({ client_id: 'spa-app', post_logout_redirect_uri: uri, state: 'st-1' }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    assert.ok([302, 303].includes(res.status), `a redirect, got ${res.status}: ${textOf(await res.text())}`);
    assert.equal(res.headers.get('location'), `${uri}?state=st-1`);
  });

  test('logout refuses an id_token_hint that is not ours: HTML error page, 400', async () => {
    // Same shape and kid as a real ID token, signed with another key.
    const { keys } = await (await fetch(md.jwks_uri)).json();
    const kid = keys.find((k) => k.kty === 'RSA')?.kid;
    assert.ok(kid, 'the JWKS has an RSA key');
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT({ sub: ada.sub, sid: 'not-a-session', aud: 'spa-app' })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(lk.issuer)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    for (const hint of [forged, 'not-a-jwt']) {
      const url = new URL(`${lk.issuer}/logout`);
      url.searchParams.set('id_token_hint', hint);
      url.searchParams.set('post_logout_redirect_uri', `${app.origin}/signed-out`);
      const res = await fetch(url, { redirect: 'manual' });
      assert.equal(res.status, 400, `id_token_hint ${hint.slice(0, 20)}…: status`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html\b/);
      assert.equal(res.headers.get('location'), null, 'no redirect');
      assert.match(await res.text(), /id_token_hint/, 'the page says what is wrong');
    }
  });

  test('logout with an unregistered post_logout_redirect_uri shows an error page and does not redirect', async () => {
    const config = await discoverClient(lk.issuer, 'spa-app', client.None());
    await withBrowser(async ({ page }) => {
      const { tokens } = await codeFlow(page, lk.issuer, config, { app });
      const cases = [
        ['a path not registered', { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${app.origin}/elsewhere` }],
        ['another site', { client_id: 'spa-app', post_logout_redirect_uri: 'https://evil.example/signed-out' }],
        ["another client's URI", { id_token_hint: tokens.id_token, post_logout_redirect_uri: `${RP_ORIGIN}/signed-out` }],
      ];
      for (const [name, params] of cases) {
        const url = new URL(`${lk.issuer}/logout`);
        for (const [k, v] of Object.entries({ ...params, state: 'st' })) url.searchParams.set(k, v);
        const mark = Date.now();
        const response = await page.goto(url.href);
        assert.equal(response.status(), 400, `${name}: status`);
        assert.match(response.headers()['content-type'] ?? '', /^text\/html\b/, `${name}: an HTML page`);
        assert.equal(page.url(), url.href, `${name}: the browser stays on the logout URL`);
        assert.match(await page.locator('body').innerText(), /post_logout_redirect_uri/, `${name}: the page says what is wrong`);
        assert.deepEqual(
          app.hits.filter((h) => h.at >= mark).map((h) => h.url),
          [],
          `${name}: nothing reached the app`,
        );
      }
    });
  });
});

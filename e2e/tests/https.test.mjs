// The HTTPS lane: Latchkey serves HTTPS itself (server.tls) with a certificate for localhost
// from a throwaway CA that `e2e/run` creates. Node trusts that CA through NODE_EXTRA_CA_CERTS
// (no allowInsecureRequests here); Chromium accepts the server's key through
// --ignore-certificate-errors-spki-list (only that key, every other certificate error still
// fails). Checks what only HTTPS turns on: `__Host-` cookie names, `Secure` cookies, HSTS.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import {
  RP_ORIGIN,
  authorizeInBrowser,
  interceptRp,
  seedAda,
  startLatchkey,
  tlsMaterial,
  withBrowser,
} from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;

let lk;
let ada;
let tls;
let secret;

before(async () => {
  tls = tlsMaterial();
  lk = await startLatchkey({
    tls,
    seed(cli) {
      ada = seedAda(cli);
      secret = cli.createClient({
        id: 'tls-app',
        name: 'TLS app',
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code'],
        scopes: ['openid', 'profile', 'email'],
        authMethod: 'client_secret_basic',
      }).client_secret;
    },
  });
});

after(async () => {
  await lk?.stop();
});

/** Chromium that accepts exactly the test server's key. */
const browserOptions = () => ({ args: [`--ignore-certificate-errors-spki-list=${tls.spki}`] });

function assertHsts(value, where) {
  assert.ok(value, `${where}: Strict-Transport-Security is missing`);
  const maxAge = /max-age=(\d+)/i.exec(value);
  assert.ok(maxAge && Number(maxAge[1]) > 0, `${where}: Strict-Transport-Security ${value}`);
}

describe('HTTPS lane', () => {
  test('the issuer is https://localhost:PORT, and Node verifies the certificate', async () => {
    assert.equal(lk.issuer, `https://localhost:${lk.port}`);
    // No allowInsecureRequests: openid-client refuses http, so this is a verified TLS fetch.
    const config = await client.discovery(new URL(lk.issuer), 'tls-app', undefined, client.ClientSecretBasic(secret));
    const md = config.serverMetadata();
    assert.equal(md.issuer, `https://localhost:${lk.port}`);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
      assert.ok(md[k].startsWith(`https://localhost:${lk.port}/`), `${k}: ${md[k]}`);
    }
    // The certificate really is checked: without the test CA, the handshake fails.
    const { request } = await import('node:https');
    const err = await new Promise((ok) => {
      const req = request(`${lk.issuer}/.well-known/openid-configuration`, { ca: [] }, (res) => {
        res.resume();
        ok(null);
      });
      req.on('error', ok);
      req.end();
    });
    assert.ok(err, 'a client that does not trust the test CA must fail the handshake');
    assert.match(String(err.code), /CERT|SELF_SIGNED|UNABLE_TO/);
  });

  test('responses carry Strict-Transport-Security', async () => {
    for (const path of ['/.well-known/openid-configuration', '/jwks', '/login']) {
      const res = await fetch(`${lk.issuer}${path}`, { redirect: 'manual' });
      await res.arrayBuffer();
      assert.ok(res.status < 500, `${path}: ${res.status}`);
      assertHsts(res.headers.get('strict-transport-security'), path);
    }
  });

  test('openid-client code + PKCE through the login page; __Host- session cookie', async () => {
    const config = await client.discovery(new URL(lk.issuer), 'tls-app', undefined, client.ClientSecretBasic(secret));
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: CALLBACK,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const { flow, cookies, setCookies, loginHsts } = await withBrowser(async (browser) => {
      const setCookies = [];
      let loginHsts = null;
      browser.page.on('response', async (res) => {
        const u = new URL(res.url());
        if (u.origin !== lk.issuer) return;
        const headers = await res.headersArray().catch(() => []);
        for (const h of headers) {
          if (h.name.toLowerCase() === 'set-cookie') setCookies.push(...h.value.split('\n'));
          if (u.pathname === '/login' && h.name.toLowerCase() === 'strict-transport-security') loginHsts = h.value;
        }
      });
      const rp = await interceptRp(browser.page);
      const flow = await authorizeInBrowser(browser.page, lk.issuer, url, rp.next);
      const cookies = await browser.context.cookies(lk.issuer);
      return { flow, cookies, setCookies, loginHsts };
    }, browserOptions());

    assert.ok(flow.sawLogin, 'signed in through the login page');
    const callback = new URL(flow.hit.url);
    assert.equal(callback.searchParams.get('iss'), lk.issuer);
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    assert.equal(tokens.claims().iss, lk.issuer);
    assert.equal(tokens.claims().sub, ada.sub);
    assertHsts(loginHsts, 'the login page as Chromium saw it');

    // The session cookie, as Chromium stored it.
    const names = cookies.map((c) => c.name);
    const session = cookies.find((c) => c.name === '__Host-latchkey-session');
    assert.ok(session, `no __Host-latchkey-session cookie; Chromium has: ${names.join(', ')}`);
    assert.ok(!names.includes('latchkey-session'), 'no unprefixed session cookie under HTTPS');
    assert.equal(session.secure, true, 'Secure');
    assert.equal(session.httpOnly, true, 'HttpOnly');
    assert.equal(session.sameSite, 'Lax', 'SameSite=Lax');
    assert.equal(session.path, '/', 'Path=/');
    assert.equal(session.domain, 'localhost', 'a host-only cookie (no leading dot)');
    // Every Latchkey cookie under HTTPS is __Host- prefixed, hence Secure, Path=/ and host-only.
    for (const c of cookies) {
      assert.ok(c.name.startsWith('__Host-'), `cookie ${c.name} is not __Host- prefixed`);
      assert.equal(c.secure, true, `${c.name} is Secure`);
    }

    // And as the server sent it: no Domain attribute.
    const raw = setCookies.filter((s) => s.startsWith('__Host-latchkey-session='));
    assert.ok(raw.length > 0, `no Set-Cookie for the session; saw: ${setCookies.join(' | ')}`);
    for (const s of raw) {
      const attrs = s.split(';').slice(1).map((a) => a.trim().toLowerCase());
      assert.ok(!attrs.some((a) => a.startsWith('domain')), `Domain attribute in ${s}`);
      assert.ok(attrs.includes('secure'), `no Secure in ${s}`);
      assert.ok(attrs.includes('httponly'), `no HttpOnly in ${s}`);
      assert.ok(attrs.includes('samesite=lax'), `no SameSite=Lax in ${s}`);
      assert.ok(attrs.includes('path=/'), `no Path=/ in ${s}`);
    }
  });
});

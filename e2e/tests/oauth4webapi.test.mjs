// oauth4webapi v3 (low-level, strict OAuth 2 / OIDC client) against a real Latchkey, with
// Chromium signing in through the real login and consent pages.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';

import {
  ADA,
  RP_ORIGIN,
  authorizeInBrowser,
  decodeJwt,
  interceptRp,
  seedAda,
  startLatchkey,
  withBrowser,
} from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;
const insecure = { [oauth.allowInsecureRequests]: true };

let lk;
let ada;
let as;
const secrets = {};

before(async () => {
  lk = await startLatchkey({
    seed(cli) {
      ada = seedAda(cli);
      // Third-party, client_secret_basic, may refresh.
      secrets.basic = cli.createClient({
        id: 'o4w-basic',
        name: 'O4W basic',
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        authMethod: 'client_secret_basic',
      }).client_secret;
      // First-party, client_secret_post.
      secrets.post = cli.createClient({
        id: 'o4w-post',
        name: 'O4W post',
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code'],
        scopes: ['openid', 'profile', 'email'],
        authMethod: 'client_secret_post',
        firstParty: true,
      }).client_secret;
      for (const alg of ['ES256', 'EdDSA']) {
        secrets[alg] = cli.createClient({
          id: `o4w-${alg.toLowerCase()}`,
          name: `O4W ${alg}`,
          redirectUris: [CALLBACK],
          grantTypes: ['authorization_code'],
          scopes: ['openid', 'profile'],
          authMethod: 'client_secret_basic',
          idTokenAlg: alg,
          firstParty: true,
        }).client_secret;
      }
    },
  });
  const issuer = new URL(lk.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});

after(async () => {
  await lk?.stop();
});

const basicClient = () => ({ client: { client_id: 'o4w-basic' }, auth: oauth.ClientSecretBasic(secrets.basic) });
const postClient = () => ({ client: { client_id: 'o4w-post' }, auth: oauth.ClientSecretPost(secrets.post) });

async function authorizationUrl(client, { scope = 'openid profile email', responseMode, extra = {} } = {}) {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: CALLBACK,
    response_type: 'code',
    scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...(responseMode ? { response_mode: responseMode } : {}),
    ...extra,
  }).toString();
  return { url, codeVerifier, state, nonce };
}

/** Runs the browser part; returns the authorization response parameters and the request. */
async function authorize(browser, client, opts = {}) {
  const rp = await interceptRp(browser.page);
  const req = await authorizationUrl(client, opts);
  const flow = await authorizeInBrowser(browser.page, lk.issuer, req.url, rp.next, opts);
  let params;
  if (opts.responseMode === 'form_post') {
    assert.equal(flow.hit.method, 'POST', 'form_post delivers the response by POST');
    assert.equal(new URL(flow.hit.url).href, CALLBACK, 'nothing in the URL');
    params = new URLSearchParams(flow.hit.body);
  } else {
    assert.equal(flow.hit.method, 'GET');
    const url = new URL(flow.hit.url);
    assert.equal(url.origin + url.pathname, CALLBACK);
    params = url.searchParams;
  }
  return { ...flow, req, params };
}

async function exchange(client, auth, params, req) {
  const callback = oauth.validateAuthResponse(as, client, params, req.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    auth,
    callback,
    CALLBACK,
    req.codeVerifier,
    insecure,
  );
  return oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: req.nonce,
    requireIdToken: true,
  });
}

async function introspect(client, auth, token) {
  const r = await oauth.introspectionRequest(as, client, auth, token, insecure);
  return oauth.processIntrospectionResponse(as, client, r);
}

async function rejection(promise) {
  return promise.then(
    (v) => assert.fail(`expected a rejection, got ${JSON.stringify(v)}`),
    (e) => e,
  );
}

describe('oauth4webapi v3', () => {
  test('discovery', () => {
    assert.equal(as.issuer, lk.issuer);
    assert.equal(as.token_endpoint, `${lk.issuer}/token`);
    assert.deepEqual(as.response_modes_supported, ['query', 'form_post']);
    assert.deepEqual(as.grant_types_supported, ['authorization_code', 'refresh_token', 'client_credentials']);
    assert.ok(as.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
    assert.ok(as.token_endpoint_auth_methods_supported.includes('client_secret_post'));
    assert.ok(as.token_endpoint_auth_methods_supported.includes('none'));
    assert.deepEqual(as.id_token_signing_alg_values_supported.slice().sort(), ['ES256', 'EdDSA', 'RS256']);
    assert.equal(as.authorization_response_iss_parameter_supported, true);
  });

  test('code flow: validateAuthResponse (iss), token, ID token, userinfo, refresh, introspection, revocation', async () => {
    const { client, auth } = basicClient();
    await withBrowser(async (browser) => {
      const { params, req, sawLogin, sawConsent } = await authorize(browser, client, {
        scope: 'openid profile email offline_access',
      });
      assert.equal(sawLogin, true);
      assert.equal(sawConsent, true);
      assert.equal(params.get('iss'), lk.issuer);
      const tokens = await exchange(client, auth, params, req);
      assert.equal(tokens.token_type, 'bearer');
      assert.equal(typeof tokens.refresh_token, 'string');
      const claims = oauth.getValidatedIdTokenClaims(tokens);
      assert.equal(claims.iss, lk.issuer);
      assert.equal(claims.aud, 'o4w-basic');
      assert.equal(claims.sub, ada.sub);
      assert.equal(claims.nonce, req.nonce);
      assert.equal(typeof claims.at_hash, 'string');

      const ui = await oauth.processUserInfoResponse(
        as,
        client,
        claims.sub,
        await oauth.userInfoRequest(as, client, tokens.access_token, insecure),
      );
      assert.deepEqual(
        { sub: ui.sub, name: ui.name, email: ui.email, preferred_username: ui.preferred_username },
        { sub: ada.sub, name: ADA.name, email: ADA.email, preferred_username: ADA.username },
      );
      assert.equal(ui.email_verified, false);

      // Refresh: rotation.
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure),
      );
      assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
      assert.equal(oauth.getValidatedIdTokenClaims(refreshed).sub, ada.sub);
      // Narrowing the scope on refresh is allowed.
      const narrowed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token, {
          ...insecure,
          additionalParameters: { scope: 'openid offline_access' },
        }),
      );
      assert.deepEqual(narrowed.scope.split(' ').sort(), ['offline_access', 'openid']);

      // Introspection.
      const at = await introspect(client, auth, narrowed.access_token);
      assert.equal(at.active, true);
      assert.equal(at.sub, ada.sub);
      assert.equal(at.client_id, 'o4w-basic');
      assert.deepEqual(at.scope.split(' ').sort(), ['offline_access', 'openid']);
      const rt = await introspect(client, auth, narrowed.refresh_token);
      assert.equal(rt.active, true);
      assert.equal(rt.sub, ada.sub);
      assert.equal((await introspect(client, auth, tokens.refresh_token)).active, false, 'a rotated token is spent');

      // Revocation of the refresh token ends the family; of the access token, that token.
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(as, client, auth, narrowed.refresh_token, insecure),
      );
      assert.equal((await introspect(client, auth, narrowed.refresh_token)).active, false);
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(as, client, auth, narrowed.access_token, insecure),
      );
      assert.equal((await introspect(client, auth, narrowed.access_token)).active, false);
      const ui401 = await oauth.userInfoRequest(as, client, narrowed.access_token, insecure);
      assert.equal(ui401.status, 401);
      const e = await rejection(
        oauth.refreshTokenGrantRequest(as, client, auth, narrowed.refresh_token, insecure).then((r) =>
          oauth.processRefreshTokenResponse(as, client, r),
        ),
      );
      assert.ok(e instanceof oauth.ResponseBodyError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_grant');
    });
  });

  test('response_mode=form_post: an auto-submitting form POSTs code, state and iss to the client', async () => {
    const { client, auth } = postClient();
    await withBrowser(async (browser) => {
      const scripts = [];
      browser.page.on('request', (r) => {
        if (r.resourceType() === 'script') scripts.push(r.url());
      });
      const { params, req, hit } = await authorize(browser, client, { responseMode: 'form_post' });
      assert.match(hit.headers['Content-Type'] ?? hit.headers['content-type'] ?? '', /^application\/x-www-form-urlencoded/);
      assert.equal(params.get('state'), req.state);
      assert.equal(params.get('iss'), lk.issuer);
      assert.match(params.get('code') ?? '', /^[A-Za-z0-9_-]{20,}$/);
      // The login page loads the passkey script; after it, only the form_post page's script.
      const afterLogin = scripts.filter((u) => u !== `${lk.issuer}/static/passkeys.js`);
      assert.deepEqual(afterLogin, [`${lk.issuer}/static/form_post.js`], 'the form is submitted by an external script');
      const tokens = await exchange(client, auth, params, req);
      assert.equal(oauth.getValidatedIdTokenClaims(tokens).sub, ada.sub);
    });
  });

  for (const alg of ['ES256', 'EdDSA']) {
    test(`ID token signed with ${alg} for a client registered with it`, async () => {
      const client = { client_id: `o4w-${alg.toLowerCase()}`, id_token_signed_response_alg: alg };
      const auth = oauth.ClientSecretBasic(secrets[alg]);
      await withBrowser(async (browser) => {
        const { params, req } = await authorize(browser, client, { scope: 'openid profile' });
        const tokens = await exchange(client, auth, params, req);
        assert.equal(decodeJwt(tokens.id_token).header.alg, alg);
        assert.equal(oauth.getValidatedIdTokenClaims(tokens).sub, ada.sub);
      });
    });
  }

  test('denied consent (prompt=consent) comes back as access_denied, with iss', async () => {
    const { client } = postClient();
    await withBrowser(async (browser) => {
      // A first-party client skips consent unless prompt=consent asks for it.
      const { params, req, sawConsent } = await authorize(browser, client, {
        consent: 'Deny',
        extra: { prompt: 'consent' },
      });
      assert.equal(sawConsent, true, 'prompt=consent shows the consent page');
      assert.equal(params.get('iss'), lk.issuer);
      assert.equal(params.get('code'), null);
      const e = await rejection(Promise.resolve().then(() => oauth.validateAuthResponse(as, client, params, req.state)));
      assert.ok(e instanceof oauth.AuthorizationResponseError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'access_denied');
    });
  });

  test('prompt=none without a session: login_required, with iss', async () => {
    const { client } = postClient();
    await withBrowser(async (browser) => {
      const rp = await interceptRp(browser.page);
      const req = await authorizationUrl(client, { extra: { prompt: 'none' } });
      const arrived = rp.next();
      await browser.page.goto(req.url.toString());
      const params = new URL((await arrived).url).searchParams;
      assert.equal(params.get('iss'), lk.issuer);
      const e = await rejection(Promise.resolve().then(() => oauth.validateAuthResponse(as, client, params, req.state)));
      assert.ok(e instanceof oauth.AuthorizationResponseError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'login_required');
    });
  });

  test('wrong client secret: invalid_client, and the code is not spent', async () => {
    const { client, auth } = postClient();
    await withBrowser(async (browser) => {
      const { params, req } = await authorize(browser, client);
      const callback = oauth.validateAuthResponse(as, client, params, req.state);
      const bad = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.ClientSecretPost('not-the-secret'),
        callback,
        CALLBACK,
        req.codeVerifier,
        insecure,
      );
      const e = await rejection(oauth.processAuthorizationCodeResponse(as, client, bad));
      assert.ok(e instanceof oauth.ResponseBodyError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_client');
      assert.equal(e.status, 401);
      // A failed client authentication must not burn the code.
      const good = await oauth.authorizationCodeGrantRequest(as, client, auth, callback, CALLBACK, req.codeVerifier, insecure);
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, good, { expectedNonce: req.nonce });
      assert.equal(oauth.getValidatedIdTokenClaims(tokens).sub, ada.sub);
    });
  });

  test('wrong PKCE verifier: invalid_grant', async () => {
    const { client, auth } = postClient();
    await withBrowser(async (browser) => {
      const { params, req } = await authorize(browser, client);
      const callback = oauth.validateAuthResponse(as, client, params, req.state);
      const r = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        auth,
        callback,
        CALLBACK,
        oauth.generateRandomCodeVerifier(),
        insecure,
      );
      const e = await rejection(oauth.processAuthorizationCodeResponse(as, client, r));
      assert.ok(e instanceof oauth.ResponseBodyError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_grant');
    });
  });

  test('replayed authorization code: invalid_grant, and the first tokens stop working', async () => {
    const { client, auth } = postClient();
    await withBrowser(async (browser) => {
      const { params, req } = await authorize(browser, client);
      const tokens = await exchange(client, auth, params, req);
      const before = await oauth.userInfoRequest(as, client, tokens.access_token, insecure);
      assert.equal(before.status, 200);
      const callback = oauth.validateAuthResponse(as, client, params, req.state);
      const again = await oauth.authorizationCodeGrantRequest(as, client, auth, callback, CALLBACK, req.codeVerifier, insecure);
      const e = await rejection(oauth.processAuthorizationCodeResponse(as, client, again, { expectedNonce: req.nonce }));
      assert.ok(e instanceof oauth.ResponseBodyError, `got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_grant');
      const afterReplay = await oauth.userInfoRequest(as, client, tokens.access_token, insecure);
      assert.equal(afterReplay.status, 401, 'tokens from a replayed code are revoked (RFC 9700 §4.5)');
    });
  });
});

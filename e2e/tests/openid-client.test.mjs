// openid-client v6 (a certified OpenID Connect relying party library) against a real
// Latchkey, with Chromium signing in through the real login and consent pages.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import {
  ADA,
  RP_ORIGIN,
  authorizeInBrowser,
  decodeJwt,
  interceptRp,
  onLoginPage,
  seedAda,
  signIn,
  startLatchkey,
  startLoopbackRp,
  watchCsp,
  withBrowser,
} from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;
const SIGNED_OUT = `${RP_ORIGIN}/signed-out`;

let lk;
let ada;
const secrets = {};
let loopback;

before(async () => {
  loopback = await startLoopbackRp();
  lk = await startLatchkey({
    seed(cli) {
      ada = seedAda(cli);
      cli.createScope('api:read', 'Read the example API');
      // Confidential, third-party: consent is asked; may refresh; RP-initiated logout.
      secrets.basic = cli.createClient({
        id: 'basic-app',
        name: 'Basic app',
        redirectUris: [CALLBACK],
        postLogoutRedirectUris: [SIGNED_OUT],
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        authMethod: 'client_secret_basic',
      }).client_secret;
      // Confidential, first-party (no consent page), client_secret_post.
      secrets.post = cli.createClient({
        id: 'post-app',
        name: 'Post app',
        redirectUris: [CALLBACK],
        postLogoutRedirectUris: [SIGNED_OUT],
        grantTypes: ['authorization_code'],
        scopes: ['openid', 'profile', 'email'],
        authMethod: 'client_secret_post',
        firstParty: true,
      }).client_secret;
      // Public native-style app: loopback redirect on any port (RFC 8252 §7.3).
      cli.createClient({
        id: 'public-app',
        name: 'Public app',
        type: 'public',
        redirectUris: ['http://127.0.0.1/callback'],
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'profile', 'email'],
        authMethod: 'none',
      });
      // A service: client credentials only.
      secrets.service = cli.createClient({
        id: 'service-app',
        name: 'Service',
        grantTypes: ['client_credentials'],
        scopes: ['api:read'],
        authMethod: 'client_secret_basic',
      }).client_secret;
    },
  });
});

after(async () => {
  await lk?.stop();
  await loopback?.close();
});

function configFor(clientId, auth, metadata) {
  return client.discovery(new URL(lk.issuer), clientId, metadata, auth, { execute: [client.allowInsecureRequests] });
}

/** A PKCE/state/nonce authorization request for `config`. */
async function authorizationRequest(config, { redirectUri = CALLBACK, scope = 'openid profile email', extra = {} } = {}) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, codeVerifier, state, nonce };
}

/** Signs Ada in through the browser for `config`; returns tokens and what was seen. */
async function signInWith(browser, config, opts = {}) {
  const rp = await interceptRp(browser.page);
  const req = await authorizationRequest(config, opts);
  const flow = await authorizeInBrowser(browser.page, lk.issuer, req.url, rp.next, opts);
  const callback = new URL(flow.hit.url);
  assert.equal(flow.hit.method, 'GET');
  assert.equal(callback.origin + callback.pathname, CALLBACK);
  assert.equal(callback.searchParams.get('state'), req.state);
  assert.equal(callback.searchParams.get('iss'), lk.issuer, 'RFC 9207 iss in the authorization response');
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: req.codeVerifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
    idTokenExpected: true,
  });
  return { ...flow, req, callback, tokens };
}

function assertAdaIdToken(tokens, clientId, nonce) {
  const claims = tokens.claims();
  assert.ok(claims, 'an ID token was returned');
  assert.equal(claims.iss, lk.issuer);
  assert.equal(claims.sub, ada.sub);
  assert.equal(claims.aud, clientId);
  assert.equal(claims.nonce, nonce);
  assert.equal(typeof claims.auth_time, 'number');
  assert.equal(typeof claims.sid, 'string');
  assert.ok(claims.exp > claims.iat);
}

describe('openid-client v6', () => {
  test('discovery', async () => {
    const config = await configFor('basic-app', client.ClientSecretBasic(secrets.basic));
    const md = config.serverMetadata();
    assert.equal(md.issuer, lk.issuer);
    assert.equal(md.authorization_endpoint, `${lk.issuer}/authorize`);
    assert.equal(md.token_endpoint, `${lk.issuer}/token`);
    assert.equal(md.userinfo_endpoint, `${lk.issuer}/userinfo`);
    assert.equal(md.jwks_uri, `${lk.issuer}/jwks.json`);
    assert.equal(md.revocation_endpoint, `${lk.issuer}/revoke`);
    assert.equal(md.introspection_endpoint, `${lk.issuer}/introspect`);
    assert.equal(md.end_session_endpoint, `${lk.issuer}/logout`);
    assert.deepEqual(md.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(md.response_types_supported, ['code']);
    assert.equal(md.authorization_response_iss_parameter_supported, true);
    assert.ok(md.scopes_supported.includes('openid'));
    assert.ok(md.scopes_supported.includes('api:read'), 'scopes created by the CLI are advertised');
    assert.equal(md.supportsPKCE('S256'), true);
    assert.equal(md.supportsPKCE('plain'), false);
  });

  test('authorization code + PKCE with client_secret_basic: consent, ID token, userinfo', async () => {
    const config = await configFor('basic-app', client.ClientSecretBasic(secrets.basic));
    await withBrowser(async (browser) => {
      const { tokens, req, sawLogin, sawConsent } = await signInWith(browser, config);
      assert.equal(sawLogin, true, 'the login page was shown');
      assert.equal(sawConsent, true, 'a third-party client gets the consent page');
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.equal(typeof tokens.access_token, 'string');
      assert.ok(tokens.expires_in > 0);
      assert.deepEqual(tokens.scope.split(' ').sort(), ['email', 'openid', 'profile']);
      assert.equal(tokens.refresh_token, undefined, 'no refresh token without offline_access');
      assertAdaIdToken(tokens, 'basic-app', req.nonce);
      assert.equal(decodeJwt(tokens.id_token).header.alg, 'RS256');

      const info = await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub);
      assert.equal(info.sub, ada.sub);
      assert.equal(info.name, ADA.name);
      assert.equal(info.email, ADA.email);
      assert.equal(info.preferred_username, ADA.username);
    });
  });

  test('authorization code + PKCE with client_secret_post, first-party client (no consent page)', async () => {
    const config = await configFor('post-app', client.ClientSecretPost(secrets.post));
    await withBrowser(async (browser) => {
      const { tokens, req, sawLogin, sawConsent } = await signInWith(browser, config, { scope: 'openid email' });
      assert.equal(sawLogin, true);
      assert.equal(sawConsent, false, 'a first-party client skips consent');
      assertAdaIdToken(tokens, 'post-app', req.nonce);
      assert.deepEqual(tokens.scope.split(' ').sort(), ['email', 'openid']);
      const info = await client.fetchUserInfo(config, tokens.access_token, ada.sub);
      assert.equal(info.email, ADA.email);
      assert.equal(info.name, undefined, 'no profile claims without the profile scope');
    });
  });

  test('public client (none) with a loopback redirect on 127.0.0.1, cross-site from the issuer', async () => {
    const config = await configFor('public-app', client.None());
    await withBrowser(async (browser) => {
      const { page } = browser;
      const req = await authorizationRequest(config, { redirectUri: loopback.redirectUri });
      // Start at the app (127.0.0.1), a different site from Latchkey (localhost).
      const start = loopback.goTo(req.url);
      const flow = await authorizeInBrowser(page, lk.issuer, start, loopback.next);
      assert.equal(flow.sawLogin, true);
      assert.equal(flow.sawConsent, true, 'a public third-party client gets the consent page');
      const callback = new URL(flow.hit.url);
      assert.equal(callback.origin, loopback.origin);
      assert.equal(callback.searchParams.get('iss'), lk.issuer);
      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: req.codeVerifier,
        expectedState: req.state,
        expectedNonce: req.nonce,
        idTokenExpected: true,
      });
      assertAdaIdToken(tokens, 'public-app', req.nonce);
      const info = await client.fetchUserInfo(config, tokens.access_token, ada.sub);
      assert.equal(info.sub, ada.sub);

      // Signed in and consented: a second request from the app (a cross-site top-level
      // navigation, where the SameSite=Lax session cookie must still be sent) comes straight
      // back with a code, without the login or consent page.
      const again = await authorizationRequest(config, { redirectUri: loopback.redirectUri });
      const second = await authorizeInBrowser(page, lk.issuer, loopback.goTo(again.url), loopback.next);
      assert.equal(second.sawLogin, false, 'single sign-on: no second login');
      assert.equal(second.sawConsent, false, 'consent is remembered');
      const tokens2 = await client.authorizationCodeGrant(config, new URL(second.hit.url), {
        pkceCodeVerifier: again.codeVerifier,
        expectedState: again.state,
        expectedNonce: again.nonce,
      });
      assert.equal(tokens2.claims().sub, ada.sub);
      assert.equal(tokens2.claims().sid, tokens.claims().sid, 'same browser session');
    });
  });

  test('refresh token grant rotates the refresh token', async () => {
    const config = await configFor('basic-app', client.ClientSecretBasic(secrets.basic));
    await withBrowser(async (browser) => {
      const { tokens, sawConsent } = await signInWith(browser, config, { scope: 'openid profile offline_access' });
      assert.equal(sawConsent, true, 'offline_access always asks for consent');
      assert.equal(typeof tokens.refresh_token, 'string', 'offline_access yields a refresh token');

      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert.equal(typeof refreshed.refresh_token, 'string');
      assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'the refresh token is rotated');
      assert.notEqual(refreshed.access_token, tokens.access_token);
      const claims = refreshed.claims();
      assert.equal(claims.sub, ada.sub);
      assert.equal(claims.nonce, undefined, 'a refreshed ID token carries no nonce (OIDC Core §12.2)');
      const info = await client.fetchUserInfo(config, refreshed.access_token, ada.sub);
      assert.equal(info.name, ADA.name);

      // The old refresh token is spent.
      await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => {
        assert.equal(e.error, 'invalid_grant');
        return true;
      });
    });
  });

  test('revocation, then introspection reports the token inactive', async () => {
    const config = await configFor('basic-app', client.ClientSecretBasic(secrets.basic));
    await withBrowser(async (browser) => {
      const { tokens } = await signInWith(browser, config, { scope: 'openid profile offline_access' });

      const live = await client.tokenIntrospection(config, tokens.access_token);
      assert.equal(live.active, true);
      assert.equal(live.sub, ada.sub);
      assert.equal(live.client_id, 'basic-app');
      assert.equal(live.iss, lk.issuer);
      assert.equal(live.username, ADA.username);
      const liveRefresh = await client.tokenIntrospection(config, tokens.refresh_token);
      assert.equal(liveRefresh.active, true);

      await client.tokenRevocation(config, tokens.access_token);
      const dead = await client.tokenIntrospection(config, tokens.access_token);
      assert.equal(dead.active, false);
      assert.deepEqual(Object.keys(dead), ['active'], 'an inactive answer says nothing more (RFC 7662 §2.2)');
      await assert.rejects(client.fetchUserInfo(config, tokens.access_token, ada.sub), (e) => {
        assert.equal(e.status, 401);
        return true;
      });

      await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
      assert.equal((await client.tokenIntrospection(config, tokens.refresh_token)).active, false);
      await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => {
        assert.equal(e.error, 'invalid_grant');
        return true;
      });
    });
  });

  test('client credentials grant', async () => {
    const config = await configFor('service-app', client.ClientSecretBasic(secrets.service));
    const tokens = await client.clientCredentialsGrant(config, { scope: 'api:read' });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(tokens.scope, 'api:read');
    assert.equal(tokens.refresh_token, undefined);
    assert.equal(tokens.id_token, undefined);
    const info = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(info.active, true);
    assert.equal(info.client_id, 'service-app');
    assert.equal(info.sub, 'service-app');
    assert.equal(info.scope, 'api:read');

    // A client not registered for the grant is refused.
    const basic = await configFor('basic-app', client.ClientSecretBasic(secrets.basic));
    await assert.rejects(client.clientCredentialsGrant(basic), (e) => {
      assert.equal(e.error, 'unauthorized_client');
      return true;
    });
  });

  test('RP-initiated logout ends the session and returns to the post-logout URI', async () => {
    const config = await configFor('post-app', client.ClientSecretPost(secrets.post));
    await withBrowser(async (browser) => {
      const { page } = browser;
      const { tokens } = await signInWith(browser, config);

      // Signed in: another authorization request goes straight through.
      const sso = await signInWith(browser, config);
      assert.equal(sso.sawLogin, false, 'signed in before logout');

      const rp = await interceptRp(page);
      const state = client.randomState();
      const endSession = client.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: SIGNED_OUT,
        state,
      });
      assert.equal(endSession.origin + endSession.pathname, `${lk.issuer}/logout`);
      const arrived = rp.next();
      const response = await page.goto(endSession.toString());
      const hit = await arrived;
      const back = new URL(hit.url);
      assert.equal(back.origin + back.pathname, SIGNED_OUT);
      assert.equal(back.searchParams.get('state'), state);
      assert.equal(new URL(page.url()).pathname, '/signed-out');
      assert.ok(response, 'navigation completed');

      // The session is gone: a new authorization request shows the login page again.
      const req = await authorizationRequest(config);
      await page.goto(req.url.toString());
      await page.waitForURL((u) => u.pathname === '/login');
      assert.equal(await onLoginPage(page, lk.issuer), true);
      await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    });
  });

  test('logout without id_token_hint asks the user to confirm, then returns to the post-logout URI', async () => {
    const config = await configFor('post-app', client.ClientSecretPost(secrets.post));
    await withBrowser(async (browser) => {
      const { page } = browser;
      await signInWith(browser, config);
      const rp = await interceptRp(page);
      const state = client.randomState();
      // buildEndSessionUrl adds client_id, which identifies the client without a hint.
      const endSession = client.buildEndSessionUrl(config, { post_logout_redirect_uri: SIGNED_OUT, state });
      assert.equal(endSession.searchParams.get('client_id'), 'post-app');
      await page.goto(endSession.toString());
      await page.getByRole('heading', { name: 'Sign out?' }).waitFor();
      const arrived = rp.next();
      const csp = watchCsp(page);
      await page.getByRole('button', { name: 'Sign out' }).click();
      const back = new URL((await csp.guard(arrived)).url);
      csp.dispose();
      assert.equal(back.origin + back.pathname, SIGNED_OUT);
      assert.equal(back.searchParams.get('state'), state);

      const req = await authorizationRequest(config);
      await page.goto(req.url.toString());
      await page.waitForURL((u) => u.pathname === '/login');
      assert.equal(await onLoginPage(page, lk.issuer), true);
    });
  });

  test('a wrong password shows an error; the right one then continues to the client', async () => {
    const config = await configFor('post-app', client.ClientSecretPost(secrets.post));
    await withBrowser(async (browser) => {
      const { page } = browser;
      const rp = await interceptRp(page);
      const req = await authorizationRequest(config);
      await page.goto(req.url.toString());
      await page.waitForURL((u) => u.pathname === '/login');
      await signIn(page, { password: 'not the password' });
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.equal((await alert.innerText()).trim(), 'The username or password is wrong.');
      assert.equal(await onLoginPage(page, lk.issuer), true);
      assert.equal(rp.hits.length, 0, 'nothing reached the client');
      assert.equal(await page.getByLabel('Username', { exact: true }).inputValue(), ADA.username, 'the username is kept');

      const csp = watchCsp(page);
      const arrived = rp.next();
      await page.getByLabel('Password').fill(ADA.password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      const callback = new URL((await csp.guard(arrived)).url);
      csp.dispose();
      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: req.codeVerifier,
        expectedState: req.state,
        expectedNonce: req.nonce,
      });
      assert.equal(tokens.claims().sub, ada.sub);
    });
  });

  test('wrong client secret: invalid_client', async () => {
    // client_secret_post: the error is in the body.
    const post = await configFor('post-app', client.ClientSecretPost('not-the-secret'));
    await assert.rejects(client.tokenIntrospection(post, 'anything'), (e) => {
      assert.ok(e instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_client');
      assert.equal(e.status, 401);
      return true;
    });
    // client_secret_basic: 401 with a Basic challenge (RFC 6749 §5.2), which the library
    // surfaces as the challenge; the body still says invalid_client.
    const basic = await configFor('service-app', client.ClientSecretBasic('not-the-secret'));
    const e = await client.clientCredentialsGrant(basic).then(
      () => assert.fail('a wrong secret was accepted'),
      (err) => err,
    );
    assert.ok(e instanceof client.WWWAuthenticateChallengeError, `got ${e.name}: ${e.message}`);
    assert.equal(e.status, 401);
    assert.equal(e.cause[0].scheme, 'basic');
    assert.equal((await e.response.json()).error, 'invalid_client');
  });

  test('a replayed authorization code is refused with invalid_grant and its tokens are revoked', async () => {
    const config = await configFor('post-app', client.ClientSecretPost(secrets.post));
    await withBrowser(async (browser) => {
      const { tokens, callback, req } = await signInWith(browser, config);
      assert.equal((await client.tokenIntrospection(config, tokens.access_token)).active, true);
      await assert.rejects(
        client.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: req.codeVerifier,
          expectedState: req.state,
          expectedNonce: req.nonce,
        }),
        (e) => {
          assert.ok(e instanceof client.ResponseBodyError, `got ${e.name}: ${e.message}`);
          assert.equal(e.error, 'invalid_grant');
          return true;
        },
      );
      // RFC 9700 §4.5.1 / OAuth 2.1 §4.1.3: tokens already issued from the code are revoked.
      assert.equal((await client.tokenIntrospection(config, tokens.access_token)).active, false);
    });
  });
});

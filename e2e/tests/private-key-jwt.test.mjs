// private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) with openid-client v6
// and oauth4webapi v3: the client registers a public JWK set (--jwks-file) and signs an
// assertion with its private key at the token endpoint. Both libraries address it to the
// issuer, the only audience Latchkey accepts (draft-ietf-oauth-rfc7523bis); the token
// endpoint URL only for a client registered with --allow-legacy-assertion-audience.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';

import {
  RP_ORIGIN,
  authorizeInBrowser,
  decodeJwt,
  generateClientKey,
  interceptRp,
  seedAda,
  startLatchkey,
  withBrowser,
} from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;
const CLIENT_ID = 'jwt-app';
const LEGACY_ID = 'jwt-legacy';
const insecure = { [oauth.allowInsecureRequests]: true };

let lk;
let ada;
let as;
let key; // the registered key pair
let otherKey; // never registered

before(async () => {
  key = await generateClientKey({ kid: 'jwt-app-1', alg: 'ES256' });
  otherKey = await generateClientKey({ kid: 'jwt-app-1', alg: 'ES256' }); // same kid, other key
  assert.equal(key.publicJwk.d, undefined, 'only the public key is registered');
  lk = await startLatchkey({
    seed(cli) {
      ada = seedAda(cli);
      cli.createScope('api:read', 'Read the example API');
      const created = cli.createClient({
        id: CLIENT_ID,
        name: 'JWT app',
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
        scopes: ['openid', 'profile', 'email', 'offline_access', 'api:read'],
        authMethod: 'private_key_jwt',
        jwks: { keys: [key.publicJwk] },
        firstParty: true,
      });
      assert.equal(created.client_secret ?? null, null, 'a private_key_jwt client has no secret');
      cli.createClient({
        id: LEGACY_ID,
        name: 'JWT app on an old library',
        grantTypes: ['client_credentials'],
        scopes: ['api:read'],
        authMethod: 'private_key_jwt',
        jwks: { keys: [key.publicJwk] },
        allowLegacyAssertionAudience: true,
      });
    },
  });
  const issuer = new URL(lk.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});

after(async () => {
  await lk?.stop();
});

/** Captures the client assertions a library sends (after it built them). */
function recordingFetch(sent) {
  return async (url, init) => {
    const body = init?.body instanceof URLSearchParams ? init.body : new URLSearchParams(String(init?.body ?? ''));
    if (body.has('client_assertion')) sent.push({ url: String(url), body: new URLSearchParams(body) });
    return fetch(url, init);
  };
}

/** A PKCE authorization request for `clientId`, walked through Chromium; returns the callback. */
async function authorize(browser, url, state) {
  const rp = await interceptRp(browser.page);
  const flow = await authorizeInBrowser(browser.page, lk.issuer, url, rp.next);
  const callback = new URL(flow.hit.url);
  assert.equal(callback.origin + callback.pathname, CALLBACK);
  assert.equal(callback.searchParams.get('state'), state);
  return callback;
}

describe('private_key_jwt', () => {
  test('discovery advertises private_key_jwt', () => {
    assert.ok(as.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
    const algs = as.token_endpoint_auth_signing_alg_values_supported;
    assert.ok(Array.isArray(algs) && algs.includes('ES256'), `signing algs: ${JSON.stringify(algs)}`);
    assert.ok(!algs.includes('HS256') && !algs.includes('none'), 'asymmetric algorithms only');
  });

  test('openid-client: code + PKCE in Chromium, then a refresh', async () => {
    const sent = [];
    const config = await client.discovery(
      new URL(lk.issuer),
      CLIENT_ID,
      undefined,
      client.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }),
      { execute: [client.allowInsecureRequests] },
    );
    config[client.customFetch] = recordingFetch(sent);
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: CALLBACK,
      scope: 'openid profile offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
    });
    const callback = await withBrowser((browser) => authorize(browser, url, state));
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    assert.equal(tokens.claims().sub, ada.sub);
    assert.equal(tokens.claims().aud, CLIENT_ID);
    assert.ok(tokens.refresh_token, 'a refresh token (offline_access)');

    // What the library sent: a JWT-bearer assertion signed with our key, iss = sub = client id.
    assert.equal(sent.length, 1);
    assert.equal(sent[0].url, as.token_endpoint);
    assert.equal(sent[0].body.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const assertion = decodeJwt(sent[0].body.get('client_assertion'));
    assert.equal(assertion.header.alg, 'ES256');
    assert.equal(assertion.header.kid, key.kid);
    assert.equal(assertion.payload.iss, CLIENT_ID);
    assert.equal(assertion.payload.sub, CLIENT_ID);
    assert.equal(assertion.payload.aud, lk.issuer);

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token);
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.ok(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'rotated');
    assert.equal(sent.length, 2, 'the refresh authenticated with a new assertion');
    assert.notEqual(
      decodeJwt(sent[1].body.get('client_assertion')).payload.jti,
      assertion.payload.jti,
      'a fresh jti per assertion',
    );

    const info = await client.fetchUserInfo(config, refreshed.access_token, ada.sub);
    assert.equal(info.sub, ada.sub);
  });

  test('oauth4webapi: authorization code grant and a refresh', async () => {
    const c = { client_id: CLIENT_ID };
    const auth = oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid });
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(as.authorization_endpoint);
    url.search = new URLSearchParams({
      client_id: CLIENT_ID,
      redirect_uri: CALLBACK,
      response_type: 'code',
      scope: 'openid profile offline_access',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
    }).toString();
    const callback = await withBrowser((browser) => authorize(browser, url, state));
    const params = oauth.validateAuthResponse(as, c, callback.searchParams, state);
    const response = await oauth.authorizationCodeGrantRequest(as, c, auth, params, CALLBACK, codeVerifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, response, { expectedNonce: nonce });
    assert.equal(oauth.getValidatedIdTokenClaims(tokens).sub, ada.sub);
    assert.ok(tokens.refresh_token);

    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      c,
      await oauth.refreshTokenGrantRequest(as, c, auth, tokens.refresh_token, insecure),
    );
    assert.ok(refreshed.access_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  });

  test('oauth4webapi: client credentials, the assertion addressed to the issuer', async () => {
    const c = { client_id: CLIENT_ID };
    const sent = [];
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      c,
      oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }),
      new URLSearchParams({ scope: 'api:read' }),
      { ...insecure, [oauth.customFetch]: recordingFetch(sent) },
    );
    const tokens = await oauth.processClientCredentialsResponse(as, c, response);
    assert.ok(tokens.access_token);
    assert.equal(tokens.scope, 'api:read');
    assert.equal(sent.length, 1);
    assert.equal(decodeJwt(sent[0].body.get('client_assertion')).payload.aud, lk.issuer, 'the issuer, as a string');
  });

  /** A client credentials request with `auth`; returns the OAuth error code, or null. */
  async function clientCredentialsError(auth, clientId = CLIENT_ID) {
    const c = { client_id: clientId };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      c,
      auth,
      new URLSearchParams({ scope: 'api:read' }),
      insecure,
    );
    try {
      await oauth.processClientCredentialsResponse(as, c, response);
      return null;
    } catch (e) {
      assert.ok(e instanceof oauth.ResponseBodyError, `unexpected ${e}`);
      assert.equal(e.status, 401);
      return e.error;
    }
  }

  test('an assertion signed with another key is invalid_client', async () => {
    assert.equal(await clientCredentialsError(oauth.PrivateKeyJwt({ key: otherKey.privateKey, kid: otherKey.kid })), 'invalid_client');
    // The registered key still works.
    assert.equal(await clientCredentialsError(oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid })), null);
  });

  test('a replayed assertion (same jti) is invalid_client', async () => {
    const jti = `replay-${crypto.randomUUID()}`;
    const fixedJti = oauth.PrivateKeyJwt(
      { key: key.privateKey, kid: key.kid },
      {
        [oauth.modifyAssertion](_header, payload) {
          payload.jti = jti;
        },
      },
    );
    assert.equal(await clientCredentialsError(fixedJti), null, 'first use is accepted');
    assert.equal(await clientCredentialsError(fixedJti), 'invalid_client', 'the same jti again is refused');
  });

  const withAud = (aud) =>
    oauth.PrivateKeyJwt(
      { key: key.privateKey, kid: key.kid },
      {
        [oauth.modifyAssertion](_header, payload) {
          if (aud === undefined) delete payload.aud;
          else payload.aud = aud;
        },
      },
    );

  test('the audience is the issuer as its only value', async () => {
    assert.equal(await clientCredentialsError(withAud([lk.issuer])), null, 'a one-element array');
    for (const aud of [
      as.token_endpoint,
      [lk.issuer, as.token_endpoint],
      'https://elsewhere.example/',
      undefined,
      42,
      { iss: lk.issuer },
    ]) {
      assert.equal(await clientCredentialsError(withAud(aud)), 'invalid_client', `aud ${JSON.stringify(aud)}`);
    }
  });

  test('--allow-legacy-assertion-audience admits the token endpoint URL and nothing else', async () => {
    assert.equal(await clientCredentialsError(withAud(as.token_endpoint), LEGACY_ID), null, 'the token endpoint URL');
    assert.equal(await clientCredentialsError(withAud(lk.issuer), LEGACY_ID), null, 'the issuer');
    for (const aud of [[lk.issuer, as.token_endpoint], as.introspection_endpoint, as.revocation_endpoint, undefined]) {
      assert.equal(
        await clientCredentialsError(withAud(aud), LEGACY_ID),
        'invalid_client',
        `aud ${JSON.stringify(aud)}`,
      );
    }
  });

  test('an assertion with a far exp, or sub other than iss, is invalid_client', async () => {
    const modified = (fn) => oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }, { [oauth.modifyAssertion]: fn });
    assert.equal(
      await clientCredentialsError(
        modified((_h, p) => {
          p.exp = p.iat + 3600;
        }),
      ),
      'invalid_client',
      'exp more than 10 minutes ahead',
    );
    assert.equal(
      await clientCredentialsError(
        modified((_h, p) => {
          p.sub = 'someone-else';
        }),
      ),
      'invalid_client',
      'sub must equal iss',
    );
  });
});

// The `claims` request parameter (OIDC Core §5.5) with openid-client v6: claims asked for
// one by one, beyond the scopes, are shown on the consent page and then released in the
// ID token and by UserInfo, also after a refresh.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import { ADA, RP_ORIGIN, interceptRp, seedAda, signIn, startLatchkey, watchCsp, withBrowser } from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;

let lk;
let ada;
let secret;

before(async () => {
  lk = await startLatchkey({
    seed(cli) {
      ada = seedAda(cli);
      // Third-party: consent is asked. It may have `profile` and `email`, but asks for
      // neither scope, only for single claims.
      secret = cli.createClient({
        id: 'claims-app',
        name: 'Claims app',
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        authMethod: 'client_secret_basic',
      }).client_secret;
    },
  });
});

after(async () => {
  await lk?.stop();
});

function config() {
  return client.discovery(new URL(lk.issuer), 'claims-app', {}, client.ClientSecretBasic(secret), {
    execute: [client.allowInsecureRequests],
  });
}

/**
 * Signs Ada in for `claims` (an object, sent as JSON) and `scope`; returns the consent
 * page's list items (null when no consent page showed), the callback URL and the request.
 */
async function authorize(page, cfg, { scope, claims }) {
  const rp = await interceptRp(page);
  const codeVerifier = client.randomPKCECodeVerifier();
  const req = {
    codeVerifier,
    state: client.randomState(),
    nonce: client.randomNonce(),
  };
  const url = client.buildAuthorizationUrl(cfg, {
    redirect_uri: CALLBACK,
    scope,
    claims: JSON.stringify(claims),
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state: req.state,
    nonce: req.nonce,
  });
  const csp = watchCsp(page);
  const arrived = rp.next();
  try {
    await csp.guard(page.goto(url.toString()));
    const where = await csp.guard(
      Promise.race([
        arrived.then(() => 'rp'),
        page.waitForURL((u) => u.pathname === '/login').then(() => 'login'),
      ]),
    );
    let consent = null;
    if (where === 'login') {
      await signIn(page);
      const next = await csp.guard(
        Promise.race([arrived.then(() => 'rp'), page.waitForURL((u) => u.pathname === '/consent').then(() => 'consent')]),
      );
      if (next === 'consent') {
        consent = await page.locator('ul.scopes li').allInnerTexts();
        await page.getByRole('button', { name: 'Allow' }).click();
      }
    }
    const hit = await csp.guard(arrived);
    return { consent, callback: new URL(hit.url), req };
  } finally {
    csp.dispose();
  }
}

describe('the claims parameter with openid-client v6', () => {
  test('discovery says the claims parameter is supported', async () => {
    const md = (await config()).serverMetadata();
    assert.equal(md.claims_parameter_supported, true);
    assert.ok(md.claims_supported.includes('name'));
  });

  test('claims asked for one by one: consent page, ID token, UserInfo, and after a refresh', async () => {
    const cfg = await config();
    await withBrowser(async ({ page }) => {
      const { consent, callback, req } = await authorize(page, cfg, {
        scope: 'openid offline_access',
        claims: { userinfo: { name: { essential: true } }, id_token: { email: null } },
      });
      assert.ok(consent, 'the consent page showed');
      const items = consent.join('\n');
      assert.match(items, /Your full name\s+name\s+\(the application says it needs this\)/, items);
      assert.match(items, /Your email address\s+email/, items);
      assert.doesNotMatch(items, /\bprofile\b/, 'the profile scope itself is not asked for');

      const tokens = await client.authorizationCodeGrant(cfg, callback, {
        pkceCodeVerifier: req.codeVerifier,
        expectedState: req.state,
        expectedNonce: req.nonce,
        idTokenExpected: true,
      });
      assert.deepEqual(tokens.scope.split(' ').sort(), ['offline_access', 'openid'], 'no scope was added');
      // The library verified the ID token (signature, iss, aud, nonce).
      const id = tokens.claims();
      assert.equal(id.sub, ada.sub);
      assert.equal(id.email, ADA.email, 'asked for in the id_token member');
      assert.equal(id.name, undefined, 'the name was asked of UserInfo only');

      const info = await client.fetchUserInfo(cfg, tokens.access_token, ada.sub);
      assert.equal(info.name, ADA.name, 'asked for in the userinfo member');
      assert.equal(info.email, undefined, 'the email was asked of the ID token only');
      assert.equal(info.preferred_username, undefined, 'no claim that was not asked for');

      const refreshed = await client.refreshTokenGrant(cfg, tokens.refresh_token);
      assert.equal(refreshed.claims().email, ADA.email, 'the refreshed ID token keeps the claim');
      const again = await client.fetchUserInfo(cfg, refreshed.access_token, ada.sub);
      assert.deepEqual(Object.keys(again).sort(), ['name', 'sub'], 'the refreshed access token keeps it too');

      // Allowed once, the claim is not asked for again.
      const second = await authorize(page, cfg, { scope: 'openid', claims: { userinfo: { name: null } } });
      assert.equal(second.consent, null, 'no consent page for a claim already allowed');
      const tokens2 = await client.authorizationCodeGrant(cfg, second.callback, {
        pkceCodeVerifier: second.req.codeVerifier,
        expectedState: second.req.state,
        expectedNonce: second.req.nonce,
      });
      assert.equal((await client.fetchUserInfo(cfg, tokens2.access_token, ada.sub)).name, ADA.name);
    });
  });

  test('a malformed claims parameter comes back as invalid_request', async () => {
    const cfg = await config();
    await withBrowser(async ({ page }) => {
      const rp = await interceptRp(page);
      const url = client.buildAuthorizationUrl(cfg, {
        redirect_uri: CALLBACK,
        scope: 'openid',
        // A member named twice: parsers disagree on which one counts.
        claims: '{"userinfo":{"name":null},"userinfo":{"email":null}}',
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: 'st',
      });
      const arrived = rp.next();
      await page.goto(url.toString());
      const back = new URL((await arrived).url);
      assert.equal(back.searchParams.get('error'), 'invalid_request');
      assert.match(back.searchParams.get('error_description'), /claims/);
      assert.equal(back.searchParams.get('state'), 'st');
      assert.equal(back.searchParams.get('iss'), lk.issuer);
    });
  });
});

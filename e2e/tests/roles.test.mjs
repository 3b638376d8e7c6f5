// Roles, groups and entitlements with openid-client v6: the RFC 9068 §2.2.3.1 claims a
// client is registered to receive (`--release-claims`) in the ID token, the access token
// (JWT), UserInfo and introspection; a client's own application roles and never another
// client's; clients that admit only users holding a role (`--require-role`), in Chromium
// and at the token endpoint, as roles are granted and revoked with the CLI while the server
// runs (it picks changes up through its change poll).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import {
  ADA,
  RP_ORIGIN,
  codeFlow,
  decodeJwt,
  discoverClient,
  interceptRp,
  onLoginPage,
  pollUntil,
  seedAda,
  signIn,
  startLatchkey,
  withBrowser,
} from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;

/** Holds nothing: no role, no group. */
const GRACE = { username: 'grace', email: 'grace@example.com', name: 'Grace Hopper', password: 'cobol compiler 1959' };
/** Signs in to the vault without its role, then is granted it. */
const ALAN = { username: 'alan', email: 'alan@example.com', name: 'Alan Turing', password: 'enigma bombe 1940' };
/** Holds the vault's role, then loses it while holding a refresh token. */
const BARBARA = { username: 'barbara', email: 'barbara@example.com', name: 'Barbara Liskov', password: 'substitution 1987' };

/** How long the server may take to see a change the CLI made (its change poll is ~1 s). */
const PROPAGATION_MS = 10_000;

// What Ada holds (seeded below): `staff` through the group `engineering`, `auditor`
// directly, and one application role of each of two clients.
const ADA_DASHBOARD = {
  roles: ['auditor', 'dashboard-admin', 'staff'],
  groups: ['engineering'],
  // The union of the released roles' entitlements, sorted, each once (`reports:read` is in
  // two roles); nothing of billing's role.
  entitlements: ['audit:read', 'dashboard:write', 'reports:read', 'wiki:read'],
};

let lk;
let ada;
let grace;
const secrets = {};

before(async () => {
  lk = await startLatchkey({
    seed(cli) {
      ada = seedAda(cli);
      grace = cli.createUser(GRACE);
      cli.createUser(ALAN);
      cli.createUser(BARBARA);
      const app = (o) =>
        cli.createClient({
          redirectUris: [CALLBACK],
          grantTypes: ['authorization_code'],
          scopes: ['openid', 'profile'],
          authMethod: 'client_secret_basic',
          // First-party: no consent page, so the only thing between the user and the
          // client is the role check.
          firstParty: true,
          ...o,
        }).client_secret;
      secrets.dashboard = app({ id: 'dashboard', name: 'Dashboard', releaseClaims: ['roles', 'groups', 'entitlements'] });
      secrets.billing = app({
        id: 'billing',
        name: 'Billing',
        releaseClaims: ['roles', 'entitlements'],
        applicationRolesOnly: true,
      });

      cli.createRole('staff', { entitlements: ['wiki:read', 'reports:read'], description: 'Everyone on staff' });
      cli.createRole('auditor', { entitlements: ['reports:read', 'audit:read'] });
      cli.createRole('editor', { entitlements: ['docs:write'] });
      cli.createRole('dashboard-admin', { application: 'dashboard', entitlements: ['dashboard:write'] });
      cli.createRole('billing-admin', { application: 'billing', entitlements: ['billing:write'] });
      cli(['group', 'create', 'engineering']);
      cli(['group', 'add-role', 'engineering', 'staff']);
      cli(['group', 'add-member', 'engineering', ADA.username]);
      cli(['user', 'grant', ADA.username, 'auditor']);
      cli(['user', 'grant', ADA.username, 'dashboard-admin']);
      cli(['user', 'grant', ADA.username, 'billing-admin']);

      // Admits only holders of `vault-user`; may refresh (offline_access: consent is asked).
      cli.createRole('vault-user', { entitlements: ['vault:open'] });
      secrets.vault = app({
        id: 'vault',
        name: 'Vault',
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'offline_access'],
        releaseClaims: ['roles'],
        requireRoles: ['vault-user'],
      });
      cli(['user', 'grant', BARBARA.username, 'vault-user']);

      // The CLI's own view agrees with what the tokens should say.
      const held = cli(['user', 'access', ADA.username]);
      assert.deepEqual(held.roles.map((r) => r.name).sort(), ['auditor', 'billing-admin', 'dashboard-admin', 'staff']);
      assert.deepEqual(held.groups, ['engineering']);
    },
  });
});

after(async () => {
  await lk?.stop();
});

const config = (id) => discoverClient(lk.issuer, id, client.ClientSecretBasic(secrets[id]));

/** The three access claims of an object (ID token claims, UserInfo, a JWT payload…), roles and groups sorted. */
function accessClaims(obj) {
  const sorted = (v) => (Array.isArray(v) ? [...v].sort() : v);
  return { roles: sorted(obj.roles), groups: sorted(obj.groups), entitlements: obj.entitlements };
}

/** Records the status of every main-frame navigation response of `page`. */
function recordStatuses(page) {
  const statuses = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) statuses.push({ url: r.url(), status: r.status() });
  });
  return statuses;
}

/** A code + PKCE authorization request for `cfg` (to start in the browser by hand). */
async function authorizationRequest(cfg, extra = {}) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(cfg, {
    redirect_uri: CALLBACK,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, codeVerifier, state, nonce };
}

describe('roles, groups and entitlements with openid-client v6', () => {
  test('released in the ID token, the access token, UserInfo and introspection; never another client’s roles', async () => {
    const cfg = await config('dashboard');
    await withBrowser(async ({ page }) => {
      const { tokens, sawLogin, sawConsent } = await codeFlow(page, lk.issuer, cfg, { scope: 'openid profile' });
      assert.equal(sawLogin, true);
      assert.equal(sawConsent, false, 'first-party');

      // The ID token, as openid-client validated it.
      const id = tokens.claims();
      assert.equal(id.sub, ada.sub);
      assert.deepEqual(accessClaims(id), ADA_DASHBOARD);
      assert.ok(!id.roles.includes('billing-admin'), 'another application’s role is never released');
      assert.ok(!id.entitlements.includes('billing:write'), 'nor its entitlements');

      // The access token is a JWT (RFC 9068) with the same claims.
      const at = decodeJwt(tokens.access_token);
      assert.equal(at.header.typ, 'at+jwt');
      assert.equal(at.payload.sub, ada.sub);
      assert.equal(at.payload.client_id, 'dashboard');
      assert.deepEqual(accessClaims(at.payload), ADA_DASHBOARD);

      const info = await client.fetchUserInfo(cfg, tokens.access_token, ada.sub);
      assert.equal(info.name, ADA.name);
      assert.deepEqual(accessClaims(info), ADA_DASHBOARD);

      const intro = await client.tokenIntrospection(cfg, tokens.access_token);
      assert.equal(intro.active, true);
      assert.equal(intro.sub, ada.sub);
      assert.deepEqual(accessClaims(intro), ADA_DASHBOARD);

      // Billing releases only its own roles (and their entitlements), and no groups.
      const billingCfg = await config('billing');
      const billing = await codeFlow(page, lk.issuer, billingCfg);
      assert.equal(billing.sawLogin, false, 'single sign-on');
      const bid = billing.tokens.claims();
      assert.deepEqual(bid.roles, ['billing-admin'], 'application roles only: no tenant-wide role, not dashboard’s');
      assert.deepEqual(bid.entitlements, ['billing:write']);
      assert.equal(bid.groups, undefined, 'groups are not released to billing');
      const binfo = await client.fetchUserInfo(billingCfg, billing.tokens.access_token, ada.sub);
      assert.deepEqual(binfo.roles, ['billing-admin']);
      assert.equal(binfo.groups, undefined);
      assert.deepEqual(decodeJwt(billing.tokens.access_token).payload.roles, ['billing-admin']);

      // A grant while the token lives: UserInfo and introspection say what Ada holds now;
      // the ID token already issued does not change.
      lk.cli(['user', 'grant', ADA.username, 'editor']);
      const granted = await pollUntil(
        () => client.fetchUserInfo(cfg, tokens.access_token, ada.sub),
        (i) => i.roles.includes('editor'),
        { timeoutMs: PROPAGATION_MS },
      );
      assert.deepEqual(accessClaims(granted), {
        roles: ['auditor', 'dashboard-admin', 'editor', 'staff'],
        groups: ['engineering'],
        entitlements: ['audit:read', 'dashboard:write', 'docs:write', 'reports:read', 'wiki:read'],
      });
      const grantedIntro = await client.tokenIntrospection(cfg, tokens.access_token);
      assert.ok(grantedIntro.roles.includes('editor'), `introspection: ${JSON.stringify(grantedIntro)}`);
      assert.ok(grantedIntro.entitlements.includes('docs:write'));
      assert.ok(!tokens.claims().roles.includes('editor'));

      lk.cli(['user', 'revoke', ADA.username, 'editor']);
      const revoked = await pollUntil(
        () => client.tokenIntrospection(cfg, tokens.access_token),
        (i) => !i.roles.includes('editor'),
        { timeoutMs: PROPAGATION_MS },
      );
      assert.deepEqual(accessClaims(revoked), ADA_DASHBOARD, 'introspection after the revocation');
      assert.deepEqual(accessClaims(await client.fetchUserInfo(cfg, tokens.access_token, ada.sub)), ADA_DASHBOARD);
    });
  });

  test('a user who holds nothing gets the released claims, empty', async () => {
    const cfg = await config('dashboard');
    await withBrowser(async ({ page }) => {
      const { tokens } = await codeFlow(page, lk.issuer, cfg, { options: { user: GRACE } });
      const none = { roles: [], groups: [], entitlements: [] };
      const id = tokens.claims();
      assert.equal(id.sub, grace.sub);
      assert.deepEqual(accessClaims(id), none, 'present and empty: "no roles", not "not told"');
      assert.deepEqual(accessClaims(decodeJwt(tokens.access_token).payload), none);
      assert.deepEqual(accessClaims(await client.fetchUserInfo(cfg, tokens.access_token, grace.sub)), none);
    });
  });

  test('a client that requires a role: 403 without it, access_denied with prompt=none, admitted once granted', async (t) => {
    const cfg = await config('vault');
    await withBrowser(async ({ page }) => {
      const rp = await interceptRp(page);
      const statuses = recordStatuses(page);

      // Signing in without the role ends on Latchkey's 403 page; nothing reaches the client.
      const first = await authorizationRequest(cfg);
      await page.goto(first.url.href);
      assert.equal(await onLoginPage(page, lk.issuer), true);
      await signIn(page, ALAN);
      await page.waitForURL((u) => u.pathname !== '/login');
      await page.waitForLoadState();
      const last = statuses.at(-1);
      assert.equal(last.status, 403, `navigations: ${JSON.stringify(statuses)}`);
      assert.equal(new URL(last.url).origin, new URL(lk.issuer).origin);
      assert.match(await page.locator('body').innerText(), /No access to this application/);
      assert.equal(rp.hits.length, 0, `nothing went back to the client: ${JSON.stringify(rp.hits)}`);

      // prompt=none: the client is told, at its redirect URI, without a code.
      const silent = await authorizationRequest(cfg, { prompt: 'none' });
      const arrived = rp.next();
      await page.goto(silent.url.href);
      const denied = new URL((await arrived).url);
      assert.equal(denied.origin + denied.pathname, CALLBACK);
      assert.equal(denied.searchParams.get('error'), 'access_denied', denied.href);
      assert.equal(denied.searchParams.get('state'), silent.state);
      assert.equal(denied.searchParams.get('iss'), lk.issuer);
      assert.equal(denied.searchParams.get('code'), null);

      // Granted while signed in: once the server sees it, the same session gets through.
      lk.cli(['user', 'grant', ALAN.username, 'vault-user']);
      const attempts = [];
      const outcome = await pollUntil(
        async () => {
          const req = await authorizationRequest(cfg);
          const hit = rp.next();
          const response = await page.goto(req.url.href);
          const result = { req, status: response?.status(), url: page.url() };
          if (new URL(page.url()).origin === RP_ORIGIN) result.callback = new URL((await hit).url);
          attempts.push({ status: result.status, url: result.url });
          return result;
        },
        (r) => r.callback !== undefined,
        { timeoutMs: PROPAGATION_MS, intervalMs: 250 },
      );
      assert.ok(outcome.callback, `still refused after ${PROPAGATION_MS} ms: ${JSON.stringify(attempts)}`);
      t.diagnostic(`admitted at attempt ${attempts.length}: ${attempts.map((a) => a.status).join(', ')}`);
      assert.ok(
        attempts.slice(0, -1).every((a) => a.status === 403),
        `each attempt before was the 403 page: ${JSON.stringify(attempts)}`,
      );
      assert.equal(outcome.callback.searchParams.get('error'), null, outcome.callback.href);
      assert.ok(outcome.callback.searchParams.get('code'), 'a code');
      assert.equal(
        rp.hits.filter((h) => new URL(h.url).searchParams.has('code')).length,
        1,
        'the only code the client ever received is the one after the grant',
      );
      const tokens = await client.authorizationCodeGrant(cfg, outcome.callback, {
        pkceCodeVerifier: outcome.req.codeVerifier,
        expectedState: outcome.req.state,
        expectedNonce: outcome.req.nonce,
        idTokenExpected: true,
      });
      assert.deepEqual(tokens.claims().roles, ['vault-user']);
    });
  });

  test('a refresh is refused (invalid_grant) once the required role is revoked', async (t) => {
    const cfg = await config('vault');
    await withBrowser(async ({ page }) => {
      const { tokens, sawConsent } = await codeFlow(page, lk.issuer, cfg, {
        scope: 'openid offline_access',
        options: { user: BARBARA },
      });
      assert.equal(sawConsent, true, 'offline_access asks for consent');
      assert.equal(typeof tokens.refresh_token, 'string', 'offline_access yields a refresh token');
      assert.deepEqual(tokens.claims().roles, ['vault-user']);

      // While she holds the role, the refresh works (and rotates the token).
      const refreshed = await client.refreshTokenGrant(cfg, tokens.refresh_token);
      assert.deepEqual(refreshed.claims().roles, ['vault-user']);
      let current = refreshed.refresh_token ?? tokens.refresh_token;

      lk.cli(['user', 'revoke', BARBARA.username, 'vault-user']);
      // Refresh with the newest token until the server has seen the revocation: a success
      // before then rotates the token, and the next try uses the new one.
      const attempts = [];
      const outcome = await pollUntil(
        async () => {
          try {
            const t = await client.refreshTokenGrant(cfg, current);
            current = t.refresh_token ?? current;
            attempts.push({ ok: true, roles: t.claims()?.roles });
            return { ok: true };
          } catch (e) {
            const r = { ok: false, name: e.name, status: e.status, error: e.error, description: e.error_description };
            attempts.push(r);
            return r;
          }
        },
        (r) => !r.ok,
        { timeoutMs: PROPAGATION_MS, intervalMs: 200 },
      );
      assert.equal(outcome.ok, false, `still refreshing ${PROPAGATION_MS} ms after the revocation: ${JSON.stringify(attempts)}`);
      t.diagnostic(`refused at attempt ${attempts.length}: ${outcome.error} (${outcome.description})`);
      assert.equal(outcome.error, 'invalid_grant', JSON.stringify(outcome));
      // Not a spent token (also invalid_grant): the refusal is for the role.
      assert.match(outcome.description ?? '', /role/, JSON.stringify(outcome));
      assert.equal(outcome.status, 400);
    });
  });
});

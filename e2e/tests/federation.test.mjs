// Sign-in through an upstream identity provider (issue 18), in Chromium, against two kinds of
// upstream on 127.0.0.1 (opened for `federation` in `outbound.allow`):
//
// - `oidc-provider` (lib/upstream.mjs), a real OpenID Provider: `kind = "oidc"`, discovery,
//   code + PKCE, `client_secret_basic`, ID tokens signed RS256; accounts the test sets and
//   changes while the test runs; its own login and consent pages, driven in the browser;
// - a GitHub stand-in (lib/github.mjs) in the GitHub Enterprise layout: `kind = "github"`,
//   the OAuth web flow and `GET /user`, `GET /user/emails`, checked as GitHub documents them
//   (anything else lands in its `problems`, asserted empty at the end).
//
// What happened is read back through the pages, the ID token an app (openid-client) gets, and
// the CLI (`latchkey --json user list`, `user identities USER`).
//
// 1. Sign-in and linking (one server; Corp SSO makes accounts, GitHub does not): a first
//    sign-in through Corp SSO makes an account and an app gets its claims (`amr` "fed");
//    GitHub with the same verified address is linked only after the owner signs in and
//    confirms on the security page; a password user links GitHub from the security page; an
//    identity linked to someone else is not linked again; sign-in through each provider then
//    reaches the right account; a GitHub user renamed, whose old login someone else took, is
//    told apart by the numeric id.
// 2. Attacks (one server; two OpenID Providers and GitHub): a changed `state`, a replayed
//    callback (same browser, and another with the first one's cookies), a callback opened in
//    another browser, a response of provider A delivered to B's callback (and to GitHub's), an
//    unverified upstream address that is an account's, an upstream that changes its address
//    to a victim's. Each is refused with an error page and nothing is linked or created.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';

import { RP_ORIGIN, discoverClient, interceptRp, openBrowser, signIn, startLatchkey } from '../lib/latchkey.mjs';
import { authorizeOnGitHub, startGitHub } from '../lib/github.mjs';
import { navigateBy, signInUpstream, startUpstream } from '../lib/upstream.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;
const FEDERATED_ACR = 'urn:latchkey:acr:federated';

// ---------------------------------------------------------------------------------------
// Configuration

/** `[federation.providers.ID]` for an oidc-provider instance. */
function oidcProvider(id, name, upstream, { newAccounts, env }) {
  return [
    `[federation.providers.${id}]`,
    'kind = "oidc"',
    `name = "${name}"`,
    `issuer = "${upstream.issuer}"`,
    `client_id = "${upstream.clientId}"`,
    `client_secret = "env:${env}"`,
    `new_accounts = "${newAccounts}"`,
    '',
  ];
}

/** `[federation.providers.ID]` for the GitHub stand-in (GitHub Enterprise URLs). */
function githubProvider(id, name, github, app, { newAccounts, env }) {
  return [
    `[federation.providers.${id}]`,
    'kind = "github"',
    `name = "${name}"`,
    `client_id = "${app.clientId}"`,
    `client_secret = "env:${env}"`,
    `base_url = "${github.baseUrl}"`,
    `api_url = "${github.apiUrl}"`,
    `new_accounts = "${newAccounts}"`,
    '',
  ];
}

/** Opens the upstreams' ports on 127.0.0.1 for `federation` over http. */
function outboundAllow(ports) {
  return ['[[outbound.allow]]', 'cidr = "127.0.0.1/32"', 'for = ["federation"]', `ports = [${ports.join(', ')}]`, 'allow_insecure_http = true', ''];
}

/** A user made with the CLI: a password, a verified address. */
function createPasswordUser(cli, { username, email, name, password }) {
  return cli(['user', 'create', '--username', username, '--email', email, '--name', name, '--email-verified', '--password-stdin'], {
    input: `${password}\n`,
  });
}

// ---------------------------------------------------------------------------------------
// Reading the outcome

const squash = (s) => s.replace(/\s+/g, ' ').trim();
const bodyText = (page) => page.locator('body').innerText();
const pathOf = (page) => new URL(page.url()).pathname;

/** Every user, by the CLI. */
const usersOf = (lk) => lk.cli(['user', 'list']);
/** The user with this address (or undefined), by the CLI. */
const userByEmail = (lk, email) => usersOf(lk).find((u) => u.email === email);
/** The identities linked to a user, by the CLI. */
const identitiesOf = (lk, user) => lk.cli(['user', 'identities', user]);
/** A user's identities as `provider:subject` strings, sorted. */
const linked = (lk, user) => identitiesOf(lk, user).map((i) => `${i.provider}:${i.subject}`).sort();
/** Every user as `username <email> sub`, sorted: what "nothing was made" compares. */
const everyone = (lk) => usersOf(lk).map((u) => `${u.username} <${u.email ?? ''}> ${u.sub}`).sort();

/**
 * Who the browser is signed in as (the username on /account/security), or null when that
 * page sends it to sign in; asked with the browser's cookies, without navigating.
 */
async function signedInAs(page, lk) {
  const res = await page.context().request.get(`${lk.issuer}/account/security`, { maxRedirects: 0 });
  if (res.status() === 200) {
    const m = /Signed in as ([^\s<·]+)/.exec(await res.text());
    return m ? m[1] : `(a security page without "Signed in as")`;
  }
  const location = new URL(res.headers().location ?? '/nowhere', lk.issuer);
  if (res.status() >= 300 && res.status() < 400 && location.pathname === '/login') return null;
  return `unexpected: ${res.status()} ${res.headers().location ?? ''}`;
}

/**
 * Asserts an error page of a federated sign-in: the status, "Sign-in through NAME failed" and
 * `problem` (a RegExp naming what was wrong) in its text.
 */
function assertRefused(status, text, expectedStatus, name, problem, what) {
  const page = squash(text);
  assert.equal(status, expectedStatus, `${what}: status ${status}, page: ${page}`);
  assert.match(page, new RegExp(`Sign-in through ${name} failed`), `${what}: the page says the sign-in through ${name} failed: ${page}`);
  assert.match(page, problem, `${what}: the page names the problem: ${page}`);
}

/** What the error page says when an answer does not belong to a sign-in of this browser. */
const NOT_THIS_BROWSER = /does not belong to a sign-in started in this browser/;

// ---------------------------------------------------------------------------------------
// Driving the browser

/** Runs `fn(...browsers)` with `n` fresh Chromiums, always closing them; failures show where each was. */
async function withBrowsers(n, fn, upstreams = []) {
  const browsers = [];
  try {
    for (let i = 0; i < n; i++) browsers.push(await openBrowser());
    return await fn(...browsers);
  } catch (e) {
    const where = browsers.map((b, i) => {
      const went = b.navigations.map((x) => `${x.method} ${x.url}`).join('\n    -> ');
      return `browser ${i + 1} at ${b.page.url()}:\n    ${went}\n  console: ${b.console.join(' | ')}`;
    });
    const seen = upstreams.map((u) => `${u.tag ?? 'github'}: problems ${JSON.stringify(u.problems)}, errors ${JSON.stringify(u.errors)}`);
    const more = `\n(${where.join('\n ')})\n(${seen.join('\n ')})`;
    e.message += more;
    if (typeof e.stack === 'string') e.stack += more;
    throw e;
  } finally {
    for (const b of browsers) await b.close();
  }
}

/** The `Sign in with NAME` button of provider `id` on the login page the browser shows. */
async function providerButton(page, id, name) {
  if (pathOf(page) !== '/login') throw new Error(`not on the login page: ${page.url()}: ${await bodyText(page)}`);
  const button = page.locator(`form[action$="/federation/${id}/start"] button[data-provider="${id}"]`);
  assert.equal(await button.count(), 1, `one "Sign in with ${name}" button in a form posting to /federation/${id}/start`);
  assert.equal(squash(await button.innerText()), `Sign in with ${name}`);
  return button;
}

/** From Latchkey's login page (loaded now from `from`), "Sign in with NAME": the browser goes to the upstream. */
async function startAt(page, lk, id, name, from = `${lk.issuer}/login`) {
  await navigateBy(page, () => page.goto(from));
  const button = await providerButton(page, id, name);
  await navigateBy(page, () => button.click());
}

/** The response Latchkey gives at `/federation/ID/callback` next (the first of a redirect chain). */
function callbackResponse(page, lk, id) {
  const prefix = `${lk.issuer}/federation/${id}/callback`;
  return page.waitForResponse((r) => r.url().startsWith(prefix) && r.request().isNavigationRequest(), { timeout: 20_000 });
}

/**
 * Holds the browser's requests to Latchkey's federation callbacks (DevTools Fetch domain):
 * they are answered with a blank page and never reach Latchkey. `next()` gives the URL of
 * the next one; `release()` stops holding.
 */
async function holdCallbacks(page, lk) {
  const held = [];
  let waiters = [];
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Fetch.requestPaused', async (e) => {
    held.push(e.request.url);
    for (const w of waiters) w(e.request.url);
    waiters = [];
    await cdp
      .send('Fetch.fulfillRequest', {
        requestId: e.requestId,
        responseCode: 200,
        responseHeaders: [{ name: 'content-type', value: 'text/html; charset=utf-8' }],
        body: Buffer.from('<!doctype html><title>Held</title><h1>Held by the test</h1>').toString('base64'),
      })
      .catch(() => {});
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${lk.issuer}/federation/*/callback*`, requestStage: 'Request' }] });
  return {
    held,
    next: () => new Promise((r) => waiters.push(r)),
    async release() {
      await cdp.send('Fetch.disable');
      await cdp.detach();
    },
  };
}

/**
 * Starts a sign-in through provider `id` at the login page and drives the upstream
 * (`drive(page)`), holding the callback; returns its URL (code, state[, iss]) unused, and
 * the browser's cookies for Latchkey at that moment.
 */
async function heldCallback(page, lk, id, name, drive) {
  const hold = await holdCallbacks(page, lk);
  try {
    const next = hold.next();
    await startAt(page, lk, id, name);
    await drive(page);
    const url = await withTimeout(next, 15_000, 'the callback to hold');
    assert.equal(new URL(url).pathname, `/federation/${id}/callback`);
    assert.ok(new URL(url).searchParams.get('code'), `the upstream answered with a code: ${url}`);
    return { url, cookies: await page.context().cookies(lk.issuer) };
  } finally {
    await hold.release();
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, fail) => {
      timer = setTimeout(() => fail(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * An app's code + PKCE flow (openid-client, confidential client at RP_ORIGIN, intercepted)
 * whose sign-in goes through provider `id`: the authorization request lands on the login
 * page, "Sign in with NAME", `drive(page)` on the upstream, then back to the app. Returns the
 * tokens openid-client validated and the ID token's claims.
 */
async function appSignInThrough(page, lk, config, { id, name, drive, scope = 'openid profile email' }) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const rp = await interceptRp(page);
  const arrived = rp.next();
  await startAt(page, lk, id, name, url.href);
  await drive(page);
  const hit = await withTimeout(arrived, 15_000, `the app's callback (browser at ${page.url()}: ${await bodyText(page).catch(() => '')})`);
  const tokens = await client.authorizationCodeGrant(config, new URL(hit.url), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  return { tokens, claims: tokens.claims() };
}

/**
 * One Latchkey with an oidc-provider per `[id, name]` of `oidc` (new accounts on) and the
 * GitHub stand-in as `gh` (new accounts off), `users` seeded with passwords, and the
 * first-party app `fed-app`. Returns { lk, oidc: { id: upstream }, github, ghApp, config }.
 */
async function startFederation({ oidc, users }) {
  const upstreams = {};
  for (const [id] of oidc) upstreams[id] = await startUpstream({ tag: id });
  const github = await startGitHub();
  const ghApp = { clientId: `Iv1.${randomBytes(8).toString('hex')}`, clientSecret: randomBytes(20).toString('hex') };
  const secretEnv = (id) => `${id.toUpperCase()}_SECRET`;
  const toml = [
    ...oidc.flatMap(([id, name]) => oidcProvider(id, name, upstreams[id], { newAccounts: 'on', env: secretEnv(id) })),
    ...githubProvider('gh', 'GitHub', github, ghApp, { newAccounts: 'off', env: 'GH_SECRET' }),
    ...outboundAllow([...Object.values(upstreams).map((u) => u.port), github.port]),
  ].join('\n');
  const env = { GH_SECRET: ghApp.clientSecret };
  for (const [id] of oidc) env[secretEnv(id)] = upstreams[id].clientSecret;
  let secret;
  const lk = await startLatchkey({
    files: { 'latchkey.toml': toml },
    env,
    seed(cli) {
      for (const user of users) createPasswordUser(cli, user);
      // First-party (no consent page), confidential, client_secret_basic.
      secret = cli.createClient({
        id: 'fed-app',
        name: 'Federated app',
        redirectUris: [CALLBACK],
        scopes: ['openid', 'profile', 'email'],
        authMethod: 'client_secret_basic',
        firstParty: true,
      }).client_secret;
    },
  });
  for (const [id] of oidc) upstreams[id].register({ redirectUris: [`${lk.issuer}/federation/${id}/callback`] });
  github.registerApp({ ...ghApp, callbackUrl: `${lk.issuer}/federation/gh/callback`, name: 'Latchkey' });
  const config = await discoverClient(lk.issuer, 'fed-app', client.ClientSecretBasic(secret));
  return { lk, oidc: upstreams, github, ghApp, config };
}

/** Stops what {@link startFederation} started; asserts the stand-ins saw only good requests. */
async function stopFederation(world) {
  const upstreams = Object.values(world?.oidc ?? {});
  try {
    await world?.lk?.stop();
  } finally {
    for (const u of upstreams) await u.close();
    await world?.github?.close();
  }
  assert.deepEqual(world?.github?.problems ?? [], [], 'every request to the GitHub stand-in was one GitHub takes');
  assert.deepEqual(upstreams.flatMap((u) => u.problems), [], 'oidc-provider had no server error');
}

// =======================================================================================

describe('sign-in and linking: Corp SSO (oidc-provider, new accounts on) and GitHub (stand-in, new accounts off)', () => {
  let lk;
  let corp;
  let github;
  let ghApp;
  let config;
  const OCTAVIA = { username: 'octavia', email: 'octavia@example.com', name: 'Octavia Butler', password: 'kindred parable sower' };
  const ADA = { username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace', password: 'correct horse battery' };
  const GRACE = { login: 'grace', email: 'grace@corp.example', name: 'Grace Hopper' };

  let world;
  before(async () => {
    world = await startFederation({ oidc: [['corp', 'Corp SSO']], users: [ADA, OCTAVIA] });
    ({ lk, github, ghApp, config } = world);
    corp = world.oidc.corp;
  });

  after(() => stopFederation(world));

  test('a first sign-in through Corp SSO makes an account and signs in; the app gets email, name and amr "fed"', async () => {
    corp.setAccount(GRACE.login, {
      email: GRACE.email,
      email_verified: true,
      name: GRACE.name,
      preferred_username: GRACE.login,
      groups: ['eng'],
    });
    const before = everyone(lk);
    const authsBefore = corp.authorizationRequests().length;
    await withBrowsers(
      1,
      async ({ page }) => {
        const { tokens, claims } = await appSignInThrough(page, lk, config, {
          id: 'corp',
          name: 'Corp SSO',
          drive: async (p) => {
            assert.equal(new URL(p.url()).origin, corp.origin, 'the button leads to Corp SSO');
            const seen = await signInUpstream(p, corp, GRACE.login);
            assert.ok(seen.sawLogin && seen.sawConsent, 'the upstream asked to sign in and to consent');
          },
        });
        // The account: made now, from the upstream's claims, linked to the identity.
        const made = everyone(lk).filter((u) => !before.includes(u));
        assert.equal(made.length, 1, `one account was made: ${made.join(', ')}`);
        const grace = userByEmail(lk, GRACE.email);
        assert.ok(grace, `an account with ${GRACE.email}`);
        assert.equal(grace.username, GRACE.login, 'the username comes from preferred_username');
        assert.equal(grace.name, GRACE.name);
        assert.equal(grace.email_verified, true, 'verified, as the upstream said');
        assert.equal(grace.has_password, false);
        const ids = identitiesOf(lk, grace.sub);
        assert.equal(ids.length, 1, `one identity: ${JSON.stringify(ids)}`);
        assert.equal(ids[0].provider, 'corp');
        assert.equal(ids[0].subject, GRACE.login, "the upstream's sub");
        assert.equal(ids[0].email, GRACE.email);
        assert.ok(ids[0].linked_at, 'linked_at');

        // The app: a validated ID token for that account, federated; its profile and address
        // from UserInfo (Latchkey puts scope claims in the ID token only when the `claims`
        // parameter asks for them there).
        assert.equal(claims.sub, grace.sub, 'the ID token names the new account');
        assert.deepEqual(claims.amr, ['fed'], `amr: ${JSON.stringify(claims.amr)}`);
        assert.equal(claims.acr, FEDERATED_ACR);
        const info = await client.fetchUserInfo(config, tokens.access_token, grace.sub);
        assert.equal(info.email, GRACE.email, `UserInfo: ${JSON.stringify(info)}`);
        assert.equal(info.name, GRACE.name);
        assert.equal(info.preferred_username, GRACE.login);
        assert.equal(await signedInAs(page, lk), GRACE.login, 'the browser is signed in to the new account');

        // What Latchkey asked the upstream: one authorization request with PKCE (S256), a
        // state, a nonce, the registered callback; its code redeemed once.
        const [auth, ...more] = corp.authorizationRequests().slice(authsBefore);
        assert.equal(more.length, 0, 'one authorization request');
        assert.equal(auth.query.code_challenge_method, 'S256');
        assert.ok(auth.query.code_challenge && auth.query.state && auth.query.nonce, `PKCE, state and nonce: ${JSON.stringify(auth.query)}`);
        assert.equal(auth.query.redirect_uri, `${lk.issuer}/federation/corp/callback`);
        assert.deepEqual(auth.query.scope.split(' ').sort(), ['email', 'openid', 'profile']);
        assert.deepEqual(corp.errors, [], 'the upstream refused nothing');
      },
      [corp],
    );
  });

  test('GitHub with the same verified address is linked only after the owner signs in and confirms; then both providers sign her in', async () => {
    const grace = userByEmail(lk, GRACE.email);
    assert.ok(grace, 'the account from the first test');
    const octo = github.addUser({ login: 'ghopper', name: 'Grace H.', emails: [{ email: GRACE.email, primary: true, verified: true }] });
    github.signInAs('ghopper');
    const before = everyone(lk);

    await withBrowsers(
      1,
      async ({ page }) => {
        // Sign in with GitHub: an account has that (verified) address, so "Link your account".
        const answered = callbackResponse(page, lk, 'gh');
        await startAt(page, lk, 'gh', 'GitHub');
        await authorizeOnGitHub(page, github);
        const res = await answered;
        const text = await bodyText(page);
        assert.equal(res.status(), 200, `the callback answers with a page: ${squash(text)}`);
        assert.match(await page.locator('h1').first().innerText(), /Link your account/);
        assert.match(squash(text), /Sign in to that account to link GitHub/);
        const signInLink = page.locator('a[href*="/login?return_to=security"]');
        assert.equal(await signInLink.count(), 1, 'a link to sign in, then to the security page');
        assert.deepEqual(linked(lk, grace.sub), ['corp:grace'], 'nothing linked yet');
        assert.deepEqual(everyone(lk), before, 'no account made');
        assert.equal(await signedInAs(page, lk), null, 'not signed in');

        // She signs in to that account (through Corp SSO, her way in) and lands on the
        // security page, which asks "Link GitHub?".
        await navigateBy(page, () => signInLink.click());
        assert.equal(pathOf(page), '/login');
        assert.equal(new URL(page.url()).searchParams.get('return_to'), 'security');
        const corpButton = await providerButton(page, 'corp', 'Corp SSO');
        await navigateBy(page, () => corpButton.click());
        await signInUpstream(page, corp, GRACE.login);
        await page.waitForURL((u) => u.pathname === '/account/security', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`not on the security page after signing in (${e.message.split('\n')[0]}): ${page.url()}: ${await bodyText(page)}`);
        });
        assert.equal(await signedInAs(page, lk), GRACE.login);
        assert.match(squash(await bodyText(page)), /Link (your )?GitHub\b[^?]*\?/, 'the security page asks to link GitHub');
        const confirm = page.locator('form[action$="/account/federation/gh/confirm"] button');
        assert.equal(await confirm.count(), 1, 'a confirm button');
        assert.equal(squash(await confirm.innerText()), 'Link GitHub');
        assert.deepEqual(linked(lk, grace.sub), ['corp:grace'], 'still nothing linked before she confirms');

        await navigateBy(page, () => confirm.click());
        assert.deepEqual(linked(lk, grace.sub), ['corp:grace', `gh:${octo.id}`], 'GitHub is linked by its numeric id');
        const gh = identitiesOf(lk, grace.sub).find((i) => i.provider === 'gh');
        assert.equal(gh.email, GRACE.email);
        await page.goto(`${lk.issuer}/account/security`);
        assert.equal(await page.locator('form[action$="/account/federation/gh/unlink"] button').count(), 1, 'an Unlink GitHub button');
        assert.deepEqual(everyone(lk), before, 'no account made');
      },
      [corp, github],
    );

    // A new browser: GitHub signs her in, to an app too (amr "fed").
    await withBrowsers(
      1,
      async ({ page }) => {
        const { claims } = await appSignInThrough(page, lk, config, { id: 'gh', name: 'GitHub', drive: (p) => authorizeOnGitHub(p, github) });
        assert.equal(claims.sub, grace.sub, 'GitHub signs in to her account');
        assert.deepEqual(claims.amr, ['fed']);
        assert.equal(claims.acr, FEDERATED_ACR);
        assert.equal(await signedInAs(page, lk), GRACE.login);
      },
      [github],
    );
    // And another: Corp SSO still does.
    await withBrowsers(
      1,
      async ({ page }) => {
        const { claims } = await appSignInThrough(page, lk, config, {
          id: 'corp',
          name: 'Corp SSO',
          drive: (p) => signInUpstream(p, corp, GRACE.login),
        });
        assert.equal(claims.sub, grace.sub, 'Corp SSO signs in to her account');
      },
      [corp],
    );
    const ids = identitiesOf(lk, grace.sub);
    assert.ok(ids.every((i) => i.last_used_at), `both identities were used: ${JSON.stringify(ids)}`);
    assert.deepEqual(github.errors, []);
  });

  test('a password user links GitHub from the security page and then signs in with it; an identity linked to another account is refused', async () => {
    const ada = userByEmail(lk, ADA.email);
    const gh = github.addUser({ login: 'ada-lovelace', name: 'Ada L.', emails: [{ email: 'ada@analytical.example', primary: true, verified: true }] });
    const grace = userByEmail(lk, GRACE.email);
    const graceIds = linked(lk, grace.sub);
    const before = everyone(lk);
    let landedAfterLink;

    await withBrowsers(
      1,
      async ({ page }) => {
        await page.goto(`${lk.issuer}/login?return_to=security`);
        await signIn(page, ADA);
        await page.waitForURL((u) => u.pathname === '/account/security');
        // "Sign-in providers": Link buttons for both, nothing linked.
        const linkGh = page.locator('form[action$="/account/federation/gh/link"] button');
        const linkCorp = page.locator('form[action$="/account/federation/corp/link"] button');
        assert.match(squash(await bodyText(page)), /Sign-in providers/);
        assert.equal(squash(await linkGh.innerText()), 'Link GitHub');
        assert.equal(squash(await linkCorp.innerText()), 'Link Corp SSO');
        assert.deepEqual(linked(lk, ada.sub), []);

        github.signInAs('ada-lovelace');
        await navigateBy(page, () => linkGh.click());
        await authorizeOnGitHub(page, github);
        await page.waitForURL((u) => u.pathname === '/account/security', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`not back on the security page (${e.message.split('\n')[0]}): ${page.url()}: ${await bodyText(page)}`);
        });
        // (Checked at the end, so the rest runs even when this is wrong.)
        landedAfterLink = page.url();
        assert.deepEqual(linked(lk, ada.sub), [`gh:${gh.id}`]);
        assert.equal(identitiesOf(lk, ada.sub)[0].email, 'ada@analytical.example');
        assert.match(await bodyText(page), /ada@analytical\.example/, 'the security page shows the upstream address');
        assert.equal(await page.locator('form[action$="/account/federation/gh/unlink"] button').count(), 1, 'an Unlink GitHub button');

        // Grace's Corp SSO identity is hers: linking it to Ada is refused.
        const refused = page.waitForResponse((r) => r.url().startsWith(`${lk.issuer}/federation/corp/callback`), { timeout: 20_000 });
        await navigateBy(page, () => page.locator('form[action$="/account/federation/corp/link"] button').click());
        await signInUpstream(page, corp, GRACE.login);
        const res = await refused;
        await page.waitForLoadState();
        const text = await bodyText(page);
        assert.equal(res.status(), 409, `the link is refused: ${page.url()}: ${squash(text)}`);
        assert.match(squash(text), /linked already/, `the page says why: ${squash(text)}`);
        assert.deepEqual(linked(lk, ada.sub), [`gh:${gh.id}`], 'Ada has only GitHub');
        assert.deepEqual(linked(lk, grace.sub), graceIds, "Grace's identities are unchanged");
        assert.equal(await signedInAs(page, lk), ADA.username, 'Ada is still herself');
      },
      [corp, github],
    );

    await withBrowsers(
      1,
      async ({ page }) => {
        await startAt(page, lk, 'gh', 'GitHub');
        await authorizeOnGitHub(page, github);
        await page.waitForURL((u) => u.pathname === '/login/done', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`no sign-in with GitHub (${e.message.split('\n')[0]}): ${page.url()}: ${await bodyText(page)}`);
        });
        assert.equal(await signedInAs(page, lk), ADA.username, 'GitHub signs Ada in');
      },
      [github],
    );
    assert.deepEqual(everyone(lk), before, 'no account made');
    assert.equal(new URL(landedAfterLink).searchParams.get('done'), 'provider_linked', `linking ends on /account/security?done=provider_linked: ${landedAfterLink}`);
  });

  test('a renamed GitHub user keeps their account; whoever takes the old login does not get into it', async () => {
    const octavia = userByEmail(lk, OCTAVIA.email);
    const original = github.addUser({ login: 'octo', name: 'Octavia B.', emails: [{ email: OCTAVIA.email, primary: true, verified: true }] });
    await withBrowsers(
      1,
      async ({ page }) => {
        await page.goto(`${lk.issuer}/login?return_to=security`);
        await signIn(page, OCTAVIA);
        await page.waitForURL((u) => u.pathname === '/account/security');
        github.signInAs('octo');
        await navigateBy(page, () => page.locator('form[action$="/account/federation/gh/link"] button').click());
        await authorizeOnGitHub(page, github);
        await page.waitForURL((u) => u.pathname === '/account/security', { timeout: 15_000 });
      },
      [github],
    );
    assert.deepEqual(linked(lk, octavia.sub), [`gh:${original.id}`]);

    // "octo" renames to "octo-renamed"; someone else registers "octo" (a new numeric id).
    github.renameUser('octo', 'octo-renamed');
    const newcomer = github.addUser({ login: 'octo', name: 'Not Octavia', emails: [{ email: 'newocto@example.net', primary: true, verified: true }] });
    assert.notEqual(newcomer.id, original.id);
    const before = everyone(lk);

    await withBrowsers(
      1,
      async ({ page }) => {
        github.signInAs('octo');
        const answered = callbackResponse(page, lk, 'gh');
        await startAt(page, lk, 'gh', 'GitHub');
        await authorizeOnGitHub(page, github);
        const res = await answered;
        const text = await bodyText(page);
        // Not linked, no account with that address, GitHub makes no accounts: "No account".
        assert.equal(res.status(), 403, `the newcomer is refused: ${squash(text)}`);
        assert.match(text, /no account/i, `the page says there is no account: ${squash(text)}`);
        assert.equal(await signedInAs(page, lk), null, 'the newcomer is not signed in');
      },
      [github],
    );
    assert.deepEqual(linked(lk, octavia.sub), [`gh:${original.id}`], "Octavia's account still has only her own GitHub id");
    assert.deepEqual(everyone(lk), before, 'no account made');

    await withBrowsers(
      1,
      async ({ page }) => {
        github.signInAs('octo-renamed');
        await startAt(page, lk, 'gh', 'GitHub');
        await authorizeOnGitHub(page, github);
        await page.waitForURL((u) => u.pathname === '/login/done', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`the renamed user was not signed in (${e.message.split('\n')[0]}): ${page.url()}: ${await bodyText(page)}`);
        });
        assert.equal(await signedInAs(page, lk), OCTAVIA.username, 'the renamed user is still Octavia');
      },
      [github],
    );
  });
});

// =======================================================================================

describe('attacks: Corp SSO and Partner SSO (two oidc-provider instances, new accounts on) and GitHub', () => {
  let lk;
  let corp;
  let partner;
  let github;
  let ghApp;
  let config;
  const ADA = { username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace', password: 'correct horse battery' };

  let world;
  before(async () => {
    world = await startFederation({ oidc: [['corp', 'Corp SSO'], ['partner', 'Partner SSO']], users: [ADA] });
    ({ lk, github, ghApp, config } = world);
    ({ corp, partner } = world.oidc);
  });

  after(() => stopFederation(world));

  /** A Corp SSO account that a successful sign-in would turn into a new Latchkey account. */
  function corpAccount(login) {
    const email = `${login}@corp.example`;
    corp.setAccount(login, { email, email_verified: true, name: `${login} upstream`, preferred_username: login });
    return email;
  }

  test('a callback whose state was changed is refused; nothing is redeemed, made or signed in', async () => {
    const email = corpAccount('sam');
    const before = everyone(lk);
    await withBrowsers(
      1,
      async ({ page }) => {
        const { url } = await heldCallback(page, lk, 'corp', 'Corp SSO', (p) => signInUpstream(p, corp, 'sam'));
        const tokensBefore = corp.tokenRequests().length;
        const forged = new URL(url);
        forged.searchParams.set('state', randomBytes(32).toString('base64url'));
        const res = await page.goto(forged.href);
        assertRefused(res.status(), await bodyText(page), 400, 'Corp SSO', NOT_THIS_BROWSER, 'a changed state');
        assert.equal(corp.tokenRequests().length, tokensBefore, 'the code was not redeemed');
        assert.equal(await signedInAs(page, lk), null, 'not signed in');
      },
      [corp],
    );
    assert.equal(userByEmail(lk, email), undefined, 'no account made');
    assert.deepEqual(everyone(lk), before);
  });

  test('a replayed callback is refused, in the same browser and in another one holding its cookies', async () => {
    const email = corpAccount('rita');
    const before = everyone(lk);
    await withBrowsers(
      2,
      async (first, second) => {
        const { url, cookies } = await heldCallback(first.page, lk, 'corp', 'Corp SSO', (p) => signInUpstream(p, corp, 'rita'));
        // The real delivery: signed in, an account made and linked.
        await first.page.goto(url);
        await first.page.waitForURL((u) => u.pathname === '/login/done', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`the first delivery did not sign in (${e.message.split('\n')[0]}): ${first.page.url()}: ${await bodyText(first.page)}`);
        });
        const rita = userByEmail(lk, email);
        assert.ok(rita, 'the first delivery made the account');
        assert.equal(await signedInAs(first.page, lk), 'rita');
        const ids = identitiesOf(lk, rita.sub);
        assert.deepEqual(ids.map((i) => `${i.provider}:${i.subject}`), ['corp:rita']);

        // The same URL again, same browser.
        const again = await first.page.goto(url);
        assertRefused(again.status(), await bodyText(first.page), 400, 'Corp SSO', NOT_THIS_BROWSER, 'the callback replayed in the same browser');

        // The same URL in another browser with the cookies the first had before the delivery.
        await second.context.addCookies(cookies);
        const stolen = await second.page.goto(url);
        assertRefused(stolen.status(), await bodyText(second.page), 400, 'Corp SSO', NOT_THIS_BROWSER, 'the callback replayed with copied cookies');
        assert.equal(await signedInAs(second.page, lk), null, 'the other browser is not signed in');

        assert.deepEqual(identitiesOf(lk, rita.sub), ids, 'the identity is as the first delivery left it');
      },
      [corp],
    );
    const made = everyone(lk).filter((u) => !before.includes(u));
    assert.equal(made.length, 1, `exactly one account from the three deliveries: ${made.join(', ')}`);
  });

  test('a callback opened in another browser is refused there (even signed in) and still works where the sign-in started', async () => {
    const email = corpAccount('otto');
    const ada = userByEmail(lk, ADA.email);
    const before = everyone(lk);
    await withBrowsers(
      2,
      async (victimOfCsrf, starter) => {
        const { url } = await heldCallback(starter.page, lk, 'corp', 'Corp SSO', (p) => signInUpstream(p, corp, 'otto'));
        // Login CSRF / link injection: Ada's signed-in browser is made to open it.
        await victimOfCsrf.page.goto(`${lk.issuer}/login`);
        await signIn(victimOfCsrf.page, ADA);
        await victimOfCsrf.page.waitForURL((u) => u.pathname !== '/login');
        assert.equal(await signedInAs(victimOfCsrf.page, lk), ADA.username);
        const tokensBefore = corp.tokenRequests().length;
        const res = await victimOfCsrf.page.goto(url);
        assertRefused(res.status(), await bodyText(victimOfCsrf.page), 400, 'Corp SSO', NOT_THIS_BROWSER, 'the callback in another browser');
        assert.equal(corp.tokenRequests().length, tokensBefore, 'the code was not redeemed');
        assert.equal(await signedInAs(victimOfCsrf.page, lk), ADA.username, 'that browser is still Ada');
        assert.deepEqual(linked(lk, ada.sub), [], 'nothing linked to Ada');
        assert.equal(userByEmail(lk, email), undefined, 'no account made');
        assert.deepEqual(everyone(lk), before);

        // The browser that started it finishes the sign-in with the same URL.
        await starter.page.goto(url);
        await starter.page.waitForURL((u) => u.pathname === '/login/done', { timeout: 15_000 }).catch(async (e) => {
          throw new Error(`the starting browser was not signed in (${e.message.split('\n')[0]}): ${starter.page.url()}: ${await bodyText(starter.page)}`);
        });
        assert.equal(await signedInAs(starter.page, lk), 'otto');
      },
      [corp],
    );
  });

  test("provider A's authorization response delivered to provider B's callback (another OpenID Provider, GitHub) is refused; B never sees A's code", async () => {
    const email = corpAccount('mia');
    const before = everyone(lk);
    await withBrowsers(
      1,
      async ({ page }) => {
        const partnerTokens = partner.tokenRequests().length;
        const githubTokens = github.tokenRequests().length;

        // To Partner SSO's callback, as it came (code, state, iss of Corp SSO).
        const first = await heldCallback(page, lk, 'corp', 'Corp SSO', (p) => signInUpstream(p, corp, 'mia'));
        assert.equal(new URL(first.url).searchParams.get('iss'), corp.issuer, 'Corp SSO sends iss (RFC 9207)');
        const toPartner = new URL(`${lk.issuer}/federation/partner/callback`);
        toPartner.search = new URL(first.url).search;
        const corpTokens = corp.tokenRequests().length;
        const res = await page.goto(toPartner.href);
        assertRefused(res.status(), await bodyText(page), 400, 'Partner SSO', /wrong provider/, "Corp SSO's response at Partner SSO's callback");

        // To GitHub's callback, without iss (GitHub sends none).
        const second = await heldCallback(page, lk, 'corp', 'Corp SSO', (p) => signInUpstream(p, corp, 'mia'));
        const given = new URL(second.url).searchParams;
        const toGitHub = new URL(`${lk.issuer}/federation/gh/callback`);
        toGitHub.searchParams.set('code', given.get('code'));
        toGitHub.searchParams.set('state', given.get('state'));
        const res2 = await page.goto(toGitHub.href);
        assertRefused(res2.status(), await bodyText(page), 400, 'GitHub', /wrong provider/, "Corp SSO's response at GitHub's callback");

        assert.equal(partner.tokenRequests().length, partnerTokens, "Partner SSO's token endpoint never saw Corp SSO's code");
        assert.equal(github.tokenRequests().length, githubTokens, "GitHub's token endpoint never saw Corp SSO's code");
        assert.equal(corp.tokenRequests().length, corpTokens, 'nor was it redeemed at Corp SSO');
        assert.equal(await signedInAs(page, lk), null, 'not signed in');
      },
      [corp, partner, github],
    );
    assert.equal(userByEmail(lk, email), undefined, 'no account made');
    assert.deepEqual(everyone(lk), before);
  });

  test("an upstream address that is an account's but not verified upstream is refused (409), and so is one with no email_verified", async () => {
    const ada = userByEmail(lk, ADA.email);
    assert.equal(ada.email_verified, true);
    corp.setAccount('imposter', { email: ADA.email, email_verified: false, name: 'Not Ada', preferred_username: 'imposter' });
    corp.setAccount('silent', { email: ADA.email, name: 'Not Ada either', preferred_username: 'silent' });
    const before = everyone(lk);
    for (const login of ['imposter', 'silent']) {
      await withBrowsers(
        1,
        async ({ page }) => {
          const answered = callbackResponse(page, lk, 'corp');
          await startAt(page, lk, 'corp', 'Corp SSO');
          await signInUpstream(page, corp, login);
          const res = await answered;
          const text = await bodyText(page);
          assertRefused(res.status(), text, 409, 'Corp SSO', /not verified/, `${login}: an unverified address of an account`);
          assert.equal(await signedInAs(page, lk), null, `${login}: not signed in`);
        },
        [corp],
      );
      assert.deepEqual(linked(lk, ada.sub), [], `${login}: nothing linked to Ada`);
      assert.deepEqual(everyone(lk), before, `${login}: no account made`);
    }
  });

  test("an upstream identity that changes its address to a victim's still signs in to its own account, never the victim's", async () => {
    const ada = userByEmail(lk, ADA.email);
    const email = corpAccount('eve');
    let eve;
    await withBrowsers(
      1,
      async ({ page }) => {
        const { claims } = await appSignInThrough(page, lk, config, { id: 'corp', name: 'Corp SSO', drive: (p) => signInUpstream(p, corp, 'eve') });
        eve = userByEmail(lk, email);
        assert.ok(eve, "Eve's account was made");
        assert.equal(claims.sub, eve.sub);
      },
      [corp],
    );
    const eveIds = linked(lk, eve.sub);
    assert.deepEqual(eveIds, ['corp:eve']);

    // Upstream, Eve's address becomes Ada's, "verified".
    corp.updateAccount('eve', { email: ADA.email, email_verified: true });
    await withBrowsers(
      1,
      async ({ page }) => {
        const { claims } = await appSignInThrough(page, lk, config, { id: 'corp', name: 'Corp SSO', drive: (p) => signInUpstream(p, corp, 'eve') });
        assert.notEqual(claims.sub, ada.sub, "the app is not told it is Ada");
        assert.equal(claims.sub, eve.sub, "the app is told it is Eve's account");
        assert.equal(await signedInAs(page, lk), eve.username, "the browser is in Eve's account");
      },
      [corp],
    );
    assert.deepEqual(linked(lk, ada.sub), [], 'nothing linked to Ada');
    assert.deepEqual(linked(lk, eve.sub), eveIds, "Eve's identity is unchanged");
    const adaNow = usersOf(lk).find((u) => u.sub === ada.sub);
    assert.equal(adaNow.email, ADA.email, "Ada's account keeps its address");
    assert.equal(adaNow.email_verified, true);
  });
});

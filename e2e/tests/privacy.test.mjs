// The GDPR features of a person's account (issue 20), end to end in Chromium against a real
// Latchkey, a real SMTP relay (aiosmtpd, as in recovery.test.mjs) and openid-client:
//
// - Lin, whose username (`lin`) is neither her address nor her name, recovers her account by
//   an emailed link (a passkey with a name of her choosing), then signs in to a third-party
//   app whose request carries `login_hint=<her address>`: a wrong password first, then the
//   right one and the passkey, and consent to `openid email profile offline_access`;
// - "Download your data" (`/account/export`), downloaded by Chromium: her passkey's name,
//   the consent, which claims the app receives, and no secret at all (no password hash, no
//   token, code, cookie or recovery code, no key material, no authenticator-app secret);
// - "Apps with access": withdrawing the consent kills the refresh token (`invalid_grant`),
//   the access token (UserInfo 401, introspection inactive) and sends the app a back-channel
//   logout token for her session, which jose verifies;
// - "Delete your account": the username typed again; then no sign-in works (passkey or
//   password) and the admin API finds no user by her address, in any letter case;
// - at the end the server is stopped and every file of its data directory (the SQLite
//   database, its -wal and -shm) is read as bytes: her address, name and phone number are
//   nowhere in clear; nor are they in the server's whole log.
//
// The tests run in order and share one browser (a person's story); each checks that the one
// before it got where it should.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, randomBytes, randomInt } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

import { RP_ORIGIN, discoverClient, interceptRp, openBrowser, startLatchkey, startLoopbackRp } from '../lib/latchkey.mjs';
import { linkTo, startSmtp } from '../lib/mail.mjs';
import { base32Decode, totpNow } from '../lib/totp.mjs';

const suffix = randomBytes(4).toString('hex');
/** The person. Her address is typed with capitals in its local part, as people do. */
const LIN = {
  username: 'lin',
  email: `Lin.Privacy-${suffix}@example.org`,
  name: 'Lindqvist Privacyperson',
  phone: `+4670${randomInt(1_000_000, 10_000_000)}`,
  password: 'velvet lanterns at dusk',
};
const PASSKEY_NAME = `Blue travel key ${suffix}`;
/** A third-party app (consent page) that may refresh; its id is a positive control on disk. */
const APP = { id: `privacy-notes-${suffix}`, name: 'Nordic Notes' };
const SCOPE = 'openid email profile offline_access';
const CALLBACK = `${RP_ORIGIN}/callback`;
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

let smtp;
let rp;
let lk;
let browser;
let md;
let jwks;
let appSecret;
let adminSecret;
/** What the story leaves for the next step. */
const story = { sub: null, tokens: [], idClaims: null, codes: [], totpSecret: null, credential: null, secrets: [] };

before(async () => {
  smtp = await startSmtp();
  rp = await startLoopbackRp();
  // Back-channel logout over http to the loopback app: opened by an outbound.allow entry,
  // as logout.test.mjs does.
  const port = new URL(rp.origin).port;
  lk = await startLatchkey({
    env: {
      LATCHKEY_OUTBOUND__ALLOW: `[{ cidr = "127.0.0.1/32", for = ["backchannel_logout"], ports = [${port}], allow_insecure_http = true }]`,
      LATCHKEY_MAIL__FROM: 'Latchkey <id@localhost>',
      LATCHKEY_MAIL__HOST: '127.0.0.1',
      LATCHKEY_MAIL__PORT: String(smtp.port),
      LATCHKEY_MAIL__TLS: 'none',
      LATCHKEY_MAIL__RETRY_BASE: '1s',
      // The export and the erasure need a recent sign-in (5 min by default); a debug build on
      // a busy machine may take longer than that between the sign-in and the erasure.
      LATCHKEY_LOGIN__RECENT_AUTHENTICATION: '30m',
    },
    seed(cli) {
      const user = cli(
        ['user', 'create', '--username', LIN.username, '--email', LIN.email, '--email-verified', '--name', LIN.name,
          '--claim', `phone_number=${LIN.phone}`, '--password-stdin'],
        { input: `${LIN.password}\n` },
      );
      story.sub = user.sub;
      appSecret = cli.createClient({
        id: APP.id,
        name: APP.name,
        redirectUris: [CALLBACK],
        grantTypes: ['authorization_code', 'refresh_token'],
        scopes: ['openid', 'email', 'profile', 'offline_access'],
        authMethod: 'client_secret_basic',
        backchannelLogoutUri: `${rp.origin}/bc/${APP.id}`,
        backchannelLogoutSessionRequired: true,
      }).client_secret;
      adminSecret = cli(['client', 'create', '--id', 'privacy-ops', '--name', 'Privacy ops', '--admin-client',
        '--grant-type', 'client_credentials', '--scope', 'admin:users:read', '--auth-method', 'client_secret_basic']).client_secret;
    },
  });
  md = await (await fetch(`${lk.issuer}/.well-known/openid-configuration`)).json();
  jwks = createRemoteJWKSet(new URL(md.jwks_uri));
  browser = await openBrowser();
  // The login page's conditional (autofill) WebAuthn request would sign in by itself from a
  // virtual authenticator: report no conditional mediation, so only the buttons ask.
  await browser.context.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
});

after(async () => {
  await browser?.close();
  await lk?.stop();
  await rp?.close();
  await smtp?.stop();
});

// ---------------------------------------------------------------------------------------
// Pages

const path = (page) => new URL(page.url()).pathname;
const bodyText = (page) => page.locator('body').innerText();

/** Runs one step of the story in the shared browser; a failure says where the browser was. */
async function inBrowser(fn) {
  try {
    return await fn(browser.page);
  } catch (e) {
    const went = browser.navigations.slice(-12).map((n) => `${n.method} ${n.url}`).join(' -> ');
    e.message += `\n(browser at ${browser.page.url()}; last navigations: ${went}; console: ${browser.console.join(' | ')})`;
    throw e;
  }
}

/** Waits for `selector` on the page; fails with the page's text. */
async function expectOnPage(page, selector, what) {
  await page.locator(selector).first().waitFor().catch(async (e) => {
    throw new Error(`${what}: no ${selector} (${e.message.split('\n')[0]}) at ${page.url()}:\n${await bodyText(page).catch(() => '')}`);
  });
}

/** Clicks a form's submit button and waits for the page its POST leads to. */
async function submitAndWait(page, button) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
  await button.click();
  await navigated;
  await page.waitForLoadState();
}

/** 'in' when the browser's cookies open /account/security, 'out' when it is sent to sign in. */
async function sessionState(page) {
  const res = await page.context().request.get(`${lk.issuer}/account/security`, { maxRedirects: 0 });
  if (res.status() === 200) return 'in';
  const location = new URL(res.headers().location ?? '/nowhere', lk.issuer);
  if (res.status() >= 300 && res.status() < 400 && location.pathname === '/login') return 'out';
  return `unexpected: ${res.status()} ${res.headers().location ?? ''}`;
}

/** A device-bound platform authenticator that says yes by itself (DevTools WebAuthn domain). */
async function addAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials };
}

/** The messages to `address` whose subject includes `subject`, once one has arrived. */
const mailTo = (address, subject) =>
  smtp.waitFor((m) => m.to === address && m.subject.includes(subject), { what: `"${subject}" to ${address}` });

// ---------------------------------------------------------------------------------------
// Looking for secrets and personal data

/** Every byte string a text may stand for: itself, and its hex, base64 and base64url readings. */
function readings(text) {
  const out = [Buffer.from(text, 'utf8')];
  if (/^(?:[0-9a-f]{2})+$/i.test(text)) out.push(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/=_-]{16,}$/.test(text)) out.push(Buffer.from(text, 'base64'), Buffer.from(text, 'base64url'));
  return out;
}

/** Every string in a JSON value, and every array of byte values as one Buffer. */
function leaves(value, out = []) {
  const isBytes = (a) => a.length > 8 && a.every((n) => Number.isInteger(n) && n >= 0 && n < 256);
  if (typeof value === 'string') {
    out.push(...readings(value));
  } else if (Array.isArray(value) && isBytes(value)) {
    out.push(Buffer.from(value));
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) leaves(v, out);
  }
  return out;
}

/**
 * The public key of a virtual authenticator's credential, as 16 bytes of each coordinate: in
 * the key stored as COSE, SPKI or raw, under any encoding of a whole string that reads back.
 */
function publicKeyBytes(credential) {
  const der = Buffer.from(credential.privateKey, 'base64');
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
  return [jwk.x, jwk.y].map((c) => Buffer.from(c, 'base64url').subarray(0, 16));
}

/** ASCII-lowercased bytes: a search in them finds a text in any letter case. */
function asciiLower(bytes) {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) if (out[i] >= 0x41 && out[i] <= 0x5a) out[i] |= 0x20;
  return out;
}

/** Every file under `dir` (recursively) as { name, bytes }. */
function readDir(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name))
    .map((file) => ({ name: relative(dir, file), bytes: readFileSync(file) }));
}

/** Where each needle (any letter case) occurs in the files: "file @offset: …context…". */
function clearTextHits(files, needles) {
  const hits = [];
  for (const { name, bytes } of files) {
    const lower = asciiLower(bytes);
    for (const needle of needles) {
      const n = Buffer.from(needle.toLowerCase(), 'utf8');
      for (let at = lower.indexOf(n); at >= 0; at = lower.indexOf(n, at + 1)) {
        const context = bytes.subarray(Math.max(0, at - 48), at + n.length + 48).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
        hits.push(`${name} @${at}: "${needle}" in …${context}…`);
      }
    }
  }
  return hits;
}

/**
 * The person's data that must never be stored or logged in clear, each searched for in any
 * letter case (so her address as typed, lowercased or uppercased), and in parts.
 */
const PERSONAL = [LIN.email, LIN.email.split('@')[0], LIN.name, 'Privacyperson', LIN.phone, LIN.phone.slice(1)];

// ---------------------------------------------------------------------------------------
// The app (openid-client) and the admin API

const appConfig = () => discoverClient(lk.issuer, APP.id, oidc.ClientSecretBasic(appSecret));

/** UserInfo's status for an access token. */
async function userInfoStatus(accessToken) {
  const res = await fetch(md.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

/** A refresh at the token endpoint: { ok, tokens } or { ok: false, error }. */
const refresh = (config, token) =>
  oidc.refreshTokenGrant(config, token).then(
    (tokens) => ({ ok: true, tokens }),
    (e) => ({ ok: false, error: e.error ?? e.message }),
  );

/** `GET /admin/api/v1/users?email=ADDRESS` with a fresh client-credentials token: the usernames. */
async function usersWithEmail(address) {
  const config = await discoverClient(lk.issuer, 'privacy-ops', oidc.ClientSecretBasic(adminSecret));
  const { access_token } = await oidc.clientCredentialsGrant(config, { scope: 'admin:users:read' });
  const url = new URL(`${lk.issuer}/admin/api/v1/users`);
  url.searchParams.set('email', address);
  const res = await fetch(url, { headers: { authorization: `Bearer ${access_token}` } });
  const body = await res.text();
  assert.equal(res.status, 200, `GET /users?email=${address}: ${body}`);
  return JSON.parse(body).items.map((u) => `${u.username} ${u.sub}`);
}

/** Verifies a back-channel logout request fully (as logout.test.mjs does); returns its claims. */
async function verifiedLogoutToken(hit) {
  assert.equal(hit.method, 'POST', 'back-channel logout is a POST');
  const form = new URLSearchParams(hit.body);
  assert.deepEqual([...form.keys()], ['logout_token'], `the body is only logout_token: ${hit.body}`);
  const { payload } = await jwtVerify(form.get('logout_token'), jwks, {
    issuer: lk.issuer,
    audience: APP.id,
    typ: 'logout+jwt',
    requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'events', 'sid', 'sub'],
  });
  assert.deepEqual(payload.events, { [BACKCHANNEL_EVENT]: {} });
  assert.equal('nonce' in payload, false, 'a logout token never carries a nonce');
  return payload;
}

// ---------------------------------------------------------------------------------------

describe('privacy: export, withdrawal, erasure, and nothing personal in clear at rest or in the log', () => {
  test('account recovery by an emailed link adds a named passkey', () =>
    inBrowser(async (page) => {
      const authenticator = await addAuthenticator(page);
      await page.goto(`${lk.issuer}/login`);
      await page.locator('a#cant-sign-in').click();
      await page.waitForURL((u) => u.pathname === '/recover');
      await page.locator('#recover-form #identifier').fill(LIN.email);
      await submitAndWait(page, page.locator('#recover-form button[type=submit]'));
      await expectOnPage(page, '#recovery-sent', 'the answer to the recovery request');

      const [mail] = await mailTo(LIN.email, 'Recover your account');
      await page.goto(linkTo(mail, '/recover/link').href);
      await expectOnPage(page, 'form#confirm-link', 'the recovery link');
      await submitAndWait(page, page.locator('form#confirm-link button[type=submit]'));
      await expectOnPage(page, '#recovery-ready', 'the recovery session');
      await page.locator('#add-passkey #passkey-name').fill(PASSKEY_NAME);
      await page.locator('#add-passkey-button').click();
      await expectOnPage(page, 'ol#recovery-codes', 'after adding the passkey');
      story.codes = await page.locator('ol#recovery-codes li code').allInnerTexts();
      assert.equal(story.codes.length, 10, 'ten recovery codes');
      [story.credential] = await authenticator.credentials();
      assert.ok(story.credential, 'the authenticator holds the new passkey');
      const [notice] = await mailTo(LIN.email, 'Your account was recovered');
      assert.ok(notice.text.includes(PASSKEY_NAME), `the notice names the passkey: ${notice.text}`);
      assert.equal(await sessionState(page), 'out', 'the recovery itself leaves no session');
    }));

  test('a request with login_hint=<address>: a wrong password, then password and passkey, consent; tokens', () =>
    inBrowser(async (page) => {
      assert.ok(story.credential, 'the recovery step registered a passkey');
      const config = await appConfig();
      const intercept = await interceptRp(page);
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: CALLBACK,
        scope: SCOPE,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        login_hint: LIN.email,
      });
      const arrived = intercept.next();
      await page.goto(url.href);
      assert.equal(path(page), '/login');
      assert.equal(await page.locator('#username').inputValue(), LIN.email, 'login_hint fills in the address');

      // --- the address with a wrong password: refused, no session
      await page.locator('#password').fill('not her password');
      await submitAndWait(page, page.locator('#password-sign-in button[type=submit]'));
      assert.equal(path(page), '/login', 'still on the login page');
      assert.match(await bodyText(page), /The username or password is wrong\./);
      assert.equal(await sessionState(page), 'out', 'a wrong password gives no session');

      // --- the address with her password, then her passkey as the second step
      await page.locator('#username').fill(LIN.email);
      await page.locator('#password').fill(LIN.password);
      await submitAndWait(page, page.locator('#password-sign-in button[type=submit]'));
      assert.equal(path(page), '/login/second-factor', `her passkey is asked for: ${await bodyText(page)}`);
      await page.locator('#passkey-button').click();
      await page.waitForURL((u) => u.pathname === '/consent');
      assert.match(await bodyText(page), new RegExp(APP.name));
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL((u) => u.origin === RP_ORIGIN);
      const tokens = await oidc.authorizationCodeGrant(config, new URL((await arrived).url), {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      story.idClaims = tokens.claims();
      assert.equal(story.idClaims.sub, story.sub);
      assert.equal(typeof story.idClaims.sid, 'string', 'the ID token carries sid');
      assert.equal(typeof tokens.refresh_token, 'string', 'offline_access: a refresh token');

      // --- both tokens work; a refresh rotates (both generations are held from now on)
      const rotated = await refresh(config, tokens.refresh_token);
      assert.equal(rotated.ok, true, `the refresh token works: ${rotated.error}`);
      story.tokens = [tokens, rotated.tokens];
      const latest = rotated.tokens;
      assert.equal(await userInfoStatus(latest.access_token), 200);
      assert.equal((await oidc.tokenIntrospection(config, latest.access_token)).active, true);
      const info = await oidc.fetchUserInfo(config, latest.access_token, story.sub);
      assert.equal(info.email, LIN.email, 'the app gets her address');
      assert.equal(info.name, LIN.name, 'and her name');
      story.secrets.push(...story.tokens.flatMap((t) => [t.access_token, t.refresh_token, t.id_token].filter(Boolean)));
      story.secrets.push(new URL((await arrived).url).searchParams.get('code'), appSecret, adminSecret);
    }));

  test('an authenticator app is set up (its secret must stay out of the export)', () =>
    inBrowser(async (page) => {
      await page.goto(`${lk.issuer}/account/security`);
      await page.locator('form#start-totp button').click();
      await page.waitForURL((u) => u.pathname === '/account/totp');
      story.totpSecret = (await page.locator('code#totp-secret').innerText()).replace(/\s+/g, '');
      await page.locator('#code').fill(totpNow(base32Decode(story.totpSecret)));
      await submitAndWait(page, page.locator('#totp-confirm button[type=submit]'));
      assert.equal(path(page), '/account/security');
      assert.equal((await page.locator('#totp-state').innerText()).trim(), 'On.');
    }));

  test('"Download your data": the passkey name, the consent and its recipients, and no secret', () =>
    inBrowser(async (page) => {
      assert.ok(story.tokens.length && story.totpSecret, 'the earlier steps ran');
      await page.goto(`${lk.issuer}/account/security`);
      const downloading = page.waitForEvent('download');
      await page.locator('a#export-data').click();
      const download = await downloading;
      assert.equal(download.suggestedFilename(), 'my-data.json');
      const file = await download.path();
      const text = readFileSync(file, 'utf8');
      const doc = JSON.parse(text);

      assert.equal(doc.format, 'latchkey-personal-data-v1');
      assert.equal(doc.profile.sub, story.sub);
      assert.equal(doc.profile.username, LIN.username);
      assert.equal(doc.profile.email.address, LIN.email, 'her address, as she typed it');
      assert.equal(doc.profile.name, LIN.name);
      assert.equal(doc.profile.phone.number, LIN.phone);
      assert.deepEqual(doc.sign_in.passkeys.map((p) => p.name), [PASSKEY_NAME], 'the passkey, by the name she gave it');
      assert.equal(doc.sign_in.password.set, true);
      assert.ok(doc.sign_in.authenticator_app?.since, 'the authenticator app, since when');
      assert.equal(doc.sign_in.recovery_codes_left, 10);
      const consent = doc.consents.find((c) => c.app === APP.id);
      assert.ok(consent, `the consent to ${APP.id}: ${JSON.stringify(doc.consents)}`);
      assert.deepEqual([...consent.scopes].sort(), SCOPE.split(' ').sort());
      assert.equal(consent.how, 'page');
      assert.ok(doc.consent_history.some((h) => h.app === APP.id && h.withdrawn_at === null), 'the consent history');
      const recipient = doc.recipients.find((r) => r.app === APP.id);
      assert.ok(recipient, `the recipients name the app: ${JSON.stringify(doc.recipients)}`);
      assert.equal(recipient.app_name, APP.name);
      for (const claim of ['sub', 'email', 'email_verified', 'name', 'preferred_username']) {
        assert.ok(recipient.claims.includes(claim), `the app receives ${claim}: ${recipient.claims}`);
      }
      assert.ok(!recipient.claims.includes('phone_number'), 'no phone scope, no phone number');
      assert.ok(doc.sessions.some((s) => s.apps.includes(APP.id)), 'her session, with the app it signed into');

      // --- no secret, in any encoding
      assert.doesNotMatch(text, /\$argon2/i, 'no password hash');
      assert.ok(!text.includes(LIN.password), 'no password');
      const cookies = (await page.context().cookies(lk.issuer)).map((c) => c.value).filter((v) => v.length >= 16);
      assert.ok(cookies.length > 0, 'the browser holds Latchkey cookies');
      for (const secret of [...story.secrets, ...story.codes, ...cookies, story.credential.privateKey]) {
        assert.ok(secret && !text.includes(secret), `the export holds a secret: ${secret?.slice(0, 12)}…`);
      }
      const bytes = leaves(doc);
      const forbidden = {
        'the passkey public key': publicKeyBytes(story.credential),
        'the authenticator-app secret': [base32Decode(story.totpSecret)],
      };
      for (const [what, needles] of Object.entries(forbidden)) {
        for (const needle of needles) assert.ok(!bytes.some((b) => b.includes(needle)), `the export holds ${what}`);
      }
      assert.ok(!text.toUpperCase().includes(story.totpSecret.toUpperCase()), 'the export holds the authenticator-app secret (base32)');
    }));

  test('"Apps with access": withdrawing the consent kills the tokens and logs the app out on the back channel', () =>
    inBrowser(async (page) => {
      const latest = story.tokens.at(-1);
      assert.ok(latest, 'the sign-in step issued tokens');
      const config = await appConfig();
      assert.deepEqual(rp.hits.filter((h) => h.path.startsWith('/bc/')).map((h) => h.url), [], 'no logout before the withdrawal');

      await page.goto(`${lk.issuer}/account/apps`);
      const row = page.locator(`li.app[data-client-id="${APP.id}"]`);
      assert.match(await row.innerText(), new RegExp(APP.name));
      await submitAndWait(page, row.getByRole('button', { name: 'Remove access' }));
      await expectOnPage(page, '#done', 'after removing access');
      assert.equal(await page.locator(`li.app[data-client-id="${APP.id}"]`).count(), 0, 'the app is no longer listed');

      assert.deepEqual(await refresh(config, latest.refresh_token), { ok: false, error: 'invalid_grant' }, 'the refresh token is refused');
      for (const t of story.tokens) {
        assert.equal(await userInfoStatus(t.access_token), 401, 'UserInfo refuses the access token');
        assert.equal((await oidc.tokenIntrospection(config, t.access_token)).active, false, 'introspection: inactive');
      }

      const hit = await rp.waitFor((h) => h.path === `/bc/${APP.id}`, { what: 'the back-channel logout for the withdrawal' });
      const payload = await verifiedLogoutToken(hit);
      assert.equal(payload.sub, story.sub, "the logout token's sub is hers");
      assert.equal(payload.sid, story.idClaims.sid, "its sid is her session's");
      assert.equal(await sessionState(page), 'in', 'Latchkey itself keeps her signed in');
    }));

  test('"Delete your account" asks the username; then no sign-in works and the admin API finds no one', () =>
    inBrowser(async (page) => {
      // Before: the admin API finds her by address, in any letter case.
      for (const address of [LIN.email, LIN.email.toLowerCase(), LIN.email.toUpperCase()]) {
        assert.deepEqual(await usersWithEmail(address), [`${LIN.username} ${story.sub}`], `found by ${address}`);
      }
      await page.goto(`${lk.issuer}/account/security`);
      await page.locator('a#delete-account').click();
      await page.waitForURL((u) => u.pathname === '/account/delete');
      await expectOnPage(page, 'form#delete-form', 'the deletion page');
      await page.locator('#confirm').fill(LIN.email);
      await submitAndWait(page, page.locator('#delete-form button[type=submit]'));
      await expectOnPage(page, '#delete-error', 'her address instead of her username');
      assert.equal(await sessionState(page), 'in', 'nothing was deleted');

      await page.locator('#confirm').fill(LIN.username);
      await submitAndWait(page, page.locator('#delete-form button[type=submit]'));
      await expectOnPage(page, '#deleted', 'after confirming');
      const receipt = await bodyText(page);
      assert.match((await page.locator('#receipt-id').innerText()).trim(), /^\S{8,}$/, 'a receipt id');
      assert.deepEqual(clearTextHits([{ name: 'the receipt', bytes: Buffer.from(await page.content()) }], PERSONAL), [], receipt);
      assert.equal(await sessionState(page), 'out', 'this browser is signed out');

      // --- her passkey no longer signs in (the authenticator does sign: the server refuses)
      await page.goto(`${lk.issuer}/login`);
      await page.locator('#passkey-button').click();
      await page.waitForURL((u) => u.pathname === '/login/passkey');
      assert.equal((await page.locator('p.error:visible').allInnerTexts()).join(' ').trim(), 'That passkey could not sign you in.');
      assert.equal(await sessionState(page), 'out', 'no session from the passkey');

      // --- nor her password, by address or by username
      for (const identifier of [LIN.email, LIN.username]) {
        await page.goto(`${lk.issuer}/login`);
        await page.locator('#username').fill(identifier);
        await page.locator('#password').fill(LIN.password);
        await submitAndWait(page, page.locator('#password-sign-in button[type=submit]'));
        assert.equal(path(page), '/login', `${identifier}: still on the login page`);
        assert.match(await bodyText(page), /The username or password is wrong\./);
        assert.equal(await sessionState(page), 'out', `${identifier}: no session`);
      }

      // --- the admin API finds no one by her address, in any letter case
      for (const address of [LIN.email, LIN.email.toLowerCase(), LIN.email.toUpperCase()]) {
        assert.deepEqual(await usersWithEmail(address), [], `nobody found by ${address}`);
      }
    }));

  test('at rest and in the log: her address, name and phone number are nowhere in clear', async () => {
    assert.equal(await sessionState(browser.page), 'out', 'the erasure step ran');
    const running = readDir(lk.dir);
    await lk.stop({ keepDir: true });
    const stopped = readDir(lk.dir);
    if (!process.env.E2E_KEEP_DIRS) rmSync(lk.dir, { recursive: true, force: true });

    for (const [when, files] of [['while running', running], ['after stopping', stopped]]) {
      const db = files.filter((f) => /\.db$/.test(f.name));
      assert.ok(db.length > 0 && db.every((f) => f.bytes.length > 0), `${when}: a non-empty SQLite database: ${files.map((f) => f.name)}`);
      assert.ok(files.some((f) => /\.db-wal$/.test(f.name)) || when === 'after stopping', `${when}: the write-ahead log is read too`);
      // Positive control: the client's id is stored in clear, and the search finds it.
      assert.ok(clearTextHits(files, [APP.id]).length > 0, `${when}: the scan finds what is stored in clear`);
      const hits = clearTextHits(files, PERSONAL);
      assert.deepEqual(hits, [], `${when}: her personal data in clear in ${files.map((f) => `${f.name} (${f.bytes.length} B)`).join(', ')}`);
    }

    const log = `${lk.logs.stdout}\n${lk.logs.stderr}`;
    assert.ok(log.includes('listening:') && lk.logs.stderr.length > 0, `the server's whole log was captured (${log.length} characters)`);
    assert.deepEqual(clearTextHits([{ name: 'the server log', bytes: Buffer.from(log) }], PERSONAL), []);
  });
});

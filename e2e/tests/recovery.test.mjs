// Account recovery by an email link, in Chromium, with a real SMTP relay: aiosmtpd (PyPI,
// installed by e2e/run) on a free port stores every message Latchkey sends in a Maildir,
// which the tests read back (lib/mail.mjs). Sign-up with a passkey and the emailed
// verification link; "Can't sign in?" for a user who lost their only passkey: the link's GET
// (as a mail scanner does it) uses nothing, its button opens the recovery, a new passkey on
// another authenticator, new recovery codes, every other session ended, the notice email,
// then a sign-in with the new passkey. The request's answer is the same for any name, and
// only a verified address gets a link. A user with an authenticator app who says it is lost
// too waits, and the cancel link emailed to them stops that recovery.
//
// Passkeys come from the DevTools protocol's virtual authenticators (as in
// passkeys.test.mjs); the WebAuthn RP id is `localhost`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { openBrowser, startLatchkey } from '../lib/latchkey.mjs';
import { base32Decode, totpNow } from '../lib/totp.mjs';
import { linkTo, startSmtp } from '../lib/mail.mjs';

/** Signs up with a passkey, verifies her address, loses the passkey, recovers. */
const ROSA = { name: 'Rosa Recover', username: 'rosa', email: 'rosa@example.com' };
/** Signs up with a passkey and an authenticator app; her recovery is stopped. */
const TIA = { name: 'Tia Totp', username: 'tia', email: 'tia@example.com' };
/** Seeded with a verified address (no password, no passkey): a known account. */
const VERA = { name: 'Vera Verified', username: 'vera', email: 'vera@example.com' };
/** Seeded with an address that is not verified: recovery never writes to it. */
const UMA = { name: 'Uma Unverified', username: 'uma', email: 'uma@example.com' };

const SUBJECT = {
  verify: 'Confirm your email address',
  link: 'Recover your account',
  recovered: 'Your account was recovered',
};

let smtp;
let lk;

before(async () => {
  smtp = await startSmtp();
  lk = await startLatchkey({
    env: {
      LATCHKEY_REGISTRATION__MODE: 'open',
      LATCHKEY_MAIL__FROM: 'Latchkey <id@localhost>',
      LATCHKEY_MAIL__HOST: '127.0.0.1',
      LATCHKEY_MAIL__PORT: String(smtp.port),
      LATCHKEY_MAIL__TLS: 'none',
      LATCHKEY_MAIL__RETRY_BASE: '1s',
    },
    seed(cli) {
      for (const u of [VERA, UMA]) {
        const args = ['user', 'create', '--username', u.username, '--email', u.email, '--name', u.name, '--no-password'];
        if (u === VERA) args.push('--email-verified');
        cli(args);
      }
    },
  });
});

after(async () => {
  try {
    await lk?.stop();
  } finally {
    await smtp?.stop();
  }
});

// ---------------------------------------------------------------------------------------
// Browsers and virtual authenticators (DevTools protocol, WebAuthn domain)

/** Runs `fn(...browsers)` with `n` separate Chromiums (own profiles), always closing them. */
async function withBrowsers(n, fn) {
  const browsers = [];
  try {
    for (let i = 0; i < n; i++) browsers.push(await openBrowser());
    for (const b of browsers) await withoutAutofill(b.page);
    return await fn(...browsers);
  } catch (e) {
    const where = browsers.map((b, i) => {
      const went = b.navigations.map((x) => `${x.method} ${x.url}`).join(' -> ');
      return `browser ${i + 1} at ${b.page.url()}: ${went}; console: ${b.console.join(' | ')}`;
    });
    e.message += `\n(${where.join('\n ')})`;
    throw e;
  } finally {
    for (const b of browsers) await b.close();
  }
}

/**
 * The login page's conditional (autofill) WebAuthn request would sign in by itself from a
 * virtual authenticator: report no conditional mediation, so only the button asks.
 */
async function withoutAutofill(page) {
  await page.context().addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
}

/** A device-bound platform authenticator that says yes by itself. */
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
  return {
    async credentials() {
      return (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    },
    async remove() {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}

/** DevTools gives credential ids in standard base64; the pages use base64url. */
const b64url = (b64) => Buffer.from(b64, 'base64').toString('base64url');

const path = (page) => new URL(page.url()).pathname;

const bodyText = (page) => page.locator('body').innerText();

/** Waits for `selector` on the page; fails with the page's text. */
async function expectOnPage(page, selector, what) {
  await page.locator(selector).first().waitFor().catch(async (e) => {
    throw new Error(`${what}: no ${selector} (${e.message.split('\n')[0]}) at ${page.url()}:\n${await bodyText(page).catch(() => '')}`);
  });
}

/**
 * The browser's session, asked with its cookies but without rendering anything: 'in' when
 * /account/security answers, 'out' when it sends the browser to sign in.
 */
async function sessionState(page) {
  const res = await page.context().request.get(`${lk.issuer}/account/security`, { maxRedirects: 0 });
  if (res.status() === 200) return 'in';
  const location = new URL(res.headers().location ?? '/nowhere', lk.issuer);
  if (res.status() >= 300 && res.status() < 400 && location.pathname === '/login') return 'out';
  return `unexpected: ${res.status()} ${res.headers().location ?? ''}`;
}

/**
 * Signs up with a passkey (an authenticator must be there); leaves the browser signed in.
 * Returns the recovery codes.
 */
async function signUp(page, user) {
  await page.goto(`${lk.issuer}/signup`);
  await page.locator('#name').fill(user.name);
  await page.locator('#username').fill(user.username);
  await page.locator('#email').fill(user.email);
  await page.locator('#signup-button').click();
  await expectOnPage(page, 'ol#recovery-codes', 'sign-up');
  const codes = await page.locator('ol#recovery-codes li code').allInnerTexts();
  await page.locator('a#continue').click();
  await page.waitForURL((u) => u.pathname === '/account/security');
  assert.match(await bodyText(page), new RegExp(`Signed in as ${user.username}\\b`));
  return codes;
}

/** The messages to `address` whose subject includes `subject`, once `count` have arrived. */
const mailTo = (address, subject, count = 1) =>
  smtp.waitFor((m) => m.to === address && m.subject.includes(subject), { count, what: `"${subject}" to ${address}` });

/**
 * Opens an emailed link in the browser: the confirmation page, whose button (its label
 * matching `button`) is pressed; returns the page's text before the press.
 */
async function confirmLink(page, link, button) {
  await page.goto(link.href);
  await expectOnPage(page, 'form#confirm-link', `the page of ${link.pathname}`);
  const text = await bodyText(page);
  const submit = page.locator('form#confirm-link button[type=submit]');
  assert.match((await submit.innerText()).trim(), button);
  await submitAndWait(page, submit);
  return text;
}

/** Clicks a form's submit button and waits for the page its POST leads to. */
async function submitAndWait(page, button) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
  await button.click();
  await navigated;
  await page.waitForLoadState();
}

/**
 * Signs up on the page's browser and confirms the emailed verification link there; returns
 * the recovery codes.
 */
async function signUpAndVerify(page, user) {
  const codes = await signUp(page, user);
  const [mail] = await mailTo(user.email, SUBJECT.verify);
  const link = linkTo(mail, '/email/verify');
  assert.equal(link.origin, lk.issuer, 'the link points at the issuer');
  const shown = await confirmLink(page, link, /Confirm/);
  assert.ok(shown.includes(user.email), `the page names the address: ${shown}`);
  const done = await bodyText(page);
  assert.ok(done.includes(user.email) && /verified/.test(done), `the address is confirmed: ${done}`);
  return codes;
}

/** "Can't sign in?" from the login page; returns the answer page's text and status. */
async function askForRecovery(page, identifier) {
  await page.goto(`${lk.issuer}/login`);
  await page.locator('a#cant-sign-in').click();
  await page.waitForURL((u) => u.pathname === '/recover');
  await page.locator('#recover-form #identifier').fill(identifier);
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/recover');
  await page.locator('#recover-form button[type=submit]').click();
  const status = (await answered).status();
  await expectOnPage(page, '#recovery-sent', `the answer for "${identifier}"`);
  return { status, sent: (await page.locator('#recovery-sent').innerText()).trim(), body: await bodyText(page) };
}

/** A GET without cookies, as a mail scanner that opens every link does. */
async function scannerGet(link) {
  const res = await fetch(link, { redirect: 'manual', headers: { 'user-agent': 'LinkScanner/1.0' } });
  return { status: res.status, text: await res.text() };
}

// ---------------------------------------------------------------------------------------

describe('account recovery by email link (aiosmtpd, Chromium virtual authenticators)', () => {
  test('a user who lost her only passkey recovers through the emailed link and signs in with a new one', async () => {
    await withBrowsers(2, async (old, fresh) => {
      // --- sign-up on authenticator A, the address verified by its link
      const a = await addAuthenticator(old.page);
      const oldCodes = await signUpAndVerify(old.page, ROSA);
      assert.equal(oldCodes.length, 10);
      const [credA] = await a.credentials();
      assert.ok(credA, 'A holds the sign-up passkey');

      // --- A is lost; the old browser keeps its session (until the recovery ends it)
      await a.remove();
      assert.equal(await sessionState(old.page), 'in', 'the old browser is signed in before the recovery');

      // --- another browser, no passkey: "Can't sign in?"
      const answer = await askForRecovery(fresh.page, ROSA.username);
      assert.equal(answer.status, 200);
      const [mail] = await mailTo(ROSA.email, SUBJECT.link);
      assert.match(mail.from, /id@localhost/);
      assert.match(mail.text, /15 minutes/, 'the email says how long the link works');
      const link = linkTo(mail, '/recover/link');
      assert.equal(link.origin, lk.issuer);
      assert.ok(link.searchParams.get('token'), 'the link carries a token');

      // --- a mail scanner opens the link (no cookies, twice): that uses nothing
      for (let i = 0; i < 2; i++) {
        const scanned = await scannerGet(link);
        assert.equal(scanned.status, 200, `the scanner's GET #${i + 1}: ${scanned.text}`);
        assert.match(scanned.text, /id="confirm-link"/);
        assert.ok(scanned.text.includes(`value="${link.searchParams.get('token')}"`), 'the form carries the token');
      }

      // --- the owner opens it: still the button; pressing it opens the recovery session
      const shown = await confirmLink(fresh.page, link, /Recover/);
      assert.match(shown, /\brosa\b/, 'the page names the account');
      assert.equal(path(fresh.page), '/recover/session', `the link's POST leads to the recovery page: ${await bodyText(fresh.page)}`);
      await expectOnPage(fresh.page, '#recovery-ready', 'the recovery session');
      assert.equal(await fresh.page.locator('#app-code-form').count(), 0, 'no second factor is asked for');

      // --- a new passkey on authenticator B; the recovery codes answer it
      const b = await addAuthenticator(fresh.page);
      await fresh.page.locator('#add-passkey #passkey-name').fill('Phone B');
      await fresh.page.locator('#add-passkey-button').click();
      await expectOnPage(fresh.page, 'ol#recovery-codes', 'after adding the passkey');
      const codes = await fresh.page.locator('ol#recovery-codes li code').allInnerTexts();
      assert.equal(codes.length, 10, 'ten new recovery codes');
      assert.equal(codes.filter((c) => oldCodes.includes(c)).length, 0, 'none of them an old one');
      assert.equal(await fresh.page.locator('a#continue').getAttribute('href'), '/login');
      const [credB] = await b.credentials();
      assert.ok(credB, 'B holds the new passkey');
      assert.equal(credB.userHandle, credA.userHandle, "B's passkey is for the same account");
      const idB = b64url(credB.credentialId);

      // --- every other session is over; the owner is told; the link is spent
      assert.equal(await sessionState(old.page), 'out', "the old browser's session ended with the recovery");
      const [notice] = await mailTo(ROSA.email, SUBJECT.recovered);
      assert.match(notice.text, /Phone B/, 'the notice names the new passkey');
      const again = await scannerGet(link);
      assert.equal(again.status, 400, 'a used link no longer opens the page');
      assert.doesNotMatch(again.text, /id="confirm-link"/);

      // --- the old recovery codes no longer sign in (tried from the old browser)
      await old.page.goto(`${lk.issuer}/login/recovery`);
      await old.page.locator('#recovery-sign-in #username').fill(ROSA.username);
      await old.page.locator('#recovery-sign-in #code').fill(oldCodes[0]);
      await submitAndWait(old.page, old.page.locator('#recovery-sign-in button[type=submit]'));
      assert.equal(path(old.page), '/login/recovery', `an old code is refused: ${await bodyText(old.page)}`);
      assert.equal(await sessionState(old.page), 'out', 'an old code gives no session');

      // --- sign in with B, without a username
      await fresh.page.locator('a#continue').click();
      await fresh.page.waitForURL((u) => u.pathname === '/login');
      await fresh.page.locator('#passkey-button').click();
      await fresh.page.waitForURL((u) => u.pathname === '/login/done').catch(async (e) => {
        throw new Error(`no sign-in with the new passkey (${e.message.split('\n')[0]}): ${await bodyText(fresh.page)}`);
      });
      await fresh.page.goto(`${lk.issuer}/account/security`);
      assert.equal(path(fresh.page), '/account/security');
      assert.match(await bodyText(fresh.page), /Signed in as rosa\b/);
      const listed = await fresh.page.locator(`ul#passkeys li.passkey[data-credential-id="${idB}"] .passkey-name`).innerText();
      assert.equal(listed.trim(), 'Phone B');
      const [usedB] = await b.credentials();
      assert.ok(usedB.signCount > credB.signCount, 'B signed the sign-in');
    });
  });

  test('the answer is the same for an unknown name, and only a verified address gets a link', async () => {
    // The operator's `user create` sent Uma a verification link; wait for it, so that every
    // later message is one this test caused.
    await mailTo(UMA.email, SUBJECT.verify);
    const before = smtp.messages().length;
    await withBrowsers(1, async ({ page }) => {
      const answers = {};
      for (const who of ['nobody', 'nobody@example.com', UMA.username, UMA.email, VERA.username]) {
        answers[who] = await askForRecovery(page, who);
      }
      const known = answers[VERA.username];
      assert.match(known.sent, /If an account with a verified email address matches, we sent a link/);
      for (const [who, a] of Object.entries(answers)) {
        assert.equal(a.status, known.status, `the status for "${who}"`);
        assert.equal(a.sent, known.sent, `#recovery-sent for "${who}"`);
        assert.equal(a.body, known.body, `the whole page for "${who}"`);
      }
    });
    // Vera's link arrives; the outbox sends in order once a second, so one more round after
    // it would have brought anything the earlier requests caused.
    await mailTo(VERA.email, SUBJECT.link);
    await new Promise((r) => setTimeout(r, 2_500));
    const caused = smtp.messages().slice(before);
    assert.deepEqual(
      caused.map((m) => `${m.to}: ${m.subject}`),
      [`${VERA.email}: ${SUBJECT.link}`],
      'one message: the link to the verified address',
    );
  });

  test('an app user who lost it too waits, and the emailed cancel link stops the recovery', async () => {
    await withBrowsers(2, async (owner, other) => {
      // --- sign-up, verified address, an authenticator app
      await addAuthenticator(owner.page);
      await signUpAndVerify(owner.page, TIA);
      await owner.page.goto(`${lk.issuer}/account/security`);
      await owner.page.locator('form#start-totp button').click();
      await owner.page.waitForURL((u) => u.pathname === '/account/totp');
      const secret = base32Decode((await owner.page.locator('code#totp-secret').innerText()).trim());
      await owner.page.locator('#code').fill(totpNow(secret));
      await owner.page.locator('#totp-confirm button[type=submit]').click();
      await owner.page.waitForURL((u) => u.pathname === '/account/security');
      assert.equal((await owner.page.locator('#totp-state').innerText()).trim(), 'On.');

      // --- a recovery from another browser: the link is not enough, the app is asked for
      await askForRecovery(other.page, TIA.username);
      const [mail] = await mailTo(TIA.email, SUBJECT.link);
      await confirmLink(other.page, linkTo(mail, '/recover/link'), /Recover/);
      assert.equal(path(other.page), '/recover/session');
      await expectOnPage(other.page, 'form#app-code-form', 'the recovery of an account with an app');
      assert.equal(await other.page.locator('#add-passkey').count(), 0, 'no passkey form before the second factor');

      // --- "I lost it too": the recovery waits out recovery.delay (a day by default)
      const declared = Date.now();
      await other.page.locator('form#lost-form button[type=submit]').click();
      await expectOnPage(other.page, '#recovery-waiting', 'after "I lost it too"');
      assert.equal(path(other.page), '/recover/session');
      assert.equal(await other.page.locator('#add-passkey').count(), 0, 'no passkey form while waiting');
      const readyAt = Date.parse((await other.page.locator('#recovery-waiting strong').innerText()).trim());
      const day = 86_400_000;
      assert.ok(Math.abs(readyAt - declared - day) < 120_000, `ready in a day: ${new Date(readyAt).toISOString()}`);

      // --- the waiting email, with the link that stops it; a scanner's GET uses nothing
      const [waiting] = await mailTo(TIA.email, 'unless you stop it');
      assert.match(waiting.subject, /in 24 hours/);
      const cancel = linkTo(waiting, '/recover/cancel');
      assert.equal(cancel.origin, lk.issuer);
      const scanned = await scannerGet(cancel);
      assert.equal(scanned.status, 200, scanned.text);
      assert.match(scanned.text, /id="confirm-link"/);

      // --- the owner stops it from her browser
      await confirmLink(owner.page, cancel, /Stop/);
      assert.match(await bodyText(owner.page), /The recovery was stopped/);
      assert.equal(await sessionState(owner.page), 'in', 'the owner is still signed in');

      // --- the recovering browser's session is over, and the cancel link is spent
      const res = await other.page.goto(`${lk.issuer}/recover/session`);
      assert.equal(res.status(), 400, 'the recovery page refuses');
      assert.match(await bodyText(other.page), /cancelled/);
      const again = await scannerGet(cancel);
      assert.equal(again.status, 400, 'a used cancel link no longer opens the page');
    });
  });
});

// Account recovery by a code texted to a verified phone number (`recovery.sms`), in
// Chromium, with a Twilio Messages API stand-in (lib/twilio.mjs: node:http on a free
// 127.0.0.1 port, opened for `sms` in `outbound.allow`) that checks every request exactly and
// records every text, and aiosmtpd as the mail relay (email recovery stays on too).
//
// A user signs up with a passkey on authenticator A, confirms her address, and adds a phone
// number on her security page (the first try at texting the code gets a 503 from "Twilio" and
// the outbox sends it again). A is lost: in another browser "Can't sign in?" texts a code; a
// wrong code is refused and changes nothing; the right code opens the recovery session; a new
// passkey on authenticator B completes it: new recovery codes, the old browser's session
// ended, the "recovered" notice both texted and emailed, and a sign-in with B. An unknown name
// gets the same answer as a known one, and no text.
//
// The `[sms]`, `[recovery]` and `[[outbound.allow]]` settings are written to the server's
// latchkey.toml (an array of tables; the environment overrides are for scalar keys).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { openBrowser, startLatchkey } from '../lib/latchkey.mjs';
import { linkTo, startSmtp } from '../lib/mail.mjs';
import { startTwilio } from '../lib/twilio.mjs';

/** Signs up with a passkey, adds her phone, loses the passkey, recovers by a text. */
const ROSA = { name: 'Rosa Recover', username: 'rosa', email: 'rosa@example.com', phone: '+447700900123', typed: '+44 7700 900123' };
/** Seeded with a verified address and a verified phone number: a known account. */
const VERA = { name: 'Vera Verified', username: 'vera', email: 'vera@example.com', phone: '+447700900456' };

const SUBJECT = { verify: 'Confirm your email address', recovered: 'Your account was recovered' };
/** A text whose Body starts with a 6-digit code: the code. */
const CODE = /^(\d{6})\b/;

let twilio;
let smtp;
let lk;

before(async () => {
  twilio = await startTwilio({ from: '+15005550006' });
  smtp = await startSmtp();
  const config = [
    '[registration]',
    'mode = "open"',
    '',
    '[mail]',
    'from = "Latchkey <id@localhost>"',
    'host = "127.0.0.1"',
    `port = ${smtp.port}`,
    'tls = "none"',
    'retry_base = "1s"',
    '',
    '[sms]',
    `base_url = "${twilio.baseUrl}"`,
    `account_sid = "${twilio.accountSid}"`,
    `auth_token = "${twilio.authToken}"`,
    `from = "${twilio.from}"`,
    'allowed_countries = ["+44"]',
    'timeout = "5s"',
    'retry_base = "1s"',
    '',
    '[recovery]',
    'sms = true',
    '',
    '[[outbound.allow]]',
    'cidr = "127.0.0.1/32"',
    'for = ["sms"]',
    `ports = [${twilio.port}]`,
    'allow_insecure_http = true',
    '',
  ].join('\n');
  lk = await startLatchkey({
    files: { 'latchkey.toml': config },
    seed(cli) {
      cli([
        'user', 'create', '--username', VERA.username, '--email', VERA.email, '--name', VERA.name, '--email-verified',
        '--claim', `phone_number=${VERA.phone}`, '--claim', 'phone_number_verified=true', '--no-password',
      ]);
    },
  });
});

after(async () => {
  try {
    await lk?.stop();
  } finally {
    try {
      await smtp?.stop();
    } finally {
      await twilio?.close();
    }
  }
  // Whatever reached the stand-in, in any test, was a request Twilio takes.
  assert.deepEqual(twilio?.problems ?? [], [], 'every request to the Twilio stand-in was well-formed');
});

// ---------------------------------------------------------------------------------------
// Browsers and virtual authenticators (as in recovery.test.mjs)

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
    const texts = twilio.requests.map((r) => `#${r.seq} ${r.status} to ${r.fields.To}: ${r.fields.Body}`);
    e.message += `\n(${where.join('\n ')})\n(Twilio stand-in: ${texts.join(' | ') || 'nothing'}; problems: ${twilio.problems.join(' | ') || 'none'})`;
    throw e;
  } finally {
    for (const b of browsers) await b.close();
  }
}

/** The login page's conditional (autofill) WebAuthn request stays off: only the button asks. */
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

const squash = (s) => s.replace(/\s+/g, ' ').trim();

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

/** Clicks a form's submit button and waits for the page its POST leads to. */
async function submitAndWait(page, button) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
  await button.click();
  await navigated;
  await page.waitForLoadState();
}

/** Signs up with a passkey and confirms the emailed verification link; returns the recovery codes. */
async function signUpAndVerify(page, user) {
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

  const [mail] = await mailTo(user.email, SUBJECT.verify);
  const link = linkTo(mail, '/email/verify');
  await page.goto(link.href);
  await expectOnPage(page, 'form#confirm-link', 'the verification link');
  await submitAndWait(page, page.locator('form#confirm-link button[type=submit]'));
  await page.goto(`${lk.issuer}/account/security`);
  assert.equal(squash(await page.locator('#email-state').innerText()), `${user.email} verified`, 'the address is verified');
  return codes;
}

/** The messages to `address` whose subject includes `subject`, once `count` have arrived. */
const mailTo = (address, subject, count = 1) =>
  smtp.waitFor((m) => m.to === address && m.subject.includes(subject), { count, what: `"${subject}" to ${address}` });

/** Texts to `number` accepted after request number `since`, once `count` have arrived. */
const textsTo = (number, since, count = 1, what = `a text to ${number}`) =>
  twilio.waitFor((m) => m.to === number && m.seq > since, { count, what });

/** The request number of the last request that reached the stand-in (a mark for textsTo). */
const mark = () => twilio.requests.length;

/** The code a text starts with (fails if it does not start with 6 digits). */
function codeOf(text) {
  const m = CODE.exec(text.body);
  assert.ok(m, `the text to ${text.to} starts with a 6-digit code: ${JSON.stringify(text.body)}`);
  return m[1];
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
  return {
    status,
    sent: squash(await page.locator('#recovery-sent').innerText()),
    codeForm: await page.locator('form#recover-code-form #recovery-code').count(),
    body: await bodyText(page),
  };
}

/** Types `code` into the answer page's code form and submits it; returns the POST's status. */
async function giveRecoveryCode(page, code) {
  await page.locator('#recover-code-form #recovery-code').fill(code);
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/recover/code');
  await submitAndWait(page, page.locator('#recover-code-form button[type=submit]'));
  return (await answered).status();
}

// ---------------------------------------------------------------------------------------

describe('account recovery by a texted code (Twilio stand-in, aiosmtpd, Chromium virtual authenticators)', () => {
  test('a user who lost her passkey confirms her phone, recovers by the texted code and signs in with a new passkey', async () => {
    await withBrowsers(2, async (old, fresh) => {
      // --- sign-up on authenticator A, the address verified by its link
      const a = await addAuthenticator(old.page);
      const oldCodes = await signUpAndVerify(old.page, ROSA);
      assert.equal(oldCodes.length, 10);
      const [credA] = await a.credentials();
      assert.ok(credA, 'A holds the sign-up passkey');

      // --- a phone number on the security page; "Twilio" fails the first try with a 503
      assert.equal(squash(await old.page.locator('#phone-state').innerText()), 'None.', 'no phone yet');
      const beforePhone = mark();
      twilio.failNext({ status: 503 });
      await old.page.locator('#phone-form #new-phone').fill(ROSA.typed);
      await submitAndWait(old.page, old.page.locator('#phone-form button[type=submit]'));
      assert.equal(new URL(old.page.url()).searchParams.get('done'), 'phone_code_sent', `the code is sent: ${await bodyText(old.page)}`);
      await expectOnPage(old.page, 'form#phone-code-form #phone-code', 'after "Text me a code"');
      assert.match(await old.page.locator('label[for=phone-code]').innerText(), new RegExp(`Code texted to \\${ROSA.phone}\\b`));
      const [confirmText] = await textsTo(ROSA.phone, beforePhone, 1, 'the code that confirms the number');
      const phoneCode = codeOf(confirmText);
      const tries = twilio.requests.filter((r) => r.seq > beforePhone && r.fields.To === ROSA.phone);
      assert.deepEqual(
        tries.map((r) => [r.status, r.fields.Body]),
        [
          [503, confirmText.body],
          [201, confirmText.body],
        ],
        'the text was refused once (503) and sent again, the same text',
      );
      await old.page.locator('#phone-code-form #phone-code').fill(phoneCode);
      await submitAndWait(old.page, old.page.locator('#phone-code-form button[type=submit]'));
      assert.equal(new URL(old.page.url()).searchParams.get('done'), 'phone_verified', `the number is confirmed: ${await bodyText(old.page)}`);
      assert.equal(squash(await old.page.locator('#phone-state').innerText()), `${ROSA.phone} verified`);
      assert.equal(await old.page.locator('#phone-state .tag').innerText(), 'verified');
      assert.equal(await old.page.locator('#phone-code-form').count(), 0, 'no code is asked for any more');

      // --- A is lost; the old browser keeps its session (until the recovery ends it)
      await a.remove();
      assert.equal(await sessionState(old.page), 'in', 'the old browser is signed in before the recovery');

      // --- another browser, no passkey: "Can't sign in?" texts a code
      const beforeAsk = mark();
      const answer = await askForRecovery(fresh.page, ROSA.username);
      assert.equal(answer.status, 200);
      assert.match(answer.sent, /texted a code to its verified phone number/);
      assert.equal(answer.codeForm, 1, 'the answer page asks for the code');
      const [firstText] = await textsTo(ROSA.phone, beforeAsk, 1, 'the recovery code');
      const firstCode = codeOf(firstText);
      assert.match(firstText.body, /recover/, `the text says what the code is for: ${firstText.body}`);

      // --- a wrong code: an error page, and nothing changes
      const wrong = ['000000', '111111', '222222'].find((c) => c !== firstCode);
      const wrongStatus = await giveRecoveryCode(fresh.page, wrong);
      assert.equal(wrongStatus, 400, `a wrong code is refused: ${await bodyText(fresh.page)}`);
      assert.match(await bodyText(fresh.page), /That code is not right/);
      assert.equal(await fresh.page.locator('#recovery-ready, #add-passkey').count(), 0, 'no passkey form');
      const noSession = await fresh.page.context().request.get(`${lk.issuer}/recover/session`, { maxRedirects: 0 });
      assert.equal(noSession.status(), 400, 'the wrong code opened no recovery session');
      assert.equal(await sessionState(old.page), 'in', 'the old browser is still signed in');

      // --- asking again texts another code; the right code opens the recovery session
      const beforeAgain = mark();
      const again = await askForRecovery(fresh.page, ROSA.username);
      assert.equal(again.sent, answer.sent);
      const [secondText] = await textsTo(ROSA.phone, beforeAgain, 1, 'the second recovery code');
      const rightStatus = await giveRecoveryCode(fresh.page, codeOf(secondText));
      assert.equal(rightStatus, 303, 'the right code redirects');
      assert.equal(path(fresh.page), '/recover/session', `the code leads to the recovery page: ${await bodyText(fresh.page)}`);
      await expectOnPage(fresh.page, '#recovery-ready', 'the recovery session');
      await expectOnPage(fresh.page, 'form#add-passkey #passkey-name', 'the recovery session');
      assert.equal(await fresh.page.locator('#app-code-form').count(), 0, 'no second factor is asked for');
      assert.equal(
        twilio.messages.filter((m) => m.seq > beforeAsk && /recovered/.test(m.body)).length,
        0,
        'nothing was recovered yet',
      );

      // --- a new passkey on authenticator B; the recovery codes answer it
      const b = await addAuthenticator(fresh.page);
      const beforeDone = mark();
      await fresh.page.locator('#add-passkey #passkey-name').fill('Phone B');
      await fresh.page.locator('#add-passkey-button').click();
      await expectOnPage(fresh.page, 'ol#recovery-codes', 'after adding the passkey');
      const codes = await fresh.page.locator('ol#recovery-codes li code').allInnerTexts();
      assert.equal(codes.length, 10, 'ten new recovery codes');
      assert.equal(codes.filter((c) => oldCodes.includes(c)).length, 0, 'none of them an old one');
      const [credB] = await b.credentials();
      assert.ok(credB, 'B holds the new passkey');
      assert.equal(credB.userHandle, credA.userHandle, "B's passkey is for the same account");
      const idB = b64url(credB.credentialId);

      // --- the old browser's session is over: its security page sends it to sign in
      assert.equal(await sessionState(old.page), 'out', "the old browser's session ended with the recovery");
      await old.page.goto(`${lk.issuer}/account/security`);
      assert.equal(path(old.page), '/login', `the old browser is sent to sign in: ${old.page.url()}`);

      // --- the owner is told on both channels
      const [noticeText] = await textsTo(ROSA.phone, beforeDone, 1, 'the "recovered" text');
      assert.match(noticeText.body, /recovered/, `the text says the account was recovered: ${noticeText.body}`);
      const [notice] = await mailTo(ROSA.email, SUBJECT.recovered);
      assert.match(notice.text, /Phone B/, 'the email names the new passkey');

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
      assert.equal(squash(await fresh.page.locator('#phone-state').innerText()), `${ROSA.phone} verified`, 'the number stays');
      const [usedB] = await b.credentials();
      assert.ok(usedB.signCount > credB.signCount, 'B signed the sign-in');

      // --- exactly these texts went to her number, all through a well-formed API call
      const toRosa = twilio.messages.filter((m) => m.to === ROSA.phone).map((m) => m.body);
      assert.equal(toRosa.length, 4, `the confirmation code, two recovery codes, the notice: ${toRosa.join(' | ')}`);
      assert.deepEqual(twilio.problems, []);
    });
  });

  test('an unknown name gets the same answer as a known one, and no text', async () => {
    const since = mark();
    await withBrowsers(1, async ({ page }) => {
      const unknown = await askForRecovery(page, 'nobody');
      const known = await askForRecovery(page, VERA.username);
      assert.match(known.sent, /texted a code to its verified phone number/);
      assert.equal(unknown.status, known.status, 'the status');
      assert.equal(unknown.sent, known.sent, '#recovery-sent');
      assert.equal(unknown.codeForm, 1, 'the code form shows for the unknown name too');
      assert.equal(unknown.body, known.body, 'the whole page');
    });
    // Vera's code arrives; the outbox sends once a second, so one more round after it would
    // have brought anything the request for "nobody" caused.
    const [text] = await textsTo(VERA.phone, since, 1, "Vera's recovery code");
    codeOf(text);
    await new Promise((r) => setTimeout(r, 2_500));
    const caused = twilio.requests.filter((r) => r.seq > since).map((r) => `${r.status} ${r.fields.To}`);
    assert.deepEqual(caused, [`201 ${VERA.phone}`], 'one text: the code to the known account');
    assert.deepEqual(twilio.problems, []);
  });
});

// OpenID Connect Session Management 1.0 in Chromium: a relying party page on 127.0.0.1 embeds
// Latchkey's check_session_iframe (localhost, another site), posts `client_id session_state`
// and gets "unchanged"; after a logout in another tab of the same browser, "changed".
//
// This works only where the browser lets a third-party frame read its own cookies (the
// browser-state cookie is SameSite=None). The Chromium here blocks third-party cookies by
// default, so the test's profile allows them (the user's "Allow third-party cookies"
// setting): in a browser that blocks them, session checking is best-effort.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as client from 'openid-client';

import { codeFlow, discoverClient, seedAda, startLatchkey, startLoopbackRp, withBrowser } from '../lib/latchkey.mjs';

const BROWSER_STATE_COOKIE = 'latchkey-browser-state';
/** How long the RP page waits for the check-session iframe to load or answer. */
const ANSWER_BOUND_MS = 5_000;

let lk;
let app;
let md;

before(async () => {
  app = await startLoopbackRp();
  lk = await startLatchkey({
    seed(cli) {
      seedAda(cli);
      cli.createLoopbackClient({ id: 'spa-app', firstParty: true });
    },
  });
  md = await (await fetch(`${lk.issuer}/.well-known/openid-configuration`)).json();
});

after(async () => {
  await lk?.stop();
  await app?.close();
});

/**
 * In `page` (a page of the app), adds an iframe of the check_session_iframe URL and waits
 * for it to load; `page.checkSession(message)` then posts `message` to it (target origin:
 * the issuer's) and resolves with { data, origin } of the answer, or null after the bound.
 */
async function embedCheckSession(page, checkUrl) {
  await page.evaluate(
    ({ checkUrl, bound }) =>
      new Promise((ok, fail) => {
        const frame = document.createElement('iframe');
        frame.id = 'op';
        frame.src = checkUrl;
        frame.style.display = 'none';
        const timer = setTimeout(() => fail(new Error(`the check-session iframe did not load within ${bound} ms`)), bound);
        frame.addEventListener('load', () => {
          clearTimeout(timer);
          ok();
        });
        document.body.append(frame);
      }),
    { checkUrl, bound: ANSWER_BOUND_MS },
  );
}

function checkSession(page, message) {
  return page.evaluate(
    ({ message, target, bound }) =>
      new Promise((ok) => {
        const frame = document.getElementById('op');
        const timer = setTimeout(() => {
          window.removeEventListener('message', listener);
          ok(null);
        }, bound);
        const listener = (e) => {
          if (e.source !== frame.contentWindow) return;
          clearTimeout(timer);
          window.removeEventListener('message', listener);
          ok({ data: e.data, origin: e.origin });
        };
        window.addEventListener('message', listener);
        frame.contentWindow.postMessage(message, target);
      }),
    { message, target: new URL(lk.issuer).origin, bound: ANSWER_BOUND_MS },
  );
}

/**
 * Asks the iframe about `message`; asserts the answer comes from the issuer; returns it.
 * `consoleLog` (the browser's) explains a missing answer, e.g. a refused frame.
 */
async function answer(page, message, consoleLog) {
  const reply = await checkSession(page, message);
  assert.ok(reply, `no answer to "${message}" within ${ANSWER_BOUND_MS} ms; console: ${consoleLog.join(' | ') || '(empty)'}`);
  assert.equal(reply.origin, new URL(lk.issuer).origin, 'the answer comes from the issuer');
  return reply.data;
}

async function browserStateCookie(context) {
  return (await context.cookies(lk.issuer)).find((c) => c.name === BROWSER_STATE_COOKIE);
}

/** Splits `hash.salt` and recomputes the hash (OIDC Session Management 1.0 §3). */
function expectedSessionState(clientId, origin, browserState, salt) {
  return createHash('sha256').update(`${clientId} ${origin} ${browserState} ${salt}`).digest('hex');
}

describe('check_session_iframe (OIDC Session Management 1.0)', () => {
  test('frame policy: the registered client origin may frame the page, not everyone', async () => {
    assert.equal(md.check_session_iframe, `${lk.issuer}/session/check`);
    const res = await fetch(md.check_session_iframe);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html\b/);
    const csp = res.headers.get('content-security-policy') ?? '';
    const ancestors = /(?:^|;)\s*frame-ancestors\s+([^;]*)/.exec(csp)?.[1]?.trim().split(/\s+/);
    assert.ok(ancestors, `a frame-ancestors directive: ${csp}`);
    assert.ok(!ancestors.includes('*') && !ancestors.includes("'none'"), `frame-ancestors ${ancestors.join(' ')}`);
    // The client registered http://127.0.0.1/callback (loopback, any port): the app's origin
    // must match, as its exact origin or with a port wildcard.
    assert.ok(
      ancestors.includes(app.origin) || ancestors.includes('http://127.0.0.1:*'),
      `frame-ancestors ${ancestors.join(' ')} allows ${app.origin}`,
    );
    assert.notEqual(res.headers.get('x-frame-options')?.toUpperCase(), 'DENY', 'no X-Frame-Options: DENY');
  });

  test('"unchanged" for the current session, "changed" after a logout in another tab and a new sign-in', async () => {
    const config = await discoverClient(lk.issuer, 'spa-app', client.None());
    await withBrowser(async ({ page, context, console: consoleLog }) => {
      const flow = await codeFlow(page, lk.issuer, config, { app });
      assert.equal(flow.sawLogin, true);
      const sessionState = flow.callback.searchParams.get('session_state');
      assert.ok(sessionState, `the authorization response carries session_state: ${flow.callback}`);
      const dot = sessionState.indexOf('.');
      const [hash, salt] = [sessionState.slice(0, dot), sessionState.slice(dot + 1)];
      assert.ok(dot > 0 && salt.length > 0, `session_state is hash.salt: ${sessionState}`);

      // The browser-state cookie: script-readable, sent cross-site (the iframe is third-party).
      const cookie = await browserStateCookie(context);
      assert.ok(cookie, `a ${BROWSER_STATE_COOKIE} cookie for ${lk.issuer}`);
      assert.equal(cookie.httpOnly, false, 'script-readable');
      assert.equal(cookie.sameSite, 'None');
      assert.equal(cookie.secure, true, 'SameSite=None requires Secure');
      assert.equal(
        hash,
        expectedSessionState('spa-app', app.origin, cookie.value, salt),
        'session_state = hex(SHA-256(client_id origin browser_state salt)).salt',
      );

      // The app's page (127.0.0.1) embeds the check-session iframe (localhost).
      await page.goto(`${app.origin}/app`);
      await embedCheckSession(page, md.check_session_iframe);
      assert.equal(await answer(page, `spa-app ${sessionState}`, consoleLog), 'unchanged');
      assert.equal(await answer(page, `spa-app ${hash}.another-salt`, consoleLog), 'changed', 'another salt: another state');
      assert.equal(await answer(page, 'no-space-here', consoleLog), 'error', 'a malformed message');

      // Another tab of the same browser signs out at the issuer (asked to confirm: no hint).
      const tab = await context.newPage();
      await tab.goto(`${lk.issuer}/logout`);
      await tab.getByRole('heading', { name: 'Sign out?' }).waitFor();
      await tab.getByRole('button', { name: 'Sign out' }).click();
      await tab.waitForURL((u) => u.pathname === '/logout/confirm');
      await tab.getByRole('heading', { name: /signed out/i }).waitFor();
      assert.equal(await answer(page, `spa-app ${sessionState}`, consoleLog), 'changed', 'the iframe sees the logout');

      // A new sign-in (in the other tab): the old state stays changed, the new one holds.
      const again = await codeFlow(tab, lk.issuer, config, { app });
      assert.equal(again.sawLogin, true, 'signed out: the login page shows again');
      const newState = again.callback.searchParams.get('session_state');
      assert.notEqual(newState, sessionState);
      assert.equal(await answer(page, `spa-app ${sessionState}`, consoleLog), 'changed', 'a new session is a change');
      assert.equal(await answer(page, `spa-app ${newState}`, consoleLog), 'unchanged');
      assert.deepEqual(
        consoleLog.filter((m) => m.includes('Content Security Policy')),
        [],
        'no CSP violation on the app page',
      );
    }, { thirdPartyCookies: true });
  });

  test('an origin that is not registered cannot frame the check-session page', async () => {
    await withBrowser(async ({ page }) => {
      // The same app server reached as http://localhost:PORT: an origin no client registered.
      const unregistered = app.origin.replace('127.0.0.1', 'localhost');
      const refused = new Promise((ok) => {
        page.on('console', (m) => {
          if (m.text().includes('frame-ancestors')) ok(m.text());
        });
      });
      await page.goto(`${unregistered}/app`);
      await page.evaluate((src) => {
        const frame = document.createElement('iframe');
        frame.src = src;
        document.body.append(frame);
      }, md.check_session_iframe);
      let timer;
      const message = await Promise.race([
        refused,
        new Promise((ok) => {
          timer = setTimeout(() => ok(null), ANSWER_BOUND_MS);
        }),
      ]);
      clearTimeout(timer);
      assert.ok(message, `Chromium did not report a frame-ancestors refusal for ${unregistered}`);
      // Chromium: "Framing 'ISSUER/' violates the following Content Security Policy
      // directive: "frame-ancestors …". The request has been blocked."
      assert.ok(message.includes(`'${lk.issuer}/'`), `the refusal is about the check page: ${message}`);
      assert.match(message, /blocked|Refused/, message);
    });
  });
});

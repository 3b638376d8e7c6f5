// An upstream OpenID Provider for the federation tests: a real `oidc-provider` (the certified
// Node.js OpenID Provider, npm `oidc-provider`, pinned in package.json) on a free 127.0.0.1
// port, issuer `http://127.0.0.1:PORT`, plain http.
//
// - One confidential client (`client_secret_basic`, code flow, PKCE required, S256 only).
//   Its redirect URIs are set with `register()` after Latchkey has started (they name
//   Latchkey's port, which is only known then); discovery and the keys answer before that.
// - Accounts are a Map the test fills and changes at run time (`setAccount`,
//   `updateAccount`): `findAccount` reads it on every request, so a change shows in the next
//   ID token. The login name typed on the dev login page is the account id and the `sub`.
// - oidc-provider's development interactions: a login page (`login`, `password`, button
//   "Sign-in"; any password) then a consent page (button "Continue"). `signInUpstream()`
//   drives them in Chromium.
// - Claims by scope: `email` -> email, email_verified; `profile` -> name, preferred_username,
//   groups (and a `groups` scope). With `conformIdTokenClaims: false` (the default here) the
//   ID token carries them, not only UserInfo.
//
// Plain http on 127.0.0.1 needs nothing special: oidc-provider marks its cookies `Secure`
// only when the request came over TLS (`ctx.secure`), and `proxy` is only for a provider
// behind a TLS-terminating proxy. Its cookies are host-only and ports do not separate
// cookies, so two instances on 127.0.0.1 get their own cookie names (else the second would
// overwrite the first's `_session`).
//
// Every request is recorded in `requests` ({ seq, method, path, query, status, client?,
// grantType? }); responses with an OAuth error in `errors`; oidc-provider's `server_error`
// events (a bug on our side or a request it could not handle) in `problems`, which tests
// assert empty.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import { watchCsp } from './latchkey.mjs';

/**
 * Runs `fn` without oidc-provider's expected warnings: Node 20 (it runs there; it recommends
 * 22), the in-memory adapter and the development interactions (both on purpose here).
 */
async function quietly(fn) {
  const warn = console.warn;
  console.warn = (...args) => {
    if (/Unsupported runtime|quick start development-only/.test(String(args[0]))) return;
    warn(...args);
  };
  try {
    return await fn();
  } finally {
    console.warn = warn;
  }
}

const loadProvider = () => quietly(async () => (await import('oidc-provider')).default);

/** The dev interaction pages import a Google font; the browser must not wait for it. */
const FONT_IMPORT = /@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);/g;

/**
 * Starts the provider. `tag` names it (in cookie names and errors). Returns
 * { tag, port, issuer, origin, clientId, clientSecret, accounts, setAccount, updateAccount,
 *   register({ redirectUris }), requests, errors, problems, close() }.
 */
export async function startUpstream({
  tag = 'op',
  clientId = `latchkey-${tag}`,
  clientSecret = randomBytes(24).toString('base64url'),
  conformIdTokenClaims = false,
} = {}) {
  const Provider = await loadProvider();
  const accounts = new Map();
  const requests = [];
  const errors = [];
  const problems = [];
  let seq = 0;
  let provider = null;
  let handler = null;

  const server = createServer((req, res) => handler(req, res));
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `${tag}-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };

  const findAccount = async (_ctx, id) => {
    if (!accounts.has(id)) return undefined;
    return {
      accountId: id,
      // The claims as they are now (the test may have changed them since the last request).
      async claims() {
        const { sub = id, ...claims } = accounts.get(id);
        return { sub, ...claims };
      },
    };
  };

  /** A provider for the client with these redirect URIs (the same issuer, keys and accounts). */
  function build(redirectUris) {
    const config = {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          redirect_uris: redirectUris,
          response_types: ['code'],
          grant_types: ['authorization_code'],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'RS256',
        },
      ],
      jwks: { keys: [signingKey] },
      findAccount,
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name', 'preferred_username', 'groups'],
        groups: ['groups'],
      },
      scopes: ['openid', 'email', 'profile', 'groups'],
      conformIdTokenClaims,
      pkce: { required: () => true },
      features: { devInteractions: { enabled: true } },
      cookies: {
        keys: [randomBytes(32).toString('base64url')],
        names: { session: `_session_${tag}`, interaction: `_interaction_${tag}`, resume: `_interaction_resume_${tag}` },
      },
      ttl: {
        AccessToken: 600,
        AuthorizationCode: 600,
        IdToken: 600,
        Interaction: 600,
        Session: 3600,
        Grant: 3600,
      },
      clientBasedCORS: () => false,
      async renderError(ctx, out) {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Upstream error</title><h1>Upstream ${tag}: error</h1>${Object.entries(out)
          .map(([k, v]) => `<p><strong>${k}</strong>: <span class="${k}">${String(v).replace(/[<&>"]/g, (c) => `&#${c.charCodeAt(0)};`)}</span></p>`)
          .join('')}`;
      },
    };
    const warn = console.warn;
    console.warn = (...args) => {
      if (!/quick start development-only/.test(String(args[0]))) warn(...args);
    };
    try {
      provider = new Provider(issuer, config);
    } finally {
      console.warn = warn;
    }
    provider.on('server_error', (_ctx, err) => problems.push(`${tag}: server_error ${err.stack ?? err}`));
    provider.use(async (ctx, next) => {
      const record = { seq: ++seq, method: ctx.method, path: ctx.path, query: { ...ctx.query }, at: Date.now() };
      requests.push(record);
      await next();
      record.status = ctx.status;
      record.client = ctx.oidc?.client?.clientId;
      if (ctx.oidc?.body?.grant_type) record.grantType = ctx.oidc.body.grant_type;
      if (ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body) && ctx.body.error) {
        record.error = ctx.body.error;
        errors.push(`${tag}: ${ctx.method} ${ctx.path} -> ${ctx.status} ${ctx.body.error}: ${ctx.body.error_description ?? ''}`);
      }
      const location = ctx.response.get('location');
      if (location) {
        record.location = location;
        const err = URL.canParse(location) ? new URL(location).searchParams.get('error') : null;
        if (err) errors.push(`${tag}: ${ctx.method} ${ctx.path} -> redirect with error=${err}`);
      }
      if (typeof ctx.body === 'string' && ctx.type === 'text/html') ctx.body = ctx.body.replace(FONT_IMPORT, '');
    });
    handler = provider.callback();
  }
  // Discovery and keys answer from the start; the client's redirect URIs come with register().
  build([`${issuer}/no-redirect-uri-registered-yet`]);

  return {
    tag,
    port,
    issuer,
    origin: issuer,
    clientId,
    clientSecret,
    accounts,
    requests,
    errors,
    problems,
    /**
     * Sets the redirect URIs of the one client (Latchkey's callbacks, known once it runs):
     * a new provider instance with the same issuer, keys and accounts takes over (call it
     * before any sign-in: sessions and codes of the old one are gone).
     */
    register({ redirectUris }) {
      build(redirectUris);
    },
    /** Sets account `id`'s claims (email, email_verified, name, preferred_username, groups, …). */
    setAccount(id, claims) {
      accounts.set(id, { ...claims });
    },
    /** Changes some of account `id`'s claims (`undefined` removes one). */
    updateAccount(id, patch) {
      if (!accounts.has(id)) throw new Error(`${tag}: no account ${id}`);
      const next = { ...accounts.get(id), ...patch };
      for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
      accounts.set(id, next);
    },
    /** Token endpoint requests so far (what Latchkey redeemed here). */
    tokenRequests() {
      return requests.filter((r) => r.method === 'POST' && r.path === '/token');
    },
    /** Authorization requests so far (GET /auth, not the resumes). */
    authorizationRequests() {
      return requests.filter((r) => r.method === 'GET' && r.path === '/auth');
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * Runs `action` (a click, a `goto`) and waits until the main frame has committed the
 * document it leads to (after every redirect) and parsed it; fails at once if Chromium
 * blocks the navigation under the page's Content-Security-Policy.
 */
export async function navigateBy(page, action) {
  // A navigation Chromium blocks under a Content-Security-Policy (e.g. `form-action` on a
  // form whose POST redirects elsewhere) fails at once, with Chromium's console message.
  const csp = watchCsp(page);
  try {
    const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
    navigated.catch(() => {});
    await csp.guard(action());
    await csp.guard(navigated);
    await page.waitForLoadState('domcontentloaded');
  } finally {
    csp.dispose();
  }
}

/**
 * Drives oidc-provider's dev interactions in Chromium, from the page the browser shows now
 * (call it once the navigation to the upstream has committed, e.g. with `navigateBy`) until
 * it leaves the upstream: the login page (types `login` as the account id, any password,
 * "Sign-in") and the consent page ("Continue"), whichever show. Fails with the page text on
 * any other upstream page (an error). Returns { sawLogin, sawConsent, left (the URL it left
 * to) }.
 */
export async function signInUpstream(page, upstream, login) {
  let sawLogin = false;
  let sawConsent = false;
  for (let step = 0; step < 6; step++) {
    await page.waitForLoadState('domcontentloaded');
    const here = page.url();
    if (new URL(here).origin !== upstream.origin) return { sawLogin, sawConsent, left: here };
    if (await page.locator('input[name=login]').count()) {
      if (sawLogin) throw new Error(`${upstream.tag}: the login page showed twice: ${await page.locator('body').innerText()}`);
      sawLogin = true;
      await page.locator('input[name=login]').fill(login);
      await page.locator('input[name=password]').fill('any password');
      await navigateBy(page, () => page.getByRole('button', { name: 'Sign-in' }).click());
    } else if (await page.locator('input[name=prompt][value=consent]').count()) {
      if (sawConsent) throw new Error(`${upstream.tag}: the consent page showed twice`);
      sawConsent = true;
      await navigateBy(page, () => page.getByRole('button', { name: 'Continue' }).click());
    } else {
      throw new Error(`${upstream.tag}: unexpected upstream page ${here}: ${await page.locator('body').innerText()}`);
    }
  }
  throw new Error(`${upstream.tag}: still on the upstream after six steps: ${page.url()}`);
}

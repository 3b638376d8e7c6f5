// A stand-in for GitHub (an OAuth app's web flow and the two REST API calls a sign-in needs)
// for the federation tests: a node:http server on a free 127.0.0.1 port, laid out like
// GitHub Enterprise Server: web at `http://127.0.0.1:PORT`, REST API at
// `http://127.0.0.1:PORT/api/v3`.
//
// What it enforces, as GitHub documents it
// (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps,
// https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors,
// https://docs.github.com/en/rest/users/users, https://docs.github.com/en/rest/users/emails,
// https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api#user-agent):
//
// - `GET /login/oauth/authorize?client_id&redirect_uri&scope&state[&code_challenge&code_challenge_method]`:
//   an unknown client gets a 404 page; a `redirect_uri` whose host and port differ from the
//   app's callback URL, or whose path is not the callback's path or below it, is sent to the
//   registered callback with `error=redirect_uri_mismatch` (and `state`); PKCE only with
//   `S256`. Otherwise a small page "Authorize APP" for the user the test has signed in
//   (`signInAs`), with a button "Authorize" that redirects (302) to the redirect URI with
//   `code` and `state`. The code is bound to the user's numeric id, the scopes, the redirect
//   URI and the PKCE challenge; it works once, for ten minutes.
// - `POST /login/oauth/access_token` with `client_id`, `client_secret`, `code`, optional
//   `redirect_uri` and `code_verifier`, as form fields, JSON, query parameters or (client
//   id and secret) HTTP Basic. The answer is JSON only with `Accept: application/json`
//   (XML with `application/xml`), else `application/x-www-form-urlencoded`, like GitHub.
//   Errors are HTTP 200 with `error` (`bad_verification_code` for an unknown, used, expired
//   or PKCE-mismatched code, `incorrect_client_credentials`, `redirect_uri_mismatch`),
//   `error_description` and `error_uri`.
// - The API refuses a request without `User-Agent` (403, GitHub's text), wants
//   `Authorization: Bearer TOKEN` or `token TOKEN` (401 `Requires authentication` / `Bad
//   credentials`), and `GET /user/emails` needs the `user:email` (or `user`) scope on the
//   token (403). `GET /user` gives `id` (a number, stable), `login` (renamable), `name`,
//   `email` (the public address or null) and the rest of the usual fields; `GET
//   /user/emails` every address with `primary`, `verified` and `visibility`.
//
// Requests that break those rules are answered as GitHub would and described in `problems`,
// which tests assert empty. Refusals that a correct client can meet (a code used twice, a
// wrong secret on purpose) are answered as GitHub would and listed in `errors`, not in
// `problems`. Users can be renamed (`renameUser`) and an old login registered again by
// someone else under a new numeric id (`addUser`).

import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const CODE_TTL_MS = 10 * 60 * 1000;
const DOCS = 'https://docs.github.com';
/** GitHub's OAuth scopes (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps). */
const KNOWN_SCOPES = new Set([
  'repo', 'repo:status', 'repo_deployment', 'public_repo', 'repo:invite', 'security_events',
  'admin:repo_hook', 'write:repo_hook', 'read:repo_hook', 'admin:org', 'write:org', 'read:org',
  'admin:public_key', 'write:public_key', 'read:public_key', 'admin:org_hook', 'gist',
  'notifications', 'user', 'read:user', 'user:email', 'user:follow', 'project', 'read:project',
  'delete_repo', 'write:packages', 'read:packages', 'delete:packages', 'admin:gpg_key',
  'write:gpg_key', 'read:gpg_key', 'codespace', 'workflow',
]);
const TOKEN_ERRORS = {
  bad_verification_code: ['The code passed is incorrect or expired.', '#bad-verification-code'],
  incorrect_client_credentials: ['The client_id and/or client_secret passed are incorrect.', '#incorrect-client-credentials'],
  redirect_uri_mismatch: ['The redirect_uri MUST match the registered callback URL for this application.', '#redirect-uri-mismatch2'],
};
const NO_USER_AGENT =
  'Request forbidden by administrative rules. Please make sure your request has a User-Agent header ' +
  '(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). ' +
  'Check https://developer.github.com for other possible causes.\n';

const esc = (s) => String(s).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const hex = (n) => randomBytes(n).toString('hex');

/**
 * Starts the stand-in. Returns { port, baseUrl, apiUrl, registerApp, addUser, renameUser,
 * setEmails, user, signInAs, requests, tokenRequests(), errors, problems, close() }.
 *
 * - `requests`: every request, oldest first: { seq, method, path, query, headers, body,
 *   status, problem?, error? }.
 * - `problems`: each request that was not what GitHub takes (a description).
 * - `errors`: the OAuth errors the token endpoint answered (a description).
 */
export async function startGitHub() {
  /** client_id -> { clientId, clientSecret, callbackUrl, name } */
  const apps = new Map();
  /** id -> { id, login, name, emails, publicEmail, createdAt } */
  const users = new Map();
  /** code -> { clientId, userId, scopes, redirectUri, challenge, expires, used } */
  const codes = new Map();
  /** pending authorization (the page's form) -> its parameters */
  const pending = new Map();
  /** access token -> { userId, scopes, clientId } */
  const tokens = new Map();
  const requests = [];
  const problems = [];
  const errors = [];
  let seq = 0;
  let nextId = 583231;
  let signedIn = null;

  const byLogin = (login) => [...users.values()].find((u) => u.login.toLowerCase() === String(login).toLowerCase());

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://stand-in');
      const record = {
        seq: ++seq,
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
        at: Date.now(),
      };
      requests.push(record);
      const wrong = (what) => {
        record.problem = record.problem ? `${record.problem}; ${what}` : what;
      };
      const send = (status, headers, text) => {
        record.status = status;
        res.writeHead(status, headers);
        res.end(text);
      };
      try {
        route(req, url, body, record, wrong, send);
      } catch (e) {
        wrong(`the stand-in failed: ${e.stack}`);
        if (!res.headersSent) send(500, { 'content-type': 'text/plain' }, 'stand-in error');
      } finally {
        if (record.problem) problems.push(`request #${record.seq} ${req.method} ${req.url}: ${record.problem}`);
      }
    });
  });

  function route(req, url, body, record, wrong, send) {
    const path = url.pathname;
    if (path === '/login/oauth/authorize') return authorize(req, url, body, record, wrong, send);
    if (path === '/login/oauth/access_token') return accessToken(req, url, body, record, wrong, send);
    if (path === '/api/v3' || path.startsWith('/api/v3/')) return api(req, url, record, wrong, send);
    if (path === '/favicon.ico') return send(404, { 'content-type': 'text/plain' }, 'Not Found');
    wrong(`no such GitHub page ${path}`);
    return send(404, { 'content-type': 'text/html' }, '<!doctype html><title>Page not found · GitHub</title><h1>404</h1>');
  }

  // ---- the web flow -----------------------------------------------------------------

  function authorize(req, url, body, record, wrong, send) {
    const html = (status, title, inner) =>
      send(status, { 'content-type': 'text/html; charset=utf-8' }, `<!doctype html><title>${esc(title)}</title><body>${inner}</body>`);
    if (req.method === 'POST') return authorizeDecision(body, record, wrong, send, html);
    if (req.method !== 'GET') {
      wrong(`method ${req.method} on the authorize page`);
      return send(404, { 'content-type': 'text/plain' }, 'Not Found');
    }
    const q = url.searchParams;
    for (const [name, count] of countNames(q)) if (count > 1) wrong(`${name} given ${count} times`);
    const app = apps.get(q.get('client_id'));
    if (!app) {
      wrong(`an unknown client_id ${JSON.stringify(q.get('client_id'))}`);
      return html(404, 'Page not found · GitHub', '<h1>404</h1><p>This is not the web page you are looking for.</p>');
    }
    const state = q.get('state');
    if (!state) wrong('no state (the client cannot tie the answer to its request)');
    const redirectUri = q.get('redirect_uri');
    if (redirectUri !== null && !redirectMatches(redirectUri, app.callbackUrl)) {
      wrong(`redirect_uri ${redirectUri} does not match the callback URL ${app.callbackUrl}`);
      const back = new URL(app.callbackUrl);
      back.searchParams.set('error', 'redirect_uri_mismatch');
      back.searchParams.set('error_description', 'The redirect_uri MUST match the registered callback URL for this application.');
      back.searchParams.set('error_uri', `${DOCS}/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch`);
      if (state) back.searchParams.set('state', state);
      return send(302, { location: back.href }, '');
    }
    const challenge = q.get('code_challenge');
    const method = q.get('code_challenge_method');
    if (challenge !== null && method !== 'S256') wrong(`code_challenge_method ${JSON.stringify(method)}: GitHub takes only S256`);
    if (challenge === null && method !== null) wrong('code_challenge_method without code_challenge');
    if (challenge !== null && !/^[A-Za-z0-9_-]{43}$/.test(challenge)) wrong(`code_challenge ${JSON.stringify(challenge)} is not a base64url SHA-256`);
    const scopes = parseScopes(q.get('scope') ?? '', wrong);
    const user = signedIn === null ? null : users.get(signedIn);
    if (!user) {
      return html(200, 'Sign in to GitHub', '<h1>Sign in to GitHub</h1><p id="signed-out">No GitHub user is signed in (the test calls signInAs).</p>');
    }
    const id = hex(16);
    pending.set(id, { clientId: app.clientId, state, redirectUri: redirectUri ?? app.callbackUrl, givenRedirectUri: redirectUri, scopes, challenge, userId: user.id });
    record.authorization = { clientId: app.clientId, state, redirectUri, scopes, challenge, method };
    return html(
      200,
      `Authorize ${app.name}`,
      `<h1>Authorize ${esc(app.name)}</h1>
<p id="signed-in-as">Signed in as <strong>${esc(user.login)}</strong></p>
<p id="scopes">${esc(app.name)} would like: ${scopes.map(esc).join(', ') || 'public information only'}</p>
<form method="post" action="/login/oauth/authorize"><input type="hidden" name="authorization" value="${id}">
<button type="submit" name="authorize" value="1" id="authorize">Authorize</button></form>`,
    );
  }

  function authorizeDecision(body, record, wrong, send, html) {
    const form = new URLSearchParams(body);
    const p = pending.get(form.get('authorization') ?? '');
    if (!p) {
      wrong('a decision for no pending authorization');
      return html(400, 'Error', '<p>This authorization request is not valid.</p>');
    }
    pending.delete(form.get('authorization'));
    const code = hex(10);
    codes.set(code, {
      clientId: p.clientId,
      userId: p.userId,
      scopes: p.scopes,
      redirectUri: p.redirectUri,
      givenRedirectUri: p.givenRedirectUri,
      challenge: p.challenge,
      expires: Date.now() + CODE_TTL_MS,
      used: false,
    });
    const back = new URL(p.redirectUri);
    back.searchParams.set('code', code);
    if (p.state !== null) back.searchParams.set('state', p.state);
    record.issued = { code, userId: p.userId };
    return send(302, { location: back.href }, '');
  }

  function accessToken(req, url, body, record, wrong, send) {
    if (req.method !== 'POST') {
      wrong(`method ${req.method}, not POST`);
      return send(404, { 'content-type': 'application/json' }, JSON.stringify({ error: 'Not Found' }));
    }
    // Parameters may come in the query, as a form or as JSON; client id and secret also as
    // HTTP Basic.
    const params = new Map(url.searchParams);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (body) {
      if (type === 'application/x-www-form-urlencoded') {
        const form = new URLSearchParams(body);
        for (const [name, count] of countNames(form)) if (count > 1) wrong(`${name} given ${count} times`);
        for (const [k, v] of form) params.set(k, v);
      } else if (type === 'application/json') {
        try {
          for (const [k, v] of Object.entries(JSON.parse(body))) params.set(k, String(v));
        } catch {
          wrong(`a body that is not JSON: ${JSON.stringify(body.slice(0, 200))}`);
        }
      } else {
        wrong(`a body of type ${JSON.stringify(type)}`);
      }
    }
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(auth);
      if (!m) {
        wrong(`Authorization ${auth.split(' ')[0]} on the token endpoint (client credentials go as parameters or Basic)`);
      } else {
        const decoded = Buffer.from(m[1], 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        const id = decodeURIComponent(decoded.slice(0, i));
        const secret = decodeURIComponent(decoded.slice(i + 1));
        if (params.has('client_id') && params.get('client_id') !== id) wrong('client_id differs between Basic and the parameters');
        if (params.has('client_secret')) wrong('client_secret both in Basic and in the parameters');
        params.set('client_id', id);
        params.set('client_secret', secret);
      }
    }
    if (url.searchParams.has('client_secret')) wrong('client_secret in the URL');
    const accept = (req.headers.accept ?? '').toLowerCase();
    const reply = (fields) => {
      if (accept.includes('application/json')) {
        return send(200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(fields));
      }
      if (accept.includes('application/xml')) {
        const xml = Object.entries(fields).map(([k, v]) => `<${k}>${esc(v)}</${k}>`).join('');
        return send(200, { 'content-type': 'application/xml; charset=utf-8' }, `<OAuth>${xml}</OAuth>`);
      }
      return send(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, new URLSearchParams(fields).toString());
    };
    const fail = (error) => {
      const [description, anchor] = TOKEN_ERRORS[error];
      record.error = error;
      errors.push(`request #${record.seq}: ${error}`);
      return reply({
        error,
        error_description: description,
        error_uri: `${DOCS}/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/${anchor}`,
      });
    };
    for (const name of ['client_id', 'client_secret', 'code']) if (!params.get(name)) wrong(`no ${name}`);
    const app = apps.get(params.get('client_id'));
    if (!app) {
      if (params.get('client_id')) wrong(`an unknown client_id ${JSON.stringify(params.get('client_id'))}`);
      return send(404, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify({ error: 'Not Found' }));
    }
    if (params.get('client_secret') !== app.clientSecret) return fail('incorrect_client_credentials');
    const grant = codes.get(params.get('code') ?? '');
    if (!grant || grant.clientId !== app.clientId || grant.used || grant.expires < Date.now()) {
      if (grant && grant.clientId === app.clientId) grant.used = true;
      return fail('bad_verification_code');
    }
    const redirectUri = params.get('redirect_uri');
    if (redirectUri !== undefined && redirectUri !== null && redirectUri !== grant.redirectUri) return fail('redirect_uri_mismatch');
    if (grant.challenge !== null) {
      const verifier = params.get('code_verifier');
      if (!verifier) {
        wrong('no code_verifier for a code that was asked for with a code_challenge');
        return fail('bad_verification_code');
      }
      if (b64url(createHash('sha256').update(verifier).digest()) !== grant.challenge) return fail('bad_verification_code');
    } else if (params.has('code_verifier')) {
      wrong('a code_verifier for a code asked for without code_challenge');
    }
    grant.used = true;
    const token = `gho_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;
    tokens.set(token, { userId: grant.userId, scopes: grant.scopes, clientId: app.clientId });
    record.token = { userId: grant.userId, scopes: grant.scopes };
    return reply({ access_token: token, token_type: 'bearer', scope: grant.scopes.join(',') });
  }

  // ---- the REST API -------------------------------------------------------------------

  function api(req, url, record, wrong, send) {
    const json = (status, value, extra = {}) =>
      send(status, { 'content-type': 'application/json; charset=utf-8', 'x-github-media-type': 'github.v3; format=json', ...extra }, JSON.stringify(value));
    const message = (status, text, doc = '/rest') => json(status, { message: text, documentation_url: `${DOCS}${doc}`, status: String(status) });
    if (!req.headers['user-agent']) {
      wrong('no User-Agent on an API request');
      return send(403, { 'content-type': 'text/plain; charset=utf-8' }, NO_USER_AGENT);
    }
    if (url.searchParams.has('access_token')) wrong('the token in the query string (GitHub removed that; use the Authorization header)');
    const path = url.pathname.slice('/api/v3'.length) || '/';
    const auth = req.headers.authorization;
    if (!auth) {
      wrong(`no Authorization on ${path}`);
      return message(401, 'Requires authentication', '/rest/users/users#get-the-authenticated-user');
    }
    const m = /^(Bearer|token) (\S+)$/i.exec(auth);
    const grant = m ? tokens.get(m[2]) : undefined;
    if (!grant) {
      wrong(m ? 'an access token GitHub never issued' : `Authorization ${JSON.stringify(auth.split(' ')[0])} (not Bearer or token)`);
      return message(401, 'Bad credentials');
    }
    const scopeHeaders = { 'x-oauth-scopes': grant.scopes.join(', '), 'x-oauth-client-id': grant.clientId };
    if (req.method !== 'GET') {
      wrong(`method ${req.method} on ${path}`);
      return message(404, 'Not Found');
    }
    const user = users.get(grant.userId);
    if (!user) return message(401, 'Bad credentials');
    if (path === '/user') {
      record.api = 'user';
      return json(200, publicProfile(user), { ...scopeHeaders, 'x-accepted-oauth-scopes': '' });
    }
    if (path === '/user/emails') {
      record.api = 'emails';
      const headers = { ...scopeHeaders, 'x-accepted-oauth-scopes': 'user, user:email' };
      if (!grant.scopes.includes('user:email') && !grant.scopes.includes('user')) {
        wrong(`GET /user/emails with a token that has no user:email scope (scopes: ${grant.scopes.join(', ') || 'none'})`);
        return json(403, { message: 'Resource not accessible by integration', documentation_url: `${DOCS}/rest/users/emails#list-email-addresses-for-the-authenticated-user`, status: '403' }, headers);
      }
      return json(
        200,
        user.emails.map((e) => ({ email: e.email, primary: !!e.primary, verified: !!e.verified, visibility: e.primary ? 'public' : null })),
        headers,
      );
    }
    wrong(`an API path the stand-in does not serve: ${path}`);
    return message(404, 'Not Found');
  }

  function publicProfile(user) {
    const base = `http://127.0.0.1:${port}`;
    return {
      login: user.login,
      id: user.id,
      node_id: Buffer.from(`04:User${user.id}`).toString('base64'),
      avatar_url: `${base}/avatars/u/${user.id}`,
      gravatar_id: '',
      url: `${base}/api/v3/users/${user.login}`,
      html_url: `${base}/${user.login}`,
      type: 'User',
      site_admin: false,
      name: user.name ?? null,
      company: null,
      blog: '',
      location: null,
      email: user.publicEmail ?? null,
      hireable: null,
      bio: null,
      public_repos: 0,
      followers: 0,
      following: 0,
      created_at: user.createdAt,
      updated_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
  }

  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  const baseUrl = `http://127.0.0.1:${port}`;

  return {
    port,
    baseUrl,
    origin: baseUrl,
    apiUrl: `${baseUrl}/api/v3`,
    requests,
    problems,
    errors,
    /** Registers an OAuth app (its callback URL is Latchkey's callback for the provider). */
    registerApp({ clientId = `Iv1.${hex(8)}`, clientSecret = hex(20), callbackUrl, name = 'Latchkey' }) {
      apps.set(clientId, { clientId, clientSecret, callbackUrl, name });
      return { clientId, clientSecret, callbackUrl, name };
    },
    /**
     * Adds a user: `login` must be free (case-insensitively), `id` (a number) defaults to a
     * new one; `emails` are { email, primary?, verified? } (exactly one primary);
     * `publicEmail` is what `/user` shows as `email` (null by default, as for most users).
     * Returns the user.
     */
    addUser({ login, id = nextId++, name = null, emails = [], publicEmail = null }) {
      if (byLogin(login)) throw new Error(`GitHub login ${login} is taken`);
      if (users.has(id)) throw new Error(`GitHub user id ${id} exists`);
      if (emails.length && emails.filter((e) => e.primary).length !== 1) throw new Error('exactly one primary email');
      const user = { id, login, name, emails: emails.map((e) => ({ ...e })), publicEmail, createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
      users.set(id, user);
      return user;
    },
    /** Renames a user (their id stays); the old login is free for anyone afterwards. */
    renameUser(login, newLogin) {
      const user = byLogin(login);
      if (!user) throw new Error(`no GitHub user ${login}`);
      if (byLogin(newLogin)) throw new Error(`GitHub login ${newLogin} is taken`);
      user.login = newLogin;
      return user;
    },
    /** Replaces a user's email addresses. */
    setEmails(login, emails) {
      const user = byLogin(login);
      if (!user) throw new Error(`no GitHub user ${login}`);
      user.emails = emails.map((e) => ({ ...e }));
    },
    /** The user with this login now (or undefined). */
    user: byLogin,
    /** The user the authorize page acts for (by login, resolved to the numeric id now); null: nobody. */
    signInAs(login) {
      if (login === null) {
        signedIn = null;
        return null;
      }
      const user = byLogin(login);
      if (!user) throw new Error(`no GitHub user ${login}`);
      signedIn = user.id;
      return user;
    },
    /** Token endpoint requests so far. */
    tokenRequests() {
      return requests.filter((r) => r.path === '/login/oauth/access_token');
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Clicks "Authorize" on the stand-in's page (the browser must show it). */
export async function authorizeOnGitHub(page, github) {
  const url = new URL(page.url());
  if (url.origin !== github.origin || url.pathname !== '/login/oauth/authorize') {
    throw new Error(`not on GitHub's authorize page: ${page.url()}: ${await page.locator('body').innerText().catch(() => '')}`);
  }
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
  await page.getByRole('button', { name: 'Authorize', exact: true }).click();
  await navigated;
  await page.waitForLoadState('domcontentloaded');
}

/** GitHub's redirect URL rule: same host and port as the callback URL, path at or below its path. */
function redirectMatches(given, callback) {
  let g;
  let c;
  try {
    g = new URL(given);
    c = new URL(callback);
  } catch {
    return false;
  }
  if (g.protocol !== c.protocol || g.host !== c.host) return false;
  const base = c.pathname.endsWith('/') ? c.pathname : `${c.pathname}/`;
  return g.pathname === c.pathname || g.pathname.startsWith(base);
}

/** GitHub takes scopes separated by spaces (or commas); unknown ones are a problem. */
function parseScopes(raw, wrong) {
  const scopes = [...new Set(raw.split(/[\s,]+/).filter(Boolean))];
  for (const s of scopes) if (!KNOWN_SCOPES.has(s)) wrong(`scope ${JSON.stringify(s)} is not a GitHub scope`);
  return scopes.filter((s) => KNOWN_SCOPES.has(s));
}

function countNames(params) {
  const counts = new Map();
  for (const k of params.keys()) counts.set(k, (counts.get(k) ?? 0) + 1);
  return counts;
}

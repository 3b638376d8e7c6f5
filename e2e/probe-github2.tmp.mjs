import { startGitHub } from './lib/github.mjs';
const gh = await startGitHub();
const app = gh.registerApp({ callbackUrl: 'http://localhost:9/federation/gh/callback' });
gh.addUser({ login: 'a', emails: [{ email: 'a@x', primary: true, verified: true }] });
gh.signInAs('a');
async function code(scope) {
  const r = await fetch(`${gh.baseUrl}/login/oauth/authorize?` + new URLSearchParams({ client_id: app.clientId, scope, state: 's' }));
  const html = await r.text(); const id = /name="authorization" value="([0-9a-f]+)"/.exec(html)[1];
  const r2 = await fetch(`${gh.baseUrl}/login/oauth/authorize`, { method: 'POST', body: new URLSearchParams({ authorization: id }), redirect: 'manual' });
  return new URL(r2.headers.get('location')).searchParams.get('code');
}
const c1 = await code('read:user');
const basic = 'Basic ' + Buffer.from(`${app.clientId}:${app.clientSecret}`).toString('base64');
let r = await fetch(`${gh.baseUrl}/login/oauth/access_token`, { method: 'POST', headers: { authorization: basic, accept: 'application/json', 'content-type': 'application/json' }, body: JSON.stringify({ code: c1, redirect_uri: 'http://localhost:9/federation/gh/callback' }) });
const t = await r.json(); console.log(t);
r = await fetch(`${gh.apiUrl}/user/emails`, { headers: { authorization: `Bearer ${t.access_token}`, 'user-agent': 'x' } }); console.log(r.status, await r.text());
r = await fetch(`${gh.apiUrl}/user`, { headers: { authorization: `Bearer nope`, 'user-agent': 'x' } }); console.log(r.status, await r.text());
const c2 = await code('read:user,user:email openid');
r = await fetch(`${gh.baseUrl}/login/oauth/access_token`, { method: 'POST', headers: { accept: 'application/xml' }, body: new URLSearchParams({ client_id: app.clientId, client_secret: app.clientSecret, code: c2, redirect_uri: 'http://localhost:9/other' }) });
console.log(await r.text());
console.log(gh.problems, gh.errors);
await gh.close();

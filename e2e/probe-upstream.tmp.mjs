import * as oidc from 'openid-client';
import { openBrowser, startLoopbackRp, decodeJwt } from './lib/latchkey.mjs';
import { startUpstream, signInUpstream, navigateBy } from './lib/upstream.mjs';
const t0 = Date.now();
const up = await startUpstream({ tag: 'a' });
const rp = await startLoopbackRp();
up.register({ redirectUris: [`${rp.origin}/callback`] });
up.setAccount('grace', { email: 'grace@corp.example', email_verified: true, name: 'Grace Hopper', preferred_username: 'grace', groups: ['eng'] });
const config = await oidc.discovery(new URL(up.issuer), up.clientId, {}, oidc.ClientSecretBasic(up.clientSecret), { execute: [oidc.allowInsecureRequests] });
console.log('discovered', config.serverMetadata().issuer, config.serverMetadata().code_challenge_methods_supported);
const b = await openBrowser();
async function flow(login) {
  const verifier = oidc.randomPKCECodeVerifier(); const state = oidc.randomState(); const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: `${rp.origin}/callback`, scope: 'openid email profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
  const arrived = rp.waitFor((h) => h.path === '/callback' && new URL(h.url).searchParams.get('state') === state);
  await navigateBy(b.page, () => b.page.goto(url.href));
  const r = await signInUpstream(b.page, up, login);
  const hit = await arrived;
  console.log('drove', r, 'callback', hit.url);
  const tokens = await oidc.authorizationCodeGrant(config, new URL(hit.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  console.log('id token', decodeJwt(tokens.id_token).payload);
}
await flow('grace');
up.updateAccount('grace', { email: 'other@corp.example' });
await flow('grace');
// without PKCE: refused?
const url2 = oidc.buildAuthorizationUrl(config, { redirect_uri: `${rp.origin}/callback`, scope: 'openid', state: 'x' });
await b.page.goto(url2.href); console.log('no pkce ->', b.page.url());
console.log('errors', up.errors, 'problems', up.problems);
console.log('requests', up.requests.map(r => `${r.method} ${r.path} ${r.status} ${r.client ?? ''} ${r.grantType ?? ''}`).join('\n'));
await b.close(); await rp.close(); await up.close();
console.log('ms', Date.now() - t0);

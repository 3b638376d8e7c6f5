import * as oidc from 'openid-client';
import { openBrowser, startLoopbackRp } from './lib/latchkey.mjs';
import { startUpstream, signInUpstream, navigateBy } from './lib/upstream.mjs';
async function holdNavigations(page, urlPattern) {
  const held = []; let waiters = [];
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Fetch.requestPaused', async (e) => {
    held.push(e.request.url); for (const w of waiters) w(e.request.url); waiters = [];
    await cdp.send('Fetch.fulfillRequest', { requestId: e.requestId, responseCode: 200, responseHeaders: [{ name: 'content-type', value: 'text/html' }], body: Buffer.from('<!doctype html><title>Held</title><h1>Held</h1>').toString('base64') }).catch(() => {});
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern, requestStage: 'Request' }] });
  return { held, next: () => new Promise((r) => waiters.push(r)), release: () => cdp.send('Fetch.disable').then(() => cdp.detach()) };
}
const up = await startUpstream({ tag: 'a' });
const rp = await startLoopbackRp();
up.register({ redirectUris: [`${rp.origin}/callback`] });
up.setAccount('grace', { email: 'g@x' });
const config = await oidc.discovery(new URL(up.issuer), up.clientId, {}, oidc.ClientSecretBasic(up.clientSecret), { execute: [oidc.allowInsecureRequests] });
const b = await openBrowser();
const url = oidc.buildAuthorizationUrl(config, { redirect_uri: `${rp.origin}/callback`, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge('x'.repeat(43)), code_challenge_method: 'S256', state: 's' });
const hold = await holdNavigations(b.page, `${rp.origin}/callback*`);
const got = hold.next();
await navigateBy(b.page, () => b.page.goto(url.href));
console.log(await signInUpstream(b.page, up, 'grace'));
console.log('held', await got, 'rp hits', rp.hits.length, 'page', b.page.url(), await b.page.title());
await hold.release();
await b.page.goto(await got); console.log('after release rp hits', rp.hits.length);
await b.close(); await rp.close(); await up.close();

// A real OpenID provider for the OAuth source tests: npm's `oidc-provider` (installed by
// `./dev deps` outside the repository), configured from the JSON in argv[2]: its port, one
// confidential client, one user with a password, and a fresh RS256 signing key with the given
// `kid` (a restart with another kid is a key rotation). The login page is a plain form (login,
// password); consent is granted at once. Prints "ready" when it listens.
import http from 'node:http';
import crypto from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.argv[2]);
const { default: Provider } = await import(
  pathToFileURL(path.join(cfg.npm_dir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: cfg.kid, alg: 'RS256', use: 'sig' };
const user = cfg.user;

const provider = new Provider(`http://127.0.0.1:${cfg.port}`, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['flowgate-test-cookie-key'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (id !== user.sub) return undefined;
    return { accountId: id, async claims() { return { ...user }; } };
  },
});

const body = (req) => new Promise((resolve) => {
  let data = '';
  req.on('data', (c) => { data += c; });
  req.on('end', () => resolve(new URLSearchParams(data)));
});

const page = (uid, error) => `<!doctype html><title>Test IdP</title><h1>Test IdP login</h1>
${error ? `<p class="error">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}">
<input name="login" id="login"><input name="password" id="password" type="password">
<button type="submit" id="submit">Sign in</button></form>`;

const server = http.createServer(async (req, res) => {
  try {
    const m = req.url.match(/^\/interaction\/([^/?]+)/);
    if (!m) return provider.callback()(req, res);
    const details = await provider.interactionDetails(req, res);
    const { prompt, params } = details;
    if (prompt.name === 'login') {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(page(details.uid));
      }
      const form = await body(req);
      if (form.get('login') !== user.preferred_username || form.get('password') !== cfg.password) {
        res.writeHead(400, { 'content-type': 'text/html' });
        return res.end(page(details.uid, 'Wrong login or password.'));
      }
      return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(e));
  }
});
server.listen(cfg.port, '127.0.0.1', () => console.log('ready'));

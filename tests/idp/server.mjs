// A local OpenID Connect provider for Ogem's SSO browser test and its IdP token tests
// (oidc-provider, Node 20).
// Environment: IDP_PORT, IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_REDIRECT_URIS (comma-separated),
// IDP_USER, IDP_EMAIL.
// It signs in the one test user through oidc-provider's development login form and grants
// consent automatically (a first-party client), then prints "ready" on stdout.
// IDP_TOKEN_CLAIMS (a JSON object) adds claims to the user, released under the scope "ogem", and
// enables token revocation. With
// IDP_SERVICE_CLIENT_ID, IDP_SERVICE_CLIENT_SECRET and IDP_RESOURCE it also has a service client
// that gets JWT access tokens for that resource (client credentials, RFC 8707 and 9068) carrying
// those claims besides the registered ones.
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.IDP_PORT || 4000);
const issuer = `http://127.0.0.1:${port}`;
const user = process.env.IDP_USER || 'alice';
const email = process.env.IDP_EMAIL || 'alice@example.com';

const tokenClaims = JSON.parse(process.env.IDP_TOKEN_CLAIMS || '{}');
const accounts = {
  [user]: {
    sub: user,
    email,
    email_verified: true,
    name: 'Alice Example',
    given_name: 'Alice',
    family_name: 'Example',
    preferred_username: user,
    ...tokenClaims,
  },
};
const ogemClaims = Object.keys(tokenClaims);

const configuration = {
  clients: [
    {
      client_id: process.env.IDP_CLIENT_ID,
      client_secret: process.env.IDP_CLIENT_SECRET,
      redirect_uris: process.env.IDP_REDIRECT_URIS.split(','),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    ...(ogemClaims.length ? { ogem: ogemClaims } : {}),
  },
  cookies: { keys: ['ogem-test-idp-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return claims; } };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ogemClaims.length ? 'openid email profile ogem' : 'openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'given_name', 'family_name', 'preferred_username', ...ogemClaims]);
    await grant.save();
    return grant;
  },
};

if (ogemClaims.length) configuration.features.revocation = { enabled: true };

const serviceClientId = process.env.IDP_SERVICE_CLIENT_ID;
const resource = process.env.IDP_RESOURCE;
if (serviceClientId && resource) {
  configuration.clients.push({
    client_id: serviceClientId,
    client_secret: process.env.IDP_SERVICE_CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  });
  configuration.features.clientCredentials = { enabled: true };
  configuration.features.resourceIndicators = {
    enabled: true,
    defaultResource: (ctx, client) => (client.clientId === serviceClientId ? resource : undefined),
    getResourceServerInfo: (ctx, indicator) => {
      if (indicator !== resource) throw new errors.InvalidTarget();
      return {
        scope: 'ogem',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    },
  };
  configuration.extraTokenClaims = async (ctx, token) => (
    token.kind === 'ClientCredentials' ? tokenClaims : undefined
  );
}

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

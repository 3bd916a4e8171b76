// A local OpenID Connect provider for Ogem's SSO browser test (oidc-provider, Node 20).
// Environment: IDP_PORT, IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_REDIRECT_URIS (comma-separated),
// IDP_USER, IDP_EMAIL.
// It signs in the one test user through oidc-provider's development login form and grants
// consent automatically (a first-party client), then prints "ready" on stdout.
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT || 4000);
const issuer = `http://127.0.0.1:${port}`;
const user = process.env.IDP_USER || 'alice';
const email = process.env.IDP_EMAIL || 'alice@example.com';

const accounts = {
  [user]: {
    sub: user,
    email,
    email_verified: true,
    name: 'Alice Example',
    given_name: 'Alice',
    family_name: 'Example',
    preferred_username: user,
  },
};

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
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'given_name', 'family_name', 'preferred_username']);
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

"""The portal's sign-in: allauth adapters, organization identity providers (OIDC and SAML) and
their admin, the instance-wide SSO button. The portal's pages are the `portal` package's."""

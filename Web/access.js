// Getting into a meeting: what the meeting asks for (password, sign-in), the credentials this
// page holds (host link, invite link, password, ID token, the token `joined` gave), and sign-in
// with the OpenID Connect issuers the server trusts.

const tokenKey = (meeting) => `parley-token:${meeting}`;

export class Access {
  constructor(meeting) {
    this.meeting = meeting;
    const params = new URLSearchParams(location.search);
    const fragment = new URLSearchParams(location.hash.slice(1));
    this.invite = params.get('invite');
    this.password = null;
    this.idToken = null;
    // A host link carries the host token in the fragment, which browsers never send to servers.
    if (fragment.get('host')) sessionStorage.setItem(tokenKey(meeting), fragment.get('host'));
    if (fragment.get('id_token') && fragment.get('state') === meeting) this.idToken = fragment.get('id_token');
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    this.token = sessionStorage.getItem(tokenKey(meeting));
    this.info = null;
    this.providers = [];
  }

  /// What the server says about the meeting before joining; null when it does not exist.
  async load() {
    const response = await fetch(`/api/meetings/${encodeURIComponent(this.meeting)}`);
    if (response.status === 404) return null;
    this.info = response.ok ? await response.json() : {};
    if (this.info.requireSignIn || this.info.allowedDomains?.length) await this.loadProviders();
    return this.info;
  }

  async loadProviders() {
    const response = await fetch('/api/auth/providers').catch(() => null);
    this.providers = response?.ok ? await response.json() : [];
  }

  /// The credentials to send with `join`.
  joinFields() {
    const fields = {};
    if (this.token) fields.token = this.token;
    if (this.password) fields.password = this.password;
    else if (this.invite) fields.invite = this.invite;
    if (this.idToken) fields.idToken = this.idToken;
    return fields;
  }

  remember(token) {
    if (!token) return;
    this.token = token;
    sessionStorage.setItem(tokenKey(this.meeting), token);
  }

  forgetToken() {
    this.token = null;
    sessionStorage.removeItem(tokenKey(this.meeting));
  }

  /// Sends the browser to the issuer; it comes back to this page with an ID token in the fragment.
  async signIn(provider, name) {
    sessionStorage.setItem('parley-name', name ?? '');
    const response = await fetch('/api/auth/nonce', { method: 'POST' });
    const { nonce } = await response.json();
    const query = new URLSearchParams({
      response_type: 'id_token', client_id: provider.clientId, scope: 'openid email profile',
      redirect_uri: location.origin + location.pathname, nonce, state: this.meeting,
    });
    location.assign(`${provider.authorizationEndpoint}?${query}`);
  }
}

/// Join refusals the lobby can fix (ask for a password, sign in) and the ones it cannot.
export const lobbyFixable = new Set(['password-required', 'wrong-password', 'too-many-attempts', 'sign-in-required',
  'domain-not-allowed', 'sign-in-failed']);
export const tokenRefusals = new Set(['invalid-token', 'expired-token', 'wrong-meeting']);

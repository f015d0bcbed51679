// The cards around the room, and which one shows: the lobby (name, password, sign-in), the
// waiting card and the goodbye card.

const $ = (id) => document.getElementById(id);
const screens = ['lobby', 'waiting', 'room', 'goodbye'];

/// One of lobby, waiting, room, goodbye; the others hide.
export function showScreen(screen) {
  for (const id of screens) $(id).hidden = id !== screen;
}

export function showGoodbye(title, text) {
  showScreen('goodbye');
  $('goodbye-title').textContent = title;
  $('goodbye-text').textContent = text;
}

export class Lobby {
  constructor(access, meeting) {
    this.access = access;
    this.params = new URLSearchParams(location.search);
    $('lobby-title').textContent = `Join “${meeting}”`;
    document.title = `${meeting} · Parley`;
  }

  /// `join(name)` from the lobby's form; `rejoin(name)` from the goodbye card (no name: the lobby).
  wire({ join, rejoin }) {
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const name = $('name').value.trim();
      if (name) join(name);
    });
    $('rejoin').addEventListener('click', () => rejoin($('name').value.trim() || this.params.get('name')));
  }

  /// What the meeting asks for decides what the lobby shows. Resolves { found: false } for a
  /// meeting the server does not have, else the name to join with at once (a ?name= link, or a
  /// return from signing in), if any.
  async prepare() {
    const { access } = this;
    let info;
    try {
      info = await access.load();
    } catch {
      info = {};
    }
    if (info === null) return { found: false, name: null };
    if (info.hasPassword && !access.invite && !access.token) this.askForPassword();
    if ((info.requireSignIn || info.allowedDomains?.length) && !access.idToken && !access.token) {
      if (!access.providers.length) await access.loadProviders();
      this.showSignIn();
    }
    const name = this.params.get('name') ?? (access.idToken ? sessionStorage.getItem('parley-name') : null);
    if (name) $('name').value = name;
    return { found: true, name };
  }

  /// A password typed in the lobby goes with the next join.
  useTypedPassword() {
    const typed = $('password').value;
    if (typed) this.access.password = typed;
  }

  forgetPassword() {
    this.access.password = null;
    $('password').value = '';
  }

  askForPassword() {
    $('password-field').hidden = false;
  }

  /// The ID token we had did not do: sign in (again).
  askToSignIn() {
    this.access.idToken = null;
    this.showSignIn();
  }

  showSignIn() {
    const box = $('sign-in-buttons');
    box.replaceChildren();
    for (const provider of this.access.providers) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `Sign in with ${provider.name}`;
      button.addEventListener('click', () => this.access.signIn(provider, $('name').value.trim()));
      box.append(button);
    }
    if (!this.access.providers.length) box.textContent = 'This server has no sign-in configured; ask its operator.';
    $('sign-in').hidden = false;
  }

  showError(message) {
    $('lobby-error').textContent = message;
    $('lobby-error').hidden = false;
  }

  hideError() {
    $('lobby-error').hidden = true;
  }
}

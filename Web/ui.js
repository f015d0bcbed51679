// Tiles, chat and banners: everything the page shows.
const stage = () => document.getElementById('stage');

export function showBanner(text, { error = false } = {}) {
  if (text) (window.parleyNotices ??= []).push(text);  // every notice shown, for tests and support
  const banner = document.getElementById('banner');
  banner.textContent = text;
  banner.classList.toggle('error', error);
  banner.hidden = !text;
}

let soundPromptShown = false;

/// Browsers refuse to autoplay sound before the user touched the page (e.g. a `?name=` link):
/// play muted, and turn the sound on at the first click.
function requestSoundUnlock() {
  if (soundPromptShown) return;
  soundPromptShown = true;
  showBanner('Click anywhere to turn on the sound.');
  document.addEventListener('click', () => {
    for (const element of document.querySelectorAll('.tile:not(.local) video, audio.speaker-slot')) {
      element.muted = false;
      element.play().catch(() => {});
    }
    showBanner('');
  }, { once: true });
}

/// Plays one received audio slot (the SFU puts the loudest speakers in them, switching packet by
/// packet): a hidden element per slot, so a voice does not jump between tiles' players.
export class SpeakerSlotPlayer {
  constructor(mid) {
    this.mid = mid;
    this.track = null;
    this.element = document.createElement('audio');
    this.element.className = 'speaker-slot';
    this.element.autoplay = true;
    this.element.dataset.mid = mid;
    this.element.hidden = true;
    document.body.append(this.element);
  }

  play(track) {
    if (track === this.track) return;
    this.track = track;
    this.element.srcObject = track ? new MediaStream([track]) : null;
    if (!track) return;
    this.element.play?.().catch(() => {
      this.element.muted = true;
      this.element.play().catch(() => {});
      requestSoundUnlock();
    });
  }

  remove() { this.element.remove(); }
}

export class Tile {
  constructor(key, name, { local = false, screen = false } = {}) {
    this.local = local;
    this.stream = new MediaStream();
    this.element = document.createElement('div');
    this.element.className = 'tile' + (local ? ' local' : '') + (screen ? ' screen' : '');
    this.element.dataset.tile = key;
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = local;
    this.video.srcObject = this.stream;
    this.avatar = document.createElement('div');
    this.avatar.className = 'avatar';
    this.label = document.createElement('span');
    this.label.className = 'name';
    this.element.append(this.video, this.avatar, this.label);
    this.setName(name);
    stage().append(this.element);
  }

  setName(name) {
    this.label.textContent = name;
    this.avatar.textContent = (name || '?').trim().charAt(0).toUpperCase();
  }

  setTracks(tracks) {
    for (const track of this.stream.getTracks()) {
      if (!tracks.includes(track)) this.stream.removeTrack(track);
    }
    for (const track of tracks) {
      if (!this.stream.getTracks().includes(track)) this.stream.addTrack(track);
    }
    this.video.play?.().catch(() => {
      if (this.local || this.video.muted) return;
      this.video.muted = true;
      this.video.play().catch(() => {});
      requestSoundUnlock();
    });
  }

  setState({ audioMuted, videoMuted }) {
    this.element.classList.toggle('muted', !!audioMuted);
    this.element.classList.toggle('video-off', !!videoMuted);
  }

  /// The server paused this video: the connection is too slow for it (audio goes on).
  setPaused(paused) {
    this.element.classList.toggle('paused', paused);
    this.element.title = paused ? 'Video paused: your connection is too slow for it right now' : '';
  }

  remove() { this.element.remove(); }
}

export function addChatMessage({ name, text, at, self }) {
  const log = document.getElementById('chat-log');
  const item = document.createElement('li');
  const from = document.createElement('span');
  from.className = 'from';
  const time = new Date((at ?? Date.now() / 1000) * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  from.textContent = `${self ? 'You' : name} · ${time}`;
  const body = document.createElement('span');
  body.textContent = text;
  item.append(from, body);
  log.append(item);
  log.scrollTop = log.scrollHeight;
  const chat = document.getElementById('chat');
  if (chat.hidden && !self) document.getElementById('toggle-chat').textContent = 'Chat •';
}

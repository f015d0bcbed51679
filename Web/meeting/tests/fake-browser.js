// A page without a browser: just enough DOM, WebSocket, WebRTC, media and clock for app.js to run
// under node, with the test playing the server and moving the time by hand. It checks the shell's
// wiring (messages sent, cards shown, window.parley); real media is the interop tests' job.
import { readFileSync } from 'node:fs';

const meetingPage = readFileSync(new URL('../../meeting.html', import.meta.url), 'utf8');

/// Lets every pending promise chain run (real setImmediate: the page's timers are fake).
export async function settle() {
  for (let n = 0; n < 20; n += 1) await new Promise((resolve) => setImmediate(resolve));
}

class Clock {
  constructor() {
    this.now = 1_700_000_000_000;
    this.timers = new Map();
    this.nextId = 1;
  }

  setTimeout(fn, ms = 0, every = null) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + Math.max(0, ms), fn, every });
    return id;
  }

  clear(id) { this.timers.delete(id); }

  /// Runs the timers due within `ms`, in time order, settling promises after each.
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      const [id, timer] = due;
      this.now = timer.at;
      if (timer.every === null) this.timers.delete(id); else timer.at += Math.max(1, timer.every);
      timer.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

class FakeElement {
  constructor(tag, id = '') {
    this.tagName = tag.toUpperCase();
    this.id = id;
    this.hidden = false;
    this.disabled = false;
    this.value = '';
    this.title = '';
    this.ownText = '';
    this.children = [];
    this.parent = null;
    this.dataset = {};
    this.attributes = new Map();
    this.listeners = [];
    this.classes = new Set();
    this.classList = {
      toggle: (name, force = !this.classes.has(name)) => { if (force) this.classes.add(name); else this.classes.delete(name); return force; },
      contains: (name) => this.classes.has(name),
      add: (...names) => names.forEach((name) => this.classes.add(name)),
      remove: (...names) => names.forEach((name) => this.classes.delete(name)),
    };
    this.scrollTop = 0;
    this.scrollHeight = 0;
    if (this.tagName === 'VIDEO') Object.assign(this, { muted: false, paused: true, srcObject: null });
  }

  get className() { return [...this.classes].join(' '); }
  set className(value) { this.classes = new Set(String(value).split(/\s+/).filter(Boolean)); }
  get textContent() { return this.ownText + this.children.map((child) => child.textContent).join(''); }
  set textContent(value) { this.ownText = String(value); this.children = []; }

  addEventListener(type, fn, options = {}) { this.listeners.push({ type, fn, once: Boolean(options.once) }); }
  dispatch(type, fields = {}) {
    const event = { type, target: this, preventDefault() {}, ...fields };
    for (const listener of this.listeners.filter((l) => l.type === type)) {
      if (listener.once) this.listeners.splice(this.listeners.indexOf(listener), 1);
      listener.fn(event);
    }
  }

  click() { if (!this.disabled) this.dispatch('click'); }
  requestSubmit() { this.dispatch('submit'); }
  focus() {}
  setAttribute(name, value) { this.attributes.set(name, String(value)); }
  getAttribute(name) { return this.attributes.get(name) ?? null; }
  append(...nodes) {
    for (const node of nodes) {
      if (typeof node === 'string') { this.ownText += node; continue; }
      node.remove();
      node.parent = this;
      this.children.push(node);
    }
  }
  replaceChildren(...nodes) { this.children = []; this.ownText = ''; this.append(...nodes); }
  remove() {
    if (!this.parent) return;
    this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  }
  play() { this.paused = false; return Promise.resolve(); }
  getBoundingClientRect() { return { width: 320, height: 180 }; }
  *descendants() { for (const child of this.children) { yield child; yield* child.descendants(); } }
}

class FakeDocument {
  constructor() {
    this.title = '';
    this.body = new FakeElement('body');
    this.byId = new Map();
    this.listeners = [];
    // Every element of the real page that has an id, hidden as the page has it.
    for (const [, tag, attributes] of meetingPage.matchAll(/<(\w+)\s([^>]*)>/g)) {
      const id = attributes.match(/\bid="([^"]+)"/)?.[1];
      if (!id) continue;
      const element = new FakeElement(tag, id);
      element.hidden = /(^|\s)hidden(\s|$|=)/.test(attributes);
      this.byId.set(id, element);
      this.body.append(element);
    }
  }

  getElementById(id) { return this.byId.get(id) ?? null; }
  createElement(tag) { return new FakeElement(tag); }
  addEventListener(type, fn, options = {}) { this.listeners.push({ type, fn, once: Boolean(options.once) }); }

  /// The two selectors the page uses.
  querySelectorAll(selector) {
    const all = [...this.body.descendants()];
    const remoteTiles = all.filter((e) => e.classes.has('tile') && !e.classes.has('local'));
    if (selector === '.tile:not(.local)') return remoteTiles;
    if (selector === '.tile:not(.local) video') return remoteTiles.flatMap((tile) => tile.children.filter((c) => c.tagName === 'VIDEO'));
    throw new Error(`the fake document does not know ${selector}`);
  }
}

class FakeTrack {
  constructor(kind) {
    this.kind = kind;
    this.enabled = true;
    this.stopped = false;
  }
  stop() { this.stopped = true; }
  addEventListener() {}
}

class FakeMediaStream {
  constructor(tracks = []) { this.tracks = [...tracks]; }
  getTracks() { return [...this.tracks]; }
  getAudioTracks() { return this.tracks.filter((t) => t.kind === 'audio'); }
  getVideoTracks() { return this.tracks.filter((t) => t.kind === 'video'); }
  addTrack(track) { this.tracks.push(track); }
  removeTrack(track) { this.tracks = this.tracks.filter((t) => t !== track); }
}

/// The page's world. `app`: the URL of app.js to run; `path`, `search`: the page's address;
/// `meetingInfo`: what GET /api/meetings/{id} answers (null: 404).
export class FakeBrowser {
  constructor({ path = '/m/demo', search = '', meetingInfo = {} } = {}) {
    this.clock = new Clock();
    this.document = new FakeDocument();
    this.window = { devicePixelRatio: 1, listeners: [], addEventListener(type, fn) { this.listeners.push({ type, fn }); } };
    this.sockets = [];
    this.peers = [];
    this.sessionStorage = new Map();
    this.meetingInfo = meetingInfo;
    this.location = { pathname: path, search, hash: '', protocol: 'http:', host: 'parley.test', origin: 'http://parley.test' };
  }

  /// Installs the fakes as globals and runs app.js (a fresh instance each time).
  async open(app) {
    const browser = this;
    const { clock } = this;
    this.saved = {};
    const globals = {
      document: this.document, window: this.window, location: this.location, history: { replaceState() {} },
      sessionStorage: {
        getItem: (key) => browser.sessionStorage.get(key) ?? null,
        setItem: (key, value) => browser.sessionStorage.set(key, String(value)),
        removeItem: (key) => browser.sessionStorage.delete(key),
      },
      navigator: {
        mediaDevices: {
          getUserMedia: async () => new FakeMediaStream([new FakeTrack('audio'), new FakeTrack('video')]),
          getDisplayMedia: async () => new FakeMediaStream([new FakeTrack('video')]),
        },
      },
      fetch: async (url) => {
        if (String(url).startsWith('/api/meetings/')) {
          if (browser.meetingInfo === null) return { ok: false, status: 404, json: async () => ({}) };
          return { ok: true, status: 200, json: async () => browser.meetingInfo };
        }
        return { ok: true, status: 200, json: async () => [] };
      },
      MediaStream: FakeMediaStream,
      WebSocket: FakeWebSocket,
      RTCPeerConnection: FakePeerConnection,
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (id) => clock.clear(id),
      setInterval: (fn, ms) => clock.setTimeout(fn, ms, ms),
      clearInterval: (id) => clock.clear(id),
    };
    for (const [name, value] of Object.entries(globals)) {
      this.saved[name] = Object.getOwnPropertyDescriptor(globalThis, name);
      Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    this.savedNow = Date.now;
    Date.now = () => clock.now;
    FakeWebSocket.browser = this;
    FakePeerConnection.browser = this;
    await import(`${app}?page=${++FakeBrowser.pages}`);
    await settle();
  }

  /// Puts the real globals back.
  close() {
    for (const [name, descriptor] of Object.entries(this.saved ?? {})) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor); else delete globalThis[name];
    }
    if (this.savedNow) Date.now = this.savedNow;
  }

  get parley() { return this.window.parley; }
  $(id) { return this.document.getElementById(id); }
  get socket() { return this.sockets.at(-1); }
  get peer() { return this.peers.at(-1); }
  /// Which of the four cards shows.
  get screens() { return ['lobby', 'waiting', 'room', 'goodbye'].filter((id) => !this.$(id).hidden); }
  async advance(ms) { await this.clock.advance(ms); }
}
FakeBrowser.pages = 0;

/// The socket; the test opens it, answers for the server and closes it.
class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    FakeWebSocket.browser.sockets.push(this);
  }

  send(data) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }

  close() {
    if (this.readyState >= FakeWebSocket.CLOSING) return;
    this.readyState = FakeWebSocket.CLOSING;
    FakeWebSocket.browser.clock.setTimeout(() => this.closed({ code: 1000, reason: '' }), 0);
  }

  closed(event) {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.(event);
  }

  // The server's side.
  async open() { this.readyState = FakeWebSocket.OPEN; this.onopen?.(); await settle(); }
  async refuse() { this.onerror?.(); this.closed({ code: 1006, reason: '' }); await settle(); }
  async receive(message) { if (this.readyState === FakeWebSocket.OPEN) this.onmessage?.({ data: JSON.stringify(message) }); await settle(); }
  async drop(reason = '') { this.closed({ code: 1006, reason }); await settle(); }
  /// The messages of a type the page sent on this socket.
  of(type) { return this.sent.filter((m) => m.type === type); }
}
Object.assign(FakeWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });

class FakePeerConnection extends EventTarget {
  constructor(configuration) {
    super();
    this.configuration = configuration;
    this.transceivers = [];
    this.connectionState = 'new';
    this.localDescription = null;
    this.remoteDescription = null;
    this.bytesReceived = 0;
    this.iceRestarts = 0;
    this.closed = false;
    FakePeerConnection.browser.peers.push(this);
  }

  addTransceiver(trackOrKind, init) {
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    const track = typeof trackOrKind === 'string' ? null : trackOrKind;
    const encodings = init.sendEncodings ?? [{}];
    const transceiver = {
      mid: null, kind, direction: init.direction, currentDirection: null,
      sender: { track, replaceTrack: async (t) => { transceiver.sender.track = t; }, getParameters: () => ({ encodings }), setParameters: async () => {} },
      receiver: { track: { kind, id: `remote-${kind}-${this.transceivers.length}` } },
    };
    this.transceivers.push(transceiver);
    return transceiver;
  }

  getTransceivers() { return this.transceivers; }
  getSenders() { return this.transceivers.map((t) => t.sender); }
  getReceivers() { return this.transceivers.map((t) => t.receiver); }
  async createOffer() {
    this.transceivers.forEach((t, index) => { t.mid ??= String(index); });
    return { type: 'offer', sdp: `v=0 offer with ${this.transceivers.length} m-lines, ice restarts ${this.iceRestarts}` };
  }
  async setLocalDescription(description) { this.localDescription = description; }
  async setRemoteDescription(description) { this.remoteDescription = description; }
  getConfiguration() { return this.configuration; }
  setConfiguration(configuration) { this.configuration = configuration; }
  restartIce() { this.iceRestarts += 1; }
  async getStats() { return new Map([['T01', { type: 'transport', bytesReceived: this.bytesReceived }]]); }
  close() { this.closed = true; this.connectionState = 'closed'; }

  // The network's side.
  setState(state) { this.connectionState = state; this.dispatchEvent(new Event('connectionstatechange')); }
}

// The meeting page: lobby → room → goodbye. Plain ES modules, no build step.
import { Signaling } from './signaling.js';
import { Peer } from './peer.js';
import { Tile, showBanner, addChatMessage } from './ui.js';
import { Access, lobbyFixable, tokenRefusals } from './access.js';
import { ParticipantsPanel } from './host.js';

const meeting = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  participants: new Map(),
  tiles: new Map(),
  local: { stream: null, audio: null, video: null, screen: null },
  signaling: null,
  peer: null,
  leaving: false,
  joined: false,
  reconnecting: false,
};
const access = new Access(meeting);
const panel = new ParticipantsPanel(document.getElementById('people'), (message) => state.signaling?.send(message));

// For tests and debugging: read what the page receives.
window.parley = {
  get participantId() { return state.me; },
  get role() { return panel.role; },
  get waiting() { return panel.waiting; },
  get meetingState() { return panel.meetingState; },
  joinedAt: null,
  departures: [],
  pausedVideos: [],
  activeSpeaker: null,
  featured: null,
  mediaEvents: [],
  get participants() { return [...state.participants.values()]; },
  get connectionState() { return state.peer?.pc.connectionState ?? 'new'; },
  cameraLayers: () => state.peer?.cameraLayers() ?? Promise.resolve({}),
  get publishedLayers() { return state.peer?.publishedLayers ?? null; },
  stats: () => state.peer?.statsByParticipant() ?? Promise.resolve({}),
  tiles: () => [...document.querySelectorAll('.tile:not(.local)')].map((t) => t.dataset.tile),
  debug: async () => ({
    assignments: [...(state.peer?.assignments.values() ?? [])],
    transceivers: state.peer?.pc.getTransceivers().map((t) => ({ mid: t.mid, direction: t.direction, current: t.currentDirection })) ?? [],
    inbound: [...((await state.peer?.pc.getStats())?.values() ?? [])].filter((s) => ["inbound-rtp", "transport", "local-candidate", "candidate-pair"].includes(s.type)),
    remote: state.peer?.pc.remoteDescription?.sdp,
  }),
};

$('lobby-title').textContent = `Join “${meeting}”`;
document.title = `${meeting} · Parley`;

async function startMedia() {
  try {
    // 720p: browsers send three simulcast layers (320×180, 640×360, 1280×720) only from this size up.
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
    state.local.stream = stream;
    state.local.audio = stream.getAudioTracks()[0] ?? null;
    state.local.video = stream.getVideoTracks()[0] ?? null;
  } catch (error) {
    const reason = error.name === 'NotAllowedError' ? 'permission was refused'
      : error.name === 'NotFoundError' ? 'no camera or microphone was found' : error.message;
    showBanner(`Camera and microphone unavailable (${reason}). You can still see and hear everyone.`, { error: true });
    state.local.stream = new MediaStream();
  }
}

async function join(name) {
  $('lobby').hidden = true;
  $('goodbye').hidden = true;
  $('room').hidden = false;
  state.leaving = false;
  state.joined = false;
  const typed = $('password').value;
  if (typed) access.password = typed;
  await startMedia();
  try {
    await connectSignaling(name);
  } catch (error) {
    stopLocalMedia();
    showBanner(`${error.message}. Is the server running? Reload the page to try again.`, { error: true });
    $('room').hidden = true;
    $('lobby').hidden = false;
  }
}

/// The signaling socket, with the meeting in its URL so a proxy can keep a meeting on one node.
async function connectSignaling(name) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const signaling = new Signaling(`${scheme}://${location.host}/ws?meeting=${encodeURIComponent(meeting)}`);
  await signaling.connect();
  state.signaling = signaling;
  signaling.addEventListener('joined', ({ detail }) => onJoined(detail, name));
  signaling.addEventListener('waiting', () => {
    $('room').hidden = true;
    $('waiting').hidden = false;
  });
  signaling.addEventListener('waiting-room', ({ detail }) => {
    const before = new Set(panel.waiting.map((w) => w.id));
    panel.waiting = detail.waiting;
    const arrived = detail.waiting.filter((w) => !before.has(w.id));
    if (arrived.length) showBanner(`${arrived.map((w) => w.name).join(', ')} ${arrived.length > 1 ? 'are' : 'is'} waiting to join (People).`);
    renderPanel();
  });
  signaling.addEventListener('meeting-state', ({ detail }) => { panel.meetingState = detail.state; applyMeetingState(); });
  signaling.addEventListener('moderated', ({ detail }) => onModerated(detail));
  signaling.addEventListener('reported', ({ detail }) => {
    showBanner(`${detail.report.reporterName} reported ${detail.report.reportedName}: ${detail.report.reason}`);
  });
  signaling.addEventListener('participant-joined', ({ detail }) => { state.participants.set(detail.participant.id, detail.participant); render(); });
  signaling.addEventListener('participant-updated', ({ detail }) => {
    if (detail.participant.id === state.me) {
      panel.role = detail.participant.role;
      applyMeetingState();
      return;
    }
    state.participants.set(detail.participant.id, detail.participant);
    wantReceivers();
    render();
  });
  signaling.addEventListener('participant-left', ({ detail }) => {
    window.parley.departures.push(detail.participantId);
    state.participants.delete(detail.participantId);
    render();
  });
  signaling.addEventListener('assignments', ({ detail }) => state.peer?.applyAssignments(detail.assignments, detail.assignmentsVersion));
  signaling.addEventListener('publish-layers', ({ detail }) => state.peer?.setPublishedLayers(detail.mid, detail.rids));
  signaling.addEventListener('active-speaker', ({ detail }) => {
    state.activeSpeaker = detail.participantId;
    window.parley.activeSpeaker = detail.participantId;
    markSpeaker();
  });
  signaling.addEventListener('video-paused', ({ detail }) => {
    state.pausedMids = new Set(detail.mids);
    render();
  });
  signaling.addEventListener('chat', ({ detail }) => addChatMessage({ ...detail, self: detail.from === state.me }));
  signaling.addEventListener('error', ({ detail }) => {
    if (!state.joined) return refused(detail, name);
    if (detail.code === 'media-failed') return rebuildPeer();
    showBanner(`${detail.message} (${detail.code})`, { error: true });
  });
  signaling.addEventListener('meeting-ended', ({ detail }) => { if (!state.leaving) finish('The meeting has ended', detail.reason); });
  signaling.addEventListener('close', ({ detail }) => {
    if (state.leaving || signaling !== state.signaling) return;
    // A socket we gave up on (the server is fine, our network changed): try again at once.
    if (state.joined) reconnect(name, { at: detail?.reason === 'no answer to ping' ? 0 : 250 });
    else finish('Disconnected', 'The connection to the server was lost. Rejoin when it is back.');
  });
  // Coming back after losing the server: ask for our participant back (same id, same media).
  const resume = state.reconnecting && state.me ? { resume: state.me } : {};
  signaling.send({ type: 'join', meeting, name, ...access.joinFields(), ...resume });
}

/// The signaling server went away (a node died, a restart): try again with growing pauses and
/// come back with our token, as the same person, without password or waiting room.
async function reconnect(name, { at = 250 } = {}) {
  state.joined = false;
  state.reconnecting = true;
  showBanner('Lost the connection to the server; reconnecting…', { error: true });
  const started = Date.now();
  for (let delay = at; Date.now() - started < 60_000 && !state.leaving; delay = Math.min(Math.max(delay * 2, 250), 4000)) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    try {
      await connectSignaling(name);
      window.parley.signalingReconnects = (window.parley.signalingReconnects ?? 0) + 1;
      return;
    } catch {
      // not up yet: wait longer
    }
  }
  state.reconnecting = false;
  if (!state.leaving) finish('Disconnected', 'The connection to the server was lost. Rejoin when it is back.');
}

/// The server did not let us in: back to the lobby when the lobby can fix it, else say why.
function refused(detail, name) {
  state.leaving = true;
  state.signaling?.close();
  stopLocalMedia();
  $('room').hidden = true;
  $('waiting').hidden = true;
  if (tokenRefusals.has(detail.code) && access.token) {
    // A stale token from an earlier visit: drop it and try as a newcomer.
    access.forgetToken();
    return join(name);
  }
  if (lobbyFixable.has(detail.code)) {
    access.password = null;
    if (['password-required', 'wrong-password'].includes(detail.code)) $('password-field').hidden = false;
    if (['sign-in-required', 'domain-not-allowed', 'sign-in-failed'].includes(detail.code)) {
      access.idToken = null;
      showSignIn();
    }
    $('password').value = '';
    $('lobby-error').textContent = detail.message;
    $('lobby-error').hidden = false;
    $('lobby').hidden = false;
    return;
  }
  const titles = { locked: 'The meeting is locked', removed: 'You were removed', denied: 'You were not let in',
    'meeting-not-found': 'No such meeting', 'invalid-invite': 'This invite link does not work', 'meeting-full': 'The meeting is full' };
  finish(titles[detail.code] ?? 'Could not join', detail.message);
}

function onModerated({ action, by }) {
  if (action === 'mute-audio' && state.local.audio) {
    if (state.local.audio.enabled) $('toggle-mic').click();
    showBanner(`${by} muted you.`);
  } else if (action === 'stop-video' && state.local.video) {
    if (state.local.video.enabled) $('toggle-camera').click();
    showBanner(`${by} stopped your video.`);
  } else if (action === 'unmute-audio-allowed') {
    showBanner('A host lets you unmute again.');
  } else if (action === 'removed') {
    // The token stays: it is the credential the removal blocks, so Rejoin is refused too.
    finish('You were removed', `${by} removed you from the meeting.`);
  }
}

function applyMeetingState() {
  const sharingBlocked = panel.meetingState.hostsOnlyScreenShare && !panel.isModerator;
  $('toggle-screen').disabled = sharingBlocked;
  if (sharingBlocked && state.local.screen) stopScreen();
  renderPanel();
}

function renderPanel() {
  if (state.me) panel.render(state.me, [...state.participants.values()]);
}

function onJoined(detail, name) {
  // TURN servers with credentials for us, when the server has them (used by later restarts too).
  state.iceServers = detail.iceServers ?? [];
  try {
    state.peer?.pc.setConfiguration({ ...state.peer.pc.getConfiguration(), iceServers: state.iceServers });
  } catch {
    // kept the servers it had
  }
  if (state.reconnecting) return onRejoined(detail);
  state.joined = true;
  $('waiting').hidden = true;
  $('room').hidden = false;
  $('lobby-error').hidden = true;
  access.remember(detail.token);
  panel.role = detail.role ?? 'participant';
  if (detail.state) panel.meetingState = detail.state;
  state.me = detail.participantId;
  window.parley.joinedAt = performance.now();
  for (const participant of detail.participants) state.participants.set(participant.id, participant);
  const local = new Tile('local', `${name} (you)`, { local: true });
  state.tiles.set('local', local);
  local.setTracks(state.local.video ? [state.local.video] : []);
  local.setState({ videoMuted: !state.local.video });
  $('toggle-mic').disabled = !state.local.audio;
  $('toggle-camera').disabled = !state.local.video;
  startPeer();
  render();
  applyMeetingState();
}

/// Back after a signaling reconnect, with everyone as the server now knows them. Resumed (any
/// signaling node took our participant back): the same peer connection goes on, its media never
/// stopped. Otherwise a new participant id and a new peer connection.
function onRejoined(detail) {
  state.reconnecting = false;
  state.joined = true;
  access.remember(detail.token);
  panel.role = detail.role ?? panel.role;
  if (detail.state) panel.meetingState = detail.state;
  const resumed = detail.resumed && detail.participantId === state.me && state.peer;
  state.me = detail.participantId;
  state.participants.clear();
  for (const participant of detail.participants) state.participants.set(participant.id, participant);
  showBanner('');
  if (resumed && state.rebuildOnResume) {
    // Back after the network changed under the media path too: a fresh peer connection.
    state.rebuildOnResume = false;
    window.parley.signalingResumes = (window.parley.signalingResumes ?? 0) + 1;
    mediaEvent('signaling-resumed');
    rebuildPeer('The network changed; reconnecting…');
  } else if (resumed) {
    window.parley.signalingResumes = (window.parley.signalingResumes ?? 0) + 1;
    mediaEvent('signaling-resumed');
    state.peer.signaling = state.signaling;
    // An offer lost with the old socket is made again; otherwise this confirms the transport.
    state.peer.negotiate();
    wantReceivers();
  } else {
    state.peer?.close();
    startPeer();
  }
  render();
  applyMeetingState();
}

/// One peer connection to the SFU carrying our tracks and everyone else's.
function startPeer() {
  const peer = new Peer(state.signaling, state.iceServers);
  state.peer = peer;
  state.reportedViewport = null;
  peer.addEventListener('assignments', render);
  peer.addEventListener('failed', ({ detail: error }) => {
    // An offer lost with a dead socket is made again after the reconnect.
    if (!state.reconnecting) showBanner(`Media negotiation failed: ${error.message}`, { error: true });
  });
  peer.addEventListener('state', ({ detail: connection }) => {
    if (peer !== state.peer) return;
    mediaEvent(`peer-${connection}`);
    if (connection === 'disconnected' || connection === 'failed') {
      showBanner('The media connection was lost; reconnecting…', { error: true });
      restartMedia();
    } else if (connection === 'connected') {
      clearTimeout(state.restartTimer);
      if (document.getElementById('banner').textContent.includes('reconnecting')) showBanner('');
    }
  });
  watchPath(peer);
  peer.addEventListener('answered', () => {
    mediaEvent('answered');
    const ice = peer.pc.getSenders()[0]?.transport?.iceTransport ?? peer.pc.getReceivers()[0]?.transport?.iceTransport;
    if (ice && !ice.parleyWatched) {
      ice.parleyWatched = true;
      ice.addEventListener('selectedcandidatepairchange', () => mediaEvent('path-selected'));
    }
  });
  if (state.local.audio) peer.publish('microphone', state.local.audio, state.local.stream);
  if (state.local.video) peer.publish('camera', state.local.video, state.local.stream);
  const screen = state.local.screen?.getVideoTracks()[0];
  if (screen) peer.publish('screen', screen, state.local.screen);
  wantReceivers();
}

/// The path to the SFU broke or the network changed: an ICE restart (new credentials on both
/// sides, make-before-break: the old path carries media until the new one is checked). The
/// signaling socket may have died with the old network; a ping finds out at once and a dead
/// socket is replaced (the participant resumed) before the restart's offer goes out on it.
/// Until media flows again, the restart is tried again every 3 s.
/// `broken`: the old path is dead (nothing came for a while). Nothing is left to keep while a new
/// path is found, and Chromium would hold on to the dead pair until its own checks time out
/// (seconds): a new peer connection starts clean instead, on the same signaling session.
async function restartMedia({ broken = false } = {}) {
  const peer = state.peer;
  if (!peer || !state.joined || state.leaving) return;
  clearTimeout(state.restartTimer);
  if (broken) {
    const signaling = await checkSignaling();
    if (signaling === 'alive' && peer === state.peer) rebuildPeer('The network changed; reconnecting…');
    if (signaling === 'abandoned') state.rebuildOnResume = true;
    return;
  }
  state.restartTimer = setTimeout(() => {
    if (peer === state.peer && peer.pc.connectionState !== 'connected') restartMedia();
  }, 3000);
  window.parley.iceRestarts = (window.parley.iceRestarts ?? 0) + 1;
  mediaEvent('ice-restart');
  peer.pc.restartIce();
  // The offer goes out at once; if the socket turns out dead the resume renegotiates, with the
  // new credentials restartIce() asked for.
  peer.negotiate();
  await checkSignaling();
}

/// Pings the server: 'alive'; or the socket is dead and given up on, so the reconnect (and the
/// participant's resume) starts at once: 'abandoned'; or a reconnect already runs: 'reconnecting'.
async function checkSignaling() {
  const signaling = state.signaling;
  if (await signaling.ping(400)) {
    mediaEvent('signaling-alive');
    return 'alive';
  }
  if (signaling !== state.signaling || state.reconnecting) return 'reconnecting';
  mediaEvent('signaling-dead');
  signaling.abandon();
  return 'abandoned';
}

/// What happened to the media path, when (ms since 1970): for tests and the debug overlay.
function mediaEvent(event) {
  window.parley.mediaEvents.push({ event, at: Date.now() });
  if (window.parley.mediaEvents.length > 200) window.parley.mediaEvents.shift();
}

/// Chromium calls a dead path `disconnected` only after its checks time out, seconds later. A
/// steady flow of packets from the SFU (media, RTCP, feedback: for a second at least) that
/// stops dead for three quarters of a second means the path broke: the restart starts then.
function watchPath(peer) {
  let lastBytes = null;
  let flowing = 0;
  let quiet = 0;
  const timer = setInterval(async () => {
    if (peer !== state.peer) { clearInterval(timer); return; }
    if (peer.pc.connectionState !== 'connected') { lastBytes = null; flowing = 0; quiet = 0; return; }
    const bytes = await peer.bytesReceived().catch(() => null);
    if (bytes === null) return;
    if (lastBytes !== null && bytes === lastBytes) {
      quiet += 1;
      if (quiet === 3 && flowing >= 4) {
        window.parley.pathStalls = (window.parley.pathStalls ?? 0) + 1;
        mediaEvent('path-stalled');
        restartMedia({ broken: true });
      }
    } else if (lastBytes !== null) {
      flowing = quiet > 0 ? 1 : flowing + 1;
      quiet = 0;
    }
    lastBytes = bytes;
  }, 250);
}

// Another network (Wi-Fi to cellular, a cable plugged in): look for the path again at once.
window.addEventListener('online', () => restartMedia());
navigator.connection?.addEventListener?.('change', () => restartMedia());

/// The media server is gone (an SFU stopped): a new peer connection, offered afresh, lands on the
/// meeting's new SFU; everything we sent is published again.
function rebuildPeer(message = 'The media server changed; reconnecting…') {
  if (!state.joined || state.leaving) return;
  showBanner(message, { error: true });
  window.parley.mediaRebuilds = (window.parley.mediaRebuilds ?? 0) + 1;
  mediaEvent('new-connection');
  state.peer?.close();
  startPeer();
  render();
  // Not connected after a while (no path yet): try once more.
  const peer = state.peer;
  clearTimeout(state.restartTimer);
  state.restartTimer = setTimeout(() => {
    if (peer === state.peer && peer.pc.connectionState !== 'connected') restartMedia({ broken: true });
  }, 5000);
}

/// Enough receiving transceivers for every track the others publish.
function wantReceivers() {
  const counts = { audio: 0, video: 0 };
  for (const participant of state.participants.values()) {
    for (const track of participant.tracks) counts[track.kind] += 1;
  }
  state.peer?.want(counts);
}

/// Puts every remote track in its participant's tile (camera + microphone) or screen tile.
function render() {
  const wanted = new Map();
  for (const participant of state.participants.values()) {
    wanted.set(participant.id, { name: participant.name, participant, tracks: [] });
    if (participant.tracks.some((t) => t.source === 'screen')) {
      wanted.set(`${participant.id}:screen`, { name: `${participant.name}'s screen`, participant, tracks: [], screen: true });
    }
  }
  if (state.peer) {
    for (const [mid, assignment] of state.peer.assignments) {
      if (!assignment.participantId) continue;
      const key = assignment.source === 'screen' ? `${assignment.participantId}:screen` : assignment.participantId;
      const track = state.peer.trackFor(mid);
      if (track && wanted.has(key)) wanted.get(key).tracks.push(track);
    }
  }
  // Videos the server paused because this connection has no room for them (audio goes on).
  const pausedKeys = new Set();
  for (const mid of state.pausedMids ?? []) {
    const assignment = state.peer?.assignments.get(mid);
    if (assignment?.participantId) pausedKeys.add(assignment.source === 'screen' ? `${assignment.participantId}:screen` : assignment.participantId);
  }
  window.parley.pausedVideos = [...pausedKeys];
  for (const [key, tile] of state.tiles) {
    if (key.startsWith('local')) continue;
    if (!wanted.has(key)) { tile.remove(); state.tiles.delete(key); }
  }
  for (const [key, { name, participant, tracks, screen }] of wanted) {
    let tile = state.tiles.get(key);
    if (!tile) { tile = new Tile(key, name, { screen }); state.tiles.set(key, tile); }
    tile.setName(name);
    tile.setTracks(tracks);
    const hasCamera = participant.tracks.some((t) => t.kind === 'video' && t.source !== 'screen');
    tile.setState(screen ? {} : { audioMuted: participant.audioMuted, videoMuted: participant.videoMuted || !hasCamera });
    tile.setPaused(pausedKeys.has(key));
    tile.element.dataset.participant = participant.id;
  }
  renderPanel();
  markSpeaker();
}

/// The one speaking is outlined and moved first (with three or more people on the stage); only
/// classes change, so nothing else on the page is rebuilt. (Enlarging the speaker's tile was tried:
/// with several people talking, every change of speaker resized tiles and switched simulcast
/// layers, and video stalled on the keyframes.)
function markSpeaker() {
  const remote = [...state.tiles.keys()].filter((key) => !key.startsWith('local'));
  for (const [key, tile] of state.tiles) {
    tile.element.classList.toggle('speaking', remote.length > 1 && key === state.activeSpeaker);
  }
  featureSpeaker(remote.length);
  reportViewport();
}

/// With three or more others on the stage, the speaker's tile is enlarged. Slowly, so that
/// cross-talk does not resize tiles (each resize changes the simulcast layer asked for): a new
/// speaker is featured after talking for two seconds, and a featured tile keeps its place for
/// five seconds at least.
const FEATURE_AFTER_MS = 2000;
const FEATURE_AT_LEAST_MS = 5000;
function featureSpeaker(remoteCount) {
  clearTimeout(state.featureTimer);
  const now = Date.now();
  let featured = remoteCount >= 3 ? state.featured : null;
  const candidate = state.activeSpeaker;
  if (remoteCount >= 3 && candidate && candidate !== featured && state.tiles.has(candidate)) {
    if (state.speakerSince?.id !== candidate) state.speakerSince = { id: candidate, at: now };
    const ready = Math.max(state.speakerSince.at + FEATURE_AFTER_MS, (state.featuredAt ?? 0) + FEATURE_AT_LEAST_MS);
    if (now >= ready) {
      featured = candidate;
      state.featuredAt = now;
    } else {
      state.featureTimer = setTimeout(markSpeaker, ready - now);
    }
  }
  if (featured && !state.tiles.has(featured)) featured = null;
  state.featured = featured;
  window.parley.featured = featured;
  for (const [key, tile] of state.tiles) tile.element.classList.toggle('featured', key === featured);
}

/// Tells the SFU how large each received video is shown (device pixels), so simulcast sends the
/// layer that fits: a small tile gets a small layer. Sent when a size changes.
function reportViewport() {
  if (!state.peer || !state.signaling) return;
  const sizes = {};
  for (const [mid, assignment] of state.peer.assignments) {
    if (assignment.kind !== 'video') continue;
    const key = assignment.source === 'screen' ? `${assignment.participantId}:screen` : assignment.participantId;
    const box = state.tiles.get(key)?.video.getBoundingClientRect();
    const scale = window.devicePixelRatio || 1;
    sizes[mid] = { width: Math.round((box?.width ?? 0) * scale), height: Math.round((box?.height ?? 0) * scale) };
  }
  const text = JSON.stringify(sizes);
  if (text === state.reportedViewport || Object.keys(sizes).length === 0) return;
  state.reportedViewport = text;
  state.signaling.send({ type: 'viewport', sizes });
}
window.addEventListener('resize', () => reportViewport());
setInterval(reportViewport, 2000);

function stopLocalMedia() {
  for (const track of state.local.stream?.getTracks() ?? []) track.stop();
  state.local.screen?.getTracks().forEach((t) => t.stop());
}

function finish(title, text) {
  state.leaving = true;
  state.peer?.close();
  state.signaling?.close();
  stopLocalMedia();
  for (const tile of state.tiles.values()) tile.remove();
  state.tiles.clear();
  state.participants.clear();
  state.peer = null;
  state.me = null;
  $('room').hidden = true;
  $('waiting').hidden = true;
  $('lobby').hidden = true;
  $('goodbye').hidden = false;
  $('goodbye-title').textContent = title;
  $('goodbye-text').textContent = text ?? '';
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('name').value.trim();
  if (name) join(name);
});

$('rejoin').addEventListener('click', () => {
  showBanner('');
  const name = $('name').value.trim() || params.get('name');
  if (name) join(name); else { $('goodbye').hidden = true; $('lobby').hidden = false; }
});

/// Mute or unmute one of our tracks: the track sends silence or black, the others are told.
function toggleTrack(kind, button, labels) {
  const track = kind === 'audio' ? state.local.audio : state.local.video;
  if (!track) return;
  track.enabled = !track.enabled;
  button.setAttribute('aria-pressed', String(!track.enabled));
  button.textContent = track.enabled ? labels.on : labels.off;
  if (kind === 'video') state.tiles.get('local')?.setState({ videoMuted: !track.enabled });
  state.signaling.send({ type: 'mute', kind, muted: !track.enabled });
}

$('toggle-mic').addEventListener('click', (event) => toggleTrack('audio', event.target, { on: 'Mute', off: 'Unmute' }));
$('toggle-camera').addEventListener('click', (event) => toggleTrack('video', event.target, { on: 'Stop video', off: 'Start video' }));

async function stopScreen() {
  state.local.screen?.getTracks().forEach((t) => t.stop());
  state.local.screen = null;
  state.tiles.get('local:screen')?.remove();
  state.tiles.delete('local:screen');
  state.peer?.unpublish('screen');
  $('toggle-screen').setAttribute('aria-pressed', 'false');
  $('toggle-screen').textContent = 'Share screen';
}

$('toggle-screen').addEventListener('click', async () => {
  if (state.local.screen) return stopScreen();
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = stream.getVideoTracks()[0];
    state.local.screen = stream;
    track.addEventListener('ended', stopScreen);
    const tile = new Tile('local:screen', 'Your screen', { local: true, screen: true });
    tile.setTracks([track]);
    state.tiles.set('local:screen', tile);
    state.peer.publish('screen', track, stream);
    $('toggle-screen').setAttribute('aria-pressed', 'true');
    $('toggle-screen').textContent = 'Stop sharing';
  } catch (error) {
    if (error.name !== 'NotAllowedError') showBanner(`Screen sharing failed: ${error.message}`, { error: true });
  }
});

$('toggle-chat').addEventListener('click', (event) => {
  const chat = $('chat');
  chat.hidden = !chat.hidden;
  event.target.setAttribute('aria-pressed', String(!chat.hidden));
  event.target.textContent = 'Chat';
  if (!chat.hidden) $('chat-input').focus();
});

$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('chat-input').value.trim();
  if (!text) return;
  state.signaling.send({ type: 'chat', text });
  $('chat-input').value = '';
});

$('toggle-people').addEventListener('click', (event) => {
  const people = $('people');
  people.hidden = !people.hidden;
  event.target.setAttribute('aria-pressed', String(!people.hidden));
  renderPanel();
});

$('leave-waiting').addEventListener('click', () => {
  state.signaling?.send({ type: 'leave' });
  finish('You left the waiting room', `Meeting “${meeting}”.`);
});

$('leave').addEventListener('click', () => {
  state.signaling?.send({ type: 'leave' });
  finish('You left the meeting', `Meeting “${meeting}”.`);
});

function showSignIn() {
  const box = $('sign-in-buttons');
  box.replaceChildren();
  for (const provider of access.providers) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = `Sign in with ${provider.name}`;
    button.addEventListener('click', () => access.signIn(provider, $('name').value.trim()));
    box.append(button);
  }
  if (!access.providers.length) box.textContent = 'This server has no sign-in configured; ask its operator.';
  $('sign-in').hidden = false;
}

/// What the meeting asks for decides what the lobby shows; a returning sign-in or a ?name= link joins at once.
async function start() {
  let info;
  try {
    info = await access.load();
  } catch {
    info = {};
  }
  if (info === null) {
    finish('No such meeting', `There is no meeting “${meeting}” on this server. Check the link, or ask the host for a new one.`);
    return;
  }
  if (info.hasPassword && !access.invite && !access.token) $('password-field').hidden = false;
  if ((info.requireSignIn || info.allowedDomains?.length) && !access.idToken && !access.token) {
    if (!access.providers.length) await access.loadProviders();
    showSignIn();
  }
  const name = params.get('name') ?? (access.idToken ? sessionStorage.getItem('parley-name') : null);
  if (name) {
    $('name').value = name;
    join(name);
  }
}

start();

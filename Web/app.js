// The meeting page. Plain ES modules, no build step. This is the shell: it turns what happens
// (the socket's messages, clicks, media and timers) into events for the session's states
// (meeting/session.js) and carries out the actions they return, with the stage, the controls,
// the media connection and the lobby doing the work.
import { Signaling } from './signaling.js';
import { showBanner, addChatMessage } from './ui.js';
import { Access } from './access.js';
import { ParticipantsPanel } from './host.js';
import { initialSession, next } from './meeting/session.js';
import { createDiagnostics, count, noteMediaEvent } from './meeting/diagnostics.js';
import { LocalMedia } from './meeting/local-media.js';
import { Stage } from './meeting/stage.js';
import { MediaConnection } from './meeting/connection.js';
import { Controls } from './meeting/controls.js';
import { Lobby, showScreen, showGoodbye } from './meeting/lobby.js';

const meeting = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');

let session = initialSession(meeting);
// What the modules share: the socket, the peer connection (MediaConnection sets it), who else is
// here, and our own media.
const room = { signaling: null, peer: null, participants: new Map(), local: new LocalMedia() };

const access = new Access(meeting);
const panel = new ParticipantsPanel(document.getElementById('people'), (message) => room.signaling?.send(message));
// For tests and debugging: read what the page receives.
const parley = createDiagnostics({ session: () => session, panel, room });
window.parley = parley;

const renderPanel = () => { if (session.participantId) panel.render(session.participantId, [...room.participants.values()]); };
const stage = new Stage({ room, diagnostics: parley, renderPanel });
const media = new MediaConnection({
  room, stage, diagnostics: parley, phase: () => session.phase, askRebuildOnResume: () => dispatch({ type: 'rebuildOnResume' }),
});
const controls = new Controls({ room, stage, panel, renderPanel, dispatch });
const lobby = new Lobby(access, meeting);

// An event raised while an event's actions run waits until they are all done: actions never
// interleave with those of another event.
const queued = [];
let dispatching = false;
function dispatch(event) {
  queued.push(event);
  if (dispatching) return;
  dispatching = true;
  try {
    while (queued.length) {
      const [state, actions] = next(session, queued.shift());
      session = state;
      for (const action of actions) effects[action.type](action);
    }
  } finally {
    dispatching = false;
  }
}

/// What each of the session's actions does.
const effects = {
  showScreen: ({ screen }) => showScreen(screen),
  showBanner: ({ text, error = false }) => showBanner(text, { error }),
  showGoodbye: ({ title, text }) => showGoodbye(title, text),
  hideLobbyError: () => lobby.hideError(),
  showLobbyError: ({ message }) => lobby.showError(message),
  useTypedPassword: () => lobby.useTypedPassword(),
  forgetPassword: () => lobby.forgetPassword(),
  askForPassword: () => lobby.askForPassword(),
  askToSignIn: () => lobby.askToSignIn(),
  rememberToken: ({ token }) => access.remember(token),
  forgetToken: () => access.forgetToken(),
  startLocalMedia: async () => {
    await room.local.start();
    dispatch({ type: 'mediaReady' });
  },
  stopLocalMedia: () => room.local.stop(),
  connectSignaling: () => connectSignaling(),
  closeSignaling: () => closeSignaling(),
  scheduleReconnect: ({ delay }) => setTimeout(() => dispatch({ type: 'reconnectDue' }), delay),
  sendJoin: ({ name, resume }) => room.signaling.send({ type: 'join', meeting, name, ...access.joinFields(), ...(resume ? { resume } : {}) }),
  send: ({ message }) => room.signaling?.send(message),
  useIceServers: ({ iceServers }) => media.useIceServers(iceServers),
  adoptRole: ({ role, meetingState }) => {
    if (role) panel.role = role;
    if (meetingState) panel.meetingState = meetingState;
  },
  setParticipants: ({ participants, media: slots }) => {
    // How many speakers and videos the server sends us at once (older servers: no limit).
    if (slots) room.slots = slots;
    room.participants.clear();
    for (const participant of participants) room.participants.set(participant.id, participant);
  },
  noteJoinedAt: () => { parley.joinedAt = performance.now(); },
  showLocalMedia: ({ name }) => {
    stage.showLocal(name, room.local.video);
    controls.enableMediaButtons();
  },
  startPeer: () => media.start(),
  replacePeer: () => media.replace(),
  resumePeer: () => media.resume(),
  rebuildPeer: ({ message, unlessFresh }) => media.rebuild(message, { unlessFresh }),
  render: () => stage.render(),
  applyMeetingState: () => controls.applyMeetingState(),
  count: ({ counter }) => count(parley, counter),
  noteMediaEvent: ({ event }) => noteMediaEvent(parley, event),
  tearDown: () => {
    media.close();
    closeSignaling();
    room.local.stop();
    stage.clear();
    room.participants.clear();
  },
};

/// The socket closes and is forgotten: anything it still says (its close) is no longer ours.
function closeSignaling() {
  room.signaling?.close();
  room.signaling = null;
}

/// The signaling socket, with the meeting in its URL so a proxy can keep a meeting on one node.
async function connectSignaling() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const signaling = new Signaling(`${scheme}://${location.host}/ws?meeting=${encodeURIComponent(meeting)}`);
  try {
    await signaling.connect();
  } catch (error) {
    dispatch({ type: 'signalingUnreachable', message: error.message, at: Date.now() });
    return;
  }
  room.signaling = signaling;
  listen(signaling);
  dispatch({ type: 'signalingOpened' });
}

/// The server's messages: those that move the session go to session.js, the rest to whoever
/// shows them.
function listen(signaling) {
  const on = (type, handle) => signaling.addEventListener(type, ({ detail }) => handle(detail));
  on('joined', (detail) => dispatch({ type: 'joined', detail }));
  on('waiting', () => dispatch({ type: 'waiting' }));
  on('error', (detail) => dispatch({ type: 'serverError', code: detail.code, message: detail.message, inReplyTo: detail.inReplyTo,
    hasToken: Boolean(access.token) }));
  on('meeting-ended', (detail) => dispatch({ type: 'meetingEnded', reason: detail.reason }));
  on('moderated', (detail) => {
    if (detail.action === 'removed') dispatch({ type: 'removed', by: detail.by });
    else controls.moderated(detail);
  });
  on('close', (detail) => {
    // A socket we already replaced or closed is not ours to mourn.
    if (signaling === room.signaling) dispatch({ type: 'signalingClosed', reason: detail?.reason, at: Date.now() });
  });
  on('waiting-room', (detail) => {
    const before = new Set(panel.waiting.map((w) => w.id));
    panel.waiting = detail.waiting;
    const arrived = detail.waiting.filter((w) => !before.has(w.id));
    if (arrived.length) showBanner(`${arrived.map((w) => w.name).join(', ')} ${arrived.length > 1 ? 'are' : 'is'} waiting to join (People).`);
    renderPanel();
  });
  on('meeting-state', (detail) => { panel.meetingState = detail.state; controls.applyMeetingState(); });
  on('reported', (detail) => showBanner(`${detail.report.reporterName} reported ${detail.report.reportedName}: ${detail.report.reason}`));
  on('participant-joined', (detail) => { room.participants.set(detail.participant.id, detail.participant); stage.render(); });
  on('participant-updated', (detail) => {
    if (detail.participant.id === session.participantId) {
      panel.role = detail.participant.role;
      controls.applyMeetingState();
      return;
    }
    room.participants.set(detail.participant.id, detail.participant);
    media.wantReceivers();
    stage.render();
  });
  on('participant-left', (detail) => {
    parley.departures.push(detail.participantId);
    room.participants.delete(detail.participantId);
    stage.render();
  });
  on('assignments', (detail) => room.peer?.applyAssignments(detail.assignments, detail.assignmentsVersion));
  on('publish-layers', (detail) => room.peer?.setPublishedLayers(detail.mid, detail.rids));
  on('active-speaker', (detail) => stage.setActiveSpeaker(detail.participantId));
  on('video-paused', (detail) => stage.setPausedMids(detail.mids));
  on('chat', (detail) => addChatMessage({ ...detail, self: detail.from === session.participantId }));
}

// Another network (Wi-Fi to cellular, a cable plugged in): look for the path again at once.
window.addEventListener('online', () => media.restart());
navigator.connection?.addEventListener?.('change', () => media.restart());
window.addEventListener('resize', () => stage.reportViewport());
setInterval(() => stage.reportViewport(), 2000);

controls.wire();
lobby.wire({
  join: (name) => dispatch({ type: 'join', name }),
  rejoin: (name) => dispatch({ type: 'rejoin', name }),
});

// A returning sign-in or a ?name= link joins at once.
lobby.prepare().then(({ found, name }) => {
  if (!found) dispatch({ type: 'meetingNotFound' });
  else if (name) dispatch({ type: 'join', name });
});

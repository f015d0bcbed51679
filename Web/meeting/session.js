// Where this page is with its meeting, as states:
//
//   lobby ─join─▶ joining ─waiting─▶ waiting
//                    └────joined───────┴──▶ joined ─socket lost─▶ reconnecting
//                                             ▲                        │
//                                             └────────joined──────────┘
//
// From joining, waiting, joined or reconnecting: leaving, being removed, the meeting ending, a
// refusal or losing the server for good end the session (ended; Rejoin goes to joining, or to
// the lobby without a name). A refusal the lobby can fix goes back to the lobby; a stale token
// is dropped and joining starts again.
//
// next(state, event) returns the state after the event and the actions the shell (app.js)
// carries out, in order. Pure: no DOM, no network, no timers, so every transition can be
// tested; an event that means nothing in a state leaves it as it is, with no action.
//
// Events: join {name}, rejoin {name}, meetingNotFound, mediaReady, signalingOpened,
// signalingUnreachable {message, at}, reconnectDue, waiting, joined {detail}, serverError {code,
// message, hasToken}, signalingClosed {reason, at}, rebuildOnResume, meetingEnded {reason},
// removed {by}, leave, leaveWaiting. `at` is the time (ms) the shell saw it.
import { lobbyFixable, tokenRefusals } from '../access.js';
import { firstReconnectDelay, keepReconnecting, nextReconnectDelay, resumePlan } from './recovery.js';

export const phases = ['lobby', 'joining', 'waiting', 'joined', 'reconnecting', 'ended'];

/// `rebuildOnResume`: the media path died with the socket, so the peer connection is made anew
/// once the participant is resumed. `reconnect`: while the socket is being reconnected, since
/// when and the pause before the attempt under way.
export function initialSession(meeting) {
  return { phase: 'lobby', meeting, name: null, participantId: null, rebuildOnResume: false, reconnect: null };
}

export function next(state, event) {
  const table = transitions[state.phase];
  // Own entries only: an event named like an Object method ('toString') is no transition.
  const transition = table && Object.hasOwn(table, event?.type) ? table[event.type] : null;
  return transition?.(state, event) ?? [state, []];
}

const lostServer = ['Disconnected', 'The connection to the server was lost. Rejoin when it is back.'];

// What the server's refusals are called on the goodbye card.
const refusalTitles = {
  locked: 'The meeting is locked', removed: 'You were removed', denied: 'You were not let in',
  'meeting-not-found': 'No such meeting', 'invalid-invite': 'This invite link does not work', 'meeting-full': 'The meeting is full',
};

function joining(state, name, before = []) {
  return [{ ...state, phase: 'joining', name, reconnect: null },
    [...before, { type: 'showScreen', screen: 'room' }, { type: 'useTypedPassword' }, { type: 'startLocalMedia' }]];
}

function end(state, title, text, before = []) {
  return [{ ...state, phase: 'ended', participantId: null, reconnect: null },
    [...before, { type: 'tearDown' }, { type: 'showGoodbye', title, text: text ?? '' }]];
}

function enterRoom(state, { detail }) {
  return [{ ...state, phase: 'joined', participantId: detail.participantId }, [
    { type: 'useIceServers', iceServers: detail.iceServers ?? [] },
    { type: 'showScreen', screen: 'room' },
    { type: 'hideLobbyError' },
    { type: 'rememberToken', token: detail.token },
    { type: 'adoptRole', role: detail.role ?? 'participant', meetingState: detail.state ?? null },
    { type: 'noteJoinedAt' },
    { type: 'setParticipants', participants: detail.participants ?? [], media: detail.media ?? null },
    { type: 'showLocalMedia', name: state.name },
    { type: 'startPeer' },
    { type: 'render' },
    { type: 'applyMeetingState' },
  ]];
}

/// Back after a signaling reconnect, with everyone as the server now knows them.
function reenterRoom(state, { detail }) {
  const resumed = Boolean(detail.resumed) && detail.participantId === state.participantId;
  const plan = resumePlan({ resumed, rebuildOnResume: state.rebuildOnResume });
  const resume = [{ type: 'count', counter: 'signalingResumes' }, { type: 'noteMediaEvent', event: 'signaling-resumed' }];
  const media = {
    'new-connection': [...resume, { type: 'rebuildPeer', message: 'The network changed; reconnecting…' }],
    renegotiate: [...resume, { type: 'resumePeer' }],
    replace: [{ type: 'replacePeer' }],
  }[plan];
  return [{
    ...state, phase: 'joined', participantId: detail.participantId, reconnect: null,
    rebuildOnResume: plan === 'new-connection' ? false : state.rebuildOnResume,
  }, [
    { type: 'useIceServers', iceServers: detail.iceServers ?? [] },
    { type: 'rememberToken', token: detail.token },
    // null: keep the role and the meeting's state we knew.
    { type: 'adoptRole', role: detail.role ?? null, meetingState: detail.state ?? null },
    { type: 'setParticipants', participants: detail.participants ?? [], media: detail.media ?? null },
    { type: 'showBanner', text: '' },
    ...media,
    { type: 'render' },
    { type: 'applyMeetingState' },
  ]];
}

/// The server did not let us in (or, reconnecting, back in): back to the lobby when the lobby can
/// fix it, else say why on the goodbye card.
function refuse(state, { code, message, hasToken }) {
  const outside = { ...state, participantId: null, reconnect: null };
  // A stale token from an earlier visit: drop it and try as a newcomer (no longer reconnecting).
  if (tokenRefusals.has(code) && hasToken) {
    const calm = state.phase === 'reconnecting' ? [{ type: 'showBanner', text: '' }] : [];
    return joining(outside, state.name, [{ type: 'tearDown' }, { type: 'forgetToken' }, ...calm]);
  }
  if (lobbyFixable.has(code)) {
    const actions = [{ type: 'tearDown' }, { type: 'forgetPassword' }];
    if (['password-required', 'wrong-password'].includes(code)) actions.push({ type: 'askForPassword' });
    if (['sign-in-required', 'domain-not-allowed', 'sign-in-failed'].includes(code)) actions.push({ type: 'askToSignIn' });
    actions.push({ type: 'showLobbyError', message }, { type: 'showScreen', screen: 'lobby' });
    return [{ ...outside, phase: 'lobby' }, actions];
  }
  return end(state, refusalTitles[code] ?? 'Could not join', message);
}

/// The signaling server went away (a node died, a restart): reconnect with growing pauses and
/// come back with our token as the same participant, without password or waiting room.
function startReconnecting(state, { reason, at }) {
  const delay = firstReconnectDelay(reason);
  return [{ ...state, phase: 'reconnecting', reconnect: { startedAt: at, delay } }, [
    { type: 'showBanner', text: 'Lost the connection to the server; reconnecting…', error: true },
    { type: 'scheduleReconnect', delay },
  ]];
}

function reconnectFailed(state, { at }) {
  if (!state.reconnect) return null;
  const { startedAt, delay } = state.reconnect;
  if (!keepReconnecting(startedAt, at)) return end(state, ...lostServer);
  const following = nextReconnectDelay(delay);
  return [{ ...state, reconnect: { startedAt, delay: following } }, [{ type: 'scheduleReconnect', delay: following }]];
}

// Ways out that are the same wherever we are with the meeting.
const leaving = {
  meetingEnded: (state, { reason }) => end(state, 'The meeting has ended', reason),
  // The token stays: it is the credential the removal blocks, so Rejoin is refused too.
  removed: (state, { by }) => end(state, 'You were removed', `${by} removed you from the meeting.`),
  leave: (state) => end(state, 'You left the meeting', `Meeting “${state.meeting}”.`, [{ type: 'send', message: { type: 'leave' } }]),
  leaveWaiting: (state) => end(state, 'You left the waiting room', `Meeting “${state.meeting}”.`, [{ type: 'send', message: { type: 'leave' } }]),
};

// A socket that opened after we stopped wanting it (left while it connected).
const unwantedSocket = (state) => [state, [{ type: 'closeSignaling' }]];

const transitions = {
  lobby: {
    join: (state, { name }) => joining(state, name),
    meetingNotFound: (state) => end(state, 'No such meeting',
      `There is no meeting “${state.meeting}” on this server. Check the link, or ask the host for a new one.`),
    signalingOpened: unwantedSocket,
  },
  joining: {
    mediaReady: (state) => [state, [{ type: 'connectSignaling' }]],
    signalingOpened: (state) => [state, [{ type: 'sendJoin', name: state.name, resume: null }]],
    signalingUnreachable: (state, { message }) => [{ ...state, phase: 'lobby' }, [
      { type: 'stopLocalMedia' },
      { type: 'showBanner', text: `${message}. Is the server running? Reload the page to try again.`, error: true },
      { type: 'showScreen', screen: 'lobby' },
    ]],
    waiting: (state) => [{ ...state, phase: 'waiting' }, [{ type: 'showScreen', screen: 'waiting' }]],
    joined: enterRoom,
    serverError: refuse,
    signalingClosed: (state) => end(state, ...lostServer),
    ...leaving,
  },
  waiting: {
    joined: enterRoom,
    serverError: refuse,
    signalingClosed: (state) => end(state, ...lostServer),
    ...leaving,
  },
  joined: {
    serverError: (state, { code, message, inReplyTo }) => [state, code === 'media-failed'
      // The media server is gone (an SFU stopped): a new peer connection lands on the meeting's new one.
      // News of it (not the reply to an offer) may come after we started one already: that one goes on.
      ? [{ type: 'rebuildPeer', message: 'The media server changed; reconnecting…', unlessFresh: inReplyTo !== 'offer' }]
      : [{ type: 'showBanner', text: `${message} (${code})`, error: true }]],
    signalingClosed: startReconnecting,
    ...leaving,
  },
  reconnecting: {
    reconnectDue: (state) => [state, [{ type: 'connectSignaling' }]],
    // Ask for our participant back (same id, same media).
    signalingOpened: (state) => [{ ...state, reconnect: null }, [
      { type: 'sendJoin', name: state.name, resume: state.participantId },
      { type: 'count', counter: 'signalingReconnects' },
    ]],
    signalingUnreachable: reconnectFailed,
    joined: reenterRoom,
    serverError: refuse,
    // The new socket closed before the server took us back.
    signalingClosed: (state) => end(state, ...lostServer),
    rebuildOnResume: (state) => [{ ...state, rebuildOnResume: true }, []],
    ...leaving,
  },
  ended: {
    rejoin: (state, { name }) => (name
      ? joining(state, name, [{ type: 'showBanner', text: '' }])
      : [{ ...state, phase: 'lobby' }, [{ type: 'showBanner', text: '' }, { type: 'showScreen', screen: 'lobby' }]]),
    // Media asked for before leaving arrived after: the camera goes off again.
    mediaReady: (state) => [state, [{ type: 'stopLocalMedia' }]],
    signalingOpened: unwantedSocket,
  },
};

// The session's states: node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { initialSession, next, phases } from '../session.js';

const types = (actions) => actions.map((a) => a.type);

/// Runs events from `state`; returns the last state and every action, in order.
function run(events, state = initialSession('demo')) {
  const actions = [];
  for (const event of events) {
    const [after, done] = next(state, event);
    state = after;
    actions.push(...done);
  }
  return [state, actions];
}

const joinedDetail = (over = {}) => ({
  participantId: 'p1', role: 'host', token: 't1', iceServers: [{ urls: 'turn:x' }], state: { locked: true },
  participants: [{ id: 'p2', name: 'Bob', tracks: [] }], media: { audioSpeakers: 3, videoSlots: 25 }, ...over,
});

// A state reached the way the page reaches it.
const at = {
  lobby: () => initialSession('demo'),
  joining: () => run([{ type: 'join', name: 'Ada' }])[0],
  waiting: () => run([{ type: 'join', name: 'Ada' }, { type: 'mediaReady' }, { type: 'signalingOpened' }, { type: 'waiting' }])[0],
  joined: () => run([{ type: 'join', name: 'Ada' }, { type: 'mediaReady' }, { type: 'signalingOpened' }, { type: 'joined', detail: joinedDetail() }])[0],
  reconnecting: () => run([{ type: 'signalingClosed', reason: '', at: 1000 }], at.joined())[0],
  ended: () => run([{ type: 'leave' }], at.joined())[0],
};

function deepFreeze(value) {
  if (value && typeof value === 'object') {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

test('the page starts in the lobby, knowing nobody', () => {
  const state = initialSession('demo');
  assert.equal(state.phase, 'lobby');
  assert.equal(state.participantId, null);
  assert.equal(state.meeting, 'demo');
  assert.deepEqual(phases, ['lobby', 'joining', 'waiting', 'joined', 'reconnecting', 'ended']);
  for (const phase of phases) assert.equal(at[phase]().phase, phase);
});

test('joining shows the room, takes the typed password and starts the camera; the socket comes once media is ready', () => {
  const [joining, actions] = next(at.lobby(), { type: 'join', name: 'Ada' });
  assert.equal(joining.phase, 'joining');
  assert.equal(joining.name, 'Ada');
  assert.deepEqual(actions, [{ type: 'showScreen', screen: 'room' }, { type: 'useTypedPassword' }, { type: 'startLocalMedia' }]);
  const [ready, connect] = next(joining, { type: 'mediaReady' });
  assert.equal(ready.phase, 'joining');
  assert.deepEqual(connect, [{ type: 'connectSignaling' }]);
  assert.deepEqual(next(ready, { type: 'signalingOpened' })[1], [{ type: 'sendJoin', name: 'Ada', resume: null }]);
});

test('a server that cannot be reached sends us back to the lobby and says so', () => {
  const [state, actions] = next(at.joining(), { type: 'signalingUnreachable', message: 'cannot reach the Parley server at ws://x/ws', at: 5 });
  assert.equal(state.phase, 'lobby');
  assert.deepEqual(actions, [
    { type: 'stopLocalMedia' },
    { type: 'showBanner', text: 'cannot reach the Parley server at ws://x/ws. Is the server running? Reload the page to try again.', error: true },
    { type: 'showScreen', screen: 'lobby' },
  ]);
});

test('the waiting room shows the waiting card; being let in enters the room', () => {
  const [waiting, actions] = next(at.joining(), { type: 'waiting' });
  assert.equal(waiting.phase, 'waiting');
  assert.deepEqual(actions, [{ type: 'showScreen', screen: 'waiting' }]);
  const [joined, entering] = next(waiting, { type: 'joined', detail: joinedDetail() });
  assert.equal(joined.phase, 'joined');
  assert.equal(joined.participantId, 'p1');
  assert.ok(types(entering).includes('startPeer'));
});

test('joined: the room is set up in the order the page needs (participants before the peer connection, render last)', () => {
  for (const from of [at.joining(), at.waiting()]) {
    const [state, actions] = next(from, { type: 'joined', detail: joinedDetail() });
    assert.equal(state.phase, 'joined');
    assert.equal(state.participantId, 'p1');
    assert.deepEqual(actions, [
      { type: 'useIceServers', iceServers: [{ urls: 'turn:x' }] },
      { type: 'showScreen', screen: 'room' },
      { type: 'hideLobbyError' },
      { type: 'rememberToken', token: 't1' },
      { type: 'adoptRole', role: 'host', meetingState: { locked: true } },
      { type: 'noteJoinedAt' },
      { type: 'setParticipants', participants: [{ id: 'p2', name: 'Bob', tracks: [] }], media: { audioSpeakers: 3, videoSlots: 25 } },
      { type: 'showLocalMedia', name: 'Ada' },
      { type: 'startPeer' },
      { type: 'render' },
      { type: 'applyMeetingState' },
    ]);
  }
  // Without role, servers or state: an ordinary participant, no TURN, the meeting's state as it was.
  const [, actions] = next(at.joining(), { type: 'joined', detail: { participantId: 'p9', participants: [] } });
  assert.deepEqual(actions.find((a) => a.type === 'adoptRole'), { type: 'adoptRole', role: 'participant', meetingState: null });
  assert.deepEqual(actions.find((a) => a.type === 'useIceServers'), { type: 'useIceServers', iceServers: [] });
});

test('losing the socket while joined reconnects: at once after a ping went unanswered, else after 250 ms', () => {
  const [pinged, actions] = next(at.joined(), { type: 'signalingClosed', reason: 'no answer to ping', at: 1000 });
  assert.equal(pinged.phase, 'reconnecting');
  assert.equal(pinged.participantId, 'p1', 'the participant id is kept, to be resumed');
  assert.deepEqual(actions, [
    { type: 'showBanner', text: 'Lost the connection to the server; reconnecting…', error: true },
    { type: 'scheduleReconnect', delay: 0 },
  ]);
  const [closed, closing] = next(at.joined(), { type: 'signalingClosed', reason: 'going away', at: 1000 });
  assert.equal(closed.phase, 'reconnecting');
  assert.deepEqual(closing[1], { type: 'scheduleReconnect', delay: 250 });
});

test('reconnect attempts back off 250, 500, 1000, 2000, 4000, 4000 ms and give up after a minute', () => {
  let [state] = next(at.joined(), { type: 'signalingClosed', reason: '', at: 0 });
  assert.deepEqual(next(state, { type: 'reconnectDue' })[1], [{ type: 'connectSignaling' }]);
  const delays = [];
  for (const time of [300, 900, 2000, 4100, 8200, 12300]) {
    let actions;
    [state, actions] = next(state, { type: 'signalingUnreachable', message: 'no', at: time });
    assert.equal(state.phase, 'reconnecting');
    delays.push(actions[0].delay);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 4000, 4000]);
  const [still] = next(state, { type: 'signalingUnreachable', message: 'no', at: 59_999 });
  assert.equal(still.phase, 'reconnecting');
  const [ended, actions] = next(state, { type: 'signalingUnreachable', message: 'no', at: 60_000 });
  assert.equal(ended.phase, 'ended');
  assert.equal(ended.participantId, null);
  assert.deepEqual(actions, [
    { type: 'tearDown' },
    { type: 'showGoodbye', title: 'Disconnected', text: 'The connection to the server was lost. Rejoin when it is back.' },
  ]);
});

test('a new socket asks for our participant back and is counted', () => {
  const [state, actions] = next(at.reconnecting(), { type: 'signalingOpened' });
  assert.equal(state.phase, 'reconnecting');
  assert.deepEqual(actions, [
    { type: 'sendJoin', name: 'Ada', resume: 'p1' },
    { type: 'count', counter: 'signalingReconnects' },
  ]);
  // Closed again before the server took us back: no second round.
  const [ended, ending] = next(state, { type: 'signalingClosed', reason: '', at: 3000 });
  assert.equal(ended.phase, 'ended');
  assert.deepEqual(ending.at(-1), { type: 'showGoodbye', title: 'Disconnected', text: 'The connection to the server was lost. Rejoin when it is back.' });
});

test('resumed as the same participant: the same peer connection goes on over the new socket', () => {
  const [opened] = next(at.reconnecting(), { type: 'signalingOpened' });
  const [state, actions] = next(opened, { type: 'joined', detail: { participantId: 'p1', resumed: true, token: 't2', participants: [] } });
  assert.equal(state.phase, 'joined');
  assert.equal(state.participantId, 'p1');
  assert.deepEqual(actions, [
    { type: 'useIceServers', iceServers: [] },
    { type: 'rememberToken', token: 't2' },
    { type: 'adoptRole', role: null, meetingState: null },
    { type: 'setParticipants', participants: [], media: null },
    { type: 'showBanner', text: '' },
    { type: 'count', counter: 'signalingResumes' },
    { type: 'noteMediaEvent', event: 'signaling-resumed' },
    { type: 'resumePeer' },
    { type: 'render' },
    { type: 'applyMeetingState' },
  ]);
});

test('resumed after the media path died with the socket: a fresh peer connection, once', () => {
  let [state] = next(at.reconnecting(), { type: 'rebuildOnResume' });
  assert.equal(state.rebuildOnResume, true);
  let actions;
  [state, actions] = next(state, { type: 'joined', detail: { participantId: 'p1', resumed: true, participants: [] } });
  assert.equal(state.rebuildOnResume, false);
  assert.deepEqual(actions.slice(5, 8), [
    { type: 'count', counter: 'signalingResumes' },
    { type: 'noteMediaEvent', event: 'signaling-resumed' },
    { type: 'rebuildPeer', message: 'The network changed; reconnecting…' },
  ]);
  assert.ok(!types(actions).includes('resumePeer'));
});

test('not resumed (a new participant id): a new peer connection, no resume counted', () => {
  for (const detail of [{ participantId: 'p7', resumed: false }, { participantId: 'p7', resumed: true }, { participantId: 'p1' }]) {
    const [state, actions] = next(at.reconnecting(), { type: 'joined', detail: { ...detail, participants: [] } });
    assert.equal(state.phase, 'joined');
    assert.equal(state.participantId, detail.participantId);
    assert.deepEqual(types(actions).slice(5), ['replacePeer', 'render', 'applyMeetingState']);
  }
});

test('a server error in the room: media-failed rebuilds the peer connection, anything else is shown', () => {
  const [state, actions] = next(at.joined(), { type: 'serverError', code: 'media-failed', message: 'gone', hasToken: true });
  assert.equal(state.phase, 'joined');
  // News of a lost transport spares a fresh peer connection already under way; the reply to an offer does not.
  assert.deepEqual(actions, [{ type: 'rebuildPeer', message: 'The media server changed; reconnecting…', unlessFresh: true }]);
  assert.deepEqual(next(at.joined(), { type: 'serverError', code: 'media-failed', message: 'gone', inReplyTo: 'offer', hasToken: true })[1],
    [{ type: 'rebuildPeer', message: 'The media server changed; reconnecting…', unlessFresh: false }]);
  assert.deepEqual(next(at.joined(), { type: 'serverError', code: 'forbidden', message: 'hosts only', hasToken: true })[1],
    [{ type: 'showBanner', text: 'hosts only (forbidden)', error: true }]);
});

test('refusals the lobby can fix go back to the lobby, asking for what is missing', () => {
  for (const from of ['joining', 'waiting', 'reconnecting']) {
    const [state, actions] = next(at[from](), { type: 'serverError', code: 'wrong-password', message: 'wrong password', hasToken: false });
    assert.equal(state.phase, 'lobby', from);
    assert.equal(state.participantId, null);
    assert.deepEqual(actions, [
      { type: 'tearDown' }, { type: 'forgetPassword' }, { type: 'askForPassword' },
      { type: 'showLobbyError', message: 'wrong password' }, { type: 'showScreen', screen: 'lobby' },
    ]);
  }
  const signIn = next(at.joining(), { type: 'serverError', code: 'domain-not-allowed', message: 'not your domain', hasToken: false })[1];
  assert.deepEqual(types(signIn), ['tearDown', 'forgetPassword', 'askToSignIn', 'showLobbyError', 'showScreen']);
  const attempts = next(at.joining(), { type: 'serverError', code: 'too-many-attempts', message: 'retry in 30 s', hasToken: false })[1];
  assert.deepEqual(types(attempts), ['tearDown', 'forgetPassword', 'showLobbyError', 'showScreen']);
});

test('a stale token is dropped and joining starts again as a newcomer', () => {
  const [state, actions] = next(at.reconnecting(), { type: 'serverError', code: 'expired-token', message: 'expired', hasToken: true });
  assert.equal(state.phase, 'joining');
  assert.equal(state.participantId, null, 'no resume of the old participant');
  assert.equal(state.name, 'Ada');
  assert.deepEqual(actions, [
    { type: 'tearDown' }, { type: 'forgetToken' }, { type: 'showBanner', text: '' },
    { type: 'showScreen', screen: 'room' }, { type: 'useTypedPassword' }, { type: 'startLocalMedia' },
  ]);
  // From the lobby's first try the banner (a camera warning, say) stays.
  assert.deepEqual(types(next(at.joining(), { type: 'serverError', code: 'invalid-token', message: 'm', hasToken: true })[1]),
    ['tearDown', 'forgetToken', 'showScreen', 'useTypedPassword', 'startLocalMedia']);
  // Without a token to drop, the same refusal ends the session.
  const [ended, ending] = next(at.joining(), { type: 'serverError', code: 'invalid-token', message: 'bad token', hasToken: false });
  assert.equal(ended.phase, 'ended');
  assert.deepEqual(ending.at(-1), { type: 'showGoodbye', title: 'Could not join', text: 'bad token' });
});

test('other refusals end the session with their own title', () => {
  const titles = {
    locked: 'The meeting is locked', removed: 'You were removed', denied: 'You were not let in', 'meeting-not-found': 'No such meeting',
    'invalid-invite': 'This invite link does not work', 'meeting-full': 'The meeting is full', 'not-joined': 'Could not join',
  };
  for (const [code, title] of Object.entries(titles)) {
    const [state, actions] = next(at.waiting(), { type: 'serverError', code, message: `because ${code}`, hasToken: true });
    assert.equal(state.phase, 'ended', code);
    assert.deepEqual(actions, [{ type: 'tearDown' }, { type: 'showGoodbye', title, text: `because ${code}` }]);
  }
});

test('leaving tells the server first, then tears down', () => {
  const [state, actions] = next(at.joined(), { type: 'leave' });
  assert.equal(state.phase, 'ended');
  assert.equal(state.participantId, null);
  assert.deepEqual(actions, [
    { type: 'send', message: { type: 'leave' } }, { type: 'tearDown' },
    { type: 'showGoodbye', title: 'You left the meeting', text: 'Meeting “demo”.' },
  ]);
  assert.deepEqual(next(at.waiting(), { type: 'leaveWaiting' })[1], [
    { type: 'send', message: { type: 'leave' } }, { type: 'tearDown' },
    { type: 'showGoodbye', title: 'You left the waiting room', text: 'Meeting “demo”.' },
  ]);
});

test('the meeting ending or a removal ends the session from wherever we are with it', () => {
  for (const from of ['joining', 'waiting', 'joined', 'reconnecting']) {
    assert.deepEqual(run([{ type: 'meetingEnded', reason: 'the server is shutting down' }], at[from]()),
      [{ ...at[from](), phase: 'ended', participantId: null, reconnect: null },
        [{ type: 'tearDown' }, { type: 'showGoodbye', title: 'The meeting has ended', text: 'the server is shutting down' }]]);
    const [removed, actions] = next(at[from](), { type: 'removed', by: 'Host' });
    assert.equal(removed.phase, 'ended');
    assert.deepEqual(actions.at(-1), { type: 'showGoodbye', title: 'You were removed', text: 'Host removed you from the meeting.' });
  }
  // No reason given: an empty text, not "undefined".
  assert.deepEqual(next(at.joined(), { type: 'meetingEnded' })[1].at(-1), { type: 'showGoodbye', title: 'The meeting has ended', text: '' });
});

test('a meeting the server does not have ends the session before it began', () => {
  const [state, actions] = next(at.lobby(), { type: 'meetingNotFound' });
  assert.equal(state.phase, 'ended');
  assert.deepEqual(actions, [{ type: 'tearDown' }, {
    type: 'showGoodbye', title: 'No such meeting',
    text: 'There is no meeting “demo” on this server. Check the link, or ask the host for a new one.',
  }]);
});

test('rejoin clears the banner and joins again, or goes to the lobby without a name', () => {
  const [state, actions] = next(at.ended(), { type: 'rejoin', name: 'Ada L' });
  assert.equal(state.phase, 'joining');
  assert.equal(state.name, 'Ada L');
  assert.deepEqual(types(actions), ['showBanner', 'showScreen', 'useTypedPassword', 'startLocalMedia']);
  assert.deepEqual(actions[0], { type: 'showBanner', text: '' });
  const [lobby, back] = next(at.ended(), { type: 'rejoin', name: null });
  assert.equal(lobby.phase, 'lobby');
  assert.deepEqual(back, [{ type: 'showBanner', text: '' }, { type: 'showScreen', screen: 'lobby' }]);
});

test('what arrives after leaving is put away: media is stopped, a socket is closed', () => {
  assert.deepEqual(next(at.ended(), { type: 'mediaReady' })[1], [{ type: 'stopLocalMedia' }]);
  assert.deepEqual(next(at.ended(), { type: 'signalingOpened' })[1], [{ type: 'closeSignaling' }]);
  assert.deepEqual(next(at.lobby(), { type: 'signalingOpened' })[1], [{ type: 'closeSignaling' }]);
});

test('events that mean nothing in a state leave it unchanged, with no action', () => {
  const detail = joinedDetail();
  const ignored = {
    lobby: ['mediaReady', 'waiting', 'joined', 'serverError', 'signalingClosed', 'signalingUnreachable', 'reconnectDue',
      'rebuildOnResume', 'meetingEnded', 'removed', 'leave', 'leaveWaiting', 'rejoin'],
    joining: ['join', 'rejoin', 'meetingNotFound', 'reconnectDue', 'rebuildOnResume'],
    waiting: ['join', 'rejoin', 'meetingNotFound', 'mediaReady', 'signalingOpened', 'signalingUnreachable', 'waiting', 'reconnectDue', 'rebuildOnResume'],
    joined: ['join', 'rejoin', 'meetingNotFound', 'mediaReady', 'signalingOpened', 'signalingUnreachable', 'waiting', 'joined',
      'reconnectDue', 'rebuildOnResume'],
    reconnecting: ['join', 'rejoin', 'meetingNotFound', 'mediaReady', 'waiting'],
    ended: ['join', 'meetingNotFound', 'waiting', 'joined', 'serverError', 'signalingClosed', 'signalingUnreachable', 'reconnectDue',
      'rebuildOnResume', 'meetingEnded', 'removed', 'leave', 'leaveWaiting'],
  };
  for (const [phase, events] of Object.entries(ignored)) {
    for (const type of [...events, 'no-such-event', 'toString', 'constructor', '__proto__']) {
      const state = at[phase]();
      const [after, actions] = next(state, { type, name: 'Eve', detail, code: 'media-failed', message: 'm', reason: 'r', at: 1, by: 'Host' });
      assert.equal(after, state, `${type} in ${phase} changed the state`);
      assert.deepEqual(actions, [], `${type} in ${phase} did something`);
    }
    const state = at[phase]();
    const [after, actions] = next(state, undefined);
    assert.equal(after, state);
    assert.deepEqual(actions, []);
  }
  // A second failed attempt report once the socket is open (no attempt under way) means nothing either.
  const [opened] = next(at.reconnecting(), { type: 'signalingOpened' });
  assert.deepEqual(next(opened, { type: 'signalingUnreachable', message: 'm', at: 2 }), [opened, []]);
});

test('next never changes the state it is given', () => {
  for (const phase of phases) {
    const state = deepFreeze(at[phase]());
    const copy = structuredClone(state);
    for (const type of ['join', 'rejoin', 'mediaReady', 'signalingOpened', 'signalingUnreachable', 'waiting', 'joined', 'serverError',
      'signalingClosed', 'reconnectDue', 'rebuildOnResume', 'meetingEnded', 'removed', 'leave', 'leaveWaiting', 'meetingNotFound']) {
      next(state, { type, name: 'Eve', detail: joinedDetail(), code: 'wrong-password', message: 'm', reason: '', at: 1, by: 'Host', hasToken: true });
    }
    assert.deepEqual(state, copy);
  }
});

test('a whole visit: join, wait, enter, lose the server, come back as the same participant, leave', () => {
  const [state, actions] = run([
    { type: 'join', name: 'Ada' }, { type: 'mediaReady' }, { type: 'signalingOpened' }, { type: 'waiting' },
    { type: 'joined', detail: joinedDetail() },
    { type: 'signalingClosed', reason: '', at: 10_000 }, { type: 'reconnectDue' },
    { type: 'signalingUnreachable', message: 'down', at: 10_300 }, { type: 'reconnectDue' }, { type: 'signalingOpened' },
    { type: 'joined', detail: joinedDetail({ resumed: true }) },
    { type: 'leave' },
  ]);
  assert.equal(state.phase, 'ended');
  const sent = actions.filter((a) => ['sendJoin', 'send', 'scheduleReconnect', 'startPeer', 'resumePeer', 'replacePeer', 'rebuildPeer'].includes(a.type));
  assert.deepEqual(sent, [
    { type: 'sendJoin', name: 'Ada', resume: null },
    { type: 'startPeer' },
    { type: 'scheduleReconnect', delay: 250 },
    { type: 'scheduleReconnect', delay: 500 },
    { type: 'sendJoin', name: 'Ada', resume: 'p1' },
    { type: 'resumePeer' },
    { type: 'send', message: { type: 'leave' } },
  ]);
});

test('every action the session can ask for is carried out by app.js', () => {
  const source = readFileSync(new URL('../../app.js', import.meta.url), 'utf8');
  const table = source.slice(source.indexOf('const effects = {'), source.indexOf('\n};', source.indexOf('const effects = {')));
  const carriedOut = new Set([...table.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1]));
  assert.ok(carriedOut.size > 10, 'the effects table was not found in app.js');
  const asked = new Set();
  const events = ['join', 'rejoin', 'mediaReady', 'signalingOpened', 'signalingUnreachable', 'waiting', 'joined', 'signalingClosed',
    'reconnectDue', 'rebuildOnResume', 'meetingEnded', 'removed', 'leave', 'leaveWaiting', 'meetingNotFound'];
  const errors = ['media-failed', 'forbidden', 'wrong-password', 'sign-in-required', 'invalid-token', 'locked'];
  for (const phase of phases) {
    for (const type of events) {
      for (const [resumed, rebuild] of [[true, true], [true, false], [false, true], [false, false]]) {
        let state = at[phase]();
        if (rebuild) state = next(state, { type: 'rebuildOnResume' })[0];
        const event = { type, name: 'Eve', detail: joinedDetail({ resumed, participantId: 'p1' }), message: 'm', reason: '', at: 1e9, by: 'H' };
        for (const action of next(state, event)[1]) asked.add(action.type);
      }
    }
    for (const code of errors) {
      for (const hasToken of [true, false]) {
        for (const action of next(at[phase](), { type: 'serverError', code, message: 'm', hasToken })[1]) asked.add(action.type);
      }
    }
  }
  for (const type of asked) assert.ok(carriedOut.has(type), `app.js has no effect for the action ${type}`);
  assert.ok(asked.size >= 30, `only ${asked.size} kinds of action were reached`);
});

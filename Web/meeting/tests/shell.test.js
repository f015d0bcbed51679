// app.js wired to the modules, in a fake page (fake-browser.js) with the test as the server:
// node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { FakeBrowser, settle } from './fake-browser.js';

const app = new URL('../../app.js', import.meta.url).href;

const people = [
  { id: 'p2', name: 'Bob', role: 'participant', audioMuted: false, videoMuted: false, tracks: [{ kind: 'audio', source: 'microphone' }, { kind: 'video', source: 'camera' }] },
];
const joined = (over = {}) => ({ type: 'joined', participantId: 'p1', role: 'host', token: 'tok-1', iceServers: [], participants: people, ...over });

/// Answers the page's offers until it makes no more (one runs at a time), showing Bob on the
/// receiving mids.
async function answer(page) {
  const { socket } = page;
  socket.answered ??= 0;
  while (socket.of('offer').length > socket.answered) {
    socket.answered = socket.of('offer').length;
    const receiving = page.peer.transceivers.filter((t) => t.direction === 'recvonly');
    await socket.receive({
      type: 'answer', sdp: 'v=0 answer', assignmentsVersion: 1,
      assignments: receiving.map((t) => ({ mid: t.mid, participantId: 'p2', kind: t.kind, source: 'camera' })),
    });
  }
}

async function pong(page) {
  const { socket } = page;
  socket.ponged ??= 0;
  for (const ping of socket.of('ping').slice(socket.ponged)) await socket.receive({ type: 'pong', id: ping.id });
  socket.ponged = socket.of('ping').length;
}

/// Opens the page (?name=Ada unless said otherwise; `storage`: what sessionStorage holds), runs
/// `steps`, and puts the real globals back.
function visit(name, { storage = {}, ...options }, steps) {
  test(name, async () => {
    const page = new FakeBrowser({ search: '?name=Ada', ...options });
    for (const [key, value] of Object.entries(storage)) page.sessionStorage.set(key, value);
    try {
      await page.open(app);
      await steps(page);
    } finally {
      page.close();
    }
  });
}

async function inRoom(page) {
  await page.socket.open();
  await page.socket.receive(joined());
  await answer(page);
}

visit('a ?name= link joins at once and the room shows everyone', {}, async (page) => {
  assert.equal(page.document.title, 'demo · Parley');
  assert.equal(page.socket.url, 'ws://parley.test/ws?meeting=demo');
  assert.deepEqual(page.screens, ['room']);
  await page.socket.open();
  assert.deepEqual(page.socket.sent, [{ type: 'join', meeting: 'demo', name: 'Ada' }]);
  await page.socket.receive(joined());
  assert.deepEqual(page.screens, ['room']);
  assert.equal(page.parley.participantId, 'p1');
  assert.equal(page.parley.role, 'host');
  assert.equal(typeof page.parley.joinedAt, 'number');
  assert.deepEqual(page.parley.participants.map((p) => p.id), ['p2']);
  assert.equal(page.sessionStorage.get('parley-token:demo'), 'tok-1');
  const [offer] = page.socket.of('offer');
  assert.equal(offer.newConnection, true, 'the first offer of a peer connection asks for a new transport');
  assert.deepEqual(offer.sources, { 0: 'microphone', 1: 'camera' }, 'one offer carries every track the page starts with');
  await answer(page);
  assert.deepEqual(page.parley.tiles(), ['p2']);
  assert.equal(page.$('stage').children[0].textContent.includes('Ada (you)'), true);
});

visit('chat, mute and camera send what docs/signaling.md says', {}, async (page) => {
  await inRoom(page);
  page.$('chat-input').value = '  hello  ';
  page.$('chat-form').requestSubmit();
  page.$('toggle-mic').click();
  page.$('toggle-camera').click();
  await settle();
  assert.deepEqual(page.socket.of('chat'), [{ type: 'chat', text: 'hello' }]);
  assert.equal(page.$('chat-input').value, '');
  assert.deepEqual(page.socket.of('mute'), [{ type: 'mute', kind: 'audio', muted: true }, { type: 'mute', kind: 'video', muted: true }]);
  assert.equal(page.$('toggle-mic').textContent, 'Unmute');
  assert.equal(page.$('toggle-camera').textContent, 'Start video');
  await page.socket.receive({ type: 'chat', from: 'p2', name: 'Bob', text: 'hi Ada', at: 1 });
  assert.match(page.$('chat-log').textContent, /hi Ada/);
  await page.socket.receive({ type: 'participant-left', participantId: 'p2' });
  assert.deepEqual(page.parley.departures, ['p2']);
  assert.deepEqual(page.parley.tiles(), []);
});

visit('a password the lobby asks for goes with the next join', { search: '?name=Guest', meetingInfo: { hasPassword: true } }, async (page) => {
  assert.equal(page.$('password-field').hidden, false);
  await page.socket.open();
  await page.socket.receive({ type: 'error', code: 'password-required', message: 'this meeting needs a password' });
  assert.deepEqual(page.screens, ['lobby']);
  assert.equal(page.$('lobby-error').textContent, 'this meeting needs a password');
  assert.equal(page.$('lobby-error').hidden, false);
  page.$('password').value = 'open sesame';
  page.$('join-form').requestSubmit();
  await settle();
  await page.socket.open();
  assert.deepEqual(page.socket.sent, [{ type: 'join', meeting: 'demo', name: 'Guest', password: 'open sesame' }]);
  await page.socket.receive({ type: 'waiting' });
  assert.deepEqual(page.screens, ['waiting']);
  page.$('leave-waiting').click();
  assert.deepEqual(page.socket.of('leave'), [{ type: 'leave' }]);
  assert.deepEqual(page.screens, ['goodbye']);
  assert.equal(page.$('goodbye-title').textContent, 'You left the waiting room');
});

visit('a meeting the server does not have says so', { meetingInfo: null }, async (page) => {
  assert.deepEqual(page.screens, ['goodbye']);
  assert.equal(page.$('goodbye-title').textContent, 'No such meeting');
  assert.equal(page.sockets.length, 0);
});

visit('a server that cannot be reached leaves us in the lobby with a banner', {}, async (page) => {
  await page.socket.refuse();
  assert.deepEqual(page.screens, ['lobby']);
  assert.match(page.$('banner').textContent, /^cannot reach the Parley server at ws:\/\/parley\.test\/ws\?meeting=demo\. Is the server running\?/);
});

visit('a lost socket is reconnected after 250 ms and the participant resumed on the same peer connection', {}, async (page) => {
  await inRoom(page);
  const peer = page.peer;
  await page.socket.drop('going away');
  assert.match(page.$('banner').textContent, /^Lost the connection to the server/);
  await page.advance(249);
  assert.equal(page.sockets.length, 1);
  await page.advance(1);
  assert.equal(page.sockets.length, 2);
  await page.socket.open();
  assert.deepEqual(page.socket.sent, [{ type: 'join', meeting: 'demo', name: 'Ada', token: 'tok-1', resume: 'p1' }]);
  assert.equal(page.parley.signalingReconnects, 1);
  await page.socket.receive(joined({ resumed: true, role: undefined }));
  assert.equal(page.parley.signalingResumes, 1);
  assert.equal(page.parley.role, 'host');
  assert.equal(page.peer, peer, 'the same peer connection');
  const [offer] = page.socket.of('offer');
  assert.equal(offer.newConnection, undefined, 'renegotiated on the same transport');
  assert.equal(page.$('banner').textContent, '');
  assert.equal(page.parley.mediaRebuilds, undefined);
});

visit('ICE disconnected: an ICE restart on the same peer connection, again after 3 s while not connected', {}, async (page) => {
  await inRoom(page);
  page.peer.setState('connected');
  page.peer.setState('disconnected');
  await settle();
  assert.equal(page.peer.iceRestarts, 1);
  assert.equal(page.parley.iceRestarts, 1);
  assert.deepEqual(page.socket.of('ping').length, 1, 'the socket is checked too');
  await pong(page);
  await answer(page);
  await page.advance(2999);
  assert.equal(page.peer.iceRestarts, 1);
  await page.advance(1);
  assert.equal(page.peer.iceRestarts, 2);
  await pong(page);
  await answer(page);
  assert.equal(page.peers.length, 1, 'no new peer connection');
  page.peer.setState('connected');
  await page.advance(5000);
  assert.equal(page.peer.iceRestarts, 2, 'connected: no more restarts');
  assert.deepEqual(page.parley.mediaEvents.map((e) => e.event).filter((e) => e !== 'answered'),
    ['peer-connected', 'peer-disconnected', 'ice-restart', 'signaling-alive', 'ice-restart', 'signaling-alive', 'peer-connected']);
});

visit('the flow stops dead and the ping goes unanswered: reconnect at once, resume, then a fresh peer connection', {}, async (page) => {
  await inRoom(page);
  page.peer.setState('connected');
  for (let n = 0; n < 6; n += 1) {
    page.peer.bytesReceived += 1000;
    await page.advance(250);
  }
  await page.advance(750);
  assert.equal(page.parley.pathStalls, 1);
  assert.equal(page.socket.of('ping').length, 1);
  await page.advance(400);
  assert.equal(page.sockets[0].readyState, 3, 'the dead socket is given up on');
  await page.advance(0);
  assert.equal(page.sockets.length, 2, 'reconnecting without a pause');
  await page.socket.open();
  assert.equal(page.socket.of('join')[0].resume, 'p1');
  await page.socket.receive(joined({ resumed: true }));
  assert.equal(page.peers.length, 2);
  assert.equal(page.peers[0].closed, true);
  assert.equal(page.parley.mediaRebuilds, 1);
  assert.equal(page.socket.of('offer')[0].newConnection, true);
  assert.deepEqual(page.parley.mediaEvents.map((e) => e.event).filter((e) => e !== 'answered'),
    ['peer-connected', 'path-stalled', 'signaling-dead', 'signaling-resumed', 'new-connection']);
});

visit('media-failed while joined: a fresh peer connection on the same socket', {}, async (page) => {
  await inRoom(page);
  await page.socket.receive({ type: 'error', code: 'media-failed', message: 'gone' });
  assert.equal(page.peers.length, 2);
  assert.equal(page.parley.mediaRebuilds, 1);
  assert.equal(page.$('banner').textContent, 'The media server changed; reconnecting…');
  assert.equal(page.socket.of('offer').at(-1).newConnection, true);
});

visit('removed by a host: the goodbye card says by whom', {}, async (page) => {
  await inRoom(page);
  await page.socket.receive({ type: 'moderated', action: 'removed', by: 'Host' });
  assert.deepEqual(page.screens, ['goodbye']);
  assert.equal(page.$('goodbye-title').textContent, 'You were removed');
  assert.equal(page.$('goodbye-text').textContent, 'Host removed you from the meeting.');
  assert.equal(page.parley.participantId, null);
  assert.deepEqual(page.parley.tiles(), []);
});

// Before the states, the refused socket's close could arrive while joining again and end the visit.
visit('a stale token is dropped and the join tried again, whenever the refused socket closes', { storage: { 'parley-token:demo': 'old' } }, async (page) => {
  await page.socket.open();
  assert.equal(page.socket.sent[0].token, 'old');
  await page.socket.receive({ type: 'error', code: 'invalid-token', message: 'bad token' });
  await page.advance(10);
  assert.deepEqual(page.screens, ['room']);
  assert.equal(page.sessionStorage.has('parley-token:demo'), false);
  await page.socket.open();
  assert.deepEqual(page.socket.sent, [{ type: 'join', meeting: 'demo', name: 'Ada' }]);
  await page.socket.receive(joined());
  assert.equal(page.parley.participantId, 'p1');
});

// window.parley, as the interop tests read it: node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { count, counters, createDiagnostics, noteMediaEvent } from '../diagnostics.js';

const interop = new URL('../../../Tests/Interop/', import.meta.url);

function fake() {
  const panel = { role: 'host', waiting: [{ id: 'w1', name: 'Guest' }], meetingState: { locked: true } };
  const room = { peer: null, participants: new Map([['p2', { id: 'p2', name: 'Bob' }]]) };
  let session = { participantId: 'p1' };
  const diagnostics = createDiagnostics({ session: () => session, panel, room });
  return { diagnostics, panel, room, setSession: (s) => { session = s; } };
}

test('every window.parley name the interop tests read is there', { skip: !existsSync(interop) && 'no Tests/Interop beside Web/' }, () => {
  const names = new Set();
  for (const file of readdirSync(interop).filter((f) => f.endsWith('.py'))) {
    const text = readFileSync(new URL(file, interop), 'utf8');
    for (const [, name] of text.matchAll(/window\.parley\.(\w+)/g)) names.add(name);
  }
  assert.ok(names.size >= 15, `only ${names.size} names found in Tests/Interop`);
  const { diagnostics } = fake();
  for (const name of names) {
    assert.ok(name in diagnostics || counters.includes(name), `window.parley.${name} is read by the interop tests but missing`);
  }
});

test('the other window globals the interop tests read are still set by the page', { skip: !existsSync(interop) && 'no Tests/Interop beside Web/' }, () => {
  const globals = new Set();
  for (const file of readdirSync(interop).filter((f) => f.endsWith('.py'))) {
    for (const [, name] of readFileSync(new URL(file, interop), 'utf8').matchAll(/window\.(parley\w+)/g)) globals.add(name);
  }
  assert.ok(globals.has('parleyNotices'));
  const web = new URL('../../', import.meta.url);
  const page = [...readdirSync(web).filter((f) => f.endsWith('.js')), ...readdirSync(new URL('meeting/', web)).filter((f) => f.endsWith('.js')).map((f) => `meeting/${f}`)]
    .map((f) => readFileSync(new URL(f, web), 'utf8')).join('\n');
  for (const name of globals) assert.match(page, new RegExp(`window\\.${name}\\b[^\\n]*=`), `nothing sets window.${name}`);
});

test('the names window.parley had before the web client became states are all kept', () => {
  const { diagnostics } = fake();
  for (const name of ['participantId', 'role', 'waiting', 'meetingState', 'joinedAt', 'departures', 'pausedVideos', 'activeSpeaker', 'featured',
    'mediaEvents', 'participants', 'connectionState', 'cameraLayers', 'publishedLayers', 'stats', 'tiles', 'debug']) {
    assert.ok(name in diagnostics, name);
  }
  for (const name of ['cameraLayers', 'stats', 'tiles', 'debug']) assert.equal(typeof diagnostics[name], 'function', name);
  assert.deepEqual(counters, ['signalingReconnects', 'signalingResumes', 'iceRestarts', 'mediaRebuilds', 'pathStalls']);
});

test('getters read the page as it is now', async () => {
  const { diagnostics, panel, room, setSession } = fake();
  assert.equal(diagnostics.participantId, 'p1');
  setSession({ participantId: null });
  assert.equal(diagnostics.participantId, null);
  assert.equal(diagnostics.role, 'host');
  panel.role = 'participant';
  assert.equal(diagnostics.role, 'participant');
  assert.deepEqual(diagnostics.waiting, [{ id: 'w1', name: 'Guest' }]);
  assert.equal(diagnostics.meetingState.locked, true);
  assert.deepEqual(diagnostics.participants, [{ id: 'p2', name: 'Bob' }]);
  // No peer connection yet.
  assert.equal(diagnostics.connectionState, 'new');
  assert.equal(diagnostics.publishedLayers, null);
  assert.deepEqual(await diagnostics.stats(), {});
  assert.deepEqual(await diagnostics.cameraLayers(), {});
  room.peer = { pc: { connectionState: 'connected' }, publishedLayers: { mid: '1', rids: ['q'] }, statsByParticipant: async () => ({ p2: { framesDecoded: 9 } }) };
  assert.equal(diagnostics.connectionState, 'connected');
  assert.deepEqual(diagnostics.publishedLayers, { mid: '1', rids: ['q'] });
  assert.deepEqual(await diagnostics.stats(), { p2: { framesDecoded: 9 } });
  assert.deepEqual([diagnostics.joinedAt, diagnostics.departures, diagnostics.pausedVideos, diagnostics.activeSpeaker, diagnostics.featured, diagnostics.mediaEvents],
    [null, [], [], null, null, []]);
});

test('peerConnection is the peer connection in use, the same object until it is replaced', () => {
  const { diagnostics, room } = fake();
  assert.equal(diagnostics.peerConnection, null);
  const first = { connectionState: 'connected' };
  room.peer = { pc: first };
  assert.equal(diagnostics.peerConnection, first);
  assert.equal(diagnostics.peerConnection, diagnostics.peerConnection);
  room.peer = { pc: { connectionState: 'new' } };
  assert.notEqual(diagnostics.peerConnection, first);
});

test('counters are absent until counted, then count', () => {
  const { diagnostics } = fake();
  assert.equal(diagnostics.iceRestarts, undefined);
  count(diagnostics, 'iceRestarts');
  count(diagnostics, 'iceRestarts');
  assert.equal(diagnostics.iceRestarts, 2);
  assert.equal(diagnostics.mediaRebuilds, undefined);
});

test('media events keep the newest 200, with their time', () => {
  const { diagnostics } = fake();
  for (let n = 0; n < 205; n += 1) noteMediaEvent(diagnostics, `e${n}`, n);
  assert.equal(diagnostics.mediaEvents.length, 200);
  assert.deepEqual(diagnostics.mediaEvents[0], { event: 'e5', at: 5 });
  assert.deepEqual(diagnostics.mediaEvents.at(-1), { event: 'e204', at: 204 });
});

// Recovery decisions: node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  afterDeadPath, firstReconnectDelay, freshPathWatch, keepReconnecting, nextReconnectDelay, onPeerState, resumePlan, retryDue,
  samplePath, signalingVerdict, timings,
} from '../recovery.js';
import { initialSession, next } from '../session.js';

/// Feeds byte counts (one per 250 ms sample) to a fresh watch; returns the sample indexes at which
/// the path was found stalled.
function stallsIn(samples) {
  let watch = freshPathWatch();
  const stalls = [];
  samples.forEach((bytes, index) => {
    const sample = samplePath(watch, bytes);
    watch = sample.watch;
    if (sample.stalled) stalls.push(index);
  });
  return stalls;
}

test('the pace of recovery is the one the path-change test measured', () => {
  assert.deepEqual(timings, {
    pingTimeout: 400, iceRestartRetry: 3000, newConnectionCheck: 5000, pathSample: 250,
    reconnectFirst: 250, reconnectLongest: 4000, reconnectGiveUp: 60_000,
  });
});

test('a flow of a second that stops dead for 0.75 s is a dead path, said once', () => {
  // Five samples: four increases (a second of flow); then the count stands still.
  assert.deepEqual(stallsIn([100, 200, 300, 400, 500, 500, 500, 500, 500, 500, 500]), [7]);
});

test('too short a flow, or too short a pause, is no dead path', () => {
  assert.deepEqual(stallsIn([100, 200, 300, 400, 400, 400, 400, 400]), [], 'three increases only');
  assert.deepEqual(stallsIn([100, 200, 300, 400, 500, 500, 500, 600, 700]), [], 'quiet for two samples only');
  assert.deepEqual(stallsIn([100, 100, 100, 100, 100]), [], 'nothing ever flowed');
});

test('after a pause the flow has to last a second again before its stop counts', () => {
  // Flow, a short pause, then only two increases before it stops: not enough.
  assert.deepEqual(stallsIn([1, 2, 3, 4, 5, 5, 5, 6, 7, 7, 7, 7]), []);
  // Flow, a short pause, four increases, a stop: a dead path.
  assert.deepEqual(stallsIn([1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 9, 9, 9]), [12]);
});

test('the watch starts over from nothing', () => {
  assert.deepEqual(freshPathWatch(), { lastBytes: null, flowing: 0, quiet: 0 });
  assert.deepEqual(samplePath(freshPathWatch(), 42), { watch: { lastBytes: 42, flowing: 0, quiet: 0 }, stalled: false });
});

test('a disconnected or failed peer connection asks for an ICE restart; connected is a recovery', () => {
  assert.equal(onPeerState('disconnected'), 'restart-ice');
  assert.equal(onPeerState('failed'), 'restart-ice');
  assert.equal(onPeerState('connected'), 'recovered');
  for (const state of ['new', 'connecting', 'closed']) assert.equal(onPeerState(state), 'nothing');
});

test('a ping: answered is alive; unanswered is dead unless a reconnect already runs or the socket was replaced', () => {
  assert.equal(signalingVerdict({ answered: true, stillCurrent: false, reconnecting: true }), 'alive');
  assert.equal(signalingVerdict({ answered: false, stillCurrent: true, reconnecting: false }), 'dead');
  assert.equal(signalingVerdict({ answered: false, stillCurrent: false, reconnecting: false }), 'already-reconnecting');
  assert.equal(signalingVerdict({ answered: false, stillCurrent: true, reconnecting: true }), 'already-reconnecting');
});

test('a dead path gets a fresh peer connection: now when signaling is fine, after the resume when it died too', () => {
  assert.equal(afterDeadPath('alive', { peerStillCurrent: true }), 'new-connection');
  assert.equal(afterDeadPath('alive', { peerStillCurrent: false }), 'wait', 'someone else replaced it meanwhile');
  assert.equal(afterDeadPath('dead', { peerStillCurrent: true }), 'new-connection-on-resume');
  assert.equal(afterDeadPath('already-reconnecting', { peerStillCurrent: true }), 'wait');
});

test('a retry runs only for the same peer connection while it is still not connected', () => {
  assert.equal(retryDue({ peerStillCurrent: true, connectionState: 'disconnected' }), true);
  assert.equal(retryDue({ peerStillCurrent: true, connectionState: 'connecting' }), true);
  assert.equal(retryDue({ peerStillCurrent: true, connectionState: 'connected' }), false);
  assert.equal(retryDue({ peerStillCurrent: false, connectionState: 'failed' }), false);
});

test('back on a new socket: renegotiate when resumed, a fresh connection when the path died too, replace when not resumed', () => {
  assert.equal(resumePlan({ resumed: true, rebuildOnResume: false }), 'renegotiate');
  assert.equal(resumePlan({ resumed: true, rebuildOnResume: true }), 'new-connection');
  assert.equal(resumePlan({ resumed: false, rebuildOnResume: true }), 'replace');
  assert.equal(resumePlan({ resumed: false, rebuildOnResume: false }), 'replace');
});

test('signaling reconnects: none to 250 ms first, doubling to 4 s, for a minute', () => {
  assert.equal(firstReconnectDelay('no answer to ping'), 0);
  assert.equal(firstReconnectDelay(''), 250);
  assert.equal(firstReconnectDelay(undefined), 250);
  const delays = [0];
  while (delays.length < 8) delays.push(nextReconnectDelay(delays.at(-1)));
  assert.deepEqual(delays, [0, 250, 500, 1000, 2000, 4000, 4000, 4000]);
  assert.equal(keepReconnecting(1000, 60_999), true);
  assert.equal(keepReconnecting(1000, 61_000), false);
});

// The ways out of a network change, decision by decision, as the shell (connection.js) chains them.

test('media stops and ICE says disconnected: an ICE restart, tried again 3 s later while not connected', () => {
  assert.equal(onPeerState('disconnected'), 'restart-ice');
  assert.equal(timings.iceRestartRetry, 3000);
  assert.equal(retryDue({ peerStillCurrent: true, connectionState: 'disconnected' }), true);
});

test('the flow stops dead and the socket answers its ping: a fresh peer connection, checked again after 5 s', () => {
  assert.deepEqual(stallsIn([1, 2, 3, 4, 5, 5, 5, 5]), [7]);
  const verdict = signalingVerdict({ answered: true, stillCurrent: true, reconnecting: false });
  assert.equal(afterDeadPath(verdict, { peerStillCurrent: true }), 'new-connection');
  assert.equal(timings.newConnectionCheck, 5000);
  // Still not connected then: the dead-path treatment once more.
  assert.equal(retryDue({ peerStillCurrent: true, connectionState: 'connecting' }), true);
});

test('the flow stops dead and the ping goes unanswered: the socket is reconnected at once and, resumed, the media rebuilt', () => {
  const verdict = signalingVerdict({ answered: false, stillCurrent: true, reconnecting: false });
  assert.equal(verdict, 'dead');
  assert.equal(afterDeadPath(verdict, { peerStillCurrent: true }), 'new-connection-on-resume');
  // The shell gives the socket up (its close says 'no answer to ping'), then tells the session.
  let state = next(next(next(next(initialSession('demo'), { type: 'join', name: 'Ada' })[0], { type: 'mediaReady' })[0],
    { type: 'signalingOpened' })[0], { type: 'joined', detail: { participantId: 'p1', participants: [] } })[0];
  let actions;
  [state, actions] = next(state, { type: 'signalingClosed', reason: 'no answer to ping', at: 0 });
  assert.deepEqual(actions.at(-1), { type: 'scheduleReconnect', delay: 0 });
  [state] = next(state, { type: 'rebuildOnResume' });
  [state] = next(state, { type: 'reconnectDue' });
  [state, actions] = next(state, { type: 'signalingOpened' });
  assert.deepEqual(actions[0], { type: 'sendJoin', name: 'Ada', resume: 'p1' });
  [state, actions] = next(state, { type: 'joined', detail: { participantId: 'p1', resumed: true, participants: [] } });
  assert.equal(state.phase, 'joined');
  assert.ok(actions.some((a) => a.type === 'rebuildPeer'));
});

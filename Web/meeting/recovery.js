// Getting the media and the signaling socket back after a network change, a dead path or a lost
// server: what to do next, decided from what was observed. Pure: the shell (connection.js,
// app.js) measures, pings, restarts and reconnects; nothing here touches a peer connection,
// a socket or a timer, so every decision can be tested.

/// The pace of recovery (ms). Measured in the path-change interop test; change them with it.
export const timings = {
  // A socket whose network went away can look open for minutes: a ping finds out at once.
  pingTimeout: 400,
  // An ICE restart that has not brought the connection back is tried again.
  iceRestartRetry: 3000,
  // A fresh peer connection that is not connected by then gets the dead-path treatment again.
  newConnectionCheck: 5000,
  // How often the bytes received from the SFU are sampled.
  pathSample: 250,
  // Signaling reconnects: first pause (after a socket we gave up on: none), growing to at most…
  reconnectFirst: 250,
  reconnectLongest: 4000,
  // …and given up after a minute.
  reconnectGiveUp: 60_000,
};

/// Chromium calls a dead path `disconnected` only after its checks time out, seconds later. A
/// steady flow of packets from the SFU (media, RTCP, feedback) for a second at least (four
/// samples that grew) that stops dead for three samples (0.75 s) means the path broke.
const flowingSamples = 4;
const quietSamples = 3;

/// A path watch that has seen nothing yet; also what a peer connection that is not connected
/// goes back to (a flow only counts once connected).
export function freshPathWatch() {
  return { lastBytes: null, flowing: 0, quiet: 0 };
}

/// One sample of the bytes received so far: the watch after it, and whether the path just
/// stalled (said once per stall, on the sample that makes it one).
export function samplePath(watch, bytes) {
  let { flowing, quiet } = watch;
  let stalled = false;
  if (watch.lastBytes !== null && bytes === watch.lastBytes) {
    quiet += 1;
    stalled = quiet === quietSamples && flowing >= flowingSamples;
  } else if (watch.lastBytes !== null) {
    // After a pause the flow has to prove itself again.
    flowing = quiet > 0 ? 1 : flowing + 1;
    quiet = 0;
  }
  return { watch: { lastBytes: bytes, flowing, quiet }, stalled };
}

/// What a new state of the peer connection asks for: 'restart-ice' (the path is in trouble; an
/// ICE restart keeps the old path while a new one is checked), 'recovered', or 'nothing'.
export function onPeerState(connectionState) {
  if (connectionState === 'disconnected' || connectionState === 'failed') return 'restart-ice';
  if (connectionState === 'connected') return 'recovered';
  return 'nothing';
}

/// What a ping of the signaling socket says: 'alive'; 'already-reconnecting' (the socket was
/// replaced meanwhile, or a reconnect runs: leave it to that); or 'dead', to be given up on so
/// that the reconnect, and the participant's resume, starts at once.
export function signalingVerdict({ answered, stillCurrent, reconnecting }) {
  if (answered) return 'alive';
  if (!stillCurrent || reconnecting) return 'already-reconnecting';
  return 'dead';
}

/// After a dead path (the flow stopped), once the socket was pinged. Nothing is left to keep on
/// the old path, and Chromium would hold on to its dead pair through an ICE restart, so:
/// 'new-connection' now, on the same signaling session, when the socket is fine and nobody
/// replaced the peer connection meanwhile; 'new-connection-on-resume' when the socket was dead
/// too (the new connection is made once the participant is resumed on a new socket); or 'wait'.
export function afterDeadPath(verdict, { peerStillCurrent }) {
  if (verdict === 'alive' && peerStillCurrent) return 'new-connection';
  if (verdict === 'dead') return 'new-connection-on-resume';
  return 'wait';
}

/// A retry timer (after an ICE restart or a fresh peer connection) fired: try again only when the
/// same peer connection is still there and still not connected.
export function retryDue({ peerStillCurrent, connectionState }) {
  return peerStillCurrent && connectionState !== 'connected';
}

/// Back on a new signaling socket. Resumed (the server took our participant back): the peer
/// connection goes on, its media never stopped ('renegotiate': an offer lost with the old socket
/// is made again), unless the path died too ('new-connection'). Not resumed: we are a new
/// participant, with a new peer connection ('replace').
export function resumePlan({ resumed, rebuildOnResume }) {
  if (resumed && rebuildOnResume) return 'new-connection';
  if (resumed) return 'renegotiate';
  return 'replace';
}

/// The first pause before reconnecting the socket: none after one we gave up on ourselves (the
/// server is fine, our network changed), a little after the server closed it.
export function firstReconnectDelay(closeReason) {
  return closeReason === 'no answer to ping' ? 0 : timings.reconnectFirst;
}

/// Growing pauses between reconnect attempts: 250, 500, 1000, 2000, 4000, 4000 … ms.
export function nextReconnectDelay(delay) {
  return Math.min(Math.max(delay * 2, timings.reconnectFirst), timings.reconnectLongest);
}

/// Whether to try once more after an attempt failed at `now`, reconnecting since `startedAt`.
export function keepReconnecting(startedAt, now) {
  return now - startedAt < timings.reconnectGiveUp;
}

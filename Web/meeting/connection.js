// The media connection to the SFU and the effects of its recovery: ICE restarts on the same peer
// connection, fresh peer connections, the watch on the flow from the SFU and the ping of the
// signaling socket. What to do when is decided in recovery.js; this does it.
import { Peer } from '../peer.js';
import { showBanner } from '../ui.js';
import { count, noteMediaEvent } from './diagnostics.js';
import { afterDeadPath, freshPathWatch, onPeerState, retryDue, samplePath, signalingVerdict, timings } from './recovery.js';

export class MediaConnection {
  /// `room`: holds the socket, the participants and our media, and gets the peer connection;
  /// `phase()`: the session's phase (recovery only runs while joined); `askRebuildOnResume()`: tells
  /// the session that the new socket's resume must bring a new peer connection too.
  constructor({ room, stage, diagnostics, phase, askRebuildOnResume }) {
    this.room = room;
    this.stage = stage;
    this.diagnostics = diagnostics;
    this.phase = phase;
    this.askRebuildOnResume = askRebuildOnResume;
    this.iceServers = [];
    this.retryTimer = null;  // one at a time: the next ICE restart, or the check after a fresh connection
  }

  /// TURN servers with credentials for us, when the server has them (used by later restarts too).
  useIceServers(iceServers) {
    this.iceServers = iceServers;
    const peer = this.room.peer;
    try {
      peer?.pc.setConfiguration({ ...peer.pc.getConfiguration(), iceServers });
    } catch {
      // kept the servers it had
    }
  }

  /// One peer connection to the SFU carrying our tracks and everyone else's.
  start() {
    const { room, stage } = this;
    const peer = new Peer(room.signaling, this.iceServers);
    room.peer = peer;
    stage.forgetViewport();
    peer.addEventListener('assignments', () => stage.render());
    peer.addEventListener('failed', ({ detail: error }) => {
      // An offer lost with a dead socket is made again after the reconnect; one of a peer
      // connection we replaced no longer matters.
      if (peer === room.peer && this.phase() !== 'reconnecting') showBanner(`Media negotiation failed: ${error.message}`, { error: true });
    });
    peer.addEventListener('state', ({ detail: connection }) => {
      if (peer !== room.peer) return;
      this.note(`peer-${connection}`);
      const step = onPeerState(connection);
      if (step === 'restart-ice') {
        showBanner('The media connection was lost; reconnecting…', { error: true });
        this.restart();
      } else if (step === 'recovered') {
        clearTimeout(this.retryTimer);
        if (document.getElementById('banner').textContent.includes('reconnecting')) showBanner('');
      }
    });
    this.watchPath(peer);
    peer.addEventListener('answered', () => {
      this.note('answered');
      const ice = peer.pc.getSenders()[0]?.transport?.iceTransport ?? peer.pc.getReceivers()[0]?.transport?.iceTransport;
      if (ice && !ice.parleyWatched) {
        ice.parleyWatched = true;
        ice.addEventListener('selectedcandidatepairchange', () => this.note('path-selected'));
      }
    });
    const { local } = room;
    if (local.audio) peer.publish('microphone', local.audio, local.stream);
    if (local.video) peer.publish('camera', local.video, local.stream);
    const screen = local.screen?.getVideoTracks()[0];
    if (screen) peer.publish('screen', screen, local.screen);
    this.wantReceivers();
  }

  /// We are a new participant after a reconnect: a new peer connection, quietly.
  replace() {
    this.room.peer?.close();
    this.start();
  }

  /// The participant was resumed on a new socket: the same peer connection goes on over it.
  resume() {
    const peer = this.room.peer;
    peer.signaling = this.room.signaling;
    // An offer lost with the old socket is made again; otherwise this confirms the transport.
    peer.negotiate();
    this.wantReceivers();
  }

  close() {
    this.room.peer?.close();
    this.room.peer = null;
  }

  /// Enough receiving transceivers for the others' tracks, up to the server's slots: the loudest
  /// speakers and the videos shown at once. A 1,000-person meeting offers as many as a 10-person one.
  wantReceivers() {
    const counts = { audio: 0, video: 0 };
    for (const participant of this.room.participants.values()) {
      for (const track of participant.tracks) counts[track.kind] += 1;
    }
    const slots = this.room.slots;
    if (slots) {
      counts.audio = Math.min(counts.audio, slots.audioSpeakers);
      counts.video = Math.min(counts.video, slots.videoSlots);
    }
    this.room.peer?.want(counts);
  }

  /// A fresh peer connection, offered afresh (`newConnection`): it lands on the meeting's SFU,
  /// whichever that is now, and everything we send is published again. `unlessFresh`: not if the
  /// peer connection we have is such a fresh one whose first offer is still unanswered.
  rebuild(message, { unlessFresh = false } = {}) {
    if (this.phase() !== 'joined') return;
    if (unlessFresh && this.room.peer?.busy && !this.room.peer.answered) return;
    showBanner(message, { error: true });
    count(this.diagnostics, 'mediaRebuilds');
    this.note('new-connection');
    this.room.peer?.close();
    this.start();
    this.stage.render();
    // Not connected after a while (no path yet): treat it as a dead path once more.
    this.retryLater(timings.newConnectionCheck, () => this.restart({ broken: true }));
  }

  /// The path to the SFU broke or the network changed: an ICE restart (new credentials on both
  /// sides, make-before-break: the old path carries media until the new one is checked), tried
  /// again until media flows. The signaling socket may have died with the old network; a ping
  /// finds out at once and a dead socket is replaced (the participant resumed).
  /// `broken`: the old path is dead (nothing came for a while): see afterDeadPath.
  async restart({ broken = false } = {}) {
    const peer = this.room.peer;
    if (!peer || this.phase() !== 'joined') return;
    clearTimeout(this.retryTimer);
    if (broken) {
      const verdict = await this.checkSignaling();
      const step = afterDeadPath(verdict, { peerStillCurrent: peer === this.room.peer });
      if (step === 'new-connection') this.rebuild('The network changed; reconnecting…');
      if (step === 'new-connection-on-resume') this.askRebuildOnResume();
      return;
    }
    this.retryLater(timings.iceRestartRetry, () => this.restart());
    count(this.diagnostics, 'iceRestarts');
    this.note('ice-restart');
    peer.pc.restartIce();
    // The offer goes out at once; if the socket turns out dead the resume renegotiates, with the
    // new credentials restartIce() asked for.
    peer.negotiate();
    await this.checkSignaling();
  }

  /// Pings the server; a socket found dead is given up on, which starts the reconnect at once.
  async checkSignaling() {
    const signaling = this.room.signaling;
    const answered = await signaling.ping(timings.pingTimeout);
    const verdict = signalingVerdict({ answered, stillCurrent: signaling === this.room.signaling, reconnecting: this.phase() === 'reconnecting' });
    if (verdict === 'alive') this.note('signaling-alive');
    if (verdict === 'dead') {
      this.note('signaling-dead');
      signaling.abandon();
    }
    return verdict;
  }

  /// Runs `retry` after `ms` if this peer connection is still the one and still not connected.
  retryLater(ms, retry) {
    const peer = this.room.peer;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (retryDue({ peerStillCurrent: peer === this.room.peer, connectionState: peer.pc.connectionState })) retry();
    }, ms);
  }

  /// Samples the bytes received from the SFU while connected: a flow that stops dead means the
  /// path broke, long before Chromium says so (recovery.js, samplePath).
  watchPath(peer) {
    let watch = freshPathWatch();
    const timer = setInterval(async () => {
      if (peer !== this.room.peer) { clearInterval(timer); return; }
      if (peer.pc.connectionState !== 'connected') { watch = freshPathWatch(); return; }
      const bytes = await peer.bytesReceived().catch(() => null);
      if (bytes === null) return;
      const sample = samplePath(watch, bytes);
      watch = sample.watch;
      if (sample.stalled) {
        count(this.diagnostics, 'pathStalls');
        this.note('path-stalled');
        this.restart({ broken: true });
      }
    }, timings.pathSample);
  }

  note(event) {
    noteMediaEvent(this.diagnostics, event);
  }
}

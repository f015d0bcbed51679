// One RTCPeerConnection to the SFU for everything: our tracks go out on sendonly transceivers,
// everyone else's come in on recvonly ones. Only the client offers; the server answers and says
// which participant each receiving mid shows (`assignments`).
export class Peer extends EventTarget {
  constructor(signaling, iceServers = []) {
    super();
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers });
    this.sending = new Map();      // source ("microphone", "camera", "screen") → transceiver
    this.receivers = { audio: [], video: [] };
    this.assignments = new Map();  // mid → { participantId, kind, source, version }
    this.busy = false;
    this.again = false;
    this.pc.addEventListener('connectionstatechange', () => {
      this.dispatchEvent(new CustomEvent('state', { detail: this.pc.connectionState }));
    });
  }

  /// The camera goes out in three simulcast layers (quarter, half, full size); the SFU sends each
  /// subscriber the one its tile needs and tells us which nobody needs (`publish-layers`).
  /// Each layer in three temporal layers (L1T3): the SFU lowers a subscriber's frame rate by
  /// leaving out the upper ones when even the lowest layer is too much for its bandwidth.
  static cameraLayers = [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000, scalabilityMode: 'L1T3' },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000, scalabilityMode: 'L1T3' },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000, scalabilityMode: 'L1T3' },
  ];

  publish(source, track, stream) {
    const existing = this.sending.get(source);
    if (existing && existing.direction !== 'inactive') {
      existing.sender.replaceTrack(track);
      return;
    }
    if (existing) {
      existing.direction = 'sendonly';
      existing.sender.replaceTrack(track);
    } else {
      const init = { direction: 'sendonly', streams: [stream] };
      if (source === 'camera') init.sendEncodings = Peer.cameraLayers.map((layer) => ({ ...layer }));
      let transceiver;
      try {
        transceiver = this.pc.addTransceiver(track, init);
      } catch (error) {
        // A browser without scalability modes still gets simulcast, at one frame rate.
        if (!init.sendEncodings) throw error;
        init.sendEncodings = init.sendEncodings.map(({ scalabilityMode, ...layer }) => layer);
        transceiver = this.pc.addTransceiver(track, init);
      }
      this.sending.set(source, transceiver);
    }
    this.negotiate();
  }

  unpublish(source) {
    const transceiver = this.sending.get(source);
    if (!transceiver) return;
    transceiver.sender.replaceTrack(null);
    transceiver.direction = 'inactive';
    this.negotiate();
  }

  /// Makes sure there is a receiving transceiver for every remote track, then offers.
  want(counts) {
    for (const kind of ['audio', 'video']) {
      while (this.receivers[kind].length < counts[kind]) {
        this.receivers[kind].push(this.pc.addTransceiver(kind, { direction: 'recvonly' }));
      }
    }
    this.negotiate();
  }

  /// Offer/answer, one at a time; a request during one runs once more after it.
  async negotiate() {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    // What the caller does next in the same turn (more tracks, the receiving transceivers of a
    // new peer connection) goes into this offer, not into a second round trip.
    await null;
    try {
      do {
        this.again = false;
        const offer = await this.pc.createOffer();
        await this.pc.setLocalDescription(offer);
        const sources = {};
        for (const [source, transceiver] of this.sending) {
          if (transceiver.mid && transceiver.direction !== 'inactive') sources[transceiver.mid] = source;
        }
        // The first offer of this peer connection asks for a new transport (after an SFU change the
        // server still remembers the old one).
        const answer = await this.signaling.offer(this.pc.localDescription.sdp, sources, !this.answered);
        this.answered = true;
        await this.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
        this.dispatchEvent(new Event('answered'));
        this.applyAssignments(answer.assignments, answer.assignmentsVersion, { complete: true });
      } while (this.again);
    } catch (error) {
      this.dispatchEvent(new CustomEvent('failed', { detail: error }));
    } finally {
      this.busy = false;
    }
  }

  /// Which participant each receiving mid shows. The answer lists every mid; `assignments`
  /// messages only those that changed. Per mid, the newest version wins, whichever came first.
  applyAssignments(assignments, version, { complete = false } = {}) {
    if (complete) {
      const listed = new Set(assignments.map((a) => a.mid));
      for (const [mid, held] of this.assignments) {
        if (!listed.has(mid) && held.version < version) this.assignments.delete(mid);
      }
    }
    for (const assignment of assignments) {
      const held = this.assignments.get(assignment.mid);
      if (!held || held.version < version) this.assignments.set(assignment.mid, { ...assignment, version });
    }
    this.dispatchEvent(new CustomEvent('assignments'));
  }

  /// Pauses the simulcast layers of the track on `mid` that nobody receives, resumes the others.
  async setPublishedLayers(mid, rids) {
    const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid && t.direction !== 'recvonly');
    if (!transceiver) return;
    const parameters = transceiver.sender.getParameters();
    if (!parameters.encodings || parameters.encodings.length < 2) return;
    let changed = false;
    for (const encoding of parameters.encodings) {
      const active = rids.includes(encoding.rid);
      if (encoding.active !== active) { encoding.active = active; changed = true; }
    }
    if (changed) await transceiver.sender.setParameters(parameters).catch(() => {});
    this.publishedLayers = { mid, rids };
  }

  /// Outbound layers of our camera (for tests): rid → {active, framesEncoded, frameWidth}.
  async cameraLayers() {
    const transceiver = this.sending.get('camera');
    if (!transceiver?.mid) return {};
    const active = Object.fromEntries((transceiver.sender.getParameters().encodings ?? []).map((e) => [e.rid, e.active]));
    const result = {};
    (await this.pc.getStats()).forEach((stat) => {
      if (stat.type === 'outbound-rtp' && stat.mid === transceiver.mid && stat.rid) {
        result[stat.rid] = {
          active: active[stat.rid], framesEncoded: stat.framesEncoded ?? 0, frameWidth: stat.frameWidth ?? 0,
          scalabilityMode: stat.scalabilityMode ?? null,
        };
      }
    });
    return result;
  }

  /// Bytes received on the selected path so far (media, RTCP, ICE answers).
  async bytesReceived() {
    let bytes = 0;
    (await this.pc.getStats()).forEach((stat) => { if (stat.type === 'transport') bytes += stat.bytesReceived ?? 0; });
    return bytes;
  }

  /// The receiving track for a mid.
  trackFor(mid) {
    const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
    return transceiver?.receiver.track ?? null;
  }

  /// Inbound statistics per remote participant, for tests and the debug overlay.
  async statsByParticipant() {
    const report = await this.pc.getStats();
    const result = {};
    report.forEach((stat) => {
      if (stat.type !== 'inbound-rtp' || !stat.mid) return;
      const assignment = this.assignments.get(stat.mid);
      if (!assignment?.participantId) return;
      const entry = result[assignment.participantId] ??= {
        framesDecoded: 0, audioPacketsReceived: 0, frameWidth: 0, videoPacketsReceived: 0, screenFramesDecoded: 0, nackCount: 0, packetsLost: 0,
        framesPerSecond: 0, freezeCount: 0, totalFreezesDuration: 0, concealedSamples: 0, totalSamplesReceived: 0,
      };
      entry.packetsLost += stat.packetsLost ?? 0;
      if (stat.kind === 'video' && assignment.source === 'screen') {
        entry.screenFramesDecoded += stat.framesDecoded ?? 0;
      } else if (stat.kind === 'video') {
        entry.framesDecoded += stat.framesDecoded ?? 0;
        entry.videoPacketsReceived += stat.packetsReceived ?? 0;
        entry.frameWidth = Math.max(entry.frameWidth, stat.frameWidth ?? 0);
        entry.nackCount += stat.nackCount ?? 0;
        entry.framesPerSecond = Math.max(entry.framesPerSecond, stat.framesPerSecond ?? 0);
        entry.freezeCount += stat.freezeCount ?? 0;
        entry.totalFreezesDuration += stat.totalFreezesDuration ?? 0;
      } else if (stat.kind === 'audio') {
        entry.audioPacketsReceived += stat.packetsReceived ?? 0;
        entry.concealedSamples += stat.concealedSamples ?? 0;
        entry.totalSamplesReceived += stat.totalSamplesReceived ?? 0;
      }
    });
    return result;
  }

  close() { this.pc.close(); }
}

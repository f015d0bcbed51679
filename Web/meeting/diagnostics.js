// window.parley: what the page receives and does, for the interop tests and for debugging. The
// one object they read; its names are a contract with Tests/Interop/*.py (a node test checks them).

/// Counted as they happen; absent until the first time (the tests read them as `?? 0`).
export const counters = ['signalingReconnects', 'signalingResumes', 'iceRestarts', 'mediaRebuilds', 'pathStalls'];

const keptMediaEvents = 200;

/// `session()`: the session state (session.js); `panel`: the participants panel (role, waiting
/// room, meeting state); `room`: the peer connection and the participants.
export function createDiagnostics({ session, panel, room }) {
  return {
    get participantId() { return session().participantId; },
    get role() { return panel.role; },
    get waiting() { return panel.waiting; },
    get meetingState() { return panel.meetingState; },
    joinedAt: null,
    departures: [],
    pausedVideos: [],
    activeSpeaker: null,
    featured: null,
    mediaEvents: [],
    // The gallery (set by the stage): the page shown, how many there are, the videos asked for.
    page: 0,
    pageCount: 1,
    selectedVideos: [],
    nextPage: () => {},
    previousPage: () => {},
    get participants() { return [...room.participants.values()]; },
    get connectionState() { return room.peer?.pc.connectionState ?? 'new'; },
    // The RTCPeerConnection in use: a test keeps it to tell an ICE restart (the same object, new
    // credentials) from a fresh peer connection (another object).
    get peerConnection() { return room.peer?.pc ?? null; },
    cameraLayers: () => room.peer?.cameraLayers() ?? Promise.resolve({}),
    get publishedLayers() { return room.peer?.publishedLayers ?? null; },
    stats: () => room.peer?.statsByParticipant() ?? Promise.resolve({}),
    tiles: () => [...document.querySelectorAll('.tile:not(.local)')].map((t) => t.dataset.tile),
    debug: async () => ({
      assignments: [...(room.peer?.assignments.values() ?? [])],
      transceivers: room.peer?.pc.getTransceivers().map((t) => ({ mid: t.mid, direction: t.direction, current: t.currentDirection })) ?? [],
      inbound: [...((await room.peer?.pc.getStats())?.values() ?? [])].filter((s) => ['inbound-rtp', 'transport', 'local-candidate', 'candidate-pair'].includes(s.type)),
      remote: room.peer?.pc.remoteDescription?.sdp,
    }),
  };
}

export function count(diagnostics, counter) {
  diagnostics[counter] = (diagnostics[counter] ?? 0) + 1;
}

/// What happened to the media path, when (ms since 1970): the path-change test prints them.
export function noteMediaEvent(diagnostics, event, at = Date.now()) {
  diagnostics.mediaEvents.push({ event, at });
  if (diagnostics.mediaEvents.length > keptMediaEvents) diagnostics.mediaEvents.shift();
}

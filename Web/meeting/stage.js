// The stage: a tile per participant (camera and microphone) and per shared screen, ours included;
// the active speaker outlined and, with enough people, enlarged; and the size each received video
// is shown at, told to the SFU.
import { SpeakerSlotPlayer, Tile } from '../ui.js';
import { featureSpeaker, noFeature } from './speaker.js';
import { galleryPage } from './gallery.js';

const isLocal = (key) => key.startsWith('local');
const tileKey = (participantId, source) => (source === 'screen' ? `${participantId}:screen` : participantId);

export class Stage {
  /// `room`: the peer connection, the socket and the participants; `diagnostics`: window.parley;
  /// `renderPanel`: redraws the People panel (before the speaker's tile is measured: the panel
  /// takes room from the stage).
  constructor({ room, diagnostics, renderPanel }) {
    this.room = room;
    this.diagnostics = diagnostics;
    this.renderPanel = renderPanel;
    this.tiles = new Map();  // tile key (participant id, "id:screen", "local", "local:screen") → Tile
    this.speakerSlots = new Map();  // receiving audio mid → SpeakerSlotPlayer
    this.page = 0;
    this.selectionSent = null;  // the last select-videos sent on this peer connection (JSON)
    document.getElementById('page-prev')?.addEventListener('click', () => this.turnPage(-1));
    document.getElementById('page-next')?.addEventListener('click', () => this.turnPage(1));
    diagnostics.nextPage = () => this.turnPage(1);
    diagnostics.previousPage = () => this.turnPage(-1);
    this.activeSpeaker = null;
    this.pausedMids = new Set();
    this.featuring = noFeature();
    this.featureTimer = null;
    this.reportedViewport = null;
  }

  /// Puts every remote video in its participant's tile (camera) or screen tile; sound plays from
  /// the speaker slots, whoever speaks in them.
  render() {
    const { participants, peer } = this.room;
    this.renderSpeakerSlots(peer);
    // Tiles for this page of the gallery only: the SFU sends at most `videoSlots` videos.
    const gallery = galleryPage([...participants.values()], { pageSize: this.room.slots?.videoSlots, page: this.page });
    this.page = gallery.page;
    this.showPager(gallery);
    this.selectVideos(gallery);
    const wanted = new Map();
    for (const { participant, screen } of gallery.entries) {
      if (screen) {
        wanted.set(tileKey(participant.id, 'screen'), { name: `${participant.name}'s screen`, participant, tracks: [], screen: true });
      } else {
        wanted.set(participant.id, { name: participant.name, participant, tracks: [] });
      }
    }
    if (peer) {
      for (const [mid, assignment] of peer.assignments) {
        if (!assignment.participantId || assignment.kind === 'audio') continue;
        const key = tileKey(assignment.participantId, assignment.source);
        const track = peer.trackFor(mid);
        if (track && wanted.has(key)) wanted.get(key).tracks.push(track);
      }
    }
    // Videos the server paused because this connection has no room for them (audio goes on).
    const pausedKeys = new Set();
    for (const mid of this.pausedMids) {
      const assignment = peer?.assignments.get(mid);
      if (assignment?.participantId) pausedKeys.add(tileKey(assignment.participantId, assignment.source));
    }
    this.diagnostics.pausedVideos = [...pausedKeys];
    for (const [key, tile] of this.tiles) {
      if (isLocal(key)) continue;
      if (!wanted.has(key)) { tile.remove(); this.tiles.delete(key); }
    }
    for (const [key, { name, participant, tracks, screen }] of wanted) {
      let tile = this.tiles.get(key);
      if (!tile) { tile = new Tile(key, name, { screen }); this.tiles.set(key, tile); }
      tile.setName(name);
      tile.setTracks(tracks);
      const hasCamera = participant.tracks.some((t) => t.kind === 'video' && t.source !== 'screen');
      tile.setState(screen ? {} : { audioMuted: participant.audioMuted, videoMuted: participant.videoMuted || !hasCamera });
      tile.setPaused(pausedKeys.has(key));
      tile.element.dataset.participant = participant.id;
    }
    this.renderPanel();
    this.markSpeaker();
  }

  setActiveSpeaker(participantId) {
    this.activeSpeaker = participantId;
    this.diagnostics.activeSpeaker = participantId;
    this.markSpeaker();
  }

  /// The mids whose video the server paused for this connection.
  setPausedMids(mids) {
    this.pausedMids = new Set(mids);
    this.render();
  }

  showLocal(name, video) {
    const local = new Tile('local', `${name} (you)`, { local: true });
    this.tiles.set('local', local);
    local.setTracks(video ? [video] : []);
    local.setState({ videoMuted: !video });
  }

  setLocalVideoOff(off) {
    this.tiles.get('local')?.setState({ videoMuted: off });
  }

  showLocalScreen(track) {
    const tile = new Tile('local:screen', 'Your screen', { local: true, screen: true });
    tile.setTracks([track]);
    this.tiles.set('local:screen', tile);
  }

  removeLocalScreen() {
    this.tiles.get('local:screen')?.remove();
    this.tiles.delete('local:screen');
  }

  clear() {
    for (const tile of this.tiles.values()) tile.remove();
    this.tiles.clear();
    this.renderSpeakerSlots(null);
  }

  /// One player per receiving audio mid, playing whatever track the SFU sends on it.
  renderSpeakerSlots(peer) {
    const mids = new Set();
    for (const [mid, assignment] of peer?.assignments ?? []) {
      if (assignment.kind !== 'audio') continue;
      const track = peer.trackFor(mid);
      if (!track) continue;
      mids.add(mid);
      if (!this.speakerSlots.has(mid)) this.speakerSlots.set(mid, new SpeakerSlotPlayer(mid));
      this.speakerSlots.get(mid).play(track);
    }
    for (const [mid, player] of this.speakerSlots) {
      if (!mids.has(mid)) { player.remove(); this.speakerSlots.delete(mid); }
    }
  }

  /// The one speaking is outlined and moved first (with three or more people on the stage); only
  /// classes change, so nothing else on the page is rebuilt. (Enlarging the speaker's tile at once
  /// was tried: with several people talking, every change of speaker resized tiles and switched
  /// simulcast layers, and video stalled on the keyframes; speaker.js enlarges it slowly.)
  markSpeaker() {
    const others = [...this.tiles.keys()].filter((key) => !isLocal(key)).length;
    for (const [key, tile] of this.tiles) {
      tile.element.classList.toggle('speaking', others > 1 && key === this.activeSpeaker);
    }
    this.feature(others);
    this.reportViewport();
  }

  feature(others) {
    clearTimeout(this.featureTimer);
    const { memory, askAgainIn } = featureSpeaker(this.featuring, { others, speaker: this.activeSpeaker, onStage: this.tiles, now: Date.now() });
    this.featuring = memory;
    if (askAgainIn !== null) this.featureTimer = setTimeout(() => this.markSpeaker(), askAgainIn);
    this.diagnostics.featured = memory.featured;
    for (const [key, tile] of this.tiles) tile.element.classList.toggle('featured', key === memory.featured);
  }

  /// A new peer connection has new mids: the next report goes out whatever the sizes, and its
  /// transport has no selection yet.
  forgetViewport() {
    this.reportedViewport = null;
    this.selectionSent = null;
  }

  turnPage(step) {
    this.page = Math.max(0, this.page + step);
    this.render();
  }

  showPager({ page, pageCount }) {
    Object.assign(this.diagnostics, { page, pageCount });
    const pager = document.getElementById('pager');
    if (!pager) return;
    pager.hidden = pageCount <= 1;
    document.getElementById('page-label').textContent = `${page + 1} / ${pageCount}`;
    document.getElementById('page-prev').disabled = page === 0;
    document.getElementById('page-next').disabled = page >= pageCount - 1;
  }

  /// Asks the SFU for this page's videos once the meeting has more than one page (before that,
  /// its slots take every video as it comes); then again whenever the page's videos change.
  selectVideos({ pageCount, videos }) {
    const { signaling, peer } = this.room;
    if (!signaling || !peer || (pageCount <= 1 && this.selectionSent === null)) return;
    const text = JSON.stringify(videos);
    if (text === this.selectionSent) return;
    this.selectionSent = text;
    this.diagnostics.selectedVideos = videos;
    signaling.send({ type: 'select-videos', videos });
  }

  /// Tells the SFU how large each received video is shown (device pixels), so simulcast sends the
  /// layer that fits: a small tile gets a small layer. Sent when a size changes.
  reportViewport() {
    const { peer, signaling } = this.room;
    if (!peer || !signaling) return;
    const sizes = {};
    for (const [mid, assignment] of peer.assignments) {
      if (assignment.kind !== 'video') continue;
      const box = this.tiles.get(tileKey(assignment.participantId, assignment.source))?.video.getBoundingClientRect();
      const scale = window.devicePixelRatio || 1;
      sizes[mid] = { width: Math.round((box?.width ?? 0) * scale), height: Math.round((box?.height ?? 0) * scale) };
    }
    const text = JSON.stringify(sizes);
    if (text === this.reportedViewport || Object.keys(sizes).length === 0) return;
    this.reportedViewport = text;
    signaling.send({ type: 'viewport', sizes });
  }
}

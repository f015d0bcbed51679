// The room's controls: microphone, camera, screen sharing, chat, the People panel and leaving;
// and what a host's moderation and the meeting's settings do to them.
import { showBanner } from '../ui.js';

const $ = (id) => document.getElementById(id);

export class Controls {
  /// `dispatch`: hands leaving to the session (session.js).
  constructor({ room, stage, panel, renderPanel, dispatch }) {
    this.room = room;
    this.stage = stage;
    this.panel = panel;
    this.renderPanel = renderPanel;
    this.dispatch = dispatch;
  }

  wire() {
    $('toggle-mic').addEventListener('click', (event) => this.toggleTrack('audio', event.target, { on: 'Mute', off: 'Unmute' }));
    $('toggle-camera').addEventListener('click', (event) => this.toggleTrack('video', event.target, { on: 'Stop video', off: 'Start video' }));
    $('toggle-screen').addEventListener('click', () => this.toggleScreen());
    $('toggle-chat').addEventListener('click', (event) => {
      const chat = $('chat');
      chat.hidden = !chat.hidden;
      event.target.setAttribute('aria-pressed', String(!chat.hidden));
      event.target.textContent = 'Chat';
      if (!chat.hidden) $('chat-input').focus();
    });
    $('chat-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const text = $('chat-input').value.trim();
      if (!text) return;
      this.room.signaling?.send({ type: 'chat', text });
      $('chat-input').value = '';
    });
    $('toggle-people').addEventListener('click', (event) => {
      const people = $('people');
      people.hidden = !people.hidden;
      event.target.setAttribute('aria-pressed', String(!people.hidden));
      this.renderPanel();
    });
    $('leave-waiting').addEventListener('click', () => this.dispatch({ type: 'leaveWaiting' }));
    $('leave').addEventListener('click', () => this.dispatch({ type: 'leave' }));
  }

  /// Once in: a button for each device we have.
  enableMediaButtons() {
    $('toggle-mic').disabled = !this.room.local.audio;
    $('toggle-camera').disabled = !this.room.local.video;
  }

  /// Mute or unmute one of our tracks: the track sends silence or black, the others are told.
  toggleTrack(kind, button, labels) {
    const { local } = this.room;
    const track = kind === 'audio' ? local.audio : local.video;
    if (!track) return;
    track.enabled = !track.enabled;
    button.setAttribute('aria-pressed', String(!track.enabled));
    button.textContent = track.enabled ? labels.on : labels.off;
    if (kind === 'video') this.stage.setLocalVideoOff(!track.enabled);
    this.room.signaling?.send({ type: 'mute', kind, muted: !track.enabled });
  }

  async toggleScreen() {
    const { local } = this.room;
    if (local.screen) return this.stopScreen();
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      local.screen = stream;
      track.addEventListener('ended', () => this.stopScreen());
      this.stage.showLocalScreen(track);
      this.room.peer.publish('screen', track, stream);
      $('toggle-screen').setAttribute('aria-pressed', 'true');
      $('toggle-screen').textContent = 'Stop sharing';
    } catch (error) {
      if (error.name !== 'NotAllowedError') showBanner(`Screen sharing failed: ${error.message}`, { error: true });
    }
  }

  stopScreen() {
    this.room.local.screen?.getTracks().forEach((t) => t.stop());
    this.room.local.screen = null;
    this.stage.removeLocalScreen();
    this.room.peer?.unpublish('screen');
    $('toggle-screen').setAttribute('aria-pressed', 'false');
    $('toggle-screen').textContent = 'Share screen';
  }

  /// A host muted us or stopped our video (through our own buttons, so they say so), or lets us
  /// unmute again. (Being removed ends the session: app.js hands that to session.js.)
  moderated({ action, by }) {
    const { local } = this.room;
    if (action === 'mute-audio' && local.audio) {
      if (local.audio.enabled) $('toggle-mic').click();
      showBanner(`${by} muted you.`);
    } else if (action === 'stop-video' && local.video) {
      if (local.video.enabled) $('toggle-camera').click();
      showBanner(`${by} stopped your video.`);
    } else if (action === 'unmute-audio-allowed') {
      showBanner('A host lets you unmute again.');
    }
  }

  /// Screen sharing only for hosts when the meeting says so (a share under way stops).
  applyMeetingState() {
    const sharingBlocked = this.panel.meetingState.hostsOnlyScreenShare && !this.panel.isModerator;
    $('toggle-screen').disabled = sharingBlocked;
    if (sharingBlocked && this.room.local.screen) this.stopScreen();
    this.renderPanel();
  }
}

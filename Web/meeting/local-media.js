// Our own camera, microphone and shared screen.
import { showBanner } from '../ui.js';

export class LocalMedia {
  constructor() {
    this.stream = null;
    this.audio = null;
    this.video = null;
    this.screen = null;  // the shared screen's stream, while sharing
  }

  /// Without camera or microphone the meeting still works: one sees and hears everyone.
  async start() {
    try {
      // 720p: browsers send three simulcast layers (320×180, 640×360, 1280×720) only from this size up.
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
      this.stream = stream;
      this.audio = stream.getAudioTracks()[0] ?? null;
      this.video = stream.getVideoTracks()[0] ?? null;
    } catch (error) {
      const reason = error.name === 'NotAllowedError' ? 'permission was refused'
        : error.name === 'NotFoundError' ? 'no camera or microphone was found' : error.message;
      showBanner(`Camera and microphone unavailable (${reason}). You can still see and hear everyone.`, { error: true });
      this.stream = new MediaStream();
    }
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.screen?.getTracks().forEach((t) => t.stop());
  }
}

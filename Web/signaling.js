// The signaling WebSocket (protocol in docs/signaling.md): JSON messages with a "type".
export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.pendingAnswer = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.onopen = () => { opened = true; resolve(); };
      socket.onerror = () => { if (!opened) reject(new Error(`cannot reach the Parley server at ${this.url}`)); };
      socket.onclose = (event) => {
        if (this.pendingAnswer) { this.pendingAnswer.reject(new Error('connection closed')); this.pendingAnswer = null; }
        if (opened) this.dispatchEvent(new CustomEvent('close', { detail: event }));
      };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch { return; }
        if (message.type === 'answer' && this.pendingAnswer) {
          this.pendingAnswer.resolve(message);
          this.pendingAnswer = null;
          return;
        }
        if (message.type === 'error' && ['negotiation-failed', 'media-failed'].includes(message.code) && this.pendingAnswer) {
          this.pendingAnswer.reject(new Error(message.message));
          this.pendingAnswer = null;
          if (message.code === 'negotiation-failed') return;
        }
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      };
    });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /// Sends an offer and resolves with the server's answer message.
  offer(sdp, sources, newConnection = false) {
    return new Promise((resolve, reject) => {
      this.pendingAnswer = { resolve, reject };
      this.send({ type: 'offer', sdp, sources, ...(newConnection ? { newConnection: true } : {}) });
    });
  }

  close() { this.socket?.close(); }
}

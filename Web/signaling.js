// The signaling WebSocket (protocol in docs/signaling.md): JSON messages with a "type".
export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.pendingAnswers = [];  // one per offer sent, in order: the server replies to each, in order
    this.pings = new Map();  // id → resolve
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.onopen = () => { opened = true; resolve(); };
      socket.onerror = () => { if (!opened) reject(new Error(`cannot reach the Parley server at ${this.url}`)); };
      this.closed = (event, reason = 'connection closed') => {
        for (const pending of this.pendingAnswers.splice(0)) pending.reject(new Error(reason));
        if (opened) this.dispatchEvent(new CustomEvent('close', { detail: event }));
      };
      socket.onclose = (event) => this.closed(event);
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch { return; }
        if (message.type === 'pong') {
          this.pings.get(message.id)?.(true);
          this.pings.delete(message.id);
          return;
        }
        if (message.type === 'answer' && this.pendingAnswers.length) {
          this.pendingAnswers.shift().resolve(message);
          return;
        }
        // An error in reply to an offer fails that offer. A `media-failed` that replies to nothing
        // is news about the media connection, and leaves the offers in flight alone.
        if (message.type === 'error' && message.inReplyTo === 'offer' && this.pendingAnswers.length) {
          this.pendingAnswers.shift().reject(new Error(message.message));
          if (message.code !== 'media-failed') return;
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
      this.pendingAnswers.push({ resolve, reject });
      this.send({ type: 'offer', sdp, sources, ...(newConnection ? { newConnection: true } : {}) });
    });
  }

  /// Resolves true if the server answers within `timeout` ms. A socket whose network went away
  /// can look open for minutes; this finds out at once.
  ping(timeout = 1000) {
    if (this.socket?.readyState !== WebSocket.OPEN) return Promise.resolve(false);
    const id = Math.random().toString(36).slice(2, 10);
    return new Promise((resolve) => {
      this.pings.set(id, resolve);
      this.send({ type: 'ping', id });
      setTimeout(() => { if (this.pings.delete(id)) resolve(false); }, timeout);
    });
  }

  /// Gives up on a socket that no longer reaches the server: `close` follows (and a reconnect).
  abandon() {
    const socket = this.socket;
    if (!socket) return;
    socket.onclose = null;
    socket.close();
    this.closed({ code: 1006, reason: 'no answer to ping' }, 'connection lost');
  }

  close() { this.socket?.close(); }
}

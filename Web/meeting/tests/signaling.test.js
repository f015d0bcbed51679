// The signaling socket's offers: each gets its own reply, in order, and news about the media
// connection (a `media-failed` that replies to nothing) fails no offer in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Signaling } from '../../signaling.js';

class StubSocket {
  static OPEN = 1;
  constructor() { this.readyState = 0; this.sent = []; StubSocket.last = this; }
  send(data) { this.sent.push(JSON.parse(data)); }
  close() {}
  open() { this.readyState = StubSocket.OPEN; this.onopen?.(); }
  receive(message) { this.onmessage?.({ data: JSON.stringify(message) }); }
}

async function connected() {
  globalThis.WebSocket = StubSocket;
  const signaling = new Signaling('ws://parley.test/ws');
  const connecting = signaling.connect();
  StubSocket.last.open();
  await connecting;
  return { signaling, socket: StubSocket.last };
}

const outcome = (promise) => promise.then((answer) => `answer ${answer.sdp}`, (error) => `failed: ${error.message}`);

test('two offers in flight get their own answers, in order', async () => {
  const { signaling, socket } = await connected();
  const first = outcome(signaling.offer('offer-1', {}));
  const second = outcome(signaling.offer('offer-2', {}, true));
  assert.deepEqual(socket.sent.map((m) => [m.sdp, m.newConnection ?? false]), [['offer-1', false], ['offer-2', true]]);
  socket.receive({ type: 'answer', sdp: 'answer-1' });
  socket.receive({ type: 'answer', sdp: 'answer-2' });
  assert.equal(await first, 'answer answer-1');
  assert.equal(await second, 'answer answer-2');
});

test('media-failed news leaves the offer in flight alone; an error replying to an offer fails that one', async () => {
  const { signaling, socket } = await connected();
  const events = [];
  signaling.addEventListener('error', ({ detail }) => events.push(detail.code));
  const first = outcome(signaling.offer('offer-1', {}, true));
  socket.receive({ type: 'error', code: 'media-failed', message: 'the media connection was lost: the media server is draining' });
  socket.receive({ type: 'answer', sdp: 'answer-1' });
  assert.equal(await first, 'answer answer-1');
  const second = outcome(signaling.offer('offer-2', {}));
  const third = outcome(signaling.offer('offer-3', {}));
  socket.receive({ type: 'error', code: 'negotiation-failed', message: 'bad SDP', inReplyTo: 'offer' });
  socket.receive({ type: 'error', code: 'media-failed', message: 'the transport is gone', inReplyTo: 'offer' });
  assert.equal(await second, 'failed: bad SDP');
  assert.equal(await third, 'failed: the transport is gone');
  // The session hears both media-failed (to build a new peer connection), not the negotiation failure.
  assert.deepEqual(events, ['media-failed', 'media-failed']);
});

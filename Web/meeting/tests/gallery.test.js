// The gallery's pages: node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { galleryPage } from '../gallery.js';

const camera = (id) => ({ id, tracks: [{ kind: 'audio', source: 'microphone' }, { kind: 'video', source: 'camera' }] });
const voiceOnly = (id) => ({ id, tracks: [{ kind: 'audio', source: 'microphone' }] });
const sharing = (id) => ({ id, tracks: [{ kind: 'video', source: 'camera' }, { kind: 'video', source: 'screen' }] });

test('one page when everyone fits: every video is asked for, in join order', () => {
  const result = galleryPage([camera('a'), voiceOnly('b'), camera('c')], { pageSize: 25, page: 0 });
  assert.equal(result.pageCount, 1);
  assert.deepEqual(result.entries.map((e) => e.participantId), ['a', 'b', 'c']);
  assert.deepEqual(result.videos, [{ participantId: 'a', source: 'camera' }, { participantId: 'c', source: 'camera' }]);
});

test('more people than slots: pages of the slot count, screens first, the last page partial', () => {
  const people = [camera('a'), camera('b'), sharing('c'), camera('d'), camera('e')];
  const first = galleryPage(people, { pageSize: 4, page: 0 });
  assert.equal(first.pageCount, 2);
  assert.deepEqual(first.entries.map((e) => [e.participantId, e.screen]), [['c', true], ['a', false], ['b', false], ['c', false]]);
  assert.deepEqual(first.videos.map((v) => `${v.participantId}:${v.source}`), ['c:screen', 'a:camera', 'b:camera', 'c:camera']);
  const second = galleryPage(people, { pageSize: 4, page: 1 });
  assert.deepEqual(second.videos.map((v) => v.participantId), ['d', 'e']);
  assert.ok(second.videos.length <= 4, 'never more videos than slots');
});

test('a page past the end (people left) falls back to the last one; negative to the first', () => {
  const people = [camera('a'), camera('b'), camera('c')];
  assert.equal(galleryPage(people, { pageSize: 2, page: 7 }).page, 1);
  assert.equal(galleryPage(people, { pageSize: 2, page: -3 }).page, 0);
  assert.equal(galleryPage([], { pageSize: 2, page: 3 }).pageCount, 1);
});

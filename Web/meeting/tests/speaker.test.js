// The enlarged tile: node --test Web/meeting/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import { featureAfter, featureAtLeast, featureSpeaker, noFeature } from '../speaker.js';

const stage = new Set(['ada', 'bob', 'eve', 'zoe']);
const t0 = 1_700_000_000_000;

function feature(memory, speaker, now, { others = 3, onStage = stage } = {}) {
  return featureSpeaker(memory, { others, speaker, onStage, now });
}

test('a new speaker is featured after two seconds of speaking', () => {
  assert.equal(featureAfter, 2000);
  let { memory, askAgainIn } = feature(noFeature(), 'ada', t0);
  assert.equal(memory.featured, null);
  assert.equal(askAgainIn, 2000);
  ({ memory, askAgainIn } = feature(memory, 'ada', t0 + 1999));
  assert.equal(memory.featured, null);
  assert.equal(askAgainIn, 1);
  ({ memory, askAgainIn } = feature(memory, 'ada', t0 + 2000));
  assert.equal(memory.featured, 'ada');
  assert.equal(askAgainIn, null);
});

test('a featured tile keeps its place for five seconds at least', () => {
  assert.equal(featureAtLeast, 5000);
  let { memory } = feature(feature(noFeature(), 'ada', t0).memory, 'ada', t0 + 2000);
  let askAgainIn;
  // Bob speaks a second later: two seconds of his would be t0 + 5000, but Ada stays until t0 + 7000.
  ({ memory, askAgainIn } = feature(memory, 'bob', t0 + 3000));
  assert.equal(memory.featured, 'ada');
  assert.equal(askAgainIn, 4000);
  ({ memory } = feature(memory, 'bob', t0 + 7000));
  assert.equal(memory.featured, 'bob');
});

test('cross-talk restarts the count: the speaker must hold the floor', () => {
  let { memory } = feature(noFeature(), 'ada', t0);
  ({ memory } = feature(memory, 'bob', t0 + 1500));
  ({ memory } = feature(memory, 'ada', t0 + 2500));
  assert.equal(memory.featured, null);
  assert.equal(feature(memory, 'ada', t0 + 4499).memory.featured, null);
  assert.equal(feature(memory, 'ada', t0 + 4500).memory.featured, 'ada');
});

test('with fewer than three others, or the tile gone, nobody is featured', () => {
  const featured = feature(feature(noFeature(), 'ada', t0).memory, 'ada', t0 + 2000).memory;
  assert.equal(featured.featured, 'ada');
  assert.deepEqual(feature(featured, 'ada', t0 + 9000, { others: 2 }), { memory: { ...featured, featured: null }, askAgainIn: null });
  assert.equal(feature(featured, 'ada', t0 + 9000, { onStage: new Set(['bob', 'eve', 'zoe']) }).memory.featured, null);
  // A speaker without a tile (a WHIP publisher not shown yet) is not a candidate.
  assert.deepEqual(feature(noFeature(), 'nobody-shown', t0), { memory: noFeature(), askAgainIn: null });
});

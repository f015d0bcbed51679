// Which tile is enlarged: with three or more others on the stage, the active speaker's. Slowly,
// so that cross-talk does not resize tiles (each resize changes the simulcast layer asked for):
// a new speaker is featured after talking for two seconds, and a featured tile keeps its place
// for five seconds at least. Pure: the stage passes the time and applies the result.

export const featureAfter = 2000;
export const featureAtLeast = 5000;
export const featureFromOthers = 3;

/// What the stage remembers between calls: who is featured and since when, and who has been
/// speaking since when.
export function noFeature() {
  return { featured: null, featuredAt: null, speakerSince: null };
}

/// `others`: how many remote tiles are on the stage; `speaker`: the active speaker's id;
/// `onStage`: has(tileKey) for the tiles shown. Returns what to remember and, when the speaker
/// is not featured yet but will be, in how many ms to ask again (else null).
export function featureSpeaker(memory, { others, speaker, onStage, now }) {
  let { featured, featuredAt, speakerSince } = memory;
  let askAgainIn = null;
  if (others < featureFromOthers) featured = null;
  if (others >= featureFromOthers && speaker && speaker !== featured && onStage.has(speaker)) {
    if (speakerSince?.id !== speaker) speakerSince = { id: speaker, at: now };
    const ready = Math.max(speakerSince.at + featureAfter, (featuredAt ?? 0) + featureAtLeast);
    if (now >= ready) {
      featured = speaker;
      featuredAt = now;
    } else {
      askAgainIn = ready - now;
    }
  }
  if (featured && !onStage.has(featured)) featured = null;
  return { memory: { featured, featuredAt, speakerSince }, askAgainIn };
}

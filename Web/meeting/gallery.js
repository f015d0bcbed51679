// The gallery: which participants' tiles this page shows when the meeting has more than the
// server's video slots. Shared screens first, then everyone in the order they joined (stable: a
// page does not reshuffle when someone speaks). Pure, so node tests cover it.

/// `participants`: the others, in join order; `pageSize`: the server's `videoSlots`; `page`: the
/// page asked for (kept in range). Returns the page's entries (`{participantId, screen}`), the page
/// number and count, and the videos to ask the SFU for (`select-videos`).
export function galleryPage(participants, { pageSize, page }) {
  const entries = [];
  for (const participant of participants) {
    if (participant.tracks?.some((t) => t.source === 'screen')) entries.push({ participantId: participant.id, screen: true, participant });
  }
  for (const participant of participants) entries.push({ participantId: participant.id, screen: false, participant });
  const size = Math.max(1, pageSize || entries.length || 1);
  const pageCount = Math.max(1, Math.ceil(entries.length / size));
  const current = Math.min(Math.max(0, page), pageCount - 1);
  const shown = entries.slice(current * size, (current + 1) * size);
  const videos = [];
  for (const { participant, screen } of shown) {
    const source = screen ? 'screen' : 'camera';
    const hasVideo = participant.tracks?.some((t) => t.kind === 'video' && (screen ? t.source === 'screen' : t.source !== 'screen'));
    if (hasVideo) videos.push({ participantId: participant.id, source });
  }
  return { entries: shown, page: current, pageCount, videos };
}

// The participants panel: everyone's name and state; for hosts and co-hosts the waiting room and
// the meeting's controls; for everyone a way to report someone.

export class ParticipantsPanel {
  constructor(element, send) {
    this.element = element;
    this.send = send;
    this.role = 'participant';
    this.waiting = [];
    this.meetingState = { locked: false, hostsOnlyScreenShare: false, waitingRoom: false };
  }

  get isModerator() { return this.role === 'host' || this.role === 'cohost'; }

  render(me, participants) {
    const root = this.element;
    root.replaceChildren();
    const title = document.createElement('h2');
    title.textContent = `People (${participants.length + 1})`;
    root.append(title);
    if (this.isModerator) root.append(this.meetingControls(), this.waitingList());
    const list = document.createElement('ul');
    list.className = 'people';
    for (const participant of participants) list.append(this.row(participant));
    root.append(list);
  }

  button(text, action, participantId, { danger = false } = {}) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = text;
    button.dataset.action = action;
    if (participantId) button.dataset.participant = participantId;
    if (danger) button.classList.add('danger');
    button.addEventListener('click', () => this.send({ type: 'host', action, ...(participantId ? { participantId } : {}) }));
    return button;
  }

  meetingControls() {
    const box = document.createElement('div');
    box.className = 'host-controls';
    const locked = this.meetingState.locked;
    box.append(
      this.button(locked ? 'Unlock meeting' : 'Lock meeting', locked ? 'unlock' : 'lock'),
      this.button('Mute everyone', 'mute-all-audio'),
      this.button('Stop everyone’s video', 'stop-all-video'),
      this.meetingState.hostsOnlyScreenShare
        ? this.button('Let everyone share', 'everyone-screen-share')
        : this.button('Only hosts share', 'hosts-only-screen-share'),
    );
    return box;
  }

  waitingList() {
    const box = document.createElement('div');
    box.className = 'waiting-list';
    const heading = document.createElement('h3');
    heading.textContent = this.waiting.length ? `Waiting (${this.waiting.length})` : 'Nobody is waiting';
    box.append(heading);
    if (this.waiting.length > 1) box.append(this.button('Admit all', 'admit-all'));
    for (const person of this.waiting) {
      const row = document.createElement('div');
      row.className = 'waiting';
      row.dataset.waiting = person.id;
      const name = document.createElement('span');
      name.textContent = person.email ? `${person.name} (${person.email})` : person.name;
      row.append(name, this.button('Admit', 'admit', person.id), this.button('Deny', 'deny', person.id, { danger: true }));
      box.append(row);
    }
    return box;
  }

  row(participant) {
    const item = document.createElement('li');
    item.dataset.participant = participant.id;
    const name = document.createElement('span');
    const role = participant.role === 'participant' ? '' : ` · ${participant.role}`;
    name.textContent = `${participant.name}${role}${participant.audioMuted ? ' 🔇' : ''}`;
    item.append(name);
    if (this.isModerator && participant.role !== 'host') {
      item.append(
        this.button('Mute', 'mute-audio', participant.id),
        this.button('Stop video', 'stop-video', participant.id),
        participant.role === 'cohost' ? this.button('Remove co-host', 'remove-cohost', participant.id)
          : this.button('Make co-host', 'make-cohost', participant.id),
        this.button('Remove', 'remove', participant.id, { danger: true }),
      );
    }
    const report = document.createElement('button');
    report.type = 'button';
    report.textContent = 'Report';
    report.dataset.action = 'report';
    report.addEventListener('click', () => {
      const reason = prompt(`Why are you reporting ${participant.name}?`);
      if (reason?.trim()) this.send({ type: 'report', participantId: participant.id, reason: reason.trim() });
    });
    item.append(report);
    return item;
  }
}

/**
 * DOM input wiring: the composer (Enter sends, Shift+Enter breaks the line, the box grows),
 * the mic button (hold = push-to-talk, click = hands-free, also by keyboard), Space as a
 * push-to-talk key outside text fields, Escape to stop the agent speaking, and the
 * header and voice-panel buttons.
 */

function isTextField(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

function autosize(input) {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function bindComposer(app) {
  const { form, input } = app.dom;
  const submit = async () => {
    const text = input.value;
    if (!text.trim() || app.busy || app.ended) return;
    input.value = '';
    autosize(input);
    const sent = await app.sendText(text.trim());
    if (!sent && !input.value) input.value = text; // not sent: keep what the user typed
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener('input', () => autosize(input));
}

function bindMic(app) {
  const { mic } = app.dom;
  const voice = app.voice;
  let pointer = null;
  mic.addEventListener('pointerdown', (event) => {
    if (event.button !== 0 || mic.disabled) return;
    event.preventDefault();
    pointer = event.pointerId;
    mic.setPointerCapture(pointer);
    mic.classList.add('pressed');
    voice.pressStart();
  });
  const release = (event) => {
    if (pointer === null || event.pointerId !== pointer) return;
    pointer = null;
    mic.classList.remove('pressed');
    voice.pressEnd();
  };
  mic.addEventListener('pointerup', release);
  mic.addEventListener('pointercancel', release);
  mic.addEventListener('contextmenu', (event) => event.preventDefault());
  // Keyboard activation (Enter) arrives as a click with detail 0: a tap toggles hands-free.
  mic.addEventListener('click', (event) => {
    if (event.detail !== 0) return;
    voice.pressStart();
    voice.pressEnd();
  });

  let spaceHeld = false;
  const spaceTarget = (target) =>
    target === mic || target === document.body || target === app.dom.scroller;
  document.addEventListener('keydown', (event) => {
    if (event.code === 'Space' && spaceTarget(event.target) && !isTextField(event.target)) {
      event.preventDefault();
      if (event.repeat || spaceHeld || mic.disabled || mic.hidden) return;
      spaceHeld = true;
      mic.classList.add('pressed');
      voice.pressStart();
    } else if (event.key === 'Escape' && voice.open) {
      voice.interrupt();
    }
  });
  document.addEventListener('keyup', (event) => {
    if (event.code !== 'Space' || !spaceHeld) return;
    event.preventDefault();
    spaceHeld = false;
    mic.classList.remove('pressed');
    voice.pressEnd();
  });
  window.addEventListener('blur', () => {
    if (spaceHeld) {
      spaceHeld = false;
      mic.classList.remove('pressed');
      voice.pressEnd();
    }
  });
}

export function bindControls(app) {
  bindComposer(app);
  bindMic(app);
  app.dom.newConversation.addEventListener('click', () => app.newConversation());
  app.dom.leaveVoice.addEventListener('click', () => app.voice.leave());
  window.addEventListener('pagehide', () => {
    if (app.voice.active) app.voice.connection?.close(1000, 'page closed');
  });
}

// The message box: Enter sends, Shift+Enter is a new line, and Korean (or any IME) input is safe.
// While an IME composes a syllable, the last syllable is not in the textarea's value yet: sending on that
// Enter would drop it, and the IME would then commit it into the emptied box (a stray "요" left behind).
// So Enter during composition only asks for a send, which happens at compositionend, once the syllable is
// committed. Browsers differ in what follows: some (Safari, as reported; not tried here) fire a second
// Enter keydown after compositionend with isComposing false, Chromium does not (tested over CDP); a send
// in flight or an empty box makes that second Enter a no-op, so one Enter sends once either way.
export class Composer {
  readonly textarea: HTMLTextAreaElement;
  private readonly onSend: (text: string) => void;
  private composing = false;
  private sendAfterComposition = false;
  /** Set for one task after a send, so the extra Enter some browsers fire after compositionend is ignored. */
  private justSent = false;

  constructor(textarea: HTMLTextAreaElement, onSend: (text: string) => void) {
    this.textarea = textarea;
    this.onSend = onSend;
    textarea.addEventListener('compositionstart', () => (this.composing = true));
    textarea.addEventListener('compositionend', () => {
      this.composing = false;
      if (!this.sendAfterComposition) return;
      this.sendAfterComposition = false;
      // The committed text lands in the value after compositionend's handlers in some browsers: send
      // on the next task, when the value is final.
      setTimeout(() => this.send(), 0);
    });
    textarea.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      if (this.composing || event.isComposing || event.keyCode === 229) {
        this.sendAfterComposition = true;
        return;
      }
      if (this.justSent) return;
      this.send();
    });
    textarea.addEventListener('input', () => this.fitHeight());
  }

  /** Sends the box's text (if any and sending is allowed), then empties it. */
  send(): void {
    const text = this.textarea.value;
    if (this.textarea.disabled || this.textarea.dataset.busy === 'true' || text.trim() === '') return;
    this.textarea.value = '';
    this.fitHeight();
    this.justSent = true;
    setTimeout(() => (this.justSent = false), 0);
    this.onSend(text);
  }

  set busy(busy: boolean) {
    this.textarea.dataset.busy = String(busy);
  }

  focus(): void {
    // Not on phones mid-scroll: focusing opens the keyboard; the page calls this after the user acts.
    this.textarea.focus({ preventScroll: true });
  }

  /** Grows with its text up to a third of the window, then scrolls. */
  fitHeight(): void {
    this.textarea.style.height = 'auto';
    this.textarea.style.height = `${Math.min(this.textarea.scrollHeight, Math.round(window.innerHeight / 3))}px`;
  }
}

// Pictures attached to the next message (a vision model only): from the Attach button, pasted into the
// message box, dropped on the composer, or one of the example pictures; shown as thumbnails with a
// remove button until the message is sent. Pictures are kept as Blobs (IndexedDB stores them as they
// are) and shown through object URLs, never as markup.
import { t } from './i18n.ts';

/** Pictures larger than this are refused before decoding (the engine refuses more than 16 megapixels too). */
const MAX_IMAGE_BYTES = 20 * 2 ** 20;
const MAX_ATTACHMENTS = 4;

const urls = new WeakMap<Blob, string>();

/** An object URL for a picture, made once per Blob. */
export function imageUrl(image: Blob): string {
  let url = urls.get(image);
  if (!url) urls.set(image, (url = URL.createObjectURL(image)));
  return url;
}

/** A thumbnail element for a picture (alt text: its name, or "picture"). */
export function thumbnail(image: Blob): HTMLImageElement {
  const img = document.createElement('img');
  img.className = 'thumb';
  img.src = imageUrl(image);
  img.alt = image instanceof File ? image.name : t('picture');
  img.decoding = 'async';
  return img;
}

export class Attachments {
  enabled = false;
  private images: Blob[] = [];
  private readonly list: HTMLUListElement;
  private readonly onRefused: (reason: string) => void;

  constructor(list: HTMLUListElement, input: HTMLInputElement, attachButton: HTMLButtonElement, dropTarget: HTMLElement, textarea: HTMLTextAreaElement, onRefused: (reason: string) => void) {
    this.list = list;
    this.onRefused = onRefused;
    attachButton.addEventListener('click', () => input.click());
    input.addEventListener('change', () => {
      this.add([...(input.files ?? [])]);
      input.value = '';
    });
    textarea.addEventListener('paste', (event) => {
      const files = [...(event.clipboardData?.files ?? [])].filter((file) => file.type.startsWith('image/'));
      if (!this.enabled || files.length === 0) return; // text pastes as usual
      event.preventDefault();
      this.add(files);
    });
    dropTarget.addEventListener('dragover', (event) => {
      if (!this.enabled || !event.dataTransfer?.types.includes('Files')) return;
      event.preventDefault();
      dropTarget.classList.add('over');
    });
    dropTarget.addEventListener('dragleave', () => dropTarget.classList.remove('over'));
    dropTarget.addEventListener('drop', (event) => {
      dropTarget.classList.remove('over');
      if (!this.enabled || !event.dataTransfer?.files.length) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
    list.addEventListener('click', (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-index]');
      if (!button) return;
      this.images.splice(Number(button.dataset.index), 1);
      this.render();
    });
  }

  get count(): number {
    return this.images.length;
  }

  /** Adds pictures (others are refused with a reason the page shows). */
  add(files: Blob[]): void {
    for (const file of files) {
      if (!file.type.startsWith('image/')) this.onRefused(t('notAPicture'));
      else if (file.size > MAX_IMAGE_BYTES) this.onRefused(t('pictureTooLarge', { mb: MAX_IMAGE_BYTES / 2 ** 20 }));
      else if (this.images.length >= MAX_ATTACHMENTS) this.onRefused(t('tooManyPictures', { count: MAX_ATTACHMENTS }));
      else this.images.push(file);
    }
    this.render();
  }

  /** The attached pictures, emptied. */
  take(): Blob[] {
    const taken = this.images;
    this.images = [];
    this.render();
    return taken;
  }

  clear(): void {
    this.images = [];
    this.render();
  }

  private render(): void {
    this.list.replaceChildren(...this.images.map((image, index) => {
      const item = document.createElement('li');
      const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'remove', textContent: '✕', title: t('removePicture') });
      remove.setAttribute('aria-label', t('removePicture'));
      remove.dataset.index = String(index);
      item.append(thumbnail(image), remove);
      return item;
    }));
    this.list.hidden = this.images.length === 0;
  }
}

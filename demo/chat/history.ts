// Conversations kept in this browser's IndexedDB (through idb, a small well-kept wrapper), newest first.
// Nothing is sent anywhere. A conversation holds its messages and its own settings.
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';

export type Mode = 'chat' | 'plain';

export interface ChatSettings {
  mode: Mode;
  systemPrompt: string;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  maxTokens: number;
  seed: number;
}

export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  /** Pictures sent with a user message (a vision model). */
  images?: Blob[];
  /** The reply was stopped by the user before it finished. */
  stopped?: boolean;
  /** The reply failed: the error's code and message (shown with a way forward). */
  error?: { code: string; message: string };
  stats?: { tokens: number; tokensPerSecond: number; promptTokens: number; cachedTokens: number };
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  settings: ChatSettings;
  messages: StoredMessage[];
}

interface ChatDb extends DBSchema {
  conversations: { key: string; value: Conversation; indexes: { updatedAt: number } };
}

const DB_NAME = 'tri-webgpu-chat';
const LAST_OPENED_KEY = 'tri-chat.conversation';

export class History {
  private readonly db: IDBPDatabase<ChatDb> | undefined;
  private constructor(db: IDBPDatabase<ChatDb> | undefined) {
    this.db = db;
  }

  /** Opens the store; where IndexedDB is unavailable (some private modes) nothing is kept past the page. */
  static async open(): Promise<History> {
    try {
      const db = await openDB<ChatDb>(DB_NAME, 1, {
        upgrade(database) {
          database.createObjectStore('conversations', { keyPath: 'id' }).createIndex('updatedAt', 'updatedAt');
        },
      });
      return new History(db);
    } catch {
      return new History(undefined);
    }
  }

  /** The conversation open when the page was last left (kept in localStorage: one small key). */
  get lastOpened(): string | null {
    return localStorage.getItem(LAST_OPENED_KEY);
  }

  set lastOpened(id: string | null) {
    if (id) localStorage.setItem(LAST_OPENED_KEY, id);
    else localStorage.removeItem(LAST_OPENED_KEY);
  }

  async list(): Promise<Conversation[]> {
    if (!this.db) return [];
    return (await this.db.getAllFromIndex('conversations', 'updatedAt')).reverse();
  }

  async save(conversation: Conversation): Promise<void> {
    // A structured clone of plain data: never a live object that may change while the write is queued.
    await this.db?.put('conversations', structuredClone(conversation));
  }

  async delete(id: string): Promise<void> {
    await this.db?.delete('conversations', id);
  }
}

/** A random id (crypto.randomUUID exists only in secure contexts; a page served over plain http on a LAN is not one). */
export function newId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** A conversation's title from its first message: the first line, at most 48 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split('\n')[0]!.trim();
  return [...line].length > 48 ? `${[...line].slice(0, 47).join('')}…` : line;
}

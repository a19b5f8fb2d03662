export interface Migration {
  /** Ascending from 1 (a number may be skipped, never reused); the schema's version is the highest applied. */
  version: number;
  name: string;
  up: string;
  down: string;
}

export interface Migration {
  /** Consecutive from 1; the schema's version is the highest applied. */
  version: number;
  name: string;
  up: string;
  down: string;
}

/** What every benchmark reads from its environment: a setting with its default, and the server. */
export const env = (name: string, fallback: string): string => process.env[name] || fallback;

/** The PostgreSQL server, from PGHOST, PGPORT and PGUSER (127.0.0.1:5432, postgres). */
export const serverUrl = (): string =>
  `postgres://${env('PGUSER', 'postgres')}@${env('PGHOST', '127.0.0.1')}:${env('PGPORT', '5432')}`;

import { readFileSync } from 'node:fs';

/**
 * ix's version, from package.json (one level up from both src/ and dist/). Not from
 * `npm_package_version`: npm sets that only for what it starts, and to its own package's version.
 */
export function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

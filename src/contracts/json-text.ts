/**
 * JSON text that JSON.parse accepts but ix cannot keep as it was sent: one scan of the text, for
 * the API's body parser and `ix submit` alike. Node 20's JSON.parse gives no access to a number's
 * source, so a number a double cannot hold would silently change (`1e400` became null,
 * `12345678901234567890123` lost its last digits); a lone surrogate is no character, and
 * PostgreSQL refuses it (a 500 before); and nesting is bounded, so that no recursive consumer
 * further on (JSON.stringify, PostgreSQL's jsonb parser, a pipeline) can be driven out of stack.
 */

/** The deepest a document may nest arrays and objects, the document itself being level 1. */
export const MAX_JSON_DEPTH = 256;

/** At most this many problems are reported: enough to fix a document, too few to flood a reply. */
const MAX_PROBLEMS = 20;

export interface JsonTextProblem {
  /** JSONPath of the value (or of the member, for a key), e.g. `$.request.input.amount`. */
  path: string;
  message: string;
}

/** `["request", "items", 0]` → `$.request.items[0]`; keys that are not identifiers are quoted. */
export function toJsonPath(segments: readonly PropertyKey[]): string {
  let path = '$';
  for (const segment of segments) {
    const key = String(segment);
    if (typeof segment === 'number' || /^\d+$/.test(key)) path += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) path += `.${key}`;
    else path += `[${JSON.stringify(key)}]`;
  }
  return path;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
const LOWER_U = 0x75;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

function indexOrEnd(text: string, char: string, from: number): number {
  const at = text.indexOf(char, from);
  return at === -1 ? text.length : at;
}

const isDigit = (c: number) => c >= DIGIT_0 && c <= DIGIT_9;
const isNumberPart = (c: number) =>
  isDigit(c) || c === MINUS || c === PLUS || c === DOT || c === LOWER_E || c === UPPER_E;
const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/** An array or object the scan is inside, and where in it. */
interface Level {
  isArray: boolean;
  /** In an array: the index of the current element. */
  index: number;
  /** In an object: the current member's key, as the offsets of its JSON string (quotes included). */
  keyStart: number;
  keyEnd: number;
  /** In an object: the next string is a key. */
  expectingKey: boolean;
}

// Any decimal of at most 15 significant digits survives the trip through a double (DBL_DIG).
const DIGITS_A_DOUBLE_ALWAYS_KEEPS = 15;

/** A decimal's significant digits and the power of ten of the last one: `-12.50e3` → ['125', 2]. */
function significand(decimal: string): [digits: string, exponent: number] {
  const e = decimal.search(/[eE]/);
  const mantissa = e === -1 ? decimal : decimal.slice(0, e);
  const dot = mantissa.indexOf('.');
  let exponent = (e === -1 ? 0 : Number(decimal.slice(e + 1))) - (dot === -1 ? 0 : mantissa.length - dot - 1);
  const digits = mantissa.replace(/[-.]/g, '').replace(/^0+/, '');
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  return [trimmed, trimmed === '' ? 0 : exponent];
}

/** Why a double cannot hold the JSON number `token` exactly, or null when it can. */
function numberProblem(token: string): string | null {
  let digits = 0;
  let plainInteger = true;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (isDigit(c)) digits++;
    else if (c !== MINUS) plainInteger = false;
  }
  // The common case, without converting: no exponent and few digits, so a value a double keeps.
  if (digits <= DIGITS_A_DOUBLE_ALWAYS_KEEPS && !/[eE]/.test(token)) return null;
  const value = Number(token);
  if (!Number.isFinite(value))
    return 'is beyond the range of a double (about ±1.8e308), where ix would lose it; send it as a string';
  if (plainInteger && !Number.isSafeInteger(value))
    return 'is an integer beyond ±9007199254740991 (2^53 − 1), which a double cannot hold exactly; send it as a string';
  const [sent, kept] = [significand(token), significand(String(value))];
  if (sent[0] === kept[0] && sent[1] === kept[1]) return null;
  return value === 0
    ? 'is too close to zero for a double, where ix would make it 0; send it as a string'
    : 'has more significant digits than a double keeps (15 to 17), so ix would change it; send it as a string';
}

/**
 * What JSON.parse accepted in `text` but ix cannot keep as sent: nesting deeper than
 * MAX_JSON_DEPTH (the scan stops there), a number a double does not hold exactly (beyond its
 * range, an integer beyond ±(2^53 − 1), or more significant digits than it keeps), and a string
 * or key with a lone surrogate escape (`"\ud800"`; text decoded from UTF-8 cannot hold one
 * unescaped). Each problem is named by its JSONPath, at most MAX_PROBLEMS of them. `text` must
 * be JSON that JSON.parse accepts. One pass, no recursion: the cost is linear in the text, and
 * strings are crossed by indexOf, not character by character.
 */
export function jsonTextProblems(text: string): JsonTextProblem[] {
  const problems: JsonTextProblem[] = [];
  const levels: Level[] = [];
  const report = (message: string) => {
    const path = levels.map((level) =>
      level.isArray ? level.index : (JSON.parse(text.slice(level.keyStart, level.keyEnd)) as string),
    );
    problems.push({ path: toJsonPath(path), message });
  };
  // The next quote and backslash at or after the scan, each found once: searching afresh for
  // every string would cross the rest of the text each time.
  let nextQuote = -1;
  let nextBackslash = -1;
  const quoteFrom = (from: number) => {
    if (nextQuote < from) nextQuote = indexOrEnd(text, '"', from);
    return nextQuote;
  };
  const backslashFrom = (from: number) => {
    if (nextBackslash < from) nextBackslash = indexOrEnd(text, '\\', from);
    return nextBackslash;
  };
  /** The UTF-16 unit a `\uXXXX` escape at `at` stands for; -1 when there is none. */
  const escapedUnitAt = (at: number) =>
    text.charCodeAt(at) === BACKSLASH && text.charCodeAt(at + 1) === LOWER_U
      ? Number.parseInt(text.slice(at + 2, at + 6), 16)
      : -1;

  let i = 0;
  while (i < text.length && problems.length < MAX_PROBLEMS) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const top = levels.at(-1);
      let at = i + 1;
      let lone: string | null = null;
      for (;;) {
        const end = quoteFrom(at);
        const backslash = backslashFrom(at);
        if (backslash >= end) {
          at = end;
          break;
        }
        const unit = escapedUnitAt(backslash);
        at = backslash + (unit === -1 ? 2 : 6);
        if (isHighSurrogate(unit) && isLowSurrogate(escapedUnitAt(at))) at += 6;
        else if (isHighSurrogate(unit) || isLowSurrogate(unit)) lone ??= text.slice(backslash, at);
      }
      if (top && !top.isArray && top.expectingKey) {
        top.keyStart = i;
        top.keyEnd = at + 1;
        top.expectingKey = false;
      }
      if (lone !== null)
        report(`holds the lone surrogate ${lone}, which is no character; remove it or complete its pair`);
      i = at + 1;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (levels.length === MAX_JSON_DEPTH) {
        report(`nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects, the most ix accepts`);
        break;
      }
      levels.push({ isArray: c === OPEN_ARRAY, index: 0, keyStart: 0, keyEnd: 0, expectingKey: true });
      i++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      levels.pop();
      i++;
    } else if (c === COMMA) {
      const top = levels.at(-1);
      if (top?.isArray) top.index++;
      else if (top) top.expectingKey = true;
      i++;
    } else if (c === MINUS || isDigit(c)) {
      let end = i + 1;
      while (end < text.length && isNumberPart(text.charCodeAt(end))) end++;
      const problem = numberProblem(text.slice(i, end));
      if (problem !== null) report(problem);
      i = end;
    } else {
      i++;
    }
  }
  return problems;
}

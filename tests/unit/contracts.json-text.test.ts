import { describe, expect, it } from 'vitest';
import { jsonTextProblems, MAX_JSON_DEPTH, toJsonPath } from '../../src/contracts/index.js';

const nested = (levels: number, inner = '1') => `${'['.repeat(levels)}${inner}${']'.repeat(levels)}`;
const paths = (text: string) => jsonTextProblems(text).map((p) => p.path);

describe('jsonTextProblems', () => {
  it('finds nothing in ordinary JSON, escapes and paired surrogates included', () => {
    const text = JSON.stringify({
      id: 'a"b\\c\n',
      n: [0, -1, 1.5, 0.1, -2.5e-7, 1e300, 9007199254740991, -9007199254740991, 5e-324],
      smile: '😀',
      nested: { deeper: [{ x: null, y: true, z: false }] },
    });
    expect(jsonTextProblems(text)).toEqual([]);
    expect(jsonTextProblems('"\\ud83d\\ude00 and \\uD83D\\uDE00"')).toEqual([]);
    expect(jsonTextProblems('[1.7976931348623157e308, 123456789012345.6, 1e20, 0.0e-999]')).toEqual([]);
  });

  it(`allows ${MAX_JSON_DEPTH} levels and refuses the next, naming where it starts`, () => {
    expect(jsonTextProblems(nested(MAX_JSON_DEPTH))).toEqual([]);
    const [problem, ...rest] = jsonTextProblems(nested(MAX_JSON_DEPTH + 1));
    expect(rest).toEqual([]);
    expect(problem?.path).toBe(`$${'[0]'.repeat(MAX_JSON_DEPTH)}`);
    expect(problem?.message).toMatch(/deeper than 256 levels/);
    // Iterative: a million levels cost no stack.
    expect(paths(nested(1_000_000))).toHaveLength(1);
  });

  it.each([
    ['1e400', /range of a double/],
    ['-1e400', /range of a double/],
    ['1e-400', /too close to zero/],
    ['9007199254740992', /2\^53/],
    ['-12345678901234567890123', /2\^53/],
    ['0.10000000000000001', /significant digits/],
    ['3.14159265358979323846', /significant digits/],
    ['9007199254740993.0', /significant digits/],
    ['1.00000000000000000001e10', /significant digits/],
  ])('refuses %s, telling to send it as a string', (number, message) => {
    const [problem] = jsonTextProblems(`{"a": [true, {"b": ${number}}]}`);
    expect(problem).toEqual({ path: '$.a[1].b', message: expect.stringMatching(message) });
    expect(problem?.message).toMatch(/send it as a string$/);
  });

  it.each([
    ['a lone high surrogate at the end', '"ab\\ud800"', '\\ud800'],
    ['a high surrogate before a character that is not a low one', '"\\uD800\\u0041"', '\\uD800'],
    ['a lone low surrogate', '"\\udfff x"', '\\udfff'],
    ['two high surrogates', '"\\ud800\\ud800\\udc00"', '\\ud800'],
  ])('refuses %s', (_name, string, lone) => {
    expect(jsonTextProblems(`{"k": ${string}}`)).toEqual([
      { path: '$.k', message: expect.stringContaining(`lone surrogate ${lone}`) },
    ]);
  });

  it('names a key with a lone surrogate, and keys with quotes or brackets, by their paths', () => {
    expect(paths('{"ok": 1, "bad\\udc00": 2}')).toEqual(['$["bad\\udc00"]']);
    expect(paths('{"a\\"[{": {"x,y": [1, 2, 1e999]}, "0": 1e999}')).toEqual([
      '$["a\\"[{"]["x,y"][2]',
      '$[0]',
    ]);
  });

  it(`reports every problem, up to 20`, () => {
    expect(paths('[1e999, 2, "\\ud800", 3e999]')).toEqual(['$[0]', '$[2]', '$[3]']);
    expect(paths(`[${Array(100).fill('1e999').join(',')}]`)).toHaveLength(20);
  });

  it('stays linear in the text: many strings, escapes and one far backslash', () => {
    const text = `[${Array(200_000).fill('"plain"').join(',')}, "${'\\n'.repeat(200_000)}", "\\u00e9"]`;
    const started = performance.now();
    expect(jsonTextProblems(text)).toEqual([]);
    // Quadratic scanning (searching the rest of the text for every string) takes minutes here.
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('toJsonPath', () => {
  it('writes identifiers with dots, indexes in brackets, and quotes any other key', () => {
    expect(toJsonPath([])).toBe('$');
    expect(toJsonPath(['request', 'items', 0, '1', 'a b', 'x.y'])).toBe(
      '$.request.items[0][1]["a b"]["x.y"]',
    );
  });
});

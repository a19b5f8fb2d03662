import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const STORE_INDEX = join(ROOT, 'src/store/index.ts');

/** The production program, as `npm run build` compiles it. */
function productionProgram(): ts.Program {
  const configPath = join(ROOT, 'tsconfig.build.json');
  const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, ROOT, undefined, configPath);
  return ts.createProgram(parsed.fileNames, parsed.options);
}

const DECLARATIONS = [
  ts.isFunctionDeclaration,
  ts.isClassDeclaration,
  ts.isInterfaceDeclaration,
  ts.isTypeAliasDeclaration,
  ts.isEnumDeclaration,
  ts.isVariableDeclaration,
];

/** Whether `node` only names what it is in: a declaration's own name, or an import or export of it. */
function isDeclarationOrReexport(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent) || ts.isImportClause(parent)) return true;
  return DECLARATIONS.some((is) => is(parent)) && (parent as ts.NamedDeclaration).name === node;
}

/**
 * The store's exports that no production code uses: each is the name of a symbol exported by
 * src/store/index.ts that no identifier in src/ refers to, other than where it is declared,
 * imported or re-exported.
 */
function unusedStoreExports(): string[] {
  const program = productionProgram();
  const checker = program.getTypeChecker();
  const index = program.getSourceFile(STORE_INDEX);
  if (!index) throw new Error(`${STORE_INDEX} is not part of the build`);
  const resolveAlias = (symbol: ts.Symbol) =>
    symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(index)!);
  const exported = new Map(exports.map((e) => [resolveAlias(e), e.name]));
  const used = new Set<ts.Symbol>();
  // Only identifiers spelled as an export, or as what one is imported as, can refer to one: the
  // checker is asked about those alone (asking about every identifier took 20–33 s of a 30 s
  // budget on a loaded machine).
  const names = new Set(exports.flatMap((e) => [e.name, resolveAlias(e).name]));
  for (const file of program.getSourceFiles()) {
    if (file.isDeclarationFile || file === index) continue;
    const visit = (node: ts.Node): void => {
      if (ts.isImportSpecifier(node) && names.has((node.propertyName ?? node.name).text))
        names.add(node.name.text);
      if (ts.isIdentifier(node) && names.has(node.text) && !isDeclarationOrReexport(node)) {
        const symbol = checker.getSymbolAtLocation(node);
        if (symbol) used.add(resolveAlias(symbol));
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return [...exported].filter(([symbol]) => !used.has(symbol)).map(([, name]) => name);
}

describe('the store', () => {
  // Type-checks the whole production program: ~20 s alone, over 30 s on a loaded machine.
  it('exports only what production code uses: test helpers live in tests/support', () => {
    expect(unusedStoreExports()).toEqual([]);
  }, 120_000);
});

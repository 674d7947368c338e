// Tokenises .nixl text with VS Code's own TextMate engine (vscode-textmate +
// vscode-oniguruma) and checks the scopes of keywords, block kinds, strings,
// interpolations, numbers with units, money and comments. Run by
// tests/suite/lsp.rs (`cargo test`) after `npm ci` here; exits 1 on a mismatch.
'use strict';
const fs = require('fs');
const path = require('path');
const oniguruma = require('vscode-oniguruma');
const vsctm = require('vscode-textmate');

const root = path.join(__dirname, '..', '..', '..');
const grammarPath = path.join(__dirname, '..', 'syntaxes', 'nixl.tmLanguage.json');
const wasm = fs.readFileSync(path.join(__dirname, 'node_modules', 'vscode-oniguruma', 'release', 'onig.wasm')).buffer;

async function tokenize(text) {
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scope) =>
      scope === 'source.nixl' ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, 'utf8'), grammarPath) : null,
  });
  const grammar = await registry.loadGrammar('source.nixl');
  const tokens = [];
  let stack = vsctm.INITIAL;
  text.split('\n').forEach((line, lineNo) => {
    const r = grammar.tokenizeLine(line, stack);
    for (const t of r.tokens) {
      tokens.push({ line: lineNo, text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    }
    stack = r.ruleStack;
  });
  return tokens;
}

let failures = 0;
let checks = 0;
function expectScope(tokens, line, text, scope) {
  checks++;
  const t = tokens.find((t) => t.line === line && t.text === text);
  if (!t) {
    failures++;
    const seen = tokens.filter((t) => t.line === line).map((t) => JSON.stringify(t.text));
    console.error(`line ${line + 1}: no token ${JSON.stringify(text)}; tokens: ${seen.join(' ')}`);
  } else if (!t.scopes.some((s) => s.startsWith(scope))) {
    failures++;
    console.error(`line ${line + 1}: ${JSON.stringify(text)} has ${t.scopes.join(' ')}, expected ${scope}`);
  }
}

async function main() {
  // The phase-1 example: every construct the grammar must scope, at known lines.
  const example = fs.readFileSync(path.join(root, 'examples', 'phase1.nixl'), 'utf8');
  const lines = example.split('\n');
  const lineOf = (needle) => {
    const i = lines.findIndex((l) => l.includes(needle));
    if (i < 0) throw new Error(`${needle} not in the example`);
    return i;
  };
  const tokens = await tokenize(example);
  expectScope(tokens, 0, '# Phase 1: the full grid of disaggregated-inference measurements.', 'comment.line.number-sign.nixl');
  expectScope(tokens, lineOf('import "std/aws"'), 'import', 'keyword.control');
  expectScope(tokens, lineOf('import "std/aws"'), 'std/aws', 'string.quoted.double.nixl');
  expectScope(tokens, lineOf('stack "phase2'), 'stack', 'storage.type.block.nixl');
  expectScope(tokens, lineOf('zones         ='), 'zones', 'variable.other.property.nixl');
  expectScope(tokens, lineOf('zones         ='), '# tried in order on capacity errors', 'comment.line');
  expectScope(tokens, lineOf('volume        = 200GB'), '200', 'constant.numeric.nixl');
  expectScope(tokens, lineOf('volume        = 200GB'), 'GB', 'keyword.other.unit.nixl');
  expectScope(tokens, lineOf('efa           = true'), 'true', 'constant.language.nixl');
  expectScope(tokens, lineOf('experiment phase1'), 'experiment', 'storage.type.block.nixl');
  expectScope(tokens, lineOf('experiment phase1'), 'phase1', 'entity.name.type.nixl');
  expectScope(tokens, lineOf('factor prompt'), 'factor', 'keyword.control');
  expectScope(tokens, lineOf('factor prompt'), 'prompt', 'variable.other.declaration.nixl');
  expectScope(tokens, lineOf('factor prompt'), 'K', 'keyword.other.unit.nixl');
  expectScope(tokens, lineOf('let long'), 'let', 'keyword.control');
  expectScope(tokens, lineOf('prune long'), 'prune', 'keyword.control');
  expectScope(tokens, lineOf('prune long'), 'because', 'keyword.control');
  expectScope(tokens, lineOf('prune long'), 'and', 'keyword.operator.logical.nixl');
  expectScope(tokens, lineOf('duration = long ?'), '13', 'constant.numeric.nixl');
  expectScope(tokens, lineOf('duration = long ?'), 'min', 'keyword.other.unit.nixl');
  expectScope(tokens, lineOf('layer "L1-Unified"'), 'layer', 'storage.type.block.nixl');
  expectScope(tokens, lineOf('id       = "{prefix}-unified'), '{', 'punctuation.section.interpolation.begin.nixl');
  expectScope(tokens, lineOf('id       = "{prefix}-unified'), 'prefix', 'meta.interpolation.nixl');
  expectScope(tokens, lineOf('method  = dip_test'), 'dip_test', 'entity.name.function.nixl');
  expectScope(tokens, lineOf('fi_pingpong { size'), '64', 'constant.numeric.nixl');
  expectScope(tokens, lineOf('fi_pingpong { size'), 'KiB', 'keyword.other.unit.nixl');

  // Constructs the example lacks: money, raw strings, escapes, `extends`, `when ... then run`.
  const extra = await tokenize(
    [
      'instance "x" { price = $5.67 }',
      "let cmd = 'echo {raw}'",
      'let s = "a\\"b"',
      'experiment p2 extends p1 {',
      '  when ttft > 2s then run adhoc(kvbench)',
      '}',
    ].join('\n')
  );
  expectScope(extra, 0, '$', 'keyword.other.unit.currency.nixl');
  expectScope(extra, 0, '5.67', 'constant.numeric.nixl');
  expectScope(extra, 1, "'echo {raw}'", 'string.quoted.single.nixl');
  expectScope(extra, 2, '\\"', 'constant.character.escape.nixl');
  expectScope(extra, 3, 'extends', 'keyword.control.extends.nixl');
  expectScope(extra, 3, 'p1', 'entity.other.inherited-class.nixl');
  expectScope(extra, 4, 'when', 'keyword.control');
  expectScope(extra, 4, 'then', 'keyword.control');
  expectScope(extra, 4, 'run', 'keyword.control');
  expectScope(extra, 4, 's', 'keyword.other.unit.nixl');

  if (failures > 0) {
    console.error(`${failures} of ${checks} scope checks failed`);
    process.exit(1);
  }
  console.log(`ok: ${checks} scope checks`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// Starts `nixl lsp` for .nixl files. Everything else (diagnostics, hover,
// completion, definition, references, outline, formatting) comes from the server.
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration('nixl').get('server.path') || 'nixl';
  const server = { command, args: ['lsp'], transport: TransportKind.stdio };
  client = new LanguageClient(
    'nixl',
    'nixl language server',
    { run: server, debug: server },
    { documentSelector: [{ scheme: 'file', language: 'nixl' }, { scheme: 'untitled', language: 'nixl' }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };

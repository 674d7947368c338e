-- End-to-end check of `nixl lsp` from a real client: Neovim 0.7 (Debian's),
-- run headless by tests/suite/lsp.rs as
--   nvim --headless --clean -n FILE -c "luafile nvim_e2e.lua"
-- with NIXL_BIN (the binary), NIXL_RESULT (where to write the JSON result) and
-- NIXL_* positions (0-based) in the environment. Uses only 0.7 APIs
-- (vim.lsp.start_client, buf_attach_client; vim.lsp.start arrived in 0.8).

local out = {}
local function env(name) return (assert(os.getenv(name), name .. ' is not set')) end
local function num(name) return tonumber(env(name)) end

local function finish()
  local f = assert(io.open(env('NIXL_RESULT'), 'w'))
  f:write(vim.fn.json_encode(out))
  f:close()
  vim.cmd('qa!')
end

local function diags()
  local list = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    local lsp = d.user_data and d.user_data.lsp or {}
    table.insert(list, {
      lnum = d.lnum, col = d.col, end_lnum = d.end_lnum, end_col = d.end_col,
      message = d.message, severity = d.severity, code = d.code or lsp.code,
    })
  end
  return list
end

local function request(method, line, character)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    position = { line = line, character = character },
  }
  local responses = vim.lsp.buf_request_sync(0, method, params, 10000)
  for _, r in pairs(responses or {}) do
    if r.result then return r.result end
    if r.err then return { error = r.err.message } end
  end
  return vim.NIL
end

local ok, err = pcall(function()
  local id = vim.lsp.start_client({
    name = 'nixl',
    cmd = { env('NIXL_BIN'), 'lsp' },
    root_dir = vim.fn.getcwd(),
  })
  assert(id, 'start_client failed')
  vim.lsp.buf_attach_client(0, id)

  -- 1. The error in the file is reported.
  out.got_error = vim.wait(15000, function() return #vim.diagnostic.get(0) > 0 end, 20)
  out.before = diags()

  -- 2. Fix it in the buffer (an incremental didChange), see the diagnostics cleared.
  local row, col, end_col = num('NIXL_FIX_LINE'), num('NIXL_FIX_COL'), num('NIXL_FIX_END')
  vim.api.nvim_buf_set_text(0, row, col, row, end_col, { env('NIXL_FIX_TEXT') })
  out.cleared = vim.wait(15000, function() return #vim.diagnostic.get(0) == 0 end, 20)
  out.after = diags()
  out.sync = vim.lsp.get_client_by_id(id).server_capabilities.textDocumentSync.change

  -- 3. Hover, completion and definition, once each.
  out.hover = request('textDocument/hover', num('NIXL_HOVER_LINE'), num('NIXL_HOVER_COL'))
  local completion = request('textDocument/completion', num('NIXL_COMPLETE_LINE'), num('NIXL_COMPLETE_COL'))
  out.completion = {}
  for _, item in ipairs(completion.items or completion) do table.insert(out.completion, item.label) end
  out.definition = request('textDocument/definition', num('NIXL_DEF_LINE'), num('NIXL_DEF_COL'))

  vim.lsp.stop_client(id)
end)
out.ok = ok
out.err = err and tostring(err) or nil
finish()

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

-- Scenario "quickstart": diagnostics, a fix, hover, completion, definition.
local function quickstart(id)
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
end

-- Scenario "phase2" (phase2.nixl open, phase1.nixl beside it): an inlay hint, a
-- factor renamed across both files and saved, a completion accepted inside a string.
local function phase2()
  local uri = vim.uri_from_bufnr(0)
  local last = vim.api.nvim_buf_line_count(0)
  local function hints()
    local r = vim.lsp.buf_request_sync(0, 'textDocument/inlayHint', {
      textDocument = { uri = uri },
      range = { start = { line = 0, character = 0 }, ['end'] = { line = last, character = 0 } },
    }, 10000)
    for _, x in pairs(r or {}) do if x.result then return x.result end end
    return {}
  end
  -- 1. Inlay hints, once the server has checked the file.
  local got = {}
  vim.wait(15000, function() got = hints(); return #got > 0 end, 50)
  out.hints = {}
  for _, h in ipairs(got) do table.insert(out.hints, { line = h.position.line, label = h.label }) end

  -- 2. Rename a factor defined in phase1.nixl from its use in phase2.nixl, apply, save both.
  local r = vim.lsp.buf_request_sync(0, 'textDocument/rename', {
    textDocument = { uri = uri },
    position = { line = num('NIXL_RENAME_LINE'), character = num('NIXL_RENAME_COL') },
    newName = env('NIXL_RENAME_TO'),
  }, 10000)
  local edit = {}
  for _, x in pairs(r or {}) do if x.result then edit = x.result end end
  out.rename_files = {}
  for file_uri, edits in pairs(edit.changes or {}) do
    out.rename_files[vim.fn.fnamemodify(vim.uri_to_fname(file_uri), ':t')] = #edits
  end
  vim.lsp.util.apply_workspace_edit(edit, 'utf-16')
  vim.cmd('silent! wall')

  -- 3. Type `"p2-ll-fi-` as a new schedule entry, ask for completion inside the
  --    string, accept the wanted item by applying its text edit as a client does.
  local row = num('NIXL_TYPE_LINE')
  local typed = env('NIXL_TYPE_TEXT')
  vim.api.nvim_buf_set_lines(0, row, row, false, { typed })
  local col = #typed - 2 -- before the closing `",`
  local completion = request('textDocument/completion', row, col)
  local items = completion.items or completion
  out.offered = {}
  local chosen
  for _, item in ipairs(items) do
    table.insert(out.offered, item.label)
    if item.label == env('NIXL_WANT') then chosen = item end
  end
  if chosen and chosen.textEdit then
    vim.lsp.util.apply_text_edits({ chosen.textEdit }, 0, 'utf-16')
  end
  out.accepted_line = vim.api.nvim_buf_get_lines(0, row, row + 1, false)[1]
end

local ok, err = pcall(function()
  local params = {
    name = 'nixl',
    cmd = { env('NIXL_BIN'), 'lsp' },
    root_dir = vim.fn.getcwd(),
  }
  local id = vim.lsp.start_client(params)
  assert(id, 'start_client failed')
  vim.lsp.buf_attach_client(0, id)
  if os.getenv('NIXL_SCENARIO') == 'phase2' then phase2() else quickstart(id) end
  vim.lsp.stop_client(id)
end)
out.ok = ok
out.err = err and tostring(err) or nil
finish()

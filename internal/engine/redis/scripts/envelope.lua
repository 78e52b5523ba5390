-- envelope.lua: shared functions, prepended to the scripts that write
-- dead-letter entries. It defines no KEYS or ARGV and returns nothing.
--
-- Dead-letter entries must be byte-identical to the ones engine.OverflowEnvelope
-- and engine.FailedEnvelope build in Go (Python json.dumps style: ", " and ": "
-- separators, ensure_ascii escapes), so py_json_string mirrors
-- engine.PyJSONString and json_container mirrors engine.IsJSONContainer
-- (cjson is not used for validation: it accepts hex numbers, inf and nan).
--
-- Redis runs a script's whole body on every call, so the functions are
-- created only by a call that writes an envelope: envelope() builds them
-- once per call and returns {overflow = ..., failed = ..., field_raw = ...,
-- quote = ...}.

local envelope_lib
local function envelope()
  if envelope_lib then return envelope_lib end
  -- py_control_escapes maps each control byte and DEL (0x7F: Python's
  -- ASCII escape set is everything outside ' '..'~') to its json.dumps
  -- escape, for string.gsub; built only when such a byte occurs.
  local py_control_escape
  local function py_control_escapes()
    if py_control_escape then return py_control_escape end
    py_control_escape = {
      ['\b'] = '\\b', ['\f'] = '\\f',
      ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
      ['\127'] = '\\u007f',
    }
    for c = 0, 31 do
      local ch = string.char(c)
      if not py_control_escape[ch] then py_control_escape[ch] = string.format('\\u%04x', c) end
    end
    return py_control_escape
  end

  local function py_u(cp)
    return string.format('\\u%04x', cp)
  end

  -- utf8_rune decodes the rune at byte i the way Go's utf8.DecodeRuneInString
  -- does: any invalid or overlong sequence, surrogate or value above U+10FFFF
  -- yields U+FFFD and consumes one byte.
  local function utf8_rune(s, i, n)
    local c = string.byte(s, i)
    local need, lo, hi, cp
    if c >= 0xC2 and c <= 0xDF then
      need, cp, lo, hi = 1, c - 0xC0, 0x80, 0xBF
    elseif c >= 0xE0 and c <= 0xEF then
      need, cp = 2, c - 0xE0
      lo, hi = 0x80, 0xBF
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      need, cp = 3, c - 0xF0
      lo, hi = 0x80, 0xBF
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return 0xFFFD, 1
    end
    if i + need > n then return 0xFFFD, 1 end
    for k = 1, need do
      local b = string.byte(s, i + k)
      if k == 1 then
        if b < lo or b > hi then return 0xFFFD, 1 end
      elseif b < 0x80 or b > 0xBF then
        return 0xFFFD, 1
      end
      cp = cp * 64 + (b - 0x80)
    end
    return cp, need + 1
  end

  -- py_high escapes a run of non-ASCII bytes (a byte >= 0x80 and the
  -- continuation bytes after it) as \uXXXX, with surrogate pairs above the BMP.
  local function py_high(run)
    local out, o = {}, 1
    local i, n = 1, #run
    while i <= n do
      local cp, size = utf8_rune(run, i, n)
      if cp >= 0x10000 then
        cp = cp - 0x10000
        out[o] = py_u(0xD800 + math.floor(cp / 1024)) .. py_u(0xDC00 + cp % 1024)
      else
        out[o] = py_u(cp)
      end
      o = o + 1
      i = i + size
    end
    return table.concat(out)
  end

  -- py_json_string quotes s as engine.PyJSONString does. The work is done in
  -- C by string.find and string.gsub, one pass per kind of escape and only
  -- when that kind occurs. Lua 5.1 matches a character class position by
  -- position, slowly, so plain (memchr-like) finds look for quotes and
  -- backslashes, and a single range class for everything else (controls,
  -- DEL and non-ASCII). Backslashes are escaped first, so no later pass sees
  -- its own output. A non-ASCII run is a byte >= 0x80 and the continuation
  -- bytes after it: a sequence cut short ends its run (the next byte is no
  -- continuation byte), which is exactly where Go's decoder gives up too.
  --
  -- Printable ASCII, the common case, has one faster path: an anchored
  -- pattern checks the whole string in one pass (an unanchored class
  -- search restarts the matcher at every byte, and cost 3.4 us of a 200-byte
  -- item), and cjson.encode escapes it in C. For such strings cjson differs
  -- from json.dumps only in escaping '/' as '\/', which is undone: every
  -- '/' of its output comes with that escape, so each '\/' is one.
  local function py_json_string(s)
    if string.find(s, '^[ -~]*$') then
      local q = cjson.encode(s)
      if string.find(s, '/', 1, true) then q = (string.gsub(q, '\\/', '/')) end
      return q
    end
    local backslash = string.find(s, '\\', 1, true)
    local quote = string.find(s, '"', 1, true)
    local other = string.find(s, '[^\32-\126]')
    if not (backslash or quote or other) then
      return '"' .. s .. '"'
    end
    if backslash then s = (string.gsub(s, '\\', '\\\\')) end
    if quote then s = (string.gsub(s, '"', '\\"')) end
    if other then
      if string.find(s, '[^\32-\126\128-\255]') then
        s = (string.gsub(s, '[^\32-\126\128-\255]', py_control_escapes()))
      end
      if string.find(s, '[\128-\255]') then
        s = (string.gsub(s, '[\128-\255][\128-\191]*', py_high))
      end
    end
    return '"' .. s .. '"'
  end

  -- json_skip_ws returns the index of the first non-blank byte at or after i.
  local function json_skip_ws(s, i)
    local _, e = string.find(s, '^[ \t\n\r]*', i)
    return e + 1
  end

  -- json_scalar validates a string, number or literal at i and returns the
  -- index after it, or nil.
  local function json_scalar(s, i)
    local c = string.sub(s, i, i)
    if c == '"' then
      i = i + 1
      while true do
        local j = string.find(s, '[%z\1-\31"\\]', i)
        if not j then return nil end
        local d = string.byte(s, j)
        if d == 34 then return j + 1 end
        if d < 32 then return nil end
        local e = string.sub(s, j + 1, j + 1)
        if e == 'u' then
          if not string.find(s, '^%x%x%x%x', j + 2) then return nil end
          i = j + 6
        elseif e ~= '' and string.find('"\\/bfnrt', e, 1, true) then
          i = j + 2
        else
          return nil
        end
      end
    end
    for _, lit in ipairs({'true', 'false', 'null'}) do
      if string.sub(s, i, i + #lit - 1) == lit then return i + #lit end
    end
    local _, e = string.find(s, '^%-?0', i)
    if not e then _, e = string.find(s, '^%-?[1-9]%d*', i) end
    if not e then return nil end
    local _, f = string.find(s, '^%.%d+', e + 1)
    if f then e = f end
    _, f = string.find(s, '^[eE][%+%-]?%d+', e + 1)
    if f then e = f end
    return e + 1
  end

  -- json_key validates an object key and its colon at i; it returns the index
  -- of the value that follows, or nil.
  local function json_key(s, i)
    if string.sub(s, i, i) ~= '"' then return nil end
    i = json_scalar(s, i)
    if not i then return nil end
    i = json_skip_ws(s, i)
    if string.sub(s, i, i) ~= ':' then return nil end
    return json_skip_ws(s, i + 1)
  end

  -- json_value_end checks the JSON value that starts at byte i and returns
  -- the index just past it, or nil. It is iterative so that deep nesting
  -- cannot exhaust the Lua stack (Lua 5.1 has no goto: a two-state loop).
  local function json_value_end(s, i)
    local stack, depth = {}, 0
    local want_value = true
    while true do
      if want_value then
        local c = string.sub(s, i, i)
        want_value = false
        if c == '{' or c == '[' then
          depth = depth + 1
          stack[depth] = c
          i = json_skip_ws(s, i + 1)
          local close = (c == '{') and '}' or ']'
          if string.sub(s, i, i) == close then
            depth = depth - 1
            i = i + 1
          else
            if c == '{' then
              i = json_key(s, i)
              if not i then return nil end
            end
            want_value = true
          end
        else
          i = json_scalar(s, i)
          if not i then return nil end
        end
      else
        if depth == 0 then return i end
        i = json_skip_ws(s, i)
        local d = string.sub(s, i, i)
        local top = stack[depth]
        if d == ',' then
          i = json_skip_ws(s, i + 1)
          if top == '{' then
            i = json_key(s, i)
            if not i then return nil end
          end
          want_value = true
        elseif (d == '}' and top == '{') or (d == ']' and top == '[') then
          depth = depth - 1
          i = i + 1
        else
          return nil
        end
      end
    end
  end

  -- json_valid mirrors Go's json.Valid.
  local function json_valid(s)
    local e = json_value_end(s, json_skip_ws(s, 1))
    return e ~= nil and json_skip_ws(s, e) > #s
  end

  -- json_field_raw returns the text of a top-level field of the JSON
  -- object s exactly as written, or nil. Re-encoding a decoded value would
  -- reorder keys and round numbers beyond 14 digits (cjson).
  local function json_field_raw(s, key)
    local want = py_json_string(key)
    local i = json_skip_ws(s, 1)
    if string.sub(s, i, i) ~= '{' then return nil end
    i = json_skip_ws(s, i + 1)
    while string.sub(s, i, i) == '"' do
      local key_end = json_scalar(s, i)
      if not key_end then return nil end
      local name = string.sub(s, i, key_end - 1)
      i = json_key(s, i)
      if not i then return nil end
      local value_end = json_value_end(s, i)
      if not value_end then return nil end
      if name == want then return string.sub(s, i, value_end - 1) end
      i = json_skip_ws(s, value_end)
      if string.sub(s, i, i) ~= ',' then return nil end
      i = json_skip_ws(s, i + 1)
    end
    return nil
  end

  -- json_container mirrors engine.IsJSONContainer.
  local function json_container(s)
    local c = string.sub(s, 1, 1)
    if c ~= '{' and c ~= '[' then return false end
    return json_valid(s)
  end

  -- overflow_envelope mirrors engine.OverflowEnvelope.
  local function overflow_envelope(queue_json, stored)
    return '{"original_queue": ' .. queue_json .. ', "data": ' .. py_json_string(stored) ..
      ', "reason": "queue_overflow", "overflow_policy": "dlq"}'
  end

  -- failed_envelope mirrors engine.FailedEnvelope.
  local function failed_envelope(queue_json, stored, err, attempts, first_at, last_at)
    local stored_json = py_json_string(stored)
    local original = stored_json
    if json_container(stored) then original = stored end
    return '{"original_job": ' .. original .. ', "error": ' .. py_json_string(err) ..
      ', "attempt_count": ' .. tostring(attempts) .. ', "first_failed_at": ' .. py_json_string(first_at) ..
      ', "last_failed_at": ' .. py_json_string(last_at) .. ', "queue_name": ' .. queue_json ..
      ', "data": ' .. stored_json .. '}'
  end

  envelope_lib = {
    overflow = overflow_envelope, failed = failed_envelope, field_raw = json_field_raw,
    quote = py_json_string, -- for the tests that hold it to json.dumps
  }
  return envelope_lib
end

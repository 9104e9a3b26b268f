-- luabench.lua - an allocation-heavy, deterministic Lua workload (bench/run.sh).
--
-- Usage: lua5.4 luabench.lua SCALE. Every table, string and closure of Lua
-- comes from the C allocator (lua_Alloc: realloc and free), so tables that
-- grow (rehash), strings built and dropped, and short-lived closures are all
-- malloc, realloc and free traffic. Prints "RESULT checksum=...", the same
-- under every allocator.

local WORDS = {"alpha", "beta", "gamma", "delta", "malloc", "free", "page",
               "segment", "heap", "arena", "block", "span", "thread", "purge"}

local seed = 20261202
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end

local function tree(depth, value)
  if depth == 0 then return {value = value} end
  return {left = tree(depth - 1, 2 * value), right = tree(depth - 1, 2 * value + 1), value = value}
end

local function tree_sum(t)
  local sum, stack = 0, {t}
  while #stack > 0 do
    local n = table.remove(stack)
    sum = sum + n.value
    if n.left then stack[#stack + 1] = n.left; stack[#stack + 1] = n.right end
  end
  return sum
end

local function text_round(lines)
  local counts, parts = {}, {}
  for i = 1, lines do
    local line = {}
    for j = 1, rand(16) + 3 do line[j] = WORDS[rand(#WORDS)] end
    local s = table.concat(line, " ")
    parts[#parts + 1] = s
    for w in s:gmatch("%a+") do counts[w] = (counts[w] or 0) + 1 end
  end
  local total = #table.concat(parts, "\n")
  for w, c in pairs(counts) do total = total + #w * c end
  return total
end

local function table_round(rows)
  local t = {}
  for i = 1, rows do
    local key = "k" .. rand(rows // 2)
    local row = t[key] or {}
    row[#row + 1] = {i, string.rep(tostring(rand(1000)), rand(8)), function() return i end}
    t[key] = row
  end
  local sum = 0
  for _, row in pairs(t) do
    table.sort(row, function(a, b) return a[1] > b[1] end)
    sum = sum + #row[1][2] + row[1][3]()
  end
  return sum
end

local scale = tonumber(arg[1] or "4")
local check = 0
for round = 1, scale do
  check = (check + tree_sum(tree(15, round))) % 1000000007
  check = (check + text_round(20000)) % 1000000007
  check = (check + table_round(60000)) % 1000000007
end
print("RESULT checksum=" .. check)

-- Apply a report's effects once: only if its seen-mark is new.
-- KEYS[1] the seen-mark; ARGV[1] its TTL (s); then commands, each as a count n and n words.
-- Returns 1 if applied, 0 if the report was processed before.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local at = 2
while at <= #ARGV do
  local n = tonumber(ARGV[at])
  local command = {}
  for i = 1, n do
    command[i] = ARGV[at + i]
  end
  redis.call(unpack(command))
  at = at + n + 1
end
return 1

-- In-flight marks of a batch: read the mark an earlier delivery left, then leave ours.
-- KEYS[j] job j's in-flight hash (recipient -> "round|delivery|time")
-- ARGV[1] the mark's TTL in ms, ARGV[2] now (seconds), then for each job in turn: its round,
-- its delivery, its recipient count n, then the n recipients.
-- Returns, per recipient of every job in order, the mark found ("" when none).
local ttl, now = ARGV[1], ARGV[2]
local found = {}
local at = 3
for j = 1, #KEYS do
  local round, delivery, count = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local mark = round .. '|' .. delivery .. '|' .. now
  for i = 1, count do
    local rcpt = ARGV[at + 2 + i]
    found[#found + 1] = redis.call('HGET', KEYS[j], rcpt) or ''
    redis.call('HSET', KEYS[j], rcpt, mark)
  end
  if count > 0 then
    redis.call('PEXPIRE', KEYS[j], ttl)
  end
  at = at + 3 + count
end
return found

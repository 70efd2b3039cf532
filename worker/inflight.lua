-- The in-flight marks earlier deliveries left for a batch's recipients (each email's own
-- marks are written just before its SMTP data goes out: worker/inflight.py).
-- KEYS[j] job j's in-flight hash (recipient -> "round|delivery|time")
-- ARGV, for each job in turn: its recipient count n, then the n recipients.
-- Returns, per recipient of every job in order, the mark found ("" when none).
local found = {}
local at = 1
for j = 1, #KEYS do
  local count = tonumber(ARGV[at])
  for i = 1, count do
    found[#found + 1] = redis.call('HGET', KEYS[j], ARGV[at + i]) or ''
  end
  at = at + 1 + count
end
return found

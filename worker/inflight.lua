-- In-flight marks of a batch: read the mark an earlier delivery left for each recipient.
-- (This batch's own marks are written later, each just before its email's SMTP data goes
-- out: worker/inflight.py.)
-- KEYS[j] job j's in-flight hash (recipient -> "round|delivery|time")
-- ARGV[1] the mark's TTL in ms, ARGV[2] now (seconds), then for each job in turn: its round,
-- its delivery, its recipient count n, then the n recipients.
-- Returns, per recipient of every job in order, the mark found ("" when none).
local found = {}
local at = 3
for j = 1, #KEYS do
  local count = tonumber(ARGV[at + 2])
  for i = 1, count do
    found[#found + 1] = redis.call('HGET', KEYS[j], ARGV[at + 2 + i]) or ''
  end
  at = at + 3 + count
end
return found

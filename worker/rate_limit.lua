-- GCRA over several buckets at once, all or nothing, on Redis's own clock.
-- KEYS[1..n]   the buckets; KEYS[n+1] the hash of adaptive factors (domain -> 0..1)
-- ARGV[3i-2]   emission interval of bucket i at its configured rate, in microseconds
-- ARGV[3i-1]   spare tokens of bucket i (burst - 1)
-- ARGV[3i]     field of bucket i in the adaptive hash, or "" (a factor < 1 slows it down)
-- Returns {1, 0, 0} when a token was taken from every bucket, else {0, wait_us, i}: how
-- long until all of them would conform, and which bucket needs longest. A refused call
-- changes nothing.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local buckets = #KEYS - 1
local adaptive = KEYS[#KEYS]
local new_tats = {}
local wait = 0
local blocking = 0
for i = 1, buckets do
  local interval = tonumber(ARGV[3 * i - 2])
  local spare = tonumber(ARGV[3 * i - 1])
  local field = ARGV[3 * i]
  if field ~= '' then
    local factor = tonumber(redis.call('HGET', adaptive, field) or 1)
    if factor > 0 and factor < 1 then
      interval = interval / factor
    end
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then
    tat = now
  end
  local allowed_at = tat - spare * interval
  if allowed_at > now and allowed_at - now > wait then
    wait = allowed_at - now
    blocking = i
  end
  new_tats[i] = tat + interval
end
if wait > 0 then
  return {0, math.ceil(wait), blocking}
end
for i = 1, buckets do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
end
return {1, 0, 0}

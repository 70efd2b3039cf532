-- GCRA over several buckets at once, all or nothing, on Redis's own clock.
-- KEYS[i]      a bucket
-- ARGV[2i-1]   emission interval of bucket i, in microseconds (1e6 / rate per second)
-- ARGV[2i]     burst tolerance of bucket i, in microseconds ((burst - 1) * interval)
-- Returns {1, 0} when a token was taken from every bucket, else {0, wait_us}: how long
-- until all of them would conform. A refused call changes nothing.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local new_tats = {}
local wait = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then
    tat = now
  end
  local allowed_at = tat - tolerance
  if allowed_at > now and allowed_at - now > wait then
    wait = allowed_at - now
  end
  new_tats[i] = tat + interval
end
if wait > 0 then
  return {0, wait}
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
end
return {1, 0}

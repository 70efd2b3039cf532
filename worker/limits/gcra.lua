-- GCRA over several buckets at once, all or nothing, on Redis's own clock, plus a sliding
-- window per bucket that keeps the promise where the relay counts (the end of DATA).
-- KEYS[2i-1]   bucket i's GCRA state: its theoretical arrival time, in microseconds
-- KEYS[2i]     bucket i's recent grants: a list of microsecond times, newest first
-- KEYS[2n+1]   the hash of adaptive factors (domain -> 0..1)
-- ARGV[5i-4]   emission interval of bucket i at its configured rate, in microseconds
-- ARGV[5i-3]   spare tokens of bucket i for this lane (burst - 1, or less for bulk)
-- ARGV[5i-2]   field of bucket i in the adaptive hash, or "" (a factor < 1 slows it down)
-- ARGV[5i-1]   burst of bucket i
-- ARGV[5i]     the fewest spare tokens any lane has in bucket i (bulk's)
-- ARGV[5n+1]   how many tokens to take from each bucket, all or none (1 if absent): a
--              sender leases its batch's tokens in one call
--
-- A budget (ARGV[5i-4] = 0) counts sends per calendar window instead: KEYS[2i-1] holds
-- "<window number>:<used>" (KEYS[2i] is not used), ARGV[5i-3] is the window in seconds
-- (3600 or 86400), ARGV[5i-2] its cap, or a warm-up's caps one per UTC day, comma-separated,
-- and ARGV[5i-1] the warm-up's first day (days since the epoch). A warm-up past its last
-- day caps nothing. A spent budget waits until the next window starts.
--
-- The window: with count = floor(1 s / interval) + burst (rate + burst), any `count - 1`
-- intervals (1 s + the tolerance, rounded down to whole intervals) hold at most `count`
-- grants. The GCRA alone keeps them within just over 1 s (`count - burst + 1` intervals),
-- so with burst <= 2 the window adds nothing and is skipped. Evenly spaced grants at the
-- full rate never meet it (the span holds one grant fewer), so the long-run rate is the
-- rate; it makes a burst be paid back within that span, so that sends which reach the relay
-- up to the tolerance later than others cannot lift a second at the relay above rate + burst.
--
-- Returns {1, 0, 0, now} when a token was taken from every bucket, else {0, wait_us, i, now}:
-- how long until all of them would conform, and which bucket needs longest; `now` is the
-- script's clock in microseconds. A refused call changes nothing.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local buckets = (#KEYS - 1) / 2
local adaptive = KEYS[#KEYS]
local tokens = tonumber(ARGV[5 * buckets + 1] or 1)
local new_tats = {}
local windows = {}
local counts = {}
local wait = 0
local blocking = 0
-- A budget bucket: counts its window's sends against its cap of the day.
local function budget(i)
  local window = tonumber(ARGV[5 * i - 3])
  local caps = {}
  for cap in string.gmatch(ARGV[5 * i - 2], '%d+') do
    caps[#caps + 1] = tonumber(cap)
  end
  local now_s = math.floor(now / 1000000)
  local cap = caps[1]
  if #caps > 1 then
    local step = math.floor(now_s / 86400) - tonumber(ARGV[5 * i - 1])
    if step < 0 then
      step = 0
    end
    cap = caps[step + 1]  -- nil once the schedule is over
  end
  if not cap then
    return
  end
  local number = math.floor(now_s / window)
  local used = 0
  local state = redis.call('GET', KEYS[2 * i - 1])
  if state then
    local stored, count = string.match(state, '^(%d+):(%d+)$')
    if tonumber(stored) == number then
      used = tonumber(count)
    end
  end
  local ends = (number + 1) * window * 1000000
  if used + tokens > cap then
    if ends - now > wait then
      wait = ends - now
      blocking = i
    end
  end
  counts[i] = {number .. ':' .. (used + tokens), ends}
end
-- A pace bucket: GCRA plus its window. Returns the script's answer when it must stop at once.
local function pace(i, configured)
  local interval = configured
  local spare = tonumber(ARGV[5 * i - 3])
  local field = ARGV[5 * i - 2]
  local burst = tonumber(ARGV[5 * i - 1])
  local least = tonumber(ARGV[5 * i])
  if field ~= '' then
    local factor = tonumber(redis.call('HGET', adaptive, field) or 1)
    if factor > 0 and factor < 1 then
      interval = interval / factor
    end
  end
  local tat = tonumber(redis.call('GET', KEYS[2 * i - 1]) or now)
  if tat < now then
    tat = now
  end
  -- the last of the tokens conforms, so every one before it does
  local allowed_at = tat + (tokens - 1) * interval - spare * interval
  if burst > 2 then
    local count = math.floor(1000000 / interval) + burst
    local span = (count - 1) * interval
    if tokens > count then
      return {0, math.ceil(span), i, now}  -- more than the window ever holds at once
    end
    local oldest = redis.call('LINDEX', KEYS[2 * i], count - tokens)
    if oldest and tonumber(oldest) + span > allowed_at then
      -- Held back by the window, not the bucket: the tolerance the bucket regained while
      -- held must not come back as a second burst when the window lets go, so as of then
      -- the bucket counts as spent down to what every lane leaves (bulk's spare), and
      -- transactional mail keeps its reserve.
      allowed_at = tonumber(oldest) + span
      if tat < allowed_at + least * interval then
        tat = allowed_at + least * interval
      end
    end
    -- keep as many grants as the configured (fastest) rate needs
    windows[i] = {math.floor(1000000 / configured) + burst, span}
  end
  if allowed_at > now and allowed_at - now > wait then
    wait = allowed_at - now
    blocking = i
  end
  new_tats[i] = tat + tokens * interval
  return nil
end
for i = 1, buckets do
  local configured = tonumber(ARGV[5 * i - 4])
  if configured == 0 then
    budget(i)
  else
    local stop = pace(i, configured)
    if stop then
      return stop
    end
  end
end
if wait > 0 then
  return {0, math.ceil(wait), blocking, now}
end
for i = 1, buckets do
  if counts[i] then
    -- kept a day past its window, for `mailfleet explain` and to survive a late reader
    local ttl_ms = math.ceil((counts[i][2] - now) / 1000) + 86400000
    redis.call('SET', KEYS[2 * i - 1], counts[i][1], 'PX', ttl_ms)
  elseif new_tats[i] then
    local ttl_ms = math.ceil((new_tats[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[2 * i - 1], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
  end
  if windows[i] then
    local recent = KEYS[2 * i]
    local stamps = {}
    for t = 1, tokens do
      stamps[t] = string.format('%.0f', now)
    end
    redis.call('LPUSH', recent, unpack(stamps))
    redis.call('LTRIM', recent, 0, windows[i][1] - 1)
    redis.call('PEXPIRE', recent, math.ceil(windows[i][2] / 1000) + 1000)
  end
end
return {1, 0, 0, now}

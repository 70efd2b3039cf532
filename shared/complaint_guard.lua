-- The complaint guard: which sender domains have their bulk mail paused.
-- KEYS[1] the paused hash (sender domain -> "<rate> <sent> <complained> <check at>");
-- KEYS[2..] the hourly report hashes of the last 24 h (fields "sent|<domain>",
-- "complained|<domain>").
-- ARGV: mode ("evaluate" or "read"), threshold, minimum sends, now (s), recheck (s),
-- then for "evaluate" the sender domain.
-- evaluate: pause the domain if its 24-h complaint rate is over the threshold with enough
--   sends, lift its pause if not; returns {paused 0/1, sent, complained}.
-- read: re-evaluate the paused domains whose check is due; returns the paused domains.
local mode = ARGV[1]
local threshold, minimum = tonumber(ARGV[2]), tonumber(ARGV[3])
local now, recheck = tonumber(ARGV[4]), tonumber(ARGV[5])

local function totals(domain)
  local sent, complained = 0, 0
  for i = 2, #KEYS do
    sent = sent + tonumber(redis.call('HGET', KEYS[i], 'sent|' .. domain) or 0)
    complained = complained + tonumber(redis.call('HGET', KEYS[i], 'complained|' .. domain) or 0)
  end
  return sent, complained
end

local function judge(domain)
  local sent, complained = totals(domain)
  local over = sent >= minimum and complained > threshold * sent
  if over then
    local rate = complained / sent
    redis.call('HSET', KEYS[1], domain,
      string.format('%.6f %d %d %.3f', rate, sent, complained, now + recheck))
  else
    redis.call('HDEL', KEYS[1], domain)
  end
  return over, sent, complained
end

if mode == 'evaluate' then
  local over, sent, complained = judge(ARGV[6])
  return {over and 1 or 0, sent, complained}
end

local paused = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local domain, entry = entries[i], entries[i + 1]
  local check_at = tonumber(string.match(entry, '(%S+)$')) or 0
  if check_at > now or judge(domain) then
    paused[#paused + 1] = domain
  end
end
return paused

-- Adaptive per-domain limits: multiplicative decrease on a throttled reply, additive
-- increase while sends succeed. The factor scales the domain's configured rate (0..1].
-- KEYS[1] hash domain -> factor; KEYS[2] hash domain -> time of the last change (us)
-- ARGV[1] domain; ARGV[2] "decrease" | "increase"; ARGV[3] multiplier or step;
-- ARGV[4] floor; ARGV[5] minimum microseconds between two changes of the domain.
-- Returns the factor after the call, as a string.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local domain = ARGV[1]
local factor = tonumber(redis.call('HGET', KEYS[1], domain) or 1)
local last = tonumber(redis.call('HGET', KEYS[2], domain) or 0)
if now - last < tonumber(ARGV[5]) then
  return tostring(factor)
end
if ARGV[2] == 'decrease' then
  factor = math.max(tonumber(ARGV[4]), factor * tonumber(ARGV[3]))
elseif factor < 1 then
  factor = math.min(1, factor + tonumber(ARGV[3]))
else
  return tostring(factor)
end
if factor >= 1 then
  redis.call('HDEL', KEYS[1], domain)
  redis.call('HDEL', KEYS[2], domain)
else
  redis.call('HSET', KEYS[1], domain, tostring(factor))
  redis.call('HSET', KEYS[2], domain, string.format('%.0f', now))
end
return tostring(factor)

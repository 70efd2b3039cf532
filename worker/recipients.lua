-- Which recipients of a job still need it, in one call.
-- KEYS[1] the job's sent ledger (hash: recipient -> time); KEYS[2] the suppression list
-- ARGV[2i-1] recipient i as sent; ARGV[2i] the same, lower-cased
-- Returns, per recipient: 1 already sent, 2 suppressed, 0 still to send.
local verdicts = {}
for i = 1, #ARGV / 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[2 * i - 1]) == 1 then
    verdicts[i] = 1
  elseif redis.call('HEXISTS', KEYS[2], ARGV[2 * i]) == 1 then
    verdicts[i] = 2
  else
    verdicts[i] = 0
  end
end
return verdicts

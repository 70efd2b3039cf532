-- Which recipients of several jobs still need them, in one call.
-- KEYS[1] the suppression list; KEYS[2] the scoped suppressions (field: the address, then
-- the scope's suffix); KEYS[2 + j] job j's sent ledger (hash: recipient -> time)
-- ARGV, for each job in turn: its scope's suffix ("" for none), its recipient count n, then
-- n pairs (recipient as sent, the same lower-cased)
-- Returns, per recipient of every job in order: 1 already sent, 2 suppressed, 0 still to send.
local verdicts = {}
local at = 1
for j = 3, #KEYS do
  local scope = ARGV[at]
  local count = tonumber(ARGV[at + 1])
  for i = 1, count do
    local sent_as, lowered = ARGV[at + 2 * i], ARGV[at + 2 * i + 1]
    if redis.call('HEXISTS', KEYS[j], sent_as) == 1 then
      verdicts[#verdicts + 1] = 1
    elseif redis.call('HEXISTS', KEYS[1], lowered) == 1 then
      verdicts[#verdicts + 1] = 2
    elseif scope ~= '' and redis.call('HEXISTS', KEYS[2], lowered .. scope) == 1 then
      verdicts[#verdicts + 1] = 2
    else
      verdicts[#verdicts + 1] = 0
    end
  end
  at = at + 2 + 2 * count
end
return verdicts

-- Mark recipients of a job as accepted by a relay, in one call.
-- KEYS[1] the job's sent ledger; KEYS[2] the delivered counter; KEYS[3] its 10-second slot
-- ARGV[1] ledger TTL in seconds; ARGV[2] the time; ARGV[3] the slot's TTL; ARGV[4..] the
-- recipients
for i = 4, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], #ARGV - 3)
redis.call('INCRBY', KEYS[3], #ARGV - 3)
redis.call('EXPIRE', KEYS[3], ARGV[3])
return #ARGV - 3

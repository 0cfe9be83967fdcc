-- wrk script for benches/sessions_1m.sh: every request carries a session cookie taken from the
-- file IDS (one session id per line).
--   MODE=walk    thread k of THREADS sends ids k+1, k+1+THREADS, ... once each, then creates
--                the file DONE.k and stops (wrk itself runs on until -d or SIGINT: the caller
--                waits for every DONE file); loads every session into the gateway's memory
--   MODE=cycle   requests go through the file in order, from a random line, round and round (the
--                uniform timed runs: the caller passes a shuffled copy of the ids, so the gateway
--                sees its sessions in an order unrelated to the one they were loaded in, while the
--                load generator reads its own list front to back and its cost per request does not
--                grow with the number of ids)
--   MODE=random  each request takes an id at random
--   MODE=hot     nine requests in ten take an id at random among the first tenth of the file,
--                the tenth at random among all (a working set, as real traffic has)
-- The done() line "SESSIONS ok=.. other=.." counts 200 answers and anything else.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ids, n, ok, other = {}, 0, 0, 0
  mode = os.getenv("MODE") or "random"
  step = tonumber(os.getenv("THREADS") or "1")
  -- Every request is formatted once here, so that request() hands back a string that exists
  -- (building and interning a new one per request costs the generator a cache miss per request
  -- in a table of a million strings).
  for line in io.lines(os.getenv("IDS")) do
    n = n + 1
    ids[n] = wrk.format("GET", "/", { ["Cookie"] = "flowgate_session=" .. line })
  end
  i = tid + 1
  math.randomseed(tid * 7919 + os.time())
  if mode == "cycle" then i = math.random(n) end
end

function request()
  local id
  if mode == "cycle" then
    id = ids[i]
    i = i + 1
    if i > n then i = 1 end
  elseif mode == "walk" then
    if i > n then
      if not marked then
        marked = true
        io.open(os.getenv("DONE") .. "." .. tid, "w"):close()
      end
      wrk.thread:stop()
      id = ids[1]
    else
      id = ids[i]
      i = i + step
    end
  elseif mode == "hot" and math.random(10) <= 9 then
    id = ids[math.random(math.max(1, math.floor(n / 10)))]
  else
    id = ids[math.random(n)]
  end
  return id
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local o, x = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    x = x + t:get("other")
  end
  io.write(string.format("SESSIONS ok=%d other=%d\n", o, x))
end

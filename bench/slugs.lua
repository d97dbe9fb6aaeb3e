-- wrk script for `make bench`: GET /<slug> with a slug picked uniformly at random from a
-- file (one slug a line) on every request.
--
--   wrk ... -s bench/slugs.lua http://127.0.0.1:PORT -- SLUG_FILE [count]
--
-- With "count" each thread also counts the 302s it received, and done() prints their sum as
-- "redirects_302 N": the clicks that must end up stored. Only then is response() defined,
-- because wrk parses every response for Lua once it is.

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   slugs = {}
   for line in io.lines(args[1]) do
      if line ~= "" then
         slugs[#slugs + 1] = "/" .. line
      end
   end
   -- Each thread its own sequence: two threads with one seed would ask for the same slugs.
   math.randomseed(os.time() * 100 + id)
   if args[2] == "count" then
      redirects = 0
      response = function(status, headers, body)
         if status == 302 then
            redirects = redirects + 1
         end
      end
   end
end

function request()
   return wrk.format("GET", slugs[math.random(#slugs)])
end

function done(summary, latency, requests)
   local total, counting = 0, false
   for _, thread in ipairs(threads) do
      local count = thread:get("redirects")
      if count ~= nil then
         total, counting = total + count, true
      end
   end
   if counting then
      io.write(string.format("redirects_302 %d\n", total))
   end
end

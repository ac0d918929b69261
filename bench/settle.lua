-- wrk script: every request settles (2304) a different prepared visit, read from $VISITS.
local ids = {}
for line in io.lines(os.getenv("VISITS")) do ids[#ids + 1] = line end
local threads, counter = 0, 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", tonumber(os.getenv("WRK_THREADS") or "2"))
end

function init(args)
  counter = offset
end

request = function()
  counter = counter + stride
  local id = ids[(counter % #ids) + 1]
  local body = '{"infno":"2304","msgid":"B' .. offset .. '-' .. counter .. '","fixmedins_code":"' ..
    os.getenv("HOSPITAL") .. '","input":{"data":{"mdtrt_id":"' .. id .. '"}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                 ["Authorization"] = "Bearer dev-" .. os.getenv("HOSPITAL")}, body)
end

-- wrk script: every request opens (2401) a stay for a prepared person from $PERSONS.
local persons = {}
for line in io.lines(os.getenv("PERSONS")) do persons[#persons + 1] = line end
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
  local psn = persons[(counter % #persons) + 1]
  local body = '{"infno":"2401","msgid":"O' .. offset .. '-' .. counter .. '","fixmedins_code":"' ..
    os.getenv("HOSPITAL") .. '","input":{"mdtrtinfo":{"psn_no":"' .. psn ..
    '","med_type":"21","begntime":"2026-03-10 08:00:00"}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                 ["Authorization"] = "Bearer dev-" .. os.getenv("HOSPITAL")}, body)
end

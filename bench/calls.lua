-- wrk script for bench/settle_bench.py: every request is one write call, chosen by $CALL:
--   settle  2304 settles a different prepared visit from $VISITS
--   upload  2301 uploads five new fee lines (feedetl_sn from the request's counter) to a visit
--   open    2401 opens a stay for a prepared person from $PERSONS
local call = os.getenv("CALL") or "settle"
local ids = {}
for line in io.lines(os.getenv(call == "open" and "PERSONS" or "VISITS")) do ids[#ids + 1] = line end
local hospital = os.getenv("HOSPITAL")
local threads, counter = 0, 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", tonumber(os.getenv("WRK_THREADS") or "2"))
end

function init(args)
  counter = offset
end

local items = {{"XJ01CAA001A001010101001", "120.50"}, {"110001000020000", "58.00"}, {"XJ01DDA004A006060101004", "35.00"},
               {"210013000010000", "240.00"}, {"XJ01CAA001A001010101001", "60.25"}}

local function input(id)
  if call == "open" then
    return "2401", '{"mdtrtinfo":{"psn_no":"' .. id .. '","med_type":"21","begntime":"2026-03-10 08:00:00"}}'
  elseif call == "upload" then
    local lines = {}
    for k, item in ipairs(items) do
      lines[k] = '{"feedetl_sn":"U' .. counter .. '-' .. k .. '","mdtrt_id":"' .. id .. '","med_list_codg":"' ..
        item[1] .. '","cnt":"2","pric":"' .. item[2] .. '"}'
    end
    return "2301", '{"feedetail":[' .. table.concat(lines, ",") .. ']}'
  end
  return "2304", '{"data":{"mdtrt_id":"' .. id .. '"}}'
end

request = function()
  counter = counter + stride
  local infno, body = input(ids[(counter % #ids) + 1])
  body = '{"infno":"' .. infno .. '","msgid":"B' .. offset .. '-' .. counter .. '","fixmedins_code":"' .. hospital ..
    '","input":' .. body .. '}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                 ["Authorization"] = "Bearer dev-" .. hospital}, body)
end

// billgen: an open-loop load generator of whole bills for the hub's hospital interface.
//
// Bills start at a fixed rate (-rate a second) whatever the server does: a slow answer does not
// slow the arrivals (a closed loop would, and hide the latency it causes). Each bill is what a
// hospital's system sends: 2401 admit -> 2301 upload -> (2303 pre-settle, a share) -> 2304 settle
// -> (the same 2304 again, a share: a retry after a lost answer) -> (2305 reverse, a share), each
// request in the national envelope, signed with the platform gateway's x-tif-* headers.
//
// Latency of a bill's first call counts from when the bill was due to start, not from when it
// was sent, so a generator falling behind shows as latency (no coordinated omission); late
// starts are counted too. Output: one JSON object on stdout (per call and per bill percentiles,
// answers by reason, the generator's own CPU seconds).
//
// Standard library only: `go build` needs no download.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type hospital struct{ code, paasid, token string }

type recorder struct {
	mu        sync.Mutex
	latencies map[string][]float64 // call -> ms
	answers   map[string]int       // "2304 ok", "2304 visit_already_settled", "2304 http 503" ...
}

func (r *recorder) add(call string, ms float64, answer string) {
	r.mu.Lock()
	r.latencies[call] = append(r.latencies[call], ms)
	r.answers[call+" "+answer]++
	r.mu.Unlock()
}

type generator struct {
	url       string
	client    *http.Client
	hospitals []hospital
	persons   []string
	rec       *recorder
	seq       atomic.Int64
	nonce     string
	settled   atomic.Int64
	reversed  atomic.Int64
	lines     int
}

func (g *generator) headers(h hospital, req *http.Request) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := g.nonce + strconv.FormatInt(g.seq.Add(1), 36)
	sum := sha256.Sum256([]byte(ts + h.token + nonce + ts))
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	req.Header.Set("x-tif-paasid", h.paasid)
	req.Header.Set("x-tif-timestamp", ts)
	req.Header.Set("x-tif-nonce", nonce)
	req.Header.Set("x-tif-signature", hex.EncodeToString(sum[:]))
}

// call sends one envelope; it answers the parsed body ("" reason = infcode 0) and the latency.
func (g *generator) call(h hospital, infno, msgid string, input string, since time.Time) (map[string]any, string, float64) {
	envelope := `{"infno":"` + infno + `","msgid":"` + msgid + `","mdtrtarea_admvs":"440100","insuplc_admdvs":"360400",` +
		`"recer_sys_code":"MBS_LOCAL","infver":"V1.0","opter_type":"1","opter":"0001","opter_name":"bench",` +
		`"inf_time":"` + time.Now().Format("2006-01-02 15:04:05") + `","fixmedins_code":"` + h.code +
		`","fixmedins_name":"bench","sign_no":"","input":` + input + `}`
	req, _ := http.NewRequest("POST", g.url, bytes.NewBufferString(envelope))
	g.headers(h, req)
	resp, err := g.client.Do(req)
	ms := float64(time.Since(since).Microseconds()) / 1000
	if err != nil {
		return nil, "transport " + strings.SplitN(err.Error(), ":", 2)[0], ms
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, "http " + strconv.Itoa(resp.StatusCode), ms
	}
	var answer map[string]any
	if json.Unmarshal(body, &answer) != nil {
		return nil, "unreadable", ms
	}
	if fmt.Sprint(answer["infcode"]) != "0" {
		reason, _ := answer["err_code"].(string)
		return answer, "refused " + reason, ms
	}
	return answer, "", ms
}

func (g *generator) msgid(h hospital) string {
	return h.code + time.Now().Format("20060102150405") + strconv.FormatInt(g.seq.Add(1), 10)
}

func outcome(reason string) string {
	if reason == "" {
		return "ok"
	}
	return reason
}

var items = [][2]string{{"XJ01CAA001A001010101001", "120.50"}, {"110001000020000", "58.00"},
	{"XJ01DDA004A006060101004", "35.00"}, {"210013000010000", "240.00"}, {"XJ01CAA001A001010101001", "60.25"}}

// bill runs one bill; due is when it was to start. It answers whether every step it took was done.
func (g *generator) bill(n int64, due time.Time, preview, retry, reverse bool) bool {
	h := g.hospitals[int(n)%len(g.hospitals)]
	psn := g.persons[int(n)%len(g.persons)]
	start := due
	out, reason, ms := g.call(h, "2401", g.msgid(h), `{"mdtrtinfo":{"psn_no":"`+psn+`","med_type":"21",`+
		`"begntime":"2026-03-10 08:00:00","insutype":"390","ipt_no":"ZY`+strconv.FormatInt(n, 10)+`"}}`, start)
	g.rec.add("2401 open", ms, outcome(reason))
	if reason != "" {
		return false
	}
	result, _ := out["output"].(map[string]any)["result"].(map[string]any)
	mdtrt, _ := result["mdtrt_id"].(string)
	var lines []string
	for k := 0; k < g.lines; k++ {
		item := items[k%len(items)]
		lines = append(lines, `{"feedetl_sn":"`+strconv.Itoa(k+1)+`","mdtrt_id":"`+mdtrt+`","psn_no":"`+psn+
			`","med_list_codg":"`+item[0]+`","medins_list_codg":"HIS-`+strconv.Itoa(k)+`","cnt":2,"pric":`+item[1]+
			`,"det_item_fee_sumamt":`+double(item[1])+`,"fee_ocur_time":"2026-03-10 09:00:00"}`)
	}
	t := time.Now()
	_, reason, ms = g.call(h, "2301", g.msgid(h), `{"feedetail":[`+strings.Join(lines, ",")+`]}`, t)
	g.rec.add("2301 upload", ms, outcome(reason))
	if reason != "" {
		return false
	}
	settle := `{"data":{"mdtrt_id":"` + mdtrt + `","psn_no":"` + psn + `","endtime":"2026-03-14 10:00:00",` +
		`"insutype":"390","psn_setlway":"01","acct_used_flag":"0","mid_setl_flag":"0"}}`
	if preview {
		t = time.Now()
		_, reason, ms = g.call(h, "2303", g.msgid(h), settle, t)
		g.rec.add("2303 pre-settle", ms, outcome(reason))
		if reason != "" {
			return false
		}
	}
	id := g.msgid(h)
	t = time.Now()
	out, reason, ms = g.call(h, "2304", id, settle, t)
	g.rec.add("2304 settle", ms, outcome(reason))
	if reason != "" {
		return false
	}
	g.settled.Add(1)
	info, _ := out["output"].(map[string]any)["setlinfo"].(map[string]any)
	setl, _ := info["setl_id"].(string)
	if retry { // the answer was lost: the same request again answers the same settlement
		t = time.Now()
		again, reason, ms := g.call(h, "2304", id, settle, t)
		same := reason == "" && fmt.Sprint(again["output"].(map[string]any)["setlinfo"].(map[string]any)["setl_id"]) == setl
		if reason == "" && !same {
			reason = "retry answered another settlement"
		}
		g.rec.add("2304 retry", ms, outcome(reason))
	}
	if reverse {
		t = time.Now()
		_, reason, ms = g.call(h, "2305", g.msgid(h), `{"data":{"setl_id":"`+setl+`","psn_no":"`+psn+`"}}`, t)
		g.rec.add("2305 reverse", ms, outcome(reason))
		if reason == "" {
			g.reversed.Add(1)
		}
	}
	g.rec.add("bill", float64(time.Since(start).Microseconds())/1000, "ok")
	return true
}

func double(yuan string) string {
	f, _ := strconv.ParseFloat(yuan, 64) // a test figure with 2 decimals: doubling it is exact in cents
	return strconv.FormatFloat(f*2, 'f', 2, 64)
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	var out []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func percentiles(values []float64) map[string]float64 {
	if len(values) == 0 {
		return map[string]float64{}
	}
	sort.Float64s(values)
	at := func(q float64) float64 {
		i := int(q * float64(len(values)-1))
		return float64(int(values[i]*100)) / 100
	}
	return map[string]float64{"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "p99_9_ms": at(0.999),
		"max_ms": at(1), "count": float64(len(values))}
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return float64(usage.Utime.Sec+usage.Stime.Sec) + float64(usage.Utime.Usec+usage.Stime.Usec)/1e6
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8610/fsi/api/rsfComIntfaceService/commInterface", "the convention path")
	rate := flag.Float64("rate", 500, "bills started a second")
	seconds := flag.Float64("seconds", 60, "how long bills keep starting")
	personsFile := flag.String("persons", "", "file of psn_no, one a line")
	hospitalsArg := flag.String("hospitals", "", "code:paasid:token,... (the gateway credentials)")
	previewShare := flag.Float64("preview", 0.5, "share of bills pre-settled (2303) first")
	retryShare := flag.Float64("retry", 0.02, "share of settlements sent twice with the same msgid")
	reverseShare := flag.Float64("reverse", 0.01, "share of settlements reversed (2305)")
	lines := flag.Int("lines", 5, "fee lines a bill")
	maxInflight := flag.Int("max-inflight", 4000, "bills in flight at most; a bill due beyond it is counted as not started")
	flag.Parse()

	var hospitals []hospital
	for _, spec := range strings.Split(*hospitalsArg, ",") {
		parts := strings.SplitN(spec, ":", 3)
		if len(parts) == 3 {
			hospitals = append(hospitals, hospital{parts[0], parts[1], parts[2]})
		}
	}
	if len(hospitals) == 0 || *personsFile == "" {
		fmt.Fprintln(os.Stderr, "billgen: -hospitals and -persons are required")
		os.Exit(2)
	}
	random := make([]byte, 6)
	rand.Read(random)
	transport := &http.Transport{MaxIdleConns: *maxInflight, MaxIdleConnsPerHost: *maxInflight,
		IdleConnTimeout: 90 * time.Second, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	g := &generator{url: *url, client: &http.Client{Transport: transport, Timeout: 60 * time.Second},
		hospitals: hospitals, persons: readLines(*personsFile), nonce: hex.EncodeToString(random),
		rec: &recorder{latencies: map[string][]float64{}, answers: map[string]int{}}, lines: *lines}

	cpuBefore := cpuSeconds()
	interval := time.Duration(float64(time.Second) / *rate)
	total := int64(*rate * *seconds)
	slots := make(chan struct{}, *maxInflight)
	var wg sync.WaitGroup
	var notStarted, late, done, failed atomic.Int64
	began := time.Now()
	for n := int64(0); n < total; n++ {
		due := began.Add(time.Duration(n) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		} else if -wait > 10*time.Millisecond {
			late.Add(1)
		}
		select {
		case slots <- struct{}{}:
		default:
			notStarted.Add(1)
			continue
		}
		wg.Add(1)
		// The share decisions are a fixed function of n: the same run asks the same things.
		preview := float64(n%1000) < *previewShare*1000
		retry := float64((n*7)%1000) < *retryShare*1000
		reverse := float64((n*13)%1000) < *reverseShare*1000
		go func(n int64, due time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			if g.bill(n, due, preview, retry, reverse) {
				done.Add(1)
			} else {
				failed.Add(1)
			}
		}(n, due)
	}
	startedFor := time.Since(began).Seconds()
	wg.Wait()
	elapsed := time.Since(began).Seconds()

	calls := map[string]any{}
	for name, values := range g.rec.latencies {
		calls[name] = percentiles(values)
	}
	report := map[string]any{
		"target_bills_per_s":   *rate,
		"bills_due":            total,
		"bills_done":           done.Load(),
		"bills_failed":         failed.Load(),
		"bills_not_started":    notStarted.Load(),
		"starts_late_10ms":     late.Load(),
		"seconds_starting":     startedFor,
		"seconds_to_last":      elapsed,
		"bills_per_s":          float64(done.Load()) / elapsed,
		"settlements_answered": g.settled.Load(),
		"reversals_answered":   g.reversed.Load(),
		"calls":                calls,
		"answers":              g.rec.answers,
		"generator_cpu_s":      cpuSeconds() - cpuBefore,
	}
	out, _ := json.MarshalIndent(report, "", "  ")
	fmt.Println(string(out))
}

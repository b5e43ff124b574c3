// goload: the load client of the ingress benchmark against the compiled peer. Compiled, so the
// client is never what limits a server under test; standard library only.
//
// Closed loop (-rate 0): -c connections each send the next request as soon as the last answer
// came. Open loop (-rate R): requests are due at R per second whatever the answers, and each
// latency is timed from when the request was due, so a server that falls behind shows it.
// Prints one JSON object: requests per second answered 200, latency percentiles, statuses.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type request struct {
	Body string `json:"body"`
	Sig  string `json:"sig"`
}

type result struct {
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50ms    float64        `json:"p50_ms"`
	P99ms    float64        `json:"p99_ms"`
	Statuses map[string]int `json:"statuses"`
	Offered  float64        `json:"offered_rps"`
}

func main() {
	url := flag.String("url", "http://127.0.0.1:18090/webhook", "target")
	file := flag.String("requests", "", "JSON lines: {body: base64, sig: header value}")
	conns := flag.Int("c", 64, "connections")
	seconds := flag.Float64("d", 10, "seconds")
	rate := flag.Float64("rate", 0, "open loop: requests per second (0: closed loop)")
	flag.Parse()
	bodies, sigs := load(*file)
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns,
		DisableCompression: true,
	}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	lat := make([]float64, 0, 1<<20)
	statuses := map[string]int{}
	record := func(d time.Duration, status int) {
		mu.Lock()
		if status != -2 { // a request never sent has no latency
			lat = append(lat, d.Seconds()*1000)
		}
		statuses[fmt.Sprint(status)]++
		mu.Unlock()
	}
	send := func(i int64) int {
		n := int(i % int64(len(bodies)))
		req, _ := http.NewRequest("POST", *url, bytes.NewReader(bodies[n]))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-hub-signature-256", sigs[n])
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	var next int64
	var wg sync.WaitGroup
	if *rate <= 0 {
		for w := 0; w < *conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					t := time.Now()
					status := send(atomic.AddInt64(&next, 1))
					record(time.Since(t), status)
				}
			}()
		}
	} else {
		interval := time.Duration(float64(time.Second) / *rate)
		slots := make(chan time.Time, *conns)
		for w := 0; w < *conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for due := range slots {
					status := send(atomic.AddInt64(&next, 1))
					record(time.Since(due), status)
				}
			}()
		}
		for due := start; due.Before(end); due = due.Add(interval) {
			time.Sleep(time.Until(due))
			select {
			case slots <- due:
			default: // every connection busy: the request is late; count it as not sent
				record(0, -2)
			}
		}
		close(slots)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p/100*float64(len(lat))))]
	}
	out := result{Seconds: elapsed, RPS: float64(statuses["200"]) / elapsed, P50ms: pct(50),
		P99ms: pct(99), Statuses: statuses, Offered: *rate}
	json.NewEncoder(os.Stdout).Encode(out)
}

func load(path string) ([][]byte, []string) {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	var bodies [][]byte
	var sigs []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 16<<20), 16<<20)
	for scanner.Scan() {
		var r request
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			panic(err)
		}
		body, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			panic(err)
		}
		bodies = append(bodies, body)
		sigs = append(sigs, r.Sig)
	}
	return bodies, sigs
}

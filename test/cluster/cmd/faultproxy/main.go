// faultproxy: an HTTP proxy in front of the test cluster's kube-apiserver that injects the faults a
// test scripts, for the tests of how the operator and the shim live through them (test tooling only).
//
//	faultproxy --upstream https://127.0.0.1:6443 --ca ca.crt --cert admin.crt --key admin.key \
//	  --addr-file addr
//
// It serves plain HTTP on a free loopback port (written to --addr-file) and forwards every request
// to the API server as the given client certificate. Under /_fault/ it takes its orders:
//
//	PUT    /_fault/rules   a JSON array of rules (replaces the ones in force)
//	DELETE /_fault/rules   no more faults
//	GET    /_fault/log     every request so far, one JSON object per line: seq, ms (its arrival, since start),
//	                       verb (GET, LIST, WATCH, POST, PUT, PATCH, DELETE), path, code, fault
//
// A rule applies to the requests it matches (verb and path prefix, each optional), the first `times`
// of them (0: all), and does one of:
//
//	latency   wait delayMs, then forward
//	status    answer `code` with a metav1.Status, and Retry-After: retryAfter when it is set
//	reset     close the connection at once, with a TCP reset
//	cut       forward, but after `afterLines` whole lines of the body send half the next one and
//	          reset the connection (a watch cut in the middle of an event's chunk)
//	stall     a watch: answer 200 and then send nothing until the client goes away; anything else:
//	          never answer at all
//	slow      forward, the body trickled at bytesPerSecond
//	never-end forward the status, the headers and half the body, then nothing more
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type rule struct {
	Verb           string `json:"verb"`
	PathPrefix     string `json:"pathPrefix"`
	Action         string `json:"action"`
	Times          int    `json:"times"`
	DelayMs        int    `json:"delayMs"`
	Code           int    `json:"code"`
	RetryAfter     int    `json:"retryAfter"`
	AfterLines     int    `json:"afterLines"`
	BytesPerSecond int    `json:"bytesPerSecond"`
	used           int
}

type entry struct {
	Seq   int    `json:"seq"`
	Ms    int64  `json:"ms"`
	Verb  string `json:"verb"`
	Path  string `json:"path"`
	Code  int    `json:"code"`
	Fault string `json:"fault"`
}

type proxy struct {
	upstream string
	client   *http.Client
	start    time.Time

	mu    sync.Mutex
	rules []*rule
	log   []entry
}

// verbOf tells a LIST from a GET by the path's shape: after the group version, a collection is
// <plural> or namespaces/<ns>/<plural>.
func verbOf(r *http.Request) string {
	if r.Method != http.MethodGet {
		return r.Method
	}
	if w := r.URL.Query().Get("watch"); w == "true" || w == "1" {
		return "WATCH"
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	rest := len(parts) - 3 // apis/<group>/<version>/...
	if len(parts) > 0 && parts[0] == "api" {
		rest = len(parts) - 2 // api/v1/...
	}
	if rest == 1 || rest == 3 {
		return "LIST"
	}
	return "GET"
}

// match returns the first rule that takes this request (counting it), or nil.
func (p *proxy) match(verb, path string) *rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if (r.Verb == "" || r.Verb == verb) && strings.HasPrefix(path, r.PathPrefix) &&
			(r.Times == 0 || r.used < r.Times) {
			r.used++
			return r
		}
	}
	return nil
}

// record logs a request that arrived `arrived` ms after the start (its answer's code is known now).
func (p *proxy) record(arrived int64, verb, path string, code int, fault string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, entry{len(p.log) + 1, arrived, verb, path, code, fault})
}

func (p *proxy) control(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_fault/rules" && r.Method == http.MethodPut:
		var rules []*rule
		if err := json.NewDecoder(r.Body).Decode(&rules); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rl := range rules {
			switch rl.Action {
			case "latency", "status", "reset", "cut", "stall", "slow", "never-end":
			default:
				http.Error(w, "unknown action "+rl.Action, http.StatusBadRequest)
				return
			}
		}
		p.mu.Lock()
		p.rules = rules
		p.mu.Unlock()
	case r.URL.Path == "/_fault/rules" && r.Method == http.MethodDelete:
		p.mu.Lock()
		p.rules = nil
		p.mu.Unlock()
	case r.URL.Path == "/_fault/log" && r.Method == http.MethodGet:
		p.mu.Lock()
		entries := append([]entry(nil), p.log...)
		p.mu.Unlock()
		enc := json.NewEncoder(w)
		for _, e := range entries {
			_ = enc.Encode(e)
		}
	default:
		http.NotFound(w, r)
	}
}

// resetConn takes the connection over and closes it with a TCP reset.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func statusBody(code int, retryAfter int) []byte {
	body := map[string]any{
		"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
		"message": fmt.Sprintf("injected by faultproxy: %d", code),
	}
	switch code {
	case 429:
		body["reason"] = "TooManyRequests"
	case 500:
		body["reason"] = "InternalError"
	case 503:
		body["reason"] = "ServiceUnavailable"
	}
	if retryAfter > 0 {
		body["details"] = map[string]any{"retryAfterSeconds": retryAfter}
	}
	out, _ := json.Marshal(body)
	return out
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fault/") {
		p.control(w, r)
		return
	}
	arrived := time.Since(p.start).Milliseconds()
	verb := verbOf(r)
	rl := p.match(verb, r.URL.Path)
	action := ""
	if rl != nil {
		action = rl.Action
	}
	switch action {
	case "status":
		if rl.RetryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(rl.RetryAfter))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rl.Code)
		_, _ = w.Write(statusBody(rl.Code, rl.RetryAfter))
		p.record(arrived, verb, r.URL.Path, rl.Code, action)
		return
	case "reset":
		p.record(arrived, verb, r.URL.Path, 0, action)
		resetConn(w)
		return
	case "stall":
		code := 0 // never answered
		if verb == "WATCH" {
			code = 200
		}
		p.record(arrived, verb, r.URL.Path, code, action)
		if verb == "WATCH" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		return
	case "latency":
		select {
		case <-time.After(time.Duration(rl.DelayMs) * time.Millisecond):
		case <-r.Context().Done():
			p.record(arrived, verb, r.URL.Path, 0, action)
			return
		}
	}
	p.forward(w, r, arrived, verb, rl)
}

func (p *proxy) forward(w http.ResponseWriter, r *http.Request, arrived int64, verb string, rl *rule) {
	action := ""
	if rl != nil {
		action = rl.Action
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Content-Type", "Accept", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.ContentLength = r.ContentLength
	resp, err := p.client.Do(out)
	if err != nil {
		p.record(arrived, verb, r.URL.Path, 0, "upstream: "+err.Error())
		resetConn(w)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if k == "Content-Length" && action != "" && action != "latency" {
			continue // the body is cut or trickled: let the server frame it
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	p.record(arrived, verb, r.URL.Path, resp.StatusCode, action)
	flusher := w.(http.Flusher)
	flusher.Flush()
	switch action {
	case "cut":
		reader := bufio.NewReader(resp.Body)
		for lines := 0; ; lines++ {
			line, err := reader.ReadBytes('\n')
			if lines >= rl.AfterLines || err != nil {
				_, _ = w.Write(line[:len(line)/2])
				flusher.Flush()
				resetConn(w)
				return
			}
			_, _ = w.Write(line)
			flusher.Flush()
		}
	case "never-end":
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_, _ = w.Write(body[:len(body)/2])
		flusher.Flush()
		<-r.Context().Done()
	case "slow":
		rate := max(rl.BytesPerSecond, 1)
		chunk := make([]byte, max(rate/10, 1))
		for {
			n, err := resp.Body.Read(chunk)
			if n > 0 {
				_, _ = w.Write(chunk[:n])
				flusher.Flush()
				time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
			}
			if err != nil {
				return
			}
		}
	default:
		buf := make([]byte, 32*1024)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				flusher.Flush()
			}
			if err != nil {
				return
			}
		}
	}
}

func main() {
	upstream := flag.String("upstream", "", "the API server's URL")
	caFile := flag.String("ca", "", "CA bundle of the API server")
	certFile := flag.String("cert", "", "client certificate")
	keyFile := flag.String("key", "", "client key")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback)")
	addrFile := flag.String("addr-file", "", "file to write host:port to once serving")
	flag.Parse()

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(*caFile)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		log.Fatalf("faultproxy: cannot read the CA %q: %v", *caFile, err)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("faultproxy: cannot read the client certificate: %v", err)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   false,
	}
	p := &proxy{upstream: strings.TrimSuffix(*upstream, "/"), client: &http.Client{Transport: transport}, start: time.Now()}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("faultproxy: %v", err)
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(addr), 0o600); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("faultproxy: serving on %s for %s", addr, *upstream)
	log.Fatal(http.Serve(ln, p))
}

// Command benchfilter measures filter mode's metadata proxy: requests per second for an allowed
// path and the latency it adds, side by side with direct requests to the same upstream in the
// same run, and the proxy's memory idle and under load. The proxy runs in a child process
// limited to one core (GOMAXPROCS=1); the upstream, a small stand-in for the metadata service,
// and the load generator run in this process.
//
// Throughput is measured with the clients sending as fast as they can (closed loop); latency
// with the same clients paced to -rate requests per second in all, below saturation, so the
// figures are the time a request spends in the proxy, not in its queue.
//
// Usage: go run ./hack/benchfilter [-clients 100] [-duration 5s] [-rate 2000]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imdsguard/imdsguard/internal/filter"
	"github.com/imdsguard/imdsguard/internal/proxy"
)

var imdsAddr = netip.MustParseAddrPort("169.254.169.254:80")

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-serve-proxy" {
		if err := serveProxy(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "benchfilter proxy:", err)
			os.Exit(1)
		}
		return
	}
	clients := flag.Int("clients", 100, "concurrent clients")
	duration := flag.Duration("duration", 5*time.Second, "length of each measurement")
	rate := flag.Int("rate", 2000, "requests per second, all clients together, for the latency measurement")
	flag.Parse()
	if err := run(*clients, *duration, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "benchfilter:", err)
		os.Exit(1)
	}
}

// serveProxy runs the proxy in front of the upstream at addr, printing its listen address.
func serveProxy(upstream string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var d net.Dialer
	srv := &proxy.Server{
		Policy:      filter.DefaultPolicy(),
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return imdsAddr, nil },
		Allowed:     func(dst netip.AddrPort) bool { return dst == imdsAddr },
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, upstream)
		},
		Log:   slog.New(slog.DiscardHandler),
		Stats: &proxy.Stats{},
	}
	fmt.Println(ln.Addr().String())
	return srv.Serve(context.Background(), ln, nil)
}

func run(clients int, duration time.Duration, rate int) error {
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(upstream, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/latest/meta-data/placement/region" {
				http.NotFound(w, r)
				return
			}
			_, _ = io.WriteString(w, "eu-west-1")
		}))
	}()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(exe, "-serve-proxy", upstream.Addr().String())
	child.Env = append(os.Environ(), "GOMAXPROCS=1")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("proxy address: %w", err)
	}
	proxyAddr := strings.TrimSpace(line)
	time.Sleep(200 * time.Millisecond)
	idle, _, err := rss(child.Process.Pid)
	if err != nil {
		return err
	}
	// Warm both paths, then measure them in turn, twice, and keep the better of each.
	_, _ = load(upstream.Addr().String(), clients, time.Second, 0)
	_, _ = load(proxyAddr, clients, time.Second, 0)
	var direct, viaProxy, directPaced, proxyPaced result
	for range 2 {
		d, err := load(upstream.Addr().String(), clients, duration, 0)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		p, err := load(proxyAddr, clients, duration, 0)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		dp, err := load(upstream.Addr().String(), clients, duration, rate)
		if err != nil {
			return fmt.Errorf("direct, paced: %w", err)
		}
		pp, err := load(proxyAddr, clients, duration, rate)
		if err != nil {
			return fmt.Errorf("proxy, paced: %w", err)
		}
		direct, viaProxy = better(direct, d), better(viaProxy, p)
		if directPaced.rps == 0 || pp.p99 < proxyPaced.p99 {
			directPaced, proxyPaced = dp, pp
		}
	}
	_, peak, err := rss(child.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("clients=%d duration=%s rate=%d/s\n", clients, duration, rate)
	fmt.Printf("throughput direct: %.0f req/s\n", direct.rps)
	fmt.Printf("throughput proxy:  %.0f req/s (one core)\n", viaProxy.rps)
	fmt.Printf("latency direct: p50 %.3f ms, p99 %.3f ms at %.0f req/s\n", ms(directPaced.p50), ms(directPaced.p99), directPaced.rps)
	fmt.Printf("latency proxy:  p50 %.3f ms, p99 %.3f ms at %.0f req/s\n", ms(proxyPaced.p50), ms(proxyPaced.p99), proxyPaced.rps)
	fmt.Printf("added latency: p50 %.3f ms, p99 %.3f ms\n", ms(proxyPaced.p50-directPaced.p50), ms(proxyPaced.p99-directPaced.p99))
	fmt.Printf("proxy RSS: idle %.1f MiB, peak %.1f MiB\n", float64(idle)/1024, float64(peak)/1024)
	return nil
}

func better(a, b result) result {
	if b.rps > a.rps {
		return b
	}
	return a
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// load runs clients goroutines, each sending one request per connection (as the proxy serves
// them) for the duration, as fast as it can or, with rate > 0, rate requests per second in all,
// and returns the rate achieved and the latency percentiles.
func load(addr string, clients int, duration time.Duration, rate int) (result, error) {
	req := []byte("GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
	deadline := time.Now().Add(duration)
	var n atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			buf := make([]byte, 512)
			var tick *time.Ticker
			if rate > 0 {
				// Each client on its own phase of the period: together they send evenly, not in
				// bursts of every client at once.
				period := time.Duration(clients) * time.Second / time.Duration(rate)
				time.Sleep(period * time.Duration(i) / time.Duration(clients))
				tick = time.NewTicker(period)
				defer tick.Stop()
			}
			for time.Now().Before(deadline) {
				if tick != nil {
					<-tick.C
				}
				start := time.Now()
				if err := once(addr, req, buf); err != nil {
					failed.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(start))
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > n.Load()/100 {
		return result{}, fmt.Errorf("%d of %d requests failed", f, f+n.Load())
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	slices.Sort(all)
	return result{rps: float64(n.Load()) / duration.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

// once sends one request on a new connection and reads the answer to the end.
func once(addr string, req, buf []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// rss reads a process's resident set size and its peak, in KiB.
func rss(pid int) (now, peak int64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			now = v
		case "VmHWM:":
			peak = v
		}
	}
	return now, peak, nil
}

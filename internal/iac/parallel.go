package iac

import (
	"runtime"
	"sync"
)

// Parallel calls f(i) for every i in [0, n), on at most GOMAXPROCS goroutines, and returns when
// every call has. Each call should write only its own i's results.
func Parallel(n int, f func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Go(func() {
			for i := range work {
				f(i)
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

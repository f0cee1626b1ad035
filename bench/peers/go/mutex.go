// mutex: uncontended sync.Mutex Lock+Unlock on one goroutine, the Go peer of
// zio_mutex's fast path (one CAS to lock, one atomic add to unlock).
//
// usage: mutex [-n pairs, default 100000000]
// prints: RESULT mutex_ns <ns per Lock+Unlock pair> ns
package main

import (
	"flag"
	"fmt"
	"sync"
	"time"
)

// A package-level mutex and counter so the loop body has an observable
// effect and cannot be dropped.
var (
	mu      sync.Mutex
	counter int
)

func main() {
	n := flag.Int("n", 100000000, "Lock+Unlock pairs")
	flag.Parse()

	t0 := time.Now()
	for i := 0; i < *n; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	el := time.Since(t0)
	if counter != *n {
		panic("lost updates")
	}
	fmt.Printf("RESULT mutex_ns %.6g ns\n", float64(el.Nanoseconds())/float64(*n))
}

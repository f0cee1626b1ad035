// spawn: goroutine creation plus completion, the Go peer of zio_spawn. The
// main goroutine starts n goroutines that each only call wg.Done, then waits
// for all of them. Run under GOMAXPROCS=1 and 2 (bench/run sets the env):
// with 1 P the spawner runs until preempted, so tens of thousands are alive
// at once; with 2 Ps the other P runs and recycles them concurrently.
//
// usage: spawn [-n tasks, default 1000000]
// prints: RESULT spawn_join_ns <ns per task> ns
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

func main() {
	n := flag.Int("n", 1000000, "goroutines to spawn")
	flag.Parse()

	var wg sync.WaitGroup
	// Untimed warm-up so the first stack allocations and the WaitGroup's
	// semaphore setup are not charged to the measurement.
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()

	t0 := time.Now()
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Fprintf(os.Stderr, "spawn: GOMAXPROCS=%d, %d goroutines\n", runtime.GOMAXPROCS(0), *n)
	fmt.Printf("RESULT spawn_join_ns %.6g ns\n", float64(el.Nanoseconds())/float64(*n))
}

// yield: the cost of runtime.Gosched when two goroutines take turns, the Go
// peer of zio_yield. With GOMAXPROCS=1 (bench/run sets it) each Gosched puts
// the caller on the run queue and switches to the other goroutine.
//
// usage: yield [-n yields per goroutine, default 10000000]
// prints: RESULT yield_ns <ns per Gosched> ns
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
	n := flag.Int("n", 10000000, "Gosched calls per goroutine")
	flag.Parse()

	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < *n; i++ {
				runtime.Gosched()
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	el := time.Since(t0)
	fmt.Fprintf(os.Stderr, "yield: GOMAXPROCS=%d, 2 goroutines x %d\n", runtime.GOMAXPROCS(0), *n)
	fmt.Printf("RESULT yield_ns %.6g ns\n", float64(el.Nanoseconds())/float64(2**n))
}

// idle: resident memory per parked goroutine, the Go peer of zio_idle. It
// starts n goroutines that each block receiving from one shared channel and
// reports (VmRSS after all have parked - VmRSS before) / n, read from
// /proc/self/status so runtime and kernel views agree with the C programs.
// The runtime's own StackInuse per goroutine is printed too.
//
// usage: idle [-n goroutines, default 100000]
// prints two lines:
//
//	RESULT idle_rss_kib <KiB per goroutine> KiB
//	RESULT idle_stack_kib <KiB of goroutine stack per goroutine> KiB
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line[len("VmRSS:"):])
			if len(fields) > 0 {
				v, _ := strconv.ParseInt(fields[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

func main() {
	n := flag.Int("n", 100000, "goroutines")
	flag.Parse()

	park := make(chan struct{})
	var started, done sync.WaitGroup
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	rss0 := rssKiB()
	for i := 0; i < *n; i++ {
		started.Add(1)
		done.Add(1)
		go func() {
			started.Done()
			<-park
			done.Done()
		}()
	}
	started.Wait()
	// Done() returns before the receive parks; a few scheduler rounds let
	// the last goroutines reach <-park.
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	rss1 := rssKiB()
	runtime.ReadMemStats(&ms1)
	close(park)
	done.Wait()
	fmt.Fprintf(os.Stderr, "idle: GOMAXPROCS=%d, %d goroutines, RSS %d -> %d KiB\n",
		runtime.GOMAXPROCS(0), *n, rss0, rss1)
	fmt.Printf("RESULT idle_rss_kib %.6g KiB\n", float64(rss1-rss0)/float64(*n))
	fmt.Printf("RESULT idle_stack_kib %.6g KiB\n",
		float64(ms1.StackInuse-ms0.StackInuse)/1024/float64(*n))
}

// chan: unbuffered channel ping-pong between two goroutines, the Go peer of
// zio_chan. One round trip is two hand-offs (ping, pong), each of which
// blocks the sender until the receiver takes the value.
//
// usage: chan [-n round trips, default 4000000]
// prints: RESULT chan_pingpong_ns <ns per round trip> ns
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	n := flag.Int("n", 4000000, "round trips")
	flag.Parse()

	ping := make(chan int)
	pong := make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
		close(pong)
	}()
	// Warm-up: both goroutines exist and have run once.
	ping <- 0
	<-pong

	t0 := time.Now()
	for i := 0; i < *n; i++ {
		ping <- i
		<-pong
	}
	el := time.Since(t0)
	close(ping)
	fmt.Fprintf(os.Stderr, "chan: GOMAXPROCS=%d, %d round trips\n", runtime.GOMAXPROCS(0), *n)
	fmt.Printf("RESULT chan_pingpong_ns %.6g ns\n", float64(el.Nanoseconds())/float64(*n))
}

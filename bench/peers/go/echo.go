// echo: TCP echo server, one goroutine per connection on Go's netpoller, the
// Go peer of examples/echo_server. Each read is written straight back, so
// with bench/loadgen's closed loop every 64-byte request is answered at once.
//
// usage: echo [-addr 127.0.0.1:7000]
// prints nothing on stdout; runs until killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "listen address")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "echo: listening on", *addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}

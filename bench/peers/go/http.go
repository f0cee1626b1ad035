// http: HTTP/1.1 hello-world server with net/http, the Go peer of
// examples/http_server (and what nginx is compared with in bench/run).
// The body matches the nginx config bench/run writes.
//
// usage: http [-addr 127.0.0.1:8080]
// prints nothing on stdout; runs until killed.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
)

var hello = []byte("Hello, World!\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	fmt.Fprintln(os.Stderr, "http: listening on", *addr)
	if err := http.ListenAndServe(*addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
}

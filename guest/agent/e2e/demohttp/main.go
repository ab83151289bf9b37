// demohttp is the e2e's stand-in for a real service configured from the context: an HTTP server
// that serves the value of a configuration file, writes its pid to a pidfile, and on SIGHUP
// reads the file again (what the layer's signal hook sends), then checks through its own HTTP
// port that it serves the new value and says so on stdout ("E2E SERVED <value>").
//
//	demohttp CONFIG PIDFILE ADDRESS
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: demohttp CONFIG PIDFILE ADDRESS")
		os.Exit(2)
	}
	config, pidfile, address := os.Args[1], os.Args[2], os.Args[3]
	var value atomic.Value
	load := func() {
		data, err := os.ReadFile(config)
		if err != nil {
			value.Store("error: " + err.Error())
			return
		}
		value.Store(strings.TrimSpace(string(data)))
	}
	load()
	ln, err := net.Listen("tcp", address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, value.Load().(string)) }))
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	served := func() {
		client := http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get("http://" + address + "/")
		if err != nil {
			fmt.Println("E2E SERVED error", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("E2E SERVED %s\n", body)
	}
	served()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		load()
		served()
	}
}

// pstest-server runs Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/pstest) as a process
// listening on 127.0.0.1, for tests: the real service and Google's emulator cannot run on CI machines
// without Google Cloud access. Clients reach it through PUBSUB_EMULATOR_HOST.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/pstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "host:port to listen on (port 0: any free port)")
	flag.Parse()
	srv := pstest.NewServerWithAddress(*addr)
	defer srv.Close()
	// The first line on stdout is the address, for whoever started us.
	fmt.Println(srv.Addr)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// Command etcd is the upstream etcd server (same entry point as etcd's own main).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"

	"recontext.dev/test/controlplane/exitwithparent"
)

func main() {
	exitwithparent.Watch()
	etcdmain.Main(os.Args)
}

// Command etcd is the upstream etcd server (same entry point as etcd's own main).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	exitWithParent()
	etcdmain.Main(os.Args)
}
